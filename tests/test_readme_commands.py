"""Every galprep command shown in the README parses: the tool exists, options and arguments are
valid (files need not exist).  The demo runs most of them for real; the pipes are run here."""

import os
import re
import shlex
import subprocess
import sys
import warnings

import click
import pytest

from galtools.cli import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_commands():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("#") or "galprep" not in line:
                continue
            for part in line.split("|"):
                words = shlex.split(part)
                if words and words[0] == "galprep":
                    commands.append(words[1:])
    return commands


COMMANDS = readme_commands()


def test_readme_shows_every_builtin_tool():
    from galtools import registry

    shown = {c[0] for c in COMMANDS if c}
    missing = set(registry.entries("galtools.commands")) - shown - {"plugins"}
    assert not missing, f"README shows no example of: {sorted(missing)}"


def _rest(ctx):
    with warnings.catch_warnings():  # click 8.2+: protected_args deprecated, still needed
        warnings.simplefilter("ignore", DeprecationWarning)
        return list(ctx.protected_args) + list(ctx.args)


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_readme_command_parses(args):
    root = cli.make_context("galprep", list(args), resilient_parsing=False)
    name, cmd, rest = cli.resolve_command(root, _rest(root))
    assert cmd is not None, f"unknown command {name}"
    try:
        sub = cmd.make_context(name, list(rest), parent=root)
        if isinstance(cmd, click.Group):  # galprep import FORMAT …
            _, fmt, more = cmd.resolve_command(sub, _rest(sub))
            fmt.make_context(args[1], list(more), parent=sub)
    except click.BadParameter as exc:
        if "does not exist" not in exc.format_message():  # example paths are not here
            raise


def test_readme_pipes_run(tmp_path):
    """The README's pipe example, for real (smaller)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    run = f"{shlex.quote(sys.executable)} -c 'from galtools.cli import main; main()'"
    cmd = (
        f"{run} simulate -n 20 --size 64 -q -o - | {run} resize - --size 32 -q -o - "
        f"| {run} info - --json"
    )
    r = subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert r.returncode == 0, r.stderr
    import json

    d = json.loads(r.stdout)
    assert d["n"] == 20 and d["image_shape"] == [32, 32, 3]
    assert [h["tool"] for h in d["history"]] == ["simulate", "resize"]
