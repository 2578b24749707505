"""The galaxy array file: one format in two containers (.h5 and .npz).

Fields: ``images`` (N×H×W×C), optional ``targets`` (same shape), optional ``ids`` (N,), and any
number of 1-D label columns of length N under their own names.  Metadata is a JSON object
(``meta``: a 0-d unicode array in npz, a file attribute in h5), see :mod:`galtools.meta`.

Both containers stream: :meth:`GalaxyReader.chunks` reads slices and :class:`GalaxyWriter`
appends chunks.  The npz writer spools images to disk and assembles the zip at close, so its
memory does not grow with N either; label columns (small) are kept in memory.  ``-`` reads npz
from stdin (spooled to a temporary file) and writes npz to stdout.  Every output is written to
a temporary file beside the target and renamed into place only when complete.
"""

import os
import shutil
import sys
import tempfile
import zipfile

import numpy as np

from galtools import meta as metamod

# the one writer; AtomicPath and check_output stay importable from here (code and plugins do)
from galtools.atomic import AtomicPath, check_output, disk_full_error, is_disk_full  # noqa: F401
from galtools.errors import GalError, InputError

IMAGE_FIELDS = ("images", "targets")
RESERVED = {"images", "targets", "ids", "meta"}
CHUNK_BYTES = 64 * 2**20
H5_SUFFIXES = (".h5", ".hdf5", ".hdf")
NPZ_SUFFIXES = (".npz",)


def container_of(path):
    """'h5' or 'npz' from the file name ('-' is npz); anything else is an error."""
    path = os.fspath(path)
    if path == "-":
        return "npz"
    lower = path.lower()
    if lower.endswith(H5_SUFFIXES):
        return "h5"
    if lower.endswith(NPZ_SUFFIXES):
        return "npz"
    raise InputError(path, "unknown container (expected .h5, .hdf5 or .npz)")


