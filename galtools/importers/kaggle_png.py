"""A folder of ``<Id>.png`` images with a CSV ``Id,Actual`` (Kaggle-style scored images)."""

import glob
import os

from galtools.errors import InputError
from galtools.importers import Importer, Option


class KagglePng(Importer):
    name = "kaggle-png"
    summary = "Folder of <Id>.png with a CSV of Id,<label columns> (e.g. Id,Actual)."
    source_help = "the folder of <Id>.png images"
    options = (
        Option(
            "csv",
            "CSV with the id column and labels; 'none': unlabelled images (e.g. query "
            "images). Default: the only .csv in the folder, else FOLDER.csv beside it, else the "
            "only .csv beside it (never Kaggle's sample_submission*.csv); the one used is "
            "named.",
            metavar="FILE|none",
        ),
        Option("id_column", "Name of the id column in the CSV.", default="Id"),
        Option("suffix", "Image file suffix.", default=".png"),
    )

    def _plan(self, source, csv=None, id_column="Id", suffix=".png", announce=False):
        """(ids in order, label columns {name: values}, classes, csv used)."""
        from galtools.importers.tables import column_name, encode, read_csv, typed

        if not os.path.isdir(source):
            raise InputError(source, "not a folder")
        if csv is not None and csv.strip().lower() == "none":
            csv = None
        elif csv is not None:
            if not os.path.isfile(csv):
                raise InputError(csv, "no such CSV file (--csv none: unlabelled images)")
        else:
            csv = self._find_csv(source)
            if csv is not None and announce:
                from galtools.progress import say

                say(f"labels from {csv} (found beside the images; --csv FILE or --csv none)")
        if csv is None:
            ids = sorted(
                os.path.basename(p)[: -len(suffix)]
                for p in glob.glob(os.path.join(source, "*" + suffix))
            )
            if not ids:
                raise InputError(source, f"no *{suffix} images")
            return ids, {}, {}, None
        header, cols = read_csv(csv)
        if id_column not in cols:
            raise InputError(csv, f"no id column '{id_column}' (columns: {', '.join(header)})")
        ids = cols.pop(id_column)
        if not ids:
            raise InputError(csv, "no rows")
        labels, classes = {}, {}
        for name, values in cols.items():
            out = column_name(name)
            col = typed(values)
            if col.dtype.kind != "f":
                col, classes[out] = encode(values)
            labels[out] = col
        return ids, labels, classes, csv

    @staticmethod
    def _find_csv(source):
        """The label CSV: the only one in the folder, else ``<folder>.csv`` beside it (CIL2018's
        ``data/scored/`` + ``data/scored.csv``), else the only one beside it; never Kaggle's
        answer template ``sample_submission*.csv``."""

        def labels_csvs(folder):
            found = sorted(glob.glob(os.path.join(folder, "*.csv")))
            return [p for p in found if not os.path.basename(p).startswith("sample_submission")]

        found = labels_csvs(source)
        if not found:
            folder = os.path.abspath(source).rstrip(os.sep)
            named = folder + ".csv"
            found = [named] if os.path.isfile(named) else labels_csvs(os.path.dirname(folder))
        if len(found) > 1:
            names = ", ".join(map(os.path.basename, found))
            raise InputError(
                source, f"several CSV files ({names}); choose one with --csv (or --csv none)"
            )
        return found[0] if found else None

    def count(self, source, **options):
        return len(self._plan(source, **options)[0])

    def read(
        self, source, start=0, stop=None, chunk_size=256, csv=None, id_column="Id", suffix=".png"
    ):
        import numpy as np
        from PIL import Image, UnidentifiedImageError

        ids, labels, classes, used = self._plan(source, csv, id_column, suffix, announce=True)
        stop = len(ids) if stop is None else min(stop, len(ids))
        shape = None
        for lo in range(start, stop, chunk_size):
            hi = min(lo + chunk_size, stop)
            images = []
            for key in ids[lo:hi]:
                path = os.path.join(source, key + suffix)
                if not os.path.isfile(path):
                    raise InputError(path, f"missing image for id '{key}' listed in {used}")
                try:
                    with Image.open(path) as im:
                        if im.mode not in ("L", "RGB", "I;16", "I", "F"):
                            im = im.convert("RGB" if "A" in im.mode or im.mode == "P" else "L")
                        arr = np.asarray(im)
                except (UnidentifiedImageError, OSError) as exc:
                    raise InputError(path, f"not a readable image ({exc})") from None
                arr = arr[..., None] if arr.ndim == 2 else arr
                if shape is None:
                    shape = arr.shape
                elif arr.shape != shape:
                    raise InputError(
                        path, f"image shape {arr.shape} differs from the first {shape}"
                    )
                images.append(arr)
            batch = {"images": np.stack(images), "ids": np.array(ids[lo:hi])}
            for name, col in labels.items():
                batch[name] = col[lo:hi]
            yield batch
        bands = ["L"] if shape is None or shape[-1] == 1 else ["R", "G", "B"][: shape[-1]]
        return {
            "bands": bands,
            "classes": classes,
            "source_format": "kaggle-png",
            "labels_csv": used,
        }


importer = KagglePng()
