"""Ordered parallel map over chunks of work with a bounded number of chunks in flight."""


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
    pool = mp.get_context("fork").Pool(min(jobs, len(tasks)))
    try:
        pending, nxt = [], 0
        while nxt < len(tasks) or pending:
            while nxt < len(tasks) and len(pending) < window:
                pending.append(pool.apply_async(fn, tasks[nxt]))
                nxt += 1
            yield pending.pop(0).get()
        pool.close()
    finally:
        pool.terminate()
        pool.join()
