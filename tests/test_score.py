"""galprep score: figures against hand computations, ensembles, bias fits, Kaggle CSV."""

import json

import numpy as np
import pytest

from galtools.arrayfile import write_galaxies
from galtools.errors import GalError
from galtools.meta import new_meta
from galtools.scoring import (
    classification_metrics,
    confusion_matrix,
    correct_bias,
    fit_bias,
    parse_clip,
    regression_metrics,
    score_file,
    top_k_accuracy,
)
from tests.fakerun import FakeRun, install

PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
KIND = np.array([0, 2, 2, 1])
CLASSES = ["elliptical", "spiral", "merger"]


def test_regression_metrics_by_hand():
    m = regression_metrics([1, 2, 3, 4], [1.5, 2, 2, 5])
    # residuals −0.5, 0, 1, −1
    assert m["n"] == 4
    assert m["mae"] == pytest.approx(0.625)
    assert m["rmse"] == pytest.approx(0.75)
    assert m["bias"] == pytest.approx(-0.125)
    m = regression_metrics([1, 2, 3], [1, np.nan, 4])
    assert m["n"] == 2 and m["missing_truth"] == 1 and m["mae"] == pytest.approx(0.5)


def test_classification_metrics_by_hand():
    assert top_k_accuracy(PROBS, KIND, 1) == 0.5
    assert top_k_accuracy(PROBS, KIND, 2) == 1.0
    cm = confusion_matrix(KIND, PROBS.argmax(axis=1), 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [1, 0, 0], [0, 1, 1]])
    m = classification_metrics(np.vstack([PROBS, PROBS[:1]]), np.append(KIND, -1), CLASSES)
    assert m["n"] == 4 and m["missing_truth"] == 1
    assert m["accuracy"] == 0.5
    assert m["top_k"] == {"1": 0.5, "2": 1.0, "3": 1.0}
    assert m["confusion_matrix"]["counts"] == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
    assert m["per_class"]["merger"] == {"n": 2, "recall": 0.5, "precision": 1.0}
    assert m["per_class"]["elliptical"] == {"n": 1, "recall": 1.0, "precision": 0.5}
    assert m["per_class"]["spiral"] == {"n": 1, "recall": 0.0, "precision": 0.0}
    two = classification_metrics(PROBS[:1], KIND[:1], CLASSES)
    assert two["per_class"]["merger"] == {"n": 0, "recall": None, "precision": None}


def test_bias_fit_and_correction_recover_truth():
    truth = np.linspace(10, 80, 15)
    pred = 0.8 * truth - 0.5  # i_pred = (1 − m) i_true − b with m = 0.2, b = 0.5
    fit = fit_bias(pred, truth)
    assert fit["m"] == pytest.approx(0.2) and fit["b"] == pytest.approx(0.5)
    np.testing.assert_allclose(correct_bias(pred, fit), truth)
    with pytest.raises(GalError, match="two different truth values"):
        fit_bias([1, 2], [3, 3])


def test_parse_clip():
    assert parse_clip("0:8") == (0.0, 8.0)
    assert parse_clip(":8") == (-np.inf, 8.0)
    for bad in ("8:0", "a:b", "3"):
        with pytest.raises(GalError, match="LO:HI"):
            parse_clip(bad)


# ----------------------------------------------------------------------------------- files


def constant_images(values, shape=(8, 8, 3)):
    return np.broadcast_to(
        np.asarray(values, np.float32)[:, None, None, None], (len(values), *shape)
    ).copy()


def regression_file(path, values=(1, 2, 3, 4), truth=(1.5, 2, 2, 5)):
    batch = {
        "images": constant_images(values),
        "ids": np.array([f"g{i}" for i in range(len(values))]),
        "inclination": np.asarray(truth, np.float64),
    }
    write_galaxies(path, batch, new_meta(bands="gri"))
    return path


