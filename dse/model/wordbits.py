"""Per-tensor word widths: a tensor may declare `bits` (workload library, native `bits:`)
narrower or wider than a level's `datawidth`.

A level row is `block_size * datawidth` bits. A tensor of b bits packs floor(row / b) words
per row (at least 1), so capacity is counted in bits, energy per row access is charged per
ceil(words / words-per-row), and bandwidth (given in datawidth words per cycle) carries
words * b / datawidth. Without `bits` everything is the level's datawidth, as in Timeloop.
"""

from __future__ import annotations

from dse.arch.architecture import StorageLevel
from dse.workload.problem import DataSpace


def tensor_bits(level: StorageLevel, ds: DataSpace) -> int:
    return ds.word_bits if ds.word_bits else level.datawidth


def words_per_block(level: StorageLevel, ds: DataSpace) -> int:
    """Words of tensor `ds` one row access of `level` moves."""
    if not ds.word_bits or ds.word_bits == level.datawidth:
        return level.block_size
    return max(1, level.block_size * level.datawidth // ds.word_bits)


def bandwidth_scale(level: StorageLevel, ds: DataSpace) -> float:
    """Datawidth-sized words per word of tensor `ds` (for bandwidth demand)."""
    return tensor_bits(level, ds) / level.datawidth if level.datawidth else 1.0
