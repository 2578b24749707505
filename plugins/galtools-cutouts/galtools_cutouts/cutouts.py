"""Postage stamps of the sources in a large image: background, threshold, deblending.

Detection runs on the band sum: a 2-D background and its RMS (``Background2D``), a Gaussian
smoothing kernel, a threshold of ``nsigma`` × RMS above the background, connected regions of
at least ``min_area`` pixels, then deblending.  Stamps are cut from the background-subtracted
image around each source's centroid.
"""

import os

import numpy as np

from galtools.errors import GalError, InputError

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
LABELS = ("x", "y", "area", "flux", "ellipticity", "orientation", "fwhm", "segment", "is_star")


def load_image(path):
    """(H×W×C float32 image, band names, pixel scale or None) from FITS or a picture."""
    lower = os.fspath(path).lower()
    if not os.path.exists(path):
        raise InputError(path, "no such file")
    if lower.endswith(FITS_SUFFIXES):
        return _load_fits(path)
    if lower.endswith(PICTURE_SUFFIXES):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im = (
                    im.convert("L")
                    if im.mode in ("L", "I", "I;16", "F", "1", "P")
                    else (im.convert("RGB"))
                )
                data = np.asarray(im, dtype=np.float32)
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(path, f"not a readable image ({exc})") from None
        if data.ndim == 2:
            return data[..., None], ["L"], None
        return data, ["R", "G", "B"], None
    raise InputError(path, "unknown image type (expected FITS, PNG, JPEG or TIFF)")


def _load_fits(path):
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            for hdu in hdul:
                if hdu.data is not None and hdu.data.ndim in (2, 3):
                    data = np.asarray(hdu.data, dtype=np.float32)
                    header = hdu.header
                    break
            else:
                raise InputError(path, "no 2-D image or 3-D cube in any HDU")
    except OSError as exc:
        raise InputError(path, f"not a readable FITS file ({exc})") from None
    if data.ndim == 3:  # FITS cubes are bands × rows × columns
        data = np.moveaxis(data, 0, -1)
    else:
        data = data[..., None]
    bands = (
        [str(header.get("FILTER", "0"))]
        if data.shape[-1] == 1
        else [str(i) for i in range(data.shape[-1])]
    )
    return data, bands, _pixel_scale(header)


def _pixel_scale(header):
    """Arcsec per pixel from a FITS header's WCS, or None."""
    try:
        from astropy.wcs import WCS
        from astropy.wcs.utils import proj_plane_pixel_scales

        wcs = WCS(header).celestial
        if not wcs.has_celestial:
            return None
        return float(np.mean(proj_plane_pixel_scales(wcs)) * 3600.0)
    except Exception:  # a broken or absent WCS only loses the pixel scale
        return None


def hubble_deep_field():
    """The Hubble Deep Field colour image that ships with scikit-image (872×1000×3)."""
    from skimage import data

    return data.hubble_deep_field().astype(np.float32), ["R", "G", "B"]


def _kw(func, **kw):
    """Keyword names that changed between photutils versions (n_pixels/npixels...)."""
    import inspect

    params = inspect.signature(func).parameters
    out = {}
    for name, value in kw.items():
        if name not in params and name.replace("_", "") in params:
            name = name.replace("_", "")
        out[name] = value
    return out


def _prop(cat, name):
    value = getattr(cat, name, None)
    if value is None:
        value = getattr(cat, name.replace("_", ""))
    return np.asarray(getattr(value, "value", value), dtype=np.float64)


