"""galprep show."""

import click

from galtools import options


@click.command(short_help="Write a montage PNG of galaxies in a file.")
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@options.output(help="Output PNG.")
@options.overwrite
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Number of images (per file with several FILEs).",
)
@click.option("--random", is_flag=True, help="A seeded random choice instead of the first ones.")
@options.seed
@click.option(
    "--field",
    type=click.Choice(["images", "targets"]),
    default="images",
    show_default=True,
    help="Which images to show.",
)
@click.option(
    "--caption",
    "captions",
    multiple=True,
    metavar="COL",
    help="Label column printed on each stamp (repeatable).",
)
@click.option("--columns", type=click.IntRange(min=1), help="Stamps per row (default: square).")
@click.option("--scale", type=click.IntRange(min=1), help="Pixel upscaling (default: to ~128 px).")
@click.option(
    "--stretch",
    type=click.Choice(["auto", "linear", "percentile", "asinh"]),
    default="auto",
    show_default=True,
    help="Display stretch: auto = as is for 8-bit, asinh for float data.",
)
@click.option(
    "--rgb", metavar="BANDS", help="Bands for R,G,B ('i,r,g' or '2,1,0') or one band for grey."
)
@options.common
def show(
    paths, output, overwrite, count, random, seed, field, captions, columns, scale, stretch, rgb
):
    """Montage of the first (or --random) images of FILE, written to a PNG.

    With several FILEs (e.g. real galaxies and those of each generator), one row of N images
    per file, labelled with the file's name, in one picture."""
    from galtools.arrayfile import check_output
    from galtools.montage import montage_from_file, montage_rows

    check_output(output, overwrite, list(paths))
    common = dict(count=count, random=random, seed=seed, field=field, captions=captions)
    common.update(scale=scale, method=stretch, rgb=rgb)
    if len(paths) > 1:
        if columns:
            raise click.UsageError("--columns: with several FILEs each file is one row of N")
        montage_rows(paths, output, **common)
    else:
        montage_from_file(paths[0], output, columns=columns, **common)
