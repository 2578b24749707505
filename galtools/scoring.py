"""Predictions of trained runs on galaxy files, and their error figures.

Regression runs give one value per galaxy (physical units), classification runs class
probabilities, runs of a model that scores images (a GAN whose discriminator has a score
head) a realism score.  Several runs of the same kind average into
an ensemble (mean of the values or of the probabilities) whose spread is the standard deviation
across members.  With test-time augmentation (``tta`` K > 1, see :mod:`galtools.tta`) each
member's output is first the mean over K flips and quarter turns of the image, whose spread
(standard deviation over the transforms, averaged over members) is reported too.  With a
truth column: MAE, RMSE, bias for regression; accuracy, top-k and the confusion matrix for
classification.  The linear bias model fitted by :func:`fit_bias` is
``i_pred = (1 − m)·i_true − b``, so that ``i_corrected = (i_pred + b)/(1 − m)``.
"""

import json
import math
import re

import numpy as np

from galtools.errors import GalError, InputError

# ----------------------------------------------------------------------------------- figures


def regression_metrics(pred, truth):
    """n, MAE, RMSE, bias (mean of pred − truth) and residual σ over rows with a finite truth."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    ok = np.isfinite(truth) & np.isfinite(pred)
    r = pred[ok] - truth[ok]
    if r.size == 0:
        raise GalError("no rows with a finite truth value to compare with")
    return {
        "n": int(r.size),
        "mae": float(np.mean(np.abs(r))),
        "rmse": float(math.sqrt(np.mean(r**2))),
        "bias": float(np.mean(r)),
        "residual_std": float(np.std(r)),
        "missing_truth": int((~ok).sum()),
    }


def confusion_matrix(truth, predicted, k):
    """K×K counts: rows are the true class, columns the predicted one."""
    out = np.zeros((k, k), np.int64)
    np.add.at(out, (np.asarray(truth, np.int64), np.asarray(predicted, np.int64)), 1)
    return out


def top_k_accuracy(probs, truth, k):
    """Fraction of rows whose true class is among the ``k`` most probable ones."""
    probs = np.asarray(probs)
    k = min(k, probs.shape[1])
    best = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(best == np.asarray(truth)[:, None], axis=1)))


def classification_metrics(probs, truth, class_names, top_k=3):
    """Accuracy, top-1…top-k, per-class recall/precision and the confusion matrix.

    Rows whose truth code is negative (no class) are left out.
    """
    probs, truth = np.asarray(probs), np.asarray(truth, np.int64)
    ok = truth >= 0
    probs, truth = probs[ok], truth[ok]
    if truth.size == 0:
        raise GalError("no rows with a true class to compare with")
    k = len(class_names)
    predicted = np.argmax(probs, axis=1)
    cm = confusion_matrix(truth, predicted, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.diag(cm) / cm.sum(axis=1)
        precision = np.diag(cm) / cm.sum(axis=0)
    return {
        "n": int(truth.size),
        "missing_truth": int((~ok).sum()),
        "accuracy": float(np.mean(predicted == truth)),
        "top_k": {str(j): top_k_accuracy(probs, truth, j) for j in range(1, min(top_k, k) + 1)},
        "per_class": {
            name: {
                "n": int(cm[i].sum()),
                "recall": _num(recall[i]),
                "precision": _num(precision[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": {
            "classes": list(class_names),
            "rows": "true class",
            "columns": "predicted class",
            "counts": cm.tolist(),
        },
    }


def _num(x):
    return None if not np.isfinite(x) else float(x)


def ensemble(members):
    """Mean and standard deviation across members (axis 0 of a stacked array)."""
    stack = np.asarray(members, np.float64)
    return stack.mean(axis=0), stack.std(axis=0)


# ----------------------------------------------------------------------------------- bias


def fit_bias(pred, truth):
    """Least-squares fit of i_pred = (1 − m)·i_true − b: {'m', 'b', 'n'}."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    ok = np.isfinite(pred) & np.isfinite(truth)
    pred, truth = pred[ok], truth[ok]
    if pred.size < 2 or np.ptp(truth) == 0:
        raise GalError("cannot fit a bias: need at least two different truth values")
    slope, intercept = np.polyfit(truth, pred, 1)
    if abs(slope) < 1e-6:
        raise GalError("cannot fit a bias: predictions do not depend on the truth (slope 0)")
    return {"m": float(1.0 - slope), "b": float(-intercept), "n": int(pred.size)}


