"""``train-batch``: train a registered model from disk into a run directory, resumably.

:mod:`~galtools.train.rundir` sets up (or resumes) the run directory, this module steps the
keras models through the plan of :mod:`~galtools.train.data` (closed-form models:
:mod:`~galtools.train.closed_form`), validates (:mod:`~galtools.train.evaluate`), checkpoints
and stops cleanly on a signal.

Exit status: 0 done; 1 error; **75 (EX_TEMPFAIL) = preempted**: SIGTERM or SIGUSR1 arrived,
the step in progress finished, a checkpoint was written, and running the same command again
continues from it (a batch script requeues itself on 75, see examples/train_requeue.sbatch).
"""

import json
import os
import shutil
import signal
import threading
import time

import numpy as np

from galtools import models
from galtools.errors import GalError, InputError
from galtools.progress import detail, progress, say
from galtools.train import checkpoint, closed_form, report, rundir
from galtools.train.data import Plan, Producer, survey
from galtools.train.evaluate import plateau, set_lr, validate

PREEMPTED = 75  # EX_TEMPFAIL from sysexits.h: "try again later"


class Preempted(GalError):
    """Stopped by a signal after saving a checkpoint: run the same command to continue."""

    exit_code = PREEMPTED


class StopFlag:
    """Remember SIGTERM/SIGUSR1 instead of dying; the loop checks after every batch."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.signum = None
        self._old = {}

    def _handler(self, signum, frame):
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


# ---------------------------------------------------------------------------------- training


def train(
    data,
    run_dir,
    model,
    opts=None,
    val=None,
    mix=None,
    alpha=0.5,
    passes=1,
    epochs=1,
    batch_size=32,
    lr=1e-3,
    seed=0,
    restart=False,
    keep=3,
    checkpoint_every=0,
    log_every=10,
    patience=None,
    history=None,
):
    """Train model ``model`` on DATA files into ``run_dir``; return the final metrics dict.

    ``opts``: the model's options by name (those its spec declares, e.g. ``target``; checked
    and converted like the command line's) and ``init_from`` / ``freeze_until``.
    """
    models.quiet_tensorflow()
    spec = models.get(model)
    opts = rundir.model_options(spec, dict(opts or {}))
    data = [os.fspath(p) for p in data]
    if "-" in data + [val, mix]:
        raise GalError("train-batch reads its inputs several times: give files, not '-'")
    info = survey(data)
    if mix is not None and not 0 <= alpha < 1:
        raise GalError(f"--alpha must be in [0, 1), got {alpha}")
    training = {
        "data": data,
        "val": val,
        "mix": mix,
        "alpha": alpha if mix else 0.0,
        "passes": passes,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "keep": keep,
        "init_from": opts.get("init_from"),
        "freeze_until": opts.get("freeze_until"),
    }
    mix_info = None
    if mix:
        mix_info = survey([mix], "--mix")
        if mix_info.image_shape != info.image_shape:
            raise InputError(mix, f"images are {mix_info.image_shape}, DATA has {info.image_shape}")
    if val:
        val_info = survey([val], "--val")
        if val_info.image_shape != info.image_shape and spec.task != "denoise":
            raise InputError(val, f"images are {val_info.image_shape}, DATA has {info.image_shape}")
    created = not os.path.exists(run_dir)
    try:
        config, resuming = rundir.prepare_run(run_dir, spec, opts, info, training, history, restart)
        for extra in filter(None, (mix, val)):
            rundir.check_columns(extra, config)
        if getattr(spec, "kind", "keras") == "closed-form":
            return closed_form.fit(spec, config, run_dir, info, val)
        return _train_keras(
            spec, config, run_dir, info, mix_info, val, resuming, checkpoint_every, log_every,
            patience,
        )  # fmt: skip
    except BaseException:
        # a run that this call created and that has nothing worth keeping goes away
        if (
            created
            and os.path.isdir(run_dir)
            and not checkpoint.listing(os.path.join(run_dir, "checkpoints"))
        ):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _variables(model):
    if hasattr(model, "checkpoint_variables"):
        return model.checkpoint_variables()
    model.optimizer.build(model.trainable_variables)
    return list(model.weights) + list(model.optimizer.variables)


def _init_from(model, source, freeze_until):
    """Copy weights by layer name from an earlier run; freeze layers up to ``freeze_until``."""
    names = [layer.name for layer in model.layers]
    if source:
        from galtools.runs import load_run

        src = load_run(source).keras_model()
        copied = 0
        own = {layer.name: layer for layer in model.layers}
        for layer in src.layers:
            mine = own.get(layer.name)
            if mine is None or not layer.weights:
                continue
            theirs = layer.get_weights()
            if [w.shape for w in theirs] == [tuple(w.shape) for w in mine.weights]:
                mine.set_weights(theirs)
                copied += 1
        if not copied:
            raise GalError(f"--init-from {source}: no layer of that run fits this model")
        say(f"initialised {copied} layers from {source}")
    if freeze_until:
        if freeze_until not in names:
            raise GalError(
                f"--freeze-until: no layer '{freeze_until}' (layers: {', '.join(names)})"
            )
        for layer in model.layers[: names.index(freeze_until) + 1]:
            layer.trainable = False


def _train_keras(
    spec,
    config,
    run_dir,
    info,
    mix_info,
    val,
    resuming,
    checkpoint_every,
    log_every,
    patience,
):
    """Step through the plan from the last checkpoint; evaluate, save and checkpoint after
    each segment (and every ``checkpoint_every`` steps); stop cleanly on SIGTERM/SIGUSR1."""
    import keras

    tr = config["training"]
    plan = Plan(
        info, tr["batch_size"], tr["passes"], tr["epochs"], tr["seed"], mix_info, tr["alpha"]
    )
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    metrics_path = os.path.join(run_dir, "metrics.json")
    keras.utils.set_random_seed(tr["seed"])
    model = spec.build(config)
    fresh = not resuming or not checkpoint.listing(ckpt_dir)  # else weights come from there
    _init_from(model, tr.get("init_from") if fresh else None, tr.get("freeze_until"))
    variables = _variables(model)
    state = checkpoint.restore(ckpt_dir, variables) if resuming else None
    start = state["step"] if state else 0
    metrics = _load_metrics(metrics_path, start) if state else {}
    metrics.update(
        model=spec.name,
        task=config["task"],
        total_steps=plan.total,
        batch_size=tr["batch_size"],
        status="running",
    )
    for key in ("steps", "evals", "passes"):
        metrics.setdefault(key, [])
    patience = patience if patience is not None else getattr(spec, "patience", None)
    plateau_state = (state or {}).get("plateau") or {"best": None, "wait": 0}
    lr = (state or {}).get("lr", tr["lr"])
    set_lr(model, lr)
    wall0 = (state or {}).get("wall", 0.0)
    if start >= plan.total:
        say(
            f"{run_dir}: already trained {start} of {plan.total} steps (more --passes to go "
            "on, --restart to start over)"
        )
        spec.save(model, run_dir)
        return metrics
    if start:
        say(f"resuming {run_dir} at step {start} of {plan.total}")
        keras.utils.set_random_seed(tr["seed"] + start)
    report.log(run_dir, f"{'resume' if start else 'start'} {spec.name} step {start}/{plan.total}")
    ends = dict(plan.segment_ends())
    pass_ends = {step: p for p, step in plan.pass_ends().items()}
    bs = tr["batch_size"]
    t_start, cpu_start = time.time(), time.process_time()

    def wall():
        return wall0 + time.time() - t_start

    def save_ckpt(step):
        checkpoint.save(
            ckpt_dir,
            step,
            variables,
            {"lr": lr, "plateau": plateau_state, "wall": wall()},
            tr["keep"],
        )
        metrics["step"] = step
        report.write_json(metrics_path, metrics)

    producer = Producer(plan, config, start)
    clock = {"wait": 0.0, "step": 0.0}  # seconds waiting for batches / in train_on_batch
    warned = False
    acc, n_acc, counts = {}, 0, [0, 0]
    t_rec = time.time()
    bar = progress(total=plan.total - start, desc=f"train {spec.name}", unit="step")
    step = start
    try:
        with StopFlag() as flag:
            for step, path, seg, x, y in timed(producer, clock):
                t_step = time.perf_counter()
                logs = model.train_on_batch(x, y, return_dict=True)
                clock["step"] += time.perf_counter() - t_step
                for k, v in logs.items():
                    acc[k] = acc.get(k, 0.0) + float(v)
                n_acc += 1
                counts[seg is None] += 1
                done = step + 1
                bar.update(1)
                seg_end = ends.get(done)
                if done % log_every == 0 or seg_end or done == plan.total:
                    now = time.time()
                    rec = {
                        "step": done,
                        "batch_file": path,
                        "wall": round(wall(), 3),
                        "cpu_s": round(time.process_time() - cpu_start, 3),
                        "images_per_s": round(n_acc * bs / max(now - t_rec, 1e-9), 2),
                        "main_batches": counts[0],
                        "mix_batches": counts[1],
                        "lr": lr,
                        "data_wait_s": round(clock["wait"] / n_acc, 6),
                        "step_s": round(clock["step"] / n_acc, 6),
                    }
                    if clock["wait"] > 0.1 * clock["step"] and not warned:
                        warned = True  # once per invocation: the log stays readable
                        report.log(
                            run_dir,
                            f"warning: steps {done - n_acc + 1}-{done} waited "
                            f"{clock['wait']:.3g} s for data against {clock['step']:.3g} s "
                            "of training (> 10 %): the input pipeline limits speed",
                        )
                    if seg is not None:
                        rec.update({"pass": seg[0], "file": seg[1], "epoch": seg[2]})
                    rec.update({k: v / n_acc for k, v in acc.items()})
                    metrics["steps"].append(rec)
                    if not np.isfinite(rec.get("loss", 0.0)):
                        raise GalError(
                            f"loss became {rec['loss']} at step {done} (try a smaller --lr)"
                        )
                    detail(f"step {done}/{plan.total} loss {rec.get('loss', float('nan')):.4g}")
                    report.log(run_dir, f"step {done} loss {rec.get('loss', float('nan')):.5g}")
                    acc, n_acc, counts, t_rec = {}, 0, [0, 0], time.time()
                    clock.update(wait=0.0, step=0.0)
                if seg_end:
                    ev = {
                        "step": done,
                        "pass": seg_end[0],
                        "file": seg_end[1],
                        "epoch": seg_end[2],
                        "wall": round(wall(), 3),
                    }
                    if val:
                        ev.update(validate(model, config, val, bs))
                    metrics["evals"].append(ev)
                    lr = plateau(model, plateau_state, patience, ev, metrics["steps"], lr, run_dir)
                    if done in pass_ends:
                        p = pass_ends[done]
                        metrics["passes"].append({"pass": p, "step": done, "wall": ev["wall"]})
                        _samples(model, spec, config, run_dir, p)
                        spec.save(model, run_dir)
                        say(
                            f"pass {p + 1}/{tr['passes']} done (step {done}/{plan.total})"
                            + "".join(
                                f", {k} {v:.4g}" for k, v in ev.items() if k.startswith("val_")
                            )
                        )
                    save_ckpt(done)
                elif checkpoint_every and done % checkpoint_every == 0:
                    save_ckpt(done)
                if flag.signum is not None and done < plan.total:
                    save_ckpt(done)
                    metrics["status"] = "preempted"
                    report.write_json(metrics_path, metrics)
                    name = signal.Signals(flag.signum).name
                    report.log(run_dir, f"{name}: checkpoint at step {done}; exit {PREEMPTED}")
                    raise Preempted(
                        f"{name} at step {done}/{plan.total}: checkpoint saved in "
                        f"{run_dir}; run the same command to continue "
                        f"(exit {PREEMPTED})"
                    )
    finally:
        producer.close()
        bar.close()
    spec.save(model, run_dir)
    metrics["status"] = "finished"
    metrics["step"] = plan.total
    metrics["wall"] = round(wall(), 3)
    report.write_json(metrics_path, metrics)
    report.plot_curves(os.path.join(run_dir, "curves.png"), metrics)
    report.log(run_dir, f"finished {plan.total} steps in {metrics['wall']:.1f} s")
    return metrics


def timed(batches, clock):
    """``batches`` as they come, adding the seconds spent waiting for each to clock["wait"]."""
    it = iter(batches)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        clock["wait"] += time.perf_counter() - t0
        yield item


def _samples(model, spec, config, run_dir, p):
    """A montage of 16 generated stamps (fixed noise) after each pass of a generating model."""
    if "generates" not in spec.abilities:
        return
    from galtools.montage import save_montage

    rng = np.random.default_rng(config["training"]["seed"])
    z = rng.normal(size=(16, config["model_config"]["latent_dim"])).astype(np.float32)
    inputs = z
    if config.get("conditions"):
        grid = np.linspace(-1, 1, 4, dtype=np.float32)[:, None]
        inputs = [z, np.tile(grid, (4, len(config["conditions"])))]
    images = np.asarray(model.generator.predict_on_batch(inputs))
    os.makedirs(os.path.join(run_dir, "samples"), exist_ok=True)
    save_montage(os.path.join(run_dir, "samples", f"pass-{p + 1:03d}.png"), images, columns=4)


def _load_metrics(path, step):
    """metrics.json cut back to ``step`` (the checkpoint being resumed)."""
    try:
        with open(path) as fh:
            metrics = json.load(fh)
    except (OSError, ValueError):
        return {}
    metrics["steps"] = [r for r in metrics.get("steps", []) if r["step"] <= step]
    metrics["evals"] = [r for r in metrics.get("evals", []) if r["step"] <= step]
    metrics["passes"] = [r for r in metrics.get("passes", []) if r["step"] <= step]
    return metrics
