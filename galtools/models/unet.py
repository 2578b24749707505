"""The denoising U-Net of the diffusion model, built from stock Keras layers and one registered
layer (:class:`SinusoidalEmbedding`), so that runs load with ``safe_mode=True``.

:func:`build_unet` maps ``[x_t, t]`` (+ ``[conditions, null]`` for a conditional model) to the
network's prediction (v) of the same shape as ``x_t``:

``x_t``         (N, H, W, C) noisy images in the model's scaled pixel units;
``t``           (N, 1) diffusion time in [0, 1] (0: clean, 1: pure noise);
``conditions``  (N, K) condition columns scaled to [-1, 1];
``null``        (N, 1) 1 where the condition is dropped (classifier-free guidance; the
                conditions of those rows must be 0): a learned "no condition" embedding
                takes their place.

Layout (DDPM-style): a 3×3 stem, per resolution level ``blocks`` residual blocks (GroupNorm,
SiLU, 3×3 convolutions; the time+condition embedding scales and shifts the second
GroupNorm's output: "adaptive group normalisation"), strided-convolution
down-sampling, self-attention at the lowest resolution and in the middle, and the mirror path
up with skip connections, nearest-neighbour up-sampling + convolution (no transposed
convolutions: no checkerboard).  Images whose sides are not multiples of 2^(levels-1) are
zero-padded in and cropped out.
"""

import math

import keras


@keras.saving.register_keras_serializable(package="galtools")
class SinusoidalEmbedding(keras.layers.Layer):
    """(N, 1) times in [0, 1] → (N, dim) sines and cosines of ``scale``·t at geometrically
    spaced frequencies (from 1 down to 1/``max_period``), computed in float32."""

    def __init__(self, dim, scale=1000.0, max_period=10000.0, **kw):
        super().__init__(**kw)
        self.dim = int(dim)
        self.scale = float(scale)
        self.max_period = float(max_period)

    def call(self, t):
        ops = keras.ops
        half = self.dim // 2
        k = ops.arange(half, dtype="float32")
        freqs = ops.exp(-math.log(self.max_period) * k / max(half, 1))
        arg = ops.cast(t, "float32") * self.scale * freqs[None, :]
        out = ops.concatenate([ops.sin(arg), ops.cos(arg)], axis=-1)
        if self.dim % 2:
            out = ops.pad(out, [[0, 0], [0, 1]])
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, scale=self.scale, max_period=self.max_period)
        return config


def groups(channels, most=8):
    """The largest group count ≤ ``most`` that divides ``channels`` (GroupNormalization)."""
    return next(g for g in range(min(most, channels), 0, -1) if channels % g == 0)


def _norm(x, name):
    return keras.layers.GroupNormalization(groups(x.shape[-1]), epsilon=1e-5, name=name)(x)


def _res_block(x, emb, channels, name):
    """GroupNorm-SiLU-conv, GroupNorm scaled and shifted by the embedding (adaptive group
    norm), SiLU-conv; a 1×1 skip on width change."""
    layers = keras.layers
    h = layers.Activation("silu", name=f"{name}_act1")(_norm(x, f"{name}_gn1"))
    h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv1")(h)
    scale = layers.Dense(
        channels, kernel_initializer="zeros", bias_initializer="ones", name=f"{name}_emb_scale"
    )(emb)  # starts as ×1
    shift = layers.Dense(channels, name=f"{name}_emb_shift")(emb)
    h = _norm(h, f"{name}_gn2")
    h = layers.Multiply(name=f"{name}_scale")([h, layers.Reshape((1, 1, channels))(scale)])
    h = layers.Add(name=f"{name}_shift")([h, layers.Reshape((1, 1, channels))(shift)])
    h = layers.Activation("silu", name=f"{name}_act2")(h)
    h = layers.Conv2D(
        channels, 3, padding="same", kernel_initializer="zeros", name=f"{name}_conv2"
    )(h)
    if x.shape[-1] != channels:
        x = layers.Conv2D(channels, 1, name=f"{name}_skip")(x)
    return layers.Add(name=f"{name}_out")([x, h])


