"""galprep metrics.

The flags that choose metrics (``--NAME``) and the metrics' own settings come from the
registered metrics (``galtools.metrics``): each declares its ``options``
(:mod:`galtools.params`).  They are made when the command runs or shows its help, never when
``galprep --help`` lists it; a broken metric's flags are left out and its reason shown.
"""

import re
from dataclasses import dataclass, field

import click

from galtools import options

MADE = "galtools.commands.metrics"  # ctx.meta key of the flags made for one invocation


@dataclass
class MetricFlags:
    """The parameters made from the registered metrics for one invocation."""

    selectors: dict = field(default_factory=dict)  # parameter name → metric name
    kinds: dict = field(default_factory=dict)  # metric name → kind (the metrics that load)
    settings: list = field(default_factory=list)  # names of the metrics' options
    select_params: list = field(default_factory=list)
    option_params: list = field(default_factory=list)
    broken: dict = field(default_factory=dict)  # metric name → reason


def _click_params(specs):
    """click.Option objects for galtools.params.Option specs (through options.from_params)."""

    def holder():
        pass

    options.from_params(specs)(holder)
    return list(reversed(getattr(holder, "__click_params__", [])))


def metric_flags(static):
    """Flags of the registered metrics, none clashing with ``static`` (the command's own).

    Built-in metrics come first; an option declared by several metrics is one flag if they
    declare it alike, else the later metric is left out as broken.
    """
    from galtools import registry
    from galtools.metrics import GROUP, instantiate

    taken = set()
    for p in static:
        taken.update([p.name, *p.opts, *p.secondary_opts])
    made = MetricFlags()
    declared = {}  # option name → (Option, metric name)
    found = sorted(registry.entries(GROUP).items(), key=lambda kv: (not kv[1].builtin, kv[0]))
    metrics = {}
    for name, entry in found:
        if entry.error is not None:
            made.broken[name] = entry.error
            continue
        metric = instantiate(entry.load())
        clash = None
        for spec in getattr(metric, "options", ()):
            if spec.name in declared and declared[spec.name][0] != spec:
                clash = f"its {spec.flag} differs from metric '{declared[spec.name][1]}''s"
            elif spec.name not in declared and ({spec.name, spec.flag} & taken):
                clash = f"its {spec.flag} is an option of galprep metrics itself"
            if clash:
                break
        if clash:
            made.broken[name] = clash
            continue
        new = [s for s in getattr(metric, "options", ()) if s.name not in declared]
        for spec in new:
            declared[spec.name] = (spec, name)
            taken.update([spec.name, spec.flag])
        made.settings += [s.name for s in new]
        made.option_params += _click_params(new)
        metrics[name] = metric
        made.kinds[name] = metric.kind
    for name, metric in metrics.items():  # --NAME where the flag is free
        dest = name.replace("-", "_")
        if re.fullmatch(r"[a-z][a-z0-9-]*", name) and not {dest, f"--{name}"} & taken:
            taken.update([dest, f"--{name}"])
            made.selectors[dest] = name
            made.select_params.append(
                click.Option([f"--{name}", dest], is_flag=True, help=f"{metric.title}.")
            )
    return made


class MetricsCommand(click.Command):
    """A command whose metric flags are made from the registry when it is used."""

    def flags(self, ctx):
        if MADE not in ctx.meta:
            ctx.meta[MADE] = metric_flags(self.params)
        return ctx.meta[MADE]

    def get_params(self, ctx):
        made = self.flags(ctx)
        params = []
        for p in super().get_params(ctx):
            if p.name == "metric":
                params += made.select_params
            params.append(p)
            if p.name == "cache":
                params += made.option_params
        return params

    def format_epilog(self, ctx, formatter):
        super().format_epilog(ctx, formatter)
        broken = self.flags(ctx).broken
        if broken:
            with formatter.section("Broken metrics (left out; see 'galprep plugins')"):
                formatter.write_dl([(f"✗ {name}", reason) for name, reason in broken.items()])


