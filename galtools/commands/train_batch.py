"""galprep train-batch: the training options, plus the options the chosen model declares.

``--model NAME`` is looked at before the command line is parsed; NAME's options
(:attr:`galtools.models.ModelSpec.options`) then become flags of their own, listed under a
heading of their own by ``--model NAME --help``.
"""

import click

from galtools import options

_SPEC = "galtools.train_batch.spec"  # ctx.meta key: the chosen model's spec
_params = {}  # model name → its click options (built once per process)


def _peek_model(args):
    """The value of the last --model in ``args`` (before a ``--``), or None."""
    name = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--model" and i + 1 < len(args):
            name = args[i + 1]
        elif arg.startswith("--model="):
            name = arg.split("=", 1)[1]
    return name


def _model_params(spec):
    if spec.name not in _params:

        def holder():
            pass

        options.from_params(spec.options)(holder)
        _params[spec.name] = list(reversed(getattr(holder, "__click_params__", [])))
    return _params[spec.name]


def _owners(flag):
    """Names of the registered models (that load) with option ``flag``."""
    from galtools import registry
    from galtools.models import GROUP

    owners = []
    for name, entry in registry.entries(GROUP).items():
        try:
            spec = entry.load()
        except Exception:
            continue
        if any(o.flag == flag for o in spec.options):
            owners.append(name)
    return owners


class ModelCommand(click.Command):
    """A command whose options depend on ``--model NAME``: NAME's own options are added."""

    def parse_args(self, ctx, args):
        name = _peek_model(args)
        if name is not None and not ctx.resilient_parsing:
            from galtools import models

            ctx.meta[_SPEC] = models.get(name)  # unknown or broken: one line
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            raise self._foreign(ctx, exc) from None

    @staticmethod
    def _foreign(ctx, exc):
        """A model's option given to another model (or without --model): say so."""
        owners = _owners(exc.option_name)
        spec = ctx.meta.get(_SPEC)
        if not owners:
            return exc
        if spec is None:
            return click.UsageError(
                f"{exc.option_name} is an option of model{'s' if len(owners) > 1 else ''} "
                f"{', '.join(owners)}: give --model NAME",
                ctx,
            )
        from galtools.train.rundir import flags

        return click.UsageError(
            f"{exc.option_name} is not an option of model {spec.name} (its options: {flags(spec)})",
            ctx,
        )

    def get_params(self, ctx):
        params = super().get_params(ctx)
        spec = ctx.meta.get(_SPEC)
        if spec is None:
            return params
        extra = _model_params(spec)
        help_option = self.get_help_option(ctx)
        rest = [p for p in params if p is not help_option]
        return rest + extra + ([help_option] if help_option is not None else [])

    def format_options(self, ctx, formatter):
        spec = ctx.meta.get(_SPEC)
        own = _model_params(spec) if spec is not None else []
        rows = [
            p.get_help_record(ctx)
            for p in self.get_params(ctx)
            if p not in own and isinstance(p, click.Option)
        ]
        with formatter.section("Options"):
            formatter.write_dl([r for r in rows if r])
        if spec is None:
            self._format_models(formatter)
            return
        with formatter.section(f"Options of model {spec.name}"):
            records = [r for r in (p.get_help_record(ctx) for p in own) if r]
            if records:
                formatter.write_dl(records)
            else:
                formatter.write_text("none")
            if getattr(spec, "patience", None):
                formatter.write_paragraph()
                formatter.write_text(f"Default --patience: {spec.patience}.")
            if getattr(spec, "lr", None):
                formatter.write_paragraph()
                formatter.write_text(f"Default --lr: {spec.lr:g}.")

    @staticmethod
    def _format_models(formatter):
        from galtools import registry
        from galtools.models import GROUP

        rows = []
        for name, entry in registry.entries(GROUP).items():
            try:
                rows.append((name, entry.load().description or ""))
            except Exception:
                rows.append((name, f"✗ broken ({entry.dist}): {entry.error}"))
        with formatter.section("Models"):
            formatter.write_dl(rows or [("none", "no model is installed")])
            formatter.write_paragraph()
            formatter.write_text("A model's own options: galprep train-batch --model NAME --help")


@click.command(
    "train-batch",
    cls=ModelCommand,
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
    help="A registered model (galtools.models entry, listed below); its own options follow "
    "it (see --model NAME --help).",
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
    help="Learning rate (default: the model's own, listed by --model NAME --help; else 1e-3).",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    help="Halve the learning rate after this many evaluations without improvement "
    "(default: the model's, shown by --model NAME --help; else off).",
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
    type=click.Choice(["data"]),
    help="data: data-parallel on every device of every process (Keras DataParallel on the "
    "JAX backend; one process per GPU started by srun, or by KERAS_DISTRIBUTION_*; "
    "--batch-size is the global batch).  See README 'Several GPUs and nodes'.",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "float32", "mixed_bfloat16", "mixed_float16"]),
    default="float32",
    show_default=True,
    help="Keras dtype policy while training (saved networks compute in float32).  auto: "
    "mixed_bfloat16 where the hardware computes in bfloat16 (GPUs of compute capability "
    "≥ 8.0, TPUs, CPUs with AVX512_BF16, AMX or Arm BF16), else float32; elsewhere bfloat16 "
    "is emulated and many times slower (a warning says so).",
)
@click.option(
    "--tensorboard",
    is_flag=True,
    help="Also write TensorBoard event files into RUN/tensorboard (losses, validation, lr, "
    "data-wait fraction, GAN samples).",
)
@click.option(
    "--prefetch",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Batches prepared ahead by a background thread (0: none).",
)
@click.option(
    "--read-workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Threads reading the data files ahead in parallel.",
)
@click.option("--restart", is_flag=True, help="Discard an existing RUN and start over.")
@options.seed
@options.common
def train_batch(
    data,
    run,
    model,
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
    precision,
    tensorboard,
    prefetch,
    read_workers,
    restart,
    seed,
    **model_options,
):
    """Train model NAME on DATA... (one big file or many batch files), streaming from disk,
    into the run directory RUN.  NAME's own options (its label columns, architecture, ...) are
    listed by `galprep train-batch --model NAME --help`.

    Running the same command again continues from the last checkpoint. On SIGTERM or SIGUSR1
    the current step finishes, a checkpoint is written and galprep exits with status 75
    (EX_TEMPFAIL), so a batch job can requeue itself (see examples/train_requeue.sbatch).
    With --distribute data every process stops at the same step (see
    examples/train_multinode.sbatch).
    """
    from galtools.train.loop import train

    opts = dict(model_options, init_from=init_from, freeze_until=freeze_until)
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
        history=options.provenance(inputs),
        distribute=distribute,
        precision=precision,
        tensorboard=tensorboard,
        prefetch=prefetch,
        workers=read_workers,
    )
