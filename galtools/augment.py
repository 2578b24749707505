"""Data augmentation of galaxy stamps, vectorised over chunks of images.

Each op has a parameter range and a probability; parameters are drawn per image with a seeded
generator.  Geometric ops (flips, rot90, one combined rotate/scale/shift resampling) apply to
``targets`` with the same parameters; photometric ops (blur, brightness, offset, gamma, noise,
inversion, greyscale) to the images only.  Ops run in that fixed order.  8-bit images are
augmented in float and rounded back; values are in the data's own units (0–255 for 8-bit).

``uniform_plan`` resamples rows so that every bin of a label holds exactly N images (the
uniform-inclination augmentation); :func:`augment_file` streams a plan through the ops into
one file or K shuffled batch files.
"""

import os
import re
from dataclasses import dataclass

import numpy as np

from galtools.errors import GalError, InputError

GEOMETRIC = ("hflip", "vflip", "rot90", "rotate", "scale", "shift")
PHOTOMETRIC = ("blur", "brightness", "offset", "gamma", "noise", "invert", "greyscale")
ORDER = GEOMETRIC + PHOTOMETRIC
PROBABILITY_ONLY = ("hflip", "vflip", "rot90", "invert")
SYMMETRIC = ("rotate", "shift")  # a single value V means -V:V
WORK_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Op:
    """An augmentation: parameter range [lo, hi] applied with probability p."""

    name: str
    lo: float = 0.0
    hi: float = 0.0
    p: float = 1.0

    def __str__(self):
        if self.name in PROBABILITY_ONLY:
            return f"{self.name}@{self.p:g}"
        return f"{self.name}={self.lo:g}:{self.hi:g}@{self.p:g}"


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_op(name, text):
    """'LO:HI@P', 'V@P', 'LO:HI', 'V' (or 'P' for probability-only ops) → Op."""
    text = str(text).strip()
    if name in PROBABILITY_ONLY:
        if not re.fullmatch(_NUM, text):
            raise ValueError(f"--{name} takes a probability, got {text!r}")
        p = float(text)
        if not 0 <= p <= 1:
            raise ValueError(f"--{name}: probability {p:g} not in [0, 1]")
        return Op(name, p=p)
    m = re.fullmatch(rf"({_NUM})(?::({_NUM}))?(?:@({_NUM}))?", text)
    if name == "greyscale" and re.fullmatch(_NUM, text):
        m2 = float(text)
        if not 0 <= m2 <= 1:
            raise ValueError(f"--greyscale: probability {m2:g} not in [0, 1]")
        return Op(name, 1.0, 1.0, m2)
    if not m:
        raise ValueError(f"--{name} expects LO:HI[@P] or V[@P], got {text!r}")
    lo = float(m.group(1))
    hi = float(m.group(2)) if m.group(2) is not None else None
    if hi is None:
        lo, hi = (-abs(lo), abs(lo)) if name in SYMMETRIC else (lo, lo)
    p = float(m.group(3)) if m.group(3) is not None else 1.0
    if hi < lo:
        raise ValueError(f"--{name}: range {lo:g}:{hi:g} is reversed")
    if not 0 <= p <= 1:
        raise ValueError(f"--{name}: probability {p:g} not in [0, 1]")
    if name in ("scale", "gamma") and lo <= 0:
        raise ValueError(f"--{name}: values must be positive, got {lo:g}")
    if name in ("noise", "blur") and lo < 0:
        raise ValueError(f"--{name}: values must be >= 0, got {lo:g}")
    if name == "greyscale" and not (0 <= lo and hi <= 1):
        raise ValueError("--greyscale: blend amounts must be within 0:1")
    return Op(name, lo, hi, p)


