"""Degrading galaxy images into (degraded, clean) training pairs for denoisers.

The chain, applied per image: PSF convolution (Gaussian or Moffat, a 41×41 kernel per band,
normalised to unit sum; pixels outside the stamp count as zero background) → block-averaging
by ``downsample`` K and replication back onto the original grid (so ``images`` keeps the shape of
``targets``, as the array format requires) → Poisson noise (``gain``: counts per image unit) →
Gaussian noise of σ ``noise`` (image units).  Noise is drawn from a generator seeded by
``(seed, row)``, so the result does not depend on chunk size or sharding.
"""

import math

import numpy as np

from galtools.errors import GalError

KERNEL_SIZE = 41
PSF_PARAMS = {"gaussian": ("sigma", "fwhm", "size"), "moffat": ("fwhm", "beta", "alpha", "size")}
GAUSS_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))


# ----------------------------------------------------------------------------------- PSF


def parse_psf(spec):
    """'gaussian:sigma=2' / 'moffat:fwhm=3,beta=3.5' → (kind, {param: [values]}).

    A value may be one number for every band or one per band separated by '/'
    ('gaussian:sigma=1.2/1.5/2').  ``size=N`` (odd) changes the 41-pixel kernel size.
    """
    text = (spec or "").strip()
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind not in PSF_PARAMS:
        raise GalError(
            f"PSF '{spec}': unknown kind '{kind}' (use gaussian:sigma=S or moffat:fwhm=F,beta=B)"
        )
    params = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        name, eq, value = part.partition("=")
        name = name.strip().lower()
        if not eq or name not in PSF_PARAMS[kind]:
            raise GalError(
                f"PSF '{spec}': bad parameter '{part}' (a {kind} PSF takes "
                f"{', '.join(PSF_PARAMS[kind])} as NAME=VALUE)"
            )
        try:
            values = [float(v) for v in value.split("/")]
        except ValueError:
            raise GalError(f"PSF '{spec}': '{value}' is not a number") from None
        if not all(np.isfinite(v) and v > 0 for v in values):
            raise GalError(f"PSF '{spec}': {name} must be positive")
        params[name] = values
    if "size" in params:
        size = params["size"]
        if len(size) != 1 or size[0] != int(size[0]) or int(size[0]) % 2 == 0:
            raise GalError(f"PSF '{spec}': size must be one odd integer")
    if kind == "gaussian" and len({"sigma", "fwhm"} & set(params)) != 1:
        raise GalError(f"PSF '{spec}': a gaussian PSF needs sigma or fwhm (one of them)")
    if kind == "moffat":
        if len({"fwhm", "alpha"} & set(params)) != 1 or "beta" not in params:
            raise GalError(f"PSF '{spec}': a moffat PSF needs beta and fwhm (or alpha)")
        if any(b <= 1 for b in params["beta"]):
            raise GalError(f"PSF '{spec}': moffat beta must be > 1")
    return kind, params


def _per_band(values, bands, name, spec):
    if len(values) == 1:
        return values * bands
    if len(values) != bands:
        raise GalError(f"PSF '{spec}': {len(values)} values of {name} for {bands} bands")
    return values


def gaussian_kernel(sigma, size=KERNEL_SIZE):
    """A size×size circular Gaussian, unit sum."""
    r2 = _radius2(size)
    k = np.exp(-0.5 * r2 / sigma**2)
    return k / k.sum()


def moffat_kernel(fwhm=None, beta=3.5, alpha=None, size=KERNEL_SIZE):
    """A size×size circular Moffat profile (1 + r²/α²)^-β, unit sum; α from the FWHM."""
    if alpha is None:
        alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    k = (1.0 + _radius2(size) / alpha**2) ** (-beta)
    return k / k.sum()


def _radius2(size):
    c = (size - 1) / 2.0
    y, x = np.mgrid[:size, :size]
    return (x - c) ** 2 + (y - c) ** 2


