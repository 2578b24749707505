"""The run directory: its ``config.json`` (one reader for training and for :mod:`galtools.runs`),
a model's options and label columns turned into the config, and the create / resume / restart
rules of ``train-batch``.

Everything model-specific comes from the spec's declarations (``options``, ``columns``,
``abilities``, ``task``); nothing here knows a model by its name.
"""

import json
import os
import shutil

from galtools.errors import GalError, InputError

RUN_FORMAT = "galtools-run"
RUN_FILES = (
    "config.json",
    "model.keras",
    "discriminator.keras",
    "weights.npz",
    "metrics.json",
    "curves.png",
    "train.log",
    "checkpoints",
    "samples",
    "tensorboard",
)
# the training settings that must match to continue a run (others may change between calls)
# (the recipe's too: they change the optimizer's state, the batches or the steps' rates)
RESUME_KEYS = (
    "data", "batch_size", "seed", "mix", "alpha", "freeze_until", "precision",
    "optimizer", "weight_decay", "schedule", "warmup", "ema", "clip", "augment",
)  # fmt: skip
# what a run made before a resume key existed was trained with
RESUME_DEFAULTS = {
    "precision": "float32", "optimizer": "adam", "weight_decay": 0.0, "schedule": "constant",
    "warmup": 0.0, "ema": 0.0, "clip": 0.0, "augment": None,
}  # fmt: skip
# options of every keras model, handled by the training loop rather than by the model
LOOP_OPTIONS = ("init_from", "freeze_until")


def read_config(run_dir, required=("model", "task", "columns")):
    """The ``config.json`` of run directory ``run_dir`` (checked); InputError naming it else."""
    run_dir = os.fspath(run_dir)
    path = os.path.join(run_dir, "config.json")
    if not os.path.isdir(run_dir):
        raise InputError(run_dir, "no such run directory")
    if not os.path.isfile(path):
        raise InputError(run_dir, "not a run (no config.json)")
    try:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError(run_dir, f"corrupt config.json ({str(exc).splitlines()[0]})") from None
    if not isinstance(config, dict) or config.get("format") != RUN_FORMAT:
        raise InputError(run_dir, "config.json is not a galtools run config")
    for key in required:
        if key not in config:
            raise InputError(run_dir, f"config.json lacks '{key}'")
    return config


def write_config(run_dir, config):
    from galtools.train import report

    report.write_json(os.path.join(run_dir, "config.json"), config)


# ------------------------------------------------------------------------------- model options


def flags(spec):
    """'--a, --b' (or 'none') for messages."""
    return ", ".join(o.flag for o in spec.options) or "none"


def not_an_option(flag, spec):
    return GalError(f"{flag} is not an option of model {spec.name} (its options: {flags(spec)})")


def model_options(spec, given):
    """The spec's options, converted and with defaults, plus :data:`LOOP_OPTIONS`.

    ``given``: a dict (from the command line or from Python); a value for an option the model
    does not declare is an error, as on the command line.
    """
    from galtools.params import resolve

    names = {o.name for o in spec.options}
    for key, value in given.items():
        if key not in names and key not in LOOP_OPTIONS and value not in (None, "", [], ()):
            raise not_an_option("--" + key.replace("_", "-"), spec)
    try:
        out = resolve(spec.options, given)
    except ValueError as exc:
        raise GalError(f"model {spec.name}: {exc}") from None
    out.update({k: given.get(k) for k in LOOP_OPTIONS})
    return out


# ---------------------------------------------------------------------------- label columns


def _names(value):
    if value in (None, ""):
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _target(spec):
    return next((c for c in spec.columns if c.role == "target"), None)


def task_of(spec, opts, info):
    """The spec's task; ``auto``: classification for a class target column, else regression."""
    if spec.task != "auto":
        return spec.task
    target = _target(spec)
    name = opts.get(target.option) if target else None
    if not name:
        return "regression"
    kind, named = _column_kind(info.paths, name)
    return "classification" if (opts.get("classes") or named or kind in "USbO") else "regression"


def _column_kind(paths, name):
    from galtools.arrayfile import open_galaxies

    with open_galaxies(paths[0]) as reader:
        if name not in reader.label_names:
            known = ", ".join(reader.label_names) or "none"
            raise InputError(paths[0], f"no label column '{name}' (label columns: {known})")
        return reader.column(name).dtype.kind, name in reader.classes


def columns(task, spec, opts, info):
    """(column specs in the order of ``y``, class names or None) from the spec's declarations."""
    from galtools.train.data import column_range

    paths, out, class_names = info.paths, [], None
    options = {o.name: o for o in spec.options}
    for decl in spec.columns:
        names = _names(opts.get(decl.option))
        if not names and decl.role == "target":
            option = options[decl.option]
            raise GalError(
                f"{option.flag} {option.metavar or 'COL'} is needed for {spec.name} "
                f"(label columns: {', '.join(info.label_names) or 'none'})"
            )
        kind = decl.kind
        if kind == "auto":
            kind = "class" if task == "classification" else "scaled"
        for name in names:
            if kind == "class":
                col, class_names = _class_column(name, opts, paths, options[decl.option].flag)
            elif kind == "binary":
                column_range(paths, name)  # exists, no NaN
                col = {"name": name, "kind": "binary"}
            else:
                lo, hi = column_range(paths, name)
                if decl.role == "target" and opts.get("target_range"):
                    lo, hi = opts["target_range"]
                col = {"name": name, "kind": kind, "lo": lo, "hi": hi}
            out.append(col)
    if task == "denoise" and not info.has_targets:
        raise InputError(paths[0], "has no 'targets' (clean images) to learn from")
    return out, class_names


