"""CIL2018 (Bernhardt et al., the "2-in-1" GAN): its data/ folder and Kaggle CSV formats.

config.py's layout: ``data/labeled/``, ``data/scored/`` and ``data/query/`` hold ``<Id>.png``
(1000×1000 greyscale in the original; small here); ``data/labeled.csv`` is ``Id,Actual`` with
1 = galaxy, 0 = corrupted; ``data/scored.csv`` is ``Id,Actual`` with scores 0–8; the query
images have no labels, and Kaggle's ``sample_submission.csv`` is the answer template.
"""

import numpy as np
from PIL import Image

from galtools.arrayfile import read_galaxies


def cil_data(root, n=4, size=12):
    data = root / "data"
    rng = np.random.default_rng(1)
    for part, first in (("labeled", 1000), ("scored", 2000), ("query", 3000)):
        (data / part).mkdir(parents=True)
        for k in range(n):
            img = rng.integers(0, 256, (size, size), dtype=np.uint8)
            Image.fromarray(img, "L").save(data / part / f"{first + k}.png")
    (data / "labeled.csv").write_text(
        "Id,Actual\n" + "".join(f"{1000 + k},{float(k % 2)}\n" for k in range(n))
    )
    (data / "scored.csv").write_text(
        "Id,Actual\n" + "".join(f"{2000 + k},{0.5 + 2 * k}\n" for k in range(n))
    )
    (data / "sample_submission.csv").write_text(
        "Id,Predicted\n" + "".join(f"{3000 + k},0\n" for k in range(n))
    )
    return data


def test_scored_and_labeled_take_the_csv_named_after_their_folder(galprep, tmp_path):
    data = cil_data(tmp_path)
    for part, column in (("scored", [0.5, 2.5, 4.5, 6.5]), ("labeled", [0, 1, 0, 1])):
        out = tmp_path / f"{part}.h5"
        r = galprep("import", "kaggle-png", data / part, "-o", out)
        assert r.code == 0, r.stderr
        assert f"labels from {data / part}.csv" in r.stderr  # says which CSV it adopted
        batch, meta = read_galaxies(out)
        np.testing.assert_allclose(batch["actual"], column)
        assert meta["labels_csv"].endswith(f"{part}.csv")


def test_query_images_unlabelled(galprep, tmp_path):
    data = cil_data(tmp_path)
    out = tmp_path / "query.h5"
    # beside query/ are labeled.csv and scored.csv: neither is adopted silently
    r = galprep("import", "kaggle-png", data / "query", "-o", out)
    assert r.code != 0 and "several CSV files (labeled.csv, scored.csv)" in r.stderr
    assert "--csv none" in r.stderr
    r = galprep("import", "kaggle-png", data / "query", "-o", out, "--csv", "none")
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(out)
    assert list(batch["ids"]) == ["3000", "3001", "3002", "3003"]
    assert set(batch) == {"images", "ids"} and meta["labels_csv"] is None


def test_sample_submission_is_never_taken_as_labels(galprep, tmp_path):
    data = cil_data(tmp_path)
    (data / "labeled.csv").unlink()
    (data / "scored.csv").unlink()
    out = tmp_path / "query.h5"
    r = galprep("import", "kaggle-png", data / "query", "-o", out)
    assert r.code == 0, r.stderr
    batch, _ = read_galaxies(out)
    assert "predicted" not in batch and "labels from" not in r.stderr


def test_missing_csv_file_is_one_line(galprep, tmp_path):
    data = cil_data(tmp_path)
    r = galprep("import", "kaggle-png", data / "scored", "-o", tmp_path / "o.h5", "--csv", "x.csv")
    assert r.code != 0 and "x.csv: no such CSV file" in r.stderr and "Traceback" not in r.stderr


