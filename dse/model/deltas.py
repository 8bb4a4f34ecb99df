"""Closed forms for Timeloop's delta (fill) counting, multicast and link transfers.

Timeloop walks each loop's iterations #0 and #1 only and scales #1 by (bound - 1). At a tile
boundary it compares the tile with the one seen at the previous *sampled* invocation: equal ->
nothing new; translated along one rank by less than the extent -> the uncovered slab; any other
change -> the whole tile. A change of translation ("stride") discards the reuse state, so the
next delta is the whole tile.

Number the non-unit temporal loops above a boundary 1..m, innermost first. In the sampled walk the
loops advance like a binary counter: loop 1 on every other step, loop k (k > 1) only when all loops
below it go from their iteration 1 back to 0. So the translation of a step at loop k is always
  Delta_k = stride_k - sum_{j<k} stride_j           (op space, projected per tensor)
and the reuse state before a loop-k step always holds Delta_1. Hence, with F the tile size,
  fills = F + sum_k W_k * c_k,   W_k = (n_k - 1) * prod_{j>k} n_j,
  c_1 = D(Delta_1),  c_k = D(Delta_k) if Delta_k == Delta_1 else F,
which `boundary_deltas` evaluates over arrays for dse.model.batch (the step-by-step form of
these rules is kept in tests/oracle/deltas_steps.py, and the brute-force walker in tests/
checks both; dse/model/kernel_numba.py re-expresses it per mapping).
Also here: the link-transfer helpers the batch model shares with that oracle, and the
per-step-class fill count of one tiling that the DRAM lower bound prices tilings with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dse.model.nest import NestLoop
from dse.workload.problem import DataSpace

Vec = tuple[int, ...]


def boundary_deltas(full: np.ndarray, ext: list[np.ndarray], vs: list[np.ndarray] | None,
                    weight: np.ndarray, nonunit: np.ndarray, first: np.ndarray,
                    to_compute: bool, with_kinds: bool):
    """The tiles-and-deltas pass at one tile boundary for one tensor, over a batch (B rows).

    full (B,): words of the tile; ext: per rank its extent (B,); vs: per rank the (B, K)
    translation of each temporal loop above the boundary (innermost first; None when K == 0,
    or towards the compute units without links); weight (B, K): W_k; nonunit (B, K): the
    loop is not a unit loop; first (B,): the first non-unit loop. Returns
    (delta words per child (B,), c (B, K) words per step or None, kind (B, K) of each step's
    delta (0 empty, 1 partial, 2 whole tile) or None, kind_ok (B, K): steps whose previous
    sampled step had a delta of the same kind, as a link transfer needs; None unless
    `with_kinds`)."""
    B, K = weight.shape
    if K == 0:
        return full, None, None, nonunit
    if to_compute:  # every step brings the compute units a whole tile
        return full * (1 + weight.sum(axis=1)), None, None, nonunit
    # per rank (B, K) arrays: numpy reduces poorly over a 3-4 long last axis
    nzs = [x != 0 for x in vs]
    cnt = sum(nz.astype(np.int8) for nz in nzs)
    vr = np.abs(sum(vs))  # the moved rank's offset when cnt == 1
    er = sum(nz * ext[r][:, None] for r, nz in enumerate(nzs))
    partial = (cnt == 1) & (vr < er)
    fullk = full[:, None]
    c = np.where(partial, vr * (fullk // np.maximum(er, 1)), fullk)  # D(Delta_k)
    c = np.where(cnt == 0, 0, c)
    rows = np.arange(B)
    differs = np.zeros((B, K), dtype=bool)
    for x in vs:
        differs |= x != x[rows, first][:, None]
    later = np.arange(K)[None, :] > first[:, None]
    c = np.where(later & differs, fullk, c)  # Delta_k != Delta_1: the whole tile
    delta = full + (weight * c).sum(axis=1)
    if not with_kinds:
        return delta, c, None, None
    # a link needs the previous step's delta to be of the same kind
    kind = np.where(c == 0, 0, np.where(c == fullk, 2, 1))
    kfirst = kind[rows, first]
    ok_later = later & nonunit & (kind == kfirst[:, None]) & (kind > 0)
    ok_first = (kfirst > 0) & ((kfirst == 2) | ok_later.any(axis=1))
    kind_ok = ok_later | ((np.arange(K)[None, :] == first[:, None]) & ok_first[:, None])
    return delta, c, kind, kind_ok


def neighbour_diffs(proj, h_size: int, v_size: int) -> tuple[frozenset, ...]:
    """Per child, the data-space differences to its mesh neighbours (neighbour - self). Child
    ids are decoded on an h_size x v_size mesh; ids past the last child have no data."""
    out = []
    n = len(proj)
    for c, p in enumerate(proj):
        hid, vid = c % h_size, c // h_size
        diffs = set()
        for dh, dv in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            nh, nv = hid + dh, vid + dv
            if 0 <= nh < h_size and 0 <= nv < v_size and nv * h_size + nh < n:
                q = proj[nv * h_size + nh]
                diffs.add(tuple(qa - pa for qa, pa in zip(q, p, strict=True)))
        out.append(frozenset(diffs))
    return tuple(out)


def link_effect(proj, diffs, translation: Vec) -> tuple[int, int, int]:
    """(children served by a neighbour, multicast groups among the rest, size of the rest):
    a child's current tile equals a neighbour's previous one when their difference equals
    the step's translation."""
    rest = [p for p, d in zip(proj, diffs, strict=True) if translation not in d]
    return len(proj) - len(rest), len(set(rest)), len(rest)