def correct_bias(pred, correction):
    """i_corrected = (i_pred + b)/(1 − m)."""
    return (np.asarray(pred, np.float64) + correction["b"]) / (1.0 - correction["m"])


def load_bias(path, target=None):
    """A bias correction JSON written by --fit-bias (checked)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror})") from None
    except ValueError:
        raise InputError(path, "not valid JSON") from None
    return check_bias(data, path, target)


def check_bias(data, source="correction", target=None):
    """``data`` if it is a usable bias correction ({'m', 'b'} numbers, m ≠ 1), else an
    InputError naming ``source``."""
    path = source
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), (int, float)) and math.isfinite(data[k]) for k in ("m", "b")
    ):
        raise InputError(path, "not a bias correction (needs numbers 'm' and 'b')")
    if data["m"] == 1.0:
        raise InputError(path, "m = 1 makes the correction (i + b)/(1 − m) undefined")
    if target and data.get("target") not in (None, target):
        raise InputError(path, f"correction for '{data['target']}', the runs predict '{target}'")
    return data


def parse_clip(text):
    """'0:8' → (0.0, 8.0); either side may be empty ('0:')."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([^:]*):([^:]*)\s*", text)
    try:
        lo = float(m.group(1)) if m and m.group(1).strip() else -np.inf
        hi = float(m.group(2)) if m and m.group(2).strip() else np.inf
    except ValueError:
        m = None
    if not m or lo > hi:
        raise GalError(f"--clip must look like LO:HI (e.g. 0:8), got {text!r}")
    return lo, hi


# ----------------------------------------------------------------------------------- CSV


def fmt(value):
    """A float as CSV text (6 significant digits, 'nan' for missing)."""
    value = float(value)
    return "nan" if math.isnan(value) else format(value, ".6g")


def check_id(text):
    text = str(text)
    if any(c in text for c in ',"\n\r'):
        raise GalError(f"id {text!r} contains a comma, quote or newline: not writable as CSV")
    return text


def kaggle_lines(ids, predicted):
    """'Id,Predicted' rows (no header) for ids and predicted values or class names."""
    out = []
    for i, p in zip(ids, predicted):
        value = p if isinstance(p, str) else fmt(p)
        out.append(f"{check_id(i)},{value}\n")
    return "".join(out)


KAGGLE_HEADER = "Id,Predicted\n"


# ----------------------------------------------------------------------------------- runs


def run_kind(run):
    """'regression', 'classification' or 'score' for a run that can score images."""
    abilities = run.abilities
    if run.task in ("regression", "classification") and "predicts" in abilities:
        return run.task
    if "scores" in abilities:
        return "score"
    if "generates" in abilities:
        from galtools.models import able

        raise GalError(
            f"{run.path}: a {run.model_name} run only generates images, it has no "
            f"score (use galprep generate, or a run of a model that scores: {able('scores')})"
        )
    if "denoises" in abilities:
        raise GalError(f"{run.path}: a {run.model_name} run denoises images (use galprep denoise)")
    raise GalError(f"{run.path}: cannot score with a '{run.task}' run")


def shape_text(shape):
    return "×".join(str(s) for s in shape)


def check_image_shape(run, image_shape, path):
    """GalError when ``run`` cannot take images of ``image_shape``."""
    want = run.input_shape
    if want is None:
        return
    if tuple(want) != tuple(image_shape):
        raise GalError(
            f"{path}: images are {shape_text(image_shape)}, run {run.path} takes {shape_text(want)}"
        )


