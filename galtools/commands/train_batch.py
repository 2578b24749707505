"""galprep train-batch: the training options, plus the options the chosen model declares.

``--model NAME`` is looked at before the command line is parsed; NAME's options
(:attr:`galtools.models.ModelSpec.options`) then become flags of their own, listed under a
heading of their own by ``--model NAME --help``.
"""

import click

from galtools import options
from galtools.train.recipe import OPTIMIZERS, SCHEDULES
from galtools.train.recipe import default as _d  # the API's and the command's defaults: one

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


def _recipe(spec):
    """'--lr 0.002, --optimizer adamw, ...' for the model's help (the loop's defaults for what
    its recipe leaves out)."""
    from galtools.train.recipe import DEFAULTS, resolve

    rec = resolve(DEFAULTS, spec)
    shown = []
    for key, value in rec.items():
        if value in (None, 0, 0.0) and key not in ("ema", "clip", "weight_decay", "warmup"):
            continue
        shown.append(
            f"--{key.replace('_', '-')} {value:g}"
            if isinstance(value, float)
            else f"--{key.replace('_', '-')} {value}"
        )
    return ", ".join(shown)


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
            formatter.write_paragraph()
            formatter.write_text(
                f"Recipe of {spec.name} (the defaults it trains with): {_recipe(spec)}."
            )

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
    default=_d("alpha"),
    show_default=True,
    help="Probability that a batch comes from --mix (0 ≤ α < 1).",
)
@click.option(
    "--passes",
    type=click.IntRange(min=1),
    default=_d("passes"),
    show_default=True,
    help="Passes over the DATA files.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=_d("epochs"),
    show_default=True,
    help="Epochs on each DATA file per pass.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=_d("batch_size"),
    show_default=True,
    help="Images per step (with --distribute data: the global batch, split over devices).",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    help="Peak learning rate (default: the model's recipe, listed by --model NAME --help).",
)
@click.option(
    "--optimizer",
    type=click.Choice(OPTIMIZERS),
    help="adam, or adamw (decoupled weight decay, --weight-decay).  Default: the recipe's.",
)
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    metavar="WD",
    help="AdamW's decoupled weight decay (per step: lr × WD × weight).",
)
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULES),
    help="Learning rate over the run: cosine (from the peak down to 0 at the last step), "
    "plateau (halved after --patience evaluations without improvement) or constant; all "
    "after --warmup.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(min=0),
    metavar="N",
    help="Steps of linear warm-up to the peak rate (below 1: that fraction of the steps).",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    help="--schedule plateau: evaluations without improvement before the rate halves "
    "(given alone: implies --schedule plateau; default 3).",
)
@click.option(
    "--ema",
    type=click.FloatRange(min=0, max=1, max_open=True),
    metavar="DECAY",
    help="Decay per step of the moving average of the weights, which is what validation "
    "sees and what is saved and scored (0: none; predictive models: at most 1 − 10/steps, "
    "so that it spans ≤ 10 % of the run; generators: their own ramped-up average).",
)
@click.option(
    "--early-stop",
    type=click.IntRange(min=0),
    metavar="N",
    help="Stop after N evaluations on --val without improvement and restore the best "
    "evaluated weights (also at the end of a run that did not stop; 0: off).",
)
@click.option(
    "--clip",
    type=click.FloatRange(min=0),
    metavar="NORM",
    help="Clip the gradients to this global norm (0: no clipping).",
)
@click.option(
    "--augment",
    metavar="OPS",
    help="Augment every batch on the fly with galprep augment's ops, NAME=SPEC,... in its "
    "flags' syntax (dihedral = hflip=0.5,vflip=0.5,rot90=1; e.g. dihedral,rotate=180@0.5), "
    "drawn per step from --seed: a continued run sees the batches of an unbroken one.  A "
    "model refuses ops that change its labels.",
)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=_d("keep"),
    show_default=True,
    help="Checkpoints kept.",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=0),
    default=_d("checkpoint_every"),
    show_default=True,
    help="Also checkpoint every N steps (0: only after each file visit).",
)
@click.option(
    "--log-every",
    type=click.IntRange(min=1),
    default=_d("log_every"),
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
    default=_d("precision"),
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
    default=_d("prefetch"),
    show_default=True,
    help="Batches prepared (read and augmented) ahead by a background thread (0: none).",
)
@click.option(
    "--read-workers",
    type=click.IntRange(min=1),
    default=_d("workers"),
    show_default=True,
    help="Threads reading the data files ahead in parallel.",
)
@click.option("--restart", is_flag=True, help="Discard an existing RUN and start over.")
@options.seed
@options.common
def train_batch(data, run, model, init_from, freeze_until, read_workers, **given):
    """Train model NAME on DATA... (one big file or many batch files), streaming from disk,
    into the run directory RUN.  NAME's own options (its label columns, architecture, ...) and
    its recipe (the defaults of --lr, --optimizer, --schedule, --ema...) are listed by
    `galprep train-batch --model NAME --help`.

    Running the same command again continues from the last checkpoint, exactly where an
    unbroken run would be. On SIGTERM or SIGUSR1 the current step finishes, a checkpoint is
    written and galprep exits with status 75 (EX_TEMPFAIL), so a batch job can requeue itself
    (see examples/train_requeue.sbatch).  With --distribute data every process stops at the
    same step (see examples/train_multinode.sbatch).
    """
    from galtools.train.loop import train
    from galtools.train.recipe import DEFAULTS

    names = set(DEFAULTS.__dataclass_fields__)
    settings = DEFAULTS.replace(
        workers=read_workers, **{k: v for k, v in given.items() if k in names}
    )
    model_options = {k: v for k, v in given.items() if k not in names}
    opts = dict(model_options, init_from=init_from, freeze_until=freeze_until)
    inputs = list(data) + [p for p in (settings.val, settings.mix) if p]
    train(list(data), run, model, opts, settings, history=options.provenance(inputs))
