"""Man pages (troff) for galprep and each built-in command, generated from the click definitions.

``python -m galtools.manpage man`` writes ``man/galprep.1`` and ``man/galprep-TOOL.1``; a test
fails when a committed page differs from what this generates.
"""

import os
import sys

import click

from galtools import __version__, registry

SEE_ALSO_LIMIT = 40
FIRST_PARTY = "galtools-"  # plugin packages shipped under plugins/ get pages too


def _esc(text):
    text = text.replace("\\", "\\\\").replace("-", "\\-")
    lines = []
    for line in text.splitlines():
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _paragraphs(text):
    text = (text or "").strip()
    if not text:
        return []
    import inspect

    return [p.strip() for p in inspect.cleandoc(text).split("\n\n") if p.strip()]


def _option_lines(ctx, cmd):
    out = []
    for param in cmd.get_params(ctx):
        if isinstance(param, click.Argument):
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        name, help_text = record
        out.append(".TP")
        out.append(f"\\fB{_esc(name)}\\fR")
        out.append(_esc(help_text or ""))
    return out


def page(cmd, name, parent=None, summary=None):
    """Troff source of the man page for click command ``cmd``."""
    ctx = click.Context(cmd, info_name=name, parent=parent, **cmd.context_settings)
    title = name.replace(" ", "-").upper()
    summary = summary or cmd.get_short_help_str(limit=200)
    lines = [
        f'.TH "{title}" "1" "" "galtools {__version__}" "galtools manual"',
        ".SH NAME",
        f"{_esc(name.replace(' ', '-'))} \\- {_esc(summary)}",
        ".SH SYNOPSIS",
        f"\\fB{_esc(name)}\\fR {_esc(' '.join(cmd.collect_usage_pieces(ctx)))}",
        ".SH DESCRIPTION",
    ]
    for para in _paragraphs(cmd.help):
        lines += [".PP", _esc(para)]
    opts = _option_lines(ctx, cmd)
    if opts:
        lines += [".SH OPTIONS"] + opts
    return lines


def render_all():
    """{file name: troff text} for galprep and every loadable built-in command."""
    from galtools.cli import cli

    pages = {}
    root = click.Context(cli, info_name="galprep", **cli.context_settings)
    commands = {
        name: entry
        for name, entry in registry.entries("galtools.commands").items()
        if entry.builtin or entry.dist.lower().startswith(FIRST_PARTY)
    }
    main = page(cli, "galprep", summary="galaxy images in, machine learning out")
    main.append(".SH COMMANDS")
    for name in commands:
        cmd = cli.get_command(root, name)
        main += [".TP", f"\\fBgalprep {name}\\fR", _esc(cmd.get_short_help_str(limit=200))]
    main += [
        ".SH ENVIRONMENT",
        ".TP",
        "\\fBGALPREP_PLUGINS\\fR",
        "Comma\\-separated entry\\-point names of third\\-party plugins to load, or none.",
        ".TP",
        "\\fBSLURM_ARRAY_TASK_ID\\fR, \\fBSLURM_ARRAY_TASK_COUNT\\fR",
        "Default \\-\\-shard of commands that loop over data.",
        ".TP",
        "\\fBGALPREP_DEBUG\\fR",
        "Like \\-\\-debug: full tracebacks on errors.",
        ".SH SEE ALSO",
        ", ".join(f"\\fBgalprep\\-{n}\\fR(1)" for n in list(commands)[:SEE_ALSO_LIMIT]),
    ]
    pages["galprep.1"] = "\n".join(main) + "\n"
    for name in commands:
        cmd = cli.get_command(root, name)
        text = page(cmd, f"galprep {name}", parent=root)
        text += [".SH SEE ALSO", "\\fBgalprep\\fR(1)"]
        pages[f"galprep-{name}.1"] = "\n".join(text) + "\n"
    return pages


def write(directory):
    """Write every page into ``directory``; remove pages of commands that no longer exist."""
    os.makedirs(directory, exist_ok=True)
    pages = render_all()
    for old in os.listdir(directory):
        if old.startswith("galprep") and old.endswith(".1") and old not in pages:
            os.unlink(os.path.join(directory, old))
    for fname, text in pages.items():
        with open(os.path.join(directory, fname), "w", encoding="utf-8") as fh:
            fh.write(text)
    return sorted(pages)


if __name__ == "__main__":
    names = write(sys.argv[1] if len(sys.argv) > 1 else "man")
    print(f"wrote {len(names)} man pages")
