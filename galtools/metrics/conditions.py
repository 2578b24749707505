"""Does a conditional generator obey its conditions?  Read them back, and check flux ordering.

A generated file of a conditional generator keeps its condition columns (``inclination``,
``flux``, …) next to the images.  Two checks compare those columns with the images:

- **read-back**: a regression run (ability ``predicts``, task ``regression``) whose target is
  one of the generated file's label columns predicts it from the generated images; per run:
  RMSE, bias (mean of read-back − condition), spread (standard deviation of read-back −
  condition, so that RMSE² = bias² + spread²), MAE and N (images with a non-finite pixel are
  left out, counted as missing), next to the same figures of the same
  regressor on the real set (when the real set has the column) and the standard deviation of
  the condition itself (the RMSE of a read-back that carries no information about it, up to
  the bias).  A regressor's own calibration bias (edge-on disks read back too low, say) can be
  taken out first with the linear correction ``galprep score --fit-bias`` fitted on real
  galaxies (``bias_corrections``): applied alike to the real and the generated read-back, so
  that what remains on the generated set is the generator's error;
- **flux ordering**: for a flux-like condition column, the Spearman rank correlation between
  the condition and the *measured flux* of each galaxy: the sum of its pixel values over all
  bands and pixels of the stamp, in the file's data units (per band too).  The same figure on
  the real set is the reference.  A generator whose brighter conditions give fainter images has
  a negative correlation (the seed project's "more mass got fainter").

Both files are read in chunks and the runs predict in batches: memory grows only with the
per-galaxy numbers (a few floats per galaxy), never with the images.

:class:`ConditionCheck` validates everything before reading any image (bad runs, missing
columns, shapes: one-line :class:`~galtools.errors.GalError`), then :meth:`ConditionCheck.run`
returns the report (a JSON-able dict) and the per-galaxy samples (for plots);
:func:`condition_check` does both.  :func:`readback_stats`, :func:`measured_flux` and
:func:`rank_correlation` work on arrays.
"""

import os

import numpy as np

from galtools.errors import GalError, InputError
from galtools.scoring import correct_bias

FLUX_COLUMN = "flux"  # the flux-like column checked by default when the generated file has it
MEASURED_FLUX = "sum of pixel values over all bands and pixels of the stamp (data units)"
SETS = ("real", "generated")


# ------------------------------------------------------------------------------- on arrays


def readback_stats(predicted, condition):
    """Read-back (``predicted``) against the ``condition`` it should equal, over the rows where
    both are finite: ``n``, ``rmse``, ``bias`` (mean of predicted − condition), ``spread``
    (their standard deviation, ddof 0: rmse² = bias² + spread²), ``mae``, ``condition_std``
    (ddof 0) and ``missing`` (rows left out).  With no such row the figures are NaN."""
    p = np.asarray(predicted, np.float64).reshape(-1)
    c = np.asarray(condition, np.float64).reshape(-1)
    if p.shape != c.shape:
        raise GalError(f"read-back has {p.size} values but the condition {c.size}")
    ok = np.isfinite(p) & np.isfinite(c)
    r = p[ok] - c[ok]
    out = {"n": int(r.size), "missing": int((~ok).sum())}
    if r.size == 0:
        nan = float("nan")
        return dict(out, rmse=nan, bias=nan, spread=nan, mae=nan, condition_std=nan)
    return dict(
        out,
        rmse=float(np.sqrt(np.mean(r**2))),
        bias=float(np.mean(r)),
        spread=float(np.std(r)),
        mae=float(np.mean(np.abs(r))),
        condition_std=float(np.std(c[ok])),
    )


