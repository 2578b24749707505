"""GANs: ``dcgan`` (unconditional), ``twoinone`` (discriminator also scores and tells real
galaxies from corrupted ones; the generator is pushed towards high scores) and ``cgan``
(conditioned on continuous label columns, which the discriminator must also predict).

The pieces are public for plugins: :func:`build_generator`, :func:`build_discriminator` (with
the extra heads wanted) and :func:`make_gan_class`, whose training step follows the heads the
discriminator has: ``score`` (regresses the first column of y, pushes fakes to high scores),
``label`` (a real/corrupted logit on the second column of y), ``conditions`` (predicts y).
"""

import numpy as np

from galtools.errors import GalError
from galtools.models import Column, ModelSpec, save_keras
from galtools.params import Option

LATENT = 64
HEADS = {"dcgan": (), "twoinone": ("score", "label"), "cgan": ()}  # besides "real"
WIDTH = Option("width", "Base number of filters.", kind="int", default=32, minimum=4, metavar="N")


def build_generator(config):
    """z (+ conditions) → images in the data's units, of the data's shape."""
    import keras

    from galtools.models.layers import denormalise

    mc = config["model_config"]
    h, w, c = config["input_shape"]
    ch = mc["width"]
    sh, sw = -(-h // 4), -(-w // 4)
    z = keras.Input((mc["latent_dim"],), name="z")
    inputs = [z]
    x = z
    if mc["conditions"]:
        cond = keras.Input((len(mc["conditions"]),), name="conditions")
        inputs.append(cond)
        x = keras.layers.Concatenate(name="z_cond")([z, cond])
    x = keras.layers.Dense(sh * sw * 4 * ch, use_bias=False, name="g_dense")(x)
    x = keras.layers.BatchNormalization(name="g_bn0")(x)
    x = keras.layers.LeakyReLU(0.2, name="g_act0")(x)
    x = keras.layers.Reshape((sh, sw, 4 * ch), name="g_reshape")(x)
    for i, f in enumerate((2 * ch, ch), 1):
        x = keras.layers.Conv2DTranspose(
            f, 4, strides=2, padding="same", use_bias=False, name=f"g_up{i}"
        )(x)
        x = keras.layers.BatchNormalization(name=f"g_bn{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"g_act{i}")(x)
    x = keras.layers.Conv2D(c, 3, padding="same", activation="tanh", name="g_out")(x)
    if (4 * sh, 4 * sw) != (h, w):
        x = keras.layers.Cropping2D(((0, 4 * sh - h), (0, 4 * sw - w)), name="g_crop")(x)
    out = denormalise(x, config["norm"], name="images")
    return keras.Model(inputs if len(inputs) > 1 else z, out, name="generator")


def build_discriminator(config, heads=None):
    """images → {"real": logit, + each of ``heads`` ("score", "label"), + "conditions" when
    the run has conditions}; ``heads`` by default those of ``model_config["mode"]``."""
    import keras

    from galtools.models.layers import normalise

    mc = config["model_config"]
    ch = mc["width"]
    inp = keras.Input(tuple(config["input_shape"]), name="images")
    x = normalise(inp, config["norm"], name="norm")
    for i, f in enumerate((ch, 2 * ch), 1):
        x = keras.layers.Conv2D(f, 4, strides=2, padding="same", name=f"d_conv{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"d_act{i}")(x)
        x = keras.layers.Dropout(0.2, name=f"d_drop{i}")(x)
    x = keras.layers.Flatten(name="d_flat")(x)
    x = keras.layers.Dense(128, name="d_dense")(x)
    x = keras.layers.LeakyReLU(0.2, name="features")(x)
    out = {"real": keras.layers.Dense(1, name="real")(x)}
    heads = HEADS.get(mc.get("mode"), ()) if heads is None else tuple(heads)
    if "score" in heads:
        out["score"] = keras.layers.Dense(1, activation="tanh", name="score")(x)
    if "label" in heads:
        out["label"] = keras.layers.Dense(1, name="label")(x)
    if mc["conditions"]:
        out["conditions"] = keras.layers.Dense(
            len(mc["conditions"]), activation="tanh", name="conditions"
        )(x)
    return keras.Model(inp, out, name="discriminator")


def make_gan_class():
    import keras
    import tensorflow as tf

    ops = keras.ops

    def bce(target, logits):
        return ops.mean(keras.losses.binary_crossentropy(target, logits, from_logits=True))

    class GAN(keras.Model):
        """Generator and discriminator trained together by ``train_on_batch(images, y)``."""

        def __init__(self, generator, discriminator, seed=0, **kw):
            super().__init__(**kw)
            self.generator = generator
            self.discriminator = discriminator
            self.conditional = len(generator.inputs) > 1  # z and the conditions
            self.latent_dim = generator.inputs[0].shape[-1]
            self.noise = keras.random.SeedGenerator(seed)

        def compile(self, g_opt, d_opt):
            super().compile()
            self.g_opt, self.d_opt = g_opt, d_opt
            g_opt.build(self.generator.trainable_variables)
            d_opt.build(self.discriminator.trainable_variables)

        def call(self, x, training=False):
            return self.discriminator(x, training=training)

        def checkpoint_variables(self):
            return (
                list(self.generator.weights)
                + list(self.discriminator.weights)
                + list(self.g_opt.variables)
                + list(self.d_opt.variables)
                + list(
                    self.noise.state if isinstance(self.noise.state, list) else [self.noise.state]
                )
            )

        def _fake(self, n, y, training):
            z = keras.random.normal((n, self.latent_dim), seed=self.noise)
            inputs = [z, y] if self.conditional else z
            return self.generator(inputs, training=training)

        def train_step(self, data):
            x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            n = ops.shape(x)[0]
            ones, zeros = ops.ones((n, 1)), ops.zeros((n, 1))
            logs = {}
            with tf.GradientTape() as tape:
                fake = self._fake(n, y, True)
                real_out = self.discriminator(x, training=True)
                fake_out = self.discriminator(fake, training=True)
                d_loss = bce(ones, real_out["real"]) + bce(zeros, fake_out["real"])
                logs["d_adv"] = d_loss
                if "score" in real_out:
                    logs["score_loss"] = ops.mean(ops.square(y[:, :1] - real_out["score"]))
                    d_loss = d_loss + logs["score_loss"]
                if "label" in real_out:
                    logs["label_loss"] = bce(y[:, 1:2], real_out["label"])
                    d_loss = d_loss + logs["label_loss"]
                if "conditions" in real_out:
                    logs["cond_loss"] = ops.mean(ops.square(y - real_out["conditions"]))
                    d_loss = d_loss + logs["cond_loss"]
            d_vars = self.discriminator.trainable_variables
            self.d_opt.apply(tape.gradient(d_loss, d_vars), d_vars)
            with tf.GradientTape() as tape:
                out = self.discriminator(self._fake(n, y, True), training=True)
                g_loss = bce(ones, out["real"])
                if "score" in out:
                    logs["fake_score"] = ops.mean(out["score"])
                    g_loss = g_loss + ops.mean(1.0 - out["score"])
                if "label" in out:
                    g_loss = g_loss + bce(ones, out["label"])
                if "conditions" in out:
                    logs["g_cond_loss"] = ops.mean(ops.square(y - out["conditions"]))
                    g_loss = g_loss + logs["g_cond_loss"]
            g_vars = self.generator.trainable_variables
            self.g_opt.apply(tape.gradient(g_loss, g_vars), g_vars)
            logs.update(loss=d_loss + g_loss, d_loss=d_loss, g_loss=g_loss)
            return logs

        def sample(self, z, conditions=None):
            inputs = [z, conditions] if self.conditional else z
            return np.asarray(self.generator.predict_on_batch(inputs))

    return GAN


class GANSpec(ModelSpec):
    """A GAN of :func:`make_gan_class`; ``mode`` picks the discriminator's heads (:data:`HEADS`)."""

    task = "gan"

    def __init__(self, name, mode, description, options=(WIDTH,), columns=(), abilities=()):
        self.name, self.mode, self.description = name, mode, description
        self.options, self.columns = tuple(options), tuple(columns)
        self.abilities = frozenset({"generates", *abilities})

    def configure(self, options, info):
        conditions = list(options.get("condition") or [])
        if "conditions" in self.abilities and not conditions:
            raise GalError(f"{self.name} needs --condition COL[,COL...] (continuous label columns)")
        return {
            "mode": self.mode,
            "latent_dim": LATENT,
            "width": int(options.get("width") or 32),
            "conditions": conditions,
        }

    def build(self, config):
        import keras

        lr = config["training"]["lr"]
        gan = make_gan_class()(
            build_generator(config),
            build_discriminator(config),
            seed=config["training"]["seed"],
            name=self.name,
        )
        gan.compile(keras.optimizers.Adam(lr, beta_1=0.5), keras.optimizers.Adam(lr, beta_1=0.5))
        return gan

    def save(self, model, run_dir):
        import os

        save_keras(model.generator, os.path.join(run_dir, "model.keras"))
        save_keras(model.discriminator, os.path.join(run_dir, "discriminator.keras"))


dcgan = GANSpec("dcgan", "dcgan", "unconditional DCGAN for H×W×C stamps")
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
    "GAN conditioned on --condition columns, which the discriminator also predicts",
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
