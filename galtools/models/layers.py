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


def normalise(x, norm, name=None):
    """Apply the run's image normalisation ``{"offset": [...], "scale": [...]}``."""
    return BandScale(norm["offset"], norm["scale"], name=name)(x)


def denormalise(x, norm, name=None):
    return BandScale(norm["offset"], norm["scale"], inverse=True, name=name)(x)
