"""A NumPy image array (.npy), optionally with an ids array."""

import os

from galtools.errors import InputError
from galtools.importers import Importer, Option


class Npy(Importer):
    name = "npy"
    summary = "An image array .npy (N×H×W×C, N×H×W, or N×C×H×W with --channels-first)."
    source_help = "the images .npy file"
    options = (
        Option("channels_first", "The array is N×C×H×W.", kind="flag", default=False),
        Option("ids", "A .npy of N ids (numbers or strings) for the rows.", kind="path"),
    )

    def _load(self, source, channels_first=False):
        import numpy as np

        if not os.path.isfile(source):
            raise InputError(source, "no such file")
        try:
            arr = np.load(source, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise InputError(source, f"not a plain .npy array ({exc})") from None
        except OSError as exc:
            raise InputError(source, f"not a readable .npy file ({exc})") from None
        if not isinstance(arr, np.ndarray):
            raise InputError(source, "expected one array (.npy), not an archive")
        if arr.dtype.kind not in "biuf":
            raise InputError(source, f"images must be numbers, not {arr.dtype}")
        if arr.ndim == 3 and not channels_first:
            return arr, False
        if arr.ndim != 4:
            want = "N×C×H×W" if channels_first else "N×H×W×C or N×H×W"
            raise InputError(source, f"array of shape {arr.shape}, expected {want}")
        return arr, channels_first

    def _ids(self, path, n):
        import numpy as np

        try:
            ids = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(path, f"not a plain .npy array ({exc})") from None
        if ids.shape != (n,):
            raise InputError(path, f"ids of shape {ids.shape}, expected ({n},)")
        return ids.astype(str)

    def count(self, source, channels_first=False, ids=None):
        return int(self._load(source, channels_first)[0].shape[0])

    def read(self, source, start=0, stop=None, chunk_size=256, channels_first=False, ids=None):
        import numpy as np

        arr, transpose = self._load(source, channels_first)
        n = arr.shape[0]
        names = self._ids(ids, n) if ids else None
        stop = n if stop is None else min(stop, n)
        for lo in range(start, stop, chunk_size):
            hi = min(lo + chunk_size, stop)
            images = np.array(arr[lo:hi])
            if transpose:
                images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
            batch = {"images": images}
            if names is not None:
                batch["ids"] = names[lo:hi]
            yield batch
        return {"source_format": "npy"}


importer = Npy()
