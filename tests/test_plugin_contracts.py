"""One contract per entry-point group, enforced: broken plugins are listed, isolated and traced.

Throwaway plugins are installed as real dist-info directories on PYTHONPATH (no patching).
"""

import json
import os
import re

import numpy as np
import pytest

from galtools import registry
from galtools.arrayfile import write_galaxies
from galtools.meta import new_meta
from tests.galaxy_sims import population
from tests.test_plugins import make_dist, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SOURCE = '''
    import numpy as np

    from galtools.importers import Importer
    from galtools.models import ModelSpec
    from galtools.params import Option


    # ----------------------------------------------------------------------------- metrics
    class Sharp:
        """An image metric with an option of its own."""

        name = "sharp"
        kind = "images"
        title = "Mean absolute pixel value"
        options = (
            Option("sharp_sigma", "Smoothing scale of sharp.", "float", 2.0, minimum=0,
                   metavar="S"),
        )

        def accumulator(self, settings):
            return SharpAccumulator(settings)

        def summary(self, res, bands):
            return {"n": res["n"], "sigma": res["sigma"]}

        def compare(self, a, b, settings, bands):
            return {"sigma_seen": settings["sharp_sigma"], "difference": abs(a["mean"] - b["mean"])}

        def table(self, res, bands):
            return {"sharp": np.full(res["n"], res["sigma"])}


    class SharpAccumulator:
        def __init__(self, settings):
            self.sigma = settings["sharp_sigma"]
            self.n, self.total = 0, 0.0

        def add(self, images):
            self.n += len(images)
            self.total += float(np.abs(images).sum())

        def result(self):
            return {"n": self.n, "sigma": self.sigma, "mean": self.total / max(self.n, 1)}


    class Fancy:
        """A metric whose constructor fails."""

        name = "fancy"
        kind = "features"
        title = "Fancy"

        def __init__(self):
            raise RuntimeError("no GPU here")

        def compare(self, a, b, settings):
            return {}


    class OtherBand:
        """Declares --band unlike the built-in image metrics."""

        name = "otherband"
        kind = "features"
        title = "Other band"
        options = (Option("band", "A band index.", "int", 0),)

        def compare(self, a, b, settings):
            return {}


    class Seedy:
        """Declares a setting of galprep metrics itself."""

        name = "seedy"
        kind = "features"
        title = "Seedy"
        options = (Option("seed", "Its own seed.", "int", 1),)

        def compare(self, a, b, settings):
            return {}


    # --------------------------------------------------------------------------- importers
    class NoOptions:
        name = "no-options"
        summary = "An importer without options."

        def count(self, source):
            return 0

        def read(self, source, start=0, stop=None, chunk_size=256):
            return {}
            yield


    no_options = NoOptions()


    class Clash(Importer):
        name = "clash"
        summary = "An importer reusing --bands."
        options = (Option("bands", "Its own bands."),)


    clash = Clash()


    # ------------------------------------------------------------------------------ models
    class NoTask:
        name = "notask"
        kind = "keras"
        description = "A spec without a task."
        options = ()
        abilities = frozenset({"predicts"})

        def configure(self, options, info):
            return {}

        def build(self, config):
            raise NotImplementedError


    notask = NoTask()


    class Renamed(ModelSpec):
        name = "other-name"
        task = "denoise"

        def build(self, config):
            raise NotImplementedError


    renamed = Renamed()

    # ---------------------------------------------------------------------------- commands
    not_a_command = 42


    # ---------------------------------------------------------------------------- features
    class NoDim:
        name = "nodim"
        input = "raw"
        default_protocol = "raw"

        def features(self, images):
            return np.zeros((len(images), 3), np.float32)

        def describe(self):
            return {"name": "nodim"}


    def nodim(arg=None):
        return NoDim()


    not_callable = "features"
'''

