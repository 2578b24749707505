"""Ordered parallel map over chunks of work with a bounded number of chunks in flight.

Large array results can come back through shared memory instead of the pool's pipe:
pickling 15 MB chunks through a pipe runs at a few hundred MB/s and made two workers no faster
than one.  With ``shared_bytes``, the parent maps one anonymous shared buffer per chunk in
flight before forking; a worker copies the big arrays of its (dict) result into its chunk's
buffer and sends only their shapes; the parent gets views of the buffer, which is reused only
after the parent has asked for the next result.
"""

import mmap
import signal

import numpy as np

_SLOTS = None  # (shared buffer, bytes per slot, keys), inherited by forked workers
_ALIGN = 64
_MIN_SHARED = 1 << 16  # smaller arrays travel through the pipe


class _Shared:
    """Where an array of a result lies in its slot."""

    __slots__ = ("offset", "shape", "dtype")

    def __init__(self, offset, shape, dtype):
        self.offset, self.shape, self.dtype = offset, shape, dtype


def _worker_init():
    # galprep's SIGTERM handler (raise SystemExit to clean up temporary outputs) is inherited
    # through fork; in a pool worker it would unwind inside the pool's queue locks when the
    # pool is terminated.  Workers own no outputs: let SIGTERM end them at once, and leave
    # Ctrl-C to the parent.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _in_slot(fn, slot, args):
    """Run ``fn(*args)`` in a worker; big arrays of a dict result go into ``slot``."""
    result = fn(*args)
    if _SLOTS is None or not isinstance(result, dict):
        return result
    buffer, size, keys = _SLOTS
    base, used, out = slot * size, 0, {}
    for key, value in result.items():
        if (
            key in keys
            and isinstance(value, np.ndarray)
            and value.dtype.kind in "biufc"
            and value.nbytes >= _MIN_SHARED
            and used + value.nbytes <= size
        ):
            view = np.ndarray(value.shape, value.dtype, buffer=buffer, offset=base + used)
            view[...] = value
            out[key] = _Shared(used, value.shape, value.dtype.str)
            used += -(-value.nbytes // _ALIGN) * _ALIGN
        else:
            out[key] = value
    return out


def _from_slot(result, slot, slots):
    """A worker's result with its shared arrays as views of ``slots`` (None: as it came)."""
    if slots is None or not isinstance(result, dict):
        return result
    buffer, size, _ = slots
    return {
        key: np.ndarray(v.shape, v.dtype, buffer=buffer, offset=slot * size + v.offset)
        if isinstance(v, _Shared)
        else v
        for key, v in result.items()
    }


def ordered_map(fn, tasks, jobs=1, window=None, shared_bytes=0, shared=("images", "targets")):
    """Yield ``fn(*task)`` for every task, in order.

    With ``jobs`` > 1 and more than one task, a pool of forked worker processes runs the
    tasks, at most ``window`` (default 2 × jobs) at a time so results waiting to be written
    never pile up in memory.  Otherwise the tasks run here, one after the other.
    ``shared_bytes`` (the most bytes the ``shared`` arrays of one dict result hold) sends
    those arrays back through shared memory; they are then views, valid until the next result
    is asked for (copy what must be kept longer).  Other values come by pipe, as copies.
    """
    global _SLOTS
    tasks = list(tasks)
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield fn(*task)
        return
    import multiprocessing as mp

    window = window or 2 * jobs
    slots = None
    if shared_bytes:
        size = -(-int(shared_bytes) // mmap.PAGESIZE) * mmap.PAGESIZE
        slots = (mmap.mmap(-1, size * window), size, frozenset(shared))  # shared across fork
    previous, _SLOTS = _SLOTS, slots  # what the forked workers see
    try:
        pool = mp.get_context("fork").Pool(min(jobs, len(tasks)), initializer=_worker_init)
    finally:
        _SLOTS = previous
    finished = False
    try:
        pending, nxt = [], 0
        while nxt < len(tasks) or pending:
            while nxt < len(tasks) and len(pending) < window:
                pending.append(
                    (nxt % window, pool.apply_async(_in_slot, (fn, nxt % window, tasks[nxt])))
                )
                nxt += 1
            slot, result = pending.pop(0)
            yield _from_slot(result.get(), slot, slots)
        finished = True
    finally:
        if finished:
            pool.close()
        else:
            pool.terminate()
        pool.join()
        # the shared buffer is not closed here: views of it handed out hold it (numpy keeps
        # the mmap as their base) and it is unmapped when the last of them goes
