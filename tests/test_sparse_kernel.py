"""The compiled sparse step against its numpy reference.

`SparseBatchModel(kernel="numba")` and `SparseBatchModel(kernel="numpy")` must give identical
BatchResult arrays (energy, cycles, valid, capacity_ok, fanout_ok, utilization, overflow):
the same bytes, the same dtypes, with and without the capacity check, on every row. Specs the
compiled step does not handle (banded densities) fall back to the numpy step on both kernels,
so they are identical too. The rows are random mappings of the unconstrained mapspace and,
where a design has constraints, the mapper's own rows (Searcher.random_block).

Cases: the library's sparse designs on the layers of tests/test_sparse_designs.py, the ARCHON
sparse baseline's hardware (eyeriss_like_72pe) with its pointwise weight density, the sparse
VGG bench case (dse/bench/run.py SPARSE_VGG), and small synthetic designs that exercise each
feature of the sparse step. Each case also checks, on the numpy step's SparseDetail, that its
rows really do what the case claims (gated / skipped counts, metadata, decompressions, rows
rejected by metadata storage), so no case passes on rows that never reach the feature.
"""

from __future__ import annotations

import functools
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from dse.mapper.constraints import Constraints
from dse.mapper.mapspace import MapSpace
from dse.mapper.search import SearchConfig
from dse.model.batch import BatchResult
from dse.model.sparse_batch import KINDS, SparseBatchModel, SparseDetail
from tests.test_sparse_batch import _rows

REPO = Path(__file__).resolve().parents[1]
ARCH = REPO / "arch_specs"
DESIGNS = REPO / "tests" / "data" / "sparse_designs"
READS, FILLS, UPDATES = (KINDS.index(k) for k in ("reads", "fills", "updates"))


@pytest.fixture(autouse=True)
def _needs_numba() -> None:
    from dse.model import kernel as kernels

    if not kernels.numba_available():
        pytest.skip("numba not installed")


# ------------------------------------------------------------------------ helpers
def _models(problem, arch, sparse, links=None) -> tuple[SparseBatchModel, SparseBatchModel]:
    fast, ref = (SparseBatchModel(problem, arch, sparse, link_transfers=links, kernel=k)
                 for k in ("numba", "numpy"))
    assert (fast.kernel, ref.kernel) == ("numba", "numpy")
    return fast, ref


def _assert_same(a: BatchResult, b: BatchResult, what: str) -> None:
    """Every array of `a` has the bytes, dtype and shape of `b`'s; on a difference the
    message names the first rows that differ and their values."""
    for f in fields(a):
        x, y = np.asarray(getattr(a, f.name)), np.asarray(getattr(b, f.name))
        assert x.dtype == y.dtype and x.shape == y.shape, (
            f"{what}: {f.name} {x.dtype}{x.shape} vs {y.dtype}{y.shape}")
        if x.tobytes() == y.tobytes():
            continue
        same = (x == y) & (np.signbit(x) == np.signbit(y)) if x.dtype.kind == "f" else x == y
        if x.dtype.kind == "f":
            same |= np.isnan(x) & np.isnan(y)
        bad = np.nonzero(~same.reshape(len(x), -1).all(axis=1))[0]
        shown = ", ".join(f"row {r}: numba {x[r]!r} numpy {y[r]!r}" for r in bad[:4])
        pytest.fail(f"{what}: {f.name} differs on {len(bad)} of {len(x)} rows; {shown}")


def _identical(fast: SparseBatchModel, ref: SparseBatchModel, rows, min_valid: int,
               min_valid_unchecked: int | None = None) -> BatchResult:
    """Both kernels on `rows`, with and without the capacity check: identical arrays, and at
    least `min_valid` valid rows (capacity checked) so the comparison is not vacuous. Returns
    the numpy kernel's result with the capacity check."""
    out = {}
    for check in (True, False):
        a = fast.evaluate(*rows, check_capacity=check)
        b = ref.evaluate(*rows, check_capacity=check)
        _assert_same(a, b, f"check_capacity={check}")
        out[check] = b
    assert out[True].valid.sum() >= min_valid, out[True].valid.sum()
    if min_valid_unchecked is not None:
        assert out[False].valid.sum() >= min_valid_unchecked, out[False].valid.sum()
    return out[True]


def _detail(ref: SparseBatchModel, rows, mask) -> SparseDetail:
    """The numpy sparse step's detail of the rows in `mask` (what the case claims to use)."""
    sub = [a[mask] for a in rows]
    return ref.sparse.apply(ref.detail(*sub), *sub[:4])


def _concat(*blocks):
    return tuple(np.concatenate([b[k].astype(blocks[0][k].dtype) for b in blocks])
                 for k in range(5))


