"""From folders of survey cut-outs (or an array file) to a galaxy array file of equal stamps.

Used by ``galprep resize`` and ``galprep compress``.  Files are grouped into objects (band
files stacked), split into chunks decoded by a pool of worker processes, and the results are
written in order, chunk by chunk, so memory stays flat whatever the number of images.
"""

import csv
import os
from dataclasses import dataclass

import numpy as np

from galtools import imageio
from galtools.arrayfile import GalaxyWriter, container_of
from galtools.atomic import AtomicPath, atomic_open, check_output
from galtools.errors import GalError, InputError
from galtools.meta import new_meta
from galtools.progress import detail, progress, say

ITEMS_PER_TASK = 64


@dataclass
class Decode:
    """What a worker needs to turn an item into a stamp."""

    geometry: imageio.Geometry
    bands: object = None
    dtype: str = "uint8"
    nan_fill: float = None
    same_size: bool = False  # compress: sizes must agree, no resizing
    root: str = None  # keep only files named <id>_<root>_<band> (inclinet's -r)
    channel_order: str = "wavelength"  # or "file": a colour file's R, G, B as stored


def decode_chunk(items, decode):
    """[(index, 'ok', array, names) | (index, 'bad', path, reason)] for a chunk of items."""
    out = []
    for index, item in items:
        try:
            image, names = imageio.load_item(
                item,
                decode.geometry,
                decode.bands,
                decode.dtype,
                decode.nan_fill,
                decode.channel_order == "file",
            )
            out.append((index, "ok", image, names))
        except InputError as exc:
            out.append((index, "bad", exc.path, exc.problem))
    return out


def _run_chunks(chunks, decode, jobs):
    """Yield decode_chunk results in order, with at most 4×jobs (small) chunks in flight."""
    from galtools.parallel import ordered_map

    if jobs > 1 and len(chunks) > 1:
        from PIL import Image

        Image.preinit()  # image plugins imported once here, inherited by the forked workers
    yield from ordered_map(
        decode_chunk, [(chunk, decode) for chunk in chunks], jobs, window=4 * jobs
    )


class FolderWriter:
    """Writes stamps into a new folder that appears (atomically renamed) on close."""

    def __init__(self, path, fmt, overwrite, inputs):
        self.path = os.fspath(path)
        self._atomic = AtomicPath(self.path, overwrite, inputs, directory=True)
        self.tmp = self._atomic.tmp
        self.fmt, self.overwrite, self.n = fmt, overwrite, 0
        self._names = {}

    def append(self, images, ids, names, paths):
        h, w = images.shape[1:3]
        for image, ident, path in zip(images, ids, paths):
            stem = f"{ident}_{h}x{w}"
            if stem in self._names:
                raise InputError(
                    path, f"gives the same output name '{stem}' as {self._names[stem]}"
                )
            self._names[stem] = path
            try:
                imageio.save_stamp_files(self.tmp, stem, image, names, self.fmt)
            except OSError as exc:
                error = self._atomic.fail(exc)
                if error is None:
                    raise
                raise error from exc
        self.n += len(images)

    def close(self):
        self._atomic.commit()

    def abort(self):
        self._atomic.abort()


def write_skip_report(path, skipped, overwrite):
    """CSV of files skipped by --skip-bad (path, reason)."""
    with atomic_open(path, "w", overwrite, newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "reason"])
        w.writerows(skipped)


def skip_report_path(output):
    root = output[:-1] if output.endswith(os.sep) else output
    return root + ".skipped.csv"


