"""The training loop's hooks, each alone on a fake loop; the recipe's schedule and settings."""

import math

import numpy as np
import pytest

from galtools.errors import GalError
from galtools.train import hooks, recipe


class Var:
    def __init__(self, value):
        self.value = np.array(value, np.float32)
        self.shape = self.value.shape

    def numpy(self):
        return self.value

    def assign(self, value):
        self.value = np.array(value, np.float32)


class Spec:
    name = "fake"
    abilities = frozenset({"predicts"})

    def __init__(self, loop):
        self.loop = loop

    def set_lr(self, model, lr):
        self.loop.set.append(lr)

    def hooks(self, config):
        return []


class Plan:
    def __init__(self, total, ends=()):
        self.total = total
        self._ends = list(ends)

    def segment_ends(self):
        return [(step, (0, 0, i)) for i, step in enumerate(self._ends)]


class FakeLoop:
    """What a hook may use of the loop (galtools.train.hooks' docstring), recording calls."""

    def __init__(self, tmp_path, total=100, ends=(), val="val.h5"):
        self.run_dir = str(tmp_path)
        self.ckpt_dir = str(tmp_path / "checkpoints")
        self.spec, self.model = Spec(self), None
        self.plan = Plan(total, ends)
        self.metrics = {"steps": [], "evals": [], "passes": []}
        self.tr = {"batch_size": 4}
        self.done, self.lr, self.main, self.val = 0, None, True, val
        self.set, self.saved, self.networks, self.logged, self.stopped = [], [], 0, [], None
        self.clock = {"wait": 0.0, "step": 0.0}
        self.record, self.record_clock = None, {"wait": 0.0, "step": 0.0}
        self.batch_path, self.batch_seg = "a.h5", (0, 0, 0)
        self.variables = [Var([1.0, 2.0]), Var(3.0)]

    def write(self, fn, *args, **kw):
        fn(*args, **kw)

    def log(self, message):
        self.logged.append(message)
        with open(f"{self.run_dir}/train.log", "a") as fh:
            fh.write(message + "\n")

    def wall(self):
        return 1.0

    def sync(self, name, error=None):
        pass

    def stop_early(self, reason):
        self.stopped = reason

    def save_ckpt(self, step):
        self.saved.append(step)

    def save_networks(self):
        self.networks += 1


