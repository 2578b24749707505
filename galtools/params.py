"""Options of plugins as plain data: what a model, importer or metric takes from the command line.

A plugin declares a tuple of :class:`Option`; galprep turns each into a ``--name-with-dashes``
flag of the command that uses the plugin (no click in the plugin), and :func:`convert` checks
values given from Python the same way the command line does.
"""

from dataclasses import dataclass

KINDS = ("str", "int", "float", "flag", "path", "choice", "list", "pair")


@dataclass(frozen=True)
class Option:
    """One setting of a plugin.

    ``kind``: ``str``, ``int``, ``float``, ``flag`` (boolean switch), ``path`` (an existing
    file), ``choice`` (one of ``choices``), ``list`` (comma-separated names → list of str) or
    ``pair`` (``LO,HI`` with LO < HI → tuple of two floats).  ``minimum`` bounds ``int`` and
    ``float`` values from below (inclusive).  ``metavar`` names the value in ``--help``.
    """

    name: str
    help: str
    kind: str = "str"
    default: object = None
    required: bool = False
    choices: tuple = ()
    minimum: object = None
    metavar: str = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"option name must be a Python identifier, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: kind must be one of {', '.join(KINDS)}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"option {self.name}: a choice needs choices")
        if self.kind == "choice" and self.default is not None and self.default not in self.choices:
            raise ValueError(f"option {self.name}: default {self.default!r} is not a choice")

    @property
    def flag(self):
        """The command-line spelling: ``--name-with-dashes``."""
        return "--" + self.name.replace("_", "-")


def convert(option, value):
    """``value`` (text from the command line, or a Python value) as the option's type.

    Raises ValueError with a message naming what was expected.
    """
    if value is None:
        return None
    kind = option.kind
    if kind == "flag":
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if kind in ("str", "path"):
        return str(value)
    if kind in ("int", "float"):
        try:
            out = int(value) if kind == "int" else float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"{option.flag}: expected {'an integer' if kind == 'int' else 'a number'}, "
                f"got {value!r}"
            ) from None
        if kind == "int" and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{option.flag}: expected an integer, got {value!r}")
        if option.minimum is not None and out < option.minimum:
            raise ValueError(f"{option.flag}: must be ≥ {option.minimum}, got {value!r}")
        return out
    if kind == "choice":
        if value not in option.choices:
            raise ValueError(
                f"{option.flag}: must be one of {', '.join(map(str, option.choices))}, "
                f"got {value!r}"
            )
        return value
    if kind == "list":
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return [str(v) for v in value]
    if kind == "pair":
        try:
            lo, hi = (float(v) for v in (value.split(",") if isinstance(value, str) else value))
        except (TypeError, ValueError):
            raise ValueError(f"{option.flag}: expected LO,HI, got {value!r}") from None
        if not lo < hi:
            raise ValueError(f"{option.flag}: need LO < HI, got {value!r}")
        return lo, hi
    raise ValueError(f"{option.flag}: unknown kind {kind!r}")  # pragma: no cover


def resolve(options, given):
    """Defaults of ``options`` updated with the converted values of ``given`` (a dict).

    Unknown names in ``given`` are ignored (a command's other settings travel in the same dict).
    Raises ValueError for a bad value or a missing required option.
    """
    out = {}
    for option in options:
        value = given.get(option.name)
        if value is None:
            if option.required:
                raise ValueError(f"{option.flag} is required")
            value = option.default
        out[option.name] = convert(option, value)
    return out


def check_options(options, owner):
    """Raise TypeError unless ``options`` is a tuple/list of distinct :class:`Option`."""
    if not isinstance(options, (tuple, list)):
        raise TypeError(f"{owner}: options must be a tuple of galtools.params.Option")
    seen = set()
    for option in options:
        if not isinstance(option, Option):
            raise TypeError(f"{owner}: option {option!r} is not a galtools.params.Option")
        if option.name in seen:
            raise TypeError(f"{owner}: option '{option.name}' declared twice")
        seen.add(option.name)
