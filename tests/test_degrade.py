"""galprep degrade: PSF kernels, noise, downsampling, the CLI."""

import json

import numpy as np
import pytest

from galtools.arrayfile import read_galaxies, write_galaxies
from galtools.degrade import (
    Degrader,
    add_noise,
    convolve,
    moffat_kernel,
    parse_psf,
    psf_kernels,
    reduce_resolution,
)
from galtools.errors import GalError
from galtools.meta import new_meta


def point_sources(n=2, size=64, bands=2):
    x = np.zeros((n, size, size, bands))
    x[:, size // 2, size // 2, :] = 100.0
    return x


def test_parse_psf_specs():
    assert parse_psf("gaussian:sigma=2") == ("gaussian", {"sigma": [2.0]})
    assert parse_psf("moffat:fwhm=3,beta=3.5") == ("moffat", {"fwhm": [3.0], "beta": [3.5]})
    assert parse_psf("gaussian: sigma = 1/2/3 ")[1] == {"sigma": [1.0, 2.0, 3.0]}


@pytest.mark.parametrize(
    "spec, words",
    [
        ("airy:r=2", "unknown kind"),
        ("gaussian", "needs sigma or fwhm"),
        ("gaussian:sigma=2,fwhm=3", "needs sigma or fwhm"),
        ("gaussian:sigma=abc", "not a number"),
        ("gaussian:sigma=-1", "must be positive"),
        ("gaussian:width=2", "bad parameter"),
        ("moffat:fwhm=3", "needs beta"),
        ("moffat:fwhm=3,beta=0.5", "beta must be > 1"),
        ("gaussian:sigma=2,size=40", "odd"),
    ],
)
def test_parse_psf_rejects(spec, words):
    with pytest.raises(GalError, match=words):
        parse_psf(spec)


def test_kernels_are_41x41_unit_sum_per_band():
    k = psf_kernels("gaussian:sigma=1/2/3", 3)
    assert k.shape == (41, 41, 3)
    np.testing.assert_allclose(k.sum(axis=(0, 1)), 1.0, rtol=1e-12)
    # second moment along x of each band's kernel is sigma²
    x = np.arange(41) - 20
    var = (k.sum(axis=0) * x[:, None] ** 2).sum(axis=0)
    np.testing.assert_allclose(var, [1.0, 4.0, 9.0], rtol=1e-3)
    with pytest.raises(GalError, match="3 values of sigma for 2 bands"):
        psf_kernels("gaussian:sigma=1/2/3", 2)


def test_moffat_has_the_asked_fwhm():
    k = moffat_kernel(fwhm=6.0, beta=3.5, size=41)
    profile = k[20] / k[20, 20]
    # half maximum at r = 3 pixels
    assert profile[23] == pytest.approx(0.5, abs=1e-9)
    assert psf_kernels("moffat:fwhm=3,beta=3.5,size=21", 1).shape == (21, 21, 1)


@pytest.mark.parametrize("spec", ["gaussian:sigma=2", "moffat:fwhm=3,beta=3.5"])
def test_psf_conserves_flux(spec):
    x = point_sources()
    y = convolve(x, psf_kernels(spec, 2))
    np.testing.assert_allclose(y.sum(axis=(1, 2)), x.sum(axis=(1, 2)), rtol=1e-9)
    assert y.max() < 0.5 * x.max()  # it did blur
    # the PSF image of a point source is the kernel itself
    np.testing.assert_allclose(
        y[0, 12:53, 12:53, 0] / 100, psf_kernels(spec, 2)[..., 0], atol=1e-12
    )


@pytest.mark.parametrize(
    "shape, spec",
    [
        ((3, 8, 8, 2), "gaussian:sigma=2"),  # image smaller than the kernel
        ((2, 30, 17, 3), "moffat:fwhm=3,beta=3.5"),
        ((1, 5, 50, 1), "gaussian:sigma=3,size=21"),
    ],
)
def test_convolution_matches_reference(shape, spec):
    from scipy.signal import fftconvolve

    x = np.random.default_rng(1).random(shape)
    k = psf_kernels(spec, shape[-1])
    ref = fftconvolve(x, k[None], mode="same", axes=(1, 2))
    np.testing.assert_allclose(convolve(x, k), ref, atol=1e-12)


def test_gaussian_noise_has_the_asked_sigma():
    x = np.zeros((4, 64, 64, 2))
    y = add_noise(x, 0, seed=1, sigma=0.5)
    assert y.std() == pytest.approx(0.5, rel=0.02)
    assert abs(y.mean()) < 0.01


def test_poisson_noise_variance():
    x = np.full((4, 64, 64, 1), 10.0)
    y = add_noise(x, 0, seed=2, gain=2.0)
    assert y.var() == pytest.approx(10.0 / 2.0, rel=0.05)
    assert y.mean() == pytest.approx(10.0, abs=0.05)
    neg = add_noise(np.full((1, 8, 8, 1), -3.0), 0, seed=2, gain=2.0)
    np.testing.assert_array_equal(neg, -3.0)  # no variance where the value is negative


def test_noise_depends_on_seed_and_row_only():
    x = np.zeros((6, 8, 8, 1))
    whole = add_noise(x, 0, seed=5, sigma=1.0)
    np.testing.assert_array_equal(add_noise(x[3:], 3, seed=5, sigma=1.0), whole[3:])
    assert not np.allclose(add_noise(x, 0, seed=6, sigma=1.0), whole)


def test_degrader_refuses_nan_and_takes_negative_seeds():
    x = np.zeros((3, 4, 4, 1))
    x[2, 1, 1, 0] = np.nan
    with pytest.raises(GalError, match="image 12 has NaN"):
        Degrader(1, noise=1.0)(x, offset=10)
    a = Degrader(1, noise=1.0, seed=-1)(x[:2])
    np.testing.assert_array_equal(a, Degrader(1, noise=1.0, seed=-1)(x[:2]))


def test_reduce_resolution_keeps_grid_and_flux():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 8, 8, 2))
    y = reduce_resolution(x, 2)
    assert y.shape == x.shape
    np.testing.assert_allclose(y.sum(axis=(1, 2)), x.sum(axis=(1, 2)))
    np.testing.assert_allclose(y[:, 0, 0], x[:, :2, :2].mean(axis=(1, 2)))
    np.testing.assert_array_equal(y[:, 0, 0], y[:, 1, 1])
    odd = reduce_resolution(rng.normal(size=(1, 7, 9, 1)), 2)
    assert odd.shape == (1, 7, 9, 1)


