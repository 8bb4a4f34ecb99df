"""Write a report: report.csv, layers_side_by_side.csv, report.md and (optionally) plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dse import install_hint
from dse.pipeline.writers import atomic_write, csv_text
from dse.report import plots as plotting
from dse.report.merge import load
from dse.report.tables import (
    failed_layers,
    markdown,
    pareto_columns,
    pareto_rows,
    report_columns,
    report_rows,
    resolve_baseline,
    side_by_side,
)

PLOT_NOTE = f"plots skipped: matplotlib is not installed ({install_hint('plot')} enables them)"


@dataclass
class Written:
    out: Path
    rows: int
    layer_rows: int
    files: list[str]
    plots: list[str]
    notes: list[str] = field(default_factory=list)
    plots_skipped: str | None = None


def write_report(paths: list[str], out: Path, baseline: str | None = None,
                 plots: bool = True, mixed_budgets: bool = False) -> Written:
    from dse.report import html

    res = load(list(paths))
    base = resolve_baseline(res.totals, baseline)
    rows, notes = report_rows(res, base, mixed_budgets)
    notes = [*res.notes, *notes]
    failed = failed_layers(res)
    if failed:
        notes.append("layers without a valid mapping (not in the totals): " + "; ".join(failed))
    side, side_cols = side_by_side(res)
    atomic_write(out / "report.csv", csv_text(rows, report_columns(res.totals)))
    atomic_write(out / "layers_side_by_side.csv", csv_text(side, side_cols))
    front = pareto_rows(rows)
    atomic_write(out / "pareto.csv", csv_text(front, pareto_columns()))
    files = ["report.csv", "layers_side_by_side.csv", "pareto.csv"]
    made: list[str] = []
    skipped = None
    if plots:
        if plotting.available():
            made = plotting.make_plots(res, out)
        else:
            skipped = PLOT_NOTE
    md = markdown(res, rows, base, [*files, "report.html"], made, notes)
    atomic_write(out / "report.md", md)
    atomic_write(out / "report.html", html.page(
        out, rows, report_columns(res.totals), front, pareto_columns(), made, res.inputs,
        res.files, notes, base.name if base else None))
    return Written(out, len(rows), len(side), [*files, "report.md", "report.html"], made, notes,
                   skipped)