def _searcher_rows(searcher, n: int, blocks: int = 1):
    """The mapper's own rows: random blocks of the searcher's (constrained) mapspace."""
    out = []
    for j in range(blocks):
        choice, perm, keep, (T, SX, SY) = searcher.random_block(j, n, with_factors=True)
        out.append((T, SX, SY, perm, keep))
    return _concat(*out)


def _level(ref: SparseBatchModel, name: str) -> int:
    return ref.sparse.level_index[name]


def _tensor(ref: SparseBatchModel, name: str) -> int:
    return ref.sparse.tensor_index[name]


# ------------------------------------------------------------------------ library designs
def _prepare(files):
    from dse.pipeline.map import prepare

    return prepare([str(f) for f in files], SearchConfig(seed=5))


def _v1_sparse(ref, sd, r, rows) -> None:
    """eyeriss_v1_sparse: Weights gated at weights_spad, Outputs (read_write) gated at
    psum_spad, Inputs and Outputs kept RLE at DRAM (flattened ranks) and decompressed into
    shared_glb."""
    w, o, i = (_tensor(ref, t) for t in ("Weights", "Outputs", "Inputs"))
    assert (sd.gated[:, _level(ref, "weights_spad"), w, READS] > 0).sum() >= 20
    assert (sd.gated[:, _level(ref, "psum_spad"), o, READS] > 0).sum() >= 20
    assert (sd.metadata[:, _level(ref, "DRAM"), i] > 0).any(axis=(1, 2, 3, 4)).sum() >= 20
    assert (sd.decompressions[:, _level(ref, "shared_glb"), i] > 0).sum() >= 20


def _v2(ref, sd, r, rows, md_rejects: int = 0) -> None:
    """eyeriss_v2: skipping (Weights on Inputs, Outputs on both operands), compute skipping,
    UOP/RLE at four (level, tensor)s; on conv3, iact_spad's metadata storage rejects rows
    whose words fit."""
    w, o = (_tensor(ref, t) for t in ("Weights", "Outputs"))
    words_ok, _ = ref.word_capacity(rows[0], rows[1], rows[2], rows[4])
    assert (r.fanout_ok & words_ok & ~r.capacity_ok).sum() >= md_rejects
    assert (sd.skipped[:, _level(ref, "weight_spad"), w, READS] > 0).sum() >= 20
    assert (sd.skipped[:, :, o] > 0).any(axis=(1, 2)).sum() >= 20
    assert (sd.skipped_computes > 0).sum() >= 20
    for lv in ("iact_spad", "weight_spad"):
        assert (sd.metadata[:, _level(ref, lv)] > 0).any(axis=(1, 2, 3, 4, 5)).sum() >= 20


def _tensor_core(ref, sd, r, rows) -> None:
    """tensor_core_2to4: 2:4 Weights CP at three levels, Inputs skipped at registers."""
    w, i = (_tensor(ref, t) for t in ("Weights", "Inputs"))
    assert (sd.skipped[:, _level(ref, "registers"), i, READS] > 0).sum() >= 20
    for lv in ("DRAM", "smem", "registers"):
        assert (sd.metadata[:, _level(ref, lv), w] > 0).any(axis=(1, 2, 3, 4)).sum() >= 20
    kept = sd.keep[:, _level(ref, "smem"), w]
    assert (sd.occupancy[kept, _level(ref, "smem"), w] > 0).all()


DESIGN_CASES = {
    # (arch, layer, unconstrained rows, constrained rows, min valid, exercised)
    "eyeriss_v1_sparse-alexnet_conv3": ("eyeriss_v1_sparse", "alexnet_pruned_conv3.yaml",
                                        1500, 1500, 300, _v1_sparse),
    "eyeriss_v2-alexnet_conv3": ("eyeriss_v2", "alexnet_pruned_conv3.yaml", 1500, 1500, 150,
                                 functools.partial(_v2, md_rejects=40)),
    "eyeriss_v2-mobilenet05_L27_hypergeometric": ("eyeriss_v2", "mobilenet05_sparse_L27.yaml",
                                                  1500, 1500, 300, _v2),
    "tensor_core_2to4-conv_2to4": ("tensor_core_2to4", "conv_2to4.yaml", 1500, 0, 300,
                                   _tensor_core),
}


@pytest.mark.parametrize("case", list(DESIGN_CASES))
def test_library_sparse_designs_give_identical_rows(case: str) -> None:
    """The library's sparse designs on the layers of tests/test_sparse_designs.py: random
    rows of the unconstrained mapspace and the mapper's rows of the design's constraints."""
    arch, layer, n_free, n_cons, min_valid, exercised = DESIGN_CASES[case]
    files = [ARCH / f"{arch}.yaml"]
    if (ARCH / f"{arch}.constraints.yaml").exists():
        files.append(ARCH / f"{arch}.constraints.yaml")
    spec, searcher = _prepare([*files, DESIGNS / layer])
    assert spec.sparse is not None and not spec.sparse.is_dense
    space = MapSpace(spec.problem, spec.arch, Constraints({}))
    blocks = [_rows(space, n_free, 13)]
    if n_cons:
        blocks.append(_searcher_rows(searcher, n_cons))
    rows = _concat(*blocks)
    fast, ref = _models(spec.problem, spec.arch, spec.sparse)
    r = _identical(fast, ref, rows, min_valid)
    sd = _detail(ref, rows, r.valid)
    exercised(ref, sd, r, rows)
    if "hypergeometric" in case:
        assert {d.distribution for d in spec.sparse.densities.values()} == {"hypergeometric"}


