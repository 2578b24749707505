"""galprep denoise."""

import click

from galtools import options


@click.command(short_help="Apply a denoiser run; MSE/PSNR before and after; robustness table.")
@click.argument("paths", nargs=-1, required=True, metavar="RUN... FILE")
@options.output(required=False, help="Denoised file (.h5/.npz, '-' for stdout); one RUN only.")
@click.option("--report", metavar="JSON", help="Write MSE and PSNR before/after as JSON.")
@click.option(
    "--robustness",
    metavar="JSON",
    help="Evaluate every RUN on four cases (as given, half resolution, noise ×4, "
    "both) and write the table as JSON, and as a PNG beside it.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help="Use only the first N images for --robustness.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Images per model call (default: about 2^20 pixels, at most 64).",
)
@options.overwrite
@options.compression
@options.chunk_size()
@options.shard
@options.common
def denoise(
    paths, output, report, robustness, limit, batch_size, overwrite, compression, chunk_size, shard
):
    """Denoise the images of FILE with a denoising RUN (any image size; targets, ids and
    labels are kept) into OUT.  When FILE has `targets`, the MSE and PSNR (peak = value range
    of the targets) before and after are reported.

    With --robustness, several RUNs (e.g. trained with different --alpha) are compared side by
    side; half resolution means 2×2 block-averaged and replicated back onto the grid, noise ×4
    means targets + 4·(images − targets)."""
    import json
    import os

    from galtools.denoising import denoise_file, format_table, plot_robustness
    from galtools.denoising import robustness as rob
    from galtools.errors import GalError
    from galtools.outputs import Outputs
    from galtools.progress import say
    from galtools.runs import load_run

    if len(paths) < 2:
        raise click.UsageError("give a RUN and a FILE")
    run_paths, path = list(paths[:-1]), paths[-1]
    if not output and not robustness:
        raise click.UsageError("give -o OUT (denoised images) and/or --robustness TABLE.json")
    if output and len(run_paths) > 1:
        raise click.UsageError("-o takes one RUN (several RUNs are for --robustness)")
    if report and not output:
        raise click.UsageError("--report describes the -o output")
    if path == "-" and output and robustness:
        raise GalError("-o with --robustness reads FILE twice: give a file, not '-'")
    out = shard.output_path(output) if output else None
    if out and shard.count > 1 and out != "-" and os.path.exists(out) and not overwrite:
        say(f"shard {shard}: {out} exists, skipped")
        return
    inputs = [p for p in [path, *run_paths] if p != "-"]
    outs = Outputs(overwrite, inputs)
    report = shard.output_path(report) if report else None
    png = None
    if robustness:
        png = (robustness[:-5] if robustness.lower().endswith(".json") else robustness) + ".png"
    outs.check(out, report, robustness, png)
    runs = [load_run(p) for p in run_paths]

    def write_json(target, data):
        with open(outs.add(target, ".json"), "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")

    with outs:
        if robustness:
            table = rob(runs, path, chunk_size, batch_size, limit)
            table["history"] = options.provenance(inputs)
            write_json(robustness, table)
            plot_robustness(outs.add(png, ".png"), table)
            say(format_table(table))
        if out:

            def extra(info):
                if report:
                    write_json(report, info)

            info = denoise_file(
                runs[0],
                path,
                out,
                options.provenance(inputs),
                overwrite,
                compression,
                chunk_size,
                batch_size,
                shard if shard.count > 1 else None,
                extra,
            )
            line = f"denoised {info['n']} images → {out}"
            if "before" in info:
                b, a = info["before"], info["after"]
                line += (
                    f"; MSE {b['mse']:.4g} → {a['mse']:.4g}, "
                    f"PSNR {b['psnr']:.2f} → {a['psnr']:.2f} dB"
                )
            say(line)