class Augmenter:
    """Applies a set of ops to chunks of images (N×H×W×C) with per-image random parameters."""

    def __init__(self, ops, fill="reflect"):
        self.ops = {op.name: op for op in ops}
        unknown = set(self.ops) - set(ORDER)
        if unknown:
            raise GalError(f"unknown augmentation op(s): {', '.join(sorted(unknown))}")
        self.fill = fill

    def __bool__(self):
        return bool(self.ops)

    def describe(self):
        return [str(self.ops[name]) for name in ORDER if name in self.ops]

    def _draw(self, rng, name, n):
        """(applied mask, values) for op ``name`` over n images (mask all False if absent)."""
        op = self.ops.get(name)
        if op is None:
            return np.zeros(n, bool), None
        mask = rng.random(n) < op.p
        values = rng.uniform(op.lo, op.hi, n)
        return mask, values

    def __call__(self, images, targets=None, rng=None):
        """Augmented copies of ``images`` (and ``targets``); dtype is kept."""
        rng = rng if rng is not None else np.random.default_rng()
        dtype = images.dtype
        x = images.astype(np.float32)  # copy: inputs are never modified
        t = targets.astype(np.float32) if targets is not None else None
        n, h, w = x.shape[:3]
        for name, axis in (("hflip", 2), ("vflip", 1)):
            mask, _ = self._draw(rng, name, n)
            if mask.any():
                x[mask] = np.flip(x[mask], axis=axis)
                if t is not None:
                    t[mask] = np.flip(t[mask], axis=axis)
        mask, _ = self._draw(rng, "rot90", n)
        if mask.any():
            k = rng.integers(1, 4, n) if h == w else np.full(n, 2)
            for kk in (1, 2, 3):
                sel = mask & (k == kk)
                if sel.any():
                    x[sel] = np.rot90(x[sel], kk, axes=(1, 2))
                    if t is not None:
                        t[sel] = np.rot90(t[sel], kk, axes=(1, 2))
        self._affine(x, t, rng)
        self._photometric(x, rng, dtype)
        if dtype == np.uint8:
            x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
            if t is not None:
                t = np.clip(np.rint(t), 0, 255).astype(np.uint8)
        elif dtype != np.float32:
            x = x.astype(dtype)
            t = t.astype(dtype) if t is not None else None
        return x, t

    def _affine(self, x, t, rng):
        """Rotation, scale and shift as one bilinear resampling per image."""
        n, h, w, _ = x.shape
        m_rot, angle = self._draw(rng, "rotate", n)
        m_scale, scale = self._draw(rng, "scale", n)
        m_shift, _ = self._draw(rng, "shift", n)
        if not (m_rot.any() or m_scale.any() or m_shift.any()):
            return
        op = self.ops.get("shift")
        dy = rng.uniform(op.lo, op.hi, n) if op else np.zeros(n)
        dx = rng.uniform(op.lo, op.hi, n) if op else np.zeros(n)
        theta = np.where(m_rot, np.deg2rad(angle if angle is not None else 0), 0.0)
        zoom = np.where(m_scale, scale if scale is not None else 1.0, 1.0)
        dy, dx = np.where(m_shift, dy, 0.0), np.where(m_shift, dx, 0.0)
        todo = np.flatnonzero(m_rot | m_scale | m_shift)
        step = max(1, 2**19 // (h * w))  # ~30 MB of index/weight arrays per step
        every = todo.size == n  # then take slices, not copies through fancy indexing
        for s in range(0, todo.size, step):
            idx = slice(s, min(s + step, n)) if every else todo[s:s + step]
            coords = _affine_coords(h, w, theta[idx], zoom[idx], dy[idx], dx[idx])
            for arr in (x, t) if t is not None else (x,):
                arr[idx] = _resample(arr[idx], coords, self.fill)

    def _photometric(self, x, rng, dtype):
        n = x.shape[0]
        eight_bit = dtype == np.uint8
        mask, sigma = self._draw(rng, "blur", n)
        if mask.any():
            from scipy import ndimage

            levels = np.round(sigma * 10) / 10  # group images by blur to vectorise
            for level in np.unique(levels[mask]):
                sel = mask & (levels == level)
                if level > 0:
                    x[sel] = ndimage.gaussian_filter(x[sel], sigma=(0, level, level, 0),
                                                     mode="reflect", truncate=3.0)
        mask, factor = self._draw(rng, "brightness", n)
        mask2, add = self._draw(rng, "offset", n)
        if mask.any():
            x *= _per_image(np.where(mask, factor, 1.0))
        if mask2.any():
            x += _per_image(np.where(mask2, add, 0.0))
        mask, gamma = self._draw(rng, "gamma", n)
        if mask.any():
            def apply_gamma(sub, g):
                lo, hi = _value_range(sub, eight_bit)
                span = np.maximum(hi - lo, 1e-12)
                v = np.clip((sub - lo) / span, 0, 1)
                return lo + span * np.power(v, _per_image(g), dtype=np.float32)

            _apply(x, mask, apply_gamma, gamma)
        mask, sigma = self._draw(rng, "noise", n)
        if mask.any():
            def add_noise(sub, s):
                noise = rng.standard_normal(sub.shape, dtype=np.float32)
                noise *= _per_image(s)
                return sub + noise

            _apply(x, mask, add_noise, sigma)
        mask, _ = self._draw(rng, "invert", n)
        if mask.any():
            def invert(sub, _):
                lo, hi = _value_range(sub, eight_bit)
                return (lo + hi) - sub

            _apply(x, mask, invert, None)
        mask, amount = self._draw(rng, "greyscale", n)
        if mask.any() and x.shape[-1] > 1:
            def grey(sub, a):
                a = _per_image(a)
                return (1 - a) * sub + a * sub.mean(axis=-1, keepdims=True)

            _apply(x, mask, grey, amount)


def _per_image(values):
    """Per-image values shaped to broadcast over N×H×W×C (float32)."""
    return np.asarray(values, dtype=np.float32)[:, None, None, None]


def _apply(x, mask, fn, values):
    """x[mask] = fn(x[mask], values[mask]) in place, without copies when every image is hit."""
    if mask.all():
        x[...] = fn(x, values)
    else:
        x[mask] = fn(x[mask], None if values is None else values[mask])


def _value_range(x, eight_bit):
    """Per-image (lo, hi) broadcastable over N×H×W×C: 0–255 for 8-bit, else min/max."""
    if eight_bit:
        return np.float32(0), np.float32(255)
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    return lo, hi


def _affine_coords(h, w, theta, zoom, dy, dx):
    """Input (row, col) coordinates for every output pixel of each image: (2, M, H, W),
    float32.  Output pixel p maps from input c + R(-θ)(p - c - shift)/zoom about the centre c.
    """
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy = (np.arange(h, dtype=np.float32) - cy)[None, :, None]
    xx = (np.arange(w, dtype=np.float32) - cx)[None, None, :]
    cos = (np.cos(theta) / zoom).astype(np.float32)[:, None, None]
    sin = (np.sin(theta) / zoom).astype(np.float32)[:, None, None]
    oy = yy - dy.astype(np.float32)[:, None, None]
    ox = xx - dx.astype(np.float32)[:, None, None]
    out = np.empty((2, theta.size, h, w), np.float32)
    np.multiply(cos, oy, out=out[0])
    out[0] -= sin * ox
    out[0] += np.float32(cy)
    np.multiply(sin, oy, out=out[1])
    out[1] += cos * ox
    out[1] += np.float32(cx)
    return out


PAD = 2


def _fold(u, n, fill):
    """Map continuous coordinates onto [-0.5, n-0.5] (reflect), [0, n-1] (nearest),
    [0, n) (wrap) or clip them just beyond the zero border (constant)."""
    if fill == "reflect":
        once = np.where(u < -0.5, -1 - u, u)  # mirror about the edges: enough unless an
        once = np.where(once > n - 0.5, 2 * n - 1 - once, once)  # image is far outside
        if once.size and (once.min() < -0.5 or once.max() > n - 0.5):
            u = np.mod(u + 0.5, 2 * n)
            return np.where(u > n, 2 * n - u, u) - 0.5
        return once
    if fill == "nearest":
        return np.clip(u, 0, n - 1)
    if fill == "wrap":
        return np.mod(u, n)
    return np.clip(u, -1.5, n + 0.5)


def _resample(sub, coords, fill):
    """Bilinear resampling of M×H×W×C images at ``coords`` (2, M, H, W), all at once.

    The images are padded by two pixels (by the fill rule), coordinates folded inside, and the
    four neighbours gathered from the flattened chunk with ``np.take``: no Python loop over
    images, and cheaper than ``ndimage.map_coordinates`` on a stack (8 taps, float64 coords).
    """
    m, h, w, c = sub.shape
    rows = _fold(coords[0], h, fill) + PAD
    cols = _fold(coords[1], w, fill) + PAD
    y0 = rows.astype(np.intp)  # coordinates are >= 0 here: truncation is floor
    x0 = cols.astype(np.intp)
    fy = (rows - y0).astype(np.float32)
    fx = (cols - x0).astype(np.float32)
    del rows, cols
    h2, w2 = h + 2 * PAD, w + 2 * PAD
    i00 = (y0 + (np.arange(m, dtype=np.intp) * h2)[:, None, None]) * w2 + x0
    del y0, x0
    weights = ((1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx)
    offsets = (0, 1, w2, w2 + 1)
    mode = {"reflect": "symmetric", "nearest": "edge", "wrap": "wrap",
            "constant": "constant"}[fill]
    padded = np.pad(sub, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)), mode=mode)
    out = np.empty_like(sub)
    for ch in range(c):
        plane = np.ascontiguousarray(padded[..., ch]).ravel()
        acc = np.take(plane, i00) * weights[0]
        for off, wt in zip(offsets[1:], weights[1:]):
            acc += np.take(plane, i00 + off) * wt
        out[..., ch] = acc
    return out


