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


# compute actions (Problem.compute_action) and the compute unit's energy-table entry for each;
# "compute" is the MAC energy every architecture gives
COMPUTE_ACTIONS: dict[str, str] = {"mac": "compute", "add": "add", "compare": "compare"}


def compute_energy(compute_level, action: str,
                   arch_file: str | None = None) -> tuple[float, str, str]:
    """(pJ per operation, energy source, energy-table key) of a compute action. An add or
    compare that the architecture prices nowhere is charged the MAC energy, and the source
    says so (an upper bound, not a silent choice). A missing MAC energy is a SpecError naming
    `arch_file` (the architecture's file)."""
    if action not in COMPUTE_ACTIONS:
        raise SpecError(f"unknown compute action '{action}'",
                        expected=", ".join(COMPUTE_ACTIONS))
    key = COMPUTE_ACTIONS[action]
    e = compute_level.energy
    if key in e:
        return e[key].pJ, e[key].source, key
    try:
        pj = action_energy(compute_level, "compute")
    except SpecError as exc:
        raise SpecError(exc.message, file=arch_file, line=None,
                        key_path=f"{compute_level.name}.energy", hint=exc.hint) from None
    return pj, (f"{e['compute'].source}; MAC energy, as {compute_level.name} gives no "
                f"'{key}' energy"), key


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
