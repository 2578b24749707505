"""Simulated galaxy stamps for the metrics tests: Sérsic profiles rendered with numpy."""

import numpy as np
from scipy.special import gammaincinv


def sersic(size, r_half, n=1.0, ellip=0.0, angle=0.0, flux=1000.0, center=None, oversample=5):
    """A Sérsic profile (sum = flux within the stamp up to truncation), oversampled per pixel."""
    b = gammaincinv(2 * n, 0.5)
    c = (size - 1) / 2 if center is None else center
    cx, cy = (c, c) if np.isscalar(c) else c
    sub = (np.arange(size * oversample) + 0.5) / oversample - 0.5
    y, x = np.meshgrid(sub, sub, indexing="ij")
    dx, dy = x - cx, y - cy
    q = 1 - ellip
    xp = dx * np.cos(angle) + dy * np.sin(angle)
    yp = -dx * np.sin(angle) + dy * np.cos(angle)
    r = np.sqrt(xp**2 + (yp / q) ** 2)
    img = np.exp(-b * ((r / r_half) ** (1 / n) - 1))
    img = img.reshape(size, oversample, size, oversample).mean(axis=(1, 3))
    return img * flux / img.sum()


def population(
    count,
    size=32,
    seed=0,
    noise=1.0,
    bands=1,
    n_range=(0.8, 3.0),
    r_range=(2.0, 4.0),
    flux_range=(2000, 6000),
):
    """``count`` noisy Sérsic stamps (N×size×size×bands) with random parameters."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, size, size, bands), np.float32)
    for i in range(count):
        img = sersic(
            size,
            rng.uniform(*r_range),
            rng.uniform(*n_range),
            ellip=rng.uniform(0, 0.4),
            angle=rng.uniform(0, np.pi),
            flux=rng.uniform(*flux_range),
            center=(size - 1) / 2 + rng.uniform(-1, 1, 2),
        )
        for c in range(bands):
            out[i, :, :, c] = img * (0.7 + 0.3 * c) + rng.normal(0, noise, (size, size))
    return out
