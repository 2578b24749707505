"""HDF5 files that draw data from elsewhere are refused: galtools reads only the file it is given.

HDF5 lets a dataset keep its bytes in other files (external raw storage), assemble them from
other files (virtual datasets) or be a link into another file (external links); h5py follows
all three without a word, so converting and re-sharing a stranger's file could leak one's own
files (``/etc/passwd`` as images), and a virtual dataset whose source is missing reads as its
fill value.  :func:`check_contained` walks every link of an open file without following
external ones and raises :class:`~galtools.errors.InputError` naming the first such object.
"""

from galtools.errors import InputError


def check_contained(f, path):
    """InputError unless every dataset of the open h5py file ``f`` lives inside it."""
    import h5py

    def walk(group, prefix):
        for name in group:
            full = f"{prefix}{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise InputError(
                    path,
                    f"'{full}' is a link into another file ({link.filename}): refused, "
                    "galtools reads only the file it is given",
                )
            if isinstance(link, h5py.SoftLink):
                continue  # a name for an object of this file, checked where it lives
            try:
                obj = group[name]
            except (KeyError, OSError, RuntimeError, ValueError) as exc:
                raise InputError(path, f"'{full}' cannot be opened ({exc})") from None
            if isinstance(obj, h5py.Group):
                walk(obj, full + "/")
            elif isinstance(obj, h5py.Dataset):
                _check_dataset(obj, full, path)

    walk(f, "")


def _check_dataset(ds, name, path):
    if ds.is_virtual:
        sources = sorted({s.file_name for s in ds.virtual_sources()})
        raise InputError(
            path,
            f"'{name}' is a virtual dataset drawing on {', '.join(sources) or 'other files'}: "
            "refused, galtools reads only the file it is given",
        )
    if ds.external:
        files = sorted({str(e[0]) for e in ds.external})
        raise InputError(
            path,
            f"'{name}' keeps its data in other files ({', '.join(files)}): refused, galtools "
            "reads only the file it is given",
        )
