"""Data augmentation of galaxy stamps, vectorised over chunks of images.

Each op has a parameter range and a probability; parameters are drawn per image with a seeded
generator.  Geometric ops (flips, rot90, one combined rotate/scale/shift resampling) apply to
``targets`` with the same parameters; photometric ops (blur, brightness, offset, gamma, noise,
inversion, greyscale) to the images only.  Ops run in that fixed order.  8-bit images are
augmented in float and rounded back; values are in the data's own units (0–255 for 8-bit).
An :class:`Op` checks its parameters when made; :func:`augment_images` augments arrays in memory.

``uniform_plan`` resamples rows so that every bin of a label holds exactly N images (the
uniform-inclination augmentation); :func:`augment_file` streams a plan through the ops into
one file or K shuffled batch files.
"""

import numbers
import os
import re
from dataclasses import dataclass

import numpy as np

from galtools.errors import GalError, InputError

GEOMETRIC = ("hflip", "vflip", "rot90", "rotate", "scale", "shift")
PHOTOMETRIC = (
    "blur",
    "brightness",
    "offset",
    "gamma",
    "noise",
    "invert",
    "greyscale",
    "invert_grey",
)
ORDER = GEOMETRIC + PHOTOMETRIC
PROBABILITY_ONLY = ("hflip", "vflip", "rot90", "invert", "invert_grey")
SYMMETRIC = ("rotate", "shift")  # a single value V means -V:V
WORK_BYTES = 16 * 2**20


FILLS = ("reflect", "nearest", "constant", "wrap")


class OpError(ValueError):
    """A bad augmentation op: ``problem`` is the message without the op's name."""

    def __init__(self, name, problem):
        self.name, self.problem = name, problem
        super().__init__(f"augment op '{name}': {problem}")


