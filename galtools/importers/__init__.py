"""Importers: readers of outside formats, registered in the ``galtools.importers`` group.

An importer is an object (usually one instance of a class) with:

``name``
    The format name used on the command line (``galprep import NAME SOURCE -o OUT``); the
    entry-point name should be the same.
``summary``
    One line for ``galprep import --help``.
``source_help``
    What SOURCE is (a file, a folder...), shown in ``galprep import NAME --help``.
``options``
    A tuple of :class:`Option` (plain data, no click): format-specific settings. Each becomes
    a command-line option ``--name-with-dashes`` and reaches the methods below as a keyword.
``count(source, **options) -> int``
    The number of rows (objects) SOURCE holds; cheap (no image is read).
``read(source, start=0, stop=None, chunk_size=256, **options)``
    A generator over rows ``[start, stop)``, in order: it yields batches — dicts with
    ``images`` (n×H×W×C; any numeric dtype, kept as is), optionally ``ids`` (n,) and 1-D
    label columns — of at most ``chunk_size`` rows, and *returns* the metadata as a dict
    with any of ``bands``, ``pixel_scale``, ``classes`` ({column: [class names]}) and
    free-form extra keys.  It must not hold more than one batch of images in memory.
    Problems with the input are raised as :class:`galtools.errors.InputError` /
    :class:`galtools.errors.GalError`.

Nothing in an importer module may import heavy libraries (h5py, astropy, PIL...) at module
level: ``galprep import --help`` loads every importer to list them.  The command adds the
options every format shares (output, ``--catalog`` joined on ids, ``--bands``,
``--pixel-scale``, ``--shard``, ``--chunk-size``); see :func:`galtools.importers.convert.run`.
"""

from galtools.params import Option  # noqa: F401  (plain-data options, shared with models)


class Importer:
    """Base class for importers: fill in the attributes and implement count/read."""

    name = ""
    summary = ""
    source_help = "SOURCE"
    options = ()

    def count(self, source, **options):
        raise NotImplementedError

    def read(self, source, start=0, stop=None, chunk_size=256, **options):
        raise NotImplementedError
