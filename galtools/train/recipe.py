"""The training recipe: one frozen :class:`Settings` object (the defaults ``train()`` and
``train-batch`` share), each model's own defaults (``ModelSpec.recipe``), the optimizer they
make and the learning rate at every step.

A setting left at None takes the model's recipe value, else :data:`GENERAL`.  What a run was
trained with is recorded in full in ``config["training"]``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from galtools.errors import GalError

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("cosine", "plateau", "constant")
# defaults of a model whose recipe says nothing (the loop of galtools 0.x: Adam, constant lr)
GENERAL = {
    "lr": 1e-3,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "schedule": "constant",
    "warmup": 0.0,
    "patience": None,
    "ema": 0.0,
    "early_stop": 0,
    "clip": 0.0,
    "augment": None,
}
RECIPE_KEYS = tuple(GENERAL)
# an average covers at most this fraction of a run's steps (1 / (1 - decay) steps)
EMA_WINDOW = 0.1


@dataclass(frozen=True)
class Settings:
    """Every setting of one training call; ``train-batch``'s options take their defaults from
    here.  None: the model's recipe (``--model NAME --help`` lists it), else :data:`GENERAL`.

    ``warmup``: steps of linear warm-up (a value below 1: that fraction of the run's steps);
    ``ema``: decay per step of the moving average of the weights (0: none), what is saved and
    scored; ``early_stop``: evaluations without improvement before training stops and the best
    weights are restored (0: never); ``clip``: largest global gradient norm (0: no clipping);
    ``augment``: ``galprep augment`` ops applied to every batch while training.
    """

    val: str | None = None
    mix: str | None = None
    alpha: float = 0.5
    passes: int = 1
    epochs: int = 1
    batch_size: int = 32
    lr: float | None = None
    optimizer: str | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    warmup: float | None = None
    patience: int | None = None
    ema: float | None = None
    early_stop: int | None = None
    clip: float | None = None
    augment: str | None = None
    seed: int = 0
    restart: bool = False
    keep: int = 3
    checkpoint_every: int = 500
    log_every: int = 20
    distribute: str | None = None
    precision: str = "float32"
    tensorboard: bool = False
    prefetch: int = 4
    workers: int = 1

    def replace(self, **changes):
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"unknown training setting {unknown[0]!r}")
        return dataclasses.replace(self, **changes)


DEFAULTS = Settings()


def default(name):
    """The default of setting ``name`` (for the command's options)."""
    return getattr(DEFAULTS, name)


def resolve(settings, spec):
    """The recipe values of ``settings`` (None → the spec's recipe → :data:`GENERAL`), checked."""
    own = dict(getattr(spec, "recipe", None) or {})
    unknown = sorted(set(own) - set(RECIPE_KEYS))
    if unknown:
        raise GalError(f"model {spec.name}: recipe has unknown setting {unknown[0]!r}")
    out = {}
    for key in RECIPE_KEYS:
        given = getattr(settings, key)
        out[key] = given if given is not None else own.get(key, GENERAL[key])
    if str(out["augment"] or "").strip().lower() in ("", "none"):
        out["augment"] = None  # --augment none: a recipe's augmentation off
    if settings.patience is not None and settings.schedule is None:
        out["schedule"] = "plateau"  # --patience alone: halving on a plateau, as it always was
    if settings.patience is not None and out["schedule"] != "plateau":
        raise GalError(f"--patience halves the rate of --schedule plateau, not {out['schedule']}")
    if out["schedule"] == "plateau" and not out["patience"]:
        out["patience"] = 3
    if out["schedule"] != "plateau":
        out["patience"] = None
    check(out)
    return out


def check(recipe):
    """GalError for recipe values out of range (from Python; the command's types check too)."""
    if recipe["optimizer"] not in OPTIMIZERS:
        raise GalError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
    if recipe["schedule"] not in SCHEDULES:
        raise GalError(f"--schedule must be one of {', '.join(SCHEDULES)}")
    for key in ("lr",):
        if not recipe[key] > 0:
            raise GalError(f"--lr must be > 0, got {recipe[key]}")
    for key in ("weight_decay", "warmup", "clip"):
        if not (isinstance(recipe[key], (int, float)) and recipe[key] >= 0):
            raise GalError(f"--{key.replace('_', '-')} must be ≥ 0, got {recipe[key]!r}")
    if not 0.0 <= float(recipe["ema"]) < 1.0:
        raise GalError(f"--ema must be in [0, 1), got {recipe['ema']}")
    if recipe["weight_decay"] and recipe["optimizer"] != "adamw":
        raise GalError("--weight-decay needs --optimizer adamw (Adam's would be L2, not decay)")
    if int(recipe["early_stop"]) < 0:
        raise GalError(f"--early-stop must be ≥ 0, got {recipe['early_stop']}")


def ema_decay(decay, total):
    """``decay`` limited so that the average spans at most :data:`EMA_WINDOW` of ``total``
    steps (a short run would otherwise average its untrained start in), and at least 0.5
    (an average of two steps); 0 stays 0."""
    if not decay:
        return 0.0
    return float(min(decay, 1.0 - 1.0 / max(EMA_WINDOW * total, 2.0)))


_SCHEDULE = []  # the schedule class, made on first use (Keras is not imported before)


def schedule_class():
    """:class:`keras.optimizers.schedules.LearningRateSchedule` of :func:`learning_rate`,
    registered for saving (``galtools>WarmupSchedule``)."""
    if _SCHEDULE:
        return _SCHEDULE[0]
    import keras

    @keras.saving.register_keras_serializable("galtools")
    class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
        """:func:`learning_rate` of the optimizer's step counter, computed inside the
        compiled step (no assignment between steps, which would recompile it)."""

        def __init__(self, base, total, schedule="cosine", warmup=0):
            self.base, self.total = float(base), int(total)
            self.schedule, self.warmup = schedule, int(warmup)

        def __call__(self, step):
            from keras import ops

            t = ops.cast(step, "float32")
            warm = float(self.warmup)
            lr = ops.convert_to_tensor(self.base, "float32")
            if self.schedule == "cosine":
                span = float(max(self.total - self.warmup, 1))
                phase = ops.clip((t - warm) / span, 0.0, 1.0)
                lr = lr * 0.5 * (1.0 + ops.cos(math.pi * phase))
            if self.warmup:
                lr = ops.where(t < warm, self.base * (t + 1.0) / (warm + 1.0), lr)
            return lr

        def get_config(self):
            return {
                "base": self.base,
                "total": self.total,
                "schedule": self.schedule,
                "warmup": self.warmup,
            }

    _SCHEDULE.append(WarmupSchedule)
    return WarmupSchedule


def in_graph(training):
    """Whether the run's learning rate is a schedule of the step inside the optimizer (cosine
    or a warm-up, given the run's length) rather than a value the loop sets (plateau)."""
    schedule, warm = training.get("schedule"), float(training.get("warmup") or 0)
    return bool(training.get("steps")) and (
        schedule == "cosine" or (schedule == "constant" and warm > 0)
    )


def optimizer(training, **extra):
    """The Keras optimizer of a run's ``config["training"]``: Adam or AdamW (decoupled weight
    decay), global-norm clipping, the moving average of the weights (``ema_used``: the decay
    the loop chose for the run's length), and the learning rate as a schedule of the step
    (cosine and warm-up; ``steps``: the run's length).  ``extra``: e.g. ``beta_1`` for a GAN."""
    import keras

    name = training.get("optimizer") or "adam"
    lr = training["lr"]
    if in_graph(training):
        total = int(training["steps"])
        warm = min(warmup_steps(training.get("warmup"), total), max(total - 1, 0))
        lr = schedule_class()(lr, total, training["schedule"], warm)
    kw = dict(learning_rate=lr, **extra)
    if training.get("clip"):
        kw["global_clipnorm"] = float(training["clip"])
    decay = training.get("ema_used", training.get("ema")) or 0.0
    if decay:
        kw.update(use_ema=True, ema_momentum=float(decay))
    if name == "adamw":
        return keras.optimizers.AdamW(weight_decay=float(training.get("weight_decay") or 0), **kw)
    return keras.optimizers.Adam(**kw)


def warmup_steps(warmup, total):
    """Steps of warm-up: ``warmup`` itself, or that fraction of ``total`` when below 1."""
    warmup = float(warmup or 0)
    return int(round(warmup * total)) if warmup < 1 else int(warmup)


def learning_rate(step, total, base, schedule, warmup=0.0):
    """The learning rate of step ``step`` (0-based) of ``total``: linear warm-up from
    ``base / warm`` to ``base`` over the warm-up steps, then ``cosine`` (half a cosine down to
    0 at the last step) or flat (``constant``; ``plateau`` halves it on its own)."""
    warm = min(warmup_steps(warmup, total), max(total - 1, 0))
    if step < warm:
        return base * (step + 1) / (warm + 1)
    if schedule != "cosine":
        return base
    span = max(total - warm, 1)
    return base * 0.5 * (1.0 + math.cos(math.pi * (step - warm) / span))