def prepare(
    inputs,
    output,
    decode,
    history,
    *,
    catalog=None,
    id_column=None,
    id_pattern=None,
    labels=None,
    require_labels=False,
    to_folder=None,
    fmt="png",
    jobs=1,
    chunk_size=None,
    shard=None,
    skip_bad=False,
    overwrite=False,
    compression=None,
):
    """Decode, crop, resize and stack images from ``inputs`` into ``output`` (or a folder).

    Returns a summary dict (images written, skipped, catalog matching).
    """
    from galtools.catalog import Catalog, attach
    from galtools.settings import Shard

    shard = shard or Shard()
    target = to_folder if to_folder else output
    if not to_folder:
        container_of(target)
    out = shard.output_path(target)
    if shard.count > 1 and os.path.exists(out) and not overwrite:
        say(f"shard {shard}: {out} exists, skipped")
        return {"skipped_shard": True, "output": out}
    check_output(out, overwrite, inputs)

    files = imageio.find_files(inputs, exclude=[catalog])
    if any(
        imageio.suffix_of(os.path.basename(p)) is None
        and p.lower().endswith((".h5", ".hdf5", ".npz"))
        for p in files
    ):
        raise GalError(
            "array-file inputs cannot be mixed with image files (give one array file alone)"
        )
    items, skipped = imageio.group_files(files, id_pattern, decode.root)
    if skipped and not skip_bad:
        raise InputError(*skipped[0])
    if not items:
        raise GalError(f"{', '.join(map(str, inputs))}: no image files")

    cat, rows, dtypes, report = None, None, None, {}
    if catalog:
        cat = Catalog(catalog, id_column, labels, id_pattern)
        rows, report = attach([it.id for it in items], cat, require_labels)
        dtypes = cat.dtypes(report["without_row"] > 0)
        say(
            f"catalog {catalog}: {report['images'] - report['without_row']} of "
            f"{report['images']} images matched; {report['without_row']} without a catalog "
            f"row, {report['rows_without_image']} rows without an image"
        )

    start, stop = shard.bounds(len(items))
    size = chunk_size or ITEMS_PER_TASK
    indexed = list(enumerate(items))[start:stop]
    chunks = [indexed[i : i + size] for i in range(0, len(indexed), size)]
    if shard.count > 1:
        detail(f"shard {shard}: objects {start}..{stop - 1} of {len(items)}")

    writer, first = None, None
    bar = progress(total=len(indexed), desc="resize" if decode.geometry.size else "compress")
    try:
        for results in _run_chunks(chunks, decode, jobs):
            stamps, idx, paths = [], [], []
            for index, status, a, b in results:
                item = items[index]
                if status == "ok":
                    problem = _mismatch(first, item, a, b, decode.same_size)
                    if problem is None:
                        if first is None:
                            first = (item.path, a.shape, b)
                            colour = imageio.colour_channels(item, decode.bands, b)
                        stamps.append(a)
                        idx.append(index)
                        paths.append(item.path)
                        continue
                    a, b = item.path, problem
                if not skip_bad:
                    raise InputError(a, b)
                skipped.append((a, b))
            bar.update(len(results))
            if not stamps:
                continue
            images = np.stack(stamps)
            ids = np.array([items[i].id for i in idx])
            if writer is None:
                writer = _open_writer(
                    out, to_folder, fmt, first[2], cat, history, overwrite, compression, inputs
                )
                if not to_folder:
                    writer.meta["channel_order"] = decode.channel_order
                    writer.meta["colour_channels"] = colour
            if to_folder:
                writer.append(images, [items[i].name for i in idx], first[2], paths)
            else:
                batch = {"images": images, "ids": ids}
                if cat is not None:
                    batch.update(cat.take(rows[idx], dtypes))
                writer.append(batch)
        bar.close()
        if writer is None:
            where = "shard" if shard.count > 1 else "input"
            raise GalError(f"{out}: no readable images in this {where} ({len(skipped)} skipped)")
        writer.close()
    except BaseException:
        bar.close()
        if writer is not None:
            writer.abort()
        raise
    if skipped:
        report_path = skip_report_path(out)
        write_skip_report(report_path, skipped, overwrite=True)
        say(f"skipped {len(skipped)} unreadable file(s); list in {report_path}")
    summary = {
        "output": out,
        "images": writer.n,
        "skipped": len(skipped),
        "bands": first[2],
        "shape": list(first[1]),
    }
    summary["catalog"] = report
    return summary


def _mismatch(first, item, image, names, same_size):
    """Why a stamp does not fit the first one (shape, bands), or None."""
    if first is None:
        return None
    path, shape, ref_names = first
    if image.shape[:2] != shape[:2]:
        what = "image size" if same_size else "stamp size"
        return (
            f"{what} {image.shape[0]}x{image.shape[1]} differs from {path}'s {shape[0]}x{shape[1]}"
        )
    if names != ref_names:
        return (
            f"bands {','.join(names)} ({image.shape[-1]} channel(s)) differ from "
            f"{path}'s {','.join(ref_names)} ({shape[-1]}); choose with --band"
        )
    return None


def _open_writer(out, to_folder, fmt, bands, cat, history, overwrite, compression, inputs):
    if to_folder:
        return FolderWriter(out, fmt, overwrite, inputs)
    meta = new_meta(bands=bands, classes=cat.classes if cat else None, history=[history])
    return GalaxyWriter(out, meta, overwrite, compression, inputs=inputs)


def resize_file(
    path,
    output,
    geometry,
    bands,
    history,
    *,
    shard=None,
    overwrite=False,
    compression=None,
    chunk_size=None,
):
    """Crop/resize/select bands of the images in a galaxy array file; labels carried over."""
    from galtools.arrayfile import open_galaxies
    from galtools.meta import derive
    from galtools.settings import Shard

    shard = shard or Shard()
    out = shard.output_path(output)
    if shard.count > 1 and os.path.exists(out) and not overwrite:
        say(f"shard {shard}: {out} exists, skipped")
        return {"skipped_shard": True, "output": out}
    with open_galaxies(path) as reader:
        check_output(out, overwrite, [path])
        start, stop = shard.bounds(reader.n)
        names = list(reader.bands)
        meta = derive(reader.meta, history)
        if meta.get("pixel_scale") and geometry.size is not None:
            h, w = reader.image_shape[:2]
            x0, _, x1, _ = geometry.box(w, h)
            meta["pixel_scale"] = meta["pixel_scale"] * (x1 - x0) / geometry.size[1]
        bar = progress(total=stop - start, desc="resize")
        with GalaxyWriter(out, meta, overwrite, compression, inputs=[path]) as writer:
            for _, batch in reader.chunks(chunk_size, start=start, stop=stop):
                for field in ("images", "targets"):
                    if field in batch:
                        stamps = []
                        for image in batch[field]:
                            image, chosen = imageio.select_bands(image, names, bands, path)
                            stamps.append(geometry.apply_array(image))
                        batch[field] = np.stack(stamps) if stamps else batch[field]
                writer.meta["bands"] = chosen if stop > start else names
                writer.append(batch)
                bar.update(len(batch["images"]))
        bar.close()
        return {"output": out, "images": writer.n}