def psf_kernels(spec, bands):
    """The PSF of ``spec`` as a size×size×bands array (one unit-sum kernel per band)."""
    kind, params = parse_psf(spec)
    size = int(params.get("size", [KERNEL_SIZE])[0])
    out = np.empty((size, size, bands), np.float64)
    for b in range(bands):
        p = {k: _per_band(v, bands, k, spec)[b] for k, v in params.items() if k != "size"}
        if kind == "gaussian":
            sigma = p["sigma"] if "sigma" in p else p["fwhm"] / GAUSS_FWHM
            out[..., b] = gaussian_kernel(sigma, size)
        else:
            out[..., b] = moffat_kernel(p.get("fwhm"), p["beta"], p.get("alpha"), size)
    return out


class Convolver:
    """Convolution of N×H×W×C chunks with an S×S×C kernel per band, by real FFTs of the
    bands as contiguous planes ('same' size, zero outside the stamp).  The FFT size is the
    smallest that keeps wrap-around out of the kept pixels (H + S//2, not H + S − 1), and the
    kernels' transform is computed once per image size."""

    def __init__(self, kernels):
        self.kernels = np.asarray(kernels, np.float64)
        self._cache = {}

    def __call__(self, images):
        from scipy import fft

        images = np.asarray(images, np.float64)
        n, h, w, c = images.shape
        s = self.kernels.shape[0]
        o = (s - 1) // 2
        if self.kernels.shape[-1] != c:
            raise GalError(f"{self.kernels.shape[-1]} PSF kernels for {c} bands")
        size = (
            fft.next_fast_len(max(h + o, s), real=True),
            fft.next_fast_len(max(w + o, s), real=True),
        )
        kf = self._cache.get(size)
        if kf is None:
            planes = np.moveaxis(self.kernels, -1, 0)
            kf = self._cache[size] = fft.rfft2(planes, s=size)
        planes = np.ascontiguousarray(np.moveaxis(images, -1, 1))
        spectrum = fft.rfft2(planes, s=size)
        spectrum *= kf[None]
        full = fft.irfft2(spectrum, s=size)
        return np.moveaxis(full[:, :, o : o + h, o : o + w], 1, -1)


def convolve(images, kernels):
    """Convolve N×H×W×C images with an S×S×C kernel per band ('same' size, zero outside)."""
    return Convolver(kernels)(images)


# ----------------------------------------------------------------------------------- resolution


def downsample(images, factor):
    """Block-average N×H×W×C images by ``factor`` (edges padded by replication)."""
    if factor == 1:
        return np.asarray(images)
    n, h, w, c = images.shape
    hp, wp = -h % factor, -w % factor
    if hp or wp:
        images = np.pad(images, ((0, 0), (0, hp), (0, wp), (0, 0)), mode="edge")
    h2, w2 = images.shape[1] // factor, images.shape[2] // factor
    return images.reshape(n, h2, factor, w2, factor, c).mean(axis=(2, 4))


def upsample(images, factor, shape=None):
    """Replicate each pixel factor×factor times, cropped to ``shape`` (H, W) if given."""
    if factor == 1:
        return np.asarray(images)
    out = images.repeat(factor, axis=1).repeat(factor, axis=2)
    if shape is not None:
        out = out[:, : shape[0], : shape[1]]
    return out


def reduce_resolution(images, factor):
    """Downsample by ``factor`` and replicate back onto the original grid."""
    if factor == 1:
        return np.asarray(images)
    return upsample(downsample(images, factor), factor, images.shape[1:3])


# ----------------------------------------------------------------------------------- noise


