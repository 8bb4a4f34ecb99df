"""Which Timeloop build the model reproduces ("generation"), and what differs between them.

`2024` (default) is the Timeloop that produced the current v0.4 reference outputs. `legacy` is the
Timeloop of the v0.3 era (the 2020 ISPASS tutorial's reference outputs, built before June 2021).
Read from Timeloop's history (NVlabs/timeloop), three things changed since then:

* per-action energies: until the Sparseloop merge (c1ca4d0, 2021-06-16) `ParseAccelergyERT`
  took the most expensive entry of a component's ERT table (all actions, all arguments) as its one
  energy per access (buffers: per vector access; arithmetic: per operation);
* output fills: first fills of a read-write tensor (outputs) were elided only from 59fdc83
  (2023-05-02); before it a level's output fills were its whole parent share (reads were already
  elided: content accesses minus the partition);
* leakage: charged only from feb3bd0 (2023-09-15).

The count and energy formulas stay in the models; this module only says which rule applies and
prepares the architecture's energies for the legacy rule (the same for the scalar and batch model).
"""

from __future__ import annotations

from dataclasses import replace

from dse.arch.architecture import Architecture, Energy
from dse.errors import SpecError

GENERATIONS = ("2024", "legacy")
DEFAULT = "2024"


def check(generation: str) -> str:
    if generation not in GENERATIONS:
        raise SpecError(f"unknown Timeloop generation '{generation}'",
                        expected=" or ".join(GENERATIONS))
    return generation


def elides_output_fills(generation: str) -> bool:
    return check(generation) != "legacy"


def _one_energy(energy: dict[str, Energy]) -> Energy | None:
    """The most expensive per-access action (leakage is per cycle, not an access)."""
    candidates = [e for a, e in energy.items() if a != "leak"]
    return max(candidates, key=lambda e: e.pJ) if candidates else None


def energies_for(arch: Architecture, generation: str) -> Architecture:
    """The architecture with energies as that generation charges them (unchanged for 2024)."""
    if check(generation) != "legacy":
        return arch
    levels = []
    for lv in arch.levels:
        top = _one_energy(lv.energy)
        e = {} if top is None else {"read": top, "write": top, "update": top}
        levels.append(replace(lv, energy=e))
    top = _one_energy(arch.compute.energy)
    ce = {} if top is None else {"compute": top}
    return replace(arch, levels=tuple(levels), compute=replace(arch.compute, energy=ce))
