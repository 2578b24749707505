"""The Python API: ``import galtools`` names (lazy, PEP 562), validation where objects are made,
and the README's "Python API" code blocks, run for real."""

import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import galtools
from galtools.errors import GalError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("numpy", "h5py", "tensorflow", "keras", "scipy", "matplotlib", "click", "torch")


def _fresh(code):
    """Run ``code`` in a fresh interpreter; its stdout as JSON."""
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return json.loads(r.stdout)


# ----------------------------------------------------------------------------- names


def test_every_public_name_resolves():
    assert len(galtools.__all__) == len(set(galtools.__all__)) >= 15
    for name in galtools.__all__:
        value = getattr(galtools, name)
        assert callable(value), name
        assert value.__module__.startswith("galtools."), name


def test_expected_names():
    must = {
        "open_galaxies",
        "read_galaxies",
        "write_galaxies",
        "GalaxyWriter",
        "load_run",
        "augment_images",
        "Op",
        "Degrader",
        "measure_morphology",
        "power_spectra",
        "fid",
        "kid",
        "GalError",
    }
    assert must <= set(galtools.__all__)
    from galtools.arrayfile import open_galaxies
    from galtools.metrics import fid, morphology

    assert galtools.open_galaxies is open_galaxies
    assert galtools.measure_morphology is morphology.measure
    assert galtools.kid is fid.kid


def test_dir_lists_the_api():
    listed = dir(galtools)
    assert set(galtools.__all__) <= set(listed)
    assert "__version__" in listed and listed == sorted(listed)


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="module 'galtools' has no attribute 'nope'"):
        galtools.nope  # noqa: B018
    with pytest.raises(ImportError):
        from galtools import no_such_name  # noqa: F401


def test_api_names_do_not_shadow_submodules():
    """``galtools.augment`` is a module: a public function of that name would be replaced by the
    module as soon as anything imports it."""
    submodules = {m.name for m in pkgutil.iter_modules(galtools.__path__)}
    assert "augment" in submodules
    assert not submodules & set(galtools.__all__)


def test_import_galtools_is_light():
    out = _fresh(
        "import json, sys, galtools\n"
        "before = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{HEAVY!r} or m.startswith('galtools.'))\n"
        "galtools.Op('hflip', p=0.5)\n"
        "after = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{HEAVY!r} or m.startswith('galtools.'))\n"
        "print(json.dumps([before, after]))"
    )
    before, after = out
    assert before == []
    # one name loads its own module (and numpy), not the rest of the library
    assert "galtools.augment" in after and "numpy" in after
    assert not {"h5py", "tensorflow", "click", "galtools.runs", "galtools.options"} & set(after)


def test_star_import_gives_the_api():
    out = _fresh(
        "import json\nfrom galtools import *\n"
        "print(json.dumps(sorted(n for n in dir() if not n.startswith('_'))))"
    )
    assert set(out) == set(galtools.__all__) | {"json"}


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "args, kw, message",
    [
        (("hflip",), {"p": 7}, "augment op 'hflip': probability 7 not in [0, 1]"),
        (("rotate", 10, 5), {}, "augment op 'rotate': range 10:5 is reversed"),
        (("scale", 0, 2), {}, "augment op 'scale': values must be positive, got 0"),
        (("noise", -1, 1), {}, "augment op 'noise': values must be >= 0, got -1"),
        (("greyscale", 0, 2), {}, "augment op 'greyscale': blend amounts must be within 0:1"),
        (("hflip", 0.5), {}, "augment op 'hflip': takes only a probability: Op('hflip', p=P)"),
        (("rotate",), {}, "augment op 'rotate': needs a value or a range lo, hi"),
        (("rotate", float("nan")), {}, "each value must be a finite number, got nan"),
        (("gamma", 1, 2), {"p": "1"}, "probability must be a finite number, got '1'"),
        (("spin", 1, 2), {}, "augment op 'spin': no such op (known: hflip, vflip, rot90"),
    ],
)
def test_op_checks_itself(args, kw, message):
    with pytest.raises(ValueError) as info:
        galtools.Op(*args, **kw)
    assert message in str(info.value)


def test_op_defaults_follow_the_command_line():
    from galtools.augment import parse_op

    assert galtools.Op("rotate", 30) == galtools.Op("rotate", -30, 30) == parse_op("rotate", "30")
    assert galtools.Op("scale", 1.2) == galtools.Op("scale", 1.2, 1.2)
    assert galtools.Op("greyscale", p=0.5) == parse_op("greyscale", "0.5")
    assert str(galtools.Op("greyscale", p=0.5)) == "greyscale=1:1@0.5"
    assert galtools.Op("hflip", p=0.5) == parse_op("hflip", "0.5")


