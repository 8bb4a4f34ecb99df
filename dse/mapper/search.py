"""Search strategies over the mapspace, evaluated in numpy batches.

* exhaustive: every fan-out-feasible factorization x distinct loop order x keep/bypass choice,
  skipping a factorization whose tiles overflow a level even with every optional tensor
  bypassed (capacity does not depend on loop order, so this is sound).
* random: factorizations uniform over the fan-out-feasible set, then orders and bypass
  uniformly, drawn in fixed-size blocks seeded by (seed, block number).
* auto: random blocks to find seeds, then steepest-descent local search (move one prime factor
  of one dimension between slots, swap two adjacent loops, flip one keep/bypass), repeated from
  fresh random blocks while the budget lasts.
Every candidate is compared by (objective, then a canonical key of the mapping), a total order,
so the winner never depends on timing or on how work was split over processes.
Bound and skip (SearchConfig.bound_skip): a candidate whose lower bounds (dse.mapper.bounds)
cannot change the incumbent, the Pareto front or auto's top lists is not evaluated; the budget
counts it all the same, so the same candidates are drawn and the results are identical.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from dse.arch.architecture import Architecture
from dse.mapper.batch import BatchModel
from dse.mapper.bounds import Bounds, SparseBounds
from dse.mapper.constraints import Constraints
from dse.mapper.mapspace import MapSpace
from dse.workload.problem import Problem

OBJECTIVES = ("edp", "energy", "delay", "delay,energy", "energy,delay")
DEFAULT_BUDGET = 200_000  # mappings, for random and auto when no budget is given


@dataclass
class SearchConfig:
    objective: str = "edp"
    search: str = "auto"
    max_evals: int | None = None
    time_limit: float | None = None
    seed: int = 0
    jobs: int = 1
    pareto: bool = False
    block: int = 8192
    generation: str = "2024"  # Timeloop build to reproduce (dse/model/generation.py)
    # link-transfer mode (dse.model.links); None = the architecture's default
    link_transfers: str | None = None
    # skip candidates whose lower bounds (dse.mapper.bounds) cannot beat the incumbent; exact
    # (same best and Pareto set either way), so it is not part of any store key
    bound_skip: bool = True


@dataclass
class Candidate:
    score: tuple
    energy_pJ: float
    cycles: int
    choice: np.ndarray  # (D,) option index per dimension
    perm: np.ndarray  # (L, D)
    keep: np.ndarray  # (L, nT)
    key: bytes = b""  # Searcher._key of (choice, perm, keep), filled in once when needed


@dataclass
class SearchResult:
    best: Candidate | None
    evaluated: int = 0
    valid: int = 0
    rejected: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    interrupted: bool = False
    exhausted: bool = False
    pareto: list = field(default_factory=list)  # (energy, cycles, Candidate)
    smallest_change: str | None = None
    skipped_by_bound: int = 0  # candidates not evaluated: their bounds could not win

    @property
    def considered(self) -> int:
        """Candidates drawn: evaluated + skipped by bound (what --max-evals counts)."""
        return self.evaluated + self.skipped_by_bound


# ---------------------------------------------------------------------------- workers
_WORKER: BatchModel | None = None


def _init_worker(problem: Problem, arch: Architecture, link_transfers: str | None = None,
                 generation: str = "2024", sparse=None) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    _WORKER = make_model(problem, arch, link_transfers, generation, sparse)


def make_model(problem: Problem, arch: Architecture, link_transfers: str | None,
               generation: str, sparse=None) -> BatchModel:
    """The batch model the search scores rows with: with the sparse step
    (dse.model.sparse_batch) when `sparse` (a dse.model.sparse.SparseSpec) is given."""
    if sparse is None:
        return BatchModel(problem, arch, link_transfers, generation=generation)
    from dse.model.sparse_batch import SparseBatchModel

    return SparseBatchModel(problem, arch, sparse, link_transfers, generation=generation)


def _eval_in_worker(arrays):
    assert _WORKER is not None
    r = _WORKER.evaluate(*arrays)
    return r.energy_pJ, r.cycles, r.valid, r.capacity_ok, r.fanout_ok, r.overflow


class Searcher:
    def __init__(self, problem: Problem, arch: Architecture, constraints: Constraints,
                 config: SearchConfig, sparse=None) -> None:
        """`sparse`: a dse.model.sparse.SparseSpec to search a sparse design (rows scored by
        the sparse step; compressed tiles checked against capacity)."""
        if config.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {config.objective}")
        self.problem, self.arch, self.cfg = problem, arch, config
        self.sparse = sparse
        self.space = MapSpace(problem, arch, constraints)
        self.model = make_model(problem, arch, config.link_transfers, config.generation, sparse)
        # a sparse design has its own, weaker bounds (compute and leakage only)
        self.bounds = None
        if config.bound_skip:
            self.bounds = Bounds(self.model) if sparse is None else SparseBounds(self.model)
        self.min_util = constraints.min_utilization
        self.result = SearchResult(None)
        self.pool: ProcessPoolExecutor | None = None
        self._option_index = [
            {tuple(row): k for k, row in enumerate(opts)} for opts in self.space.options
        ]
        self._moves: dict[tuple[int, int], np.ndarray] = {}  # _factor_moves cache
        self._swaps: list | None = None  # _swap_levels cache
        self._stop = False
        self.progress = None  # callable(result, evals_per_s) or None
        self._front_e = np.zeros(0)
        self._front_c = np.zeros(0, dtype=np.int64)
        self._front_rows: list = []

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, choice: np.ndarray, perm: np.ndarray, keep: np.ndarray,
                  factors: tuple | None = None, canonical: bool = False):
        T, SX, SY = factors if factors is not None else self.space.factor_arrays(choice)
        if not canonical:
            perm = self.space.canonical_perm(T, perm)
        arrays = (T, SX, SY, perm, keep)
        if self.pool is None or len(choice) < 2048:
            r = self.model.evaluate(*arrays)
            out = (r.energy_pJ, r.cycles, r.valid, r.capacity_ok, r.fanout_ok, r.overflow)
        else:
            n = self.cfg.jobs
            bounds = np.linspace(0, len(choice), n + 1).astype(int)
            parts = [tuple(a[bounds[j]:bounds[j + 1]] for a in arrays) for j in range(n)]
            outs = list(self.pool.map(_eval_in_worker, parts))
            out = tuple(np.concatenate([o[k] for o in outs]) for k in range(6))
        energy, cycles, valid, cap_ok, fan_ok, overflow = out
        if self.min_util > 0:
            used = (SX * SY).prod(axis=(1, 2))
            util_ok = used >= self.min_util * self.arch.compute.instances
            self.result.rejected["constraint: min utilization"] += int((valid & ~util_ok).sum())
            valid = valid & util_ok
        res = self.result
        res.evaluated += len(choice)
        res.valid += int(valid.sum())
        res.rejected["fan-out exceeded"] += int((~fan_ok).sum())
        other = ~valid & fan_ok & cap_ok
        if self.min_util > 0:
            other &= util_ok
        if other.any():  # a sparse level would have to (de)compress and cannot
            res.rejected["(de)compression not supported"] += int(other.sum())
        bad = fan_ok & ~cap_ok
        if bad.any():
            first = np.argmax(overflow[bad] > 0, axis=1)
            for lvl, cnt in zip(*np.unique(first, return_counts=True), strict=True):
                res.rejected[f"capacity at {self.arch.levels[lvl].name}"] += int(cnt)
            self._note_overflow(overflow[bad])
        return energy, cycles, valid, perm

    def _step(self, choice: np.ndarray, perm: np.ndarray, keep: np.ndarray,
              factors: tuple | None = None, canonical: bool = False,
              need_top: bool = False, rank_limit: tuple | None = None) -> list[Candidate]:
        """Evaluate a block and fold it in (`_consider`), skipping rows whose lower bounds
        show they cannot change the outcome: they lose to the incumbent (strictly, so ties
        broken by the canonical key are kept), are dominated by the current Pareto front,
        and, when the block's top rows are used (auto), rank after that top list or score
        worse than `rank_limit` (a score that enough rows already beat for the caller: such
        a row, and any row it would displace from the top list, cannot be picked)."""
        if factors is None:
            factors = self.space.factor_arrays(choice)
        if not canonical:
            perm = self.space.canonical_perm(factors[0], perm)
        skip, bound_scores = self._skippable(factors, keep)
        if skip is None or not skip.any():
            e, c, v, perm = self._evaluate(choice, perm, keep, factors, canonical=True)
            return self._consider(choice, perm, keep, e, c, v)
        run = ~skip
        beyond = (_lex_greater(bound_scores, rank_limit) if rank_limit is not None
                  else np.zeros(len(run), dtype=bool))
        if need_top:  # the lowest bounds first: they likely set a tight top-list threshold
            run[np.lexsort(tuple(reversed(bound_scores)))[:64]] = True
        parts = [self._evaluate_rows(np.nonzero(run)[0], choice, perm, keep, factors)]
        if need_top:
            idx, e, c, v = parts[0]
            last = self._top_last_score(e[v], c[v])
            rest = ~run & ~beyond
            if last is not None:
                rest &= ~_lex_greater(bound_scores, last)
            if rest.any():
                parts.append(self._evaluate_rows(np.nonzero(rest)[0], choice, perm, keep,
                                                 factors))
        idx, e, c, v = (np.concatenate([p[k] for p in parts]) for k in range(4))
        order = np.argsort(idx, kind="stable")  # back to the block's order
        idx, e, c, v = idx[order], e[order], c[order], v[order]
        self.result.skipped_by_bound += len(choice) - len(idx)
        return self._consider(choice[idx], perm[idx], keep[idx], e, c, v)

    def _evaluate_rows(self, idx, choice, perm, keep, factors):
        e, c, v, _ = self._evaluate(choice[idx], perm[idx], keep[idx],
                                    tuple(f[idx] for f in factors), canonical=True)
        return idx, e, c, v

    def _skippable(self, factors: tuple, keep: np.ndarray):
        """Rows whose bounds lose strictly to the incumbent (and are dominated by the Pareto
        front when one is kept), with the bound scores; (None, None) when nothing can be."""
        best = self.result.best
        if self.bounds is None or best is None:
            return None, None
        lb_e, lb_c = self.bounds.lower(*factors, keep)
        scores = self._scores(lb_e, lb_c)
        skip = _lex_greater(scores, best.score)
        if self.cfg.pareto and skip.any():
            if not len(self._front_c):
                return None, None
            # the front is sorted by cycles with energy falling: the last point with cycles
            # <= the bound has the least energy among those
            j = np.searchsorted(self._front_c, lb_c, side="right") - 1
            skip &= (j >= 0) & (self._front_e[np.maximum(j, 0)] <= lb_e)
        return skip, scores

    def _top_last_score(self, energy: np.ndarray, cycles: np.ndarray) -> tuple | None:
        """Score of the last row `_consider` would return for these valid rows (the block's
        ties + 16), or None when it would return them all."""
        if not len(energy):
            return None
        scores = self._scores(energy, cycles)
        order = np.lexsort(tuple(reversed(scores)))
        tied = int(np.all([s[order] == s[order[0]] for s in scores], axis=0).sum())
        if len(order) <= tied + 16:
            return None
        j = order[tied + 16 - 1]
        return tuple(float(s[j]) for s in scores)

    def _note_overflow(self, overflow: np.ndarray) -> None:
        only_one = (overflow > 0).sum(axis=1) == 1
        if not only_one.any():
            return
        ov = overflow[only_one]
        lvl = np.argmax(ov > 0, axis=1)
        amount = ov[np.arange(len(ov)), lvl]
        j = int(np.argmin(amount))
        cur = getattr(self, "_best_overflow", None)
        if cur is None or amount[j] < cur[1]:
            self._best_overflow = (int(lvl[j]), int(amount[j]))

    def _scores(self, energy: np.ndarray, cycles: np.ndarray) -> list[np.ndarray]:
        obj = self.cfg.objective
        if obj == "edp":
            return [energy * cycles]
        if obj == "energy":
            return [energy]
        if obj == "delay":
            return [cycles.astype(float)]
        if obj == "delay,energy":
            return [cycles.astype(float), energy]
        return [energy, cycles.astype(float)]

    def _key(self, choice: np.ndarray, perm: np.ndarray, keep: np.ndarray) -> bytes:
        """Canonical key of a mapping: big-endian bytes sort like the integer tuple."""
        return self._keys(choice[None], perm[None], keep[None])[0]

    def _cand_key(self, c: Candidate) -> bytes:
        if not c.key:
            c.key = self._key(c.choice, c.perm, c.keep)
        return c.key

    @staticmethod
    def _keys(choice: np.ndarray, perm: np.ndarray, keep: np.ndarray) -> list[bytes]:
        B = len(choice)
        arr = np.concatenate([choice.reshape(B, -1), perm.reshape(B, -1),
                              keep.reshape(B, -1).astype(np.int64)], axis=1).astype(">i8")
        return [row.tobytes() for row in arr]

    def _consider(self, choice, perm, keep, energy, cycles, valid) -> list[Candidate]:
        """Fold a batch into the incumbent (and Pareto front); return the batch's top rows:
        every row tied with the batch's best score plus the next 16, by (score, key)."""
        idx = np.nonzero(valid)[0]
        if not len(idx):
            return []
        scores = self._scores(energy[idx], cycles[idx])
        order = np.lexsort(tuple(reversed(scores)))
        first = order[0]
        tied = int(np.all([s[order] == s[first] for s in scores], axis=0).sum())
        top = []
        sel = order[:tied + 16]
        rows = idx[sel]
        keys = self._keys(choice[rows], perm[rows], keep[rows])
        for j, r, key in zip(sel, rows, keys, strict=True):
            top.append(Candidate(tuple(float(s[j]) for s in scores), float(energy[r]),
                                 int(cycles[r]), choice[r].copy(), perm[r].copy(),
                                 keep[r].copy(), key))
        top.sort(key=lambda c: (c.score, c.key))
        best = self.result.best
        if best is None or (top[0].score, top[0].key) < (best.score, self._cand_key(best)):
            self.result.best = top[0]
        if self.cfg.pareto:
            self._update_front(choice[idx], perm[idx], keep[idx], energy[idx], cycles[idx])
        return top

    def _update_front(self, choice, perm, keep, energy, cycles) -> None:
        """Energy/cycles Pareto front of all valid mappings seen (old front first on ties)."""
        n_old = len(self._front_e)
        e = np.concatenate([self._front_e, energy])
        c = np.concatenate([self._front_c, cycles])
        order = np.lexsort((e, c))  # by cycles, then energy (stable: old rows first)
        prev_best = np.minimum.accumulate(np.concatenate([[np.inf], e[order][:-1]]))
        kept = order[e[order] < prev_best]
        self._front_rows = [self._front_rows[j] if j < n_old else
                            (choice[j - n_old].copy(), perm[j - n_old].copy(),
                             keep[j - n_old].copy()) for j in kept]
        self._front_e = e[kept]
        self._front_c = c[kept]

    # ------------------------------------------------------------------ budget
    def _out_of_budget(self) -> bool:
        if self._stop:
            return True
        if self.cfg.max_evals is not None and self.result.considered >= self.cfg.max_evals:
            return True
        limit = self.cfg.time_limit
        if limit is not None and time.perf_counter() - self._t0 >= limit:
            return True
        return False

    def _block_size(self) -> int:
        """A block, cut to what is left of --max-evals."""
        n = self.cfg.block
        if self.cfg.max_evals is not None:
            n = min(n, self.cfg.max_evals - self.result.considered)
        return max(n, 0)

    def _seed_size(self) -> int:
        """auto's random blocks; a budget under two blocks gives each a quarter of it, so the
        local search gets about half."""
        n = self._block_size()
        if self.cfg.max_evals is not None and self.cfg.max_evals < 2 * self.cfg.block:
            n = min(n, max(1, self.cfg.max_evals // 4))
        return n

    def _tick(self) -> None:
        if self.progress is not None:
            el = max(time.perf_counter() - self._t0, 1e-9)
            self.progress(self.result, self.result.evaluated / el)

    # ------------------------------------------------------------------ strategies
    def random_block(self, block_no: int, n: int, with_factors: bool = False):
        rng = np.random.default_rng([self.cfg.seed, block_no])
        choice = self.space.sample_choices(n, rng)
        factors = self.space.factor_arrays(choice)
        perm = self.space.perms_random(factors[0], rng)
        keep = self.space.keep_random(len(choice), rng)
        if with_factors:
            return choice, perm, keep, factors
        return choice, perm, keep

    def _run_random(self) -> None:
        block_no = 0
        while not self._out_of_budget():
            n = self._block_size()
            choice, perm, keep, factors = self.random_block(block_no, n, with_factors=True)
            if not len(choice):
                break
            self._step(choice, perm, keep, factors, canonical=True)
            block_no += 1
            self._tick()

    def _run_exhaustive(self) -> None:
        space = self.space
        keeps = space.keep_all_variants()  # (V, L, nT)
        min_keep = space.forced_keep.copy()  # free keep/bypass choices all bypassed
        for i, t in space.free_keep:
            min_keep[i, t] = False
        min_keep = min_keep[None]
        buf_c, buf_p, buf_k = [], [], []

        def flush() -> None:
            if not buf_c:
                return
            ch, pe, ke = np.array(buf_c), np.array(buf_p), np.array(buf_k)
            buf_c.clear(), buf_p.clear(), buf_k.clear()
            self._step(ch, pe, ke)
            self._tick()

        for chunk in space.iter_choices(1024):
            T, SX, SY = space.factor_arrays(chunk)
            # sound pruning: a factorization that overflows with minimal keeps never fits
            keeps_min = np.repeat(min_keep, len(chunk), axis=0)
            if self.sparse is None:
                pre = self.model.evaluate(T, SX, SY, np.tile(np.arange(space.D),
                                                             (len(chunk), space.L, 1)), keeps_min)
                ok, overflow = pre.capacity_ok, pre.overflow
            else:  # compressed words only: the formats' metadata depends on the keeps
                ok, overflow = self.model.word_capacity(T, SX, SY, keeps_min)
            if (~ok).any():
                # every order and bypass choice of these overflows the same level: each such
                # factorization counts once as evaluated and rejected
                first = np.argmax(overflow[~ok] > 0, axis=1)
                for lvl, cnt in zip(*np.unique(first, return_counts=True), strict=True):
                    self.result.rejected[f"capacity at {self.arch.levels[lvl].name}"] += int(cnt)
                self.result.evaluated += int((~ok).sum())
                self._note_overflow(overflow[~ok])
            for r in np.nonzero(ok)[0]:
                orders = space.orders_for(T[r])
                for pe in orders:
                    for ke in keeps:
                        buf_c.append(chunk[r])
                        buf_p.append(pe)
                        buf_k.append(ke)
                if len(buf_c) >= self.cfg.block:
                    flush()
                    if self._out_of_budget():
                        return
        flush()
        self.result.exhausted = not self._stop

    def _factor_moves(self, d: int, k: int) -> np.ndarray:
        """Option indices of dim d one prime-factor move away from option k (a factor p of
        slot a moved to slot b), in the order (slot a, prime p, slot b); cached."""
        key = (d, k)
        moves = self._moves.get(key)
        if moves is None:
            row = self.space.options[d][k]
            n_slots = len(row)
            out = []
            for a in range(n_slots):
                if row[a] == 1:
                    continue
                for p in _primes(int(row[a])):
                    for b in range(n_slots):
                        if b == a:
                            continue
                        new = row.copy()
                        new[a] //= p
                        new[b] *= p
                        j = self._option_index[d].get(tuple(new))
                        if j is not None:
                            out.append(j)
            moves = self._moves[key] = np.array(out, dtype=np.int64)
        return moves

    def _swap_levels(self) -> list[tuple[int, set[int]]]:
        """Levels whose loop order matters, each with its pinned dims (constraints)."""
        if self._swaps is None:
            space = self.space
            self._swaps = []
            for i in range(space.L):
                lc = space._lc(i)
                if space.order_matters[i]:
                    self._swaps.append(
                        (i, {space.dims.index(x) for x in lc.perm_inner + lc.perm_outer}))
        return self._swaps

    def neighbours(self, cand: Candidate):
        """All single moves from a candidate: factor moves, adjacent swaps, bypass flips."""
        space = self.space
        base_c, base_p, base_k = cand.choice, cand.perm, cand.keep
        T, _, _ = space.factor_arrays(base_c[None])
        blocks = []
        for d in range(space.D):
            ks = self._factor_moves(d, int(base_c[d]))
            if len(ks):
                c = np.repeat(base_c[None], len(ks), axis=0)
                c[:, d] = ks
                blocks.append(c)
        n_moves = sum(len(c) for c in blocks)
        choices = [np.concatenate(blocks)] if blocks else []
        perms = [np.repeat(base_p[None], n_moves, axis=0)]
        keeps = [np.repeat(base_k[None], n_moves, axis=0)]
        nonunit = (T[0] > 1).tolist()
        for i, fixed in self._swap_levels():
            row = base_p[i].tolist()
            order = [d for d in row if nonunit[i][d] and d not in fixed]
            for j in range(len(order) - 1):
                new_order = list(row)
                a, b = new_order.index(order[j]), new_order.index(order[j + 1])
                new_order[a], new_order[b] = new_order[b], new_order[a]
                pe = base_p.copy()
                pe[i] = new_order
                choices.append(base_c[None])
                perms.append(pe[None])
                keeps.append(base_k[None])
        for i, t in space.free_keep:
            ke = base_k.copy()
            ke[i, t] = not ke[i, t]
            choices.append(base_c[None])
            perms.append(base_p[None])
            keeps.append(ke[None])
        if not choices:
            return None
        return np.concatenate(choices), np.concatenate(perms), np.concatenate(keeps)

    def _local_search(self, seeds: list[Candidate], width: int = 16) -> None:
        pool = seeds[:width]
        seen = {self._cand_key(c) for c in pool}
        while pool and not self._out_of_budget():
            batch = [self.neighbours(c) for c in pool]
            batch = [b for b in batch if b is not None]
            if not batch:
                return
            ch = np.concatenate([b[0] for b in batch])
            pe = np.concatenate([b[1] for b in batch])
            ke = np.concatenate([b[2] for b in batch])
            factors = self.space.factor_arrays(ch)
            pe = self.space.canonical_perm(factors[0], pe)
            keys = self._keys(ch, pe, ke)
            fresh = [j for j, k in enumerate(keys) if k not in seen]
            if not fresh:
                return
            if self.cfg.max_evals is not None:  # stay within --max-evals
                fresh = fresh[:max(self.cfg.max_evals - self.result.considered, 0)]
            seen.update(keys[j] for j in fresh)
            ch, pe, ke = ch[fresh], pe[fresh], ke[fresh]
            factors = tuple(f[fresh] for f in factors)
            top = self._step(ch, pe, ke, factors, canonical=True, need_top=True)
            self._tick()
            merged = sorted(pool + top, key=lambda x: (x.score, self._cand_key(x)))
            new_pool = []
            used = set()
            for x in merged:
                k = self._cand_key(x)
                if k not in used:
                    used.add(k)
                    new_pool.append(x)
                if len(new_pool) == width:
                    break
            if [self._cand_key(x) for x in new_pool] == [self._cand_key(x) for x in pool]:
                return
            pool = new_pool

    def _run_auto(self) -> None:
        block_no = 0
        while not self._out_of_budget():
            tops: list[Candidate] = []
            for _ in range(2):  # a round of random blocks to find starting points
                if self._out_of_budget():
                    break
                choice, perm, keep, factors = self.random_block(block_no, self._seed_size(),
                                                                with_factors=True)
                block_no += 1
                if not len(choice):
                    return
                # the local search starts from the best 15 tops (after the incumbent): a row of
                # the second block scoring worse than 15 tops of the first cannot be among them
                ranked = sorted(x.score for x in tops)
                limit = ranked[14] if len(ranked) >= 15 else None
                tops += self._step(choice, perm, keep, factors, canonical=True, need_top=True,
                                   rank_limit=limit)
                self._tick()
            tops.sort(key=lambda x: (x.score, self._cand_key(x)))
            if self.result.best is not None:
                tops = [self.result.best] + tops
            self._local_search(tops)

    # ------------------------------------------------------------------ entry point
    def run(self) -> SearchResult:
        self._t0 = time.perf_counter()
        if self.cfg.jobs > 1:
            self.pool = ProcessPoolExecutor(self.cfg.jobs, initializer=_init_worker,
                                            initargs=(self.problem, self.arch,
                                                      self.cfg.link_transfers,
                                                      self.cfg.generation, self.sparse))
        try:
            if self.cfg.search == "exhaustive":
                self._run_exhaustive()
            else:
                if self.cfg.max_evals is None and self.cfg.time_limit is None:
                    self.cfg.max_evals = DEFAULT_BUDGET
                if self.cfg.search == "random":
                    self._run_random()
                else:
                    self._run_auto()
        except KeyboardInterrupt:
            self.result.interrupted = True
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=not self.result.interrupted, cancel_futures=True)
        self.result.wall_s = time.perf_counter() - self._t0
        if self.cfg.pareto:
            self.result.pareto = [
                (float(e), int(c), Candidate((), float(e), int(c), *row))
                for e, c, row in zip(self._front_e, self._front_c, self._front_rows, strict=True)
            ]
        ov = getattr(self, "_best_overflow", None)
        if self.result.best is None and ov is not None:
            lv = self.arch.levels[ov[0]]
            self.result.smallest_change = (
                f"{lv.name} would admit a mapping with {ov[1]} more words per instance "
                f"(capacity {lv.effective_capacity_words} -> "
                f"{lv.effective_capacity_words + ov[1]})")
        return self.result

    def mapping_of(self, cand: Candidate):
        T, SX, SY = self.space.factor_arrays(cand.choice[None])
        return self.space.to_mapping(T[0], SX[0], SY[0], cand.perm, cand.keep)


def _lex_greater(scores: list[np.ndarray], ref: tuple) -> np.ndarray:
    """Rows whose score tuple is lexicographically greater than ref (strictly)."""
    gt = np.zeros(len(scores[0]), dtype=bool)
    eq = np.ones(len(scores[0]), dtype=bool)
    for s, r in zip(scores, ref, strict=True):
        gt |= eq & (s > r)
        eq &= s == r
    return gt


def _primes(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        if n % p == 0:
            out.append(p)
            while n % p == 0:
                n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out