def _attention(x, name, heads=4):
    """Self-attention over the pixels of a feature map (pre-norm, residual)."""
    layers = keras.layers
    h_, w_, c = x.shape[1:]
    heads = max(1, min(heads, c // 8))
    h = layers.Reshape((h_ * w_, c), name=f"{name}_flat")(_norm(x, f"{name}_gn"))
    h = layers.MultiHeadAttention(heads, c // heads, name=f"{name}_mha")(h, h)
    h = layers.Reshape((h_, w_, c), name=f"{name}_unflat")(h)
    return layers.Add(name=f"{name}_out")([x, h])


def build_unet(config, name="unet"):
    """The U-Net for ``config`` (a run config: ``input_shape`` and ``model_config`` with
    ``width``, ``channel_mult``, ``blocks`` and ``conditions``)."""
    layers = keras.layers
    mc = config["model_config"]
    h, w, c = config["input_shape"]
    width = int(mc["width"])
    mults = [int(m) for m in mc.get("channel_mult", (1, 2, 4))]
    blocks = int(mc.get("blocks", 2))
    emb_dim = 4 * width
    factor = 2 ** (len(mults) - 1)
    ph, pw = -h % factor, -w % factor

    x_in = keras.Input((h, w, c), name="x_t")
    t_in = keras.Input((1,), name="t")
    inputs = [x_in, t_in]
    emb = SinusoidalEmbedding(width, name="t_sin")(t_in)
    emb = layers.Dense(emb_dim, activation="silu", name="t_mlp1")(emb)
    emb = layers.Dense(emb_dim, name="t_mlp2")(emb)
    if mc.get("conditions"):
        cond_in = keras.Input((len(mc["conditions"]),), name="conditions")
        null_in = keras.Input((1,), name="null")
        inputs += [cond_in, null_in]
        cond = layers.Concatenate(name="cond_null")([cond_in, null_in])
        cond = layers.Dense(emb_dim, activation="silu", name="c_mlp1")(cond)
        cond = layers.Dense(emb_dim, name="c_mlp2")(cond)
        emb = layers.Add(name="t_plus_c")([emb, cond])
    emb = layers.Activation("silu", name="emb_act")(emb)

    x = x_in
    if ph or pw:
        x = layers.ZeroPadding2D(((0, ph), (0, pw)), name="pad")(x)
    x = layers.Conv2D(width * mults[0], 3, padding="same", name="stem")(x)
    skips = [x]
    last = len(mults) - 1
    for lv, m in enumerate(mults):
        for b in range(blocks):
            x = _res_block(x, emb, width * m, f"down{lv}_{b}")
            if lv == last:
                x = _attention(x, f"down{lv}_{b}_attn")
            skips.append(x)
        if lv < last:
            x = layers.Conv2D(x.shape[-1], 3, strides=2, padding="same", name=f"down{lv}")(x)
            skips.append(x)
    x = _res_block(x, emb, x.shape[-1], "mid1")
    x = _attention(x, "mid_attn")
    x = _res_block(x, emb, x.shape[-1], "mid2")
    for lv in reversed(range(len(mults))):
        for b in range(blocks + 1):
            x = layers.Concatenate(name=f"up{lv}_{b}_cat")([x, skips.pop()])
            x = _res_block(x, emb, width * mults[lv], f"up{lv}_{b}")
            if lv == last:
                x = _attention(x, f"up{lv}_{b}_attn")
        if lv > 0:
            x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{lv}")(x)
            x = layers.Conv2D(x.shape[-1], 3, padding="same", name=f"up{lv}_conv")(x)
    x = layers.Activation("silu", name="out_act")(_norm(x, "out_gn"))
    x = layers.Conv2D(c, 3, padding="same", kernel_initializer="zeros", name="out_conv")(x)
    if ph or pw:
        x = layers.Cropping2D(((0, ph), (0, pw)), name="crop")(x)
    return keras.Model(inputs, x, name=name)
