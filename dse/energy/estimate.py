"""Fill in missing energies per action from tables: `estimate(arch, model)`.

Only actions an architecture does not already give are filled (inline and ERT energies are never
replaced), each with the source `estimator:<model> (<what was assumed>)`. Leakage is never
estimated. Models:

* `table-45nm` — energy per access of SRAM / register files from the array size per bank and the
  row width, DRAM per bit, MACs from the operand width, all at 45 nm and scaled to the
  architecture's technology node (dse/energy/data/, docs/energy.md).
* `eyeriss-normalized` — Eyeriss' relative costs (ISCA 2016 Table IV): per word, MAC 1, RF 1,
  GLB 6, DRAM 200, in units of the `table-45nm` MAC energy at the architecture's node.
"""

from __future__ import annotations

from dataclasses import replace

from dse.arch.architecture import Architecture, ComputeLevel, Energy, StorageLevel
from dse.energy.tables import (
    mac_energy,
    storage_kind,
    storage_per_bit,
    tables,
    technology_factor,
)
from dse.errors import SpecError, did_you_mean

MODELS = ("table-45nm", "eyeriss-normalized")
STORAGE_ACTIONS = ("read", "write", "update")
DRAM_TYPE = "LPDDR4"


def _size_text(nbytes: float) -> str:
    if nbytes >= 1024 * 1024 and nbytes % (1024 * 1024) == 0:
        return f"{nbytes / 1024 / 1024:g} MiB"
    if nbytes >= 1024:
        return f"{nbytes / 1024:g} KiB"
    return f"{nbytes:g} B"


def compute_bits(arch: Architecture) -> int:
    """Operand width of the MAC: compute.datawidth, else the innermost storage level's."""
    if arch.compute.datawidth:
        return int(arch.compute.datawidth)
    for lv in reversed(arch.levels):
        if not lv.is_dummy:
            return int(lv.datawidth)
    raise SpecError(f"architecture {arch.name} has no storage level to take a datawidth from")


def is_floating(cls: str) -> bool:
    c = cls.lower()
    return "fp" in c or "float" in c


def _fill(existing: dict[str, Energy], values: dict[str, float], source: str) -> dict[str, Energy]:
    out = dict(existing)
    for action, pj in values.items():
        if action not in out:
            out[action] = Energy(float(pj), source)
    return out


# ----------------------------------------------------------------------------- table-45nm


def table_storage(lv: StorageLevel, factor: float, tech_note: str) -> tuple[dict, str]:
    """Per-action energies (pJ per row access) of one storage level, and the source text."""
    width = lv.width or lv.datawidth * lv.block_size
    if lv.is_dram:
        per_bit, _ = tables().dram[DRAM_TYPE]
        pj = per_bit * width
        return ({a: pj for a in STORAGE_ACTIONS},
                f"estimator:table-45nm ({DRAM_TYPE} {per_bit:g} pJ/bit x {width}-bit row; "
                "DRAM not scaled with the node)")
    banks = int(lv.attributes.get("banks", 1) or 1)
    size = lv.depth * width / 8 / banks
    kind = storage_kind(lv.cls)
    rd, wr, _ = storage_per_bit(kind, size)
    bank_txt = f" per bank x {banks} banks" if banks > 1 else ""
    src = (f"estimator:table-45nm ({'register file' if kind == 'regfile' else 'SRAM'} "
           f"{_size_text(size)}{bank_txt}, {width}-bit row, x{factor:.3g} for {tech_note})")
    return ({"read": rd * width * factor, "write": wr * width * factor,
             "update": wr * width * factor}, src)


def table_compute(arch: Architecture, factor: float, tech_note: str) -> tuple[dict, str]:
    bits = compute_bits(arch)
    fp = is_floating(arch.compute.cls)
    pj = mac_energy(bits, fp) * factor
    kind = "floating-point" if fp else "integer"
    src = (f"estimator:table-45nm ({bits}-bit {kind} MAC, x{factor:.3g} for {tech_note})")
    return {"compute": pj}, src


# ----------------------------------------------------------------------------- eyeriss-normalized


RF_MAX_BYTES = 10_000  # between ISCA16's RF (0.5-1.0 kB) and GLB (100-500 kB) sizes


def normalized_category(lv: StorageLevel) -> str:
    """DRAM for DRAM levels; RF for on-chip levels of at most 10 kB per instance (ISCA16's RF
    is 0.5-1.0 kB, its GLB 100-500 kB; 10 kB is the geometric middle); GLB above."""
    if lv.is_dram:
        return "DRAM"
    width = lv.width or lv.datawidth * lv.block_size
    return "RF" if lv.depth * width / 8 <= RF_MAX_BYTES else "GLB"


# ----------------------------------------------------------------------------- entry point


def estimate(arch: Architecture, model: str = "table-45nm",
             technology: str | None = None) -> Architecture:
    """A copy of `arch` with every missing read/write/update/compute energy filled by `model`.

    `technology` overrides the architecture's own (e.g. '65nm' or '65nm 1.0V'); without either,
    the tables' 45 nm values are used unscaled (the source text says so).
    """
    if model not in MODELS:
        raise SpecError(f"unknown energy model {model!r}", expected="one of " + ", ".join(MODELS),
                        hint=did_you_mean(model, MODELS))
    tech = technology if technology is not None else arch.technology
    factor, note = technology_factor(tech)
    levels = []
    if model == "table-45nm":
        for lv in arch.levels:
            if lv.is_dummy or all(a in lv.energy for a in STORAGE_ACTIONS):
                levels.append(lv)
                continue
            values, src = table_storage(lv, factor, note)
            levels.append(replace(lv, energy=_fill(lv.energy, values, src)))
        comp = arch.compute
        if "compute" not in comp.energy:
            values, src = table_compute(arch, factor, note)
            comp = replace(comp, energy=_fill(comp.energy, values, src))
    else:
        unit = mac_energy(compute_bits(arch), is_floating(arch.compute.cls)) * factor
        rel = tables().normalized
        for lv in arch.levels:
            if lv.is_dummy or all(a in lv.energy for a in STORAGE_ACTIONS):
                levels.append(lv)
                continue
            cat = normalized_category(lv)
            per_word = rel[cat][0] * unit
            pj = per_word * lv.block_size
            src = (f"estimator:eyeriss-normalized ({cat} {rel[cat][0]:g} x MAC {unit:.3g} pJ "
                   f"per word x {lv.block_size} words/row; {note})")
            levels.append(replace(lv, energy=_fill(lv.energy, {a: pj for a in STORAGE_ACTIONS},
                                                   src)))
        comp: ComputeLevel = arch.compute
        if "compute" not in comp.energy:
            src = (f"estimator:eyeriss-normalized (MAC 1 x {unit:.3g} pJ = table-45nm "
                   f"{compute_bits(arch)}-bit MAC; {note})")
            comp = replace(comp, energy=_fill(comp.energy, {"compute": rel["MAC"][0] * unit},
                                              src))
    attrs = dict(arch.attributes)
    attrs.setdefault("energy_model", model)
    return replace(arch, levels=tuple(levels), compute=comp, attributes=attrs)
