"""GANs: ``dcgan`` (unconditional), ``twoinone`` (discriminator also scores and tells real
galaxies from corrupted ones; the generator is pushed towards high scores) and ``cgan``
(conditioned on continuous label columns).

What makes them train on a few thousand stamps on a CPU (architecture version :data:`ARCH`):

- pixels enter both networks through an asinh stretch (:class:`~galtools.models.layers.
  AsinhScale`, linear up to ~2σ of the noise, logarithmic above), so noise, faint outskirts and
  bright cores all get a fair share of the generator's tanh range;
- the generator up-samples by nearest-neighbour resizing followed by 3×3 convolutions (no
  transposed convolutions, hence no checkerboards), normalises features per pixel
  (:class:`~galtools.models.layers.PixelNorm`: no batch statistics) and modulates every scale
  (:class:`~galtools.models.layers.FiLM`) by a code mapped from the noise and, for ``cgan``,
  the conditions;
- the discriminator sees the stretched pixels standardised, down-samples by strided
  convolutions, and for ``cgan`` adds a projection term ⟨embed(c), φ(x)⟩ to its realness
  logit and regresses the conditions with an auxiliary head (trained on real images, obeyed
  by the generator).  Spectral normalisation (:class:`~galtools.models.layers.SNConv2D`,
  :class:`~galtools.models.layers.SNDense`) is available (``model_config["sn"]``) but off:
  on the demo disks its critic's logits shrank towards zero after ~500 steps, the
  discriminator stopped telling real from generated and the generator drifted to round blobs
  or one orientation; R1 alone keeps it in check;
- non-saturating logistic loss with a lazy R1 penalty (every ``r1_every`` steps, weighted by
  that many) on the real images;
- augmentation before the discriminator: random small translations (zero, i.e. background,
  fill) of real and generated images alike (differentiable augmentation: a small set is not
  memorised), and flips and transpositions of the real images (galaxies have no preferred
  orientation, so these are real images too; :func:`augmentation` says why not the fakes);
- the realness logit also sees the spread of the batch (:class:`~galtools.models.layers.
  BatchSpread`), so that drawing the same galaxy every time is caught;
- an exponential moving average of the generator's weights is what samples: ``model.keras``
  is the averaged generator; checkpoints hold it, so a resumed run continues exactly.  Its
  half-life grows with training (:func:`ema_beta`); at learning rates above ~3e-4 the
  generator still changes so fast from step to step that even a short average blurs it.

The training step is written once over ``keras.ops``; TensorFlow differentiates it with
``tf.GradientTape`` inside a ``tf.function``; JAX with ``jax.value_and_grad`` over
``stateless_call`` and ``optimizer.stateless_apply`` inside ``jax.jit`` (TensorFlow is then
never imported).  Losses are computed in float32 (the step also runs under a mixed-precision
dtype policy).  All randomness of a step (noise, augmentations) is drawn with NumPy from
(seed, step), so both backends see the same draws and a resumed run the same as an unbroken one.

The pieces are public for plugins: :func:`build_generator`, :func:`build_discriminator` (with
the extra heads wanted) and :func:`make_gan_class`, whose training step follows the heads the
discriminator has: ``score`` (regresses the first column of y, pushes fakes to high scores),
``label`` (a real/corrupted logit on the second column of y), ``conditions`` (predicts y).
"""

import math

import numpy as np

from galtools.errors import GalError
from galtools.models import Column, ModelSpec, save_keras
from galtools.params import Option

ARCH = 2  # architecture version of the built-in GANs; runs of another cannot resume
LATENT = 64
HEADS = {"dcgan": (), "twoinone": ("score", "label"), "cgan": ()}  # besides "real"
WIDTH = Option("width", "Base number of filters.", kind="int", default=32, minimum=4, metavar="N")
# training settings recorded in model_config (defaults for configs that lack them)
DEFAULTS = {
    "r1": 0.01,  # R1 weight γ (penalty γ/2 · E|∇D(real)|² on the stretched pixels)
    "r1_every": 4,  # lazy R1: every k-th step, weighted by k
    "ema": 0.999,  # generator weight average: decay at most this...
    "ema_rampup": 0.05,  # ...and a half-life of at most this fraction of the steps so far
    "sn": False,  # spectral normalisation of the discriminator (see the module's notes)
    "spread": True,  # the realness logit also sees the batch's spread (against mode collapse)
    "shift": 0.0625,  # augmentation: translations up to this fraction of the image size
    "flip": True,  # augmentation: flips (and transpositions of square images)
    "cond_weight": 1.0,  # cgan: weight of the auxiliary condition regression
    "map_dim": 128,  # size of the code that modulates every generator scale
}


def _setting(mc, name):
    return mc.get(name, DEFAULTS[name])


