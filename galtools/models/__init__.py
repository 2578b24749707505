"""Model builders: the ``galtools.models`` entry-point group and the ModelSpec protocol.

An entry of ``galtools.models`` (built-in or from a plugin) is a *ModelSpec* object (usually an
instance of :class:`ModelSpec` or a subclass) with:

``name``  (str)      the registry name (``--model NAME``); must equal the entry point's name;
``task``  (str)      ``"regression"``, ``"classification"``, ``"gan"``, ``"diffusion"`` or
                     ``"denoise"`` — or
                     ``"auto"``: classification when the target is a class column (strings,
                     named classes, or ``--classes``), else regression;
``kind``  (str)      ``"keras"`` (trained step by step by ``train-batch``) or ``"closed-form"``;
``description``      one line for ``galprep plugins`` / ``train-batch --help``;
``options``          a tuple of :class:`galtools.params.Option`: the model's own settings.
                     ``train-batch --model NAME`` gets one ``--name-with-dashes`` flag each
                     (listed by ``train-batch --model NAME --help``); they must not reuse a name
                     of :data:`TRAINING_OPTIONS`.  :data:`TARGET`, :data:`TARGET_RANGE` and
                     :data:`CLASSES` are ready-made options for the usual target column;
``columns``          a tuple of :class:`Column`: the label columns the model learns from, each
                     named by one of its options, with how its values enter ``y`` and their role
                     (the target; a condition of a generator; another label);
``abilities``        a set of names of :data:`ABILITIES`: what a trained run can do
                     (``galprep score``, ``generate``, ``denoise`` and :class:`galtools.runs.Run`
                     ask this, never the model's name);
``configure(options, info) -> dict``
                     the model's own JSON-able settings from its options (``options``: dict of
                     its declared options, converted and with defaults, plus ``init_from`` and
                     ``freeze_until``) and the data (``info``:
                     :class:`galtools.train.data.DataInfo`: image shape, bands, label names...).
                     Raise :class:`galtools.errors.GalError` for data the model cannot take.
                     Stored as ``config["model_config"]``.
``build(config) -> keras.Model``
                     (keras kind) a compiled model for ``config`` (the run's whole config.json
                     dict) that trains with ``model.train_on_batch(x, y)`` on the batches the
                     training loop makes for the task (see :func:`galtools.train.data.xy`).
                     A GAN model exposes ``.generator``, ``.discriminator`` and
                     ``checkpoint_variables()``.  Every network names its penultimate layer
                     ``"features"`` (used by :meth:`galtools.runs.Run.features`).
                     A model whose class overrides ``train_on_batch`` trains on several
                     devices (``--distribute data``) only when it sets ``splits_batches =
                     True``: it then gets this process's rows of each global batch and must
                     run its step on the global batch (see ``galtools.models.gan``).
``save(model, run_dir)``
                     write the trained network(s) (default: ``model.keras``; GANs also
                     ``discriminator.keras``), atomically.
``fit(chunks, config, run_dir)`` / ``predict(run, images)`` / ``features(run, images)``
                     (closed-form kind only) fit in one streamed pass over ``(x, y)`` chunks,
                     write the result into ``run_dir`` and use it.
``recipe``           the model's training defaults: a dict of some of ``lr``, ``optimizer``,
                     ``weight_decay``, ``schedule``, ``warmup``, ``patience``, ``ema``,
                     ``early_stop``, ``clip``, ``augment`` (the others: those of
                     :data:`galtools.train.recipe.GENERAL`); ``train-batch --model NAME --help``
                     lists them.  ``build`` makes its optimizers with
                     :func:`galtools.train.recipe.optimizer` (``config["training"]``) so that
                     ``--optimizer``, ``--weight-decay``, ``--clip`` and ``--ema`` apply.
``precisions``       the ``--precision`` values the model trains in (None: all).
``set_lr(model, lr)`` sets the learning rate of every optimizer of ``model`` (the schedule
                     calls it); ``optimizers(model)``: those optimizers (default:
                     ``[model.optimizer]``; a GAN has two).
``augment_ops(config)`` the ``galprep augment`` ops that keep the run's labels valid
                     (``train-batch --augment``, ``score --tta``).
``hooks(config)``    training hooks of the model's own (:mod:`galtools.train.hooks`), called
                     by the loop after the built-in ones and before the checkpoint.
``sample(run, n, seed, conditions, batch_size, **options)`` / ``sample_options``
                     optional (a model that samples itself, in several network calls, e.g.
                     a diffusion model): :meth:`galtools.runs.Run.generate` delegates to it.  ``n``
                     images in the data's units for ``conditions`` ((n, K) scaled to
                     [-1, 1], or None), the same for the same seed, options and batch size
                     (network calls of at most ``batch_size`` rows).  ``sample_options``: a
                     tuple of :class:`galtools.params.Option` (the settings ``generate``
                     takes, e.g. ``steps``, ``guidance``; checked and defaulted before any
                     image is made); optional ``check_sample(run, given)`` raises GalError for
                     given settings that do not fit the run.  Optional
                     ``preview(model, config, count)``: images of the model being trained
                     for the per-pass montages (else the generator is called on fixed noise).

What the training loop feeds ``train_on_batch``: ``x`` the images (data units, float32);
``y`` denoise: the ``targets`` images; otherwise the declared columns in their order, each as
its :class:`Column` kind says (a single ``class`` column: class indices (N,); else an (N, k)
float32 array; no columns: None).  The scalings live in ``config["columns"]``.

What each ability promises about a run directory (how :class:`galtools.runs.Run` uses it):
``predicts``: ``model.keras`` (or closed-form ``predict``) maps images to the task's output;
``generates``: ``model.keras`` maps z, (N, ``model_config["latent_dim"]``) normal noise —
and, with ``conditions``, the condition columns scaled to [-1, 1] as a second input — to images
in the data's units; or the spec has ``sample`` (above), which makes the images from the run
(its ``model.keras`` is then what that sampler steps, e.g. a denoising network);
``scores``: ``discriminator.keras`` outputs a dict with ``"score"`` (tanh: the target column
in [-1, 1]) and optionally ``"label"`` (logit of P(real galaxy));
``denoises``: ``model.keras`` maps noisy images of any size to clean ones.

Networks are made only of stock Keras layers or layers registered with
``keras.saving.register_keras_serializable`` so that runs load with ``safe_mode=True``.
"""

