"""Distances between 1-D distributions of per-image measurements."""

import numpy as np


def wasserstein_1d(a, b):
    """First Wasserstein (earth mover's) distance between two 1-D samples.

    Non-finite values are ignored; NaN when either sample is then empty.  Equals
    ``scipy.stats.wasserstein_distance`` (∫|F_a - F_b| dx over the merged sorted values).
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = np.sort(a[np.isfinite(a)])
    b = np.sort(b[np.isfinite(b)])
    if a.size == 0 or b.size == 0:
        return float("nan")
    x = np.concatenate([a, b])
    x.sort(kind="mergesort")
    dx = np.diff(x)
    fa = np.searchsorted(a, x[:-1], side="right") / a.size
    fb = np.searchsorted(b, x[:-1], side="right") / b.size
    return float(np.sum(np.abs(fa - fb) * dx))


def wasserstein_columns(a, b):
    """Wasserstein distance per column of two N×K arrays (K values)."""
    a = np.asarray(a).reshape(len(a), -1)
    b = np.asarray(b).reshape(len(b), -1)
    return np.array([wasserstein_1d(a[:, k], b[:, k]) for k in range(a.shape[1])])


def spread(values, axis=0):
    """Mean, std and 16/50/84th percentiles of finite values along ``axis``."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return {
                "mean": np.nanmean(v, axis=axis),
                "std": np.nanstd(v, axis=axis),
                "p16": np.nanpercentile(v, 16, axis=axis),
                "median": np.nanmedian(v, axis=axis),
                "p84": np.nanpercentile(v, 84, axis=axis),
            }
