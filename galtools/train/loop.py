"""``train-batch``: train a registered model from disk into a run directory, resumably.

:mod:`~galtools.train.rundir` sets up (or resumes) the run directory, this module steps the
keras models through the plan of :mod:`~galtools.train.data` (closed-form models:
:mod:`~galtools.train.closed_form`) and validates (:mod:`~galtools.train.evaluate`); all
else is a hook of :mod:`~galtools.train.hooks` (recording, NaN guard, learning rate, early
stop, samples, TensorBoard, checkpoints), called in order around every step.

A checkpoint holds every piece of state a step uses: the weights, the optimizers' state (the
moving average of the weights included), the random generators' states (Dropout's seeds,
a model's own noise) and each hook's state; the batches and their augmentation are functions
of (seed, step).  So a run stopped at any step and continued ends with the weights of one
that was never stopped (tests/test_resume_exact.py).

Exit status: 0 done; 1 error; **75 (EX_TEMPFAIL) = preempted**: SIGTERM or SIGUSR1 arrived,
the step in progress finished, a checkpoint was written, and running the same command again
continues from it (a batch script requeues itself on 75, see examples/train_requeue.sbatch).

``distribute="data"`` (:mod:`~galtools.train.distributed`) trains on every device of every
process with Keras' DataParallel on the JAX backend: each process reads only its share of each
global batch, rank 0 alone writes the run's files and talks, and the ranks agree after every
step whether one of them got a signal, so that all stop at the same step.  The variable
``GALPREP_TRACE_ROWS=DIR`` makes every rank append the file rows of each of its batches to
``DIR/rows-RANK.jsonl`` (a check that the ranks' shares are disjoint and complete).  A model
with a ``train_on_batch`` of its own must split batches itself and say so (``splits_batches =
True``) to train on more than one device.
"""

import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

import numpy as np

from galtools import models
from galtools.errors import GalError, InputError
from galtools.progress import progress, say
from galtools.settings import state as settings_state
from galtools.train import checkpoint, closed_form, distributed, hooks, recipe, report, rundir
from galtools.train import precision as prec
from galtools.train.data import OnTheFly, Plan, Producer, check_augment, survey
from galtools.train.evaluate import validate
from galtools.train.precision import CHOICES as PRECISION_CHOICES
from galtools.train.precision import PRECISIONS

PREEMPTED = 75  # EX_TEMPFAIL from sysexits.h: "try again later"
TRACE_ENV = "GALPREP_TRACE_ROWS"


class Preempted(GalError):
    """Stopped by a signal after saving a checkpoint: run the same command to continue."""

    exit_code = PREEMPTED


class StopFlag:
    """Remember SIGTERM/SIGUSR1 instead of dying; the loop checks before every batch."""

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


@contextlib.contextmanager
def precision_policy(name):
    """Keras' global dtype policy ``name`` inside; the caller's again afterwards."""
    import keras

    saved = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name or "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(saved)


@contextlib.contextmanager
def tensorflow_hidden():
    """Keras told that TensorFlow is not installed, on another backend and while TensorFlow is
    not imported yet (else nothing changes).

    Keras imports TensorFlow whenever it is installed to seed it (``set_random_seed``, for
    tf.data pipelines this loop does not use) and to recognise its types while saving a
    model, on the JAX backend too: ten seconds and chatter on stderr per process, and a
    second framework on a GPU machine, for nothing here.
    """
    import sys

    import keras

    lazy = None
    if keras.backend.backend() != "tensorflow" and "tensorflow" not in sys.modules:
        try:
            from keras.src.utils import module_utils

            lazy = module_utils.tensorflow
            saved = lazy._available
        except (ImportError, AttributeError):
            lazy = None
    if lazy is None:
        yield
        return
    lazy._available = False
    try:
        yield
    finally:
        lazy._available = saved


def set_seed(seed):
    """``keras.utils.set_random_seed`` (without importing TensorFlow on another backend)."""
    import keras

    with tensorflow_hidden():
        keras.utils.set_random_seed(seed)


# ---------------------------------------------------------------------------------- training