def test_cli_messages_name_the_flag(galprep, small_file, tmp_path):
    src = small_file()
    r = galprep("augment", src, "-o", tmp_path / "o.h5", "--hflip", "7")
    assert r.code == 2
    assert "--hflip: probability 7 not in [0, 1]" in r.stderr
    r = galprep("augment", src, "-o", tmp_path / "o.h5", "--invert-grey", "x")
    assert r.code == 2 and "--invert-grey: takes a probability, got 'x'" in r.stderr
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize(
    "ops, fill, message",
    [
        ([galtools.Op("hflip", p=0.5)] * 2, "reflect", "augment op 'hflip' given twice"),
        ([galtools.Op("invert_grey", p=0.5)], "reflect", "inverts images made grey"),
        ([galtools.Op("rotate", 10)], "mirror", "fill must be one of reflect, nearest"),
        ({"rotate": "10:5"}, "reflect", "augment op 'rotate': range 10:5 is reversed"),
        ({"blur": "abc"}, "reflect", "augment op 'blur': expects LO:HI[@P] or V[@P]"),
    ],
)
def test_augmenter_checks_its_arguments(ops, fill, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        galtools.Augmenter(ops, fill)


def test_augmenter_refuses_what_is_not_an_op():
    with pytest.raises(TypeError, match="must be galtools.augment.Op objects, got 'hflip'"):
        galtools.Augmenter(["hflip"])


def test_augment_images():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 8, 8, 2)).astype(np.float32)
    x0 = x.copy()
    a = galtools.augment_images(x, {"hflip": 1}, seed=3)
    assert np.array_equal(a, x[:, :, ::-1]) and np.array_equal(x, x0)  # input untouched
    b, t = galtools.augment_images(x, [galtools.Op("vflip", p=1)], targets=x * 2, seed=0)
    assert np.array_equal(b, x[:, ::-1]) and np.array_equal(t, 2 * x[:, ::-1])
    flat = galtools.augment_images(x[..., 0], {"rot90": 1, "noise": "0.1"}, seed=1)
    four = galtools.augment_images(x[..., :1], {"rot90": 1, "noise": "0.1"}, seed=1)
    assert flat.shape == (6, 8, 8) and np.array_equal(flat, four[..., 0])
    same = galtools.augment_images(x, seed=5)  # the command's default ops
    assert np.array_equal(same, galtools.augment_images(x, seed=np.random.default_rng(5)))
    u8 = galtools.augment_images((x0 > 0).astype(np.uint8) * 200, {"brightness": "2"})
    assert u8.dtype == np.uint8 and u8.max() == 255
    with pytest.raises(ValueError, match="targets shape"):
        galtools.augment_images(x, targets=x[:2])
    with pytest.raises(ValueError, match="N×H×W×C or N×H×W"):
        galtools.augment_images(x[0, 0])


def test_degrader_checks_its_arguments():
    with pytest.raises(GalError, match="noise σ must be >= 0"):
        galtools.Degrader(bands=3, noise=-1)
    with pytest.raises(GalError, match="unknown kind 'airy'"):
        galtools.Degrader(bands=3, psf="airy:r=2")


# ----------------------------------------------------------------------------- README


def readme_python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_python_api_runs(tmp_path, monkeypatch, capsys):
    """Every code block of the README's Python API section, in order, in one namespace (as in a
    notebook), on a small file and a tiny trained run made here."""
    from tests.tinyruns import tiny_data, tiny_run

    blocks = readme_python_blocks()
    assert len(blocks) >= 4
    run = tiny_run("vgg")  # a vgg regression run of 'inclination' on 8×8×3 images
    shutil.copy(tiny_data(), tmp_path / "galaxies.h5")
    shutil.copytree(run, tmp_path / "runs" / "inclination")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    for k, block in enumerate(blocks):
        exec(compile(block, f"README.md (Python API block {k + 1})", "exec"), namespace)
    out = capsys.readouterr().out
    ns = namespace
    n = len(ns["images"])
    assert "a vgg regression run of 'inclination'" in out and "FID" in out
    assert ns["images"].shape == (n, 8, 8, 3)
    written, _ = galtools.read_galaxies("inclined.h5")
    assert len(written["images"]) == int(ns["keep"].sum()) > 0
    assert (written["inclination"] > 45).all()
    assert len(ns["peaks"]) == 1
    assert ns["flipped"].shape == ns["noisy"].shape == ns["images"].shape
    assert not np.array_equal(ns["flipped"], ns["images"])
    assert ns["predicted"].shape == (n,)
    assert ns["features"].shape[0] == n == len(ns["morph"]["gini"])
    assert ns["spectra"].shape[:2] == (n, 3)
    assert ns["subset_size"] == 32 and ns["kid_std"] >= 0