def test_degrader_chain_and_description():
    d = Degrader(2, "gaussian:sigma=1", noise=0.0, factor=2)
    x = point_sources(1, 16)
    y = d(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y.sum(), x.sum(), rtol=1e-5)
    desc = d.describe((16, 16, 2))
    assert "replicated back onto the original grid" in desc["images"]
    assert "effective 8×8" in desc["images"]


# ----------------------------------------------------------------------------------- CLI


def write_points(path, n=5, size=32):
    x = point_sources(n, size, 3).astype(np.float32)
    batch = {
        "images": x,
        "ids": np.array([f"g{i}" for i in range(n)]),
        "kind": np.arange(n) % 2,
        "targets": np.zeros_like(x),
    }
    write_galaxies(path, batch, new_meta(bands="gri", classes={"kind": ["a", "b"]}))
    return batch


def test_cli_degrade_writes_pairs(galprep, tmp_path):
    src = tmp_path / "in.h5"
    batch = write_points(src)
    out, rep = tmp_path / "pairs.npz", tmp_path / "rep.json"
    r = galprep(
        "degrade",
        src,
        "-o",
        out,
        "--psf",
        "moffat:fwhm=3,beta=3.5",
        "--noise",
        "0.1",
        "--downsample",
        "2",
        "--seed",
        "3",
        "--report",
        rep,
        "--chunk-size",
        "2",
    )
    assert r.code == 0, r.stderr
    assert "replicated back onto the original grid" in r.stderr
    data, meta = read_galaxies(out)
    np.testing.assert_array_equal(data["targets"], batch["images"])
    assert data["images"].shape == batch["images"].shape
    np.testing.assert_array_equal(data["ids"], batch["ids"])
    np.testing.assert_array_equal(data["kind"], batch["kind"])
    assert meta["classes"] == {"kind": ["a", "b"]}
    assert meta["history"][-1]["tool"] == "degrade"
    # flux is kept up to the noise: 32×32 pixels of σ=0.1 → σ(sum) = 3.2
    np.testing.assert_allclose(data["images"].sum(axis=(1, 2)), 100.0, atol=5 * 3.2)
    report = json.loads(rep.read_text())
    assert report["downsample"] == 2 and report["n"] == 5 and report["dropped_input_targets"]
    assert meta["degradation"]["psf"] == "moffat:fwhm=3,beta=3.5"

    # same seed → same images, whatever the chunk size; other seed → other noise
    again = tmp_path / "again.npz"
    assert (
        galprep(
            "degrade",
            src,
            "-o",
            again,
            "--psf",
            "moffat:fwhm=3,beta=3.5",
            "--noise",
            "0.1",
            "--downsample",
            "2",
            "--seed",
            "3",
        ).code
        == 0
    )
    np.testing.assert_array_equal(read_galaxies(again)[0]["images"], data["images"])
    other = tmp_path / "other.npz"
    assert galprep("degrade", src, "-o", other, "--noise", "0.1", "--seed", "4").code == 0
    assert not np.allclose(read_galaxies(other)[0]["images"], data["images"])


