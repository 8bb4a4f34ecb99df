"""Actions: the names of the things a level or the compute unit does, and their energies.

Counts are kept per action (`ACTIONS`, an axis of the model's count arrays), so a new kind of
access (gated, skipped, metadata) is a new name here, not a new code path.
"""

from __future__ import annotations

from dse.errors import SpecError

# storage actions, in the order of the model's action axis
ACTIONS: tuple[str, ...] = ("read", "fill", "update")
# the energy-table entry that prices each storage action (a fill is a write)
ENERGY_KEY: dict[str, str] = {"read": "read", "fill": "write", "update": "update"}


def action_energy(arch_level, action: str) -> float:
    """pJ per (vector) access of `action`; update falls back to write; missing is an error."""
    e = arch_level.energy
    if action == "update" and "update" not in e:
        action = "write"
    if action not in e:
        raise SpecError(
            f"no energy per '{action}' for component {arch_level.name}",
            hint="give it inline (energy: {read: ..}), pass an ERT file, or choose an estimator",
        )
    return e[action].pJ
