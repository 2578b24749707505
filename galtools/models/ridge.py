"""``ridge-histogram``: the classic baseline — ridge regression on per-image pixel histograms.

Closed form, in one streamed pass: per cross-validation fold the sums X'X, X'y, y'y, ΣX, Σy,
n are accumulated chunk by chunk; α is the value of the grid with the lowest K-fold RMSE, and
the final fit uses all folds.

Features (``--features``): ``cil2018`` (default), the CIL2018 baseline's — per image and band,
``np.histogram`` with ``--bins`` (default 10) bins over the image's own min–max, raw counts,
and sklearn's ridge penalty α‖w‖²; or ``quantile`` — fractions of pixels in bins whose edges
are per-band quantiles of the first chunk, α scaled by the number of rows.  CIL2018 chose α
by 5-fold CV on MAE; galtools chooses it on RMSE (from the streamed sums).
"""

import os

import numpy as np

from galtools.errors import GalError
from galtools.models import TARGET, Column, ModelSpec
from galtools.params import Option

ALPHAS = np.logspace(-5, 3, 9)
FEATURES = ("cil2018", "quantile")


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


def own_range_histograms(images, bins):
    """(N, bands × bins) raw counts of ``np.histogram(image_band, bins)``: bins over each
    image's own min–max (±0.5 when flat), as CIL2018's ``extract_feats`` (same edge rules)."""
    images = np.asarray(images, np.float64)
    if images.ndim == 3:
        images = images[..., None]
    n, bands = images.shape[0], images.shape[-1]
    pixels = np.moveaxis(images.reshape(n, -1, bands), -1, 1)  # N×C×P
    lo, hi = pixels.min(axis=2, keepdims=True), pixels.max(axis=2, keepdims=True)
    flat = lo == hi
    lo, hi = np.where(flat, lo - 0.5, lo), np.where(flat, hi + 0.5, hi)
    width = (hi - lo) / bins
    idx = ((pixels - lo) * (bins / (hi - lo))).astype(np.intp)
    idx[idx == bins] -= 1
    # numpy's corrections for values rounded into the neighbouring bin
    idx[pixels < lo + idx * width] -= 1
    idx[(pixels >= lo + (idx + 1) * width) & (idx != bins - 1)] += 1
    offsets = (np.arange(n * bands) * bins).reshape(n, bands, 1)
    counts = np.bincount((idx + offsets).ravel(), minlength=n * bands * bins)
    return counts.reshape(n, bands * bins).astype(np.float64)


FEATURES_OPTION = Option(
    "features",
    "cil2018: per-image histograms over the image's own min–max, raw counts (the CIL2018 "
    "baselines); quantile: pixel fractions in bins at quantiles of the data.",
    kind="choice",
    choices=FEATURES,
    default="cil2018",
)
BINS_OPTION = Option(
    "bins",
    "Histogram bins per band (default: 10 for cil2018, 32 for quantile).",
    kind="int",
    minimum=2,
    metavar="N",
)


def histogram_settings(options):
    """(features, bins) from a model's options, with the defaults of the feature set."""
    features = options.get("features") or "cil2018"
    return features, int(options.get("bins") or (10 if features == "cil2018" else 32))


def quantile_edges(x, bins):
    """Per-band bin edges at quantiles of a chunk of images (the ``quantile`` features)."""
    q = np.linspace(0, 100, bins + 1)[1:-1]
    flat = x.reshape(-1, x.shape[-1])
    return np.stack([np.percentile(flat[:, b], q) for b in range(x.shape[-1])])


def histogram_features(kind, images, bins, edges):
    """The features of ``images``: ``cil2018`` or ``quantile`` (with ``edges``)."""
    if kind == "cil2018":
        return own_range_histograms(images, bins)
    return histograms(images, edges)


def load_weights(run, what):
    """The arrays of a run's ``weights.npz`` (read without pickle)."""
    path = os.path.join(run.path, "weights.npz")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, KeyError) as exc:
        raise GalError(f"{path}: unreadable {what} weights ({exc})") from None


def stored_features(wts, images):
    """The histogram features a fitted run was trained on (runs from before ``features``
    was stored used the quantile ones)."""
    kind = str(wts["features"]) if "features" in wts else "quantile"
    bins = int(wts["bins"]) if "bins" in wts else wts["edges"].shape[1] + 1
    return histogram_features(kind, images, bins, wts["edges"])


def solve(xtx, xty, sx, sy, n, alpha, per_row=True):
    """Centred ridge solution (w, b) from the sums; α scaled by n (``per_row``) or, as
    sklearn's Ridge, not."""
    mx, my = sx / n, sy / n
    a = xtx - n * np.outer(mx, mx)
    c = xty - n * mx * my
    w = np.linalg.solve(a + alpha * (n if per_row else 1) * np.eye(len(c)), c)
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
    options = (TARGET, FEATURES_OPTION, BINS_OPTION)
    columns = (Column("target", "raw"),)

    def configure(self, options, info):
        features, bins = histogram_settings(options)
        return {"features": features, "bins": bins, "folds": 5, "alphas": ALPHAS.tolist()}

    def fit(self, chunks, config, run_dir):
        """``chunks``: iterable of (images, y) over the data (one pass).  Writes weights.npz."""
        mc = config["model_config"]
        kind = mc.get("features", "quantile")  # runs made before cil2018 features existed
        per_row = kind != "cil2018"
        folds, edges, stats = mc["folds"], None, None
        rng = np.random.default_rng(config["training"]["seed"])
        for x, y in chunks:
            if edges is None:
                edges = quantile_edges(x, mc["bins"])
            h = histogram_features(kind, x, mc["bins"], edges)
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
                w, b = solve(train[0], train[1], train[3], train[4], train[5], alpha, per_row)
                err += sse(stats[k], w, b)
                count += stats[k][5]
            cv.append(float(np.sqrt(max(err, 0.0) / max(count, 1))))
        best = int(np.argmin(cv))
        alpha = mc["alphas"][best]
        w, b = solve(total[0], total[1], total[3], total[4], total[5], alpha, per_row)
        from galtools.atomic import atomic_open

        with atomic_open(os.path.join(run_dir, "weights.npz"), "wb", overwrite=True) as fh:
            np.savez(
                fh,
                edges=edges,
                features=np.array(kind),
                bins=np.int64(mc["bins"]),
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

    def features(self, run, images):
        return stored_features(load_weights(run, "ridge"), images)

    def predict(self, run, images):
        wts = load_weights(run, "ridge")
        return stored_features(wts, images) @ wts["w"] + float(wts["b"])


ridge_histogram = RidgeHistogram()
