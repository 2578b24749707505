"""Importers: readers of outside formats, registered in the ``galtools.importers`` group.

An importer is an object (usually one instance of a class) with:

``name``
    The format name used on the command line (``galprep import NAME SOURCE -o OUT``); the
    entry-point name must be the same.
``summary``
    One line for ``galprep import --help``.
``source_help``
    (optional) What SOURCE is (a file, a folder...), shown in ``galprep import NAME --help``.
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
level: ``galprep import --help`` loads every importer to list them.  :func:`check` (run when an
entry loads) enforces ``name`` (the entry-point name), ``summary`` (a string; ``source_help``
too, if given), ``options`` and callable ``count``/``read``; an importer failing it is listed as
broken and left out of ``galprep import`` (other formats keep working).  An option may not be
named as one of the command's own settings (:data:`COMMAND_OPTIONS`).  The command adds the
options every format shares (output, ``--catalog`` joined on ids, ``--bands``,
``--pixel-scale``, ``--shard``, ``--chunk-size``); see :func:`galtools.importers.convert.run`.
"""

from galtools.params import Option  # noqa: F401  (plain-data options, shared with models)

# names of the settings ``galprep import`` has itself: an importer's option may not take one
COMMAND_OPTIONS = frozenset(
    "source output overwrite compression compress chunk_size shard catalog catalog_id "
    "catalog_where bands pixel_scale format debug verbose quiet help".split()
)


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


def check(importer, name=None):
    """Raise TypeError/ValueError unless ``importer`` keeps the contract above."""
    from galtools.params import check_options

    own = getattr(importer, "name", None)
    if not isinstance(own, str) or not own:
        raise TypeError(f"importer {importer!r} has no name")
    if name is not None and own != name:
        raise ValueError(f"importer is named '{own}' but registered as '{name}'")
    if not isinstance(getattr(importer, "summary", None), str):
        raise TypeError(f"importer {own}: no summary (a string)")
    if not isinstance(getattr(importer, "source_help", ""), str):
        raise TypeError(f"importer {own}: source_help must be a string")
    if not hasattr(importer, "options"):
        raise TypeError(f"importer {own}: no options (a tuple of galtools.params.Option)")
    check_options(importer.options, f"importer {own}")
    for option in importer.options:
        if option.name in COMMAND_OPTIONS:
            raise ValueError(
                f"importer {own}: option '{option.name}' is a setting of galprep import itself"
            )
    for method in ("count", "read"):
        if not callable(getattr(importer, method, None)):
            raise TypeError(f"importer {own}: no {method}() method")
