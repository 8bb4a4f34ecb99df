"""Edge cases of the compiled sparse step (dse/model/kernel_numba.py) against the numpy
step, beyond tests/test_sparse_kernel.py: problems with one, three or no operands (the
compute classification with n != 2), optimizations conditioned on their own tensor or on
two nearly empty tensors (rows whose computes all go, compute_cycles 0), a dummy level,
tiny problems with hypergeometric densities, empty batches; and the compiled step's on-disk
cache, which must not outlive a change to the kernel it inlines."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from dse.mapper.constraints import Constraints
from dse.mapper.mapspace import MapSpace
from tests.test_sparse_batch import _rows
from tests.test_sparse_kernel import _assert_same, _identical, _models, _syn_arch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _needs_numba() -> None:
    from dse.model import kernel as kernels

    if not kernels.numba_available():
        pytest.skip("numba not installed")


def _ds(name: str, dims: tuple[str, str], rw: bool = False):
    from dse.workload.problem import DataSpace

    return DataSpace(name, tuple(((d, 1),) for d in dims), read_write=rw)


def _problem(operands: str, bounds: dict[str, int] | None = None):
    """matmul-shaped problems on M, N, K: `two` A[M,K] B[K,N] -> Z[M,N]; `three` adds an
    operand C[M,N]; `one` has A as the only operand (B and Z are written); `none` writes
    all three."""
    from dse.workload.problem import Problem

    b = bounds or {"M": 8, "N": 4, "K": 8}
    a, bb, z = ("M", "K"), ("K", "N"), ("M", "N")
    spaces = {
        "two": (_ds("A", a), _ds("B", bb), _ds("Z", z, True)),
        "three": (_ds("A", a), _ds("B", bb), _ds("Z", z, True), _ds("C", z)),
        "one": (_ds("A", a), _ds("B", bb, True), _ds("Z", z, True)),
        "none": (_ds("Z", z, True), _ds("A", a, True), _ds("B", bb, True)),
    }[operands]
    return Problem(f"matmul_{operands}", tuple(b), dict(b), spaces)


def _spec(problem, hyper: bool = False):
    """Every feature at once on whatever tensors the problem has: formats at every level
    (a flattened one included), each tensor skipped on the next and gated on itself,
    compute gating and skipping."""
    from dse.model.density import DensityModel
    from dse.model.formats import RankFormat as F
    from dse.model.sparse import ActionOptimization as Opt
    from dse.model.sparse import SparseSpec

    names = [ds.name for ds in problem.data_spaces]
    dens = {}
    for k, ds in enumerate(problem.data_spaces):
        d = (0.25, 0.5, 0.4, 0.75)[k % 4]
        dens[ds.name] = (DensityModel("hypergeometric", d, ds.size(problem.bounds)) if hyper
                         else DensityModel("fixed_structured", d))
    formats = {}
    for k, ds in enumerate(problem.data_spaces):
        dims = tuple(d for r in ds.ranks for d, _ in r)
        formats[("GLB", ds.name)] = ((F("UOP"), F("CP")), (F("B"),), (F("RLE"),),
                                     (F("UB"),))[k % 4]
        formats[("DRAM", ds.name)] = (F("UOP", dims[:1]), F("CP", dims[1:]))
    actions = []
    for k, t in enumerate(names):
        other = names[(k + 1) % len(names)]
        actions.append(Opt("skipping", "RF", t, (other,)))
        actions.append(Opt("gating", "GLB", t, (t,)))  # conditioned on itself
    return SparseSpec(dens, formats, tuple(actions), compute_gating=True,
                      compute_skipping=True)


@pytest.mark.parametrize("operands", ["one", "three", "none"])
@pytest.mark.parametrize("operand_safs", [False, True])
@pytest.mark.parametrize("hyper", [False, True])
def test_operand_counts_other_than_two_give_identical_rows(operands: str, operand_safs: bool,
                                                           hyper: bool) -> None:
    """The compute classification for n != 2: without the operands' own optimizations every
    row is classified over the 3^n operand states; with them, the rows they reach keep their
    computes; n = 0 classifies nothing."""
    problem, arch = _problem(operands), _syn_arch()
    spec = _spec(problem, hyper)
    if not operand_safs:
        written = {ds.name for ds in problem.data_spaces if ds.read_write}
        spec = replace(spec, actions=tuple(a for a in spec.actions if a.target in written))
    rows = _rows(MapSpace(problem, arch, Constraints({})), 600, 7)
    fast, ref = _models(problem, arch, spec)
    r = _identical(fast, ref, rows, 20, min_valid_unchecked=60)
    sub = [a[r.valid] for a in rows]
    sd = ref.sparse.apply(ref.detail(*sub), *sub[:4])
    assert (sd.skipped.reshape(len(sd.skipped), -1) > 0).any(axis=1).sum() >= 20
    if operands == "none":
        assert (sd.actual_computes == problem.macs).all()
    else:
        assert (sd.actual_computes < problem.macs).sum() >= 20


def test_rows_whose_computes_all_go_give_identical_rows() -> None:
    """A skipped on B and Z, both of density 1e-6: where A's skipping acts on one-operation
    pieces, P(ineffectual) rounds every compute away (compute_cycles 0, cycles 0)."""
    from dse.model.density import DensityModel
    from dse.model.formats import RankFormat as F
    from dse.model.sparse import ActionOptimization as Opt
    from dse.model.sparse import SparseSpec

    fixed = functools.partial(DensityModel, "fixed_structured")
    spec = SparseSpec({"A": fixed(0.5), "B": fixed(1e-6), "Z": fixed(1e-6)},
                      {("GLB", "B"): (F("CP"),)},
                      (Opt("skipping", "RF", "A", ("B", "Z")),
                       Opt("gating", "GLB", "B", ("A", "Z"))), True, True)
    problem, arch = _problem("two"), _syn_arch()
    rows = _rows(MapSpace(problem, arch, Constraints({})), 800, 1)
    fast, ref = _models(problem, arch, spec)
    r = _identical(fast, ref, rows, 300)
    sub = [a[r.valid] for a in rows]
    sd = ref.sparse.apply(ref.detail(*sub), *sub[:4])
    assert (sd.compute_cycles == 0).sum() >= 100
    assert (r.cycles[r.valid] == 0).sum() >= 100


def test_a_dummy_level_gives_identical_rows() -> None:
    """A dummy level (no storage, spatial loops only) between DRAM and GLB."""
    from dse.arch.architecture import Architecture

    base = _syn_arch()
    dram, glb, rf = base.levels
    dummy = replace(glb, name="Dummy", depth=0, is_dummy=True, energy={}, attributes={},
                    read_bandwidth=None)
    arch = Architecture("dummy", (dram, dummy, glb, rf), base.compute)
    problem = _problem("two")
    rows = _rows(MapSpace(problem, arch, Constraints({})), 600, 2)
    fast, ref = _models(problem, arch, _spec(problem, hyper=True))
    assert ref.dummy.any()
    _identical(fast, ref, rows, 20)


@pytest.mark.parametrize("bounds", [{"M": 1, "N": 1, "K": 2}, {"M": 2, "N": 3, "K": 1},
                                    {"M": 1, "N": 2, "K": 5}])
def test_tiny_hypergeometric_problems_give_identical_rows(bounds) -> None:
    problem, arch = _problem("two", bounds), _syn_arch()
    rows = _rows(MapSpace(problem, arch, Constraints({})), 200, 3)
    fast, ref = _models(problem, arch, _spec(problem, hyper=True))
    _identical(fast, ref, rows, 10)


def test_an_empty_batch_gives_identical_empty_arrays() -> None:
    problem, arch = _problem("three"), _syn_arch()
    rows = _rows(MapSpace(problem, arch, Constraints({})), 5, 1)
    fast, ref = _models(problem, arch, _spec(problem))
    empty = tuple(a[:0] for a in rows)
    _assert_same(fast.evaluate(*empty), ref.evaluate(*empty), "empty batch")


# ------------------------------------------------------------------------ the on-disk cache
def test_compiled_functions_call_no_compiled_function_of_another_file() -> None:
    """numba's on-disk cache (cache=True) is invalidated by the defining file's timestamp
    only (numba docs, "Notes on Caching", limitations: a change to a symbol defined in
    another file is not recognized). A cached function that calls or inlines a compiled
    function of another file keeps that function's old code after it changes, so numba and
    numpy disagree (or agree on stale code) until the cache is cleared
    (test_the_compiled_step_follows_a_change_to_the_kernel_it_inlines)."""
    from numba.core.registry import CPUDispatcher

    from dse.mapper import kernel_numba as mapper_kernel
    from dse.model import kernel_numba

    crossing = []
    for mod in (kernel_numba, mapper_kernel):
        for name, obj in vars(mod).items():
            if not (isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == mod.__name__):
                continue
            for ref in obj.py_func.__code__.co_names:
                target = obj.py_func.__globals__.get(ref)
                if isinstance(target, CPUDispatcher) and \
                        target.py_func.__module__ != mod.__name__:
                    crossing.append(f"{mod.__name__}.{name} -> "
                                    f"{target.py_func.__module__}.{ref}")
    assert not crossing, "; ".join(crossing)


PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from dse.mapper.constraints import Constraints
from dse.mapper.mapspace import MapSpace
from dse.mapper.search import SearchConfig
from dse.model.sparse_batch import SparseBatchModel
from dse.pipeline.map import prepare
import dse
assert dse.__file__.startswith(sys.argv[1]), dse.__file__
spec, _ = prepare([sys.argv[2], sys.argv[3]], SearchConfig(seed=1))
space = MapSpace(spec.problem, spec.arch, Constraints({}))
rng = np.random.default_rng(4)
choice = space.sample_choices(400, rng)
T, SX, SY = space.factor_arrays(choice)
rows = (T, SX, SY, space.perms_random(T, rng), space.keep_random(400, rng))
out = [SparseBatchModel(spec.problem, spec.arch, spec.sparse, kernel=k).evaluate(*rows)
       for k in ("numba", "numpy")]
print(int(out[0].cycles[out[0].valid].sum()), int(out[1].cycles[out[1].valid].sum()))
"""


