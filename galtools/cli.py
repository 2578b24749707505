"""The ``galprep`` command: a click group whose subcommands are ``galtools.commands`` entries.

Built-in commands are registered through the same entry-point group as third-party ones.  A
plugin that fails to import or to keep its group's contract is listed with a mark and its
reason; running it says which distribution provided it.  Errors are one line,
``galprep TOOL: error: …`` (exit 1; 2 for usage errors), with the traceback only under
``--debug`` (for a broken plugin: the chain down to the plugin's own exception).
"""

import signal
import sys

import click

from galtools import __version__, options, registry
from galtools.allocator import keep_freed_memory
from galtools.errors import GalError
from galtools.settings import state

GROUP = "galtools.commands"
BROKEN_MARK = "✗"


def broken_command(name, entry, reason, what="plugin command", cause=None):
    """A stand-in command for a broken entry: listed with a mark, fails when run.

    Running it raises GalError ``from`` the entry's original exception (or ``cause``), so
    ``--debug`` shows the plugin's own traceback.
    """

    def run(args=()):
        raise GalError(
            f"{what} '{name}' from {entry.dist} {entry.version} ({entry.value}) is broken: {reason}"
        ) from (cause if cause is not None else entry.exception)

    return click.Command(
        name,
        callback=run,
        context_settings={"ignore_unknown_options": True},
        # --debug/-v/-q still count (the rest is whatever the user meant for the plugin)
        params=[
            click.Argument(["args"], nargs=-1, type=click.UNPROCESSED),
            *reversed(options.common(lambda: None).__click_params__),
        ],
        short_help=f"{BROKEN_MARK} broken plugin ({entry.dist}): {reason}",
        help=f"This {what}'s plugin ({entry.dist} {entry.version}) is broken: {reason}",
        add_help_option=False,
    )


class PluginGroup(click.Group):
    """Subcommands made from the entries of an entry-point group (``galtools.commands``).

    An entry that fails to load or to pass its group's check (see
    :data:`galtools.registry.CHECKS`), or whose command cannot be made, becomes a
    :func:`broken_command`: the group and its other subcommands keep working.
    """

    entry_group = GROUP
    what = "plugin command"

    def make_command(self, name, obj, entry):
        """The click command for a loaded (and checked) entry: here, the entry itself."""
        return obj

    def list_commands(self, ctx):
        return list(registry.entries(self.entry_group))

    def get_command(self, ctx, name):
        entry = registry.entries(self.entry_group).get(name)
        if entry is None:
            return None
        try:
            obj = entry.load()
        except GalError:
            return broken_command(name, entry, entry.error, self.what)
        try:
            return self.make_command(name, obj, entry)
        except Exception as exc:  # a plugin's data the command cannot use
            reason = (registry.check_reason(exc).splitlines() or [""])[0]
            return broken_command(name, entry, reason, self.what, cause=exc)


class MainGroup(PluginGroup):
    """The galprep group: also remembers which tool runs (for one-line error messages)."""

    def resolve_command(self, ctx, args):
        name, cmd, rest = super().resolve_command(ctx, args)
        state.tool = name or ""
        return name, cmd, rest


@click.group(
    cls=MainGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="galprep")
def cli():
    """galprep: galaxy images in, machine learning out.

    Small tools that read and write galaxy array files (.h5 / .npz) and chain in shell
    pipelines (``-`` is stdin/stdout) and SLURM batch scripts.  Run ``galprep TOOL --help``
    for one tool, ``galprep plugins`` for what is installed.  GALPREP_PLUGINS=none (or a
    comma-separated list of names) limits which third-party plugins load.
    """


def _fail(prefix, message, code):
    click.echo(f"{prefix}: error: {message}", err=True)
    return code


def _prefix():
    return f"galprep {state.tool}" if state.tool else "galprep"


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    """Console-script entry point."""
    state.__init__()  # fresh settings per invocation (tests call main() in-process)
    keep_freed_memory()
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)  # unwind: temporary outputs are removed
    try:
        rv = cli.main(args=argv, prog_name="galprep", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        code = _fail(_prefix(), "interrupted", 130)
    except click.UsageError as exc:
        prefix = exc.ctx.command_path if exc.ctx is not None else _prefix()
        msg = exc.format_message()
        if exc.ctx is not None:
            msg += f" (see '{exc.ctx.command_path} --help')"
        code = _fail(prefix, msg, 2)
    except click.ClickException as exc:
        code = _fail(_prefix(), exc.format_message(), exc.exit_code)
    except GalError as exc:
        if state.debug:
            raise
        code = _fail(
            _prefix(), str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc.exit_code
        )
    except BrokenPipeError:
        sys.stderr.close()  # reader went away (e.g. `| head`): not an error
        code = 0
    except MemoryError:
        if state.debug:
            raise
        code = _fail(_prefix(), "out of memory (try a smaller --chunk-size)", 1)
    except Exception as exc:
        if state.debug:
            raise
        text = str(exc).splitlines()[0] if str(exc) else ""
        code = _fail(
            _prefix(),
            f"unexpected {type(exc).__name__}: {text} (run with --debug for the traceback)",
            1,
        )
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
