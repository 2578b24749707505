"""PNG plots of metrics (matplotlib's Figure, imported lazily; no pyplot, no backend change)."""

import os

import numpy as np

from galtools.atomic import save_figure


def _figure(rows, cols, figsize):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols, squeeze=False)


def power_plots(results, names, bands, directory):
    """power_1d.png (mean log10 spectra with 16–84 % bands) and power_2d.png (contours)."""
    from matplotlib.lines import Line2D

    files = []
    nb = len(bands)
    fig, axes = _figure(1, nb, (4.5 * nb, 3.6))
    for k, band in enumerate(bands):
        ax = axes[0, k]
        for res, name in zip(results, names):
            logp = np.log10(np.maximum(res["spectra"][:, k], 1e-30))
            r = np.arange(logp.shape[1])
            lo, mid, hi = np.percentile(logp, [16, 50, 84], axis=0)
            (line,) = ax.plot(r, logp.mean(axis=0), label=name)
            ax.fill_between(r, lo, hi, color=line.get_color(), alpha=0.25)
        ax.set_xlabel("radius (frequency pixels)")
        ax.set_ylabel("log10 power")
        ax.set_title(f"band {band}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(directory, "power_1d.png")
    save_figure(fig, path, dpi=100)
    files.append("power_1d.png")

    fig, axes = _figure(1, nb, (4.5 * nb, 4.2))
    styles = ("solid", "dashed", "dotted")
    for k, band in enumerate(bands):
        ax = axes[0, k]
        handles = []
        for i, (res, name) in enumerate(zip(results, names)):
            img = np.log10(np.maximum(res["mean2d"][k], 1e-30))
            cs = ax.contour(img, levels=8, linestyles=styles[i % 3], colors=f"C{i}", linewidths=1)
            handles.append(Line2D([], [], color=f"C{i}", linestyle=styles[i % 3], label=name))
            del cs
        ax.set_aspect("equal")
        ax.set_title(f"mean log10 2-D power, band {band}")
        ax.legend(handles=handles, fontsize=8)
    fig.tight_layout()
    save_figure(fig, os.path.join(directory, "power_2d.png"), dpi=100)
    files.append("power_2d.png")
    return files


def morphology_plot(results, names, directory, properties, bad_flags):
    """morphology.png: one histogram panel per property, the sets overlaid.

    ``results``: per set, a dict of property arrays and ``flags``; galaxies with any of the
    ``bad_flags`` bits set are left out.
    """
    cols = 5
    rows = int(np.ceil(len(properties) / cols))
    fig, axes = _figure(rows, cols, (3.2 * cols, 2.8 * rows))
    for k, prop in enumerate(properties):
        ax = axes[k // cols, k % cols]
        data = []
        for res in results:
            good = res["flags"] & ~bad_flags == 0
            v = res[prop][good]
            data.append(v[np.isfinite(v)])
        allv = np.concatenate(data) if data else np.empty(0)
        if allv.size:
            lo, hi = np.percentile(allv, [0.5, 99.5])
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 30)
            for v, name in zip(data, names):
                ax.hist(v, bins=bins, histtype="step", density=True, label=name)
        ax.set_title(prop)
    for k in range(len(properties), rows * cols):
        axes[k // cols, k % cols].axis("off")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, os.path.join(directory, "morphology.png"), dpi=90)
    return ["morphology.png"]


def _file_name(prefix, column, taken):
    """A file name for a column: unsafe characters replaced, numbered when taken."""
    import re

    stem = f"{prefix}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', column)}"
    name, k = f"{stem}.png", 2
    while name in taken:
        name, k = f"{stem}_{k}.png", k + 1
    taken.add(name)
    return name


def condition_plots(report, samples, directory):
    """The condition check's plots (see :mod:`galtools.metrics.conditions`):
    ``readback_COLUMN.png`` (read-back vs condition with the 1:1 line, real and generated) per
    regressor and ``flux_COLUMN.png`` (condition vs measured flux, real and generated) per
    flux-like column.  ``samples``: per set, ``predictions`` by run index, ``columns`` and
    ``band_flux``.  Returns the file names."""
    files, taken = [], set()
    sets = ("real", "generated")
    for i, entry in enumerate(report.get("readback", [])):
        col = entry["column"]
        fig, axes = _figure(1, 1, (4.8, 4.5))
        ax = axes[0, 0]
        lo, hi = np.inf, -np.inf
        for k, name in enumerate(sets):
            got = samples[name]
            if i not in got["predictions"]:
                continue
            x, y = got["columns"][col], got["predictions"][i]
            ok = np.isfinite(x) & np.isfinite(y)
            stats = entry[name]
            ax.scatter(
                x[ok],
                y[ok],
                s=6,
                alpha=0.5,
                color=f"C{k}",
                label=f"{name}: RMSE {stats['rmse']:.3g}, bias {stats['bias']:+.3g}",
            )
            if ok.any():
                lo = min(lo, x[ok].min(), y[ok].min())
                hi = max(hi, x[ok].max(), y[ok].max())
        if np.isfinite(lo):
            ax.plot([lo, hi], [lo, hi], color="k", linewidth=1, label="1:1")
        ax.set_xlabel(f"{col} (condition / truth)")
        ax.set_ylabel(f"{col} read back")
        ax.set_title(f"{col} read back by {os.path.basename(entry['run'].rstrip('/'))}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = _file_name("readback", col, taken)
        save_figure(fig, os.path.join(directory, name), dpi=100)
        files.append(name)
    for entry in report.get("flux", []):
        col = entry["column"]
        fig, axes = _figure(1, 1, (4.8, 4.5))
        ax = axes[0, 0]
        positive, x_positive = True, True
        for k, name in enumerate(sets):
            got = samples[name]
            if entry.get(name) is None:
                continue
            x, y = got["columns"][col], got["band_flux"].sum(axis=1)
            ok = np.isfinite(x) & np.isfinite(y)
            positive &= bool(np.all(y[ok] > 0))
            x_positive &= bool(np.all(x[ok] > 0))
            rho = entry[name]["spearman"]
            ax.scatter(
                x[ok],
                y[ok],
                s=6,
                alpha=0.5,
                color=f"C{k}",
                label=f"{name}: Spearman {rho:+.3f}",
            )
        if positive:  # fluxes and masses span decades
            ax.set_yscale("log")
        if x_positive:
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # labels of 2–9×10ⁿ overlap
        ax.set_xlabel(f"{col} (condition)")
        ax.set_ylabel("measured flux (sum of pixels, all bands)")
        ax.set_title(f"{col} vs measured flux")
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = _file_name("flux", col, taken)
        save_figure(fig, os.path.join(directory, name), dpi=100)
        files.append(name)
    return files
