"""Feature extractors for FID/KID: entries of the ``galtools.features`` group.

An entry is a factory called with the text after ``NAME:`` in ``--features NAME[:ARG]`` (or
None) that returns an :class:`Extractor`.  Built-in: ``run`` (``run:PATH``, the penultimate
layer of a galtools run).  First-party plugin: ``inception-2015`` (galtools-inception).
"""

from typing import Protocol, runtime_checkable

import numpy as np

from galtools.errors import GalError

GROUP = "galtools.features"


@runtime_checkable
class Extractor(Protocol):
    """What a ``galtools.features`` entry returns.

    ``input``: 'rgb' — :meth:`features` gets N×H×W×3 float32 images in [0, 1] made by the
    image protocol (:mod:`galtools.features.protocol`); 'raw' — it gets the stored images.
    ``default_protocol``: the protocol used when ``--protocol`` is not given.
    """

    name: str
    input: str
    default_protocol: str

    def features(self, images: np.ndarray) -> np.ndarray:
        """N×D float features of a chunk of images."""

    def describe(self) -> dict:
        """What identifies the extractor (name, weights, dimension): recorded and cache key."""


def parse_spec(spec):
    """'NAME' or 'NAME:ARG' → (name, arg or None)."""
    name, sep, arg = str(spec).partition(":")
    name = name.strip()
    if not name:
        raise GalError(f"empty feature extractor name in '{spec}'")
    return name, (arg if sep else None)


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
    for attr in ("features", "describe", "input", "default_protocol"):
        if not hasattr(extractor, attr):
            raise GalError(f"feature extractor '{name}' has no '{attr}' (not an Extractor)")
    if extractor.input not in ("rgb", "raw"):
        raise GalError(f"feature extractor '{name}': input must be 'rgb' or 'raw'")
    return extractor


def missing_dependency(package, extractor, module=None):
    """The one-line error for an extractor whose dependency is not installed."""
    return GalError(
        f"feature extractor '{extractor}' needs the Python package '{package}'"
        f"{f' (module {module})' if module and module != package else ''}: "
        f"pip install {package}"
    )
