"""Area per component: from an Accelergy ART when one is given, else from sourced tables.

Tables (dse/energy/data/area_45nm.csv, compute_area_45nm.csv; docs/energy.md):

* SRAM and register files: area per bit, a piecewise power law in the array size through
  Accelergy 45 nm anchors (CACTI SRAM, Library register files, each with its periphery), times
  the level's bits per instance;
* MACs: multiplier(n) + adder(2n) (integer) or multiplier(n) + adder(n) (floating point), power
  laws in the bit width through Horowitz's 45 nm synthesis areas;
* DRAM: off chip, 0 (as Accelergy's CactiDRAM reports);
* fan-out (network) levels: 0 (dse models no wires), unless an ART gives them an area.

The 45 nm areas scale with the node by the ratio of published 6T SRAM bit-cell areas
(area_scaling.csv: node -> um^2, 90 to 5 nm; a power law in the node between table rows, the
nearest end row outside them), applied to logic too. Node names below ~20 nm no longer measure
a length, so (node/45)^2 would shrink a 4 nm design 8x too far; the bit cells do not. Areas are
in um^2 per instance; reports use mm^2.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from dse.arch.architecture import Architecture, StorageLevel
from dse.energy.tables import (
    BASE_NODE_NM,
    _rows,
    parse_technology,
    power_law,
    storage_kind,
)


@functools.cache
def area_tables() -> tuple[dict[str, list[tuple[float, float]]], dict[str, list]]:
    """({kind: [(bytes, um^2 per bit)]}, {op: [(bits, um^2)]}) at 45 nm."""
    storage: dict[str, list[tuple[float, float]]] = {}
    for r in _rows("area_45nm.csv"):
        bits = float(r["size_bytes"]) * 8
        storage.setdefault(r["kind"], []).append((float(r["size_bytes"]),
                                                  float(r["area_um2"]) / bits))
    compute: dict[str, list] = {}
    for r in _rows("compute_area_45nm.csv"):
        compute.setdefault(r["op"], []).append((float(r["bits"]), float(r["area_um2"])))
    return storage, compute


@functools.cache
def bitcells() -> list[tuple[float, float]]:
    """(node nm, 6T SRAM bit-cell um^2), largest node first."""
    return sorted(((float(r["node_nm"]), float(r["sram_bitcell_um2"]))
                   for r in _rows("area_scaling.csv")), reverse=True)


def area_factor(technology) -> tuple[float, str]:
    """Bit-cell area at the node / at 45 nm, and a note; no technology = the tables' 45 nm."""
    if technology is None:
        return 1.0, "45 nm (no technology given)"
    node, _ = parse_technology(technology)
    cells = bitcells()
    base = dict(cells)[BASE_NODE_NM]
    lo_node, hi_node = cells[-1][0], cells[0][0]
    clamped = min(max(node, lo_node), hi_node)
    f = power_law(cells, clamped) / base
    note = f"x{f:.3g} SRAM bit-cell area {technology} / 45 nm"
    if clamped != node:
        note += f" (outside the table: scaled as {clamped:g} nm)"
    return f, note


def storage_area(lv: StorageLevel, factor: float, note: str) -> tuple[float, str]:
    """um^2 of one instance of a storage level, and the source text."""
    if lv.is_dummy:
        return 0.0, "fan-out: no wires modelled"
    if lv.is_dram:
        return 0.0, "DRAM: off chip"
    width = lv.width or lv.datawidth * lv.block_size
    bits = lv.depth * width
    banks = int(lv.attributes.get("banks", 1) or 1)
    kind = storage_kind(lv.cls)
    per_bit = power_law(area_tables()[0][kind], bits / 8 / banks)
    name = "register file" if kind == "regfile" else "SRAM"
    bank_txt = f" in {banks} banks" if banks > 1 else ""
    return (per_bit * bits * factor,
            f"table ({name} {bits} bits{bank_txt}, {per_bit:.3g} um^2/bit at 45 nm, {note})")


def compute_area(arch: Architecture, factor: float, note: str) -> tuple[float, str]:
    from dse.energy.estimate import compute_bits, is_floating

    bits = compute_bits(arch)
    fp = is_floating(arch.compute.cls)
    kind = "fp" if fp else "int"
    _, t = area_tables()
    add_bits = bits if fp else 2 * bits
    um2 = power_law(t[f"{kind}_mult"], bits) + power_law(t[f"{kind}_add"], add_bits)
    return um2 * factor, (f"table ({bits}-bit {'floating-point' if fp else 'integer'} MAC, "
                          f"Horowitz 45 nm, {note})")


def with_area(arch: Architecture) -> Architecture:
    """A copy with `area_um2` filled (per instance) wherever no ART gave one."""
    factor, note = area_factor(arch.technology)
    levels = []
    for lv in arch.levels:
        if lv.area_um2 is None:
            um2, src = storage_area(lv, factor, note)
            lv = replace(lv, area_um2=um2, area_source=src)
        levels.append(lv)
    comp = arch.compute
    if comp.area_um2 is None:
        um2, src = compute_area(arch, factor, note)
        comp = replace(comp, area_um2=um2, area_source=src)
    return replace(arch, levels=tuple(levels), compute=comp)


def level_areas_mm2(arch: Architecture) -> dict[str, float]:
    """Total area per level over all its instances, mm^2 (storage levels with an area, the
    compute units last); fan-out levels only when an ART gave them one."""
    arch = with_area(arch) if arch.compute.area_um2 is None else arch
    out = {}
    for lv in arch.levels:
        if lv.is_dummy and not lv.area_um2:
            continue
        out[lv.name] = (lv.area_um2 or 0.0) * lv.instances / 1e6
    out[arch.compute.name] = (arch.compute.area_um2 or 0.0) * arch.compute.instances / 1e6
    return out


def total_area_mm2(arch: Architecture) -> float:
    return sum(level_areas_mm2(arch).values())
