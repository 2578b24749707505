"""Fréchet Inception Distance and Kernel Inception Distance between two feature sets.

FID (Heusel et al. 2017): ``|mu_a - mu_b|² + tr(S_a + S_b - 2 (S_a S_b)^½)``, with the trace of
the matrix square root taken from the eigenvalues of the symmetric ``S_a^½ S_b S_a^½`` (clipped at
zero) — stable where ``scipy.linalg.sqrtm`` of the non-symmetric product returns complex noise.

KID (Bińkowski et al. 2018): the unbiased estimate of MMD² with the cubic polynomial kernel
``k(x, y) = (x·y / d + 1)³``, averaged over random subsets of both sets; mean and std.
"""

import numpy as np

from galtools.errors import GalError


def _check(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise GalError(f"feature sets must be N×D with equal D, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise GalError("features contain NaN or infinite values")
    return a, b


def gaussian_stats(features):
    """Mean and covariance (float64) of N×D features."""
    x = np.asarray(features, dtype=np.float64)
    if x.shape[0] < 2:
        raise GalError(f"FID needs at least 2 images per set, got {x.shape[0]}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _sqrt_psd(cov):
    """Symmetric square root of a positive semi-definite matrix."""
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu_a, cov_a, mu_b, cov_b):
    """Fréchet distance between the Gaussians N(mu_a, cov_a) and N(mu_b, cov_b)."""
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt
    return float(max(value, 0.0))


def fid(features_a, features_b):
    """FID between two N×D feature sets."""
    a, b = _check(features_a, features_b)
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def _poly_mmd2(x, y):
    """Unbiased MMD² of two equal-size samples with the cubic polynomial kernel."""
    d = x.shape[1]
    m = x.shape[0]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return sxx + syy - 2 * kxy.mean()


def kid(features_a, features_b, subsets=100, subset_size=None, seed=0):
    """KID: (mean, std) of unbiased MMD² over ``subsets`` random subsets of ``subset_size``
    (default min(N_a, N_b, 1000)) drawn without replacement from each set."""
    a, b = _check(features_a, features_b)
    n = min(len(a), len(b))
    if subset_size is None:
        subset_size = min(n, 1000)
    if subset_size < 2:
        raise GalError(f"KID needs subsets of at least 2 images, got {subset_size}")
    if subset_size > n:
        raise GalError(
            f"KID subset size {subset_size} exceeds the smaller set ({n} images); "
            f"use --kid-subset-size {n} or fewer"
        )
    if subsets < 1:
        raise GalError("KID needs at least one subset")
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for k in range(subsets):
        ia = rng.choice(len(a), subset_size, replace=False)
        ib = rng.choice(len(b), subset_size, replace=False)
        values[k] = _poly_mmd2(a[ia], b[ib])
    return float(values.mean()), float(values.std(ddof=1) if subsets > 1 else 0.0), subset_size


class FID:
    """``galtools.metrics`` entry: FID on extractor features."""

    name = "fid"
    kind = "features"
    title = "Fréchet distance of features"

    def compare(self, a, b, settings):
        return {"fid": fid(a, b), "n": [len(a), len(b)], "dim": int(np.shape(a)[1])}


class KID:
    """``galtools.metrics`` entry: KID on extractor features."""

    name = "kid"
    kind = "features"
    title = "Kernel distance (unbiased MMD², cubic kernel) of features"

    def compare(self, a, b, settings):
        subsets = int(settings.get("kid_subsets", 100))
        mean, std, size = kid(a, b, subsets=subsets, subset_size=settings.get("kid_subset_size"),
                              seed=settings.get("seed", 0))
        return {"kid": mean, "kid_std": std, "subsets": subsets, "subset_size": size,
                "n": [len(a), len(b)]}
