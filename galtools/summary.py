"""What is in a galaxy array file: shapes, label statistics, image value range, history."""

import numpy as np

from galtools.arrayfile import open_galaxies
from galtools.progress import progress

MAX_CLASSES = 50


def column_summary(values, class_names=None):
    """Count/min/max/mean of a numeric column, or class counts for a categorical one."""
    values = np.asarray(values)
    out = {"count": int(values.size), "dtype": str(values.dtype)}
    if values.dtype.kind in "USO" or class_names:
        keys, counts = np.unique(values, return_counts=True)
        if class_names and values.dtype.kind in "iu":
            keys = [class_names[k] if 0 <= k < len(class_names) else str(k) for k in keys]
        out["classes"] = {str(k): int(c) for k, c in zip(keys, counts)}
        return out
    if values.dtype.kind == "b":
        values = values.astype(np.int64)
    finite = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, bool)
    out["missing"] = int(values.size - finite.sum())
    if finite.any():
        v = values[finite]
        out.update(min=v.min().item(), max=v.max().item(), mean=float(v.mean()), std=float(v.std()))
    unique = np.unique(values[finite])
    if values.dtype.kind in "iu" and unique.size <= MAX_CLASSES:
        out["classes"] = {str(k): int((values == k).sum()) for k in unique}
    return out


def image_stats(reader, field="images", chunk_size=None):
    """Streaming min/max/mean/std and non-finite count of an image field."""
    lo, hi, total, total_sq, count, bad = np.inf, -np.inf, 0.0, 0.0, 0, 0
    bar = progress(total=reader.n, desc=f"scanning {field}")
    for _, batch in reader.chunks(chunk_size, fields=[field]):
        x = batch[field]
        if x.dtype.kind == "f":
            finite = np.isfinite(x)
            bad += int(x.size - finite.sum())
            x = x[finite]
        x = x.astype(np.float64, copy=False)
        if x.size:
            lo, hi = min(lo, x.min()), max(hi, x.max())
            total += x.sum()
            total_sq += np.square(x).sum()
            count += x.size
        bar.update(len(batch[field]))
    bar.close()
    if count == 0:
        return {"min": None, "max": None, "mean": None, "std": None, "nonfinite": bad}
    mean = total / count
    return {
        "min": float(lo),
        "max": float(hi),
        "mean": float(mean),
        "std": float(np.sqrt(max(total_sq / count - mean**2, 0.0))),
        "nonfinite": bad,
    }


def describe(path, scan_images=True, chunk_size=None):
    """A JSON-able description of a galaxy array file."""
    with open_galaxies(path) as reader:
        classes = reader.classes
        out = {
            "path": reader.path,
            "n": reader.n,
            "image_shape": list(reader.image_shape),
            "dtype": str(reader.dtype),
            "bands": reader.bands,
            "channel_order": reader.meta.get("channel_order"),
            "colour_channels": reader.meta.get("colour_channels"),
            "pixel_scale": reader.meta.get("pixel_scale"),
            "has_targets": reader.has_targets,
            "has_ids": reader.has_ids,
            "labels": {
                name: column_summary(reader.column(name), classes.get(name))
                for name in reader.label_names
            },
            "classes": classes,
            "history": reader.meta.get("history", []),
        }
        if scan_images:
            out["images"] = image_stats(reader, "images", chunk_size)
            if reader.has_targets:
                out["targets"] = image_stats(reader, "targets", chunk_size)
    return out


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def format_text(d):
    """Human-readable lines for :func:`describe` output."""
    lines = [
        f"file:        {d['path']}",
        f"images:      {d['n']} × {'×'.join(map(str, d['image_shape']))} {d['dtype']}",
        f"bands:       {', '.join(d['bands'])}",
    ]
    colour = d.get("colour_channels")
    if colour:
        order = d.get("channel_order") or "wavelength"
        pairs = ", ".join(f"{b}←{c}" for b, c in zip(d["bands"], colour) if c)
        lines.append(f"channels:    {pairs} of the colour files ({order} order)")
    if d.get("pixel_scale") is not None:
        lines.append(f"pixel scale: {d['pixel_scale']} arcsec/pixel")
    for field in ("images", "targets"):
        s = d.get(field)
        if s and s["min"] is not None:
            lines.append(
                f"{field + ' values:':<13}min {_fmt(s['min'])}, max {_fmt(s['max'])}, "
                f"mean {_fmt(s['mean'])}, std {_fmt(s['std'])}"
                + (f", {s['nonfinite']} non-finite" if s["nonfinite"] else "")
            )
    if d["has_targets"] and "targets" not in d:
        lines.append("targets:     yes")
    lines.append(f"ids:         {'yes' if d['has_ids'] else 'no'}")
    if d["labels"]:
        lines.append("labels:")
        for name, s in d["labels"].items():
            if "min" in s and "classes" not in s:
                text = f"min {_fmt(s['min'])}, max {_fmt(s['max'])}, mean {_fmt(s['mean'])}" + (
                    f", {s['missing']} missing" if s.get("missing") else ""
                )
            elif "classes" in s:
                text = ", ".join(f"{k}: {v}" for k, v in s["classes"].items())
            else:
                text = "all missing"
            lines.append(f"  {name:<16} n={s['count']:<8} {text}")
    else:
        lines.append("labels:      none")
    if d["history"]:
        lines.append("history:")
        for h in d["history"]:
            inputs = ", ".join(i.get("path", "?") for i in h.get("inputs", []))
            lines.append(
                f"  {h.get('time', '?')}  {h.get('tool', '?')} {h.get('version', '')}"
                + (f"  from {inputs}" if inputs else "")
            )
    return "\n".join(lines)
