"""The compiled model kernel (dse/model/kernel_numba.py) against the numpy passes (the
reference): identical numbers, not approximately equal ones, on every Timeloop reference case
and on random mappings; and the mapper finds the same best mapping and Pareto set with either.

The rest of the suite runs the compiled kernel (tests/conftest.py sets DSE_KERNEL=numba unless
it is set); the numpy passes run here next to it, so both paths are checked without running
every test twice (`DSE_KERNEL=numpy pytest` runs the whole suite on the numpy passes).
"""

from __future__ import annotations

import csv
from dataclasses import replace

import numpy as np
import pytest
import yaml

from dse.errors import SpecError
from dse.mapper.constraints import Constraints, LevelConstraints
from dse.mapper.mapspace import MapSpace
from dse.mapper.search import SearchConfig, Searcher
from dse.model import kernel as kernels
from dse.model.batch import BatchModel, rows_from_mappings, spatial_orders
from dse.pipeline.map import prepare
from dse.spec.build import load_spec
from tests.conftest import TIMELOOP_REFS
from tests.test_hardware_semantics import _bits_design
from tests.test_mapper import _random_rows, _window_design, ref_files
from tests.test_walker_vs_model import make_problem

pytestmark = pytest.mark.skipif(not kernels.numba_available(), reason="numba not installed")

CASES = sorted(r["folder"] for r in csv.DictReader(open(TIMELOOP_REFS / "MANIFEST.csv")))
DETAIL_FIELDS = ("size", "partition", "replication", "counts", "energy_by_action", "links",
                 "peer", "slowdown", "level_cycles", "leak", "compute_cycles", "cycles",
                 "energy", "keep")
RESULT_FIELDS = ("energy_pJ", "cycles", "valid", "capacity_ok", "fanout_ok", "utilization",
                 "overflow")


def _models(problem, arch, **kw) -> tuple[BatchModel, BatchModel]:
    return (BatchModel(problem, arch, kernel="numba", **kw),
            BatchModel(problem, arch, kernel="numpy", **kw))


def assert_identical(a, b, fields) -> None:
    for name in fields:
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and x.dtype == y.dtype, name
        assert np.array_equal(x, y), f"{name}: {int((x != y).sum())} entries differ"


def kernel_rows(model: BatchModel, arrays) -> np.ndarray:
    """Rows the compiled kernel evaluated itself (not handed to the numpy passes)."""
    out = kernels.run_kernel(model._kernel_consts, *arrays, every_row=True)
    return ~out["exact"]


@pytest.fixture(scope="module")
def handled() -> list[str]:
    return []


@pytest.mark.parametrize("name", CASES)
def test_reference_case_identical_through_both_paths(name: str, handled: list[str]) -> None:
    """Per (level, tensor, action) counts and energies, per-level cycles, leakage, totals."""
    case = TIMELOOP_REFS / name
    meta = yaml.safe_load((case / "case.yaml").read_text())
    spec = load_spec([case / "inputs" / f for f in meta["inputs"]])
    fast, ref = _models(spec.problem, spec.arch)
    arrays = rows_from_mappings(fast, [spec.mapping])
    order = spatial_orders(fast, [spec.mapping])
    assert_identical(fast.detail(*arrays, spatial_order=order),
                     ref.detail(*arrays, spatial_order=order), DETAIL_FIELDS)
    assert_identical(fast.evaluate(*arrays, check_capacity=False),
                     ref.evaluate(*arrays, check_capacity=False), RESULT_FIELDS)
    if kernel_rows(fast, arrays)[0]:
        handled.append(name)


def test_kernel_itself_evaluates_the_reference_cases(handled: list[str]) -> None:
    """The comparison above is not vacuous: the kernel computes every case itself (none
    needs the exact link-transfer walk of the numpy passes)."""
    if len(handled) == 0:
        pytest.skip("run with the reference-case test above")
    assert len(handled) == len(CASES), sorted(set(CASES) - set(handled))