def detect(
    image, min_area=20, nsigma=3.0, box_size=64, smooth_fwhm=3.0, deblend=True, contrast=0.001
):
    """Detect sources in H×W×C ``image``: (background-subtracted image, catalog dict, segm)."""
    from astropy.convolution import convolve
    from photutils.background import Background2D, MedianBackground
    from photutils.segmentation import (
        SourceCatalog,
        deblend_sources,
        detect_sources,
        make_2dgaussian_kernel,
    )

    h, w, c = image.shape
    box = int(max(8, min(box_size, h // 2, w // 2)))
    subtracted = np.empty_like(image)
    rms = np.zeros((h, w), np.float32)
    for b in range(c):
        bkg = Background2D(
            image[..., b], (box, box), filter_size=(3, 3), bkg_estimator=MedianBackground()
        )
        subtracted[..., b] = image[..., b] - bkg.background
        rms += bkg.background_rms**2
    detection = subtracted.sum(axis=-1)
    rms = np.sqrt(rms)
    size = 2 * int(np.ceil(1.5 * smooth_fwhm)) + 1
    kernel = make_2dgaussian_kernel(smooth_fwhm, size=size)
    convolved = convolve(detection, kernel)
    threshold = nsigma * rms
    segm = detect_sources(convolved, threshold, **_kw(detect_sources, n_pixels=min_area))
    if segm is None:
        return subtracted, {name: np.zeros(0) for name in LABELS}, None
    if deblend and getattr(segm, "n_labels", None) != 0:
        segm = deblend_sources(
            convolved,
            segm,
            contrast=contrast,
            progress_bar=False,
            **_kw(deblend_sources, n_pixels=min_area),
        )
    cat = SourceCatalog(detection, segm, convolved_data=convolved)
    table = {
        "x": _prop(cat, "x_centroid"),
        "y": _prop(cat, "y_centroid"),
        "area": _prop(cat, "area"),
        "flux": _prop(cat, "segment_flux"),
        "ellipticity": _prop(cat, "ellipticity"),
        "orientation": np.mod(_prop(cat, "orientation"), 180.0),
        "fwhm": _prop(cat, "fwhm"),
        "semiminor": _prop(cat, "semiminor_axis"),
        "peak": _prop(cat, "max_value"),
        "segment": np.asarray(cat.labels, np.int64),
    }
    good = np.isfinite(table["x"]) & np.isfinite(table["y"])
    table = {k: v[good] for k, v in table.items()}
    table["saturated"] = _saturated(image, segm.data, table["segment"])
    table["is_star"] = star_flags(table).astype(np.int8)
    return subtracted, table, segm


def _saturated(image, segmap, labels, plateau=4, level=0.98):
    """True for segments with ≥ ``plateau`` pixels within ``level`` of every band's maximum
    (a saturated core: stars, whose spikes and halo make them look extended)."""
    peak = image.max(axis=(0, 1))
    top = (
        np.all(image >= level * peak, axis=-1)
        if np.all(peak > 0)
        else np.zeros(image.shape[:2], bool)
    )
    counts = np.bincount(segmap[top].ravel(), minlength=int(segmap.max()) + 1)
    return counts[labels] >= plateau


def star_flags(table, star_fwhm=None):
    """1 for stars and artefacts: round sources as compact as the PSF, saturated sources
    (a plateau at the image maximum), or thin spikes.

    The PSF size is ``star_fwhm`` (pixels) or, by default, the 10th percentile of the FWHM of
    all sources: the compact end of the population, where unresolved objects sit.
    """
    fwhm, ell = table["fwhm"], table["ellipticity"]
    if fwhm.size == 0:
        return np.zeros(0, bool)
    if star_fwhm is None:
        star_fwhm = np.percentile(fwhm, 10)
    compact = (fwhm <= 1.25 * star_fwhm) & (ell < 0.2)
    spike = (ell > 0.85) & (table["semiminor"] < 1.0)
    saturated = np.asarray(table.get("saturated", False)) & (ell < 0.2)
    return compact | spike | saturated


def cut(image, x, y, size):
    """``size``×``size`` stamps centred on (x, y) (pixels); zero outside the image.

    Returns (stamps N×size×size×C, fraction of each stamp inside the image)."""
    h, w, c = image.shape
    n = len(x)
    out = np.zeros((n, size, size, c), image.dtype)
    inside = np.zeros(n)
    half = size // 2
    for k in range(n):
        x0 = int(np.floor(x[k] + 0.5)) - half
        y0 = int(np.floor(y[k] + 0.5)) - half
        xa, xb = max(x0, 0), min(x0 + size, w)
        ya, yb = max(y0, 0), min(y0 + size, h)
        if xa < xb and ya < yb:
            out[k, ya - y0 : yb - y0, xa - x0 : xb - x0] = image[ya:yb, xa:xb]
            inside[k] = (xb - xa) * (yb - ya) / size**2
    return out, inside


def save_preview(path, image, table, kept, overwrite=False, inputs=()):
    """A PNG of the whole image with a circle (radius ≈ FWHM) on every detected source:
    green for sources cut, red for stars dropped, grey for other dropped (at the edge)."""
    from PIL import Image, ImageDraw

    from galtools.atomic import atomic_path
    from galtools.montage import stretch, to_rgb

    shown = to_rgb(stretch(image[None], "asinh"))[0]
    pixels = (np.clip(shown, 0, 1) * 255 + 0.5).astype(np.uint8)
    img = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
    draw = ImageDraw.Draw(img)
    for k in range(len(table["x"])):
        x, y = float(table["x"][k]), float(table["y"][k])
        r = max(4.0, float(table["fwhm"][k]))
        colour = (
            (0, 220, 0) if kept[k] else ((230, 40, 40) if table["is_star"][k] else (160, 160, 160))
        )
        draw.ellipse([x - r, y - r, x + r, y + r], outline=colour)
    with atomic_path(path, overwrite, inputs, suffix=".png") as tmp:
        img.save(tmp, format="PNG")


def make_cutouts(
    path,
    output,
    entry,
    size=64,
    min_area=20,
    nsigma=3.0,
    deblend=True,
    exclude_stars=False,
    keep_edge=False,
    star_fwhm=None,
    box_size=64,
    overwrite=False,
    compression=None,
    hdf=False,
    chunk=1024,
    preview=None,
):
    """Detect sources in ``path`` (or the scikit-image HDF) and write their stamps (and a
    ``preview`` PNG of the image with the stamp boxes); returns (stamps written, detected)."""
    from galtools.arrayfile import GalaxyWriter, check_output
    from galtools.meta import new_meta

    inputs = [] if hdf else [path]
    check_output(output, overwrite, inputs)
    if preview:
        check_output(preview, overwrite, inputs)
    if hdf:
        image, bands = hubble_deep_field()
        scale, name = None, "hdf"
    else:
        image, bands, scale = load_image(path)
        name = os.path.basename(os.fspath(path)).split(".")[0] or "image"
    if min(image.shape[:2]) < size:
        raise InputError(
            path or "hdf",
            f"image {image.shape[1]}×{image.shape[0]} is smaller than one {size}-pixel stamp",
        )
    if not np.isfinite(image).all():
        image = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)
    subtracted, table, _ = detect(image, min_area, nsigma, box_size, deblend=deblend)
    found = len(table["x"])
    if star_fwhm is not None and found:
        table["is_star"] = star_flags(table, star_fwhm).astype(np.int8)
    keep = np.ones(found, bool)
    if exclude_stars:
        keep &= table["is_star"] == 0
    half = size // 2
    xi = np.floor(table["x"] + 0.5).astype(int)
    yi = np.floor(table["y"] + 0.5).astype(int)
    whole = (
        (xi - half >= 0)
        & (yi - half >= 0)
        & (xi - half + size <= image.shape[1])
        & (yi - half + size <= image.shape[0])
    )
    if not keep_edge:
        keep &= whole
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        raise GalError(
            f"no sources left to cut ({found} detected; try --keep-edge, "
            "a lower --nsigma or --min-area)"
        )
    meta = new_meta(
        bands=bands,
        pixel_scale=scale,
        classes={"is_star": ["no", "yes"]},
        history=[entry],
        units="background-subtracted input units",
        cutouts={
            "source": "skimage.data.hubble_deep_field" if hdf else path,
            "detected": found,
            "nsigma": nsigma,
            "min_area": min_area,
        },
    )
    with GalaxyWriter(output, meta, overwrite, compression, inputs) as writer:
        for lo in range(0, rows.size, chunk):
            sel = rows[lo : lo + chunk]
            stamps, inside = cut(subtracted, table["x"][sel], table["y"][sel], size)
            batch = {
                "images": stamps.astype(np.float32),
                "ids": np.array([f"{name}-{s:05d}" for s in table["segment"][sel]]),
            }
            for key in LABELS:
                values = table[key][sel]
                if key == "orientation":
                    values = values.astype(np.float32)
                batch[key] = values.astype(
                    np.int8 if key == "is_star" else (np.int64 if key == "segment" else np.float32)
                )
            batch["inside"] = inside.astype(np.float32)
            writer.append(batch)
        if preview:
            save_preview(preview, subtracted, table, keep, overwrite, inputs)
    return rows.size, found