def default_chunk(image_shape, dtype, budget=CHUNK_BYTES):
    """Images per chunk so that one chunk of images is about ``budget`` bytes."""
    per_image = int(np.prod(image_shape or (1,))) * np.dtype(dtype).itemsize
    return max(1, budget // max(per_image, 1))


# ----------------------------------------------------------------------------------- reading


class GalaxyReader:
    """Read access to a galaxy array file; use :func:`open_galaxies`."""

    path: str
    n: int
    image_shape: tuple
    dtype: np.dtype
    meta: dict
    label_names: list
    has_targets: bool
    has_ids: bool

    # subclasses implement _read_field(name, start, stop) and _read_column(name)

    @property
    def fields(self):
        """Every field name present: images, targets, ids, then the labels."""
        out = ["images"]
        if self.has_targets:
            out.append("targets")
        if self.has_ids:
            out.append("ids")
        return out + list(self.label_names)

    @property
    def bands(self):
        return self.meta.get("bands") or [str(i) for i in range(self.image_shape[-1])]

    @property
    def classes(self):
        return self.meta.get("classes") or {}

    def __len__(self):
        return self.n

    def _check_fields(self, fields):
        if fields is None:
            return self.fields
        fields = list(fields)
        for name in fields:
            if name not in self.fields:
                what = "label column" if name not in RESERVED else "field"
                known = ", ".join(self.label_names) or "none"
                raise InputError(self.path, f"no {what} '{name}' (label columns: {known})")
        return fields

    def read(self, start=0, stop=None, fields=None):
        """Rows [start, stop) as a dict of arrays."""
        stop = self.n if stop is None else min(stop, self.n)
        start = max(0, min(start, stop))
        out = {}
        for name in self._check_fields(fields):
            if name in IMAGE_FIELDS:
                out[name] = self._guard(self._read_field, name, start, stop)
            else:
                out[name] = self.column(name)[start:stop]
        return out

    def chunks(self, size=None, fields=None, start=0, stop=None):
        """Yield ``(offset, batch)`` over rows [start, stop) in chunks of ``size`` images."""
        size = size or default_chunk(self.image_shape, self.dtype)
        stop = self.n if stop is None else min(stop, self.n)
        fields = self._check_fields(fields)
        for offset in range(start, stop, size):
            yield offset, self.read(offset, min(offset + size, stop), fields)

    def take(self, indices, fields=None):
        """Rows at arbitrary ``indices`` (in the given order) as a dict of arrays."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.n):
            raise GalError(f"{self.path}: row index out of range (N={self.n})")
        order = np.argsort(indices, kind="stable")
        out = {}
        for name in self._check_fields(fields):
            if name in IMAGE_FIELDS:
                out[name] = self._guard(self._take_field, name, indices[order], order)
            else:
                out[name] = self.column(name)[indices]
        return out

    def _take_field(self, name, sorted_idx, order):
        """Rows ``sorted_idx`` (ascending, repeats allowed) into positions ``order`` of the
        result, each run of nearby rows read as one slice."""
        out = np.empty((sorted_idx.size,) + self.image_shape, self.dtype)
        if sorted_idx.size == 0:
            return out
        breaks = np.flatnonzero(np.diff(sorted_idx) > 1) + 1
        at = 0
        for run in np.split(sorted_idx, breaks):
            first = int(run[0])
            block = self._read_field(name, first, int(run[-1]) + 1)
            out[order[at : at + run.size]] = block[run - first]
            at += run.size
        return out

    def column(self, name):
        """A whole 1-D column (ids or a label) as an array."""
        if name not in self._columns:
            if name not in self.fields or name in IMAGE_FIELDS:
                self._check_fields([name])
                raise InputError(self.path, f"'{name}' is not a 1-D column")
            self._columns[name] = self._guard(self._read_column, name)
        return self._columns[name]

    def labels(self, names=None):
        """Label columns (all by default) as {name: array}."""
        names = self.label_names if names is None else self._check_fields(names)
        return {name: self.column(name) for name in names}

    def ids(self):
        """The ids column, or row numbers when the file has none."""
        return self.column("ids") if self.has_ids else np.arange(self.n)

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except GalError:
            raise
        except (OSError, zipfile.BadZipFile, ValueError, EOFError, KeyError) as exc:
            raise InputError(self.path, f"corrupt or truncated ({_short(exc)})") from None

    def _validate(self):
        shape = self.image_shape
        if len(shape) != 3:
            raise InputError(
                self.path, f"images must be N×H×W×C (or N×H×W), got {len(shape) + 1}-D"
            )
        if self.has_targets and self._targets_shape != (self.n,) + tuple(shape):
            raise InputError(
                self.path,
                f"targets shape {self._targets_shape} differs from images "
                f"{(self.n,) + tuple(shape)}",
            )
        for name, length in self._column_lengths.items():
            if length is None:
                raise InputError(self.path, f"column '{name}' is not 1-D")
            if length != self.n:
                raise InputError(
                    self.path, f"column '{name}' has length {length}, expected N={self.n}"
                )
        bands = self.meta.get("bands")
        if bands is not None and len(bands) != shape[-1]:
            raise InputError(
                self.path, f"metadata names {len(bands)} bands but images have {shape[-1]}"
            )

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def summary(self):
        return (
            f"{self.path}: {self.n} images {'×'.join(map(str, self.image_shape))} "
            f"{self.dtype}, labels: {', '.join(self.label_names) or 'none'}"
        )


def _short(exc):
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


class H5Reader(GalaxyReader):
    def __init__(self, path):
        import h5py

        self.path = os.fspath(path)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise InputError(self.path, f"not a readable HDF5 file ({_short(exc)})") from None
        f = self._file
        try:
            from galtools.h5guard import check_contained

            check_contained(f, self.path)
        except GalError:
            self.close()
            raise
        if "images" not in f or not isinstance(f["images"], h5py.Dataset):
            self.close()
            raise InputError(self.path, "no 'images' dataset")
        images = f["images"]
        self._squeeze = images.ndim == 3
        self.n = images.shape[0] if images.ndim else 0
        self.image_shape = tuple(images.shape[1:]) + ((1,) if self._squeeze else ())
        self.dtype = images.dtype
        raw = f.attrs.get("meta")
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        self.meta = metamod.normalise(
            metamod.loads(raw, self.path) if raw is not None else {},
            self.image_shape[-1] if self.image_shape else None,
        )
        self.has_targets = "targets" in f
        self._targets_shape = None
        if self.has_targets:
            tshape = tuple(f["targets"].shape)
            self._targets_shape = tshape + ((1,) if len(tshape) == 3 else ())
        self.has_ids = "ids" in f
        self.label_names = []
        self._column_lengths = {}
        for name, obj in f.items():
            if name in IMAGE_FIELDS or not isinstance(obj, h5py.Dataset):
                continue
            if name != "ids":
                self.label_names.append(name)
            self._column_lengths[name] = obj.shape[0] if obj.ndim == 1 else None
        self._columns = {}
        self._datasets = {}
        self._fd = None
        try:
            self._validate()
        except GalError:
            self.close()
            raise

    def _dataset(self, name):
        """The h5py dataset ``name`` and its direct row reader (None if not possible)."""
        found = self._datasets.get(name)
        if found is None:  # looking a dataset up costs as much as reading a stamp
            from galtools.h5direct import RowStore

            dataset = self._file[name]
            if self._fd is None:
                self._fd = os.open(self._file.filename, os.O_RDONLY)
            found = self._datasets[name] = (dataset, RowStore.open(dataset, self._fd))
        return found

    def _read_field(self, name, start, stop):
        dataset, store = self._dataset(name)
        data = store.read(start, stop) if store is not None else dataset[start:stop]
        return data[..., None] if data.ndim == 3 else data

    def _read_column(self, name):
        ds = self._file[name]
        if _is_h5_string(ds):
            return np.asarray(ds.asstr()[...], dtype=str)
        data = ds[...]
        return data.astype(str) if data.dtype.kind == "S" else data

    def close(self):
        f = getattr(self, "_file", None)
        if f is not None:
            self._datasets = {}
            f.close()
            self._file = None
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None


def _is_h5_string(ds):
    import h5py

    return h5py.check_string_dtype(ds.dtype) is not None


class NpzReader(GalaxyReader):
    def __init__(self, path, display=None, cleanup=None):
        self.path = display or os.fspath(path)
        self._cleanup = cleanup
        try:
            self._zip = zipfile.ZipFile(os.fspath(path))
        except (zipfile.BadZipFile, OSError) as exc:
            self._remove_spool()
            raise InputError(self.path, f"not a valid npz file ({_short(exc)})") from None
        try:
            self._index()
        except GalError:
            self.close()
            raise
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            self.close()
            raise InputError(self.path, f"corrupt or truncated ({_short(exc)})") from None

    def _index(self):
        self._headers = {}
        for info in self._zip.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename[:-4]
            with self._zip.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                offset = fh.tell()
            if dtype.hasobject:
                raise InputError(self.path, f"'{name}' holds Python objects (refused: no pickle)")
            self._headers[name] = (tuple(shape), fortran, dtype, offset)
        if "images" not in self._headers:
            raise InputError(self.path, "no 'images' array")
        shape, _, dtype, _ = self._headers["images"]
        self._squeeze = len(shape) == 3
        self.n = shape[0] if shape else 0
        self.image_shape = tuple(shape[1:]) + ((1,) if self._squeeze else ())
        self.dtype = dtype
        meta = {}
        if "meta" in self._headers:
            raw = self._load("meta")
            meta = metamod.loads(str(raw[()] if raw.ndim == 0 else raw), self.path)
        self.meta = metamod.normalise(meta, self.image_shape[-1] if self.image_shape else None)
        self.has_targets = "targets" in self._headers
        self._targets_shape = None
        if self.has_targets:
            tshape = self._headers["targets"][0]
            self._targets_shape = tuple(tshape) + ((1,) if len(tshape) == 3 else ())
        self.has_ids = "ids" in self._headers
        self.label_names = [k for k in self._headers if k not in RESERVED]
        self._column_lengths = {
            k: (v[0][0] if len(v[0]) == 1 else None)
            for k, v in self._headers.items()
            if k not in IMAGE_FIELDS and k != "meta"
        }
        self._columns = {}
        self._handles = {}
        self._validate()

    def _load(self, name):
        with self._zip.open(name + ".npy") as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)

    def _read_field(self, name, start, stop):
        shape, fortran, dtype, offset = self._headers[name]
        if fortran:  # rare: load whole array once
            if name not in self._columns:
                self._columns[name] = self._load(name)
            data = self._columns[name][start:stop]
        else:
            row = int(np.prod(shape[1:])) * dtype.itemsize
            fh = self._handles.get(name)
            if fh is None:
                fh = self._handles[name] = self._zip.open(name + ".npy")
            fh.seek(offset + start * row)
            count = stop - start
            buf = fh.read(count * row)
            if len(buf) != count * row:
                raise InputError(self.path, f"'{name}' is truncated")
            data = np.frombuffer(buf, dtype=dtype).reshape((count,) + tuple(shape[1:]))
        return data[..., None] if data.ndim == 3 else data

    def _read_column(self, name):
        return self._load(name)

    def _remove_spool(self):
        if self._cleanup:
            try:
                os.unlink(self._cleanup)
            except OSError:
                pass
            self._cleanup = None

    def close(self):
        for fh in getattr(self, "_handles", {}).values():
            fh.close()
        self._handles = {}
        z = getattr(self, "_zip", None)
        if z is not None:
            z.close()
            self._zip = None
        self._remove_spool()


def open_galaxies(path):
    """Open a galaxy array file (.h5/.npz, or '-' for npz on stdin) for reading."""
    path = os.fspath(path)
    if path == "-":
        fd, spool = tempfile.mkstemp(prefix="galprep-stdin-", suffix=".npz")
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 2**20)
        if os.path.getsize(spool) == 0:
            os.unlink(spool)
            raise InputError("-", "empty input on stdin (expected an npz stream)")
        return NpzReader(spool, display="<stdin>", cleanup=spool)
    kind = container_of(path)
    if not os.path.exists(path):
        raise InputError(path, "no such file")
    if os.path.isdir(path):
        raise InputError(path, "is a directory, not a galaxy array file")
    if os.path.getsize(path) == 0:
        raise InputError(path, "empty file")
    return H5Reader(path) if kind == "h5" else NpzReader(path)


def read_galaxies(path, fields=None):
    """Read a whole (small) file: (batch dict, meta)."""
    with open_galaxies(path) as reader:
        return reader.read(fields=fields), reader.meta


# ----------------------------------------------------------------------------------- writing


class GalaxyWriter:
    """Append chunks of galaxies; the file appears at :meth:`close` (atomically).

    ``meta`` is the metadata to store (``meta['bands']`` is checked against the channel
    count).  ``compression`` ('gzip'/'lzf'/None) applies to h5 image data and deflates npz.
    Use as a context manager: an exception inside the block removes the temporary file.
    """

    def __init__(self, path, meta=None, overwrite=False, compression=None, inputs=()):
        self.path = os.fspath(path)
        self.container = container_of(self.path)
        self.meta = metamod.normalise(meta or {})
        self.compression = None if compression in (None, "none") else compression
        self._atomic = AtomicPath(self.path, overwrite, inputs, suffix="." + self.container)
        self.n = 0
        self._schema = None  # {name: (dtype, rowshape)}
        self._closed = False
        if self.container == "h5":
            import h5py

            self._h5 = h5py.File(self._atomic.tmp, "w")
        else:
            self._spool = {}
            self._columns = {}

    # -- schema
    def _check(self, batch):
        if "images" not in batch:
            raise ValueError("a batch needs 'images'")
        images = np.asarray(batch["images"])
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise ValueError(f"images must be N×H×W×C, got shape {images.shape}")
        n = images.shape[0]
        out = {"images": images}
        for name, value in batch.items():
            if name == "images" or value is None:
                continue
            if name == "meta":
                raise ValueError("'meta' is reserved for metadata")
            arr = np.asarray(value)
            if name == "targets":
                if arr.ndim == 3:
                    arr = arr[..., None]
                if arr.shape != images.shape:
                    raise ValueError(f"targets shape {arr.shape} != images {images.shape}")
            elif arr.ndim != 1 or arr.shape[0] != n:
                raise ValueError(f"column '{name}' has shape {arr.shape}, expected ({n},)")
            if arr.dtype.hasobject:
                arr = arr.astype(str)
            out[name] = arr
        if self._schema is None:
            self._schema = {k: (v.dtype, v.shape[1:]) for k, v in out.items()}
            bands = self.meta.get("bands")
            if bands is not None and len(bands) != images.shape[-1]:
                raise ValueError(
                    f"metadata names {len(bands)} bands but images have {images.shape[-1]}"
                )
            if bands is None:
                self.meta["bands"] = [str(i) for i in range(images.shape[-1])]
        else:
            if set(out) != set(self._schema):
                raise ValueError(
                    f"chunk fields {sorted(out)} differ from the first chunk's "
                    f"{sorted(self._schema)}"
                )
            for k, v in out.items():
                dtype, rowshape = self._schema[k]
                if v.shape[1:] != rowshape:
                    raise ValueError(f"'{k}' rows of shape {v.shape[1:]}, expected {rowshape}")
                if v.dtype != dtype and not (v.dtype.kind == dtype.kind == "U"):
                    out[k] = v.astype(dtype)
        return out

    def append(self, batch=None, **fields):
        """Append a chunk: a dict (or keywords) with images and optional other fields."""
        batch = dict(batch or {}, **fields)
        data = self._check(batch)
        n = data["images"].shape[0]
        try:
            if self.container == "h5":
                self._append_h5(data, n)
            else:
                self._append_npz(data)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self.abort()
            raise disk_full_error(self.path) from exc
        self.n += n

    def _append_h5(self, data, n):
        import h5py

        f = self._h5
        for name, arr in data.items():
            if name not in f:
                if arr.dtype.kind == "U":
                    dtype = h5py.string_dtype("utf-8")
                else:
                    dtype = arr.dtype
                rowshape = arr.shape[1:]
                if name in IMAGE_FIELDS:
                    per = max(1, int(np.prod(rowshape)) * arr.dtype.itemsize)
                    chunks = (max(1, min(256, 2**20 // per)),) + rowshape
                    kw = {"compression": self.compression} if self.compression else {}
                else:
                    chunks, kw = (4096,), {}
                f.create_dataset(
                    name,
                    shape=(0,) + rowshape,
                    maxshape=(None,) + rowshape,
                    dtype=dtype,
                    chunks=chunks,
                    **kw,
                )
            ds = f[name]
            ds.resize(self.n + n, axis=0)
            if arr.dtype.kind == "U":
                ds[self.n :] = arr.astype(object)
            else:
                ds[self.n :] = arr

    def _append_npz(self, data):
        for name, arr in data.items():
            if name in IMAGE_FIELDS:
                fh = self._spool.get(name)
                if fh is None:
                    fh = self._spool[name] = tempfile.TemporaryFile(
                        dir=os.path.dirname(self._atomic.tmp)
                    )
                fh.write(np.ascontiguousarray(arr).tobytes())
            else:
                self._columns.setdefault(name, []).append(arr)

    def close(self):
        """Finish the file and move it into place."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.container == "h5":
                self._close_h5()
            else:
                self._close_npz()
        except BaseException as exc:
            error = self._atomic.fail(exc)
            if error is not None:
                raise error from exc
            raise
        self._atomic.commit()

    def _close_h5(self):
        if "images" not in self._h5:
            self._h5.create_dataset("images", shape=(0, 0, 0, 0), dtype="f4")
        self._h5.attrs["meta"] = metamod.dumps(self.meta)
        self._h5.close()

    def _close_npz(self):
        method = zipfile.ZIP_DEFLATED if self.compression else zipfile.ZIP_STORED
        with zipfile.ZipFile(self._atomic.tmp, "w", method, allowZip64=True) as zf:
            for name in ("images", "targets"):
                if name in self._spool or (name == "images" and self._schema is None):
                    self._write_spooled(zf, name)
            for name, parts in self._columns.items():
                with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.concatenate(parts), allow_pickle=False)
            with zf.open("meta.npy", "w") as fh:
                np.lib.format.write_array(fh, np.array(metamod.dumps(self.meta)))

    def _write_spooled(self, zf, name):
        if self._schema is None:
            dtype, rowshape = np.dtype("f4"), (0, 0, 0)
        else:
            dtype, rowshape = self._schema[name]
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": (self.n,) + tuple(rowshape),
        }
        with zf.open(name + ".npy", "w", force_zip64=True) as out:
            np.lib.format.write_array_header_1_0(out, header)
            spool = self._spool.get(name)
            if spool is not None:
                spool.seek(0)
                shutil.copyfileobj(spool, out, 2**22)
                spool.close()

    def abort(self):
        """Throw away everything written."""
        if self._closed:
            return
        self._closed = True
        if self.container == "h5":
            try:
                self._h5.close()
            except Exception:
                pass
        else:
            for fh in self._spool.values():
                fh.close()
        self._atomic.abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_galaxies(path, batch, meta=None, overwrite=False, compression=None, inputs=()):
    """Write a whole in-memory batch to ``path`` in one go."""
    with GalaxyWriter(path, meta, overwrite, compression, inputs) as writer:
        writer.append(batch)
    return path


def copy_fields_meta(reader, entry, **changes):
    """Metadata for an output derived from ``reader``: its meta plus a history entry."""
    out = metamod.derive(reader.meta, entry)
    out.update(changes)
    return out
