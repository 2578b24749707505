"""``cnn-classifier``: a configurable convolutional backbone and fully connected head."""

import re

from galtools.errors import GalError
from galtools.models import CLASSES, TARGET, Column, ModelSpec
from galtools.models.vgg import SUPERVISED_RECIPE, compile_supervised, conv_block, supervised_head
from galtools.params import Option

ACTIVATIONS = {"relu", "elu", "gelu", "selu", "tanh", "sigmoid", "swish", "linear", "softplus"}


def parse_head(text):
    """'2048,relu,1024,relu,512' → [2048, 'relu', 1024, 'relu', 512] (checked)."""
    out = []
    for token in filter(None, (t.strip() for t in (text or "").split(","))):
        if re.fullmatch(r"\d+", token):
            if int(token) < 1:
                raise GalError(f"--head: layer width must be positive, got {token}")
            out.append(int(token))
        elif token.lower() in ACTIVATIONS:
            if not out or not isinstance(out[-1], int):
                raise GalError(f"--head: activation '{token}' must follow a layer width")
            out.append(token.lower())
        elif token.lower().startswith("dropout"):
            m = re.fullmatch(r"dropout:?(0?\.\d+)", token.lower())
            if not m:
                raise GalError(f"--head: write dropout as dropout:0.3, got '{token}'")
            out.append(f"dropout:{m.group(1)}")
        else:
            raise GalError(
                f"--head: '{token}' is neither a width nor one of "
                f"{', '.join(sorted(ACTIVATIONS))}, dropout:P"
            )
    return out


def parse_backbone(text):
    try:
        filters = [int(t) for t in (text or "").split(",") if t.strip()]
    except ValueError:
        raise GalError(f"--backbone must be comma-separated filter counts, got '{text}'") from None
    if not filters or min(filters) < 1:
        raise GalError(f"--backbone must list positive filter counts, got '{text}'")
    return filters


class CNNClassifier(ModelSpec):
    name = "cnn-classifier"
    task = "classification"
    description = "CNN backbone (--backbone) + dense head (--head) classifier, top-1/top-3"
    recipe = SUPERVISED_RECIPE
    options = (
        TARGET,
        CLASSES,
        Option("backbone", "Conv block widths.", default="32,64,128", metavar="F,F,..."),
        Option(
            "head",
            "Dense head, e.g. 2048,relu,1024,relu,512 (dropout:0.3 ok).",
            default="256,relu",
            metavar="SPEC",
        ),
        Option(
            "normalize",
            "Standardise each image (judge shape and colour, not brightness) or scale all "
            "by one per-band factor (brightness matters).",
            kind="choice",
            choices=("per-image", "global"),
            default="per-image",
        ),
    )
    columns = (Column("target", "class"),)

    def configure(self, options, info):
        backbone = parse_backbone(options.get("backbone") or "32,64,128")
        head = parse_head(options.get("head") or "256,relu")
        h, w, _ = info.image_shape
        pools = sum(1 for _ in backbone)
        if min(h, w) < 2 ** min(pools, 1):
            raise GalError(f"cnn-classifier needs images of at least 2×2 pixels, got {h}×{w}")
        per_image = (options.get("normalize") or "per-image") == "per-image"
        return {
            "backbone": backbone,
            "head": head,
            "per_image": per_image,
        }

    def build(self, config):
        import keras

        from galtools.models.layers import PerImageStandardize, normalise

        mc = config["model_config"]
        h, w, _ = config["input_shape"]
        inp = keras.Input(tuple(config["input_shape"]), name="images")
        x = normalise(inp, config["norm"], name="norm")
        if mc.get("per_image", True):
            x = PerImageStandardize(name="per_image")(x)
        size = min(h, w)
        for i, f in enumerate(mc["backbone"], 1):
            pool = size >= 2
            x = conv_block(x, (f, f), f"block{i}", pool=pool, dropout=0.0)
            size //= 2 if pool else 1
        head = mc["head"]
        last = len(head) - 1
        x = keras.layers.GlobalAveragePooling2D(name="features" if not head else "pool")(x)
        for j, item in enumerate(head):
            name = "features" if j == last else f"head{j}"
            if isinstance(item, int):
                x = keras.layers.Dense(item, name=name)(x)
            elif item.startswith("dropout:"):
                x = keras.layers.Dropout(float(item.split(":")[1]), name=name)(x)
            else:
                x = keras.layers.Activation(item, name=name)(x)
        out, loss, metrics = supervised_head(x, config)
        model = keras.Model(inp, out, name="cnn_classifier")
        return compile_supervised(model, loss, metrics, config)


cnn_classifier = CNNClassifier()
