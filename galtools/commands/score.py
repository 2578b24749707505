"""galprep score."""

import click

from galtools import options


@click.command(short_help="Predict with trained runs (an ensemble if several); error figures.")
@click.argument("paths", nargs=-1, required=True, metavar="RUN... FILE")
@options.output(help="Predictions CSV ('-' for stdout).")
@click.option(
    "--truth",
    metavar="COL",
    help="Label column of FILE to compare with: MAE/RMSE/bias, or accuracy/top-k/"
    "confusion matrix for classification.",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Report top-1…top-K accuracy (classification).",
)
@click.option(
    "--report",
    metavar="JSON",
    help="Write every figure (and per-run ones) as JSON; "
    "with --truth also the --plot picture as a PNG beside it.",
)
@click.option(
    "--confusion",
    metavar="JSON",
    help="Write the confusion matrix as JSON, and as a PNG beside it.",
)
@click.option(
    "--plot",
    metavar="PNG",
    help="Residual-vs-truth plot (regression) or confusion matrix (classification).",
)
@click.option(
    "--fit-bias",
    "fit_bias",
    metavar="JSON",
    help="Fit i_pred = (1−m)·i_true − b and write m, b: apply with --bias-correction.",
)
@click.option(
    "--bias-correction",
    metavar="JSON",
    help="Apply i_corrected = (i_pred + b)/(1 − m) from a --fit-bias file.",
)
@options.tta(
    "Test-time augmentation: average each run's prediction over K flips and quarter "
    "turns of the image, in this order: identity, rot90, rot180, rot270, hflip, hflip∘rot90, "
    "vflip, hflip∘rot270 (non-square stamps: identity, rot180, hflip, vflip; at most 4).  "
    "Each run's model must allow them (its augment ops).",
)
@click.option("--kaggle", is_flag=True, help="Write exactly 'Id,Predicted' rows.")
@click.option("--clip", metavar="LO:HI", help="Clip predicted values, e.g. 0:8.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Images per model call.",
)
@options.overwrite
@options.chunk_size()
@options.shard
@options.common
def score(
    paths,
    output,
    truth,
    top_k,
    report,
    confusion,
    plot,
    fit_bias,
    bias_correction,
    tta,
    kaggle,
    clip,
    batch_size,
    overwrite,
    chunk_size,
    shard,
):
    """Predictions of RUN... for every image of FILE ('-' for stdin) into a CSV: the value
    (regression, physical units), the class and its probabilities (classification) or the
    realism score (a run of a model that scores images).  Several RUNs average into an
    ensemble; the CSV and report then give the spread (standard deviation across runs).  FILE
    is read chunk by chunk.

    CSV columns: regression `id,TARGET[,TARGET_std][,TARGET_tta_std][,truth,residual]`;
    classification `id,TARGET,p_CLASS...[,p_std][,p_tta_std][,truth]` (TARGET is the predicted
    class name, p_std the spread of its probability); scoring runs
    `id,score[,score_std][,score_tta_std]`.  Ids are FILE's ids or row numbers.
    --bias-correction and --clip apply to the values before they are written or measured.

    With --tta K each run's prediction is the mean over K transformed copies of the image
    (values, probabilities or scores; --bias-correction and --clip apply to each copy first),
    and the CSV gets the spread over the transforms (their standard deviation, averaged over
    the runs): TARGET_tta_std, or for classification p_tta_std, that of the predicted class's
    probability.  With several RUNs each run is averaged over the transforms first, then the
    runs into the ensemble as without --tta.  The report records tta: K and the mean spread.
    Work grows K times; memory does not (one chunk is transformed at a time)."""
    import os

    from galtools.progress import say
    from galtools.runs import load_run
    from galtools.scoring import load_bias, parse_clip, score_file

    if len(paths) < 2:
        raise click.UsageError("give at least one RUN and a FILE")
    run_paths, path = list(paths[:-1]), paths[-1]
    limits = parse_clip(clip)
    out = shard.output_path(output)
    if shard.count > 1 and out != "-" and os.path.exists(out) and not overwrite:
        say(f"shard {shard}: {out} exists, skipped")
        return
    runs = [load_run(p) for p in run_paths]
    correction = None
    if bias_correction:
        correction = load_bias(bias_correction, runs[0].target)
    side = {
        k: shard.output_path(v) if v else None
        for k, v in dict(report=report, confusion=confusion, plot=plot, fit_bias=fit_bias).items()
    }
    info = score_file(
        runs,
        path,
        out,
        options.provenance([*run_paths, path]),
        truth,
        kaggle,
        limits,
        side["fit_bias"],
        correction,
        side["report"],
        side["confusion"],
        side["plot"],
        top_k,
        overwrite,
        chunk_size,
        batch_size,
        shard if shard.count > 1 else None,
        run_paths,
        tta=tta,
    )
    what = f"{info['n']} predictions ({info['kind']}"
    if "ensemble" in info:
        what += (
            f", ensemble of {info['ensemble']['members']}, mean spread "
            f"{info['ensemble']['mean_spread']:.3g}"
        )
    if tta > 1:
        what += f", TTA over {tta} transforms, mean spread {info['tta_spread']['mean_spread']:.3g}"
    say(what + f") → {out}")
    m = info.get("metrics")
    if m and "mae" in m:
        say(f"MAE {m['mae']:.4g}  RMSE {m['rmse']:.4g}  bias {m['bias']:+.4g}  (n={m['n']})")
    elif m:
        tops = "  ".join(f"top-{k} {v:.3f}" for k, v in m["top_k"].items())
        say(f"accuracy {m['accuracy']:.3f}  {tops}  (n={m['n']})")
    if "bias_fit" in info:
        say(
            f"bias fit: m = {info['bias_fit']['m']:.4g}, b = {info['bias_fit']['b']:.4g} "
            f"→ {side['fit_bias']}"
        )
