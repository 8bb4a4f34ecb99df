"""The report's tables: report.csv rows (with ratios against a baseline), the per-layer
side-by-side rows, and report.md. Every number is taken from the loaded result rows."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from dse.errors import SpecError, did_you_mean
from dse.report.merge import KEY, Results, natural_key

RATIO_COLUMNS = ["speedup_vs_baseline", "speedup_basis", "energy_ratio_vs_baseline",
                 "area_ratio_vs_baseline", "baseline"]
TIME_AREA = ["clock_hz", "latency_s", "throughput_inf_per_s", "power_W", "area_mm2"]
BUDGET = ["search", "max_evals", "time_limit_s", "objective", "seed"]


def budget(row) -> str:
    """The mapper budget a result was searched with, as one text ('' parts when unknown)."""
    return " ".join(f"{k}={row.get(k, '')}" for k in BUDGET if str(row.get(k, "")) != "")


def latency(row) -> tuple[float | None, str]:
    """(latency, unit): seconds when the design has a clock, else cycles."""
    sec = num(row.get("latency_s", ""))
    if sec is not None:
        return sec, "s"
    clock = num(row.get("clock_hz", ""))
    cycles = num(row.get("cycles", ""))
    if clock and cycles is not None:
        return cycles / clock, "s"
    return cycles, "cycles"


def label(arch: str, point: str) -> str:
    """`arch` or `arch@point`: the name of one series in the side-by-side CSV."""
    return f"{arch}@{point}" if point else arch


def short_point(network: str, arch: str, point: str) -> str:
    """A sweep point id without the parts naming its architecture and network
    (`eyeriss_like__resnet8__shared_glb.depth=4096` -> `shared_glb.depth=4096`)."""
    drop = {arch, network, slug(arch), slug(network)}
    return ", ".join(p for p in str(point).split("__") if p and p not in drop)


def display(network: str, arch: str, point: str) -> str:
    sp = short_point(network, arch, point)
    return f"{arch} [{sp}]" if sp else arch


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=@-]+", "_", str(text))


def param_columns(df: pd.DataFrame) -> list[str]:
    return sorted((c for c in df.columns if c.startswith("param.")), key=natural_key)


def num(v) -> float | None:
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _int(v):
    f = num(v)
    return "" if f is None else (int(f) if math.isfinite(f) and f == int(f) else f)


def _float(v):
    f = num(v)
    return "" if f is None else f


# ---------------------------------------------------------------------------------------------
# baseline


@dataclass
class Baseline:
    name: str            # as given: ARCH or ARCH@POINT
    arch: str
    point: str | None    # fixed point (ARCH@POINT), else matched per row


def resolve_baseline(totals: pd.DataFrame, baseline: str | None) -> Baseline | None:
    if baseline is None:
        return None
    archs = sorted(set(totals["arch"]), key=natural_key)
    if baseline in archs:
        return Baseline(baseline, baseline, None)
    arch, sep, point = baseline.partition("@")
    labels = sorted({label(a, p) for a, p in totals[["arch", "point"]].itertuples(index=False)},
                    key=natural_key)
    if arch not in archs:
        raise SpecError(f"'{baseline}' names no architecture in the inputs",
                        key_path="--baseline", expected="one of " + ", ".join(archs),
                        hint=did_you_mean(arch, archs))
    points = sorted(set(totals.loc[totals["arch"] == arch, "point"]), key=natural_key)
    if not sep or point not in points:
        choices = [f"{arch}@{p}" for p in points]
        raise SpecError(f"'{baseline}' names no design point of '{arch}'",
                        key_path="--baseline", expected="one of " + ", ".join(choices),
                        hint=did_you_mean(baseline, labels))
    return Baseline(baseline, arch, point)


def _params(row: pd.Series, cols: list[str]) -> dict:
    return {c: row[c] for c in cols if row.get(c, "") not in ("", None)}


def baseline_row(totals: pd.DataFrame, base: Baseline, row: pd.Series,
                 pcols: list[str]) -> pd.Series | None:
    """The baseline's row for `row`: same network; then the fixed point, else the same point,
    else the point with the same parameter values, else the baseline's only point."""
    cands = totals[(totals["arch"] == base.arch) & (totals["network"] == row["network"])]
    if base.point is not None:
        cands = cands[cands["point"] == base.point]
    if len(cands) == 1:
        return cands.iloc[0]
    if cands.empty:
        return None
    same = cands[cands["point"] == row["point"]]
    if len(same) == 1:
        return same.iloc[0]
    mine = _params(row, pcols)
    if mine:
        same = cands[[_params(c, pcols) == mine for _, c in cands.iterrows()]]
        if len(same) == 1:
            return same.iloc[0]
    choices = [f"{base.arch}@{p}" for p in sorted(cands["point"], key=natural_key)]
    raise SpecError(
        f"baseline '{base.arch}' has {len(cands)} design points for network "
        f"'{row['network']}' and none matches {label(row['arch'], row['point'])} by point or "
        f"parameters", key_path="--baseline", expected="one of " + ", ".join(choices),
        hint=f"name one, e.g. --baseline '{choices[0]}'")


