"""Density models: statistical descriptions of where a tensor's nonzeros are (Sparseloop).

The sparse model never sees tensor values. For a tile of S elements a density model gives the
probability that the tile is empty, the expected number of nonzeros and the most it can hold
(what a compressed tile needs in storage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

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

    def prob_empty(self, tile):
        """P(a tile of `tile` elements holds no nonzero); `tile` an int or an integer array
        (the batch model's tiles), the result a float or a float array."""
        s = np.asarray(tile, dtype=np.int64)
        if self.density >= 1.0:
            out = np.where(s > 0, 0.0, 1.0)
        elif self.distribution == "hypergeometric":
            n, nnz = self.tensor_size, math.ceil(self.tensor_size * self.density)
            out = np.ones(s.shape)
            for v in np.unique(s[s > 0]):
                out[s == v] = _hyper_empty(n, nnz, int(v))
        else:
            mean = s * self.density
            out = np.where(s <= 0, 1.0, np.where(mean < 1.0, 1.0 - mean, 0.0))
        return out if out.ndim else float(out)

    def expected_occupancy(self, tile):
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

    def max_occupancy(self, tile):
        """Words a compressed tile needs at most (the ceiling of S d; floating-point products
        such as 230400 x 0.275 land just above the integer, as in Timeloop). `tile` an int or
        an integer array."""
        s = np.asarray(tile, dtype=np.int64)
        if self.density >= 1.0:
            out = s
        elif self.distribution == "hypergeometric":
            out = np.minimum(s, math.ceil(self.tensor_size * self.density))
        else:
            out = np.ceil(s * self.density).astype(np.int64)
        return out if out.ndim else int(out)


@lru_cache(maxsize=4096)
def _hyper_empty(n: int, nnz: int, tile: int) -> float:
    """C(N-nnz, S) / C(N, S), as a product to stay in range."""
    if tile > n - nnz:
        return 0.0
    p = 1.0
    for i in range(tile):
        p *= (n - nnz - i) / (n - i)
    return p


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


DENSE = DensityModel("fixed_structured", 1.0)
SUPPORTED_DISTRIBUTIONS = ("fixed_structured", "hypergeometric")