def train(data, run_dir, model, opts=None, settings=None, history=None, **changes):
    """Train model ``model`` on DATA files into ``run_dir``; return the final metrics dict.

    ``settings``: a :class:`~galtools.train.recipe.Settings` (default: ``train-batch``'s
    defaults), ``changes``: settings by name on top of it (``epochs=3, lr=1e-3``...).
    ``opts``: the model's options by name (those its spec declares, e.g. ``target``; checked
    and converted like the command line's) and ``init_from`` / ``freeze_until``.
    ``distribute``: None or ``"data"`` (data-parallel on the JAX backend, chosen here when
    Keras is not imported yet; ``batch_size`` is then the global batch).  ``precision``: one
    of :data:`PRECISION_CHOICES` (Keras' dtype policy while training; ``auto``: bfloat16 where
    the hardware computes in it; the saved networks compute in float32).
    """
    s = (settings or recipe.DEFAULTS).replace(**changes)
    distributed.use_backend(s.distribute)  # before Keras is imported
    if s.precision not in PRECISION_CHOICES:
        raise GalError(
            f"--precision must be one of {', '.join(PRECISION_CHOICES)}, got {s.precision!r}"
        )
    launch = distributed.meet(s.distribute, s.batch_size)  # the processes meet, or one line
    models.quiet_tensorflow()
    spec = models.get(model)
    opts = rundir.model_options(spec, dict(opts or {}))
    data = [os.fspath(p) for p in data]
    val, mix = s.val, s.mix
    if "-" in data + [val, mix]:
        raise GalError("train-batch reads its inputs several times: give files, not '-'")
    info = survey(data)
    if mix is not None and not 0 <= s.alpha < 1:
        raise GalError(f"--alpha must be in [0, 1), got {s.alpha}")
    keras_kind = spec.kind != "closed-form"
    allowed = spec.precisions or PRECISIONS
    if s.precision not in allowed and s.precision != "auto":
        raise GalError(
            f"--precision {s.precision}: model {spec.name} trains in {' or '.join(allowed)} only"
        )
    if s.distribute and not keras_kind:
        raise GalError(
            f"--distribute {s.distribute}: {spec.name} is fitted in closed form in one pass, "
            "not trained step by step"
        )
    mix_info = None
    if mix:
        mix_info = survey([mix], "--mix")
        if mix_info.image_shape != info.image_shape:
            raise InputError(mix, f"images are {mix_info.image_shape}, DATA has {info.image_shape}")
    if val:
        val_info = survey([val], "--val")
        if val_info.image_shape != info.image_shape and spec.task != "denoise":
            raise InputError(val, f"images are {val_info.image_shape}, DATA has {info.image_shape}")
    rec = recipe.resolve(s, spec) if keras_kind else {}
    training = {
        "data": data,
        "val": val,
        "mix": mix,
        "alpha": s.alpha if mix else 0.0,
        "passes": s.passes,
        "epochs": s.epochs,
        "batch_size": s.batch_size,
        "lr": rec.get("lr", recipe.GENERAL["lr"]),
        "seed": s.seed,
        "keep": s.keep,
        "init_from": opts.get("init_from"),
        "freeze_until": opts.get("freeze_until"),
        "precision": s.precision,
        "distribute": s.distribute,
        "tensorboard": bool(s.tensorboard),
        **rec,
    }
    if keras_kind:
        plan = Plan(info, s.batch_size, s.passes, s.epochs, s.seed, mix_info, training["alpha"])
        training["steps"] = plan.total  # the schedule's length
        training["ema_used"] = recipe.ema_decay(rec["ema"], plan.total)
        if rec["augment"]:
            check_augment(spec, rec["augment"], {"task": rundir.task_of(spec, opts, info)})
    cluster = distributed.start(s.distribute, s.batch_size, launch)  # nothing written before
    if keras_kind:
        training["precision"] = _precision(s.precision, allowed, run_dir, s.restart, cluster)
    created = not os.path.exists(run_dir)
    quiet = settings_state.quiet
    if not cluster.main:
        settings_state.quiet = True  # progress and chatter on rank 0 only
    try:

        def prepare():
            config, resuming = rundir.prepare_run(
                run_dir, spec, opts, info, training, history, s.restart
            )
            for extra in filter(None, (mix, val)):
                rundir.check_columns(extra, config)
            return config, resuming

        config, resuming = cluster.on_main(prepare)
        if not keras_kind:
            return closed_form.fit(spec, config, run_dir, info, val)
        with cluster.scope(), precision_policy(config["training"].get("precision")):
            return _Steps(spec, config, run_dir, s, cluster).run(plan, resuming)
    except BaseException:
        # a run that this call created and that has nothing worth keeping goes away
        if (
            created
            and cluster.main
            and os.path.isdir(run_dir)
            and not checkpoint.listing(os.path.join(run_dir, "checkpoints"))
        ):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        settings_state.quiet = quiet


