"""Power spectra of galaxy stamps, batched.

Per image and band: the 2-D power ``|FFT|² / (H·W)`` (shown fftshifted, zero frequency at
(H//2, W//2)) and its azimuthal average over integer radii ``round(sqrt(ky² + kx²))`` of the
shifted array (``--power-def galtools``, the default).  ``--power-def holzschuh2022`` is the
published definition of Holzschuh et al. (2022) instead: see :mod:`galtools.metrics.raps`.
A chunk is transformed with one ``rfft2`` and binned with one matrix product
over the half plane (Hermitian symmetry: columns 0 < kx < W/2 count twice).
"""

import numpy as np

from galtools.errors import GalError
from galtools.metrics import BAND
from galtools.params import Option

DEFINITIONS = ("galtools", "holzschuh2022")
GALTOOLS_DEFINITION = (
    "galtools: power |rfft2|²/(H·W) averaged in rings round(r); W1 of log10 power per radius"
)
POWER_DEF = Option(
    "power_def",
    "Power spectrum definition: galtools (power |F|² in rings round(r), W1 at every radius) "
    "or holzschuh2022 (the paper's amplitude |F| in rings floor(r), modes 0–14, W1 of "
    "histograms on [-5, 4]).",
    kind="choice",
    choices=DEFINITIONS,
    default="galtools",
)


