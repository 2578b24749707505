"""The training loop's hooks: each concern of a run is a small class the loop calls, as Keras'
``fit`` calls its callbacks.

The loop (:class:`galtools.train.loop._Steps`) steps the model and calls, in list order:
``start(loop)`` once, ``before_step(loop, step)`` and ``after_step(loop, done, logs)`` around
every step, ``evaluated(loop, ev, p)`` after every file visit (``ev``: the validation figures;
``p``: the pass just completed, or None), ``end(loop)`` when the plan is done or a hook stopped
it, and ``close()`` always.  A hook with a ``name`` keeps ``state()`` (JSON-able) in every
checkpoint and gets it back through ``load(state)`` before ``start`` when a run continues.
Hooks decide alike on every process (the loop gives them the same figures), so the ranks of a
data-parallel run stop and save at the same step.  A model adds hooks of its own with
``ModelSpec.hooks(config)``.

What a hook may use of ``loop``: ``model``, ``spec``, ``config``, ``tr`` (the run's training
settings), ``plan``, ``metrics`` (metrics.json being built), ``done`` (steps done), ``lr``,
``clock`` (seconds waiting for data / stepping since the last record), ``record`` (the record
written at this step, or None), ``main`` (rank 0), ``write(fn, ...)`` (a file write of rank 0),
``log(message)``, ``stop_early(reason)``, ``variables`` and ``ckpt_dir``.
"""

import math
import os
import time

import numpy as np

from galtools.errors import GalError
from galtools.progress import detail
from galtools.train import checkpoint, recipe


class Hook:
    """A concern of the training loop; every method does nothing unless overridden."""

    name = ""  # key of this hook's state in a checkpoint ("": it keeps none)

    def state(self):
        return None

    def load(self, state):
        pass

    def start(self, loop):
        pass

    def before_step(self, loop, step):
        pass

    def after_step(self, loop, done, logs):
        pass

    def evaluated(self, loop, ev, p):
        pass

    def end(self, loop):
        pass

    def close(self):
        pass


class NanGuard(Hook):
    """Stops the run at the first step whose loss is not finite (every step, not only the
    logged ones: the checkpoint before it is still good)."""

    def after_step(self, loop, done, logs):
        for key, value in logs.items():
            if "loss" in key and not math.isfinite(float(value)):
                raise GalError(
                    f"{key} became {float(value)} at step {done} (the last checkpoint is "
                    "before it; try a smaller --lr or --clip)"
                )


class Recorder(Hook):
    """metrics.json's step records every ``every`` steps (and at each file visit's end): mean
    losses, throughput, learning rate, data wait; warns once when the input pipeline waits
    more than 10 % of the training time."""

    def __init__(self, every):
        self.every = max(1, int(every))
        self.acc, self.n, self.counts = {}, 0, [0, 0]
        self.warned = False

    def start(self, loop):
        self.t_rec = time.time()
        self.cpu0 = time.process_time()
        self.ends = dict(loop.plan.segment_ends())

    def after_step(self, loop, done, logs):
        loop.record = None
        for k, v in logs.items():
            self.acc[k] = self.acc.get(k, 0.0) + float(v)
        self.n += 1
        self.counts[loop.batch_seg is None] += 1
        if not (done % self.every == 0 or done in self.ends or done == loop.plan.total):
            return
        clock, n = loop.clock, self.n
        now = time.time()
        rec = {
            "step": done,
            "batch_file": loop.batch_path,
            "wall": round(loop.wall(), 3),
            "cpu_s": round(time.process_time() - self.cpu0, 3),
            "images_per_s": round(n * loop.tr["batch_size"] / max(now - self.t_rec, 1e-9), 2),
            "main_batches": self.counts[0],
            "mix_batches": self.counts[1],
            "lr": loop.lr,
            "data_wait_s": round(clock["wait"] / n, 6),
            "step_s": round(clock["step"] / n, 6),
        }
        if clock["wait"] > 0.1 * clock["step"] and not self.warned:
            self.warned = True  # once per invocation: the log stays readable
            loop.log(
                f"warning: steps {done - n + 1}-{done} waited {clock['wait']:.3g} s for data "
                f"against {clock['step']:.3g} s of training (> 10 %): the input pipeline "
                "limits speed"
            )
        seg = loop.batch_seg
        if seg is not None:
            rec.update({"pass": seg[0], "file": seg[1], "epoch": seg[2]})
        rec.update({k: v / n for k, v in self.acc.items()})
        loop.metrics["steps"].append(rec)
        detail(f"step {done}/{loop.plan.total} loss {rec.get('loss', float('nan')):.4g}")
        loop.log(f"step {done} loss {rec.get('loss', float('nan')):.5g}")
        loop.record = rec
        loop.record_clock = dict(clock)
        self.acc, self.n, self.counts, self.t_rec = {}, 0, [0, 0], time.time()
        clock.update(wait=0.0, step=0.0)