def _precision(asked, allowed, run_dir, restart, cluster):
    """The dtype policy of the steps: ``auto`` picks bfloat16 where the hardware computes in
    it (a run started with ``auto`` goes on in what it started with); a warning when the asked
    policy is emulated here."""
    if asked == "auto" and not restart and os.path.exists(os.path.join(run_dir, "config.json")):
        training = rundir.read_config(run_dir).get("training") or {}
        asked = training.get("precision") or rundir.RESUME_DEFAULTS["precision"]
    platform, native = prec.device_platform()
    chosen = prec.resolve(asked, native, allowed)
    note = prec.advice(chosen, platform, native)
    if note and cluster.main:
        print(f"warning: {note}", file=sys.stderr)  # even with -q: it can cost hours
    return chosen


def _variables(model):
    """(every variable a step uses, how many of the last are optional): the weights, the
    optimizers' state, then the random generators' states (Dropout's seeds...), which
    checkpoints of galtools 0.x lack (such a run continues, not exactly)."""
    if hasattr(model, "checkpoint_variables"):
        found = list(model.checkpoint_variables())
    else:
        model.optimizer.build(model.trainable_variables)
        found = list(model.weights) + list(model.optimizer.variables)
    seen = {id(v) for v in found}
    extra = [v for v in model.variables if id(v) not in seen]
    return found + extra, len(extra)


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


def _restore(cluster, ckpt_dir, variables, optional=0):
    """The newest usable checkpoint into ``variables`` on every rank (rank 0 picks it)."""
    if not cluster.multi:
        return checkpoint.restore(ckpt_dir, variables, optional)

    read = {}

    def pick():
        found = checkpoint.newest(ckpt_dir, variables, optional)
        if found is None:
            return None
        read["arrays"] = found[1]  # rank 0 keeps what it read; the others read the same file
        return [found[0], found[2]]

    chosen = cluster.on_main(pick)
    if chosen is None:
        return None
    path, state = chosen
    arrays = read.get("arrays")
    if arrays is None:
        try:
            arrays, _ = checkpoint.read(path, variables, optional)
        except ValueError as exc:
            raise GalError(f"{path}: unreadable on process {cluster.rank} ({exc})") from None
    checkpoint.assign(variables, arrays)
    return state


def _settle(model, variables):
    """Give every variable the form a compiled step returns it in.

    Variables made under a distribution hold arrays without the mesh in their type; the
    first step returns them with it, so the second step would be compiled again (a minute
    for a big model on a GPU).  Passing them once through a compiled copy with their own
    shardings makes the first step's inputs look like every later step's.
    """
    import jax

    seen, found = set(), []
    optimizer = getattr(model, "optimizer", None)
    for v in [
        *variables,
        *model.trainable_variables,
        *model.non_trainable_variables,
        *(optimizer.variables if optimizer is not None else ()),
        *getattr(model, "metrics_variables", ()),
    ]:
        if id(v) not in seen:
            seen.add(id(v))
            found.append(v)
    values = [v.value for v in found]
    shardings = [x.sharding for x in values]
    copied = jax.jit(lambda xs: [x * 1 for x in xs], out_shardings=shardings)(values)
    for v, x in zip(found, copied):
        v.assign(x)


