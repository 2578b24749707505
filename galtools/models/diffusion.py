"""``ddpm``: a denoising diffusion model (U-Net of :mod:`galtools.models.unet`), unconditional
or conditioned on label columns with classifier-free guidance.

Training (``train-batch --model ddpm``): pixels are mapped to the model's units by a per-band
asinh stretch (``u = (asinh((x - offset) / soft) - mu) / sd``, constants measured on the
training data and stored in ``model_config["scaling"]``); a diffusion time ``t ~ U(0, 1)``
and noise ``e`` give ``z = α u + σ e`` on the cosine schedule (``α = cos(πt/2)``,
``σ = sin(πt/2)``; the times of a batch stratified over [0, 1]); the network predicts
``v = α e - σ u`` (v-prediction, mean squared error weighted per noise level by
min(SNR, γ)/(SNR + 1), "min-SNR-γ" with γ = ``--min-snr``: measured on the demo disks, the
plain v-loss left the generated disks too round).  With conditions, each row's condition
is dropped with probability ``--cond-drop`` (a learned "no condition" embedding takes its
place), which is what classifier-free guidance needs.  An exponential moving average of the weights
(``--ema``) is kept beside them; it is what ``model.keras`` holds and what ``generate``
samples.  The step is compiled on the TensorFlow backend (``tf.GradientTape``) and on JAX
(``stateless_call`` + ``jax.value_and_grad`` + ``optimizer.stateless_apply``); checkpoints
hold the weights, their average, the optimizer state and the random generator's state, so a
resumed run continues exactly.

Sampling (``galprep generate``; :func:`ddim`): deterministic DDIM (η = 0) in ``--steps``
uniform time steps from pure noise, the prediction of the clean image clipped to the
training data's range at every step; with ``--guidance w`` the prediction is
``v_uncond + w (v_cond - v_uncond)`` (1: plain conditional sampling, one network call per
step; 0: unconditional; > 1: stronger conditioning, two calls per step; default 2, recorded
in the run's ``model_config["sampler"]``).  The initial noise
comes from ``--seed`` (NumPy), so the same seed, steps, guidance and batch size give the same
images.
"""

import math

import numpy as np

from galtools.errors import GalError
from galtools.models import Column, ModelSpec, save_keras
from galtools.params import Option

DEFAULT_STEPS = 40
DEFAULT_GUIDANCE = 2.0  # of a conditional run: measured on the demo disks, better than 1
SAMPLE_SAMPLE = 1024  # images read to measure the pixel scaling

OPTIONS = (
    Option(
        "condition",
        "Label columns to condition on (continuous; default: unconditional).",
        kind="list",
        metavar="COL[,COL]",
    ),
    Option(
        "width",
        "Channels of the first U-Net level.",
        kind="int",
        default=24,
        minimum=4,
        metavar="N",
    ),
    Option(
        "blocks", "Residual blocks per U-Net level.", kind="int", default=1, minimum=1, metavar="N"
    ),
    Option(
        "levels",
        "U-Net resolution levels (each halves the size; channels ×1, ×2, ×4, ×4...).",
        kind="int",
        default=3,
        minimum=1,
        metavar="N",
    ),
    Option(
        "min_snr",
        "Weigh each noise level's loss by min(SNR, G)/(SNR + 1) (min-SNR-γ; 0: plain "
        "v-loss, which leaves generated disks too round).",
        kind="float",
        default=5.0,
        minimum=0.0,
        metavar="G",
    ),
    Option(
        "cond_drop",
        "Probability of dropping a row's condition in training (classifier-free guidance).",
        kind="float",
        default=0.15,
        minimum=0.0,
        metavar="P",
    ),
)

SAMPLE_OPTIONS = (
    Option(
        "steps",
        f"Sampling steps (default: {DEFAULT_STEPS}).",
        kind="int",
        minimum=1,
        metavar="N",
    ),
    Option(
        "guidance",
        f"Classifier-free guidance weight of a conditional run (default {DEFAULT_GUIDANCE:g}; "
        "1: plain conditional, 0: unconditional).",
        kind="float",
        minimum=0.0,
        metavar="W",
    ),
)


# ------------------------------------------------------------------------- pixel scaling


