"""Mappings: per storage level, temporal loops (factors + order), spatial loops to the next
inner level (factors + order + X/Y split) and which tensors the level keeps.

Orders are innermost-first, as Timeloop's `permutation` strings are. Spatial loops placed at
level i distribute level i's tile over the fan-out between level i and the next inner level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LevelMapping:
    target: str
    temporal: dict[str, int] = field(default_factory=dict)
    temporal_order: tuple[str, ...] = ()  # innermost first; dims not listed go outermost
    spatial: dict[str, int] = field(default_factory=dict)
    spatial_order: tuple[str, ...] = ()  # innermost first
    split: int | None = None  # first `split` dims of spatial_order map to mesh X; None = all X
    keep: frozenset[str] | None = None  # None = keeps every tensor

    def keeps(self, tensor: str) -> bool:
        return self.keep is None or tensor in self.keep


@dataclass(frozen=True)
class Loop:
    dim: str
    bound: int
    level: int  # storage level index (0 = outermost)
    spatial: bool = False
    spatial_x: bool = False


@dataclass(frozen=True)
class Mapping:
    levels: tuple[LevelMapping, ...]  # aligned with Architecture.levels (outermost first)
    source: str | None = None  # file the mapping came from (for error messages)
    line: int | None = None

    def factor_product(self, dim: str) -> int:
        return math.prod(lm.temporal.get(dim, 1) * lm.spatial.get(dim, 1) for lm in self.levels)

    def ordered(self, order: tuple[str, ...], factors: dict[str, int], all_dims: tuple[str, ...]):
        """Dims of `factors` outermost-first, following an innermost-first `order`."""
        listed = [d for d in order if d in all_dims]
        rest = [d for d in all_dims if d not in listed]
        inner_first = listed + rest[::-1]
        return inner_first[::-1]

    def loops(self, dims: tuple[str, ...]) -> list[Loop]:
        """The flattened loop nest, outermost first, unit loops dropped."""
        out: list[Loop] = []
        for i, lm in enumerate(self.levels):
            for d in self.ordered(lm.temporal_order, lm.temporal, dims):
                n = lm.temporal.get(d, 1)
                if n > 1:
                    out.append(Loop(d, n, i))
            order = [d for d in lm.spatial_order if d in dims]
            order += [d for d in dims if d not in order]
            split = len(order) if lm.split is None else lm.split
            xdims = set(order[:split])
            # innermost-first order: X dims are innermost; emit outermost first
            for d in reversed(order):
                n = lm.spatial.get(d, 1)
                if n > 1:
                    out.append(Loop(d, n, i, spatial=True, spatial_x=d in xdims))
        return out
