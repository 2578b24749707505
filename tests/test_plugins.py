"""Plugin discovery with real throwaway distributions on sys.path (no patching)."""

import json
import os
import subprocess
import sys
import textwrap

PY = sys.executable


def make_dist(root, dist, module, entry_points, source):
    """A minimal installed distribution: <dist>.dist-info + a module, found via sys.path."""
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


GOOD = """
    import click
    from galtools import options

    from galtools.models import ModelSpec

    @click.command(short_help="Say hello from a plugin.")
    @click.argument("name")
    @options.common
    def hello(name):
        click.echo(f"hello {name}")

    class Tiny(ModelSpec):
        name = "tiny"
        task = "denoise"

        def build(self, config):
            return "tiny"

    tiny = Tiny()

    def build_tiny(**kw):  # not a model spec: a broken entry
        return "tiny"
"""

BROKEN = """
    import numpy_that_does_not_exist  # noqa
"""


def run(root, *args, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(root), **(env_extra or {}))
    return subprocess.run(
        [PY, "-c", "from galtools.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
    )


def plugins_root(tmp_path):
    make_dist(
        tmp_path,
        "galtools-hello",
        "galtools_hello",
        {
            "galtools.commands": {"hello": "galtools_hello:hello"},
            "galtools.models": {
                "tiny": "galtools_hello:tiny",
                "oldstyle": "galtools_hello:build_tiny",
            },
        },
        GOOD,
    )
    make_dist(
        tmp_path,
        "galtools-broken",
        "galtools_broken",
        {"galtools.commands": {"kaputt": "galtools_broken:cmd"}},
        BROKEN,
    )
    return tmp_path


def test_third_party_command_runs(tmp_path):
    root = plugins_root(tmp_path)
    r = run(root, "hello", "world")
    assert r.returncode == 0 and r.stdout == "hello world\n"
    r = run(root, "--help")
    assert "hello" in r.stdout and "Say hello from a plugin." in r.stdout


def test_broken_plugin_is_marked_and_others_work(tmp_path):
    root = plugins_root(tmp_path)
    r = run(root, "--help")
    assert r.returncode == 0
    line = next(ln for ln in r.stdout.splitlines() if "kaputt" in ln)
    assert "✗" in line and "galtools-broken" in line
    r = run(root, "kaputt", "x", "--y")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1
    assert "galtools-broken 1.2.3" in r.stderr and "numpy_that_does_not_exist" in r.stderr
    assert run(root, "hello", "again").returncode == 0
    assert run(root, "info", "--help").returncode == 0


def test_galprep_plugins_env_limits_loading(tmp_path):
    root = plugins_root(tmp_path)
    r = run(root, "--help", env_extra={"GALPREP_PLUGINS": "none"})
    assert "kaputt" not in r.stdout and "hello" not in r.stdout and "info" in r.stdout
    r = run(root, "--help", env_extra={"GALPREP_PLUGINS": "hello"})
    assert "kaputt" not in r.stdout and "hello" in r.stdout
    r = run(root, "kaputt", env_extra={"GALPREP_PLUGINS": "hello"})
    assert r.returncode == 2 and "No such command" in r.stderr


def test_plugins_listing(tmp_path):
    root = plugins_root(tmp_path)
    r = run(root, "plugins", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    rows = {row["name"]: row for row in report["galtools.commands"]}
    assert rows["info"]["builtin"] and rows["info"]["status"] == "ok"
    assert rows["hello"]["dist"] == "galtools-hello" and rows["hello"]["version"] == "1.2.3"
    assert rows["kaputt"]["status"] == "broken" and "numpy_that" in rows["kaputt"]["error"]
    models = {row["name"]: row for row in report["galtools.models"]}
    assert models["tiny"]["status"] == "ok" and models["tiny"]["dist"] == "galtools-hello"
    assert models["oldstyle"]["status"] == "broken" and "has no name" in models["oldstyle"]["error"]
    r = run(root, "plugins", env_extra={"GALPREP_PLUGINS": "hello"})
    assert "kaputt" in r.stdout and "disabled by GALPREP_PLUGINS" in r.stdout


def test_registry_load_unknown_lists_known(tmp_path):
    root = plugins_root(tmp_path)
    code = (
        "from galtools import registry\n"
        "print(registry.load('galtools.models', 'tiny').build({}))\n"
        "try:\n    registry.load('galtools.models', 'nope', 'model')\n"
        "except Exception as e:\n    print(e)\n"
    )
    r = subprocess.run(
        [PY, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(root))
    )
    out = r.stdout.splitlines()
    assert out[0] == "tiny"
    assert out[1].startswith("unknown model 'nope'; known:") and "tiny" in out[1]


def test_debug_shows_the_broken_plugins_import_traceback(tmp_path):
    root = plugins_root(tmp_path)
    module = str(root / "galtools_broken.py")
    r = run(root, "kaputt", "x")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and module not in r.stderr
    r = run(root, "kaputt", "x", "--debug")
    assert r.returncode == 1
    assert f'File "{module}", line 2' in r.stderr
    assert "import numpy_that_does_not_exist" in r.stderr
    assert "ModuleNotFoundError: No module named 'numpy_that_does_not_exist'" in r.stderr
    assert "direct cause of the following exception" in r.stderr
    last = r.stderr.rstrip().splitlines()[-1]
    assert last.startswith("galtools.errors.GalError: plugin command 'kaputt' from galtools-broken")