# ---------------------------------------------------------------------------------------------
# report.csv


STREAMING_COLUMNS = ["fps", "fps_per_dsp", "ii_cycles", "dsp_used", "dsp_budget",
                     "bram36_used", "bram36_budget", "bottleneck_layer"]


# fused schedules (docs/fusion.md): the schedule's DRAM bytes beside the layerwise run's
FUSED_COLUMNS = ["schedule", "dram_bytes", "layerwise_dram_bytes", "layerwise_cycles",
                 "layerwise_energy_pJ"]


def fused_columns(totals: pd.DataFrame) -> list[str]:
    return [c for c in FUSED_COLUMNS if c in totals.columns]


def streaming_columns(totals: pd.DataFrame) -> list[str]:
    """Columns of streaming dataflow designs (docs/streaming.md), when any row has them."""
    return [c for c in STREAMING_COLUMNS if c in totals.columns]


def report_columns(totals: pd.DataFrame) -> list[str]:
    return [*KEY, *param_columns(totals), "macs", "cycles", "energy_pJ", "pJ_per_mac",
            "utilization", *TIME_AREA, "energy_pinned", "budget",
            *[c for c in streaming_columns(totals) if c not in TIME_AREA],
            *[c for c in fused_columns(totals) if c not in TIME_AREA], *RATIO_COLUMNS]


