"""Sparseloop's sparse step over the batch model's arrays (docs/sparse.md).

A post-pass over the dense batch outputs (dse.model.batch.Detail): per row, level and tensor
the algorithmic reads/fills/updates become actual / gated / skipped counts and metadata traffic
(density models, representation formats, gating and skipping), computes become actual / gated
/ skipped ones, and cycles (gated accesses use bandwidth, skipped ones do not) and energy (per
action, from the ERT) are derived again. The compressed occupancy replaces the dense tile in
the capacity check. The mapper runs it on blocks of rows (SparseBatchModel), compiled
(SparseStep.totals: what it scores, by the sparse part of dse/model/kernel_numba.py, with the
same numbers); dse.model.sparse runs it on one row, as dse.model.evaluate does for the dense
model.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from dse.errors import SpecError
from dse.model.batch import BatchModel, BatchResult, Detail
from dse.model.cost import bandwidth_cycles, leakage, sum_in_order
from dse.model.formats import rank_units

KINDS = ("reads", "fills", "updates")  # the dense model's action axis, in its order
DATA_ACTIONS = {"reads": "read", "fills": "write", "updates": "update"}
MD_ACTIONS = {"reads": "metadata_read", "fills": "metadata_write", "updates": "metadata_update"}
EPS = 1e-9  # products like 16 x 0.75 must not lose an integer to rounding noise

# Timeloop's thresholds (model/buffer.hpp, VectorWidthCoefficientTable): for a compressed tile
# of S words at a level with block (vector) B, when S // B is below the entry for the tile's
# density (0.1 .. 1.0), vector accesses are not ceil(count / B) but corrected by the expected
# number of vectors a tile with its random nonzero count really needs.
VECTOR_WIDTH_THRESHOLDS = {
    2: (251, 125, 84, 63, 51, 42, 36, 32, 28, 1),
    4: (375, 188, 125, 94, 75, 63, 54, 47, 42, 1),
    8: (438, 219, 146, 110, 88, 73, 63, 55, 49, 1),
    16: (469, 235, 157, 118, 94, 79, 67, 59, 52, 1),
    32: (485, 243, 162, 122, 97, 81, 70, 61, 52, 1),
}


def floor_(x):
    return np.floor(x + EPS)


def ceil_(x):
    return np.ceil(x - EPS)


@dataclass
class SparseDetail:
    """The sparse step's arrays for a batch of rows. Counts per instance (B, L, T, kind), kinds
    as KINDS; metadata units (B, L, T, kind, rank, which, 2): rank outermost first (as many as
    the (level, tensor)'s format has), which = actual / gated / skipped, last axis (metadata,
    payload)."""

    algorithmic: np.ndarray
    actual: np.ndarray
    gated: np.ndarray
    skipped: np.ndarray
    metadata: np.ndarray
    capacity_units: np.ndarray  # (B, L, T, rank, 2) worst-case units of the stored tile
    occupancy: np.ndarray  # (B, L, T) words kept per instance (compressed where a format is)
    temporal_reductions: np.ndarray  # (B, L, T)
    decompressions: np.ndarray  # (B, L, T)
    compressions: np.ndarray  # (B, L, T)
    energy: np.ndarray  # (B, L, T) pJ over all utilized instances (data + metadata + codecs)
    actual_computes: np.ndarray  # (B,)
    gated_computes: np.ndarray
    skipped_computes: np.ndarray
    compute_cycles: np.ndarray
    slowdown: np.ndarray  # (B, L)
    level_cycles: np.ndarray  # (B, L)
    cycles: np.ndarray  # (B,)
    leak: np.ndarray  # (B, L)
    level_energy: np.ndarray  # (B, L) including leakage
    compute_energy: np.ndarray  # (B,)
    energy_total: np.ndarray  # (B,)
    utilization: np.ndarray  # (B,)
    keep: np.ndarray  # (B, L, T)
    holder: dict  # (tensor index, optimization index) -> (B,) level where it acts (-1 none)


class LoopNest:
    """The loop nest of a batch of rows, innermost first: dims, bounds (B, K) and levels (K,);
    per level its spatial loops (spatial order) inside its temporal ones (perm, innermost
    first). Built on first use (only formats without flattened ranks and block growth need
    it)."""

    def __init__(self, T, S, perm, spatial_order, relevant) -> None:
        self._args = (T, S, perm, spatial_order)
        self._relevant = relevant
        self._built = False
        self._masks: dict[int, np.ndarray] = {}

    def _build(self) -> None:
        T, S, perm, spatial_order = self._args
        B, L, D = T.shape
        # per level, outermost first: its spatial loops (B, D), then its temporal ones
        if spatial_order is None:
            so = np.broadcast_to(np.arange(D), (B, L, D))
            spatial = S
        else:
            so = spatial_order
            spatial = np.take_along_axis(S, spatial_order, axis=2)
        temporal = np.take_along_axis(T, perm, axis=2)
        self._dims = np.stack([so, perm], axis=2)[:, ::-1].reshape(B, 2 * L * D)
        self._bounds = np.stack([spatial, temporal], axis=2)[:, ::-1].reshape(B, 2 * L * D)
        self._levels = np.repeat(np.arange(L - 1, -1, -1), 2 * D)
        self._built = True

    @property
    def dims(self) -> np.ndarray:
        if not self._built:
            self._build()
        return self._dims

    @property
    def bounds(self) -> np.ndarray:
        if not self._built:
            self._build()
        return self._bounds

    @property
    def levels(self) -> np.ndarray:
        if not self._built:
            self._build()
        return self._levels

    def mask(self, t: int) -> np.ndarray:
        """(B, K) loops with bound > 1 over a dim of tensor t."""
        if t not in self._masks:
            self._masks[t] = self._relevant[t][self.dims] & (self.bounds > 1)
        return self._masks[t]


class SparseStep:
    """Constants of one (problem, architecture, sparse spec) for the batch sparse step."""

    def __init__(self, model: BatchModel, spec) -> None:
        self.model = model
        self.spec = spec
        arch, problem = model.arch, model.problem
        self.L, self.nT = model.L, len(model.tensors)
        names = [lv.name for lv in arch.levels]
        self.level_index = {n: i for i, n in enumerate(names)}
        self.dens = [spec.density(ds.name) for ds in model.tensors]
        self.tensor_index = {ds.name: t for t, ds in enumerate(model.tensors)}
        # (T, D) whether each dim indexes each tensor
        self.relevant = np.array([[d in ds.dims() for d in model.dims] for ds in model.tensors])
        self.formats = {(self.level_index[lv], self.tensor_index[t]): f
                        for (lv, t), f in spec.formats.items()
                        if lv in self.level_index and t in self.tensor_index}
        self.compressed = np.zeros((self.L, self.nT), dtype=bool)
        for (i, t), f in self.formats.items():
            self.compressed[i, t] = any(x.compressed for x in f) and not self.dens[t].dense
        self.R = max((len(f) for f in self.formats.values()), default=0)
        self.actions = [[(k, ao) for k, ao in enumerate(spec.actions) if ao.target == ds.name]
                        for ds in model.tensors]
        self.level_block = np.array([lv.block_size for lv in arch.levels], dtype=np.int64)
        # energies per (level, kind): gated and skipped data actions, metadata actions
        self.e_gated = np.zeros((self.L, 3))
        self.e_skipped = np.zeros((self.L, 3))
        self.e_md = np.zeros((self.L, 3, 3))  # (level, kind, which)
        self.e_decompress = np.zeros(self.L)
        self.e_compress = np.zeros(self.L)
        self.md_width = np.ones(self.L, dtype=np.int64)
        for i, lv in enumerate(arch.levels):
            for k, kind in enumerate(KINDS):
                base = DATA_ACTIONS[kind]
                if kind == "updates" and "update" not in lv.energy:
                    base = "write"
                self.e_gated[i, k] = _energy(lv, f"gated_{base}")
                self.e_skipped[i, k] = _energy(lv, f"skipped_{base}", f"gated_{base}")
                m = MD_ACTIONS[kind]
                self.e_md[i, k] = (_energy(lv, m), _energy(lv, f"gated_{m}"),
                                   _energy(lv, f"skipped_{m}", f"gated_{m}"))
            self.e_decompress[i] = _energy(lv, "decompression_count")
            self.e_compress[i] = _energy(lv, "compression_count")
            self.md_width[i] = attribute(lv, "metadata_storage_width", 0) or lv.datawidth or 1
        # word bits of each rank's metadata and payload at each (level, tensor)
        self.md_bits = {key: [md_word_bits(arch.levels[key[0]], f) for f in fmts]
                        for key, fmts in self.formats.items()}
        self.md_capacity_bits = np.array(
            [attribute(lv, "metadata_storage_depth", 0) * attribute(lv, "metadata_storage_width", 0)
             for lv in arch.levels], dtype=np.int64)
        self.supports = {
            (i, what): str(lv.attributes.get(attr, False)).lower() == "true"
            for i, lv in enumerate(arch.levels)
            for what, attr in (("decompress", "decompression_supported"),
                               ("compress", "compression_supported"))}
        comp = arch.compute
        from dse.model.actions import action_energy

        self.e_compute = action_energy(comp, "compute")
        ce = comp.energy
        self.e_gated_compute = next((ce[a].pJ for a in ("gated_compute", "compute_gated")
                                     if a in ce), self.e_compute)
        self.e_skipped_compute = next((ce[a].pJ for a in ("skipped_compute", "compute_skipped")
                                       if a in ce), self.e_gated_compute)
        self.operands = [t for t, ds in enumerate(model.tensors) if not ds.read_write]
        self.macs = problem.macs
        self._consts: dict | None = None  # the compiled step's arrays (_compiled_constants)

    # ---------------------------------------------------------------- loop structure
    def _boxes(self, T, SX, SY):
        """(B, L + 1, D) op-space box of each level's tile (box[:, L]: one operation)."""
        B, L, D = T.shape
        box = np.ones((B, L + 1, D), dtype=np.int64)
        per_level = T * SX * SY
        for i in range(L - 1, -1, -1):
            box[:, i] = box[:, i + 1] * per_level[:, i]
        return box

    def _loops(self, T, S, perm, spatial_order) -> LoopNest:
        return LoopNest(T, S, perm, spatial_order, self.relevant)

    def _inner_dim(self, loops: LoopNest, level: int, t: int):
        """(B,) the dim of the innermost loop with bound > 1 at `level` or inside it over one
        of tensor t's dims (-1 when there is none)."""
        mask = loops.mask(t) & (loops.levels[None, :] >= level)
        first = np.argmax(mask, axis=1)
        return np.where(mask.any(axis=1), loops.dims[np.arange(len(mask)), first], -1)

    def _shapes(self, loops, i: int, t: int, tile, child_tile) -> list[np.ndarray]:
        """Fiber shape of each rank (outermost first), per row. Without `flattened_rankIDs`
        the ranks take the tile's loops over the tensor's dimensions from the innermost out,
        one loop each; the outermost rank takes what is left. With them, the innermost rank is
        the whole tile of the next inner level keeping the tensor and the rank above it this
        level's own loops (as Sparseloop's reference outputs show)."""
        fmts = self.formats[(i, t)]
        n = len(fmts)
        B = len(tile)
        if any(f.dims for f in fmts):
            shapes = [np.ones(B, dtype=np.int64) for _ in range(n)]
            shapes[-1] = child_tile
            if n > 1:
                shapes[-2] = np.maximum(tile // np.maximum(child_tile, 1), 1)
            return shapes
        mask = loops.mask(t) & (loops.levels[None, :] >= i)
        bounds = loops.bounds
        pos = np.cumsum(mask, axis=1) - 1
        shapes = []
        for r in range(n):  # outermost first; rank n-1-p takes the p-th loop from inside
            p = n - 1 - r
            sel = mask & ((pos >= p) if r == 0 else (pos == p))
            shapes.append(np.where(sel, bounds, 1).prod(axis=1))
        return shapes

    def _condition_box(self, box, child, loops, i: int, t: int):
        """(B, D) the op-space box whose piece of each condition tensor decides whether a
        request for tensor t at level i from its child is ineffectual: the child's tile (one
        operation at the compute level), grown to the level's block when the block is larger
        than the requested piece of t (along the innermost loop over one of t's dims)."""
        rows = np.arange(box.shape[0])
        cbox = box[rows, child].copy()
        size = self.model._tile_size(t, cbox)
        grow = np.maximum(1, self.level_block[i] // np.maximum(size, 1))
        if (grow > 1).any():
            d = self._inner_dim(loops, i, t)
            g = (grow > 1) & (d >= 0)
            cbox[rows[g], d[g]] *= grow[g]
        return cbox

    # ---------------------------------------------------------------- occupancy
    def occupancy(self, size, keep):
        """(B, L, T) words a tile needs: compressed tiles at most ceil(S d)."""
        occ = np.where(keep, size, 0)
        for (i, t) in zip(*np.nonzero(self.compressed), strict=True):
            occ[:, i, t] = np.where(keep[:, i, t], self.dens[t].max_occupancy(size[:, i, t]), 0)
        return occ

    def metadata_overflow(self, T, SX, SY, perm, keep, size, spatial_order=None):
        """(B, L) bits of format metadata over each level's metadata storage (0 where it fits
        or no metadata storage is given)."""
        B = T.shape[0]
        over = np.zeros((B, self.L), dtype=np.int64)
        levels = [i for i in range(self.L) if self.md_capacity_bits[i]]
        if not levels or not self.formats:
            return over
        box = self._boxes(T, SX, SY)
        loops = self._loops(T, SX * SY, perm, spatial_order)
        child = self._children(keep)
        for i in levels:
            bits = np.zeros(B)
            for t in range(self.nT):
                if (i, t) not in self.formats:
                    continue
                units = self._capacity_units(loops, box, child, size, i, t)
                for (mdb, plb), u in zip(self.md_bits[(i, t)], units, strict=True):
                    bits = bits + np.where(keep[:, i, t], mdb * u.metadata + plb * u.payload, 0.0)
            # the same test as dse.model.sparse.check_sparse_capacity: bits > depth x width
            excess = bits - self.md_capacity_bits[i]
            over[:, i] = np.where(excess > 0, np.ceil(excess), 0).astype(np.int64)
        return over

    def _children(self, keep):
        """(B, L, T) the next inner level keeping each tensor (L = the compute units)."""
        B, L, nT = keep.shape
        child = np.empty((B, L, nT), dtype=np.int64)
        nxt = np.full((B, nT), L, dtype=np.int64)
        for i in range(L - 1, -1, -1):
            child[:, i] = nxt
            nxt = np.where(keep[:, i], i, nxt)
        return child

    def _child_tile(self, box, child, t):
        rows = np.arange(box.shape[0])
        return self.model._tile_size(t, box[rows, child])

    def _capacity_units(self, loops, box, child, size, i, t):
        ch = child[:, i, t]
        child_tile = np.where(ch < self.L, self._child_tile(box, ch, t), 1)
        shapes = self._shapes(loops, i, t, size[:, i, t], child_tile)
        return rank_units(list(self.formats[(i, t)]), shapes, self.dens[t], worst_case=True)

    def _optimizations(self, t: int, kt, box, child, loops, holders: dict):
        """Where tensor t's gating/skipping acts, per row: each optimization at its level or
        at the nearest outer level keeping t (`holders[(t, k)]`, -1 for none); per level the
        kind of the first one acting there (B, L: 0 none, 1 gating, 2 skipping) and P(a
        request from the child is ineffectual) (B, L: NaN where none acts): some condition
        piece is empty, 1 - the product over conditions of (1 - P(piece empty))."""
        B, L = kt.shape
        kind = np.zeros((B, L), dtype=np.int8)
        p_own = np.full((B, L), np.nan)
        for k, ao in self.actions[t]:
            h = np.full(B, -1, dtype=np.int64)
            for i in range(self.level_index[ao.level] + 1):
                h = np.where(kt[:, i], i, h)
            holders[(t, k)] = h
        for i in range(L):
            here = {k: holders[(t, k)] == i for k, _ in self.actions[t]}
            if not any(h.any() for h in here.values()):
                continue
            cbox = self._condition_box(box, child[:, i], loops, i, t)
            p_eff = np.ones(B)
            has = np.zeros(B, dtype=bool)
            for k, ao in self.actions[t]:
                if not here[k].any():
                    continue
                for c in ao.condition_on:
                    ct = self.tensor_index[c]
                    empty = self._prob_empty(ct, cbox)
                    p_eff = p_eff * np.where(here[k], 1.0 - empty, 1.0)
                kind[:, i] = np.where(here[k] & ~has, 1 if ao.kind == "gating" else 2,
                                      kind[:, i])
                has |= here[k]
            p_own[:, i] = np.where(has, 1.0 - p_eff, np.nan)
        return kind, p_own

    def _prob_empty(self, t: int, box) -> np.ndarray:
        """P(tensor t's tile in op-space `box` (B, D) is empty); a banded tensor's answer
        depends on the tile's shape, its extent per rank."""
        dens = self.dens[t]
        if dens.distribution != "banded":
            return dens.prob_empty(self.model._tile_size(t, box))
        try:
            return dens.prob_empty(self.model._tile_size(t, box), self.model._extents(t, box))
        except ValueError as e:  # a tile that does not divide the matrix
            name = self.model.tensors[t].name
            raise SpecError(str(e), key_path=f"problem.instance.densities.{name}",
                            hint="Sparseloop's banded model needs tiles that divide the "
                                 "matrix; choose a mapping whose tiles of it do") from None

    # ---------------------------------------------------------------- the step
    def apply(self, det: Detail, T, SX, SY, perm, spatial_order=None,
              box: np.ndarray | None = None) -> SparseDetail:
        """The sparse step on the dense detail of the same rows (`box`: their op-space boxes
        when the caller has them, as BatchModel._tiles computes them)."""
        model = self.model
        B, L, nT = det.size.shape
        keep = det.keep
        T = T.astype(np.int64)
        S = (SX * SY).astype(np.int64)
        if box is None:
            box = self._boxes(T, SX, SY)
        loops = self._loops(T, S, perm, spatial_order)
        child = self._children(keep)
        size = det.size
        alg = det.counts.astype(np.int64)
        actual = np.zeros_like(alg)
        gated = np.zeros_like(alg)
        skipped = np.zeros_like(alg)
        R = max(self.R, 1)
        md = np.zeros((B, L, nT, 3, R, 3, 2))
        cap_units = np.zeros((B, L, nT, R, 2))
        reductions = np.where(keep & model.rw[None, None, :], alg[..., 0], 0)
        decomp = np.zeros((B, L, nT), dtype=np.int64)
        comp = np.zeros((B, L, nT), dtype=np.int64)
        holders: dict = {}
        computes = np.full(B, self.macs, dtype=np.int64)
        saf_rows = np.zeros(B, dtype=bool)
        # per operand: whether its own storage optimization reached the computes, and P(its
        # request was ineffectual) there (Sparseloop's innermost_empty_cond_on_prob)
        saf_on = np.zeros((B, nT), dtype=bool)
        saf_p = np.zeros((B, nT))
        p_own_all = np.full((B, L, nT), np.nan)
        for t, ds in enumerate(model.tensors):
            d = self.dens[t].density
            kt = keep[:, :, t]
            kind, p_own = self._optimizations(t, kt, box, child[:, :, t], loops, holders)
            p_own_all[:, :, t] = p_own
            p_above = np.zeros(B)
            parent_compressed = np.zeros(B, dtype=bool)
            parent_upd = np.zeros(B, dtype=np.int64)
            has_parent = np.zeros(B, dtype=bool)
            for i in range(L):
                k_i = kt[:, i]
                if not k_i.any():
                    continue
                po = p_own[:, i]
                has = ~np.isnan(po)
                with np.errstate(divide="ignore", invalid="ignore"):
                    p_cond = np.where(has & (p_above < 1.0),
                                      1.0 - (1.0 - po) / (1.0 - p_above), 0.0)
                compressed = bool(self.compressed[i, t])
                # with nothing filtered above (p_above 0) or acting here (no `has`), the
                # formulas below leave x as it is and `off` 0: those steps are skipped
                filtered_above = p_above.any()
                acting = has.any()
                if acting:
                    p_here = np.where(has, p_cond, 0.0)
                    gating, skipping = kind[:, i] == 1, kind[:, i] == 2
                for k, kname in enumerate(KINDS):
                    x = alg[:, i, t, k]
                    if compressed:
                        x = x - floor_(x * (1.0 - d)).astype(np.int64)
                    if filtered_above:
                        x = x - floor_(x * p_above).astype(np.int64)
                    if kname == "fills" or not acting:
                        actual[:, i, t, k] = x  # gated and skipped stay 0
                        continue
                    rounding = ceil_ if (kname == "reads" and ds.read_write) else floor_
                    off = np.where(has, rounding(x * p_here), 0).astype(np.int64)
                    actual[:, i, t, k] = x - off
                    gated[:, i, t, k] = np.where(gating, off, 0)
                    skipped[:, i, t, k] = np.where(skipping, off, 0)
                if (i, t) in self.formats:
                    self._metadata(md, cap_units, loops, box, child, size, alg, i, t,
                                   p_above, p_cond, has, kind[:, i])
                upd_alg = alg[:, i, t, 2]
                upd_act = actual[:, i, t, 2]
                changed = (upd_alg != 0) & (upd_act != upd_alg)
                with np.errstate(divide="ignore", invalid="ignore"):
                    scaled = ceil_(reductions[:, i, t] * upd_act / np.maximum(upd_alg, 1))
                reductions[:, i, t] = np.where(changed, scaled, reductions[:, i, t])
                codec = k_i & has_parent & parent_compressed & (not compressed)
                decomp[:, i, t] = np.where(codec, actual[:, i, t, 1], 0)
                if ds.read_write:
                    comp[:, i, t] = np.where(codec, parent_upd, 0)
                parent_compressed = np.where(k_i, compressed, parent_compressed)
                parent_upd = np.where(k_i, actual[:, i, t, 2], parent_upd)
                has_parent |= k_i
                p_above = np.where(k_i & has, po, p_above)
            if not ds.read_write:
                has_own = np.zeros(B, dtype=bool)
                innermost = np.full(B, -1, dtype=np.int64)
                for k, _ in self.actions[t]:
                    h = holders[(t, k)]
                    has_own |= h >= 0
                    innermost = np.maximum(innermost, h)
                if has_own.any():
                    saf_rows |= has_own
                    p = p_own_all[np.arange(B), np.maximum(innermost, 0), t]
                    p = np.where(has_own, p, 0.0)
                    computes = computes - floor_(computes * p).astype(np.int64)
                    saf_on[:, t] = has_own
                    saf_p[:, t] = np.round(p * 1e6) / 1e6
        g_comp = np.zeros(B, dtype=np.int64)
        s_comp = np.zeros(B, dtype=np.int64)
        # Sparseloop conditions the operand states on the storage optimizations only for two
        # operands; with more, rows a storage optimization reached keep their computes
        rows = ~saf_rows if len(self.operands) != 2 else np.ones(B, dtype=bool)
        if rows.any() and self.operands:
            self._classify(keep, rows, computes, g_comp, s_comp, saf_on, saf_p)
        occupancy = self.occupancy(size, keep)
        return self._micro_architecture(det, keep, alg, actual, gated, skipped, md, cap_units,
                                        occupancy, reductions, decomp, comp, computes, g_comp,
                                        s_comp, S, holders)

    def _metadata(self, md, cap_units, loops, box, child, size, alg, i, t, p_above, p_cond,
                  has, kind):
        """Metadata traffic per kind and rank, and the worst-case units of the stored tile."""
        ch = child[:, i, t]
        tile = size[:, i, t]
        child_tile = np.where(ch < self.L, self._child_tile(box, ch, t), 1)
        shapes = self._shapes(loops, i, t, tile, child_tile)
        fmts = list(self.formats[(i, t)])
        dens = self.dens[t]
        per_tile = rank_units(fmts, shapes, dens, worst_case=False)
        kept = tile > 0  # rows keeping t here (the dense detail zeroes the others' tiles)
        for r, u in enumerate(rank_units(fmts, shapes, dens, worst_case=True)):
            cap_units[:, i, t, r, 0] = np.where(kept, u.metadata, 0.0)
            cap_units[:, i, t, r, 1] = np.where(kept, u.payload, 0.0)
        # as in apply: steps that change nothing (p_above 0, nothing acting here) skipped
        filtered_above = p_above.any()
        acting = has.any()
        p_here = np.where(has, p_cond, 0.0)
        gating, skipping = kind == 1, kind == 2
        tile_1 = np.maximum(tile, 1)
        for k, kname in enumerate(KINDS):
            a = alg[:, i, t, k]
            for r, u in enumerate(per_tile):
                for j, units in enumerate((u.metadata, u.payload)):
                    with np.errstate(divide="ignore", invalid="ignore"):
                        x = np.where(kept, np.ceil(units * a / tile_1), 0.0)
                    if filtered_above:
                        x = x - floor_(x * p_above)
                    if kname == "fills" or not acting:
                        md[:, i, t, k, r, 0, j] = x  # gated and skipped stay 0
                        continue
                    off = np.where(has, floor_(x * p_here), 0.0)
                    md[:, i, t, k, r, 0, j] = x - off
                    md[:, i, t, k, r, 1, j] = np.where(gating, off, 0.0)
                    md[:, i, t, k, r, 2, j] = np.where(skipping, off, 0.0)

    def _classify(self, keep, rows, computes, g_comp, s_comp, saf_on, saf_p):
        """Computes the storage optimizations left, split into actual / gated / skipped /
        nonexistent by the operands' states at their innermost keeper (classify_operand_states).
        With two operands, when one operand's storage optimization removed computes (P = p of
        its condition's piece being empty), the other operand is conditioned on its piece
        being nonempty: P(nonzero) = d / (1 - p) (Sparseloop's compute analysis)."""
        L = self.L
        ops = self.operands
        n = len(ops)
        B = len(rows)
        enz = np.zeros((B, n))
        has_md = np.zeros((B, n), dtype=bool)
        for k, t in enumerate(ops):
            inner = L - 1 - np.argmax(keep[:, ::-1, t], axis=1)
            has_fmt = np.zeros(L, dtype=bool)
            for (i, tt) in self.formats:
                if tt == t:
                    has_fmt[i] = True
            has_md[:, k] = has_fmt[inner] & (not self.dens[t].dense)
            d = round(self.dens[t].density * 1e6) / 1e6
            enz[:, k] = d
            if n == 2:
                other = ops[1 - k]
                cond = np.where(saf_on[:, other], 1.0 - saf_p[:, other], 1.0)
                with np.errstate(divide="ignore", invalid="ignore"):
                    enz[:, k] = np.where(cond > 0, np.clip(d / cond, 0.0, 1.0), 1.0)
        a, g, s = classify_operand_states(computes[rows], enz[rows], has_md[rows],
                                          self.spec.compute_gating, self.spec.compute_skipping)
        computes[rows], g_comp[rows], s_comp[rows] = a, g, s

    def _vector_ratio(self, size, i, t):
        """(B,) factor on a compressed tile's vector accesses (1.0 when the naive count
        holds)."""
        ratio = np.ones(size.shape[0])
        dens = self.dens[t]
        block = int(self.model.block_t[i, t])
        d = dens.density
        table = VECTOR_WIDTH_THRESHOLDS.get(block)
        if not self.compressed[i, t] or block <= 1 or d >= 1.0 or table is None:
            return ratio
        idx = max(math.floor(d / 0.1) - 1, 0) if d >= 0.1 else 0
        tile = size[:, i, t]
        need = (tile > 0) & (table[idx] > tile // block)
        for v in np.unique(tile[need]):
            v = int(v)
            expected = sum(math.ceil(k / block) * p for k, p in dens.occupancy_pmf(v).items()
                           if k >= 1)
            ratio[tile == v] = expected / (v * d / block)
        return ratio

    def _micro_architecture(self, det, keep, alg, actual, gated, skipped, md, cap_units,
                            occupancy, reductions, decomp, comp, computes, g_comp, s_comp, S,
                            holders) -> SparseDetail:
        """Energy per action from the ERT; bandwidth demand (actual + gated) -> cycles."""
        model = self.model
        B, L, nT = keep.shape
        block = model.block_t[None, :, :, None]
        e_act = model.e_action[None, :, None, :]
        data_e = (np.ceil(actual / block) * e_act
                  + np.ceil(gated / block) * self.e_gated[None, :, None, :]
                  + np.ceil(skipped / block) * self.e_skipped[None, :, None, :])
        data_e = sum_in_order(data_e)  # a fixed order: the compiled step repeats it
        energy = np.zeros((B, L, nT))
        md_read_words = np.zeros((B, L))
        md_write_words = np.zeros((B, L))
        for i in range(L):
            for t in range(nT):
                if not keep[:, i, t].any():
                    continue
                e = data_e[:, i, t] * self._vector_ratio(det.size, i, t)
                if (i, t) in self.formats:
                    bits = self._md_bits_array(md, i, t)  # (B, kind, which)
                    e = e + sum_in_order(np.ceil(bits / self.md_width[i])
                                         * self.e_md[i][None], axes=2)
                    dw = max(1, int(self.model.arch.levels[i].datawidth))
                    md_read_words[:, i] += np.where(keep[:, i, t],
                                                    (bits[:, 0, 0] + bits[:, 0, 1]) // dw, 0)
                    md_write_words[:, i] += np.where(
                        keep[:, i, t], sum_in_order(bits[:, 1:, :2], axes=2) // dw, 0)
                e = e + decomp[:, i, t] * self.e_decompress[i] + comp[:, i, t] * self.e_compress[i]
                energy[:, i, t] = np.where(keep[:, i, t], e, 0.0)
        charged = np.minimum(det.replication, model.clusters[None, :])
        energy = energy * charged[:, :, None]
        used = np.maximum(S.prod(axis=(1, 2)), 1)
        compute_cycles = -(-(computes + g_comp) // used)
        demand = (actual + gated) * (model.bw_scale[None, :, :, None] if model.has_bits else 1)
        demand = np.where(keep[..., None], demand, 0).astype(np.float64)
        demand[:, :, 0, 0] += md_read_words
        demand[:, :, 0, 1] += md_write_words
        cc = np.maximum(compute_cycles, 1)
        slowdown, level_cycles, cycles = bandwidth_cycles(demand, cc, None, model.rbw,
                                                          model.wbw, model.sbw)
        idle = compute_cycles == 0
        if idle.any():
            slowdown[idle], level_cycles[idle], cycles[idle] = 1.0, 0, 0
        leak = leakage(keep, model.e_leak, cycles, det.replication)
        level_energy = sum_in_order(energy) + leak
        compute_energy = (computes * self.e_compute + g_comp * self.e_gated_compute
                          + s_comp * self.e_skipped_compute)
        total = compute_energy + sum_in_order(level_energy)
        inst = model.arch.compute.instances
        with np.errstate(divide="ignore", invalid="ignore"):
            util = np.where(cycles > 0, (computes + g_comp) / (inst * np.maximum(cycles, 1)), 0.0)
        return SparseDetail(
            algorithmic=alg, actual=actual, gated=gated, skipped=skipped, metadata=md,
            capacity_units=cap_units, occupancy=occupancy, temporal_reductions=reductions,
            decompressions=decomp, compressions=comp, energy=energy, actual_computes=computes,
            gated_computes=g_comp, skipped_computes=s_comp, compute_cycles=compute_cycles,
            slowdown=slowdown, level_cycles=level_cycles, cycles=cycles, leak=leak,
            level_energy=level_energy, compute_energy=compute_energy, energy_total=total,
            utilization=util, keep=keep, holder=holders)

    # ---------------------------------------------------------------- compiled step
    @property
    def compilable(self) -> bool:
        """Whether the compiled step (the sparse part of dse/model/kernel_numba.py) covers
        this spec: fixed_structured and hypergeometric densities (not `banded`: a tile's
        emptiness depends on its shape)."""
        return all(d.dense or d.distribution in ("fixed_structured", "hypergeometric")
                   for d in self.dens)

    def _compiled_constants(self) -> dict:
        """The arrays the compiled step reads, built on first use."""
        if self._consts is not None:
            return self._consts
        model = self.model
        L, nT = self.L, self.nT
        acts = [(t, k, ao) for t in range(nT) for k, ao in self.actions[t]]
        n_cond = max((len(ao.condition_on) for _, _, ao in acts), default=0)
        act_cond = np.zeros((len(acts), max(n_cond, 1)), dtype=np.int64)
        cslot = np.full((nT, L, nT), -1, dtype=np.int64)
        slot_c = []
        for a, (t, _, ao) in enumerate(acts):
            for j, c in enumerate(ao.condition_on):
                ct = self.tensor_index[c]
                act_cond[a, j] = ct
                for i in range(L):
                    if cslot[t, i, ct] < 0:
                        cslot[t, i, ct] = len(slot_c)
                        slot_c.append(ct)
        fkeys = sorted(self.formats)
        fslot = np.full((L, nT), -1, dtype=np.int64)
        R = max(self.R, 1)
        md_bits = np.zeros((max(len(fkeys), 1), R, 2), dtype=np.int64)
        for f, key in enumerate(fkeys):
            fslot[key] = f
            for r, bits in enumerate(self.md_bits[key]):
                md_bits[f, r] = bits
        has_fmt = np.zeros((L, nT), dtype=bool)
        for (i, t) in self.formats:
            has_fmt[i, t] = True
        act_t = np.array([t for t, _, _ in acts], dtype=np.int64)
        act_level = np.array([self.level_index[ao.level] for _, _, ao in acts], dtype=np.int64)
        act_n_cond = np.array([len(ao.condition_on) for _, _, ao in acts], dtype=np.int64)
        f_ranks = np.array([len(self.formats[k]) for k in fkeys] or [0], dtype=np.int64)
        kc = model._kernel_consts
        lv = model.arch.levels
        self._consts = {
            "slot_c": slot_c, "fkeys": fkeys, "R": R,
            "structure": (
                kc.relevant, kc.nz_dim, kc.nz_coef, kc.nz_count, kc.n_ranks,
                self.level_block, act_t, act_level, act_cond, act_n_cond, cslot, fslot,
                f_ranks,
                np.array([any(f.dims for f in self.formats[k]) for k in fkeys] or [False]),
            ),
            "counts": (
                np.ascontiguousarray(model.rw, dtype=np.bool_),
                np.array([d.density for d in self.dens], dtype=np.float64),
                self.compressed, act_t, act_level,
                np.array([1 if ao.kind == "gating" else 2 for _, _, ao in acts],
                         dtype=np.int64),
                act_cond, act_n_cond, cslot, fslot, f_ranks,
                md_bits, np.array(self.operands, dtype=np.int64),
                # as _classify: the density rounded to 6 decimals (Python's round)
                np.array([round(self.dens[t].density * 1e6) / 1e6 for t in self.operands],
                         dtype=np.float64),
                has_fmt, np.array([d.dense for d in self.dens]),
                bool(self.spec.compute_gating), bool(self.spec.compute_skipping),
                int(self.macs), np.ascontiguousarray(model.e_action, dtype=np.float64),
                self.e_gated, self.e_skipped, self.e_md, self.e_decompress, self.e_compress,
                self.md_width, np.array([max(1, int(x.datawidth)) for x in lv], dtype=np.int64),
                model.block_t.astype(np.int64), model.clusters.astype(np.int64),
                bool(model.has_bits), model.bw_scale.astype(np.float64),
                model.rbw.astype(np.float64), model.wbw.astype(np.float64),
                model.sbw.astype(np.float64), model.e_leak.astype(np.float64),
                float(self.e_compute), float(self.e_gated_compute),
                float(self.e_skipped_compute), int(model.arch.compute.instances),
                np.array([self.supports[(i, "decompress")] for i in range(L)]),
                np.array([self.supports[(i, "compress")] for i in range(L)]),
            ),
        }
        return self._consts

    def totals(self, det: Detail, T, SX, SY, perm):
        """(energy pJ, cycles, utilization, codecs supported), each (B,): what the mapper
        scores of apply() (the same numbers, tests/test_sparse_kernel.py), by the compiled
        step; the density models and the formats' units are evaluated in numpy between its
        two passes."""
        from dse.model.kernel_numba import counts_rows, structure_rows

        c = self._compiled_constants()
        B, L, nT = det.size.shape
        T = np.ascontiguousarray(T, dtype=np.int64)
        S = np.ascontiguousarray(SX * SY, dtype=np.int64)
        perm = np.ascontiguousarray(perm, dtype=np.int64)
        keep = np.ascontiguousarray(det.keep, dtype=np.bool_)
        size = np.ascontiguousarray(det.size, dtype=np.int64)
        slot_c, fkeys, R = c["slot_c"], c["fkeys"], c["R"]
        cond_size = np.zeros((B, max(len(slot_c), 1)), dtype=np.int64)
        shapes = np.ones((B, max(len(fkeys), 1), R), dtype=np.int64)
        structure_rows(T, S, perm, keep, size, *c["structure"], cond_size, shapes)
        p_empty = np.ones(cond_size.shape)
        for s_, ct in enumerate(slot_c):
            p_empty[:, s_] = self.dens[ct].prob_empty(cond_size[:, s_])
        units = np.zeros((B, max(len(fkeys), 1), R, 2))
        for f, (i, t) in enumerate(fkeys):
            fmts = list(self.formats[(i, t)])
            per_tile = rank_units(fmts, [shapes[:, f, r] for r in range(len(fmts))],
                                  self.dens[t], worst_case=False)
            for r, u in enumerate(per_tile):
                units[:, f, r, 0] = u.metadata
                units[:, f, r, 1] = u.payload
        ratio = np.ones((B, L, nT))
        for (i, t) in zip(*np.nonzero(self.compressed), strict=True):
            ratio[:, i, t] = self._vector_ratio(size, i, t)
        energy = np.empty(B)
        cycles = np.empty(B, dtype=np.int64)
        util = np.empty(B)
        ok = np.empty(B, dtype=np.bool_)
        counts_rows(T, S, keep, size, np.ascontiguousarray(det.counts, dtype=np.float64),
                    np.ascontiguousarray(det.replication, dtype=np.int64), p_empty, units,
                    ratio, *c["counts"], energy, cycles, util, ok)
        return energy, cycles, util, ok

    def codecs_supported(self, sd: SparseDetail) -> np.ndarray:
        """(B,) rows where every level that decompresses fills (or compresses updates) says
        it supports it (the one-mapping path refuses such a mapping with an error)."""
        ok = np.ones(sd.cycles.shape[0], dtype=bool)
        for i in range(self.L):
            if not self.supports[(i, "decompress")]:
                ok &= ~(sd.decompressions[:, i] > 0).any(axis=1)
            if not self.supports[(i, "compress")]:
                ok &= ~(sd.compressions[:, i] > 0).any(axis=1)
        return ok

    def _md_bits_array(self, md, i, t):
        """(B, kind, which) metadata + payload bits over all ranks, rounded as Timeloop."""
        bits = 0.0
        for r, (mdb, plb) in enumerate(self.md_bits[(i, t)]):
            bits = bits + (mdb * md[:, i, t, :, r, :, 0] + plb * md[:, i, t, :, r, :, 1])
        return np.rint(bits)


class SparseBatchModel(BatchModel):
    """The batch model with the sparse step after the dense passes: what the mapper searches
    for a sparse design. Compressed tiles are checked against capacity; cycles and energy are
    the sparse ones."""

    def __init__(self, problem, arch, sparse, link_transfers=None, generation="2024",
                 placement=None, kernel: str | None = None) -> None:
        super().__init__(problem, arch, link_transfers, generation=generation,
                         placement=placement, kernel=kernel)
        self.sparse = SparseStep(self, sparse)
        self._occ: tuple | None = None  # compressed occupancy per (level, tensor), compiled
        if self.kernel == "numba" and self.sparse.compilable:
            # load (or compile) the compiled step now, not inside the first timed block
            L, D, nT = self.L, self.D, len(self.tensors)
            empty = np.zeros((0, L, D), dtype=np.int64)
            keep = np.zeros((0, L, nT), dtype=np.bool_)
            self.evaluate(empty, empty, empty, empty, keep)
            lt, per_level = (L, nT), (L,)
            det = Detail(**{name: np.zeros((0,) + shape, dtype=dtype) for name, (shape, dtype)
                            in {"size": (lt, np.int64), "partition": (lt, np.int64),
                                "replication": (per_level, np.int64),
                                "counts": (lt + (3,), np.float64),
                                "energy_by_action": (lt + (3,), np.float64),
                                "links": (lt, np.float64), "peer": (lt, np.float64),
                                "slowdown": (per_level, np.float64),
                                "level_cycles": (per_level, np.int64),
                                "leak": (per_level, np.float64),
                                "compute_cycles": ((), np.int64), "cycles": ((), np.int64),
                                "energy": ((), np.float64), "keep": (lt, np.bool_)}.items()})
            self.sparse.totals(det, empty, empty, empty, empty)

    def word_capacity(self, T, SX, SY, keep):
        """(B,) rows whose (compressed) tiles fit every level's words, and (B, L) the words
        over capacity per level."""
        T, SX, SY, S, keep, box, size = self._tiles(T, SX, SY, keep)
        return self._word_overflow(size, keep)

    def _dense_detail(self, T, SX, SY, S, perm, keep, box, size, idx) -> Detail:
        """The dense detail of rows `idx` that the sparse step starts from: by the compiled
        kernel (which leaves rows needing the exact link-transfer walk to the numpy passes,
        as BatchModel.detail does), or by the numpy passes with DSE_KERNEL=numpy. `keep`
        has already been masked by _tiles; masking it again changes nothing."""
        if self.kernel == "numba":
            return self._detail_kernel(T[idx], SX[idx], SY[idx], perm[idx], keep[idx])
        return self._evaluate_valid(T[idx], SX[idx], SY[idx], S[idx], perm[idx], keep[idx],
                                    box[idx], size[idx])

    def _word_overflow(self, size, keep):
        """(B,) rows whose compressed tiles fit, (B, L) what is over capacity in words; with
        per-tensor word widths counted in bits and rounded up to words (as BatchModel)."""
        occ = self.sparse.occupancy(size, keep)
        if self.has_bits:
            used_bits = (occ * self.bits_t[None]).sum(axis=2)
            over = np.maximum(used_bits - self.cap[None, :] * self.datawidth[None, :], 0)
            over = -(-over // self.datawidth[None, :])
        else:
            over = np.maximum(occ.sum(axis=2) - self.cap[None, :], 0)
        overflow = np.where(self.cap[None, :] < 0, 0, over)
        return (overflow == 0).all(axis=1), overflow

    def evaluate(self, T, SX, SY, perm, keep, check_capacity: bool = True) -> BatchResult:
        """Capacity (compressed tiles, formats' metadata) and fan-out first, then the dense
        passes and the sparse step on the valid rows. A row needing (de)compression at a
        level that does not support it is invalid (capacity and fan-out ok). With the
        compiled kernel and a spec it covers (SparseStep.compilable) the checks and the step
        are compiled; the numbers are the same."""
        compiled = self.kernel == "numba" and self.sparse.compilable
        if compiled:
            cap_ok, fanout_ok, placement_ok, overflow = self._checks_compiled(T, SX, SY, keep)
        else:
            T, SX, SY, S, keep, box, size = self._tiles(T, SX, SY, keep)
            cap_ok, overflow = self._word_overflow(size, keep)
            fanout_ok = ((SX.prod(axis=2) <= self.fanout[None, :, 0])
                         & (SY.prod(axis=2) <= self.fanout[None, :, 1])).all(axis=1)
            placement_ok = self.placement_ok(T) if self.placed_inside else None
        B = T.shape[0]
        if check_capacity and cap_ok.any() and self.sparse.md_capacity_bits.any():
            idx = np.nonzero(cap_ok & fanout_ok)[0]
            if compiled:
                Ti, SXi, SYi, _, keep_i, _, size_i = self._tiles(T[idx], SX[idx], SY[idx],
                                                               keep[idx])
            else:
                Ti, SXi, SYi, keep_i, size_i = T[idx], SX[idx], SY[idx], keep[idx], size[idx]
            md_over = self.sparse.metadata_overflow(Ti, SXi, SYi, perm[idx], keep_i, size_i)
            bad = (md_over > 0).any(axis=1)
            cap_ok[idx[bad]] = False
            # metadata overflow is counted as capacity at the level (in bits, not words)
            md_words = -(-md_over // self.sparse.md_width[None, :])
            overflow[idx] = np.where(overflow[idx] > 0, overflow[idx], md_words)
        capacity_ok = cap_ok if check_capacity else np.ones(B, dtype=bool)
        valid = capacity_ok & fanout_ok
        if self.placed_inside:
            valid &= placement_ok
        energy = np.full(B, np.inf)
        cycles = np.full(B, np.iinfo(np.int64).max, dtype=np.int64)
        util = np.zeros(B)
        idx = np.nonzero(valid)[0]
        if len(idx):
            if compiled:
                Ti, SXi, SYi, perm_i = T[idx], SX[idx], SY[idx], perm[idx]
                det = self._detail_kernel(Ti, SXi, SYi, perm_i, keep[idx], sparse_fields=True)
                e, c, u, ok = self.sparse.totals(det, Ti, SXi, SYi, perm_i)
            else:
                det = self._dense_detail(T, SX, SY, S, perm, keep, box, size, idx)
                sd = self.sparse.apply(det, T[idx], SX[idx], SY[idx], perm[idx], box=box[idx])
                ok = self.sparse.codecs_supported(sd)
                e, c, u = sd.energy_total, sd.cycles, sd.utilization
            energy[idx] = np.where(ok, e, np.inf)
            cycles[idx] = np.where(ok, c, cycles[idx])
            util[idx] = np.where(ok, u, 0.0)
            valid[idx[~ok]] = False
        return BatchResult(energy, cycles, valid, capacity_ok, fanout_ok, util, overflow)

    def _checks_compiled(self, T, SX, SY, keep):
        """(capacity ok, fan-out ok, placement ok (B,), words over capacity (B, L)) by the
        compiled pass: the same as _tiles + _word_overflow + the fan-out and placement
        checks."""
        from dse.model.kernel_numba import capacity_rows

        if self._occ is None:  # SparseStep.occupancy's models per (level, tensor)
            mode = np.zeros((self.L, len(self.tensors)), dtype=np.int64)
            param = np.zeros(mode.shape)
            for (i, t) in zip(*np.nonzero(self.sparse.compressed), strict=True):
                dens = self.sparse.dens[t]
                if dens.distribution == "hypergeometric":  # min(S, nnz)
                    mode[i, t] = 2
                    param[i, t] = math.ceil(dens.tensor_size * dens.density)
                else:  # fixed_structured (SparseStep.compilable): ceil(S d)
                    mode[i, t], param[i, t] = 1, dens.density
            self._occ = (mode, param)
        kc = self._kernel_consts
        B = T.shape[0]
        out = (np.empty(B, dtype=np.bool_), np.empty(B, dtype=np.bool_),
               np.empty(B, dtype=np.bool_), np.empty((B, self.L), dtype=np.int64))
        capacity_rows(*(np.ascontiguousarray(x, dtype=np.int64) for x in (T, SX, SY)),
                      np.ascontiguousarray(keep, dtype=np.bool_), kc.nz_dim, kc.nz_coef,
                      kc.nz_count, kc.n_ranks, np.ascontiguousarray(self.dummy, dtype=np.bool_),
                      self.placed_inside, np.ascontiguousarray(self.above_backing),
                      np.ascontiguousarray(self.at_backing), self.backing.astype(np.int64),
                      kc.relevant, self.cap.astype(np.int64), self.has_bits,
                      self.bits_t.astype(np.int64), self.datawidth.astype(np.int64),
                      self.fanout.astype(np.int64), *self._occ, *out)
        return out


def classify_operand_states(total: np.ndarray, enz: np.ndarray, has_md: np.ndarray,
                            gate: bool, skip: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(actual, gated, skipped) of `total` (B,) computes from each operand's state (B, n):
    nonzero (P = enz), else a stored zero (no metadata) or absent (metadata: the zero is
    not stored). All absent: the compute never exists. Some absent: skipped by an aligning
    unit (`skip`), else gated (`gate`), else performed. Zeros present, none absent: gated
    (`gate`) or performed. Gated, skipped and nonexistent counts round down."""
    B, n = enz.shape
    p_gate, p_skip, p_none = np.zeros(B), np.zeros(B), np.zeros(B)
    zero = np.where(has_md, 0.0, 1.0 - enz)
    absent = np.where(has_md, 1.0 - enz, 0.0)
    for states in itertools.product(range(3), repeat=n):  # 0 nonzero, 1 zero, 2 absent
        p = np.ones(B)
        for k, state in enumerate(states):
            p = p * (enz[:, k], zero[:, k], absent[:, k])[state]
        n_absent = sum(1 for x in states if x == 2)
        if n_absent == n and n:
            p_none += p
        elif n_absent:
            if skip:
                p_skip += p
            elif gate:
                p_gate += p
        elif any(x == 1 for x in states) and gate:
            p_gate += p
    total = np.asarray(total, dtype=np.int64)
    skipped, gated, none = (np.floor(total * p + 1e-9).astype(np.int64)
                            for p in (p_skip, p_gate, p_none))
    return total - skipped - gated - none, gated, skipped


def attribute(lv, key: str, default: int) -> int:
    v = lv.attributes.get(key, lv.attributes.get(key.replace("_", "-")))
    return default if v is None else int(v)


def md_word_bits(lv, fmt) -> tuple[int, int]:
    """(metadata, payload) word bits of one rank at a level: the rank's own, else the level's
    metadata_datawidth (bitmasks: 1 bit)."""
    dw = attribute(lv, "metadata_datawidth", lv.datawidth)
    mdb = fmt.metadata_word_bits if fmt.metadata_word_bits is not None else (
        1 if fmt.format in ("B", "UB") else dw)
    plb = fmt.payload_word_bits if fmt.payload_word_bits is not None else dw
    return mdb, plb


def _energy(lv, action: str, fallback: str | None = None) -> float:
    e = lv.energy
    if action in e:
        return e[action].pJ
    if fallback and fallback in e:
        return e[fallback].pJ
    return 0.0
