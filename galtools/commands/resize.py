"""galprep resize."""

import click

from galtools import options

ARRAY_SUFFIXES = (".h5", ".hdf5", ".npz")


def _size(ctx, param, value):
    if value is None:
        return None
    from galtools.imageio import parse_size

    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _bands(ctx, param, value):
    from galtools.imageio import parse_bands

    try:
        return parse_bands(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _nan(ctx, param, value):
    if value is None:
        return None
    text = value.strip()
    if not text.startswith("fill="):
        raise click.BadParameter(f"expected fill=VALUE, got {value!r}")
    try:
        return float(text[5:])
    except ValueError:
        raise click.BadParameter(f"expected fill=VALUE with a number, got {value!r}") from None


def _labels(ctx, param, value):
    if value is None or value.strip().lower() == "all":
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _regex(ctx, param, value):
    if value is None:
        return None
    import re

    try:
        re.compile(value)
    except re.error as exc:
        raise click.BadParameter(f"not a regular expression ({exc})") from None
    return value


def image_options(f):
    """Options shared by resize and compress: bands, catalog, folder output, workers."""
    decorators = [
        click.option(
            "--band",
            "bands",
            callback=_bands,
            metavar="BANDS",
            help="g, r, i (the band files), gri (the colour composite: …_gri.sdss.jpg, else "
            "…_gri.jpg, as inclinet), grey (mean of channels), or channel names/indices "
            "'g,r,i' / '0,2'. Default: every band, in wavelength order; an object with both "
            "a colour file and band files is then an error.",
        ),
        click.option(
            "--channel-order",
            type=click.Choice(["wavelength", "file"]),
            default="wavelength",
            show_default=True,
            help="A colour file's channels: wavelength order (g, r, i = B, G, R of the JPEG) or "
            "as stored (R, G, B = i, r, g: inclinet's arrays, for models trained on those).",
        ),
        click.option(
            "--root",
            metavar="ROOT",
            help="Use only files named <id>_ROOT_<band>.<ext> (inclinet's -r, e.g. d25x2_rot).",
        ),
        click.option(
            "--nan",
            "nan_fill",
            callback=_nan,
            metavar="fill=VALUE",
            help="Replace NaN/inf in FITS data (default: they are an error).",
        ),
        click.option(
            "--dtype",
            type=click.Choice(["uint8", "float32"]),
            default=None,
            help="Pixel type (default: uint8 for PNG/JPEG, float32 when any FITS).",
        ),
        click.option(
            "--catalog",
            type=click.Path(dir_okay=False),
            metavar="FILE",
            help="Label catalog: CSV, '|'-delimited text or FITS table.",
        ),
        click.option(
            "--id-column",
            metavar="COL",
            help="Catalog id column (default: pgc/id/name, else the first).",
        ),
        click.option(
            "--id-pattern",
            metavar="REGEX",
            callback=_regex,
            help="Regex whose first group is an image's id (default: the digits "
            "after 'pgc', else the file stem).",
        ),
        click.option(
            "--labels",
            callback=_labels,
            metavar="COLS",
            help="Catalog columns to attach, comma-separated, or 'all' (default).",
        ),
        click.option(
            "--require-labels", is_flag=True, help="An image without a catalog row is an error."
        ),
        click.option(
            "--skip-bad", is_flag=True, help="Skip unreadable files; list them in OUT.skipped.csv."
        ),
        options.jobs,
        click.option(
            "--chunk-size",
            type=click.IntRange(min=1),
            default=None,
            help="Objects per worker task and per written chunk (default: 64).",
        ),
        options.overwrite,
        options.compression,
    ]
    for deco in reversed(decorators):
        f = deco(f)
    return f


def run_prepare(
    inputs,
    output,
    to_folder,
    fmt,
    geometry,
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
    same_size=False,
):
    """Shared body of resize and compress."""
    import os

    from galtools.errors import GalError
    from galtools.imageio import FITS_SUFFIXES
    from galtools.progress import say
    from galtools.stamps import Decode, prepare

    if bool(output) == bool(to_folder):
        raise click.UsageError("give exactly one of -o/--output and --to-folder")
    if not catalog and (id_column or labels or require_labels):
        raise click.UsageError("--id-column/--labels/--require-labels need --catalog")
    if dtype is None:
        import glob

        def fits(spec):
            if os.path.isdir(spec):
                return any(n.lower().endswith(FITS_SUFFIXES) for n in os.listdir(spec))
            return any(p.lower().endswith(FITS_SUFFIXES) for p in (glob.glob(spec) or [spec]))

        dtype = "float32" if any(fits(s) for s in inputs) else "uint8"
    if to_folder and dtype != "uint8":
        raise GalError(
            "--to-folder writes 8-bit PNG/JPEG; these inputs are float32 "
            "(write an array file instead)"
        )
    inputs_ = list(inputs) + ([catalog] if catalog else [])
    if to_folder and channel_order == "file":
        raise click.UsageError(
            "--channel-order file is for array files (--to-folder writes "
            "colour files as colour files)"
        )
    decode = Decode(geometry, bands, dtype, nan_fill, same_size, root, channel_order)
    summary = prepare(
        list(inputs),
        output,
        decode,
        options.provenance(inputs_),
        catalog=catalog,
        id_column=id_column,
        id_pattern=id_pattern,
        labels=labels,
        require_labels=require_labels,
        to_folder=to_folder,
        fmt=fmt,
        jobs=options.n_jobs(jobs),
        chunk_size=chunk_size,
        shard=shard,
        skip_bad=skip_bad,
        overwrite=overwrite,
        compression=compression,
    )
    if not summary.get("skipped_shard"):
        shape = "×".join(map(str, summary["shape"]))
        say(
            f"{summary['images']} images {shape} ({','.join(summary['bands'])}) → "
            f"{summary['output']}"
        )


@click.command(short_help="Crop, resize and pick bands of cut-outs into an array file.")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@options.output(required=False)
@click.option(
    "--size", callback=_size, required=True, metavar="N|HxW", help="Output stamp size in pixels."
)
@click.option(
    "--crop",
    type=click.FloatRange(0, 1, min_open=True),
    default=1.0,
    show_default=True,
    help="Centre crop fraction before resizing.",
)
@click.option(
    "--filter",
    "filter_",
    type=click.Choice(["area", "bilinear", "bicubic", "lanczos"]),
    default="area",
    show_default=True,
    help="Resampling filter (all are anti-aliased when downsampling).",
)
@click.option(
    "--to-folder",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Write resized images <id>_<H>x<W>.<band>.<ext> into DIR instead.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "jpg"]),
    default="png",
    show_default=True,
    help="Image format for --to-folder.",
)
@image_options
@options.shard
@options.common
def resize(
    inputs,
    output,
    size,
    crop,
    filter_,
    to_folder,
    fmt,
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
    """Centre-crop, resize and select bands of INPUT... (folders or globs of PNG/JPEG/FITS
    cut-outs, or one galaxy array file, '-' for npz on stdin) into a galaxy array file OUT,
    with catalog labels.

    Band files of one object (pgc1_g.png, pgc1_r.png, …) are stacked into one stamp;
    colour composites named …_gri.jpg become channels g, r, i.  JPEGs are decoded at reduced
    scale where possible; --jobs worker processes decode chunks of files in parallel.
    """
    from galtools.imageio import Geometry

    geometry = Geometry(size, crop, filter_)
    if len(inputs) == 1 and (inputs[0] == "-" or inputs[0].lower().endswith(ARRAY_SUFFIXES)):
        from galtools.progress import say
        from galtools.stamps import resize_file

        if to_folder or catalog or root:
            raise click.UsageError(
                "--to-folder/--catalog/--root need image inputs, not an array file"
            )
        if not output:
            raise click.UsageError("missing -o/--output")
        summary = resize_file(
            inputs[0],
            output,
            geometry,
            bands,
            options.provenance(inputs),
            shard=shard,
            overwrite=overwrite,
            compression=compression,
            chunk_size=chunk_size,
        )
        if not summary.get("skipped_shard"):
            say(f"{summary['images']} images → {summary['output']}")
        return
    run_prepare(
        inputs,
        output,
        to_folder,
        fmt,
        geometry,
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
    )
