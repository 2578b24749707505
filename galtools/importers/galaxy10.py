"""Galaxy10 (DECals and the older SDSS release): the astroNN h5 files."""

from galtools.errors import InputError
from galtools.importers import Importer, Option

DECALS_CLASSES = [
    "Disturbed",
    "Merging",
    "Round Smooth",
    "In-between Round Smooth",
    "Cigar Shaped Smooth",
    "Barred Spiral",
    "Unbarred Tight Spiral",
    "Unbarred Loose Spiral",
    "Edge-on without Bulge",
    "Edge-on with Bulge",
]
SDSS_CLASSES = [
    "Disk, Face-on, No Spiral",
    "Smooth, Completely round",
    "Smooth, in-between round",
    "Smooth, Cigar shaped",
    "Disk, Edge-on, Rounded Bulge",
    "Disk, Edge-on, Boxy Bulge",
    "Disk, Edge-on, No Bulge",
    "Disk, Face-on, Tight Spiral",
    "Disk, Face-on, Medium Spiral",
    "Disk, Face-on, Loose Spiral",
]
EXTRA_COLUMNS = ("ra", "dec", "redshift", "pxscale")


class Galaxy10(Importer):
    name = "galaxy10"
    summary = "Galaxy10 DECals/SDSS h5 (images N×H×W×3 uint8, ans 0–9, ra, dec, redshift...)."
    source_help = "the Galaxy10 .h5 file (e.g. Galaxy10_DECals.h5)"
    options = (
        Option(
            "label_name", "Name of the class-label column ('ans' in the file).", default="label"
        ),
    )

    def _open(self, source):
        import h5py

        try:
            f = h5py.File(source, "r")
        except (OSError, FileNotFoundError) as exc:
            raise InputError(source, f"not a readable HDF5 file ({exc})") from None
        from galtools.errors import GalError
        from galtools.h5guard import check_contained

        try:
            check_contained(f, source)
        except GalError:
            f.close()
            raise
        if "images" not in f:
            f.close()
            raise InputError(source, "no 'images' dataset (not a Galaxy10 file)")
        images = f["images"]
        if images.ndim != 4 or images.shape[-1] != 3:
            f.close()
            raise InputError(source, f"'images' has shape {images.shape}, expected N×H×W×3")
        return f

    def count(self, source, **options):
        with self._open(source) as f:
            return int(f["images"].shape[0])

    def read(self, source, start=0, stop=None, chunk_size=256, label_name="label"):
        import numpy as np

        with self._open(source) as f:
            images = f["images"]
            n = images.shape[0]
            stop = n if stop is None else min(stop, n)
            columns = {}
            if "ans" in f:
                columns[label_name] = ("ans", np.int16)
            for name in EXTRA_COLUMNS:
                if name in f:
                    columns[name] = (name, np.float64)
            for name, _ in columns.values():
                if f[name].shape != (n,):
                    raise InputError(source, f"'{name}' has shape {f[name].shape}, expected ({n},)")
            for lo in range(start, stop, chunk_size):
                hi = min(lo + chunk_size, stop)
                batch = {
                    "images": images[lo:hi],
                    "ids": np.array([f"galaxy10-{i:06d}" for i in range(lo, hi)]),
                }
                for out, (name, dtype) in columns.items():
                    batch[out] = f[name][lo:hi].astype(dtype)
                yield batch
            sdss = images.shape[1] == 69  # the 2018 SDSS release: 69×69 gri composites
            meta = {
                "bands": ["g", "r", "i"] if sdss else ["g", "r", "z"],
                "source_format": "Galaxy10 SDSS" if sdss else "Galaxy10 DECals",
            }
            if "ans" in f:
                meta["classes"] = {label_name: SDSS_CLASSES if sdss else DECALS_CLASSES}
            if "pxscale" in f:
                scales = np.unique(f["pxscale"][...])
                if scales.size == 1:
                    meta["pixel_scale"] = float(scales[0])
            elif not sdss:
                meta["pixel_scale"] = 0.262  # DECaLS
            else:
                meta["pixel_scale"] = 0.396  # SDSS
            return meta


importer = Galaxy10()