class Ensemble:
    """One or more runs of the same kind, target and classes, predicting together."""

    def __init__(self, runs):
        if not runs:
            raise GalError("no run given")
        self.runs = list(runs)
        first = self.runs[0]
        self.kind = run_kind(first)
        self.target = first.target if self.kind != "score" else "score"
        self.class_names = list(first.class_names) if self.kind == "classification" else None
        for run in self.runs[1:]:
            if run_kind(run) != self.kind:
                raise GalError(
                    f"{run.path}: a {run_kind(run)} run cannot join an ensemble of {self.kind} runs"
                )
            if self.kind != "score" and run.target != first.target:
                raise GalError(
                    f"{run.path}: predicts '{run.target}', {first.path} predicts '{first.target}'"
                )
            if self.kind == "classification" and list(run.class_names) != self.class_names:
                raise GalError(
                    f"{run.path}: classes {', '.join(run.class_names)} differ from "
                    f"{first.path}'s {', '.join(self.class_names)}"
                )

    def __len__(self):
        return len(self.runs)

    def _one(self, run, images, batch_size):
        if self.kind == "score":
            return np.asarray(run.score(images)["score"], np.float64)
        return np.asarray(run.predict(images, batch_size=batch_size), np.float64)

    def members(self, images, batch_size=256):
        """Per-member outputs stacked on axis 0: (M, N) values or (M, N, K) probabilities."""
        return np.stack([self._one(run, images, batch_size) for run in self.runs])

    def check_tta(self, k, image_shape, path):
        """The :func:`galtools.tta.plan` of ``k`` transforms, checked against every run."""
        from galtools import tta

        chosen = tta.plan(k, image_shape, path)
        if k > 1:
            for run in self.runs:
                tta.check_run(run, chosen)
        return chosen

    def tta_members(self, images, k, batch_size=256):
        """(M, K, N[, C]): each member's outputs on each of the first ``k`` transforms."""
        from galtools import tta

        return np.stack(
            [
                tta.predictions(lambda x, run=run: self._one(run, x, batch_size), images, k)
                for run in self.runs
            ]
        )

    def tta_reduce(self, views):
        """(members, spread) from :meth:`tta_members`' (M, K, N[, C]): each member's mean
        over the transforms, and per image the standard deviation over the transforms
        averaged over members (classification: of the ensemble's predicted class)."""
        members = views.mean(axis=1)
        spread = views.std(axis=1).mean(axis=0)
        if self.kind == "classification":
            best = np.argmax(members.mean(axis=0), axis=1)
            spread = spread[np.arange(len(best)), best]
        return members, spread


def truth_codes(reader, column, class_names):
    """The truth column of ``reader`` as codes into the run's ``class_names`` (−1: none)."""
    values = reader.column(column)
    k = len(class_names)
    if values.dtype.kind in "US":
        lookup = {name: i for i, name in enumerate(class_names)}
        unknown = sorted(set(values.tolist()) - set(lookup) - {""})
        if unknown:
            raise InputError(
                reader.path,
                f"'{column}' has classes the runs do not know: "
                f"{', '.join(unknown[:5])} (runs: {', '.join(class_names)})",
            )
        return np.array([lookup.get(v, -1) for v in values.tolist()], np.int64)
    if values.dtype.kind == "f":
        if np.any(np.isfinite(values) & (values != np.round(values))):
            raise InputError(reader.path, f"'{column}' holds fractional values, not class codes")
        values = np.where(np.isfinite(values), values, -1)
    codes = values.astype(np.int64)
    names = reader.classes.get(column)
    if names is not None:
        if len(names) != k:
            raise InputError(
                reader.path,
                f"'{column}' has {len(names)} classes "
                f"({', '.join(names)}), the runs have {k} "
                f"({', '.join(class_names)})",
            )
        if list(names) != list(class_names):
            if sorted(names) != sorted(class_names):
                raise InputError(
                    reader.path,
                    f"'{column}' classes {', '.join(names)} differ "
                    f"from the runs' {', '.join(class_names)}",
                )
            remap = np.array([list(class_names).index(n) for n in names])
            codes = np.where(codes >= 0, remap[np.clip(codes, 0, k - 1)], -1)
    elif codes.size and codes.max() >= k:
        raise InputError(
            reader.path,
            f"'{column}' has class code {int(codes.max())}, the runs "
            f"have {k} classes ({', '.join(class_names)})",
        )
    return codes


def _truth_values(reader, column):
    values = reader.column(column)
    if values.dtype.kind not in "iuf":
        raise InputError(reader.path, f"'{column}' is not numeric")
    return values.astype(np.float64)


# ----------------------------------------------------------------------------------- scoring


