"""Plots (optional `plot` extra): per-layer energy by level, latency per layer, and Pareto fronts
over energy, latency and area. Each plot is written as SVG and PDF (vector) and a 200-dpi PNG,
drawn with the Agg canvas directly (no pyplot, no global state), with metadata left out and a
fixed SVG id salt so the files are reproducible. One colour per architecture across all plots.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from dse.pipeline.writers import atomic_write
from dse.report.merge import Results, natural_key
from dse.report.tables import display, latency, layer_order, num, pareto_front, series, short_point

FORMATS = ("svg", "pdf", "png")
DPI = 200
FONT = 9  # points, at the figures' printed size (7 in wide = a two-column page)
WIDE = 7.0
NARROW = 4.8
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
HATCHES = ["", "//", "..", "xx", "\\\\", "oo", "++", "--"]
MAX_LABELS = 30  # label every point of a Pareto plot up to this many, else only the front


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def file_stem(text: str) -> str:
    """A file-name part with no dots or other separators: letters, digits, '_' and '-'."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _write(path: Path, data: bytes) -> None:
    atomic_write(path, data)


def _save(fig, out: Path, stem: str) -> str:
    """Write stem.svg, stem.pdf, stem.png; returns the stem."""
    import matplotlib

    meta = {"svg": {"Date": None, "Creator": None}, "pdf": {"CreationDate": None,
                                                           "Creator": None, "Producer": None},
            "png": {"Software": None}}
    with matplotlib.rc_context({"svg.hashsalt": "dse", "svg.fonttype": "none",
                                "pdf.fonttype": 42}):
        for fmt in FORMATS:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=DPI, metadata=meta[fmt])
            _write(out / f"{stem}.{fmt}", buf.getvalue())
    return stem


def colours(res: Results) -> dict[str, str]:
    """One colour per architecture, the same in every plot of a report."""
    archs = sorted(set(res.totals["arch"]) | set(res.layers.get("arch", [])), key=natural_key)
    return {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(archs)}


def _style(ax) -> None:
    ax.tick_params(labelsize=FONT - 1)
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)


def _layer_axis(ax, names: list[str]) -> None:
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=FONT - 2)
    ax.set_xlim(-0.6, len(names) - 0.4)
    _style(ax)
    ax.grid(axis="x", visible=False)


def _series_names(res: Results, network: str) -> dict[tuple[str, str], str]:
    """Name per (arch, point) of a network: arch, or arch + short point."""
    pairs = [(a, p) for a, p in series(res.layers) if
             ((res.layers["network"] == network) & (res.layers["arch"] == a)
              & (res.layers["point"] == p)).any()]
    return {(a, p): display(network, a, p) for a, p in pairs}


def energy_breakdown(res: Results, network: str, arch: str, point: str, out: Path,
                     stem: str) -> str:
    from matplotlib import colormaps

    lay = res.layers
    mine = lay[(lay["network"] == network) & (lay["arch"] == arch) & (lay["point"] == point)]
    by = {r["layer"]: r for _, r in mine.iterrows()}
    names = [n for n in layer_order(lay, network) if n in by]
    cols = res.level_columns.get((network, arch, point), [])
    fig = _figure(WIDE, 3.6)
    ax = fig.subplots()
    bottom = [0.0] * len(names)
    cmap = colormaps["viridis"]
    for j, c in enumerate(cols):
        vals = [(num(by[n].get(c)) or 0.0) / 1e6 for n in names]
        ax.bar(range(len(names)), vals, 0.8, bottom=bottom, label=c[len("energy_"):-len("_pJ")],
               color=cmap(j / max(1, len(cols) - 1)), edgecolor="white", linewidth=0.3)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    _layer_axis(ax, names)
    ax.set_ylabel("energy per layer (µJ)", fontsize=FONT)
    ax.set_title(f"{network} on {display(network, arch, point)}: energy by level",
                 fontsize=FONT + 1)
    fig.legend(loc="outside right upper", fontsize=FONT - 1, title="level",
               title_fontsize=FONT - 1, frameon=False)
    return _save(fig, out, stem)