# ----------------------------------------------------------------------------- plans


def parse_bins(text):
    """'45:90:5' (LO:HI:STEP) or '0,30,60,90' (edges) → array of bin edges."""
    text = str(text).strip()
    try:
        if ":" in text:
            lo, hi, step = (float(v) for v in text.split(":"))
            if step <= 0 or hi <= lo:
                raise ValueError
            count = int(np.floor((hi - lo) / step + 1e-9))
            edges = lo + step * np.arange(count + 1)
            if edges[-1] < hi - 1e-9:
                edges = np.append(edges, hi)
        else:
            edges = np.array([float(v) for v in text.split(",")])
            if edges.size < 2 or np.any(np.diff(edges) <= 0):
                raise ValueError
    except ValueError:
        raise ValueError(f"bins must be LO:HI:STEP with LO < HI, STEP > 0, or increasing "
                         f"edges 'a,b,c', got {text!r}") from None
    return edges


def bin_name(edges, i):
    close = "]" if i == len(edges) - 2 else ")"
    return f"[{edges[i]:g}, {edges[i + 1]:g}{close}"


def uniform_plan(values, edges, per_bin, rng, allow_empty=False, column="label", path=""):
    """Row indices (len = bins × per_bin, empty bins excepted) so that each bin of ``values``
    holds exactly ``per_bin`` rows: all rows of a small bin plus random repeats, or a random
    subset of a large bin."""
    values = np.asarray(values, dtype=np.float64)
    which = np.searchsorted(edges, values, side="right") - 1
    which[values == edges[-1]] = len(edges) - 2
    inside = (which >= 0) & (which < len(edges) - 1) & np.isfinite(values)
    plan, counts, empty = [], [], []
    for b in range(len(edges) - 1):
        rows = np.flatnonzero(inside & (which == b))
        counts.append(int(rows.size))
        if rows.size == 0:
            empty.append(bin_name(edges, b))
            continue
        if rows.size >= per_bin:
            chosen = rng.choice(rows, per_bin, replace=False)
        else:
            chosen = np.concatenate([rows, rng.choice(rows, per_bin - rows.size, replace=True)])
        plan.append(chosen)
    if empty and not allow_empty:
        raise InputError(path, f"bin {empty[0]} of '{column}' is empty "
                         f"({len(empty)} empty bin(s); use --allow-empty-bins)")
    if not plan:
        raise InputError(path, f"no rows of '{column}' fall in the bins "
                         f"{edges[0]:g}..{edges[-1]:g}")
    return np.concatenate(plan), counts, int((~inside).sum())


