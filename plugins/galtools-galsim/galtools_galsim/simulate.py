"""Labelled synthetic galaxies: draw parameters, render, add artifacts and noise, write.

Objects are made in fixed chunks of :data:`CHUNK` rows; chunk ``j`` draws everything from
``default_rng([seed, j])``, so the output is the same for any number of worker processes and
the shards of a ``--shard`` run concatenate to the unsharded file.
"""

from dataclasses import dataclass, field

import numpy as np

from galtools_galsim.render import DISK, POINT, SERSIC, Renderer, make_tables

CHUNK = 256
KINDS = ("disk", "elliptical", "merger", "star", "artifact")
GALAXY_KINDS = ("disk", "elliptical", "merger")
ARTIFACTS = ("none", "trail", "saturated_column", "noise", "edge_cut")
WAVELENGTH = {  # effective wavelengths (nm): band order for colours
    "u": 355,
    "g": 475,
    "r": 620,
    "i": 750,
    "z": 870,
    "y": 1000,
    "Y": 1020,
    "J": 1250,
    "H": 1650,
    "K": 2150,
}
FLOAT_LABELS = (
    "inclination",
    "position_angle",
    "axis_ratio",
    "disk_hlr",
    "bulge_hlr",
    "bulge_n",
    "bulge_fraction",
    "flux",
    "psf_fwhm",
    "snr",
    "x_offset",
    "y_offset",
    "merger_separation",
    "merger_flux_ratio",
)
DEFAULT_SERSIC_GRID = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)
LABEL_DOCS = {
    "kind": "object kind (codes: meta classes)",
    "is_galaxy": "1 for disk, elliptical and merger",
    "artifact": "artifact type, 0 = none (codes: meta classes)",
    "inclination": "disk inclination, degrees (0 = face-on)",
    "position_angle": "major axis angle from the +x (column) axis towards +y, degrees",
    "axis_ratio": "projected axis ratio: cos(inclination) for disks, b/a for ellipticals",
    "disk_hlr": "disk half-light radius (face-on), arcsec",
    "bulge_hlr": "bulge (or elliptical) half-light radius, arcsec",
    "bulge_n": "Sérsic index of the bulge or elliptical",
    "bulge_fraction": "bulge share of the reference-band flux",
    "flux": "total flux in the reference (middle) band, counts",
    "psf_fwhm": "PSF FWHM, arcsec",
    "snr": "matched-filter S/N of the noiseless image, all bands",
    "x_offset": "centre offset from the stamp centre along x (columns), pixels",
    "y_offset": "centre offset from the stamp centre along y (rows), pixels",
    "merger_separation": "distance between the two galaxies of a merger, arcsec",
    "merger_flux_ratio": "flux of the second galaxy over the first",
}