import os
from dataclasses import dataclass

from galtools.params import Option

TASKS = ("regression", "classification", "gan", "diffusion", "denoise")
KINDS = ("keras", "closed-form")
GROUP = "galtools.models"

# What a trained run of a model can do; the tools ask a run's spec, never its name.
ABILITIES = {
    "predicts": "maps images to its task's output (score, predict, metrics features)",
    "generates": "samples new images from noise (galprep generate)",
    "conditions": "generates images for given label values (--condition, --conditions-from)",
    "scores": "rates images with a realism score (galprep score, generate --min-score)",
    "denoises": "maps noisy images to clean ones (galprep denoise)",
}

# Names train-batch uses for its own options: a model's options must not take them.
TRAINING_OPTIONS = (
    "data", "output", "run", "model", "init_from", "freeze_until", "val", "mix", "alpha",
    "passes", "epochs", "batch_size", "lr", "optimizer", "weight_decay", "schedule", "warmup",
    "patience", "ema", "early_stop", "clip", "augment", "keep", "checkpoint_every", "log_every",
    "distribute", "precision", "tensorboard", "prefetch", "read_workers", "restart", "seed",
    "quiet", "verbose", "debug", "help",
)  # fmt: skip

COLUMN_KINDS = ("scaled", "raw", "binary", "class", "auto")
COLUMN_ROLES = ("target", "condition", "label")