# ----------------------------------------------------------------------------- files


def read_rows(reader, rows, gap=8):
    """Every field at ``rows`` (any order, repeats allowed).  Unique rows are read once, as
    slices over runs of nearby rows (h5py fancy indexing is slow for scattered rows)."""
    uniq, inverse = np.unique(rows, return_inverse=True)
    breaks = np.flatnonzero(np.diff(uniq) > gap) + 1
    parts = []
    for run in np.split(uniq, breaks):
        block = reader.read(int(run[0]), int(run[-1]) + 1)
        parts.append({k: v[run - run[0]] for k, v in block.items()})
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return {k: v[inverse] for k, v in data.items()}


_READERS = {}


def _augment_task(path, rows, key, augmenter):
    """Read ``rows`` of ``path`` (reader cached per process) and augment them."""
    from galtools.arrayfile import open_galaxies

    reader = _READERS.get(path)
    if reader is None:
        reader = _READERS[path] = open_galaxies(path)
    batch = read_rows(reader, rows)
    images, targets = augmenter(batch["images"], batch.get("targets"),
                                np.random.default_rng(key))
    batch["images"] = images
    if targets is not None:
        batch["targets"] = targets
    return batch


def _close_readers():
    while _READERS:
        _READERS.popitem()[1].close()


def augment_file(path, output, augmenter, history, *, uniform=None, bins=None, per_bin=None,
                 allow_empty=False, copies=1, batches=None, fmt="h5", seed=0, shard=None,
                 overwrite=False, compression=None, chunk_size=None, jobs=1):
    """Augment ``path`` into ``output`` (a file, or a folder of ``batches`` batch files).

    Chunks of the shuffled plan are read and augmented by ``jobs`` worker processes and
    written in order; chunk ``c`` of output ``k`` draws from ``default_rng([seed, k, c])``,
    so the result does not depend on ``jobs``.
    """
    from galtools.arrayfile import GalaxyWriter, check_output, container_of, open_galaxies
    from galtools.meta import derive
    from galtools.options import Shard
    from galtools.parallel import ordered_map
    from galtools.progress import progress, say

    shard = shard or Shard()
    rng = np.random.default_rng(seed)
    bins = None if bins is None else np.asarray(bins, dtype=np.float64)
    with open_galaxies(path) as reader:  # closed before any worker is forked
        if reader.n == 0:
            raise InputError(path, "has no images")
        if uniform:
            values = reader.column(uniform)
            if values.dtype.kind not in "iuf":
                raise InputError(path, f"column '{uniform}' is not numeric")
            plan, counts, outside = uniform_plan(values, bins, per_bin, rng, allow_empty,
                                                 uniform, path)
            say(f"'{uniform}' bins: {' '.join(map(str, counts))} rows → {per_bin} each"
                + (f"; {outside} rows outside the bins" if outside else ""))
        else:
            plan = np.repeat(np.arange(reader.n), copies)
        image_shape = reader.image_shape
        meta_in = reader.meta
    plan = plan[rng.permutation(plan.size)]
    info = {"ops": augmenter.describe(), "seed": seed, "rows": int(plan.size)}
    if uniform:
        info.update(uniform=uniform, bins=[float(e) for e in bins], per_bin=per_bin)
    meta = derive(meta_in, dict(history, augment=info))
    size = chunk_size or max(1, WORK_BYTES // (int(np.prod(image_shape)) * 4))
    parts = []  # (output path, start, stop, key)
    if batches:
        for k in shard.select(list(range(batches))):
            start, stop = Shard(k, batches).bounds(plan.size)
            parts.append((os.path.join(output, f"batch_{k:03d}.{fmt}"), start, stop, k))
    else:
        container_of(output)
        start, stop = shard.bounds(plan.size)
        parts.append((shard.output_path(output), start, stop, shard.index))
    todo = []
    for out, start, stop, k in parts:
        if os.path.exists(out) and not overwrite and (batches or shard.count > 1):
            say(f"{out} exists, skipped")
            continue
        if stop <= start:
            raise GalError(f"{out}: no rows for this part ({plan.size} rows in all)")
        if batches:
            os.makedirs(output, exist_ok=True)
        check_output(out, overwrite, [path])
        todo.append((out, start, stop, k))
    tasks, owner = [], []
    for i, (_, start, stop, k) in enumerate(todo):
        for c, s in enumerate(range(start, stop, size)):
            tasks.append((path, plan[s:min(s + size, stop)], [seed, k, c], augmenter))
            owner.append(i)
    bar = progress(total=sum(j[2] - j[1] for j in todo), desc="augment")
    written, writer, current = {}, None, None
    try:
        for i, batch in zip(owner, ordered_map(_augment_task, tasks, jobs)):
            if i != current:
                if writer is not None:
                    writer.close()
                    written[writer.path] = writer.n
                writer, current = GalaxyWriter(todo[i][0], meta, overwrite, compression,
                                               inputs=[path]), i
            writer.append(batch)
            bar.update(len(batch["images"]))
        if writer is not None:
            writer.close()
            written[writer.path] = writer.n
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
        _close_readers()
    return written
