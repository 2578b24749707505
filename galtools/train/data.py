"""Training data streamed from galaxy array files: survey, batch plan, prefetching producer.

The plan is a pure function of (file sizes, batch size, seed): pass ``p`` visits every DATA
file in order, ``--epochs`` times each; one such visit (a *segment*) reads the file chunk by
chunk in a seeded random chunk order, shuffles inside each chunk and cuts batches of exactly
``batch_size`` images (the last batch of a short chunk wraps around inside that chunk), so a
segment has ``ceil(n / batch_size)`` steps.  Because the plan is computed, resuming at step
``s`` skips to it without reading anything before it.  With ``--mix FILE --alpha a`` each step
is, with probability ``a``, drawn from FILE's own endless plan instead; the DATA plan then
advances only on the other steps.

:class:`Producer` turns the plan into ``(x, y)`` batches ahead of the training loop (a thread,
reading threads); under data-parallel training each process takes its own part of every
global batch of the same plan and reads only those rows.
"""

import collections
import queue
import threading
from dataclasses import dataclass, field

import numpy as np

from galtools.arrayfile import CHUNK_BYTES, open_galaxies
from galtools.errors import GalError, InputError

# ------------------------------------------------------------------------------ label scaling


def minmax(values, path="?", name="?"):
    """{"lo", "hi"} of a label column; NaN or infinite values are an error."""
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise InputError(path, f"label column '{name}' has {int(bad.sum())} NaN/infinite values")
    return float(values.min()), float(values.max())


def to_unit(values, scale):
    """Map [lo, hi] linearly onto [-1, 1] (the range of a tanh output)."""
    lo, hi = scale["lo"], scale["hi"]
    span = (hi - lo) or 1.0
    return (2.0 * (np.asarray(values, np.float64) - lo) / span - 1.0).astype(np.float32)


def from_unit(values, scale):
    lo, hi = scale["lo"], scale["hi"]
    span = (hi - lo) or 1.0
    return lo + (np.asarray(values, np.float64) + 1.0) * span / 2.0


# ------------------------------------------------------------------------------------ survey


@dataclass
class DataInfo:
    """What the training files hold (read from their headers and 1-D columns only)."""

    paths: list
    sizes: list
    image_shape: tuple
    dtype: object
    bands: list
    label_names: list
    classes: dict
    has_targets: bool
    extra: dict = field(default_factory=dict)

    @property
    def n(self):
        return sum(self.sizes)


def survey(paths, what="DATA"):
    """Open every file once: sizes, common image shape, bands, labels; errors name the file."""
    if not paths:
        raise GalError(f"no {what} files given")
    sizes, shape, first = [], None, None
    for path in paths:
        with open_galaxies(path) as reader:
            if reader.n == 0:
                raise InputError(path, "holds no images")
            if shape is None:
                shape, first = reader.image_shape, reader
                dtype, bands = reader.dtype, reader.bands
                labels, classes = list(reader.label_names), dict(reader.classes)
                targets = reader.has_targets
            elif reader.image_shape != shape:
                raise InputError(
                    path,
                    f"images are {_shape(reader.image_shape)} but {first.path} has {_shape(shape)}",
                )
            else:
                labels = [x for x in labels if x in reader.label_names]
                targets = targets and reader.has_targets
            sizes.append(reader.n)
    return DataInfo(
        list(map(str, paths)),
        sizes,
        tuple(shape),
        np.dtype(dtype),
        list(bands),
        labels,
        classes,
        targets,
    )


def _shape(shape):
    return "×".join(str(v) for v in shape)


def column_range(paths, name):
    """(lo, hi) of column ``name`` over all files (1-D columns are small); NaN is an error."""
    lo, hi = np.inf, -np.inf
    for path in paths:
        with open_galaxies(path) as reader:
            if name not in reader.label_names:
                known = ", ".join(reader.label_names) or "none"
                raise InputError(path, f"no label column '{name}' (label columns: {known})")
            a, b = minmax(reader.column(name), path, name)
            lo, hi = min(lo, a), max(hi, b)
    return lo, hi


