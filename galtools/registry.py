"""Entry-point registries: commands, models, importers, metrics, feature extractors.

Every group is read the same way, for built-in entries (registered by the ``galtools``
distribution itself) and for third-party plugins alike.  ``GALPREP_PLUGINS`` limits which
third-party entries load: a comma-separated list of entry-point names, or ``none``.
"""

import os
from dataclasses import dataclass, field
from importlib.metadata import distributions

from galtools.errors import GalError, PluginError

GROUPS = {
    "galtools.commands": "subcommands of galprep: a click.Command",
    "galtools.models": "model builders: a galtools.models.ModelSpec",
    "galtools.importers": "readers of outside formats: a galtools.importers.Importer",
    "galtools.metrics": "set-vs-set metrics: a galtools.metrics.Metric",
    "galtools.features": "feature extractors for FID/KID: a galtools.features.Extractor",
}

CORE_DIST = "galtools"


@dataclass
class Entry:
    """One registered entry point, loaded on demand."""

    group: str
    name: str
    value: str
    dist: str
    version: str
    _loaded: object = field(default=None, repr=False)
    _error: str = field(default=None, repr=False)

    @property
    def builtin(self):
        return self.dist == CORE_DIST

    def load(self):
        """Import the object; raise PluginError naming the distribution on failure."""
        if self._loaded is None and self._error is None:
            try:
                self._loaded = _import(self.value)
            except Exception as exc:  # a plugin may fail in any way
                self._error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if self._error is not None:
            raise PluginError(
                f"{self.group} entry '{self.name}' from {self.dist} {self.version} "
                f"failed to load: {self._error}"
            )
        return self._loaded

    @property
    def error(self):
        """The one-line load error, or None (loads the entry if not yet tried)."""
        try:
            self.load()
        except PluginError:
            return self._error
        return None


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
