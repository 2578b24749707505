"""galprep augment."""

import click

from galtools import options

OPS = [
    ("hflip", "P", "Horizontal flip with probability P."),
    ("vflip", "P", "Vertical flip with probability P."),
    ("rot90", "P", "Rotation by a random multiple of 90° with probability P."),
    ("rotate", "LO:HI[@P]", "Rotation by an angle in degrees (V alone: -V:V)."),
    ("scale", "LO:HI[@P]", "Zoom factor about the centre (>1 enlarges)."),
    ("shift", "LO:HI[@P]", "Translation in pixels along each axis (V alone: -V:V)."),
    ("blur", "LO:HI[@P]", "Gaussian blur, sigma in pixels."),
    ("brightness", "LO:HI[@P]", "Multiply by a factor."),
    ("offset", "LO:HI[@P]", "Add a constant (data units: 0-255 for 8-bit)."),
    ("gamma", "LO:HI[@P]", "Gamma on the image's value range."),
    ("noise", "LO:HI[@P]", "Additive Gaussian noise, sigma in data units."),
    ("invert", "P", "Invert a fraction P of the images."),
    (
        "greyscale",
        "[LO:HI@]P",
        "Blend a fraction P of images towards grey (amount LO:HI, default 1: the mean of "
        "the bands in every band).",
    ),
    (
        "invert-grey",
        "P",
        "Invert a fraction P of the images --greyscale made grey (inclinet: --greyscale 0.5 "
        "--invert-grey 0.5).",
    ),
]


def _op_callback(ctx, param, value):
    if value is None:
        return None
    from galtools.augment import parse_op

    try:
        return parse_op(param.name, value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _bins(ctx, param, value):
    if value is None:
        return None
    from galtools.augment import parse_bins

    try:
        return tuple(float(e) for e in parse_bins(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def op_options(f):
    for name, metavar, text in reversed(OPS):
        f = click.option(
            f"--{name}", name.replace("-", "_"), callback=_op_callback, metavar=metavar, help=text
        )(f)
    return f


@click.command(short_help="Augment images (flips, rotations, noise, …), uniform label bins.")
@click.argument("path", metavar="FILE")
@options.output(help="Output file (.h5/.npz), or a folder with --batches.")
@op_options
@click.option(
    "--fill",
    type=click.Choice(["reflect", "nearest", "constant", "wrap"]),
    default="reflect",
    show_default=True,
    help="How rotate/scale/shift fill pixels from outside the image.",
)
@click.option(
    "--uniform",
    metavar="COL",
    help="Resample so every bin of COL holds --per-bin images (e.g. inclination).",
)
@click.option(
    "--bins",
    callback=_bins,
    metavar="LO:HI:STEP",
    help="Bins for --uniform: LO:HI:STEP or edges 'a,b,c'.",
)
@click.option("--per-bin", type=click.IntRange(min=1), metavar="N", help="Images per bin.")
@click.option(
    "--bins-closed",
    type=click.Choice(["left", "right"]),
    default="left",
    show_default=True,
    help="left: bins [a, b), the last [a, b]; right: (a, b], the first [a, b] (inclinet's).",
)
@click.option("--allow-empty-bins", is_flag=True, help="Leave empty bins empty, not an error.")
@click.option(
    "--copies",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Augmented copies of every image (without --uniform).",
)
@click.option(
    "--batches",
    type=click.IntRange(min=1),
    metavar="K",
    help="Write K shuffled batch files OUT/batch_000.h5 … instead of one file.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["h5", "npz"]),
    default="h5",
    show_default=True,
    help="Container of --batches files.",
)
@options.jobs
@options.seed
@options.shard
@options.overwrite
@options.compression
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=None,
    help="Images augmented at once (default: ~16 MB of them as float32).",
)
@options.common
def augment(
    path,
    output,
    fill,
    uniform,
    bins,
    per_bin,
    bins_closed,
    allow_empty_bins,
    copies,
    batches,
    fmt,
    jobs,
    seed,
    shard,
    overwrite,
    compression,
    chunk_size,
    **ops,
):
    """Augment the images of FILE into OUT, chunk by chunk, with seeded random parameters.
    Labels and ids travel with the images; targets get the same geometric transforms.

    Each op is applied to an image with its probability (default 1 for ops with a range).
    Without any op, --hflip 0.5 --vflip 0.5 --rot90 1 is used.  Output rows are shuffled.
    """
    from galtools.augment import DEFAULT_OPS, Augmenter
    from galtools.progress import say

    chosen = [op for op in ops.values() if op is not None] or list(DEFAULT_OPS)
    if uniform and (bins is None or per_bin is None):
        raise click.UsageError("--uniform needs --bins and --per-bin")
    if ops.get("invert_grey") is not None and ops.get("greyscale") is None:
        raise click.UsageError("--invert-grey inverts images made grey by --greyscale")
    if (bins is not None or per_bin is not None) and not uniform:
        raise click.UsageError("--bins/--per-bin need --uniform COL")
    if uniform and copies != 1:
        raise click.UsageError("--copies and --uniform exclude each other")
    from galtools.augment import augment_file

    written = augment_file(
        path,
        output,
        Augmenter(chosen, fill),
        options.provenance([path]),
        uniform=uniform,
        bins=bins,
        per_bin=per_bin,
        allow_empty=allow_empty_bins,
        closed=bins_closed,
        copies=copies,
        batches=batches,
        fmt=fmt,
        seed=seed,
        shard=shard,
        overwrite=overwrite,
        compression=compression,
        chunk_size=chunk_size,
        jobs=options.n_jobs(jobs),
    )
    for out, rows in written.items():
        say(f"{out}: {rows} images")
