"""galprep simulate."""

import click

from galtools import options


class Range(click.ParamType):
    """'LO:HI' → (lo, hi) floats."""

    name = "LO:HI"

    def __init__(self, low=None):
        self.low = low

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            lo, hi = (float(v) for v in str(value).split(":"))
        except ValueError:
            self.fail(f"expected LO:HI, got {value!r}", param, ctx)
        if hi < lo or (self.low is not None and lo < self.low):
            bound = f" with LO ≥ {self.low}" if self.low is not None else ""
            self.fail(f"need LO ≤ HI{bound}, got {value!r}", param, ctx)
        return lo, hi


def parse_kinds(ctx, param, value):
    """'disk,star' or 'disk:0.7,merger:0.2,star:0.1' → {kind: weight}."""
    out = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, _, weight = part.partition(":")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise click.BadParameter(f"bad proportion in {part!r}") from None
    if not out:
        raise click.BadParameter("name at least one kind")
    return out


def parse_bands(ctx, param, value):
    """'gri' → g, r, i; 'F606W,F814W' → two bands."""
    bands = [b.strip() for b in value.split(",")] if "," in value else list(value)
    if not bands or any(not b for b in bands) or len(set(bands)) != len(bands):
        raise click.BadParameter(f"bands must be distinct names, got {value!r}")
    return tuple(bands)


def parse_grid(ctx, param, value):
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None


@click.command(short_help="Render labelled synthetic galaxies, stars and artifacts (GalSim).")
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Number of stamps (all shards together).",
)
@options.output()
@options.overwrite
@click.option(
    "--size",
    type=click.IntRange(min=8),
    default=64,
    show_default=True,
    help="Stamp side in pixels.",
)
@click.option(
    "--pixel-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=0.2,
    show_default=True,
    help="Arcsec per pixel.",
)
@click.option(
    "--bands",
    default="gri",
    show_default=True,
    callback=parse_bands,
    help="Band names: one letter each ('gri') or comma-separated.",
)
@click.option(
    "--kinds",
    default="disk",
    show_default=True,
    callback=parse_kinds,
    help="Kinds with optional proportions: disk, elliptical, merger, star, artifact "
    "(e.g. 'disk:0.6,elliptical:0.2,star:0.1,artifact:0.1').",
)
@click.option(
    "--inclination",
    type=Range(0),
    default="0:90",
    show_default=True,
    help="Disk inclination range in degrees (0 = face-on).",
)
@click.option(
    "--inclination-law",
    type=click.Choice(["cos", "uniform"]),
    default="cos",
    show_default=True,
    help="cos: uniform in cos i (random orientations); uniform: uniform in i.",
)
@click.option(
    "--disk-hlr",
    type=Range(0),
    default="0.4:2.0",
    show_default=True,
    help="Disk (and elliptical) half-light radius range, arcsec.",
)
@click.option(
    "--bulge-hlr",
    type=Range(0),
    default="0.1:0.6",
    show_default=True,
    help="Bulge half-light radius range, arcsec (capped at the disk's).",
)
@click.option(
    "--bulge-fraction",
    type=Range(0),
    default="0:0.6",
    show_default=True,
    help="Bulge fraction of the flux of disk galaxies.",
)
@click.option(
    "--sersic-n",
    "sersic_grid",
    default="1,1.5,2,2.5,3,3.5,4,5,6",
    show_default=True,
    callback=parse_grid,
    help="Grid of Sérsic indices drawn from (bulges, ellipticals).",
)
@click.option(
    "--flux",
    type=Range(0),
    default="1e3:1e5",
    show_default=True,
    help="Flux range (counts, reference band), drawn log-uniformly.",
)
@click.option(
    "--psf",
    type=click.Choice(["moffat", "kolmogorov"]),
    default="moffat",
    show_default=True,
    help="PSF profile.",
)
@click.option("--moffat-beta", type=click.FloatRange(min=1.1), default=3.5, show_default=True)
@click.option(
    "--psf-fwhm",
    type=Range(0),
    default="0.6:1.2",
    show_default=True,
    help="PSF FWHM range, arcsec.",
)
@click.option(
    "--sky",
    type=click.FloatRange(min=0),
    default=100.0,
    show_default=True,
    help="Sky level, counts per pixel (subtracted; sets the Poisson noise).",
)
@click.option(
    "--read-noise",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Read noise, counts per pixel.",
)
@click.option(
    "--max-offset",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    help="Largest sub-pixel offset of the centre, pixels.",
)
@click.option("--targets", is_flag=True, help="Also store the noiseless images (targets).")
@options.seed
@options.compression
@options.jobs
@options.shard
@options.common
def simulate(
    count,
    output,
    overwrite,
    size,
    pixel_scale,
    bands,
    kinds,
    inclination,
    inclination_law,
    disk_hlr,
    bulge_hlr,
    bulge_fraction,
    sersic_grid,
    flux,
    psf,
    moffat_beta,
    psf_fwhm,
    sky,
    read_noise,
    max_offset,
    targets,
    seed,
    compression,
    jobs,
    shard,
):
    """Render COUNT labelled stamps to OUT: inclined exponential disks with Sérsic bulges of
    their own colour, ellipticals, mergers, stars and artifacts (satellite trails, saturated
    columns, pure noise, edge cuts), convolved with a Moffat or Kolmogorov PSF, with sky,
    Poisson and read noise.  Every drawn parameter is a label column (angles in degrees,
    sizes in arcsec, NaN where it does not apply); kind/is_galaxy/artifact are int codes
    named in the metadata.  Output is the same for any --jobs.

    \b
    Example: galprep simulate -n 10000 --size 64 --pixel-scale 0.2 --bands gri -o disks.h5
    """
    import os

    from galtools.errors import GalError
    from galtools.progress import say
    from galtools_galsim.simulate import Config
    from galtools_galsim.simulate import simulate as run

    try:
        cfg = Config(
            size=size,
            pixel_scale=pixel_scale,
            bands=bands,
            kinds=kinds,
            inclination=inclination,
            uniform_cos=inclination_law == "cos",
            disk_hlr=disk_hlr,
            bulge_hlr=bulge_hlr,
            bulge_fraction=bulge_fraction,
            sersic_grid=sersic_grid,
            flux=flux,
            psf=psf,
            moffat_beta=moffat_beta,
            psf_fwhm=psf_fwhm,
            sky=sky,
            read_noise=read_noise,
            max_offset=max_offset,
            targets=targets,
            seed=seed,
        )
    except ValueError as exc:
        raise GalError(str(exc)) from None
    if inclination[1] > 90:
        raise GalError("--inclination must lie within 0:90 degrees")
    if bulge_fraction[1] > 1:
        raise GalError("--bulge-fraction must lie within 0:1")
    out = shard.output_path(output)
    if shard.count > 1 and os.path.exists(out) and not overwrite:
        say(f"shard {shard}: {out} exists, skipped")
        return
    n = run(
        cfg, count, out, options.provenance(), shard, options.n_jobs(jobs), overwrite, compression
    )
    say(f"simulated {n} stamps {size}×{size}×{len(bands)} → {out}")
