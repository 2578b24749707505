"""galprep plugins."""

import json

import click

from galtools import options, registry


@click.command(short_help="List commands, models, importers, metrics and features installed.")
@click.option(
    "--group",
    type=click.Choice([g.split(".")[-1] for g in registry.GROUPS]),
    help="Only this group.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@options.common
def plugins(group, as_json):
    """List every entry of each galtools entry-point group with the distribution and version
    that provides it, and whether it loads and keeps its group's contract (see
    plugins/README.md); a broken one is marked ✗ with the reason.  Entries switched off by
    GALPREP_PLUGINS are shown as disabled."""
    groups = [f"galtools.{group}"] if group else list(registry.GROUPS)
    report = {}
    for g in groups:
        rows = []
        off = registry.disabled(g)
        for name, e in registry.entries(g, include_disabled=True).items():
            status = "disabled" if name in off else ("ok" if e.error is None else "broken")
            rows.append(
                {
                    "name": name,
                    "dist": e.dist,
                    "version": e.version,
                    "builtin": e.builtin,
                    "status": status,
                    "value": e.value,
                    "error": e.error if status == "broken" else None,
                }
            )
        report[g] = rows
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for g, rows in report.items():
        click.echo(f"{g}  ({registry.GROUPS[g]})")
        if not rows:
            click.echo("  (none)")
        for r in rows:
            mark = {"ok": " ", "broken": "✗", "disabled": "-"}[r["status"]]
            origin = "built-in" if r["builtin"] else f"{r['dist']} {r['version']}"
            line = f" {mark} {r['name']:<18} {origin}"
            if r["status"] == "broken":
                line += f"  BROKEN: {r['error']}"
            elif r["status"] == "disabled":
                line += "  (disabled by GALPREP_PLUGINS)"
            click.echo(line)
