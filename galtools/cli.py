"""The ``galprep`` command: a click group whose subcommands are ``galtools.commands`` entries.

Built-in commands are registered through the same entry-point group as third-party ones.  A
plugin that fails to import is listed with a mark and its reason; running it says which
distribution provided it.  Errors are one line, ``galprep TOOL: error: …`` (exit 1; 2 for
usage errors), with the traceback only under ``--debug``.
"""

import signal
import sys

import click

from galtools import __version__, registry
from galtools.allocator import keep_freed_memory
from galtools.errors import GalError
from galtools.options import state

GROUP = "galtools.commands"
BROKEN_MARK = "✗"


def broken_command(name, entry, reason, what="plugin command"):
    """A stand-in command for an entry that does not load: listed with a mark, fails when run."""

    def run(args=()):
        raise GalError(
            f"{what} '{name}' from {entry.dist} {entry.version} "
            f"({entry.value}) failed to load: {reason}"
        )

    return click.Command(
        name,
        callback=run,
        context_settings={"ignore_unknown_options": True},
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        short_help=f"{BROKEN_MARK} broken plugin ({entry.dist}): {reason}",
        help=f"This {what}'s plugin ({entry.dist} {entry.version}) failed to load: {reason}",
        add_help_option=False,
    )


class PluginGroup(click.Group):
    """Subcommands made from the entries of an entry-point group (``galtools.commands``)."""

    entry_group = GROUP
    what = "plugin command"

    def make_command(self, name, obj, entry):
        """The click command for a loaded entry (here: the entry must be one)."""
        if not isinstance(obj, click.Command):
            return broken_command(
                name,
                entry,
                f"{entry.value} is a {type(obj).__name__}, not a click command",
                self.what,
            )
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
        return self.make_command(name, obj, entry)


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
