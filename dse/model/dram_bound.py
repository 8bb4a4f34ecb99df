"""The least DRAM traffic any tiling of one layer can reach with C words on chip (docs/bounds.md).

The bound is the minimum, over every mapping of the layer onto DRAM + one buffer of C words +
a compute unit, of the DRAM reads + writes that dse's own model counts. Such a mapping is a
tile (one factor per dimension, the buffer's loops), an order of the DRAM loops above it and a
keep/bypass choice per tensor; the order of the buffer's own loops does not touch DRAM.

Search: for every tile (and every set of fitting tensors no larger set dominates) an
order-free lower bound is computed first; tiles are then evaluated exactly (all orders, with the
model's delta counting from dse.model.deltas) in increasing order of that bound until the bound
of the next tile is no better than the best exact value. If a work budget stops the search
early, the result is the smaller of the best exact value and the next tile's order-free bound:
still a valid lower bound, flagged `exact=False`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from dse.factors import divisors
from dse.model.deltas import fills_per_instance, steps_for
from dse.model.nest import NestLoop
from dse.workload.problem import DataSpace, Problem


@dataclass(frozen=True)
class DramBound:
    words: int  # DRAM words read + written, summed over tensors
    exact: bool  # True: the minimum itself; False: a relaxation (the search budget ran out)
    tile: dict[str, int]  # the buffer tile of a mapping that reaches `words` (when exact)
    order: tuple[str, ...]  # its DRAM loop order, innermost first
    kept: tuple[str, ...]  # tensors the buffer keeps (the others stream from DRAM per MAC)




def _dram_words(ds: DataSpace, fills: int, problem: Problem) -> int:
    """DRAM reads + writes of a tensor whose next keeper receives `fills` words: a read-write
    tensor is read back (except its first read) and updated once per fill, as in evaluate."""
    if ds.read_write:
        return 2 * fills - problem.tensor_size(ds.name)
    return fills


def _bypass_words(ds: DataSpace, problem: Problem) -> int:
    """A tensor the buffer bypasses reaches the compute unit from DRAM once per MAC."""
    return _dram_words(ds, problem.macs, problem)


def _subsets(items: list[int]):
    return itertools.chain.from_iterable(
        itertools.combinations(items, r) for r in range(len(items) + 1))


def _fills_lower(ds: DataSpace, dims: list[str], tile, outer, first: int):
    """Per tile (numpy rows), a lower bound on the words the buffer receives over every DRAM
    loop order whose innermost non-unit loop is over dims[first].

    The model counts F*N - (F - c1)*S: F the tile size, N the product of the DRAM loops, c1 the
    delta of the innermost loop and S the summed weight W_k of the loops whose translation equals
    the innermost one's (dse.model.deltas). A loop over a dimension the tensor depends on can
    only match if its own translation equals twice the innermost one's plus those of some loops
    between them; the loops that cannot ("stuck") weigh at least N_stuck - 1 of the total N - 1
    wherever they sit, so S <= N - N_stuck.
    """
    import numpy as np

    coef = np.array([[dict(rank).get(d, 0) for d in dims] for rank in ds.ranks], dtype=np.int64)
    extents = (tile - 1) @ coef.T + 1
    full = extents.prod(axis=1)
    n_all = outer.prod(axis=1)
    support = [tuple(np.nonzero(coef[:, j])[0]) for j in range(len(dims))]
    relevant = [j for j in range(len(dims)) if support[j]]
    single_rank = all(len(support[j]) == 1 for j in relevant)
    f_ranks = support[first]
    move = tile[:, first]
    if not f_ranks:
        c1 = np.zeros_like(full)
    elif len(f_ranks) == 1:
        r = f_ranks[0]
        step = move * coef[r, first]
        c1 = np.where(step < extents[:, r], step * (full // extents[:, r]), full)
    else:
        c1 = full
    n_stuck = np.ones_like(full)
    for j in relevant:
        if j == first:
            continue
        if not single_rank:
            continue  # cannot rule a match out cheaply: count the loop as possibly matching
        r = support[j][0]
        if f_ranks and f_ranks != (r,):
            matches = np.zeros(len(full), dtype=bool)
        else:
            base = 2 * move * coef[r, first] if f_ranks else 0
            others = [e for e in relevant if e not in (j, first) and support[e] == (r,)]
            matches = np.zeros(len(full), dtype=bool)
            for sub in _subsets(others):
                total = base + sum((tile[:, e] * coef[r, e] for e in sub), start=0)
                present = np.all(outer[:, list(sub)] > 1, axis=1) if sub else True
                matches |= present & (tile[:, j] * coef[r, j] == total)
        n_stuck = n_stuck * np.where(matches, 1, outer[:, j])
    return full * n_all - (full - c1) * (n_all - n_stuck)


def _fills_exact(ds: DataSpace, tile: dict[str, int], outer: dict[str, int],
                 order: tuple[str, ...]) -> int:
    """The model's count of words delivered to the buffer for one DRAM loop order."""
    loops = [NestLoop(d, outer[d], 0, False, False, tile[d]) for d in order]
    return fills_per_instance(steps_for(loops, ds.extents(tile), False, ds))


