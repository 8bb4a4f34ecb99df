"""Density models: statistical descriptions of where a tensor's nonzeros are (Sparseloop).

The sparse model never sees tensor values. For a tile of S elements a density model gives the
probability that the tile is empty, the expected number of nonzeros and the most it can hold
(what a compressed tile needs in storage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# S*d is computed in floating point; values within this of an integer count as that integer
# except where Timeloop's own rounding is reproduced (max occupancy, see below).
_EPS = 1e-9


@dataclass(frozen=True)
class DensityModel:
    """`fixed_structured`: every tile of S elements holds floor(S d) or ceil(S d) nonzeros.
    `hypergeometric`: ceil(N d) nonzeros of an N-element tensor placed uniformly at random."""

    distribution: str
    density: float
    tensor_size: int = 0  # N, needed by hypergeometric

    @property
    def dense(self) -> bool:
        return self.density >= 1.0

    def prob_empty(self, tile: int) -> float:
        if tile <= 0 or self.density >= 1.0:
            return 0.0 if tile > 0 else 1.0
        if self.distribution == "hypergeometric":
            n = self.tensor_size
            nnz = math.ceil(n * self.density)
            if tile > n - nnz:
                return 0.0
            # C(N-nnz, S) / C(N, S), as a product to stay in range
            p = 1.0
            for i in range(tile):
                p *= (n - nnz - i) / (n - i)
            return p
        mean = tile * self.density
        return 1.0 - mean if mean < 1.0 else 0.0

    def expected_occupancy(self, tile: int) -> float:
        return tile * self.density

    def occupancy_pmf(self, tile: int) -> dict[int, float]:
        """P(the tile holds exactly k nonzeros), for the k with nonzero probability."""
        if self.density >= 1.0:
            return {tile: 1.0}
        if self.distribution == "hypergeometric":
            n = self.tensor_size
            nnz = math.ceil(n * self.density)
            total = _log_comb(n, tile)  # logs: exact big-integer binomials are too slow
            pmf = {k: math.exp(_log_comb(nnz, k) + _log_comb(n - nnz, tile - k) - total)
                   for k in range(max(0, tile - (n - nnz)), min(tile, nnz) + 1)}
            return {k: p for k, p in pmf.items() if p > 0.0}
        mean = tile * self.density
        lo = math.floor(mean + _EPS)
        frac = mean - lo
        if frac <= _EPS:
            return {lo: 1.0}
        return {lo: 1.0 - frac, lo + 1: frac}

    def max_occupancy(self, tile: int) -> int:
        """Words a compressed tile needs at most (the ceiling of S d; floating-point products
        such as 230400 x 0.275 land just above the integer, as in Timeloop)."""
        if self.density >= 1.0:
            return tile
        if self.distribution == "hypergeometric":
            return min(tile, math.ceil(self.tensor_size * self.density))
        return math.ceil(tile * self.density)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


DENSE = DensityModel("fixed_structured", 1.0)
SUPPORTED_DISTRIBUTIONS = ("fixed_structured", "hypergeometric")