def row_rng(seed, row):
    """The generator for one image: depends on (seed, row) only."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, int(row)])


def add_noise(images, offset, seed, sigma=0.0, gain=None):
    """Poisson noise (variance max(x, 0)/gain) then Gaussian noise σ, image by image.

    Poisson noise is added as a fluctuation around the value (so sky-subtracted, negative
    pixels stay as they are, with variance zero).
    """
    out = np.array(images, np.float64)
    for k in range(out.shape[0]):
        rng = row_rng(seed, offset + k)
        if gain:
            counts = np.clip(out[k], 0, None) * gain
            out[k] += (rng.poisson(counts) - counts) / gain
        if sigma:
            out[k] += rng.normal(0.0, sigma, out[k].shape)
    return out


# ----------------------------------------------------------------------------------- chain


class Degrader:
    """The whole degradation chain for images of ``bands`` channels."""

    def __init__(self, bands, psf=None, noise=0.0, gain=None, factor=1, seed=0):
        if noise is not None and noise < 0:
            raise GalError(f"noise σ must be >= 0, got {noise}")
        if gain is not None and gain <= 0:
            raise GalError(f"Poisson gain must be > 0, got {gain}")
        if factor < 1:
            raise GalError(f"downsample factor must be >= 1, got {factor}")
        self.psf = psf
        self.kernels = psf_kernels(psf, bands) if psf else None
        self.convolve = Convolver(self.kernels) if psf else None
        self.noise = noise or 0.0
        self.gain = gain
        self.factor = int(factor)
        self.seed = seed

    def __call__(self, images, offset=0):
        """Degraded float32 copies of N×H×W×C ``images`` whose first row is ``offset``."""
        x = np.asarray(images, np.float64)
        bad = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
        if bad.any():
            raise GalError(
                f"image {offset + int(np.flatnonzero(bad)[0])} has NaN or infinite "
                "pixels (degrade needs finite images)"
            )
        if self.kernels is not None:
            x = self.convolve(x)
        x = reduce_resolution(x, self.factor)
        if self.noise or self.gain:
            x = add_noise(x, offset, self.seed, self.noise, self.gain)
        return x.astype(np.float32)

    def describe(self, image_shape):
        """A JSON-able account of the chain and of the output shapes."""
        h, w, c = image_shape
        shape = f"{h}×{w}×{c}"
        if self.factor > 1:
            images = (
                f"{shape}: block-averaged {self.factor}×{self.factor} "
                f"(effective {math.ceil(h / self.factor)}×{math.ceil(w / self.factor)}) "
                "and replicated back onto the original grid"
            )
        else:
            images = f"{shape}: same grid as the input"
        return {
            "psf": self.psf,
            "noise_sigma": self.noise,
            "poisson_gain": self.gain,
            "downsample": self.factor,
            "seed": self.seed,
            "order": "psf, downsample, poisson, gaussian",
            "images": images,
            "targets": f"{shape}: the input images (float32)",
        }


def degrade_file(
    path,
    output,
    history,
    psf=None,
    noise=0.0,
    gain=None,
    factor=1,
    seed=0,
    overwrite=False,
    compression=None,
    chunk_size=None,
    shard=None,
    report=None,
):
    """Write ``output`` with targets = the images of ``path`` and images = degraded copies.

    Ids and label columns are copied; existing targets of the input are replaced.  ``report``:
    a JSON path for the chain and shapes, committed together with the output.  Returns the
    report dict.
    """
    import json

    from galtools.arrayfile import GalaxyWriter, open_galaxies
    from galtools.atomic import AtomicPath, check_output
    from galtools.meta import derive
    from galtools.progress import progress

    if psf:
        parse_psf(psf)  # a bad spec fails before any file is opened
    check_output(output, overwrite, [path])
    if report:
        check_output(report, overwrite, [path])
    with open_galaxies(path) as reader:
        degrader = Degrader(reader.image_shape[-1], psf, noise, gain, factor, seed)
        start, stop = shard.bounds(reader.n) if shard else (0, reader.n)
        info = degrader.describe(reader.image_shape)
        info.update(
            input=str(reader.path),
            output=str(output),
            rows=[start, stop],
            n=stop - start,
            dropped_input_targets=bool(reader.has_targets),
        )
        meta = derive(reader.meta, history)
        meta["degradation"] = info
        fields = [f for f in reader.fields if f != "targets"]
        bar = progress(total=stop - start, desc="degrade")
        atomic = AtomicPath(report, overwrite, [path], ".json") if report else None
        try:
            with GalaxyWriter(output, meta, overwrite, compression, inputs=[path]) as writer:
                for offset, batch in reader.chunks(chunk_size, fields, start, stop):
                    clean = batch["images"]
                    batch["targets"] = clean.astype(np.float32)
                    batch["images"] = degrader(clean, offset)
                    writer.append(batch)
                    bar.update(len(clean))
                if atomic:
                    with open(atomic.tmp, "w") as fh:
                        json.dump(info, fh, indent=2)
        except BaseException as exc:
            error = atomic.fail(exc) if atomic else None
            if error is not None:
                raise error from exc
            raise
        finally:
            bar.close()
        if atomic:
            atomic.commit()
    return info
