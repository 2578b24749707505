"""Ordered parallel map over chunks of work with a bounded number of chunks in flight."""

import signal


def _worker_init():
    # galprep's SIGTERM handler (raise SystemExit to clean up temporary outputs) is inherited
    # through fork; in a pool worker it would unwind inside the pool's queue locks when the
    # pool is terminated.  Workers own no outputs: let SIGTERM end them at once, and leave
    # Ctrl-C to the parent.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def ordered_map(fn, tasks, jobs=1, window=None):
    """Yield ``fn(*task)`` for every task, in order.

    With ``jobs`` > 1 and more than one task, a pool of forked worker processes runs the
    tasks, at most ``window`` (default 2 × jobs) at a time so results waiting to be written
    never pile up in memory.  Otherwise the tasks run here, one after the other.
    """
    tasks = list(tasks)
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield fn(*task)
        return
    import multiprocessing as mp

    window = window or 2 * jobs
    pool = mp.get_context("fork").Pool(min(jobs, len(tasks)), initializer=_worker_init)
    finished = False
    try:
        pending, nxt = [], 0
        while nxt < len(tasks) or pending:
            while nxt < len(tasks) and len(pending) < window:
                pending.append(pool.apply_async(fn, tasks[nxt]))
                nxt += 1
            yield pending.pop(0).get()
        finished = True
    finally:
        if finished:
            pool.close()
        else:
            pool.terminate()
        pool.join()
