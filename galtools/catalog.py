"""Catalogs of galaxy labels (CSV, '|'-delimited text, FITS tables) matched to images by id."""

import os
import re

import numpy as np

from galtools.errors import GalError, InputError

DEFAULT_ID_PATTERN = r"(?i)pgc0*(\d+)"
ID_COLUMN_GUESSES = ("pgc", "PGC", "id", "ID", "ids", "objid", "objID", "name", "Name")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")


def image_id(stem, pattern=None):
    """The catalog id of an image: the first group of ``pattern`` (default: the digits after
    'pgc') found in ``stem``, else the stem itself."""
    m = re.search(pattern or DEFAULT_ID_PATTERN, stem)
    if not m:
        return stem
    return m.group(1) if m.groups() else m.group(0)


def id_text(stem, pattern=None):
    """The text of ``stem`` that holds its id ('pgc44182' of 'pgc44182_d25x2_rot'), else the
    stem."""
    m = re.search(pattern or DEFAULT_ID_PATTERN, stem)
    return m.group(0) if m and m.group(0) else stem


def normalise_id(value, pattern=None):
    """An id as comparable text, for catalog cells and file names alike: the id found by
    :func:`image_id`, with leading zeros dropped from numeric ids (44182.0, '044182' and
    'PGC44182' all give '44182')."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    text = str(value).strip()
    if not text.isdigit():
        text = image_id(text, pattern)
    return str(int(text)) if text.isdigit() else text


def read_table(path):
    from astropy.table import Table

    lower = path.lower()
    try:
        if lower.endswith(FITS_SUFFIXES):
            return Table.read(path, format="fits")
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.readline()
        if "|" in head:
            return Table.read(path, format="ascii.csv", delimiter="|")
        if "," in head:
            return Table.read(path, format="ascii.csv")
        return Table.read(path, format="ascii.basic")
    except GalError:
        raise
    except Exception as exc:  # astropy raises many types for bad tables
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"not a readable catalog ({text[:160]})") from None


class Catalog:
    """Label columns of a catalog indexed by normalised id.

    ``labels``: list of column names or None for every column but the id column.  String
    columns become integer class codes (their names in :attr:`classes`).
    """

    def __init__(self, path, id_column=None, labels=None, id_pattern=None):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise InputError(self.path, "no such catalog file")
        if os.path.getsize(self.path) == 0:
            raise InputError(self.path, "empty catalog file")
        table = read_table(self.path)
        for name in table.colnames:  # ' pgc ' in hand-written CSV headers
            if name != name.strip():
                table.rename_column(name, name.strip())
        names = list(table.colnames)
        if not names or len(table) == 0:
            raise InputError(self.path, "catalog has no rows")
        if id_column is None:
            id_column = next((c for c in ID_COLUMN_GUESSES if c in names), names[0])
        elif id_column not in names:
            raise InputError(self.path, f"no id column '{id_column}' (columns: {', '.join(names)})")
        self.id_column = id_column
        ids = [normalise_id(v, id_pattern) for v in np.asarray(table[id_column])]
        seen = {}
        for row, key in enumerate(ids):
            if key in seen:
                raise InputError(
                    self.path,
                    f"duplicate id '{key}' in column '{id_column}' "
                    f"(rows {seen[key] + 1} and {row + 1})",
                )
            seen[key] = row
        self.index = seen
        if labels is None:
            labels = [c for c in names if c != id_column]
        for name in labels:
            if name not in names:
                raise InputError(
                    self.path, f"no label column '{name}' (columns: {', '.join(names)})"
                )
            if name in ("images", "targets", "ids", "meta"):
                raise InputError(self.path, f"column name '{name}' is reserved")
        self.columns, self.classes = {}, {}
        for name in labels:
            col = table[name]
            mask = np.asarray(getattr(col, "mask", np.zeros(len(col), bool)), bool)
            data = np.asarray(col)
            if data.ndim != 1:
                continue  # vector cells are not labels
            if data.dtype.kind in "USO":
                text = data.astype(str)
                text[mask] = ""
                names_ = sorted(set(text) - {""})
                lookup = {v: i for i, v in enumerate(names_)}
                self.columns[name] = np.array([lookup.get(v, -1) for v in text], np.int64)
                self.classes[name] = names_
            elif data.dtype.kind == "b":
                self.columns[name] = data.astype(np.int64)
            elif mask.any() or data.dtype.kind == "f":
                values = data.astype(np.float64)
                values[mask] = np.nan
                self.columns[name] = values
            else:
                self.columns[name] = data.astype(np.int64)
        self.labels = list(self.columns)

    def __len__(self):
        return len(self.index)

    def match(self, ids):
        """Rows for ``ids`` (-1 where absent) and the number of catalog rows with no image."""
        rows = np.array([self.index.get(i, -1) for i in ids], dtype=np.int64)
        unused = len(self.index) - len(set(rows[rows >= 0].tolist()))
        return rows, unused

    def dtypes(self, any_missing):
        """Output dtype per label column (floats when some image has no row)."""
        out = {}
        for name, values in self.columns.items():
            if any_missing and values.dtype.kind in "iu" and name not in self.classes:
                out[name] = np.dtype(np.float64)
            else:
                out[name] = values.dtype
        return out

    def take(self, rows, dtypes):
        """Label columns for catalog ``rows`` (-1: NaN, or -1 for class codes)."""
        rows = np.asarray(rows, dtype=np.int64)
        absent = rows < 0
        out = {}
        for name, values in self.columns.items():
            col = values[np.where(absent, 0, rows)].astype(dtypes[name])
            if absent.any():
                col[absent] = -1 if name in self.classes else np.nan
            out[name] = col
        return out


def attach(ids, catalog, require=False, where="images"):
    """Match image ``ids`` to ``catalog``: (rows, report dict); errors under ``require``."""
    rows, unused = catalog.match(ids)
    missing = int((rows < 0).sum())
    report = {"images": len(ids), "without_row": missing, "rows_without_image": unused}
    if require and missing:
        first = ids[int(np.flatnonzero(rows < 0)[0])]
        raise GalError(
            f"{catalog.path}: {missing} of {len(ids)} {where} have no catalog row "
            f"(first: id '{first}'; --require-labels)"
        )
    return rows, report