@dataclass
class Config:
    """Everything that defines a simulated data set (all ranges are (low, high))."""

    size: int = 64
    pixel_scale: float = 0.2
    bands: tuple = ("g", "r", "i")
    kinds: dict = field(default_factory=lambda: {"disk": 1.0})
    inclination: tuple = (0.0, 90.0)  # degrees
    uniform_cos: bool = True  # draw cos(i) uniformly (random orientations) within the range
    disk_hlr: tuple = (0.4, 2.0)  # arcsec
    bulge_hlr: tuple = (0.1, 0.6)  # arcsec (never more than the disk's)
    bulge_fraction: tuple = (0.0, 0.6)
    sersic_grid: tuple = DEFAULT_SERSIC_GRID
    flux: tuple = (1e3, 1e5)  # counts in the reference band, log-uniform
    psf: str = "moffat"
    moffat_beta: float = 3.5
    psf_fwhm: tuple = (0.6, 1.2)  # arcsec
    sky: float = 100.0  # counts per pixel per band
    read_noise: float = 5.0  # counts per pixel
    max_offset: float = 0.5  # pixels, uniform in each axis
    saturation: float = 5e4  # counts (saturated-column artifacts)
    targets: bool = False
    seed: int = 0

    def __post_init__(self):
        self.bands = tuple(self.bands)
        self.sersic_grid = tuple(float(n) for n in self.sersic_grid)
        for name in self.kinds:
            if name not in KINDS:
                raise ValueError(f"unknown kind '{name}' (known: {', '.join(KINDS)})")
        total = sum(self.kinds.values())
        if total <= 0 or min(self.kinds.values()) < 0:
            raise ValueError("kind proportions must be ≥ 0 and not all 0")
        # canonical order, so codes agree between runs asking for the same kinds
        self.kinds = {k: self.kinds[k] / total for k in KINDS if k in self.kinds}
        if not all(0.3 <= n <= 6.2 for n in self.sersic_grid):
            raise ValueError("Sérsic indices must lie in [0.3, 6.2] (GalSim's range)")
        if self.psf not in ("moffat", "kolmogorov"):
            raise ValueError(f"unknown PSF '{self.psf}' (moffat or kolmogorov)")

    @property
    def kind_names(self):
        return list(self.kinds)

    def band_positions(self):
        """Colour positions of the bands: 0 for the reference (middle) band, ±1 per step."""
        order = sorted(
            range(len(self.bands)), key=lambda j: (WAVELENGTH.get(self.bands[j], 10**6 + j), j)
        )
        pos = np.empty(len(self.bands))
        pos[order] = np.arange(len(self.bands))
        return pos - pos[order[len(order) // 2]]


def _uniform(rng, lohi, m):
    lo, hi = lohi
    return rng.uniform(lo, hi, m)


def _loguniform(rng, lohi, m):
    lo, hi = np.log(lohi[0]), np.log(lohi[1])
    return np.exp(rng.uniform(lo, hi, m))


class Components:
    """A growing table of components for :meth:`Renderer.draw`."""

    def __init__(self, n_bands):
        self.parts = []
        self.n_bands = n_bands

    def add(
        self, obj, kind, sed, n=0.0, hlr=0.0, q=1.0, inclination=0.0, theta=0.0, dx=0.0, dy=0.0
    ):
        m = len(obj)
        if m == 0:
            return

        def col(v):
            return np.broadcast_to(np.asarray(v, np.float64), (m,))

        self.parts.append(
            {
                "obj": np.asarray(obj),
                "type": np.full(m, kind),
                "n": col(n),
                "hlr": col(hlr),
                "q": col(q),
                "inclination": col(inclination),
                "theta": col(theta),
                "dx": col(dx),
                "dy": col(dy),
                "sed": np.asarray(sed, np.float64).reshape(m, self.n_bands),
            }
        )

    def table(self):
        if not self.parts:
            return {"obj": np.zeros(0, int)}
        return {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}


def _sed(rng, m, pos, colour_lo, colour_hi):
    """Per-band flux ratios (reference band = 1): redder for larger colour (mag per step)."""
    colour = rng.uniform(colour_lo, colour_hi, m)
    return 10 ** (0.4 * colour[:, None] * pos[None, :])


def _galaxy(rng, cfg, comps, obj, pos, flux, dx, dy, elliptical=False):
    """Disk + bulge (or a lone Sérsic for ellipticals) for rows ``obj``; fills ``labels``."""
    m = len(obj)
    pa = rng.uniform(0, np.pi, m)
    n = rng.choice(np.array(cfg.sersic_grid), m)
    if elliptical:
        q = rng.uniform(0.4, 1.0, m)
        hlr = _uniform(rng, cfg.disk_hlr, m)
        sed = _sed(rng, m, pos, 0.25, 0.5) * flux[:, None]
        comps.add(obj, SERSIC, sed, n=n, hlr=hlr, q=q, theta=pa, dx=dx, dy=dy)
        return {
            "position_angle": pa,
            "axis_ratio": q,
            "bulge_hlr": hlr,
            "bulge_n": n,
            "bulge_fraction": np.ones(m),
            "inclination": np.full(m, np.nan),
            "disk_hlr": np.full(m, np.nan),
        }
    lo, hi = np.radians(cfg.inclination)
    if cfg.uniform_cos:
        inc = np.arccos(rng.uniform(np.cos(hi), np.cos(lo), m))
    else:
        inc = rng.uniform(lo, hi, m)
    disk_hlr = _uniform(rng, cfg.disk_hlr, m)
    bulge_hlr = np.minimum(_uniform(rng, cfg.bulge_hlr, m), disk_hlr)
    bf = _uniform(rng, cfg.bulge_fraction, m)
    q_bulge = rng.uniform(0.6, 1.0, m)
    disk_sed = _sed(rng, m, pos, -0.1, 0.15) * ((1 - bf) * flux)[:, None]
    bulge_sed = _sed(rng, m, pos, 0.25, 0.5) * (bf * flux)[:, None]
    comps.add(obj, DISK, disk_sed, hlr=disk_hlr, inclination=inc, theta=pa, dx=dx, dy=dy)
    has_bulge = bf > 0
    comps.add(
        obj[has_bulge],
        SERSIC,
        bulge_sed[has_bulge],
        n=n[has_bulge],
        hlr=bulge_hlr[has_bulge],
        q=q_bulge[has_bulge],
        theta=pa[has_bulge],
        dx=dx[has_bulge],
        dy=dy[has_bulge],
    )
    return {
        "position_angle": pa,
        "axis_ratio": np.cos(inc),
        "inclination": inc,
        "disk_hlr": disk_hlr,
        "bulge_hlr": np.where(has_bulge, bulge_hlr, np.nan),
        "bulge_n": np.where(has_bulge, n, np.nan),
        "bulge_fraction": bf,
    }


def make_chunk(cfg, index, renderer, start=0, stop=None):
    """Rows ``[start, stop)`` of chunk ``index`` (a dict batch), drawn from (seed, index)."""
    rng = np.random.default_rng([cfg.seed, index])
    m = CHUNK
    nb = len(cfg.bands)
    pos = cfg.band_positions()
    kinds = cfg.kind_names
    kind = rng.choice(len(kinds), m, p=[cfg.kinds[k] for k in kinds])
    names = np.array(kinds)[kind]
    labels = {name: np.full(m, np.nan) for name in FLOAT_LABELS}
    labels["artifact"] = np.zeros(m, np.int8)
    flux = _loguniform(rng, cfg.flux, m)
    psf_fwhm = _uniform(rng, cfg.psf_fwhm, m)
    dx = rng.uniform(-cfg.max_offset, cfg.max_offset, m)
    dy = rng.uniform(-cfg.max_offset, cfg.max_offset, m)
    artifact = np.where(names == "artifact", rng.integers(1, len(ARTIFACTS), m), 0)
    labels["artifact"] = artifact.astype(np.int8)
    comps = Components(nb)
    # galaxies (artifacts of type edge_cut hold a disk galaxy too)
    edge = artifact == ARTIFACTS.index("edge_cut")
    for which, rows in (
        ("disk", np.flatnonzero((names == "disk") | edge)),
        ("elliptical", np.flatnonzero(names == "elliptical")),
    ):
        got = _galaxy(
            rng,
            cfg,
            comps,
            rows,
            pos,
            flux[rows],
            dx[rows],
            dy[rows],
            elliptical=which == "elliptical",
        )
        for k, v in got.items():
            labels[k][rows] = v
    rows = np.flatnonzero(names == "merger")
    if rows.size:
        k = rows.size
        ratio = rng.uniform(0.2, 1.0, k)
        angle = rng.uniform(0, 2 * np.pi, k)
        hlr_scale = np.mean(cfg.disk_hlr) / cfg.pixel_scale
        sep = rng.uniform(1.0, 3.0, k) * hlr_scale  # pixels
        sep = np.minimum(sep, 0.35 * cfg.size)
        # the pair's flux-weighted centre sits at the offset position
        w2 = ratio / (1 + ratio)
        x1, y1 = dx[rows] - w2 * sep * np.cos(angle), dy[rows] - w2 * sep * np.sin(angle)
        x2, y2 = x1 + sep * np.cos(angle), y1 + sep * np.sin(angle)
        f1 = flux[rows] / (1 + ratio)
        got = _galaxy(rng, cfg, comps, rows, pos, f1, x1, y1)
        for key, v in got.items():
            labels[key][rows] = v
        _galaxy(rng, cfg, comps, rows, pos, f1 * ratio, x2, y2)
        labels["merger_separation"][rows] = sep * cfg.pixel_scale
        labels["merger_flux_ratio"][rows] = ratio
    rows = np.flatnonzero(names == "star")
    sat = np.flatnonzero(artifact == ARTIFACTS.index("saturated_column"))
    stars = np.concatenate([rows, sat])
    star_flux = flux[stars].copy()
    star_flux[rows.size :] = cfg.saturation * rng.uniform(20, 200, sat.size)
    comps.add(
        stars,
        POINT,
        _sed(rng, stars.size, pos, -0.2, 0.6) * star_flux[:, None],
        dx=dx[stars],
        dy=dy[stars],
    )
    flux[sat] = star_flux[rows.size :]
    target = renderer.draw(comps.table(), psf_fwhm, nb)
    _artifacts(rng, cfg, target, artifact, flux, psf_fwhm, pos)
    image, snr = _noise(rng, cfg, target, np.flatnonzero(edge))
    labels["snr"] = snr
    labels["flux"] = flux
    labels["psf_fwhm"] = psf_fwhm
    labels["x_offset"], labels["y_offset"] = dx, dy
    labels["flux"][artifact == ARTIFACTS.index("noise")] = 0.0
    labels["flux"][artifact == ARTIFACTS.index("trail")] = np.nan
    stop = m if stop is None else stop
    base = index * CHUNK
    batch = {
        "images": image[start:stop],
        "ids": np.array([f"sim{cfg.seed}-{base + i:08d}" for i in range(start, stop)]),
    }
    if cfg.targets:
        batch["targets"] = target[start:stop]
    batch["kind"] = kind[start:stop].astype(np.int8)
    batch["is_galaxy"] = np.isin(names, GALAXY_KINDS)[start:stop].astype(np.int8)
    for name in ("artifact",) + FLOAT_LABELS:
        values = labels[name]
        if name in ("inclination", "position_angle"):
            values = np.degrees(values)
        batch[name] = values[start:stop].astype(np.int8 if name == "artifact" else np.float32)
    return batch


def _artifacts(rng, cfg, target, artifact, flux, psf_fwhm, pos):
    """Draw trails, saturation bleed and edge cuts into the noiseless stamps (in place)."""
    size = cfg.size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for row in np.flatnonzero(artifact == ARTIFACTS.index("trail")):
        # a satellite trail: a straight line across the stamp blurred by the PSF
        angle = rng.uniform(0, np.pi)
        c = (size - 1) / 2 + rng.uniform(-0.3, 0.3, 2) * size
        dist = (xx - c[0]) * np.sin(angle) - (yy - c[1]) * np.cos(angle)
        sigma = psf_fwhm[row] / cfg.pixel_scale / 2.355
        per_pixel = rng.uniform(2, 40) * np.sqrt(cfg.sky)
        line = per_pixel * np.exp(-0.5 * (dist / sigma) ** 2)
        colour = 10 ** (0.4 * rng.uniform(-0.3, 0.3) * pos)
        target[row] += line[..., None] * colour[None, None, :]
    level = np.float32(cfg.saturation - cfg.sky)
    for row in np.flatnonzero(artifact == ARTIFACTS.index("saturated_column")):
        # charge from the saturated core bleeds up and down its column
        img = target[row]
        excess = np.clip(img - level, 0, None).sum(axis=0)  # per column, per band
        length = np.minimum(excess / level / 2, size)
        cy = int(np.clip(np.argmax(img.sum(axis=(1, 2))), 0, size - 1))
        for b in range(img.shape[-1]):
            cols = np.flatnonzero(length[:, b] > 0)
            for col in cols:
                half = int(np.ceil(length[col, b]))
                img[max(0, cy - half) : cy + half + 1, col, b] = level
        np.minimum(img, level, out=img)
    for row in np.flatnonzero(artifact == ARTIFACTS.index("edge_cut")):
        # the object sits at a detector edge: beyond a straight cut there is no data
        side = rng.integers(4)
        cut = int(rng.uniform(0.25, 0.6) * size)
        img = target[row]
        if side == 0:
            img[:cut] = np.nan
        elif side == 1:
            img[size - cut :] = np.nan
        elif side == 2:
            img[:, :cut] = np.nan
        else:
            img[:, size - cut :] = np.nan


def _noise(rng, cfg, target, cut_rows=()):
    """Sky-subtracted noisy images and matched-filter S/N summed over bands.

    Poisson noise of sky + source plus Gaussian read noise; where the expected count is large
    (sky ≥ 30) Poisson is drawn in its Gaussian limit, otherwise exactly.  Pixels beyond an
    edge cut (NaN in the target rows ``cut_rows``) are 0 in both image and target.
    """
    cut_rows = np.asarray(cut_rows, int)
    missing = None
    if cut_rows.size:
        sub = target[cut_rows]
        missing = np.isnan(sub)
        sub[missing] = 0.0
        target[cut_rows] = sub
    var = np.maximum(target, 0)
    var += np.float32(cfg.sky + cfg.read_noise**2)
    if cfg.sky >= 30:
        image = rng.standard_normal(target.shape, dtype=np.float32)
        image *= np.sqrt(var)
        image += target
    else:
        lam = np.maximum(target, 0) + np.float32(cfg.sky)
        image = rng.poisson(lam).astype(np.float32)
        image -= np.float32(cfg.sky)
        image += np.float32(cfg.read_noise) * rng.standard_normal(target.shape, dtype=np.float32)
    if missing is not None:
        sub = image[cut_rows]
        sub[missing] = 0.0
        image[cut_rows] = sub
    snr = np.sqrt(np.einsum("bhwc,bhwc->b", target, target / var, dtype=np.float64))
    return image, snr


def _tables(cfg):
    return make_tables(cfg.psf, cfg.moffat_beta, cfg.sersic_grid)


def _worker_init(cfg, tables=None):
    global _WORKER
    _WORKER = (
        cfg,
        Renderer(
            cfg.size,
            cfg.pixel_scale,
            cfg.psf,
            cfg.moffat_beta,
            cfg.sersic_grid,
            tables=tables or _tables(cfg),
        ),
    )


def _pool_init(cfg, tables):
    """A pool worker: ends quietly with its parent; Ctrl-C is the parent's to handle."""
    import signal

    from galtools.parallel import exit_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent()
    _worker_init(cfg, tables)


def _worker_chunk(job):
    cfg, renderer = _WORKER
    index, start, stop = job
    return make_chunk(cfg, index, renderer, start, stop)


def chunk_jobs(start, stop):
    """(chunk index, first row, last row) covering global rows [start, stop)."""
    jobs = []
    for index in range(start // CHUNK, (stop + CHUNK - 1) // CHUNK if stop > start else 0):
        lo = max(start, index * CHUNK) - index * CHUNK
        hi = min(stop, (index + 1) * CHUNK) - index * CHUNK
        jobs.append((index, lo, hi))
    return jobs


def generate(cfg, start, stop, jobs=1):
    """Yield batches for global rows [start, stop), in order, using ``jobs`` processes."""
    work = chunk_jobs(start, stop)
    if jobs <= 1 or len(work) <= 1:
        _worker_init(cfg)
        for job in work:
            yield _worker_chunk(job)
        return
    import multiprocessing

    from galtools.parallel import worker_pool

    # forkserver/spawn, never a bare fork: forking a process that runs FFT or HDF5 threads
    # can deadlock the children.  The tables come from the parent (no GalSim in workers).
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with worker_pool(ctx, min(jobs, len(work)), _pool_init, (cfg, _tables(cfg))) as pool:
        yield from pool.imap(_worker_chunk, work)


def meta_for(cfg, entry):
    """Metadata of a simulated file."""
    from galtools.meta import new_meta

    return new_meta(
        bands=list(cfg.bands),
        pixel_scale=cfg.pixel_scale,
        classes={"kind": cfg.kind_names, "is_galaxy": ["no", "yes"], "artifact": list(ARTIFACTS)},
        history=[entry],
        units="counts (sky-subtracted)",
        simulation={
            "generator": "galtools-galsim",
            "sky": cfg.sky,
            "read_noise": cfg.read_noise,
            "psf": cfg.psf,
            "moffat_beta": cfg.moffat_beta,
            "sersic_grid": list(cfg.sersic_grid),
            "labels": LABEL_DOCS,
        },
    )


def simulate(cfg, n, output, entry, shard=None, jobs=1, overwrite=False, compression=None):
    """Write ``n`` simulated galaxies (this shard's part) to ``output``; return rows written."""
    from galtools.arrayfile import GalaxyWriter
    from galtools.progress import progress

    start, stop = shard.bounds(n) if shard is not None else (0, n)
    with GalaxyWriter(output, meta_for(cfg, entry), overwrite, compression) as writer:
        with progress(total=stop - start, desc="simulate", unit="gal") as bar:
            for batch in generate(cfg, start, stop, jobs):
                writer.append(batch)
                bar.update(len(batch["images"]))
    return stop - start
