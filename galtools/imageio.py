"""Survey cut-outs on disk (PNG, JPEG, FITS): finding them, grouping band files, decoding.

File names carry the band: ``pgc44182_d25x2_rot_gri.jpg`` (a g,r,i colour composite),
``pgc44182_d25x2_rot_gri.sdss.jpg``, ``pgc44182_64x64.gri.png`` (the form ``resize
--to-folder`` writes), ``pgc44182_d25x2_rot_g.png`` (one file per band).  The band token is
the last ``_`` part of the name or a dotted part before the extension, made of SDSS/LSST
letters (ugrizy) or ``grey``.  Files that differ only in their band token belong to one
object and are stacked into one multi-band stamp.

Which file an object's stamp comes from follows inclinet's ``data_prep.py``: ``--band gri``
(one token) means the colour composite (the survey's ``…_gri.sdss.jpg``, else ``…_gri.jpg``);
``g``, ``r``, ``i`` or a list ``g,r,i`` mean the single-band files.  With no ``--band``, an
object that has both a composite and band files (or two composites) is an error naming both
candidates: galtools never chooses silently.  ``--root`` keeps only files named
``<id>_<ROOT>_<band>`` (inclinet's ``-r``), e.g. ``d25x2_rot``.

Channel order of a stamp is by wavelength (g, r, i).  An 8-bit colour composite stores the
reddest band in R (SDSS convention: R=i, G=r, B=g), so its channels are reversed on reading
(and on writing with ``--to-folder``).
"""

import glob
import os
import re
from dataclasses import dataclass, field

import numpy as np

from galtools.catalog import id_text, normalise_id
from galtools.errors import InputError

FITS_SUFFIXES = (".fits.gz", ".fits", ".fit", ".fts")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
IMAGE_SUFFIXES = FITS_SUFFIXES + PIL_SUFFIXES
WAVELENGTH = "ugrizy"
GREY = ("grey", "gray")
FILTERS = ("area", "bilinear", "bicubic", "lanczos")


def suffix_of(name):
    """The image suffix of a file name ('.fits.gz', '.jpg', …) or None."""
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    return None


def is_band_token(token):
    token = token.lower()
    if token in GREY:
        return True
    return (
        0 < len(token) <= len(WAVELENGTH)
        and len(set(token)) == len(token)
        and all(c in WAVELENGTH for c in token)
    )


def wavelength_order(names):
    """Band names sorted by wavelength (unknown names keep their order after known ones)."""

    def key(item):
        i, name = item
        return (WAVELENGTH.index(name), i) if name in WAVELENGTH else (len(WAVELENGTH), i)

    return [name for _, name in sorted(enumerate(names), key=key)]


def split_name(path):
    """(object key, band token or None, suffix) for an image file name."""
    name = os.path.basename(path)
    suffix = suffix_of(name)
    stem = name[: len(name) - len(suffix)] if suffix else name
    base, *extras = stem.split(".")
    token = next((e for e in extras if is_band_token(e)), None)
    if token is None and "_" in base:
        head, tail = base.rsplit("_", 1)
        if is_band_token(tail) and head:
            base, token = head, tail
    return base, (token.lower() if token else None), suffix


@dataclass
class Item:
    """One object: its key, catalog id and (path, band token) files."""

    key: str
    id: str
    files: list = field(default_factory=list)
    name: str = ""  # the part of the key that gave the id ('pgc44182'): output file names

    @property
    def path(self):
        return self.files[0][0]


# ----------------------------------------------------------------------------- finding files


def _has_glob(text):
    return any(c in text for c in "*?[")


def find_files(inputs, exclude=()):
    """Every file named by ``inputs`` (folders, globs, files), sorted per input."""
    skip = {os.path.realpath(p) for p in exclude if p}
    out = []
    for spec in inputs:
        spec = os.fspath(spec)
        if os.path.isdir(spec):
            names = sorted(n for n in os.listdir(spec) if not n.startswith("."))
            found = [os.path.join(spec, n) for n in names if os.path.isfile(os.path.join(spec, n))]
            if not found:
                raise InputError(spec, "empty folder (no image files)")
        elif os.path.isfile(spec):
            found = [spec]
        elif _has_glob(spec):
            found = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
            if not found:
                raise InputError(spec, "matches no files")
        else:
            raise InputError(spec, "no such file or folder")
        out.extend(p for p in found if os.path.realpath(p) not in skip)
    return out


