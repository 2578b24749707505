"""Power spectra: white noise is flat, a Gaussian blob matches its analytic spectrum."""

import numpy as np
import pytest

from galtools.metrics.power import Power, PowerSpectra, power_spectra, radial_bins


def naive(img):
    """Per-image reference: full fftshifted |FFT|²/(H·W), mean per integer radius."""
    h, w = img.shape
    p = np.abs(np.fft.fftshift(np.fft.fft2(img))) ** 2 / (h * w)
    y, x = np.indices((h, w))
    r = np.rint(np.hypot(y - h // 2, x - w // 2)).astype(int)
    return np.bincount(r.ravel(), p.ravel()) / np.bincount(r.ravel()), p


@pytest.mark.parametrize("shape", [(16, 16), (15, 15), (12, 20)])
def test_batched_spectra_equal_the_per_image_reference(shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, *shape, 2)).astype(np.float32)
    got = power_spectra(x)
    engine = PowerSpectra(*shape)
    for i in range(5):
        for c in range(2):
            ref, full = naive(x[i, :, :, c].astype(np.float64))
            np.testing.assert_allclose(got[i, c], ref, rtol=2e-4)
            half = engine.half_power(x[i : i + 1, :, :, c : c + 1])
            np.testing.assert_allclose(engine.full(half)[0, 0], full, rtol=2e-4, atol=1e-6)


def test_white_noise_is_flat_at_its_variance():
    rng = np.random.default_rng(1)
    sigma = 2.0
    x = rng.normal(0, sigma, size=(400, 32, 32, 1))
    mean = power_spectra(x)[:, 0].mean(axis=0)
    np.testing.assert_allclose(mean[1:20], sigma**2, rtol=0.05)


def test_gaussian_blob_matches_its_analytic_spectrum():
    n, s = 64, 3.0
    y, x = np.indices((n, n))
    blob = np.exp(-((x - n / 2) ** 2 + (y - n / 2) ** 2) / (2 * s**2))
    spec = power_spectra(blob[None, :, :, None])[0, 0]
    # |FT|² of a unit-peak Gaussian: (2π s²)² exp(-4π² s² k²), k = radius / n cycles/pixel
    _, matrix = radial_bins(n, n)
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.rfftfreq(n)[None, :]
    analytic2d = (2 * np.pi * s**2) ** 2 * np.exp(-4 * np.pi**2 * s**2 * (ky**2 + kx**2))
    analytic = (analytic2d.ravel() @ matrix) / n**2
    # where the spectrum is well above float32 round-off
    ok = analytic > analytic[0] * 1e-6
    np.testing.assert_allclose(spec[ok], analytic[ok], rtol=1e-3)
    assert ok.sum() >= 8


def test_power_metric_compares_sets_by_wasserstein_per_radius():
    rng = np.random.default_rng(2)
    metric = Power()
    acc_a, acc_b, acc_c = (metric.accumulator({}) for _ in range(3))
    a = rng.normal(size=(60, 16, 16, 1))
    acc_a.add(a[:30])
    acc_a.add(a[30:])
    acc_b.add(rng.normal(size=(60, 16, 16, 1)))
    acc_c.add(3 * rng.normal(size=(60, 16, 16, 1)))
    ra, rb, rc = acc_a.result(), acc_b.result(), acc_c.result()
    assert ra["spectra"].shape == (60, 1, radial_bins(16, 16)[0])
    same = metric.compare(ra, rb, {}, ["x"])
    diff = metric.compare(ra, rc, {}, ["x"])
    # log10(9) ≈ 0.95 between the sets; much less between two draws of one
    assert diff["bands"]["x"]["mean_wasserstein"] == pytest.approx(np.log10(9), abs=0.1)
    assert same["mean_wasserstein"] < 0.15 * diff["mean_wasserstein"]
    summary = metric.summary(ra, ["x"])
    assert (
        summary["n"] == 60 and len(summary["bands"]["x"]["log10_mean"]) == ra["spectra"].shape[-1]
    )


def test_non_finite_images_are_skipped_and_counted():
    x = np.random.default_rng(3).normal(size=(5, 8, 8, 1))
    x[1, 2, 2, 0] = np.nan
    acc = Power().accumulator({})
    acc.add(x)
    res = acc.result()
    assert res["spectra"].shape[0] == 4 and res["skipped_nonfinite"] == 1
    assert np.isfinite(res["spectra"]).all()


def test_wasserstein_matches_scipy():
    from scipy.stats import wasserstein_distance

    from galtools.metrics.distances import wasserstein_1d

    rng = np.random.default_rng(4)
    a, b = rng.normal(size=37), rng.normal(1, 2, size=51)
    assert wasserstein_1d(a, b) == pytest.approx(wasserstein_distance(a, b), rel=1e-12)
    assert np.isnan(wasserstein_1d([np.nan], b))
