"""The mapper (dse.mapper) against independent references.

* exhaustive search vs a naive enumerate-everything loop over the scalar model (tiny problems);
* the ISPASS 05 mapper cases vs brute force, the ISPASS 06 (Eyeriss) case vs Timeloop's result;
* the numpy batch evaluator vs the scalar model on random mapspace rows (incl. link transfers);
* Timeloop constraints honoured by the mapspace; exported mappings re-read identically.

Findings (bugs) are written up in tests/MAPPER_FINDINGS.md; their tests are strict xfails.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from dse.arch.architecture import Architecture, ComputeLevel, Energy, StorageLevel
from dse.mapper.batch import BatchModel
from dse.mapper.constraints import Constraints, LevelConstraints
from dse.mapper.mapspace import MapSpace
from dse.mapper.search import OBJECTIVES, SearchConfig, Searcher, SearchResult
from dse.mapping import LevelMapping, Mapping
from dse.model import evaluate
from dse.model.evaluate import MappingError
from dse.pipeline.map import mapper_defaults, prepare
from dse.spec.build import load_spec, read_mapping
from dse.spec.convert import mapping_to_native, mapping_to_timeloop
from dse.spec.yamlload import load_documents
from dse.workload.problem import Problem
from tests.conftest import TIMELOOP_REFS
from tests.oracle.scalar_model import scalar_evaluate
from tests.test_walker_vs_model import make_problem

FINDINGS = "see tests/MAPPER_FINDINGS.md"
PRUNING_BUG = ("exhaustive search prunes factorizations that only fit with a bypass: its "
               "'minimal keeps' are forced_keep, which has every free keep set -- " + FINDINGS
               + " #1")

# ------------------------------------------------------------------------------- designs


def _energy(**pj: float) -> dict[str, Energy]:
    return {k: Energy(v, "test") for k, v in pj.items()}


def _level(name: str, mx: int, my: int, depth: int | None, *, block: int = 1,
           rbw: float | None = None, **pj: float) -> StorageLevel:
    """A storage level; depth None = DRAM (unbounded)."""
    return StorageLevel(name=name, instances=mx * my, mesh_x=mx, mesh_y=my, depth=depth,
                        width=8 * block, datawidth=8, block_size=block, is_dram=depth is None,
                        read_bandwidth=rbw, energy=_energy(**pj))


def _mac(mx: int, my: int, pj: float = 1.0) -> ComputeLevel:
    return ComputeLevel("MAC", mx * my, mx, my, energy=_energy(compute=pj))


def tiny_designs() -> dict[str, tuple[Problem, Architecture]]:
    """Small problems whose whole mapspace the scalar model can enumerate in a second or two.

    A: conv1d over a buffer fanning out 2 (X) to the MACs, 8-word buffer, read bandwidth limit.
    B: conv1d over 3 levels, GLB fanning out 2 (X) to 4-word register files.
    C: sliding-window conv1d, R over a Y fan-out of 3 (link transfers), 5-word buffer.
    D: matmul, Y fan-out 3, 6-word buffer, DRAM and buffer bandwidth limits, leakage.
    """
    dram = functools.partial(_level, "DRAM", 1, 1, None)
    return {
        "A": (make_problem("conv1d", {"K": 2, "C": 2, "R": 3, "P": 4}),
              Architecture("A", (dram(read=100, write=100),
                                 _level("Buf", 1, 1, 8, rbw=2, read=2, write=2.5, update=3,
                                        leak=0.05)), _mac(2, 1))),
        "B": (make_problem("conv1d", {"K": 2, "C": 1, "R": 3, "P": 2}),
              Architecture("B", (dram(rbw=4, read=100, write=100),
                                 _level("GLB", 1, 1, 16, rbw=1, read=6, write=7),
                                 _level("RF", 2, 1, 4, read=0.5, write=0.6, leak=0.01)),
                           _mac(2, 1))),
        "C": (make_problem("conv1d_small", {"R": 3, "P": 4}),
              Architecture("C", (dram(rbw=1, read=50, write=60),
                                 _level("Buf", 1, 1, 5, read=1, write=1.5, leak=0.2)),
                           _mac(1, 3, 0.5))),
        "D": (make_problem("matmul", {"M": 2, "N": 3, "K": 2}),
              Architecture("D", (dram(rbw=1, read=50, write=60),
                                 _level("Buf", 1, 1, 6, rbw=2, read=1, write=1.5, leak=0.2)),
                           _mac(1, 3, 0.5))),
    }


# ------------------------------------------------------------------------ naive enumeration


def _splits(n: int, k: int) -> Iterator[tuple[int, ...]]:
    """Every ordered way to write n as a product of k positive factors."""
    if k == 1:
        yield (n,)
        return
    for f in range(1, n + 1):
        if n % f == 0:
            for rest in _splits(n // f, k - 1):
                yield (f, *rest)


FactorOk = Callable[[int, str, str, int], bool]  # (level, 'T'/'X'/'Y', dim, factor)
OrderOk = Callable[[int, tuple[str, ...], dict[str, int]], bool]  # (level, order, temporal)


def enumerate_mappings(problem: Problem, arch: Architecture, *,
                       factor_ok: FactorOk | None = None, order_ok: OrderOk | None = None,
                       keep_options: Callable[[int], list[frozenset[str]]] | None = None,
                       ) -> Iterator[Mapping]:
    """Every factorization of every dim over every temporal/spatial slot, every loop order
    (all permutations of all dims at each level) and every keep set below the outermost level.

    Orders that differ only in where unit loops sit are one loop nest, so per level one
    permutation per distinct order of its non-unit loops is kept (the first one met).
    """
    dims, L, names = problem.dims, len(arch.levels), problem.tensor_names
    slots = []
    for i in range(L):
        slots.append((i, "T"))
        fx, fy = arch.fanout(i)
        if fx > 1:
            slots.append((i, "X"))
        if fy > 1:
            slots.append((i, "Y"))
    all_keeps = [frozenset(c) for r in range(len(names) + 1)
                 for c in itertools.combinations(names, r)]
    keeps_at = [all_keeps if keep_options is None else keep_options(i) for i in range(1, L)]
    per_dim = [[row for row in _splits(problem.bounds[d], len(slots))
                if factor_ok is None or all(factor_ok(i, k, d, f)
                                            for (i, k), f in zip(slots, row, strict=True))]
               for d in dims]
    for fac in itertools.product(*per_dim):
        table: dict[str, list[dict[str, int]]] = {k: [{} for _ in range(L)] for k in "TXY"}
        for d, row in zip(dims, fac, strict=True):
            for (i, k), f in zip(slots, row, strict=True):
                if f > 1:
                    table[k][i][d] = f
        T, X, Y = table["T"], table["X"], table["Y"]
        level_orders = []
        for i in range(L):
            distinct: dict[tuple[str, ...], tuple[str, ...]] = {}
            for p in itertools.permutations(dims):
                if order_ok is None or order_ok(i, p, T[i]):
                    distinct.setdefault(tuple(d for d in p if d in T[i]), p)
            level_orders.append(list(distinct.values()))
        for orders in itertools.product(*level_orders):
            for keeps in itertools.product(*keeps_at):
                levels = []
                for i in range(L):
                    xs = [d for d in dims if d in X[i]]
                    ys = [d for d in dims if d in Y[i]]
                    levels.append(LevelMapping(
                        arch.levels[i].name, dict(T[i]), orders[i], X[i] | Y[i],
                        tuple(xs + ys), len(xs), None if i == 0 else keeps[i - 1]))
                yield Mapping(tuple(levels))


def evaluate_all(problem: Problem, arch: Architecture, mappings: Iterator[Mapping]
                 ) -> list[tuple[float, int, Mapping]]:
    """(energy, cycles, mapping) of every valid mapping; invalid ones (MappingError) skipped."""
    out = []
    for m in mappings:
        try:
            ev = evaluate(problem, arch, m)
        except MappingError:
            continue
        out.append((ev.energy_pJ, ev.cycles, m))
    return out


OBJECTIVE_KEY: dict[str, Callable[[float, int], tuple[float, ...]]] = {
    "edp": lambda e, c: (e * c,),
    "energy": lambda e, c: (e,),
    "delay": lambda e, c: (float(c),),
    "delay,energy": lambda e, c: (float(c), e),
    "energy,delay": lambda e, c: (e, float(c)),
}


def assert_same_objective(got: tuple[float, ...], want: tuple[float, ...]) -> None:
    """Objective values equal (up to float rounding of the energy sum)."""
    assert got == pytest.approx(want, rel=1e-12, abs=0), f"search {got} != optimum {want}"


@functools.cache
def naive_results(name: str, keep_all: bool) -> list[tuple[float, int, Mapping]]:
    problem, arch = tiny_designs()[name]
    opts = (lambda i: [frozenset(problem.tensor_names)]) if keep_all else None
    return evaluate_all(problem, arch, enumerate_mappings(problem, arch, keep_options=opts))


# ------------------------------------------------------------------------------ check 1


@pytest.mark.parametrize("name,keep_all", [
    *[(n, False) for n in "ABCD"],
    *[(n, True) for n in "ABCD"],
])
def test_exhaustive_finds_naive_optimum(name: str, keep_all: bool) -> None:
    """Exhaustive search returns the optimum of a naive enumeration, for every objective.
    keep_all=True forces every buffer to keep every tensor (no bypass freedom)."""
    problem, arch = tiny_designs()[name]
    cons = Constraints({})
    if keep_all:
        for lv in arch.levels[1:]:
            cons.levels[lv.name] = LevelConstraints(keep=frozenset(problem.tensor_names))
    results = naive_results(name, keep_all)
    assert len(results) >= 5
    for objective in OBJECTIVES:
        key = OBJECTIVE_KEY[objective]
        want = min(key(e, c) for e, c, _ in results)
        searcher = Searcher(problem, arch, cons, SearchConfig(objective=objective,
                                                              search="exhaustive"))
        result = searcher.run()
        assert result.exhausted and result.best is not None
        ev = evaluate(problem, arch, searcher.mapping_of(result.best))
        assert_same_objective(key(ev.energy_pJ, ev.cycles), want)
        assert result.best.cycles == ev.cycles
        assert result.best.energy_pJ == pytest.approx(ev.energy_pJ, rel=1e-9)


def test_tiny_designs_have_overflowing_mappings_and_tradeoffs() -> None:
    """The naive references are not trivial: some mappings overflow a buffer, and the
    objectives disagree on at least one design."""
    for name in "ABCD":
        problem, arch = tiny_designs()[name]
        overflow = 0
        for m in itertools.islice(enumerate_mappings(problem, arch), 3000):
            try:
                evaluate(problem, arch, m)
            except MappingError as exc:
                overflow += "holds" in str(exc)
        assert overflow > 0, name
    rows = naive_results("A", False)
    by_energy = min(rows, key=lambda r: OBJECTIVE_KEY["energy,delay"](r[0], r[1]))
    by_delay = min(rows, key=lambda r: OBJECTIVE_KEY["delay,energy"](r[0], r[1]))
    assert by_energy[:2] != by_delay[:2]


def test_exhaustive_keeps_factorizations_that_fit_with_bypass() -> None:
    """Minimal reproduction: R=3 over 3 MACs, P=4 at a 5-word buffer that keeps only Weights
    (3 words) is the energy optimum, but with every tensor kept the tiles need 13 words."""
    problem, arch = tiny_designs()["C"]
    best = Mapping((
        LevelMapping("DRAM"),
        LevelMapping("Buf", temporal={"P": 4}, spatial={"R": 3}, spatial_order=("R",), split=0,
                     keep=frozenset({"Weights"})),
    ))
    want = evaluate(problem, arch, best).energy_pJ
    searcher = Searcher(problem, arch, Constraints({}), SearchConfig(objective="energy",
                                                                     search="exhaustive"))
    result = searcher.run()
    assert result.rejected["pruned: capacity with minimal keeps"] == 0
    assert result.best is not None and result.best.energy_pJ == pytest.approx(want, rel=1e-12)


# --------------------------------------------------------------------- reference helpers


def ref_files(case: str) -> list[Path]:
    """A mapper reference case's spec and ERT, without the emitted map."""
    inputs = TIMELOOP_REFS / case / "inputs"
    return [inputs / "parsed-processed-input.yaml", inputs / "timeloop-mapper.ERT.yaml"]


