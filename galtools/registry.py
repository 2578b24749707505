"""Entry-point registries: commands, models, importers, metrics, feature extractors.

Every group is read the same way, for built-in entries (registered by the ``galtools``
distribution itself) and for third-party plugins alike.  ``GALPREP_PLUGINS`` limits which
third-party entries load: a comma-separated list of entry-point names, or ``none``.

Each group has one contract, checked when an entry loads (:data:`CHECKS`): an entry that fails
to import or fails its check is *broken* — :meth:`Entry.load` raises :class:`PluginError`
chained to the original exception, and the commands list it with its reason and go on without
it.
"""

import os
from dataclasses import dataclass, field
from importlib.metadata import distributions

from galtools.errors import GalError, PluginError

GROUPS = {
    "galtools.commands": "subcommands of galprep: a click.Command",
    "galtools.models": "model builders: a galtools.models.ModelSpec",
    "galtools.importers": "readers of outside formats: a galtools.importers.Importer",
    "galtools.metrics": "set-vs-set metrics: a galtools.metrics.Metric class",
    "galtools.features": "feature extractors for FID/KID: a factory of galtools.features.Extractor",
}

# group → "module:function" run on every loaded entry as ``check(obj, name)``; it raises
# (TypeError/ValueError naming what is wrong) unless ``obj`` keeps the group's contract.
# Imported only when an entry of the group loads: `galprep --help` stays light.
CHECKS = {
    "galtools.commands": "galtools.commands:check",
    "galtools.models": "galtools.registry:check_model",
    "galtools.importers": "galtools.importers:check",
    "galtools.metrics": "galtools.metrics:check",
    "galtools.features": "galtools.features:check",
}

CORE_DIST = "galtools"


@dataclass
class Entry:
    """One registered entry point, loaded (imported and checked) on demand."""

    group: str
    name: str
    value: str
    dist: str
    version: str
    _loaded: object = field(default=None, repr=False)
    _tried: bool = field(default=False, repr=False)
    _error: str = field(default=None, repr=False)
    _exception: BaseException = field(default=None, repr=False)

    @property
    def builtin(self):
        return self.dist == CORE_DIST

    def load(self):
        """Import the object and check its group's contract.

        Raises :class:`PluginError` naming the distribution, ``from`` the original exception
        (a failed import, or the failed check), so ``--debug`` shows the plugin's traceback.
        """
        if not self._tried:
            self._tried = True
            try:
                obj = _import(self.value)
            except Exception as exc:  # a plugin may fail in any way
                self._fail(exc, f"{type(exc).__name__}: {exc}")
            else:
                try:
                    _import(CHECKS[self.group])(obj, self.name)
                except Exception as exc:
                    self._fail(exc, check_reason(exc))
                else:
                    self._loaded = obj
        if self._exception is not None:
            raise PluginError(
                f"{self.group} entry '{self.name}' from {self.dist} {self.version} "
                f"is broken: {self._error}"
            ) from self._exception
        return self._loaded

    def _fail(self, exc, reason):
        self._exception = exc
        self._error = (reason.strip().splitlines() or [type(exc).__name__])[0]

    def reject(self, exc):
        """Mark the entry broken by ``exc`` (a contract check failed after loading, e.g. on the
        extractor a factory made) and raise its PluginError."""
        self._tried, self._loaded = True, None
        self._fail(exc, check_reason(exc))
        self.load()

    @property
    def error(self):
        """The one-line reason the entry is broken, or None (loads the entry if not yet tried)."""
        try:
            self.load()
        except PluginError:
            return self._error
        return None

    @property
    def exception(self):
        """The original exception of a broken entry (its traceback is the plugin's), or None."""
        return self._exception if self.error is not None else None


def check_reason(exc):
    """A failed check's one-line reason: checks raise TypeError/ValueError saying what is wrong."""
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def check_model(spec, name):
    """The ``galtools.models`` contract: :func:`galtools.models.check`, named as its entry."""
    from galtools.models import check

    check(spec)
    if spec.name != name:  # runs record spec.name and load it back by entry name
        raise ValueError(f"model spec is named '{spec.name}' but registered as '{name}'")


def _import(value):
    module_name, _, attr = value.partition(":")
    module = __import__(module_name, fromlist=["_"])
    obj = module
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


_cache = {}


def allowed_plugins():
    """Names allowed by GALPREP_PLUGINS, or None for all."""
    raw = os.environ.get("GALPREP_PLUGINS")
    if raw is None or raw.strip() == "":
        return None
    if raw.strip().lower() == "none":
        return set()
    return {name.strip() for name in raw.split(",") if name.strip()}


def _scan():
    groups = {group: {} for group in GROUPS}
    seen = set()
    for dist in distributions():
        # entry_points.txt is a small file; METADATA is parsed as e-mail, slowly: read it only
        # for distributions that register something here (~1 ms each, 100+ installed)
        if "galtools." not in (dist.read_text("entry_points.txt") or ""):
            continue
        dist_name = dist.metadata["Name"] or "?"
        key = dist_name.lower().replace("_", "-")
        if key in seen:  # the same distribution twice on sys.path: first wins
            continue
        seen.add(key)
        for ep in dist.entry_points:
            if ep.group in groups:
                entry = Entry(ep.group, ep.name, ep.value, dist_name, dist.version)
                current = groups[ep.group].get(ep.name)
                if current is None or (entry.builtin and not current.builtin):
                    groups[ep.group][ep.name] = entry
    return groups


def entries(group, include_disabled=False):
    """All entries of ``group`` by name, built-ins first choice on name clashes."""
    if group not in GROUPS:
        raise ValueError(f"unknown entry-point group {group!r}")
    if "all" not in _cache:
        _cache["all"] = _scan()
    found = _cache["all"][group]
    allowed = allowed_plugins()
    if include_disabled or allowed is None:
        return dict(sorted(found.items()))
    return {n: e for n, e in sorted(found.items()) if e.builtin or n in allowed}


def disabled(group):
    """Third-party entries switched off by GALPREP_PLUGINS."""
    every = entries(group, include_disabled=True)
    active = entries(group)
    return {n: e for n, e in every.items() if n not in active}


def load(group, name, kind=None):
    """Load entry ``name`` of ``group``; unknown names list the known ones."""
    found = entries(group)
    if name not in found:
        kind = kind or group.split(".")[-1].rstrip("s")
        known = ", ".join(found) or "none"
        hint = ""
        if name in disabled(group):
            hint = " (disabled by GALPREP_PLUGINS)"
        raise GalError(f"unknown {kind} '{name}'{hint}; known: {known}")
    return found[name].load()


def clear_cache():
    """Forget scanned entry points (after installing a plugin at run time)."""
    _cache.clear()