def test_cli_degrade_shards_match_whole(galprep, tmp_path):
    src = tmp_path / "in.h5"
    write_points(src, n=6, size=8)
    whole = tmp_path / "whole.h5"
    assert galprep("degrade", src, "-o", whole, "--noise", "1").code == 0
    parts = []
    for k in range(2):
        r = galprep("degrade", src, "-o", tmp_path / "part.h5", "--noise", "1", "--shard", f"{k}/2")
        assert r.code == 0, r.stderr
        parts.append(read_galaxies(tmp_path / f"part.shard{k:03d}-of-002.h5")[0]["images"])
    np.testing.assert_array_equal(np.concatenate(parts), read_galaxies(whole)[0]["images"])
    r = galprep("degrade", src, "-o", tmp_path / "part.h5", "--noise", "1", "--shard", "0/2")
    assert r.code == 0 and "exists, skipped" in r.stderr


def test_cli_degrade_stdin_stdout(galprep, tmp_path):
    src = tmp_path / "in.npz"
    write_points(src, n=2, size=8)
    r = galprep("degrade", "-", "-o", "-", "--noise", "0.5", input=src.read_bytes())
    assert r.code == 0, r.stderr
    out = tmp_path / "piped.npz"
    out.write_bytes(r.stdout)
    assert read_galaxies(out)[0]["images"].shape == (2, 8, 8, 3)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--psf", "gaussian:sigma=x"], "not a number"),
        (["--psf", "blob"], "unknown kind"),
        ([], "nothing to do"),
    ],
)
def test_cli_degrade_bad_input(galprep, tmp_path, args, words):
    src = tmp_path / "in.h5"
    write_points(src, n=2, size=8)
    out = tmp_path / "out.h5"
    r = galprep("degrade", src, "-o", out, "--report", tmp_path / "r.json", *args)
    assert r.code == 1
    assert words in r.stderr and r.stderr.count("\n") == 1
    assert r.stderr.startswith("galprep degrade: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5"]


def test_cli_degrade_refuses_to_overwrite(galprep, tmp_path):
    src = tmp_path / "in.h5"
    write_points(src, n=2, size=8)
    out = tmp_path / "out.h5"
    out.write_bytes(b"keep")
    r = galprep("degrade", src, "-o", out, "--noise", "1")
    assert r.code == 1 and "--overwrite" in r.stderr
    assert out.read_bytes() == b"keep"
    bad = galprep("degrade", src, "-o", tmp_path / "o2.h5", "--psf", "gaussian:sigma=1/2")
    assert bad.code == 1 and "2 values of sigma for 3 bands" in bad.stderr
