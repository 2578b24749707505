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