def test_schedule_learning_rate_at_chosen_steps():
    lr = recipe.learning_rate
    # 10 warm-up steps of 100, then half a cosine from the peak to 0
    assert lr(0, 100, 1.0, "cosine", 10) == pytest.approx(1 / 11)
    assert lr(9, 100, 1.0, "cosine", 10) == pytest.approx(10 / 11)
    assert lr(10, 100, 1.0, "cosine", 10) == pytest.approx(1.0)
    assert lr(55, 100, 1.0, "cosine", 10) == pytest.approx(0.5)
    assert lr(99, 100, 1.0, "cosine", 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert lr(50, 100, 2.0, "cosine", 0.0) == pytest.approx(1.0)  # no warm-up
    assert lr(3, 100, 1.0, "constant", 0.05) == pytest.approx(4 / 6)  # 5 % of 100 steps
    assert lr(77, 100, 1.0, "constant", 0.05) == 1.0
    assert [lr(s, 4, 1.0, "constant", 0.5) for s in range(4)] == pytest.approx([1 / 3, 2 / 3, 1, 1])


def test_learning_rate_hook_sets_the_schedule_only_when_it_changes(tmp_path):
    loop = FakeLoop(tmp_path, total=20)
    hook = hooks.LearningRate(1.0, "constant", warmup=2)
    hook.start(loop)
    for step in range(5):
        hook.before_step(loop, step)
    assert loop.set == pytest.approx([1 / 3, 2 / 3, 1.0]) and loop.lr == 1.0
    cos = hooks.LearningRate(1.0, "cosine")
    cos.load({"scale": 0.5, "best": None, "wait": 0})  # a halved rate comes back from a checkpoint
    cos.before_step(loop, 10)
    assert loop.lr == pytest.approx(0.25)


def test_plateau_halves_learning_rate(tmp_path):
    loop = FakeLoop(tmp_path)
    hook = hooks.LearningRate(0.1, "plateau", patience=2)
    hook.start(loop)
    for value in (1.0, 0.9, 0.95, 0.92):  # improves, then 2 evaluations without improvement
        hook.evaluated(loop, {"val_loss": value}, None)
    assert loop.lr == pytest.approx(0.05) and loop.set == [0.1, 0.05]
    assert hook.state() == {"scale": 0.5, "best": 0.9, "wait": 0}
    hook.before_step(loop, 5)
    assert loop.set == [0.1, 0.05]  # unchanged: not set again
    assert "learning rate → 0.05" in (tmp_path / "train.log").read_text()


def test_nan_guard_stops_at_the_first_bad_step(tmp_path):
    loop = FakeLoop(tmp_path)
    guard = hooks.NanGuard()
    guard.after_step(loop, 1, {"loss": 0.5, "mae": float("nan")})  # not a loss: no matter
    with pytest.raises(GalError, match="d_loss became inf at step 7"):
        guard.after_step(loop, 7, {"loss": 0.5, "d_loss": float("inf")})


def test_recorder_means_and_cadence(tmp_path):
    loop = FakeLoop(tmp_path, total=10, ends=(10,))
    rec = hooks.Recorder(4)
    rec.start(loop)
    for done in range(1, 11):
        loop.lr = 0.1
        rec.after_step(loop, done, {"loss": float(done)})
    steps = loop.metrics["steps"]
    assert [r["step"] for r in steps] == [4, 8, 10]  # every 4 steps and at the visit's end
    assert [r["loss"] for r in steps] == [2.5, 6.5, 9.5] and steps[0]["lr"] == 0.1
    assert loop.record["step"] == 10 and steps[0]["main_batches"] == 4


def test_recorder_warns_once_about_a_slow_input(tmp_path):
    loop = FakeLoop(tmp_path, total=10)
    rec = hooks.Recorder(2)
    rec.start(loop)
    for done in range(1, 7):
        loop.clock["wait"] += 1.0
        loop.clock["step"] += 0.1
        rec.after_step(loop, done, {"loss": 1.0})
    assert sum("the input pipeline limits speed" in m for m in loop.logged) == 1


def test_checkpoints_cadence_and_networks_per_pass(tmp_path):
    loop = FakeLoop(tmp_path, total=12, ends=(6, 12))
    ck = hooks.Checkpoints(4)
    ck.start(loop)
    for done in range(1, 13):
        ck.after_step(loop, done, {})
        loop.done = done
        if done in (6, 12):
            ck.evaluated(loop, {}, 0 if done == 12 else None)
    assert loop.saved == [4, 6, 8, 12] and loop.networks == 1


def test_early_stop_restores_the_best_weights(tmp_path):
    loop = FakeLoop(tmp_path, total=100)
    stop = hooks.EarlyStop(2)
    stop.start(loop)
    for done, value, w in ((10, 1.0, 1.0), (20, 0.5, 2.0), (30, 0.6, 3.0), (40, 0.7, 4.0)):
        loop.done = done
        loop.variables[1].assign(w)
        stop.evaluated(loop, {"val_rmse": value}, None)
        assert (loop.stopped is None) == (done < 40)
    assert "best 0.5 at step 20" in loop.stopped and stop.state()["stopped"] == 40
    stop.end(loop)
    assert float(loop.variables[1].value) == 2.0  # the weights of step 20
    # a continued run (fresh hook, state from the checkpoint) reads them from best.npz
    loop.variables[1].assign(9.0)
    again = hooks.EarlyStop(2)
    again.load(stop.state())
    again.end(loop)
    assert float(loop.variables[1].value) == 2.0
    with pytest.raises(GalError, match="--early-stop needs --val"):
        hooks.EarlyStop(2).start(FakeLoop(tmp_path, val=None))


def test_settings_defaults_are_the_commands():
    """The API's and the command's defaults are one object."""
    from galtools.commands.train_batch import train_batch

    ctx = train_batch.make_context("train-batch", ["d.h5", "-o", "run", "--model", "vgg"])
    for field in recipe.DEFAULTS.__dataclass_fields__:
        name = "read_workers" if field == "workers" else field
        assert ctx.params[name] == getattr(recipe.DEFAULTS, field), name


def test_recipe_resolution_and_checks():
    class Spec:
        name = "x"
        recipe = {"lr": 0.5, "schedule": "cosine"}

    got = recipe.resolve(recipe.DEFAULTS, Spec())
    assert got["lr"] == 0.5 and got["schedule"] == "cosine" and got["optimizer"] == "adam"
    got = recipe.resolve(recipe.DEFAULTS.replace(schedule="plateau"), Spec())
    assert got["patience"] == 3
    with pytest.raises(GalError, match="--patience halves the rate of --schedule plateau"):
        recipe.resolve(recipe.DEFAULTS.replace(patience=2, schedule="cosine"), Spec())
    with pytest.raises(GalError, match="--weight-decay needs --optimizer adamw"):
        recipe.resolve(recipe.DEFAULTS.replace(weight_decay=0.1), Spec())
    with pytest.raises(TypeError, match="unknown training setting 'lrate'"):
        recipe.DEFAULTS.replace(lrate=1)
    assert recipe.ema_decay(0.999, 1000) == pytest.approx(0.99)
    assert recipe.ema_decay(0.9, 1000) == 0.9 and recipe.ema_decay(0.99, 4) == 0.5


def test_the_optimizers_schedule_is_the_loops():
    """What the optimizer computes inside the compiled step is what the loop records."""
    training = {"lr": 2e-3, "schedule": "cosine", "warmup": 0.05, "steps": 200, "ema": 0.0}
    opt = recipe.optimizer(training)
    schedule = opt._learning_rate
    for step in (0, 3, 9, 10, 11, 57, 150, 199):
        want = recipe.learning_rate(step, 200, 2e-3, "cosine", 0.05)
        assert float(schedule(step)) == pytest.approx(want, rel=1e-5, abs=1e-9), step
    flat = recipe.optimizer(dict(training, schedule="plateau", warmup=0))
    assert float(flat.learning_rate) == pytest.approx(2e-3)  # a value the loop sets
    cfg = schedule.get_config()
    assert type(schedule)(**cfg).get_config() == cfg
