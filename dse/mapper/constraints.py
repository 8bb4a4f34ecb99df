"""Mapspace constraints as one plain object (read by dse.spec.constraints from Timeloop's
`constraints`/`architecture_constraints`/`mapspace_constraints` targets, v0.4 per-node
constraints and native `keep:` lists).

Factor constraints use `D=n` (exact), `D<=n`, `D>=n`; a partial permutation lists the innermost
loops in order (`prefix _ suffix` also fixes the outermost ones); a spatial `split` with a
permutation fixes which dims may go to mesh X (the first `split`) or Y.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dse.arch.architecture import Architecture
from dse.errors import SpecError


@dataclass
class LevelConstraints:
    temporal_exact: dict[str, int] = field(default_factory=dict)
    temporal_max: dict[str, int] = field(default_factory=dict)
    temporal_min: dict[str, int] = field(default_factory=dict)
    spatial_exact: dict[str, int] = field(default_factory=dict)
    spatial_max: dict[str, int] = field(default_factory=dict)
    spatial_min: dict[str, int] = field(default_factory=dict)
    perm_inner: tuple[str, ...] = ()  # innermost-first fixed prefix
    perm_outer: tuple[str, ...] = ()  # fixed outermost loops, innermost-first
    x_only: frozenset[str] = frozenset()
    y_only: frozenset[str] = frozenset()
    keep: frozenset[str] = frozenset()  # must keep
    bypass: frozenset[str] = frozenset()  # must bypass
    min_utilization: float = 0.0


@dataclass
class Constraints:
    levels: dict[str, LevelConstraints]
    min_utilization: float = 0.0  # over all PEs
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was read differently than written

    def level(self, name: str) -> LevelConstraints:
        return self.levels.setdefault(name, LevelConstraints())


def outermost_bypass_error(arch: Architecture, tensors, **location) -> SpecError:
    """Refused before any search: the outermost level is the backing store of every tensor."""
    return SpecError(f"constraints bypass {', '.join(sorted(tensors))} at the outermost level "
                     f"{arch.levels[0].name}, which must keep every tensor",
                     hint="bypass at an inner level instead", **location)


