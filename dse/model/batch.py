"""The loop-nest model, once, over numpy arrays with a batch axis (docs/model.md).

A batch shares the problem and architecture; each row has its own factors and loop orders:
  T[b, level, dim]   temporal factor        SX/SY[b, level, dim]   spatial factors (mesh X / Y)
  perm[b, level, :]  temporal dims, innermost first            keep[b, level, tensor]
The mapper evaluates blocks of rows; dse.model.evaluate runs one row. The passes live in
dse/model/tiling.py (tiles, translations), here (deltas), dse/model/multicast.py (multicast
and link transfers), dse/model/buffer.py (parent share, masking, reads/fills/updates) and
dse/model/cost.py (energy, cycles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.arch.architecture import Architecture
from dse.model import generation as generations
from dse.model.actions import ACTIONS, ENERGY_KEY, action_energy, compute_energy
from dse.model.buffer import accesses, parent_share_and_mask, partition_sizes
from dse.model.cost import access_energy, bandwidth_cycles, leakage, sum_in_order
from dse.model.deltas import boundary_deltas
from dse.model.kernel import KernelConstants, kernel_choice, run_kernel
from dse.model.links import linked_fanouts, resolve_link_mode
from dse.model.multicast import MulticastPasses
from dse.model.placement import backing_levels
from dse.model.tiling import TilingPasses
from dse.model.wordbits import bandwidth_scale, tensor_bits, words_per_block
from dse.workload.problem import Problem


@dataclass
class BatchResult:
    energy_pJ: np.ndarray  # (B,)
    cycles: np.ndarray  # (B,) int
    valid: np.ndarray  # (B,) bool: fits capacity and fan-out
    capacity_ok: np.ndarray
    fanout_ok: np.ndarray
    utilization: np.ndarray
    overflow: np.ndarray  # (B, L) words over capacity per level (0 where it fits)


@dataclass
class Detail:
    """Everything the model computes for a batch of (valid) rows, per level and tensor."""

    size: np.ndarray  # (B, L, T) words of the tile kept per instance (0 where bypassed)
    partition: np.ndarray  # (B, L, T) partition size (0 where bypassed)
    replication: np.ndarray  # (B, L) utilized instances (spatial fan-out used above)
    counts: np.ndarray  # (B, L, T, action) per instance, actions as dse.model.actions.ACTIONS
    energy_by_action: np.ndarray  # (B, L, T, action) pJ over all utilized instances
    links: np.ndarray  # (B, L, T) words forwarded between the children of one instance
    peer: np.ndarray  # (B, L, T) peer accesses per instance (included in reads and fills)
    slowdown: np.ndarray  # (B, L) bandwidth slowdown (1 = none)
    level_cycles: np.ndarray  # (B, L)
    leak: np.ndarray  # (B, L) leakage pJ
    compute_cycles: np.ndarray  # (B,)
    cycles: np.ndarray  # (B,)
    energy: np.ndarray  # (B,) pJ in total
    keep: np.ndarray  # (B, L, T) the tensor is kept (not bypassed, not a dummy level)


class BatchModel(TilingPasses, MulticastPasses):
    """Constants of one (problem, architecture) pair, prepared for fast batch evaluation."""

    def __init__(self, problem: Problem, arch: Architecture,
                 link_transfers: bool | str | None = None,
                 generation: str = generations.DEFAULT,
                 placement: dict[str, str] | None = None, kernel: str | None = None) -> None:
        """`placement`: tensor -> backing level name (dse.model.placement; default the
        outermost level for every tensor). `kernel`: 'numba' (the compiled per-mapping
        kernel) or 'numpy' (these passes); None = $DSE_KERNEL, else numba when importable
        (dse.model.kernel)."""
        arch = generations.energies_for(arch, generation)
        self.elide_fills = generations.elides_output_fills(generation)
        self.generation = generation
        self.problem = problem
        self.arch = arch
        self.link_mode = resolve_link_mode(arch, link_transfers)
        self.linked = linked_fanouts(arch, self.link_mode)  # per level's fan-out
        self.link_transfers = any(self.linked)
        self.dims = problem.dims
        self.D = len(self.dims)
        self.L = len(arch.levels)
        self.tensors = problem.data_spaces
        # placement: levels above a tensor's backing level hold none of it; the backing
        # level always holds it
        self.backing = np.array(backing_levels(problem, arch, placement), dtype=np.int64)
        self.placed_inside = bool((self.backing > 0).any())
        level_ix = np.arange(len(arch.levels))[:, None]
        self.above_backing = level_ix < self.backing[None, :]  # (L, nT)
        self.at_backing = level_ix == self.backing[None, :]
        self.rw = np.array([ds.read_write for ds in self.tensors])
        # projection matrices A[t]: (ranks, D)
        self.A = []
        for ds in self.tensors:
            a = np.zeros((len(ds.ranks), self.D), dtype=np.int64)
            for r, rank in enumerate(ds.ranks):
                for d, c in rank:
                    a[r, self.dims.index(d)] += c
            self.A.append(a)
        # ranks over dimensions of bound 1 never move and always have extent 1: drop them
        varying = np.array([problem.bounds[d] > 1 for d in self.dims])
        # (a tensor all of whose ranks are over such dimensions keeps one, of extent 1)
        self.A = [a[(a[:, varying] != 0).any(axis=1)] if (a[:, varying] != 0).any() else a[:1]
                  for a in self.A]
        self.shared_dim = [bool(((a != 0).sum(axis=0) > 1).any()) for a in self.A]
        self._structs: dict = {}  # spatial structures seen, for link-transfer lookups
        self.irrelevant = [~(a != 0).any(axis=0) for a in self.A]
        # (x, y) dimension pairs that share a rank (sliding windows): links need one of these
        self.coupled_pairs = []
        for a in self.A:
            pairs = set()
            for r in range(a.shape[0]):
                ds = np.nonzero(a[r])[0]
                pairs |= {(int(x), int(y)) for x in ds for y in ds if x != y}
            self.coupled_pairs.append(sorted(pairs))
        lv = arch.levels
        self.cap = np.array([(-1 if x.effective_capacity_words is None
                              else x.effective_capacity_words) for x in lv], dtype=np.int64)
        self.block = np.array([x.block_size for x in lv], dtype=np.int64)
        self.clusters = np.array([x.instances // x.cluster_size for x in lv], dtype=np.int64)
        # per-tensor word widths (dse.model.wordbits): words per row, bits per word, and
        # datawidth words of bandwidth per word, per (level, tensor)
        self.has_bits = any(ds.word_bits for ds in self.tensors)
        self.block_t = np.array([[words_per_block(x, ds) for ds in self.tensors] for x in lv],
                                dtype=np.int64)
        self.bits_t = np.array([[tensor_bits(x, ds) for ds in self.tensors] for x in lv],
                               dtype=np.int64)
        self.bw_scale = np.array([[bandwidth_scale(x, ds) for ds in self.tensors] for x in lv])
        self.datawidth = np.array([max(1, x.datawidth) for x in lv], dtype=np.int64)
        self.fanout = np.array([arch.fanout(i) for i in range(self.L)], dtype=np.int64)

        def energy_of(x, a):
            # a missing energy is a SpecError, not a NaN that would quietly steer the search
            # away from the level
            return 0.0 if x.is_dummy else action_energy(x, a)

        # energy per (level, action), actions as dse.model.actions.ACTIONS
        self.e_action = np.array([[energy_of(x, ENERGY_KEY[a]) for a in ACTIONS] for x in lv])
        self.e_leak = np.array([x.energy["leak"].pJ if "leak" in x.energy else 0.0 for x in lv])
        self.e_compute = compute_energy(arch.compute, problem.compute_action,
                                        arch.source)[0]
        self.rbw = np.array([np.inf if x.read_bandwidth is None else x.read_bandwidth
                             for x in lv])
        self.wbw = np.array([np.inf if x.write_bandwidth is None else x.write_bandwidth
                             for x in lv])
        self.sbw = np.array([np.inf if x.shared_bandwidth is None else x.shared_bandwidth
                             for x in lv])
        self.dummy = np.array([x.is_dummy for x in lv])
        self.compute_pJ = problem.macs * self.e_compute
        self.kernel = kernel_choice(kernel)
        self._kernel_consts = KernelConstants(self) if self.kernel == "numba" else None

    def _tiles(self, T, SX, SY, keep):
        """The nest pass: per-level op-space boxes (B, L + 1, D) and tile words (B, L, T)."""
        B, L, D = T.shape
        T = T.astype(np.int64)
        SX = SX.astype(np.int64)
        SY = SY.astype(np.int64)
        keep = keep.astype(bool) & ~self.dummy[None, :, None]
        if self.placed_inside:
            keep = (keep & ~self.above_backing[None]) | self.at_backing[None]
        S = SX * SY
        box = np.ones((B, L + 1, D), dtype=np.int64)
        per_level = T * S
        for i in range(L - 1, -1, -1):
            box[:, i] = box[:, i + 1] * per_level[:, i]
        size = np.stack([self._tile_size(t, box[:, :L]) for t in range(len(self.tensors))],
                        axis=2)  # (B, L, nT)
        return T, SX, SY, S, keep, box, size

    def placement_ok(self, T: np.ndarray) -> np.ndarray:
        """Rows (B,) where no temporal loop above a tensor's backing level walks a dimension
        the tensor depends on (that would make the backing level hold only part of it)."""
        ok = np.ones(T.shape[0], dtype=bool)
        for t, b in enumerate(self.backing):
            if b:
                relevant = ~self.irrelevant[t]
                ok &= ~(T[:, :b][:, :, relevant] > 1).any(axis=(1, 2))
        return ok

    def detail(self, T: np.ndarray, SX: np.ndarray, SY: np.ndarray, perm: np.ndarray,
               keep: np.ndarray, spatial_order: np.ndarray | None = None) -> Detail:
        """The whole model on every row, without validity checks (the caller has checked the
        fan-out; capacity does not change any count)."""
        if self.kernel == "numba":
            return self._detail_kernel(T, SX, SY, perm, keep, spatial_order)
        return self._detail_numpy(T, SX, SY, perm, keep, spatial_order)

    def _detail_numpy(self, T, SX, SY, perm, keep, spatial_order=None) -> Detail:
        T, SX, SY, S, keep, box, size = self._tiles(T, SX, SY, keep)
        return self._evaluate_valid(T, SX, SY, S, perm, keep, box, size, spatial_order)

    def _detail_kernel(self, T, SX, SY, perm, keep, spatial_order=None,
                       sparse_fields: bool = False) -> Detail:
        """detail() by the compiled kernel; rows it leaves to the numpy passes (they need
        the exact link-transfer walk) are evaluated by those. `sparse_fields`: only size,
        replication, counts, keep, energy and cycles are filled (what the sparse step
        reads); the other per-level arrays are empty."""
        canonical = None
        if spatial_order is not None:
            canonical = self._canonical_spatial(spatial_order, SX * SY)
        out = run_kernel(self._kernel_consts, T, SX, SY, perm, keep, every_row=True,
                         canonical=canonical, sparse_fields=sparse_fields)
        det = Detail(size=out["size"], partition=out["partition"],
                     replication=out["replication"], counts=out["counts"],
                     energy_by_action=out["energy_by_action"], links=out["links"],
                     peer=out["peer"], slowdown=out["slowdown"],
                     level_cycles=out["level_cycles"], leak=out["leak"],
                     compute_cycles=out["compute_cycles"], cycles=out["cycles"],
                     energy=out["energy"], keep=out["keep"])
        idx = np.nonzero(out["exact"])[0]
        if len(idx):
            sub = self._detail_numpy(T[idx], SX[idx], SY[idx], perm[idx], keep[idx],
                                     None if spatial_order is None else spatial_order[idx])
            for name in Detail.__dataclass_fields__:
                if len(getattr(det, name)):  # sparse_fields: the others are empty
                    getattr(det, name)[idx] = getattr(sub, name)
        return det

    def evaluate(self, T: np.ndarray, SX: np.ndarray, SY: np.ndarray, perm: np.ndarray,
                 keep: np.ndarray, check_capacity: bool = True) -> BatchResult:
        """Cheap validity checks on the whole batch first, the full model on valid rows only."""
        if self.kernel == "numba":
            return self._evaluate_kernel(T, SX, SY, perm, keep, check_capacity)
        B = T.shape[0]
        T, SX, SY, S, keep, box, size = self._tiles(T, SX, SY, keep)
        if self.has_bits:  # capacity in bits; overflow reported in datawidth words
            used_bits = np.where(keep, size * self.bits_t[None], 0).sum(axis=2)
            over = np.maximum(used_bits - self.cap[None, :] * self.datawidth[None, :], 0)
            over = -(-over // self.datawidth[None, :])
            overflow = np.where(self.cap[None, :] < 0, 0, over)
        else:
            used = np.where(keep, size, 0).sum(axis=2)
            overflow = np.where(self.cap[None, :] < 0, 0,
                                np.maximum(used - self.cap[None, :], 0))
        cap_ok = (overflow == 0).all(axis=1)
        capacity_ok = cap_ok if check_capacity else np.ones(B, dtype=bool)
        fanout_ok = ((SX.prod(axis=2) <= self.fanout[None, :, 0])
                     & (SY.prod(axis=2) <= self.fanout[None, :, 1])).all(axis=1)
        valid = capacity_ok & fanout_ok
        if self.placed_inside:
            valid &= self.placement_ok(T)
        energy = np.full(B, np.inf)
        cycles = np.full(B, np.iinfo(np.int64).max, dtype=np.int64)
        util = np.zeros(B)
        idx = np.nonzero(valid)[0]
        if len(idx):
            det = self._evaluate_valid(T[idx], SX[idx], SY[idx], S[idx], perm[idx],
                                       keep[idx], box[idx], size[idx])
            energy[idx], cycles[idx] = det.energy, det.cycles
            c = det.cycles
            util[idx] = self.problem.macs / (self.arch.compute.instances * c)
        return BatchResult(energy, cycles, valid, capacity_ok, fanout_ok, util,
                           overflow)

    def _evaluate_kernel(self, T, SX, SY, perm, keep, check_capacity: bool) -> BatchResult:
        """evaluate() by the compiled kernel (validity and model per row); rows it leaves to
        the numpy passes (they need the exact link-transfer walk) are evaluated by those."""
        out = run_kernel(self._kernel_consts, T, SX, SY, perm, keep, every_row=False,
                         check_capacity=check_capacity)
        energy, cycles, valid = out["energy"], out["cycles"], out["valid"]
        idx = np.nonzero(out["exact"])[0]
        if len(idx):
            det = self._detail_numpy(T[idx], SX[idx], SY[idx], perm[idx], keep[idx])
            energy[idx], cycles[idx] = det.energy, det.cycles
        util = np.zeros(T.shape[0])
        util[valid] = self.problem.macs / (self.arch.compute.instances * cycles[valid])
        return BatchResult(energy, cycles, valid, out["capacity_ok"], out["fanout_ok"], util,
                           out["overflow"])

    def _evaluate_valid(self, T, SX, SY, S, perm, keep, box, size, spatial_order=None):
        """The passes, in Timeloop's order: temporal loop slots per level (nest); per level
        boundary and tensor the delta words of the sampled steps (tiles and deltas);
        multicast groups and link transfers at each fan-out; then parent share and masking,
        partition sizes (dse.model.buffer); reads, fills, updates (dse.model.buffer); energy,
        leakage and cycles (dse.model.cost)."""
        B, L, D = T.shape
        nT = len(self.tensors)
        rows = np.arange(B)[:, None]
        # spatial loop order (B, L, D), dims innermost first; None = the mapper's canonical
        # order (dimension order). Rows in another order skip the closed forms for links.
        if spatial_order is None:
            canonical = np.ones((B, L), dtype=bool)
        else:
            canonical = self._canonical_spatial(spatial_order, S)
        sbox = box[:, 1:] * S  # spatial box of level i = box[i+1] * S[i]
        # temporal loop slots per level, innermost first, unit loops moved to the end
        slot_dim, slot_n, slot_s, widths = [], [], [], []
        for i in range(L):
            p = perm[:, i, :]
            n_i = T[rows, i, p]
            unit = n_i == 1
            if (unit[:, :-1] & ~unit[:, 1:]).any():  # not yet canonical: units go last
                order = np.argsort(unit, axis=1, kind="stable")
                p = np.take_along_axis(p, order, axis=1)
                n_i = np.take_along_axis(n_i, order, axis=1)
            w = int((n_i > 1).sum(axis=1).max()) if B else 0
            slot_dim.append(p[:, :w])
            slot_n.append(n_i[:, :w])
            slot_s.append(sbox[rows, i, p[:, :w]] if w else np.zeros((B, 0), dtype=np.int64))
            widths.append(w)
        fan = S.prod(axis=2)  # (B, L)
        delta_words = np.zeros((B, L, nT))
        groups = np.ones((B, L, nT))
        patches = []  # (rows, level, tensor, total, weighted, links) where links apply
        # zero-translation link transfers: (words per child, groups and children among the
        # rest, linked children) per row, level, tensor
        zero_words = np.zeros((B, L, nT))
        zero_links = np.zeros((B, L, nT, 3))
        for i in range(L):
            b = i + 1
            # the temporal loops above boundary b, innermost first: dims, bounds, op strides
            sd = np.concatenate(slot_dim[i::-1], axis=1)
            sn = np.concatenate(slot_n[i::-1], axis=1)
            ss = np.concatenate(slot_s[i::-1], axis=1)
            K = sd.shape[1]
            nonunit = sn > 1
            outer = np.cumprod(sn[:, ::-1], axis=1)[:, ::-1]
            outer_excl = np.concatenate([outer[:, 1:], np.ones((B, 1), np.int64)], axis=1)
            weight = (sn - 1) * outer_excl
            first = np.argmax(nonunit, axis=1) if K else np.zeros(B, dtype=np.int64)
            child_box = box[:, b]
            any_fan = bool((fan[:, i] > 1).any())
            # rows where a link transfer could act at this fan-out (dse.model.multicast)
            links_possible = ((fan[:, i] > 1) & nonunit.any(axis=1) if self.linked[i]
                              else np.zeros(B, dtype=bool))
            for t in range(nT):
                # deltas at this boundary only matter where this level or its child (the
                # compute units count as keeping everything) keeps t, or where a link
                # transfer could change the ratio groups / fan-out; elsewhere only that ratio
                # is used, so the count is 1 (per row, so a row's numbers never depend on the
                # other rows of its batch)
                needed = keep[:, i, t] | (keep[:, b, t] if b < L else True)
                need_row = needed | links_possible
                if not need_row.any():
                    delta_words[:, i, t] = 1.0
                    if any_fan:
                        groups[:, i, t] = self._groups(t, S[:, i], child_box, SX[:, i],
                                                       SY[:, i])
                    continue
                ext_list = self._extents(t, child_box)
                full = ext_list[0].copy()
                for e in ext_list[1:]:
                    full = full * e
                links_here = any_fan and self.linked[i]
                # translations per rank: for the closed form above the compute units' boundary,
                # and for link transfers
                vs = (self._translations(t, sd, ss, nonunit)
                      if K and (b < L or links_here) else None)
                delta_words[:, i, t], c, kind, kind_ok = boundary_deltas(
                    full, ext_list, vs, weight, nonunit, first, b == L, links_here)
                delta_words[~need_row, i, t] = 1.0
                if any_fan:
                    groups[:, i, t] = self._groups(t, S[:, i], child_box, SX[:, i], SY[:, i])
                    if self.linked[i] and K:
                        v = np.stack(vs, axis=2)
                        # `declared`: only between children that keep the tensor
                        link_rows = (keep[:, b, t] if self.link_mode == "declared"
                                     else np.ones(B, dtype=bool))
                        self._links(t, i, b == L, v, kind_ok, nonunit, weight, outer_excl, sn,
                                    first, full,
                                    c if b < L else None, kind if b < L else None,
                                    needed, link_rows,
                                    groups, fan, S, T, SX, SY, child_box, zero_words,
                                    zero_links, patches,
                                    None if spatial_order is None else spatial_order[:, i],
                                    canonical[:, i])

        fanout = fan.astype(np.float64)
        total = (delta_words - zero_words) * groups + zero_words * zero_links[..., 0]
        weighted = (delta_words - zero_words) * fanout[:, :, None] + zero_words * zero_links[..., 1]
        links = zero_words * zero_links[..., 2]
        for hr, i, t, tot_p, wei_p, lnk_p in patches:
            total[hr, i, t], weighted[hr, i, t], links[hr, i, t] = tot_p, wei_p, lnk_p
        content, parent_share = parent_share_and_mask(total, weighted, links, fanout, keep)
        if self.placed_inside:  # nothing comes from above a backing level
            parent_share[:, self.at_backing] = 0.0
            links[:, :-1][:, self.at_backing[1:]] = 0.0
        spread = np.stack([self._tile_size(t, sbox) for t in range(nT)], axis=2)
        partition = partition_sizes(size, spread)
        replication = np.ones((B, L), dtype=np.int64)
        for i in range(1, L):
            replication[:, i] = replication[:, i - 1] * fan[:, i - 1]
        peer = np.zeros((B, L, nT))
        if patches or zero_words.any():
            peer[:, 1:] = np.floor(np.floor(links[:, :-1]) / replication[:, 1:, None])
        counts = accesses(content, parent_share, peer, partition, keep, self.rw,
                          self.elide_fills)
        energy_by_action, level_energy = access_energy(
            counts, keep, replication, self.block_t, self.e_action, self.clusters)
        compute_cycles = np.prod(T, axis=(1, 2))
        slowdown, level_cycles, cycles = bandwidth_cycles(
            counts, compute_cycles, self.bw_scale if self.has_bits else None,
            self.rbw, self.wbw, self.sbw)
        leak = leakage(keep, self.e_leak, cycles, replication)
        energy = sum_in_order(level_energy) + sum_in_order(leak) + self.compute_pJ
        return Detail(size=np.where(keep, size, 0), partition=np.where(keep, partition, 0),
                      replication=replication, counts=counts, energy_by_action=energy_by_action,
                      links=links, peer=peer, slowdown=slowdown, level_cycles=level_cycles,
                      leak=leak, compute_cycles=compute_cycles, cycles=cycles, energy=energy,
                      keep=keep)

def spatial_orders(model: BatchModel, mappings) -> np.ndarray:
    """(B, L, D) spatial loop order of each mapping's levels, dims innermost first (the
    mapping's `spatial_order`, then the other dims in dimension order, as Mapping.loops)."""
    dims = list(model.dims)
    out = np.zeros((len(mappings), model.L, model.D), dtype=np.int64)
    for b, m in enumerate(mappings):
        for i, lm in enumerate(m.levels):
            order = [d for d in lm.spatial_order if d in dims]
            order += [d for d in dims if d not in order]
            out[b, i] = [dims.index(d) for d in order]
    return out