def column_values(paths, name):
    """Sorted distinct values of a (class) column over all files, and the file's class names."""
    values, names = set(), None
    for path in paths:
        with open_galaxies(path) as reader:
            if name not in reader.label_names:
                known = ", ".join(reader.label_names) or "none"
                raise InputError(path, f"no label column '{name}' (label columns: {known})")
            col = reader.column(name)
            if col.dtype.kind == "f" and not np.isfinite(col).all():
                raise InputError(path, f"label column '{name}' has NaN/infinite values")
            values.update(np.unique(col).tolist())
            names = names or reader.classes.get(name)
    return sorted(values), names


def sample_pixels(path, sample=1024):
    """The pixels of the first ``sample`` images of ``path`` as (pixels, bands) float64: what
    every model's pixel scaling is measured on (InputError for NaN/infinite pixels)."""
    with open_galaxies(path) as reader:
        images = reader.read(0, sample, ["images"])["images"].astype(np.float64)
    pixels = images.reshape(-1, images.shape[-1])
    if not np.isfinite(pixels).all():
        raise InputError(path, "images hold NaN or infinite pixels")
    return pixels


def robust_noise(pixels, offset):
    """Per-band robust spread of ``pixels`` about ``offset``: 1.4826 × the median absolute
    deviation (the sky noise of stamps that are mostly sky)."""
    return 1.4826 * np.median(np.abs(pixels - offset), axis=0)


def image_norm(path, mode="std", sample=1024):
    """Per-band {"offset", "scale"} from the first ``sample`` images of ``path``.

    ``std``: median and standard deviation (inputs of regressors/classifiers/denoisers);
    ``range``: median and the 99.9th percentile of |x - median| (a tanh generator's range).
    """
    pixels = sample_pixels(path, sample)
    offset = np.median(pixels, axis=0)
    if mode == "range":
        scale = np.percentile(np.abs(pixels - offset), 99.9, axis=0)
    else:
        scale = pixels.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return {"offset": offset.tolist(), "scale": scale.tolist()}


# ------------------------------------------------------------------------------ x, y of a step


def columns_needed(config):
    return [c["name"] for c in config.get("columns", [])]


def fields_needed(config):
    fields = ["images"] + columns_needed(config)
    if config["task"] == "denoise":
        fields.append("targets")
    return fields


def xy(batch, config, path="?"):
    """(x, y) for ``train_on_batch`` from a batch dict, by the run's column specs."""
    x = batch["images"].astype(np.float32, copy=False)
    if config["task"] == "denoise":
        return x, batch["targets"].astype(np.float32, copy=False)
    cols = config.get("columns", [])
    if not cols:
        return x, None
    ys = []
    for col in cols:
        value = batch[col["name"]]
        kind = col["kind"]
        if kind == "class":
            lookup = {v: i for i, v in enumerate(col["values"])}
            try:
                ys.append(np.array([lookup[v] for v in value.tolist()], np.int32))
            except KeyError as exc:
                raise InputError(
                    path, f"column '{col['name']}' has class {exc} unseen in training"
                ) from None
        elif kind == "binary":
            v = np.asarray(value).astype(np.float32)
            if not np.isin(v, (0.0, 1.0)).all():
                raise InputError(path, f"column '{col['name']}' must hold 0/1 values")
            ys.append(v)
        else:
            v = np.asarray(value, np.float64)
            if not np.isfinite(v).all():
                raise InputError(path, f"label column '{col['name']}' has NaN/infinite values")
            ys.append(to_unit(v, col) if kind == "scaled" else v.astype(np.float32))
    if len(ys) == 1 and cols[0]["kind"] == "class":
        return x, ys[0]
    return x, np.stack(ys, axis=1).astype(np.float32)


# -------------------------------------------------------------------------------------- plan


