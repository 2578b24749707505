"""galprep info."""

import json

import click

from galtools import options


@click.command(short_help="Describe a galaxy array file: shapes, labels, value range, history.")
@click.argument("path", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--no-scan", is_flag=True, help="Skip the pass over the images (value range).")
@options.chunk_size()
@options.common
def info(path, as_json, no_scan, chunk_size):
    """Describe FILE (.h5/.npz, or - for npz on stdin): number of images, image shape and
    dtype, bands, per-label count/min/max/mean or class counts, the images' value range, and the
    provenance history."""
    from galtools.summary import describe, format_text

    d = describe(path, scan_images=not no_scan, chunk_size=chunk_size)
    click.echo(json.dumps(d, indent=2) if as_json else format_text(d))
