"""Test-time augmentation (score --tta K, metrics --condition-check --tta K): the transforms,
their order and group, and predictions averaged exactly over them."""

import json

import numpy as np
import pytest

from galtools import tta
from galtools.arrayfile import write_galaxies
from galtools.errors import GalError
from galtools.meta import new_meta
from galtools.scoring import Ensemble, score_file
from tests.fakerun import FakeRun, install

# ----------------------------------------------------------------------------------- helpers


def by_hand(x):
    """The eight transforms of the documented order, written out independently."""
    r = [np.rot90(x, k, axes=(1, 2)) for k in range(4)]
    return r + [np.flip(v, axis=2) for v in r]


class Corner(FakeRun):
    """Not invariant: regression/score = scale·(top-left pixel of band 0) + offset +
    0.1·(pixel at row 0, column 1); classification: softmax of the top-left pixel's bands."""

    def predict(self, images, batch_size=256):
        x = np.asarray(images, np.float64)
        self.calls.append(len(x))
        if self.task == "classification":
            e = np.exp(x[:, 0, 0, :])
            return e / e.sum(axis=1, keepdims=True)
        return self.scale * x[:, 0, 0, 0] + self.offset + 0.1 * x[:, 0, 1, 0]


class Spec:
    """A model spec that allows only the given augment ops."""

    def __init__(self, *ops):
        self.ops = frozenset(ops)

    def augment_ops(self, config):
        return self.ops


def with_spec(run, *ops):
    run.spec = Spec(*ops)
    return run


def random_file(path, n=5, shape=(8, 8, 3), seed=0, classes=None):
    rng = np.random.default_rng(seed)
    batch = {
        "images": rng.normal(size=(n, *shape)).astype(np.float32),
        "ids": np.array([f"g{i}" for i in range(n)]),
        "inclination": rng.uniform(0, 90, n),
    }
    write_galaxies(path, batch, new_meta(bands="gri"))
    return path, batch


def csv_rows(path):
    lines = path.read_text().splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


# ------------------------------------------------------------------------------- the group


def test_transforms_in_the_documented_order_on_a_2x2_array():
    a = np.array([[1, 2], [3, 4]])[None, :, :, None]  # one 2×2 single-band image
    got = [x[0, :, :, 0].tolist() for x in tta.transforms(a, 8)]
    assert got == [
        [[1, 2], [3, 4]],  # identity
        [[2, 4], [1, 3]],  # rot90 (anticlockwise)
        [[4, 3], [2, 1]],  # rot180
        [[3, 1], [4, 2]],  # rot270
        [[2, 1], [4, 3]],  # hflip
        [[4, 2], [3, 1]],  # hflip∘rot90: turned, then flipped left–right
        [[3, 4], [1, 2]],  # vflip = hflip∘rot180
        [[1, 3], [2, 4]],  # hflip∘rot270: the transpose
    ]
    assert [t[0] for t in tta.TRANSFORMS] == [
        "identity", "rot90", "rot180", "rot270", "hflip", "hflip∘rot90", "vflip", "hflip∘rot270",
    ]  # fmt: skip
    assert [len(list(tta.transforms(a, k))) for k in range(1, 9)] == list(range(1, 9))


def test_the_eight_are_distinct_a_group_and_compose_as_declared():
    x = np.arange(3 * 9 * 2).reshape(3, 3, 3, 2)  # asymmetric: every transform differs
    views = list(tta.transforms(x, 8))
    for v, w in zip(views, by_hand(x)):
        np.testing.assert_array_equal(v, w)
    flat = {v.tobytes() for v in views}
    assert len(flat) == 8
    index = {v.tobytes(): i for i, v in enumerate(views)}
    for a in tta.TRANSFORMS:
        for b in tta.TRANSFORMS:
            ab = tta.apply(tta.apply(x, b), a)  # a∘b: b first
            k = index[np.ascontiguousarray(ab).tobytes()]  # closed: one of the eight
            assert tta.TRANSFORMS[k][1:] == tta.compose(a[1:], b[1:])
    # each has an inverse
    for t in tta.TRANSFORMS:
        assert any(tta.compose(t[1:], u[1:]) == (0, 0) for u in tta.TRANSFORMS)
    assert len(tta.reachable({"rot90", "hflip"})) == len(tta.reachable({"rot90", "vflip"})) == 8
    assert tta.reachable({"hflip", "vflip"}) == {(0, 0), (1, 0), (1, 2), (0, 2)}
    assert tta.reachable({"rot90"}) == {(0, k) for k in range(4)}
    assert tta.reachable({"blur", "noise"}) == {(0, 0)}


