"""A folder with one FITS file per object: bands as image HDUs, or one cube."""

import glob
import os

from galtools.errors import InputError
from galtools.importers import Importer, Option

SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
BAND_KEYS = ("FILTER", "BAND", "FILTNAM", "FILTER1")


class FitsFolder(Importer):
    name = "fits-folder"
    summary = "Folder of one FITS per object: bands as image HDUs or a C×H×W cube."
    source_help = "the folder of FITS files (id = file name without suffix)"
    options = (
        Option("pattern", "Glob for the files inside the folder.", default="*.fits*"),
        Option(
            "hdus",
            "Comma-separated HDU numbers or names to take as the bands, in order "
            "(default: every HDU with a 2-D image, or the first cube).",
            default=None,
        ),
    )

    def _files(self, source, pattern="*.fits*"):
        if not os.path.isdir(source):
            raise InputError(source, "not a folder")
        files = sorted(
            p for p in glob.glob(os.path.join(source, pattern)) if p.lower().endswith(SUFFIXES)
        )
        if not files:
            raise InputError(source, f"no FITS files matching {pattern}")
        return files

    def count(self, source, pattern="*.fits*", hdus=None):
        return len(self._files(source, pattern))

    def _load(self, path, hdus=None):
        """(H×W×C float32, band names or None, header of the first image)."""
        import numpy as np
        from astropy.io import fits

        planes, names, first = [], [], None
        try:
            with fits.open(path, memmap=False) as hdul:
                for hdu in _select(path, hdul, hdus):
                    data = hdu.data
                    if data is None or not hasattr(data, "ndim") or data.ndim < 2:
                        continue
                    if data.ndim == 3:
                        if planes:
                            raise InputError(
                                path,
                                "a cube after other images: use either "
                                "one cube or one HDU per band",
                            )
                        planes = list(np.asarray(data, np.float32))
                        names = [hdu.header.get(f"BAND{i + 1}") for i in range(len(planes))]
                        first = hdu.header
                        break
                    if data.ndim != 2:
                        raise InputError(path, f"HDU of {data.ndim} dimensions")
                    planes.append(np.asarray(data, np.float32))
                    names.append(
                        next(
                            (hdu.header[k] for k in BAND_KEYS if k in hdu.header),
                            hdu.name if hdu.name not in ("PRIMARY", "") else None,
                        )
                    )
                    first = first if first is not None else hdu.header
        except OSError as exc:
            raise InputError(path, f"not a readable FITS file ({exc})") from None
        if not planes:
            raise InputError(path, "no image data in any HDU")
        shapes = {p.shape for p in planes}
        if len(shapes) != 1:
            raise InputError(path, f"bands of different shapes {sorted(shapes)}")
        names = [str(n) for n in names] if all(n is not None for n in names) else None
        return np.stack(planes, axis=-1), names, first

    def read(self, source, start=0, stop=None, chunk_size=256, pattern="*.fits*", hdus=None):
        import numpy as np

        files = self._files(source, pattern)
        stop = len(files) if stop is None else min(stop, len(files))
        shape, bands, header = None, None, None
        for lo in range(start, stop, chunk_size):
            images, ids = [], []
            for path in files[lo : min(lo + chunk_size, stop)]:
                image, names, head = self._load(path, hdus)
                if shape is None:
                    shape, bands, header = image.shape, names, head
                elif image.shape != shape:
                    raise InputError(
                        path, f"image shape {image.shape} differs from the first {shape}"
                    )
                elif names != bands:
                    bands = None if names is None or bands is None else bands
                images.append(image)
                base = os.path.basename(path)
                ids.append(base[: -len(next(s for s in SUFFIXES if base.lower().endswith(s)))])
            yield {"images": np.stack(images), "ids": np.array(ids)}
        meta = {"source_format": "fits-folder"}
        if bands and len(set(bands)) == len(bands):
            meta["bands"] = bands
        scale = pixel_scale(header) if header is not None else None
        if scale is not None:
            meta["pixel_scale"] = scale
        return meta


def _select(path, hdul, hdus):
    """The HDUs named by ``hdus`` ('1,2,3' or 'G,R,I'), or all of them."""
    if not hdus:
        return list(hdul)
    out = []
    for key in (k.strip() for k in hdus.split(",")):
        try:
            out.append(hdul[int(key)] if key.lstrip("-").isdigit() else hdul[key])
        except (KeyError, IndexError):
            raise InputError(path, f"no HDU '{key}'") from None
    return out


def pixel_scale(header):
    """Arcsec per pixel from a FITS header's celestial WCS, or None."""
    import warnings

    import numpy as np

    try:
        from astropy.wcs import WCS, FITSFixedWarning
        from astropy.wcs.utils import proj_plane_pixel_scales

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2).celestial
        if not wcs.has_celestial:
            return None
        return round(float(np.mean(proj_plane_pixel_scales(wcs)) * 3600.0), 6)
    except Exception:  # a broken or absent WCS only loses the pixel scale
        return None


importer = FitsFolder()
