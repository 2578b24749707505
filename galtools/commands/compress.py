"""galprep compress."""

import click

from galtools import options
from galtools.commands.resize import image_options


@click.command(short_help="Pack a folder of equal-size images (+ catalog) into an array file.")
@click.argument("inputs", nargs=-1, required=True, metavar="FOLDER...")
@options.output()
@image_options
@options.shard
@options.common
def compress(
    inputs,
    output,
    bands,
    root,
    channel_order,
    nan_fill,
    dtype,
    catalog,
    id_column,
    id_pattern,
    labels,
    require_labels,
    skip_bad,
    jobs,
    chunk_size,
    overwrite,
    compression,
    shard,
):
    """Pack the images of FOLDER... (all the same size; PNG/JPEG/FITS, band files stacked)
    into one galaxy array file OUT, attaching catalog labels as in resize.  An image of another
    size is an error naming it and both sizes."""
    from galtools.commands.resize import run_prepare
    from galtools.imageio import Geometry

    run_prepare(
        inputs,
        output,
        None,
        "png",
        Geometry(),
        bands,
        root,
        channel_order,
        nan_fill,
        dtype,
        catalog,
        id_column,
        id_pattern,
        labels,
        require_labels,
        skip_bad,
        jobs,
        chunk_size,
        shard,
        overwrite,
        compression,
        same_size=True,
    )