# ------------------------------------------------------------------------------- networks


def _plan(h, w):
    """(number of 2× up-samplings, base height, base width): the base is about 4×4."""
    n_up = max(1, int(round(math.log2(max(min(h, w), 4) / 4))))
    return n_up, -(-h // 2**n_up), -(-w // 2**n_up)


def _channels(width, level):
    """Filters at ``level`` halvings below full resolution: half the width at full
    resolution, doubling at each halving up to 4× the width (the cost of a 3×3 convolution is
    then about the same at every scale)."""
    return max(1, min(width * 2**level // 2, 4 * width))


def pixel_stretch(paths, sample=1024, soft_sigmas=2.0, top=0.8):
    """{"offset", "soft", "gain"} per band of the asinh stretch, measured on the first
    ``sample`` images of the first file: offset the median, soft ``soft_sigmas`` × the robust
    (MAD) noise, gain so that the 99.9th percentile of |x − offset| maps to ``top``."""
    from galtools.train.data import robust_noise, sample_pixels

    pixels = sample_pixels(paths[0], sample)
    offset = np.median(pixels, axis=0)
    dev = np.abs(pixels - offset)
    noise = robust_noise(pixels, offset)
    q = np.percentile(dev, 99.9, axis=0)
    noise = np.where(noise > 0, noise, np.where(q > 0, q / 100, 1.0))
    soft = soft_sigmas * noise
    gain = np.arcsinh(np.maximum(q, soft) / soft) / top
    stretched = np.arcsinh((pixels - offset) / soft) / gain
    spread = stretched.std(axis=0)
    return {
        "offset": offset.tolist(),
        "soft": soft.tolist(),
        "gain": gain.tolist(),
        "mean": stretched.mean(axis=0).tolist(),  # of the stretched pixels: the discriminator
        "std": np.where(spread > 0, spread, 1.0).tolist(),  # standardises them
    }


def _stretch(config, inverse, name):
    """The pixel map of a run: asinh (this architecture) or linear (``config["norm"]``)."""
    from galtools.models.layers import AsinhScale, BandScale

    px = config["model_config"].get("pixels")
    if px:
        return AsinhScale(px["offset"], px["soft"], px["gain"], inverse=inverse, name=name)
    norm = config["norm"]
    return BandScale(norm["offset"], norm["scale"], inverse=inverse, name=name)


def build_generator(config):
    """z (+ conditions in [-1, 1]) → images in the data's units, of the data's shape.

    The layer ``"rgb"`` holds the stretched image (tanh) before the final ``"images"`` map
    back to data units; training compares stretched images."""
    import keras

    from galtools.models.layers import FiLM, PixelNorm

    L = keras.layers
    mc = config["model_config"]
    h, w, c = config["input_shape"]
    ch = mc["width"]
    n_up, sh, sw = _plan(h, w)
    z = L.Input((mc["latent_dim"],), name="z")
    inputs, code = [z], PixelNorm(name="g_znorm")(z)
    cond_code = None
    if mc["conditions"]:
        cond = L.Input((len(mc["conditions"]),), name="conditions")
        inputs.append(cond)
        cond_code = L.LeakyReLU(0.2, name="g_cact")(L.Dense(64, name="g_cembed")(cond))
        code = L.Concatenate(name="g_zc")([code, cond_code])
    dim = _setting(mc, "map_dim")
    style = L.LeakyReLU(0.2, name="g_map1a")(L.Dense(dim, name="g_map1")(code))
    style = L.LeakyReLU(0.2, name="g_map2a")(L.Dense(dim, name="g_map2")(style))
    if cond_code is not None:  # the conditions reach every scale directly, too
        style = L.Concatenate(name="g_style")([style, cond_code])

    def unit(x, filters, tag):
        x = L.Conv2D(filters, 3, padding="same", name=f"g_conv{tag}")(x)
        x = PixelNorm(name=f"g_pn{tag}")(x)
        x = FiLM(name=f"g_film{tag}")([x, style])
        return L.LeakyReLU(0.2, name=f"g_act{tag}")(x)

    f0 = _channels(ch, n_up)
    x = L.Dense(sh * sw * f0, name="g_dense")(style)
    x = L.Reshape((sh, sw, f0), name="g_reshape")(x)
    x = PixelNorm(name="g_pn0")(x)
    x = L.LeakyReLU(0.2, name="g_act0")(FiLM(name="g_film0")([x, style]))
    x = unit(x, f0, "0b")
    for level in range(n_up - 1, -1, -1):
        x = L.UpSampling2D(2, interpolation="nearest", name=f"g_up{level}")(x)
        x = unit(x, _channels(ch, level), f"{level}a")
        if level:
            x = unit(x, _channels(ch, level), f"{level}b")
    x = L.Conv2D(c, 3, padding="same", name="g_out")(x)
    big_h, big_w = sh * 2**n_up, sw * 2**n_up
    if (big_h, big_w) != (h, w):
        top, left = (big_h - h) // 2, (big_w - w) // 2
        x = L.Cropping2D(((top, big_h - h - top), (left, big_w - w - left)), name="g_crop")(x)
    x = L.Activation("tanh", name="rgb")(x)
    out = _stretch(config, True, "images")(x)
    return keras.Model(inputs if len(inputs) > 1 else z, out, name="generator")


def build_discriminator(config, heads=None):
    """images → {"real": logit, + each of ``heads`` ("score", "label"), + "conditions" and
    "embedding" (the features, for the projection term) when the run has conditions};
    ``heads`` by default those of ``model_config["mode"]``.  The layer ``"norm"`` stretches
    the pixels; the penultimate layer is ``"features"``."""
    import keras

    from galtools.models.layers import BandScale, BatchSpread, SNConv2D, SNDense

    L = keras.layers
    mc = config["model_config"]
    if not _setting(mc, "sn"):

        def SNConv2D(filters, size, strides=1, name=None):  # noqa: N802 (stands in for it)
            return L.Conv2D(filters, size, strides=strides, padding="same", name=name)

        def SNDense(units, name):  # noqa: N802
            return L.Dense(units, name=name)

    ch = mc["width"]
    h, w, _ = config["input_shape"]
    n_down = _plan(h, w)[0]
    inp = L.Input(tuple(config["input_shape"]), name="images")
    x = _stretch(config, False, "norm")(inp)
    px = mc.get("pixels") or {}
    if "std" in px:  # unit-variance inputs: a spectrally normalised network cannot amplify
        x = BandScale(px["mean"], px["std"], name="d_std")(x)
    x = L.LeakyReLU(0.2, name="d_act_in")(SNConv2D(_channels(ch, 0), 3, name="d_conv_in")(x))
    for level in range(1, n_down + 1):  # strided convolutions (pooling would shrink the signal)
        x = SNConv2D(_channels(ch, level), 4, strides=2, name=f"d_conv{level}")(x)
        x = L.LeakyReLU(0.2, name=f"d_act{level}")(x)
    x = SNConv2D(_channels(ch, n_down), 3, name="d_conv_top")(x)
    top = L.LeakyReLU(0.2, name="d_act_top")(x)
    x = L.Flatten(name="d_flat")(top)
    x = SNDense(128, name="d_dense")(x)
    feats = L.LeakyReLU(0.2, name="features")(x)
    if _setting(mc, "spread"):  # batch diversity, seen by the realness logit only
        spread = BatchSpread(name="d_spread")(top)
        out = {"real": SNDense(1, name="real")(L.Concatenate(name="d_real_in")([feats, spread]))}
    else:
        out = {"real": SNDense(1, name="real")(feats)}
    heads = HEADS.get(mc.get("mode"), ()) if heads is None else tuple(heads)
    if "score" in heads:
        out["score"] = L.Dense(1, activation="tanh", name="score")(feats)
    if "label" in heads:
        out["label"] = L.Dense(1, name="label")(feats)
    if mc["conditions"]:
        if _setting(mc, "cond_weight"):
            out["conditions"] = L.Dense(
                len(mc["conditions"]), activation="tanh", name="conditions"
            )(feats)
        out["embedding"] = feats
    return keras.Model(inp, out, name="discriminator")


def _inner(model, first, last):
    """The part of functional ``model`` from the output of layer ``first`` (or its inputs)
    to the input of layer ``last`` (or its outputs), sharing its layers and weights."""
    import keras

    names = {layer.name for layer in model.layers}
    inputs = model.get_layer(first).output if first in names else model.inputs
    outputs = model.get_layer(last).input if last in names else model.outputs
    if isinstance(inputs, list) and len(inputs) == 1:
        inputs = inputs[0]
    if first not in names and last not in names:
        return model
    return keras.Model(inputs, outputs if last in names else model.output)


def _critic(discriminator, n_cond, shape):
    """Stretched images (+ conditions) → the discriminator's outputs, "real" including the
    projection term ⟨embed(c), features⟩ when there are conditions and an "embedding"."""
    import keras

    from galtools.models.layers import SNDense

    L = keras.layers
    body = _inner(discriminator, "norm", None)
    x = L.Input(tuple(shape), name="stretched")
    out = dict(body(x))
    if not n_cond or "embedding" not in out:
        out.pop("embedding", None)
        return keras.Model(x, out, name="critic")
    c = L.Input((n_cond,), name="conditions")
    e = L.LeakyReLU(0.2, name="p_act")(L.Dense(64, name="p_embed1")(c))
    e = SNDense(int(out["embedding"].shape[-1]), use_bias=False, name="p_embed")(e)
    proj = L.Dot(axes=1, name="p_dot")([e, out.pop("embedding")])
    out["real"] = L.Add(name="p_real")([out["real"], proj])
    return keras.Model([x, c], out, name="critic")


def ema_beta(step, decay, rampup):
    """Decay of the generator's weight average at ``step`` (0-based): a half-life of
    ``rampup`` × the steps taken so far, at most ``decay`` (a half-life fixed in steps would
    average over a generator that still changes fast early on, blurring its galaxies into
    round blobs; one fixed in a fraction of training tracks it)."""
    if not rampup:
        return decay
    half_life = rampup * (step + 1)
    return min(decay, 0.5 ** (1.0 / half_life))


# ----------------------------------------------------------------------- augmentation


def augmentation(rng, n, h, w, shift=0.0625, flip=True, copies=3):
    """Random translations (zero fill, up to ``shift`` of the size, every copy), and flips
    and transpositions (the first copy only: the real images), as matrices.

    Returns (rows (copies, n, h, h), cols (copies, n, w, w), transpose (copies, n)):
    ``aug(x) = rows @ T(x) @ cols.T`` per band, ``T`` the transposition where flagged.
    Galaxies have no preferred orientation, so flipped and transposed real images are real
    images: the discriminator sees every orientation of the real set, and a generator that
    draws one orientation is caught (flipping the generated images too would hide that).
    Translations are applied to both (differentiable augmentation): the discriminator cannot
    memorise the exact pixels of a small set.
    """
    out = []
    flips = np.zeros((copies, n), bool)
    if flip:
        flips[0] = True
    for size in (h, w):
        s = int(round(size * shift))
        t = rng.integers(-s, s + 1, (copies, n)) if s else np.zeros((copies, n), int)
        f = (rng.random((copies, n)) < 0.5) & flips
        src = np.arange(size)[None, None, :] - t[..., None]
        src = np.where(f[..., None], size - 1 - src, src)
        valid = (src >= 0) & (src < size)
        m = np.zeros((copies, n, size, size), np.float32)
        cc, nn, ii = np.meshgrid(np.arange(copies), np.arange(n), np.arange(size), indexing="ij")
        m[cc, nn, ii, np.clip(src, 0, size - 1)] = valid
        out.append(m)
    tr = (rng.random((copies, n)) < 0.5) & flips & (h == w)
    return out[0], out[1], tr.astype(np.float32)


def _float32(outputs):
    ops = __import__("keras").ops
    return {k: ops.cast(v, "float32") for k, v in outputs.items()}


def _augment(x, rows, cols, tr):
    ops = __import__("keras").ops
    if x.shape[1] == x.shape[2]:
        x = ops.where(tr[:, None, None, None] > 0.5, ops.transpose(x, (0, 2, 1, 3)), x)
    x = ops.einsum("nij,njwc->niwc", rows, x)
    return ops.einsum("nkw,niwc->nikc", cols, x)


# ------------------------------------------------------------------------------ training


def _host(value):
    """A (replicated) scalar as numpy, also when its array spans other processes' devices."""
    shards = getattr(value, "addressable_shards", None)
    if shards is not None and not getattr(value, "is_fully_addressable", True):
        value = shards[0].data
    return np.asarray(__import__("keras").ops.convert_to_numpy(value))


class _Share:
    """This process's part of a data-parallel step (Keras' distribution on the JAX backend):
    its rank among ``count`` processes and its ``devices``.  Without a distribution: one of one."""

    def __init__(self, layout=None, rank=0, count=1, devices=1):
        self.layout, self.rank, self.count, self.devices = layout, rank, count, devices

    @classmethod
    def of_distribution(cls):
        import keras

        if keras.backend.backend() != "jax":
            return cls()
        dist = keras.distribution.distribution()
        if dist is None:
            return cls()
        import jax

        mesh = dist.device_mesh
        return cls(dist, jax.process_index(), jax.process_count(), int(np.prod(mesh.shape)))

    def spread(self, arrays, batch_axes):
        """Global arrays, sharded over the batch (as Keras' own steps get them): ``arrays``
        whose batch axis is None are the same everywhere (passed as they are); for one whose
        batch axis holds the global batch (the randomness, drawn alike on every process) this
        process keeps its block of rows; one holding only this process's rows (the images,
        the labels: axis 0 shorter than the global batch) is passed whole."""
        import jax
        from jax.sharding import NamedSharding, PartitionSpec

        batch = self.layout.get_data_layout((1,)).backend_layout
        spec = batch.spec[0]
        out = []
        local = None
        for a, axis in zip(arrays, batch_axes):
            if axis is None:
                out.append(a)
                continue
            if local is None:  # the first: this process's rows (x)
                local = a.shape[axis]
            elif a.shape[axis] != local:  # the global batch: this process's block
                index = [slice(None)] * a.ndim
                index[axis] = slice(self.rank * local, (self.rank + 1) * local)
                a = a[tuple(index)]
            parts = [None] * a.ndim
            parts[axis] = spec
            sharding = NamedSharding(batch.mesh, PartitionSpec(*parts))
            out.append(jax.make_array_from_process_local_data(sharding, np.ascontiguousarray(a)))
        return tuple(out)


def make_gan_class():
    import keras

    ops = keras.ops

    def softplus(v):
        return ops.mean(ops.softplus(v))

    def bce(target, logits):
        return ops.mean(keras.losses.binary_crossentropy(target, logits, from_logits=True))

    class GAN(keras.Model):
        """Generator and discriminator trained together by ``train_on_batch(images, y)``.

        ``generator``: the network that samples (the moving average of the trained weights);
        ``live_generator``: the one the optimizer steps; ``discriminator``: images → heads;
        ``critic``: what the step trains (stretched images, + conditions → heads, with the
        projection term for conditions).
        Under Keras' data-parallel distribution each process passes its rows of the global
        batch and the step runs on the global batch over every device (``splits_batches``).
        """

        splits_batches = True

        def __init__(
            self,
            generator,
            discriminator,
            seed=0,
            r1=DEFAULTS["r1"],
            r1_every=DEFAULTS["r1_every"],
            ema=DEFAULTS["ema"],
            ema_rampup=DEFAULTS["ema_rampup"],
            shift=DEFAULTS["shift"],
            flip=DEFAULTS["flip"],
            cond_weight=DEFAULTS["cond_weight"],
            **kw,
        ):
            super().__init__(**kw)
            self.live_generator = generator
            self.discriminator = discriminator
            self.conditional = len(generator.inputs) > 1  # z and the conditions
            self.n_cond = int(generator.inputs[1].shape[-1]) if self.conditional else 0
            self.latent_dim = int(generator.inputs[0].shape[-1])
            self.image_shape = tuple(int(d) for d in generator.output.shape[1:])
            average = keras.models.clone_model(generator)
            average.set_weights(generator.get_weights())
            average.trainable = False
            self.generator = average
            self.g_body = _inner(generator, None, "images")  # → stretched images
            self.critic = _critic(discriminator, self.n_cond, self.image_shape)
            self.seed = int(seed)
            self.r1_gamma, self.r1_every = float(r1), max(1, int(r1_every))
            self.ema_decay, self.ema_rampup = float(ema), float(ema_rampup)
            self.shift, self.flip = float(shift), bool(flip)
            self.cond_weight = float(cond_weight)
            self._steps = None
            self._fn = None

        def compile(self, g_opt, d_opt):
            super().compile()
            # what the own step does (metrics.json records it): XLA on JAX; tf.function on TF
            self.jit_compile = keras.backend.backend() == "jax"
            self.g_opt, self.d_opt = g_opt, d_opt
            g_opt.build(self.g_body.trainable_variables)
            d_opt.build(self.critic.trainable_variables)

        def call(self, x, training=False):
            return self.discriminator(x, training=training)

        def checkpoint_variables(self):
            seen, out = set(), []
            for v in (
                list(self.live_generator.weights)
                + list(self.critic.weights)
                + list(self.generator.weights)
                + list(self.g_opt.variables)
                + list(self.d_opt.variables)
            ):
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
            return out

        # -------------------------------------------------------------- the step
        def _g_in(self, z, y):
            return [z, y[:, : self.n_cond]] if self.conditional else z

        def _c_in(self, images, y):
            return [images, y[:, : self.n_cond]] if self.conditional else images

        def _d_terms(self, critic, real, fake, y):
            """Discriminator loss and its logs; ``critic(images, training)`` → outputs."""
            r, f = _float32(critic(real, True)), _float32(critic(fake, False))
            adv = softplus(-r["real"]) + softplus(f["real"])
            logs = {"d_adv": adv, "d_real": ops.mean(r["real"]), "d_fake": ops.mean(f["real"])}
            loss = adv
            if "score" in r:
                logs["score_loss"] = ops.mean(ops.square(y[:, :1] - r["score"]))
                loss = loss + logs["score_loss"]
            if "label" in r:
                logs["label_loss"] = bce(y[:, 1:2], r["label"])
                loss = loss + logs["label_loss"]
            if "conditions" in r:
                logs["cond_loss"] = ops.mean(ops.square(y[:, : self.n_cond] - r["conditions"]))
                loss = loss + self.cond_weight * logs["cond_loss"]
            return loss, logs

        def _g_terms(self, out, y):
            out = _float32(out)
            loss = softplus(-out["real"])
            logs = {"g_adv": loss}
            if "score" in out:
                logs["fake_score"] = ops.mean(out["score"])
                loss = loss + ops.mean(1.0 - out["score"])
            if "label" in out:
                loss = loss + bce(ops.ones_like(out["label"]), out["label"])
            if "conditions" in out:
                logs["g_cond_loss"] = ops.mean(ops.square(y[:, : self.n_cond] - out["conditions"]))
                loss = loss + self.cond_weight * logs["g_cond_loss"]
            return loss, logs

        def _stretch_real(self, x):
            layer = self._layer(self.discriminator, "norm")
            return ops.cast(layer(x), "float32") if layer is not None else x

        @staticmethod
        def _layer(model, name):
            try:
                return model.get_layer(name)
            except ValueError:
                return None

        def _ema_pairs(self):
            return list(zip(self.generator.weights, self.live_generator.weights))

        def _r1_norm(self, grad_sum, real):
            """Mean over the batch of |∇ critic(real)|² (the R1 term before its weight).

            Logged as "r1": k times this on the steps that compute it (every k-th), 0 on the
            others, so that its average over a logging window estimates it."""
            return ops.mean(ops.sum(ops.square(grad_sum(real)), axis=(1, 2, 3)))

        def _tf_step(self):
            """The step on TensorFlow: two ``tf.function``s, with and without the R1 term,
            traced when first needed (a ``tf.cond`` between them trips a Grappler rewrite,
            AlreadyExistsError on a temporary variable, at 64×64 and more)."""
            import tensorflow as tf

            g_vars = self.g_body.trainable_variables
            d_vars = self.critic.trainable_variables
            pairs = self._ema_pairs()
            weight = 0.5 * self.r1_gamma * self.r1_every

            def step(x, y, z_d, z_g, rows, cols, tr, beta, with_r1):
                def critic(images, training):
                    return self.critic(self._c_in(images, y), training=training)

                real = _augment(self._stretch_real(x), rows[0], cols[0], tr[0])
                fake = ops.cast(self.g_body(self._g_in(z_d, y), training=True), "float32")
                fake = _augment(ops.stop_gradient(fake), rows[1], cols[1], tr[1])
                with tf.GradientTape() as tape:
                    d_loss, logs = self._d_terms(critic, real, fake, y)
                    if with_r1:

                        def grad_sum(images):
                            with tf.GradientTape() as inner:
                                inner.watch(images)
                                s = ops.sum(ops.cast(critic(images, False)["real"], "float32"))
                            return inner.gradient(s, images)

                        norm2 = self._r1_norm(grad_sum, real)
                        logs["r1"] = norm2 * self.r1_every
                        total = d_loss + weight * norm2
                    else:
                        total = d_loss
                        if self.r1_gamma:
                            logs["r1"] = tf.constant(0.0)
                self.d_opt.apply(tape.gradient(total, d_vars), d_vars)
                with tf.GradientTape() as tape:
                    fake = ops.cast(self.g_body(self._g_in(z_g, y), training=True), "float32")
                    out = critic(_augment(fake, rows[2], cols[2], tr[2]), False)
                    g_loss, g_logs = self._g_terms(out, y)
                self.g_opt.apply(tape.gradient(g_loss, g_vars), g_vars)
                for avg, live in pairs:
                    if live.trainable:
                        avg.assign(beta * avg + (1.0 - beta) * live)
                    else:
                        avg.assign(live)
                logs.update(g_logs, d_loss=d_loss, g_loss=g_loss, loss=d_loss + g_loss)
                return logs

            compiled = {}

            def run(x, y, z_d, z_g, rows, cols, tr, beta, r1):
                with_r1 = bool(r1) and bool(self.r1_gamma)
                if with_r1 not in compiled:
                    compiled[with_r1] = tf.function(
                        lambda *a: step(*a, with_r1),
                        autograph=False,
                        jit_compile=False,
                        reduce_retracing=True,
                    )
                return compiled[with_r1](x, y, z_d, z_g, rows, cols, tr, beta)

            return run

        def _jax_step(self):
            import jax

            G, C = self.g_body, self.critic
            live = [id(v) for v in self.live_generator.weights]
            g_tr = [id(v) for v in G.trainable_variables]
            g_nt = [id(v) for v in G.non_trainable_variables]
            # where each averaged weight's live value is found in the step's state
            where = [
                ("t", g_tr.index(i)) if i in g_tr else ("n", g_nt.index(i)) if i in g_nt else None
                for i in live
            ]
            trainable = [v.trainable for v in self.live_generator.weights]
            weight = 0.5 * self.r1_gamma * self.r1_every

            def step(state, x, y, z_d, z_g, rows, cols, tr, beta, r1):
                g_t, g_n, c_t, c_n, g_o, d_o, avg = state
                real = _augment(self._stretch_real(x), rows[0], cols[0], tr[0])
                fake, _ = G.stateless_call(g_t, g_n, self._g_in(z_d, y), training=True)
                fake = ops.cast(jax.lax.stop_gradient(fake), "float32")
                fake = _augment(fake, rows[1], cols[1], tr[1])

                def d_loss_fn(c_t):
                    box = {"n": c_n}

                    def critic(images, training):
                        out, n = C.stateless_call(
                            c_t, box["n"], self._c_in(images, y), training=training
                        )
                        if training:
                            box["n"] = n
                        return out

                    loss, logs = self._d_terms(critic, real, fake, y)
                    return loss, (logs, box["n"])

                (d_loss, (logs, c_n)), grads = jax.value_and_grad(d_loss_fn, has_aux=True)(c_t)
                if self.r1_gamma:

                    def r1_fn(c_t):
                        def s(images):
                            out, _ = C.stateless_call(c_t, c_n, self._c_in(images, y))
                            return ops.sum(ops.cast(out["real"], "float32"))

                        norm2 = self._r1_norm(jax.grad(s), real)
                        return weight * norm2, norm2

                    def with_r1():
                        (_, norm2), extra = jax.value_and_grad(r1_fn, has_aux=True)(c_t)
                        return [g + e for g, e in zip(grads, extra)], norm2 * self.r1_every

                    def without():
                        return list(grads), ops.zeros((), "float32")

                    grads, logs["r1"] = jax.lax.cond(r1, with_r1, without)
                c_t, d_o = self.d_opt.stateless_apply(d_o, grads, c_t)

                def g_loss_fn(g_t):
                    fake, n = G.stateless_call(g_t, g_n, self._g_in(z_g, y), training=True)
                    fake = ops.cast(fake, "float32")
                    out, _ = C.stateless_call(
                        c_t, c_n, self._c_in(_augment(fake, rows[2], cols[2], tr[2]), y)
                    )
                    loss, g_logs = self._g_terms(out, y)
                    return loss, (g_logs, n)

                (g_loss, (g_logs, g_n)), grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g_t)
                g_t, g_o = self.g_opt.stateless_apply(g_o, grads, g_t)
                new_avg = []
                for a, w, t in zip(avg, where, trainable):
                    value = a if w is None else (g_t if w[0] == "t" else g_n)[w[1]]
                    new_avg.append(beta * a + (1.0 - beta) * value if t else value)
                logs.update(g_logs, d_loss=d_loss, g_loss=g_loss, loss=d_loss + g_loss)
                return (g_t, g_n, c_t, c_n, g_o, d_o, new_avg), logs

            return jax.jit(step, donate_argnums=0)

        def _jax_variables(self):
            return (
                self.g_body.trainable_variables,
                self.g_body.non_trainable_variables,
                self.critic.trainable_variables,
                self.critic.non_trainable_variables,
                self.g_opt.variables,
                self.d_opt.variables,
                self.generator.weights,
            )

        def train_on_batch(
            self, x, y=None, sample_weight=None, class_weight=None, return_dict=False
        ):
            """One discriminator and one generator update on the batch (images in data
            units, y the label columns); the averaged generator follows."""
            x = np.asarray(x, np.float32)
            y = np.zeros((len(x), 0), np.float32) if y is None else np.asarray(y, np.float32)
            y = y.reshape(len(x), -1)
            share = _Share.of_distribution()  # x, y: this process's rows of a global batch
            n = len(x) * share.count
            if self._steps is None:  # after any checkpoint restore
                self._steps = int(_host(self.d_opt.iterations.value))
            step = self._steps
            # the whole global batch's randomness on every process: the same as on one
            rng = np.random.default_rng([self.seed, step])
            z = rng.standard_normal((2, n, self.latent_dim)).astype(np.float32)
            h, w = self.image_shape[:2]
            rows, cols, tr = augmentation(rng, n, h, w, self.shift, self.flip)
            beta = np.asarray(ema_beta(step, self.ema_decay, self.ema_rampup), np.float32)
            r1 = np.bool_(step % self.r1_every == 0)
            args = (x, y, z[0], z[1], rows, cols, tr, beta, r1)
            if share.count > 1 or share.devices > 1:
                args = share.spread(args, batch_axes=(0, 0, 0, 0, 1, 1, 1, None, None))
            if self._fn is None:
                jax = keras.backend.backend() == "jax"
                self._fn = self._jax_step() if jax else self._tf_step()
            if keras.backend.backend() == "jax":
                variables = self._jax_variables()
                state = tuple([v.value for v in group] for group in variables)
                state, logs = self._fn(state, *args)
                for group, values in zip(variables, state):
                    for v, value in zip(group, values):
                        v.assign(value)
            else:
                logs = self._fn(*args)
            self._steps = step + 1
            logs = {k: float(_host(v)) for k, v in logs.items()}
            return logs if return_dict else [logs[k] for k in sorted(logs)]

    return GAN


# ------------------------------------------------------------------------------- the specs


class GANSpec(ModelSpec):
    """A GAN of :func:`make_gan_class`; ``mode`` picks the discriminator's heads (:data:`HEADS`)."""

    task = "gan"
    # lr: faster, and the moving average of the generator cannot follow (measured); ema: the
    # generator's weight average (ramped up, see DEFAULTS)
    recipe = {"lr": 2e-4, "ema": DEFAULTS["ema"]}

    def __init__(self, name, mode, description, options=(WIDTH,), columns=(), abilities=()):
        self.name, self.mode, self.description = name, mode, description
        self.options, self.columns = tuple(options), tuple(columns)
        self.abilities = frozenset({"generates", *abilities})

    # mixed_float16 would need loss scaling in both optimizers' steps; bfloat16 does not
    precisions = ("float32", "mixed_bfloat16")

    def optimizers(self, model):
        return [model.g_opt, model.d_opt]

    def configure(self, options, info):
        conditions = list(options.get("condition") or [])
        if "conditions" in self.abilities and not conditions:
            raise GalError(f"{self.name} needs --condition COL[,COL...] (continuous label columns)")
        return {
            "arch": ARCH,
            "mode": self.mode,
            "latent_dim": LATENT,
            "width": int(options.get("width") or 32),
            "conditions": conditions,
            "pixels": pixel_stretch(info.paths),
            **DEFAULTS,
        }

    def check_resume(self, config, run_dir):
        """GalError when ``run_dir`` holds a run of another architecture of this GAN: its
        checkpoints cannot continue here (its model.keras still generates)."""
        mc = config.get("model_config") or {}
        arch = mc.get("arch", 1)
        if mc.get("mode") in HEADS and arch != ARCH:
            raise GalError(
                f"{run_dir}: a {self.name} run of GAN architecture v{arch} (this galtools "
                f"trains v{ARCH}) cannot resume; it still generates — train a new run "
                "(another -o) or start this one over with --restart"
            )

    def build(self, config):
        from galtools.train.recipe import optimizer

        mc = config["model_config"]
        if mc.get("mode") in HEADS and mc.get("arch", 1) != ARCH:
            self.check_resume(config, "this run")
        tr = config["training"]
        settings = {k: _setting(mc, k) for k in ("r1", "r1_every", "ema_rampup", "shift", "flip")}
        gan = make_gan_class()(
            build_generator(config),
            build_discriminator(config),
            seed=tr["seed"],
            name=self.name,
            ema=tr.get("ema", _setting(mc, "ema")),  # older runs: in model_config
            cond_weight=_setting(mc, "cond_weight"),
            **settings,
        )
        adam = dict(tr, ema_used=0.0)  # the generator's average is the GAN's own
        gan.compile(
            optimizer(adam, beta_1=0.0, beta_2=0.99), optimizer(adam, beta_1=0.0, beta_2=0.99)
        )
        return gan

    def save(self, model, run_dir):
        import os

        save_keras(model.generator, os.path.join(run_dir, "model.keras"))
        save_keras(model.discriminator, os.path.join(run_dir, "discriminator.keras"))


dcgan = GANSpec("dcgan", "dcgan", "unconditional GAN for H×W×C stamps")
twoinone = GANSpec(
    "twoinone",
    "twoinone",
    "GAN whose discriminator also regresses --target and classifies "
    "--real-column (real vs corrupted); generator pushed to high scores",
    options=(
        Option("target", "Score column the discriminator learns to regress.", metavar="COL"),
        Option(
            "real_column",
            "0/1 column, 1 = real galaxy, 0 = corrupted.",
            default="real",
            metavar="COL",
        ),
        WIDTH,
    ),
    columns=(Column("target", "scaled"), Column("real_column", "binary", role="label")),
    abilities=("scores",),
)
cgan = GANSpec(
    "cgan",
    "cgan",
    "GAN conditioned on --condition columns (projection discriminator, conditions "
    "modulate every generator scale)",
    options=(
        Option(
            "condition",
            "Continuous label columns to condition on.",
            kind="list",
            metavar="COL[,COL]",
        ),
        WIDTH,
    ),
    columns=(Column("condition", "scaled", role="condition"),),
    abilities=("conditions",),
)
