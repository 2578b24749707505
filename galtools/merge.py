"""Concatenating galaxy array files (shards, batches) into one."""

from galtools.arrayfile import GalaxyWriter, open_galaxies
from galtools.errors import GalError
from galtools.meta import derive
from galtools.progress import progress


def _signature(reader):
    return {
        "image shape": tuple(reader.image_shape),
        "dtype": str(reader.dtype),
        "fields": sorted(reader.fields),
        "bands": list(reader.bands),
        "classes": reader.classes,
    }


def merge_files(paths, output, history, overwrite=False, compression=None, chunk_size=None):
    """Concatenate ``paths`` (equal image shape, dtype, bands and columns) into ``output``."""
    if not paths:
        raise GalError("nothing to merge")
    readers = []
    try:
        for path in paths:
            readers.append(open_galaxies(path))
        first = readers[0]
        ref = _signature(first)
        for r in readers[1:]:
            sig = _signature(r)
            for key, value in ref.items():
                if sig[key] != value:
                    raise GalError(
                        f"{r.path}: {key} {sig[key]} differs from {first.path}'s {value}"
                    )
        meta = derive(first.meta, history)
        total = sum(r.n for r in readers)
        bar = progress(total=total, desc="merge")
        with GalaxyWriter(output, meta, overwrite, compression, inputs=paths) as writer:
            for r in readers:
                for _, batch in r.chunks(chunk_size):
                    writer.append(batch)
                    bar.update(len(batch["images"]))
        bar.close()
        return total
    finally:
        for r in readers:
            r.close()


def is_table(path):
    return str(path).lower().endswith(".csv")


def merge_tables(paths, output, overwrite=False):
    """Join CSV shards (``score`` predictions) with equal headers into ``output``: the header
    once, then every file's rows in the order given.  Returns the number of rows."""
    from galtools.atomic import AtomicPath
    from galtools.errors import InputError

    if not is_table(output) and output != "-":
        raise GalError(f"{output}: CSV inputs merge into a .csv output")
    header, rows = None, 0
    target = AtomicPath(output, overwrite, paths, suffix=".csv")
    try:
        with open(target.tmp, "w", newline="") as out:
            for path in paths:
                try:
                    fh = open(path, newline="")
                except OSError as exc:
                    raise InputError(path, f"cannot be read ({exc.strerror})") from None
                with fh:
                    first = fh.readline()
                    if not first.strip():
                        raise InputError(path, "is empty (no CSV header)")
                    if header is None:
                        header = first
                        out.write(first if first.endswith("\n") else first + "\n")
                    elif first.rstrip("\r\n") != header.rstrip("\r\n"):
                        raise InputError(
                            path,
                            f"header {first.strip()!r} differs from "
                            f"{paths[0]}'s {header.strip()!r}",
                        )
                    for line in fh:
                        if line.strip():
                            out.write(line if line.endswith("\n") else line + "\n")
                            rows += 1
        target.commit()
    except BaseException as exc:
        error = target.fail(exc)
        if error is not None:
            raise error from exc
        raise
    return rows
