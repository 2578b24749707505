"""Applying denoiser runs to galaxy files, and measuring how much they help.

Errors are measured against the file's ``targets`` (clean images): MSE, and PSNR =
10·log10(peak²/MSE) with ``peak`` the value range (max − min) of the targets over the file.
The robustness table evaluates four cases of input — as given, half resolution (2×2
block-averaged and replicated back), noise ×4 (``targets + 4·(images − targets)``) and both —
before and after denoising, for one or more runs side by side.
"""

import math
import os

import numpy as np

from galtools.degrade import reduce_resolution
from galtools.errors import GalError

CASES = ("as given", "half resolution", "noise ×4", "both")


def psnr(mse, peak):
    """Peak signal-to-noise ratio in dB (inf for a perfect match)."""
    if mse <= 0:
        return math.inf
    if peak <= 0:
        return -math.inf
    return 10.0 * math.log10(peak**2 / mse)


def make_case(case, images, targets):
    """The input images of a robustness ``case``."""
    images = np.asarray(images, np.float64)
    if case == "as given":
        return images
    if case == "half resolution":
        return reduce_resolution(images, 2)
    noisy = targets + 4.0 * (images - targets)
    if case == "noise ×4":
        return noisy
    if case == "both":
        return reduce_resolution(noisy, 2)
    raise ValueError(f"unknown case {case!r}")


class SquaredError:
    """Running sum of squared errors (and the targets' range) over chunks."""

    def __init__(self):
        self.total, self.count = 0.0, 0
        self.lo, self.hi = math.inf, -math.inf

    def add(self, values, targets):
        d = np.asarray(values, np.float64) - targets
        self.total += float(np.sum(d * d))
        self.count += d.size
        if targets.size:
            self.lo = min(self.lo, float(targets.min()))
            self.hi = max(self.hi, float(targets.max()))

    @property
    def mse(self):
        return self.total / self.count if self.count else math.nan

    @property
    def peak(self):
        return self.hi - self.lo if self.count else math.nan


def check_denoiser(run, image_shape, path):
    """GalError unless ``run`` is a denoiser that can take images of ``image_shape``."""
    if run.task != "denoise":
        raise GalError(
            f"{run.path}: a {run.model_name} {run.task} run, not a denoiser "
            "(train one with a model that denoises: galprep plugins --group models)"
        )
    bands = (run.config or {}).get("bands")
    if bands is not None and len(bands) != image_shape[-1]:
        c = image_shape[-1]
        raise GalError(
            f"{path}: images have {c} band{'s' * (c != 1)}, run {run.path} takes "
            f"{len(bands)} ({', '.join(map(str, bands))})"
        )
    if run.input_shape is not None and tuple(run.input_shape) != tuple(image_shape):
        shape = "×".join(map(str, run.input_shape))
        raise GalError(
            f"{path}: images are {'×'.join(map(str, image_shape))}, run {run.path} takes {shape}"
        )


PIXELS_PER_BATCH = 2**20  # keeps a fully convolutional network's activations to ~100s of MB