def test_archon_sparse_baseline_hardware_gives_identical_rows() -> None:
    """The ARCHON study's sparse baseline is eyeriss_like_72pe with pruned weights (arch_specs/
    archon/archon.yaml); its cycles come from per-PE nonzero tables (dse.model.actual_density),
    not from the sparse step. What the sparse step would see of it: a pointwise layer of the
    MobileNet baseline with Weights at the study's pointwise density 0.20 and nothing else (a
    density without formats or optimizations changes no count) on the same hardware."""
    from dse.model.density import DensityModel
    from dse.model.sparse import SparseSpec
    from dse.pipeline.spec import load_arch
    from dse.spec.workload_library import load_workload

    arch = load_arch([str(ARCH / "eyeriss_like_72pe.yaml")]).arch
    problem = load_workload("archon_mobilenet_cifar10_baseline").layer("b1.PW2").problem
    sparse = SparseSpec({"Weights": DensityModel("fixed_structured", 0.20)})
    space = MapSpace(problem, arch, Constraints({}))
    rows = _rows(space, 2000, 17)
    fast, ref = _models(problem, arch, sparse)
    r = _identical(fast, ref, rows, 200)
    sd = _detail(ref, rows, r.valid)
    assert not sd.gated.any() and not sd.skipped.any()
    np.testing.assert_array_equal(sd.actual, sd.algorithmic)


@pytest.mark.parametrize("links", [None, True])
def test_sparse_vgg_bench_case_gives_identical_rows(tmp_path, links) -> None:
    """The bench's sparse VGG layer (Eyeriss-like, RLE Inputs at ifmap_spad, Weights and
    Outputs gated on Inputs) on the mapper's rows of eyeriss_like.constraints.yaml, as
    bench_mapper draws them; with the exact link-transfer walk too."""
    from dse.bench.run import EYERISS, SPARSE_VGG, _bundled

    layer = tmp_path / "vgg02_conv5_sparse.yaml"
    layer.write_text(SPARSE_VGG)
    spec, searcher = _prepare([_bundled(f) for f in EYERISS] + [layer])
    rows = _searcher_rows(searcher, 2048, blocks=2)
    fast, ref = _models(spec.problem, spec.arch, spec.sparse, links)
    r = _identical(fast, ref, rows, 1000)
    if links:  # some rows take the numpy passes' exact link-transfer walk
        from dse.model import kernel as kernels

        assert kernels.run_kernel(fast._kernel_consts, *rows, every_row=True)["exact"].any()
    sd = _detail(ref, rows, r.valid)
    w, o, i = (_tensor(ref, t) for t in ("Weights", "Outputs", "Inputs"))
    assert (sd.gated[:, _level(ref, "weights_spad"), w, READS] > 0).sum() >= 100
    assert (sd.gated[:, _level(ref, "psum_spad"), o, READS] > 0).sum() >= 100
    spad = _level(ref, "ifmap_spad")
    assert (sd.metadata[:, spad, i] > 0).any(axis=(1, 2, 3, 4)).sum() >= 100
    assert (sd.occupancy[:, spad, i] < ref.detail(*(a[r.valid] for a in rows)).size[:, spad, i]
            ).sum() >= 100


def test_the_comparison_sees_one_ulp_and_a_sign() -> None:
    """_assert_same is byte-exact: one ulp of energy, -0.0 for 0.0 utilization, or an int32
    copy of the cycles fail it."""
    from dataclasses import replace

    n = 4
    base = BatchResult(np.array([1.5, np.inf, 2.0, 3.0]), np.arange(n, dtype=np.int64),
                       np.ones(n, dtype=bool), np.ones(n, dtype=bool), np.ones(n, dtype=bool),
                       np.zeros(n), np.zeros((n, 2), dtype=np.int64))
    _assert_same(base, replace(base), "copy")
    bumped = base.energy_pJ.copy()
    bumped[2] = np.nextafter(bumped[2], np.inf)
    for other in (replace(base, energy_pJ=bumped),
                  replace(base, utilization=-base.utilization),
                  replace(base, cycles=base.cycles.astype(np.int32))):
        with pytest.raises((AssertionError, pytest.fail.Exception)):
            _assert_same(other, base, "changed")
