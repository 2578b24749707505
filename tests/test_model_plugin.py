"""A third-party model is a peer of the built-ins: a throwaway plugin (a real dist-info on
PYTHONPATH) declares two options of its own and the "scores" ability; train-batch builds its
flags from it, and score and generate use its runs exactly as a built-in scoring GAN's."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from galtools.arrayfile import read_galaxies
from tests.test_plugins import make_dist
from tests.tinyruns import tiny_data, tiny_run

NAME = "scorer-gan"
SOURCE = """
    from galtools.models import TARGET, Column
    from galtools.models.gan import GANSpec, build_discriminator, build_generator, make_gan_class
    from galtools.params import Option


    class ScorerGAN(GANSpec):
        \"\"\"A small GAN whose discriminator scores images (no real/corrupted head).\"\"\"

        def configure(self, options, info):
            return {
                "mode": "scorer",
                "latent_dim": options["latent_dim"],
                "width": options["filters"],
                "conditions": [],
            }

        def build(self, config):
            import keras

            lr = config["training"]["lr"]
            gan = make_gan_class()(
                build_generator(config),
                build_discriminator(config, heads=("score",)),
                seed=config["training"]["seed"],
                name="scorer",
            )
            gan.compile(keras.optimizers.Adam(lr), keras.optimizers.Adam(lr))
            return gan


    model = ScorerGAN(
        "scorer-gan",
        "scorer",
        "test GAN whose discriminator rates images",
        options=(
            TARGET,
            Option("filters", "Base number of filters.", kind="int", default=4, minimum=2),
            Option("latent_dim", "Length of the noise vector.", kind="int", default=8,
                   minimum=1, metavar="D"),
        ),
        columns=(Column("target", "scaled"),),
        abilities=("scores",),
    )
"""


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    root = tmp_path_factory.mktemp("modelplugin")
    make_dist(
        root,
        "galtools-scorer",
        "galtools_scorer",
        {"galtools.models": {NAME: "galtools_scorer:model"}},
        SOURCE,
    )
    return root


def galprep(root, *args):
    env = dict(os.environ, PYTHONPATH=str(root), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-c", "from galtools.cli import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_help_lists_the_plugin_and_its_options(plugin):
    r = galprep(plugin, "train-batch", "--help")
    assert r.returncode == 0, r.stderr
    models = r.stdout.split("Models:")[1]
    assert NAME in models and "test GAN whose discriminator rates images" in models
    assert "--model NAME --help" in models
    r = galprep(plugin, "train-batch", "--model", NAME, "--help")
    assert r.returncode == 0, r.stderr
    own = r.stdout.split(f"Options of model {NAME}:")[1]
    assert "--filters" in own and "--latent-dim D" in own and "[default: 8" in own
    assert "--filters" not in r.stdout.split(f"Options of model {NAME}:")[0]
    r = galprep(plugin, "plugins", "--group", "models")
    assert r.returncode == 0 and NAME in r.stdout


@pytest.fixture(scope="module")
def plugin_run(plugin, tmp_path_factory):
    run = tmp_path_factory.mktemp("pluginrun") / "run"
    r = galprep(
        plugin,
        "train-batch",
        tiny_data(),
        "-o",
        run,
        "--model",
        NAME,
        "--target",
        "sc",
        "--filters",
        "3",
        "--latent-dim",
        "6",
        "--batch-size",
        "16",
        "--passes",
        "2",
        "-q",
    )
    assert r.returncode == 0, r.stderr
    return run


def test_plugin_model_trains_with_its_options(plugin, plugin_run, tmp_path):
    config = json.loads((plugin_run / "config.json").read_text())
    assert config["model"] == NAME and config["abilities"] == ["generates", "scores"]
    assert config["model_config"]["width"] == 3 and config["model_config"]["latent_dim"] == 6
    assert config["target"] == "sc" and [c["name"] for c in config["columns"]] == ["sc"]
    metrics = json.loads((plugin_run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and "score_loss" in metrics["steps"][-1]
    assert "label_loss" not in metrics["steps"][-1]  # no such head: the step follows the heads
    assert (plugin_run / "samples" / "pass-002.png").is_file()
    # another model's option, and a bad value of its own, are one-line usage errors
    r = galprep(
        plugin, "train-batch", tiny_data(), "-o", tmp_path / "x", "--model", NAME, "--arch", "small"
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    own = "--target, --filters, --latent-dim"
    assert f"--arch is not an option of model {NAME} (its options: {own})" in r.stderr
    r = galprep(
        plugin, "train-batch", tiny_data(), "-o", tmp_path / "x", "--model", NAME, "--filters", "1"
    )
    assert r.returncode == 2 and "--filters" in r.stderr and "must be ≥ 2" in r.stderr
    r = galprep(plugin, "train-batch", tiny_data(), "-o", tmp_path / "x", "--model", NAME)
    assert r.returncode == 1 and "--target COL is needed for scorer-gan" in r.stderr
    assert not (tmp_path / "x").exists()


def test_plugin_run_scores_and_generates_like_the_builtin(plugin, plugin_run, tmp_path):
    builtin = tiny_run("twoinone")
    data = read_galaxies(tiny_data())[0]
    lo, hi = data["sc"].min(), data["sc"].max()
    headers = {}
    for name, run in (("plugin", plugin_run), ("builtin", builtin)):
        out = tmp_path / f"{name}.csv"
        r = galprep(plugin, "score", run, tiny_data(), "-o", out, "-q")
        assert r.returncode == 0, r.stderr
        lines = out.read_text().splitlines()
        headers[name] = lines[0]
        assert len(lines) == 1 + len(data["images"])
        scores = np.array([float(line.split(",")[1]) for line in lines[1:]])
        assert np.isfinite(scores).all() and (lo <= scores).all() and (scores <= hi).all()
        gen = tmp_path / f"{name}.h5"
        r = galprep(plugin, "generate", run, "-n", "6", "-o", gen, "--seed", "2", "-q")
        assert r.returncode == 0, r.stderr
        made = read_galaxies(gen)[0]
        assert made["images"].shape == (6, 8, 8, 3) and np.isfinite(made["images"]).all()
        assert made["score"].shape == (6,)  # the run scores its own images
        threshold = float(np.median(made["score"]))
        best = tmp_path / f"{name}_best.h5"
        r = galprep(plugin, "generate", run, "-n", "3", "-o", best, "--min-score", threshold, "-q")
        assert r.returncode == 0, r.stderr
        assert (read_galaxies(best)[0]["score"] > threshold).all()
    assert headers["plugin"] == headers["builtin"] == "id,score"
    assert "p_real" not in read_galaxies(tmp_path / "plugin.h5")[0]  # no real/corrupted head
    # the plugin run also scores the images another run generates (--scorer)
    dcgan = tiny_run("dcgan")
    r = galprep(
        plugin, "generate", dcgan, "-n", "4", "-o", tmp_path / "d.h5", "--scorer", plugin_run, "-q"
    )
    assert r.returncode == 0, r.stderr
    assert read_galaxies(tmp_path / "d.h5")[0]["score"].shape == (4,)
    # a run that cannot score names the models whose runs can, the plugin among them
    r = galprep(plugin, "score", dcgan, tiny_data(), "-o", tmp_path / "no.csv")
    assert r.returncode == 1 and "only generates images" in r.stderr
    assert NAME in r.stderr and "twoinone" in r.stderr