def _compare_random(problem, arch, cons, n: int, seed: int, **kw) -> tuple[int, int]:
    """n random mapspace rows: evaluate() and detail() identical through both paths.
    Returns (valid rows, rows the kernel evaluated itself among those)."""
    space = MapSpace(problem, arch, cons)
    arrays = _random_rows(space, n, seed)
    fast, ref = _models(problem, arch, **kw)
    a, b = fast.evaluate(*arrays), ref.evaluate(*arrays)
    assert_identical(a, b, RESULT_FIELDS)
    idx = np.nonzero(a.fanout_ok)[0]
    sub = tuple(x[idx] for x in arrays)
    assert_identical(fast.detail(*sub), ref.detail(*sub), DETAIL_FIELDS)
    own = kernel_rows(fast, arrays) & a.valid
    return int(a.valid.sum()), int(own.sum())


def test_random_mappings_identical_ex06() -> None:
    spec, searcher = prepare(ref_files("ispass_06_mapper_eyeriss"), SearchConfig())
    valid, own = _compare_random(spec.problem, spec.arch, searcher.space.cons, 600, 31)
    assert valid > 100 and valid * 0.8 < own < valid  # Timeloop's link mode: a few exact
    valid, own = _compare_random(spec.problem, spec.arch, Constraints({}), 600, 32)
    assert valid > 20


def test_random_mappings_identical_windows_every_link_mode() -> None:
    """Sliding windows over a fan-out: link transfers act on some rows; the kernel does the
    closed forms, rows that need the exact walk per spatial structure go to the numpy
    passes."""
    problem, arch = _window_design()
    window = Constraints({"GLB": LevelConstraints(spatial_exact={"R": 3}, perm_inner=("P",),
                                                  temporal_min={"P": 2})})
    for mode in (None, "off", "timeloop", "declared"):
        valid, own = _compare_random(problem, arch, window, 300, 33, link_transfers=mode)
        assert valid > 50 and own > 0
        if mode in ("off", "declared"):  # no link can act (declared: no neighbour_links)
            assert own == valid
        else:  # some rows need the exact walk (the hybrid path is exercised)
            assert own < valid
    valid, own = _compare_random(problem, arch, Constraints({}), 300, 34)
    assert valid > 50 and own > 0


def test_random_mappings_identical_word_bits_and_placement() -> None:
    from dse.workload.layers import Bits, conv2d

    arch = _bits_design()
    problem = conv2d("c", C=8, K=8, P=3, Q=1, R=3, S=1,
                     bits=Bits(weights=8, activations=16, accumulator=32))
    valid, own = _compare_random(problem, arch, Constraints({}), 300, 35)
    assert valid > 20 and own == valid
    wide = replace(problem, data_spaces=tuple(replace(ds, word_bits=32)
                                              for ds in problem.data_spaces))
    _compare_random(wide, arch, Constraints({}), 300, 36)
    placed = make_problem("conv1d", {"K": 2, "C": 2, "R": 3, "P": 8})
    problem2, arch2 = _window_design()
    assert problem2.dims == placed.dims
    valid, own = _compare_random(problem2, arch2, Constraints({}), 300, 37,
                                 placement={"Outputs": "GLB"})
    assert valid > 10


@pytest.mark.parametrize("search,objective,pareto", [
    ("random", "edp", False), ("auto", "delay,energy", False), ("random", "energy", True),
    ("exhaustive", "edp", True)])
def test_search_same_best_and_pareto_either_path(search, objective, pareto, monkeypatch
                                                 ) -> None:
    if search == "exhaustive":
        problem, arch = _window_design()
        window = Constraints({"GLB": LevelConstraints(spatial_exact={"R": 3})})
        build = lambda cfg: Searcher(problem, arch, window, cfg)  # noqa: E731
    else:
        files = ref_files("ispass_06_mapper_eyeriss")
        build = lambda cfg: prepare(files, cfg)[1]  # noqa: E731
    results = {}
    for kernel in ("numba", "numpy"):
        monkeypatch.setenv(kernels.ENV, kernel)
        cfg = SearchConfig(objective=objective, search=search, max_evals=6000, seed=5,
                           pareto=pareto, block=2048)
        searcher = build(cfg)
        assert searcher.model.kernel == kernel
        res = searcher.run()
        best = res.best
        results[kernel] = (res.evaluated, res.skipped_by_bound, res.valid, best.score,
                           best.energy_pJ, best.cycles, best.choice.tolist(), best.perm.tolist(),
                           best.keep.tolist(),
                           [(e, c, x.choice.tolist(), x.perm.tolist(), x.keep.tolist())
                            for e, c, x in res.pareto])
    assert results["numba"] == results["numpy"]
    if pareto:
        assert len(results["numba"][-1]) >= 1


