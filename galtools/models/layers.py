"""Custom layers of galtools networks, registered so that runs load with ``safe_mode=True``."""

import keras


@keras.saving.register_keras_serializable(package="galtools")
class BandScale(keras.layers.Layer):
    """Per-band affine normalisation: ``(x - offset) / scale``, or its inverse.

    Networks take and give images in the data's own units; this layer, with the offsets and
    scales measured on the training data and stored in the model, maps them to ~unit range.
    """

    def __init__(self, offset, scale, inverse=False, **kw):
        super().__init__(**kw)
        self.offset = [float(v) for v in offset]
        self.scale = [float(v) for v in scale]
        self.inverse = bool(inverse)

    def call(self, x):
        offset = keras.ops.convert_to_tensor(self.offset, dtype=x.dtype)
        scale = keras.ops.convert_to_tensor(self.scale, dtype=x.dtype)
        if self.inverse:
            return x * scale + offset
        return (x - offset) / scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(offset=self.offset, scale=self.scale, inverse=self.inverse)
        return config


@keras.saving.register_keras_serializable(package="galtools")
class PerImageStandardize(keras.layers.Layer):
    """Each image to zero mean and unit standard deviation over its pixels and bands.

    Galaxy stamps span orders of magnitude in flux (a bright star beside a faint disk): with one
    global scale, batch statistics swing from batch to batch and batch-normalised networks
    behave differently at inference than in training.  Classifiers that should judge shape and
    colour, not brightness, standardise each image instead.
    """

    def __init__(self, epsilon=1e-6, **kw):
        super().__init__(**kw)
        self.epsilon = float(epsilon)

    def call(self, x):
        mean = keras.ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = keras.ops.std(x, axis=(1, 2, 3), keepdims=True)
        return (x - mean) / (std + self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config


def normalise(x, norm, name=None):
    """Apply the run's image normalisation ``{"offset": [...], "scale": [...]}``."""
    return BandScale(norm["offset"], norm["scale"], name=name)(x)


def denormalise(x, norm, name=None):
    return BandScale(norm["offset"], norm["scale"], inverse=True, name=name)(x)


@keras.saving.register_keras_serializable(package="galtools")
class AsinhScale(keras.layers.Layer):
    """Per-band asinh stretch: ``asinh((x - offset) / soft) / gain``, or its inverse.

    Galaxy stamps span a few hundred in peak signal to noise: a linear map onto [-1, 1] leaves
    the noise and the faint outskirts a few thousandths of the range (a generator draws them as
    flat zero) while a tanh output clips the brightest cores.  Linear up to ``soft`` (about the
    noise) and logarithmic above, the stretch gives both a fair share of the range.  The
    inverse clamps its input to ±``limit`` so that no output can overflow.
    """

    def __init__(self, offset, soft, gain, inverse=False, limit=1.5, **kw):
        super().__init__(**kw)
        self.offset = [float(v) for v in offset]
        self.soft = [float(v) for v in soft]
        self.gain = [float(v) for v in gain]
        self.inverse = bool(inverse)
        self.limit = float(limit)

    def call(self, x):
        ops = keras.ops
        offset = ops.convert_to_tensor(self.offset, dtype=x.dtype)
        soft = ops.convert_to_tensor(self.soft, dtype=x.dtype)
        gain = ops.convert_to_tensor(self.gain, dtype=x.dtype)
        if self.inverse:
            return ops.sinh(ops.clip(x, -self.limit, self.limit) * gain) * soft + offset
        return ops.arcsinh((x - offset) / soft) / gain

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            offset=self.offset,
            soft=self.soft,
            gain=self.gain,
            inverse=self.inverse,
            limit=self.limit,
        )
        return config


@keras.saving.register_keras_serializable(package="galtools")
class PixelNorm(keras.layers.Layer):
    """Each pixel's feature vector to unit root mean square (over the last axis).

    A generator normalisation with no batch statistics: the network computes the same thing in
    training and in sampling, for any batch size, and its weight average (EMA) is meaningful.
    """

    def __init__(self, epsilon=1e-8, **kw):
        super().__init__(**kw)
        self.epsilon = float(epsilon)

    def call(self, x):
        ops = keras.ops
        return x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config


