"""Checkpoints: every variable (weights and optimizer state) in one .npz plus a JSON state.

Written to a temporary file and renamed (never half-written); the last ``keep`` are kept.
Loading tries the newest first and falls back to older ones when a file is unreadable.
Among several data-parallel processes rank 0 alone writes them (the variables are replicated,
so its copy is everyone's) and every rank reads the one rank 0 picked.
"""

import json
import os
import re

import numpy as np

from galtools.atomic import atomic_open
from galtools.errors import GalError
from galtools.progress import say

PATTERN = re.compile(r"^step-(\d{9})\.npz$")


def listing(directory):
    """Checkpoint paths, newest (highest step) first."""
    if not os.path.isdir(directory):
        return []
    found = [
        (int(m.group(1)), name) for name in os.listdir(directory) if (m := PATTERN.match(name))
    ]
    return [os.path.join(directory, name) for _, name in sorted(found, reverse=True)]


def save(directory, step, variables, state, keep=3):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"step-{step:09d}.npz")
    write(path, values(variables), dict(state, step=step))
    for old in listing(directory)[keep:]:
        os.unlink(old)
    return path


def write(path, arrays, state):
    """Arrays (in variable order) and a JSON state into ``path``, atomically."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    named = {f"v{i:05d}": np.asarray(a) for i, a in enumerate(arrays)}
    named["state"] = np.array(json.dumps(state))
    with atomic_open(path, "wb", overwrite=True) as fh:
        np.savez(fh, **named)


def values(variables):
    """The variables' current values as numpy arrays."""
    return [np.asarray(v.numpy()) for v in variables]


def read(path, variables, optional=0):
    """Arrays of a checkpoint checked against ``variables``; raises ValueError when unusable.
    ``optional``: how many of the last variables a checkpoint may lack (state a run written
    by an older galtools did not keep, e.g. random generators); they keep their values."""
    try:
        with np.load(path, allow_pickle=False) as f:
            names = sorted(k for k in f.files if k != "state")
            if not len(variables) - optional <= len(names) <= len(variables):
                raise ValueError(f"{len(names)} arrays for {len(variables)} variables")
            arrays = [f[k] for k in names]
            state = json.loads(str(f["state"][()]))
    except (OSError, KeyError, EOFError) as exc:
        raise ValueError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    except Exception as exc:  # zipfile.BadZipFile, json errors...
        raise ValueError(f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
    for v, a in zip(variables, arrays):
        if tuple(v.shape) != a.shape:
            raise ValueError(f"variable {v.path} has shape {tuple(v.shape)}, checkpoint {a.shape}")
    return arrays, state


def newest(directory, variables, optional=0):
    """(path, arrays, state) of the newest usable checkpoint, or None when there is none;
    unreadable ones are skipped (and said), GalError when all are."""
    paths = listing(directory)
    for i, path in enumerate(paths):
        try:
            arrays, state = read(path, variables, optional)
        except ValueError as exc:
            nxt = paths[i + 1] if i + 1 < len(paths) else None
            say(
                f"checkpoint {path} is corrupt ({exc}); "
                + (f"falling back to {os.path.basename(nxt)}" if nxt else "no older one")
            )
            continue
        return path, arrays, state
    if paths:
        raise GalError(
            f"{directory}: no usable checkpoint (all {len(paths)} corrupt); "
            "use --restart to start over"
        )
    return None


def assign(variables, arrays):
    for v, a in zip(variables, arrays):
        v.assign(a)


def restore(directory, variables, optional=0):
    """Load the newest usable checkpoint into ``variables``; return its state or None."""
    found = newest(directory, variables, optional)
    if found is None:
        return None
    assign(variables, found[1])
    return found[2]