def report_rows(res: Results, base: Baseline | None,
                mixed_budgets: bool = False) -> tuple[list[dict], list[str]]:
    """One row per (network, arch, point), in sorted order, plus notes.

    Speed-up compares seconds when both designs have a clock, cycles when neither has; a timed
    and an untimed design are not compared (empty ratio, a note). A result and its baseline
    searched with different mapper budgets are refused unless `mixed_budgets`."""
    totals = res.totals
    pcols = param_columns(totals)
    rows, notes = [], []
    no_base: list[str] = []
    untimed: list[str] = []
    budgets = sorted({budget(t) for _, t in totals.iterrows()})
    if len(budgets) > 1:
        notes.append("results were searched with different mapper budgets ("
                     + "; ".join(b or "unknown" for b in budgets) + "): rankings across them "
                     "compare searches as well as designs")
    for _, t in totals.iterrows():
        macs, cycles, energy = num(t["macs"]), num(t["cycles"]), num(t["energy_pJ"])
        pjm = _float(t.get("pJ_per_mac", ""))
        if "pJ_per_mac" not in totals.columns and macs and energy is not None:
            pjm = energy / macs
        row = {"network": t["network"], "arch": t["arch"], "point": t["point"],
               **{c: t.get(c, "") for c in pcols},
               "macs": _int(macs), "cycles": _int(cycles), "energy_pJ": _float(energy),
               "pJ_per_mac": pjm, "utilization": _float(t.get("utilization", "")),
               **{c: _float(t.get(c, "")) for c in TIME_AREA},
               "energy_pinned": t.get("energy_pinned", ""), "budget": budget(t),
               **{c: t.get(c, "") for c in streaming_columns(totals) if c not in TIME_AREA},
               **{c: t.get(c, "") for c in fused_columns(totals) if c not in TIME_AREA},
               **{c: "" for c in RATIO_COLUMNS}}
        lat, unit = latency(t)
        if unit == "s":
            row["latency_s"] = lat
        if base is not None:
            b = baseline_row(totals, base, t, pcols)
            if b is None:
                if t["network"] not in no_base:
                    no_base.append(t["network"])
            else:
                if budget(b) != budget(t) and not mixed_budgets:
                    unknown = "budget unknown"
                    raise SpecError(
                        f"{label(t['arch'], t['point'])} ({budget(t) or unknown}) and its "
                        f"baseline {label(b['arch'], b['point'])} ({budget(b) or unknown}) "
                        "were searched with different mapper budgets",
                        key_path="--baseline", hint="rerun with the same mapper settings, or "
                        "pass --mixed-budgets to compare them anyway (the report says so)")
                blat, bunit = latency(b)
                be, ba = num(b["energy_pJ"]), num(b.get("area_mm2", ""))
                if unit == bunit and lat:
                    row["speedup_vs_baseline"] = blat / lat
                    row["speedup_basis"] = "seconds" if unit == "s" else "cycles"
                elif unit != bunit:
                    untimed.append(f"{label(t['arch'], t['point'])} vs "
                                   f"{label(b['arch'], b['point'])}")
                row["energy_ratio_vs_baseline"] = energy / be if be else ""
                area = num(row["area_mm2"])
                row["area_ratio_vs_baseline"] = area / ba if ba and area is not None else ""
                row["baseline"] = label(b["arch"], b["point"])
        rows.append(row)
    for n in no_base:
        notes.append(f"no {base.name} result for network {n}: its ratios are empty")
    if untimed:
        notes.append("no speed-up where one design has a clock and the other has not (cycles "
                     "and seconds are not mixed): " + "; ".join(untimed))
    if mixed_budgets and base is not None and len(budgets) > 1:
        notes.append("--mixed-budgets: ratios compare results searched with different budgets")
    return rows, notes


# ---------------------------------------------------------------------------------------------
# layers_side_by_side.csv


def series(layers: pd.DataFrame) -> list[tuple[str, str]]:
    pairs = {(a, p) for a, p in layers[["arch", "point"]].itertuples(index=False)}
    return sorted(pairs, key=lambda ap: (natural_key(ap[0]), natural_key(ap[1])))


def layer_order(layers: pd.DataFrame, network: str) -> list[str]:
    """Layers of a network in the order of its layers.csv files (union, first seen first)."""
    return list(dict.fromkeys(layers.loc[layers["network"] == network, "layer"]))


def side_by_side(res: Results) -> tuple[list[dict], list[str]]:
    lay = res.layers
    if lay.empty:
        return [], ["network", "layer", "type", "macs"]
    ser = series(lay)
    cols = ["network", "layer", "type", "macs"]
    for a, p in ser:
        cols += [f"{label(a, p)}_energy_pJ", f"{label(a, p)}_cycles"]
    by = {(r["network"], r["arch"], r["point"], r["layer"]): r for _, r in lay.iterrows()}
    rows = []
    for net in sorted(set(lay["network"]), key=natural_key):
        for name in layer_order(lay, net):
            row: dict = {"network": net, "layer": name}
            for a, p in ser:
                r = by.get((net, a, p, name))
                if r is None:
                    continue
                row.setdefault("type", r.get("type", ""))
                row.setdefault("macs", _int(r.get("macs", "")))
                row[f"{label(a, p)}_energy_pJ"] = _float(r["energy_pJ"])
                row[f"{label(a, p)}_cycles"] = _int(r["cycles"])
            rows.append(row)
    return rows, cols


