"""Train/validation/test splits, row selection and bagging subsamples of galaxy array files.

Row choices are made on the small columns (ids, labels) only; images are then copied part by
part in chunks, so memory does not grow with the file.  Files of other bands of the same
objects are split identically by matching ids.
"""

import os
import re

import numpy as np

from galtools.arrayfile import GalaxyWriter, check_output, open_galaxies
from galtools.errors import GalError, InputError
from galtools.meta import derive
from galtools.progress import progress, say

PART_FILE = re.compile(r"^(train|test|val)_(\d{3})\.(h5|hdf5|npz)$")


def label_columns(reader):
    """``columns_of(names)`` for :mod:`galtools.expr`: class codes decoded to their names."""

    def columns_of(names):
        cols = {}
        for name in names:
            values = reader.column(name)
            classes = reader.classes.get(name)
            if classes and values.dtype.kind in "iu":
                lookup = np.array(list(classes) + [""])
                values = lookup[np.where((values >= 0) & (values < len(classes)), values, -1)]
            cols[name] = values
        return cols

    return columns_of


def select_rows(reader, where=None, percentage=None, rng=None):
    """Row numbers kept by ``where`` and then a random ``percentage`` (fraction) of them."""
    from galtools import expr

    rows = np.arange(reader.n)
    if where:
        tree = expr.parse(where)
        unknown = sorted(expr.columns(tree) - set(reader.fields))
        if unknown:
            known = ", ".join(reader.label_names) or "none"
            raise InputError(
                reader.path, f"--where uses unknown column '{unknown[0]}' (label columns: {known})"
            )
        rows = rows[expr.evaluate_tree(tree, label_columns(reader), reader.n, reader.path)]
        if rows.size:
            say(f"--where kept {rows.size} of {reader.n} rows")
    if percentage is not None:
        count = int(round(percentage * rows.size))
        rows = np.sort(rng.choice(rows, count, replace=False))
    if rows.size == 0:
        raise GalError(f"{reader.path}: no rows left to split")
    return rows


def strata(values, bins=10, max_classes=20):
    """Groups for stratification: the values themselves, or deciles of a continuous label."""
    if values.dtype.kind == "f" and np.unique(values).size > max_classes:
        finite = values[np.isfinite(values)]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
        return np.where(np.isfinite(values), np.digitize(values, edges), -1)
    return values


def assign(rows, test, val, rng, groups=None):
    """{'train': rows, 'val': rows, 'test': rows}; per group of ``groups`` when stratified."""
    parts = {"train": [], "val": [], "test": []}
    if groups is None:
        buckets = [rows]
    else:
        keys = groups[rows]
        buckets = [rows[keys == k] for k in np.unique(keys)]
    for bucket in buckets:
        bucket = rng.permutation(bucket)
        n_test = int(round(test * bucket.size))
        n_val = int(round(val * bucket.size))
        parts["test"].append(bucket[:n_test])
        parts["val"].append(bucket[n_test : n_test + n_val])
        parts["train"].append(bucket[n_test + n_val :])
    return {
        k: np.sort(np.concatenate(v)) if v else np.array([], np.int64) for k, v in parts.items()
    }


def bags(train, subsamples, fraction, rng):
    """Bagging: K random ``fraction``s of the training rows and their complements."""
    out = {}
    for k in range(1, subsamples + 1):
        count = int(round(fraction * train.size))
        bag = np.sort(rng.choice(train, count, replace=False))
        out[f"train_{k:03d}"] = bag
        out[f"test_{k:03d}"] = np.setdiff1d(train, bag)
    return out


def reference_parts(ref):
    """{part name: ids} from a previous split (its folder, or one of its files)."""
    folder = ref if os.path.isdir(ref) else os.path.dirname(ref) or "."
    if not os.path.exists(ref):
        raise InputError(ref, "no such split file or folder")
    names = sorted(n for n in os.listdir(folder) if PART_FILE.match(n))
    if not names:
        raise InputError(ref, "no train_NNN/test_NNN/val_NNN files in this split")
    out = {}
    for name in names:
        with open_galaxies(os.path.join(folder, name)) as r:
            if not r.has_ids:
                raise InputError(r.path, "has no ids (needed to repeat its split)")
            out[PART_FILE.match(name)[1] + "_" + PART_FILE.match(name)[2]] = r.ids()
    return out


def rows_for_ids(reader, wanted, path):
    """Row numbers of ``reader`` holding the ids ``wanted``, in their order (so matched files
    stay row-aligned); an id missing here is an error."""
    if not reader.has_ids:
        raise InputError(path, "has no ids (needed to match rows across files)")
    ids = np.asarray(reader.ids()).astype(str)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    if sorted_ids.size > 1 and np.any(sorted_ids[1:] == sorted_ids[:-1]):
        dup = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]][0]
        raise InputError(path, f"duplicate id '{dup}' (cannot match rows by id)")
    wanted = np.asarray(wanted).astype(str)
    pos = np.searchsorted(sorted_ids, wanted)
    pos = np.minimum(pos, max(sorted_ids.size - 1, 0))
    found = sorted_ids[pos] == wanted if sorted_ids.size else np.zeros(wanted.size, bool)
    if not found.all():
        missing = wanted[~found]
        raise InputError(
            path, f"{missing.size} id(s) of the split are missing here (first: '{missing[0]}')"
        )
    return order[pos]


