"""galtools: command-line tools for machine learning on galaxy images, and their Python API.

``import galtools`` is light: the names below load their module on first use (PEP 562).

- files: :func:`open_galaxies`, :func:`read_galaxies`, :func:`write_galaxies`,
  :class:`GalaxyWriter`, :func:`new_meta`;
- trained runs: :func:`load_run` → :class:`Run` (``predict``, ``generate``, ``score``,
  ``features``);
- augmentation: :func:`augment_images`, :class:`Op`, :class:`Augmenter`; degradation:
  :class:`Degrader`;
- measurements: :func:`measure_morphology`, :func:`power_spectra`, :func:`fid`, :func:`kid`,
  :func:`condition_check` (conditions of generated galaxies read back);
- errors: :class:`GalError`, :class:`InputError`.

Runtime settings (``quiet``, ``verbose``) are in :mod:`galtools.settings`.
"""

__version__ = "0.1.0"

# public name -> (module, attribute)
_API = {
    "open_galaxies": ("galtools.arrayfile", "open_galaxies"),
    "read_galaxies": ("galtools.arrayfile", "read_galaxies"),
    "write_galaxies": ("galtools.arrayfile", "write_galaxies"),
    "GalaxyWriter": ("galtools.arrayfile", "GalaxyWriter"),
    "new_meta": ("galtools.meta", "new_meta"),
    "load_run": ("galtools.runs", "load_run"),
    "Run": ("galtools.runs", "Run"),
    "augment_images": ("galtools.augment", "augment_images"),
    "Op": ("galtools.augment", "Op"),
    "Augmenter": ("galtools.augment", "Augmenter"),
    "Degrader": ("galtools.degrade", "Degrader"),
    "measure_morphology": ("galtools.metrics.morphology", "measure"),
    "power_spectra": ("galtools.metrics.power", "power_spectra"),
    "fid": ("galtools.metrics.fid", "fid"),
    "kid": ("galtools.metrics.fid", "kid"),
    "condition_check": ("galtools.metrics.conditions", "condition_check"),
    "GalError": ("galtools.errors", "GalError"),
    "InputError": ("galtools.errors", "InputError"),
}

__all__ = list(_API)


def __getattr__(name):
    """Load a public name's module on first use (and keep the value here)."""
    try:
        module, attr = _API[name]
    except KeyError:
        raise AttributeError(f"module 'galtools' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
