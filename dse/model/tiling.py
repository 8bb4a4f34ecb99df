"""Tiling passes of the model: tile extents, loop translations, child numbering.

Methods of BatchModel (as a base class: they use its projection matrices `A`, dims `D`); the
arrays have a batch axis. See docs/model.md for the order of the passes.
"""

from __future__ import annotations

import numpy as np


class TilingPasses:
    """Tiles and deltas: what a box of op space covers in each tensor, and how it moves."""

    def _extents(self, t: int, box: np.ndarray) -> list[np.ndarray]:
        """Per rank of tensor t, the extent of an op-space box (..., D) (no padding)."""
        out = []
        for row in self.A[t]:
            ext = np.ones(box.shape[:-1], dtype=np.int64)
            for d in np.nonzero(row)[0]:
                ext = ext + int(row[d]) * (box[..., d] - 1)
            out.append(ext)
        return out

    def _tile_size(self, t: int, box: np.ndarray) -> np.ndarray:
        """Words of tensor t in an op-space box (..., D) -> (...)."""
        size = None
        for ext in self._extents(t, box):
            size = ext if size is None else size * ext
        return size

    @staticmethod
    def _canonical_spatial(spatial_order: np.ndarray, S: np.ndarray) -> np.ndarray:
        """(B, L): the dims with a spatial factor > 1 come in dimension order (innermost
        first), as the mapper's rows always do."""
        used = np.take_along_axis(S, spatial_order, axis=2) > 1
        pos = np.where(used, spatial_order, -1)
        running = np.maximum.accumulate(pos, axis=2)
        return ~(used & (pos < running)).any(axis=2)

    def _child_offsets_linear(self, SX, SY, child_box, order=None) -> np.ndarray:
        """Child offsets in Timeloop's linear order: Y loops outer, X inner; within an axis
        the mapping's spatial order (`order`, dims innermost first; default dimension order,
        the mapper's canonical one)."""
        outer_first = range(self.D - 1, -1, -1) if order is None else [int(d) for d in
                                                                        order[::-1]]
        loops = []
        for d in outer_first:
            if SY[d] > 1:
                loops.append((d, int(SY[d]), int(child_box[d] * SX[d])))
        for d in outer_first:
            if SX[d] > 1:
                loops.append((d, int(SX[d]), int(child_box[d])))
        offs = np.zeros((1, self.D), dtype=np.int64)
        for d, n, stride in loops:
            step = np.zeros((n, self.D), dtype=np.int64)
            step[:, d] = np.arange(n) * stride
            offs = (offs[:, None, :] + step[None, :, :]).reshape(-1, self.D)
        return offs

    def _translations(self, t: int, sd, ss, nonunit) -> list[np.ndarray]:
        """Per rank of tensor t, the (B, K) data-space translation of each loop's step."""
        out = []
        for row in self.A[t]:
            pv = row[sd] * ss
            masked = pv * nonunit
            out.append(pv - (np.cumsum(masked, axis=1) - masked))
        return out