@dataclass(frozen=True)
class Column:
    """A label column (or several) a model learns from, named by the value of one option.

    ``option``: the name of one of the spec's options; its value is the column's name (an
    option of kind ``list`` names several columns, one each).  ``kind``: how values enter ``y``
    — ``scaled``: [lo, hi] of the data (or of the option ``target_range`` for the target, when
    the model declares it) mapped linearly onto [-1, 1]; ``raw``: as they are; ``binary``: 0/1
    values; ``class``: class indices (the class count from the option ``classes`` when
    declared); ``auto``: ``class`` for a classification run, else ``scaled``.  ``role``:
    ``target`` (at most one: what the run predicts or scores; its option must be given),
    ``condition`` (an input of a generator: the run takes them as conditions), or ``label``
    (anything else the model learns, e.g. a real/fake flag).
    """

    option: str
    kind: str = "scaled"
    role: str = "target"


TARGET = Option("target", "Label column to learn.", metavar="COL")
TARGET_RANGE = Option(
    "target_range",
    "Physical range mapped onto [-1, 1] (default: the data's min,max).",
    kind="pair",
    metavar="LO,HI",
)
CLASSES = Option(
    "classes",
    "Number of classes (default: from the file's class names or the values).",
    kind="int",
    minimum=2,
    metavar="K",
)


class ModelSpec:
    """Base class for model specs: override :meth:`configure` and :meth:`build`."""

    name = "?"
    task = "regression"
    kind = "keras"
    description = ""
    options = ()  # galtools.params.Option: this model's own command-line settings
    columns = ()  # Column: the label columns it learns from
    abilities = frozenset({"predicts"})
    recipe = {}  # training defaults of this model (galtools.train.recipe.RECIPE_KEYS)
    precisions = None  # the --precision values it trains in (None: all)

    def configure(self, options, info):
        return {}

    def build(self, config):  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, model, run_dir):
        save_keras(model, os.path.join(run_dir, "model.keras"))

    def optimizers(self, model):
        """The optimizers of a built model (what :meth:`set_lr` sets)."""
        opt = getattr(model, "optimizer", None)
        return [opt] if opt is not None else []

    def set_lr(self, model, lr):
        """Set the learning rate of every optimizer of ``model``."""
        found = self.optimizers(model)
        if not found:
            from galtools.errors import GalError

            raise GalError(f"model {self.name}: no optimizer to set the learning rate of")
        for opt in found:
            opt.learning_rate = lr

    def hooks(self, config):
        """Training hooks of this model's own (galtools.train.hooks.Hook), default none."""
        return []

    def augment_ops(self, config):
        """Names of the ``galprep augment`` ops that keep this run's labels valid: what
        ``train-batch --augment`` may apply while training and ``score --tta`` may average
        over (flips and quarter turns).  Default: every op for regression, classification and
        generators (a label that changes under rotation, e.g. a position angle, needs a model
        that says so); for denoisers the geometric ones (they move the clean target with
        the noisy image) and the degradations of the input alone, noise and blur (the clean
        target stays right; other photometric ops would change the image, not its target)."""
        from galtools.augment import GEOMETRIC, ORDER

        if config.get("task") == "denoise":
            return frozenset(GEOMETRIC + ("noise", "blur"))
        return frozenset(ORDER)

    def __repr__(self):
        return f"<ModelSpec {self.name} ({self.task})>"


def save_keras(model, path):
    """``model.save(path)`` through a temporary file and a rename (never half-written)."""
    from galtools.atomic import atomic_path

    with atomic_path(path, overwrite=True, suffix=".keras") as tmp:
        model.save(tmp)


def quiet_tensorflow():
    """Import Keras (and TensorFlow, when it is Keras' backend) without their C++ start-up
    chatter (unless -vv).  With ``KERAS_BACKEND=jax`` (or numpy, torch) TensorFlow is never
    imported, so it need not be installed.

    TF 2.21 logs oneDNN/CUDA notices through absl before any Python setting applies
    (TF_CPP_MIN_LOG_LEVEL no longer hides them), so stderr's file descriptor is pointed at
    /dev/null for the duration of the first import.  Python exceptions still propagate.
    """
    import sys

    from galtools.settings import state

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "keras" in sys.modules or state.verbose >= 2:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded use): import as is
        import keras  # noqa: F401

        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras

        if keras.backend.backend() == "tensorflow":  # other backends need no TensorFlow
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load_keras(path):
    """Load a saved network with ``safe_mode=True`` (custom layers must be registered)."""
    quiet_tensorflow()
    import keras

    from galtools.models import layers, unet  # noqa: F401  (registers our serialisables)

    return keras.models.load_model(path, safe_mode=True, compile=False)


