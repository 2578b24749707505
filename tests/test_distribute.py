"""train-batch --distribute data: Keras DataParallel on the JAX backend over two local CPU
processes (``KERAS_DISTRIBUTION_*``), against one process on the same global batch.

The processes share a JAX compilation cache (a module-wide folder), so that only the first
run of each kind compiles.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from galtools.errors import GalError
from galtools.train import distributed
from tests.test_models import learnable

pytest.importorskip("jax")

# (augmentation on the fly draws per process: off where one process is compared with two)
TRAIN = ["--model", "vgg", "--target", "inclination", "--batch-size", "8", "--log-every", "1",
         "--augment", "none"]  # fmt: skip

# Rank 1 runs under this audit hook: every file it opens for writing, renames, creates or
# removes under RUN is recorded, and the list is written to OUT (outside RUN) at exit.
WATCH = r"""
import atexit, json, os, sys
run, out = os.path.realpath(sys.argv[1]), sys.argv[2]
seen = []
def inside(path):
    try:
        return os.path.realpath(os.fsdecode(path)).startswith(run)
    except (TypeError, ValueError):
        return False
def hook(event, args):
    if event == "open" and args and not isinstance(args[0], int):
        mode, flags = args[1] or "", args[2] or 0
        writing = any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if writing and inside(args[0]):
            seen.append([event, os.fsdecode(args[0])])
    elif event in ("os.rename", "os.replace", "os.mkdir", "os.remove", "os.rmdir",
                   "shutil.rmtree", "os.link", "os.symlink"):
        if args and not isinstance(args[0], int) and inside(args[0]):
            seen.append([event, os.fsdecode(args[0])])
