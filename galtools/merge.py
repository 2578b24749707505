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