def _number(name, what, value):
    if isinstance(value, numbers.Real) and np.isfinite(value):
        return float(value)
    raise OpError(name, f"{what} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class Op:
    """An augmentation: parameter range [lo, hi] applied with probability p.

    Checked when made (:class:`OpError`, a ValueError): a known name, finite numbers, p in
    [0, 1], lo <= hi and the op's own limits (scale and gamma > 0, blur and noise >= 0, greyscale
    amounts within 0:1).  As on the command line, one value V means -V:V for rotate and shift and
    V:V otherwise; probability-only ops (hflip, vflip, rot90, invert, invert_grey) take just
    ``p``; greyscale's blend amount defaults to 1 (fully grey).
    """

    name: str
    lo: float = None
    hi: float = None
    p: float = 1.0

    def __post_init__(self):
        name = self.name
        if name not in ORDER:
            raise OpError(name, f"no such op (known: {', '.join(ORDER)})")
        p = _number(name, "probability", self.p)
        if name in PROBABILITY_ONLY:
            if self.lo not in (None, 0) or self.hi not in (None, 0):
                raise OpError(name, f"takes only a probability: Op('{name}', p=P)")
            lo = hi = 0.0
        elif self.lo is None:
            if name != "greyscale" or self.hi is not None:
                raise OpError(name, "needs a value or a range lo, hi")
            lo = hi = 1.0
        else:
            lo = _number(name, "each value", self.lo)
            if self.hi is None:
                lo, hi = (-abs(lo), abs(lo)) if name in SYMMETRIC else (lo, lo)
            else:
                hi = _number(name, "each value", self.hi)
        problem = _problem(name, lo, hi, p)
        if problem:
            raise OpError(name, problem)
        for attr, value in (("lo", lo), ("hi", hi), ("p", p)):
            object.__setattr__(self, attr, value)

    def __str__(self):
        if self.name in PROBABILITY_ONLY:
            return f"{self.name}@{self.p:g}"
        return f"{self.name}={self.lo:g}:{self.hi:g}@{self.p:g}"


def _problem(name, lo, hi, p):
    """What is wrong with op ``name`` over [lo, hi] with probability p (None: nothing)."""
    if hi < lo:
        return f"range {lo:g}:{hi:g} is reversed"
    if not 0 <= p <= 1:
        return f"probability {p:g} not in [0, 1]"
    if name in ("scale", "gamma") and lo <= 0:
        return f"values must be positive, got {lo:g}"
    if name in ("noise", "blur") and lo < 0:
        return f"values must be >= 0, got {lo:g}"
    if name == "greyscale" and not (0 <= lo and hi <= 1):
        return "blend amounts must be within 0:1"
    return None


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_op(name, text):
    """'LO:HI@P', 'V@P', 'LO:HI', 'V' (or 'P' for probability-only ops) → Op.

    A ValueError names the command-line flag (``--rotate: range 10:5 is reversed``).
    """
    try:
        return _parse(name, text)
    except OpError as exc:
        raise ValueError(f"--{name.replace('_', '-')}: {exc.problem}") from None


def _parse(name, text):
    """:func:`parse_op` raising :class:`OpError` (messages naming the op, not the flag)."""
    text = str(text).strip()
    if name in PROBABILITY_ONLY:
        if not re.fullmatch(_NUM, text):
            raise OpError(name, f"takes a probability, got {text!r}")
        return Op(name, p=float(text))
    if name == "greyscale" and re.fullmatch(_NUM, text):
        return Op(name, p=float(text))
    m = re.fullmatch(rf"({_NUM})(?::({_NUM}))?(?:@({_NUM}))?", text)
    if not m:
        if name not in ORDER:
            Op(name)  # unknown op: its error
        raise OpError(name, f"expects LO:HI[@P] or V[@P], got {text!r}")
    lo = float(m.group(1))
    hi = float(m.group(2)) if m.group(2) is not None else None
    p = float(m.group(3)) if m.group(3) is not None else 1.0
    return Op(name, lo, hi, p)


DEFAULT_OPS = (Op("hflip", p=0.5), Op("vflip", p=0.5), Op("rot90", p=1.0))


def parse_ops(text):
    """Ops from one string, ``NAME=SPEC`` joined by commas in the syntax of ``galprep
    augment``'s flags (``hflip=0.5,rot90=1,rotate=30@0.5,noise=0:2``; names with - or _);
    ``dihedral`` stands for the default flips and quarter turns.  ValueError naming the op."""
    ops, seen = [], set()
    for item in filter(None, (t.strip() for t in str(text or "").split(","))):
        if item == "dihedral":
            found = list(DEFAULT_OPS)
        else:
            name, eq, spec = item.partition("=")
            name = name.strip().replace("-", "_")
            if not eq or not spec.strip():
                raise ValueError(f"augment op '{item}': expected NAME=SPEC (e.g. rotate=30@0.5)")
            if name not in ORDER:
                raise ValueError(f"unknown augment op '{name}' (ops: {', '.join(ORDER)})")
            try:
                found = [_parse(name, spec)]
            except OpError as exc:
                raise ValueError(str(exc)) from None
        for op in found:
            if op.name in seen:
                raise ValueError(f"augment op '{op.name}' given twice")
            seen.add(op.name)
            ops.append(op)
    if not ops:
        raise ValueError("no augment op given (e.g. dihedral,rotate=30@0.5)")
    return ops


def as_ops(ops):
    """Op objects from Ops, or from a mapping {name: spec} in the command line's syntax
    (``{"hflip": 0.5, "rotate": "30@0.5"}``); :class:`OpError` (a ValueError) if one is bad."""
    if isinstance(ops, Op):
        return [ops]
    if isinstance(ops, dict):
        return [v if isinstance(v, Op) else _parse(k.replace("-", "_"), v) for k, v in ops.items()]
    ops = list(ops)
    for op in ops:
        if not isinstance(op, Op):
            raise TypeError(f"augment ops must be galtools.augment.Op objects, got {op!r}")
    return ops


class Augmenter:
    """Applies a set of ops to chunks of images (N×H×W×C) with per-image random parameters.

    ``ops``: :class:`Op` objects (or a mapping, see :func:`as_ops`), each name at most once;
    ``fill``: how rotate/scale/shift fill pixels from outside the image (reflect, nearest,
    constant, wrap).  Bad arguments raise ValueError here, not when images are augmented.
    """

    def __init__(self, ops, fill="reflect"):
        ops = as_ops(ops)
        self.ops = {}
        for op in ops:
            if op.name in self.ops:
                raise ValueError(f"augment op '{op.name}' given twice")
            self.ops[op.name] = op
        if "invert_grey" in self.ops and "greyscale" not in self.ops:
            raise ValueError("augment op 'invert_grey' inverts images made grey by 'greyscale'")
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
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

    def __call__(self, images, targets=None, rng=None, copy=True):
        """Augmented copies of ``images`` (and ``targets``); dtype is kept.  With
        ``copy=False`` float32 arrays the caller owns are augmented in place."""
        rng = rng if rng is not None else np.random.default_rng()
        dtype = images.dtype
        x = images.astype(np.float32, copy=copy)  # inputs are never modified unless asked
        t = targets.astype(np.float32, copy=copy) if targets is not None else None
        n, h, w = x.shape[:3]
        m_h, _ = self._draw(rng, "hflip", n)
        m_v, _ = self._draw(rng, "vflip", n)
        m_90, _ = self._draw(rng, "rot90", n)
        k90 = np.zeros(n, np.int64)  # quarter turns (only 180° for non-square stamps)
        if m_90.any():
            k90 = np.where(m_90, rng.integers(1, 4, n) if h == w else 2, 0)
        resampled = self._affine(x, t, rng, m_h, m_v, k90)
        # images that are not resampled get their flips and quarter turns as plain copies
        arrays = (x, t) if t is not None else (x,)
        for mask, axis in ((m_h & ~resampled, 2), (m_v & ~resampled, 1)):
            if mask.any():
                for arr in arrays:
                    arr[mask] = np.flip(arr[mask], axis=axis)
        for kk in (1, 2, 3):
            sel = (k90 == kk) & ~resampled
            if sel.any():
                for arr in arrays:
                    arr[sel] = np.rot90(arr[sel], kk, axes=(1, 2))
        self._photometric(x, rng, dtype)
        if dtype == np.uint8:
            x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
            if t is not None:
                t = np.clip(np.rint(t), 0, 255).astype(np.uint8)
        elif dtype != np.float32:
            x = x.astype(dtype)
            t = t.astype(dtype) if t is not None else None
        return x, t

    def _affine(self, x, t, rng, hflip, vflip, k90):
        """Rotation, scale and shift as one bilinear resampling per image, in place; the
        flips and quarter turns of those images are folded into the same coordinate map.
        Returns the mask of resampled images."""
        n, h, w, _ = x.shape
        m_rot, angle = self._draw(rng, "rotate", n)
        m_scale, scale = self._draw(rng, "scale", n)
        m_shift, _ = self._draw(rng, "shift", n)
        todo = m_rot | m_scale | m_shift
        if not todo.any():
            return todo
        op = self.ops.get("shift")
        dy = rng.uniform(op.lo, op.hi, n) if op else np.zeros(n)
        dx = rng.uniform(op.lo, op.hi, n) if op else np.zeros(n)
        theta = np.where(m_rot, np.deg2rad(angle if angle is not None else 0), 0.0)
        zoom = np.where(m_scale, scale if scale is not None else 1.0, 1.0)
        dy, dx = np.where(m_shift, dy, 0.0), np.where(m_shift, dx, 0.0)
        matrix, offset = affine_map(theta, zoom, dy, dx, hflip, vflip, k90)
        rows = np.flatnonzero(todo)
        step = max(1, 2**17 // (h * w))  # 2**17 pixels: ~8 MB of temporaries, cache-sized
        every = rows.size == n  # then take slices, not copies through fancy indexing
        for s in range(0, rows.size, step):
            idx = slice(s, min(s + step, n)) if every else rows[s : s + step]
            taps = _taps(_affine_coords(h, w, matrix[idx], offset[idx]), h, w, self.fill)
            for arr in (x, t) if t is not None else (x,):
                if every:  # write straight into the chunk
                    _gather(arr[idx], *taps, self.fill, out=arr[idx])
                else:
                    arr[idx] = _gather(arr[idx], *taps, self.fill)
        return todo

    def _photometric(self, x, rng, dtype):
        n = x.shape[0]
        eight_bit = dtype == np.uint8
        mask, sigma = self._draw(rng, "blur", n)
        if mask.any():
            levels = np.round(sigma * 10) / 10  # group images by blur to vectorise
            for level in np.unique(levels[mask]):
                sel = mask & (levels == level)
                if level > 0:
                    x[sel] = gaussian_blur(x[sel], level)
        mask, factor = self._draw(rng, "brightness", n)
        mask2, add = self._draw(rng, "offset", n)
        if mask.any():
            x *= _per_image(np.where(mask, factor, 1.0))
        if mask2.any():
            x += _per_image(np.where(mask2, add, 0.0))
        mask, gamma = self._draw(rng, "gamma", n)
        if mask.any():

            def apply_gamma(sub, g):  # in place: sub is x or a copy of its rows
                lo, hi = _value_range(sub, eight_bit)
                span = np.maximum(hi - lo, np.float32(1e-12))
                sub -= lo
                sub /= span
                np.clip(sub, 0, 1, out=sub)
                with np.errstate(divide="ignore"):  # v**g as 2**(g log2 v): 0 -> -inf -> 0
                    np.log2(sub, out=sub)
                sub *= _per_image(g)
                np.exp2(sub, out=sub)
                sub *= span
                sub += lo
                return sub

            _apply(x, mask, apply_gamma, gamma)
        mask, sigma = self._draw(rng, "noise", n)
        if mask.any():

            def add_noise(sub, s):
                noise = gaussian_noise(rng, sub.shape)
                noise *= _per_image(s)
                sub += noise
                return sub

            _apply(x, mask, add_noise, sigma)
        mask, _ = self._draw(rng, "invert", n)
        if mask.any():
            _apply(x, mask, lambda sub, _: _inverted(sub, eight_bit), None)
        mask, amount = self._draw(rng, "greyscale", n)
        if mask.any() and x.shape[-1] > 1:

            def grey(sub, a):
                a = _per_image(a)
                return (1 - a) * sub + a * sub.mean(axis=-1, keepdims=True)

            _apply(x, mask, grey, amount)
        grey_mask = mask
        mask, _ = self._draw(rng, "invert_grey", n)
        mask &= grey_mask
        if mask.any():  # inclinet: half of the greyscale images inverted
            _apply(x, mask, lambda sub, _: _inverted(sub, eight_bit), None)


def augment_images(images, ops=DEFAULT_OPS, *, targets=None, seed=0, fill="reflect"):
    """Augmented copies of N×H×W×C (or N×H×W) ``images``, the dtype kept; inputs unchanged.

    ``ops``: :class:`Op` objects or a mapping in the command line's syntax (see :func:`as_ops`;
    default: flips and quarter turns, as ``galprep augment``).  ``seed``: an int or a numpy
    Generator.  With ``targets`` (same shape) returns ``(images, targets)``, the targets given
    the same geometric transforms.
    """
    augmenter = Augmenter(ops, fill)
    images = np.asarray(images)
    flat = images.ndim == 3
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be N×H×W×C or N×H×W, got shape {images.shape}")
    if targets is not None:
        targets = np.asarray(targets)
        if targets.shape != images.shape:
            raise ValueError(f"targets shape {targets.shape} != images {images.shape}")
    if flat:
        images = images[..., None]
        targets = None if targets is None else targets[..., None]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    out, t = augmenter(images, targets, rng)
    if flat:
        out = out[..., 0]
        t = None if t is None else t[..., 0]
    return out if targets is None else (out, t)


def _per_image(values):
    """Per-image values shaped to broadcast over N×H×W×C (float32)."""
    return np.asarray(values, dtype=np.float32)[:, None, None, None]


def _apply(x, mask, fn, values):
    """x[mask] = fn(x[mask], values[mask]), without copies when every image is hit (``fn``
    may work in place and return its argument)."""
    if mask.all():
        out = fn(x, values)
        if out is not x:
            x[...] = out
    else:
        x[mask] = fn(x[mask], None if values is None else values[mask])


def _inverted(x, eight_bit):
    """Images mirrored in their value range (255 - v for 8-bit)."""
    lo, hi = _value_range(x, eight_bit)
    return (lo + hi) - x


def _value_range(x, eight_bit):
    """Per-image (lo, hi) broadcastable over N×H×W×C: 0–255 for 8-bit, else min/max."""
    if eight_bit:
        return np.float32(0), np.float32(255)
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    return lo, hi


def affine_map(theta, zoom, dy, dx, hflip=None, vflip=None, k90=None):
    """Per-image 2×2 matrices and offsets (n×2×2, n×2) taking centred output (row, col) to
    centred input coordinates: rotate by θ, scale by ``zoom``, shift by (dy, dx), after
    optional flips and quarter turns of the input (applied first: flips, then rot90 by k,
    as ``np.rot90(axes=(1, 2))`` does)."""
    n = np.size(theta)
    cos, sin = np.cos(theta) / zoom, np.sin(theta) / zoom
    matrix = np.empty((n, 2, 2))
    matrix[:, 0, 0], matrix[:, 0, 1] = cos, -sin
    matrix[:, 1, 0], matrix[:, 1, 1] = sin, cos
    offset = -np.einsum("nij,nj->ni", matrix, np.stack([dy, dx], axis=1))
    pre = np.tile(np.eye(2), (n, 1, 1))  # input-side map: quarter turn, then flips
    if k90 is not None:
        quarter = np.array(
            [[[1, 0], [0, 1]], [[0, 1], [-1, 0]], [[-1, 0], [0, -1]], [[0, -1], [1, 0]]], float
        )
        pre = quarter[np.asarray(k90) % 4]
    if vflip is not None:
        pre[:, 0] *= np.where(vflip, -1.0, 1.0)[:, None]
    if hflip is not None:
        pre[:, 1] *= np.where(hflip, -1.0, 1.0)[:, None]
    return pre @ matrix, np.einsum("nij,nj->ni", pre, offset)


def _affine_coords(h, w, matrix, offset):
    """Input (row, col) coordinates for every output pixel of each image: (2, M, H, W),
    float32.  Output pixel p maps from input c + matrix (p - c) + offset about the centre c.
    """
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy = (np.arange(h, dtype=np.float32) - cy)[None, :, None]
    xx = (np.arange(w, dtype=np.float32) - cx)[None, None, :]
    m = matrix.astype(np.float32)[:, :, :, None, None]
    o = (offset + [cy, cx]).astype(np.float32)[:, :, None, None]
    out = np.empty((2, len(matrix), h, w), np.float32)
    for i in range(2):
        np.multiply(m[:, i, 0], yy, out=out[i])
        out[i] += m[:, i, 1] * xx
        out[i] += o[:, i]
    return out


PAD = 2


def _fold(u, n, fill):
    """Map continuous coordinates onto [-0.5, n-0.5] (reflect), [0, n-1] (nearest),
    [0, n) (wrap) or clip them just beyond the zero border (constant).  ``u`` is reused."""
    if fill == "reflect":
        # mirror about -0.5, then about n - 0.5: (n - 0.5) - | n - |u + 0.5| |, in place
        u += np.float32(0.5)
        np.abs(u, out=u)
        if u.size and u.max() > 2 * n:  # far outside: reflect periodically
            np.mod(u, 2 * n, out=u)
        np.subtract(np.float32(n), u, out=u)
        np.abs(u, out=u)
        np.subtract(np.float32(n - 0.5), u, out=u)
        return u
    if fill == "nearest":
        return np.clip(u, 0, n - 1, out=u)
    if fill == "wrap":
        return np.mod(u, n, out=u)
    return np.clip(u, -1.5, n + 0.5, out=u)


def _resample(sub, coords, fill):
    """Bilinear resampling of M×H×W×C images at ``coords`` (2, M, H, W, consumed).

    The images are padded by two pixels (by the fill rule), coordinates folded inside, and the
    four neighbours of every output pixel gathered from each padded band with ``np.take``
    (one flat index array, moved in place between the taps): no Python loop over images,
    and cheaper than ``ndimage.map_coordinates`` on a stack (8 taps, float64 coords).
    """
    return _gather(sub, *_taps(coords, sub.shape[1], sub.shape[2], fill), fill)


def _taps(coords, h, w, fill):
    """Flat index of each output pixel's top-left neighbour in the padded M×(H+4)×(W+4)
    stack, and the fractional offsets (fy, fx); ``coords`` is reused for the latter."""
    m = coords.shape[1]
    rows = _fold(coords[0], h, fill)
    cols = _fold(coords[1], w, fill)
    rows += PAD
    cols += PAD
    whole = np.floor(rows)
    rows -= whole  # fractional parts (float32 throughout: int64 operands would mean float64)
    index = whole.astype(np.intp)
    np.floor(cols, out=whole)
    cols -= whole
    x0 = whole.astype(np.intp)
    del whole
    index += (np.arange(m, dtype=np.intp) * (h + 2 * PAD))[:, None, None]
    index *= w + 2 * PAD
    index += x0
    return index, rows, cols


def _gather(sub, index, fy, fx, fill, out=None):
    """Bilinear interpolation of ``sub`` from the taps of :func:`_taps` (index restored),
    into ``out`` (M×H×W×C) if given."""
    m, h, w, c = sub.shape
    w2 = w + 2 * PAD
    bands = _padded_bands(sub, fill).reshape(c, -1)
    top = np.take(bands, index, axis=1)  # (C, M, H, W): top-left neighbours
    index += 1
    right = np.take(bands, index, axis=1)
    right -= top
    right *= fx
    top += right  # interpolated along the top row
    index += w2
    bottom = np.take(bands, index, axis=1)
    index -= 1
    left = np.take(bands, index, axis=1)
    index -= w2
    bottom -= left
    bottom *= fx
    bottom += left  # along the bottom row
    bottom -= top
    bottom *= fy
    if out is None:
        top += bottom
        return np.moveaxis(top, 0, -1)
    np.add(top, bottom, out=np.moveaxis(out, -1, 0))
    return out


def _padded_bands(sub, fill):
    """C×M×(H+4)×(W+4) copy of M×H×W×C images, bordered by ``PAD`` pixels by the fill rule
    (one pass, instead of np.pad and a transposition)."""
    m, h, w, c = sub.shape
    if min(h, w) < PAD:
        mode = {"reflect": "symmetric", "nearest": "edge", "wrap": "wrap", "constant": "constant"}[
            fill
        ]
        padded = np.pad(sub, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)), mode=mode)
        return np.ascontiguousarray(np.moveaxis(padded, -1, 0))
    out = np.empty((c, m, h + 2 * PAD, w + 2 * PAD), sub.dtype)
    out[:, :, PAD : PAD + h, PAD : PAD + w] = np.moveaxis(sub, -1, 0)
    for axis, n in ((2, h), (3, w)):  # rows, then columns over the full height
        lead = (slice(None),) * axis

        def at(i, lead=lead):
            return lead + (i,)

        for k in range(PAD):
            if fill == "reflect":  # half-sample symmetric
                before, after = PAD + k, PAD + n - 1 - k
            elif fill == "nearest":
                before, after = PAD, PAD + n - 1
            elif fill == "wrap":
                before, after = PAD + n - 1 - k, PAD + k
            else:
                before = after = None
            if before is None:
                out[at(PAD - 1 - k)] = 0
                out[at(PAD + n + k)] = 0
            else:
                out[at(PAD - 1 - k)] = out[at(before)]
                out[at(PAD + n + k)] = out[at(after)]
    return out


