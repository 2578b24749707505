"""``ridge-histogram``: the classic baseline — ridge regression on per-image pixel histograms.

Closed form, in one streamed pass: per cross-validation fold the sums X'X, X'y, y'y, ΣX, Σy,
n are accumulated chunk by chunk; α is the value of the grid with the lowest K-fold RMSE, and
the final fit uses all folds.  Histogram edges are per-band quantiles of the first chunk.
"""

import os

import numpy as np

from galtools.errors import GalError
from galtools.models import TARGET, Column, ModelSpec
from galtools.params import Option

ALPHAS = np.logspace(-5, 3, 9)


def histograms(images, edges):
    """(N, bands × bins) fraction of each image's pixels in each band's bins."""
    images = np.asarray(images, np.float64)
    if images.ndim == 3:
        images = images[..., None]
    n, bands = images.shape[0], images.shape[-1]
    bins = edges.shape[1] + 1
    out = np.empty((n, bands * bins))
    pixels = images.reshape(n, -1, bands)
    offsets = np.arange(n)[:, None] * bins
    for b in range(bands):
        idx = np.searchsorted(edges[b], pixels[:, :, b], side="right") + offsets
        counts = np.bincount(idx.ravel(), minlength=n * bins).reshape(n, bins)
        out[:, b * bins : (b + 1) * bins] = counts / pixels.shape[1]
    return out


def solve(xtx, xty, sx, sy, n, alpha):
    """Centred ridge solution (w, b) from the sums; α scaled by n."""
    mx, my = sx / n, sy / n
    a = xtx - n * np.outer(mx, mx)
    c = xty - n * mx * my
    w = np.linalg.solve(a + alpha * n * np.eye(len(c)), c)
    return w, my - mx @ w


def sse(stats, w, b):
    """Σ (y - Xw - b)² of one fold from its sums."""
    xtx, xty, yty, sx, sy, n = stats
    return yty - 2 * w @ xty - 2 * b * sy + w @ xtx @ w + 2 * b * (w @ sx) + n * b * b


class RidgeHistogram(ModelSpec):
    name = "ridge-histogram"
    task = "regression"
    kind = "closed-form"
    description = "ridge regression on per-image pixel histograms (numpy, α by K-fold CV)"
    options = (
        TARGET,
        Option("bins", "Histogram bins per band.", kind="int", default=32, minimum=2, metavar="N"),
    )
    columns = (Column("target", "raw"),)

    def configure(self, options, info):
        return {"bins": int(options.get("bins") or 32), "folds": 5, "alphas": ALPHAS.tolist()}

    def fit(self, chunks, config, run_dir):
        """``chunks``: iterable of (images, y) over the data (one pass).  Writes weights.npz."""
        mc = config["model_config"]
        folds, edges, stats = mc["folds"], None, None
        rng = np.random.default_rng(config["training"]["seed"])
        for x, y in chunks:
            if edges is None:
                q = np.linspace(0, 100, mc["bins"] + 1)[1:-1]
                flat = x.reshape(-1, x.shape[-1])
                edges = np.stack([np.percentile(flat[:, b], q) for b in range(x.shape[-1])])
            h = histograms(x, edges)
            d = h.shape[1]
            if stats is None:
                stats = [
                    [np.zeros((d, d)), np.zeros(d), 0.0, np.zeros(d), 0.0, 0] for _ in range(folds)
                ]
            fold = rng.integers(0, folds, len(y))
            y = np.asarray(y, np.float64).reshape(-1)
            for k in range(folds):
                m = fold == k
                hk, yk = h[m], y[m]
                s = stats[k]
                s[0] += hk.T @ hk
                s[1] += hk.T @ yk
                s[2] += float(yk @ yk)
                s[3] += hk.sum(0)
                s[4] += float(yk.sum())
                s[5] += int(m.sum())
        if stats is None:
            raise GalError("no training data for ridge-histogram")
        total = [sum(s[i] for s in stats) for i in range(6)]
        cv = []
        for alpha in mc["alphas"]:
            err, count = 0.0, 0
            for k in range(folds):
                if stats[k][5] == 0:
                    continue
                train = [t - s for t, s in zip(total, stats[k])]
                if train[5] == 0:
                    continue
                w, b = solve(train[0], train[1], train[3], train[4], train[5], alpha)
                err += sse(stats[k], w, b)
                count += stats[k][5]
            cv.append(float(np.sqrt(max(err, 0.0) / max(count, 1))))
        best = int(np.argmin(cv))
        alpha = mc["alphas"][best]
        w, b = solve(total[0], total[1], total[3], total[4], total[5], alpha)
        from galtools.atomic import atomic_open

        with atomic_open(os.path.join(run_dir, "weights.npz"), "wb", overwrite=True) as fh:
            np.savez(
                fh,
                edges=edges,
                w=w,
                b=np.float64(b),
                alpha=np.float64(alpha),
                alphas=np.asarray(mc["alphas"]),
                cv_rmse=np.asarray(cv),
            )
        return {
            "alpha": alpha,
            "cv_rmse": cv,
            "alphas": mc["alphas"],
            "n": int(total[5]),
            "train_rmse": float(np.sqrt(max(sse(total, w, b), 0) / total[5])),
        }

    @staticmethod
    def _weights(run):
        path = os.path.join(run.path, "weights.npz")
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, KeyError) as exc:
            raise GalError(f"{path}: unreadable ridge weights ({exc})") from None

    def features(self, run, images):
        return histograms(images, self._weights(run)["edges"])

    def predict(self, run, images):
        wts = self._weights(run)
        return histograms(images, wts["edges"]) @ wts["w"] + float(wts["b"])


ridge_histogram = RidgeHistogram()
