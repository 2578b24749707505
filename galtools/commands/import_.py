"""galprep import: one subcommand per registered importer (galtools.importers)."""

import click

from galtools import options
from galtools.cli import PluginGroup

GROUP = "galtools.importers"


def _bands(ctx, param, value):
    if value is None:
        return None
    bands = [b.strip() for b in value.split(",")] if "," in value else list(value)
    if not bands or any(not b for b in bands) or len(set(bands)) != len(bands):
        raise click.BadParameter(f"bands must be distinct names, got {value!r}")
    return bands


def build_command(importer):
    """The click command ``galprep import NAME`` for one importer object."""
    names = [spec.name for spec in importer.options]

    def callback(
        source,
        output,
        overwrite,
        compression,
        chunk_size,
        shard,
        catalog,
        catalog_id,
        catalog_where,
        bands,
        pixel_scale,
        **fmt,
    ):
        import os

        from galtools.importers.convert import run, source_inputs
        from galtools.meta import history_entry
        from galtools.progress import say

        if catalog_where and not catalog:
            raise click.UsageError("--catalog-where needs --catalog")
        out = shard.output_path(output)
        if shard.count > 1 and os.path.exists(out) and not overwrite:
            say(f"shard {shard}: {out} exists, skipped")
            return
        ctx = click.get_current_context()
        inputs = source_inputs(source) + ([catalog] if catalog else [])
        entry = history_entry("import", dict(ctx.params, format=importer.name), inputs)
        fmt = {k: fmt[k] for k in names}
        n, report = run(
            importer,
            source,
            out,
            entry,
            overwrite,
            compression,
            chunk_size,
            shard,
            catalog,
            catalog_id,
            bands,
            pixel_scale,
            fmt,
            catalog_where=catalog_where,
        )
        if report:
            say(report)
        say(f"imported {n} objects ({importer.name}) → {out}")

    f = callback
    f = options.common(f)
    for spec in reversed(importer.options):
        f = options.from_param(spec)(f)
    f = click.option(
        "--pixel-scale",
        type=click.FloatRange(min=0, min_open=True),
        help="Arcsec per pixel (overrides the format's).",
    )(f)
    f = click.option(
        "--bands",
        callback=_bands,
        metavar="BANDS",
        help="Band names, 'gri' or 'g,r,i' (overrides the format's).",
    )(f)
    f = click.option(
        "--catalog-where",
        metavar="EXPR",
        help="Keep only catalog rows where EXPR holds (the --where language of split), before "
        "the first row per id is taken, e.g. 'selected' (galaxyCGAN's df[df.selected]).",
    )(f)
    f = click.option(
        "--catalog-id",
        default="id",
        show_default=True,
        metavar="COLUMN",
        help="The id column of --catalog.",
    )(f)
    f = click.option(
        "--catalog",
        type=click.Path(exists=True, dir_okay=False),
        help="CSV of labels joined on the ids (a repeated id: first row wins).",
    )(f)
    f = options.shard(f)
    f = click.option(
        "--chunk-size",
        type=click.IntRange(min=1),
        default=64,
        show_default=True,
        help="Objects read and written at once.",
    )(f)
    f = options.compression(f)
    f = options.overwrite(f)
    f = options.output()(f)
    f = click.argument("source", metavar="SOURCE")(f)
    source_help = getattr(importer, "source_help", "SOURCE")
    doc = (
        f"{importer.summary}\n\nSOURCE: {source_help}.  Writes OUT with the "
        "images, ids and labels; --catalog joins a CSV on the ids."
    )
    return click.command(importer.name, help=doc, short_help=importer.summary)(f)


class ImportGroup(PluginGroup):
    """Subcommands from the galtools.importers entry points, loaded on demand.

    A broken importer (failed import or check) is one broken subcommand; the others work.
    """

    entry_group = GROUP
    what = "importer"

    def make_command(self, name, importer, entry):
        return build_command(importer)

    def resolve_command(self, ctx, args):
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            known = ", ".join(self.list_commands(ctx)) or "none"
            raise click.UsageError(f"unknown format '{args[0]}'; known: {known}", ctx)
        return super().resolve_command(ctx, args)


@click.group(
    "import",
    cls=ImportGroup,
    short_help="Bring outside data sets in "
    "(Galaxy10, Kaggle PNG folders, npy arrays, FITS folders...).",
)
@options.common
def import_():
    """Convert an outside data set into a galaxy array file:
    galprep import FORMAT SOURCE -o OUT.  FORMAT is one of the registered importers (listed
    below; plugins add more); 'galprep import FORMAT --help' shows its options.

    \b
    Examples:
      galprep import galaxy10 Galaxy10_DECals.h5 -o galaxy10.h5
      galprep import kaggle-png images_training/ --csv solutions.csv -o kaggle.h5
      galprep import npy images.npy --channels-first --ids ids.npy --catalog cat.csv -o x.h5
      galprep import fits-folder stamps/ -o stamps.h5
    """
