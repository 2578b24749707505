"""galprep simulate (plugin galtools-galsim): rendering, labels, noise, determinism."""

import numpy as np
import pytest

galsim = pytest.importorskip("galsim")

from galtools_galsim.render import DISK, POINT, SERSIC, Renderer  # noqa: E402
from galtools_galsim.simulate import CHUNK, chunk_jobs  # noqa: E402

from galtools.arrayfile import open_galaxies, read_galaxies  # noqa: E402

ALL_KINDS = "disk:0.4,elliptical:0.15,merger:0.15,star:0.1,artifact:0.2"


@pytest.mark.parametrize("psf", ["moffat", "kolmogorov"])
def test_renderer_matches_galsim_drawimage(psf):
    """Fourier-space rendering agrees with GalSim's own drawImage to 5e-4 of the peak."""
    r = Renderer(32, 0.25, psf, 3.0, [1.5, 4.0])
    comps = {
        "obj": np.array([0, 0, 1]),
        "type": np.array([DISK, SERSIC, POINT]),
        "n": np.array([0, 4.0, 0]),
        "hlr": np.array([0.9, 0.3, 0]),
        "q": np.array([1, 0.6, 1]),
        "inclination": np.array([1.2, 0, 0]),
        "theta": np.array([0.7, 0.7, 0]),
        "dx": np.array([0.3, 0.3, -0.4]),
        "dy": np.array([-0.2, -0.2, 0.1]),
        "sed": np.array([[1000.0, 100], [400, 600], [50, 70]]),
    }
    out = r.draw(comps, [0.8, 1.1], 2)
    psfs = [
        galsim.Moffat(beta=3.0, fwhm=f) if psf == "moffat" else galsim.Kolmogorov(fwhm=f)
        for f in (0.8, 1.1)
    ]
    disk = galsim.InclinedExponential(1.2 * galsim.radians, half_light_radius=0.9)
    disk = disk.rotate(0.7 * galsim.radians)
    bulge = galsim.Sersic(4.0, half_light_radius=0.3).shear(q=0.6, beta=0.7 * galsim.radians)
    for band in range(2):
        gal = disk * comps["sed"][0, band] + bulge * comps["sed"][1, band]
        ref = (
            galsim.Convolve(gal, psfs[0])
            .drawImage(nx=32, ny=32, scale=0.25, offset=(0.3, -0.2))
            .array
        )
        assert np.abs(out[0, ..., band] - ref).max() < 5e-4 * ref.max()
        star = galsim.Convolve(galsim.DeltaFunction(flux=comps["sed"][2, band]), psfs[1])
        ref = star.drawImage(nx=32, ny=32, scale=0.25, offset=(-0.4, 0.1)).array
        assert np.abs(out[1, ..., band] - ref).max() < 5e-4 * ref.max()


def test_simulate_file_labels_and_metadata(galprep, tmp_path):
    out = tmp_path / "sim.h5"
    r = galprep(
        "simulate",
        "-n",
        "60",
        "--size",
        "32",
        "--bands",
        "gri",
        "--kinds",
        ALL_KINDS,
        "--targets",
        "--seed",
        "3",
        "-o",
        out,
        "-j",
        "1",
    )
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(out)
    assert batch["images"].shape == (60, 32, 32, 3) and batch["images"].dtype == np.float32
    assert batch["targets"].shape == batch["images"].shape
    assert meta["bands"] == ["g", "r", "i"] and meta["pixel_scale"] == 0.2
    assert meta["classes"]["kind"] == ["disk", "elliptical", "merger", "star", "artifact"]
    assert meta["history"][-1]["tool"] == "simulate"
    kinds = np.array(meta["classes"]["kind"])[batch["kind"]]
    assert set(kinds) == {"disk", "elliptical", "merger", "star", "artifact"}
    np.testing.assert_array_equal(
        batch["is_galaxy"], np.isin(kinds, ["disk", "elliptical", "merger"])
    )
    for name in (
        "inclination",
        "position_angle",
        "disk_hlr",
        "bulge_n",
        "bulge_fraction",
        "flux",
        "psf_fwhm",
        "snr",
        "x_offset",
        "y_offset",
        "artifact",
    ):
        assert name in batch, name
    disk = kinds == "disk"
    assert np.all((batch["inclination"][disk] >= 0) & (batch["inclination"][disk] <= 90))
    assert set(np.unique(batch["bulge_n"][disk])) <= {1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6}
    assert np.all(np.isnan(batch["inclination"][kinds == "star"]))
    assert np.all(np.isfinite(batch["merger_separation"][kinds == "merger"]))
    assert np.all(batch["artifact"][kinds != "artifact"] == 0)
    assert np.all(batch["artifact"][kinds == "artifact"] > 0)