@pytest.mark.slow
def test_the_compiled_step_follows_a_change_to_the_kernel_it_inlines(tmp_path) -> None:
    """A copy of the package: evaluate (the cache is written), halve bandwidth_slowdown in
    kernel_numba.py (a change the numpy reference does not make, so the compiled step must
    now differ from it), evaluate again with the cache kept: the compiled sparse step must
    see the change. ~1 min (two cold compiles)."""
    pkg = tmp_path / "pkg"
    shutil.copytree(REPO / "dse", pkg / "dse",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    args = [sys.executable, str(probe), str(pkg),
            str(REPO / "arch_specs" / "tensor_core_2to4.yaml"),
            str(REPO / "tests" / "data" / "sparse_designs" / "conv_2to4.yaml")]
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "DSE_KERNEL")}

    def run() -> tuple[int, int]:
        res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
        assert res.returncode == 0, res.stderr
        numba_sum, numpy_sum = map(int, res.stdout.split()[-2:])
        return numba_sum, numpy_sum

    before = run()
    assert before[0] == before[1]
    src = pkg / "dse" / "model" / "kernel_numba.py"
    text = src.read_text()
    old = "        slow = min(slow, shared_bw / (rd + wd))\n    return slow\n"
    assert old in text
    src.write_text(text.replace(old, old.replace("return slow\n", "return slow * 0.5\n")))
    assert "return slow * 0.5" in src.read_text()
    after = run()
    assert after[1] == before[1]  # the numpy step does not use the kernel
    assert after[0] != after[1], "the compiled sparse step ran its cached, stale copy"