def group_files(paths, id_pattern=None, root=None):
    """(items sorted by key, [(path, reason)] for files that are not images).

    ``root``: keep only files named ``<id>_<root>_<band>.<ext>`` (inclinet's name root).
    """
    items, bad = {}, []
    kept = 0
    for path in paths:
        key, token, suffix = split_name(path)
        if suffix is None:
            bad.append((path, "not an image file (expected .png, .jpg, .jpeg, .tif or .fits)"))
            continue
        if root is not None:
            if not key.endswith("_" + root) or key == "_" + root:
                continue
            kept += 1
        group_key = os.path.join(os.path.dirname(path), key)
        item = items.get(group_key)
        if item is None:
            item = items[group_key] = Item(
                key, normalise_id(key, id_pattern), name=id_text(key, id_pattern)
            )
        item.files.append((path, token))
    if root is not None and not kept and paths:
        where = os.path.dirname(paths[0]) or "."
        raise InputError(where, f"no image file is named <id>_{root}_<band> (--root {root})")
    return [items[k] for k in sorted(items)], bad


# ----------------------------------------------------------------------------- band requests


class Composite(list):
    """Bands asked for as one token (``gri``): taken from the colour composite file."""

    @property
    def token(self):
        return "".join(self)


def parse_bands(text):
    """``--band`` text → None (all), 'grey', or a list of names / integer indices.

    One token of several bands (``gri``) gives a :class:`Composite` (the colour file);
    a comma-separated list (``g,r,i``) a plain list (the band files).
    """
    if text is None or text == "":
        return None
    text = text.strip()
    if text.lower() in GREY:
        return "grey"
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) == 1 and is_band_token(parts[0]):
        token = parts[0].lower()
        return Composite(token) if len(token) > 1 else [token]
    out = []
    for p in parts:
        out.append(int(p) if p.lstrip("-").isdigit() else p)
    if not out:
        raise ValueError(f"no bands in {text!r}")
    return out


def select_bands(image, names, request, path):
    """Channels of ``image`` (H×W×C, names per channel) picked by ``request``."""
    if request is None:
        return image, list(names)
    if request == "grey":
        if image.shape[-1] == 1:
            return image, ["grey"]
        mean = image.astype(np.float32).mean(axis=-1, keepdims=True)
        if image.dtype == np.uint8:
            mean = np.rint(mean).astype(np.uint8)
        return mean, ["grey"]
    picks = []
    for want in request:
        if isinstance(want, int):
            if not -image.shape[-1] <= want < image.shape[-1]:
                raise InputError(
                    path, f"has {image.shape[-1]} channel(s); band index {want} requested"
                )
            picks.append(want % image.shape[-1])
        elif want in names:
            picks.append(names.index(want))
        else:
            raise InputError(
                path,
                f"has no band '{want}' (bands: {', '.join(names)}; {image.shape[-1]} channel(s))",
            )
    return image[..., picks], [names[i] for i in picks]


# ----------------------------------------------------------------------------- decoding