def timeloop_targets(case: str) -> list[dict]:
    """The `architecture_constraints` targets of a reference case, as plain YAML."""
    data = yaml.safe_load(ref_files(case)[0].read_text())
    return data["architecture_constraints"]["targets"]


def _factor_table(text: str | None) -> dict[str, int]:
    out = {}
    for tok in (text or "").replace(",", " ").split():
        d, n = tok.split("=")
        out[d.strip()] = int(n)
    return out


def _perm_list(text: str | None) -> list[str]:
    return list(str(text or "").replace(" ", "").replace(",", ""))


def constraint_violations(mapping: Mapping, problem: Problem, targets: list[dict]) -> list[str]:
    """What in `mapping` breaks Timeloop constraint targets (exact factors, innermost-first
    permutation prefixes, X/Y splits, keep/bypass), by our own reading of the YAML."""
    bad = []
    by_name = {lm.target: lm for lm in mapping.levels}
    for t in targets:
        lm = by_name[t["target"]]
        kind = t.get("type", "temporal")
        if kind == "temporal":
            for d, n in _factor_table(t.get("factors")).items():
                if lm.temporal.get(d, 1) != n:
                    bad.append(f"{lm.target} temporal {d}={lm.temporal.get(d, 1)}, want {n}")
            inner = [d for d in mapping.ordered(lm.temporal_order, lm.temporal, problem.dims)
                     [::-1] if lm.temporal.get(d, 1) > 1]
            want = [d for d in _perm_list(t.get("permutation")) if lm.temporal.get(d, 1) > 1]
            if inner[:len(want)] != want:
                bad.append(f"{lm.target} loop order {inner}, want innermost {want}")
        elif kind == "spatial":
            for d, n in _factor_table(t.get("factors")).items():
                if lm.spatial.get(d, 1) != n:
                    bad.append(f"{lm.target} spatial {d}={lm.spatial.get(d, 1)}, want {n}")
            perm = _perm_list(t.get("permutation"))
            if "split" in t and perm:
                order = [d for d in lm.spatial_order if d in problem.dims]
                order += [d for d in problem.dims if d not in order]
                xs = set(order[:len(order) if lm.split is None else lm.split])
                x_allowed = set(perm[:int(t["split"])])
                for d, n in lm.spatial.items():
                    if n > 1 and (d in xs) != (d in x_allowed):
                        bad.append(f"{lm.target} spatial {d} on {'X' if d in xs else 'Y'}")
        elif kind == "bypass":
            for name in t.get("keep") or []:
                if not lm.keeps(name):
                    bad.append(f"{lm.target} bypasses {name}")
            for name in t.get("bypass") or []:
                if lm.keeps(name):
                    bad.append(f"{lm.target} keeps {name}")
    return bad