def _check_splits_batches(model, spec, cluster):
    """GalError when ``model`` cannot be trained data-parallel on the cluster's devices.

    Keras' own ``train_on_batch`` turns each process's rows into its share of a global batch;
    a model with a ``train_on_batch`` of its own (the GANs, the diffusion model) that hands
    its numpy batch to a compiled step would give every device the same rows (no speed-up),
    and among several processes different rows as if they were one (replicas drifting apart
    unseen).  Such a model says it splits batches itself with a true ``splits_batches`` attribute.
    """
    import keras

    if cluster.distribution is None or len(cluster.devices) <= 1:
        return
    own = getattr(type(model), "train_on_batch", None) is not keras.Model.train_on_batch
    if own and not getattr(model, "splits_batches", False):
        raise GalError(
            f"--distribute data: model {spec.name} trains with a step of its own that does "
            f"not split batches over devices; it cannot use the {len(cluster.devices)} "
            "devices (train it without --distribute, on one device)"
        )


def _save_networks(spec, model, config, run_dir, cluster):
    """``spec.save`` the trained network(s); under a mixed precision, a float32 copy of them
    (the variables are float32 already), so that the other tools compute in float32."""
    if (config["training"].get("precision") or "float32") == "float32":
        with tensorflow_hidden():
            spec.save(model, run_dir)
        return
    saved = random.getstate(), np.random.get_state()  # building draws seeds: keep training's
    try:
        with cluster.local(), precision_policy("float32"):
            copy = spec.build(config)
            mine, theirs = list(copy.weights), list(model.weights)
            if [tuple(v.shape) for v in mine] != [tuple(v.shape) for v in theirs]:
                raise GalError(f"{spec.name}: its float32 copy has other weights than the model")
            for dst, src in zip(mine, theirs):
                dst.assign(np.asarray(src, np.float32))
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
    with tensorflow_hidden():
        spec.save(copy, run_dir)


class _RowTrace:
    """``GALPREP_TRACE_ROWS=DIR``: each rank's file rows of every batch, one JSON line each."""

    def __init__(self, rank):
        folder = os.environ.get(TRACE_ENV)
        self.fh = None
        if folder:
            os.makedirs(folder, exist_ok=True)
            self.fh = open(os.path.join(folder, f"rows-{rank}.jsonl"), "a")

    def add(self, step, path, rows):
        if self.fh is not None:
            line = {"step": step, "file": path, "rows": np.asarray(rows).tolist()}
            self.fh.write(json.dumps(line) + "\n")

    def close(self):
        if self.fh is not None:
            self.fh.close()


def _describe(model, cluster, tr):
    """What metrics.json records about where and how the steps ran."""
    import keras

    out = cluster.describe()
    out.update(
        backend=keras.backend.backend(),
        precision=tr.get("precision") or "float32",
        jit_compile=bool(getattr(model, "jit_compile", False)),
        global_batch=tr["batch_size"],
        process_batch=tr["batch_size"] // cluster.count,
    )
    return out