def band_flux(images):
    """(N, C) float64: each image's sum of pixel values per band (NaN where a pixel of that
    band is not finite).  N×H×W images count as one band."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise GalError(f"expected N×H×W×C images, got shape {x.shape}")
    out = x.sum(axis=(1, 2), dtype=np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


def measured_flux(images):
    """(N,) float64: the measured flux of each image, the sum of its pixel values over all
    bands and pixels (data units); NaN for an image with a non-finite pixel."""
    return band_flux(images).sum(axis=1)


def rank_correlation(x, y):
    """Spearman rank correlation (ties get average ranks) of ``x`` and ``y`` over the rows
    where both are finite: ``{"n", "spearman", "p_value"}`` (NaN with fewer than 3 rows or a
    constant side)."""
    from scipy import stats

    x = np.asarray(x, np.float64).reshape(-1)
    y = np.asarray(y, np.float64).reshape(-1)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    rho = p = float("nan")
    if n >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
        res = stats.spearmanr(x[ok], y[ok])
        rho, p = float(res.statistic), float(res.pvalue)
    return {"n": n, "spearman": rho, "p_value": p}


# -------------------------------------------------------------------------------- on files


def _as_run(run):
    if isinstance(run, (str, os.PathLike)):
        from galtools.runs import load_run

        return load_run(run)
    return run


def _check_regressor(run):
    """GalError unless ``run`` predicts one label column (a regression run)."""
    if "predicts" not in run.abilities or run.task != "regression" or not run.target:
        what = (
            run.describe()
            if hasattr(run, "describe")
            else f"a {getattr(run, 'model_name', '?')} {run.task} run"
        )
        raise GalError(
            f"{run.path}: {what} does not predict a label column; --condition-check needs a "
            "regression run (galprep train-batch --target COLUMN with a regression model)"
        )


def _shape(shape):
    return "×".join(map(str, shape))


class ConditionCheck:
    """A validated condition check of ``generated`` (with ``real`` as the reference).

    ``runs``: regression runs (paths or :class:`~galtools.runs.Run`), each reading back its
    target column.  ``flux_columns``: flux-like condition columns; None: ``flux`` when the
    generated file has it, else none.  ``chunk_size``: images read at a time; ``batch_size``:
    images per prediction batch.  ``bias_corrections``: paths of ``--fit-bias`` JSON files
    (or their dicts), each applied to the predictions of the runs whose target it names (one
    without a target: to the only run).  Raises a one-line GalError for a run that is not a
    regressor, a target or flux column that the generated file lacks, a generated file
    without label columns, images a run cannot take, a correction no run uses, or nothing to
    check.  ``tta``: each read-back is the mean over that many flips and quarter turns of the
    image (:mod:`galtools.tta`; 1: none), which the runs' models must allow.
    """

    def __init__(
        self,
        real,
        generated,
        runs=(),
        flux_columns=None,
        chunk_size=None,
        batch_size=256,
        bias_corrections=(),
        tta=1,
    ):
        from galtools.arrayfile import open_galaxies
        from galtools.tta import check_run, plan

        self.paths = {"real": os.fspath(real), "generated": os.fspath(generated)}
        self.chunk_size, self.batch_size = chunk_size, int(batch_size)
        info = {}
        for name, path in self.paths.items():
            with open_galaxies(path) as reader:
                info[name] = {
                    "labels": list(reader.label_names),
                    "shape": tuple(reader.image_shape),
                    "n": reader.n,
                }
        self.info = info
        gen = info["generated"]
        if not gen["labels"]:
            raise InputError(
                self.paths["generated"],
                "has no label columns: the condition check compares each galaxy's condition "
                "columns with its image (a conditional generator's file keeps them)",
            )
        self.runs = [_as_run(r) for r in runs]
        for run in self.runs:
            _check_regressor(run)
            if run.target not in gen["labels"]:
                raise InputError(
                    self.paths["generated"],
                    f"no column '{run.target}', the target of the regressor {run.path} "
                    f"(label columns: {', '.join(gen['labels'])})",
                )
            want = run.input_shape
            for name in SETS:
                have = info[name]["shape"]
                if (
                    want is not None
                    and tuple(want) != have
                    and (name == "generated" or run.target in info[name]["labels"])
                ):
                    raise GalError(
                        f"{self.paths[name]}: images are {_shape(have)} but the regressor "
                        f"{run.path} takes {_shape(want)}"
                    )
        self.tta = int(tta)
        for run in self.runs:
            for name in SETS:
                if name == "generated" or run.target in info[name]["labels"]:
                    check_run(run, plan(self.tta, info[name]["shape"], self.paths[name]))
        self.corrections = self._corrections(bias_corrections)
        why = "flux checks were turned off"
        if flux_columns is None:
            why = f"the file has no '{FLUX_COLUMN}' column"
            flux_columns = [FLUX_COLUMN] if FLUX_COLUMN in gen["labels"] else []
        self.flux_columns = list(dict.fromkeys(flux_columns))
        for col in self.flux_columns:
            if col not in gen["labels"]:
                raise InputError(
                    self.paths["generated"],
                    f"no column '{col}' for the flux check "
                    f"(label columns: {', '.join(gen['labels'])})",
                )
        if not self.runs and not self.flux_columns:
            raise GalError(
                f"{self.paths['generated']}: nothing to check: give a regression run, or a "
                f"flux-like column ({why})"
            )

    def _corrections(self, given):
        """{run index: (correction dict, its source)} from ``bias_corrections``."""
        from galtools.scoring import check_bias, load_bias

        out = {}
        for item in given:
            source = os.fspath(item) if isinstance(item, (str, os.PathLike)) else "correction"
            corr = load_bias(item) if source != "correction" else dict(check_bias(item))
            target = corr.get("target")
            if target is None and len(self.runs) != 1:
                raise InputError(
                    source, "names no target: it can only correct a single --condition-check run"
                )
            used = [i for i, r in enumerate(self.runs) if target in (None, r.target)]
            if not used:
                have = ", ".join(r.target for r in self.runs) or "none"
                raise InputError(
                    source,
                    f"corrects '{target}', which no --condition-check run predicts ({have})",
                )
            for i in used:
                if i in out:
                    raise InputError(source, f"a second correction for '{self.runs[i].target}'")
                out[i] = (corr, source)
        return out

    def _measure(self, name):
        """One pass over a set: each applicable run's predictions, the columns, band fluxes."""
        from galtools.arrayfile import open_galaxies
        from galtools.progress import progress

        labels = self.info[name]["labels"]
        used = [i for i, r in enumerate(self.runs) if r.target in labels]
        flux = [c for c in self.flux_columns if c in labels]
        columns = list(dict.fromkeys([self.runs[i].target for i in used] + flux))
        out = {"predictions": {}, "columns": {}, "band_flux": None, "bands": None}
        if not columns:
            return out
        parts = {i: [] for i in used}
        fluxes = []
        with open_galaxies(self.paths[name]) as reader:
            out["columns"] = {c: np.asarray(reader.column(c), np.float64) for c in columns}
            out["bands"] = list(reader.bands)
            bar = progress(total=reader.n, desc=f"{name}: condition check")
            for _, batch in reader.chunks(self.chunk_size, fields=["images"]):
                images = batch["images"]
                finite = np.isfinite(images.reshape(len(images), -1)).all(axis=1)
                for i in parts:
                    pred = self._predict(self.runs[i], images).reshape(-1)
                    if i in self.corrections:
                        pred = correct_bias(pred, self.corrections[i][0])
                    pred[~finite] = np.nan  # a damaged image reads back nothing
                    parts[i].append(pred)
                if flux:
                    fluxes.append(band_flux(images))
                bar.update(len(images))
            bar.close()
        out["predictions"] = {i: np.concatenate(p) if p else np.empty(0) for i, p in parts.items()}
        if flux:
            out["band_flux"] = np.concatenate(fluxes) if fluxes else np.empty((0, 0))
        return out

    def _predict(self, run, images):
        """(N,) float64 read-back of ``run``, averaged over the transforms with ``tta`` > 1."""
        from galtools.tta import predictions

        def predict(x):
            return np.asarray(run.predict(x, batch_size=self.batch_size), np.float64)

        return predict(images) if self.tta == 1 else predictions(predict, images, self.tta).mean(0)

    def run(self):
        """(report, samples): the JSON-able report and, per set, the per-galaxy numbers
        (``predictions`` by run index, ``columns``, ``band_flux`` N×C, ``bands``)."""
        samples = {name: self._measure(name) for name in SETS}
        report = {"measured_flux": MEASURED_FLUX, "readback": [], "flux": [], "tta": self.tta}
        for i, run in enumerate(self.runs):
            entry = {
                "column": run.target,
                "run": str(run.path),
                "model": run.model_name,
            }
            if i in self.corrections:
                corr, source = self.corrections[i]
                entry["bias_correction"] = {
                    "m": corr["m"],
                    "b": corr["b"],
                    "source": source,
                    "formula": "i_corrected = (i_pred + b)/(1 - m)",
                }
            for name in SETS:
                got = samples[name]
                if i in got["predictions"]:
                    entry[name] = readback_stats(got["predictions"][i], got["columns"][run.target])
                else:
                    entry[name] = None
                    entry["note"] = (
                        f"{name} set {self.paths[name]} has no column '{run.target}': the "
                        "regressor's own error there is not measured"
                    )
            report["readback"].append(entry)
        for col in self.flux_columns:
            entry = {"column": col}
            for name in SETS:
                got = samples[name]
                if col not in got["columns"] or got["band_flux"] is None:
                    entry[name] = None
                    entry["note"] = (
                        f"{name} set {self.paths[name]} has no column '{col}': no reference "
                        "correlation"
                    )
                    continue
                cond, bands = got["columns"][col], got["band_flux"]
                stats = rank_correlation(cond, bands.sum(axis=1))
                stats["per_band"] = {
                    b: rank_correlation(cond, bands[:, k])["spearman"]
                    for k, b in enumerate(got["bands"])
                }
                stats["nonfinite_images"] = int((~np.isfinite(bands.sum(axis=1))).sum())
                entry[name] = stats
            report["flux"].append(entry)
        return report, samples