ENTRIES = {
    "galtools.metrics": {
        "sharp": "galtools_contracts:Sharp",
        "fancy": "galtools_contracts:Fancy",
        "otherband": "galtools_contracts:OtherBand",
        "seedy": "galtools_contracts:Seedy",
    },
    "galtools.importers": {
        "no-options": "galtools_contracts:no_options",
        "clash": "galtools_contracts:clash",
    },
    "galtools.models": {
        "notask": "galtools_contracts:notask",
        "renamed": "galtools_contracts:renamed",
    },
    "galtools.commands": {"notcmd": "galtools_contracts:not_a_command"},
    "galtools.features": {
        "nodim": "galtools_contracts:nodim",
        "uncallable": "galtools_contracts:not_callable",
    },
}


@pytest.fixture
def plugin_root(tmp_path):
    root = tmp_path / "site"
    make_dist(root, "galtools-contracts", "galtools_contracts", ENTRIES, SOURCE)
    return root


@pytest.fixture
def sets(tmp_path):
    paths = []
    for seed in (1, 2):
        path = tmp_path / f"set{seed}.h5"
        images = population(6, 16, seed=seed, bands=3)
        ids = np.array([f"g{i}" for i in range(6)])
        write_galaxies(path, {"images": images, "ids": ids}, new_meta(bands=list("gri")))
        paths.append(path)
    return paths


def status(root):
    r = run(root, "plugins", "--json")
    assert r.returncode == 0, r.stderr
    return {
        group: {row["name"]: row for row in rows} for group, rows in json.loads(r.stdout).items()
    }


def one_line(r, *fragments):
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ------------------------------------------------------------------------------- listing


def test_each_broken_entry_is_listed_with_its_reason(plugin_root):
    rows = status(plugin_root)
    expected = {
        "galtools.metrics": {
            "fancy": "Fancy() raised RuntimeError: no GPU here",
            "seedy": "option 'seed' is a setting of galprep metrics itself",
        },
        "galtools.importers": {
            "no-options": "importer no-options: no options",
            "clash": "option 'bands' is a setting of galprep import itself",
        },
        "galtools.models": {
            "notask": "model notask: task None is not one of",
            "renamed": "model spec is named 'other-name' but registered as 'renamed'",
        },
        "galtools.commands": {"notcmd": "a int, not a click command"},
        "galtools.features": {"uncallable": "a str, not a callable"},
    }
    for group, broken in expected.items():
        for name, reason in broken.items():
            row = rows[group][name]
            assert row["status"] == "broken", row
            assert reason in row["error"] and row["dist"] == "galtools-contracts", row
    # passing its load-time check: an extractor factory (checked again on what it makes)
    assert rows["galtools.features"]["nodim"]["status"] == "ok"
    assert rows["galtools.metrics"]["sharp"]["status"] == "ok"
    # a different --band is a problem of galprep metrics only, not of the metric's contract
    assert rows["galtools.metrics"]["otherband"]["status"] == "ok"
    text = run(plugin_root, "plugins", "--group", "models").stdout
    line = next(ln for ln in text.splitlines() if "notask" in ln)
    assert line.lstrip().startswith("✗") and "BROKEN: model notask: task None" in line


