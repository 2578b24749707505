"""Options shared by every galprep command, defined once (the click layer).

Commands stack these decorators; ``common`` (-q/-v/--debug) is on every command and sets the
process-wide :data:`galtools.settings.state` read by :mod:`galtools.progress` and the error
handler in :mod:`galtools.cli`.  ``State``/``state``, ``Shard``, ``parse_shard``,
``shard_from_env`` and ``n_jobs`` live in :mod:`galtools.settings` (no click) and are re-exported
here for plugins that use ``galtools.options.state`` or ``options.Shard``.
"""

import click

from galtools.settings import (  # noqa: F401  (re-exported for plugins)
    Shard,
    State,
    default_jobs,
    n_jobs,
    parse_shard,
    shard_from_env,
    state,
)


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

jobs = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: all cores).",
)


def tta(help):
    """``--tta K``: test-time augmentation over K of the eight flips and quarter turns."""
    return click.option(
        "--tta", type=click.IntRange(1, 8), default=1, show_default=True, metavar="K", help=help
    )


def _shard_callback(ctx, param, value):
    try:
        if value is None:
            return shard_from_env() or Shard()
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
