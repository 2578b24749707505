"""Plotting has no side effects: the caller's matplotlib backend is kept, pyplot is never
imported, the PNGs are real pictures, and metrics.plots does not import metrics.morphology."""

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, os, sys
import matplotlib
matplotlib.use("svg")
import numpy as np

out = sys.argv[1]
from galtools.arrayfile import write_galaxies
from galtools.meta import new_meta
from tests.galaxy_sims import population

sets = []
for k, kw in enumerate([{}, {"noise": 3.0}]):
    path = os.path.join(out, f"set{k}.h5")
    write_galaxies(path, {"images": population(12, 24, seed=k, bands=3, **kw)},
                   new_meta(bands=list("gri")))
    sets.append(path)

from galtools.metrics.report import run_compare
run_compare(sets[0], sets[1], os.path.join(out, "m.json"), ["power", "morph"],
            plots=os.path.join(out, "plots"))

from galtools.train.report import plot_curves
steps = [{"step": s, "loss": 1.0 / s, "mae": 2.0 / s} for s in range(1, 20)]
evals = [{"step": s, "pass": 1, "file": 0, "epoch": 0, "val_loss": 1.0 / s} for s in (5, 10, 19)]
plot_curves(os.path.join(out, "curves.png"), {"steps": steps, "evals": evals})

from galtools.scoring import plot_confusion, plot_residuals
rng = np.random.default_rng(0)
truth = rng.uniform(0, 90, 50)
plot_residuals(os.path.join(out, "residuals.png"), truth + rng.normal(0, 3, 50), truth,
               "inclination", {"mae": 2.4, "rmse": 3.0, "bias": 0.1, "n": 50})
plot_confusion(os.path.join(out, "confusion.png"),
               {"counts": [[5, 1], [2, 7]], "classes": ["disk", "elliptical"]})

from galtools.denoising import plot_robustness
cell = lambda p: {"psnr": p, "mse": 10 ** (-p / 10)}
plot_robustness(os.path.join(out, "robustness.png"), {
    "cases": ["psf", "noise"], "n": 10,
    "without_denoising": {"psf": cell(20.0), "noise": cell(15.0)},
    "runs": [{"label": "run", "cases": {"psf": cell(25.0), "noise": cell(22.0)}}]})

from galtools.montage import save_montage
save_montage(os.path.join(out, "montage.png"), population(6, 24, seed=3, bands=3), columns=3,
             scale=4)

print(json.dumps({"backend": matplotlib.get_backend(),
                  "pyplot": "matplotlib.pyplot" in sys.modules}))
"""

PNGS = {
    "plots/power_1d.png",
    "plots/power_2d.png",
    "plots/morphology.png",
    "curves.png",
    "residuals.png",
    "confusion.png",
    "robustness.png",
    "montage.png",
}


def test_plotting_keeps_the_backend_and_never_imports_pyplot(tmp_path):
    from PIL import Image

    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="")
    env.pop("MPLBACKEND")
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    state = json.loads(r.stdout.strip().splitlines()[-1])
    assert state == {"backend": "svg", "pyplot": False}
    for name in sorted(PNGS):
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG", name
            img.load()  # the whole picture decodes
            w, h = img.size
            assert 100 <= w <= 4000 and 60 <= h <= 3000, (name, img.size)
            assert len(np.unique(np.asarray(img.convert("L")))) > 3, name  # not blank
    left = [f for _, _, files in os.walk(tmp_path) for f in files if f.startswith(".")]
    assert left == []


def _sources():
    for base in ("galtools", "plugins"):
        for path in sorted((ROOT / base).rglob("*.py")):
            if "egg-info" not in str(path):
                yield path


def test_library_never_selects_a_backend_or_imports_pyplot():
    hits = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            bad = (
                isinstance(node, ast.Import)
                and any(a.name == "matplotlib.pyplot" for a in node.names)
                or isinstance(node, ast.ImportFrom)
                and (
                    node.module == "matplotlib.pyplot"
                    or node.module == "matplotlib"
                    and any(a.name == "pyplot" for a in node.names)
                )
                or isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "use"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "matplotlib"
            )
            if bad:
                hits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert hits == []


def test_metrics_plots_and_morphology_do_not_import_each_other():
    tree = ast.parse((ROOT / "galtools" / "metrics" / "plots.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert "galtools.metrics.morphology" not in imported
    assert not any(m.startswith("galtools.metrics") for m in imported)
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, galtools.metrics.plots; "
            "print('galtools.metrics.morphology' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


def test_long_montage_captions_wrap_and_stay_inside_their_stamp():
    from PIL import ImageDraw

    from galtools.montage import montage_image, wrap

    images = np.zeros((2, 32, 32, 1), np.float32)
    long = "inclination=67.3 flux=1.23e+05 score=0.912"
    img = np.asarray(montage_image(images, columns=2, scale=4, captions=[long, ""]))
    # stamp 2 (columns 2 + 128 + 2 onwards) has no caption: nothing of stamp 1's text there
    assert img[:, 2 + 128 + 2 :].max() == 0
    # the caption is there, on several lines (yellow below the first text line)
    yellow = (img[:, :130, 0] > 200) & (img[:, :130, 2] < 50)
    rows = np.nonzero(yellow.any(axis=1))[0]
    assert rows.size and rows.max() > 14
    pen = ImageDraw.Draw(montage_image(images[:1], captions=None))
    lines = wrap(long, 126, pen.textlength)
    assert lines[0].startswith("inclination=67.3") and " ".join(lines) == long
    assert all(pen.textlength(line) <= 126 for line in lines)
