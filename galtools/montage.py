"""Turning galaxy stamps into pictures: stretch, band→RGB mapping, montage grids."""

import math
import os

import numpy as np


def stretch(images, method="auto", percentiles=(0.5, 99.5), asinh_a=0.1):
    """Scale images (N×H×W×C) to [0, 1] for display.

    ``method``: 'linear' (uint8 data as is, else global min–max), 'percentile' (per image,
    clipped between the given percentiles), 'asinh' (percentile, then asinh), or 'auto'
    (linear for 8-bit data, asinh for float data).
    """
    images = np.asarray(images)
    if method == "auto":
        method = "linear" if images.dtype == np.uint8 else "asinh"
    x = images.astype(np.float32)
    if method == "linear":
        if images.dtype == np.uint8:
            return x / 255.0
        lo, hi = np.nanmin(x), np.nanmax(x)
        return np.clip((x - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    flat = x.reshape(x.shape[0], -1)
    lo = np.nanpercentile(flat, percentiles[0], axis=1)[:, None, None, None]
    hi = np.nanpercentile(flat, percentiles[1], axis=1)[:, None, None, None]
    x = np.clip((x - lo) / np.where(hi > lo, hi - lo, 1.0), 0, 1)
    if method == "asinh":
        x = np.arcsinh(x / asinh_a) / np.arcsinh(1.0 / asinh_a)
    elif method != "percentile":
        raise ValueError(f"unknown stretch '{method}'")
    return np.nan_to_num(x)


def to_rgb(images, bands=None, rgb=None):
    """Map C bands to RGB (N×H×W×3) or grey (N×H×W×1).

    ``rgb``: three channel indices for R, G, B, or one index for grey.  Default: grey for one
    band, the channels as R,G,B for three, and for other counts the last three in reverse
    (redder band in R), e.g. g,r,i → R=i, G=r, B=g.
    """
    c = images.shape[-1]
    if rgb is None:
        if c == 1:
            rgb = [0]
        elif c == 3 and (bands is None or list(bands) not in (["g", "r", "i"], list("gri"))):
            rgb = [0, 1, 2]
        elif c == 2:
            rgb = [1, 0, 0]
        else:
            rgb = [c - 1, c - 2, c - 3]
    return images[..., list(rgb)]


def grid(images, columns=None, pad=2, background=0.0):
    """Tile N×H×W×C images (values in [0, 1]) into one H'×W'×C array."""
    n, h, w, c = images.shape
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / columns))
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), background, np.float32)
    for k in range(n):
        r, q = divmod(k, columns)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[y : y + h, x : x + w] = images[k]
    return out


def montage_image(
    images, columns=None, scale=1, method="auto", bands=None, rgb=None, captions=None
):
    """A PIL image of a montage of ``images`` with optional per-stamp captions."""
    from PIL import Image, ImageDraw

    shown = to_rgb(stretch(images, method), bands, rgb)
    if scale > 1:
        shown = shown.repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w, c = shown.shape
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    pad = 2
    tiled = grid(shown, columns, pad=pad)
    pixels = (tiled * 255 + 0.5).astype(np.uint8)
    mode = "L" if c == 1 else "RGB"
    img = Image.fromarray(pixels[..., 0] if c == 1 else pixels, mode)
    if captions is not None:
        img = img.convert("RGB")
        for k, text in enumerate(captions[:n]):
            r, q = divmod(k, columns)
            x, y = pad + q * (w + pad), pad + r * (h + pad)
            # wrapped to the stamp's width and clipped to its box: never over a neighbour
            stamp = Image.new("RGBA", (w, h), (0, 0, 0, 0))
            pen = ImageDraw.Draw(stamp)
            step = pen.textbbox((0, 0), "Ag")[3] + 1
            for line_no, line in enumerate(wrap(str(text), w - 2, pen.textlength)):
                at = (1, 1 + line_no * step)
                pen.text((at[0] + 1, at[1] + 1), line, fill=(0, 0, 0, 255))
                pen.text(at, line, fill=(255, 255, 0, 255))
            img.paste(stamp, (x, y), stamp)
    return img