def test_non_square_stamps_keep_their_shape_under_four():
    x = np.arange(2 * 2 * 3).reshape(2, 2, 3)  # two 2×3 single-band images
    names = [t[0] for t in tta.plan(4, x.shape[1:])]
    assert names == ["identity", "rot180", "hflip", "vflip"]
    views = list(tta.transforms(x, 4))
    assert all(v.shape == x.shape for v in views)
    np.testing.assert_array_equal(views[1], x[:, ::-1, ::-1])
    np.testing.assert_array_equal(views[3], x[:, ::-1, :])
    with pytest.raises(GalError, match=r"f.h5: stamps are 2×3, not square: only 4 transforms"):
        tta.plan(5, x.shape[1:], "f.h5")
    for bad in (0, 9):
        with pytest.raises(GalError, match="1 to 8"):
            tta.plan(bad, (4, 4))


# ------------------------------------------------------------------------------- predictions


def test_rotation_invariant_model_is_unchanged_and_has_no_spread(tmp_path):
    src, _ = random_file(tmp_path / "d.h5", n=7)
    run = FakeRun("r", "vgg", target="inclination", scale=3.0, offset=1.0)  # mean pixel
    one, eight = tmp_path / "one.csv", tmp_path / "eight.csv"
    a = score_file([run], str(src), str(one), truth="inclination")
    b = score_file([run], str(src), str(eight), truth="inclination", tta=8, chunk_size=3)
    head1, rows1 = csv_rows(one)
    head8, rows8 = csv_rows(eight)
    assert head1 == ["id", "inclination", "truth", "residual"]
    assert head8 == ["id", "inclination", "inclination_tta_std", "truth", "residual"]
    for r1, r8 in zip(rows1, rows8):
        assert float(r8[1]) == pytest.approx(float(r1[1]), abs=1e-6)
        assert abs(float(r8[2])) < 1e-6
    assert a["tta"] == 1 and "tta_spread" not in a
    assert b["tta"] == 8 and b["tta_spread"]["mean_spread"] < 1e-6
    assert b["tta_spread"]["transforms"][-1] == "hflip∘rot270"
    assert b["metrics"]["mae"] == pytest.approx(a["metrics"]["mae"], abs=1e-6)
    # streamed: each chunk of 3 (then 1) seen once per transform, never the whole file
    assert run.calls == [7] + [3] * 8 + [3] * 8 + [1] * 8
    scorer = FakeRun("g", "twoinone", scale=2.0)  # a realism score: the mean pixel too
    score_file([scorer], str(src), str(tmp_path / "s1.csv"))
    score_file([scorer], str(src), str(tmp_path / "s8.csv"), tta=8)
    head, rows = csv_rows(tmp_path / "s8.csv")
    assert head == ["id", "score", "score_tta_std"]
    _, rows1 = csv_rows(tmp_path / "s1.csv")
    np.testing.assert_allclose([float(r[1]) for r in rows], [float(r[1]) for r in rows1], atol=1e-6)


