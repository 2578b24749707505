"""galprep metrics."""

import click

from galtools import options

BUILTIN = ("fid", "kid", "power", "morph")


@click.command(short_help="FID/KID, power spectra and morphology of real vs generated galaxies.")
@click.argument("paths", nargs=-1, required=True, metavar="REAL [OTHER]")
@options.output(
    help="Two sets: JSON report.  One set: per-galaxy table (.h5/.csv) or a JSON summary."
)
@options.overwrite
@click.option("--fid", is_flag=True, help="Fréchet distance of extractor features.")
@click.option("--kid", is_flag=True, help="Kernel distance (unbiased MMD², cubic kernel).")
@click.option("--power", is_flag=True, help="Azimuthally averaged power spectra.")
@click.option("--morph", is_flag=True, help="Gini, M20, C, A, S, radii, shape, flux.")
@click.option(
    "--metric",
    "extra",
    multiple=True,
    metavar="NAME",
    help="A metric from a plugin (repeatable; see 'galprep plugins').",
)
@click.option("--all", "all_", is_flag=True, help="Every registered metric.")
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
    "--kid-subsets",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Number of KID subsets.",
)
@click.option(
    "--kid-subset-size",
    type=click.IntRange(min=2),
    default=None,
    help="KID subset size (default: min(N, 1000)).",
)
@click.option(
    "--cache", metavar="DIR", help="Feature cache keyed by input content, extractor and protocol."
)
@click.option(
    "--band",
    metavar="BAND",
    help="Band (name or index) for power and morphology "
    "(default: all bands for power, the middle band for morphology).",
)
@click.option(
    "--engine",
    type=click.Choice(["galtools", "statmorph"]),
    default="galtools",
    show_default=True,
    help="Morphology engine (statmorph: slow reference).",
)
@click.option(
    "--nsigma",
    type=click.FloatRange(min=0),
    default=1.5,
    show_default=True,
    help="Segmentation threshold in background σ.",
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
    fid,
    kid,
    power,
    morph,
    extra,
    all_,
    features,
    protocol,
    kid_subsets,
    kid_subset_size,
    cache,
    band,
    engine,
    nsigma,
    plots,
    seed,
    shard,
    chunk_size,
):
    """Compare REAL and OTHER (galaxy array files) with FID/KID on network features, power
    spectra and morphology, and write a JSON report recording every setting next to each
    number; or measure one FILE and write its per-galaxy table (.h5/.csv) or summary (.json)."""
    from galtools.metrics import available

    if len(paths) > 2:
        raise click.UsageError("give REAL and OTHER, or one FILE")
    names = [n for n, on in zip(BUILTIN, (fid, kid, power, morph)) if on] + list(extra)
    if all_:
        names = available()
        if len(paths) == 1:
            names = [n for n in names if n not in ("fid", "kid")]
    if not names:
        raise click.UsageError("choose metrics: --fid, --kid, --power, --morph, --metric or --all")
    names = list(dict.fromkeys(names))
    common = dict(
        features=features,
        protocol=protocol,
        cache=cache,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        seed=seed,
        band=band,
        engine=engine,
        nsigma=nsigma,
        chunk_size=chunk_size,
    )
    history = options.provenance(list(paths))
    if paths.count("-") > 1:
        raise click.UsageError("only one input can be '-' (stdin)")
    from galtools.metrics.report import spooled_stdin

    with spooled_stdin(paths) as paths:
        _run(paths, output, overwrite, plots, shard, names, history, common)


def _run(paths, output, overwrite, plots, shard, names, history, common):
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
            **common,
        )
        for name, entry in report["metrics"].items():
            if name in ("fid", "kid"):
                value = entry.get(name)
                extra_text = f" ± {entry['kid_std']:.3g}" if name == "kid" else ""
                say(f"{name}: {value:.6g}{extra_text}")
            elif "mean_wasserstein" in entry:
                say(f"{name}: mean Wasserstein {entry['mean_wasserstein']:.4g}")
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
