"""Several ``galprep metrics`` reports side by side: one markdown table, generators vs real.

A report of ``galprep metrics REAL OTHER --fid --kid --power --morph --condition-check RUN``
holds many numbers; comparing generators means the same few of each, in the same order, next
to the real-vs-real floor.  :func:`figures` takes them out of one report (a flat dict, absent
ones left out), :func:`markdown` lays out several (FID and KID also as a multiple of the
reference column).  ``python -m galtools.metrics.table NAME=REPORT.json[+EXTRA.json] ...``
prints the table; an EXTRA file adds its flat ``{"label": number}`` rows (training time,
sampling speed) to that column.
"""

import json
import math
import sys

MORPH = ("gini", "m20", "concentration", "asymmetry", "ellipticity", "r50")

# (key, row label, format); the rows of the table in this order
ROWS = [
    ("fid", "FID", ".3g"),
    ("kid", "KID", ".2g"),
    ("power", "power-spectrum W1 (mean)", ".3g"),
    *[(f"w1_{p}", f"morphology W1: {p}", ".3g") for p in MORPH],
    ("measurable", "measurable by --morph (%)", ".1f"),
]
RATIO = ("fid", "kid")  # also shown as a multiple of the reference


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def figures(report):
    """The comparison figures of one metrics report (a dict as ``galprep metrics`` wrote it):
    ``fid``, ``kid``, ``power``, ``w1_<measure>``, ``measurable`` (%), per read-back column
    ``readback_<col>_rmse`` / ``_bias`` (and ``real_readback_<col>_rmse``: the regressor on
    REAL), per flux column ``flux_<col>_spearman`` (and ``real_flux_<col>_spearman``)."""
    m = report.get("metrics", {})
    out = {
        "fid": _get(m, "fid", "fid"),
        "kid": _get(m, "kid", "kid"),
        "power": _get(m, "power", "mean_wasserstein"),
    }
    for p in MORPH:
        out[f"w1_{p}"] = _get(m, "morph", "wasserstein", p)
    other = _get(m, "morph", "other")
    if other and other.get("n"):
        out["measurable"] = 100.0 * other["n_good"] / other["n"]
    check = report.get("condition_check") or {}
    for e in check.get("readback", []):
        c = e["column"]
        for key in ("rmse", "bias"):
            out[f"readback_{c}_{key}"] = _get(e, "generated", key)
        out[f"real_readback_{c}_rmse"] = _get(e, "real", "rmse")
        out[f"readback_{c}_corrected"] = bool(e.get("bias_correction"))
    for e in check.get("flux", []):
        c = e["column"]
        out[f"flux_{c}_spearman"] = _get(e, "generated", "spearman")
        out[f"real_flux_{c}_spearman"] = _get(e, "real", "spearman")
    return {k: v for k, v in out.items() if v is not None}


def _cell(value, spec):
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    return format(value, spec)


def markdown(columns, reference=None, extra=None):
    """A markdown table: one column per entry of ``columns`` ({name: figures dict}), the rows
    of :data:`ROWS`, then the read-back and flux rows the entries have, then ``extra``
    ({name: {label: number}}) rows.  ``reference``: the column FID and KID are divided by."""
    names = list(columns)
    extra = extra or {}
    base = columns.get(reference, {}) if reference else {}
    rows = []
    for key, label, spec in ROWS:
        if not any(key in columns[n] for n in names):
            continue
        cells = []
        for n in names:
            v = columns[n].get(key)
            text = _cell(v, spec)
            # a ratio to a floor at or below zero (KID's unbiased estimate can be) says nothing
            if key in RATIO and v is not None and n != reference and (base.get(key) or 0) > 0:
                text += f" ({v / base[key]:.1f}×)"
            cells.append(text)
        rows.append((label, cells))
    keys = []
    for n in names:
        keys += [k for k in columns[n] if k not in keys]
    for k in keys:
        if k.startswith("readback_") and k.endswith("_rmse"):
            c = k[len("readback_") : -len("_rmse")]
            note = (
                " (bias-corrected)"
                if any(columns[n].get(f"readback_{c}_corrected") for n in names)
                else ""
            )
            cells = []
            for n in names:
                f = columns[n]
                own = f.get(k, f.get(f"real_readback_{c}_rmse") if n == reference else None)
                cells.append(_cell(own, ".2f"))
            rows.append((f"{c} read-back RMSE{note}", cells))
            rows.append(
                (f"{c} read-back bias{note}", [_cell(columns[n].get(f"readback_{c}_bias"), "+.2f")
                                               for n in names])
            )  # fmt: skip
        elif k.startswith("flux_") and k.endswith("_spearman"):
            c = k[len("flux_") : -len("_spearman")]
            cells = [_cell(columns[n].get(k), ".3f") for n in names]
            rows.append((f"{c}: rank corr. condition vs measured flux", cells))
    labels = []
    for n in names:
        labels += [k for k in extra.get(n, {}) if k not in labels]
    for label in labels:
        rows.append((label, [_cell(extra.get(n, {}).get(label), ".3g") for n in names]))
    lines = ["| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines)


def _load(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise SystemExit(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError:
        raise SystemExit(f"{path}: not valid JSON") from None


def main(argv=None):
    """``python -m galtools.metrics.table [--reference NAME] NAME=REPORT[+EXTRA] ...``"""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m galtools.metrics.table", description=__doc__.splitlines()[0]
    )
    ap.add_argument("columns", nargs="+", metavar="NAME=REPORT.json[+EXTRA.json]")
    ap.add_argument("--reference", help="column that FID and KID are divided by")
    args = ap.parse_args(argv)
    columns, extra = {}, {}
    for item in args.columns:
        name, eq, paths = item.partition("=")
        if not eq or not name or not paths:
            ap.error(f"{item!r}: give NAME=REPORT.json")
        report, _, more = paths.partition("+")
        columns[name] = figures(_load(report))
        if more:
            extra[name] = _load(more)
    if args.reference and args.reference not in columns:
        ap.error(f"--reference {args.reference}: no such column")
    print(markdown(columns, args.reference, extra))


if __name__ == "__main__":
    sys.exit(main())
