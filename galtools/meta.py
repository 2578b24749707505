"""Metadata of galaxy array files: bands, pixel scale, class names, provenance history."""

import copy
import hashlib
import json
import os
from datetime import datetime, timezone

FORMAT = "galtools-array"
FORMAT_VERSION = 1
HASH_LIMIT = 256 * 2**20  # hash inputs up to this size (cheap); larger ones record size only


def new_meta(bands=None, pixel_scale=None, classes=None, history=(), **extra):
    """Metadata dict for a new file.

    ``bands``: list of band names (one per channel); ``classes``: {label column: [class names]}.
    """
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bands": list(bands) if bands is not None else None,
        "pixel_scale": pixel_scale,
        "classes": dict(classes or {}),
        "history": list(history),
    }
    meta.update(extra)
    return meta


def normalise(meta, n_bands=None):
    """Fill defaults into metadata read from a file (older or foreign files)."""
    meta = dict(meta or {})
    meta.setdefault("format", FORMAT)
    meta.setdefault("format_version", FORMAT_VERSION)
    meta.setdefault("bands", None)
    meta.setdefault("pixel_scale", None)
    meta.setdefault("classes", {})
    meta.setdefault("history", [])
    if meta["bands"] is None and n_bands is not None:
        meta["bands"] = [str(i) for i in range(n_bands)]
    return meta


def derive(meta, entry):
    """Copy of ``meta`` with one more history entry."""
    out = copy.deepcopy(meta)
    out.setdefault("history", []).append(entry)
    return out


def jsonable(value):
    """Convert option values (paths, tuples, numpy scalars, dataclasses) to JSON types."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def describe_input(path):
    """{path, size, sha256} for an input file (sha256 only where cheap)."""
    path = os.fspath(path)
    info = {"path": path}
    if path == "-" or not os.path.isfile(path):
        return info
    size = os.path.getsize(path)
    info["size"] = size
    if size <= HASH_LIMIT:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(2**20), b""):
                digest.update(block)
        info["sha256"] = digest.hexdigest()
    return info


def history_entry(tool, options, inputs=()):
    """One provenance record: tool, version, UTC time, options, inputs."""
    from galtools import __version__

    return {
        "tool": tool,
        "version": __version__,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "options": jsonable(options),
        "inputs": [describe_input(p) for p in inputs],
    }


def dumps(meta):
    return json.dumps(meta, sort_keys=True)


def loads(text, path="?"):
    from galtools.errors import InputError

    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise InputError(path, f"metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise InputError(path, "metadata is not a JSON object")
    return meta
