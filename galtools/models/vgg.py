"""``vgg``: the VGG-style regressor/classifier of the inclination work, in three sizes."""

from galtools.errors import GalError
from galtools.models import CLASSES, TARGET, TARGET_RANGE, Column, ModelSpec
from galtools.params import Option

# New runs regress with a linear output and no Dropout in the conv blocks (measured on 6000
# resolved 64 px disks, README "Training recipe": RMSE 3.8° → 2.7°, bias −1.1° → +0.05°):
# Dropout before a BatchNorm shifts the statistics it learns from those it meets when
# predicting, and a tanh cannot reach the ends of the target range.  Runs made before keep
# theirs (model_config).
OUTPUT = "linear"
CONV_DROPOUT = 0.0
# conv filters of the two blocks, width of the dense head
ARCHS = {
    "small": ((16, 16), (32, 32), 128),
    "medium": ((32, 32), (64, 64), 256),
    "large": ((128, 128), (256, 256), 512),
}


def conv_block(x, filters, name, pool=True, dropout=0.25):
    """3×3 conv + batch-norm + ReLU per entry of ``filters``, then 2×2 max-pool and dropout."""
    import keras

    for j, f in enumerate(filters, 1):
        x = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"{name}_conv{j}")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn{j}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{j}")(x)
    if pool:
        x = keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_drop")(x)
    return x


def supervised_head(features, config, name="output"):
    """The output layer and compile arguments for a regression/classification run."""
    import keras

    if config["task"] == "classification":
        k = len(config["class_names"])
        out = keras.layers.Dense(k, activation="softmax", name=name)(features)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="top1")]
        if k > 3:
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(3, name="top3"))
        return out, "sparse_categorical_crossentropy", metrics
    activation = (config.get("model_config") or {}).get("output", "tanh")
    out = keras.layers.Dense(1, activation=activation, name=name)(features)
    return out, "mse", [keras.metrics.MeanAbsoluteError(name="mae")]


def compile_supervised(model, loss, metrics, config):
    """``model`` compiled with the run's optimizer (:func:`galtools.train.recipe.optimizer`)."""
    from galtools.train.recipe import optimizer

    model.compile(optimizer=optimizer(config["training"]), loss=loss, metrics=metrics)
    return model


# the recipe of the predictive models (measured on the demo's disks: README "Training recipe")
SUPERVISED_RECIPE = {
    "lr": 2e-3,
    "optimizer": "adamw",
    "weight_decay": 0.05,
    "schedule": "cosine",
    "warmup": 0.05,
    "ema": 0.99,
    "clip": 1.0,
    # flips and quarter turns on the fly (they keep a galaxy's kind, inclination, size...;
    # not a position angle: --augment none)
    "augment": "dihedral",
}


class VGG(ModelSpec):
    name = "vgg"
    task = "auto"  # regression, or classification when the target is a class column
    description = "VGG-style CNN regressor (of a label scaled to [-1, 1]) or classifier"
    options = (
        TARGET,
        TARGET_RANGE,
        CLASSES,
        Option(
            "arch",
            "16/16→32/32, 32/32→64/64 or 128/128→256/256 filters.",
            kind="choice",
            choices=tuple(ARCHS),
            default="small",
        ),
        Option(
            "output_activation",
            "Regression output: linear, or tanh (bounded to the target range, as galtools "
            "0.x and inclinet; it cannot reach the range's ends and pulls them inwards).",
            kind="choice",
            choices=("linear", "tanh"),
            default=OUTPUT,
        ),
        Option(
            "conv_dropout",
            "Dropout after each conv block (galtools 0.x: 0.25; before a BatchNorm it shifts "
            "the statistics the network predicts with).",
            kind="float",
            default=CONV_DROPOUT,
            minimum=0.0,
            metavar="P",
        ),
    )
    columns = (Column("target", "auto"),)
    recipe = SUPERVISED_RECIPE

    def configure(self, options, info):
        arch = options.get("arch") or "small"
        if arch not in ARCHS:
            raise GalError(f"--arch must be one of {', '.join(ARCHS)} for vgg")
        h, w, _ = info.image_shape
        if h < 4 or w < 4:
            raise GalError(f"vgg needs images of at least 4×4 pixels, got {h}×{w}")
        dropout = float(options.get("conv_dropout", CONV_DROPOUT))
        if not 0.0 <= dropout < 1.0:
            raise GalError(f"--conv-dropout must be in [0, 1), got {dropout:g}")
        out = {"arch": arch, "dropout": dropout, "head_dropout": 0.5}
        return out | {"output": options.get("output_activation") or OUTPUT}

    def build(self, config):
        import keras

        from galtools.models.layers import normalise

        mc = config["model_config"]
        block1, block2, width = ARCHS[mc["arch"]]
        inp = keras.Input(tuple(config["input_shape"]), name="images")
        x = normalise(inp, config["norm"], name="norm")
        x = conv_block(x, block1, "block1", dropout=mc["dropout"])
        x = conv_block(x, block2, "block2", dropout=mc["dropout"])
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(width, use_bias=False, name="dense")(x)
        x = keras.layers.BatchNormalization(name="dense_bn")(x)
        x = keras.layers.Activation("relu", name="features")(x)
        x = keras.layers.Dropout(mc["head_dropout"], name="head_drop")(x)
        out, loss, metrics = supervised_head(x, config)
        model = keras.Model(inp, out, name="vgg")
        return compile_supervised(model, loss, metrics, config)


vgg = VGG()
