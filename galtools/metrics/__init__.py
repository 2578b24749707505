"""Set-vs-set metrics of galaxy images: entries of the ``galtools.metrics`` group.

Built-in: ``fid``, ``kid`` (on extractor features, see :mod:`galtools.features`), ``power``
(power spectra) and ``morph`` (non-parametric morphology).  :mod:`galtools.metrics.report`
runs them for ``galprep metrics``.
"""

from typing import Protocol, runtime_checkable

GROUP = "galtools.metrics"


@runtime_checkable
class Metric(Protocol):
    """What a ``galtools.metrics`` entry is (a class, instantiated without arguments).

    ``kind == "features"``: ``compare(features_a, features_b, settings) -> dict`` on the N×D
    features of both sets from the chosen extractor.

    ``kind == "images"``: ``accumulator(settings)`` returns an object with ``add(images)``
    (a chunk N×H×W×C, possibly with non-finite pixels) and ``result()``; then
    ``summary(result, bands) -> dict`` (one set), ``compare(a, b, settings, bands) -> dict``
    (two sets), ``table(result, bands) -> {column: (N, ...) array}`` (per-image rows for
    one-sided output) and ``plot(results, names, bands, directory) -> [file names]``.

    ``settings`` holds the command's options (seed, kid_subsets, kid_subset_size, band,
    engine, ...); a metric reads the ones it knows.
    """

    name: str
    kind: str
    title: str


def load_metric(name):
    """Instantiate the metric entry ``name``."""
    from galtools import registry
    from galtools.errors import GalError

    obj = registry.load(GROUP, name, kind="metric")
    metric = obj() if isinstance(obj, type) else obj
    if getattr(metric, "kind", None) not in ("features", "images"):
        raise GalError(f"metric '{name}' has no kind 'features' or 'images' (not a Metric)")
    return metric


def available():
    """Names of the registered metrics."""
    from galtools import registry

    return list(registry.entries(GROUP))
