"""`dse report PATH... [--baseline ARCH] --out DIR`: merge result folders into one report."""

from __future__ import annotations

from pathlib import Path

import click

from dse.cli.errors import reports_spec_errors


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--baseline", default=None, metavar="ARCH[@POINT]",
              help="Architecture the speed-up and energy ratio are computed against.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for report.csv, layers_side_by_side.csv, report.md and plots.")
@click.option("--no-plots", is_flag=True, help="Skip the plots.")
@click.option("--mixed-budgets", is_flag=True,
              help="Compare results with a baseline searched with a different mapper budget.")
@reports_spec_errors
def report(paths, baseline, out_dir, no_plots, mixed_budgets):
    """Merge the results below PATH... (folders of `dse run` / `dse sweep`, searched
    recursively) into report.csv (one row per network x architecture x design point, with
    speed-up and energy ratio against --baseline), layers_side_by_side.csv, report.md and,
    pareto.csv, report.html and, with the plot extra, plots (SVG, PDF, PNG)."""
    from dse.report.build import write_report
    from dse.report.tables import plural

    w = write_report(list(paths), Path(out_dir), baseline, plots=not no_plots,
                     mixed_budgets=mixed_budgets)
    for note in w.notes:
        click.echo(f"note: {note}", err=True)
    if w.plots_skipped:
        click.echo(w.plots_skipped, err=True)
    made = f", {plural(len(w.plots), 'plot')}" if w.plots else ""
    click.echo(f"wrote {w.out}/: report.csv ({plural(w.rows, 'row')}), layers_side_by_side.csv "
               f"({plural(w.layer_rows, 'layer')}), pareto.csv, report.md, report.html{made}")
