"""Cheap lower bounds on a mapping's energy and cycles, for the mapper's bound-and-skip.

Each bound is provably <= what dse.mapper.batch.BatchModel computes for the same row, in every
mode (link transfers, bypass, per-tensor word widths, clusters, Timeloop generations):
* cycles >= the product of all temporal factors: the model takes the max of that and each
  level's bandwidth-stretched cycles.
* energy >= compute energy (a constant) + leakage over the compute cycles on the instances
  the model charges (utilized instances of every level that keeps something) + the
  compulsory accesses at the backing store: where level 0 keeps a tensor with fan-out 1 and
  the level below also keeps it, level 0's content is the sum of the child tile's deltas,
  which is at least the whole tensor, so the tensor is read (inputs) or updated (outputs)
  at least once, in whole blocks;
  plus the operand accesses at each tensor's innermost keeper: the delta count towards the
  compute units is one word per step, and each bypassing level in between passes its
  child's content up multiplied by its multicast groups (>= 1), so where no link transfer
  can act on that chain (links off at those fan-outs, or fan-out 1) every instance of the
  keeper reads (inputs) or updates (outputs) the tensor at least once per compute cycle,
  charged per utilized cluster as the model does. Where a condition fails the term is
  dropped, not guessed.
Dynamic energies only add, so the bound needs every per-action energy >= 0; with a negative
one the energy bound is -inf (no skipping on energy).
"""

from __future__ import annotations

import math

import numpy as np

from dse.mapper.batch import BatchModel
from dse.model.actions import ACTIONS
from dse.model.cost import sum_in_order

# a bound is multiplied by this before comparing: the model sums the same terms in another
# order, so an exact (tight) bound could otherwise exceed it by a rounding error
SAFETY = 1.0 - 1e-9