def radial_bins(h, w):
    """(R, binning matrix (H·(W//2+1), R)) averaging the rfft half plane per integer radius."""
    ky = np.fft.fftfreq(h) * h
    kx = np.arange(w // 2 + 1, dtype=np.float64)
    radius = np.rint(np.hypot(ky[:, None], kx[None, :])).astype(int)
    weight = np.full(kx.shape, 2.0)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    weight = np.broadcast_to(weight, radius.shape)
    nbins = int(radius.max()) + 1
    counts = np.bincount(radius.ravel(), weight.ravel(), minlength=nbins)
    matrix = np.zeros((radius.size, nbins))
    matrix[np.arange(radius.size), radius.ravel()] = weight.ravel()
    matrix /= np.where(counts > 0, counts, 1)[None, :]
    return nbins, matrix


class PowerSpectra:
    """Batched power spectra for images of one size; ``__call__`` returns N×C×R 1-D spectra."""

    def __init__(self, h, w):
        self.h, self.w = h, w
        self.nbins, self._matrix = radial_bins(h, w)
        self._matrix32 = self._matrix.astype(np.float32)

    def half_power(self, images):
        """|rfft2|² / (H·W) of N×H×W×C images: N×C×H×(W//2+1) (float32)."""
        import scipy.fft

        x = np.moveaxis(np.asarray(images, dtype=np.float32), -1, 1)
        f = scipy.fft.rfft2(x, workers=-1)
        p = f.real * f.real
        p += f.imag * f.imag
        p *= np.float32(1.0 / (self.h * self.w))
        return p

    def radial(self, half):
        n, c = half.shape[:2]
        return (half.reshape(n * c, -1) @ self._matrix32).reshape(n, c, self.nbins)

    def __call__(self, images):
        return self.radial(self.half_power(images))

    def full(self, half):
        """The full shifted 2-D spectrum (…×H×W) from a half-plane one (…×H×(W//2+1))."""
        h, w = self.h, self.w
        out = np.zeros(half.shape[:-1] + (w,), half.dtype)
        out[..., : w // 2 + 1] = half
        cols = np.arange(w // 2 + 1, w)
        rows = (-np.arange(h)) % h
        out[..., cols] = half[..., rows, :][..., (w - cols)]
        return np.fft.fftshift(out, axes=(-2, -1))


def power_spectra(images):
    """1-D azimuthally averaged power spectra (N×C×R) of N×H×W×C images."""
    images = np.asarray(images)
    return PowerSpectra(*images.shape[1:3])(images)


class PowerAccumulator:
    """Collects 1-D spectra per image and the running 2-D mean over chunks of one set."""

    def __init__(self, settings):
        self.bands = settings.get("bands")
        self.definition = settings.get("power_def") or "galtools"
        if self.definition not in DEFINITIONS:
            raise GalError(f"--power-def must be one of {', '.join(DEFINITIONS)}")
        self.engine = None
        self.spectra = []
        self.sum2d = None
        self.n = 0
        self.skipped = 0

    def add(self, images):
        images = np.asarray(images)
        finite = np.isfinite(images.reshape(len(images), -1)).all(axis=1)
        self.skipped += int((~finite).sum())
        images = images[finite]
        if len(images) == 0:
            return
        if self.engine is None:
            if self.definition == "holzschuh2022":
                from galtools.metrics.raps import RingProfile

                self.engine = RingProfile(*images.shape[1:3])
            else:
                self.engine = PowerSpectra(*images.shape[1:3])
        if self.definition == "holzschuh2022":
            plane = self.engine.amplitude(images)  # the full shifted plane
        else:
            plane = self.engine.half_power(images)  # the rfft half plane
        self.spectra.append(self.engine.radial(plane))
        s = plane.astype(np.float64).sum(axis=0)
        self.sum2d = s if self.sum2d is None else self.sum2d + s
        self.n += len(images)

    def result(self):
        if self.n == 0:
            raise GalError("no finite images for the power spectrum")
        spectra = np.concatenate(self.spectra)
        mean2d = self.sum2d / self.n
        return {
            "definition": self.definition,
            "spectra": spectra,
            "mean2d": mean2d if self.definition == "holzschuh2022" else self.engine.full(mean2d),
            "shape": (self.engine.h, self.engine.w),
            "skipped_nonfinite": self.skipped,
        }


def _log(p):
    return np.log10(np.maximum(p, np.finfo(np.float32).tiny))


class Power:
    """``galtools.metrics`` entry: per-radius power spectra and their Wasserstein distances."""

    name = "power"
    kind = "images"
    title = "Azimuthally averaged power spectra"
    options = (BAND, POWER_DEF)  # BAND: one band (settings["band_index"]) instead of all

    def accumulator(self, settings):
        return PowerAccumulator(settings)

    def table(self, res, bands):
        """Per-image columns for a one-sided table: power_<band> (N×R)."""
        return {f"power_{b}": res["spectra"][:, k] for k, b in enumerate(bands)}

    def summary(self, res, bands):
        from galtools.metrics.distances import spread

        if res.get("definition") == "holzschuh2022":
            from galtools.metrics import raps

            return {
                "definition": raps.DEFINITION,
                "n": int(len(res["spectra"])),
                "skipped_nonfinite": res["skipped_nonfinite"],
                "bands": {band: raps.summary(res["spectra"][:, k]) for k, band in enumerate(bands)},
            }
        out = {
            "definition": GALTOOLS_DEFINITION,
            "n": int(len(res["spectra"])),
            "skipped_nonfinite": res["skipped_nonfinite"],
            "radius": list(range(res["spectra"].shape[-1])),
            "bands": {},
        }
        for k, band in enumerate(bands):
            p = res["spectra"][:, k]
            s = spread(_log(p))
            out["bands"][band] = {
                "mean": p.mean(axis=0).tolist(),
                "log10_mean": s["mean"].tolist(),
                "log10_std": s["std"].tolist(),
                "log10_p16": s["p16"].tolist(),
                "log10_p84": s["p84"].tolist(),
            }
        return out

    def compare(self, a, b, settings, bands):
        from galtools.metrics.distances import wasserstein_columns

        if a["shape"] != b["shape"]:
            raise GalError(
                f"power spectra compare images of one size, got {a['shape'][0]}×{a['shape'][1]}"
                f" and {b['shape'][0]}×{b['shape'][1]} (resize one set first)"
            )
        if a.get("definition") == "holzschuh2022":
            from galtools.metrics import raps

            out = {"definition": raps.DEFINITION, "bands": {}}
            for k, band in enumerate(bands):
                table = raps.compare(a["spectra"][:, k], b["spectra"][:, k])
                table["definition"] = raps.DEFINITION
                out["bands"][band] = table
            out["mean_wasserstein"] = float(
                np.mean([v["avg_w_dist"] for v in out["bands"].values()])
            )
            return out
        out = {
            "definition": GALTOOLS_DEFINITION,
            "distance": "1-D Wasserstein of log10 power per radius",
            "bands": {},
        }
        for k, band in enumerate(bands):
            w = wasserstein_columns(_log(a["spectra"][:, k]), _log(b["spectra"][:, k]))
            out["bands"][band] = {"wasserstein": w.tolist(), "mean_wasserstein": float(w.mean())}
        out["mean_wasserstein"] = float(
            np.mean([v["mean_wasserstein"] for v in out["bands"].values()])
        )
        return out

    def plot(self, results, names, bands, directory):
        from galtools.metrics.plots import power_plots

        return power_plots(results, names, bands, directory)
