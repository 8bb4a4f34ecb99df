"""report.html: one self-contained page (inline CSS and JS, plots as inline SVG) with sortable
tables of the totals and the Pareto fronts, every plot, the notes and the run's provenance."""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

from dse import __version__
from dse.report.tables import num, short_point

FIRST = ["network", "arch", "point", "latency_s", "energy_pJ", "power_W", "area_mm2",
         "speedup_vs_baseline", "energy_ratio_vs_baseline", "area_ratio_vs_baseline",
         "energy_pinned"]


def _readable(rows: list[dict], columns: list[str]) -> tuple[list[dict], list[str]]:
    """Rows with the point id shortened (no arch/network parts) and the columns that answer
    the design question first."""
    out = [{**r, "point": short_point(r["network"], r["arch"], r["point"])} for r in rows]
    head = [c for c in FIRST if c in columns]
    return out, head + [c for c in columns if c not in head]


def _plot_order(stem: str) -> tuple[int, str]:
    return (0 if stem.startswith("pareto") else 1 if stem.startswith("latency") else 2, "")

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:1rem 1.2rem;color:#222;background:#fff}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:3px 7px;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafafa}td.yes{background:#e6f4e6!important}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto;display:block}
figcaption{font-size:13px;color:#555}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1rem}
code{font-size:13px;overflow-wrap:anywhere}
.note{color:#8a4b00}
"""

# click a header to sort by that column (numbers as numbers; click again to reverse); the last
# line records whether the page fits the window (read by the browser test)
JS = """
document.querySelectorAll("table.sortable").forEach(function(t){
 t.querySelectorAll("th").forEach(function(th,i){th.addEventListener("click",function(){
  var asc=!th.classList.contains("asc");
  t.querySelectorAll("th").forEach(function(h){h.classList.remove("asc","desc")});
  th.classList.add(asc?"asc":"desc");
  var rows=Array.from(t.tBodies[0].rows);
  rows.sort(function(a,b){var x=a.cells[i].dataset.v||a.cells[i].textContent,
   y=b.cells[i].dataset.v||b.cells[i].textContent,p=parseFloat(x),q=parseFloat(y);
   var c=(!isNaN(p)&&!isNaN(q))?p-q:x.localeCompare(y);return asc?c:-c});
  rows.forEach(function(r){t.tBodies[0].appendChild(r)});});});});
window.addEventListener("load",function(){var d=document.documentElement;
 d.setAttribute("data-fits",String(d.scrollWidth<=d.clientWidth));});
"""


def _cell(v) -> str:
    f = num(v)
    if f is not None and not isinstance(v, bool) and str(v) not in ("True", "False"):
        text = f"{f:,.0f}" if f == int(f) and abs(f) < 1e15 else f"{f:.4g}"
        return f'<td class="n" data-v="{f!r}">{text}</td>'
    cls = ' class="yes"' if str(v) == "True" else ""
    return f"<td{cls}>{html.escape(str(v))}</td>"


def table(rows: list[dict], columns: list[str], table_id: str) -> str:
    cols = [c for c in columns if any(str(r.get(c, "")) != "" for r in rows)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(_cell(r.get(c, "")) for c in cols) + "</tr>"
                   for r in rows)
    return (f'<div class="scroll"><table class="sortable" id="{table_id}"><thead><tr>{head}'
            f"</tr></thead><tbody>{body}</tbody></table></div>")


def _svg(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return text[text.index("<svg"):]


def _sha(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return "unreadable"


def page(out: Path, rows: list[dict], columns: list[str], pareto: list[dict],
         pareto_cols: list[str], plots: list[str], inputs: list[str], files: list[str],
         notes: list[str], baseline: str | None) -> str:
    rows, columns = _readable(rows, columns)
    pareto, pareto_cols = _readable(pareto, pareto_cols)
    plots = sorted(plots, key=_plot_order)  # stable: fronts first, then latency, breakdowns
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width,initial-scale=1">',
             "<title>dse report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>dse report</h1>",
             f"<p>{len(rows)} results from {len(files)} result files. Click a column header to "
             "sort. Latency = cycles / clock; designs without a clock are in cycles only."
             + (f" Ratios against <code>{html.escape(baseline)}</code>." if baseline else "")
             + "</p>", "<h2>Results</h2>", table(rows, columns, "results"),
             "<h2>Pareto fronts</h2>",
             "<p>Lower is better in every objective; <code>front_*</code> is True for the "
             "results no other result beats in all of those objectives.</p>",
             table(pareto, pareto_cols, "pareto")]
    if plots:
        parts.append('<h2>Plots</h2><div class="plots">')
        for stem in plots:
            parts.append(f'<figure id="plot-{stem}">{_svg(out / f"{stem}.svg")}<figcaption>'
                         f'{html.escape(stem)} (<a href="{stem}.pdf">PDF</a>, '
                         f'<a href="{stem}.png">PNG</a>)</figcaption></figure>')
        parts.append("</div>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(
            f'<li class="note">{html.escape(n)}</li>' for n in notes) + "</ul>")
    parts.append(f"<h2>Provenance</h2><p>dse {html.escape(__version__)}; inputs:</p><ul>")
    parts += [f"<li><code>{html.escape(p)}</code></li>" for p in inputs]
    parts.append("</ul><p>result files read (sha256, first 16 hex digits):</p><ul>")
    parts += [f"<li><code>{html.escape(f)}</code> {_sha(f)}</li>" for f in files]
    parts.append(f"</ul><script>{JS}</script></body></html>")
    text = "\n".join(parts) + "\n"
    return re.sub(r"[ \t]+\n", "\n", text)