# ------------------------------------------------------------------------------ check 2


@pytest.mark.slow
def test_ex06_search_matches_timeloop_within_a_minute() -> None:
    """Eyeriss (ISPASS 06) with the spec's mapper settings: at least as good as Timeloop's
    mapper on both cycles and energy, within 60 s, and the scalar model agrees."""
    files = ref_files("ispass_06_mapper_eyeriss")
    defaults = mapper_defaults(load_spec(files, need_mapping=False))
    assert defaults.objective == "delay,energy"
    cfg = SearchConfig(objective=defaults.objective, search=defaults.search or "auto",
                       max_evals=100_000)
    t0 = time.perf_counter()
    spec, searcher = prepare(files, cfg)
    result = searcher.run()
    wall = time.perf_counter() - t0
    assert wall < 60, f"search took {wall:.1f} s"
    best = result.best
    assert best is not None
    assert best.cycles <= 5_505_024
    assert best.energy_pJ <= 2_764_376_744.79
    ev = evaluate(spec.problem, spec.arch, searcher.mapping_of(best))
    assert ev.cycles == best.cycles
    assert ev.energy_pJ == pytest.approx(best.energy_pJ, rel=1e-9)


# ------------------------------------------------------------------------------ check 3


def brute_force_timeloop(case: str, *, honour_orders: bool = True
                         ) -> tuple[list[tuple[float, int, Mapping]], Problem, Architecture]:
    """Every mapping of a reference case that its constraints allow, evaluated by the scalar
    model (constraints read here from the YAML, not by dse's constraint reader)."""
    spec = load_spec(ref_files(case), need_mapping=False)
    problem, arch, targets = spec.problem, spec.arch, timeloop_targets(case)
    names = arch.level_names()

    def rules(level: int, kind: str) -> list[dict]:
        return [t for t in targets if t["target"] == names[level]
                and t.get("type", "temporal") == kind]

    def factor_ok(level: int, kind: str, d: str, f: int) -> bool:
        rk = "temporal" if kind == "T" else "spatial"
        return all(_factor_table(t.get("factors")).get(d, f) == f for t in rules(level, rk))

    def order_ok(level: int, order: tuple[str, ...], temporal: dict[str, int]) -> bool:
        if not honour_orders:
            return True
        inner = [d for d in order if d in temporal]
        for t in rules(level, "temporal"):
            want = [d for d in _perm_list(t.get("permutation")) if d in temporal]
            if inner[:len(want)] != want:
                return False
        return True

    def keep_options(level: int) -> list[frozenset[str]]:
        tensors = problem.tensor_names
        opts = [frozenset(c) for r in range(len(tensors) + 1)
                for c in itertools.combinations(tensors, r)]
        for t in rules(level, "bypass"):
            opts = [k for k in opts if set(t.get("keep") or []) <= k
                    and not set(t.get("bypass") or []) & k]
        return opts

    rows = evaluate_all(problem, arch, enumerate_mappings(
        problem, arch, factor_ok=factor_ok, order_ok=order_ok, keep_options=keep_options))
    return rows, problem, arch


