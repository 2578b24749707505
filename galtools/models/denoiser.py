"""``resnet-denoiser``: fully convolutional residual network, images → targets, any size."""

from galtools.models import ModelSpec


class ResNetDenoiser(ModelSpec):
    name = "resnet-denoiser"
    task = "denoise"
    description = "residual CNN (5×5 convs, 32 filters, 5 blocks, no down-sampling): images→targets"
    abilities = frozenset({"denoises"})
    # measured on the demo's disks (README "Training recipe"): cosine after a warm-up, AdamW,
    # the weight average saved
    recipe = {
        "optimizer": "adamw",
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "warmup": 0.05,
        "ema": 0.99,
    }

    def configure(self, options, info):
        if not info.has_targets:
            raise _no_targets(info)
        return {"filters": 32, "kernel": 5, "blocks": 5}

    def build(self, config):
        import keras

        from galtools.models.layers import denormalise, normalise
        from galtools.train.recipe import optimizer

        mc = config["model_config"]
        f, k = mc["filters"], mc["kernel"]
        bands = len(config["bands"])
        inp = keras.Input((None, None, bands), name="images")
        z = normalise(inp, config["norm"], name="norm")
        x = keras.layers.Conv2D(f, k, padding="same", activation="relu", name="stem")(z)
        for b in range(1, mc["blocks"] + 1):
            y = keras.layers.Conv2D(f, k, padding="same", activation="relu", name=f"res{b}_conv1")(
                x
            )
            y = keras.layers.Conv2D(f, k, padding="same", name=f"res{b}_conv2")(y)
            x = keras.layers.Add(name=f"res{b}_add")([x, y])
            x = keras.layers.Activation(
                "relu", name="features" if b == mc["blocks"] else f"res{b}_relu"
            )(x)
        d = keras.layers.Conv2D(bands, k, padding="same", name="residual")(x)
        out = keras.layers.Add(name="clean")([z, d])
        out = denormalise(out, config["norm"], name="output")
        model = keras.Model(inp, out, name="resnet_denoiser")
        model.compile(
            optimizer=optimizer(config["training"]),
            loss="mse",
            metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
        )
        return model


def _no_targets(info):
    from galtools.errors import InputError

    return InputError(info.paths[0], "has no 'targets' (clean images) for the denoiser")


resnet_denoiser = ResNetDenoiser()
