"""FID/KID against closed forms, their behaviour with noise, and the image→RGB protocol."""

import numpy as np
import pytest

from galtools.errors import GalError
from galtools.features import protocol as protomod
from galtools.metrics.fid import fid, frechet_distance, gaussian_stats, kid


def closed_form_diag(mu1, var1, mu2, var2):
    return float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2))


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    got = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(closed_form_diag(mu1, v1, mu2, v2), rel=1e-10)


def test_frechet_distance_matches_sqrtm_formula_for_full_covariances():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(sqrtm(s1 @ s2)))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)


def test_fid_of_samples_approaches_the_gaussian_value():
    rng = np.random.default_rng(2)
    mu2, v2 = np.array([0.5, -0.5, 0.0, 1.0]), np.array([1.0, 2.0, 0.5, 1.0])
    a = rng.normal(size=(40000, 4))
    b = mu2 + np.sqrt(v2) * rng.normal(size=(40000, 4))
    expect = closed_form_diag(np.zeros(4), np.ones(4), mu2, v2)
    assert fid(a, b) == pytest.approx(expect, abs=0.05)  # sampling error ~ 0.02


def test_sample_space_fid_equals_the_covariance_route_when_n_is_below_d():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(12, 40))
    b = rng.normal(0.3, 1.5, size=(15, 40))
    ref = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    assert fid(a, b) == pytest.approx(ref, rel=1e-6)  # eigh of rank-deficient covariances
    assert fid(a, a) == pytest.approx(0.0, abs=1e-9)


def test_fid_of_a_set_with_itself_is_zero_and_stats_are_right():
    x = np.random.default_rng(3).normal(size=(200, 16))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)
    mu, cov = gaussian_stats(x)
    assert mu.shape == (16,) and cov.shape == (16, 16)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False))


def test_kid_is_unbiased_near_zero_for_one_distribution_and_reports_std():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    mean, std, size = kid(a, b, subsets=50, subset_size=100, seed=0)
    assert size == 100 and std > 0
    assert abs(mean) < 3 * std + 1e-3
    shifted = kid(a, b + 1.0, subsets=50, subset_size=100, seed=0)[0]
    assert shifted > 10 * abs(mean)


def test_kid_with_a_precomputed_kernel_equals_the_per_subset_kernel(monkeypatch):
    import galtools.metrics.fid as fidmod

    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(60, 5)), rng.normal(0.2, 1, size=(50, 5))
    fast = kid(a, b, subsets=30, subset_size=20, seed=1)
    monkeypatch.setattr(fidmod, "GRAM_LIMIT", 0)
    slow = kid(a, b, subsets=30, subset_size=20, seed=1)
    assert fast[0] == pytest.approx(slow[0], rel=1e-10)
    assert fast[1] == pytest.approx(slow[1], rel=1e-8)


def test_kid_is_seeded():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(80, 4)), rng.normal(size=(90, 4))
    assert kid(a, b, subsets=5, seed=3) == kid(a, b, subsets=5, seed=3)
    assert kid(a, b, subsets=5, seed=3)[2] == 80


def test_fid_and_kid_grow_with_noise():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(400, 10))
    other = rng.normal(size=(400, 10))
    fids, kids = [], []
    for sigma in (0.0, 0.5, 1.0, 2.0):
        noisy = other + sigma * rng.normal(size=other.shape)
        fids.append(fid(real, noisy))
        kids.append(kid(real, noisy, subsets=20, subset_size=200, seed=0)[0])
    assert all(np.diff(fids) > 0), fids
    assert all(np.diff(kids) > 0), kids


def test_bad_feature_sets_are_refused():
    x = np.zeros((10, 3))
    with pytest.raises(GalError, match="exceeds the smaller set"):
        kid(x, x, subset_size=20)
    with pytest.raises(GalError, match="equal D"):
        fid(x, np.zeros((10, 4)))
    with pytest.raises(GalError, match="at least 2"):
        fid(x[:1], x[:1])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(GalError, match="NaN"):
        fid(bad, x)


def test_holzschuh_protocol_band_minmax_magma_256_8bit():
    p = protomod.parse("holzschuh2022")
    assert (p.bands, p.stretch, p.cmap, p.size, p.quantize) == ("1", "minmax", "magma", 256, 8)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 5, size=(2, 16, 16, 3)).astype(np.float32)
    out = protomod.apply(p, images, ["g", "r", "i"])
    assert out.shape == (2, 256, 256, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out * 255, np.rint(out * 255), atol=1e-4)
    import matplotlib

    # the darkest pixel of band 1 maps to magma(0), the brightest to magma(1)
    lo = np.array(matplotlib.colormaps["magma"](0.0)[:3])
    small = protomod.apply(
        protomod.parse("holzschuh2022,size=none,quantize=none"), images, ["g", "r", "i"]
    )
    k = np.unravel_index(np.argmin(images[0, :, :, 1]), (16, 16))
    np.testing.assert_allclose(small[0][k], lo, atol=1e-6)


def test_protocol_overrides_grey_and_errors():
    p = protomod.parse("rgb,bands=r,stretch=minmax,quantize=none,size=8")
    assert p.name.startswith("rgb+") and p.bands == "r" and p.size == 8
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    out = protomod.apply(p, x, ["g", "r", "i"])
    assert out.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(out[..., 0], out[..., 2])
    raw = protomod.apply(protomod.parse("raw"), x, ["g", "r", "i"])
    np.testing.assert_array_equal(raw, x)
    for bad, msg in [
        ("nope", "unknown protocol 'nope'"),
        ("rgb,foo=1", "bad protocol setting"),
        ("rgb,stretch=cubic", "unknown stretch"),
        ("rgb,cmap=notacmap", "unknown colormap"),
        ("rgb,size=abc", "not a number"),
    ]:
        with pytest.raises(GalError, match=msg):
            protomod.parse(bad)
    with pytest.raises(GalError, match="unknown band 'z'"):
        protomod.apply(protomod.parse("rgb,bands=z"), x, ["g", "r", "i"])
