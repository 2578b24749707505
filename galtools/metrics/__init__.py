"""Set-vs-set metrics of galaxy images: entries of the ``galtools.metrics`` group.

Built-in: ``fid``, ``kid`` (on extractor features, see :mod:`galtools.features`), ``power``
(power spectra) and ``morph`` (non-parametric morphology).  :mod:`galtools.metrics.report`
runs them for ``galprep metrics``.
"""

from typing import Protocol, runtime_checkable

from galtools.params import Option

GROUP = "galtools.metrics"
KINDS = ("features", "images")
# the methods each kind of metric must have (``plot`` of an images metric is optional: a metric
# without it draws nothing for ``--plots``)
METHODS = {"features": ("compare",), "images": ("accumulator", "summary", "compare", "table")}

# settings of ``galprep metrics`` itself (every metric gets them, none may declare them) and
# the keywords of galtools.metrics.report's functions, which the settings travel through
COMMAND_SETTINGS = frozenset(
    "paths output overwrite metric all features protocol cache plots seed shard chunk_size "
    "band_index debug verbose quiet help history names metric_names real other path "
    "condition_check flux_check readback_bias tta conditions device features_batch_size".split()
)

# shared by the image metrics that measure one band: one flag, one value for all of them
BAND = Option(
    "band",
    "Band (name or index) for power and morphology "
    "(default: all bands for power, the middle band for morphology).",
    metavar="BAND",
)


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

    ``options``: a tuple of :class:`galtools.params.Option`, the metric's own settings:
    ``galprep metrics`` adds a ``--name-with-dashes`` flag for each (one flag for an option
    several metrics declare alike, e.g. :data:`BAND`) and passes the values in ``settings``
    under the option's name, next to the command's own (``seed``, ``features``, ``protocol``,
    ``chunk_size``, and ``band_index``: the resolved ``band``).  A metric reads the ones it
    knows.  An option may not be named as one of the command's settings
    (:data:`COMMAND_SETTINGS`).

    :func:`check` enforces this when the entry loads: the class constructs, ``name`` is the
    entry-point name, ``kind`` is one of :data:`KINDS`, ``title`` is a string, the methods of
    its kind (:data:`METHODS`) exist and ``options`` are valid.
    """

    name: str
    kind: str
    title: str
    options: tuple


def instantiate(obj):
    """A metric object from an entry: classes are instantiated without arguments."""
    return obj() if isinstance(obj, type) else obj


def check(obj, name=None):
    """Raise TypeError/ValueError unless entry ``obj`` makes a metric keeping the contract."""
    from galtools.params import check_options

    try:
        metric = instantiate(obj)
    except Exception as exc:  # the plugin's own constructor: keep its exception as the cause
        what = getattr(obj, "__name__", type(obj).__name__)
        raise TypeError(f"{what}() raised {type(exc).__name__}: {exc}") from exc
    own = getattr(metric, "name", None)
    if not isinstance(own, str) or not own:
        raise TypeError(f"metric {metric!r} has no name")
    if name is not None and own != name:
        raise ValueError(f"metric is named '{own}' but registered as '{name}'")
    kind = getattr(metric, "kind", None)
    if kind not in KINDS:
        raise ValueError(f"metric {own}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(getattr(metric, "title", None), str):
        raise TypeError(f"metric {own}: no title (a string)")
    for method in METHODS[kind]:
        if not callable(getattr(metric, method, None)):
            raise TypeError(f"metric {own}: a {kind} metric needs a {method}() method")
    options = getattr(metric, "options", ())
    check_options(options, f"metric {own}")
    for option in options:
        if option.name in COMMAND_SETTINGS:
            raise ValueError(
                f"metric {own}: option '{option.name}' is a setting of galprep metrics itself "
                f"(read settings['{option.name}'] instead of declaring it)"
            )


def load_metric(name):
    """Instantiate the metric entry ``name`` (PluginError if it is broken)."""
    from galtools import registry

    return instantiate(registry.load(GROUP, name, kind="metric"))


def available():
    """Names of the registered metrics."""
    from galtools import registry

    return list(registry.entries(GROUP))