@dataclass
class Geometry:
    """Centre crop fraction, output size (H, W) or None, resampling filter."""

    size: tuple = None
    crop: float = 1.0
    filter: str = "area"

    def box(self, width, height):
        if self.crop >= 1:
            return (0.0, 0.0, float(width), float(height))
        w, h = width * self.crop, height * self.crop
        x0, y0 = (width - w) / 2, (height - h) / 2
        return (x0, y0, x0 + w, y0 + h)

    def resample(self):
        from PIL import Image

        return {
            "area": Image.Resampling.BOX,
            "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC,
            "lanczos": Image.Resampling.LANCZOS,
        }[self.filter]

    def apply_pil(self, img):
        """Crop and resize a PIL image (any mode)."""
        if self.size is None and self.crop >= 1:
            return img
        box = self.box(*img.size)
        if self.size is None:
            return img.crop(tuple(int(round(v)) for v in box))
        h, w = self.size
        return img.resize((w, h), self.resample(), box=box)

    def apply_array(self, image):
        """Crop and resize an H×W×C array (uint8 via L/RGB images, others per channel as F)."""
        from PIL import Image

        if self.size is None and self.crop >= 1:
            return image
        if image.dtype == np.uint8 and image.shape[-1] in (1, 3):
            mode = "L" if image.shape[-1] == 1 else "RGB"
            src = image[..., 0] if mode == "L" else image
            out = np.asarray(self.apply_pil(Image.fromarray(np.ascontiguousarray(src), mode)))
            return out.reshape(out.shape[:2] + (image.shape[-1],))
        chans = [
            np.asarray(
                self.apply_pil(
                    Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), "F")
                )
            )
            for c in range(image.shape[-1])
        ]
        return np.stack(chans, axis=-1).astype(image.dtype, copy=False)


def _short(exc):
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


def _check_file(path):
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise InputError(path, f"cannot read ({_short(exc)})") from None
    if size == 0:
        raise InputError(path, "empty file (0 bytes)")