# The same rules walked per step class for ONE tiling (a level with its temporal loops above):
# the DRAM lower bound (dse/model/dram_bound.py) prices single-buffer tilings with them, and
# the tests' scalar oracle uses them too.

def delta_size(v: Vec, extents: tuple[int, ...]) -> int:
    """Words of a tile (box with `extents`) not covered by the same tile translated by -v."""
    full = math.prod(extents)
    moved = [r for r, x in enumerate(v) if x != 0]
    if not moved:
        return 0
    if len(moved) == 1:
        r = moved[0]
        if abs(v[r]) < extents[r]:
            return abs(v[r]) * (full // extents[r])
    return full


@dataclass(frozen=True)
class Step:
    """A class of sampled steps at a tile boundary: same delta, same previous delta."""

    weight: int  # how many real steps (epochs) this sampled step stands for
    kind: str  # 'full' | 'partial' | 'empty'
    size: int  # words in each child's delta
    translation: Vec | None  # data-space translation from the previous step (None: first step)
    prev_kind: str | None  # kind of the previous sampled step (None: first step)
    prev_translation: Vec | None


def _translations(loops: list[NestLoop], ds: DataSpace) -> list[Vec]:
    out = []
    for k, lp in enumerate(loops):
        off = {lp.dim: lp.stride}
        for inner in loops[:k]:
            off[inner.dim] = off.get(inner.dim, 0) - inner.stride
        out.append(ds.project(off))
    return out


def steps_for(loops: list[NestLoop], extents: tuple[int, ...], is_compute: bool,
              ds: DataSpace) -> list[Step]:
    """`boundary_steps` from its parts: non-unit temporal loops above (innermost first)."""
    full = math.prod(extents)
    trans = _translations(loops, ds)
    bounds = [lp.bound for lp in loops]
    m = len(loops)

    def outer_product(k: int) -> int:
        return math.prod(bounds[k + 1 :])

    kinds: list[tuple[str, int]] = []
    for k in range(m):
        if is_compute:
            kinds.append(("full", full))
            continue
        size = delta_size(trans[k], extents)
        if k > 0 and trans[k] != trans[0]:
            size = full
        if size == 0:
            kinds.append(("empty", 0))
        elif size == full:
            kinds.append(("full", full))
        else:
            kinds.append(("partial", size))

    steps = [Step(1, "full", full, None, None, None)]
    if m == 0:
        return steps
    # loop-1 steps: the first one follows step #0, the others follow a loop-k step (k > 1)
    n1 = bounds[0] - 1
    kind1, size1 = kinds[0]
    steps.append(Step(n1, kind1, size1, trans[0], "full", None))
    for k in range(1, m):
        w = n1 * (bounds[k] - 1) * outer_product(k)
        steps.append(Step(w, kind1, size1, trans[0], kinds[k][0], trans[k]))
    # loop-k steps (k > 1) always follow a loop-1 step
    for k in range(1, m):
        w = (bounds[k] - 1) * outer_product(k)
        steps.append(Step(w, kinds[k][0], kinds[k][1], trans[k], kind1, trans[0]))
    return steps


def fills_per_instance(steps: list[Step]) -> int:
    return sum(s.weight * s.size for s in steps)