@click.command(
    cls=MetricsCommand,
    short_help="FID/KID, power spectra and morphology of real vs generated galaxies.",
)
@click.argument("paths", nargs=-1, required=True, metavar="REAL [OTHER]")
@options.output(
    help="Two sets: JSON report.  One set: per-galaxy table (.h5/.csv) or a JSON summary."
)
@options.overwrite
@click.option(
    "--metric",
    "metric",
    multiple=True,
    metavar="NAME",
    help="A metric by name (repeatable; see 'galprep plugins').",
)
@click.option("--all", "all", is_flag=True, help="Every registered metric.")
@click.option(
    "--condition-check",
    "condition_check",
    multiple=True,
    metavar="RUN",
    help="Read OTHER's condition columns back from its images with regression RUN "
    "(repeatable; its target must be a label column of OTHER): RMSE, bias, spread of "
    "read-back − condition, next to RUN's own RMSE/bias on REAL.",
)
@click.option(
    "--readback-bias",
    "readback_bias",
    multiple=True,
    metavar="FILE",
    help="Linear bias correction of a --condition-check RUN (the JSON of 'galprep score "
    "--fit-bias', fitted on real galaxies; repeatable, matched by its target), applied to the "
    "read-back of REAL and OTHER alike.",
)
@options.tta(
    "Average each --condition-check read-back over K flips and quarter turns of the "
    "image, as 'galprep score --tta K' does.",
)
@click.option(
    "--flux-check",
    "flux_check",
    multiple=True,
    metavar="COLUMN",
    help="Flux-like condition column of OTHER (repeatable): Spearman rank correlation of "
    "it with the measured flux (sum of pixel values over all bands and pixels, data units), "
    "REAL's as the reference.  Default with --condition-check: 'flux' if OTHER has it; "
    "'none' skips.",
)
@click.option(
    "--features",
    default="inception-2015",
    show_default=True,
    metavar="NAME[:ARG]",
    help="Feature extractor for FID/KID, e.g. inception-2015 or run:PATH.",
)
@click.option(
    "--protocol",
    metavar="NAME[,KEY=VALUE...]",
    help="Images → extractor input: holzschuh2022, rgb, raw, plus overrides "
    "(bands, stretch, lo, hi, cmap, size, filter, quantize). Default: the "
    "extractor's.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    metavar="auto|cpu|cuda[:N]",
    help="Where feature extractors on PyTorch run (inception-2015); auto: a GPU when torch "
    "sees one.  run:PATH runs where Keras puts it.",
)
@click.option(
    "--features-batch-size",
    type=click.IntRange(min=1),
    metavar="N",
    help="Images per forward pass of the feature extractor (default: the extractor's; "
    "inception-2015: 32 on a CPU, 128 on a GPU; run:PATH: 256).",
)
@click.option(
    "--cache", metavar="DIR", help="Feature cache keyed by input content, extractor and protocol."
)
@click.option("--plots", metavar="DIR", help="Write PNG plots into DIR (two sets).")
@options.seed
@options.shard
@options.chunk_size()
@options.common
def metrics(
    paths,
    output,
    overwrite,
    metric,
    condition_check,
    flux_check,
    readback_bias,
    tta,
    features,
    protocol,
    device,
    features_batch_size,
    cache,
    plots,
    seed,
    shard,
    chunk_size,
    **kw,
):
    """Compare REAL and OTHER (galaxy array files) with FID/KID on network features, power
    spectra and morphology, and write a JSON report recording every setting next to each
    number; or measure one FILE and write its per-galaxy table (.h5/.csv) or summary (.json).

    Each metric has a flag of its own (--fid, --kid, --power, --morph, ... ; plugins add
    more) and its settings below.

    OTHER made by a conditional generator keeps its condition columns: --condition-check RUN
    reads each back with a regression run, and --flux-check checks that brighter conditions
    give brighter galaxies.  These are options of the command rather than metric plugins:
    they need label columns and trained runs, which the metric contract (images or features
    only) does not carry."""
    from galtools.features import check_device
    from galtools.progress import say

    made = click.get_current_context().meta[MADE]
    if len(paths) > 2:
        raise click.UsageError("give REAL and OTHER, or one FILE")
    names = [made.selectors[k] for k in made.selectors if kw.get(k)] + list(metric)
    if kw.get("all"):
        names = [n for n, kind in made.kinds.items() if len(paths) == 2 or kind != "features"]
        for name, reason in made.broken.items():
            say(f"metric '{name}' is broken, skipped: {reason}")
    conditions = None
    if condition_check or flux_check:
        if len(paths) != 2:
            raise click.UsageError("--condition-check and --flux-check need REAL and OTHER")
        flux = None if not flux_check else [c for c in flux_check if c.lower() != "none"]
        if flux_check and len(flux) != len(flux_check):
            flux = []
        conditions = {
            "runs": list(condition_check),
            "flux_columns": flux,
            "bias_corrections": list(readback_bias),
            "tta": tta,
        }
    if tta > 1 and not condition_check:
        raise click.UsageError("--tta averages a --condition-check RUN's read-back: give one")
    if readback_bias and not condition_check:
        raise click.UsageError("--readback-bias corrects a --condition-check RUN: give one")
    if not names and conditions is None:
        flags = ", ".join(f"--{n}" for n in made.selectors.values())
        raise click.UsageError(
            f"choose metrics: {flags}, --metric NAME, --all or --condition-check RUN"
        )
    names = list(dict.fromkeys(names))
    device = check_device(device)
    if (device != "auto" or features_batch_size) and not any(
        made.kinds.get(n) == "features" for n in names
    ):
        say("--device and --features-batch-size apply to feature extractors (FID, KID): ignored")
    common = dict(
        features=features,
        protocol=protocol,
        device=device,
        features_batch_size=features_batch_size,
        cache=cache,
        seed=seed,
        chunk_size=chunk_size,
        **{name: kw[name] for name in made.settings},
    )
    history = options.provenance(list(paths))
    if paths.count("-") > 1:
        raise click.UsageError("only one input can be '-' (stdin)")
    from galtools.metrics.report import spooled_stdin

    with spooled_stdin(paths) as paths:
        _run(paths, output, overwrite, plots, shard, names, history, common, conditions)


