"""Ordered parallel map over chunks of work with a bounded number of chunks in flight.

Large array results can come back through shared memory instead of the pool's pipe:
pickling 15 MB chunks through a pipe runs at a few hundred MB/s and made two workers no faster
than one.  With ``shared_bytes``, the parent maps one anonymous shared buffer per chunk in
flight before forking; a worker copies the big arrays of its (dict) result into its chunk's
buffer and sends only their shapes; the parent gets views of the buffer, which is reused only
after the parent has asked for the next result.
"""

import mmap
import multiprocessing.context as _mpc
import os
import signal
import sys
import threading
import time

import numpy as np

_SLOTS = None  # (shared buffer, bytes per slot, keys), inherited by forked workers
_ALIGN = 64
_MIN_SHARED = 1 << 16  # smaller arrays travel through the pipe


class _Shared:
    """Where an array of a result lies in its slot."""

    __slots__ = ("offset", "shape", "dtype")

    def __init__(self, offset, shape, dtype):
        self.offset, self.shape, self.dtype = offset, shape, dtype


_PR_SET_PDEATHSIG = 1


def exit_with_parent(parent=None, poll_s=1.0):
    """Make this (worker) process end quietly when its parent dies, e.g. by ``kill -9``.

    On Linux the kernel sends SIGKILL when the parent goes (PR_SET_PDEATHSIG); elsewhere, or
    if that is unavailable, a daemon thread polls ``os.getppid()``.  Either way the worker
    leaves without tracebacks (no BrokenPipeError pages from a pool whose parent is gone).
    ``parent``: the pid expected as parent (default: the current one).
    """
    parent = os.getppid() if parent is None else parent
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(0)
    if armed:
        return

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="galtools-parent-watch", daemon=True).start()


class _QuietExit:
    """A pool worker process that leaves silently when its parent's pipe is gone."""

    def run(self):
        try:
            super().run()
        except (BrokenPipeError, ConnectionResetError, EOFError):
            os._exit(0)  # the parent died (kill -9, time limit): nobody to report to


class _QuietSpawn(_QuietExit, _mpc.SpawnProcess):
    pass


if hasattr(_mpc, "ForkProcess"):  # POSIX

    class _QuietFork(_QuietExit, _mpc.ForkProcess):
        pass

    class _QuietForkServer(_QuietExit, _mpc.ForkServerProcess):
        pass

    _QUIET = {"spawn": _QuietSpawn, "fork": _QuietFork, "forkserver": _QuietForkServer}
else:  # pragma: no cover
    _QUIET = {"spawn": _QuietSpawn}


def _quiet_resource_tracker():
    """Start multiprocessing's resource tracker (if not running) without its 'leaked
    semaphore' warning: after a kill -9 of the parent it cleans up, and need not say so."""
    from multiprocessing import resource_tracker

    saved = list(sys.warnoptions)
    sys.warnoptions.append("ignore:resource_tracker:UserWarning")
    try:
        resource_tracker.ensure_running()
    except Exception:
        pass  # the pool starts it as before
    finally:
        sys.warnoptions[:] = saved


def worker_pool(ctx, processes, initializer=None, initargs=()):
    """``ctx.Pool`` whose workers exit quietly (no BrokenPipe tracebacks) when the parent dies.

    Call :func:`exit_with_parent` in ``initializer`` so that busy workers end too.
    """
    from multiprocessing.pool import Pool

    cls = _QUIET[ctx.get_start_method()]
    if ctx.get_start_method() != "fork":
        _quiet_resource_tracker()

    class _Pool(Pool):
        @staticmethod
        def Process(ctx, *args, **kwds):
            return cls(*args, **kwds)

    return _Pool(processes, initializer, initargs, context=ctx)


def _worker_init(parent=None):
    # galprep's SIGTERM handler (raise SystemExit to clean up temporary outputs) is inherited
    # through fork; in a pool worker it would unwind inside the pool's queue locks when the
    # pool is terminated.  Workers own no outputs: let SIGTERM end them at once, and leave
    # Ctrl-C to the parent.  A worker whose parent dies ends too, silently.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent)


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
        pool = worker_pool(
            mp.get_context("fork"), min(jobs, len(tasks)), _worker_init, (os.getpid(),)
        )
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
