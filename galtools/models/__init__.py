"""Model builders: the ``galtools.models`` entry-point group and the ModelSpec protocol.

An entry of ``galtools.models`` (built-in or from a plugin) is a *ModelSpec* object (usually an
instance of :class:`ModelSpec` or a subclass) with:

``name``  (str)      the registry name (``--model NAME``);
``task``  (str)      ``"regression"``, ``"classification"``, ``"gan"`` or ``"denoise"`` — or
                     ``"auto"``: classification when ``--target`` is a class column (strings,
                     named classes, or ``--classes``), else regression;
``kind``  (str)      ``"keras"`` (trained step by step by ``train-batch``) or ``"closed-form"``;
``description``      one line for ``galprep plugins`` / ``--help``;
``configure(options, info) -> dict``
                     the model's own JSON-able settings from the command's options
                     (``options``: dict of the ``train-batch`` options) and the data
                     (``info``: :class:`galtools.train.data.DataInfo`: image shape, bands,
                     label scaling...).  Raise :class:`galtools.errors.GalError` for data the
                     model cannot take.  Stored as ``config["model_config"]``.
``build(config) -> keras.Model``
                     (keras kind) a compiled model for ``config`` (the run's whole config.json
                     dict) that trains with ``model.train_on_batch(x, y)`` on the batches the
                     training loop makes for the task (see :func:`galtools.train.data.xy`).
                     A GAN model exposes ``.generator``, ``.discriminator`` and
                     ``checkpoint_variables()``.  Every network names its penultimate layer
                     ``"features"`` (used by :meth:`galtools.runs.Run.features`).
``save(model, run_dir)``
                     write the trained network(s) (default: ``model.keras``; GANs also
                     ``discriminator.keras``), atomically.
``fit(chunks, config, run_dir)`` / ``predict(run, images)`` / ``features(run, images)``
                     (closed-form kind only) fit in one streamed pass over ``(x, y)`` chunks,
                     write the result into ``run_dir`` and use it.
``patience``         optional: default ``--patience`` (learning-rate halving on plateau).

What the training loop feeds ``train_on_batch``: ``x`` the images (data units, float32);
``y`` regression: the target scaled to [-1, 1] (N, 1); classification: class indices (N,);
denoise: the ``targets`` images; gan: None (dcgan), [score in [-1, 1], real 0/1] (twoinone),
the conditions scaled to [-1, 1] (cgan).  Scalings live in ``config["columns"]``.

Networks are made only of stock Keras layers or layers registered with
``keras.saving.register_keras_serializable`` so that runs load with ``safe_mode=True``.
"""

import os

TASKS = ("regression", "classification", "gan", "denoise")
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


class ModelSpec:
    """Base class for model specs: override :meth:`configure` and :meth:`build`."""

    name = "?"
    task = "regression"
    kind = "keras"
    description = ""
    options = ()  # galtools.params.Option: this model's own command-line settings
    abilities = frozenset({"predicts"})

    def configure(self, options, info):
        return {}

    def build(self, config):  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, model, run_dir):
        save_keras(model, os.path.join(run_dir, "model.keras"))

    def __repr__(self):
        return f"<ModelSpec {self.name} ({self.task})>"


def save_keras(model, path):
    """``model.save(path)`` through a temporary file and a rename (never half-written)."""
    from galtools.atomic import atomic_path

    with atomic_path(path, overwrite=True, suffix=".keras") as tmp:
        model.save(tmp)


def quiet_tensorflow():
    """Import TensorFlow/Keras without their C++ start-up chatter (unless -vv).

    TF 2.21 logs oneDNN/CUDA notices through absl before any Python setting applies
    (TF_CPP_MIN_LOG_LEVEL no longer hides them), so stderr's file descriptor is pointed at
    /dev/null for the duration of the first import.  Python exceptions still propagate.
    """
    import sys

    from galtools.options import state

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
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load_keras(path):
    """Load a saved network with ``safe_mode=True`` (custom layers must be registered)."""
    quiet_tensorflow()
    import keras

    from galtools.models import layers  # noqa: F401  (registers our serialisables)

    return keras.models.load_model(path, safe_mode=True, compile=False)


def get(name):
    """The ModelSpec registered as ``name`` (unknown names list the known ones)."""
    from galtools import registry

    return registry.load(GROUP, name, kind="model")


def known():
    from galtools import registry

    return list(registry.entries(GROUP))


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
    needed = ("configure", "build") if kind == "keras" else ("configure", "fit", "predict")
    for method in needed:
        if not callable(getattr(spec, method, None)):
            raise TypeError(f"model {name}: no {method}() method")
    return spec