@keras.saving.register_keras_serializable(package="galtools")
class FiLM(keras.layers.Layer):
    """Feature-wise modulation ``x * (1 + gamma) + beta`` of an N×H×W×F map by a vector.

    Called on ``[x, v]``: ``v`` (N, D) is mapped by a learned linear layer (initialised at zero:
    the modulation starts as the identity) to ``gamma`` and ``beta``, each (N, F).  A
    generator that modulates every scale by the condition (and the noise) cannot ignore them.
    """

    def build(self, input_shapes):
        x_shape, v_shape = input_shapes
        f, d = int(x_shape[-1]), int(v_shape[-1])
        self.kernel = self.add_weight(shape=(d, 2 * f), initializer="zeros", name="kernel")
        self.bias = self.add_weight(shape=(2 * f,), initializer="zeros", name="bias")
        self.features = f

    def call(self, inputs):
        ops = keras.ops
        x, v = inputs
        gb = ops.matmul(v, self.kernel) + self.bias
        gamma = ops.reshape(gb[:, : self.features], (-1, 1, 1, self.features))
        beta = ops.reshape(gb[:, self.features :], (-1, 1, 1, self.features))
        return x * (1.0 + gamma) + beta

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


def _spectral_norm(layer, kernel, training):
    """``kernel`` divided by its largest singular value, estimated by one power iteration
    from the layer's stored vector ``u`` (updated in training, as in Miyato et al. 2018)."""
    ops = keras.ops
    w = ops.reshape(kernel, (-1, kernel.shape[-1]))
    u = ops.convert_to_tensor(layer.sn_u)
    v = u @ ops.transpose(w)
    v = v / (ops.sqrt(ops.sum(ops.square(v))) + 1e-12)
    u = v @ w
    u = ops.stop_gradient(u / (ops.sqrt(ops.sum(ops.square(u))) + 1e-12))
    v = ops.stop_gradient(v)
    sigma = ops.sum((v @ w) * u)
    if training:
        layer.sn_u.assign(u)
    return kernel / sigma


class _SpectralNormed(keras.layers.Layer):
    """Weights of a linear map reparameterised as ``kernel / σ(kernel)`` (spectral norm).

    Unlike ``keras.layers.SpectralNormalization`` (which overwrites the trained kernel with its
    normalised value at every training call, so that the gradient does not see σ), the stored
    kernel is left alone and σ is part of the graph, the same way on every backend; only the
    power-iteration vector ``u`` is state (updated only when called with ``training=True``).
    """

    def __init__(self, units, use_bias=True, **kw):
        super().__init__(**kw)
        self.units = int(units)
        self.use_bias = bool(use_bias)

    def _make(self, kernel_shape):
        self.kernel = self.add_weight(
            shape=kernel_shape, initializer="glorot_uniform", name="kernel"
        )
        self.bias = (
            self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
            if self.use_bias
            else None
        )
        self.sn_u = self.add_weight(
            shape=(1, self.units),
            initializer=keras.initializers.RandomNormal(stddev=1.0, seed=0),
            trainable=False,
            name="sn_u",
        )

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, use_bias=self.use_bias)
        return config


@keras.saving.register_keras_serializable(package="galtools")
class SNDense(_SpectralNormed):
    """A dense layer with a spectrally normalised kernel."""

    def build(self, input_shape):
        self._make((int(input_shape[-1]), self.units))

    def call(self, x, training=None):
        y = keras.ops.matmul(x, _spectral_norm(self, self.kernel, training))
        return y + self.bias if self.bias is not None else y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)


@keras.saving.register_keras_serializable(package="galtools")
class SNConv2D(_SpectralNormed):
    """A 'same' 2-D convolution (channels last) with a spectrally normalised kernel."""

    def __init__(self, units, kernel_size=3, strides=1, use_bias=True, **kw):
        super().__init__(units, use_bias=use_bias, **kw)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)

    def build(self, input_shape):
        k = self.kernel_size
        self._make((k, k, int(input_shape[-1]), self.units))

    def call(self, x, training=None):
        kernel = _spectral_norm(self, self.kernel, training)
        y = keras.ops.conv(x, kernel, strides=self.strides, padding="same")
        return y + self.bias if self.bias is not None else y

    def compute_output_shape(self, input_shape):
        n, h, w = input_shape[:3]
        s = self.strides
        h = None if h is None else -(-h // s)
        w = None if w is None else -(-w // s)
        return (n, h, w, self.units)

    def get_config(self):
        config = super().get_config()
        config.update(kernel_size=self.kernel_size, strides=self.strides)
        return config


@keras.saving.register_keras_serializable(package="galtools")
class BatchSpread(keras.layers.Layer):
    """The spread of a batch: standard deviation over the batch of each feature, averaged,
    as one (N, 1) column (the same value for every image of the batch).

    A discriminator that judges images one at a time cannot see that a generator draws the
    same galaxy every time (mode collapse); with this column beside its features its realness
    logit can (the minibatch standard deviation of Karras et al. 2018).  Only a GAN's realness
    output should use it: anything else would depend on the other images of the batch.
    """

    def call(self, x):
        ops = keras.ops
        x = ops.reshape(x, (ops.shape(x)[0], -1))
        spread = ops.mean(ops.sqrt(ops.var(x, axis=0) + 1e-8))
        return ops.zeros_like(x[:, :1]) + spread

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)