def class_file(path, labels=KIND, classes=CLASSES):
    images = np.broadcast_to(PROBS[:, None, None, :], (4, 8, 8, 3)).astype(np.float32)
    batch = {"images": images, "ids": np.array(["a", "b", "c", "d"]), "kind": labels}
    write_galaxies(path, batch, new_meta(bands="gri", classes={"kind": classes}))
    return path


def test_score_regression_csv_and_report(tmp_path):
    src = regression_file(tmp_path / "d.h5")
    run = FakeRun("r1", "vgg", target="inclination")
    out = tmp_path / "p.csv"
    info = score_file(
        [run],
        str(src),
        str(out),
        truth="inclination",
        report=str(tmp_path / "rep.json"),
        plot=str(tmp_path / "res.png"),
        chunk_size=3,
    )
    assert out.read_text() == (
        "id,inclination,truth,residual\ng0,1,1.5,-0.5\ng1,2,2,0\ng2,3,2,1\ng3,4,5,-1\n"
    )
    assert run.calls == [3, 1]  # streamed in chunks
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert rep["metrics"]["mae"] == pytest.approx(0.625) == info["metrics"]["mae"]
    assert (tmp_path / "res.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "rep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ensemble_is_the_mean_and_reports_spread(tmp_path):
    src = regression_file(tmp_path / "d.h5")
    runs = [
        FakeRun("r1", "vgg", target="inclination", scale=1.0),
        FakeRun("r2", "vgg", target="inclination", scale=3.0),
    ]
    out = tmp_path / "p.csv"
    info = score_file(
        runs, str(src), str(out), truth="inclination", report=str(tmp_path / "rep.json")
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "id,inclination,inclination_std,truth,residual"
    # members v and 3v: mean 2v, std v
    assert lines[1:] == ["g0,2,1,1.5,0.5", "g1,4,2,2,2", "g2,6,3,2,4", "g3,8,4,5,3"]
    assert info["ensemble"] == {"members": 2, "mean_spread": 2.5, "max_spread": 4.0}
    assert [m["mae"] for m in info["member_metrics"]] == pytest.approx([0.625, 4.875])
    assert info["metrics"]["mae"] == pytest.approx(2.375)


def test_kaggle_csv_is_byte_exact(tmp_path):
    src = regression_file(tmp_path / "d.h5", values=(-1, 2.5, 9.25, 0.125))
    out = tmp_path / "k.csv"
    score_file([FakeRun("r", "vgg", target="t")], str(src), str(out), kaggle=True, clip=(0.0, 8.0))
    assert out.read_bytes() == b"Id,Predicted\ng0,0\ng1,2.5\ng2,8\ng3,0.125\n"


def test_bias_fit_then_correction(tmp_path):
    truth = np.linspace(10, 80, 8)
    src = regression_file(tmp_path / "d.h5", values=0.8 * truth - 0.5, truth=truth)
    run = FakeRun("r", "vgg", target="inclination")
    bias = tmp_path / "bias.json"
    score_file(
        [run], str(src), str(tmp_path / "a.csv"), truth="inclination", fit_bias_path=str(bias)
    )
    fit = json.loads(bias.read_text())
    assert fit["m"] == pytest.approx(0.2, abs=1e-5) and fit["b"] == pytest.approx(0.5, abs=1e-4)
    assert fit["target"] == "inclination"
    info = score_file(
        [run], str(src), str(tmp_path / "b.csv"), truth="inclination", bias_correction=fit
    )
    assert info["metrics"]["mae"] < 1e-4


def test_score_classification(tmp_path):
    src = class_file(tmp_path / "c.npz")
    run = FakeRun("c", "cnn-classifier", target="kind", class_names=CLASSES)
    out, conf = tmp_path / "p.csv", tmp_path / "cm.json"
    info = score_file([run], str(src), str(out), truth="kind", confusion=str(conf))
    lines = out.read_text().splitlines()
    assert lines[0] == "id,kind,p_elliptical,p_spiral,p_merger,truth"
    assert lines[1] == "a,elliptical,0.7,0.2,0.1,elliptical"
    assert lines[2] == "b,spiral,0.1,0.6,0.3,merger"
    assert info["metrics"]["accuracy"] == 0.5
    cm = json.loads(conf.read_text())
    assert cm["classes"] == CLASSES and cm["counts"] == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
    assert (tmp_path / "cm.png").stat().st_size > 1000
    k = tmp_path / "k.csv"
    score_file([run], str(src), str(k), kaggle=True)
    assert k.read_text() == "Id,Predicted\na,elliptical\nb,spiral\nc,merger\nd,elliptical\n"


def test_truth_classes_are_matched_by_name(tmp_path):
    # the file lists the same classes in another order: codes are remapped
    order = ["merger", "elliptical", "spiral"]
    codes = np.array([order.index(CLASSES[k]) for k in KIND])
    src = class_file(tmp_path / "c.h5", labels=codes, classes=order)
    run = FakeRun("c", "cnn-classifier", target="kind", class_names=CLASSES)
    info = score_file([run], str(src), str(tmp_path / "p.csv"), truth="kind")
    assert info["metrics"]["accuracy"] == 0.5


def test_class_count_mismatch(tmp_path):
    src = class_file(tmp_path / "c.h5", labels=np.array([0, 1, 0, 1]), classes=["a", "b"])
    run = FakeRun("c", "cnn-classifier", target="kind", class_names=CLASSES)
    out = tmp_path / "p.csv"
    with pytest.raises(GalError, match="'kind' has 2 classes .* the runs have 3"):
        score_file([run], str(src), str(out), truth="kind")
    assert not out.exists()


def test_score_model_and_bad_runs(tmp_path):
    src = regression_file(tmp_path / "d.h5")
    out = tmp_path / "s.csv"
    score_file([FakeRun("g", "twoinone", scale=2.0)], str(src), str(out))
    assert out.read_text().splitlines() == ["id,score", "g0,2", "g1,4", "g2,6", "g3,8"]
    with pytest.raises(GalError, match="only generates images"):
        score_file([FakeRun("g", "dcgan")], str(src), str(tmp_path / "x.csv"))
    with pytest.raises(GalError, match="galprep denoise"):
        score_file([FakeRun("g", "resnet-denoiser")], str(src), str(tmp_path / "x.csv"))
    with pytest.raises(GalError, match="images are 8×8×3, run r takes 16×16×3"):
        score_file(
            [FakeRun("r", "vgg", target="t", input_shape=(16, 16, 3))],
            str(src),
            str(tmp_path / "x.csv"),
        )
    with pytest.raises(GalError, match="predicts 'a'"):
        score_file(
            [FakeRun("r", "vgg", target="b"), FakeRun("q", "vgg", target="a")],
            str(src),
            str(tmp_path / "x.csv"),
        )
    assert not (tmp_path / "x.csv").exists()


# ----------------------------------------------------------------------------------- CLI


def test_cli_score_with_fake_runs(galprep, tmp_path, monkeypatch):
    src = regression_file(tmp_path / "d.npz")
    install(
        monkeypatch,
        {
            "r1": FakeRun("r1", "vgg", target="inclination"),
            "r2": FakeRun("r2", "vgg", target="inclination", scale=3.0),
        },
    )
    r = galprep(
        "score", "r1", "r2", "-", "-o", "-", "--truth", "inclination", input=src.read_bytes()
    )
    assert r.code == 0, r.stderr
    assert r.out.splitlines()[1] == "g0,2,1,1.5,0.5"
    assert "ensemble of 2" in r.stderr and "MAE 2.375" in r.stderr
    bias = tmp_path / "b.json"
    r = galprep(
        "score",
        "r1",
        src,
        "-o",
        tmp_path / "p.csv",
        "--truth",
        "inclination",
        "--fit-bias",
        bias,
        "--report",
        tmp_path / "rep.json",
    )
    assert r.code == 0, r.stderr and bias.exists()
    r = galprep(
        "score",
        "r1",
        src,
        "-o",
        tmp_path / "q.csv",
        "--bias-correction",
        bias,
        "--kaggle",
        "--clip",
        "0:8",
    )
    assert r.code == 0, r.stderr
    assert (tmp_path / "q.csv").read_text().startswith("Id,Predicted\ng0,")


def test_sharded_scores_merge_into_the_unsharded_csv(galprep, tmp_path, monkeypatch):
    """A job array of score shards, joined by merge: one header, every row, in order."""
    src = regression_file(tmp_path / "d.h5")
    install(monkeypatch, {"r1": FakeRun("r1", "vgg", target="inclination")})
    whole = tmp_path / "all.csv"
    assert galprep("score", "r1", src, "-o", whole, "--truth", "inclination").code == 0
    for k in range(3):
        r = galprep(
            "score",
            "r1",
            src,
            "-o",
            tmp_path / "p.csv",
            "--truth",
            "inclination",
            "--shard",
            f"{k}/3",
        )
        assert r.code == 0, r.stderr
    shards = [tmp_path / f"p.shard{k:03d}-of-003.csv" for k in range(3)]
    merged = tmp_path / "merged.csv"
    r = galprep("merge", *shards, "-o", merged)
    assert r.code == 0 and "rows" in r.stderr, r.stderr
    assert merged.read_text() == whole.read_text()
    kaggle = tmp_path / "k.csv"
    assert galprep("score", "r1", src, "-o", kaggle, "--kaggle", "--shard", "0/3").code == 0
    r = galprep("merge", shards[0], tmp_path / "k.shard000-of-003.csv", "-o", tmp_path / "x.csv")
    assert r.code == 1 and "header" in r.stderr and not (tmp_path / "x.csv").exists()
    r = galprep("merge", shards[0], src, "-o", tmp_path / "x.csv")
    assert r.code == 1 and "CSV files cannot be merged with array files" in r.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["nope"], "nope: not a training run"),
        (["r1", "--truth", "missing"], "no label column 'missing'"),
        (["r1", "--fit-bias", "b.json"], "need --truth"),
        (["r1", "--clip", "9:1"], "LO:HI"),
    ],
)
def test_cli_score_bad_input(galprep, tmp_path, monkeypatch, args, words):
    src = regression_file(tmp_path / "d.h5")
    install(monkeypatch, {"r1": FakeRun("r1", "vgg", target="inclination")})
    monkeypatch.chdir(tmp_path)
    r = galprep("score", *args, src, "-o", "p.csv")
    assert r.code == 1, r.stderr
    assert words in r.stderr and r.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


