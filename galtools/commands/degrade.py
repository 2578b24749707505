"""galprep degrade."""

import click

from galtools import options


@click.command(short_help="Make denoising pairs: PSF blur, noise, lower resolution.")
@click.argument("path", metavar="FILE")
@options.output()
@click.option(
    "--psf",
    metavar="SPEC",
    help="PSF: 'gaussian:sigma=2' (or fwhm=), 'moffat:fwhm=3,beta=3.5'; one value "
    "per band with '/' (sigma=1.2/1.5/2); 'size=N' for another kernel size than 41.",
)
@click.option(
    "--noise",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="SIGMA",
    help="Gaussian noise σ in image units.",
)
@click.option(
    "--poisson",
    type=click.FloatRange(min=0, min_open=True),
    metavar="GAIN",
    help="Poisson noise: GAIN counts per image unit (variance max(x,0)/GAIN).",
)
@click.option(
    "--downsample",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="K",
    help="Block-average K×K pixels, then replicate back onto the "
    "original grid: images keep the shape of targets.",
)
@click.option("--report", metavar="JSON", help="Also write the chain and shapes as JSON.")
@options.seed
@options.overwrite
@options.compression
@options.chunk_size()
@options.shard
@options.common
def degrade(
    path,
    output,
    psf,
    noise,
    poisson,
    downsample,
    report,
    seed,
    overwrite,
    compression,
    chunk_size,
    shard,
):
    """Write OUT with `targets` = the images of FILE and `images` = degraded copies, for
    training denoisers.  The chain is PSF convolution (a 41×41 unit-sum kernel per band; zero
    background outside the stamp) → --downsample → --poisson → --noise, seeded per image.

    Both `images` and `targets` have the input's H×W×C shape (float32): with --downsample K the
    degraded image is block-averaged to H/K×W/K and each coarse pixel is replicated K×K times.
    Ids and label columns are copied; targets already in FILE are replaced."""
    import os

    from galtools.degrade import degrade_file
    from galtools.errors import GalError
    from galtools.progress import say

    if not (psf or noise or poisson or downsample > 1):
        raise GalError("nothing to do: give --psf, --noise, --poisson and/or --downsample")
    out = shard.output_path(output)
    if shard.count > 1 and out != "-" and os.path.exists(out) and not overwrite:
        say(f"shard {shard}: {out} exists, skipped")
        return
    info = degrade_file(
        path,
        out,
        options.provenance([path]),
        psf,
        noise,
        poisson,
        downsample,
        seed,
        overwrite,
        compression,
        chunk_size,
        shard,
        shard.output_path(report) if report else None,
    )
    say(f"degraded {info['n']} images → {out}; images {info['images']}; targets {info['targets']}")