def _class_column(target, opts, paths, flag="--target"):
    from galtools.train.data import column_values

    values, names = column_values(paths, target)
    numeric = all(isinstance(v, (int, float)) and float(v).is_integer() for v in values)
    if numeric:
        values = [int(v) for v in values]
        k = opts.get("classes") or (len(names) if names else max(values) + 1)
        if names and len(names) < k:
            names = None
        if min(values) < 0 or max(values) >= k:
            raise GalError(
                f"{flag} {target}: class values {min(values)}..{max(values)} do not fit {k} classes"
            )
        values = list(range(k))
        names = list(names[:k]) if names else [str(v) for v in values]
    else:
        names = [str(v) for v in values]
        if opts.get("classes") and opts["classes"] != len(values):
            raise GalError(
                f"--classes {opts['classes']} but column '{target}' holds {len(values)} classes"
            )
    if len(values) < 2:
        raise GalError(f"{flag} {target}: a classifier needs at least 2 classes")
    return {"name": target, "kind": "class", "values": values}, names


def check_columns(path, config):
    """InputError unless file ``path`` (--val, --mix) has the run's columns (and targets)."""
    from galtools.arrayfile import open_galaxies

    needed = [c["name"] for c in config["columns"]]
    with open_galaxies(path) as reader:
        missing = [c for c in needed if c not in reader.label_names]
        if missing:
            raise InputError(
                path,
                f"no label column '{missing[0]}' (label columns: "
                f"{', '.join(reader.label_names) or 'none'})",
            )
        if config["task"] == "denoise" and not reader.has_targets:
            raise InputError(path, "has no 'targets' (clean images)")


# ---------------------------------------------------------------------------------- config


def new_config(spec, opts, info, training, history):
    """A fresh run config: ``opts`` are :func:`model_options`."""
    from galtools import models
    from galtools.train.data import image_norm

    task = task_of(spec, opts, info)
    if task not in models.TASKS:
        raise GalError(f"model {spec.name} declares unknown task '{task}'")
    cols, class_names = columns(task, spec, opts, info)
    target = _target(spec)
    conditions = [
        name
        for decl in spec.columns
        if decl.role == "condition"
        for name in _names(opts.get(decl.option))
    ]
    info.extra["conditions"] = conditions  # as before options were declared (older plugins)
    config = {
        "format": RUN_FORMAT,
        "version": 1,
        "model": spec.name,
        "task": task,
        "abilities": sorted(spec.abilities),
        "target": opts.get(target.option) if target else None,
        "class_names": class_names,
        "conditions": conditions,
        "columns": cols,
        "input_shape": None if task == "denoise" else list(info.image_shape),
        "bands": list(info.bands),
        "norm": image_norm(info.paths[0], "range" if task == "gan" else "std"),
        "training": training,
        "history": [history] if history else [],
    }
    config["model_config"] = spec.configure(opts, info)
    return config


def check_resume(config, spec, training, info, run_dir):
    """GalError unless the run in ``run_dir`` (its ``config``) can continue with these settings."""
    if config["model"] != spec.name:
        raise GalError(
            f"{run_dir}: holds a '{config['model']}' run, not '{spec.name}' "
            "(use --restart to replace it, or another -o)"
        )
    if callable(getattr(spec, "check_resume", None)):  # e.g. a run of an older architecture
        spec.check_resume(config, run_dir)
    old = config["training"]
    for key in RESUME_KEYS:
        before = old.get(key, _before(config, key, training))
        now = training.get(key, RESUME_DEFAULTS.get(key))
        if before != now:
            raise GalError(
                f"{run_dir}: was trained with {key}={before!r}, now {now!r} "
                "(use --restart to start over)"
            )
    shape = config["input_shape"]
    if shape is not None and tuple(shape) != tuple(info.image_shape):
        raise GalError(f"{run_dir}: model takes images {tuple(shape)}, data has {info.image_shape}")


def _before(config, key, training):
    """What a run whose config lacks ``key`` was trained with: a model's own average had its
    decay in ``model_config``; the old loop's ``--patience`` was a plateau schedule."""
    if key == "ema" and "ema" in (config.get("model_config") or {}):
        return config["model_config"]["ema"]
    if key == "schedule" and training.get(key) == "plateau":
        return "plateau"
    return RESUME_DEFAULTS.get(key)


def prepare_run(run_dir, spec, opts, info, training, history, restart):
    """Create, reuse or replace RUN; return (config, resuming)."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise GalError(f"{run_dir}: exists and is not a run directory")
    if os.path.isdir(run_dir) and os.listdir(run_dir):
        if not os.path.exists(os.path.join(run_dir, "config.json")):
            raise GalError(
                f"{run_dir}: directory exists and is not a run (no config.json); "
                "refusing to write into it"
            )
        config = read_config(run_dir, ("model", "training", "input_shape"))  # a real run only
        if not restart:
            check_resume(config, spec, training, info, run_dir)
            old = config["training"]  # (a resume key it lacks was checked equal to its default)
            old.update({k: v for k, v in training.items() if k not in RESUME_KEYS or k not in old})
            if history:
                config.setdefault("history", []).append(history)
            write_config(run_dir, config)
            return config, True
        config = new_config(spec, opts, info, training, history)  # may fail: nothing lost yet
        for name in RUN_FILES:
            path = os.path.join(run_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.unlink(path)
        write_config(run_dir, config)
        return config, False
    config = new_config(spec, opts, info, training, history)
    os.makedirs(run_dir, exist_ok=True)
    write_config(run_dir, config)
    return config, False
