"""PNG plots (optional `plot` extra): per-layer energy by level, cycles per layer, and the
energy-vs-cycles Pareto front. Figures are drawn with the Agg canvas directly (no pyplot, no
global state) and written atomically; PNG metadata is left out so files are reproducible."""

from __future__ import annotations

import io
from pathlib import Path

from dse.report.merge import Results, natural_key
from dse.report.tables import (
    display,
    label,
    layer_order,
    num,
    pareto,
    series,
    short_point,
    slug,
)
from dse.report_model import atomic_write

MAX_LABELS = 30  # annotate every point of a Pareto plot up to this many, else only the front


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    atomic_write(path, buf.getvalue())


def _width(n: int) -> float:
    return max(6.0, min(14.0, 2.0 + 0.4 * n))


def _layer_axis(ax, names: list[str]) -> None:
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _series_names(res: Results, network: str) -> dict[tuple[str, str], str]:
    """File-name part per (arch, point) of a network: arch, or arch@<short point> when that is
    unique within the arch, else arch@<point>."""
    pairs = [(a, p) for a, p in series(res.layers) if
             ((res.layers["network"] == network) & (res.layers["arch"] == a)
              & (res.layers["point"] == p)).any()]
    names = {}
    for a, p in pairs:
        shorts = [short_point(network, a, q) for b, q in pairs if b == a]
        sp = short_point(network, a, p)
        names[(a, p)] = slug(label(a, sp if shorts.count(sp) == 1 else p))
    return names


def energy_breakdown(res: Results, network: str, arch: str, point: str, path: Path) -> None:
    lay = res.layers
    mine = lay[(lay["network"] == network) & (lay["arch"] == arch) & (lay["point"] == point)]
    by = {r["layer"]: r for _, r in mine.iterrows()}
    names = [n for n in layer_order(lay, network) if n in by]
    cols = res.level_columns.get((network, arch, point), [])
    fig = _figure(_width(len(names)), 4.2)
    ax = fig.subplots()
    bottom = [0.0] * len(names)
    for c in cols:
        vals = [(num(by[n].get(c)) or 0.0) / 1e6 for n in names]
        ax.bar(range(len(names)), vals, 0.8, bottom=bottom, label=c[len("energy_"):-len("_pJ")])
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    _layer_axis(ax, names)
    ax.set_ylabel("energy (uJ)")
    ax.set_title(f"{network} on {display(network, arch, point)}: energy per layer by level",
                 fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, path)


def cycles_per_layer(res: Results, network: str, path: Path) -> None:
    lay = res.layers[res.layers["network"] == network]
    names = layer_order(res.layers, network)
    ser = series(lay)
    fig = _figure(_width(len(names) * max(1, len(ser)) / 2), 4.2)
    ax = fig.subplots()
    w = 0.8 / max(1, len(ser))
    for j, (a, p) in enumerate(ser):
        mine = lay[(lay["arch"] == a) & (lay["point"] == p)]
        by = {r["layer"]: num(r["cycles"]) for _, r in mine.iterrows()}
        xs = [i - 0.4 + w * (j + 0.5) for i in range(len(names))]
        ax.bar(xs, [by.get(n) or 0.0 for n in names], w, label=display(network, a, p))
    _layer_axis(ax, names)
    ax.set_ylabel("cycles")
    ax.set_title(f"{network}: cycles per layer", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, path)


def pareto_plot(res: Results, network: str, path: Path) -> None:
    tot = res.totals[res.totals["network"] == network]
    rows = [r for r in tot.itertuples(index=False) if num(r.energy_pJ) is not None]
    pts = [(num(r.cycles), num(r.energy_pJ) / 1e6) for r in rows]
    front = pareto(pts)
    fig = _figure(6.4, 4.6)
    ax = fig.subplots()
    others = [i for i in range(len(pts)) if i not in front]
    ax.scatter([pts[i][0] for i in others], [pts[i][1] for i in others], s=18, color="0.6",
               label="design points")
    fx = [pts[i] for i in sorted(front, key=lambda i: pts[i])]
    ax.step([p[0] for p in fx], [p[1] for p in fx], where="post", color="tab:red", lw=1)
    ax.scatter([p[0] for p in fx], [p[1] for p in fx], s=30, color="tab:red",
               label="Pareto front", zorder=3)
    names: dict[tuple[float, float], list[str]] = {}
    for i, r in enumerate(rows):
        if len(rows) <= MAX_LABELS or i in front:
            names.setdefault(pts[i], []).append(display(network, r.arch, r.point))
    for xy, ns in names.items():  # points that coincide share one label
        text = "\n".join(ns[:4] + ([f"+{len(ns) - 4} more"] if len(ns) > 4 else []))
        ax.annotate(text, xy, fontsize=6, xytext=(5, 0), textcoords="offset points",
                    va="center")
    ax.margins(0.12, 0.15)
    ax.set_xlabel("cycles")
    ax.set_ylabel("energy (uJ)")
    ax.set_title(f"{network}: energy vs cycles", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def make_plots(res: Results, out: Path) -> list[str]:
    """Draw every plot; returns the file names (relative to `out`) in a fixed order."""
    made: list[str] = []
    networks = sorted(set(res.totals["network"]) | set(res.layers["network"]), key=natural_key)
    for net in networks:
        s = slug(net)
        if (res.layers["network"] == net).any():
            for (a, p), part in _series_names(res, net).items():
                if not res.level_columns.get((net, a, p)):  # e.g. a streaming design
                    continue
                name = f"energy_breakdown_{s}_{part}.png"
                energy_breakdown(res, net, a, p, out / name)
                made.append(name)
            name = f"cycles_{s}.png"
            cycles_per_layer(res, net, out / name)
            made.append(name)
        with_energy = [e for n, e in zip(res.totals["network"], res.totals["energy_pJ"],
                                         strict=True) if n == net and num(e) is not None]
        if len(with_energy) > 1:
            name = f"pareto_{s}.png"
            pareto_plot(res, net, out / name)
            made.append(name)
    return made