def csv_header(ens, truth, tta=1):
    if ens.kind == "classification":
        cols = ["id", ens.target] + [f"p_{name}" for name in ens.class_names]
        if len(ens) > 1:
            cols.append("p_std")
        if tta > 1:
            cols.append("p_tta_std")
        if truth:
            cols.append("truth")
        return cols
    cols = ["id", ens.target]
    if len(ens) > 1:
        cols.append(f"{ens.target}_std")
    if tta > 1:
        cols.append(f"{ens.target}_tta_std")
    if truth:
        cols += ["truth", "residual"]
    return cols


def score_file(
    runs,
    path,
    output,
    history=None,
    truth=None,
    kaggle=False,
    clip=None,
    fit_bias_path=None,
    bias_correction=None,
    report=None,
    confusion=None,
    plot=None,
    top_k=3,
    overwrite=False,
    chunk_size=None,
    batch_size=256,
    shard=None,
    run_paths=(),
    tta=1,
):
    """Predict every image of ``path`` with ``runs`` (an ensemble when several) into a CSV.

    ``truth``: label column to compare with; ``kaggle``: write ``Id,Predicted`` only;
    ``clip``: (lo, hi) for values; ``bias_correction``: a dict from :func:`load_bias` applied
    before anything else; ``fit_bias_path``/``report``/``confusion`` (JSON, PNG beside it) /
    ``plot`` (PNG; with ``report`` and ``truth`` also beside the report): further outputs,
    all written together with the CSV.  ``tta``: average each run's output over that many
    flips and quarter turns first (:mod:`galtools.tta`; 1: none).  Returns the report.
    """
    from galtools.arrayfile import open_galaxies
    from galtools.outputs import Outputs
    from galtools.progress import progress

    ens = Ensemble(runs)
    if kaggle and ens.kind == "classification" and clip is not None:
        raise GalError("--clip applies to values, not to classes")
    if ens.kind == "score" and (truth or fit_bias_path or bias_correction):
        raise GalError(
            "score runs have no truth to compare with (no --truth, --fit-bias, --bias-correction)"
        )
    if ens.kind == "classification" and (fit_bias_path or bias_correction):
        raise GalError("bias fits are for regression runs")
    if (fit_bias_path or confusion or plot) and not truth:
        raise GalError("--fit-bias, --confusion and --plot need --truth COL")
    if fit_bias_path and bias_correction:
        raise GalError("give --fit-bias or --bias-correction, not both")
    if confusion and ens.kind != "classification":
        raise GalError("--confusion is for classification runs")
    inputs = [path] if path != "-" else []
    outs = Outputs(overwrite, inputs)
    report_png = _png_beside(report) if report and truth else None
    if report_png and report_png == plot:
        report_png = None
    outs.check(output, fit_bias_path, report, report_png, confusion, _png_beside(confusion), plot)

    with open_galaxies(path) as reader:
        for run in ens.runs:
            check_image_shape(run, reader.image_shape, reader.path)
        chosen = ens.check_tta(tta, reader.image_shape, reader.path)
        start, stop = shard.bounds(reader.n) if shard else (0, reader.n)
        truth_all = None
        if truth:
            if ens.kind == "classification":
                truth_all = truth_codes(reader, truth, ens.class_names)[start:stop]
            else:
                truth_all = _truth_values(reader, truth)[start:stop]
        ids_all = reader.ids()[start:stop]
        n = stop - start
        m = len(ens)
        if ens.kind == "classification":
            members = np.empty((m, n, len(ens.class_names)), np.float32)
        else:
            members = np.empty((m, n), np.float64)
        spreads = np.empty(n, np.float64) if tta > 1 else None
        with outs:
            csv_tmp = outs.add(output, ".csv")
            bar = progress(total=n, desc="score")
            with open(csv_tmp, "w", encoding="utf-8", newline="") as fh:
                header = KAGGLE_HEADER if kaggle else ",".join(csv_header(ens, truth, tta)) + "\n"
                fh.write(header)
                for offset, batch in reader.chunks(chunk_size, ["images"], start, stop):
                    images = batch["images"]
                    check_finite(images, reader.path, offset)
                    rows = slice(offset - start, offset - start + len(images))
                    if tta > 1:
                        got = ens.tta_members(images, tta, batch_size)
                    else:
                        got = ens.members(images, batch_size)
                    _check_output_shape(got, ens, len(images), tta)
                    if bias_correction is not None:
                        got = correct_bias(got, bias_correction)
                    if clip is not None:
                        got = np.clip(got, *clip)
                    spread = None
                    if tta > 1:
                        got, spread = ens.tta_reduce(got)
                        spreads[rows] = spread
                    members[:, rows] = got
                    t = truth_all[rows] if truth_all is not None else None
                    fh.write(_csv_rows(ens, ids_all[rows], got, t, kaggle, spread))
                    bar.update(len(batch["images"]))
            bar.close()
            info = _report(ens, members, truth_all, top_k, run_paths, reader.path, (start, stop))
            info["tta"] = int(tta)
            if tta > 1:
                info["tta_spread"] = {
                    "transforms": [t[0] for t in chosen],
                    "mean_spread": float(spreads.mean()) if n else 0.0,
                    "max_spread": float(spreads.max()) if n else 0.0,
                }
            if bias_correction is not None:
                info["bias_correction"] = bias_correction
            if fit_bias_path:
                fit = fit_bias(members.mean(axis=0), truth_all)
                fit.update(
                    target=ens.target,
                    formula="i_corrected = (i_pred + b)/(1 - m)",
                    model="i_pred = (1 - m)*i_true - b",
                    runs=list(run_paths),
                    history=history,
                )
                info["bias_fit"] = fit
                _write_json(outs.add(fit_bias_path, ".json"), fit)
            if confusion:
                cm = info["metrics"]["confusion_matrix"]
                _write_json(outs.add(confusion, ".json"), cm)
                plot_confusion(outs.add(_png_beside(confusion), ".png"), cm)
            for png in filter(None, (plot, report_png)):
                tmp = outs.add(png, ".png")
                if ens.kind == "classification":
                    plot_confusion(tmp, info["metrics"]["confusion_matrix"])
                else:
                    plot_residuals(
                        tmp, members.mean(axis=0), truth_all, ens.target, info["metrics"]
                    )
            if report:
                info["history"] = history
                _write_json(outs.add(report, ".json"), info)
    return info