def test_builtins_pass_their_checks_and_every_group_is_documented():
    r = run(ROOT, "plugins", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert set(report) == set(registry.GROUPS)
    for rows in report.values():
        for row in rows:
            if row["builtin"] or row["dist"].startswith("galtools-"):  # first-party too
                assert row["status"] == "ok", row
    with open(os.path.join(ROOT, "plugins", "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    sections = re.split(r"^### ", readme, flags=re.M)
    for group in registry.GROUPS:
        section = next((s for s in sections if s.startswith(f"`{group}`")), None)
        assert section is not None, f"plugins/README.md has no section for {group}"
        assert "**Checked**" in section, f"plugins/README.md does not say what {group} checks"
    assert set(registry.CHECKS) == set(registry.GROUPS)


def test_importer_option_names_reserved_match_the_command():
    """COMMAND_OPTIONS names every parameter galprep import adds to a format's own."""
    from galtools.commands.import_ import build_command
    from galtools.importers import COMMAND_OPTIONS
    from galtools.importers.npy import importer

    command = build_command(importer)
    own = {o.name for o in importer.options}
    for param in command.params:
        if param.name in own:
            continue
        assert param.name in COMMAND_OPTIONS, param.name
        for flag in param.opts:
            if flag.startswith("--"):
                assert flag[2:].replace("-", "_") in COMMAND_OPTIONS, flag


def test_metric_settings_reserved_match_the_command():
    from galtools.commands.metrics import metrics
    from galtools.metrics import COMMAND_SETTINGS

    for param in metrics.params:
        assert param.name in COMMAND_SETTINGS, param.name


# ------------------------------------------------------------------------------- isolation


def test_broken_metric_leaves_galprep_metrics_working(plugin_root, sets, tmp_path):
    a, b = sets
    r = run(plugin_root, "metrics", "--help")
    assert r.returncode == 0, r.stderr
    assert "--power" in r.stdout and "--sharp-sigma" in r.stdout and "--fancy" not in r.stdout
    broken = r.stdout.split("Broken metrics")[1]
    assert "✗ fancy" in broken and "Fancy() raised RuntimeError: no GPU here" in broken
    assert "✗ otherband" in broken and "--band differs from metric 'morph'" in broken
    assert "--band BAND" in r.stdout  # the built-ins' declaration wins
    out = tmp_path / "r.json"
    r = run(plugin_root, "metrics", a, b, "--power", "--band", "r", "-o", out)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["metrics"]["power"]["bands"].keys() == {"r"}
    r = run(plugin_root, "metrics", a, b, "--metric", "fancy", "-o", tmp_path / "f.json")
    one_line(r, "galtools-contracts 1.2.3", "is broken: Fancy() raised RuntimeError: no GPU here")
    assert not (tmp_path / "f.json").exists()


def test_all_skips_broken_metrics_and_says_so(plugin_root, sets, tmp_path):
    a, _ = sets
    out = tmp_path / "t.json"
    r = run(plugin_root, "metrics", a, "--all", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "metric 'fancy' is broken, skipped: Fancy() raised RuntimeError" in r.stderr
    got = json.loads(out.read_text())["metrics"]
    assert set(got) == {"morph", "power", "sharp"}  # no features metric for one set
    assert got["sharp"] == {"n": 6, "sigma": 2.0}


def test_third_party_metric_option_reaches_the_metric(plugin_root, sets, tmp_path):
    a, b = sets
    r = run(plugin_root, "metrics", "--help")
    assert re.search(r"--sharp-sigma S\s+Smoothing scale of sharp\.\s+\[default: 2\.0\]", r.stdout)
    assert re.search(r"--sharp\s+Mean absolute pixel value\.", r.stdout)
    out = tmp_path / "r.json"
    r = run(plugin_root, "metrics", a, b, "--sharp", "--sharp-sigma", "3.5", "-o", out)
    assert r.returncode == 0, r.stderr
    sharp = json.loads(out.read_text())["metrics"]["sharp"]
    assert sharp["sigma_seen"] == 3.5 and sharp["real"] == {"n": 6, "sigma": 3.5}
    assert sharp["other"]["n"] == 6 and sharp["difference"] > 0
    r = run(plugin_root, "metrics", a, "--metric", "sharp", "-o", tmp_path / "t.csv")
    assert r.returncode == 0, r.stderr
    rows = (tmp_path / "t.csv").read_text().splitlines()
    assert rows[0] == "id,sharp" and rows[1] == "g0,2" and len(rows) == 7
    r = run(plugin_root, "metrics", a, b, "--sharp", "--sharp-sigma", "-1", "-o", out)
    assert r.returncode == 2 and "--sharp-sigma" in r.stderr and "≥ 0" in r.stderr


def test_broken_importer_leaves_galprep_import_working(plugin_root, tmp_path):
    r = run(plugin_root, "import", "--help")
    assert r.returncode == 0, r.stderr
    assert "npy" in r.stdout and "galaxy10" in r.stdout
    line = next(ln for ln in r.stdout.splitlines() if "no-options" in ln)
    assert "✗" in line and "galtools-contracts" in line
    assert run(plugin_root, "import", "npy", "--help").returncode == 0
    np.save(tmp_path / "x.npy", np.ones((3, 4, 4, 1), np.float32))
    r = run(plugin_root, "import", "npy", tmp_path / "x.npy", "-o", tmp_path / "x.h5")
    assert r.returncode == 0, r.stderr and (tmp_path / "x.h5").exists()
    r = run(plugin_root, "import", "no-options", tmp_path / "x.npy", "-o", tmp_path / "y.h5")
    one_line(r, "importer 'no-options' from galtools-contracts 1.2.3", "no options")
    r = run(plugin_root, "import", "clash", "--help")
    one_line(r, "option 'bands' is a setting of galprep import itself")


def test_broken_model_is_one_failing_choice(plugin_root, tmp_path):
    from tests.conftest import make_batch

    r = run(plugin_root, "train-batch", "--help")
    assert r.returncode == 0, r.stderr
    data = tmp_path / "d.h5"
    write_galaxies(data, make_batch(n=40, shape=(8, 8, 1)), new_meta(bands=["r"]))
    r = run(plugin_root, "train-batch", data, "-o", tmp_path / "x", "--model", "notask")
    one_line(r, "galtools-contracts 1.2.3", "task None is not one of")
    assert not (tmp_path / "x").exists()
    out = tmp_path / "ridge"
    args = ["--model", "ridge-histogram", "--target", "inclination", "-q"]
    r = run(plugin_root, "train-batch", data, "-o", out, *args)
    assert r.returncode == 0, r.stderr
    assert (out / "weights.npz").exists()


def test_non_command_entry_is_broken_and_others_work(plugin_root):
    r = run(plugin_root, "--help")
    assert r.returncode == 0
    line = next(ln for ln in r.stdout.splitlines() if "notcmd" in ln)
    assert "✗" in line and "galtools-contracts" in line and "not a click" in line
    one_line(run(plugin_root, "notcmd", "x"), "'notcmd' from galtools-contracts 1.2.3")
    assert run(plugin_root, "info", "--help").returncode == 0


def test_extractor_breaking_its_contract_is_one_line(plugin_root, sets, tmp_path):
    a, b = sets
    r = run(plugin_root, "metrics", a, b, "--fid", "--features", "nodim", "-o", tmp_path / "r")
    one_line(r, "galtools.features entry 'nodim' from galtools-contracts 1.2.3", "no dim")


# ---------------------------------------------------------------------------- tracebacks


def test_debug_shows_the_plugins_own_traceback(plugin_root, sets, tmp_path):
    a, b = sets
    module = str(plugin_root / "galtools_contracts.py")
    args = ["metrics", a, b, "--metric", "fancy", "-o", tmp_path / "r.json"]
    quiet = run(plugin_root, *args)
    assert "Traceback" not in quiet.stderr and module not in quiet.stderr
    loud = run(plugin_root, *args, "--debug")
    assert loud.returncode != 0
    # the chain: the plugin's constructor, the failed check, galtools' PluginError
    assert f'File "{module}"' in loud.stderr and 'raise RuntimeError("no GPU here")' in loud.stderr
    assert "RuntimeError: no GPU here" in loud.stderr
    assert "direct cause of the following exception" in loud.stderr
    assert loud.stderr.rstrip().splitlines()[-1].startswith("galtools.errors.PluginError: ")
    # a command entry failing its check
    loud = run(plugin_root, "notcmd", "--debug")
    assert "TypeError: a int, not a click command" in loud.stderr
    assert loud.stderr.rstrip().splitlines()[-1].startswith("galtools.errors.GalError: ")