def dram_bound(problem: Problem, capacity_words: int, *, max_exact: int = 5000) -> DramBound:
    """The DRAM lower bound of `problem` with `capacity_words` on chip; `max_exact` caps how many
    tiles are evaluated over all loop orders (the result stays a valid bound past it)."""
    import numpy as np

    if capacity_words < 0:
        raise ValueError(f"capacity_words must be >= 0, got {capacity_words}")
    spaces = problem.data_spaces
    n_t = len(spaces)
    bypass = [_bypass_words(ds, problem) for ds in spaces]
    dims = [d for d in problem.dims if problem.bounds[d] > 1]
    if not dims:
        tile = {d: 1 for d in problem.dims}
        sizes = [ds.size(tile) for ds in spaces]
        kept = _maximal_kept(sizes, capacity_words)
        words = sum(_dram_words(ds, sizes[t], problem) if t in kept else bypass[t]
                    for t, ds in enumerate(spaces))
        return DramBound(words, True, tile, (), tuple(spaces[t].name for t in sorted(kept)))
    grid = np.array(list(itertools.product(*[divisors(problem.bounds[d]) for d in dims])),
                    dtype=np.int64).reshape(-1, len(dims))
    bounds = np.array([problem.bounds[d] for d in dims], dtype=np.int64)
    outer = bounds // grid
    sizes = np.stack([_extents_product(ds, dims, grid) for ds in spaces], axis=1)
    rw = np.array([ds.read_write for ds in spaces])
    tsize = np.array([problem.tensor_size(ds.name) for ds in spaces], dtype=np.int64)
    # per first loop f: per tensor lower bound on DRAM words (inf where loop f is a unit loop)
    lower = np.empty((len(dims), len(grid), n_t), dtype=np.float64)
    for f in range(len(dims)):
        for t, ds in enumerate(spaces):
            fills = _fills_lower(ds, dims, grid, outer, f)
            lower[f, :, t] = np.where(rw[t], 2 * fills - tsize[t], fills)
        lower[f, outer[:, f] <= 1, :] = np.inf
    subsets = [frozenset(c) for r in range(n_t, -1, -1)
               for c in itertools.combinations(range(n_t), r)]
    fits = {s: sizes[:, sorted(s)].sum(axis=1) <= capacity_words for s in subsets}
    cands = []  # (lower bound, tile index, kept set, per-first-loop bounds); kept sets that a
    # larger one dominates are left out
    bypass_arr = np.array(bypass, dtype=np.float64)
    # keeping a tensor that fits never costs more than bypassing it when its tile times the DRAM
    # iterations is at most the MACs (its traffic in any order is at most that); only strided
    # windows with gaps can make a tile larger, and then the bypass is searched too
    cheap_keep = sizes * outer.prod(axis=1)[:, None] <= problem.macs
    for s in subsets:
        maximal = fits[s].copy()
        for t in range(n_t):
            if t not in s:
                maximal &= ~(fits[s | {t}] & cheap_keep[:, t])
        idx = np.nonzero(maximal)[0]
        if not len(idx):
            continue
        mask = np.array([t in s for t in range(n_t)])
        per_first = np.where(mask, lower[:, idx, :], bypass_arr).sum(axis=2)  # (f, tiles)
        best_first = per_first.min(axis=0)
        for k, i in enumerate(idx):
            cands.append((best_first[k], int(i), s, per_first[:, k]))
    if not cands:  # not even one word per tensor fits: everything streams per MAC
        return DramBound(sum(bypass), True, {d: 1 for d in problem.dims}, (), ())
    cands.sort(key=lambda c: (c[0], c[1], sorted(c[2])))
    best: tuple[int, dict, tuple, frozenset] | None = None
    for n_done, (lb, i, kept, per_first) in enumerate(cands):
        if best is not None and lb >= best[0]:
            break
        if n_done >= max_exact:
            return DramBound(int(min(lb, best[0])) if best else int(lb), False, {}, (), ())
        tile = {d: 1 for d in problem.dims}
        tile.update({d: int(x) for d, x in zip(dims, grid[i], strict=True)})
        out = {d: int(x) for d, x in zip(dims, outer[i], strict=True)}
        active = [d for d in dims if out[d] > 1]
        fixed = sum(bypass[t] for t in range(n_t) if t not in kept)
        for f, first in enumerate(dims):
            if first not in active or (best is not None and per_first[f] >= best[0]):
                continue
            rest = [d for d in active if d != first]
            # largest tensors first: an order is dropped as soon as the words counted so far plus
            # the other tensors' lower bounds reach the best value
            tensors = sorted(kept, key=lambda t: (-lower[f, i, t], t))
            for tail in itertools.permutations(rest):
                order = (first, *tail)
                words, others = fixed, float(sum(lower[f, i, t] for t in tensors))
                for t in tensors:
                    others -= lower[f, i, t]
                    words += _dram_words(spaces[t], _fills_exact(spaces[t], tile, out, order),
                                         problem)
                    if best is not None and words + others >= best[0]:
                        break
                else:
                    if best is None or words < best[0]:
                        best = (words, tile, order, kept)
    assert best is not None
    words, tile, order, kept = best
    return DramBound(words, True, tile, order, tuple(spaces[t].name for t in sorted(kept)))


