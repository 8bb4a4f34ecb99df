"""Representation formats: how a level stores a tile of a tensor, rank by rank (fibertree).

A rank of shape F holding n nonzeros costs, per fiber (metadata units, payload units):
UOP (F + 1 offsets as payload), CP (n coordinates), RLE (n run lengths), B (F mask bits),
UB (F mask bits, F payloads). CP/RLE/B ranks above the innermost also carry one payload
(a pointer to the fiber below) per nonzero. Only the non-empty fibers of a rank are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    metadata: float
    payload: float


def rank_units(formats: list[RankFormat], shapes: list[int], density: DensityModel,
               *, worst_case: bool) -> list[RankUnits]:
    """Units per rank (outermost first) for one tile whose ranks have fiber `shapes`.

    `worst_case` uses each fiber's maximum occupancy (storage); otherwise the expected one
    (traffic)."""
    out: list[RankUnits] = []
    fibers = 1.0  # non-empty fibers of this rank
    last = len(formats) - 1
    for r, (fmt, shape) in enumerate(zip(formats, shapes, strict=True)):
        below = 1
        for s in shapes[r + 1:]:
            below *= s
        # nonzero coordinates of this rank's fiber = its non-empty sub-tiles
        if worst_case:
            sub_nonempty = min(shape, density.max_occupancy(shape * below)) if below == 1 \
                else shape * (1.0 - density.prob_empty(below))
        else:
            sub_nonempty = shape * (1.0 - density.prob_empty(below)) if below > 1 \
                else density.expected_occupancy(shape)
        innermost = r == last
        f = fmt.format
        if worst_case and below == 1 and f in ("CP", "RLE"):
            # the ceiling of the whole rank's nonzeros, not of each fiber's
            md = float(min(round(fibers) * shape, density.max_occupancy(round(fibers) * shape)))
            out.append(RankUnits(md, 0.0 if innermost else md))
            fibers = fibers * sub_nonempty
            continue
        if f == "UOP":
            md, pl = 0.0, fibers * (shape + 1)
        elif f in ("CP", "RLE"):
            md = fibers * sub_nonempty
            pl = 0.0 if innermost else fibers * sub_nonempty
        elif f == "B":
            md = fibers * shape
            pl = 0.0 if innermost else fibers * sub_nonempty
        else:  # UB
            md = fibers * shape
            pl = 0.0 if innermost else fibers * shape
        out.append(RankUnits(md, pl))
        fibers = fibers * sub_nonempty
    return out
