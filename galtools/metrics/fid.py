"""Fréchet Inception Distance and Kernel Inception Distance between two feature sets.

FID (Heusel et al. 2017): ``|mu_a - mu_b|² + tr(S_a + S_b - 2 (S_a S_b)^½)``, with the trace of
the matrix square root taken from the eigenvalues of the symmetric ``S_a^½ S_b S_a^½`` (clipped at
zero) — stable where ``scipy.linalg.sqrtm`` of the non-symmetric product returns complex noise.

KID (Bińkowski et al. 2018): the unbiased estimate of MMD² with the cubic polynomial kernel
``k(x, y) = (x·y / d + 1)³``, averaged over random subsets of both sets; mean and std.
"""

import numpy as np

from galtools.errors import GalError
from galtools.params import Option

GRAM_LIMIT = 6000  # up to this many images in both sets, KID precomputes one kernel matrix


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
    """FID between two N×D feature sets.

    With fewer samples than dimensions the covariances have rank < N and the trace term is
    computed in sample space: tr (S_a S_b)^½ is the nuclear norm of X_a X_bᵀ / √((N_a-1)(N_b-1))
    for the centred features X: the same value from one N×N symmetric eigen-problem instead of
    two D×D ones.
    """
    a, b = _check(features_a, features_b)
    if max(len(a), len(b)) >= a.shape[1]:
        return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    for x in (a, b):
        if len(x) < 2:
            raise GalError(f"FID needs at least 2 images per set, got {len(x)}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    xa, xb = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    tr_a = np.einsum("ij,ij->", xa, xa) / na
    tr_b = np.einsum("ij,ij->", xb, xb) / nb
    m = xa @ xb.T
    small = m @ m.T if len(a) <= len(b) else m.T @ m
    eig = np.linalg.eigvalsh((small + small.T) / 2)  # squared singular values of m
    tr_sqrt = np.sqrt(np.clip(eig, 0, None)).sum() / np.sqrt(na * nb)
    diff = mu_a - mu_b
    return float(max(diff @ diff + tr_a + tr_b - 2 * tr_sqrt, 0.0))


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
    gram = None
    if len(a) + len(b) <= GRAM_LIMIT and subsets * subset_size > len(a) + len(b):
        # one kernel matrix for all subsets: (N_a+N_b)²·D instead of subsets·3·m²·D
        x = np.concatenate([a, b])
        gram = (x @ x.T / a.shape[1] + 1) ** 3
    m = subset_size
    for k in range(subsets):
        ia = rng.choice(len(a), m, replace=False)
        ib = rng.choice(len(b), m, replace=False)
        if gram is None:
            values[k] = _poly_mmd2(a[ia], b[ib])
        else:
            jb = ib + len(a)
            kxx, kyy = gram[np.ix_(ia, ia)], gram[np.ix_(jb, jb)]
            sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
            syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            values[k] = sxx + syy - 2 * gram[np.ix_(ia, jb)].mean()
    return float(values.mean()), float(values.std(ddof=1) if subsets > 1 else 0.0), subset_size


class FID:
    """``galtools.metrics`` entry: FID on extractor features."""

    name = "fid"
    kind = "features"
    title = "Fréchet distance of features"
    options = ()

    def compare(self, a, b, settings):
        return {"fid": fid(a, b), "n": [len(a), len(b)], "dim": int(np.shape(a)[1])}


class KID:
    """``galtools.metrics`` entry: KID on extractor features."""

    name = "kid"
    kind = "features"
    title = "Kernel distance (unbiased MMD², cubic kernel) of features"
    options = (
        Option("kid_subsets", "Number of KID subsets.", "int", 100, minimum=1, metavar="N"),
        Option(
            "kid_subset_size",
            "KID subset size (default: min(N, 1000)).",
            "int",
            minimum=2,
            metavar="N",
        ),
    )

    def compare(self, a, b, settings):
        subsets = int(settings.get("kid_subsets", 100))
        mean, std, size = kid(
            a,
            b,
            subsets=subsets,
            subset_size=settings.get("kid_subset_size"),
            seed=settings.get("seed", 0),
        )
        return {
            "kid": mean,
            "kid_std": std,
            "subsets": subsets,
            "subset_size": size,
            "n": [len(a), len(b)],
        }