def check_finite(images, path, offset=0):
    """InputError naming the first row with NaN or infinite pixels (a network would turn them
    into a finite-looking prediction)."""
    if images.dtype.kind != "f":
        return
    bad = ~np.isfinite(images.reshape(len(images), -1)).all(axis=1)
    if bad.any():
        row = offset + int(np.flatnonzero(bad)[0])
        raise InputError(
            path, f"images hold NaN or infinite pixels ({int(bad.sum())} images, first row {row})"
        )


def _png_beside(path):
    if not path:
        return None
    root = path[:-5] if path.lower().endswith(".json") else path
    return root + ".png"


def _check_output_shape(got, ens, n, tta=1):
    lead = (len(ens),) + ((tta,) if tta > 1 else ())
    want = lead + (n,) + ((len(ens.class_names),) if ens.kind == "classification" else ())
    if got.shape != want:
        skip = len(lead)
        raise GalError(
            f"runs returned predictions of shape {got.shape[skip:]}, expected {want[skip:]}"
        )


def _csv_rows(ens, ids, members, truth, kaggle, tta_spread=None):
    mean = members.mean(axis=0)
    lines = []
    if ens.kind == "classification":
        best = np.argmax(mean, axis=1)
        names = [ens.class_names[b] for b in best]
        if kaggle:
            return kaggle_lines(ids, names)
        spread = members.std(axis=0)[np.arange(len(best)), best] if len(ens) > 1 else None
        for i in range(len(ids)):
            cells = [check_id(ids[i]), names[i]] + [fmt(p) for p in mean[i]]
            if spread is not None:
                cells.append(fmt(spread[i]))
            if tta_spread is not None:
                cells.append(fmt(tta_spread[i]))
            if truth is not None:
                cells.append(ens.class_names[truth[i]] if truth[i] >= 0 else "")
            lines.append(",".join(cells) + "\n")
        return "".join(lines)
    if kaggle:
        return kaggle_lines(ids, mean)
    spread = members.std(axis=0) if len(ens) > 1 else None
    for i in range(len(ids)):
        cells = [check_id(ids[i]), fmt(mean[i])]
        if spread is not None:
            cells.append(fmt(spread[i]))
        if tta_spread is not None:
            cells.append(fmt(tta_spread[i]))
        if truth is not None:
            cells += [fmt(truth[i]), fmt(mean[i] - truth[i])]
        lines.append(",".join(cells) + "\n")
    return "".join(lines)


