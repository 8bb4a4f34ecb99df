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
which dse.model.batch evaluates over arrays (the step-by-step form of these rules is kept in
tests/oracle/deltas_steps.py, and the brute-force walker in tests/ checks both).
What stays here are the link-transfer helpers the batch model shares with that oracle.
"""

from __future__ import annotations

Vec = tuple[int, ...]


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