def _extents_product(ds: DataSpace, dims: list[str], grid):
    import numpy as np

    coef = np.array([[dict(rank).get(d, 0) for d in dims] for rank in ds.ranks], dtype=np.int64)
    return ((grid - 1) @ coef.T + 1).prod(axis=1)


def _maximal_kept(sizes: list[int], capacity_words: int) -> frozenset[int]:
    """The largest set of tensors that fits (a one-point problem: keeping costs no more)."""
    for r in range(len(sizes), 0, -1):
        for c in itertools.combinations(range(len(sizes)), r):
            if sum(sizes[t] for t in c) <= capacity_words:
                return frozenset(c)
    return frozenset()


def dram_words_lower_bound(problem: Problem, capacity_words: int) -> int:
    """Least DRAM words read + written by any mapping with `capacity_words` words on chip."""
    return dram_bound(problem, capacity_words).words


def compulsory_dram_words(problem: Problem) -> int:
    """Every input read once, every output written once: the floor for unlimited capacity."""
    return sum(problem.tensor_size(ds.name) for ds in problem.data_spaces)


def on_chip_capacity_words(arch, tensors: int) -> int:
    """Words the levels below DRAM hold together (every instance, after multiple buffering), plus
    one operand word per tensor per compute unit: a tensor multicast from DRAM to the compute
    array is reused there without a buffer. The capacity the bound of a multi-level architecture
    is taken at (docs/bounds.md)."""
    total = arch.compute.instances * tensors
    for lv in arch.levels[1:]:
        if lv.is_dummy:
            continue
        cap = lv.effective_capacity_words
        if cap is None:
            continue
        total += cap * lv.instances
    return total


def dram_summary(problem: Problem, arch, ev) -> dict:
    """Outermost-level words of an evaluated mapping next to the bound at the architecture's
    on-chip capacity (what `dse map` adds to summary.json)."""
    outer = arch.levels[0].name
    words = sum((r.reads_per_instance + r.fills_per_instance + r.updates_per_instance)
                * r.utilized_instances for r in ev.stats if r.level == outer)
    capacity = on_chip_capacity_words(arch, len(problem.data_spaces))
    bound = dram_bound(problem, capacity)
    return {"level": outer, "words": words, "on_chip_capacity_words": capacity,
            "words_lower_bound": bound.words, "bound_exact": bound.exact,
            "traffic_over_bound": words / bound.words if bound.words else None}
