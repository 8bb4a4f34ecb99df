"""Problems (one layer): named dimensions with bounds, and data spaces projected from them.

A data space (tensor) has ranks; each rank's coordinate is a sum of `coef * dim` terms, as in
Timeloop's projections (e.g. an input width rank = Wstride*P + Wdilation*R). No padding: a
tile's extent along a rank is sum((bound_d - 1) * coef) + 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Term = tuple[str, int]  # (dimension, coefficient)
Rank = tuple[Term, ...]


@dataclass(frozen=True)
class DataSpace:
    name: str
    ranks: tuple[Rank, ...]
    read_write: bool = False
    word_bits: int | None = None  # optional per-tensor bit width (workload library); None = arch's

    def dims(self) -> frozenset[str]:
        return frozenset(d for rank in self.ranks for d, c in rank if c != 0)

    def extents(self, sizes: dict[str, int]) -> tuple[int, ...]:
        """Extent of each rank for an operation-space box with per-dimension `sizes`."""
        return tuple(sum((sizes.get(d, 1) - 1) * c for d, c in rank) + 1 for rank in self.ranks)

    def size(self, sizes: dict[str, int]) -> int:
        return math.prod(self.extents(sizes))

    def project(self, offset: dict[str, int]) -> tuple[int, ...]:
        """Data-space coordinates of an operation-space point (or translation)."""
        return tuple(sum(offset.get(d, 0) * c for d, c in rank) for rank in self.ranks)


@dataclass(frozen=True)
class Problem:
    name: str
    dims: tuple[str, ...]
    bounds: dict[str, int]
    data_spaces: tuple[DataSpace, ...]
    coefficients: dict[str, int] = field(default_factory=dict)
    source: str | None = None
    # Set by dse.arch.rules.prepare_problem when bounds were rounded up to the hardware's
    # granularity: the original bounds of the padded dimensions ({dim: bound}); None = not padded.
    padded_from: dict[str, int] | None = None
    # what one operation point costs the compute units: "mac" (conv, fc, matmul, scale and
    # shift), "add" (residual add, average pooling) or "compare" (max pooling);
    # dse.model.actions.COMPUTE_ACTIONS
    compute_action: str = "mac"

    @property
    def macs(self) -> int:
        return math.prod(self.bounds[d] for d in self.dims)

    def data_space(self, name: str) -> DataSpace:
        for ds in self.data_spaces:
            if ds.name == name:
                return ds
        raise KeyError(name)

    @property
    def tensor_names(self) -> tuple[str, ...]:
        return tuple(ds.name for ds in self.data_spaces)

    def tensor_size(self, name: str) -> int:
        return self.data_space(name).size(self.bounds)
