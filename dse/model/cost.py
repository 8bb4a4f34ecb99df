"""Cost passes of the model: energy per action, leakage, and bandwidth-limited cycles.

Arrays have a batch axis: (B, L, T, action) counts per instance, (B, L) per level.
"""

from __future__ import annotations

import numpy as np

from dse.model.actions import ACTIONS

READ = ACTIONS.index("read")
FILL = ACTIONS.index("fill")
UPDATE = ACTIONS.index("update")


def sum_in_order(x: np.ndarray, axes: int = 1) -> np.ndarray:
    """Sum over the last `axes` axes, one term after the other in index order: numpy's sum
    pairs terms in an order of its own, and the compiled kernel (dse/model/kernel_numba.py)
    must reproduce the float result exactly."""
    flat = x.reshape(x.shape[: x.ndim - axes] + (-1,))
    acc = flat[..., 0].copy()
    for j in range(1, flat.shape[-1]):
        acc = acc + flat[..., j]
    return acc


def access_energy(counts, keep, replication, words_per_block, energy_per_action, clusters):
    """Energy per (row, level, tensor, action): accesses rounded up to whole blocks (vector
    accesses), priced per (level, action), charged per utilized cluster
    (StorageLevel.utilized_clusters). Returns it and its sum per (row, level)."""
    blocks = np.ceil(counts / words_per_block[None, :, :, None])
    charged = np.minimum(replication, clusters[None, :])
    per_access = blocks * energy_per_action[None, :, None, :]
    energy = np.where(keep[..., None], per_access, 0.0) * charged[:, :, None, None]
    return energy, sum_in_order(energy, axes=2)


def leakage(keep, leak_per_cycle, cycles, replication):
    """Leakage per (row, level): every utilized instance of a level that holds data leaks for
    the whole run."""
    return np.where(keep.any(axis=2), leak_per_cycle[None, :] * cycles[:, None] * replication,
                    0.0)


def bandwidth_cycles(counts, compute_cycles, bandwidth_words, read_bw, write_bw, shared_bw):
    """Bandwidth throttling per level: per-instance words per compute cycle (scaled by
    `bandwidth_words` per (level, tensor) when tensors have their own widths, else None)
    against the read, write and shared bandwidths; the slowest level sets the cycles.
    Returns (slowdown (B, L), level cycles (B, L), cycles (B,))."""
    reads = counts[..., READ]
    writes = counts[..., FILL] + counts[..., UPDATE]
    if bandwidth_words is not None:
        reads = reads * bandwidth_words[None]
        writes = writes * bandwidth_words[None]
    rd = sum_in_order(reads) / compute_cycles[:, None]
    wd = sum_in_order(writes) / compute_cycles[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        slow = np.minimum.reduce([
            np.ones_like(rd),
            np.where(rd > read_bw[None, :], read_bw[None, :] / rd, 1.0),
            np.where(wd > write_bw[None, :], write_bw[None, :] / wd, 1.0),
            np.where(rd + wd > shared_bw[None, :], shared_bw[None, :] / (rd + wd), 1.0),
        ])
    level_cycles = np.ceil(compute_cycles[:, None] / slow).astype(np.int64)
    cycles = np.maximum(compute_cycles, level_cycles.max(axis=1))
    return slow, level_cycles, cycles
