"""How astronomical images become an extractor's input: a recorded protocol.

A protocol is a set of settings, all recorded in the report next to each number:

- ``bands``: one band (grey; replicated to RGB unless a colormap is given) or three (R,G,B),
  by index or name; ``all`` keeps every band (for 'raw' extractors);
- ``stretch``: ``minmax`` (per image), ``percentile`` (per image, ``lo``–``hi``), ``asinh``
  (percentile then asinh), or ``none``;
- ``cmap``: a matplotlib colormap name applied to a single band (e.g. magma), or none;
- ``size``: resize to size×size pixels (none: keep), with ``filter`` (nearest, bilinear,
  bicubic, lanczos, box: PIL's; skimage: ``skimage.transform.resize``'s order-1 interpolation,
  anti-aliased when shrinking);
- ``order``: ``stretch-first`` (stretch, colormap, then resize) or ``resize-first`` (resize the
  stored image, then stretch and colormap);
- ``quantize``: 8 (8-bit levels) or none, with ``rounding`` ``round`` or ``floor`` (truncation,
  as a cast to uint8 does).

Named protocols: ``holzschuh2022`` (the published galaxy FIDs of Holzschuh et al. 2022, as
their code does it: resize the stored image to 256 px with skimage's bilinear resize, take
channel 1 — a one-band image is first tiled to three channels, so its only band —, per-image
min-max, magma, ×255 truncated to 8 bit), ``rgb`` (bands→RGB as in galprep show, percentile
0.5–99.5, 8-bit), ``raw`` (the stored images, unchanged).  ``--protocol NAME,key=value,...``
overrides settings.
"""

import json
from dataclasses import asdict, dataclass, replace

import numpy as np

from galtools.errors import GalError

STRETCHES = ("none", "minmax", "percentile", "asinh")
FILTERS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "skimage")
ROUNDINGS = ("round", "floor")
ORDERS = ("stretch-first", "resize-first")


