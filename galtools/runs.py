"""Trained runs: ``load_run(RUN)`` → a :class:`Run` that predicts, generates, scores, embeds.

A run directory (written by ``galprep train-batch``) holds ``config.json`` (everything needed
to rebuild and reuse the model: task, label scaling, class names, conditions, image shape),
``model.keras`` (GANs: the generator; plus ``discriminator.keras``; a diffusion model: the averaged
denoising U-Net, which its spec's sampler steps) or, for closed-form models, ``weights.npz``.
Keras files load with ``safe_mode=True``; label scaling is inverted here, so callers see
physical units.  What a run can do (predict, generate, score, …) is its
model's :data:`~galtools.models.ABILITIES`, recorded in the config (older runs: asked of the
model spec).
"""

import os

import numpy as np

from galtools.errors import GalError, InputError


def load_run(path):
    """Open a run directory; a one-line GalError naming ``path`` when it is not a usable run."""
    from galtools.train.rundir import read_config

    path = os.fspath(path)
    return Run(path, read_config(path))


class Run:
    """A trained model and the facts needed to use it."""

    def __init__(self, path, config):
        self.path = path
        self.config = config
        self._models = {}
        self._spec = None

    # ------------------------------------------------------------------ facts
    @property
    def model_name(self):
        return self.config["model"]

    @property
    def task(self):
        return self.config["task"]

    @property
    def target(self):
        return self.config.get("target")

    @property
    def class_names(self):
        return self.config.get("class_names") if self.task == "classification" else None

    @property
    def conditions(self):
        return list(self.config.get("conditions") or [])

    @property
    def input_shape(self):
        shape = self.config.get("input_shape")
        return tuple(shape) if shape is not None else None

    @property
    def bands(self):
        return list(self.config.get("bands") or [])

    @property
    def spec(self):
        if self._spec is None:
            from galtools import models

            self._spec = models.get(self.model_name)
        return self._spec

    @property
    def abilities(self):
        """What the run can do: names of :data:`galtools.models.ABILITIES`."""
        if "abilities" in self.config:
            abilities = frozenset(self.config["abilities"])
        else:
            abilities = frozenset(self.spec.abilities)
        if not self.conditions:  # a model that may take conditions, trained without any
            abilities -= {"conditions"}
        return abilities

    def _cannot(self, what, ability):
        """GalError: this run cannot ``what``; names the registered models whose runs can."""
        from galtools.models import able

        return GalError(
            f"{self.path}: {self.describe()} {what} (a run of a model that can: {able(ability)})"
        )

    @property
    def closed_form(self):
        return os.path.exists(os.path.join(self.path, "weights.npz")) and not os.path.exists(
            os.path.join(self.path, "model.keras")
        )

    def __repr__(self):
        return f"<Run {self.path}: {self.model_name} ({self.task})>"

    def describe(self):
        # generators (task "gan": GANs and diffusion models alike) go by their model's name
        task = "" if self.task == "gan" else f" {self.task}"
        what = f"a {self.model_name}{task} run"
        return what + (f" of '{self.target}'" if self.target else "")

    # ---------------------------------------------------------------- models
    def _load(self, name):
        if name not in self._models:
            from galtools.models import load_keras

            path = os.path.join(self.path, name)
            if not os.path.isfile(path):
                raise InputError(self.path, f"has no {name} (training not finished or not run)")
            try:
                self._models[name] = load_keras(path)
            except GalError:
                raise
            except Exception as exc:
                text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise InputError(path, f"cannot load model ({text[:200]})") from None
        return self._models[name]

    def keras_model(self):
        """The main network (the generator for GANs)."""
        return self._load("model.keras")

    def discriminator(self):
        if self.task != "gan" and "scores" not in self.abilities:
            raise GalError(f"{self.path}: {self.describe()} has no discriminator")
        return self._load("discriminator.keras")

    # ---------------------------------------------------------------- inputs
    def _images(self, images):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise GalError(f"{self.path}: expected N×H×W×C images, got shape {images.shape}")
        shape = self.input_shape
        if shape is not None and tuple(images.shape[1:]) != shape:
            raise GalError(
                f"{self.path}: model takes {'×'.join(map(str, shape))} images, "
                f"got {'×'.join(map(str, images.shape[1:]))}"
            )
        if shape is None and self.bands and images.shape[-1] != len(self.bands):
            raise GalError(
                f"{self.path}: model takes {len(self.bands)} bands, got {images.shape[-1]}"
            )
        return images.astype(np.float32, copy=False)

    @staticmethod
    def _batched(model, x, batch_size):
        outs = []
        for s in range(0, len(x), batch_size):
            outs.append(model.predict_on_batch(x[s : s + batch_size]))
        if not outs:
            return None
        if isinstance(outs[0], dict):
            return {k: np.concatenate([np.asarray(o[k]) for o in outs]) for k in outs[0]}
        return np.concatenate([np.asarray(o) for o in outs])

    # ------------------------------------------------------------------- API
    def predict(self, images, batch_size=256):
        """Regression: (N,) physical units; classification: (N, K) probabilities;
        denoise: cleaned images of the input's shape."""
        x = self._images(images)
        if not self.abilities & {"predicts", "denoises"}:
            tools = (("generate", "generates"), ("score", "scores"))
            uses = [f"galprep {tool}" for tool, a in tools if a in self.abilities]
            raise GalError(
                f"{self.path}: {self.describe()} does not predict"
                + (f"; use {' or '.join(uses)}" if uses else "")
            )
        if self.closed_form:
            return np.asarray(self.spec.predict(self, x))
        model = self.keras_model()
        if len(x) == 0:
            k = len(self.class_names or []) if self.task == "classification" else None
            return np.empty((0, k) if k else (0,) if self.task == "regression" else x.shape)
        out = self._batched(model, x, batch_size)
        if self.task == "regression":
            col = self.config["columns"][0]
            if col.get("kind") == "scaled":
                from galtools.train.data import from_unit

                return from_unit(out[:, 0], col)
            return out[:, 0].astype(np.float64)
        return out

    def sampler_options(self, given=None):
        """The sampler settings of a run whose model samples itself (``spec.sample``), checked
        and with defaults (``given``: {name: value}, None = not given); {} for a run that
        generates in one network call, which takes none (a GalError naming the option)."""
        from galtools.params import resolve

        given = {k: v for k, v in (given or {}).items() if v is not None}
        spec = self.spec if "generates" in self.abilities else None
        declared = tuple(getattr(spec, "sample_options", ()) or ())
        if not callable(getattr(spec, "sample", None)):
            declared = ()
        names = {o.name for o in declared}
        for key in given:
            if key not in names:
                flag = "--" + key.replace("_", "-")
                why = (
                    f"its sampler takes {', '.join(o.flag for o in declared)}"
                    if declared
                    else "it samples in one step"
                )
                raise GalError(f"{self.path}: {flag} does not apply to {self.describe()} ({why})")
        if not declared:
            return {}
        try:
            options = resolve(declared, given)
        except ValueError as exc:
            raise GalError(f"{self.path}: {exc}") from None
        check = getattr(spec, "check_sample", None)
        if callable(check):
            check(self, {k: v for k, v in options.items() if k in given})
        return options

    def generate(self, n, seed=0, conditions=None, batch_size=256, **sampler):
        """N generated images in the data's units; ``conditions``: {name: (N,)} physical units.

        ``sampler``: settings of a model that samples itself (e.g. ``steps``, ``guidance``; see
        :meth:`sampler_options`), whose ``spec.sample`` then makes the images."""
        if "generates" not in self.abilities:
            raise self._cannot("cannot generate images", "generates")
        options = self.sampler_options(sampler)
        cond = None
        if self.conditions:
            cond = self._conditions(conditions, int(n))
        elif conditions:
            raise GalError(f"{self.path}: {self.describe()} takes no conditions")
        if callable(getattr(self.spec, "sample", None)):
            images = self.spec.sample(self, int(n), seed, cond, int(batch_size), **options)
            return np.asarray(images, np.float32)
        mc = self.config["model_config"]
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(int(n), mc["latent_dim"])).astype(np.float32)
        gen = self.keras_model()
        inputs = z if cond is None else [z, cond]
        outs = []
        for s in range(0, int(n), batch_size):
            part = (
                [a[s : s + batch_size] for a in inputs]
                if isinstance(inputs, list)
                else inputs[s : s + batch_size]
            )
            outs.append(np.asarray(gen.predict_on_batch(part)))
        shape = (0,) + tuple(self.input_shape)
        return np.concatenate(outs) if outs else np.empty(shape, np.float32)

    def _conditions(self, conditions, n):
        from galtools.train.data import to_unit

        if not conditions:
            raise GalError(
                f"{self.path}: {self.describe()} needs conditions for {', '.join(self.conditions)}"
            )
        cols = {c["name"]: c for c in self.config["columns"]}
        missing = [c for c in self.conditions if c not in conditions]
        if missing:
            raise GalError(
                f"{self.path}: missing condition '{missing[0]}' "
                f"(needs {', '.join(self.conditions)})"
            )
        out = []
        for name in self.conditions:
            v = np.broadcast_to(np.asarray(conditions[name], np.float64), (n,))
            if not np.isfinite(v).all():
                raise GalError(f"condition '{name}' has NaN/infinite values")
            out.append(to_unit(v, cols[name]))
        return np.stack(out, axis=1).astype(np.float32)

    def score(self, images, batch_size=256):
        """Runs that score: {"score": (N,) in the target's units, and "p_real": (N,)
        P(real galaxy) when the discriminator has a real/corrupted head}."""
        if "scores" not in self.abilities:
            raise self._cannot("has no score head", "scores")
        from galtools.train.data import from_unit

        x = self._images(images)
        disc = self.discriminator()
        heads = set(disc.output) if isinstance(disc.output, dict) else set()
        if "score" not in heads:
            raise GalError(f"{self.path}: discriminator.keras has no 'score' output")
        out = self._batched(disc, x, batch_size)
        if out is None:
            return {k: np.empty(0) for k in ("score", "p_real") if k == "score" or "label" in heads}
        cols = {c["name"]: c for c in self.config["columns"]}
        col = cols.get(self.target) or self.config["columns"][0]
        result = {"score": from_unit(out["score"][:, 0], col)}
        if "label" in out:
            result["p_real"] = 1.0 / (1.0 + np.exp(-out["label"][:, 0].astype(np.float64)))
        return result

    def features(self, images, batch_size=256):
        """(N, D) activations of the penultimate layer ("features")."""
        x = self._images(images)
        if self.closed_form:
            return np.asarray(self.spec.features(self, x))
        key = "_features"
        if key not in self._models:
            from galtools.models import quiet_tensorflow

            quiet_tensorflow()
            import keras

            base = self.discriminator() if self.task == "gan" else self.keras_model()
            try:
                layer = base.get_layer("features")
            except ValueError:
                raise GalError(f"{self.path}: {self.describe()} has no 'features' layer") from None
            self._models[key] = keras.Model(base.inputs, layer.output)
        out = self._batched(self._models[key], x, batch_size)
        if out is None:
            return np.empty((0, 0), np.float32)
        if out.ndim == 4:  # fully convolutional: average over the image
            out = out.mean(axis=(1, 2))
        return out.reshape(len(out), -1)
