"""A stand-in for galtools.runs.Run with predictable outputs, for testing code that uses runs.

``install(monkeypatch, {path: FakeRun})`` makes ``galtools.runs.load_run`` return them.
"""

import sys
import types

import numpy as np

from galtools.errors import GalError

TASKS = {
    "vgg": "regression",
    "cnn-classifier": "classification",
    "dcgan": "gan",
    "twoinone": "gan",
    "cgan": "gan",
    "resnet-denoiser": "denoise",
}
ABILITIES = {
    "vgg": {"predicts"},
    "cnn-classifier": {"predicts"},
    "dcgan": {"generates"},
    "twoinone": {"generates", "scores"},
    "cgan": {"generates", "conditions"},
    "resnet-denoiser": {"denoises"},
}


class FakeRun:
    """Regression: scale·mean(image) + offset; classification: channel means as probabilities;
    GANs: seeded normal images (cgan: shifted by the conditions); twoinone score: mean(image);
    denoiser: a 3×3 box blur."""

    def __init__(
        self,
        path="fake",
        model_name="vgg",
        target=None,
        class_names=None,
        conditions=(),
        input_shape=(8, 8, 3),
        scale=1.0,
        offset=0.0,
        config=None,
    ):
        self.path = str(path)
        self.model_name = model_name
        self.task = TASKS[model_name]
        self.abilities = frozenset(ABILITIES[model_name])
        self.target = target
        self.class_names = list(class_names) if class_names else None
        self.conditions = list(conditions)
        self.input_shape = input_shape
        self.scale, self.offset = scale, offset
        bands = list("gri"[: input_shape[-1]]) if input_shape else ["g", "r", "i"]
        self.config = config or {"model": model_name, "bands": bands}
        self.calls = []

    def predict(self, images, batch_size=256):
        images = np.asarray(images, np.float64)
        self.calls.append(len(images))
        if self.task == "regression":
            return self.scale * images.mean(axis=(1, 2, 3)) + self.offset
        if self.task == "classification":
            p = images.mean(axis=(1, 2))
            return p / p.sum(axis=1, keepdims=True)
        if self.task == "denoise":
            pad = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
            h, w = images.shape[1:3]
            return sum(pad[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0
        raise GalError(f"{self.path}: a {self.model_name} run does not predict")

    def generate(self, n, seed=0, conditions=None, batch_size=256):
        if self.task != "gan":
            raise GalError(f"{self.path}: not a GAN")
        rng = np.random.default_rng(seed)
        out = rng.normal(size=(n, *self.input_shape)).astype(np.float32)
        if "conditions" in self.abilities:
            for k, name in enumerate(self.conditions):
                out[..., k % self.input_shape[-1]] += np.asarray(conditions[name])[:, None, None]
        return out

    def sampler_options(self, given=None):
        """A fake generator samples in one step: it takes no sampler settings."""
        given = {k: v for k, v in (given or {}).items() if v is not None}
        if given:
            raise GalError(f"{self.path}: --{next(iter(given))} does not apply (one step)")
        return {}

    def score(self, images):
        if "scores" not in self.abilities:
            raise GalError(f"{self.path}: has no score head")
        s = np.asarray(images, np.float64).mean(axis=(1, 2, 3)) * self.scale
        return {"score": s, "p_real": 1 / (1 + np.exp(-s))}

    def features(self, images, batch_size=256):
        return np.asarray(images, np.float64).reshape(len(images), -1)[:, :4]


def install(monkeypatch, runs):
    """Make ``galtools.runs.load_run(path)`` return ``runs[path]`` (GalError otherwise)."""
    module = types.ModuleType("galtools.runs")

    def load_run(path):
        try:
            return runs[str(path)]
        except KeyError:
            raise GalError(f"{path}: not a training run") from None

    module.load_run = load_run
    module.Run = FakeRun
    monkeypatch.setitem(sys.modules, "galtools.runs", module)