def _report(ens, members, truth, top_k, run_paths, path, rows):
    mean = members.mean(axis=0)
    info = {
        "input": str(path),
        "rows": list(rows),
        "n": int(mean.shape[0]),
        "runs": [str(p) for p in run_paths] or [str(r.path) for r in ens.runs],
        "kind": ens.kind,
        "target": ens.target,
        "classes": ens.class_names,
    }
    if len(ens) > 1:
        spread = members.std(axis=0)
        info["ensemble"] = {
            "members": len(ens),
            "mean_spread": float(spread.mean()),
            "max_spread": float(spread.max()) if spread.size else 0.0,
        }
    if truth is None:
        return info
    if ens.kind == "classification":
        info["metrics"] = classification_metrics(mean, truth, ens.class_names, top_k)
        if len(ens) > 1:
            info["member_metrics"] = [
                {
                    "run": info["runs"][j],
                    **{
                        k: v
                        for k, v in classification_metrics(
                            members[j], truth, ens.class_names, top_k
                        ).items()
                        if k in ("accuracy", "top_k")
                    },
                }
                for j in range(len(ens))
            ]
    else:
        info["metrics"] = regression_metrics(mean, truth)
        if len(ens) > 1:
            info["member_metrics"] = [
                {"run": info["runs"][j], **regression_metrics(members[j], truth)}
                for j in range(len(ens))
            ]
    return info


def _write_json(path, data):
    from galtools.meta import jsonable

    with open(path, "w", encoding="utf-8") as fh:
        json.dump(jsonable(data), fh, indent=2)
        fh.write("\n")


# ----------------------------------------------------------------------------------- plots


def plot_residuals(path, pred, truth, target, metrics):
    """Residual (prediction − truth) against truth, with the binned mean, as a PNG."""
    from matplotlib.figure import Figure

    from galtools.atomic import save_figure

    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    ok = np.isfinite(pred) & np.isfinite(truth)
    x, r = truth[ok], pred[ok] - truth[ok]
    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.scatter(x, r, s=6, alpha=0.5, lw=0, color="tab:blue", label="galaxies")
    if x.size >= 2 and np.ptp(x) > 0:
        edges = np.linspace(x.min(), x.max(), min(16, max(2, x.size // 10)) + 1)
        which = np.clip(np.digitize(x, edges) - 1, 0, len(edges) - 2)
        counts = np.bincount(which, minlength=len(edges) - 1)
        sums = np.bincount(which, weights=r, minlength=len(edges) - 1)
        centres = 0.5 * (edges[1:] + edges[:-1])
        has = counts > 0
        ax.plot(centres[has], sums[has] / counts[has], "o-", color="tab:red", label="bin mean")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel(f"true {target}")
    ax.set_ylabel(f"predicted − true {target}")
    ax.set_title(
        f"MAE {metrics['mae']:.3g}   RMSE {metrics['rmse']:.3g}   "
        f"bias {metrics['bias']:+.3g}   (n={metrics['n']})",
        fontsize=10,
    )
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, format="png")


def plot_confusion(path, cm):
    """The confusion matrix (row-normalised colours, counts written) as a PNG."""
    from matplotlib.figure import Figure

    from galtools.atomic import save_figure

    counts = np.asarray(cm["counts"], np.float64)
    names = cm["classes"]
    k = len(names)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    size = 2.5 + 0.6 * k
    fig = Figure(figsize=(size + 1, size), dpi=100)
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    ax.set_xticks(range(k), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(k), labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(int(counts[i, j])),
                ha="center",
                va="center",
                color="white" if frac[i, j] > 0.5 else "black",
                fontsize=9,
            )
    acc = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"accuracy {acc:.3f} (n={int(counts.sum())})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, format="png")