def failed_layers(res: Results) -> list[str]:
    """Layers whose mapping failed (not the ones that are deliberately not mapped)."""
    lay = res.layers
    if lay.empty or "status" not in lay.columns:
        return []
    bad = lay[(lay["status"] != "ok") & ~lay["status"].str.startswith("not mapped")]
    return [f"{display(r['network'], r['arch'], r['point'])}: {r['network']}/{r['layer']} "
            f"({r['status'] or 'no status'})" for _, r in bad.iterrows()]


# ---------------------------------------------------------------------------------------------
# report.md


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (cycles, energy) points that no other point dominates (no worse in both,
    better in one); identical points are all kept."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1], i))
    front: list[int] = []
    best = math.inf
    for i in order:
        if points[i][1] < best or (front and points[i] == points[front[-1]]):
            front.append(i)
            best = points[i][1]
    return sorted(front)


def pareto_front(points: list[list[float]]) -> list[int]:
    """Indices of the points no other point dominates (no worse in every objective, better in
    one; lower is better); identical points are all kept. Any number of objectives."""
    def dominates(a, b) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    return [i for i, p in enumerate(points)
            if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]


PARETO_SETS = {"energy_latency": ("energy_pJ", "latency"),
               "energy_area": ("energy_pJ", "area_mm2"),
               "latency_area": ("latency", "area_mm2"),
               "energy_latency_area": ("energy_pJ", "latency", "area_mm2")}


def pareto_columns() -> list[str]:
    return ["network", "arch", "point", "energy_pJ", "latency", "latency_unit", "area_mm2",
            "edp_J_x_latency", "edap_J_x_latency_mm2", *[f"front_{k}" for k in PARETO_SETS]]


def pareto_rows(rows: list[dict]) -> list[dict]:
    """Per network, every result with its energy, latency (seconds when every result of the
    network has a clock, else cycles), area, EDP and EDAP, and whether it is on each front."""
    out = []
    for net in sorted({r["network"] for r in rows}, key=natural_key):
        mine = [r for r in rows if r["network"] == net]
        timed = all(num(r["latency_s"]) is not None for r in mine)
        table = []
        for r in mine:
            lat = num(r["latency_s"]) if timed else num(r["cycles"])
            e, a = num(r["energy_pJ"]), num(r["area_mm2"])
            # a design without an energy (streaming FPGAs without power figures) or without
            # a latency has no EDP and stays off the fronts that need the missing value
            edp = None if e is None or lat is None else e * 1e-12 * lat
            table.append({"network": net, "arch": r["arch"], "point": r["point"],
                          "energy_pJ": "" if e is None else e,
                          "latency": "" if lat is None else lat,
                          "latency_unit": "s" if timed else "cycles",
                          "area_mm2": "" if a is None else a,
                          "edp_J_x_latency": "" if edp is None else edp,
                          "edap_J_x_latency_mm2": "" if a is None or edp is None else edp * a})
        for name, objs in PARETO_SETS.items():
            usable = [i for i, t in enumerate(table) if all(t[o] != "" for o in objs)]
            front = set(pareto_front([[table[i][o] for o in objs] for i in usable]))
            for k, i in enumerate(usable):
                table[i][f"front_{name}"] = k in front
        out += table
    return out


def _g(v, digits: int = 3) -> str:
    f = num(v)
    return "" if f is None else f"{f:,.{digits}f}"


def _i(v) -> str:
    f = num(v)
    return "" if f is None else f"{round(f):,}"


def _x(v) -> str:
    f = num(v)
    return "" if f is None else f"{f:.3f}x"


def plural(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def _md_table(head: list[str], body: list[list[str]], right: set[int]) -> list[str]:
    def cell(s: str) -> str:
        return str(s).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in head) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in body]
    return lines


