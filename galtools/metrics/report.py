"""``galprep metrics``: run metrics on one set (per-galaxy table) or two sets (report)."""

import contextlib
import json
import os
import shutil
import tempfile

import numpy as np

from galtools.errors import GalError
from galtools.metrics import load_metric


@contextlib.contextmanager
def spooled_stdin(paths):
    """Inputs with '-' replaced by a temporary copy of stdin (the metrics read files twice)."""
    if "-" not in paths:
        yield list(paths)
        return
    import sys

    fd, tmp = tempfile.mkstemp(prefix="galprep-metrics-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 2**20)
        if os.path.getsize(tmp) == 0:
            raise GalError("-: empty input on stdin (expected an npz stream)")
        yield [tmp if p == "-" else p for p in paths]
    finally:
        os.unlink(tmp)


def resolve_band(text, bands_a, bands_b=None):
    """Band index from a name or index, valid in both sets."""
    if text is None:
        return None
    for bands in filter(None, (bands_a, bands_b)):
        if text not in bands and not (
            text.lstrip("-").isdigit() and -len(bands) <= int(text) < len(bands)
        ):
            raise GalError(f"unknown band '{text}' (bands: {', '.join(bands)})")
    if text in bands_a and (bands_b is None or text in bands_b):
        idx_a = list(bands_a).index(text)
        if bands_b is not None and list(bands_b).index(text) != idx_a:
            raise GalError(
                f"band '{text}' is channel {idx_a} in one set and "
                f"{list(bands_b).index(text)} in the other"
            )
        return idx_a
    return int(text) % len(bands_a)


def _measure(path, metrics, settings, chunk_size, start=0, stop=None, desc=None):
    """One pass over a file feeding every image metric's accumulator."""
    from galtools.arrayfile import open_galaxies
    from galtools.progress import progress

    accs = {m.name: m.accumulator(settings) for m in metrics}
    with open_galaxies(path) as reader:
        stop = reader.n if stop is None else stop
        band = settings.get("band_index")
        bar = progress(total=stop - start, desc=desc or os.path.basename(str(path)))
        for _, batch in reader.chunks(chunk_size, fields=["images"], start=start, stop=stop):
            images = batch["images"]
            for m in metrics:
                x = images
                if m.name == "power" and band is not None:
                    x = images[..., [band]]
                accs[m.name].add(x)
            bar.update(len(images))
        bar.close()
    return {name: acc.result() for name, acc in accs.items()}


def _open_info(path):
    from galtools.arrayfile import open_galaxies

    with open_galaxies(path) as reader:
        if reader.n == 0:
            raise GalError(f"{reader.path}: no images")
        return {"n": reader.n, "shape": reader.image_shape, "bands": list(reader.bands)}


def _settings(kw, info):
    settings = dict(kw)
    bands = info[0]["bands"]
    other = info[1]["bands"] if len(info) > 1 else None
    settings["band_index"] = resolve_band(kw.get("band"), bands, other)
    return settings


def _band_names(info, settings):
    if settings.get("band_index") is not None:
        return [info[0]["bands"][settings["band_index"]]]
    return info[0]["bands"]


def _morph_band(settings, info):
    if settings.get("band_index") is None:
        c = min(i["shape"][-1] for i in info)
        settings = dict(settings, band_index=c // 2)
    return settings


def compare_sets(
    paths,
    names,
    metric_names,
    *,
    features="inception-2015",
    protocol=None,
    cache=None,
    chunk_size=None,
    device=None,
    features_batch_size=None,
    **kw,
):
    """Report (dict) comparing two sets with the metrics named (no files written).

    ``device`` and ``features_batch_size`` reach the feature extractor when it takes them
    (:func:`galtools.features.load_extractor`)."""
    info = [_open_info(p) for p in paths]
    settings = _settings(kw, info)
    metrics = [load_metric(n) for n in metric_names]
    report = {
        "sets": {
            n: {"path": str(p), "n": i["n"], "image_shape": list(i["shape"]), "bands": i["bands"]}
            for n, p, i in zip(names, paths, info)
        },
        "metrics": {},
    }
    feature_metrics = [m for m in metrics if m.kind == "features"]
    image_metrics = [m for m in metrics if m.kind == "images"]
    if feature_metrics:
        feats, meta = _features(
            paths,
            names,
            info,
            features,
            protocol,
            cache,
            chunk_size,
            runtime={"device": device, "batch_size": features_batch_size},
        )
        for m in feature_metrics:
            out = m.compare(feats[0], feats[1], settings)
            out.update(meta)
            report["metrics"][m.name] = out
    results = {}
    if image_metrics:
        if (
            settings.get("band_index") is None
            and info[0]["shape"][-1] != info[1]["shape"][-1]
            and any(m.name != "morph" for m in image_metrics)
        ):
            raise GalError(
                f"the sets have {info[0]['shape'][-1]} and {info[1]['shape'][-1]} "
                "bands: choose one with --band"
            )
        for name, path in zip(names, paths):
            s = (
                _morph_band(settings, info)
                if any(m.name == "morph" for m in image_metrics)
                else settings
            )
            results[name] = _measure_split(path, image_metrics, settings, s, chunk_size, name)
        for m in image_metrics:
            s = _morph_band(settings, info) if m.name == "morph" else settings
            bands = _band_names(info, s)
            res = [results[n][m.name] for n in names]
            entry = {n: m.summary(r, bands) for n, r in zip(names, res)}
            entry.update(m.compare(res[0], res[1], s, bands))
            if m.name == "morph":
                entry.update({"band": bands[0], "engine": s.get("engine", "galtools")})
            report["metrics"][m.name] = entry
    return report, results, info, settings


def _measure_split(path, metrics, settings, morph_settings, chunk_size, name):
    """Morph may use its own band; everything else the common settings (one pass each)."""
    plain = [m for m in metrics if m.name != "morph"]
    morph = [m for m in metrics if m.name == "morph"]
    out = {}
    if plain:
        out.update(_measure(path, plain, settings, chunk_size, desc=f"{name}: measure"))
    if morph:
        out.update(_measure(path, morph, morph_settings, chunk_size, desc=f"{name}: morphology"))
    return out


def _features(paths, names, info, spec, protocol_text, cache, chunk_size, runtime=None):
    from galtools.features import load_extractor
    from galtools.features import protocol as protomod
    from galtools.features.extract import file_features

    extractor = load_extractor(spec, **(runtime or {}))
    proto = protomod.parse(protocol_text or extractor.default_protocol)
    if extractor.input == "rgb" and proto.raw:
        raise GalError(
            f"feature extractor '{spec}' takes RGB images; protocol "
            f"'{proto.name}' keeps the stored bands"
        )
    if proto.raw and not proto.size and info[0]["shape"] != info[1]["shape"]:
        raise GalError(
            f"the sets' images differ ({'×'.join(map(str, info[0]['shape']))} vs "
            f"{'×'.join(map(str, info[1]['shape']))}) and protocol '{proto.name}' does not "
            "resize: add size=N to --protocol or resize one set"
        )
    feats, skipped = [], {}
    for name, path in zip(names, paths):
        f, meta = file_features(
            path, extractor, proto, cache=cache, chunk_size=chunk_size, desc=f"{name}: features"
        )
        feats.append(f)
        skipped[name] = meta["skipped_nonfinite"]
    meta = {
        "features": extractor.describe(),
        "protocol": proto.to_dict(),
        "skipped_nonfinite": skipped,
    }
    return feats, meta


# ------------------------------------------------------------------------------- outputs


def write_json(path, data, overwrite, inputs):
    from galtools.atomic import atomic_open

    with atomic_open(path, "w", overwrite, inputs) as fh:
        json.dump(_jsonable(data), fh, indent=1, allow_nan=False)
        fh.write("\n")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def run_compare(
    real,
    other,
    output,
    metric_names,
    plots=None,
    overwrite=False,
    history=None,
    conditions=None,
    **kw,
):
    """Compare two files and write the JSON report (and plots); returns the report.

    ``conditions``: keyword arguments of :class:`galtools.metrics.conditions.ConditionCheck`
    (``runs``, ``flux_columns``, ``batch_size``) to check OTHER's condition columns (report key
    ``condition_check``, plots ``readback_*.png`` and ``flux_*.png``); validated before any
    metric runs."""
    from galtools.atomic import AtomicPath, check_output

    check_output(output, overwrite, [real, other])
    check = None
    if conditions is not None:
        from galtools.metrics.conditions import ConditionCheck

        check = ConditionCheck(real, other, chunk_size=kw.get("chunk_size"), **conditions)
    plot_dir = AtomicPath(plots, overwrite, [real, other], directory=True) if plots else None
    try:
        names = ("real", "other")
        report, results, info, settings = compare_sets((real, other), names, metric_names, **kw)
        samples = None
        if check is not None:
            report["condition_check"], samples = check.run()
        if plot_dir is not None:
            files = []
            for name in metric_names:
                m = load_metric(name)
                if m.kind != "images" or not hasattr(m, "plot"):
                    continue
                s = _morph_band(settings, info) if m.name == "morph" else settings
                res = [results[n][m.name] for n in names]
                files += m.plot(res, names, _band_names(info, s), plot_dir.tmp)
            if check is not None:
                from galtools.metrics.plots import condition_plots

                files += condition_plots(report["condition_check"], samples, plot_dir.tmp)
            report["plots"] = [os.path.join(plots, f) for f in files]
        if history is not None:
            report["history"] = [history]
        write_json(output, report, overwrite, [real, other])
        if plot_dir is not None:
            plot_dir.commit()
    except BaseException as exc:
        error = plot_dir.fail(exc) if plot_dir is not None else None
        if error is not None:
            raise error from exc
        raise
    return report


def run_table(
    path, output, metric_names, overwrite=False, history=None, shard=None, chunk_size=None, **kw
):
    """One set: per-galaxy rows (.h5/.csv) or per-set summaries (.json)."""
    from galtools.arrayfile import open_galaxies
    from galtools.atomic import AtomicPath

    info = [_open_info(path)]
    settings = _settings(kw, info)
    metrics = [load_metric(n) for n in metric_names]
    if any(m.kind == "features" for m in metrics):
        raise GalError("FID and KID compare two sets: give REAL and OTHER")
    if "morph" in metric_names:
        settings = _morph_band(settings, info)
    start, stop = (0, info[0]["n"]) if shard is None else shard.bounds(info[0]["n"])
    kind = os.path.splitext(str(output))[1].lower()
    if kind not in (".h5", ".hdf5", ".csv", ".json"):
        raise GalError(f"{output}: write .h5, .csv (per-galaxy table) or .json (summary)")
    target = AtomicPath(output, overwrite, [path], suffix=kind)
    try:
        morph_settings = settings
        plain = [m for m in metrics if m.name != "morph"]
        results = {}
        if plain:
            s = dict(settings)
            results.update(_measure(path, plain, s, chunk_size, start, stop))
        if any(m.name == "morph" for m in metrics):
            results.update(
                _measure(
                    path,
                    [m for m in metrics if m.name == "morph"],
                    morph_settings,
                    chunk_size,
                    start,
                    stop,
                )
            )
        with open_galaxies(path) as reader:
            ids = reader.ids()[start:stop]
        if kind == ".json":
            out = {
                "set": {"path": str(path), "n": stop - start, "bands": info[0]["bands"]},
                "metrics": {},
            }
            for m in metrics:
                s = morph_settings if m.name == "morph" else settings
                out["metrics"][m.name] = m.summary(results[m.name], _band_names(info, s))
            if history is not None:
                out["history"] = [history]
            with open(target.tmp, "w") as fh:
                json.dump(_jsonable(out), fh, indent=1, allow_nan=False)
        else:
            columns = {}
            for m in metrics:
                s = morph_settings if m.name == "morph" else settings
                columns.update(m.table(results[m.name], _band_names(info, s)))
            meta = {
                "source": str(path),
                "rows": [start, stop],
                "history": [history] if history else [],
                "metrics": list(metric_names),
            }
            if "morph" in metric_names:
                from galtools.metrics.morphology import FLAGS

                meta["morph_band"] = info[0]["bands"][morph_settings["band_index"]]
                meta["flags"] = FLAGS
            if kind == ".csv":
                _write_csv(target.tmp, ids, columns)
            else:
                _write_h5(target.tmp, ids, columns, meta)
        target.commit()
    except BaseException as exc:
        error = target.fail(exc)
        if error is not None:
            raise error from exc
        raise
    return results


def _write_h5(path, ids, columns, meta):
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset(
            "ids", data=np.asarray(ids).astype(str).astype(object), dtype=h5py.string_dtype()
        )
        for name, value in columns.items():
            f.create_dataset(name, data=np.asarray(value))
        f.attrs["meta"] = json.dumps(_jsonable(meta))


def _write_csv(path, ids, columns):
    import csv

    flat = {}
    for name, value in columns.items():
        value = np.asarray(value)
        if value.ndim == 1:
            flat[name] = value
        else:
            for k in range(value.shape[1]):
                flat[f"{name}_{k}"] = value[:, k]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", *flat])
        for i in range(len(ids)):
            row = [ids[i]]
            for v in flat.values():
                x = v[i]
                row.append(f"{x:.6g}" if isinstance(x, (float, np.floating)) else x)
            writer.writerow(row)