class TensorBoard(Hook):
    """TensorBoard event files in RUN/tensorboard (rank 0): the step records, validation
    figures, learning rate, data-wait fraction and each pass's montage of samples."""

    def __init__(self):
        self.writer = None

    def start(self, loop):
        if not loop.main:
            return
        from galtools.train.events import EventWriter

        self.writer = EventWriter(os.path.join(loop.run_dir, "tensorboard"))
        self.writer.start(loop.done)

    def after_step(self, loop, done, logs):
        rec = loop.record
        if self.writer is None or rec is None:
            return
        clock = loop.record_clock
        busy = clock["wait"] + clock["step"]
        skip = {"step", "batch_file", "wall", "cpu_s", "images_per_s", "main_batches"}
        skip |= {"mix_batches", "lr", "data_wait_s", "step_s", "pass", "file", "epoch"}
        scalars = {f"train/{k}": v for k, v in rec.items() if k not in skip}
        scalars.update(
            lr=rec["lr"],
            data_wait_fraction=clock["wait"] / busy if busy > 0 else 0.0,
            images_per_s=rec["images_per_s"],
        )
        loop.write(self.writer.scalars, done, scalars)

    def evaluated(self, loop, ev, p):
        if self.writer is None:
            return
        scalars = {f"val/{k[4:]}": v for k, v in ev.items() if k.startswith("val_")}
        loop.write(self.writer.scalars, loop.done, scalars)
        if p is not None:
            path = os.path.join(loop.run_dir, "samples", f"pass-{p + 1:03d}.png")
            if os.path.isfile(path):
                with open(path, "rb") as fh:
                    loop.write(self.writer.image, loop.done, "samples", fh.read())

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def monitored(ev):
    """(name, value) of the figure a run improves on (lower is better), or None."""
    for key in ("val_loss", "val_rmse", "val_mse"):
        if key in ev:
            return key, float(ev[key])
    return None


class LearningRate(Hook):
    """The learning rate of every step: warm-up, then cosine or flat; ``plateau`` halves it
    after ``patience`` evaluations without improvement (of the validation figure, else of the
    mean of the last logged losses).  Set through ``spec.set_lr`` only when it changes, and
    not at all where the optimizers compute it from their step counter
    (:func:`galtools.train.recipe.optimizer`): assigning it between compiled steps would
    compile the step again."""

    name = "lr"

    def __init__(self, base, schedule, warmup=0.0, patience=None):
        self.base, self.schedule, self.warmup = base, schedule, warmup
        self.patience = patience if schedule == "plateau" else None
        self.scale, self.best, self.wait = 1.0, None, 0
        self.current = None  # what the optimizers hold
        self.scheduled = False  # they compute it themselves

    def state(self):
        return {"scale": self.scale, "best": self.best, "wait": self.wait}

    def load(self, state):
        if state:
            self.scale, self.best, self.wait = state["scale"], state["best"], state["wait"]

    def at(self, step, total):
        lr = recipe.learning_rate(step, total, self.base, self.schedule, self.warmup)
        return lr * self.scale

    def _set(self, loop, lr):
        if lr != self.current and not self.scheduled:
            loop.spec.set_lr(loop.model, lr)
            self.current = lr
        loop.lr = lr

    def start(self, loop):
        from keras.optimizers.schedules import LearningRateSchedule

        opts = loop.spec.optimizers(loop.model) if loop.model is not None else []
        inner = [getattr(o, "inner_optimizer", o) for o in opts]  # mixed_float16's wrapper
        self.scheduled = bool(inner) and all(
            isinstance(getattr(o, "_learning_rate", None), LearningRateSchedule) for o in inner
        )
        self._set(loop, self.at(loop.done, loop.plan.total))

    def before_step(self, loop, step):
        self._set(loop, self.at(step, loop.plan.total))

    def evaluated(self, loop, ev, p):
        if not self.patience:
            return
        found = monitored(ev)
        if found is None:
            recent = [r["loss"] for r in loop.metrics["steps"][-5:] if "loss" in r]
            found = ("loss", float(np.mean(recent))) if recent else None
        if found is None:
            return
        value = found[1]
        if self.best is None or value < self.best * (1 - 1e-4):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.scale *= 0.5
            self.wait = 0
            lr = self.at(min(loop.done, loop.plan.total - 1), loop.plan.total)
            self._set(loop, lr)
            loop.log(f"plateau: learning rate → {lr:.3g}")
            detail(f"learning rate reduced to {lr:.3g}")


