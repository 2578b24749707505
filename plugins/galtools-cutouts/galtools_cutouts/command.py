"""galprep cutouts."""

import click

from galtools import options


@click.command(short_help="Cut stamps of detected sources out of a large image (photutils).")
@click.argument("image", metavar="IMAGE", required=False)
@options.output()
@options.overwrite
@click.option(
    "--hubble-deep-field",
    "hdf",
    is_flag=True,
    help="Use the Hubble Deep Field image shipped with scikit-image (no IMAGE).",
)
@click.option(
    "--size",
    type=click.IntRange(min=8),
    default=64,
    show_default=True,
    help="Stamp side in pixels.",
)
@click.option(
    "--min-area",
    type=click.IntRange(min=1),
    help="Least connected pixels above the threshold for a source "
    "[default: 20; 50 with --hubble-deep-field].",
)
@click.option(
    "--nsigma",
    type=click.FloatRange(min=0, min_open=True),
    help="Detection threshold in background RMS [default: 3; 5 with --hubble-deep-field].",
)
@click.option(
    "--box-size",
    type=click.IntRange(min=8),
    default=64,
    show_default=True,
    help="Mesh size of the background estimate, pixels.",
)
@click.option("--no-deblend", is_flag=True, help="Keep blended sources as one.")
@click.option(
    "--exclude-stars",
    is_flag=True,
    help="Drop compact round sources (as small as the PSF) and thin spikes.",
)
@click.option(
    "--star-fwhm",
    type=click.FloatRange(min=0, min_open=True),
    help="PSF FWHM in pixels for star flags (default: estimated from the image).",
)
@click.option(
    "--keep-edge",
    is_flag=True,
    help="Keep stamps that cross the image edge (zero-filled; see label 'inside').",
)
@click.option(
    "--preview",
    metavar="PNG",
    help="Also write the whole image with a circle on every source (green: cut, "
    "red: stars dropped, grey: dropped at the edge).",
)
@options.compression
@options.common
def cutouts(
    image,
    output,
    overwrite,
    hdf,
    size,
    min_area,
    nsigma,
    box_size,
    no_deblend,
    exclude_stars,
    star_fwhm,
    keep_edge,
    preview,
    compression,
):
    """Detect the sources of IMAGE (FITS, PNG, JPEG) by image segmentation — background and
    RMS maps, a threshold of NSIGMA × RMS, at least MIN_AREA pixels, deblending — and write a
    stamp of each to OUT, background-subtracted, with labels x, y (centroid, pixels), area,
    flux, ellipticity, orientation (degrees), fwhm, segment, is_star and inside (fraction of
    the stamp within the image).

    \b
    Example: galprep cutouts --hubble-deep-field -o hdf.h5
    """
    from galtools.progress import say
    from galtools_cutouts.cutouts import make_cutouts

    if hdf == bool(image):
        raise click.UsageError("give IMAGE or --hubble-deep-field (one of them)")
    inputs = [] if hdf else [image]
    # the HDF JPEG is deep and compressed: stricter defaults keep its ~300 clear sources
    min_area = min_area or (50 if hdf else 20)
    nsigma = nsigma or (5.0 if hdf else 3.0)
    written, found = make_cutouts(
        image,
        output,
        options.provenance(inputs),
        size=size,
        min_area=min_area,
        nsigma=nsigma,
        deblend=not no_deblend,
        exclude_stars=exclude_stars,
        keep_edge=keep_edge,
        star_fwhm=star_fwhm,
        box_size=box_size,
        overwrite=overwrite,
        compression=compression,
        hdf=hdf,
        preview=preview,
    )
    say(f"{found} sources detected, {written} stamps {size}×{size} → {output}")