def wrap(text, width, measure):
    """Split ``text`` at spaces into lines no wider than ``width`` (as ``measure`` says);
    a single word wider than that stays on its own line (and is clipped by the caller)."""
    lines = []
    for word in text.split():
        if lines and measure(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def save_montage(path, images, **kw):
    """Write a montage PNG of ``images`` (atomically; never a half-written picture)."""
    from galtools.atomic import atomic_path

    img = montage_image(images, **kw)
    with atomic_path(path, overwrite=True, suffix=".png") as tmp:
        img.save(tmp, format="PNG")
    return path


def parse_rgb(text, bands):
    """'2,1,0' or 'i,r,g' (band names) or 'r' (grey) → channel indices."""
    if text is None:
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        if part in bands:
            out.append(list(bands).index(part))
        elif part.lstrip("-").isdigit() and -len(bands) <= int(part) < len(bands):
            out.append(int(part) % len(bands))
        else:
            raise ValueError(f"unknown band '{part}' (bands: {', '.join(bands)})")
    if len(out) not in (1, 3):
        raise ValueError("give one band (grey) or three (R,G,B)")
    return out


def pick(path, count=16, random=False, seed=0, field="images", captions=(), rgb=None):
    """``count`` images of a file (first, or a seeded random choice) ready for a montage:
    ``(images, caption texts or None, bands, RGB channel indices)``."""
    from galtools.arrayfile import open_galaxies
    from galtools.errors import GalError

    with open_galaxies(path) as reader:
        if reader.n == 0:
            raise GalError(f"{reader.path}: no images to show")
        if field == "targets" and not reader.has_targets:
            raise GalError(f"{reader.path}: has no targets")
        missing = [c for c in captions if c not in reader.label_names]
        if missing:
            raise GalError(
                f"{reader.path}: no label column {missing[0]} "
                f"(label columns: {', '.join(reader.label_names) or 'none'})"
            )
        count = min(count, reader.n)
        if random:
            rows = np.sort(np.random.default_rng(seed).choice(reader.n, count, replace=False))
        else:
            rows = np.arange(count)
        batch = reader.take(rows, fields=[field, *captions])
        try:
            channels = parse_rgb(rgb, reader.bands)
        except ValueError as exc:
            raise GalError(f"--rgb: {exc}") from None
        text = None
        if captions:
            classes = reader.classes
            text = []
            for k in range(count):
                parts = []
                for name in captions:
                    v = batch[name][k]
                    if name in classes and np.asarray(v).dtype.kind in "iu":
                        v = classes[name][int(v)] if 0 <= int(v) < len(classes[name]) else v
                    parts.append(f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v))
                text.append(" ".join(parts))
        return np.asarray(batch[field]), text, reader.bands, channels


def montage_from_file(
    path,
    out,
    count=16,
    random=False,
    seed=0,
    field="images",
    captions=(),
    columns=None,
    scale=None,
    method="auto",
    rgb=None,
):
    """Montage PNG of ``count`` images (first, or a seeded random choice) of a file."""
    images, text, bands, channels = pick(path, count, random, seed, field, captions, rgb)
    if scale is None:
        scale = max(1, 128 // max(images.shape[1], 1))
    save_montage(
        out,
        images,
        columns=columns,
        scale=scale,
        method=method,
        bands=bands,
        rgb=channels,
        captions=text,
    )
    return out


def montage_rows(
    paths,
    out,
    count=8,
    random=False,
    seed=0,
    field="images",
    captions=(),
    scale=None,
    method="auto",
    rgb=None,
    labels=None,
):
    """One montage PNG comparing files: a row of ``count`` images per file, the first stamp
    of each row captioned with its label (default: the file name without extension).  The
    files must hold images of one shape and bands (e.g. real and generated galaxies)."""
    from galtools.errors import GalError

    labels = list(labels) if labels else [os.path.splitext(os.path.basename(p))[0] for p in paths]
    rows, texts, first = [], [], None
    for path, label in zip(paths, labels):
        images, text, bands, channels = pick(path, count, random, seed, field, captions, rgb)
        if first is None:
            first = (images.shape[1:], list(bands or []), channels)
        elif (images.shape[1:], list(bands or [])) != first[:2]:
            raise GalError(
                f"{path}: images {images.shape[1:]} in bands {','.join(bands or [])} do not "
                f"match {paths[0]}'s {first[0]} in {','.join(first[1])}"
            )
        pad = count - len(images)
        if pad:  # a short file: blank stamps keep the rows aligned
            images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
        rows.append(images)
        text = list(text) + [""] * pad if text else [""] * count
        text[0] = f"{label} {text[0]}".strip()
        texts.extend(text)
    images = np.concatenate(rows)
    if scale is None:
        scale = max(1, 128 // max(images.shape[1], 1))
    save_montage(
        out,
        images,
        columns=count,
        scale=scale,
        method=method,
        bands=first[1] or None,
        rgb=first[2],
        captions=texts,
    )
    return out
