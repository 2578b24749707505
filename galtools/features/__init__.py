"""Feature extractors for FID/KID: entries of the ``galtools.features`` group.

An entry is a factory called with the text after ``NAME:`` in ``--features NAME[:ARG]`` (or
None) that returns an :class:`Extractor`.  Built-in: ``run`` (``run:PATH``, the penultimate
layer of a galtools run).  First-party plugin: ``inception-2015`` (galtools-inception).

The contract is checked in two steps: :func:`check` when the entry loads (the factory is
callable; a class must have ``features`` and ``describe`` methods), and
:func:`check_extractor` on the object the factory makes (``name``, ``input``,
``default_protocol``, ``dim``, ``features``, ``describe``).  Either failing makes the entry
broken, named with its distribution.
"""

from typing import Protocol, runtime_checkable

from galtools.errors import GalError

GROUP = "galtools.features"
INPUTS = ("rgb", "raw")


@runtime_checkable
class Extractor(Protocol):
    """What a ``galtools.features`` entry returns.

    ``input``: 'rgb' — :meth:`features` gets N×H×W×3 float32 images in [0, 1] made by the
    image protocol (:mod:`galtools.features.protocol`); 'raw' — it gets the stored images.
    ``default_protocol``: the protocol used when ``--protocol`` is not given.
    ``dim``: D, the length of a feature vector (an int), or None where it is known only from
    the features (e.g. those of a run's network).
    """

    name: str
    input: str
    default_protocol: str
    dim: "int | None"

    def features(self, images):
        """N×D float features (a numpy array) of a chunk of images."""

    def describe(self) -> dict:
        """What identifies the extractor (name, weights, dimension): recorded and cache key."""


def parse_spec(spec):
    """'NAME' or 'NAME:ARG' → (name, arg or None)."""
    name, sep, arg = str(spec).partition(":")
    name = name.strip()
    if not name:
        raise GalError(f"empty feature extractor name in '{spec}'")
    return name, (arg if sep else None)


def check(factory, name=None):
    """Raise TypeError unless entry ``factory`` can make extractors (run when it loads)."""
    if not callable(factory):
        raise TypeError(f"a {type(factory).__name__}, not a callable making an extractor")
    if isinstance(factory, type):
        for method in ("features", "describe"):
            if not callable(getattr(factory, method, None)):
                raise TypeError(f"extractor class {factory.__name__} has no {method}() method")


def check_extractor(extractor):
    """Raise TypeError/ValueError unless ``extractor`` keeps the :class:`Extractor` contract."""
    own = getattr(extractor, "name", None)
    if not isinstance(own, str) or not own:
        raise TypeError(f"the extractor {extractor!r} has no name")
    if getattr(extractor, "input", None) not in INPUTS:
        raise ValueError(f"extractor {own}: input must be one of {', '.join(INPUTS)}")
    if not isinstance(getattr(extractor, "default_protocol", None), str):
        raise TypeError(f"extractor {own}: no default_protocol (a protocol name)")
    if not hasattr(extractor, "dim"):
        raise TypeError(f"extractor {own}: no dim (the feature length, or None)")
    dim = extractor.dim
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise ValueError(f"extractor {own}: dim must be a positive integer or None, got {dim!r}")
    for method in ("features", "describe"):
        if not callable(getattr(extractor, method, None)):
            raise TypeError(f"extractor {own}: no {method}() method")


def load_extractor(spec):
    """The extractor for ``--features NAME[:ARG]`` (unknown names list the known ones)."""
    from galtools import registry

    name, arg = parse_spec(spec)
    if name == "inception-2015" and name not in registry.entries(GROUP, include_disabled=True):
        known = ", ".join(registry.entries(GROUP)) or "none"
        raise GalError(
            "feature extractor 'inception-2015' is in the plugin galtools-inception: "
            f"pip install galtools-inception (known now: {known})"
        )
    factory = registry.load(GROUP, name, kind="feature extractor")
    extractor = factory(arg)
    try:
        check_extractor(extractor)
    except (TypeError, ValueError) as exc:
        registry.entries(GROUP)[name].reject(exc)
    return extractor


def missing_dependency(package, extractor, module=None):
    """The one-line error for an extractor whose dependency is not installed."""
    return GalError(
        f"feature extractor '{extractor}' needs the Python package '{package}'"
        f"{f' (module {module})' if module and module != package else ''}: "
        f"pip install {package}"
    )