class _Steps:
    """One call's training: the model, its run files (rank 0) and the step loop, which calls
    the run's hooks (:mod:`galtools.train.hooks`) for everything but the step itself."""

    def __init__(self, spec, config, run_dir, settings, cluster):
        self.spec, self.config, self.run_dir = spec, config, run_dir
        self.settings, self.cluster = settings, cluster
        self.val = settings.val
        self.main = cluster.main
        self.tr = config["training"]
        self.ckpt_dir = os.path.join(run_dir, "checkpoints")
        self.metrics_path = os.path.join(run_dir, "metrics.json")
        self.failures = []  # errors of rank 0's writes, told to every rank at the next step
        self.scratch = None
        self.record = None  # the step record of the current step (Recorder), or None
        self.record_clock = {"wait": 0.0, "step": 0.0}
        self.clock = {"wait": 0.0, "step": 0.0}  # seconds waiting for batches / stepping
        self.stopped = None  # why a hook ended the run before its plan did
        self.batch_path = self.batch_seg = None

    # ------------------------------------------------------------------- rank 0's files

    def write(self, fn, *args, **kw):
        """A file write of rank 0 (nothing elsewhere), outside the distribution: creating a
        variable under it is a collective (``model.save`` makes a throw-away optimizer) that
        would wait for the other ranks forever, and compiles its initialisers besides.  Among
        several processes an error is kept for the next agreement, where every rank stops
        with it."""
        if not self.main:
            return
        if not self.cluster.multi:
            with self.cluster.local():
                fn(*args, **kw)
            return
        try:
            with self.cluster.local():  # a variable made under the distribution is collective
                fn(*args, **kw)
        except Exception as exc:
            self.failures.append(exc)

    def log(self, message):
        self.write(report.log, self.run_dir, message)

    def sync(self, name, error=None):
        """Every rank waits here; when one failed (a write of rank 0, a read), all stop."""
        failed = bool(self.failures) or error is not None
        if not self.cluster.multi:
            if error is not None:
                raise error
            return
        votes = self.cluster.agree(int(failed))[:, 0]
        if votes.any():
            if error is not None:
                raise error
            if self.failures:
                raise self.failures[0]
            ranks = ", ".join(str(r) for r in np.flatnonzero(votes))
            raise GalError(
                f"--distribute data: process {ranks} stopped with an error at {name} "
                "(see its message); every process stops"
            )

    def ckpt_state(self):
        state = {"lr": self.lr, "wall": self.wall(), "stopped": self.stopped}
        state["hooks"] = {h.name: h.state() for h in self.hooks if h.name}
        return state

    def save_ckpt(self, step):
        self.write(
            checkpoint.save, self.ckpt_dir, step, self.variables, self.ckpt_state(), self.tr["keep"]
        )
        self.metrics["step"] = step
        self.write(report.write_json, self.metrics_path, self.metrics)

    def save_networks(self):
        with averaged(self.model):
            self.write(
                _save_networks, self.spec, self.model, self.config, self.run_dir, self.cluster
            )

    def samples(self, p):
        """The pass's montage of a generating model: every rank computes it (a collective
        under a distribution), rank 0 keeps it."""
        if self.main:
            _samples(self.model, self.spec, self.config, self.run_dir, p)
        else:
            self.scratch = self.scratch or tempfile.mkdtemp(prefix="galtools-samples-")
            _samples(self.model, self.spec, self.config, self.scratch, p)

    def stop_early(self, reason):
        """A hook ends the run after this step (every rank decides alike)."""
        self.stopped = reason
        self.log(reason)
        say(reason)

    # ---------------------------------------------------------------------------- setup

    def wall(self):
        return self.wall0 + time.time() - self.t_start

    def setup(self, plan, resuming):
        tr, cluster = self.tr, self.cluster
        self.plan = plan  # train()'s, of the settings that resuming checked equal to the run's
        set_seed(tr["seed"])
        self.model = model = self.spec.build(self.config)
        _check_splits_batches(model, self.spec, cluster)
        _check_recipe(model, self.spec, self.tr)
        has_ckpt = resuming and cluster.on_main(lambda: bool(checkpoint.listing(self.ckpt_dir)))
        _init_from(model, None if has_ckpt else tr.get("init_from"), tr.get("freeze_until"))
        self.variables, optional = _variables(model)
        state = _restore(cluster, self.ckpt_dir, self.variables, optional) if resuming else None
        self.start = state["step"] if state else 0
        metrics = cluster.on_main(
            lambda: _load_metrics(self.metrics_path, self.start) if state else {}
        )
        metrics.update(
            model=self.spec.name,
            task=self.config["task"],
            total_steps=self.plan.total,
            batch_size=tr["batch_size"],
            status="running",
            recipe={k: tr.get(k) for k in (*recipe.RECIPE_KEYS, "ema_used")},
            **_describe(model, cluster, tr),
        )
        for key in ("steps", "evals", "passes"):
            metrics.setdefault(key, [])
        self.metrics = metrics
        self.hooks = hooks.standard(self.spec, self.config, self.settings)
        saved = (state or {}).get("hooks") or {}
        if state and "hooks" not in state and state.get("plateau"):  # a run of galtools ≤ 0.x
            p = state["plateau"]
            saved = {"lr": {"scale": state["lr"] / tr["lr"], "best": p["best"], "wait": p["wait"]}}
        for h in self.hooks:
            if h.name and h.name in saved:
                h.load(saved[h.name])
        self.stopped = (state or {}).get("stopped")
        self.lr = tr["lr"]
        self.wall0 = (state or {}).get("wall", 0.0)
        self.t_start = time.time()
        self.done = self.start

    # ----------------------------------------------------------------------------- run

    def run(self, plan, resuming):
        self.setup(plan, resuming)
        plan, spec, run_dir = self.plan, self.spec, self.run_dir
        if self.start >= plan.total or self.stopped:
            why = self.stopped or f"already trained {self.start} of {plan.total} steps"
            say(f"{run_dir}: {why} (more --passes to go on, --restart to start over)")
            self.save_networks()
            self.sync("the end")
            return self.metrics
        if self.start:
            say(f"resuming {run_dir} at step {self.start} of {plan.total}")
        what = f"{'resume' if self.start else 'start'} {spec.name} step {self.start}/{plan.total}"
        what += f" in {self.metrics['precision']}"
        if self.cluster.mode:
            d = self.metrics
            what += f" on {d['devices']} {'/'.join(d['device_kinds'] or [])} devices"
            what += f", {d['processes']} process{'es' if d['processes'] > 1 else ''}"
        self.log(what)
        with contextlib.ExitStack() as stack:  # whatever was opened is closed, in reverse
            stack.callback(lambda: self.scratch and shutil.rmtree(self.scratch, True))
            for h in reversed(self.hooks):
                stack.callback(h.close)
            for h in self.hooks:
                h.start(self)
            if self.cluster.distribution is not None:
                _settle(self.model, self.variables)  # after the last assignment (the lr's)
            trace = _RowTrace(self.cluster.rank)
            stack.callback(trace.close)
            augment = None
            if self.tr.get("augment"):
                augment = OnTheFly(
                    self.tr["augment"], self.tr["seed"], self.config["task"], self.cluster.part
                )
            producer = Producer(
                plan,
                self.config,
                self.start,
                prefetch=self.settings.prefetch,
                part=self.cluster.part,
                workers=self.settings.workers,
                augment=augment,
            )
            stack.callback(producer.close)
            bar = progress(total=plan.total - self.start, desc=f"train {spec.name}", unit="step")
            stack.callback(bar.close)
            flag = stack.enter_context(StopFlag())
            self.loop(producer, flag, bar, trace)
            for h in self.hooks:
                h.end(self)
        self.save_networks()
        self.metrics["status"] = "stopped early" if self.stopped else "finished"
        self.metrics["step"] = self.done
        self.metrics["wall"] = round(self.wall(), 3)
        if self.stopped:
            self.save_ckpt(self.done)  # the restored best weights, and why it ended
        self.write(report.write_json, self.metrics_path, self.metrics)
        self.write(report.plot_curves, os.path.join(run_dir, "curves.png"), self.metrics)
        self.log(f"finished {self.done} steps in {self.metrics['wall']:.1f} s")
        self.sync("the end")  # every rank returns once the run's files are there
        return self.metrics

    def stop_votes(self, flag, error):
        """(signal number or 0, failed) agreed by every rank before a step."""
        failed = error is not None or bool(self.failures)
        if not self.cluster.multi:
            return flag.signum or 0, failed
        votes = self.cluster.agree(flag.signum or 0, int(failed))
        signums = [int(s) for s in votes[:, 0] if s]
        return (signums[0] if signums else 0), bool(votes[:, 1].any())

    def preempt(self, signum):
        done, total = self.done, self.plan.total
        self.save_ckpt(done)
        self.metrics["status"] = "preempted"
        self.write(report.write_json, self.metrics_path, self.metrics)
        name = signal.Signals(signum).name
        self.log(f"{name}: checkpoint at step {done}; exit {PREEMPTED}")
        self.sync("the preemption checkpoint")  # nobody leaves before it is written
        raise Preempted(
            f"{name} at step {done}/{total}: checkpoint saved in {self.run_dir}; "
            f"run the same command to continue (exit {PREEMPTED})"
        )

    def loop(self, producer, flag, bar, trace):
        """The steps: agree on signals, call the hooks around each step and at each file
        visit's end, until the plan is done or a hook stops the run."""
        plan, model, hooks_ = self.plan, self.model, self.hooks
        ends = dict(plan.segment_ends())
        pass_ends = {step: p for p, step in plan.pass_ends().items()}
        batches = timed(producer, self.clock)
        while True:
            error = None
            try:
                item = next(batches)
            except StopIteration:
                break
            except Exception as exc:
                if not self.cluster.multi:
                    raise
                item, error = None, exc  # every rank must learn of it before the next step
            signum, failed = self.stop_votes(flag, error)
            if failed:
                self.sync("a step", error)
            if signum and self.done < plan.total:
                self.preempt(signum)
            step, self.batch_path, self.batch_seg, x, y, rows = item
            trace.add(step, self.batch_path, rows)
            for h in hooks_:
                h.before_step(self, step)
            t_step = time.perf_counter()
            logs = model.train_on_batch(x, y, return_dict=True)
            self.clock["step"] += time.perf_counter() - t_step
            self.done = done = step + 1
            bar.update(1)
            for h in hooks_:
                h.after_step(self, done, logs)
            if done in ends:
                self.segment_end(done, ends[done], pass_ends.get(done))
            if self.stopped:
                break

    def segment_end(self, done, seg_end, p):
        ev = {
            "step": done,
            "pass": seg_end[0],
            "file": seg_end[1],
            "epoch": seg_end[2],
            "wall": round(self.wall(), 3),
        }
        if self.val:
            with averaged(self.model):  # the moving average is what is scored
                ev.update(
                    validate(
                        self.model,
                        self.config,
                        self.val,
                        self.tr["batch_size"],
                        self.cluster.predict,
                    )
                )
        self.metrics["evals"].append(ev)
        if p is not None:
            self.metrics["passes"].append({"pass": p, "step": done, "wall": ev["wall"]})
            say(
                f"pass {p + 1}/{self.tr['passes']} done (step {done}/{self.plan.total})"
                + "".join(f", {k} {v:.4g}" for k, v in ev.items() if k.startswith("val_"))
            )
        for h in self.hooks:
            h.evaluated(self, ev, p)