def write_rows(reader, rows, path, meta, overwrite, compression, chunk_size, bar=None):
    """Copy ``rows`` (in the given order) of ``reader`` into a new file, chunk by chunk."""
    from galtools.arrayfile import default_chunk

    size = chunk_size or default_chunk(reader.image_shape, reader.dtype)
    with GalaxyWriter(path, meta, overwrite, compression, inputs=[reader.path]) as writer:
        for start in range(0, rows.size, size):
            part = rows[start : start + size]
            writer.append(reader.take(part))
            if bar is not None:
                bar.update(part.size)
    return path


def split_file(
    path,
    outdir,
    history,
    *,
    test=0.0,
    val=0.0,
    percentage=None,
    where=None,
    stratify=None,
    subsamples=0,
    fraction=0.67,
    same_split_as=None,
    match=(),
    fmt="h5",
    seed=0,
    overwrite=False,
    compression=None,
    chunk_size=None,
):
    """Split ``path`` into ``outdir``/train_000.h5, test_000.h5, val_000.h5 (+ bags), and the
    ``match`` files identically into ``outdir``/<their stem>/.  Returns {file: rows}."""
    if test + val >= 1:
        raise GalError(f"--test {test} + --val {val} leaves no training rows (must be < 1)")
    rng = np.random.default_rng(seed)
    readers = []
    try:
        reader = open_galaxies(path)
        readers.append(reader)
        if same_split_as:
            ref = reference_parts(same_split_as)
            parts = {name: rows_for_ids(reader, ids, path) for name, ids in ref.items()}
        else:
            rows = select_rows(reader, where, percentage, rng)
            groups = None
            if stratify:
                groups = strata(np.asarray(reader.column(stratify)))
            split = assign(rows, test, val, rng, groups)
            parts = {"train_000": split["train"]}
            if test > 0:
                parts["test_000"] = split["test"]
            if val > 0:
                parts["val_000"] = split["val"]
            if subsamples:
                parts.update(bags(split["train"], subsamples, fraction, rng))
        for name, rows in parts.items():
            if rows.size == 0:
                raise GalError(
                    f"{path}: split part '{name}' would be empty "
                    f"({sum(r.size for r in parts.values())} rows in all)"
                )
        jobs = [
            (reader, rows, name, os.path.join(outdir, f"{name}.{fmt}"))
            for name, rows in parts.items()
        ]
        for other in match:
            r = open_galaxies(other)
            readers.append(r)
            ids = reader.ids()
            sub = os.path.join(outdir, os.path.splitext(os.path.basename(other))[0])
            for name, rows in parts.items():
                jobs.append(
                    (r, rows_for_ids(r, ids[rows], other), name, os.path.join(sub, f"{name}.{fmt}"))
                )
        return _write_parts(jobs, history, outdir, overwrite, compression, chunk_size, seed)
    finally:
        for r in readers:
            r.close()


def stale_parts(outputs, inputs):
    """Parts (train_NNN/test_NNN/val_NNN) of an earlier split of the same ``inputs`` in the
    folders of ``outputs``, other than the outputs themselves: kept, they would be mixed with
    this split.  Parts of other files (a test set kept beside a re-split training set) and
    the inputs are left alone."""
    mine = {os.path.abspath(p) for p in outputs}
    sources = {os.path.abspath(p) for p in inputs}
    stale = []
    for folder in sorted({os.path.dirname(os.path.abspath(out)) for out in outputs}):
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if (
                PART_FILE.match(name)
                and path not in mine
                and path not in sources
                and _split_of(path) & sources
            ):
                stale.append(path)
    return stale


def _split_of(path):
    """Input paths of the split that wrote ``path`` (empty if it was not written by split
    or cannot be read)."""
    try:
        with open_galaxies(path) as reader:
            last = (reader.meta.get("history") or [{}])[-1]
    except GalError:
        return set()
    if last.get("tool") != "split":
        return set()
    return {
        os.path.abspath(i.get("path", "")) for i in last.get("inputs", []) if isinstance(i, dict)
    }


def _write_parts(jobs, history, outdir, overwrite, compression, chunk_size, seed):
    inputs = sorted({r.path for r, *_ in jobs})
    made, done = [], []
    stale = stale_parts([out for *_, out in jobs], inputs)
    if stale and not overwrite:
        raise GalError(
            f"{stale[0]}: part of an earlier split of the same file ({len(stale)} "
            "such file(s) would be mixed with this one); use --overwrite to "
            "replace that split, or another folder"
        )
    bar = progress(total=sum(rows.size for _, rows, _, _ in jobs), desc="split")
    try:
        for _, _, _, out in jobs:
            folder = os.path.dirname(out) or "."
            if not os.path.isdir(folder):
                os.makedirs(folder)
                made.append(folder)
            check_output(out, overwrite, inputs)
        for reader, rows, name, out in jobs:
            entry = dict(history)
            entry["split"] = {
                "part": name,
                "rows": int(rows.size),
                "of": int(reader.n),
                "seed": seed,
            }
            write_rows(
                reader,
                rows,
                out,
                derive(reader.meta, entry),
                overwrite,
                compression,
                chunk_size,
                bar,
            )
            done.append(out)
    except BaseException:
        for out in done:
            os.unlink(out)
        for folder in reversed(made):
            if not os.listdir(folder):
                os.rmdir(folder)
        raise
    finally:
        bar.close()
    for path in stale:  # only once the new split is complete
        os.unlink(path)
        say(f"removed {path} (part of the split replaced)")
    return {out: int(rows.size) for _, rows, _, out in jobs}