# ----------------------------------------------------------------------------------- real runs


def test_real_regression_ensemble(galprep, tmp_path):
    from galtools.arrayfile import read_galaxies
    from galtools.runs import load_run
    from tests.tinyruns import tiny_data, tiny_run

    a, b, data = tiny_run("vgg"), tiny_run("vgg-b"), tiny_data()
    batch = read_galaxies(data)[0]
    pa = load_run(a).predict(batch["images"])
    pb = load_run(b).predict(batch["images"])
    rep = tmp_path / "rep.json"
    r = galprep(
        "score",
        a,
        b,
        data,
        "-o",
        tmp_path / "p.csv",
        "--truth",
        "inclination",
        "--report",
        rep,
        "--plot",
        tmp_path / "res.png",
        "--chunk-size",
        "20",
    )
    assert r.code == 0, r.stderr
    rows = [line.split(",") for line in (tmp_path / "p.csv").read_text().splitlines()]
    assert rows[0] == ["id", "inclination", "inclination_std", "truth", "residual"]
    assert [row[0] for row in rows[1:]] == list(batch["ids"])
    mean = (pa + pb) / 2
    np.testing.assert_allclose([float(row[1]) for row in rows[1:]], mean, rtol=1e-5)
    np.testing.assert_allclose(
        [float(row[2]) for row in rows[1:]], np.abs(pa - pb) / 2, rtol=1e-4, atol=1e-4
    )
    info = json.loads(rep.read_text())
    res = mean - batch["inclination"]
    assert info["metrics"]["mae"] == pytest.approx(np.mean(np.abs(res)), rel=1e-5)
    assert info["metrics"]["rmse"] == pytest.approx(np.sqrt(np.mean(res**2)), rel=1e-5)
    assert info["metrics"]["bias"] == pytest.approx(np.mean(res), rel=1e-5, abs=1e-6)
    assert len(info["member_metrics"]) == 2
    k = tmp_path / "k.csv"
    assert galprep("score", a, data, "-o", k, "--kaggle", "--clip", "20:60").code == 0
    lines = k.read_text().splitlines()
    assert lines[0] == "Id,Predicted" and len(lines) == 65
    assert lines[1] == f"t000,{float(np.clip(pa[0], 20, 60)):.6g}"