def _streaming_md(rows: list[dict]) -> list[str]:
    """FPS and FPS per DSP of streaming dataflow designs (cycles above = II per image)."""
    mine = [r for r in rows if num(r.get("fps", "")) is not None]
    if not mine:
        return []
    body = [[r["network"], r["arch"], short_point(r["network"], r["arch"], r["point"]) or "",
             f"{num(r['fps']):,.0f}", _i(r["ii_cycles"]), r["bottleneck_layer"],
             f"{_i(r['dsp_used'])} / {_i(r['dsp_budget'])}", _g(r["fps_per_dsp"])]
            for r in mine]
    return ["", "## Streaming designs", "",
            "One engine per layer; cycles = II (cycles per image once the pipeline is full).", ""
            ] + _md_table(["network", "architecture", "point", "FPS", "II (cycles)",
                           "bottleneck", "DSP used / budget", "FPS per DSP"], body,
                          {3, 4, 6, 7})


def _fused_md(rows: list[dict]) -> list[str]:
    """DRAM traffic saved, speed-up, energy and EDP ratios of fused, pipeline and auto
    schedules against the same network run layerwise (the run's own layerwise reference)."""
    mine = [r for r in rows if r.get("schedule") not in (None, "", "layerwise")
            and num(r.get("layerwise_dram_bytes", "")) is not None]
    if not mine:
        return []
    body = []
    points = any(r.get("point") for r in mine)
    for r in mine:
        lw, fu = num(r["layerwise_dram_bytes"]), num(r["dram_bytes"])
        cyc, lwc = num(r["cycles"]), num(r["layerwise_cycles"])
        e, lwe = num(r["energy_pJ"]), num(r["layerwise_energy_pJ"])
        body.append([r["network"], r["arch"], *([r["point"]] if points else []),
                     r["schedule"], _i(lw), _i(fu),
                     f"{(lw - fu) / lw:.1%}" if lw else "", _x(lwc / cyc if cyc else ""),
                     _x(e / lwe if lwe else ""),
                     _x(e * cyc / (lwe * lwc) if lwe and lwc else "")])
    return ["", "## Fused schedules", "",
            "DRAM bytes of each fused, pipeline or auto schedule against the same network run "
            "layerwise "
            "(the run's layerwise mappings); speed-up = layerwise cycles / schedule cycles; "
            "energy and EDP ratio = schedule / layerwise (docs/fusion.md).", ""
            ] + _md_table(["network", "architecture", *(["point"] if points else []),
                           "schedule", "layerwise DRAM bytes", "schedule DRAM bytes",
                           "DRAM saved", "speed-up", "energy ratio", "EDP ratio"], body,
                          {i + points for i in (3, 4, 5, 6, 7, 8)})


