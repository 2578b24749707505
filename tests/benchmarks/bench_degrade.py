"""Benchmark: PSF convolution of a chunk at once (FFT over the image axes) against per-image
loops (direct 2-D convolution per band, and FFT per image and band); per-image seeded noise
against one generator for the chunk.  Prints the times and ratios."""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from galtools.degrade import add_noise, convolve, psf_kernels  # noqa: E402


def timed(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(n=256, size=64, bands=3):
    from scipy.ndimage import convolve as nd_convolve
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(0)
    images = rng.random((n, size, size, bands))
    kernels = psf_kernels("moffat:fwhm=3,beta=3.5", bands)

    def direct(m):
        out = np.empty_like(images[:m])
        for k in range(m):
            for b in range(bands):
                out[k, :, :, b] = nd_convolve(
                    images[k, :, :, b], kernels[::-1, ::-1, b], mode="constant"
                )
        return out

    def per_image_fft():
        out = np.empty_like(images)
        for k in range(n):
            for b in range(bands):
                out[k, :, :, b] = fftconvolve(images[k, :, :, b], kernels[:, :, b], mode="same")
        return out

    t_chunk, y = timed(lambda: convolve(images, kernels))
    m = 16  # the direct loop is slow: time it on m images and scale
    t_direct, y_direct = timed(lambda: direct(m), repeat=1)
    t_direct *= n / m
    t_fft, y_fft = timed(per_image_fft)
    assert np.allclose(y[:m], y_direct, atol=1e-10) and np.allclose(y, y_fft, atol=1e-10)
    print(f"PSF 41×41, {n} images {size}×{size}×{bands}:")
    print(f"  chunk rFFT (galtools){t_chunk * 1e3:8.1f} ms")
    t_scipy, _ = timed(lambda: fftconvolve(images, kernels[None], mode="same", axes=(1, 2)))
    print(f"  chunk fftconvolve   {t_scipy * 1e3:8.1f} ms  ({t_scipy / t_chunk:.1f}× slower)")
    print(f"  per-image direct    {t_direct * 1e3:8.1f} ms  ({t_direct / t_chunk:.1f}× slower)")
    print(f"  per-image-band FFT  {t_fft * 1e3:8.1f} ms  ({t_fft / t_chunk:.1f}× slower)")

    t_seeded, _ = timed(lambda: add_noise(images, 0, seed=1, sigma=0.1))
    t_one, _ = timed(lambda: images + np.random.default_rng(1).normal(0, 0.1, images.shape))
    print(
        f"Gaussian noise, per-image seeds (chunk-size independent) {t_seeded * 1e3:.1f} ms vs "
        f"one generator {t_one * 1e3:.1f} ms (ratio {t_seeded / t_one:.2f})"
    )


if __name__ == "__main__":
    main()
