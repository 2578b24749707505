"""galprep train-batch."""

import click

from galtools import options


def _pair(ctx, param, value):
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LO,HI, got {value!r}") from None
    if not lo < hi:
        raise click.BadParameter(f"need LO < HI, got {value!r}")
    return lo, hi


def _names(ctx, param, value):
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@click.command(
    "train-batch",
    short_help="Train a registered model from files on disk (resumable, preemption-safe).",
)
@click.argument("data", nargs=-1, required=True, metavar="DATA...")
@click.option(
    "-o",
    "--output",
    "run",
    required=True,
    metavar="RUN",
    help="Run directory (created; an existing run of the same command continues).",
)
@click.option(
    "--model",
    required=True,
    metavar="NAME",
    help="A galtools.models entry: vgg, cnn-classifier, dcgan, twoinone, cgan, "
    "resnet-denoiser, ridge-histogram, or a plugin's.",
)
@click.option(
    "--target",
    metavar="COL",
    help="Label column to learn (regression/classification; the score column for twoinone).",
)
@click.option(
    "--target-range",
    callback=_pair,
    metavar="LO,HI",
    help="Physical range mapped onto [-1, 1] (default: the data's min,max).",
)
@click.option(
    "--classes",
    type=click.IntRange(min=2),
    help="Number of classes (default: from the file's class names or the values).",
)
@click.option(
    "--condition",
    "conditions",
    callback=_names,
    metavar="COL[,COL]",
    help="cgan: continuous label columns to condition on.",
)
@click.option(
    "--real-column",
    default="real",
    show_default=True,
    metavar="COL",
    help="twoinone: 0/1 column, 1 = real galaxy, 0 = corrupted.",
)
@click.option(
    "--arch",
    type=click.Choice(["small", "medium", "large"]),
    default="small",
    show_default=True,
    help="vgg: 16/16→32/32, 32/32→64/64 or 128/128→256/256.",
)
@click.option(
    "--backbone",
    default="32,64,128",
    show_default=True,
    metavar="F,F,...",
    help="cnn-classifier: conv block widths.",
)
@click.option(
    "--head",
    default="256,relu",
    show_default=True,
    metavar="SPEC",
    help="cnn-classifier: dense head, e.g. 2048,relu,1024,relu,512 (dropout:0.3 ok).",
)
@click.option(
    "--weight-decay",
    type=float,
    default=1e-4,
    show_default=True,
    help="cnn-classifier: AdamW weight decay.",
)
@click.option(
    "--normalize",
    type=click.Choice(["per-image", "global"]),
    default="per-image",
    show_default=True,
    help="cnn-classifier: standardise each image (judge shape and colour, not "
    "brightness) or scale all by one per-band factor (brightness matters).",
)
@click.option(
    "--width",
    type=click.IntRange(min=4),
    default=32,
    show_default=True,
    help="GANs: base number of filters.",
)
@click.option(
    "--bins",
    type=click.IntRange(min=2),
    default=32,
    show_default=True,
    help="ridge-histogram: histogram bins per band.",
)
@click.option(
    "--init-from",
    metavar="RUN",
    help="Start from an earlier run's weights (layers matched by name and shape).",
)
@click.option("--freeze-until", metavar="LAYER", help="Freeze every layer up to LAYER.")
@click.option("--val", metavar="FILE", help="Validation file, evaluated after each file visit.")
@click.option("--mix", metavar="FILE", help="Draw each batch from FILE with probability --alpha.")
@click.option(
    "--alpha",
    type=float,
    default=0.5,
    show_default=True,
    help="Probability that a batch comes from --mix (0 ≤ α < 1).",
)
@click.option(
    "--passes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Passes over the DATA files.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Epochs on each DATA file per pass.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=1e-3,
    show_default=True,
    help="Learning rate.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    help="Halve the learning rate after this many evaluations without improvement "
    "(default: 3 for cnn-classifier, off otherwise).",
)
@click.option(
    "--keep", type=click.IntRange(min=1), default=3, show_default=True, help="Checkpoints kept."
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Also checkpoint every N steps (0: only after each file visit).",
)
@click.option(
    "--log-every",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Steps per metrics.json record.",
)
@click.option(
    "--distribute",
    type=click.Choice(["none", "mirrored"]),
    default="none",
    show_default=True,
    help="mirrored: tf.distribute.MirroredStrategy on local GPUs.",
)
@click.option("--restart", is_flag=True, help="Discard an existing RUN and start over.")
@options.seed
@options.common
def train_batch(
    data,
    run,
    model,
    target,
    target_range,
    classes,
    conditions,
    real_column,
    arch,
    backbone,
    head,
    weight_decay,
    normalize,
    width,
    bins,
    init_from,
    freeze_until,
    val,
    mix,
    alpha,
    passes,
    epochs,
    batch_size,
    lr,
    patience,
    keep,
    checkpoint_every,
    log_every,
    distribute,
    restart,
    seed,
):
    """Train model NAME on DATA... (one big file or many batch files), streaming from disk,
    into the run directory RUN.

    Running the same command again continues from the last checkpoint. On SIGTERM or SIGUSR1
    the current step finishes, a checkpoint is written and galprep exits with status 75
    (EX_TEMPFAIL), so a batch job can requeue itself (see examples/train_requeue.sbatch).
    """
    from galtools.train.loop import train

    opts = dict(
        target=target,
        target_range=target_range,
        classes=classes,
        conditions=conditions,
        real_column=real_column,
        arch=arch,
        backbone=backbone,
        head=head,
        weight_decay=weight_decay,
        normalize=normalize,
        width=width,
        bins=bins,
        init_from=init_from,
        freeze_until=freeze_until,
    )
    inputs = list(data) + [p for p in (val, mix) if p]
    train(
        list(data),
        run,
        model,
        opts,
        val=val,
        mix=mix,
        alpha=alpha,
        passes=passes,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        restart=restart,
        keep=keep,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        patience=patience,
        distribute=distribute,
        history=options.provenance(inputs),
    )