@dataclass(frozen=True)
class Protocol:
    name: str = "custom"
    bands: str = "auto"
    stretch: str = "percentile"
    lo: float = 0.5
    hi: float = 99.5
    cmap: str = "none"
    size: int = 0
    filter: str = "bilinear"
    quantize: int = 8
    rounding: str = "round"
    order: str = "stretch-first"

    def to_dict(self):
        return asdict(self)

    def key(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def raw(self):
        return self.bands == "all"


NAMED = {
    "holzschuh2022": Protocol(
        "holzschuh2022",
        bands="1",
        stretch="minmax",
        cmap="magma",
        size=256,
        filter="skimage",
        quantize=8,
        rounding="floor",
        order="resize-first",
    ),
    "rgb": Protocol("rgb", bands="auto", stretch="percentile", lo=0.5, hi=99.5, quantize=8),
    "raw": Protocol("raw", bands="all", stretch="none", quantize=0),
}


def parse(text):
    """'NAME[,key=value...]' or 'key=value,...' (starting from 'rgb') → Protocol."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise GalError("empty --protocol")
    base = NAMED["rgb"]
    if "=" not in parts[0]:
        name = parts.pop(0)
        if name not in NAMED:
            raise GalError(
                f"unknown protocol '{name}'; known: {', '.join(NAMED)} (or key=value settings)"
            )
        base = NAMED[name]
    changes = {}
    fields = Protocol.__dataclass_fields__
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in fields or key == "name":
            raise GalError(
                f"bad protocol setting '{part}' (keys: "
                f"{', '.join(k for k in fields if k != 'name')})"
            )
        value = value.strip()
        if key in ("lo", "hi"):
            changes[key] = _number(key, value, float)
        elif key in ("size", "quantize"):
            changes[key] = 0 if value.lower() in ("none", "0", "no") else _number(key, value, int)
        else:
            changes[key] = value
    proto = replace(base, **changes)
    if changes:
        proto = replace(
            proto, name=f"{base.name}+" + ",".join(f"{k}={v}" for k, v in changes.items())
        )
    return validate(proto)


def _number(key, value, kind):
    try:
        return kind(value)
    except ValueError:
        raise GalError(f"protocol setting {key}={value}: not a number") from None


def validate(p):
    if p.stretch not in STRETCHES:
        raise GalError(f"unknown stretch '{p.stretch}' (known: {', '.join(STRETCHES)})")
    if p.filter not in FILTERS:
        raise GalError(f"unknown resize filter '{p.filter}' (known: {', '.join(FILTERS)})")
    if p.rounding not in ROUNDINGS:
        raise GalError(f"unknown rounding '{p.rounding}' (known: {', '.join(ROUNDINGS)})")
    if p.order not in ORDERS:
        raise GalError(f"unknown order '{p.order}' (known: {', '.join(ORDERS)})")
    if p.quantize not in (0, 8):
        raise GalError("quantize must be 8 or none")
    if p.size < 0:
        raise GalError("size must be positive")
    if not 0 <= p.lo < p.hi <= 100:
        raise GalError("percentiles need 0 <= lo < hi <= 100")
    if p.cmap != "none":
        _colormap(p.cmap)
    return p


def _colormap(name):
    import matplotlib

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise GalError(f"unknown colormap '{name}'") from None


def band_indices(p, band_names):
    """Channel indices the protocol takes from images with ``band_names``."""
    from galtools.montage import parse_rgb

    c = len(band_names)
    if p.bands == "all":
        return list(range(c))
    if p.bands == "auto":
        if c == 1:
            return [0]
        if c == 3:
            return [0, 1, 2]
        return [c - 1, c - 2, c - 3] if c > 3 else [1, 0, 0]
    if c == 1 and p.bands.strip().lstrip("-").isdigit() and int(p.bands) in (-3, -2, -1, 0, 1, 2):
        return [0]  # a one-band image tiled to three channels: every channel is that band
    try:
        return parse_rgb(p.bands.replace("+", ","), band_names)
    except ValueError as exc:
        raise GalError(f"protocol bands '{p.bands}': {exc}") from None


def apply(p, images, band_names):
    """Images (N×H×W×C) → the extractor's input under protocol ``p`` (float32)."""
    x = np.asarray(images, dtype=np.float32)
    idx = band_indices(p, band_names)
    if p.order == "resize-first" and p.size:
        x = _resize(x, p)  # the stored bands, before any stretch
    x = x[..., idx]
    if p.raw:
        return _resize(x, p) if p.size and p.order != "resize-first" else x
    n = len(x)
    flat = x.reshape(n, -1)
    if p.stretch in ("minmax",):
        lo, hi = flat.min(axis=1), flat.max(axis=1)
    elif p.stretch in ("percentile", "asinh"):
        lo, hi = np.percentile(flat, [p.lo, p.hi], axis=1)
    else:
        lo, hi = np.zeros(n, np.float32), np.ones(n, np.float32)
    if p.stretch != "none":
        lo, hi = lo[:, None, None, None], hi[:, None, None, None]
        x = np.clip((x - lo) / np.where(hi > lo, hi - lo, 1), 0, 1)
        if p.stretch == "asinh":
            x = np.arcsinh(x / 0.1) / np.arcsinh(10.0)
    else:
        x = np.clip(x, 0, 1)
    if p.cmap != "none":
        if x.shape[-1] != 1:
            raise GalError("a colormap needs a single band (protocol bands=INDEX)")
        x = _colormap(p.cmap)(x[..., 0])[..., :3].astype(np.float32)
    elif x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    if p.size and p.order != "resize-first":
        x = _resize(x, p)
    if p.quantize == 8:
        scaled = np.clip(x, 0, 1) * 255
        x = (np.floor(scaled) if p.rounding == "floor" else np.rint(scaled)) / np.float32(255)
    return x.astype(np.float32, copy=False)


def _resize(x, p):
    """Resize every image (and channel) to size×size with a PIL filter, in float."""
    from PIL import Image

    if x.shape[1] == p.size and x.shape[2] == p.size:
        return x
    if p.filter == "skimage":
        return resize_like_skimage(x, p.size)
    resample = {
        "nearest": Image.NEAREST,
        "bilinear": Image.BILINEAR,
        "bicubic": Image.BICUBIC,
        "lanczos": Image.LANCZOS,
        "box": Image.BOX,
    }[p.filter]
    out = np.empty((len(x), p.size, p.size, x.shape[-1]), np.float32)
    for i in range(len(x)):
        for c in range(x.shape[-1]):
            img = Image.fromarray(np.ascontiguousarray(x[i, :, :, c]), mode="F")
            out[i, :, :, c] = np.asarray(img.resize((p.size, p.size), resample))
    return out


def resize_like_skimage(x, size):
    """``skimage.transform.resize(image, (size, size))`` (order 1, mode reflect, anti-aliased
    when shrinking, clipped to the image's range) of every N×H×W×C image, without skimage."""
    from scipy import ndimage

    h, w = x.shape[1:3]
    factors = np.array([h / size, w / size])
    out = np.empty((len(x), size, size, x.shape[-1]), np.float32)
    for i, image in enumerate(np.asarray(x, np.float64)):
        lo, hi = image.min(), image.max()
        if np.any(factors > 1):
            sigma = np.maximum(0, (factors - 1) / 2)
            image = ndimage.gaussian_filter(image, (*sigma, 0), mode="mirror")
        zoomed = ndimage.zoom(
            image, (size / h, size / w, 1), order=1, mode="mirror", grid_mode=True
        )
        out[i] = np.clip(zoomed, lo, hi)
    return out