def _run(paths, output, overwrite, plots, shard, names, history, common, conditions=None):
    import os

    from galtools.progress import say

    if len(paths) == 2:
        from galtools.metrics.report import run_compare

        if shard.count > 1:
            raise click.UsageError("--shard applies to one-set tables")
        report = run_compare(
            paths[0],
            paths[1],
            output,
            names,
            plots=plots,
            overwrite=overwrite,
            history=history,
            conditions=conditions,
            **common,
        )
        for name, entry in report["metrics"].items():
            value = entry.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                std = entry.get(f"{name}_std")
                say(f"{name}: {value:.6g}" + (f" ± {std:.3g}" if std is not None else ""))
            elif "mean_wasserstein" in entry:
                say(f"{name}: mean Wasserstein {entry['mean_wasserstein']:.4g}")
        if "condition_check" in report:
            from galtools.metrics.conditions import summary_lines

            for line in summary_lines(report["condition_check"]):
                say(line)
        return
    from galtools.metrics.report import run_table

    if plots:
        raise click.UsageError("--plots needs two sets")
    out = shard.output_path(output)
    if shard.count > 1 and os.path.exists(out) and not overwrite:
        say(f"{out} exists: shard {shard} already done, skipped")
        return
    run_table(
        paths[0],
        out,
        names,
        overwrite=overwrite,
        history=history,
        shard=shard if shard.count > 1 else None,
        **common,
    )
