"""Running an importer: rows → galaxy array file, with a catalog join and metadata."""

import os

import numpy as np

from galtools.errors import GalError


def source_inputs(source):
    """The input files recorded in provenance: the file itself, or nothing for a folder."""
    return [source] if os.path.isfile(source) else []


def run(
    importer,
    source,
    output,
    entry,
    overwrite=False,
    compression=None,
    chunk_size=None,
    shard=None,
    catalog=None,
    id_column="id",
    bands=None,
    pixel_scale=None,
    options=None,
    catalog_where=None,
):
    """Import rows of ``source`` (this shard's part) with ``importer`` into ``output``.

    ``catalog``: a CSV joined on the ids (first row of a repeated id wins, after keeping the
    rows where ``catalog_where`` holds).  ``bands`` /
    ``pixel_scale`` override what the format says.  Returns (rows written, catalog report line
    or None).
    """
    from galtools.arrayfile import GalaxyWriter, check_output
    from galtools.importers.tables import Catalog
    from galtools.meta import new_meta
    from galtools.progress import progress

    options = dict(options or {})
    inputs = source_inputs(source) + ([catalog] if catalog else [])
    check_output(output, overwrite, inputs)
    table = Catalog(catalog, id_column, catalog_where) if catalog else None
    total = importer.count(source, **options)
    start, stop = shard.bounds(total) if shard is not None else (0, total)
    chunk_size = chunk_size or 256
    gen = importer.read(source, start=start, stop=stop, chunk_size=chunk_size, **options)
    with GalaxyWriter(output, new_meta(), overwrite, compression, inputs) as writer:
        bar = progress(total=stop - start, desc=f"import {importer.name}")
        meta = {}
        row = start
        channels = None
        while True:
            try:
                batch = next(gen)
            except StopIteration as done:
                meta = done.value or {}
                break
            batch = dict(batch)
            n = len(batch["images"])
            if channels is None:
                shape = np.shape(batch["images"])
                channels = shape[-1] if len(shape) == 4 else 1
                _check_bands(bands, channels)
            if "ids" not in batch:
                batch["ids"] = np.array([str(i) for i in range(row, row + n)])
            if table is not None:
                for name, values in table.join(batch["ids"]).items():
                    batch[name if name not in batch else f"catalog_{name}"] = values
            try:
                writer.append(batch)
            except ValueError as exc:
                raise GalError(f"{source}: rows {row}–{row + n}: {exc}") from None
            row += n
            bar.update(n)
        bar.close()
        if writer.n == 0:
            raise GalError(f"{source}: nothing to import (rows {start}–{stop} of {total})")
        final = new_meta(
            bands=bands or meta.get("bands") or [str(i) for i in range(channels)],
            pixel_scale=pixel_scale if pixel_scale is not None else meta.get("pixel_scale"),
            classes=meta.get("classes"),
            history=[entry],
            **{
                k: v
                for k, v in meta.items()
                if k not in ("bands", "pixel_scale", "classes", "history")
            },
        )
        _check_bands(final["bands"], channels)
        writer.meta = final
    return writer.n, table.report() if table is not None else None


def _check_bands(bands, channels):
    if bands is not None and len(bands) != channels:
        raise GalError(f"{len(bands)} band names for {channels} channels ({', '.join(bands)})")