def condition_check(
    real,
    generated,
    runs=(),
    flux_columns=None,
    chunk_size=None,
    batch_size=256,
    bias_corrections=(),
    tta=1,
):
    """The condition check's report (a dict, see :class:`ConditionCheck`)."""
    check = ConditionCheck(
        real, generated, runs, flux_columns, chunk_size, batch_size, bias_corrections, tta
    )
    return check.run()[0]


def _fmt(value, spec):
    return "n/a" if value is None or not np.isfinite(value) else format(value, spec)


def summary_lines(report):
    """Human lines summarising a condition-check report (one per read-back and flux entry)."""
    lines = []
    for e in report.get("readback", []):
        g, r = e["generated"], e.get("real")
        line = (
            f"condition {e['column']} read back by {e['run']}: RMSE {_fmt(g['rmse'], '.4g')}, "
            f"bias {_fmt(g['bias'], '+.3g')}, spread {_fmt(g['spread'], '.3g')} (N={g['n']}; "
            f"condition σ {_fmt(g['condition_std'], '.3g')})"
        )
        if e.get("bias_correction"):
            line = line.replace(" read back by ", " read back (bias-corrected) by ", 1)
        if r is not None:
            line += f"; on real: RMSE {_fmt(r['rmse'], '.4g')}, bias {_fmt(r['bias'], '+.3g')}"
        else:
            line += "; real set has no such column"
        lines.append(line)
    for e in report.get("flux", []):
        g, r = e["generated"], e.get("real")
        line = (
            f"condition {e['column']} vs measured flux: Spearman {_fmt(g['spearman'], '+.3f')} "
            f"(N={g['n']})"
        )
        line += (
            f"; on real: {_fmt(r['spearman'], '+.3f')}"
            if r is not None
            else "; real set has no such column"
        )
        lines.append(line)
    return lines