@contextlib.contextmanager
def averaged(model):
    """The moving average of the weights (Keras' optimizer ``use_ema``) in the model inside,
    the trained weights again afterwards; nothing changes without one."""
    opt = getattr(model, "optimizer", None)
    average = getattr(opt, "_model_variables_moving_average", None) if opt is not None else None
    if not getattr(opt, "use_ema", False) or not average:
        yield
        return
    variables = list(model.trainable_variables)
    if len(variables) != len(average):
        raise GalError(f"the weight average holds {len(average)} of {len(variables)} variables")
    saved = [v.value for v in variables]
    for v, a in zip(variables, average):
        if a is not None:
            v.assign(a.value)
    try:
        yield
    finally:
        for v, x in zip(variables, saved):
            v.assign(x)


def _check_recipe(model, spec, training):
    """GalError when the model's optimizers do not honour the recipe asked for (a model that
    makes its optimizer itself, not with :func:`galtools.train.recipe.optimizer`)."""
    for opt in spec.optimizers(model):
        name = type(opt).__name__.lower()
        if training.get("optimizer") == "adamw" and "adamw" not in name:
            raise GalError(f"--optimizer adamw: model {spec.name} trains with {name}")
        if training.get("clip") and not getattr(opt, "global_clipnorm", None):
            raise GalError(f"--clip: model {spec.name} makes optimizers that do not clip")


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
    """A montage of 16 generated stamps (fixed noise) after each pass of a generating model;
    a spec that samples itself provides them (``spec.preview(model, config, 16)``)."""
    if "generates" not in spec.abilities:
        return
    from galtools.montage import save_montage

    preview = getattr(spec, "preview", None)
    if callable(preview):
        images = np.asarray(preview(model, config, 16))
    else:
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