def auto_batch(image_shape, batch_size=None):
    """``batch_size``, or as many images as make about 2**20 pixels (1 to 64)."""
    if batch_size:
        return batch_size
    h, w = image_shape[:2]
    return int(max(1, min(64, PIXELS_PER_BATCH // max(h * w, 1))))


def _predict(run, images, batch_size):
    batch_size = auto_batch(images.shape[1:], batch_size)
    out = np.asarray(run.predict(images, batch_size=batch_size))
    if out.shape != images.shape:
        raise GalError(
            f"run {run.path} returned shape {out.shape[1:]} for images of {images.shape[1:]}"
        )
    return out


def denoise_file(
    run,
    path,
    output,
    history,
    overwrite=False,
    compression=None,
    chunk_size=None,
    batch_size=None,
    shard=None,
    extra_outputs=None,
):
    """Write ``output``: the file with its images denoised by ``run`` (targets, labels kept).

    Returns {'n', and with targets: 'before'/'after' {'mse', 'psnr'}, 'peak'}.
    ``extra_outputs(info)`` is called before the output is committed (to write reports).
    """
    from galtools.arrayfile import GalaxyWriter, open_galaxies
    from galtools.meta import derive
    from galtools.progress import progress

    with open_galaxies(path) as reader:
        check_denoiser(run, reader.image_shape, reader.path)
        start, stop = shard.bounds(reader.n) if shard else (0, reader.n)
        before, after = SquaredError(), SquaredError()
        meta = derive(reader.meta, history)
        meta["denoised_by"] = str(run.path)
        bar = progress(total=stop - start, desc="denoise")
        with GalaxyWriter(output, meta, overwrite, compression, inputs=[path, run.path]) as writer:
            for _, batch in reader.chunks(chunk_size, None, start, stop):
                images = batch["images"]
                clean = _predict(run, images, batch_size)
                if reader.has_targets:
                    t = np.asarray(batch["targets"], np.float64)
                    before.add(images, t)
                    after.add(clean, t)
                batch["images"] = clean.astype(np.float32)
                writer.append(batch)
                bar.update(len(images))
            bar.close()
            info = {
                "input": str(reader.path),
                "output": str(output),
                "run": str(run.path),
                "n": stop - start,
                "image_shape": list(reader.image_shape),
            }
            if reader.has_targets and stop > start:
                peak = before.peak
                info["peak"] = peak
                info["before"] = {"mse": before.mse, "psnr": psnr(before.mse, peak)}
                info["after"] = {"mse": after.mse, "psnr": psnr(after.mse, peak)}
            if extra_outputs:
                extra_outputs(info)
    return info


def robustness(runs, path, chunk_size=None, batch_size=None, limit=None):
    """MSE/PSNR before and after each run, for the four :data:`CASES` of input.

    Streams ``path`` (which needs ``targets``); ``limit`` uses only the first rows.
    """
    from galtools.arrayfile import open_galaxies
    from galtools.progress import progress

    with open_galaxies(path) as reader:
        if not reader.has_targets:
            raise GalError(
                f"{reader.path}: --robustness needs clean 'targets' in the file "
                "(make pairs with galprep degrade)"
            )
        for run in runs:
            check_denoiser(run, reader.image_shape, reader.path)
        stop = reader.n if limit is None else min(limit, reader.n)
        if stop == 0:
            raise GalError(f"{reader.path}: no images")
        inputs = {c: SquaredError() for c in CASES}
        outputs = {(j, c): SquaredError() for j in range(len(runs)) for c in CASES}
        bar = progress(total=stop, desc="robustness")
        for _, batch in reader.chunks(chunk_size, ["images", "targets"], 0, stop):
            t = np.asarray(batch["targets"], np.float64)
            for case in CASES:
                x = make_case(case, batch["images"], t).astype(np.float32)
                inputs[case].add(x, t)
                for j, run in enumerate(runs):
                    outputs[j, case].add(_predict(run, x, batch_size), t)
            bar.update(len(t))
        bar.close()
        peak = inputs["as given"].peak
        table = {
            "input": str(reader.path),
            "n": stop,
            "peak": peak,
            "cases": list(CASES),
            "without_denoising": {
                c: {"mse": inputs[c].mse, "psnr": psnr(inputs[c].mse, peak)} for c in CASES
            },
            "runs": [],
        }
        for j, run in enumerate(runs):
            row = {"run": str(run.path), "label": run_label(run), "cases": {}}
            for c in CASES:
                mse = outputs[j, c].mse
                row["cases"][c] = {
                    "mse": mse,
                    "psnr": psnr(mse, peak),
                    "psnr_gain": psnr(mse, peak) - psnr(inputs[c].mse, peak),
                }
            table["runs"].append(row)
    table["groups"] = group_seeds(runs, table["runs"])
    return table


def training_key(run):
    """What a run was trained on and how, except its seed and what does not change the
    training (checkpoints kept, TensorBoard files, data-parallel or not): runs equal in this
    are repeats."""
    import json

    config = run.config or {}
    # (steps and ema_used follow from the seed's plan: a --mix draws its batches by the seed)
    ignored = {"seed", "keep", "tensorboard", "distribute", "steps", "ema_used"}
    training = {k: v for k, v in (config.get("training") or {}).items() if k not in ignored}
    return json.dumps(
        [run.model_name, config.get("model_config"), training], sort_keys=True, default=str
    )


def group_label(run):
    """'DATA' or 'DATA + α·MIX' (file names) for a group of repeats of one training setup."""
    training = (run.config or {}).get("training") or {}
    data = training.get("data") or [str(run.path)]
    names = ",".join(sorted({os.path.basename(str(d)) for d in data}))
    if training.get("mix"):
        return f"{names} + {training.get('alpha', 0):g}·{os.path.basename(training['mix'])}"
    return names


def group_seeds(runs, rows):
    """Runs trained alike except for their seed, with each case's MSE and PSNR as mean ± std
    over the repeats (std with ddof=1; 0 for a single run)."""
    order, members = [], {}
    for run, row in zip(runs, rows):
        key = training_key(run)
        if key not in members:
            order.append(key)
            members[key] = []
        members[key].append((run, row))
    groups = []
    for key in order:
        group = members[key]
        seeds = [((r.config or {}).get("training") or {}).get("seed") for r, _ in group]
        entry = {
            "label": group_label(group[0][0]),
            "runs": [row["run"] for _, row in group],
            "seeds": seeds,
            "cases": {},
        }
        for case in rows[0]["cases"] if rows else ():
            stats = {}
            for what in ("mse", "psnr"):
                v = np.array([row["cases"][case][what] for _, row in group], np.float64)
                stats[f"{what}_mean"] = float(v.mean())
                stats[f"{what}_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            stats["n"] = len(group)
            entry["cases"][case] = stats
        groups.append(entry)
    return groups


def run_label(run):
    """A short name for a run: its folder name, with the --alpha it was trained with."""
    name = os.path.basename(os.path.normpath(str(run.path))) or str(run.path)
    training = (run.config or {}).get("training") or {}
    alpha = training.get("alpha") if training.get("mix") else None
    return f"{name} (α={alpha:g})" if isinstance(alpha, (int, float)) else name


def format_table(table):
    """The robustness table as aligned text (PSNR in dB, MSE)."""
    names = ["no denoising"] + [r["label"] for r in table["runs"]]
    width = max(len(n) for n in names) + 2
    lines = ["".ljust(width) + "".join(c.rjust(22) for c in table["cases"])]
    rows = [table["without_denoising"]] + [r["cases"] for r in table["runs"]]
    for name, row in zip(names, rows):
        cells = [f"{row[c]['psnr']:7.2f} dB {row[c]['mse']:10.4g}" for c in table["cases"]]
        lines.append(name.ljust(width) + "".join(cell.rjust(22) for cell in cells))
    groups = [g for g in table.get("groups") or () if len(g["runs"]) > 1]
    if groups:
        width = max(len(g["label"]) for g in groups) + 2
        lines += ["", "MSE mean ± std over repeats (n runs):"]
        lines.append("".ljust(width) + "".join(c.rjust(24) for c in table["cases"]))
        for g in groups:
            cells = [
                f"{g['cases'][c]['mse_mean']:.4g} ± {g['cases'][c]['mse_std']:.2g} "
                f"({g['cases'][c]['n']})"
                for c in table["cases"]
            ]
            lines.append(g["label"].ljust(width) + "".join(cell.rjust(24) for cell in cells))
    return "\n".join(lines)


def plot_robustness(path, table):
    """Grouped bars: PSNR per case, without denoising and for each run."""
    from matplotlib.figure import Figure

    from galtools.atomic import save_figure

    cases = table["cases"]
    series = [("no denoising", table["without_denoising"], None)]
    groups = table.get("groups") or ()
    if any(len(g["runs"]) > 1 for g in groups):  # repeats: one bar per setup, ± std
        for g in groups:
            row = {c: {"psnr": g["cases"][c]["psnr_mean"]} for c in cases}
            std = [g["cases"][c]["psnr_std"] for c in cases]
            series.append((f"{g['label']} (n={len(g['runs'])})", row, std))
    else:
        series += [(r["label"], r["cases"], None) for r in table["runs"]]
    width = 0.8 / len(series)
    fig = Figure(figsize=(2.2 + 1.6 * len(cases) + 0.3 * len(series), 4.2), dpi=100)
    ax = fig.add_subplot()
    x = np.arange(len(cases))
    for k, (label, row, std) in enumerate(series):
        values = [row[c]["psnr"] for c in cases]
        values = [v if math.isfinite(v) else np.nan for v in values]
        ax.bar(
            x + (k - (len(series) - 1) / 2) * width,
            values,
            width,
            yerr=std,
            capsize=3 if std else 0,
            label=label,
            color="0.7" if k == 0 else None,
        )
    ax.set_xticks(x, labels=cases)
    ax.set_ylabel("PSNR against targets (dB)")
    ax.set_title(f"denoising robustness (n={table['n']})", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save_figure(fig, path, format="png")