def decode_pil(path, token, geometry, dtype, file_order=False):
    """(H×W×C array, channel names) of a PNG/JPEG/TIFF, cropped and resized.

    A colour composite's channels come in wavelength order (B, G, R = g, r, i), or as stored
    (R, G, B = i, r, g) with ``file_order``."""
    from PIL import Image, UnidentifiedImageError

    _check_file(path)
    try:
        with Image.open(path) as img:
            if img.format == "JPEG" and geometry.size is not None:
                h, w = geometry.size
                crop = min(geometry.crop, 1.0)
                img.draft(img.mode, (int(np.ceil(w / crop)), int(np.ceil(h / crop))))
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                if dtype == "uint8":
                    raise InputError(path, f"is a {mode} (not 8-bit) image; use --dtype float32")
                img = img.convert("F")
            elif mode in ("1", "P", "LA", "PA"):
                img = img.convert("RGBA" if "A" in img.getbands() or mode == "P" else "L")
                mode = img.mode
            if img.mode in ("RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
                img = img.convert("RGB")
            img.load()
            img = geometry.apply_pil(img)
            arr = np.asarray(img)
    except InputError:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as exc:
        raise InputError(path, f"unreadable image ({_short(exc)})") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    arr = arr.astype(np.float32 if dtype == "float32" else np.uint8, copy=False)
    c = arr.shape[-1]
    if token and token not in GREY and len(token) == c:
        names = wavelength_order(list(token))
        if c == 3 and file_order:  # as stored: R (the reddest band) first
            names = names[::-1]
        elif c == 3:  # colour composite: R is the reddest band
            arr = arr[..., ::-1]
    elif token and token not in GREY and len(token) == 1 and c == 3:
        arr = _grey(arr)
        names = [token]
    elif token in GREY:
        arr = _grey(arr) if c > 1 else arr
        names = ["grey"]
    else:
        names = [str(i) for i in range(c)]
    return np.ascontiguousarray(arr), names


def _grey(arr):
    mean = arr.astype(np.float32).mean(axis=-1, keepdims=True)
    return np.rint(mean).astype(np.uint8) if arr.dtype == np.uint8 else mean


def _fits_band_name(header, fallback):
    for key in ("FILTER", "BAND", "FILTNAM"):
        value = header.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().split()[0]
    return fallback


def read_fits(path):
    """(H×W×C float32, header-derived names or None) from a FITS image, cube or one HDU per
    band."""
    from astropy.io import fits

    _check_file(path)
    try:
        with fits.open(path, memmap=False) as hdus:
            planes = [
                (h.data, h.header)
                for h in hdus
                if getattr(h, "is_image", False) and h.data is not None
            ]
    except InputError:
        raise
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError, …
        raise InputError(path, f"unreadable FITS file ({_short(exc)})") from None
    if not planes:
        raise InputError(path, "FITS file has no image data")
    data, header = planes[0]
    if data.ndim == 2 and len(planes) > 1:
        shapes = {p[0].shape for p in planes}
        if len(shapes) != 1 or any(p[0].ndim != 2 for p in planes):
            raise InputError(path, f"image HDUs of different shapes {sorted(shapes)}")
        cube = np.stack([p[0] for p in planes], axis=-1)
        names = [_fits_band_name(h, str(i)) for i, (_, h) in enumerate(planes)]
    elif data.ndim == 2:
        cube, names = data[..., None], None
    elif data.ndim == 3:
        if data.shape[0] <= data.shape[-1]:
            cube = np.moveaxis(data, 0, -1)  # FITS cubes are (bands, y, x) in numpy order
        else:
            cube = data
        names = None
    else:
        raise InputError(path, f"FITS image is {data.ndim}-D (expected 2-D or a 3-D cube)")
    cube = np.asarray(cube, dtype=np.float32)
    if names is not None and len(set(names)) != len(names):
        names = None
    return cube, names


def decode_fits(path, token, geometry, nan_fill):
    cube, names = read_fits(path)
    bad = ~np.isfinite(cube)
    if bad.any():
        if nan_fill is None:
            raise InputError(
                path, f"{int(bad.sum())} NaN/inf pixel(s) (use --nan fill=VALUE to replace them)"
            )
        cube = np.where(bad, np.float32(nan_fill), cube)
    c = cube.shape[-1]
    if token and token not in GREY and len(token) == c:
        names = list(token)
    elif names is None:
        names = [str(i) for i in range(c)] if not (token and c == 1) else [token]
    cube = geometry.apply_array(np.ascontiguousarray(cube))
    if names and all(n in WAVELENGTH for n in names) and names != wavelength_order(names):
        order = [names.index(n) for n in wavelength_order(names)]
        cube, names = cube[..., order], [names[i] for i in order]
    return cube, names


def decode_file(path, token, geometry, dtype, nan_fill=None, file_order=False):
    suffix = suffix_of(os.path.basename(path))
    if suffix in FITS_SUFFIXES:
        if dtype == "uint8":
            raise InputError(path, "FITS data is floating point; use --dtype float32")
        return decode_fits(path, token, geometry, nan_fill)
    return decode_pil(path, token, geometry, dtype, file_order)


def _is_composite(token):
    return bool(token) and token not in GREY and len(token) > 1


def _names(files):
    return " and ".join(os.path.basename(p) for p, _ in files)


def choose_files(item, bands):
    """The files of ``item`` that make its stamp for the request ``bands`` (inclinet's rule)."""
    files = item.files
    composites = [f for f in files if _is_composite(f[1])]
    if not composites or len(files) == 1:
        return files
    if isinstance(bands, Composite):
        same = [f for f in composites if sorted(f[1]) == sorted(bands.token)]
        survey = [f for f in same if ".sdss." in os.path.basename(f[0]).lower()]
        if len(survey) == 1:  # inclinet: the survey's …_gri.sdss.jpg before a local …_gri.jpg
            return survey
        if len(same) == 1:
            return same
        if len(same) > 1:
            raise InputError(
                same[0][0],
                f"object '{item.key}' has {len(same)} colour files for '{bands.token}': "
                f"{_names(same)} (keep one, or pick with --root / the INPUT glob)",
            )
        return [f for f in files if not _is_composite(f[1])]
    if bands is None or bands == "grey":
        singles = [f for f in files if not _is_composite(f[1])]
        if singles:
            raise InputError(
                composites[0][0],
                f"object '{item.key}' has a colour file and band files: {_names(composites)} "
                f"and {_names(singles)} (choose with --band {composites[0][1]} for the colour "
                f"file or --band {','.join(wavelength_order([t for _, t in singles if t]))} "
                "for the band files)",
            )
        if len(composites) > 1:
            raise InputError(
                composites[0][0],
                f"object '{item.key}' has {len(composites)} colour files: {_names(composites)} "
                f"(choose with --band {composites[0][1]}, --root or the INPUT glob)",
            )
        return files
    # single bands or an explicit list (g,r,i): the band files
    singles = [f for f in files if not _is_composite(f[1])]
    return singles or files


def colour_channels(item, bands, names):
    """Which channel (R, G or B) of a colour composite each of ``names`` comes from, or None
    when the stamp is not read from one colour file (SDSS convention: R = i, G = r, B = g)."""
    files = choose_files(item, bands)
    if len(files) != 1 or not _is_composite(files[0][1]) or len(files[0][1]) != 3:
        return None
    stored = wavelength_order(list(files[0][1]))[::-1]  # R, G, B
    return ["RGB"[stored.index(n)] if n in stored else None for n in names]


def load_item(item, geometry, bands=None, dtype="uint8", nan_fill=None, file_order=False):
    """One object's stamp: (H×W×C array, band names), band files stacked by wavelength
    (a colour file's channels in wavelength order, or as stored with ``file_order``)."""
    files = choose_files(item, bands)
    if len(files) == 1:
        path, token = files[0]
        image, names = decode_file(path, token, geometry, dtype, nan_fill, file_order)
        if file_order and isinstance(bands, Composite) and sorted(names) == sorted(bands):
            return image, names  # the colour file's own order
        return select_bands(image, names, bands, path)
    if isinstance(bands, list) and all(isinstance(b, str) for b in bands):
        wanted = [f for f in files if f[1] in bands]
        tokens = {f[1] for f in wanted}
        missing = [b for b in bands if b not in tokens]
        if missing:
            have = ", ".join(sorted(str(f[1]) for f in files))
            raise InputError(
                files[0][0],
                f"object '{item.key}' has no file for band '{missing[0]}' (band files: {have})",
            )
        files = wanted
    planes, names, first = [], [], None
    for path, token in files:
        image, found = decode_file(path, token, geometry, dtype, nan_fill)
        if token is None or token in GREY or len(token) != image.shape[-1]:
            image, found = (_grey(image) if image.shape[-1] > 1 else image), [token or "grey"]
        if first is None:
            first = (path, image.shape[:2])
        elif image.shape[:2] != first[1]:
            raise InputError(
                path,
                f"size {image.shape[0]}x{image.shape[1]} differs from band "
                f"file {first[0]}'s {first[1][0]}x{first[1][1]}",
            )
        for name in found:
            if name in names:
                raise InputError(path, f"object '{item.key}' has two files for band '{name}'")
        planes.append(image)
        names.extend(found)
    image = np.concatenate(planes, axis=-1)
    order = [names.index(n) for n in wavelength_order(names)]
    image, names = image[..., order], [names[i] for i in order]
    return select_bands(image, names, bands, files[0][0])


def save_stamp_files(directory, stem, image, names, fmt):
    """Write a stamp as ``<stem>.<bands>.<fmt>`` (one colour file for 3 bands, one grey file
    for 1, else one file per band); return the paths written."""
    from PIL import Image

    if image.dtype != np.uint8:
        raise InputError(
            stem,
            f"{image.dtype} data cannot be saved as {fmt} "
            "(8-bit only; write an array file instead)",
        )
    ext = "jpg" if fmt in ("jpg", "jpeg") else fmt
    kw = {"quality": 95} if ext == "jpg" else {}
    written = []
    if image.shape[-1] == 3:
        label = "".join(names) if all(len(n) == 1 for n in names) else "-".join(names)
        path = os.path.join(directory, f"{stem}.{label}.{ext}")
        Image.fromarray(np.ascontiguousarray(image[..., ::-1]), "RGB").save(path, **kw)
        written.append(path)
    else:
        for c, name in enumerate(names):
            path = os.path.join(directory, f"{stem}.{name}.{ext}")
            Image.fromarray(np.ascontiguousarray(image[..., c]), "L").save(path, **kw)
            written.append(path)
    return written


def parse_size(text):
    """'64' or '64x48' (H×W) → (H, W); ValueError unless both are positive integers."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*", str(text))
    if not m:
        raise ValueError(f"size must be N or HxW, got {text!r}")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got {text!r}")
    return h, w