def test_real_classifier_and_mismatches(galprep, tmp_path):
    from tests.tinyruns import CLASSES, tiny_data, tiny_run

    run, data = tiny_run("cnn-classifier"), tiny_data()
    r = galprep(
        "score",
        run,
        data,
        "-o",
        tmp_path / "c.csv",
        "--truth",
        "kind",
        "--confusion",
        tmp_path / "cm.json",
        "--top-k",
        "2",
    )
    assert r.code == 0, r.stderr
    cm = json.loads((tmp_path / "cm.json").read_text())
    assert cm["classes"] == CLASSES and np.sum(cm["counts"]) == 64
    assert (tmp_path / "cm.png").exists()
    header = (tmp_path / "c.csv").read_text().splitlines()[0]
    assert header == "id,kind,p_elliptical,p_spiral,p_merger,truth"

    two = tmp_path / "two.h5"
    write_galaxies(
        two,
        {"images": np.zeros((4, 8, 8, 3), np.float32), "kind": np.array([0, 1, 0, 1])},
        new_meta(bands="gri", classes={"kind": ["a", "b"]}),
    )
    r = galprep("score", run, two, "-o", tmp_path / "x.csv", "--truth", "kind")
    assert r.code == 1 and "'kind' has 2 classes (a, b), the runs have 3" in r.stderr
    big = tmp_path / "big.h5"
    write_galaxies(big, {"images": np.zeros((2, 16, 16, 3), np.float32)}, new_meta(bands="gri"))
    r = galprep("score", run, big, "-o", tmp_path / "x.csv")
    assert r.code == 1 and "images are 16×16×3" in r.stderr and "takes 8×8×3" in r.stderr
    assert not (tmp_path / "x.csv").exists()


def test_images_with_nan_or_infinite_pixels_are_refused(galprep, tmp_path):
    """A network turns NaN pixels into a finite-looking value: score refuses them, as
    train-batch does, naming the file and the first such row."""
    from galtools.arrayfile import read_galaxies, write_galaxies
    from tests.tinyruns import tiny_data, tiny_run

    batch, meta = read_galaxies(tiny_data())
    batch["images"][5, 0, 0, 0] = np.nan
    batch["images"][9, 1, 1, 0] = np.inf
    bad = tmp_path / "bad.h5"
    write_galaxies(bad, batch, meta)
    r = galprep("score", tiny_run("vgg"), bad, "-o", tmp_path / "p.csv")
    assert r.code == 1 and r.stderr.count("\n") == 1, r.stderr
    assert str(bad) in r.stderr and "NaN or infinite pixels (2 images, first row 5)" in r.stderr
    assert not (tmp_path / "p.csv").exists()
