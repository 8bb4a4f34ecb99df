"""Which fan-outs may forward tiles between neighbouring instances (link transfers).

Timeloop considers neighbour-to-neighbour transfers at every fan-out, including the one into
the arithmetic units, which hold no data: there the saved parent accesses are never charged to
anyone (tiling.cpp `ComputePeerAccesses` stops above the innermost level). Modes:

* `timeloop` - Timeloop's behaviour, kept for Timeloop inputs so its reference outputs match;
* `declared` - only between instances of a storage level that keeps the tensor and declares
  `neighbour_links: true` (the native default): peer reads and fills are charged there;
* `off` - no link transfers (Timeloop's TIMELOOP_DISABLE_LINK_TRANSFERS).
"""

from __future__ import annotations

from dse.arch.architecture import Architecture
from dse.errors import SpecError, did_you_mean

LINK_MODES = ("timeloop", "declared", "off")


def resolve_link_mode(arch: Architecture, mode: str | bool | None) -> str:
    """The mode to use: None = the architecture's default; True/False = timeloop/off."""
    if mode is None:
        mode = arch.default_link_transfers
    elif mode is True:
        mode = "timeloop"
    elif mode is False:
        mode = "off"
    if mode not in LINK_MODES:
        raise SpecError(f"unknown link-transfer mode {mode!r}", expected=", ".join(LINK_MODES),
                        hint=did_you_mean(str(mode), LINK_MODES))
    return mode


def linked_fanouts(arch: Architecture, mode: str) -> tuple[bool, ...]:
    """Per level i: may its fan-out (children = level i+1, or the compute units) use links?
    In `declared` mode the children must also keep the tensor (checked per tensor)."""
    n = len(arch.levels)
    if mode == "off":
        return (False,) * n
    if mode == "timeloop":
        return (True,) * n
    return tuple(i + 1 < n and arch.levels[i + 1].neighbour_links
                 and not arch.levels[i + 1].is_dummy for i in range(n))
