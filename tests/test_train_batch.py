"""galprep train-batch: streaming plan, resume, SIGTERM, --restart, --mix, --init-from, errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from galtools.arrayfile import GalaxyWriter, write_galaxies
from galtools.meta import new_meta
from galtools.train.data import Plan, survey
from tests.test_models import learnable

FAST = ["--batch-size", "8", "--log-every", "1", "-q"]


def metrics(run):
    return json.loads((run / "metrics.json").read_text())


def one_line_error(result, *fragments):
    assert result.code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("galprep train-batch: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ---------------------------------------------------------------------------------- the plan


def test_plan_covers_every_row_once_per_segment(tmp_path):
    for i, n in enumerate((37, 16)):
        write_galaxies(
            tmp_path / f"b{i}.h5", {"images": np.zeros((n, 4, 4, 1), "f4"), "row": np.arange(n)}
        )
    info = survey([tmp_path / "b0.h5", tmp_path / "b1.h5"])
    plan = Plan(info, batch_size=8, passes=2, epochs=1, seed=3)
    plan.chunk = 16  # several chunks per file
    assert plan.total == 2 * (5 + 2)
    seen = {}
    for _step, path, rows, order, seg in plan.batches():
        assert len(order) == 8
        seen.setdefault((seg[0], path), []).extend((rows[0] + order).tolist())
    for (_p, path), got in seen.items():
        n = 37 if path.endswith("b0.h5") else 16
        assert set(got) == set(range(n))  # every row, padding only wraps within a chunk
    full = list(plan.batches())
    resumed = list(plan.batches(9))
    assert [s for s, *_ in resumed] == list(range(9, plan.total))
    for a, b in zip(full[9:], resumed):
        assert a[1] == b[1] and a[2] == b[2] and np.array_equal(a[3], b[3])
    # a different seed shuffles differently
    other = Plan(info, batch_size=8, passes=2, epochs=1, seed=4)
    other.chunk = 16
    assert any(not np.array_equal(a[3], b[3]) for a, b in zip(full, other.batches()))


def test_plan_mix_proportion(tmp_path):
    write_galaxies(tmp_path / "a.h5", {"images": np.zeros((800, 4, 4, 1), "f4")})
    write_galaxies(tmp_path / "m.h5", {"images": np.ones((24, 4, 4, 1), "f4")})
    info, mix = survey([tmp_path / "a.h5"]), survey([tmp_path / "m.h5"])
    plan = Plan(info, 8, passes=20, epochs=1, seed=0, mix=mix, alpha=0.3)
    n_mix = int(plan.flags.sum())
    assert plan.total - n_mix == plan.main_steps == 2000
    assert n_mix / plan.total == pytest.approx(0.3, abs=0.02)
    steps = list(plan.batches(plan.total - 50))
    assert sum(p.endswith("m.h5") for _, p, *_ in steps) == int(plan.flags[-50:].sum())


# ------------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tb")
    learnable(d / "train.h5", n=64)
    learnable(d / "big.h5", n=1024, seed=2)
    learnable(d / "gen.h5", n=48, seed=7, noise=0.5)
    return d


def test_sigterm_checkpoints_and_resumes(files, tmp_path, galprep):
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "galtools.cli",
        "train-batch",
        str(files / "big.h5"),
        "-o",
        str(run),
        "--model",
        "vgg",
        "--target",
        "inclination",
        "--passes",
        "3",
        "--checkpoint-every",
        "0",
        *FAST,
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env, text=True)
    log = run / "train.log"
    deadline = time.time() + 120
    while time.time() < deadline:
        if log.exists() and "step 5 " in log.read_text():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err
    assert "SIGTERM at step" in err and "run the same command to continue" in err
    m = metrics(run)
    stopped = m["step"]
    assert m["status"] == "preempted" and 5 <= stopped < 384
    ckpts = sorted(os.listdir(run / "checkpoints"))
    assert ckpts[-1] == f"step-{stopped:09d}.npz"
    assert not [f for f in os.listdir(run / "checkpoints") if f.startswith(".")]

    r = galprep(
        "train-batch",
        files / "big.h5",
        "-o",
        run,
        "--model",
        "vgg",
        "--target",
        "inclination",
        "--passes",
        "3",
        "--checkpoint-every",
        "0",
        "--batch-size",
        "8",
        "--log-every",
        "1",
    )
    assert r.code == 0, r.stderr
    assert f"resuming {run} at step {stopped} of 384" in r.stderr
    m = metrics(run)
    assert m["status"] == "finished" and m["step"] == 384
    assert [s["step"] for s in m["steps"]] == list(range(1, 385))  # no step lost or repeated
    with np.load(run / "checkpoints" / "step-000000384.npz", allow_pickle=False) as f:
        assert json.loads(str(f["state"]))["step"] == 384
    assert "SIGTERM" in (run / "train.log").read_text()


def test_rerun_continue_restart_and_corrupt_checkpoint(files, tmp_path, galprep):
    run = tmp_path / "run"
    base = [
        "train-batch",
        files / "train.h5",
        "-o",
        run,
        "--model",
        "vgg",
        "--target",
        "inclination",
        *FAST,
    ]
    assert galprep(*base).code == 0
    assert metrics(run)["step"] == 8
    r = galprep(*base[:-1])  # finished: nothing to do, said so
    assert r.code == 0 and "already trained 8 of 8 steps" in r.stderr
    r = galprep(*base, "--passes", "3")  # more passes continue from step 8
    assert r.code == 0 and metrics(run)["step"] == 24
    assert [s["step"] for s in metrics(run)["steps"]] == list(range(1, 25))
    assert sorted(os.listdir(run / "checkpoints")) == [
        "step-000000008.npz",
        "step-000000016.npz",
        "step-000000024.npz",
    ]
    # corrupt the newest checkpoint: falls back to the previous one and says so
    (run / "checkpoints" / "step-000000024.npz").write_bytes(b"PK\x03\x04 truncated")
    r = galprep(*base[:-1], "--passes", "4")
    assert r.code == 0, r.stderr
    assert "step-000000024.npz is corrupt" in r.stderr
    assert "falling back to step-000000016.npz" in r.stderr
    assert "resuming" in r.stderr and "at step 16 of 32" in r.stderr
    assert metrics(run)["step"] == 32
    # --restart starts over
    r = galprep(*base, "--restart")
    assert r.code == 0 and metrics(run)["step"] == 8
    assert [s["step"] for s in metrics(run)["steps"]] == list(range(1, 9))
    assert os.listdir(run / "checkpoints") == ["step-000000008.npz"]


def test_mix_draws_from_both_files(files, tmp_path, galprep):
    run = tmp_path / "run"
    r = galprep(
        "train-batch",
        files / "train.h5",
        "-o",
        run,
        "--model",
        "resnet-denoiser",
        "--mix",
        files / "gen.h5",
        "--alpha",
        "0.5",
        "--passes",
        "5",
        *FAST,
    )
    assert r.code == 0, r.stderr
    m = metrics(run)
    main = sum(s["main_batches"] for s in m["steps"])
    mixed = sum(s["mix_batches"] for s in m["steps"])
    assert main == 40 and main + mixed == m["step"]
    assert 0.3 < mixed / m["step"] < 0.7
    files_used = {s["batch_file"] for s in m["steps"]}
    assert files_used == {str(files / "train.h5"), str(files / "gen.h5")}


def test_init_from_and_freeze_until(files, tmp_path, galprep):
    from galtools.runs import load_run

    a, b = tmp_path / "a", tmp_path / "b"
    common = [
        "--model",
        "cnn-classifier",
        "--target",
        "kind",
        "--backbone",
        "8,8",
        "--head",
        "16,relu",
        *FAST,
    ]
    assert galprep("train-batch", files / "train.h5", "-o", a, *common).code == 0
    r = galprep(
        "train-batch",
        files / "big.h5",
        "-o",
        b,
        *common,
        "--init-from",
        a,
        "--freeze-until",
        "block1_relu2",
        "--lr",
        "0.01",
    )
    assert r.code == 0, r.stderr
    ma, mb = load_run(a).keras_model(), load_run(b).keras_model()
    frozen = ["block1_conv1", "block1_bn1", "block1_conv2", "block1_bn2"]
    for name in frozen:
        for wa, wb in zip(ma.get_layer(name).get_weights(), mb.get_layer(name).get_weights()):
            assert np.array_equal(wa, wb), name
    for name in ("block2_conv1", "head0", "output"):
        assert not np.array_equal(
            ma.get_layer(name).get_weights()[0], mb.get_layer(name).get_weights()[0]
        ), name
    r = galprep(
        "train-batch", files / "train.h5", "-o", tmp_path / "c", *common, "--freeze-until", "nope"
    )
    one_line_error(r, "no layer 'nope'", "block1_conv1")


def test_bad_input(files, tmp_path, galprep):
    run = tmp_path / "run"
    data = files / "train.h5"
    r = galprep("train-batch", data, "-o", run, "--model", "nope")
    one_line_error(r, "unknown model 'nope'", "cnn-classifier", "ridge-histogram", "vgg")
    r = galprep("train-batch", data, "-o", run, "--model", "vgg", "--target", "incl")
    one_line_error(r, "no label column 'incl'", "inclination")
    r = galprep("train-batch", data, "-o", run, "--model", "vgg")
    one_line_error(r, "--target COL is needed")
    nan = {"images": np.zeros((8, 8, 8, 1), "f4"), "y": np.r_[np.nan, np.arange(7.0)]}
    write_galaxies(tmp_path / "nan.h5", nan)
    r = galprep("train-batch", tmp_path / "nan.h5", "-o", run, "--model", "vgg", "--target", "y")
    one_line_error(r, "nan.h5", "'y' has 1 NaN")
    write_galaxies(
        tmp_path / "tiny.h5", {"images": np.zeros((8, 2, 2, 1), "f4"), "y": np.arange(8.0)}
    )
    r = galprep("train-batch", tmp_path / "tiny.h5", "-o", run, "--model", "vgg", "--target", "y")
    one_line_error(r, "at least 4×4")
    with GalaxyWriter(tmp_path / "empty.h5", new_meta()):
        pass
    r = galprep("train-batch", tmp_path / "empty.h5", "-o", run, "--model", "dcgan")
    one_line_error(r, "empty.h5", "holds no images")
    r = galprep(
        "train-batch", data, "-o", run, "--model", "resnet-denoiser", "--mix", tmp_path / "tiny.h5"
    )
    one_line_error(r, "tiny.h5", "images are")
    assert not run.exists()  # nothing written by a failed start
    # a RUN holding another model
    assert (
        galprep(
            "train-batch", data, "-o", run, "--model", "vgg", "--target", "inclination", *FAST
        ).code
        == 0
    )
    before = (run / "config.json").read_text()
    r = galprep("train-batch", data, "-o", run, "--model", "cnn-classifier", "--target", "kind")
    one_line_error(r, "holds a 'vgg' run, not 'cnn-classifier'", "--restart")
    r = galprep(
        "train-batch",
        data,
        "-o",
        run,
        "--model",
        "vgg",
        "--target",
        "inclination",
        "--batch-size",
        "4",
    )
    one_line_error(r, "batch_size=8", "--restart")
    r = galprep("train-batch", data, "-o", run, "--model", "vgg", "--target", "incl", "--restart")
    one_line_error(r, "no label column 'incl'")  # a failed --restart keeps the old run
    assert (run / "config.json").read_text() == before
    assert (run / "model.keras").is_file() and (run / "checkpoints").is_dir()
    (tmp_path / "notarun").mkdir()
    (tmp_path / "notarun" / "keep.txt").write_text("x")
    r = galprep(
        "train-batch",
        data,
        "-o",
        tmp_path / "notarun",
        "--model",
        "vgg",
        "--target",
        "inclination",
        "--restart",
    )
    one_line_error(r, "not a run")
    assert (tmp_path / "notarun" / "keep.txt").exists()
    r = galprep("train-batch", data, "-o", tmp_path / "r2", "--model", "cgan")
    one_line_error(r, "cgan needs --condition")


def test_no_option_promises_several_devices(files, tmp_path, galprep):
    """--distribute mirrored gave every replica the whole batch (no speed-up): it is gone;
    --distribute data (tests/test_distribute.py) splits each batch."""
    r = galprep(
        "train-batch", files / "train.h5", "-o", tmp_path / "run", "--model", "vgg",
        "--target", "inclination", "--distribute", "mirrored", *FAST,
    )  # fmt: skip
    assert r.code == 2 and "--distribute" in r.stderr and not (tmp_path / "run").exists()


@pytest.mark.parametrize("model", [None, "vgg", "twoinone"])
def test_help_is_light(model):
    args = ["train-batch"] + (["--model", model] if model else []) + ["--help"]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from galtools.cli import main\n"
                "t = time.perf_counter()\n"
                f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
                "took = time.perf_counter() - t\n"
                "bad = [m for m in ('tensorflow', 'keras', 'matplotlib', 'h5py')\n"
                "       if m in sys.modules]\n"
                "print('HEAVY', bad, 'TOOK', took)"
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "--checkpoint-every" in out.stdout and "HEAVY []" in out.stdout
    assert float(out.stdout.split("TOOK")[1]) < 0.3


def test_help_names_models_and_their_options(galprep):
    r = galprep("train-batch", "--help")
    assert r.code == 0
    text = r.out
    options, models = text.split("Models:")
    for name in ("vgg", "cnn-classifier", "dcgan", "twoinone", "cgan", "ridge-histogram"):
        assert f"\n  {name} " in models, name
    assert "galprep train-batch --model NAME --help" in models
    assert "--arch" not in text and "--width" not in text  # a model's options: with --model
    r = galprep("train-batch", "--model", "vgg", "--help")
    assert r.code == 0
    common, own = r.out.split("Options of model vgg:")
    assert "--passes" in common and "--arch" not in common and "Models:" not in r.out
    for flag in ("--target COL", "--target-range LO,HI", "--classes K", "--arch"):
        assert flag in own, flag
    assert "[default: small]" in own and "--backbone" not in own and "--width" not in own
    r = galprep("train-batch", "--model=cnn-classifier", "--help")
    own = r.out.split("Options of model cnn-classifier:")[1]
    assert "--head SPEC" in own and "--normalize [per-image|global]" in own
    recipe = " ".join(own.split("Recipe of cnn-classifier")[1].split())
    for part in ("--optimizer adamw", "--schedule cosine", "--ema 0.99"):
        assert part in recipe, part
    r = galprep("train-batch", "--model", "resnet-denoiser", "--help")
    assert "Options of model resnet-denoiser:\n  none" in r.out


def test_options_of_another_model_are_refused(files, tmp_path, galprep):
    data = files / "train.h5"
    run = tmp_path / "run"

    def usage_error(r, fragment):
        assert r.code == 2, r.stderr
        assert r.stderr.count("\n") == 1 and fragment in r.stderr, r.stderr

    r = galprep("train-batch", data, "-o", run, "--model", "dcgan", "--arch", "small")
    usage_error(r, "--arch is not an option of model dcgan (its options: --width)")
    r = galprep("train-batch", data, "-o", run, "--model", "dcgan", "--target", "inclination")
    usage_error(r, "--target is not an option of model dcgan")
    r = galprep("train-batch", data, "-o", run, "--real-column=real", "--model", "cgan")
    usage_error(
        r, "--real-column is not an option of model cgan (its options: --condition, --width)"
    )
    r = galprep("train-batch", data, "-o", run, "--bins", "8")
    usage_error(
        r, "--bins is an option of models forest-histogram, ridge-histogram: give --model NAME"
    )
    r = galprep("train-batch", data, "-o", run, "--model", "vgg", "--arch", "huge")
    usage_error(r, "'huge' is not one of 'small', 'medium', 'large'")
    r = galprep("train-batch", data, "-o", run, "--model", "dcgan", "--width", "2")
    usage_error(r, "--width")
    assert not run.exists()


def test_options_from_python_are_checked_like_the_command_line(files, tmp_path):
    from galtools.errors import GalError
    from galtools.train.loop import train

    data = [files / "train.h5"]
    with pytest.raises(
        GalError, match=r"--arch is not an option of model dcgan \(its options: --width\)"
    ):
        train(data, tmp_path / "a", "dcgan", {"arch": "small"})
    with pytest.raises(GalError, match="model dcgan: --width: must be ≥ 4, got 2"):
        train(data, tmp_path / "a", "dcgan", {"width": 2})
    with pytest.raises(GalError, match="model vgg: --arch: must be one of small, medium, large"):
        train(data, tmp_path / "a", "vgg", {"target": "inclination", "arch": "huge"})
    with pytest.raises(GalError, match="--target-range: need LO < HI"):
        train(data, tmp_path / "a", "vgg", {"target": "inclination", "target_range": (9, 1)})
    assert not (tmp_path / "a").exists()


def test_data_wait_is_measured_and_a_slow_input_is_logged(files, tmp_path, galprep, monkeypatch):
    """metrics.json records per logged step the time waiting for data and the time in the
    step; when waiting exceeds 10 % of the step time the run log says so."""
    import time

    from galtools.train import data as datamod
    from galtools.train import loop

    args = ["train-batch", files / "train.h5", "--model", "vgg", "--target", "inclination"]
    run = tmp_path / "fast"
    assert galprep(*args, "-o", run, *FAST).code == 0
    steps = metrics(run)["steps"]
    assert steps and all(r["step_s"] > 0 and r["data_wait_s"] >= 0 for r in steps)

    class SlowProducer(datamod.Producer):
        def __iter__(self):
            for item in super().__iter__():
                time.sleep(0.2)  # a slow disk: far longer than a step on 8 tiny images
                yield item

    monkeypatch.setattr(loop, "Producer", SlowProducer)
    slow = tmp_path / "slow"
    assert galprep(*args, "-o", slow, *FAST).code == 0
    steps = metrics(slow)["steps"]
    assert all(r["data_wait_s"] >= 0.19 for r in steps)
    log = (slow / "train.log").read_text()
    assert log.count("warning: steps") == 1 and "input pipeline limits speed" in log


# ------------------------------------------------------- input pipeline, precision, TensorBoard


def test_producer_delivers_the_same_batches_however_it_reads(files, tmp_path):
    """Prefetching, reading threads and a process's part change when rows are read, never
    which: the same (x, y) per step, and two parts are disjoint halves of each batch."""
    from galtools.train.data import Producer

    info = survey([files / "train.h5", files / "gen.h5"])
    mix = survey([files / "train.h5"])
    plan = Plan(info, 8, passes=2, epochs=1, seed=5, mix=mix, alpha=0.4)
    plan.chunk = 16  # several chunks per file
    config = {"task": "regression", "columns": [{"name": "inclination", "kind": "raw"}]}

    def batches(**kw):
        p = Producer(plan, config, start=3, **kw)
        try:
            return list(p)
        finally:
            p.close()

    ref = batches(prefetch=0)
    assert [b[0] for b in ref] == list(range(3, plan.total))
    for kw in ({"prefetch": 4}, {"prefetch": 2, "workers": 3}, {"prefetch": 0, "workers": 2}):
        got = batches(**kw)
        assert len(got) == len(ref), kw
        for a, b in zip(ref, got):
            assert a[:3] == b[:3] and np.array_equal(a[5], b[5]), kw
            assert np.array_equal(a[3], b[3]) and np.array_equal(a[4], b[4]), kw
    halves = [batches(prefetch=2, part=(k, 2), workers=2) for k in (0, 1)]
    for whole, h0, h1 in zip(ref, *halves):
        assert np.array_equal(np.concatenate([h0[5], h1[5]]), whole[5])
        assert np.array_equal(np.concatenate([h0[3], h1[3]]), whole[3])
        assert np.array_equal(np.concatenate([h0[4], h1[4]]), whole[4])


def test_prefetching_changes_no_result(files, tmp_path):
    from galtools.train.loop import train

    def final(run, **kw):
        train([files / "train.h5"], run, "vgg", {"target": "inclination"}, batch_size=8,
              passes=2, **kw)  # fmt: skip
        with np.load(run / "checkpoints" / "step-000000016.npz", allow_pickle=False) as f:
            return [f[k] for k in sorted(f.files) if k != "state"]

    a = final(tmp_path / "a", prefetch=0)
    b = final(tmp_path / "b", prefetch=4, workers=2)
    assert len(a) == len(b) > 20
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)


def test_precision_is_recorded_restored_and_saved_as_float32(files, tmp_path, galprep):
    import keras

    from galtools.models import load_keras

    run = tmp_path / "run"
    args = ["train-batch", files / "train.h5", "-o", run, "--model", "vgg", "--target",
            "inclination", *FAST]  # fmt: skip
    r = galprep(*args, "--precision", "mixed_bfloat16")
    assert r.code == 0, r.stderr
    assert keras.config.dtype_policy().name == "float32"  # the caller's policy is back
    assert json.loads((run / "config.json").read_text())["training"]["precision"] == (
        "mixed_bfloat16"
    )
    assert metrics(run)["precision"] == "mixed_bfloat16"
    net = load_keras(run / "model.keras")
    assert {layer.dtype_policy.name for layer in net.layers} == {"float32"}
    assert np.asarray(net.predict_on_batch(np.zeros((2, 8, 8, 1), "f4"))).dtype == np.float32
    r = galprep(*args, "--passes", "2")  # float32 now: another set of variables
    one_line_error(r, "was trained with precision='mixed_bfloat16', now 'float32'", "--restart")
    r = galprep(*args, "--precision", "half")
    assert r.code == 2 and "--precision" in r.stderr


def test_tensorboard_events(files, tmp_path, galprep):
    from galtools.train import events

    run = tmp_path / "run"
    common = ["--model", "vgg", "--target", "inclination", "--tensorboard", *FAST]
    r = galprep("train-batch", files / "train.h5", "-o", run, "--val", files / "gen.h5", *common)
    assert r.code == 0, r.stderr
    [name] = os.listdir(run / "tensorboard")
    assert name.startswith("events.out.tfevents.")
    got = events.read(run / "tensorboard" / name)
    assert got[0]["file_version"].startswith("brain.Event")
    assert got[1] == {"step": 0, "wall_time": got[1]["wall_time"], "session_start": True}
    scalars = {}
    for e in got:
        for tag, value in e.get("scalars", {}).items():
            scalars.setdefault(tag, []).append((e["step"], value))
    assert [s for s, _ in scalars["train/loss"]] == list(range(1, 9))
    for tag in ("train/mae", "lr", "data_wait_fraction", "images_per_s"):
        assert len(scalars[tag]) == 8, tag
    assert all(0 <= v <= 1 for _, v in scalars["data_wait_fraction"])
    from galtools.train.recipe import learning_rate

    want = [learning_rate(d - 1, 8, 2e-3, "cosine", 0.05) for d in range(1, 9)]  # vgg's recipe
    assert [v for _, v in scalars["lr"]] == pytest.approx(want, rel=1e-6)
    m = metrics(run)
    assert scalars["val/rmse"] == [(8, pytest.approx(m["evals"][0]["val_rmse"], rel=1e-6))]
    assert scalars["train/loss"][-1][1] == pytest.approx(m["steps"][-1]["loss"], rel=1e-6)
    try:  # TensorFlow's own reader agrees (record CRCs checked by it)
        from tensorflow.core.util import event_pb2
        from tensorflow.python.lib.io import tf_record
    except ImportError:
        pass
    else:
        path = str(run / "tensorboard" / name)
        tags = set()
        for record in tf_record.tf_record_iterator(path):
            tags.update(v.tag for v in event_pb2.Event.FromString(record).summary.value)
        assert {"train/loss", "val/rmse", "lr", "data_wait_fraction"} <= tags
    # a GAN's montage of each pass, as a PNG image
    gan = tmp_path / "gan"
    r = galprep(
        "train-batch", files / "train.h5", "-o", gan, "--model", "dcgan", "--width", "4",
        "--tensorboard", "--passes", "2", *FAST,
    )  # fmt: skip
    assert r.code == 0, r.stderr
    [name] = os.listdir(gan / "tensorboard")
    images = [(e["step"], e["images"]["samples"]) for e in events.read(gan / "tensorboard" / name)
              if "images" in e]  # fmt: skip
    assert [s for s, _ in images] == [8, 16]
    png = (gan / "samples" / "pass-002.png").read_bytes()
    assert images[-1][1][2] == png and images[-1][1][:2] == events.png_size(png)