def get(name):
    """The ModelSpec registered as ``name`` (unknown names list the known ones)."""
    from galtools import registry

    return registry.load(GROUP, name, kind="model")


def known():
    from galtools import registry

    return list(registry.entries(GROUP))


def with_ability(ability):
    """Names of the registered models (that load) whose runs have ``ability``."""
    from galtools import registry

    names = []
    for name, entry in registry.entries(GROUP).items():
        try:
            spec = entry.load()
        except Exception:  # a broken plugin is listed by galprep plugins, not here
            continue
        if ability in (getattr(spec, "abilities", None) or ()):
            names.append(name)
    return names


def able(ability):
    """'a, b or c' for messages: the registered models whose runs have ``ability``."""
    names = with_ability(ability)
    if not names:
        return "none installed"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def check(spec):
    """Check that ``spec`` keeps the ModelSpec contract; return it (TypeError/ValueError else)."""
    from galtools.params import check_options

    name = getattr(spec, "name", None)
    if not isinstance(name, str) or not name or name == "?":
        raise TypeError(f"model spec {spec!r} has no name")
    task = getattr(spec, "task", None)
    if task not in TASKS + ("auto",):
        raise ValueError(f"model {name}: task {task!r} is not one of {', '.join(TASKS)}, auto")
    kind = getattr(spec, "kind", "keras")
    if kind not in KINDS:
        raise ValueError(f"model {name}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(getattr(spec, "description", ""), str):
        raise TypeError(f"model {name}: description must be a string")
    check_options(getattr(spec, "options", None), f"model {name}")
    abilities = getattr(spec, "abilities", None)
    if not isinstance(abilities, (set, frozenset, tuple, list)) or not set(abilities) <= set(
        ABILITIES
    ):
        raise ValueError(
            f"model {name}: abilities must be a set of {', '.join(ABILITIES)}, got {abilities!r}"
        )
    _check_columns(spec, name)
    needed = ("configure", "build") if kind == "keras" else ("configure", "fit", "predict")
    for method in needed:
        if not callable(getattr(spec, method, None)):
            raise TypeError(f"model {name}: no {method}() method")
    return spec


def _check_columns(spec, name):
    """Option names free of train-batch's own; columns well formed and named by options."""
    options = {o.name: o for o in spec.options}
    taken = sorted(set(options) & set(TRAINING_OPTIONS))
    if taken:
        raise ValueError(
            f"model {name}: option --{taken[0].replace('_', '-')} is one of train-batch's own"
        )
    columns = getattr(spec, "columns", None)
    if not isinstance(columns, (tuple, list)):
        raise TypeError(f"model {name}: columns must be a tuple of galtools.models.Column")
    for col in columns:
        if not isinstance(col, Column):
            raise TypeError(f"model {name}: column {col!r} is not a galtools.models.Column")
        if col.option not in options:
            raise ValueError(
                f"model {name}: column option '{col.option}' is not one of its options"
            )
        if col.kind not in COLUMN_KINDS:
            raise ValueError(
                f"model {name}: column kind {col.kind!r} is not one of {', '.join(COLUMN_KINDS)}"
            )
        if col.role not in COLUMN_ROLES:
            raise ValueError(
                f"model {name}: column role {col.role!r} is not one of {', '.join(COLUMN_ROLES)}"
            )
    if sum(col.role == "target" for col in columns) > 1:
        raise ValueError(f"model {name}: more than one target column")
    task = getattr(spec, "task", None)
    if task in ("regression", "classification", "auto") and not any(
        col.role == "target" for col in columns
    ):
        raise ValueError(f"model {name}: a {task} model needs a target column")
    conditions = any(col.role == "condition" for col in columns)
    if conditions != ("conditions" in set(spec.abilities)):
        raise ValueError(
            f"model {name}: the 'conditions' ability and a condition column go together"
        )