class Bounds:
    """Constants of one BatchModel, prepared for bounding batches of rows."""

    def __init__(self, model: BatchModel) -> None:
        self.model = model
        self.L = model.L
        nT = len(model.tensors)
        # the model's energy table is [level, action] over ACTIONS = (read, fill, update)
        e_read, e_write, e_update = (model.e_action[:, ACTIONS.index(a)]
                                     for a in ("read", "fill", "update"))
        self.compute_pJ = model.problem.macs * model.e_compute
        energies = np.concatenate([e_read, e_write, e_update, model.e_leak,
                                   [model.e_compute]])
        self.energy_ok = bool((energies >= 0).all())
        self.leak = model.e_leak.copy()
        self.dummy = model.dummy.copy()
        full_box = np.array([[model.problem.bounds[d] for d in model.dims]], dtype=np.int64)
        size = np.array([int(model._tile_size(t, full_box)[0]) for t in range(nT)])
        # words of each tensor, in whole blocks of the backing store, times its access energy
        blocks = -(-size // model.block_t[0])
        per_access = np.where(model.rw, e_update[0], e_read[0])
        self.compulsory_pJ = blocks * per_access  # (nT,)
        self.linked = np.array(model.linked, dtype=bool)  # (L,)
        self.block_t = model.block_t.astype(np.int64)  # (L, nT)
        # per (level, tensor): energy of the access a compute step costs its innermost keeper
        self.operand_pJ = np.where(model.rw[None, :], e_update[:, None],
                                   e_read[:, None])
        self.clusters = model.clusters.astype(np.int64)
        self.compiled = model.kernel == "numba"  # dse.mapper.kernel_numba.lower_bounds

    def lower(self, T: np.ndarray, SX: np.ndarray, SY: np.ndarray, keep: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """(energy_pJ lower bound, cycles lower bound) per row; both <= the model's values."""
        B = T.shape[0]
        if self.compiled and self.energy_ok:
            return self._lower_compiled(T, SX, SY, keep)
        cycles = np.prod(T.astype(np.int64), axis=(1, 2))
        if not self.energy_ok:
            return np.full(B, -np.inf), cycles
        keep = keep.astype(bool) & ~self.dummy[None, :, None]
        fan = (SX.astype(np.int64) * SY.astype(np.int64)).prod(axis=2)  # (B, L)
        rep = np.ones((B, self.L), dtype=np.int64)
        for i in range(1, self.L):
            rep[:, i] = rep[:, i - 1] * fan[:, i - 1]
        leak = sum_in_order(np.where(keep.any(axis=2), self.leak[None, :] * rep, 0.0)) * cycles
        energy = leak + self.compute_pJ
        if self.L >= 2:
            ok = keep[:, 0] & keep[:, 1]  # (B, nT)
            ok &= (fan[:, 0] == 1)[:, None]
            energy = energy + sum_in_order(np.where(ok, self.compulsory_pJ[None, :], 0.0))
        # innermost keeper of each tensor, and whether links could act from it down
        kept = keep.any(axis=1)  # (B, nT)
        inner = self.L - 1 - np.argmax(keep[:, ::-1, :], axis=1)  # (B, nT)
        no_link = ~self.linked[None, :] | (fan == 1)  # (B, L)
        chain_ok = np.flip(np.cumprod(np.flip(no_link, axis=1), axis=1), axis=1).astype(bool)
        ok = kept & np.take_along_axis(chain_ok, inner, axis=1)
        t_idx = np.arange(keep.shape[2])[None, :]
        blocks = -(-cycles[:, None] // self.block_t[inner, t_idx])
        charged = np.minimum(np.take_along_axis(rep, inner, axis=1), self.clusters[inner])
        with np.errstate(over="ignore"):  # absurd energies (fuzzing) bound at inf, as the model
            operand = blocks * self.operand_pJ[inner, t_idx] * charged
        energy = energy + sum_in_order(np.where(ok, operand, 0.0))
        return energy * SAFETY, cycles

    def _lower_compiled(self, T, SX, SY, keep) -> tuple[np.ndarray, np.ndarray]:
        """lower() by dse.mapper.kernel_numba.lower_bounds (the same numbers)."""
        from dse.mapper.kernel_numba import lower_bounds

        B = T.shape[0]
        energy = np.empty(B)
        cycles = np.empty(B, dtype=np.int64)
        i64 = [np.ascontiguousarray(x, dtype=np.int64) for x in (T, SX, SY)]
        lower_bounds(*i64, np.ascontiguousarray(keep, dtype=np.bool_),
                     np.ascontiguousarray(self.dummy, dtype=np.bool_),
                     self.leak.astype(np.float64), float(self.compute_pJ),
                     self.compulsory_pJ.astype(np.float64), self.linked, self.block_t,
                     np.ascontiguousarray(self.operand_pJ, dtype=np.float64),
                     self.clusters, SAFETY, energy, cycles)
        return energy, cycles

class SparseBounds:
    """Lower bounds for the sparse model (dse.model.sparse_batch.SparseBatchModel), whose
    storage accesses a sparse design may gate, skip or compress away, so only compute and
    leakage are bounded:
    * computes + gated computes >= C_min for every mapping. With a storage gating/skipping
      on an operand, each such operand removes floor(c x p) of c computes, p = 1 - the
      product over its conditions of (1 - P(piece empty)); a piece has at least one element
      and P(empty) falls with the piece's size (both density models), so p <= the value for
      one-element pieces over all the operand's conditions; the compute classification that
      follows keeps at least the share of computes with no operand absent (skipping) or not
      every operand absent (otherwise), at the densities. Without one, the compute-level
      classification depends only on which operands are compressed at their innermost
      keeper: the least actual + gated over those patterns.
    * cycles >= ceil(C_min / spatial instances used) (the sparse compute cycles).
    * energy >= C_min x min(compute, gated compute energy) + leakage over those cycles (as
      Bounds); every gated, skipped, metadata and (de)compression energy must be >= 0, else
      no energy bound.
    """

    def __init__(self, model) -> None:
        from dse.model.sparse import classify_computes

        self.model = model
        step = model.sparse
        spec = step.spec
        self.L = model.L
        macs = model.problem.macs
        operands = step.operands
        saf_ops = [t for t in operands if step.actions[t]]
        floor_c = macs
        for t in saf_ops:  # each operand with a storage optimization, at its largest p
            q = 1.0
            for _, ao in step.actions[t]:
                for c in ao.condition_on:
                    q *= 1.0 - step.dens[step.tensor_index[c]].prob_empty(1)
            floor_c *= q
        # the compute classification then keeps, of those, at least the computes with no
        # operand absent (skipping) or not all absent (otherwise); conditioning on the
        # storage optimizations only raises P(nonzero) above d, so the worst case is every
        # operand compressed at its density
        dens = [max(step.dens[t].density - 1e-6, 0.0) for t in operands]
        keep_frac = (math.prod(dens) if spec.compute_skipping
                     else 1.0 - math.prod(1.0 - d for d in dens))
        floor_c *= keep_frac
        # the floors of the model remove at most a rounding margin less
        c_saf = max(0.0, floor_c * (1.0 - 1e-9) - 2.0)
        c_plain = min(
            (sum(classify_computes(macs, [(step.dens[t].density, bool(pat >> k & 1))
                                          for k, t in enumerate(operands)],
                                   spec.compute_gating, spec.compute_skipping)[:2])
             for pat in range(2 ** len(operands))), default=macs)
        self.c_min = min(c_saf, c_plain) if saf_ops else float(c_plain)
        energies = np.concatenate([model.e_action.ravel(), model.e_leak, step.e_gated.ravel(),
                                   step.e_skipped.ravel(), step.e_md.ravel(),
                                   step.e_decompress, step.e_compress,
                                   [step.e_compute, step.e_gated_compute,
                                    step.e_skipped_compute]])
        self.energy_ok = bool((energies >= 0).all())
        self.compute_pJ = self.c_min * min(step.e_compute, step.e_gated_compute)
        self.leak = model.e_leak.copy()
        self.dummy = model.dummy.copy()

    def lower(self, T: np.ndarray, SX: np.ndarray, SY: np.ndarray, keep: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """(energy_pJ lower bound, cycles lower bound) per row; both <= the model's values."""
        B = T.shape[0]
        fan = (SX.astype(np.int64) * SY.astype(np.int64)).prod(axis=2)  # (B, L)
        used = np.maximum(fan.prod(axis=1), 1)
        cycles = np.ceil(self.c_min / used - 1e-9).astype(np.int64)
        cycles = np.maximum(cycles, 0)
        if not self.energy_ok:
            return np.full(B, -np.inf), cycles
        keep = keep.astype(bool) & ~self.dummy[None, :, None]
        rep = np.ones((B, self.L), dtype=np.int64)
        for i in range(1, self.L):
            rep[:, i] = rep[:, i - 1] * fan[:, i - 1]
        leak = (np.where(keep.any(axis=2), self.leak[None, :] * rep, 0.0).sum(axis=1)
                * cycles)
        return (leak + self.compute_pJ) * SAFETY, cycles
