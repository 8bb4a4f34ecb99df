"""Buffer passes of the model (Timeloop's tiling.cpp / buffer.cpp, in our own arrays).

Arrays have a batch axis: (B, L, T) = (mapping, level outermost first, tensor).
"""

from __future__ import annotations

import numpy as np

from dse.model.actions import ACTIONS


def partition_sizes(size: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Partition size per instance: the outermost level holds the whole tensor; each fan-out
    divides its level's partition by the ratio of the spread tile (the level's spatial box,
    `spread`) to the child's tile."""
    B, L, nT = size.shape
    partition = np.zeros((B, L, nT), dtype=np.int64)
    partition[:, 0] = size[:, 0]
    for i in range(1, L):
        partition[:, i] = partition[:, i - 1] * size[:, i] // spread[:, i - 1]
    return partition


def parent_share_and_mask(total, weighted, links, fanout, keep):
    """Parent share and masking: a child's fills are its parent's multicast reads spread over
    the fan-out; a level that bypasses a tensor passes its children's demand up to the next
    keeper, scaled by the child-to-parent ratio, and forwards no links.
    `total`/`weighted` (B, L, T): words a level reads for its children, and the same summed
    over children; `fanout` (B, L). Updates total, weighted and links in place; returns
    (content, parent share)."""
    L = total.shape[1]
    content = total.copy()
    parent_share = np.zeros_like(total)
    parent_share[:, 1:] = weighted[:, :-1] / fanout[:, :-1, None]
    for i in range(L - 1, 0, -1):
        k = keep[:, i]
        factor = content[:, i] * fanout[:, i - 1, None] / weighted[:, i - 1]
        scaled = total[:, i - 1] * factor
        content[:, i - 1] = np.where(k, content[:, i - 1], scaled)
        total[:, i - 1] = np.where(k, total[:, i - 1], scaled)
        weighted[:, i - 1] = np.where(k, weighted[:, i - 1], weighted[:, i - 1] * factor)
        links[:, i - 1] = np.where(k, links[:, i - 1], 0.0)
    return content, parent_share


def accesses(content, parent_share, peer, partition, keep, read_write: np.ndarray,
             elide_fills: bool) -> np.ndarray:
    """Reads, fills and updates per instance as counts (B, L, T, action), actions in the order
    of dse.model.actions.ACTIONS. Read-write tensors (outputs) skip the first read of each
    partition element and, when the generation elides them, its fill at every level but the
    outermost keeper. Peer accesses (link transfers) add to both reads and fills."""
    L = keep.shape[1]
    first_keeper = np.argmax(keep, axis=1)
    is_outermost = np.arange(L)[None, :, None] == first_keeper[:, None, :]
    rw = read_write[None, None, :]
    content_peer = content + peer
    share = parent_share + peer
    by_action = {
        "update": np.where(keep & rw, np.rint(content), 0),
        "read": np.where(keep, np.where(rw, np.rint(content_peer - partition),
                                        np.rint(content_peer)), 0),
    }
    full_fill = is_outermost if elide_fills else np.ones_like(is_outermost)
    by_action["fill"] = np.where(keep, np.where(rw, np.rint(np.where(full_fill, share,
                                                                     share - partition)),
                                                np.floor(share)), 0)
    return np.stack([by_action[a] for a in ACTIONS], axis=3)
