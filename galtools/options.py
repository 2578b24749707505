"""Options shared by every galprep command, defined once.

Commands stack these decorators; ``common`` (-q/-v/--debug) is on every command and sets
process-wide state read by :mod:`galtools.progress` and the error handler in :mod:`galtools.cli`.
"""

import os
import re
from dataclasses import dataclass, field

import click


@dataclass
class State:
    """Per-invocation settings from the common options."""

    quiet: bool = False
    verbose: int = 0
    debug: bool = field(default_factory=lambda: bool(os.environ.get("GALPREP_DEBUG")))
    tool: str = ""


state = State()


def _set(attr):
    def callback(ctx, param, value):
        if value:
            setattr(state, attr, value)
        return value

    return callback


def common(f):
    """-q/--quiet, -v/--verbose, --debug: on every command."""
    f = click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set("debug"),
        help="Show the full traceback on errors.",
    )(f)
    f = click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_set("verbose"),
        help="Say more (repeat for more).",
    )(f)
    f = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_set("quiet"),
        help="No progress bars or chatter.",
    )(f)
    return f


def output(required=True, help="Output file (.h5 or .npz; '-' writes npz to stdout)."):
    """-o/--output."""
    return click.option("-o", "--output", "output", required=required, metavar="OUT", help=help)


overwrite = click.option(
    "--overwrite", is_flag=True, help="Replace an existing output (never done otherwise)."
)

seed = click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for every random choice."
)

compression = click.option(
    "--compress",
    "compression",
    type=click.Choice(["none", "gzip", "lzf"]),
    default="none",
    show_default=True,
    help="Compression of image data in .h5 outputs.",
)


def _jobs_default():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


jobs = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: all cores).",
)


def n_jobs(value):
    """The number of worker processes for a --jobs value (None = all cores)."""
    return value or _jobs_default()


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    def __str__(self):
        return f"{self.index}/{self.count}"

    def bounds(self, n):
        """[start, stop) of this shard's contiguous part of n items."""
        start = n * self.index // self.count
        stop = n * (self.index + 1) // self.count
        return start, stop

    def select(self, items):
        """This shard's contiguous part of a sequence."""
        start, stop = self.bounds(len(items))
        return items[start:stop]

    def output_path(self, path):
        """``out.h5`` → ``out.shard003-of-008.h5`` when sharded, else unchanged."""
        if self.count == 1 or path == "-":
            return path
        root, ext = os.path.splitext(path)
        return f"{root}.shard{self.index:03d}-of-{self.count:03d}{ext}"


def parse_shard(text):
    """'K/N' (0-based K) → Shard; raise ValueError when malformed."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise ValueError(f"shard must look like K/N, got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"shard {text!r}: need 0 <= K < N")
    return Shard(k, n)


def shard_from_env(env=None):
    """The shard given by SLURM array variables, or None."""
    env = os.environ if env is None else env
    if "SLURM_ARRAY_TASK_ID" not in env:
        return None
    task = int(env["SLURM_ARRAY_TASK_ID"])
    lo = int(env.get("SLURM_ARRAY_TASK_MIN", 0))
    if "SLURM_ARRAY_TASK_COUNT" in env:
        count = int(env["SLURM_ARRAY_TASK_COUNT"])
    else:
        count = int(env.get("SLURM_ARRAY_TASK_MAX", task)) - lo + 1
    return Shard(task - lo, count)


def _shard_callback(ctx, param, value):
    if value is None:
        return shard_from_env() or Shard()
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


shard = click.option(
    "--shard",
    callback=_shard_callback,
    metavar="K/N",
    default=None,
    help="Process only part K of N (0-based); default from SLURM_ARRAY_TASK_ID/COUNT. "
    "The shard's output gets a .shardKKK-of-NNN suffix; a shard whose output exists is skipped.",
)


def chunk_size(default=None):
    return click.option(
        "--chunk-size",
        type=click.IntRange(min=1),
        default=default,
        help="Images per chunk read/written at once (default: ~64 MB of images).",
    )


def provenance(inputs=(), **extra):
    """A history entry for the running command from the click context."""
    from galtools.meta import history_entry

    ctx = click.get_current_context(silent=True)
    tool = ctx.info_name if ctx else state.tool
    params = dict(ctx.params) if ctx else {}
    params.update(extra)
    return history_entry(tool, params, inputs)


def from_param(spec):
    """A click option decorator from a plugin's :class:`galtools.params.Option`."""
    from galtools import params

    flag = spec.flag
    if spec.kind == "flag":
        return click.option(
            flag, spec.name, is_flag=True, default=bool(spec.default), help=spec.help
        )

    def callback(ctx, param, value):
        try:
            return params.convert(spec, value)
        except ValueError as exc:
            raise click.BadParameter(str(exc).split(": ", 1)[-1]) from None

    kinds = {
        "path": click.Path(exists=True, dir_okay=False),
        "choice": click.Choice([str(c) for c in spec.choices]),
    }
    default = spec.default
    if spec.kind in ("list", "pair") and isinstance(default, (list, tuple)):
        default = ",".join(str(v) for v in default)
    return click.option(
        flag,
        spec.name,
        type=kinds.get(spec.kind, str),
        default=default,
        required=spec.required,
        show_default=default is not None and default != "",
        metavar=spec.metavar,
        callback=None if spec.kind in ("path", "choice") else callback,
        help=spec.help,
    )


def from_params(specs):
    """One decorator adding every option of ``specs`` (in order) to a click command."""

    def decorate(f):
        for spec in reversed(tuple(specs)):
            f = from_param(spec)(f)
        return f

    return decorate