def gaussian_blur(x, sigma, truncate=3.0):
    """Gaussian blur of N×H×W×C images along H and W, edges reflected (half-sample
    symmetric), as ``ndimage.gaussian_filter(mode='reflect')`` with the same truncation."""
    radius = int(truncate * sigma + 0.5)
    if radius < 1:
        return x.copy()
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = np.pad(x, pad, mode="symmetric")
        size = x.shape[axis]
        windows = [
            padded[(slice(None),) * axis + (slice(k, k + size),)] for k in range(2 * radius + 1)
        ]
        out = windows[0] * taps[0]
        for window, tap in zip(windows[1:], taps[1:]):
            out += window * tap
        x = out
    return x


def gaussian_noise(rng, shape):
    """Standard normal float32 samples by the Box–Muller transform, each pair from one
    64-bit draw (24 bits for the radius, 24 for the angle): about 2.5× numpy's float32
    ziggurat here.  With 24-bit uniforms |z| < 5.8."""
    size = int(np.prod(shape))
    half = (size + 1) // 2
    raw = rng.bit_generator.random_raw(half)
    radius = (raw >> np.uint64(40)).astype(np.float32)  # u in [0, 1): radius sqrt(-2 ln(1-u))
    radius *= np.float32(-(2.0**-24))
    np.log1p(radius, out=radius)
    radius *= np.float32(-2)
    np.sqrt(radius, out=radius)
    raw &= np.uint64(0xFFFFFF)
    angle = raw.astype(np.float32)
    del raw
    angle *= np.float32(2 * np.pi * 2.0**-24)
    out = np.empty(2 * half, np.float32)
    np.cos(angle, out=out[:half])
    np.sin(angle, out=out[half:])
    out[:half] *= radius
    out[half:] *= radius
    return out[:size].reshape(shape)


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
        raise ValueError(
            f"bins must be LO:HI:STEP with LO < HI, STEP > 0, or increasing "
            f"edges 'a,b,c', got {text!r}"
        ) from None
    return edges


