"""Holzschuh et al. (2022), galaxies-metrics-denoising: the published power-spectrum metric.

A direct numpy transcription of their ``radial_profile`` / ``channel_to_power_spectra``
(metrics/radially_averaged_power_spectrum.py) and of ``get_powerspectrum_dataframe``
(notebooks/utils.py: log10 per mode 0..14, histograms on linspace(-5, 4, 1000), W1 by
``ot.emd_1d`` — here scipy's weighted ``wasserstein_distance``, the same quantity) is the
reference for ``--power-def holzschuh2022``.
"""

import numpy as np
from scipy.stats import wasserstein_distance

from galtools.metrics import raps


def paper_radial_profile(data, center):
    y, x = np.indices(data.shape)
    r = np.sqrt((x - center[0]) ** 2 + (y - center[1]) ** 2)
    r = r.astype(np.int32)
    tbin = np.bincount(r.ravel(), data.ravel())
    nr = np.bincount(r.ravel())
    return tbin / nr


def paper_channel_to_power_spectra(channel):
    dim = channel.shape[0]
    shifted = np.fft.fftshift(np.fft.fft2(channel))
    return paper_radial_profile(abs(shifted / (dim * dim)), (dim / 2, dim / 2))


def paper_table(spectra_source, spectra_target):
    bins = np.linspace(-5, 4, 1000)
    mids = bins[:999] + bins[1] - bins[0]
    w, mean_s, std_s = [], [], []
    for mode in range(15):
        ls = np.log10(np.array([p[mode] for p in spectra_source]))
        lt = np.log10(np.array([p[mode] for p in spectra_target]))
        mean_s.append(ls.mean())
        std_s.append(np.sqrt(ls.var()))
        a1 = np.histogram(ls, bins=bins)[0]
        a2 = np.histogram(lt, bins=bins)[0]
        w.append(wasserstein_distance(mids, mids, a1 / a1.sum(), a2 / a2.sum()))
    return np.array(w), np.array(mean_s), np.array(std_s)


def blobs(n, size, seed, width):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size / 2
    out = []
    for _ in range(n):
        s = width * rng.uniform(0.7, 1.3)
        img = np.exp(-(x**2 + y**2) / (2 * s**2)) + 0.02 * rng.normal(size=(size, size))
        out.append(img)
    return np.array(out)[..., None]


def test_spectra_match_the_paper_transcription():
    images = blobs(6, 32, 0, 3.0)
    ours = raps.ring_profiles(images)[:, 0]
    for k in range(len(images)):
        ref = paper_channel_to_power_spectra(images[k, ..., 0])
        assert ours.shape[-1] == len(ref)
        np.testing.assert_allclose(ours[k], ref, rtol=1e-6, atol=1e-12)


def test_table_matches_the_paper_transcription():
    a, b = blobs(60, 32, 1, 3.0), blobs(50, 32, 2, 4.5)
    sa, sb = raps.ring_profiles(a)[:, 0], raps.ring_profiles(b)[:, 0]
    ours = raps.compare(sa, sb)
    w, mean_s, std_s = paper_table(list(sa), list(sb))
    np.testing.assert_allclose(ours["w_dist"], w, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours["mean_a"], mean_s, rtol=1e-6)
    np.testing.assert_allclose(ours["std_a"], std_s, rtol=1e-6)
    assert abs(ours["avg_w_dist"] - w.mean()) < 1e-6
    assert ours["avg_w_dist"] > 0.05  # the two sets differ in size: a real distance
    same = raps.compare(sa, sa)
    assert max(same["w_dist"]) == 0.0


def paper_fid_input(data, size=256):
    """H5PyIterator(resize_transform=256) + tile + toRGB (metric_utils.py), per image: uint8."""
    import matplotlib
    from skimage.transform import resize

    data = resize(data, (size, size))
    if data.shape[-1] == 1:
        data = np.tile(data, (1, 1, 3))
    img = data[..., 1]
    img = (img - np.min(img)) / (np.max(img) - np.min(img))
    rgb = matplotlib.colormaps["magma"](img)[:, :, :3]
    return (rgb * 255).astype(np.uint8)


def test_protocol_reproduces_the_papers_network_input():
    """Within one grey level, on one-band (two of the paper's three sets) and 3-band files,
    up- and down-sampled."""
    from galtools.features import protocol

    p = protocol.parse("holzschuh2022")
    rng = np.random.default_rng(5)
    cases = [
        (blobs(3, 64, 7, 6.0).astype(np.float32), ["r"], 256),
        (np.concatenate([blobs(3, 40, s, 4.0) for s in (8, 9, 10)], -1), ["g", "r", "i"], 256),
        (blobs(2, 96, 11, 9.0) + rng.uniform(0, 0.01, (2, 96, 96, 1)), ["r"], 64),
    ]
    for images, bands, size in cases:
        proto = p if size == 256 else protocol.parse(f"holzschuh2022,size={size}")
        ours = np.rint(protocol.apply(proto, images, bands) * 255).astype(int)
        for k in range(len(images)):
            ref = paper_fid_input(np.asarray(images[k], np.float64), size).astype(int)
            diff = np.abs(ours[k] - ref)
            assert diff.max() <= 1, (bands, size, diff.max())
            assert diff.mean() < 0.05


def test_galprep_metrics_power_def_gives_the_papers_table(galprep, tmp_path):
    from galtools.arrayfile import write_galaxies

    a, b = blobs(40, 32, 1, 3.0), blobs(30, 32, 2, 4.5)
    write_galaxies(tmp_path / "a.h5", {"images": a.astype(np.float32)}, {"bands": ["r"]})
    write_galaxies(tmp_path / "b.h5", {"images": b.astype(np.float32)}, {"bands": ["r"]})
    out = tmp_path / "r.json"
    r = galprep(
        "metrics", tmp_path / "a.h5", tmp_path / "b.h5", "--power", "--power-def",
        "holzschuh2022", "-o", out,
    )  # fmt: skip
    assert r.code == 0, r.stderr
    import json

    power = json.loads(out.read_text())["metrics"]["power"]
    assert power["definition"].startswith("holzschuh2022")
    table = power["bands"]["r"]
    assert table["definition"] == power["definition"]  # next to every number
    ref, mean_s, _ = paper_table(
        list(paper_channel_to_power_spectra(x[..., 0].astype(np.float32)) for x in a),
        list(paper_channel_to_power_spectra(x[..., 0].astype(np.float32)) for x in b),
    )
    np.testing.assert_allclose(table["w_dist"], ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table["mean_a"], mean_s, rtol=1e-5)
    assert power["real"]["definition"] == power["definition"]
    # the default is galtools' own definition, and says so
    r = galprep(
        "metrics", tmp_path / "a.h5", tmp_path / "b.h5", "--power", "-o", out, "--overwrite"
    )
    assert r.code == 0
    assert json.loads(out.read_text())["metrics"]["power"]["definition"].startswith("galtools")