@pytest.mark.parametrize("case,n_keeps", [("ispass_05_mapper_baked", 1),
                                          ("ispass_05_mapper_freebypass", 64)])
def test_ex05_exhaustive_is_true_optimum(case: str, n_keeps: int) -> None:
    """ISPASS 05 (constrained factors, free or baked bypass): the exhaustive search's best is
    the brute-force minimum of (cycles, energy)."""
    rows, problem, arch = brute_force_timeloop(case)
    assert len(rows) == n_keeps  # factors and orders fixed by the constraints; keeps vary
    want = min(OBJECTIVE_KEY["delay,energy"](e, c) for e, c, _ in rows)
    files = ref_files(case)
    defaults = mapper_defaults(load_spec(files, need_mapping=False))
    assert (defaults.objective, defaults.search) == ("delay,energy", "exhaustive")
    spec, searcher = prepare(files, SearchConfig(objective=defaults.objective,
                                                 search=defaults.search))
    result = searcher.run()
    assert result.exhausted and result.best is not None
    mapping = searcher.mapping_of(result.best)
    ev = evaluate(problem, arch, mapping)
    assert_same_objective(OBJECTIVE_KEY["delay,energy"](ev.energy_pJ, ev.cycles), want)
    assert not constraint_violations(mapping, problem, timeloop_targets(case))
    if case.endswith("freebypass"):
        assert ev.energy_pJ <= 46485.49  # Timeloop's mapper found 46485.4886 pJ


