"""CSV tables for importers: typed columns and a join on ids that tolerates duplicates."""

import csv
import os

import numpy as np

from galtools.errors import InputError


def read_csv(path):
    """(header, {column: list of strings}) from a CSV file with a header row."""
    if not os.path.isfile(path):
        raise InputError(path, "no such file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise InputError(path, "empty CSV (no header row)")
            header = [h.strip() for h in header]
            cols = {h: [] for h in header}
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise InputError(
                        path, f"line {lineno} has {len(row)} fields, the header {len(header)}"
                    )
                for h, v in zip(header, row):
                    cols[h].append(v.strip())
    except UnicodeDecodeError:
        raise InputError(path, "not a UTF-8 text CSV") from None
    if len(set(header)) != len(header):
        raise InputError(path, "duplicate column names in the header")
    return header, cols


def typed(values):
    """float64 array when every non-empty value is a number (empty → NaN), else str."""
    out = np.empty(len(values), np.float64)
    for i, v in enumerate(values):
        if v == "" or v.lower() in ("nan", "na", "null"):
            out[i] = np.nan
            continue
        try:
            out[i] = float(v)
        except ValueError:
            return np.array(values, dtype=str)
    return out


def encode(values):
    """(int codes, class names) for string labels, names sorted."""
    names = sorted(set(values))
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[v] for v in values], np.int32), names


def column_name(name):
    """A label column name from a CSV header (stripped, lower-case, spaces to '_')."""
    return "_".join(name.strip().lower().split()) or "column"


def _condition_column(values):
    """A column for a row filter: numbers, booleans from true/false text, else text."""
    lower = {v.lower() for v in values}
    if lower and lower <= {"true", "false"}:
        return np.array([v.lower() == "true" for v in values])
    return typed(values)


def select_rows(path, header, cols, where):
    """``cols`` cut to the rows where the ``--where`` expression ``where`` holds."""
    from galtools import expr

    tree = expr.parse(where)
    by_name = {column_name(h): h for h in header}

    def columns_of(names):
        out = {}
        for name in names:
            h = name if name in cols else by_name.get(name)
            if h is None:
                raise InputError(path, f"no column '{name}' (columns: {', '.join(header)})")
            out[name] = _condition_column(cols[h])
        return out

    n = len(next(iter(cols.values()), []))
    keep = np.flatnonzero(expr.evaluate_tree(tree, columns_of, n, path))
    return {h: [values[i] for i in keep] for h, values in cols.items()}, n


class Catalog:
    """A CSV catalog indexed by its id column; the first row of a repeated id wins.

    ``where``: keep only rows where this ``--where`` expression holds, *before* the first row
    per id is taken (galaxyCGAN's ``df[df.selected].drop_duplicates("HSC_id")``).  Columns are
    named as in the header or as label columns (lower case); ``true``/``false`` text is boolean.
    """

    def __init__(self, path, id_column="id", where=None):
        header, cols = read_csv(path)
        if id_column not in cols:
            raise InputError(path, f"no id column '{id_column}' (columns: {', '.join(header)})")
        self.path = path
        self.where = where
        self.rows_read = self.rows_kept = len(cols[id_column])
        if where:
            cols, self.rows_read = select_rows(path, header, cols, where)
            self.rows_kept = len(cols[id_column])
        ids = cols.pop(id_column)
        self.index = {}
        self.duplicates = {}
        for row, key in enumerate(ids):
            if key in self.index:
                self.duplicates[key] = self.duplicates.get(key, 1) + 1
            else:
                self.index[key] = row
        self.columns = {}
        for name, values in cols.items():
            out = column_name(name)
            if out in ("images", "targets", "ids", "meta"):
                out = "catalog_" + out
            self.columns[out] = typed(values)
        self.missing = 0

    def join(self, ids):
        """Catalog columns for ``ids`` (n,): NaN (numbers) or '' (text) where not found."""
        rows = np.array([self.index.get(str(i), -1) for i in ids], np.int64)
        found = rows >= 0
        self.missing += int((~found).sum())
        out = {}
        for name, col in self.columns.items():
            if col.dtype.kind == "f":
                values = np.full(len(rows), np.nan)
            else:
                values = np.full(len(rows), "", dtype=col.dtype)
            values[found] = col[rows[found]]
            out[name] = values
        return out

    def report(self):
        """One line about duplicates and misses, or None."""
        parts = []
        if self.where:
            parts.append(f"kept {self.rows_kept} of {self.rows_read} rows where {self.where}")
        if self.duplicates:
            shown = ", ".join(list(self.duplicates)[:5])
            more = "…" if len(self.duplicates) > 5 else ""
            parts.append(f"{len(self.duplicates)} repeated ids (kept the first row): {shown}{more}")
        if self.missing:
            parts.append(f"{self.missing} objects not in the catalog (NaN / empty)")
        return f"{self.path}: " + "; ".join(parts) if parts else None
