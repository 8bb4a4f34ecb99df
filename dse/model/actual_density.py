"""Actual-data density: nonzero counts measured per work tile (PE x pass) from a real pruned
weight tensor, instead of a statistical density model (dse.model.density).

A dense mapping gives every PE one work tile per pass (the spatial loops pick the PE, the temporal
loops the pass). With zero weights skipped, a PE needs as many cycles in a pass as its tile has
nonzero MACs, and a pass ends when the slowest PE is done (no load balancing). This is how the
ARCHON paper's sparse Eyeriss-like baseline gets its work imbalance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TileNonzeros:
    """Nonzero MACs per (PE, pass) of one layer under one dense mapping."""

    counts: np.ndarray  # (pes, passes), integer
    tile_macs: int  # MACs of one dense tile (one PE, one pass)
    source: str = ""  # where the counts come from (file, or "synthetic seed=…")

    @property
    def pes(self) -> int:
        return int(self.counts.shape[0])

    @property
    def passes(self) -> int:
        return int(self.counts.shape[1])

    @property
    def nonzeros(self) -> int:
        return int(self.counts.sum())

    @property
    def density(self) -> float:
        return self.nonzeros / (self.pes * self.passes * self.tile_macs)

    def slowest_pe_cycles(self) -> int:
        """Cycles when every pass waits for its slowest PE."""
        return int(self.counts.max(axis=0).sum())

    def balanced_cycles(self) -> float:
        """Cycles with perfect load balance (a lower bound, for reference)."""
        return self.nonzeros / self.pes

    def imbalance(self) -> float:
        return self.slowest_pe_cycles() / self.balanced_cycles()


def synthetic_nonzeros(pes: int, passes: int, tile_macs: int, density: float,
                       seed: int) -> TileNonzeros:
    """A stand-in when no measured counts exist: each MAC of each tile keeps its weight with
    probability `density` (independent Bernoulli, seeded, so reproducible). Real pruned weights
    are correlated across passes that reuse them, so this under- or over-states imbalance; it is
    used only where the data are missing or to sweep the pruning ratio."""
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density}")
    rng = np.random.default_rng(seed)
    counts = rng.binomial(tile_macs, density, size=(pes, passes))
    return TileNonzeros(counts, tile_macs, f"synthetic density={density} seed={seed}")
