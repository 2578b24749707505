"""galprep merge."""

import click

from galtools import options


@click.command(short_help="Concatenate files of equal image shape and labels, or CSV shards.")
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@options.output()
@options.overwrite
@options.compression
@options.chunk_size()
@options.common
def merge(paths, output, overwrite, compression, chunk_size):
    """Concatenate FILE... (same image shape, dtype, bands, label columns) into OUT, in the
    order given, streaming chunk by chunk.  CSV files (``score`` shards) join into one CSV
    with their common header once."""
    from galtools.errors import GalError
    from galtools.merge import is_table, merge_files, merge_tables
    from galtools.progress import say

    tables = [is_table(p) for p in paths]
    if any(tables):
        if not all(tables):
            raise GalError("CSV files cannot be merged with array files")
        n = merge_tables(list(paths), output, overwrite)
        say(f"merged {len(paths)} CSV files, {n} rows → {output}")
        return
    n = merge_files(
        list(paths), output, options.provenance(paths), overwrite, compression, chunk_size
    )
    say(f"merged {len(paths)} files, {n} images → {output}")