def markdown(res: Results, rows: list[dict], base: Baseline | None, files: list[str],
             plots: list[str], notes: list[str]) -> str:
    pcols = [c for c in param_columns(res.totals) if any(r[c] != "" for r in rows)]
    has_point = any(r["point"] for r in rows)
    out = ["# dse report", "", "## Inputs", ""]
    out += [f"- `{p}`" for p in res.inputs]
    nets, archs = len({r["network"] for r in rows}), len({r["arch"] for r in rows})
    points = len({(r["arch"], r["point"]) for r in rows})
    out += ["", f"{plural(len(res.files), 'result file')}; {plural(len(rows), 'result row')}: "
            f"{plural(nets, 'network')}, {plural(archs, 'architecture')}"
            + (f", {plural(points, 'design point')} in all" if has_point else "") + ".", ""]
    if base is not None:
        out += [f"Baseline: `{base.name}`. Speed-up = baseline latency / latency (seconds; "
                "cycles only when neither design has a clock); "
                "energy ratio = energy / baseline energy (below 1 is better).", ""]
    out += ["## Totals", ""]
    head = ["network", "architecture"] + (["point"] if has_point else []) + \
        [c.removeprefix("param.") for c in pcols] + \
        ["MACs", "cycles", "clock (MHz)", "latency (ms)", "energy (uJ)", "pJ/MAC", "power (mW)",
         "area (mm2)", "utilization"]
    if base is not None:
        head += ["speed-up", "energy ratio", "area ratio"]
    body = []
    for r in rows:
        line = [r["network"], r["arch"]]
        if has_point:
            line.append(short_point(r["network"], r["arch"], r["point"]) or r["point"])
        line += [str(r[c]) for c in pcols]
        e, lat = num(r["energy_pJ"]), num(r["latency_s"])
        clock, power = num(r["clock_hz"]), num(r["power_W"])
        line += [_i(r["macs"]), _i(r["cycles"]), "" if clock is None else f"{clock / 1e6:g}",
                 "" if lat is None else f"{lat * 1e3:.4g}", "" if e is None else _g(e / 1e6),
                 _g(r["pJ_per_mac"]), "" if power is None else f"{power * 1e3:.4g}",
                 _g(r["area_mm2"]), _g(r["utilization"])]
        if r.get("energy_pinned") in ("True", True):
            line[0] += " (energy pinned)"
        if base is not None:
            sp = _x(r["speedup_vs_baseline"])
            line += [sp + (" (cycles)" if r["speedup_basis"] == "cycles" else ""),
                     _x(r["energy_ratio_vs_baseline"]), _x(r["area_ratio_vs_baseline"])]
        body.append(line)
    out += _md_table(head, body, set(range(head.index("MACs"), len(head))))
    out += _streaming_md(rows)
    out += _fused_md(rows)
    out += ["", "Latency = cycles / clock; a design without a clock has no latency, power or "
            "seconds-based speed-up (cycles only).", "", "## Best per network", ""]
    best = []
    for net in sorted({r["network"] for r in rows}, key=natural_key):
        runs = [r for r in rows if r["network"] == net and num(r["cycles"]) is not None]
        mine = [r for r in runs if num(r["energy_pJ"]) is not None]

        def name(r: dict) -> str:
            return display(r["network"], r["arch"], r["point"])

        ranked = mine or runs  # no energy model (e.g. MAX78000): the fastest is still known
        if not ranked:
            continue
        timed = all(num(r["latency_s"]) is not None for r in ranked)
        key = "latency_s" if timed else "cycles"
        lo_c = min(ranked, key=lambda r: (num(r[key]), name(r)))
        fast = (f"{num(lo_c['latency_s']) * 1e3:.4g} ms" if timed else
                f"{_i(lo_c['cycles'])} cycles")
        if not mine:
            best.append([net, "- (energy not modelled)", f"{name(lo_c)} ({fast})", "-", "-"])
            continue
        lo_e = min(mine, key=lambda r: (num(r["energy_pJ"]), name(r)))
        lo_d = min(mine, key=lambda r: (num(r["energy_pJ"]) * num(r[key]), name(r)))
        front = pareto([(num(r[key]), num(r["energy_pJ"])) for r in mine])
        edp = num(lo_d["energy_pJ"]) * num(lo_d[key])
        best.append([net, f"{name(lo_e)} ({_g(num(lo_e['energy_pJ']) / 1e6)} uJ)",
                     f"{name(lo_c)} ({fast})",
                     f"{name(lo_d)} ({edp * 1e-12:.4g} J*s)" if timed else
                     f"{name(lo_d)} ({edp / 1e6:.4g} uJ*cycles)",
                     ", ".join(name(mine[i]) for i in front)])
        if not timed:
            notes.append(f"{net}: ranked by cycles, because "
                         + ", ".join(name(r) for r in mine if num(r["latency_s"]) is None)
                         + " has no clock")
    out += _md_table(["network", "lowest energy", "fastest", "lowest energy x delay",
                      "Pareto-optimal (energy, latency)"], best, set())
    out += ["", "## Files", ""]
    out += [f"- `{f}`" for f in files]
    if plots:
        out += ["", "## Plots", ""]
        for p in plots:
            out += [f"![{p}]({p}.png)", ""]
        out.pop()
    if notes:
        out += ["", "## Notes", ""]
        out += [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"