def test_candidate_decoding_and_bounds_identical(monkeypatch) -> None:
    """The compiled factor decoding, loop ordering and lower bounds (dse/mapper/
    kernel_numba.py) give the numpy code's arrays."""
    from dse.mapper.bounds import Bounds

    spec, searcher = prepare(ref_files("ispass_06_mapper_eyeriss"), SearchConfig())
    problem2, arch2 = _window_design()
    for problem, arch, cons in ((spec.problem, spec.arch, searcher.space.cons),
                                (spec.problem, spec.arch, Constraints({})),
                                (problem2, arch2, Constraints({}))):
        out = {}
        for kernel in ("numba", "numpy"):
            monkeypatch.setenv(kernels.ENV, kernel)
            space = MapSpace(problem, arch, cons)
            assert space.compiled == (kernel == "numba")
            rng = np.random.default_rng(3)
            choice = space.sample_choices(3000, rng)
            T, SX, SY = space.factor_arrays(choice)
            perm = space.perms_random(T, rng)
            keep = space.keep_random(3000, rng)
            shuffled = rng.permuted(perm, axis=2)
            canon = space.canonical_perm(T, shuffled)
            bounds = Bounds(BatchModel(problem, arch, kernel=kernel)).lower(T, SX, SY, keep)
            out[kernel] = (T, SX, SY, perm, keep, canon, *bounds)
        for a, b in zip(out["numba"], out["numpy"], strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_kernel_choice_environment(monkeypatch) -> None:
    monkeypatch.setenv(kernels.ENV, "numpy")
    assert kernels.kernel_choice() == "numpy"
    monkeypatch.setenv(kernels.ENV, "numba")
    assert kernels.kernel_choice() == "numba"
    monkeypatch.delenv(kernels.ENV)
    assert kernels.kernel_choice() == "numba"
    monkeypatch.setenv(kernels.ENV, "numbaa")
    with pytest.raises(SpecError, match="unknown model kernel 'numbaa'") as err:
        kernels.kernel_choice()
    assert "numba" in (err.value.hint or "")
    # one mapping (dse.model.evaluate): numba only once loaded, or when asked for
    import sys

    monkeypatch.delenv(kernels.ENV)
    monkeypatch.setitem(sys.modules, "dse.model.kernel_numba", None)
    monkeypatch.delitem(sys.modules, "dse.model.kernel_numba")
    assert kernels.kernel_for_one_mapping() == "numpy"
    monkeypatch.setenv(kernels.ENV, "numba")
    assert kernels.kernel_for_one_mapping() == "numba"
    # numba missing: the numpy passes, without an error
    monkeypatch.setattr(kernels, "numba_available", lambda: False)
    monkeypatch.setenv(kernels.ENV, "numba")
    assert kernels.kernel_choice() == "numpy"
    monkeypatch.delenv(kernels.ENV)
    problem, arch = _window_design()
    assert BatchModel(problem, arch).kernel == "numpy"


def test_bench_reports_the_kernel(monkeypatch) -> None:
    from dse.bench.run import CASES, bench_mapper

    files = CASES["eyeriss_resnet18_conv2_x"]
    monkeypatch.setenv(kernels.ENV, "numba")
    fast = bench_mapper(files, "random", 3000)
    monkeypatch.setenv(kernels.ENV, "numpy")
    ref = bench_mapper(files, "random", 3000)
    assert (fast["kernel"], ref["kernel"]) == ("numba", "numpy")
    same = ("evaluated", "skipped_by_bound", "valid", "best_cycles", "best_energy_pJ")
    assert [fast[k] for k in same] == [ref[k] for k in same]