# ------------------------------------------------------------------------------ check 6


def _random_rows(space: MapSpace, n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    choice = space.sample_choices(n, rng)
    T, SX, SY = space.factor_arrays(choice)
    return T, SX, SY, space.perms_random(T, rng), space.keep_random(n, rng)


def compare_batch_with_scalar(problem: Problem, arch: Architecture, cons: Constraints, n: int,
                              seed: int) -> tuple[int, int]:
    """Batch evaluation of n random mapspace rows == scalar evaluate, row by row.
    Returns (valid rows, rows whose energy depends on link transfers)."""
    space = MapSpace(problem, arch, cons)
    T, SX, SY, perm, keep = _random_rows(space, n, seed)
    r = BatchModel(problem, arch).evaluate(T, SX, SY, perm, keep)
    valid = links = 0
    for b in range(n):
        m = space.to_mapping(T[b], SX[b], SY[b], perm[b], keep[b])
        try:
            ev = scalar_evaluate(problem, arch, m)
        except MappingError:
            assert not r.valid[b], f"row {b}: batch valid, scalar raises; {m}"
            continue
        assert r.valid[b], f"row {b}: batch invalid, scalar valid; {m}"
        assert int(r.cycles[b]) == ev.cycles, f"row {b}: {m}"
        assert float(r.energy_pJ[b]) == pytest.approx(ev.energy_pJ, rel=1e-9), f"row {b}: {m}"
        valid += 1
        off = scalar_evaluate(problem, arch, m, link_transfers=False)
        links += off.energy_pJ != ev.energy_pJ
    return valid, links


def test_batch_matches_scalar_ex06() -> None:
    """Eyeriss: 300 rows of the constrained mapspace, 100 of the unconstrained one."""
    spec, searcher = prepare(ref_files("ispass_06_mapper_eyeriss"), SearchConfig())
    valid, _ = compare_batch_with_scalar(spec.problem, spec.arch, searcher.space.cons, 300, 6)
    assert 50 < valid < 300
    compare_batch_with_scalar(spec.problem, spec.arch, Constraints({}), 100, 7)


def _window_design() -> tuple[Problem, Architecture]:
    """conv1d over DRAM -> GLB -(X 3)-> register files -> MACs, 4-word GLB rows."""
    problem = make_problem("conv1d", {"K": 2, "C": 2, "R": 3, "P": 8})
    arch = Architecture("win", (
        _level("DRAM", 1, 1, None, block=4, read=100, write=100),
        _level("GLB", 1, 1, 16, block=4, rbw=4, read=6, write=7, leak=0.1),
        _level("RF", 3, 1, 16, read=0.5, write=0.6, update=0.7)), _mac(3, 1))
    return problem, arch


def test_batch_matches_scalar_sliding_windows() -> None:
    """R spread over the GLB's fan-out with P walked in time right above it: neighbouring
    register files share inputs (link transfers); some rows must really use them."""
    problem, arch = _window_design()
    window = Constraints({"GLB": LevelConstraints(spatial_exact={"R": 3}, perm_inner=("P",),
                                                  temporal_min={"P": 2})})
    valid, links = compare_batch_with_scalar(problem, arch, window, 250, 11)
    assert valid > 100 and links > 0
    compare_batch_with_scalar(problem, arch, Constraints({}), 250, 12)


def test_batch_matches_scalar_compute_fanout() -> None:
    """A buffer fanning out 4x2 straight to the MACs; K and C (each irrelevant to one tensor)
    spread spatially, so neighbours hold identical data (zero-translation link transfers)."""
    problem = make_problem("conv1d", {"K": 4, "C": 2, "R": 3, "P": 4})
    arch = Architecture("fan", (
        _level("DRAM", 1, 1, None, read=100, write=100),
        _level("Buf", 1, 1, 24, block=2, rbw=3, read=2, write=2.5, update=3, leak=0.01)),
        _mac(4, 2))
    valid, links = compare_batch_with_scalar(problem, arch, Constraints({}), 300, 13)
    assert valid > 100 and links > 0
    spatial = Constraints({"Buf": LevelConstraints(spatial_min={"K": 2})})
    compare_batch_with_scalar(problem, arch, spatial, 200, 14)


# ------------------------------------------------------------------------------ check 9


def test_ex06_mapspace_honours_architecture_constraints() -> None:
    """Random mapspace rows, the search's Pareto front and its best mapping all satisfy
    ex06's architecture_constraints (checked against the YAML by our own reader)."""
    case = "ispass_06_mapper_eyeriss"
    targets = timeloop_targets(case)
    spec, searcher = prepare(ref_files(case), SearchConfig(objective="delay,energy",
                                                           max_evals=8192, pareto=True))
    space = searcher.space
    T, SX, SY, perm, keep = _random_rows(space, 400, 21)
    for b in range(len(T)):
        m = space.to_mapping(T[b], SX[b], SY[b], perm[b], keep[b])
        assert not constraint_violations(m, spec.problem, targets), b
    result = searcher.run()
    assert result.best is not None and result.pareto
    for cand in [result.best] + [c for _, _, c in result.pareto]:
        m = searcher.mapping_of(cand)
        assert not constraint_violations(m, spec.problem, targets)


def test_constraint_checker_catches_violations() -> None:
    """The checker used above is not vacuous: Timeloop's own emitted ex06 mapping passes,
    and moving a loop into ifmap_spad or C onto mesh X is caught."""
    case = "ispass_06_mapper_eyeriss"
    targets = timeloop_targets(case)
    inputs = TIMELOOP_REFS / case / "inputs"
    spec = load_spec([*ref_files(case), inputs / "timeloop-mapper.map.yaml"])
    assert spec.mapping is not None
    assert not constraint_violations(spec.mapping, spec.problem, targets)
    levels = list(spec.mapping.levels)
    i = [lm.target for lm in levels].index("ifmap_spad")
    levels[i] = LevelMapping("ifmap_spad", {"C": 2}, keep=levels[i].keep)
    assert constraint_violations(Mapping(tuple(levels)), spec.problem, targets)
    levels = list(spec.mapping.levels)
    j = [lm.target for lm in levels].index("inter_PE_spatial")
    lm = levels[j]
    levels[j] = LevelMapping(lm.target, lm.temporal, lm.temporal_order, {"C": 2},
                             ("C",), 1, lm.keep)
    assert any("on X" in v for v in constraint_violations(Mapping(tuple(levels)),
                                                          spec.problem, targets))


# ---------------------------------------------------------------- export / reload (check 4)


def test_exported_mappings_reload_identically(tmp_path: Path) -> None:
    """Random valid mappings (Eyeriss; sliding-window design) written in the Timeloop and the
    native format and read back by the spec readers evaluate to the same numbers."""
    cases = []
    spec, searcher = prepare(ref_files("ispass_06_mapper_eyeriss"), SearchConfig())
    cases.append((spec.problem, spec.arch, searcher.space, spec.arch_constraints))
    problem, arch = _window_design()
    cases.append((problem, arch, MapSpace(problem, arch, Constraints({})), {}))
    checked = 0
    for k, (problem, arch, space, arch_cons) in enumerate(cases):
        T, SX, SY, perm, keep = _random_rows(space, 120, 31 + k)
        for b in range(len(T)):
            m = space.to_mapping(T[b], SX[b], SY[b], perm[b], keep[b])
            try:
                ev = evaluate(problem, arch, m)
            except MappingError:
                continue
            for fmt, entries in (("timeloop", mapping_to_timeloop(m, arch, problem)),
                                 ("native", mapping_to_native(m, arch, problem))):
                path = tmp_path / f"{k}_{b}_{fmt}.yaml"
                path.write_text(yaml.safe_dump({"mapping": entries}, sort_keys=False))
                back = read_mapping(load_documents([path]), arch, problem, arch_cons)
                ev2 = evaluate(problem, arch, back)
                assert (ev2.energy_pJ, ev2.cycles) == (ev.energy_pJ, ev.cycles), (fmt, m)
                checked += 1
    assert checked > 200


# ------------------------------------------------------------------------ other findings


def test_random_search_without_budget_stops() -> None:
    """`search='random'` with neither max_evals nor time_limit stops by itself within the
    budget 'auto' gets by default (200,000 evaluations), rather than looping forever."""
    problem, arch = tiny_designs()["C"]
    searcher = Searcher(problem, arch, Constraints({}), SearchConfig(search="random"))

    class Runaway(Exception):
        pass

    def progress(result: SearchResult, _rate: float) -> None:
        if result.evaluated > 200_000 + 4096:
            raise Runaway

    searcher.progress = progress
    result = searcher.run()
    assert result.best is not None and math.isfinite(result.best.energy_pJ)
