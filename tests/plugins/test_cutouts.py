"""galprep cutouts (plugin galtools-cutouts): detection, labels, star flags, HDF."""

import numpy as np
import pytest

pytest.importorskip("photutils")

from galtools.arrayfile import read_galaxies  # noqa: E402

# (x, y, flux, sigma_major, sigma_minor, angle in degrees): galaxies, then two stars
SOURCES = [
    (60.3, 50.2, 9000, 5.0, 2.0, 30.0),
    (150.6, 70.1, 7000, 4.0, 3.0, 120.0),
    (90.2, 150.7, 8000, 6.0, 2.5, 75.0),
    (170.4, 160.3, 6000, 4.5, 4.0, 0.0),
]
STARS = [(120.5, 110.5, 5000), (40.2, 170.6, 4000)]
PSF_SIGMA = 1.2


def _field(size=210, seed=0):
    """A 2-D field of elliptical Gaussian galaxies and two PSF-sized stars with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    img = np.full((size, size), 10.0)
    for x, y, flux, a, b, ang in SOURCES:
        a, b = np.hypot(a, PSF_SIGMA), np.hypot(b, PSF_SIGMA)
        t = np.radians(ang)
        u = (xx - x) * np.cos(t) + (yy - y) * np.sin(t)
        v = -(xx - x) * np.sin(t) + (yy - y) * np.cos(t)
        img += flux / (2 * np.pi * a * b) * np.exp(-0.5 * ((u / a) ** 2 + (v / b) ** 2))
    for x, y, flux in STARS:
        r2 = (xx - x) ** 2 + (yy - y) ** 2
        img += flux / (2 * np.pi * PSF_SIGMA**2) * np.exp(-0.5 * r2 / PSF_SIGMA**2)
    return (img + rng.normal(0, 1.0, img.shape)).astype(np.float32)


@pytest.fixture
def field_fits(tmp_path):
    from astropy.io import fits

    header = fits.Header(
        {
            "CTYPE1": "RA---TAN",
            "CTYPE2": "DEC--TAN",
            "CDELT1": -0.1 / 3600,
            "CDELT2": 0.1 / 3600,
            "CRPIX1": 100,
            "CRPIX2": 100,
            "CRVAL1": 53.1,
            "CRVAL2": -27.8,
            "FILTER": "F814W",
        }
    )
    path = tmp_path / "field.fits"
    fits.PrimaryHDU(_field(), header=header).writeto(path)
    return path


def _match(batch, x, y):
    d = np.hypot(batch["x"] - x, batch["y"] - y)
    return int(np.argmin(d)), float(d.min())


def test_cutouts_find_every_source_with_labels(galprep, tmp_path, field_fits):
    out = tmp_path / "stamps.h5"
    r = galprep("cutouts", field_fits, "-o", out, "--size", "32", "--nsigma", "3")
    assert r.code == 0, r.stderr
    assert "6 sources detected, 6 stamps" in r.stderr
    batch, meta = read_galaxies(out)
    assert batch["images"].shape == (6, 32, 32, 1) and batch["images"].dtype == np.float32
    assert meta["bands"] == ["F814W"] and meta["pixel_scale"] == pytest.approx(0.1)
    assert meta["classes"]["is_star"] == ["no", "yes"]
    for x, y, flux, a, b, ang in SOURCES:
        k, dist = _match(batch, x, y)
        assert dist < 0.5
        assert batch["is_star"][k] == 0
        e_true = 1 - np.hypot(b, PSF_SIGMA) / np.hypot(a, PSF_SIGMA)
        assert batch["ellipticity"][k] == pytest.approx(e_true, abs=0.08)
        if e_true > 0.2:
            diff = abs(batch["orientation"][k] - ang) % 180
            assert min(diff, 180 - diff) < 8
        assert batch["flux"][k] == pytest.approx(flux, rel=0.15)
        stamp = batch["images"][k, ..., 0]
        assert np.unravel_index(np.argmax(stamp), stamp.shape) in {
            (15, 15),
            (15, 16),
            (16, 15),
            (16, 16),
        }
    for x, y, _ in STARS:
        k, dist = _match(batch, x, y)
        assert dist < 0.5 and batch["is_star"][k] == 1
    assert np.all(batch["inside"] == 1)


def test_cutouts_exclude_stars_and_keep_edge(galprep, tmp_path, field_fits):
    from PIL import Image

    r = galprep(
        "cutouts",
        field_fits,
        "-o",
        tmp_path / "g.h5",
        "--size",
        "32",
        "--nsigma",
        "3",
        "--exclude-stars",
        "--preview",
        tmp_path / "p.png",
    )
    assert r.code == 0, r.stderr
    batch, _ = read_galaxies(tmp_path / "g.h5")
    assert len(batch["images"]) == 4 and np.all(batch["is_star"] == 0)
    with Image.open(tmp_path / "p.png") as im:
        pixels = np.asarray(im.convert("RGB")).astype(int)
    assert pixels.shape == (210, 210, 3)
    green = (pixels[..., 1] > 200) & (pixels[..., 0] < 30)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60)
    assert green.sum() > 50 and red.sum() > 20  # circles on 4 galaxies and 2 dropped stars
    # 110-pixel stamps: only sources ≥ 55 px from every edge fit entirely
    r = galprep("cutouts", field_fits, "-o", tmp_path / "e.h5", "--size", "110", "--nsigma", "3")
    assert r.code == 0, r.stderr
    n_inside = len(read_galaxies(tmp_path / "e.h5")[0]["images"])
    r = galprep(
        "cutouts",
        field_fits,
        "-o",
        tmp_path / "k.h5",
        "--size",
        "110",
        "--nsigma",
        "3",
        "--keep-edge",
    )
    kept, _ = read_galaxies(tmp_path / "k.h5")
    assert len(kept["images"]) == 6 > n_inside
    assert np.any(kept["inside"] < 1) and np.all(kept["inside"] > 0)


def test_cutouts_png_input(galprep, tmp_path):
    from PIL import Image

    img = _field()
    png = tmp_path / "field.png"
    Image.fromarray(np.clip(img * 4, 0, 255).astype(np.uint8)).save(png)
    r = galprep("cutouts", png, "-o", tmp_path / "p.h5", "--size", "32", "--nsigma", "3")
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(tmp_path / "p.h5")
    assert meta["bands"] == ["L"] and meta["pixel_scale"] is None
    for x, y, *_ in SOURCES:
        assert _match(batch, x, y)[1] < 0.7


def test_cutouts_hubble_deep_field_offline(galprep, tmp_path):
    out = tmp_path / "hdf.h5"
    r = galprep("cutouts", "--hubble-deep-field", "--exclude-stars", "-o", out)
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(out)
    assert 150 <= len(batch["images"]) <= 500
    assert batch["images"].shape[1:] == (64, 64, 3) and meta["bands"] == ["R", "G", "B"]
    assert meta["history"][-1]["tool"] == "cutouts"
    assert np.all(batch["is_star"] == 0) and len(set(batch["ids"])) == len(batch["ids"])
    # stamps are centred on their sources: the mean stamp peaks in the middle
    mean = batch["images"].sum(axis=-1).mean(axis=0)
    peak = np.unravel_index(np.argmax(mean), mean.shape)
    assert abs(peak[0] - 32) <= 1 and abs(peak[1] - 32) <= 1


def test_cutouts_errors(galprep, tmp_path, field_fits):
    r = galprep("cutouts", "-o", tmp_path / "x.h5")
    assert r.code == 2 and "IMAGE or --hubble-deep-field" in r.stderr
    r = galprep("cutouts", field_fits, "--hubble-deep-field", "-o", tmp_path / "x.h5")
    assert r.code == 2
    (tmp_path / "notes.txt").write_text("hello")
    r = galprep("cutouts", tmp_path / "notes.txt", "-o", tmp_path / "x.h5")
    assert r.code == 1 and "unknown image type" in r.stderr
    (tmp_path / "bad.fits").write_bytes(b"SIMPLE  = nonsense")
    r = galprep("cutouts", tmp_path / "bad.fits", "-o", tmp_path / "x.h5")
    assert r.code == 1 and "bad.fits" in r.stderr
    r = galprep("cutouts", field_fits, "--size", "400", "-o", tmp_path / "x.h5")
    assert r.code == 1 and "smaller than one 400-pixel stamp" in r.stderr
    assert not (tmp_path / "x.h5").exists()


def test_cutouts_fits_cube_is_multiband(galprep, tmp_path):
    from astropy.io import fits

    field = _field()
    cube = np.stack([field, 0.5 * field, 2 * field])  # FITS order: bands × rows × columns
    fits.PrimaryHDU(cube).writeto(tmp_path / "cube.fits")
    r = galprep(
        "cutouts", tmp_path / "cube.fits", "-o", tmp_path / "c.h5", "--size", "32", "--nsigma", "3"
    )
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(tmp_path / "c.h5")
    assert batch["images"].shape[1:] == (32, 32, 3) and meta["bands"] == ["0", "1", "2"]
    k, dist = _match(batch, *SOURCES[0][:2])
    assert dist < 0.5
    np.testing.assert_allclose(
        batch["images"][k, ..., 2], 2 * batch["images"][k, ..., 0], rtol=1e-3, atol=0.05
    )
