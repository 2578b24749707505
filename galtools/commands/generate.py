"""galprep generate."""

import click

from galtools import options


@click.command(short_help="Sample images from a generative run (conditions, score threshold).")
@click.argument("run_path", metavar="RUN")
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=1),
    metavar="N",
    help="Images to write (default with --conditions-from: one per row).",
)
@options.output()
@click.option(
    "--condition",
    metavar="NAME=VALUE,...",
    help="Runs that take conditions: fixed values in physical units, e.g. "
    "redshift=0.3,log_mass=10.5.",
)
@click.option(
    "--conditions-from",
    metavar="FILE",
    help="Runs that take conditions: draw them row by row (cycling) from a catalog (CSV/FITS/text "
    "with a header) or from the label columns of a .h5/.npz file.",
)
@click.option(
    "--min-score",
    type=float,
    metavar="T",
    help="Keep only images scoring above T (a run that scores images, or --scorer).",
)
@click.option("--scorer", metavar="RUN2", help="A run of a model that scores images.")
@click.option(
    "--max-tries",
    type=click.IntRange(min=1),
    metavar="M",
    help="With --min-score: give up after M generated images (default 20·N).",
)
@click.option("--montage", metavar="PNG", help="Also write a picture of the first images.")
@click.option(
    "--steps",
    type=int,
    metavar="N",
    help="Diffusion runs: sampling steps (default: the run's, 40).",
)
@click.option(
    "--guidance",
    type=float,
    metavar="W",
    help="Diffusion runs with conditions: classifier-free guidance weight (default: the "
    "run's, 2; 1: plain conditional sampling, half the time; 0: unconditional).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Images per generator call (the output depends on it and on --seed).",
)
@options.seed
@options.overwrite
@options.compression
@options.common
def generate(
    run_path,
    count,
    output,
    condition,
    conditions_from,
    min_score,
    scorer,
    max_tries,
    montage,
    steps,
    guidance,
    batch_size,
    seed,
    overwrite,
    compression,
):
    """Sample N images from RUN, a run of a model that generates images, into OUT, batch by
    batch.  The same --seed and --batch-size give the same images.  The conditions of a run
    that takes them are stored as label columns of OUT; with a scorer (RUN itself when it
    scores images, or --scorer), so are `score` and `p_real`.  A diffusion run samples in
    --steps deterministic steps (the same --seed, --batch-size, --steps and --guidance give
    the same images)."""
    from galtools.errors import GalError
    from galtools.generation import (
        Conditions,
        check_gan,
        generate_file,
        parse_conditions,
        read_condition_table,
    )
    from galtools.progress import say
    from galtools.runs import load_run

    fixed = parse_conditions(condition) if condition else None
    run = load_run(run_path)
    check_gan(run)
    sampler = run.sampler_options({"steps": steps, "guidance": guidance})
    table = None
    if conditions_from:
        names = [c for c in run.conditions if c not in (fixed or {})]
        if not run.conditions:
            raise GalError(f"{run.path}: a {run.model_name} run takes no conditions")
        table = read_condition_table(conditions_from, names)
    conditions = Conditions(run, fixed, table)
    if count is None:
        if conditions.rows is None:
            raise click.UsageError("give -n N (or --conditions-from FILE for one image a row)")
        count = conditions.rows
    elif conditions.rows is not None and count > conditions.rows:
        say(f"{count} images from {conditions.rows} condition rows: the rows are cycled")
    if min_score is None and max_tries:
        say("note: --max-tries without --min-score: every image is kept")
    scorer_run = load_run(scorer) if scorer else None
    history = options.provenance([run_path] + ([conditions_from] if conditions_from else []))
    info = generate_file(
        run,
        count,
        output,
        history,
        seed,
        batch_size,
        conditions,
        min_score,
        scorer_run,
        max_tries,
        montage,
        overwrite,
        compression,
        sampler,
    )
    line = f"generated {info['n']} images → {output}"
    if min_score is not None:
        line += f" ({info['tries']} tried, {100 * info['acceptance']:.1f}% above {min_score:g})"
    say(line)