def chunk_images(image_shape, dtype, batch_size):
    """Images per read: ~CHUNK_BYTES, a whole number of batches."""
    per = int(np.prod(image_shape)) * np.dtype(dtype).itemsize
    batches = max(1, CHUNK_BYTES // max(per * batch_size, 1))
    return batches * batch_size


def segment_steps(n, batch_size):
    return -(-n // batch_size)


def segment_batches(n, batch_size, chunk, rng, start=0):
    """Yield (rows (sorted), order) for each batch of a segment from batch ``start`` on.

    ``rows``: the contiguous [lo, hi) range to read (one chunk); ``order``: indices into it.
    """
    n_chunks = -(-n // chunk)
    order = rng.permutation(n_chunks)
    perms = [rng.permutation(min(chunk, n - c * chunk)) for c in range(n_chunks)]
    step = 0
    for c in order:
        lo, hi = c * chunk, min(n, (c + 1) * chunk)
        count = segment_steps(hi - lo, batch_size)
        if step + count <= start:
            step += count
            continue
        perm = perms[c]
        if len(perm) % batch_size:
            perm = np.resize(perm, count * batch_size)  # wrap: every batch is full
        for b in range(count):
            if step >= start:
                yield (lo, hi), perm[b * batch_size : (b + 1) * batch_size]
            step += 1


def mix_flags(main_steps, alpha, seed):
    """Boolean flags per global step: True = from the --mix file; ends with the main plan."""
    if not alpha:
        return np.zeros(main_steps, bool)
    rng = np.random.default_rng([seed, 0x6D6978])
    parts, main = [], 0
    while main < main_steps:
        draw = rng.random(max(1024, main_steps)) < alpha
        need = main_steps - main
        cum = np.cumsum(~draw)
        if cum[-1] >= need:
            draw = draw[: int(np.searchsorted(cum, need)) + 1]
        parts.append(draw)
        main += int((~draw).sum())
    return np.concatenate(parts)


@dataclass
class Plan:
    """The global step plan of a training run."""

    info: DataInfo
    batch_size: int
    passes: int
    epochs: int
    seed: int
    mix: DataInfo = None
    alpha: float = 0.0

    def __post_init__(self):
        self.segments = []  # (pass, file index, epoch, steps)
        for p in range(self.passes):
            for i, n in enumerate(self.info.sizes):
                for e in range(self.epochs):
                    self.segments.append((p, i, e, segment_steps(n, self.batch_size)))
        self.main_steps = sum(s[3] for s in self.segments)
        self.flags = mix_flags(self.main_steps, self.alpha if self.mix else 0.0, self.seed)
        self.total = len(self.flags)
        self.chunk = chunk_images(self.info.image_shape, self.info.dtype, self.batch_size)

    def segment_ends(self):
        """Global step after which each segment (pass, file, epoch) ends."""
        main_done = np.cumsum(~self.flags)
        out, acc = [], 0
        for seg in self.segments:
            acc += seg[3]
            out.append((int(np.searchsorted(main_done, acc)) + 1, seg))
        return out

    def pass_ends(self):
        ends = {}
        for step, seg in self.segment_ends():
            ends[seg[0]] = step
        return ends

    def _main(self, start):
        """(path, (lo, hi), order, segment) for main batches from main batch ``start``."""
        acc = 0
        for seg in self.segments:
            p, i, e, steps = seg
            if acc + steps <= start:
                acc += steps
                continue
            rng = np.random.default_rng([self.seed, p, i, e])
            for rows, order in segment_batches(
                self.info.sizes[i], self.batch_size, self.chunk, rng, start=max(0, start - acc)
            ):
                yield self.info.paths[i], rows, order, seg
            acc += steps

    def _mix(self, start):
        n = self.mix.sizes[0]
        steps = segment_steps(n, self.batch_size)
        e, skip = divmod(start, steps)
        while True:
            rng = np.random.default_rng([self.seed, 0x6D6978, e])
            for rows, order in segment_batches(n, self.batch_size, self.chunk, rng, skip):
                yield self.mix.paths[0], rows, order, None
            e, skip = e + 1, 0

    def batches(self, start=0):
        """Yield (step, path, rows, order, segment) from global step ``start``."""
        n_mix = int(self.flags[:start].sum())
        main = self._main(start - n_mix)
        mix = self._mix(n_mix) if self.mix is not None else None
        for step in range(start, self.total):
            path, rows, order, seg = next(mix) if self.flags[step] else next(main)
            yield step, path, rows, order, seg


class _Readers:
    """Open files of one thread: the two most recently used stay open."""

    def __init__(self):
        self.open = {}

    def get(self, path):
        reader = self.open.pop(path, None)
        if reader is None:
            if len(self.open) >= 2:  # many batch files: keep few handles open
                self.open.pop(next(iter(self.open))).close()
            reader = open_galaxies(path)
        self.open[path] = reader  # most recently used last
        return reader

    def close(self):
        for reader in self.open.values():
            reader.close()
        self.open = {}


class OnTheFly:
    """``train-batch --augment``: ``galprep augment``'s ops on every batch as it is made
    (off the training thread), drawn from (seed, step) so that a continued run sees exactly
    the batches of an unbroken one.  Among data-parallel processes each draws for its part
    of the batch (seed, step, part): such a run repeats itself with as many processes, not
    with another count.  Denoisers move their clean targets with the images."""

    def __init__(self, text, seed, task, part=(0, 1)):
        from galtools.augment import Augmenter, parse_ops

        self.augmenter = Augmenter(parse_ops(text))
        self.seed, self.denoise = int(seed), task == "denoise"
        self.part = tuple(part) if part[1] > 1 else ()

    def __call__(self, step, x, y):
        rng = np.random.default_rng([self.seed, 0x61756720, step, *self.part])
        if self.denoise:
            return self.augmenter(x, y, rng=rng)
        return self.augmenter(x, rng=rng)[0], y


def check_augment(spec, text, config):
    """GalError unless every op of ``text`` parses and keeps the model's labels valid
    (``spec.augment_ops(config)``)."""
    from galtools.augment import parse_ops

    try:
        ops = parse_ops(text)
    except ValueError as exc:
        raise GalError(f"--augment: {exc}") from None
    keeps = spec.augment_ops(config)
    bad = [op.name for op in ops if op.name not in keeps]
    if bad:
        raise GalError(
            f"--augment {bad[0]}: model {spec.name} does not keep its labels valid under it "
            f"(its ops: {', '.join(sorted(keeps)) or 'none'})"
        )
    return ops


class Producer:
    """The batches of a plan as ``(step, path, segment, x, y, rows)``, made ahead of the
    training loop.

    ``prefetch``: batches a background thread keeps ready (0: no thread; each batch is made in
    the caller's thread when it is asked for).  ``part``: ``(index, count)``: this process's
    share of every global batch under data-parallel training, positions
    ``[index * b, (index + 1) * b)`` of the batch (``b = batch_size / count``); the process
    then reads only those rows (``reader.take``), never the others'.  ``workers``: threads
    reading ahead in parallel (chunks, or each batch's rows for a part), each with its own file
    handles.  ``rows``: the file rows of the batch (of the part), in batch order.
    ``augment``: an :class:`OnTheFly` applied to each batch as it is made.

    Everything is a function of the plan: ``prefetch``, ``workers`` and the process's part
    change what is read when, never what a step gets.
    """

    def __init__(self, plan, config, start=0, prefetch=4, part=(0, 1), workers=1, augment=None):
        self.plan, self.config, self.start = plan, config, start
        self.augment = augment
        self.fields = fields_needed(config)
        self.index, self.count = part
        if plan.batch_size % self.count:
            raise GalError(f"batch size {plan.batch_size} does not divide into {self.count} parts")
        self.workers = max(1, int(workers))
        self.prefetch = max(0, int(prefetch))
        self.stop = threading.Event()
        self._locals = threading.local()
        self._all_readers = []
        self._lock = threading.Lock()
        self.thread = None
        if self.prefetch:
            self.queue = queue.Queue(maxsize=self.prefetch)
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    # -------------------------------------------------------------------------- reading

    def _reader(self, path):
        readers = getattr(self._locals, "readers", None)
        if readers is None:
            readers = self._locals.readers = _Readers()
            with self._lock:
                self._all_readers.append(readers)
        return readers.get(path)

    def _chunk(self, key):
        path, (lo, hi) = key
        return self._reader(path).read(lo, hi, self.fields)

    def _rows(self, path, rows):
        return self._reader(path).take(rows, self.fields)

    def _part(self, order):
        b = len(order) // self.count
        return order[self.index * b : (self.index + 1) * b]

    def _jobs(self):
        """(step, path, seg, rows, job) in plan order; ``job`` says what to read."""
        for step, path, rows, order, seg in self.plan.batches(self.start):
            if self.count > 1:
                mine = rows[0] + self._part(order)
                yield step, path, seg, mine, ("take", path, mine)
            else:
                job = ("chunk", (path, rows), seg is None, order)
                yield step, path, seg, rows[0] + order, job

    def _made(self):
        """(step, path, seg, x, y, rows) in plan order, reading up to ``workers`` ahead."""
        pool = None
        if self.workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(self.workers, thread_name_prefix="galtools-read")

        def submit(fn, *args):
            if pool is None:
                return _Done(fn, args)
            return pool.submit(fn, *args)

        cached = {}  # stream (main / --mix) → (key, chunk or its future)

        def fetch(job):
            if job[0] == "take":
                return submit(self._rows, job[1], job[2])
            _, key, stream, order = job
            held = cached.get(stream)
            if held is None or held[0] != key:  # a stream never returns to a chunk it left
                held = cached[stream] = (key, submit(self._chunk, key))
            return _Cut(held[1], order)

        ahead = _window(self.plan, self.count, self.workers)
        window = collections.deque()  # (step, path, seg, rows, pending) planned ahead
        jobs = self._jobs()
        try:
            while True:
                while len(window) < ahead:
                    job = next(jobs, None)
                    if job is None:
                        break
                    window.append((*job[:4], fetch(job[4])))
                if not window:
                    return
                step, path, seg, rows, pending = window.popleft()
                if self.stop.is_set():
                    return
                x, y = xy(pending.result(), self.config, path)
                if self.augment is not None:
                    x, y = self.augment(step, x, y)
                yield step, path, seg, x, y, rows
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------------- delivery

    def _run(self):
        try:
            for item in self._made():
                if self.stop.is_set():
                    return
                self._put(item)
            self._put(None)
        except BaseException as exc:  # hand every failure to the training loop
            self._put(exc)
        finally:
            self._close_readers()

    def _put(self, item):
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def __iter__(self):
        self._iterating = self._iterate()
        return self._iterating

    def _iterate(self):
        if self.thread is None:
            try:
                yield from self._made()
            finally:
                self._close_readers()
            return
        while True:
            item = self.queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _close_readers(self):
        with self._lock:
            readers, self._all_readers = self._all_readers, []
        for r in readers:
            r.close()

    def close(self):
        """Stop reading; the files are closed once no read is under way."""
        self.stop.set()
        iterating = getattr(self, "_iterating", None)
        if iterating is not None:  # a suspended read: its worker pool finishes first
            iterating.close()
        if self.thread is not None:
            self.thread.join(timeout=10)
            if self.thread.is_alive():  # still in a read: the thread closes them after it
                return
        self._close_readers()


def _window(plan, count, workers):
    """Batches planned ahead: enough to keep ``workers`` chunk (or batch) reads in flight."""
    if workers <= 1:
        return 1
    if count > 1:
        return 2 * workers
    per_chunk = max(1, plan.chunk // plan.batch_size)
    return per_chunk * workers + 1


class _Done:
    """A read done at once (no worker threads), with a future's ``result()``."""

    def __init__(self, fn, args):
        self.fn, self.args, self.value, self.done = fn, args, None, False

    def result(self):
        if not self.done:
            self.value, self.done = self.fn(*self.args), True
        return self.value


class _Cut:
    """One batch of a chunk that is being read: ``result()`` → the batch's fields."""

    def __init__(self, chunk, order):
        self.chunk, self.order = chunk, order

    def result(self):
        data = self.chunk.result()
        return {k: v[self.order] for k, v in data.items()}