class EarlyStop(Hook):
    """Stops after ``patience`` evaluations without a better validation figure and restores
    the weights of the best one (also at the natural end of the run): what is saved, scored
    and checkpointed last is the best evaluated model.  Its weights wait in
    ``checkpoints/best.npz`` (rank 0 writes it; a continued run reads it)."""

    name = "early_stop"

    def __init__(self, patience):
        self.patience = int(patience)
        self.best, self.best_step, self.wait, self.stopped = None, None, 0, None
        self.arrays = None  # the best variables' values, once seen in this process

    def state(self):
        return {
            "best": self.best,
            "best_step": self.best_step,
            "wait": self.wait,
            "stopped": self.stopped,
        }

    def load(self, state):
        if state:
            self.best, self.best_step = state["best"], state["best_step"]
            self.wait, self.stopped = state["wait"], state["stopped"]

    def path(self, loop):
        return os.path.join(loop.ckpt_dir, "best.npz")

    def start(self, loop):
        if not loop.val:
            raise GalError("--early-stop needs --val FILE (the figure it watches)")

    def evaluated(self, loop, ev, p):
        found = monitored(ev)
        if found is None:
            return
        key, value = found
        if self.best is None or value < self.best * (1 - 1e-4):
            self.best, self.best_step, self.wait = value, loop.done, 0
            self.arrays = [np.array(v) for v in checkpoint.values(loop.variables)]
            loop.write(checkpoint.write, self.path(loop), self.arrays, self.state())
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped = loop.done
            loop.stop_early(
                f"early stop at step {loop.done}: {key} has not improved for {self.wait} "
                f"evaluations (best {self.best:.5g} at step {self.best_step})"
            )

    def end(self, loop):
        if self.best_step is None or self.best_step == loop.done:
            return
        arrays = self.arrays
        if arrays is None:
            loop.sync("the best weights")
            try:
                arrays, _ = checkpoint.read(self.path(loop), loop.variables)
            except ValueError as exc:
                raise GalError(f"{self.path(loop)}: unreadable ({exc}); use --restart") from None
        checkpoint.assign(loop.variables, arrays)
        loop.log(f"restored the best weights (step {self.best_step}, {self.best:.5g})")


class Samples(Hook):
    """A montage of generated stamps after each pass of a generating model."""

    def evaluated(self, loop, ev, p):
        if p is not None:
            loop.samples(p)


class Checkpoints(Hook):
    """A checkpoint after every file visit and every ``every`` steps (0: visits only); the
    networks after every pass."""

    def __init__(self, every):
        self.every = int(every or 0)

    def start(self, loop):
        self.ends = dict(loop.plan.segment_ends())

    def after_step(self, loop, done, logs):
        if self.every and done % self.every == 0 and done not in self.ends:
            loop.save_ckpt(done)

    def evaluated(self, loop, ev, p):
        if p is not None:
            loop.save_networks()
        loop.save_ckpt(loop.done)


def standard(spec, config, settings):
    """The hooks of a run, in calling order: the spec's own come before the checkpoints (so
    that their state is in each one)."""
    tr = config["training"]
    hooks = [
        NanGuard(),
        LearningRate(tr["lr"], tr["schedule"], tr["warmup"], tr.get("patience")),
        Recorder(settings.log_every),
    ]
    if tr.get("early_stop"):
        hooks.append(EarlyStop(tr["early_stop"]))
    if "generates" in spec.abilities:
        hooks.append(Samples())
    if settings.tensorboard:
        hooks.append(TensorBoard())  # after Samples: it shows their montage
    hooks.extend(spec.hooks(config))
    hooks.append(Checkpoints(settings.checkpoint_every))
    names = [h.name for h in hooks if h.name]
    if len(names) != len(set(names)):
        raise GalError(f"model {spec.name}: two training hooks share a name ({', '.join(names)})")
    return hooks