sys.addaudithook(hook)
atexit.register(lambda: open(out, "w").write(json.dumps(seen)))
from galtools.cli import main
main(sys.argv[3:])
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The processes' environment: CPU JAX, a shared compilation cache, row traces."""
    d = tmp_path_factory.mktemp("dist")
    out = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    out.update(
        JAX_COMPILATION_CACHE_DIR=str(d / "jax-cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        GALPREP_DISTRIBUTE_TIMEOUT="60",
    )
    for key in list(out):
        if key.startswith(("KERAS_DISTRIBUTION_", "SLURM_")) or key == "KERAS_BACKEND":
            del out[key]
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("distdata")
    learnable(d / "train.h5", n=64)
    learnable(d / "long.h5", n=128, seed=3)
    learnable(d / "wide.h5", n=1024, seed=4)  # 32 steps of 32
    return d


def start(
    run, data_file, env, rank=None, count=2, port=None, trace=None, watch=None, extra=(),
    train=TRAIN,
):  # fmt: skip
    """One galprep train-batch --distribute data process (rank of count, or alone)."""
    e = dict(env)
    if rank is not None:
        e.update(
            KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
            KERAS_DISTRIBUTION_NUM_PROCESSES=str(count),
            KERAS_DISTRIBUTION_PROCESS_ID=str(rank),
        )
    if trace:
        e["GALPREP_TRACE_ROWS"] = str(trace)
    args = ["train-batch", str(data_file), "-o", str(run), *train, "--distribute", "data"]
    args += list(extra)
    if watch:
        cmd = [sys.executable, "-c", WATCH, str(run), str(watch), *args]
    else:
        cmd = [sys.executable, "-m", "galtools.cli", *args]
    return subprocess.Popen(
        cmd, env=e, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )


def finish(procs, timeout=240):
    out = []
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        out.append((p.returncode, err))
    return out


def errors(text):
    return [line for line in text.splitlines() if line.startswith("galprep")]


def weights(run, step):
    with np.load(run / "checkpoints" / f"step-{step:09d}.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k != "state"}


def rows(trace, rank):
    return [json.loads(line) for line in (trace / f"rows-{rank}.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------ two processes


def test_two_processes_train_as_one_on_the_same_global_batch(data, env, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    t1, t2 = tmp_path / "trace1", tmp_path / "trace2"
    val = ["--val", str(data / "train.h5")]
    port = free_port()
    procs = [
        start(one, data / "train.h5", env, trace=t1, extra=val),  # one process, alongside
        start(two, data / "train.h5", env, 0, port=port, trace=t2, watch=tmp_path / "w0.json",
              extra=val),
        start(two, data / "train.h5", env, 1, port=port, trace=t2, watch=tmp_path / "w1.json",
              extra=val),
    ]  # fmt: skip
    (code, err), (c0, e0), (c1, e1) = finish(procs)
    assert code == 0, err[-3000:]
    assert c0 == 0 and c1 == 0, (e0[-3000:], e1[-3000:])

    # the same weights (and optimizer state) after the same 8 global batches
    a, b = weights(one, 8), weights(two, 8)
    assert a.keys() == b.keys() and len(a) > 20
    worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
    assert worst < 1e-5, worst
    # each step's rows: rank 0's and rank 1's halves, disjoint, make the one-process batch
    single, r0, r1 = rows(t1, 0), rows(t2, 0), rows(t2, 1)
    assert [r["step"] for r in single] == [r["step"] for r in r0] == [r["step"] for r in r1]
    assert len(single) == 8
    for s, x, y in zip(single, r0, r1):
        assert len(x["rows"]) == len(y["rows"]) == 4
        assert not set(x["rows"]) & set(y["rows"])
        assert x["rows"] + y["rows"] == s["rows"]
    # validation split over the ranks and gathered: the same figures
    va, vb = (
        json.loads((one / "metrics.json").read_text()),
        json.loads((two / "metrics.json").read_text()),
    )
    assert vb["evals"][0]["val_rmse"] == pytest.approx(va["evals"][0]["val_rmse"], rel=1e-4)
    # what the run records about its processes and devices
    assert (vb["processes"], vb["devices"], vb["global_batch"], vb["process_batch"]) == (2, 2, 8, 4)
    assert vb["backend"] == "jax" and vb["jit_compile"] is True and vb["distribute"] == "data"
    assert "on 2 cpu devices, 2 processes" in (two / "train.log").read_text()
    config = json.loads((two / "config.json").read_text())
    assert config["training"]["distribute"] == "data"
    # rank 0 alone wrote the run; rank 1 wrote nothing in it and said nothing
    wrote0 = {os.path.basename(p) for _, p in json.loads((tmp_path / "w0.json").read_text())}
    assert json.loads((tmp_path / "w1.json").read_text()) == []
    assert any(n.startswith(".model.keras.tmp") for n in wrote0) and "train.log" in wrote0
    assert sorted(os.listdir(two)) == sorted(os.listdir(one))
    assert "pass 1/1 done" in e0 and "pass 1/1 done" not in e1


def test_two_processes_follow_one_over_a_whole_run(data, env, tmp_path):
    """vgg (Dropout and BatchNorm), 32 steps of 32 images, the default recipe (AdamW, cosine,
    weight average): two processes end where one process does, within float32 round-off
    (augmentation on the fly draws per process: it repeats with as many processes only).
    Measured: 2.3e-6 at step 32.  With vgg's 5 % warm-up this tiny run's trajectories part
    after step 8 (3e-4 at step 32, with the same step counter and rates on both sides): the
    round-off of the sums is amplified by the run itself, not a difference in the steps."""
    train = ["--model", "vgg", "--target", "inclination", "--batch-size", "32", "--log-every",
             "8", "--checkpoint-every", "8", "--keep", "9", "--seed", "5",
             "--augment", "none", "--warmup", "0"]  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    port = free_port()
    procs = [
        start(one, data / "wide.h5", env, train=train),
        start(two, data / "wide.h5", env, 0, port=port, train=train),
        start(two, data / "wide.h5", env, 1, port=port, train=train),
    ]
    for code, err in finish(procs):
        assert code == 0, err[-3000:]
    drift = []
    for step in (8, 16, 24, 32):
        a, b = weights(one, step), weights(two, step)
        assert a.keys() == b.keys()
        drift.append(max(float(np.max(np.abs(a[k] - b[k]) / (1 + np.abs(a[k])))) for k in a))
    assert max(drift) < 1e-5, drift


GENERATORS = {
    "cgan": ["--model", "cgan", "--width", "4", "--condition", "inclination"],
    "ddpm": ["--model", "ddpm", "--width", "8", "--blocks", "1", "--levels", "1",
             "--condition", "inclination"],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_train_data_parallel_as_on_one_process(name, data, env, tmp_path):
    """The GANs' own step and the diffusion model's: two processes (and two devices of one
    process) on the same global batch end where one process does, and rank 0 alone writes
    the per-pass montage."""
    train = [*GENERATORS[name], "--batch-size", "8", "--log-every", "1", "--seed", "3",
             "--checkpoint-every", "4"]  # fmt: skip
    one, two, dev = tmp_path / "one", tmp_path / "two", tmp_path / "dev"
    port = free_port()
    two_devices = dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs = [
        start(one, data / "train.h5", env, train=train),
        start(two, data / "train.h5", env, 0, port=port, train=train),
        start(two, data / "train.h5", env, 1, port=port, train=train),
        start(dev, data / "train.h5", two_devices, train=train),
    ]
    results = finish(procs)
    for code, err in results:
        assert code == 0, err[-3000:]
    a, b, c = weights(one, 8), weights(two, 8), weights(dev, 8)
    assert a.keys() == b.keys() == c.keys() and len(a) > 10
    for other in (b, c):
        worst = max(float(np.max(np.abs(a[k] - other[k]))) for k in a)
        assert worst < 1e-4, worst
    changed = max(float(np.max(np.abs(a[k] - weights(one, 4)[k]))) for k in a)
    assert changed > 1e-3  # it trained
    m = json.loads((two / "metrics.json").read_text())
    assert (m["processes"], m["devices"], m["global_batch"]) == (2, 2, 8)
    assert json.loads((dev / "metrics.json").read_text())["devices"] == 2
    assert (two / "samples" / "pass-001.png").is_file() and (two / "model.keras").is_file()
    assert sorted(os.listdir(two)) == sorted(os.listdir(one))


def test_sigterm_to_one_rank_stops_both_at_the_same_step(data, env, tmp_path):
    run = tmp_path / "run"
    long = data / "long.h5"  # 16 steps of 8
    port = free_port()
    extra = ["--checkpoint-every", "0"]
    procs = [start(run, long, env, r, port=port, extra=extra) for r in (0, 1)]
    log = run / "train.log"
    deadline = time.time() + 200
    while time.time() < deadline and procs[1].poll() is None:
        if log.exists() and "step 3 " in log.read_text():
            break
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)  # the rank that writes nothing must stop everyone
    (c0, e0), (c1, e1) = finish(procs)
    assert c0 == 75 and c1 == 75, (e0[-2000:], e1[-2000:])
    said = [errors(e) for e in (e0, e1)]
    assert all(len(s) == 1 and "SIGTERM at step" in s[0] for s in said), said
    stopped = [int(s[0].split("SIGTERM at step ")[1].split("/")[0]) for s in said]
    assert stopped[0] == stopped[1] and 3 <= stopped[0] < 16
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "preempted" and m["step"] == stopped[0]
    assert sorted(os.listdir(run / "checkpoints"))[-1] == f"step-{stopped[0]:09d}.npz"

    port = free_port()
    (c0, e0), (c1, e1) = finish([start(run, long, env, r, port=port, extra=extra) for r in (0, 1)])
    assert c0 == 0 and c1 == 0, (e0[-2000:], e1[-2000:])
    assert f"resuming {run} at step {stopped[0]} of 16" in e0 and "resuming" not in e1
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "finished" and m["step"] == 16
    assert [s["step"] for s in m["steps"]] == list(range(1, 17))  # none lost or repeated


def test_bad_launches_fail_in_one_line(data, env, tmp_path):
    """A batch that does not divide, a coordinator nobody runs, a rank that never comes."""
    quick = dict(env, GALPREP_DISTRIBUTE_TIMEOUT="2")
    odd = start(tmp_path / "odd", data / "train.h5", quick, 0, port=free_port(),
                extra=["--batch-size", "9"])  # fmt: skip
    port = free_port()
    lost = start(tmp_path / "lost", data / "train.h5", quick, 1, port=port)
    alone = start(tmp_path / "alone", data / "train.h5", quick, 0, port=free_port())
    t0 = time.time()
    results = finish([odd, lost, alone], timeout=120)
    assert time.time() - t0 < 100  # never hangs
    for (code, err), fragments in zip(
        results,
        [
            ["--batch-size 9 (the global batch) does not divide by the 2 processes"],
            [f"process 1 of 2 could not reach the coordinator 127.0.0.1:{port}", "within 2 s"],
            ["process 0 waited 2 s", "process 1 of 2 never came"],
        ],
    ):  # fmt: skip
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert code == 1 and len(errors(err)) == 1, err[-2000:]
        assert lines[-1].startswith("galprep train-batch: error: --")
        for fragment in fragments:
            assert fragment in lines[-1], lines[-1]
    assert not any((tmp_path / n).exists() for n in ("odd", "lost", "alone"))


def test_a_plugin_step_that_does_not_split_batches_is_refused():
    """A model with a train_on_batch of its own (a plugin's) that does not say it splits
    batches would give every device the same rows: refused on several devices, in one line."""
    import keras

    from galtools.train.loop import _check_splits_batches

    class Own(keras.Model):
        def train_on_batch(self, x, y=None, **kw):
            return 0.0

    class Splits(Own):
        splits_batches = True

    spec = type("Spec", (), {"name": "mygan"})()
    two = distributed.Cluster("data", devices=["cpu:0", "cpu:1"], distribution=object())
    with pytest.raises(GalError, match="model mygan trains with a step of its own that does "
                       "not split batches over devices; it cannot use the 2 devices"):  # fmt: skip
        _check_splits_batches(Own(), spec, two)
    _check_splits_batches(Splits(), spec, two)
    _check_splits_batches(keras.Sequential(), spec, two)  # Keras' own step splits
    one = distributed.Cluster("data", devices=["cpu:0"], distribution=object())
    _check_splits_batches(Own(), spec, one)


# ------------------------------------------------------------------------------ in process


def test_backend_choice_and_its_errors(monkeypatch):
    import types

    keras = types.SimpleNamespace(backend=types.SimpleNamespace(backend=lambda: "tensorflow"))
    monkeypatch.setitem(sys.modules, "keras", keras)  # Keras imported on another backend
    with pytest.raises(GalError, match="Keras was already imported with the tensorflow backend"):
        distributed.use_backend("data")
    monkeypatch.delitem(sys.modules, "keras")
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    with pytest.raises(GalError, match="needs Keras' JAX backend, but KERAS_BACKEND=torch"):
        distributed.use_backend("data")
    monkeypatch.delenv("KERAS_BACKEND")
    distributed.use_backend("data")  # Keras not imported yet: it will load JAX
    assert os.environ["KERAS_BACKEND"] == "jax"
    monkeypatch.setattr(distributed.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(GalError, match=r'pip install "jax\[cpu\]" \(or "jax\[cuda12\]"'):
        distributed.use_backend("data")
    distributed.use_backend(None)  # nothing asked, nothing checked


def test_processes_from_keras_and_slurm_variables():
    k = {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234,10.0.0.2:2345",
        "KERAS_DISTRIBUTION_PROCESS_ID": "1",
    }
    assert distributed.launch_from_env(k) == distributed.Launch("10.0.0.1:1234", 2, 1)
    assert distributed.launch_from_env({}) is None
    slurm = {
        "SLURM_JOB_ID": "4242",
        "SLURM_STEP_NODELIST": "gpu[017-018,020],login1",
        "SLURM_NTASKS": "8",
        "SLURM_PROCID": "5",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "1",
        "SLURM_STEP_TASKS_PER_NODE": "4(x2)",
    }
    got = distributed.launch_from_env(slurm)
    assert got == distributed.Launch("gpu017:61586", 8, 5, (1,), "SLURM")  # 4242 % 4096 + 61440
    one_gpu_each = dict(slurm, CUDA_VISIBLE_DEVICES="3")  # srun --gpus-per-task=1
    assert distributed.launch_from_env(one_gpu_each).local_devices is None
    assert distributed.launch_from_env(dict(slurm, SLURM_NTASKS="1")) is None  # one task
    mixed = dict(slurm, KERAS_DISTRIBUTION_JOB_ADDRESSES="head:999")
    assert distributed.launch_from_env(mixed).coordinator == "head:999"
    with pytest.raises(GalError, match="KERAS_DISTRIBUTION_PROCESS_ID is not set"):
        distributed.launch_from_env({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "h:1,h:2"})
    with pytest.raises(GalError, match="lists 2 processes but KERAS_DISTRIBUTION_NUM_PROCESSES=3"):
        distributed.launch_from_env({**k, "KERAS_DISTRIBUTION_NUM_PROCESSES": "3"})
    with pytest.raises(GalError, match="GALPREP_DISTRIBUTE_TIMEOUT='soon' must be a positive"):
        distributed.timeout_from_env({"GALPREP_DISTRIBUTE_TIMEOUT": "soon"})