def test_non_invariant_model_averages_exactly_the_transformed_predictions(tmp_path):
    src, batch = random_file(tmp_path / "d.h5", n=6)
    run = Corner("r", "vgg", target="inclination", scale=2.0)
    x = batch["images"]
    for k in (2, 4, 5, 8):
        each = np.stack([run.predict(v) for v in by_hand(x)[:k]])
        got = Ensemble([run]).tta_members(x, k)
        np.testing.assert_array_equal(got[0], each)
        out = tmp_path / f"p{k}.csv"
        info = score_file([run], str(src), str(out), tta=k, report=str(tmp_path / f"r{k}.json"))
        head, rows = csv_rows(out)
        assert head == ["id", "inclination", "inclination_tta_std"]
        np.testing.assert_allclose([float(r[1]) for r in rows], each.mean(0), rtol=1e-5)
        np.testing.assert_allclose([float(r[2]) for r in rows], each.std(0), rtol=1e-5)
        assert each.std(0).min() > 0.01  # the transforms do change this model's output
        rep = json.loads((tmp_path / f"r{k}.json").read_text())
        assert rep["tta"] == k == info["tta"]
        assert rep["tta_spread"]["mean_spread"] == pytest.approx(each.std(0).mean(), rel=1e-12)


def test_classification_averages_probabilities(tmp_path):
    src, batch = random_file(tmp_path / "d.h5", n=4)
    run = Corner("c", "cnn-classifier", target="kind", class_names=["a", "b", "c"])
    out = tmp_path / "c.csv"
    score_file([run], str(src), str(out), tta=8)
    each = np.stack([run.predict(v) for v in by_hand(batch["images"])])  # (8, N, 3)
    mean = each.mean(0)
    best = mean.argmax(1)
    head, rows = csv_rows(out)
    assert head == ["id", "kind", "p_a", "p_b", "p_c", "p_tta_std"]
    assert [r[1] for r in rows] == [["a", "b", "c"][b] for b in best]
    np.testing.assert_allclose([[float(c) for c in r[2:5]] for r in rows], mean, rtol=1e-5)
    spread = each.std(0)[np.arange(4), best]
    np.testing.assert_allclose([float(r[5]) for r in rows], spread, rtol=1e-5)


