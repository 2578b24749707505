"""``forest-histogram``: the CIL2018 random-forest baseline on per-image pixel histograms.

CIL2018's ``baseline_train.py`` fits scikit-learn's ``RandomForestRegressor(criterion="mae",
max_features=None, oob_score=True, random_state=10)`` with ``n_estimators`` chosen from
5, 10, 50, 100 by 5-fold ``GridSearchCV`` on MAE, on 10-bin histograms of each image over its
own min–max.  This model does the same with scikit-learn (``pip install scikit-learn``), seeded
by ``--seed``.  The fitted trees are stored as plain arrays in ``weights.npz`` (no pickle) and
evaluated with numpy, so using a run needs no scikit-learn.  Unlike the streamed ridge, the
features (bins × bands numbers per image) are held in memory for the fit.
"""

import os

import numpy as np

from galtools.errors import GalError
from galtools.models import TARGET, Column, ModelSpec
from galtools.models.ridge import (
    BINS_OPTION,
    FEATURES_OPTION,
    histogram_features,
    histogram_settings,
    load_weights,
    quantile_edges,
    stored_features,
)
from galtools.params import Option

TREES = (5, 10, 50, 100)
CRITERIA = ("absolute_error", "squared_error")


def _sklearn():
    try:
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.model_selection import GridSearchCV
    except ImportError:
        raise GalError(
            "forest-histogram needs scikit-learn to fit (pip install scikit-learn); "
            "using a fitted run does not"
        ) from None
    return RandomForestRegressor, GridSearchCV


def export_trees(forest):
    """Arrays of every tree of a fitted sklearn forest, concatenated, with node offsets."""
    parts = {k: [] for k in ("left", "right", "feature", "threshold", "value")}
    offsets = [0]
    for est in forest.estimators_:
        t = est.tree_
        parts["left"].append(t.children_left.astype(np.int64))
        parts["right"].append(t.children_right.astype(np.int64))
        parts["feature"].append(t.feature.astype(np.int64))
        parts["threshold"].append(t.threshold.astype(np.float64))
        parts["value"].append(t.value[:, 0, 0].astype(np.float64))
        offsets.append(offsets[-1] + t.node_count)
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["offsets"] = np.array(offsets, np.int64)
    return out


def predict_trees(trees, x):
    """Mean over the stored trees of each row's leaf value (sklearn's forest prediction)."""
    x = np.asarray(x, np.float64)
    rows = np.arange(len(x))
    total = np.zeros(len(x))
    offsets = trees["offsets"]
    for t in range(len(offsets) - 1):
        base = offsets[t]
        left = trees["left"][base : offsets[t + 1]]
        right = trees["right"][base : offsets[t + 1]]
        feature = trees["feature"][base : offsets[t + 1]]
        threshold = trees["threshold"][base : offsets[t + 1]]
        node = np.zeros(len(x), np.int64)
        inner = left[node] != -1
        while inner.any():
            n = node[inner]
            go_left = x[rows[inner], feature[n]] <= threshold[n]
            node[inner] = np.where(go_left, left[n], right[n])
            inner = left[node] != -1
        total += trees["value"][base + node]
    return total / (len(offsets) - 1)


class ForestHistogram(ModelSpec):
    name = "forest-histogram"
    task = "regression"
    kind = "closed-form"
    description = "random forest on per-image pixel histograms (CIL2018's baseline; scikit-learn)"
    options = (
        TARGET,
        FEATURES_OPTION,
        BINS_OPTION,
        Option(
            "trees",
            "Numbers of trees tried by 5-fold CV on MAE.",
            kind="list",
            default=",".join(map(str, TREES)),
            metavar="N[,N...]",
        ),
        Option(
            "criterion",
            "Split criterion: absolute_error (CIL2018's 'mae'; slow on large sets) or "
            "squared_error.",
            kind="choice",
            choices=CRITERIA,
            default="absolute_error",
        ),
    )
    columns = (Column("target", "raw"),)

    def configure(self, options, info):
        features, bins = histogram_settings(options)
        try:
            trees = sorted({int(t) for t in options.get("trees") or TREES})
        except ValueError:
            raise GalError(f"--trees: numbers of trees, got {options.get('trees')!r}") from None
        if not trees or min(trees) < 1:
            raise GalError("--trees: at least one positive number of trees")
        criterion = options.get("criterion") or "absolute_error"
        return {"features": features, "bins": bins, "trees": trees, "criterion": criterion}

    def fit(self, chunks, config, run_dir):
        """Gather the features of every row, grid-search the forest, store its trees."""
        forest_cls, grid_cls = _sklearn()
        mc = config["model_config"]
        xs, ys, edges = [], [], None
        for x, y in chunks:
            if edges is None:
                edges = quantile_edges(x, mc["bins"])
            xs.append(histogram_features(mc["features"], x, mc["bins"], edges))
            ys.append(np.asarray(y, np.float64).reshape(-1))
        if not xs:
            raise GalError("no training data for forest-histogram")
        x, y = np.concatenate(xs), np.concatenate(ys)
        seed = int(config["training"]["seed"])
        base = forest_cls(
            criterion=mc["criterion"], max_features=None, oob_score=True, random_state=seed
        )
        search = grid_cls(
            base, {"n_estimators": mc["trees"]}, scoring="neg_mean_absolute_error", cv=5
        )
        import warnings

        with warnings.catch_warnings():  # "some inputs do not have OOB scores" with few trees
            warnings.simplefilter("ignore", UserWarning)
            search.fit(x, y)
        best = search.best_estimator_
        from galtools.atomic import atomic_open

        with atomic_open(os.path.join(run_dir, "weights.npz"), "wb", overwrite=True) as fh:
            np.savez(
                fh,
                edges=edges,
                features=np.array(mc["features"]),
                bins=np.int64(mc["bins"]),
                **export_trees(best),
            )
        return {
            "n_estimators": int(best.n_estimators),
            "trees_tried": mc["trees"],
            "cv_mae": [float(-s) for s in search.cv_results_["mean_test_score"]],
            "oob_r2": float(best.oob_score_),
            "n": int(len(y)),
        }

    def features(self, run, images):
        return stored_features(load_weights(run, "forest"), images)

    def predict(self, run, images):
        wts = load_weights(run, "forest")
        return predict_trees(wts, stored_features(wts, images))


forest_histogram = ForestHistogram()
