"""Feature extractors for FID/KID: entries of the ``galtools.features`` group.

An entry is a factory called with the text after ``NAME:`` in ``--features NAME[:ARG]`` (or
None) that returns an :class:`Extractor`.  Built-in: ``run`` (``run:PATH``, the penultimate
layer of a galtools run).  First-party plugin: ``inception-2015`` (galtools-inception).

Run-time options (:data:`RUNTIME_OPTIONS`): a factory that can use them takes them as keyword
arguments, ``factory(arg, device=..., batch_size=...)``: ``device`` is the ``--device`` request
of ``galprep metrics`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``; :func:`torch_device` turns it
into a PyTorch device, or a one-line error), ``batch_size`` the images per forward pass
(``--features-batch-size``).  :func:`load_extractor` passes each one only to a factory whose
signature names it (or takes ``**kwargs``); a factory without them keeps working and gets
neither (a non-default value it cannot take is reported as ignored).

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
RUNTIME_OPTIONS = ("device", "batch_size")  # keyword arguments a factory may take
DEVICE_HELP = "auto, cpu, cuda or cuda:N"


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


def runtime_options(factory):
    """The names of :data:`RUNTIME_OPTIONS` that ``factory`` takes as keyword arguments."""
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read: pass nothing
        return ()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return RUNTIME_OPTIONS
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return tuple(o for o in RUNTIME_OPTIONS if o in named)


def check_device(text):
    """A ``--device`` request normalised (``auto``, ``cpu``, ``cuda``, ``cuda:N``), else a
    one-line GalError."""
    import re

    value = str(text).strip().lower()
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise GalError(f"--device {text}: not a device ({DEVICE_HELP})")
    return value


def torch_device(request, extractor):
    """The PyTorch device for ``--device request`` of a torch extractor named ``extractor``:
    ``auto`` is ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda``/``cuda:N`` without torch,
    without a GPU or past the last GPU is a one-line GalError saying so.  Imports torch only
    when the request is not ``cpu``."""
    import importlib.util

    request = check_device(request or "auto")
    if request == "cpu":
        return "cpu"
    if importlib.util.find_spec("torch") is None:
        if request == "auto":
            return "cpu"
        raise GalError(
            f"--device {request}: feature extractor '{extractor}' runs on PyTorch, which is "
            "not installed: pip install torch (a CUDA build for a GPU: see "
            "https://pytorch.org/get-started/locally/)"
        )
    import torch

    if not torch.cuda.is_available():
        if request == "auto":
            return "cpu"
        build = "a CPU-only build" if getattr(torch.version, "cuda", None) is None else "no GPU"
        raise GalError(
            f"--device {request}: PyTorch {torch.__version__} sees no GPU ({build}; "
            "torch.cuda.is_available() is False): use --device cpu or auto"
        )
    if request == "auto":
        return "cuda"
    index = int(request.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise GalError(f"--device {request}: PyTorch sees {count} GPU(s) (cuda:0…cuda:{count - 1})")
    return request


def load_extractor(spec, device=None, batch_size=None):
    """The extractor for ``--features NAME[:ARG]`` (unknown names list the known ones).

    ``device`` and ``batch_size`` (None: the extractor's defaults) reach a factory that takes
    them (:func:`runtime_options`); for one that does not, a ``device`` other than ``auto`` or
    a ``batch_size`` is ignored with a line saying so."""
    from galtools import registry

    if device is not None:
        device = check_device(device)
    name, arg = parse_spec(spec)
    if name == "inception-2015" and name not in registry.entries(GROUP, include_disabled=True):
        known = ", ".join(registry.entries(GROUP)) or "none"
        raise GalError(
            "feature extractor 'inception-2015' is in the plugin galtools-inception: "
            f"pip install galtools-inception (known now: {known})"
        )
    factory = registry.load(GROUP, name, kind="feature extractor")
    given = {"device": device, "batch_size": batch_size}
    takes = runtime_options(factory)
    ignored = [k for k, v in given.items() if v is not None and k not in takes and v != "auto"]
    if ignored:
        from galtools.progress import say

        flags = {"device": "--device", "batch_size": "--features-batch-size"}
        hint = " (--device is for extractors on PyTorch, e.g. inception-2015)"
        say(
            f"feature extractor '{name}' does not take "
            f"{' or '.join(flags[k] for k in ignored)}: ignored"
            + (hint if "device" in ignored else "")
        )
    extractor = factory(arg, **{k: v for k, v in given.items() if v is not None and k in takes})
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
