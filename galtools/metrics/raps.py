"""The radially averaged power spectrum of Holzschuh et al. (2022), exactly as published.

Their ``channel_to_power_spectra`` takes the *amplitude* ``|fftshift(fft2(x))| / (H·W)`` and
averages it in rings of ``floor(sqrt((x - W/2)² + (y - H/2)²))`` (corners included); their
summary (``get_powerspectrum_dataframe``) takes, for each of the modes 0–14 (ring k), the
log10 amplitudes of all images, their mean and standard deviation, and the 1-D Wasserstein
distance between the two sets' histograms of log10 amplitude on 999 bins over [-5, 4] (values
outside are dropped, as ``np.histogram`` does), plus the average over modes.

galtools' own definition (:mod:`galtools.metrics.power`: power ``|F|²/(H·W)`` in rings of
``round(r)``, distances on every radius) is the default of ``galprep metrics``;
``--power-def holzschuh2022`` selects this one.
"""

import numpy as np

MODES = 15  # ring indices 0..14 of the paper's table
HIST_EDGES = np.linspace(-5, 4, 1000)
DEFINITION = (
    "holzschuh2022: amplitude |fftshift(fft2(x))|/(H·W) averaged in rings floor(r) about "
    "(W/2, H/2); per mode k = 0..14: log10 amplitude, W1 between histograms on 999 bins over "
    "[-5, 4]"
)


class RingProfile:
    """Batched ring averages of the amplitude spectrum for images of one size."""

    def __init__(self, h, w):
        self.h, self.w = h, w
        y, x = np.indices((h, w))
        r = np.sqrt((x - w / 2) ** 2 + (y - h / 2) ** 2).astype(np.int32)
        self.nbins = int(r.max()) + 1
        counts = np.bincount(r.ravel(), minlength=self.nbins).astype(np.float64)
        matrix = np.zeros((h * w, self.nbins))
        matrix[np.arange(h * w), r.ravel()] = 1.0
        self._matrix = matrix / np.where(counts > 0, counts, 1)[None, :]

    def amplitude(self, images):
        """|fftshift(fft2)| / (H·W) of N×H×W×C images: N×C×H×W (float64)."""
        import scipy.fft

        x = np.moveaxis(np.asarray(images, dtype=np.float64), -1, 1)
        amp = np.abs(scipy.fft.fftshift(scipy.fft.fft2(x, workers=-1), axes=(-2, -1)))
        amp /= self.h * self.w
        return amp

    def radial(self, amp):
        n, c = amp.shape[:2]
        return (amp.reshape(n * c, -1) @ self._matrix).reshape(n, c, self.nbins)

    def __call__(self, images):
        """N×C×R ring-averaged amplitudes of N×H×W×C images (float64)."""
        return self.radial(self.amplitude(images))


def ring_profiles(images):
    """The paper's per-image spectra (N×C×R) of N×H×W×C images."""
    images = np.asarray(images)
    return RingProfile(*images.shape[1:3])(images)


def _log10(values):
    with np.errstate(divide="ignore"):
        return np.log10(values)


def histogram_w1(a, b):
    """W1 between the histograms of ``a`` and ``b`` on the paper's grid (normalised counts)."""
    ha = np.histogram(a, bins=HIST_EDGES)[0].astype(np.float64)
    hb = np.histogram(b, bins=HIST_EDGES)[0].astype(np.float64)
    if ha.sum() == 0 or hb.sum() == 0:
        return float("nan")
    cdf = np.cumsum(ha / ha.sum() - hb / hb.sum())
    return float(np.abs(cdf[:-1]).sum() * (HIST_EDGES[1] - HIST_EDGES[0]))


def summary(spectra):
    """Per mode: mean and (population) standard deviation of log10 amplitude, one set (N×R)."""
    k = min(MODES, spectra.shape[-1])
    logs = _log10(spectra[:, :k])
    return {"mean": logs.mean(axis=0).tolist(), "std": logs.std(axis=0).tolist()}


def compare(a, b):
    """The paper's table for two sets of spectra of one band (N×R each)."""
    k = min(MODES, a.shape[-1], b.shape[-1])
    la, lb = _log10(a[:, :k]), _log10(b[:, :k])
    w = [histogram_w1(la[:, m], lb[:, m]) for m in range(k)]
    return {
        "modes": list(range(k)),
        "w_dist": w,
        "mean_a": la.mean(axis=0).tolist(),
        "std_a": la.std(axis=0).tolist(),
        "mean_b": lb.mean(axis=0).tolist(),
        "std_b": lb.std(axis=0).tolist(),
        "avg_w_dist": float(np.mean(w)),
    }
