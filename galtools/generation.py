"""Sampling galaxy images from trained generative runs (GANs, diffusion models).

Images are generated in batches, each from its own seed derived from ``(seed, batch number)``,
and streamed to the output.  Runs of a model that takes conditions get them in physical units,
either fixed (``redshift=0.3``) or drawn row by row from a catalog or from an array file's label
columns; the conditions are stored as label columns of the output.  With a score threshold (a
run that also scores images, or a separate scorer run) only images scoring above it are kept,
and generation stops when N are kept or after a limit on tries.  What a run can do is asked of
its abilities (:attr:`galtools.runs.Run.abilities`), never of its model's name.  A model that
samples itself in several steps (a diffusion model) takes sampler settings (``--steps``,
``--guidance``), checked by the run before anything is written; a GAN takes none.
"""

import os
import re
from collections import deque

import numpy as np

from galtools.errors import GalError, InputError

MONTAGE_COUNT = 36
TRIES_PER_IMAGE = 20


def parse_conditions(text):
    """'redshift=0.3,log_mass=10.5' → {'redshift': 0.3, 'log_mass': 10.5}."""
    out = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        m = re.fullmatch(r"([A-Za-z_][\w.]*)\s*=\s*(\S+)", part)
        if not m:
            raise GalError(f"--condition: '{part}' is not NAME=VALUE")
        try:
            value = float(m.group(2))
        except ValueError:
            raise GalError(f"--condition: '{m.group(2)}' is not a number") from None
        if not np.isfinite(value):
            raise GalError(f"--condition: {m.group(1)} must be finite")
        if m.group(1) in out:
            raise GalError(f"--condition: {m.group(1)} given twice")
        out[m.group(1)] = value
    if not out:
        raise GalError("--condition: give NAME=VALUE[,NAME=VALUE...]")
    return out


def read_condition_table(path, names):
    """Columns ``names`` of a catalog (CSV/FITS/text) or of a galaxy array file's labels."""
    from galtools.arrayfile import H5_SUFFIXES, NPZ_SUFFIXES, open_galaxies

    lower = os.fspath(path).lower()
    if path == "-" or lower.endswith(H5_SUFFIXES + NPZ_SUFFIXES):
        with open_galaxies(path) as reader:
            missing = [n for n in names if n not in reader.label_names]
            if missing:
                raise InputError(
                    reader.path,
                    f"no label column {', '.join(missing)} "
                    f"(label columns: {', '.join(reader.label_names) or 'none'})",
                )
            columns = reader.labels(names)
            where = reader.path
    else:
        from galtools.catalog import read_table

        if not os.path.isfile(path):
            raise InputError(path, "no such file")
        table = read_table(path)
        known = [c.strip() for c in table.colnames]
        missing = [n for n in names if n not in known]
        if missing:
            raise InputError(path, f"no column {', '.join(missing)} (columns: {', '.join(known)})")
        columns = {n: np.asarray(table[table.colnames[known.index(n)]]) for n in names}
        where = path
    out = {}
    for name, values in columns.items():
        if values.dtype.kind not in "iuf":
            raise InputError(where, f"column '{name}' is not numeric")
        values = values.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise InputError(where, f"row {bad[0] + 1} has no value for '{name}'")
        out[name] = values
    if out and len(next(iter(out.values()))) == 0:
        raise InputError(where, "no rows")
    return out


class Conditions:
    """The condition values of output row i: fixed ones and rows of a table (cycled)."""

    def __init__(self, run, fixed=None, table=None):
        fixed, table = dict(fixed or {}), dict(table or {})
        names = list(run.conditions or [])
        given = list(fixed) + list(table)
        if not names and given:
            raise GalError(
                f"{run.path}: a {run.model_name} run takes no conditions (got {', '.join(given)})"
            )
        unknown = [g for g in given if g not in names]
        if unknown:
            raise GalError(
                f"{run.path}: unknown condition {', '.join(unknown)} (the run knows "
                f"{', '.join(names)})"
            )
        both = set(fixed) & set(table)
        if both:
            raise GalError(
                f"condition {', '.join(sorted(both))} given by --condition and --conditions-from"
            )
        missing = [n for n in names if n not in given]
        if missing:
            raise GalError(
                f"{run.path}: give condition {', '.join(missing)} (--condition "
                f"{','.join(n + '=VALUE' for n in names)} or --conditions-from FILE)"
            )
        self.names, self.fixed, self.table = names, fixed, table
        self.rows = len(next(iter(table.values()))) if table else None

    def __bool__(self):
        return bool(self.names)

    def values(self, index):
        """{name: (len(index),) values} for output rows ``index``."""
        index = np.asarray(index, np.int64)
        out = {}
        for name in self.names:
            if name in self.fixed:
                out[name] = np.full(index.shape, self.fixed[name], np.float64)
            else:
                out[name] = self.table[name][index % self.rows]
        return out