CLOSED = ("left", "right")


def bin_name(edges, i, closed="left"):
    if closed == "right":
        return f"{'[' if i == 0 else '('}{edges[i]:g}, {edges[i + 1]:g}]"
    close = "]" if i == len(edges) - 2 else ")"
    return f"[{edges[i]:g}, {edges[i + 1]:g}{close}"


def bin_index(values, edges, closed="left"):
    """The bin of each value (-1 or len(edges) - 1 outside).  ``left``: bins [a, b) and the
    last [a, b]; ``right``: (a, b] and the first [a, b] (inclinet's convention)."""
    values = np.asarray(values, dtype=np.float64)
    if closed == "right":
        which = np.searchsorted(edges, values, side="left") - 1
        which[values == edges[0]] = 0
    else:
        which = np.searchsorted(edges, values, side="right") - 1
        which[values == edges[-1]] = len(edges) - 2
    return which


def uniform_bins(
    values, edges, per_bin, rng, allow_empty=False, column="label", path="", closed="left"
):
    """([rows of each non-empty bin, ``per_bin`` each], counts, rows outside the bins).

    A large bin gives a random subset; a small one every row ``per_bin // n`` times plus a
    random ``per_bin % n`` of them once more, so repeats differ by at most one."""
    values = np.asarray(values, dtype=np.float64)
    which = bin_index(values, edges, closed)
    inside = (which >= 0) & (which < len(edges) - 1) & np.isfinite(values)
    plan, counts, empty = [], [], []
    for b in range(len(edges) - 1):
        rows = np.flatnonzero(inside & (which == b))
        counts.append(int(rows.size))
        if rows.size == 0:
            empty.append(bin_name(edges, b, closed))
            continue
        if rows.size >= per_bin:
            chosen = rng.choice(rows, per_bin, replace=False)
        else:
            extra = rng.choice(rows, per_bin % rows.size, replace=False)
            chosen = np.concatenate([np.repeat(rows, per_bin // rows.size), extra])
        plan.append(chosen)
    if empty and not allow_empty:
        raise InputError(
            path,
            f"bin {empty[0]} of '{column}' is empty "
            f"({len(empty)} empty bin(s); use --allow-empty-bins)",
        )
    if not plan:
        raise InputError(
            path, f"no rows of '{column}' fall in the bins {edges[0]:g}..{edges[-1]:g}"
        )
    return plan, counts, int((~inside).sum())


def uniform_plan(
    values, edges, per_bin, rng, allow_empty=False, column="label", path="", closed="left"
):
    """Row indices (len = bins × per_bin, empty bins excepted) so that each bin of ``values``
    holds exactly ``per_bin`` rows (see :func:`uniform_bins`)."""
    plan, counts, outside = uniform_bins(
        values, edges, per_bin, rng, allow_empty, column, path, closed
    )
    return np.concatenate(plan), counts, outside


def batched_plan(bins_rows, batches, rng):
    """(plan, [(start, stop)] per batch): every batch holds ``per_bin / batches`` rows of every
    bin (sizes differ by at most one, spread over bins), shuffled within the batch."""
    parts = [[] for _ in range(batches)]
    for b, rows in enumerate(bins_rows):
        rows = rows[rng.permutation(rows.size)]
        base, rem = divmod(rows.size, batches)
        start = 0
        for k in range(batches):
            size = base + (1 if (k - b) % batches < rem else 0)
            parts[k].append(rows[start : start + size])
            start += size
    plan, bounds, start = [], [], 0
    for k in range(batches):
        part = np.concatenate(parts[k])
        plan.append(part[rng.permutation(part.size)])
        bounds.append((start, start + part.size))
        start += part.size
    return np.concatenate(plan), bounds


# ----------------------------------------------------------------------------- files


_READERS = {}


def _augment_task(path, rows, key, augmenter):
    """Read ``rows`` of ``path`` (reader cached per process) and augment them."""
    from galtools.arrayfile import open_galaxies

    reader = _READERS.get(path)
    if reader is None:
        reader = _READERS[path] = open_galaxies(path)
    batch = reader.take(rows)  # runs of nearby rows read as slices, repeats allowed
    images, targets = augmenter(
        batch["images"], batch.get("targets"), np.random.default_rng(key), copy=False
    )
    batch["images"] = images
    if targets is not None:
        batch["targets"] = targets
    return batch


def _close_readers():
    while _READERS:
        _READERS.popitem()[1].close()


def augment_file(
    path,
    output,
    augmenter,
    history,
    *,
    uniform=None,
    bins=None,
    per_bin=None,
    allow_empty=False,
    closed="left",
    copies=1,
    batches=None,
    fmt="h5",
    seed=0,
    shard=None,
    overwrite=False,
    compression=None,
    chunk_size=None,
    jobs=1,
):
    """Augment ``path`` into ``output`` (a file, or a folder of ``batches`` batch files).

    Chunks of the shuffled plan are read and augmented by ``jobs`` worker processes and
    written in order; chunk ``c`` of output ``k`` draws from ``default_rng([seed, k, c])``,
    so the result does not depend on ``jobs``.
    """
    from galtools.arrayfile import GalaxyWriter, check_output, container_of, open_galaxies
    from galtools.meta import derive
    from galtools.parallel import ordered_map
    from galtools.progress import progress, say
    from galtools.settings import Shard

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
            bins_rows, counts, outside = uniform_bins(
                values, bins, per_bin, rng, allow_empty, uniform, path, closed
            )
            plan = np.concatenate(bins_rows)
            per_file = ""
            if batches:
                lo, hi = per_bin // batches, -(-per_bin // batches)
                per_file = f" ({lo}{'' if lo == hi else f'–{hi}'} per bin in each batch file)"
            say(
                f"'{uniform}' bins: {' '.join(map(str, counts))} rows → {per_bin} each"
                + per_file
                + (f"; {outside} rows outside the bins" if outside else "")
            )
        else:
            plan = np.repeat(np.arange(reader.n), copies)
        image_shape = reader.image_shape
        meta_in = reader.meta
        row_bytes = (
            int(np.prod(image_shape)) * reader.dtype.itemsize * (2 if reader.has_targets else 1)
        )
    bounds = None
    if uniform and batches:
        plan, bounds = batched_plan(bins_rows, batches, rng)
    else:
        plan = plan[rng.permutation(plan.size)]
    info = {"ops": augmenter.describe(), "seed": seed, "rows": int(plan.size)}
    if uniform:
        info.update(
            uniform=uniform, bins=[float(e) for e in bins], per_bin=per_bin, bins_closed=closed
        )
    meta = derive(meta_in, dict(history, augment=info))
    size = chunk_size or max(1, WORK_BYTES // (int(np.prod(image_shape)) * 4))
    parts = []  # (output path, start, stop, key)
    if batches:
        for k in shard.select(list(range(batches))):
            start, stop = bounds[k] if bounds else Shard(k, batches).bounds(plan.size)
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
            tasks.append((path, plan[s : min(s + size, stop)], [seed, k, c], augmenter))
            owner.append(i)
    bar = progress(total=sum(j[2] - j[1] for j in todo), desc="augment")
    written, writer, current = {}, None, None
    try:
        for i, batch in zip(
            owner, ordered_map(_augment_task, tasks, jobs, shared_bytes=size * row_bytes)
        ):
            if i != current:
                if writer is not None:
                    writer.close()
                    written[writer.path] = writer.n
                writer, current = (
                    GalaxyWriter(todo[i][0], meta, overwrite, compression, inputs=[path]),
                    i,
                )
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
