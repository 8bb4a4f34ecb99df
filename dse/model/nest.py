"""The flattened loop nest of one mapping and the boxes (tiles) it induces.

Loops are listed outermost first. Each storage level owns a block: its temporal loops, then the
spatial loops that spread its tile over the next inner level. A loop's op-space stride is the
product of the bounds of all loops below it over the same dimension (Timeloop's vector stride).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dse.mapping import Loop, Mapping
from dse.workload.problem import Problem


@dataclass(frozen=True)
class NestLoop:
    dim: str
    bound: int
    level: int
    spatial: bool
    spatial_x: bool
    stride: int  # op-space step of one iteration (product of inner bounds in this dim)


@dataclass(frozen=True)
class Nest:
    loops: tuple[NestLoop, ...]  # outermost first
    n_levels: int
    dims: tuple[str, ...]

    def block(self, level: int) -> list[NestLoop]:
        return [lp for lp in self.loops if lp.level == level]

    def box(self, level: int) -> dict[str, int]:
        """Per-dimension extent of the tile at `level` (its block and everything below).

        `level == n_levels` is the compute unit: one operation point.
        """
        sizes = {d: 1 for d in self.dims}
        for lp in self.loops:
            if lp.level >= level:
                sizes[lp.dim] *= lp.bound
        return sizes

    def spatial_box(self, level: int) -> dict[str, int]:
        """Extent covered by one iteration of level's temporal loops (its spatial loops + below)."""
        sizes = self.box(level + 1)
        for lp in self.block(level):
            if lp.spatial:
                sizes[lp.dim] *= lp.bound
        return sizes

    def temporal_above(self, boundary: int) -> list[NestLoop]:
        """Temporal loops outside the tile of level `boundary`, innermost first."""
        return [lp for lp in reversed(self.loops) if lp.level < boundary and not lp.spatial]

    def spatial_loops(self, level: int) -> list[NestLoop]:
        return [lp for lp in self.block(level) if lp.spatial]

    def spatial_product_above(self, boundary: int) -> int:
        """Instances of level `boundary` that hold data: spatial fan-out used above it."""
        return math.prod(lp.bound for lp in self.loops if lp.spatial and lp.level < boundary)

    @property
    def temporal_iterations(self) -> int:
        return math.prod(lp.bound for lp in self.loops if not lp.spatial)

    @property
    def spatial_iterations(self) -> int:
        return math.prod(lp.bound for lp in self.loops if lp.spatial)


def build_nest(problem: Problem, mapping: Mapping) -> Nest:
    raw: list[Loop] = mapping.loops(problem.dims)
    strides = [0] * len(raw)
    running = {d: 1 for d in problem.dims}
    for idx in range(len(raw) - 1, -1, -1):
        lp = raw[idx]
        strides[idx] = running[lp.dim]
        running[lp.dim] *= lp.bound
    loops = tuple(
        NestLoop(lp.dim, lp.bound, lp.level, lp.spatial, lp.spatial_x, strides[i])
        for i, lp in enumerate(raw)
    )
    return Nest(loops, len(mapping.levels), problem.dims)
