"""galprep merge."""

import click

from galtools import options


@click.command(short_help="Concatenate files of equal image shape and labels (e.g. shards).")
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@options.output()
@options.overwrite
@options.compression
@options.chunk_size()
@options.common
def merge(paths, output, overwrite, compression, chunk_size):
    """Concatenate FILE... (same image shape, dtype, bands, label columns) into OUT, in the
    order given, streaming chunk by chunk."""
    from galtools.merge import merge_files
    from galtools.progress import say

    n = merge_files(list(paths), output, options.provenance(paths), overwrite, compression,
                    chunk_size)
    say(f"merged {len(paths)} files, {n} images → {output}")
