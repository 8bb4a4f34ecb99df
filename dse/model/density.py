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
    `hypergeometric`: ceil(N d) nonzeros of an N-element tensor placed uniformly at random.
    `banded`: a square side x side matrix whose nonzeros are the elements within `band_width`
    of the diagonal (build it with `banded`); a tile's count depends on its shape (rows x
    cols), which the queries take as `shape`."""

    distribution: str
    density: float
    tensor_size: int = 0  # N, needed by hypergeometric
    band_width: int = 0  # banded only
    side: int = 0  # banded only: the matrix is side x side

    @property
    def dense(self) -> bool:
        return self.density >= 1.0

    def prob_empty(self, tile, shape=None):
        """P(a tile of `tile` elements holds no nonzero); `tile` an int or an integer array
        (the batch model's tiles), the result a float or a float array. `shape` (rows, cols),
        ints or arrays like `tile`, is used by `banded` only."""
        s = np.asarray(tile, dtype=np.int64)
        if self.distribution == "banded" and self.density < 1.0:
            out = self._banded_each(s, shape, lambda pmf: pmf.get(0, 0.0), 1.0)
        elif self.density >= 1.0:
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

    def expected_occupancy(self, tile, shape=None):
        """S d; for `banded` too (Sparseloop: the tile's size times the global density, which
        is the mean over the tiles of a partition that divides the matrix)."""
        return tile * self.density

    def occupancy_pmf(self, tile: int, shape=None) -> dict[int, float]:
        """P(the tile holds exactly k nonzeros), for the k with nonzero probability."""
        if self.distribution == "banded" and self.density < 1.0:
            if tile <= 0:
                return {0: 1.0}
            rows, cols = self._banded_shape(tile, shape)
            return {k: p for k, p in
                    _banded_pmf(self.side, self.band_width, rows, cols).items() if p > 0.0}
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

    def max_occupancy(self, tile, shape=None):
        """Words a compressed tile needs at most (the ceiling of S d; floating-point products
        such as 230400 x 0.275 land just above the integer, as in Timeloop). `tile` an int or
        an integer array. `banded`: the largest count any tile of that shape has in
        Sparseloop's walk (its max occupancy at confidence 1)."""
        s = np.asarray(tile, dtype=np.int64)
        if self.distribution == "banded" and self.density < 1.0:
            out = self._banded_each(s, shape, lambda pmf: max(pmf), 0).astype(np.int64)
        elif self.density >= 1.0:
            out = s
        elif self.distribution == "hypergeometric":
            out = np.minimum(s, math.ceil(self.tensor_size * self.density))
        else:
            out = np.ceil(s * self.density).astype(np.int64)
        return out if out.ndim else int(out)

    def _banded_shape(self, tile: int, shape) -> tuple[int, int]:
        """(rows, cols) of one banded tile; without `shape` only the tiles whose shape their
        size fixes (one element, the whole matrix) are answered."""
        if shape is not None:
            rows, cols = (int(x) for x in shape)
        elif tile == 1:
            rows, cols = 1, 1
        elif tile == self.side * self.side:
            rows, cols = self.side, self.side
        else:
            raise ValueError(f"banded density: a tile of {tile} elements needs its shape")
        if rows * cols != tile:
            raise ValueError(f"banded density: shape {rows}x{cols} is not a {tile}-element tile")
        return rows, cols

    def _banded_each(self, s: np.ndarray, shape, pick, empty_value) -> np.ndarray:
        """`pick(pmf)` for every tile of the batch (`s` sizes, `shape` (rows, cols) arrays)."""
        flat = s.reshape(-1)
        if shape is None:  # -1: not given
            rows = cols = np.full(flat.size, -1, dtype=np.int64)
        else:
            rows = np.broadcast_to(np.asarray(shape[0], dtype=np.int64), s.shape).reshape(-1)
            cols = np.broadcast_to(np.asarray(shape[1], dtype=np.int64), s.shape).reshape(-1)
        keys, inverse = np.unique(np.stack([flat, rows, cols], axis=1), axis=0,
                                  return_inverse=True)
        values = np.empty(len(keys), dtype=np.float64)
        for j, (v, r, c) in enumerate(keys.tolist()):
            if v <= 0:
                values[j] = empty_value
                continue
            r, c = self._banded_shape(v, None if r < 0 else (r, c))
            values[j] = pick(_banded_pmf(self.side, self.band_width, r, c))
        return values[np.asarray(inverse).reshape(-1)].reshape(s.shape)


def banded(side: int, band_width: int) -> DensityModel:
    """The banded model of a side x side matrix: nonzero where |row - col| <= band_width.
    Global density = (side + 2 sum_{u=1..w} (side - u)) / side^2 (Sparseloop,
    src/workload/density-models/banded-distribution.cpp, SetWorkloadTensorSize)."""
    if side < 1 or not 0 <= band_width < side:
        raise ValueError(f"banded density: band_width {band_width} must be in [0, {side - 1}] "
                         f"for a {side} x {side} matrix")
    nnz = side + band_width * (2 * side - band_width - 1)
    return DensityModel("banded", nnz / (side * side), side * side, band_width, side)


def banded_tile_nonzeros(band_width: int, row0: int, rows: int, col0, cols: int) -> np.ndarray:
    """Nonzeros of the rows x cols tiles whose top-left corners are (row0, col0) (col0 an
    array): per row r, the band's columns [r - w, r + w] clipped to the tile."""
    r = np.arange(row0, row0 + rows)[:, None]
    c0 = np.asarray(col0, dtype=np.int64)[None, :]
    lo = np.maximum(c0, np.maximum(r - band_width, 0))
    hi = np.minimum(c0 + cols, r + band_width + 1)
    return np.maximum(hi - lo, 0).sum(axis=0)


@lru_cache(maxsize=4096)
def _banded_pmf(side: int, band_width: int, rows: int, cols: int) -> dict[int, float]:
    """P(a rows x cols tile of the partition holds k nonzeros), k -> probability.

    Sparseloop's walk (banded-distribution.cpp, GetProbabilityDistributionForTileMold): the
    row groups meeting the band's upper-left corner (warm-up, ceil(w / rows) of them) are
    counted tile by tile and twice, since the lower-right corner (cool-down) mirrors them; the
    next group stands for every steady-state group. When warm-up and cool-down meet (no
    steady group) every group is counted once instead: Sparseloop then counts the middle
    groups twice and its probabilities add up to more than 1."""
    if side % rows or side % cols:
        raise ValueError(f"banded density: a {rows} x {cols} tile does not divide the "
                         f"{side} x {side} matrix (Sparseloop requires it)")
    groups, col_groups = side // rows, side // cols
    warm = math.ceil(band_width / rows)
    starts = np.arange(col_groups) * cols
    if groups > 2 * warm:
        weights = [2] * warm + [groups - 2 * warm]
    else:
        weights = [1] * groups
    counts: dict[int, int] = {}
    for g, weight in enumerate(weights):
        occ = banded_tile_nonzeros(band_width, g * rows, rows, starts, cols)
        values, n = np.unique(occ, return_counts=True)
        for k, m in zip(values.tolist(), n.tolist(), strict=True):
            counts[k] = counts.get(k, 0) + m * weight
    total = groups * col_groups
    return {k: m / total for k, m in sorted(counts.items())}


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
SUPPORTED_DISTRIBUTIONS = ("fixed_structured", "hypergeometric", "banded")