def test_simulated_truth_is_consistent(galprep, tmp_path):
    """Fluxes, noise level and orientation in the pixels agree with the labels."""
    out = tmp_path / "d.h5"
    r = galprep(
        "simulate",
        "-n",
        "40",
        "--size",
        "48",
        "--bands",
        "r",
        "--disk-hlr",
        "0.5:0.8",
        "--bulge-fraction",
        "0:0",
        "--inclination",
        "70:85",
        "--sky",
        "100",
        "--read-noise",
        "5",
        "--flux",
        "2e4:5e4",
        "--targets",
        "--seed",
        "1",
        "-o",
        out,
    )
    assert r.code == 0, r.stderr
    b, _ = read_galaxies(out)
    t, img = b["targets"][..., 0].astype(np.float64), b["images"][..., 0].astype(np.float64)
    np.testing.assert_allclose(t.sum(axis=(1, 2)), b["flux"], rtol=0.02)
    pull = (img - t) / np.sqrt(100 + np.maximum(t, 0) + 25)
    assert abs(pull.std() - 1) < 0.03 and abs(pull.mean()) < 0.02
    snr = np.sqrt((t**2 / (100 + np.maximum(t, 0) + 25)).sum(axis=(1, 2)))
    np.testing.assert_allclose(b["snr"], snr, rtol=1e-3)
    yy, xx = np.mgrid[0:48, 0:48]
    for k in range(len(t)):
        w = t[k] / t[k].sum()
        cx, cy = (w * xx).sum(), (w * yy).sum()
        assert cx - 23.5 == pytest.approx(b["x_offset"][k], abs=0.02)
        assert cy - 23.5 == pytest.approx(b["y_offset"][k], abs=0.02)
        ixx, iyy = (w * (xx - cx) ** 2).sum(), (w * (yy - cy) ** 2).sum()
        ixy = (w * (xx - cx) * (yy - cy)).sum()
        angle = np.degrees(0.5 * np.arctan2(2 * ixy, ixx - iyy)) % 180
        diff = abs(angle - b["position_angle"][k]) % 180
        assert min(diff, 180 - diff) < 3


def test_same_output_for_any_jobs_and_shards_concatenate(galprep, tmp_path):
    n = CHUNK + 20
    common = ["-n", n, "--size", "16", "--bands", "g", "--kinds", ALL_KINDS, "--seed", "7"]
    assert galprep("simulate", *common, "-j", "1", "-o", tmp_path / "a.h5").code == 0
    assert galprep("simulate", *common, "-j", "2", "-o", tmp_path / "b.h5").code == 0
    a, _ = read_galaxies(tmp_path / "a.h5")
    b, _ = read_galaxies(tmp_path / "b.h5")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    for k in range(3):
        r = galprep("simulate", *common, "--shard", f"{k}/3", "-o", tmp_path / "s.h5")
        assert r.code == 0, r.stderr
    parts = [read_galaxies(tmp_path / f"s.shard{k:03d}-of-003.h5")[0] for k in range(3)]
    for key in a:
        np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), a[key])
    r = galprep("simulate", *common, "--shard", "0/3", "-o", tmp_path / "s.h5")
    assert r.code == 0 and "exists, skipped" in r.stderr
    c = galprep("simulate", *common[:-1], "8", "-o", tmp_path / "c.h5")
    assert c.code == 0
    with open_galaxies(tmp_path / "c.h5") as reader:
        assert not np.array_equal(reader.read(0, 5)["images"], a["images"][:5])


def test_chunk_jobs_cover_rows_exactly():
    jobs = chunk_jobs(100, 100 + 2 * CHUNK + 5)
    rows = sum(hi - lo for _, lo, hi in jobs)
    assert rows == 2 * CHUNK + 5 and jobs[0] == (0, 100, CHUNK)
    assert chunk_jobs(5, 5) == []


def test_simulate_bad_options(galprep, tmp_path):
    r = galprep("simulate", "-n", "4", "--kinds", "disk,spiral", "-o", tmp_path / "x.h5")
    assert r.code == 1 and "unknown kind 'spiral'" in r.stderr
    r = galprep("simulate", "-n", "4", "--inclination", "10", "-o", tmp_path / "x.h5")
    assert r.code == 2 and "LO:HI" in r.stderr
    r = galprep("simulate", "-n", "4", "--sersic-n", "1,9", "-o", tmp_path / "x.h5")
    assert r.code == 1 and "Sérsic indices" in r.stderr
    assert not (tmp_path / "x.h5").exists()
    (tmp_path / "x.h5").write_bytes(b"old")
    r = galprep("simulate", "-n", "4", "--size", "16", "-o", tmp_path / "x.h5")
    assert r.code == 1 and "output exists" in r.stderr


def test_simulate_low_sky_uses_poisson_and_stdout(galprep):
    r = galprep(
        "simulate",
        "-n",
        "3",
        "--size",
        "16",
        "--bands",
        "gr",
        "--sky",
        "2",
        "--read-noise",
        "0",
        "--flux",
        "10:20",
        "--targets",
        "-o",
        "-",
    )
    assert r.code == 0, r.stderr
    import io

    with np.load(io.BytesIO(r.stdout), allow_pickle=False) as z:
        diff = z["images"] + 2 - z["targets"]  # counts minus expectation + sky
        counts = z["images"] + 2
        np.testing.assert_allclose(counts, np.round(counts), atol=1e-4)  # integer counts
        assert z["images"].shape == (3, 16, 16, 2) and np.isfinite(diff).all()
