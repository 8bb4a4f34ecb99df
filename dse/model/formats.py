"""Representation formats: how a level stores a tile of a tensor, rank by rank (fibertree).

A rank of shape F holding n nonzeros costs, per fiber (metadata units, payload units):
UOP (F + 1 offsets as payload), CP (n coordinates), RLE (n run lengths), B (F mask bits),
UB (F mask bits, F payloads). CP/RLE/B ranks above the innermost also carry one payload
(a pointer to the fiber below) per nonzero. Only the non-empty fibers of a rank are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.model.density import DensityModel

FORMATS = ("UOP", "CP", "RLE", "B", "UB")
COMPRESSED = {"CP", "RLE", "B"}


@dataclass(frozen=True)
class RankFormat:
    format: str
    dims: tuple[str, ...] = ()  # flattened_rankIDs (first group); () = from the mapping
    metadata_word_bits: int | None = None
    payload_word_bits: int | None = None

    @property
    def compressed(self) -> bool:
        return self.format in COMPRESSED


@dataclass(frozen=True)
class RankUnits:
    """Metadata and payload units of one rank: floats, or arrays over a batch of tiles."""

    metadata: float
    payload: float


def rank_units(formats, shapes, density: DensityModel, *, worst_case: bool) -> list[RankUnits]:
    """Units per rank (outermost first) for tiles whose ranks have fiber `shapes` (one integer
    array per rank, over a batch of tiles; or one int per rank).

    `worst_case` uses each fiber's maximum occupancy (storage); otherwise the expected one
    (traffic)."""
    shapes = [np.asarray(x, dtype=np.int64) for x in shapes]
    out: list[RankUnits] = []
    fibers = np.ones(np.shape(shapes[0]) if shapes else ())  # non-empty fibers of this rank
    last = len(formats) - 1
    for r, (fmt, shape) in enumerate(zip(formats, shapes, strict=True)):
        below = np.ones_like(shape)
        for x in shapes[r + 1:]:
            below = below * x
        flat = below == 1  # no rank below: its coordinates are the nonzeros themselves
        # nonzero coordinates of this rank's fiber = its non-empty sub-tiles
        spread = shape * (1.0 - density.prob_empty(below))
        if worst_case:
            sub_nonempty = np.where(flat, np.minimum(shape, density.max_occupancy(shape * below)),
                                    spread)
        else:
            sub_nonempty = np.where(flat, density.expected_occupancy(shape), spread)
        innermost = r == last
        f = fmt.format
        zero = np.zeros(fibers.shape)
        if f == "UOP":
            md, pl = zero, fibers * (shape + 1)
        elif f in ("CP", "RLE"):
            md = fibers * sub_nonempty
            pl = zero if innermost else fibers * sub_nonempty
            if worst_case:
                # the ceiling of the whole rank's nonzeros, not of each fiber's
                whole = np.rint(fibers).astype(np.int64) * shape
                whole = np.minimum(whole, density.max_occupancy(whole)).astype(np.float64)
                md = np.where(flat, whole, md)
                pl = zero if innermost else np.where(flat, whole, pl)
        elif f == "B":
            md = fibers * shape
            pl = zero if innermost else fibers * sub_nonempty
        else:  # UB
            md = fibers * shape
            pl = zero if innermost else fibers * shape
        out.append(RankUnits(md, pl))
        fibers = fibers * sub_nonempty
    return out
