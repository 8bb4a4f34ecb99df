"""The mapspace: per dimension the ordered factorizations of its bound over tiling slots
(a temporal slot per storage level, a spatial X/Y slot per fan-out), per level the loop orders
that differ in effect, and keep/bypass per tensor per level. Constraints prune the per-dimension
lists before anything is enumerated; fan-out products prune combinations of spatial factors.

Sizes (reported in search.json):
  if_unconstrained  product over dims of ordered factorizations over all slots
  if_size           the same after per-slot constraints (fixed/max factors, axis limits)
  if_feasible       ... and after spatial fan-out products fit the mesh
  orders_max        orders per factorization at most (product of free non-unit dims factorial)
  bypass_size       2 ** (number of free keep/bypass choices)
Loop orders: only the relative order of non-unit loops matters; the innermost storage level's
order is irrelevant when it feeds a single compute unit per instance, so it is fixed.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from dse.arch.architecture import Architecture
from dse.errors import SpecError
from dse.factors import divisors, ordered_factorizations
from dse.mapper.constraints import Constraints, LevelConstraints, outermost_bypass_error
from dse.mapping import LevelMapping, Mapping
from dse.workload.problem import Problem

MAX_DIMENSION = 2**40
"""Largest problem dimension the mapper accepts: finding its divisors stays under ~10^6 steps."""
MAX_ITERATIONS = 2**50
"""Largest iteration space (product of all dimension bounds) the mapper accepts: its counts are
int64 arrays, and accesses (a small multiple of this) must not overflow them."""
MAX_OPTIONS_PER_DIMENSION = 2_000_000
"""Most ways of splitting one dimension over the loop slots that the mapper enumerates."""




def spatial_combinations(keys: list[np.ndarray], limits: np.ndarray,
                         block: int = 1 << 20) -> np.ndarray:
    """Index tuples (one spatial key per dimension) whose per-axis products fit `limits`,
    in lexicographic order, as an (n, len(keys)) array.

    Built one dimension at a time: every partial combination is extended by every key of the
    next dimension (row-major, so the order stays lexicographic) and dropped as soon as its
    running product exceeds a limit -- factors are >= 1, so a prefix that does not fit never
    will. The running products are kept as the room left per axis (limit // product: a
    factor f fits iff f <= room). `block` bounds the size of one broadcast (partials x keys)."""
    n_axes = len(limits)
    combos = np.zeros((1, 0), dtype=np.int64)
    room = limits.reshape(1, n_axes).astype(np.int64)  # per partial: largest factor that fits
    for d, k in enumerate(keys):
        last = d == len(keys) - 1
        step = max(1, block // max(1, len(k)))
        parts_c, parts_r = [], []
        for lo in range(0, len(combos), step):
            fits = np.ones((len(room[lo:lo + step]), len(k)), dtype=bool)  # (partials, keys)
            for a in range(n_axes):
                fits &= k[None, :, a] <= room[lo:lo + step, a, None]
            rows, cols = np.nonzero(fits)
            part = np.empty((len(rows), d + 1), dtype=np.int64)
            part[:, :d] = combos[lo + rows]
            part[:, d] = cols
            parts_c.append(part)
            if not last:
                parts_r.append(room[lo + rows] // k[cols])
        if not parts_c:
            return np.zeros((0, len(keys)), dtype=np.int64)
        combos = np.concatenate(parts_c)
        if not last:
            room = np.concatenate(parts_r)
    return combos


@dataclass(frozen=True)
class Slot:
    level: int
    kind: str  # 'T', 'X' or 'Y'


class MapSpace:
    def __init__(self, problem: Problem, arch: Architecture, constraints: Constraints) -> None:
        self.problem = problem
        self.arch = arch
        self.cons = constraints
        self.dims = problem.dims
        self.D = len(self.dims)
        self.L = len(arch.levels)
        self.tensors = problem.tensor_names
        slots: list[Slot] = []
        for i, lv in enumerate(arch.levels):
            if not lv.is_dummy:
                slots.append(Slot(i, "T"))
            fx, fy = arch.fanout(i)
            if fy > 1:
                slots.append(Slot(i, "Y"))
            if fx > 1:
                slots.append(Slot(i, "X"))
        self.slots = slots
        space = math.prod(problem.bounds[d] for d in self.dims)
        if space > MAX_ITERATIONS:
            sizes = " x ".join(str(problem.bounds[d]) for d in self.dims)
            raise SpecError(
                f"the problem's iteration space ({sizes} = {space:.3g} points) is larger than "
                "the mapper supports",
                file=problem.source, key_path="problem", expected="at most 2**50 (1.1e15)")
        self.options = [self._dim_options(d) for d in self.dims]  # per dim: (n_opt, n_slots)
        self._spatial_cols = [j for j, s in enumerate(slots) if s.kind != "T"]
        self._build_spatial_combos()
        self._build_orders_and_bypass()
        from dse.model.kernel import kernel_choice

        # dse.mapper.kernel_numba decodes candidates when the model kernel is compiled too
        self.compiled = kernel_choice() == "numba"
        if self.compiled:
            self._flat_options = np.ascontiguousarray(np.concatenate(self.options), np.int64)
            self._option_offsets = np.cumsum([0] + [len(o) for o in self.options[:-1]]
                                             ).astype(np.int64)
            self._slot_level = np.array([s.level for s in slots], dtype=np.int64)
            self._slot_kind = np.array(["TXY".index(s.kind) for s in slots], dtype=np.int64)

    # ------------------------------------------------------------------ factor options
    def _lc(self, i: int) -> LevelConstraints:
        return self.cons.levels.get(self.arch.levels[i].name, LevelConstraints())

    def _slot_limits(self, d: str, s: Slot) -> tuple[int | None, int, int]:
        """(exact, min, max) for dimension d at slot s."""
        lc = self._lc(s.level)
        bound = self.problem.bounds[d]
        if s.kind == "T":
            exact = lc.temporal_exact.get(d)
            return exact, lc.temporal_min.get(d, 1), lc.temporal_max.get(d, bound)
        fx, fy = self.arch.fanout(s.level)
        axis_max = fx if s.kind == "X" else fy
        if (s.kind == "X" and d in lc.y_only) or (s.kind == "Y" and d in lc.x_only):
            return 1, 1, 1
        exact = lc.spatial_exact.get(d)
        if exact == 1:
            return 1, 1, 1
        # an exact spatial factor > 1 constrains the product over X and Y (checked later)
        return None, 1, min(axis_max, lc.spatial_max.get(d, axis_max))

    def _dim_options(self, d: str) -> np.ndarray:
        bound = self.problem.bounds[d]
        limits = [self._slot_limits(d, s) for s in self.slots]
        # a spatial exact factor > 1 may sit on either axis when both exist and no split says
        out: list[tuple[int, ...]] = []

        def rec(j: int, remaining: int, acc: list[int]) -> None:
            if j == len(self.slots):
                if remaining == 1:
                    out.append(tuple(acc))
                return
            exact, lo, hi = limits[j]
            for f in [exact] if exact is not None else divisors(remaining):
                if remaining % f or f < lo or f > hi:
                    continue
                acc.append(f)
                rec(j + 1, remaining // f, acc)
                acc.pop()
                if len(out) > MAX_OPTIONS_PER_DIMENSION:
                    raise SpecError(
                        f"dimension {d} = {bound:,} splits over the {len(self.slots)} loop "
                        f"slots in more than {MAX_OPTIONS_PER_DIMENSION:,} ways",
                        file=self.problem.source, key_path=f"problem.{d}",
                        hint="constrain its factors (constraints: factors) or use a smaller "
                             "dimension")

        if bound > MAX_DIMENSION:
            raise SpecError(f"dimension {d} = {bound:,} is larger than the mapper supports",
                            file=self.problem.source, key_path=f"problem.{d}",
                            expected=f"at most 2**40 ({MAX_DIMENSION:,})")
        rec(0, bound, [])
        arr = np.array(out, dtype=np.int64).reshape(-1, len(self.slots))
        for i in range(self.L):
            cols = [j for j, s in enumerate(self.slots) if s.level == i and s.kind != "T"]
            if not cols:
                continue
            # one level may not split a dimension over both mesh axes (Timeloop can't either)
            arr = arr[(arr[:, cols] > 1).sum(axis=1) <= 1]
            ex = self._lc(i).spatial_exact.get(d)
            if ex is not None and ex > 1:  # spatial product over X and Y must equal it
                arr = arr[np.prod(arr[:, cols], axis=1) == ex]
            mn = self._lc(i).spatial_min.get(d)
            if mn is not None:
                arr = arr[np.prod(arr[:, cols], axis=1) >= mn]
        return arr

    # ------------------------------------------------------------------ spatial combinations
    def _build_spatial_combos(self) -> None:
        """Distinct spatial sub-vectors per dim, and the combinations whose products fit."""
        cols = self._spatial_cols
        self.spatial_keys: list[np.ndarray] = []  # per dim: (n_keys, n_spatial)
        self.completions: list[list[np.ndarray]] = []  # per dim, per key: option row indices
        for opts in self.options:
            sub = opts[:, cols] if cols else np.zeros((len(opts), 0), dtype=np.int64)
            keys, inverse = np.unique(sub, axis=0, return_inverse=True)
            inverse = inverse.reshape(-1)
            self.spatial_keys.append(keys)
            self.completions.append([np.nonzero(inverse == k)[0] for k in range(len(keys))])
        limits = []
        for j in cols:
            s = self.slots[j]
            fx, fy = self.arch.fanout(s.level)
            limits.append(fx if s.kind == "X" else fy)
        limits = np.array(limits, dtype=np.int64)
        # (n_combos, D): per dim the index of its spatial key; sampling indexes into this order
        self.combos = spatial_combinations(self.spatial_keys, limits)
        lens = [np.array([len(c) for c in comp], dtype=np.int64) for comp in self.completions]
        # per combination the number of full factorizations behind it; int64 while it cannot
        # overflow (every count is at most the product of the per-dim option counts)
        small = math.prod(max(1, len(o)) for o in self.options) < 2 ** 62
        counts = np.ones(len(self.combos), dtype=np.int64 if small else object)
        for d in range(self.D):
            counts = counts * (lens[d][self.combos[:, d]] if small
                               else lens[d][self.combos[:, d]].astype(object))
        self.combo_counts = counts
        self.if_feasible = int(counts.sum()) if len(counts) else 0

    def _build_orders_and_bypass(self) -> None:
        self.free_keep: list[tuple[int, int]] = []  # (level, tensor) pairs that are free
        self.forced_keep = np.ones((self.L, len(self.tensors)), dtype=bool)
        top = self._lc(0).bypass & set(self.tensors)
        if top:  # every mapping would be invalid: say so now, not after the search
            raise outermost_bypass_error(self.arch, top)
        for i, lv in enumerate(self.arch.levels):
            lc = self._lc(i)
            for t, name in enumerate(self.tensors):
                if lv.is_dummy or name in lc.bypass:
                    self.forced_keep[i, t] = False
                elif i == 0 or name in lc.keep:
                    self.forced_keep[i, t] = True
                else:
                    self.free_keep.append((i, t))
        fx, fy = self.arch.fanout(self.L - 1)
        self.order_matters = [True] * self.L
        self.order_matters[self.L - 1] = fx * fy > 1

    # ------------------------------------------------------------------ sizes
    def sizes(self) -> dict:
        n_slots = len(self.slots)
        unconstrained = 1
        for d in self.dims:
            unconstrained *= ordered_factorizations(self.problem.bounds[d], n_slots)
        if_size = 1
        for opts in self.options:
            if_size *= len(opts)
        orders_max = 1
        for i in range(self.L):
            if self.order_matters[i] and not self.arch.levels[i].is_dummy:
                lc = self._lc(i)
                free = [d for d in self.dims if d not in lc.perm_inner and d not in lc.perm_outer
                        and lc.temporal_exact.get(d) != 1]
                orders_max *= math.factorial(len(free))
        bypass = 2 ** len(self.free_keep)
        return {
            "if_unconstrained": unconstrained,
            "if_size": if_size,
            "if_feasible": self.if_feasible,
            "orders_max": orders_max,
            "bypass_size": bypass,
            "mapspace_size": unconstrained * math.factorial(self.D) ** self.L
            * 2 ** ((self.L - 1) * len(self.tensors)),
            "pruned_size_upper_bound": self.if_feasible * orders_max * bypass,
        }

    # ------------------------------------------------------------------ rows
    def factor_arrays(self, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """choice[b, d] = option row of dim d -> (T, SX, SY) arrays (B, L, D)."""
        B = choice.shape[0]
        if self.compiled:
            from dse.mapper.kernel_numba import decode_factors

            T, SX, SY = (np.empty((B, self.L, self.D), dtype=np.int64) for _ in range(3))
            decode_factors(np.ascontiguousarray(choice, dtype=np.int64), self._flat_options,
                           self._option_offsets, self._slot_level, self._slot_kind, self.L,
                           T, SX, SY)
            return T, SX, SY
        T = np.ones((B, self.L, self.D), dtype=np.int64)
        SX = np.ones_like(T)
        SY = np.ones_like(T)
        for d in range(self.D):
            vals = self.options[d][choice[:, d]]  # (B, n_slots)
            for j, s in enumerate(self.slots):
                target = T if s.kind == "T" else SX if s.kind == "X" else SY
                target[:, s.level, d] = vals[:, j]
        return T, SX, SY

    def perms_random(self, T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random loop orders, already canonical (unit loops last, in dimension order)."""
        B = T.shape[0]
        perm = np.empty((B, self.L, self.D), dtype=np.int64)
        dims = np.arange(self.D, dtype=float)
        if self.compiled:
            # the same draws (one (B, D) block per level, in level order), keys and sort
            keys = rng.random((self.L, B, self.D))  # keys[i, b, d]
            for i in range(self.L):
                if not self.order_matters[i]:
                    keys[i] = dims
                for d, key in self._pins[i]:
                    keys[i, :, d] = key
            from dse.mapper.kernel_numba import order_by_keys

            order_by_keys(keys, np.ascontiguousarray(T, dtype=np.int64), perm)
            return perm
        for i in range(self.L):
            keys = rng.random((B, self.D))
            if not self.order_matters[i]:
                keys = np.broadcast_to(dims, (B, self.D)).copy()
            keys = self._constrained_keys(i, keys)
            keys = np.where(T[:, i, :] == 1, 2e6 + dims, keys)
            perm[:, i] = np.argsort(keys, axis=1, kind="stable")
        return perm

    @functools.cached_property
    def _pins(self) -> list[list[tuple[int, float]]]:
        """Per level, (dim, sort key) of the constraint's fixed innermost / outermost loops,
        as _constrained_keys sets them."""
        out = []
        for i in range(self.L):
            lc = self._lc(i)
            pins = [(self.dims.index(d), -1e6 + pos) for pos, d in enumerate(lc.perm_inner)]
            pins += [(self.dims.index(d), 1e6 + pos) for pos, d in enumerate(lc.perm_outer)]
            out.append(pins)
        return out

    def _constrained_keys(self, i: int, keys: np.ndarray) -> np.ndarray:
        """Sort keys with the constraint's fixed innermost / outermost loops pinned."""
        lc = self._lc(i)
        keys = keys.copy()
        for pos, d in enumerate(lc.perm_inner):
            keys[:, self.dims.index(d)] = -1e6 + pos
        for pos, d in enumerate(lc.perm_outer):
            keys[:, self.dims.index(d)] = 1e6 + pos
        return keys

    def canonical_perm(self, T: np.ndarray, perm: np.ndarray) -> np.ndarray:
        """Non-unit loops keep their order, except that the constraint's fixed innermost /
        outermost loops stay pinned (a factor move can make a pinned unit loop non-unit);
        unit loops follow in dimension order."""
        B = T.shape[0]
        rows = np.arange(B)[:, None]
        dims = np.arange(self.D)
        out = np.empty((B, self.L, self.D), dtype=np.int64)
        all_keys = np.empty((self.L, B, self.D)) if self.compiled else None
        for i in range(self.L):
            p = perm[:, i]
            position = np.empty((B, self.D), dtype=float)
            position[rows, p] = dims[None, :]  # per dimension, its place in the order
            keys = self._constrained_keys(i, position)
            if all_keys is not None:
                all_keys[i] = keys
                continue
            keys = np.where(T[:, i, :] == 1, 2e6 + dims, keys)
            out[:, i] = np.argsort(keys, axis=1, kind="stable")
        if all_keys is not None:  # the same unit rule and stable sort, compiled
            from dse.mapper.kernel_numba import order_by_keys

            order_by_keys(all_keys, np.ascontiguousarray(T, dtype=np.int64), out)
        return out

    def keep_random(self, B: int, rng: np.random.Generator) -> np.ndarray:
        keep = np.broadcast_to(self.forced_keep, (B, self.L, len(self.tensors))).copy()
        if self.free_keep:
            bits = rng.random((B, len(self.free_keep))) < 0.5
            for j, (i, t) in enumerate(self.free_keep):
                keep[:, i, t] = bits[:, j]
        return keep

    def keep_all_variants(self) -> np.ndarray:
        n = len(self.free_keep)
        out = np.broadcast_to(self.forced_keep, (2 ** n, self.L, len(self.tensors))).copy()
        for v in range(2 ** n):
            for j, (i, t) in enumerate(self.free_keep):
                out[v, i, t] = bool((v >> j) & 1)
        return out

    def orders_for(self, T_row: np.ndarray) -> list[np.ndarray]:
        """All distinct loop orders (perm arrays (L, D)) for one factorization."""
        per_level: list[list[list[int]]] = []
        for i in range(self.L):
            lc = self._lc(i)
            inner = [self.dims.index(d) for d in lc.perm_inner]
            outer = [self.dims.index(d) for d in lc.perm_outer]
            fixed = set(inner) | set(outer)
            free_nonunit = [d for d in range(self.D) if d not in fixed and T_row[i, d] > 1]
            free_unit = [d for d in range(self.D) if d not in fixed and T_row[i, d] == 1]
            if not self.order_matters[i] or len(free_nonunit) <= 1:
                variants = [free_nonunit]
            else:
                variants = [list(p) for p in itertools.permutations(free_nonunit)]
            per_level.append([inner + v + free_unit + outer for v in variants])
        return [np.array(combo, dtype=np.int64) for combo in itertools.product(*per_level)]

    def sample_choices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Factorizations drawn uniformly from the fan-out-feasible set."""
        if not len(self.combos):
            return np.zeros((0, self.D), dtype=np.int64)
        weights, tables = self._sampling_tables
        combo_idx = rng.choice(len(self.combos), size=n, p=weights)
        choice = np.empty((n, self.D), dtype=np.int64)
        for d in range(self.D):
            keys = self.combos[combo_idx, d]
            lens, starts, flat = tables[d]
            pick = (rng.random(n) * lens[keys]).astype(np.int64)
            choice[:, d] = flat[starts[keys] + pick]
        return choice

    @functools.cached_property
    def _sampling_tables(self):
        """sample_choices' constants: combination weights, and per dim the completions of
        each spatial key as (lengths, start offsets, concatenated option rows)."""
        weights = self.combo_counts.astype(float)
        weights /= weights.sum()
        tables = []
        for comp in self.completions:
            lens = np.array([len(c) for c in comp])
            starts = np.zeros(len(comp) + 1, dtype=np.int64)
            starts[1:] = np.cumsum(lens)
            flat = np.concatenate(comp) if comp else np.zeros(0, dtype=np.int64)
            tables.append((lens, starts, flat))
        return weights, tables

    def iter_choices(self, chunk: int = 4096):
        """Every fan-out-feasible factorization, in a fixed order, in chunks."""
        buf: list[tuple[int, ...]] = []
        for combo in self.combos:
            lists = [self.completions[d][k] for d, k in enumerate(combo)]
            for tup in itertools.product(*lists):
                buf.append(tup)
                if len(buf) >= chunk:
                    yield np.array(buf, dtype=np.int64)
                    buf = []
        if buf:
            yield np.array(buf, dtype=np.int64)

    # ------------------------------------------------------------------ mapping objects
    def to_mapping(self, T: np.ndarray, SX: np.ndarray, SY: np.ndarray, perm: np.ndarray,
                   keep: np.ndarray) -> Mapping:
        """One row -> a Mapping (canonical spatial order: X dims innermost, dimension order)."""
        levels = []
        for i, lv in enumerate(self.arch.levels):
            temporal = {self.dims[d]: int(T[i, d]) for d in range(self.D) if T[i, d] > 1}
            order = tuple(self.dims[d] for d in perm[i])
            xs = [self.dims[d] for d in range(self.D) if SX[i, d] > 1]
            ys = [self.dims[d] for d in range(self.D) if SY[i, d] > 1]
            spatial = {d: int(SX[i, self.dims.index(d)]) for d in xs}
            spatial.update({d: int(SY[i, self.dims.index(d)]) for d in ys})
            if set(xs) & set(ys):
                raise ValueError("a dimension on both mesh axes of one level is not exportable")
            k = frozenset(self.tensors[t] for t in range(len(self.tensors)) if keep[i, t])
            levels.append(LevelMapping(lv.name, temporal, order, spatial, tuple(xs + ys),
                                       len(xs), k))
        return Mapping(tuple(levels))