def latency_per_layer(res: Results, network: str, out: Path, stem: str) -> str:
    """Latency per layer: seconds (ms) when every design has a clock, else cycles."""
    lay = res.layers[res.layers["network"] == network]
    tot = res.totals[res.totals["network"] == network]
    clocks = {(r["arch"], r["point"]): num(r.get("clock_hz", "")) for _, r in tot.iterrows()}
    timed = all(clocks.get(k) for k in series(lay))
    names = layer_order(res.layers, network)
    ser = series(lay)
    col = colours(res)
    fig = _figure(WIDE, 3.8)
    ax = fig.subplots()
    w = 0.8 / max(1, len(ser))
    seen: dict[str, int] = {}
    for j, (a, p) in enumerate(ser):
        k = seen[a] = seen.get(a, -1) + 1
        mine = lay[(lay["arch"] == a) & (lay["point"] == p)]
        scale = 1e3 / clocks[(a, p)] if timed else 1.0
        by = {r["layer"]: (num(r["cycles"]) or 0.0) * scale for _, r in mine.iterrows()}
        xs = [i - 0.4 + w * (j + 0.5) for i in range(len(names))]
        ax.bar(xs, [by.get(n) or 0.0 for n in names], w, label=display(network, a, p),
               color=col[a], hatch=HATCHES[k % len(HATCHES)], edgecolor="white", linewidth=0.3)
    _layer_axis(ax, names)
    ax.set_yscale("log")
    ax.set_ylabel("latency per layer (ms)" if timed else "cycles per layer", fontsize=FONT)
    ax.set_title(f"{network}: latency per layer" + ("" if timed else
                                                      " (cycles: not every design has a clock)"),
                 fontsize=FONT + 1)
    longest = max((len(display(network, a, p)) for a, p in ser), default=1)
    fig.legend(loc="outside lower center", fontsize=FONT - 1, frameon=False,
               ncols=max(1, min(len(ser), 3, 100 // (longest + 6))))
    return _save(fig, out, stem)


AXES = {"energy": ("energy_pJ", 1e-6, "energy per inference (µJ)"),
        "area": ("area_mm2", 1.0, "area (mm$^2$)")}


def _place_labels(fig, ax, pts: list[tuple[float, float]], texts: list[str], colour: list[str]
                  ) -> None:
    """Annotate points with leader lines. Points closer than 6 px share one label (one line
    each); every label goes to the first of 14 offsets where its text overlaps no label placed
    before it and no other point and stays inside the axes (else the least bad offset)."""
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    axbox = ax.get_window_extent(renderer)
    marks = [ax.transData.transform(p) for p in pts]
    groups: list[list[int]] = []
    for i, m in enumerate(marks):
        near = next((g for g in groups if abs(marks[g[0]][0] - m[0]) < 6
                     and abs(marks[g[0]][1] - m[1]) < 6), None)
        if near is None:
            groups.append([i])
        else:
            near.append(i)
    placed = []
    offsets = [(7, 5), (7, -11), (-7, 5), (-7, -11), (0, 14), (0, -18), (16, 18), (-16, -22),
               (16, -22), (-16, 18), (30, 0), (-30, 0), (24, 34), (-24, -38)]
    for g in groups:
        xy = pts[g[0]]
        names = list(dict.fromkeys(texts[i] for i in g))
        text = "\n".join(names[:4] + ([f"+{len(names) - 4} more"] if len(names) > 4 else []))
        others = [m for j, m in enumerate(marks) if j not in g]
        c = colour[g[0]] if len({colour[i] for i in g}) == 1 else "0.2"
        best, best_bad = None, None
        for dx, dy in offsets:
            ann = ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points",
                              fontsize=FONT - 2, color=c, va="center",
                              ha="left" if dx > 0 else "right" if dx < 0 else "center",
                              arrowprops={"arrowstyle": "-", "color": c, "lw": 0.5,
                                          "shrinkA": 1, "shrinkB": 3})
            ann.update_positions(renderer)  # move the text to its offset before measuring
            box = Text.get_window_extent(ann, renderer).expanded(1.08, 1.2)  # text only
            bad = sum(box.overlaps(b) for b in placed) * 10
            bad += sum(box.contains(*m) for m in others) * 3
            bad += 0 if (axbox.contains(box.x0, box.y0) and axbox.contains(box.x1, box.y1)) \
                else 5
            if best_bad is None or bad < best_bad:
                if best is not None:
                    best[0].remove()
                best, best_bad = (ann, box), bad
            else:
                ann.remove()
            if bad == 0:
                break
        placed.append(best[1])


def pareto_plot(res: Results, network: str, x: str, y: str, out: Path, stem: str) -> str:
    """y vs x over every result of the network (x, y in energy, latency, area), the front
    (lower is better in both) drawn as a step line; colours by architecture."""
    tot = res.totals[res.totals["network"] == network]
    rows = [r for _, r in tot.iterrows()]
    lat = [latency(r) for r in rows]
    unit = "s" if all(u == "s" for _, u in lat) else "cycles"

    def value(r, i, what):
        if what == "latency":
            v, u = lat[i]
            if unit == "cycles":
                return num(r["cycles"])
            return None if v is None else v * 1e3
        col, scale, _ = AXES[what]
        v = num(r.get(col, ""))
        return None if v is None else v * scale

    def axis_label(what):
        if what == "latency":
            return "latency per inference (ms)" if unit == "s" else "cycles per inference"
        return AXES[what][2]

    keep = [i for i, r in enumerate(rows)
            if value(r, i, x) is not None and value(r, i, y) is not None]
    pts = [(value(rows[i], i, x), value(rows[i], i, y)) for i in keep]
    rows = [rows[i] for i in keep]
    front = pareto_front([list(p) for p in pts])
    col = colours(res)
    fig = _figure(NARROW, 3.6)
    ax = fig.subplots()
    for a in sorted({r["arch"] for r in rows}, key=natural_key):
        idx = [i for i, r in enumerate(rows) if r["arch"] == a]
        ax.scatter([pts[i][0] for i in idx], [pts[i][1] for i in idx], s=28, color=col[a],
                   label=a, zorder=3, edgecolor="black", linewidth=0.4)
    fx = sorted(pts[i] for i in front)
    if len(fx) > 1:
        ax.step([p[0] for p in fx], [p[1] for p in fx], where="post", color="0.35", lw=0.8,
                ls="--", label="Pareto front", zorder=2)
    for vals, set_scale in (([p[0] for p in pts], ax.set_xscale),
                            ([p[1] for p in pts], ax.set_yscale)):
        if vals and min(vals) > 0 and max(vals) / min(vals) > 20:  # spans decades: log axis
            set_scale("log")
    ax.margins(0.15, 0.15)
    ax.set_xlabel(axis_label(x), fontsize=FONT)
    ax.set_ylabel(axis_label(y), fontsize=FONT)
    ax.set_title(f"{network}: {y} vs {x}", fontsize=FONT + 1)
    _style(ax)
    fig.legend(loc="outside lower center", fontsize=FONT - 1, frameon=False, ncols=2)
    show = [i for i in range(len(rows)) if len(rows) <= MAX_LABELS or i in front]
    texts = [short_point(network, rows[i]["arch"], rows[i]["point"]).replace(
        "shared_glb.", "") or rows[i]["arch"] for i in show]
    _place_labels(fig, ax, [pts[i] for i in show], texts, [col[rows[i]["arch"]] for i in show])
    return _save(fig, out, stem)


def make_plots(res: Results, out: Path) -> list[str]:
    """Draw every plot; returns the file stems (relative to `out`; each has .svg, .pdf and
    .png) in a fixed order."""
    made: list[str] = []
    networks = sorted(set(res.totals["network"]) | set(res.layers["network"]), key=natural_key)
    for net in networks:
        s = file_stem(net)
        if (res.layers["network"] == net).any():
            for (a, p), part in _series_names(res, net).items():
                if not res.level_columns.get((net, a, p)):  # e.g. a streaming design
                    continue
                made.append(energy_breakdown(res, net, a, p, out,
                                             f"energy_breakdown_{s}_{file_stem(part)}"))
            made.append(latency_per_layer(res, net, out, f"latency_{s}"))
        tot = res.totals[res.totals["network"] == net]
        if tot["energy_pJ"].map(num).notna().sum() > 1:  # designs without energy: no front
            made.append(pareto_plot(res, net, "latency", "energy", out,
                                    f"pareto_{s}_energy_latency"))
            if "area_mm2" in tot.columns and tot["area_mm2"].map(num).notna().sum() > 1:
                made.append(pareto_plot(res, net, "area", "energy", out,
                                        f"pareto_{s}_energy_area"))
                made.append(pareto_plot(res, net, "area", "latency", out,
                                        f"pareto_{s}_latency_area"))
    return made