def test_ensemble_averages_each_member_over_transforms_first(tmp_path, galprep, monkeypatch):
    src, batch = random_file(tmp_path / "d.h5", n=5)
    r1 = Corner("r1", "vgg", target="inclination", scale=1.0)
    r2 = Corner("r2", "vgg", target="inclination", scale=-2.0, offset=3.0)
    install(monkeypatch, {"r1": r1, "r2": r2})
    out = tmp_path / "p.csv"
    r = galprep(
        "score", "r1", "r2", src, "-o", out, "--tta", "4", "--truth", "inclination",
        "--report", tmp_path / "rep.json",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    assert "ensemble of 2" in r.stderr and "TTA over 4 transforms" in r.stderr
    views = by_hand(batch["images"])[:4]
    each = np.stack([[run.predict(v) for v in views] for run in (r1, r2)])  # (M, K, N)
    member = each.mean(1)
    head, rows = csv_rows(out)
    assert head == [
        "id", "inclination", "inclination_std", "inclination_tta_std", "truth", "residual",
    ]  # fmt: skip
    cols = np.array([[float(c) for c in row[1:]] for row in rows])
    np.testing.assert_allclose(cols[:, 0], member.mean(0), rtol=1e-5)
    np.testing.assert_allclose(cols[:, 1], member.std(0), rtol=1e-5)
    np.testing.assert_allclose(cols[:, 2], each.std(1).mean(0), rtol=1e-5)
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert rep["tta"] == 4 and rep["ensemble"]["members"] == 2
    assert rep["ensemble"]["mean_spread"] == pytest.approx(member.std(0).mean(), rel=1e-12)
    truth = batch["inclination"]
    mae = [m["mae"] for m in rep["member_metrics"]]
    assert mae == pytest.approx([np.abs(m - truth).mean() for m in member], rel=1e-12)


def test_non_square_stamps_tta_4_uses_the_shape_keeping_four(tmp_path):
    src, batch = random_file(tmp_path / "d.h5", n=3, shape=(8, 6, 3))
    run = Corner("r", "vgg", target="inclination", input_shape=(8, 6, 3))
    out = tmp_path / "p.csv"
    score_file([with_spec(run, "hflip", "vflip")], str(src), str(out), tta=4)  # rot180 = h∘v
    x = batch["images"]
    views = [x, x[:, ::-1, ::-1], x[:, :, ::-1], x[:, ::-1, :]]
    want = np.mean([run.predict(v) for v in views], axis=0)
    _, rows = csv_rows(out)
    np.testing.assert_allclose([float(r[1]) for r in rows], want, rtol=1e-5)


# ----------------------------------------------------------------------------------- errors


def test_bad_k_and_non_square_stamps_are_one_line_errors(galprep, tmp_path, monkeypatch):
    src, _ = random_file(tmp_path / "d.h5", n=3)
    wide, _ = random_file(tmp_path / "wide.h5", n=3, shape=(8, 6, 3))
    install(
        monkeypatch,
        {
            "r": FakeRun("r", "vgg", target="inclination"),
            "w": FakeRun("w", "vgg", target="inclination", input_shape=(8, 6, 3)),
        },
    )
    monkeypatch.chdir(tmp_path)
    for bad in ("0", "9", "x"):
        r = galprep("score", "r", src, "-o", "p.csv", "--tta", bad)
        assert r.code == 2 and "Invalid value for '--tta'" in r.stderr, r.stderr
    r = galprep("score", "w", wide, "-o", "p.csv", "--tta", "8")
    assert r.code == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"{wide}: stamps are 8×6, not square: only 4 transforms keep their shape" in r.stderr
    assert "--tta 8 needs square stamps" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5", "wide.h5"]
    assert galprep("score", "w", wide, "-o", "p.csv", "--tta", "4").code == 0


@pytest.mark.parametrize(
    "ops, k, message",
    [
        (("hflip", "vflip"), 2, "labels change under quarter turns; --tta 2 needs rot90"),
        (("rot90",), 5, "labels change under flips; --tta 5 needs hflip or vflip"),
        (("hflip",), 8, "quarter turns; --tta 8 needs rot90 among its augment ops (it allows "
                        "hflip; --tta 1 is the most it takes)"),
        ((), 3, "(it allows none of them; --tta 1 is the most it takes)"),
    ],
)  # fmt: skip
def test_a_model_that_refuses_the_transforms_is_refused(
    galprep, tmp_path, monkeypatch, ops, k, message
):
    src, _ = random_file(tmp_path / "d.h5", n=3)
    run = with_spec(FakeRun("runs/pa", "vgg", target="position_angle"), *ops)
    install(
        monkeypatch, {"runs/pa": run, "runs/ok": FakeRun("runs/ok", "vgg", target="position_angle")}
    )
    r = galprep("score", "runs/ok", "runs/pa", src, "-o", tmp_path / "p.csv", "--tta", str(k))
    assert r.code == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "runs/pa: model vgg's labels change under " in r.stderr and message in r.stderr
    assert not (tmp_path / "p.csv").exists() and run.calls == []
    r = galprep("score", "runs/pa", src, "-o", tmp_path / "p.csv")  # --tta 1 needs nothing
    assert r.code == 0, r.stderr


# ------------------------------------------------------------------------------- real runs


def keras_run(path, model):
    """A run directory holding ``model`` (a regression of 'inclination', raw units)."""
    from galtools.train.rundir import RUN_FORMAT

    path.mkdir()
    config = {
        "format": RUN_FORMAT,
        "version": 1,
        "model": "vgg",
        "task": "regression",
        "abilities": ["predicts"],
        "target": "inclination",
        "columns": [{"name": "inclination", "kind": "raw", "role": "target"}],
        "input_shape": [8, 8, 3],
        "bands": list("gri"),
    }
    (path / "config.json").write_text(json.dumps(config))
    model.save(path / "model.keras")
    return path


def test_real_keras_runs_mean_pixel_and_corner(galprep, tmp_path, monkeypatch):
    """Through Run.predict and the command: a saved mean-pixel → tanh network is unchanged by
    --tta 8; a top-left-pixel network averages its own predictions on the turned images."""
    from galtools.models import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from galtools.runs import Run, load_run

    keras.utils.set_random_seed(0)
    mean = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
         keras.layers.Dense(1, activation="tanh", kernel_initializer="ones")]
    )  # fmt: skip
    corner = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Cropping2D(((0, 7), (0, 7))),
         keras.layers.Flatten(), keras.layers.Dense(1)]
    )  # fmt: skip
    runs = {"mean": keras_run(tmp_path / "mean", mean), "corner": keras_run(tmp_path / "c", corner)}
    src, batch = random_file(tmp_path / "d.h5", n=9)
    x = batch["images"]

    outs = {}
    for name, k in (("mean", 1), ("mean", 8), ("corner", 8)):
        outs[name, k] = tmp_path / f"{name}{k}.csv"
        r = galprep("score", runs[name], src, "-o", outs[name, k], "--tta", k, "--chunk-size", 4)
        assert r.code == 0, r.stderr
    _, one = csv_rows(outs["mean", 1])
    _, eight = csv_rows(outs["mean", 8])
    np.testing.assert_allclose([float(r[1]) for r in eight], [float(r[1]) for r in one], atol=1e-6)
    assert max(abs(float(r[2])) for r in eight) < 1e-6
    run = load_run(runs["corner"])
    want = np.stack([run.predict(np.ascontiguousarray(v)) for v in by_hand(x)])
    _, rows = csv_rows(outs["corner", 8])
    np.testing.assert_allclose([float(r[1]) for r in rows], want.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([float(r[2]) for r in rows], want.std(0), rtol=1e-5, atol=1e-6)

    monkeypatch.setattr(Run, "spec", property(lambda self: Spec("hflip", "vflip")))
    r = galprep("score", runs["corner"], src, "-o", tmp_path / "x.csv", "--tta", 3)
    assert r.code == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "model vgg's labels change under quarter turns; --tta 3 needs rot90" in r.stderr


# --------------------------------------------------------------------------- condition check


def test_condition_check_reads_back_averaged_over_transforms(galprep, tmp_path, monkeypatch):
    from galtools.metrics.conditions import readback_stats

    real, rb = random_file(tmp_path / "real.h5", n=6, seed=1)
    gen, gb = random_file(tmp_path / "gen.h5", n=7, seed=2)
    run = Corner("runs/inc", "vgg", target="inclination", scale=30.0, offset=45.0)
    install(monkeypatch, {"runs/inc": run})
    out = tmp_path / "r.json"
    r = galprep("metrics", real, gen, "--condition-check", "runs/inc", "--tta", "8", "-o", out)
    assert r.code == 0, r.stderr
    rep = json.loads(out.read_text())["condition_check"]
    assert rep["tta"] == 8
    for name, b in (("real", rb), ("generated", gb)):
        pred = np.mean([run.predict(v) for v in by_hand(b["images"])], axis=0)
        want = readback_stats(pred, b["inclination"])
        got = rep["readback"][0][name]
        assert got["rmse"] == pytest.approx(want["rmse"], rel=1e-12)
        assert got["bias"] == pytest.approx(want["bias"], rel=1e-12)
    r = galprep("metrics", real, gen, "--power", "--tta", "2", "-o", tmp_path / "x.json")
    assert r.code == 2 and "--tta averages a --condition-check RUN" in r.stderr
    with_spec(run, "hflip")
    out = tmp_path / "refused.json"
    r = galprep("metrics", real, gen, "--condition-check", "runs/inc", "--tta", "2", "-o", out)
    assert not out.exists()
    assert r.code == 1 and r.stderr.count("\n") == 1 and "needs rot90" in r.stderr, r.stderr
