"""Text views of an architecture for `dse arch show|list`: the hierarchy outer to inner with
sizes, fan-outs, bandwidths and kept tensors; peak MACs/cycle and clock; every energy per action
with its source; rules, granularity and parameters."""

from __future__ import annotations

from dse.arch.architecture import Architecture, StorageLevel
from dse.spec.arch_library import LoadedArch


def _bytes(n: float) -> str:
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= size:
            v = n / size
            return f"{v:,.0f} {unit}" if v == int(v) else f"{v:,.2f} {unit}"
    return f"{n:,.0f} B"


def _num(x) -> str:
    if x is None:
        return "-"
    return f"{x:g}" if isinstance(x, float) else str(x)


def _hz(hz: float | None) -> str:
    if hz is None:
        return "not given"
    return f"{hz / 1e9:g} GHz" if hz >= 1e9 else f"{hz / 1e6:g} MHz"


def display_path(p) -> str:
    """A path relative to the working directory when it is below it."""
    from pathlib import Path

    try:
        return str(Path(p).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def peak_macs_per_cycle(arch: Architecture) -> int:
    """Compute units in the whole array (every fan-out multiplied in), one MAC each per cycle."""
    return arch.compute.instances


def _capacity(lv: StorageLevel) -> str:
    if lv.capacity_words is None:
        return "unbounded"
    words = lv.capacity_words
    return f"{words:,} w ({_bytes(words * lv.datawidth / 8)})"


def _keeps(lv: StorageLevel, keep: dict) -> str:
    if lv.is_dummy:
        return ""
    k, b = keep.get(lv.name, (None, None))
    if k is not None:
        text = ", ".join(k)
    else:
        text = "any"
    if b:
        text += " (bypass " + ", ".join(b) + ")"
    return text


def hierarchy_rows(arch: Architecture, keep: dict) -> list[list[str]]:
    rows = []
    for i, lv in enumerate(arch.levels):
        fx, fy = arch.fanout(i)
        fan = f"{fx}x{fy}" if (fx, fy) != (1, 1) else ""
        if lv.is_dummy:
            rows.append([lv.name, "fan-out", f"{lv.instances:,}", f"{lv.mesh_x}x{lv.mesh_y}",
                         "", "", "", fan, ""])
            continue
        bw = "/".join(_num(x) for x in (lv.read_bandwidth, lv.write_bandwidth,
                                        lv.shared_bandwidth))
        banks = lv.attributes.get("banks")
        cls = (lv.cls or "-") + (f" x{banks} banks" if banks else "")
        rows.append([lv.name, cls, f"{lv.instances:,}", f"{lv.mesh_x}x{lv.mesh_y}",
                     _capacity(lv), f"{lv.block_size} x {lv.datawidth} b",
                     "" if bw == "-/-/-" else bw, fan, _keeps(lv, keep)])
    c = arch.compute
    rows.append([c.name, f"compute {c.cls}".strip(), f"{c.instances:,}", f"{c.mesh_x}x{c.mesh_y}",
                 "", f"{c.datawidth} b" if c.datawidth else "", "", "", ""])
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
           "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(out)


def energy_rows(arch: Architecture) -> list[tuple[str, float, str]]:
    rows = []
    for lv in arch.levels:
        for action in ("read", "write", "update", "leak"):
            if action in lv.energy:
                e = lv.energy[action]
                rows.append((f"{lv.name}.{action}", e.pJ, e.source))
    for action in ("compute", "leak"):
        if action in arch.compute.energy:
            e = arch.compute.energy[action]
            rows.append((f"{arch.compute.name}.{action}", e.pJ, e.source))
    return rows


def area_lines(arch: Architecture) -> list[str]:
    """Area per level (all instances) and in total, each with its source."""
    from dse.energy.area import level_areas_mm2, with_area

    arch = with_area(arch)
    areas = level_areas_mm2(arch)
    src = {lv.name: lv.area_source for lv in arch.levels}
    src[arch.compute.name] = arch.compute.area_source
    w = max(len(n) for n in areas)
    lines = [f"area (mm^2, all instances): total {sum(areas.values()):.4f}"]
    lines += [f"  {n:<{w}}  {a:>10.4f}  {src[n]}" for n, a in areas.items()]
    return lines


def arch_text(loaded: LoadedArch) -> str:
    arch = loaded.arch
    a = arch.attributes
    peak = peak_macs_per_cycle(arch)
    lines = [f"{arch.name}  ({display_path(loaded.path)})"]
    if a.get("extends"):
        lines.append(f"extends {display_path(a['extends'])}")
    lines.append(f"clock {_hz(arch.clock_hz)}; technology {arch.technology or 'not given'}; "
                 f"energy model {a.get('energy_model', 'none (energies from the spec/ERT)')}")
    rate = f" = {peak * arch.clock_hz / 1e9:,.4g} GMAC/s at {_hz(arch.clock_hz)}" \
        if arch.clock_hz else ""
    lines.append(f"peak {peak:,} MACs/cycle ({arch.compute.instances:,} x {arch.compute.name}, "
                 f"one MAC each per cycle){rate}")
    if a.get("parameters"):
        lines.append("parameters: " + ", ".join(f"{k}={_num(v)}"
                                                for k, v in a["parameters"].items()))
    lines.append("")
    lines.append("levels, outermost first (capacity per instance; bandwidth in words/cycle per "
                 "instance, read/write/shared; fan-out = to the next level down):")
    header = ["level", "class", "instances", "mesh", "capacity", "row", "bandwidth", "fan-out",
              "keeps"]
    lines.append(_table(header, hierarchy_rows(arch, loaded.keep)))
    lines.append("")
    lines.append("energy per action (pJ per row access; compute: per MAC; leak: per cycle per "
                 "instance):")
    erows = energy_rows(arch)
    if erows:
        w = max(len(r[0]) for r in erows)
        for name, pj, src in erows:
            lines.append(f"  {name:<{w}}  {pj:>12.4f}  {src}")
    else:
        lines.append("  none given (pass an ERT file or set energy_model:)")
    missing = [f"{lv.name}.{x}" for lv in arch.levels if not lv.is_dummy
               for x in ("read", "write") if x not in lv.energy]
    if "compute" not in arch.compute.energy:
        missing.append(f"{arch.compute.name}.compute")
    if missing:
        lines.append("  missing (the model will stop if it needs them): " + ", ".join(missing))
    lines += ["", *area_lines(arch)]
    if a.get("rules"):
        lines.append("")
        lines.append("rules (checked before mapping, dse/arch/rules.py):")
        for k, v in a["rules"].items():
            text = (str(v).lower() if isinstance(v, bool) else
                    f"{v:,}" if isinstance(v, int) else str(v))
            lines.append(f"  {k}: {text}")
    if a.get("dimension_granularity"):
        lines.append("")
        lines.append("dimension granularity (bounds padded before mapping):")
        for d, (size, mult) in a["dimension_granularity"].items():
            lines.append(f"  {d}: passes of up to {size}, each a multiple of {mult}")
    cons = list(loaded.constraint_keys)
    if loaded.constraints_file:
        cons.append(f"optional: {display_path(loaded.constraints_file)}")
    if cons:
        lines.append("")
        lines.append("mapping constraints: " + "; ".join(cons))
    return "\n".join(lines)


def list_rows(paths) -> list[list[str]]:
    from dse.spec.arch_library import load_architecture

    rows = []
    for p in paths:
        la = load_architecture(p)
        arch = la.arch
        rows.append([p.stem, arch.name, f"{arch.compute.instances:,}", _hz(arch.clock_hz),
                     arch.technology or "-", arch.attributes.get("energy_model", "spec"),
                     display_path(p)])
    return rows


def list_text(paths) -> str:
    header = ["name", "architecture", "peak MACs/cycle", "clock", "technology", "energies",
              "file"]
    return _table(header, list_rows(paths))


def streaming_list_text(paths) -> str:
    """One row per streaming design: its board's budgets and clock."""
    from dse.spec.streaming_arch import load_streaming

    rows = []
    for p in paths:
        a = load_streaming(p)
        b = a.board
        rows.append([p.stem, b.name, f"{b.dsp:,}", f"{b.bram36:,}", f"{b.uram:,}",
                     _hz(b.clock_hz), display_path(p)])
    return _table(["name", "board", "DSP", "BRAM36", "URAM", "clock", "file"], rows)


def streaming_arch_text(a) -> str:
    """`dse arch show` for a streaming design: board, engine template, memories."""
    b, e, m = a.board, a.engine, a.memory
    packing = ", ".join(f"<= {bits} bit: {n}" for bits, n in e.products_per_dsp)
    lines = [
        f"{a.name}: streaming dataflow design, one engine per layer (docs/streaming.md)",
        f"board: {b.name} ({b.device or 'device not given'}), {b.dsp:,} DSP, {b.bram36:,} "
        f"BRAM36, {b.uram:,} URAM, {b.lut:,} LUT, clock {_hz(b.clock_hz)}",
        f"  source: {b.source or '-'}",
        f"engine: och_par <= {e.max_och_par}, ich_par <= {e.max_ich_par}, ow_par <= "
        f"{e.max_ow_par}, kernel taps unrolled; DSP packing "
        + (f"on ({packing} products per DSP)" if e.dsp_packing else "off"),
        f"  1x1 shortcut merged into its 3x3 conv: {'yes' if e.merge_shortcut else 'no'}; "
        f"line buffer as a pipeline stage: {'yes' if e.line_buffer_stage else 'no'}",
        f"memory: LUTRAM up to {m.lutram_max_bits:,} bits, BRAM36 {m.bram36_bits:,} bits, "
        f"stream FIFO depth {m.fifo_depth}",
        "skip connections: " + ("forwarded through the first conv" if a.skip_forwarding
                                else "stored whole"),
        "power: " + (f"static {a.power.static_W} W, {a.power.per_dsp_W} W/DSP, "
                     f"{a.power.per_bram36_W} W/BRAM36 ({a.power.source})" if a.power
                     else "not given (no per-resource figures are published for these designs)"),
    ]
    return "\n".join(lines)
