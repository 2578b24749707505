"""galprep split."""

import click

from galtools import options


@click.command(short_help="Train/validation/test split, row selection, bagging subsamples.")
@click.argument("path", metavar="FILE")
@click.option(
    "-o",
    "--output",
    "outdir",
    required=True,
    metavar="OUTDIR",
    help="Folder for train_000.h5, test_000.h5, val_000.h5, … (created if needed).",
)
@click.option(
    "--test",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Fraction of rows for the test set.",
)
@click.option(
    "--val",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Fraction of rows for the validation set.",
)
@click.option(
    "--percentage",
    type=click.FloatRange(0, 1, min_open=True),
    metavar="FRAC",
    help="Keep only a random fraction of the rows first (e.g. 0.1).",
)
@click.option(
    "--where",
    metavar="EXPR",
    help="Keep rows where EXPR holds, e.g. 'inc >= 45 and inc_flg == 0' "
    "(comparisons, and/or/not, parentheses, numbers, strings, columns).",
)
@click.option("--stratify", metavar="COL", help="Split each value of COL in the same ratios.")
@click.option(
    "--subsamples",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Bagging: K random training subsets train_001… and complements test_001….",
)
@click.option(
    "--fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.67,
    show_default=True,
    help="Size of each bagging subset.",
)
@click.option(
    "--same-split-as",
    metavar="SPLIT",
    help="Repeat an earlier split (its folder or one of its files) by id.",
)
@click.option(
    "--match",
    multiple=True,
    metavar="FILE",
    help="Split FILE (other bands of the same objects) identically by id into "
    "OUTDIR/<its name>/ (repeatable).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["h5", "npz"]),
    default="h5",
    show_default=True,
    help="Container of the outputs.",
)
@options.seed
@options.overwrite
@options.compression
@options.chunk_size()
@options.common
def split(
    path,
    outdir,
    test,
    val,
    percentage,
    where,
    stratify,
    subsamples,
    fraction,
    same_split_as,
    match,
    fmt,
    seed,
    overwrite,
    compression,
    chunk_size,
):
    """Split FILE into OUTDIR/train_000, test_000 and val_000 (.h5 or .npz), optionally after
    --where / --percentage row selection, stratified by a label column, with bagging
    subsamples.  The same seed gives the same split; each output records it in its history.
    Parts of an earlier split of FILE left in OUTDIR (say bags train_002 when this split has
    fewer) are an error, and are removed with --overwrite once the new split is written."""
    from galtools.progress import say
    from galtools.splitting import split_file

    inputs = [path, *match] + ([same_split_as] if same_split_as else [])
    written = split_file(
        path,
        outdir,
        options.provenance(inputs),
        test=test,
        val=val,
        percentage=percentage,
        where=where,
        stratify=stratify,
        subsamples=subsamples,
        fraction=fraction,
        same_split_as=same_split_as,
        match=match,
        fmt=fmt,
        seed=seed,
        overwrite=overwrite,
        compression=compression,
        chunk_size=chunk_size,
    )
    for out, rows in written.items():
        say(f"{out}: {rows} rows")