def scored_like(n, seed, size=32):
    """Sky-dominated uint8 images (as CIL2018's scored set: mostly dark sky, a few bright
    objects) whose score grows with the number and brightness of the objects."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    images, scores = np.empty((n, size, size, 1), np.uint8), np.empty(n)
    for k in range(n):
        img = rng.normal(3.0, 1.5, (size, size))
        count = rng.integers(0, 6)
        for _ in range(count):
            cy, cx = rng.uniform(4, size - 4, 2)
            amp, width = rng.uniform(40, 220), rng.uniform(0.8, 2.5)
            img += amp * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * width**2))
        images[k, ..., 0] = np.clip(img, 0, 255).astype(np.uint8)
        scores[k] = np.clip(0.6 * count + 0.004 * img.sum() / size + rng.normal(0, 0.3), 0, 8)
    return images, scores


def cil_baseline_mae(train_x, train_y, dev_x, dev_y):
    """CIL2018's baseline_train.py in numpy: extract_feats (np.histogram, 10 bins, raw counts),
    Ridge(alpha) chosen by 5-fold GridSearchCV on MAE (KFold, unshuffled), refit on all."""
    feats = lambda xs: np.array([np.histogram(x, bins=10)[0] for x in xs], np.float64)  # noqa: E731
    a, b = feats(train_x), feats(dev_x)

    def ridge(x, y, alpha):
        mx, my = x.mean(0), y.mean()
        w = np.linalg.solve(
            (x - mx).T @ (x - mx) + alpha * np.eye(x.shape[1]), (x - mx).T @ (y - my)
        )
        return w, my - mx @ w

    folds = np.array_split(np.arange(len(a)), 5)
    best = None
    for alpha in [1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10, 100, 1000]:
        mae = []
        for f in folds:
            keep = np.setdiff1d(np.arange(len(a)), f)
            w, c = ridge(a[keep], train_y[keep], alpha)
            mae.append(np.mean(np.abs(a[f] @ w + c - train_y[f])))
        if best is None or np.mean(mae) < best[0]:
            best = (np.mean(mae), alpha)
    w, c = ridge(a, train_y, best[1])
    return float(np.mean(np.abs(b @ w + c - dev_y)))


def test_ridge_baseline_matches_cil2018(galprep, tmp_path):
    from galtools.arrayfile import write_galaxies
    from galtools.runs import load_run

    train_x, train_y = scored_like(800, 1)
    dev_x, dev_y = scored_like(300, 2)
    write_galaxies(tmp_path / "scored.h5", {"images": train_x, "actual": train_y})
    reference = cil_baseline_mae(train_x[..., 0], train_y, dev_x[..., 0], dev_y)
    maes = {}
    for features in ("cil2018", "quantile"):
        run = tmp_path / features
        r = galprep(
            "train-batch", tmp_path / "scored.h5", "--model", "ridge-histogram",
            "--target", "actual", "--features", features, "-o", run,
        )  # fmt: skip
        assert r.code == 0, r.stderr
        pred = load_run(run).predict(dev_x)
        maes[features] = float(np.mean(np.abs(pred - dev_y)))
    assert abs(maes["cil2018"] - reference) <= 0.05 * reference, (maes, reference)
    assert np.isfinite(maes["quantile"])  # galtools' earlier features stay available


def test_forest_baseline_matches_cil2018(galprep, tmp_path):
    """baseline_train.py's RandomForest: criterion MAE, max_features=None, n_estimators by
    5-fold GridSearchCV on MAE; galtools stores the trees as arrays and predicts in numpy."""
    pytest = __import__("pytest")
    sklearn = pytest.importorskip("sklearn")
    del sklearn
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import GridSearchCV

    from galtools.arrayfile import write_galaxies
    from galtools.runs import load_run

    train_x, train_y = scored_like(300, 3)
    dev_x, dev_y = scored_like(150, 4)
    write_galaxies(tmp_path / "scored.h5", {"images": train_x, "actual": train_y})
    feats = lambda xs: np.array([np.histogram(x, bins=10)[0] for x in xs[..., 0]])  # noqa: E731
    cil = GridSearchCV(
        RandomForestRegressor(
            criterion="absolute_error", max_features=None, oob_score=True, random_state=10
        ),
        {"n_estimators": [5, 10, 50]},
        scoring="neg_mean_absolute_error",
        cv=5,
    )
    reference = float(
        np.mean(np.abs(cil.fit(feats(train_x), train_y).predict(feats(dev_x)) - dev_y))
    )
    # galtools reads labels as float32: the same search on those labels gives its very trees
    same = cil.fit(feats(train_x), train_y.astype(np.float32).astype(np.float64))
    run = tmp_path / "forest"
    r = galprep(
        "train-batch", tmp_path / "scored.h5", "--model", "forest-histogram", "--target",
        "actual", "--trees", "5,10,50", "--seed", "10", "-o", run,
    )  # fmt: skip
    assert r.code == 0, r.stderr
    pred = load_run(run).predict(dev_x)
    np.testing.assert_allclose(pred, same.predict(feats(dev_x)), rtol=1e-9, atol=1e-9)
    mae = float(np.mean(np.abs(pred - dev_y)))
    assert abs(mae - reference) <= 0.05 * reference
    with np.load(run / "weights.npz", allow_pickle=False) as f:  # plain arrays, no pickle
        assert f["offsets"][-1] == len(f["left"]) and str(f["features"]) == "cil2018"


def test_forest_options_are_checked(galprep, tmp_path):
    from galtools.arrayfile import write_galaxies

    x, y = scored_like(20, 5)
    write_galaxies(tmp_path / "s.h5", {"images": x, "actual": y})
    args = ["train-batch", tmp_path / "s.h5", "--model", "forest-histogram", "--target", "actual"]
    r = galprep(*args, "--trees", "5,many", "-o", tmp_path / "a")
    assert r.code == 1 and "--trees: numbers of trees, got" in r.stderr
    r = galprep(*args, "--criterion", "gini", "-o", tmp_path / "b")
    assert r.code == 2 and "--criterion" in r.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
