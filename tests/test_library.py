"""The library has no side effects on its caller through imports: library modules do not import
the click layer, and galtools modules import each other without cycles."""

import ast
import json
import os
import pkgutil
import subprocess
import sys

import pytest

import galtools

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.dirname(galtools.__file__)
CLI_LAYER = ("galtools.cli", "galtools.options", "galtools.manpage", "galtools.commands")
FORBIDDEN = ("click", "galtools.options")


def _is_cli(name):
    return any(name == c or name.startswith(c + ".") for c in CLI_LAYER)


def modules(path=PACKAGE, prefix="galtools"):
    """{module name: file} of every galtools module, found by pkgutil without importing any."""
    found = {prefix: os.path.join(path, "__init__.py")}
    for info in pkgutil.iter_modules([path]):
        name = f"{prefix}.{info.name}"
        if info.ispkg:
            found.update(modules(os.path.join(path, info.name), name))
        else:
            found[name] = os.path.join(path, info.name + ".py")
    return found


def test_library_modules_do_not_import_the_cli_layer():
    """Every library module (galtools minus cli, options, manpage and commands) imported in a
    fresh interpreter leaves click and galtools.options unimported."""
    library = sorted(m for m in modules() if not _is_cli(m))
    assert {"galtools.progress", "galtools.settings", "galtools.augment", "galtools.stamps"} <= set(
        library
    )
    assert {"galtools.models", "galtools.metrics.morphology", "galtools.train.loop"} <= set(library)
    code = (
        "import importlib, json, sys\n"
        f"forbidden = {FORBIDDEN!r}\n"
        "found, seen = {}, set()\n"
        f"for name in {library!r}:\n"
        "    importlib.import_module(name)\n"
        "    bad = [m for m in forbidden if m in sys.modules and m not in seen]\n"
        "    if bad:\n"
        "        found[name] = bad\n"
        "        seen.update(bad)\n"
        "print(json.dumps(found))\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    found = json.loads(r.stdout.strip().splitlines()[-1])
    assert found == {}, f"library modules importing the click layer (first culprits): {found}"


def _top_level_imports(tree):
    """Import nodes run when the module is imported: the body, and inside top-level if/try/with
    blocks, but not under ``if TYPE_CHECKING:`` nor inside functions or classes' methods."""
    todo, out = list(tree.body), []
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        elif isinstance(node, ast.If):
            typing_only = "TYPE_CHECKING" in ast.unparse(node.test)
            todo += ([] if typing_only else node.body) + node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                todo += handler.body
        elif isinstance(node, (ast.With, ast.ClassDef)):
            todo += node.body
    return out


def import_graph(known):
    """{module: set of galtools modules its module-level imports load}.

    ``import a.b.c`` / ``from a.b import c`` also run ``a`` and ``a.b``: those packages count,
    except the importing module's own ancestors (always imported before it) unless named
    explicitly."""
    graph = {}
    for name, path in known.items():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        targets = set()
        for node in _top_level_imports(tree):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
                continue
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in known else base)
        edges = set()
        for target in targets:
            if not target.startswith("galtools"):
                continue
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            edges.add(target)  # named explicitly
            parent = target.rpartition(".")[0]
            while parent:
                if not name.startswith(parent + "."):
                    edges.add(parent)
                parent = parent.rpartition(".")[0]
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_cycles(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    pkg = tmp_path / "galtools"
    (pkg / "metrics").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "errors.py": "def f():\n    import galtools.metrics.plots\n",
        "metrics/__init__.py": "from galtools.errors import f\n",
        "metrics/morph.py": "import os\nfrom galtools.metrics.plots import plot\n",
        "metrics/plots.py": "try:\n    from . import morph\nexcept ImportError:\n    pass\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    graph = import_graph(modules(str(pkg)))
    assert graph["galtools.metrics.morph"] == {"galtools.metrics.plots"}
    assert graph["galtools.metrics.plots"] == {"galtools.metrics.morph"}
    assert graph["galtools.errors"] == set()  # function level: not counted
    assert cycles(graph) == [["galtools.metrics.morph", "galtools.metrics.plots"]]
    src = "if TYPE_CHECKING:\n    import x\nelse:\n    import v\nwith c:\n    import y\n"
    names = {a.name for n in _top_level_imports(ast.parse(src)) for a in n.names}
    assert names == {"v", "y"}


def test_no_import_cycles():
    """No cycle among galtools modules through their module-level imports.

    Imports inside functions are deliberately not counted: they run when the function is
    called, after every module involved has finished importing, so they cannot see a
    half-initialised module; they are how heavy or optional modules stay out of ``galprep
    --help``.  (Function-level cycles exist by design, e.g. galtools.registry checks a model
    entry with galtools.models.check while galtools.models loads entries through the registry.)
    """
    known = modules()
    graph = import_graph(known)
    assert "galtools.settings" in graph["galtools.progress"]
    assert "galtools.metrics" in graph["galtools.metrics.morphology"]
    assert cycles(graph) == []


# ----------------------------------------------------------------------------- settings


def test_settings_are_shared_with_the_click_layer():
    """Plugins written against ``galtools.options.state`` / ``options.Shard`` keep working."""
    from galtools import options, progress, settings

    assert options.state is settings.state and options.Shard is settings.Shard
    assert options.parse_shard is settings.parse_shard and options.n_jobs is settings.n_jobs
    assert progress.state is settings.state


def test_state_silences_the_library(capsys, monkeypatch):
    from galtools import progress, settings

    monkeypatch.setattr(settings.state, "quiet", False)
    monkeypatch.setattr(settings.state, "verbose", 1)
    progress.say("hello")
    progress.detail("more")
    progress.detail("even more", level=2)
    assert capsys.readouterr().err == "hello\nmore\n"
    settings.state.quiet = True
    progress.say("hello")
    progress.detail("more")
    assert capsys.readouterr().err == ""


def test_shard_checks_itself():
    from galtools.settings import Shard, default_jobs, n_jobs, shard_from_env

    assert Shard(2, 3).bounds(9) == (6, 9)
    for index, count in ((3, 3), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match=f"shard {index}/{count}: need 0 <= index < count"):
            Shard(index, count)
    with pytest.raises(TypeError, match="must be integers"):
        Shard(0.5, 2)
    env = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4"}
    with pytest.raises(ValueError, match="SLURM array variables do not give a shard"):
        shard_from_env(env)
    assert n_jobs(3) == 3 and n_jobs(None) == default_jobs() >= 1


def test_bad_slurm_shard_is_a_usage_error(galprep, small_file, tmp_path, monkeypatch):
    src = small_file()
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.delenv("SLURM_ARRAY_TASK_MIN", raising=False)
    r = galprep("augment", src, "-o", tmp_path / "o.h5")
    assert r.code == 2, r.stderr
    assert "--shard" in r.stderr and "SLURM array variables do not give a shard" in r.stderr
