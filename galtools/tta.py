"""Test-time augmentation: predictions averaged over the flips and quarter turns of a stamp.

A square stamp has eight such transforms (the dihedral group of the square), used in this
fixed order, the first K for ``--tta K``::

    identity, rot90, rot180, rot270, hflip, hflip∘rot90, vflip (= hflip∘rot180), hflip∘rot270

``rot90`` is ``np.rot90(x, 1, axes=(1, 2))`` (a quarter turn anticlockwise, row 0 at the top),
``hflip`` ``np.flip(x, axis=2)`` (left–right), ``vflip`` ``np.flip(x, axis=1)`` (top–bottom),
as the ops of the same names of ``galprep augment``; ``hflip∘rot90`` turns first, then flips.
A non-square stamp keeps its shape under four of them only, in this order: identity, rot180,
hflip, vflip.  Transforms are views of the batch, made for the whole batch at once.

A run may average over a transform only when its model says that the transform keeps its
labels valid: ``spec.augment_ops(config)`` names the ``galprep augment`` ops it allows, and
the transforms must be compositions of those among ``rot90``, ``hflip`` and ``vflip``.
"""

import numpy as np

from galtools.errors import GalError

MAX = 8
# (name, flips, quarter turns): the transform hflip^flips ∘ rot90^turns (the turns first)
TRANSFORMS = (
    ("identity", 0, 0),
    ("rot90", 0, 1),
    ("rot180", 0, 2),
    ("rot270", 0, 3),
    ("hflip", 1, 0),
    ("hflip∘rot90", 1, 1),
    ("vflip", 1, 2),
    ("hflip∘rot270", 1, 3),
)
# the galprep augment ops that are transforms of the group, as (flips, turns)
OPS = {"rot90": (0, 1), "hflip": (1, 0), "vflip": (1, 2)}


def plan(k, image_shape, where="images"):
    """The first ``k`` transforms (name, flips, turns) for stamps of ``image_shape``
    (H, W[, C]); a one-line GalError naming ``where`` when K does not fit the stamps."""
    if not 1 <= int(k) <= MAX:
        raise GalError(f"--tta takes 1 to {MAX} transforms, got {k}")
    h, w = image_shape[:2]
    if h == w:
        return TRANSFORMS[:k]
    keep = tuple(t for t in TRANSFORMS if t[2] % 2 == 0)
    if k > len(keep):
        raise GalError(
            f"{where}: stamps are {h}×{w}, not square: only {len(keep)} transforms keep "
            f"their shape ({', '.join(t[0] for t in keep)}), --tta {k} needs square stamps"
        )
    return keep[:k]


def apply(images, transform):
    """One transform (an entry of :data:`TRANSFORMS`) of an (N, H, W[, C]) batch, as a view."""
    _, flips, turns = transform
    x = np.rot90(images, turns, axes=(1, 2)) if turns else images
    return np.flip(x, axis=2) if flips else x


def transforms(images, k):
    """Yield the first ``k`` transforms of an (N, H, W[, C]) batch in the documented order
    (views of ``images``; four at most for non-square stamps)."""
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise GalError(f"expected N×H×W×C images, got shape {images.shape}")
    for t in plan(k, images.shape[1:]):
        yield apply(images, t)


def compose(a, b):
    """(flips, turns) of a∘b (b first), for a and b given as (flips, turns)."""
    return (a[0] + b[0]) % 2, ((-a[1] if b[0] else a[1]) + b[1]) % 4


def reachable(ops):
    """The (flips, turns) made by composing the transforms among ``ops`` (augment op names)."""
    gens = [OPS[name] for name in ops if name in OPS]
    got = {(0, 0)}
    while True:
        new = {compose(g, e) for g in gens for e in got} - got
        if not new:
            return frozenset(got)
        got |= new


def allowed_ops(run):
    """The augment ops the run's model allows (``spec.augment_ops(config)``; a spec that
    does not say allows the flips and quarter turns, as ModelSpec's default does)."""
    method = getattr(getattr(run, "spec", None), "augment_ops", None)
    return frozenset(method(run.config)) if callable(method) else frozenset(OPS)


def check_run(run, chosen):
    """GalError (one line) unless ``run``'s model keeps its labels under every transform of
    ``chosen`` (a :func:`plan`)."""
    ops = allowed_ops(run)
    have = reachable(ops)
    ok = [t[1:] in have for t in chosen]
    if all(ok):
        return
    turns = any(not t[1] for t, fine in zip(chosen, ok) if not fine)
    what, need = ("quarter turns", "rot90") if turns else ("flips", "hflip or vflip")
    fits = ok.index(False)
    allows = ", ".join(sorted(ops & set(OPS))) or "none of them"
    raise GalError(
        f"{run.path}: model {run.model_name}'s labels change under {what}; --tta "
        f"{len(chosen)} needs {need} among its augment ops (it allows {allows}; "
        f"--tta {fits} is the most it takes)"
    )


def predictions(predict, images, k):
    """(K, N, ...) float64: ``predict`` of each of the first ``k`` transforms of ``images``,
    one transform at a time (memory: one transformed copy of the batch at most)."""
    return np.stack([np.asarray(predict(x), np.float64) for x in transforms(images, k)])