def measure_scaling(path, sample=SAMPLE_SAMPLE):
    """Per-band asinh scaling constants from the first ``sample`` images of ``path``.

    ``offset``: median pixel; ``soft``: the robust spread (1.4826·MAD, ~ the noise of stamps
    that are mostly sky) where the stretch turns from linear to logarithmic; ``mu``/``sd``
    standardise the stretched pixels; ``lo``/``hi``: their range (sampling clips to it).
    """
    from galtools.train.data import robust_noise, sample_pixels

    pixels = sample_pixels(path, sample)
    offset = np.median(pixels, axis=0)
    soft = robust_noise(pixels, offset)
    spread = pixels.std(axis=0)
    soft = np.where(soft > 0, soft, np.where(spread > 0, spread, 1.0))
    u = np.arcsinh((pixels - offset) / soft)
    mu, sd = u.mean(axis=0), u.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    z = (u - mu) / sd
    return {
        "kind": "asinh",
        "offset": offset.tolist(),
        "soft": soft.tolist(),
        "mu": mu.tolist(),
        "sd": sd.tolist(),
        "lo": z.min(axis=0).tolist(),
        "hi": z.max(axis=0).tolist(),
    }


def to_model(x, scaling):
    """Images in data units → model units (NumPy)."""
    s = {k: np.asarray(v, np.float64) for k, v in scaling.items() if k != "kind"}
    return (np.arcsinh((np.asarray(x, np.float64) - s["offset"]) / s["soft"]) - s["mu"]) / s["sd"]


def from_model(u, scaling):
    """Model units → data units (NumPy), the inverse of :func:`to_model`."""
    s = {k: np.asarray(v, np.float64) for k, v in scaling.items() if k != "kind"}
    return s["offset"] + s["soft"] * np.sinh(np.asarray(u, np.float64) * s["sd"] + s["mu"])


def alpha_sigma(t):
    """The cosine schedule: (α, σ) at times ``t`` in [0, 1], α² + σ² = 1."""
    t = np.asarray(t, np.float64)
    return np.cos(0.5 * math.pi * t), np.sin(0.5 * math.pi * t)


# ------------------------------------------------------------------------------ sampling


def ddim(predict, z, steps, conditions=None, guidance=1.0, clip=None):
    """Deterministic DDIM sampling from noise ``z`` (N, H, W, C) in model units.

    ``predict(x, t, conditions, null)`` → v (NumPy arrays; ``t`` (N, 1); for an unconditional
    model ``conditions``/``null`` are None).  ``guidance`` w mixes conditional and null
    predictions as ``v_u + w (v_c - v_u)``.  ``clip``: (lo, hi) per band, the range the clean
    image is clipped to at every step.  Returns the clean images in model units.
    """
    z = np.asarray(z, np.float64)
    n = len(z)
    times = np.linspace(1.0, 0.0, int(steps) + 1)
    lo, hi = (None, None) if clip is None else (np.asarray(clip[0]), np.asarray(clip[1]))
    for t, s in zip(times[:-1], times[1:]):
        a, sg = alpha_sigma(t)
        tt = np.full((n, 1), t, np.float32)
        x32 = z.astype(np.float32)
        if conditions is None:
            v = predict(x32, tt, None, None)
        elif guidance == 1.0:
            v = predict(x32, tt, conditions, np.zeros((n, 1), np.float32))
        elif guidance == 0.0:
            v = predict(x32, tt, np.zeros_like(conditions), np.ones((n, 1), np.float32))
        else:
            both = predict(
                np.concatenate([x32, x32]),
                np.concatenate([tt, tt]),
                np.concatenate([conditions, np.zeros_like(conditions)]),
                np.concatenate([np.zeros((n, 1), np.float32), np.ones((n, 1), np.float32)]),
            )
            v_c, v_u = np.asarray(both[:n], np.float64), np.asarray(both[n:], np.float64)
            v = v_u + guidance * (v_c - v_u)
        v = np.asarray(v, np.float64)
        x0 = a * z - sg * v
        if lo is not None:
            x0 = np.clip(x0, lo, hi)
        eps = (z - a * x0) / sg
        a2, s2 = alpha_sigma(s)
        z = a2 * x0 + s2 * eps
    return z