def rows_from_mappings(model: BatchModel, mappings) -> tuple:
    """Arrays (T, SX, SY, perm, keep) for a list of dse.mapping.Mapping (testing helper)."""
    B, L, D, nT = len(mappings), model.L, model.D, len(model.tensors)
    T = np.ones((B, L, D), dtype=np.int64)
    SX = np.ones((B, L, D), dtype=np.int64)
    SY = np.ones((B, L, D), dtype=np.int64)
    perm = np.zeros((B, L, D), dtype=np.int64)
    keep = np.ones((B, L, nT), dtype=bool)
    dims = list(model.dims)
    names = [ds.name for ds in model.tensors]
    for b, m in enumerate(mappings):
        for i, lm in enumerate(m.levels):
            for d, f in lm.temporal.items():
                T[b, i, dims.index(d)] = f
            order = [d for d in lm.spatial_order if d in dims]
            order += [d for d in dims if d not in order]
            split = len(order) if lm.split is None else lm.split
            xd = set(order[:split])
            for d, f in lm.spatial.items():
                (SX if d in xd else SY)[b, i, dims.index(d)] = f
            listed = [d for d in lm.temporal_order if d in dims]
            rest = [d for d in dims if d not in listed]
            inner_first = listed + rest[::-1]
            perm[b, i] = [dims.index(d) for d in inner_first]
            for t, name in enumerate(names):
                keep[b, i, t] = lm.keeps(name)
    return T, SX, SY, perm, keep