def batch_seed(seed, batch):
    """The seed of batch number ``batch`` (any int seed, reproducible)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(batch)]).generate_state(1)[0])


def check_gan(run):
    """GalError unless ``run`` generates images."""
    if "generates" not in run.abilities:
        from galtools.models import able

        what = f"{run.model_name} {run.task} run"
        if run.target:
            what += f" predicting '{run.target}'"
        raise GalError(
            f"{run.path}: a {what}, which does not generate images (generate needs a run of "
            f"{able('generates')})"
        )


def check_scorer(scorer, image_shape):
    from galtools.scoring import check_image_shape

    if "scores" not in scorer.abilities:
        from galtools.models import able

        raise GalError(
            f"{scorer.path}: a {scorer.model_name} run cannot score images (use a run of "
            f"{able('scores')})"
        )
    check_image_shape(scorer, image_shape, "generated images")


def generate_file(
    run,
    n,
    output,
    history,
    seed=0,
    batch_size=256,
    conditions=None,
    min_score=None,
    scorer=None,
    max_tries=None,
    montage=None,
    overwrite=False,
    compression=None,
    sampler=None,
):
    """Write ``n`` images sampled from GAN ``run`` to ``output``; returns a summary dict.

    ``conditions``: a :class:`Conditions` (runs that take conditions).  ``scorer`` (by default
    the run itself when it scores images) scores every image into ``score``/``p_real`` columns;
    ``min_score`` keeps only images scoring above it, trying at most ``max_tries`` images
    (default 20·n).  ``montage``: PNG of the first images.  ``sampler``: settings of a model
    that samples itself (``{"steps": 40, "guidance": 2.0}``; see :meth:`Run.sampler_options`).
    """
    from galtools.arrayfile import GalaxyWriter
    from galtools.meta import new_meta
    from galtools.montage import save_montage
    from galtools.outputs import Outputs
    from galtools.progress import progress

    check_gan(run)
    if n < 1:
        raise GalError("-n must be at least 1")
    options = run.sampler_options(sampler)
    conditions = conditions if conditions is not None else Conditions(run)
    if scorer is None and "scores" in run.abilities:
        scorer = run
    if min_score is not None and scorer is None:
        from galtools.models import able

        raise GalError(
            f"{run.path}: a {run.model_name} run has no score: --min-score needs "
            f"--scorer RUN (a run of {able('scores')})"
        )
    if scorer is not None:
        check_scorer(scorer, run.input_shape)
    max_tries = max_tries or TRIES_PER_IMAGE * n
    config = run.config or {}
    meta = new_meta(
        bands=config.get("bands"),
        pixel_scale=config.get("pixel_scale"),
        history=[history],
        generated_by=str(run.path),
    )
    outs = Outputs(overwrite, [run.path] + ([scorer.path] if scorer is not None else []))
    outs.check(output, montage)
    todo = deque(range(n))
    kept, tries, best, batch_no = 0, 0, -np.inf, 0
    first, captions = [], []
    bar = progress(total=n, desc="generate")
    with outs, GalaxyWriter(output, meta, overwrite, compression, inputs=outs.inputs) as writer:
        while todo:
            limited = min_score is not None
            if limited and tries >= max_tries:
                raise GalError(
                    f"only {kept} of {n} images scored above {min_score:g} in "
                    f"{tries} tries (best score {best:.3g}); lower --min-score or "
                    "raise --max-tries"
                )
            m = min(batch_size, len(todo), max_tries - tries if limited else len(todo))
            rows = np.array([todo.popleft() for _ in range(m)])
            cond = conditions.values(rows) if conditions else None
            images = np.asarray(
                run.generate(
                    m,
                    seed=batch_seed(seed, batch_no),
                    conditions=cond,
                    batch_size=batch_size,
                    **options,
                )
            )
            batch_no += 1
            tries += m
            if images.shape[0] != m:
                raise GalError(f"{run.path}: generated {images.shape[0]} images, asked {m}")
            batch = {"images": images.astype(np.float32)}
            if cond:
                batch.update(cond)
            if scorer is not None:
                scores = scorer.score(images)
                batch["score"] = np.asarray(scores["score"], np.float64)
                if "p_real" in scores:
                    batch["p_real"] = np.asarray(scores["p_real"], np.float64)
                best = max(best, float(batch["score"].max()))
                if min_score is not None:
                    keep = batch["score"] > min_score
                    todo.extendleft(rows[~keep][::-1].tolist())
                    batch = {k: v[keep] for k, v in batch.items()}
            if len(batch["images"]):
                writer.append(batch)
                kept += len(batch["images"])
                bar.update(len(batch["images"]))
                if len(first) < MONTAGE_COUNT:
                    take = MONTAGE_COUNT - len(first)
                    first.extend(batch["images"][:take])
                    captions.extend(_captions(batch, conditions.names, take))
        bar.close()
        if montage:
            h = first[0].shape[0]
            save_montage(
                outs.add(montage, ".png"),
                np.stack(first),
                bands=config.get("bands"),
                scale=max(1, 128 // max(h, 1)),
                captions=captions if any(captions) else None,
            )
    return {
        "n": kept,
        "tries": tries,
        "batches": batch_no,
        "output": str(output),
        "acceptance": kept / tries if tries else None,
    }


def _captions(batch, names, count):
    """Stamp captions for a montage: the conditions and the score of each image."""
    keys = [k for k in list(names) + ["score"] if k in batch]
    return [
        " ".join(f"{k}={batch[k][i]:.3g}" for k in keys)
        for i in range(min(count, len(batch["images"])))
    ]