def sample_images(net, config, z, conditions=None, steps=DEFAULT_STEPS, guidance=1.0, batch=256):
    """Images in data units from the U-Net ``net`` (a keras model) for noise ``z``, in network
    calls of at most ``batch`` rows (a guided step calls it on each image twice)."""
    mc = config["model_config"]
    scaling = mc["scaling"]

    def predict(x, t, cond, null):
        inputs = [x, t] if cond is None else [x, t, cond.astype(np.float32), null]
        return np.asarray(net.predict_on_batch(inputs), np.float64)

    outs = []
    clip = (scaling["lo"], scaling["hi"])
    if conditions is not None and guidance not in (0.0, 1.0):
        batch = max(1, batch // 2)
    for s in range(0, len(z), batch):
        cond = None if conditions is None else conditions[s : s + batch]
        u = ddim(predict, z[s : s + batch], steps, cond, guidance, clip)
        outs.append(from_model(u, scaling).astype(np.float32))
    if not outs:
        return np.empty((0,) + tuple(config["input_shape"]), np.float32)
    return np.concatenate(outs)


# ------------------------------------------------------------------------------ training


def make_diffusion_class():
    """The keras.Model subclass that trains a U-Net and its moving average (needs keras)."""
    import keras

    ops = keras.ops
    jax_backend = keras.backend.backend() == "jax"

    class Diffusion(keras.Model):
        """``train_on_batch(images, conditions)``: one denoising step; ``.ema``: the averaged
        U-Net that is saved and sampled; ``.net``: the one the optimizer moves."""

        def __init__(
            self, net, ema, scaling, cond_drop=0.15, decay=0.995, min_snr=0.0, seed=0, **kw
        ):
            super().__init__(**kw)
            self.min_snr = float(min_snr)
            self.net, self.ema = net, ema
            self.ema.trainable = False
            self.conditional = len(net.inputs) > 2
            self.cond_drop = float(cond_drop)
            self.decay = float(decay)
            self.scaling = {
                k: [float(v) for v in scaling[k]] for k in ("offset", "soft", "mu", "sd")
            }
            self.noise = keras.random.SeedGenerator(seed)
            for e, w in zip(self.ema.weights, self.net.weights):
                e.assign(np.array(w.numpy()))  # a copy: JAX must not see one buffer twice
            self.built = True

        def compile(self, optimizer):
            super().compile(optimizer=optimizer)  # mixed_float16: wrapped for loss scaling
            self.optimizer.build(self.net.trainable_variables)

        def call(self, inputs, training=False):
            return self.net(inputs, training=training)

        def checkpoint_variables(self):
            state = self.noise.state
            return (
                list(self.net.weights)
                + list(self.ema.weights)
                + list(self.optimizer.variables)
                + (list(state) if isinstance(state, list) else [state])
            )

        # -- pieces shared by both backends
        def _to_model(self, x):
            c = {k: ops.convert_to_tensor(v, dtype="float32") for k, v in self.scaling.items()}
            x = ops.cast(x, "float32")
            return (ops.arcsinh((x - c["offset"]) / c["soft"]) - c["mu"]) / c["sd"]

        def _draw(self, x, y):
            """(network inputs, v target, per-image loss weight) for a batch: random times,
            noise, dropped rows."""
            u = self._to_model(x)
            n = ops.shape(u)[0]
            # stratified times (one uniform offset, evenly spread): a less noisy loss
            rows = ops.cast(ops.arange(n), "float32")[:, None] / ops.cast(n, "float32")
            t = rows + keras.random.uniform((1, 1), seed=self.noise)
            t = t - ops.floor(t)
            eps = keras.random.normal(ops.shape(u), seed=self.noise)
            a = ops.reshape(ops.cos(0.5 * math.pi * t), (-1, 1, 1, 1))
            s = ops.reshape(ops.sin(0.5 * math.pi * t), (-1, 1, 1, 1))
            z = a * u + s * eps
            target = a * eps - s * u
            # min-SNR-γ: the clean image's error weighted by min(SNR, γ) (plain v-loss:
            # SNR + 1), i.e. the v-loss by min(SNR, γ) / (SNR + 1) = min(α², γ σ²)
            weight = ops.ones_like(t)
            if self.min_snr > 0:
                weight = ops.minimum(a[:, 0, 0] ** 2, self.min_snr * s[:, 0, 0] ** 2)
            inputs = [z, t]
            if self.conditional:
                drop = keras.random.uniform((n, 1), seed=self.noise) < self.cond_drop
                null = ops.cast(drop, "float32")
                inputs += [ops.cast(y, "float32") * (1.0 - null), null]
            return inputs, target, weight

        @staticmethod
        def _loss(pred, target, weight):
            err = ops.mean(ops.square(ops.cast(pred, "float32") - target), axis=(1, 2, 3))
            return ops.mean(err * weight[:, 0])

        def _ema_rate(self, iterations):
            """The decay in use: ramps up over the first steps (an average of few steps)."""
            n = ops.cast(iterations, "float32")
            return ops.minimum(self.decay, (1.0 + n) / (10.0 + n))

        if jax_backend:

            def train_step(self, state, data):
                import jax

                trainable, non_trainable, opt_values, metric_values = state
                x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
                nt_index = {id(v): i for i, v in enumerate(self.non_trainable_variables)}
                tr_index = {id(v): i for i, v in enumerate(self.trainable_variables)}
                non_trainable = list(non_trainable)
                mapping = list(zip(self.non_trainable_variables, non_trainable))
                with keras.StatelessScope(state_mapping=mapping) as scope:
                    inputs, target, weight = self._draw(x, y)
                for i, v in enumerate(self.non_trainable_variables):
                    new = scope.get_current_value(v)
                    if new is not None:
                        non_trainable[i] = new
                net_tr = [tr_index[id(v)] for v in self.net.trainable_variables]
                net_nt = [non_trainable[nt_index[id(v)]] for v in self.net.non_trainable_variables]

                opt_vars = self.optimizer.variables

                def loss_of(values):
                    pred, _ = self.net.stateless_call(
                        [values[i] for i in net_tr], net_nt, inputs, training=True
                    )
                    loss = self._loss(pred, target, weight)
                    # mixed_float16: the loss-scale optimizer scales (and later unscales)
                    with keras.StatelessScope(state_mapping=list(zip(opt_vars, opt_values))):
                        return self.optimizer.scale_loss(loss), loss

                (_, loss), grads = jax.value_and_grad(loss_of, has_aux=True)(list(trainable))
                it = opt_values[[id(v) for v in opt_vars].index(id(self.optimizer.iterations))]
                rate = self._ema_rate(it)
                trainable, opt_values = self.optimizer.stateless_apply(opt_values, grads, trainable)
                for e, w in zip(self.ema.weights, self.net.weights):
                    new = (
                        trainable[tr_index[id(w)]]
                        if id(w) in tr_index
                        else non_trainable[nt_index[id(w)]]
                    )
                    k = nt_index[id(e)]
                    non_trainable[k] = rate * non_trainable[k] + (1.0 - rate) * new
                logs = {"loss": loss}
                return logs, (trainable, non_trainable, opt_values, metric_values)

        else:

            def train_step(self, data):
                import tensorflow as tf

                x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
                inputs, target, weight = self._draw(x, y)
                variables = self.net.trainable_variables
                with tf.GradientTape() as tape:
                    loss = self._loss(self.net(inputs, training=True), target, weight)
                    scaled = self.optimizer.scale_loss(loss)  # mixed_float16: loss scaling
                rate = self._ema_rate(self.optimizer.iterations)
                self.optimizer.apply(tape.gradient(scaled, variables), variables)
                for e, w in zip(self.ema.weights, self.net.weights):
                    e.assign(rate * e + (1.0 - rate) * w)
                return {"loss": loss}

    return Diffusion


# ---------------------------------------------------------------------------------- spec


class DiffusionSpec(ModelSpec):
    """The ``ddpm`` model: see the module's docstring."""

    task = "diffusion"
    options = OPTIONS
    columns = (Column("condition", "scaled", role="condition"),)
    abilities = frozenset({"generates", "conditions"})
    recipe = {"ema": 0.995}  # the average of the weights that is sampled (ramps up itself)
    sample_options = SAMPLE_OPTIONS

    def __init__(self, name, description):
        self.name, self.description = name, description

    def configure(self, options, info):
        drop = float(options["cond_drop"])
        if not 0.0 <= drop < 1.0:
            raise GalError(f"--cond-drop must be in [0, 1), got {drop:g}")
        return {
            "width": int(options["width"]),
            "blocks": int(options["blocks"]),
            "channel_mult": [min(2**i, 4) for i in range(int(options["levels"]))],
            "conditions": list(options.get("condition") or []),
            "cond_drop": drop,
            "min_snr": float(options["min_snr"]),
            "prediction": "v",
            "schedule": "cosine",
            "scaling": measure_scaling(info.paths[0]),
            # guidance needs the unconditional prediction, learnt only when conditions drop
            "sampler": {"name": "ddim", "steps": DEFAULT_STEPS}
            | (
                {"guidance": DEFAULT_GUIDANCE if drop > 0 else 1.0}
                if options.get("condition")
                else {}
            ),
        }

    def build(self, config):
        from galtools.models.unet import build_unet
        from galtools.train.recipe import optimizer

        mc = config["model_config"]
        tr = config["training"]
        model = make_diffusion_class()(
            build_unet(config, "unet"),
            build_unet(config, "ema_unet"),
            mc["scaling"],
            cond_drop=mc["cond_drop"],
            decay=tr.get("ema", mc.get("ema", 0.995)),  # older runs: in model_config
            min_snr=mc.get("min_snr", 0.0),
            seed=tr["seed"],
            name=self.name,
        )
        model.compile(optimizer(dict(tr, ema_used=0.0)))  # its own average: .ema
        return model

    def save(self, model, run_dir):
        import os

        save_keras(model.ema, os.path.join(run_dir, "model.keras"))

    # -- sampling
    def check_sample(self, run, options):
        """GalError for sampler options that do not fit ``run`` (``options``: as given)."""
        if options.get("guidance") is not None and not run.conditions:
            raise GalError(
                f"{run.path}: --guidance needs conditions, and {run.describe()} is unconditional "
                "(train with --condition COL)"
            )
        given = options.get("guidance")
        if (
            given is not None
            and float(given) != 1.0
            and not run.config["model_config"].get("cond_drop", 1.0)
        ):
            raise GalError(
                f"{run.path}: trained with --cond-drop 0, it never learnt the unconditional "
                f"prediction that --guidance {given:g} mixes in: use --guidance 1"
            )

    def sample(self, run, n, seed, conditions, batch_size, steps=None, guidance=None):
        """``n`` images (data units) from the run's averaged U-Net; ``conditions``: (n, K)
        scaled to [-1, 1] (None for an unconditional run)."""
        mc = run.config["model_config"]
        defaults = mc.get("sampler") or {}
        steps = int(steps or defaults.get("steps", DEFAULT_STEPS))
        guidance = float(defaults.get("guidance", 1.0) if guidance is None else guidance)
        shape = tuple(run.config["input_shape"])
        z = np.random.default_rng(seed).standard_normal((int(n),) + shape)
        net = run.keras_model()
        return sample_images(net, run.config, z, conditions, steps, guidance, batch_size)

    def preview(self, model, config, count):
        """Images of the model being trained (its moving average), for per-pass montages:
        fixed noise (the run's seed) and, with conditions, a grid of values from -1 to 1."""
        rng = np.random.default_rng(config["training"]["seed"])
        z = rng.standard_normal((count,) + tuple(config["input_shape"]))
        cond = None
        k = len(config["model_config"]["conditions"])
        if k:
            side = max(1, int(round(math.sqrt(count))))
            grid = np.linspace(-1, 1, side, dtype=np.float32)
            cond = np.tile(np.repeat(grid, -(-count // side))[:count, None], (1, k))
        sampler = config["model_config"].get("sampler") or {}
        guidance = sampler.get("guidance", 1.0)
        return sample_images(model.ema, config, z, cond, DEFAULT_STEPS, guidance, count)


ddpm = DiffusionSpec(
    "ddpm",
    "diffusion U-Net (v-prediction, cosine schedule, EMA, DDIM sampler), unconditional or "
    "conditioned on --condition columns with classifier-free guidance",
)
