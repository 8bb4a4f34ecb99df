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
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse.mapper.constraints import Constraints
from dse.mapper.mapspace import MapSpace
from dse.mapper.search import SearchConfig
from dse.model.batch import BatchResult
from dse.model.sparse_batch import KINDS, SparseBatchModel, SparseDetail
from tests.test_sparse_batch import _matmul_design, _rows, _spec, designs

REPO = Path(__file__).resolve().parents[1]
ARCH = REPO / "arch_specs"
DESIGNS = REPO / "tests" / "data" / "sparse_designs"
READS = KINDS.index("reads")


@pytest.fixture(autouse=True)
def _needs_numba() -> None:
    from dse.model import kernel as kernels

    if not kernels.numba_available():
        pytest.skip("numba not installed")


# ------------------------------------------------------------------------ helpers
def _models(problem, arch, sparse, links=None, placement=None
            ) -> tuple[SparseBatchModel, SparseBatchModel]:
    fast, ref = (SparseBatchModel(problem, arch, sparse, link_transfers=links,
                                  placement=placement, kernel=k) for k in ("numba", "numpy"))
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
        if x.dtype.kind == "f":
            both = np.isfinite(x) & np.isfinite(y) & ~same
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.abs(x[both] - y[both]) / np.abs(y[both])
            shown += f"; largest relative difference {rel.max() if rel.size else np.nan:.3g}"
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


def _rows_with(what) -> int:
    """Rows where `what` (B, ...) is nonzero somewhere."""
    what = np.asarray(what)
    return int((what.reshape(len(what), -1) != 0).any(axis=1).sum())


def _codec_rejected(r: BatchResult) -> int:
    return int((r.fanout_ok & r.capacity_ok & ~r.valid).sum())


def _metadata_rejected(ref, r: BatchResult, rows) -> int:
    words_ok, _ = ref.word_capacity(rows[0], rows[1], rows[2], rows[4])
    return int((r.fanout_ok & words_ok & ~r.capacity_ok).sum())


def _vector_corrected(ref, sd: SparseDetail, rows, mask, level: str, tensor: str) -> int:
    """Rows whose compressed tile's vector accesses take the VECTOR_WIDTH_THRESHOLDS
    correction (a ratio other than 1)."""
    sub = [a[mask] for a in rows]
    size = ref.detail(*sub).size
    ratio = ref.sparse._vector_ratio(size, _level(ref, level), _tensor(ref, tensor))
    return int((ratio != 1.0).sum())


# ------------------------------------------------------------------------ library designs
def _prepare(files):
    from dse.pipeline.map import prepare

    return prepare([str(f) for f in files], SearchConfig(seed=5))


def _v1_sparse(ref, sd, r, rows) -> None:
    """eyeriss_v1_sparse: Weights gated at weights_spad, Outputs (read_write) gated at
    psum_spad, Inputs and Outputs kept RLE at DRAM (flattened ranks) and decompressed into
    shared_glb."""
    w, o, i = (_tensor(ref, t) for t in ("Weights", "Outputs", "Inputs"))
    glb = _level(ref, "shared_glb")
    assert (sd.gated[:, _level(ref, "weights_spad"), w, READS] > 0).sum() >= 400
    assert (sd.gated[:, _level(ref, "psum_spad"), o, READS] > 0).sum() >= 400
    for t in (i, o):
        assert _rows_with(sd.metadata[:, _level(ref, "DRAM"), t]) >= 400
    assert (sd.decompressions[:, glb, i] > 0).sum() >= 400
    assert (sd.decompressions[:, glb, o] > 0).sum() >= 250
    assert _codec_rejected(r) >= 15  # rows where a level without a codec would need one


def _v2(ref, sd, r, rows, md_rejects: int = 0) -> None:
    """eyeriss_v2: skipping (Weights on Inputs, Outputs on both operands), compute skipping,
    UOP/RLE at four (level, tensor)s; on conv3, iact_spad's metadata storage rejects rows
    whose words fit."""
    w, o = (_tensor(ref, t) for t in ("Weights", "Outputs"))
    words_ok, _ = ref.word_capacity(rows[0], rows[1], rows[2], rows[4])
    assert (r.fanout_ok & words_ok & ~r.capacity_ok).sum() >= md_rejects
    assert (sd.skipped[:, _level(ref, "weight_spad"), w, READS] > 0).sum() >= 200
    assert (sd.skipped[:, _level(ref, "psum_spad"), o, READS] > 0).sum() >= 200
    assert (sd.skipped_computes > 0).sum() >= 200
    for lv in ("iact_spad", "weight_spad"):
        assert _rows_with(sd.metadata[:, _level(ref, lv)]) >= 200


def _tensor_core(ref, sd, r, rows) -> None:
    """tensor_core_2to4: 2:4 Weights CP at three levels, Inputs skipped at registers."""
    w, i = (_tensor(ref, t) for t in ("Weights", "Inputs"))
    assert (sd.skipped[:, _level(ref, "registers"), i, READS] > 0).sum() >= 300
    for lv, least in (("DRAM", 600), ("smem", 300), ("registers", 300)):
        assert _rows_with(sd.metadata[:, _level(ref, lv), w]) >= least
    smem = _level(ref, "smem")
    size = ref.detail(*(a[r.valid] for a in rows)).size[:, smem, w]
    kept = sd.keep[:, smem, w]
    assert kept.sum() >= 300
    assert (sd.occupancy[kept, smem, w] == -(-size[kept] // 2)).all()  # 2:4: half the tile


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
    assert (sd.gated[:, _level(ref, "weights_spad"), w, READS] > 0).sum() >= 1000
    assert (sd.gated[:, _level(ref, "psum_spad"), o, READS] > 0).sum() >= 1000
    spad = _level(ref, "ifmap_spad")
    assert _rows_with(sd.metadata[:, spad, i]) >= 1000
    assert (sd.occupancy[:, spad, i] < ref.detail(*(a[r.valid] for a in rows)).size[:, spad, i]
            ).sum() >= 1000  # RLE: compressed tiles


def test_the_comparison_sees_one_ulp_and_a_sign() -> None:
    """_assert_same is byte-exact: one ulp of energy, -0.0 for 0.0 utilization, or an int32
    copy of the cycles fail it."""
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


# ------------------------------------------------------------------------ synthetic designs
def _syn_arch():
    """DRAM -> GLB (128 words in rows of 4, 6 x 8 bits of metadata storage, decompresses and
    compresses) -> 4 RFs (12 words, no codecs) -> 4 MACs; every gated / skipped / metadata /
    codec action has its own energy."""
    from dse.arch.architecture import Architecture, ComputeLevel
    from tests.test_mapper import _energy
    from tests.test_mapper import _level as storage

    dram = storage("DRAM", 1, 1, None, read=100, write=100, metadata_read=40,
                   metadata_write=40)
    glb = replace(storage("GLB", 1, 1, 32, block=4, rbw=4, read=8, write=9, update=9.5,
                          leak=0.05, gated_read=1, gated_write=1.2, skipped_read=0.1,
                          metadata_read=2, metadata_write=2.5, gated_metadata_read=0.2,
                          decompression_count=0.3, compression_count=0.4),
                  attributes={"decompression_supported": True, "compression_supported": True,
                              "metadata_storage_depth": 6, "metadata_storage_width": 8})
    rf = storage("RF", 4, 1, 12, rbw=2, read=0.5, write=0.6, update=0.7, leak=0.01,
                 gated_read=0.05, gated_update=0.06, metadata_read=0.2, metadata_write=0.25)
    mac = ComputeLevel("MAC", 4, 4, 1, energy=_energy(compute=1.0, gated_compute=0.1,
                                                      skipped_compute=0.02))
    return Architecture("sparse_kernel_syn", (dram, glb, rf), mac)


def _syn_problem(bits: bool = False):
    """matmul M 8, N 4, K 8 (A[M, K], B[K, N], Z[M, N]); `bits`: A and B 4-bit, Z 16-bit
    words on 8-bit levels."""
    from tests.test_walker_vs_model import make_problem

    problem = make_problem("matmul", {"M": 8, "N": 4, "K": 8})
    if not bits:
        return problem
    return replace(problem, data_spaces=tuple(
        replace(ds, word_bits=b) for ds, b in zip(problem.data_spaces, (4, 4, 16), strict=True)))


def _syn_spec(name: str):
    from dse.model.density import DensityModel, banded
    from dse.model.formats import RankFormat as F
    from dse.model.sparse import ActionOptimization as Opt
    from dse.model.sparse import SparseSpec

    fixed = functools.partial(DensityModel, "fixed_structured")
    if name == "hypergeometric_skipping":
        return SparseSpec(
            {"A": DensityModel("hypergeometric", 0.25, 64),
             "B": DensityModel("hypergeometric", 0.5, 32)},
            {("DRAM", "A"): (F("UOP", ("M",)), F("CP", ("K",))),  # flattened_rankIDs
             ("GLB", "A"): (F("UOP"), F("RLE")), ("GLB", "B"): (F("B"),),
             ("DRAM", "B"): (F("RLE"),)},
            (Opt("skipping", "RF", "A", ("B",)), Opt("skipping", "RF", "B", ("A",))),
            compute_skipping=True)
    if name == "fixed_structured_gating":
        return SparseSpec(
            {"A": fixed(0.5), "B": fixed(0.75), "Z": fixed(0.6)},
            {("GLB", "A"): (F("UOP"), F("CP")), ("GLB", "B"): (F("UB"),),
             ("DRAM", "Z"): (F("RLE"),)},
            (Opt("gating", "RF", "A", ("B",)), Opt("gating", "RF", "Z", ("A", "B"))),
            compute_gating=True)
    if name == "banded":  # Sparseloop refuses formats on a banded tensor; B has one
        return SparseSpec(
            {"A": banded(8, 1), "B": fixed(0.5)}, {("GLB", "B"): (F("B"),)},
            (Opt("skipping", "RF", "B", ("A",)), Opt("gating", "GLB", "Z", ("A",))),
            compute_skipping=True)
    if name == "stacked":
        return SparseSpec(
            {"A": fixed(0.375), "B": DensityModel("hypergeometric", 0.5, 32), "Z": fixed(0.5)},
            {("GLB", "B"): (F("CP"),), ("RF", "B"): (F("CP"),), ("GLB", "A"): (F("B"),),
             ("RF", "A"): (F("B"),)},
            (Opt("skipping", "GLB", "B", ("A",)), Opt("gating", "RF", "B", ("A",)),
             Opt("skipping", "RF", "B", ("Z",)), Opt("gating", "GLB", "A", ("B",)),
             Opt("skipping", "DRAM", "Z", ("A",))),
            compute_gating=True, compute_skipping=True)
    raise KeyError(name)


def _ex_hypergeometric_skipping(ref, sd, r, rows) -> None:
    """Hypergeometric A and B, each skipped on the other (declared at RF, which no valid row
    lets keep A: it would have to decompress A from its compressed parent and cannot, so the
    skipping lands on GLB or DRAM), compute skipping, formats B, UOP+RLE, flattened UOP+CP;
    GLB's metadata storage and RF's missing decompression reject rows; GLB's 4-word rows take
    the vector correction."""
    a, b = _tensor(ref, "A"), _tensor(ref, "B")
    rf, glb, dram = (_level(ref, x) for x in ("RF", "GLB", "DRAM"))
    assert all(d.distribution == "hypergeometric" for d in ref.sparse.dens[:2])
    both = (sd.skipped[:, :, a] > 0).any(axis=(1, 2)) & (sd.skipped[:, :, b] > 0).any(axis=(1, 2))
    assert both.sum() >= 200
    assert (sd.skipped_computes > 0).sum() >= 50
    h = sd.holder[(a, 0)]
    assert ((h >= 0) & (h < rf)).sum() >= 200 and not (h == rf).any()
    for lv, t, least in ((dram, a, 200), (glb, a, 10), (glb, b, 100)):
        assert _rows_with(sd.metadata[:, lv, t]) >= least
    assert _metadata_rejected(ref, r, rows) >= 500
    assert _codec_rejected(r) >= 500
    assert _vector_corrected(ref, sd, rows, r.valid, "GLB", "A") >= 10
    assert _vector_corrected(ref, sd, rows, r.valid, "GLB", "B") >= 80


def _ex_fixed_structured_gating(ref, sd, r, rows) -> None:
    """fixed_structured A, B, Z; A gated on B declared at RF, acting there or (RF bypassing A)
    at the next outer keeper; Z (read_write) gated at RF; compute gating; UOP+CP and UB at
    GLB; Z RLE at DRAM, decompressed and compressed by GLB (supported) and refused at RF."""
    a, z = _tensor(ref, "A"), _tensor(ref, "Z")
    rf, glb = _level(ref, "RF"), _level(ref, "GLB")
    h = sd.holder[(a, 0)]
    assert (h == rf).sum() >= 50 and ((h >= 0) & (h < rf)).sum() >= 50
    assert (sd.gated[h == rf, rf, a, READS] > 0).sum() >= 20
    assert (sd.gated[(h >= 0) & (h < rf), :, a, READS] > 0).any(axis=1).sum() >= 20
    assert (sd.gated[:, rf, z, READS] > 0).sum() >= 20
    assert (sd.gated_computes > 0).sum() >= 50
    assert (sd.decompressions[:, glb, z] > 0).sum() >= 20
    assert (sd.compressions[:, glb, z] > 0).sum() >= 20
    assert _codec_rejected(r) >= 100
    assert _metadata_rejected(ref, r, rows) >= 300


def _ex_banded(ref, sd, r, rows) -> None:
    """Banded A (the compiled step's fallback): B skipped on A at RF, Z gated on A at GLB."""
    a, b, z = (_tensor(ref, t) for t in ("A", "B", "Z"))
    assert ref.sparse.dens[a].distribution == "banded"
    assert not ref.sparse.compilable  # both kernels run the numpy step here
    assert _rows_with(sd.skipped[:, :, b]) >= 50
    assert _rows_with(sd.gated[:, :, z]) >= 50
    assert (sd.skipped_computes > 0).sum() >= 50


def _ex_stacked(ref, sd, r, rows) -> None:
    """B skipped at GLB and gated at RF (RF sees what GLB already filtered), two optimizations
    of B at RF (the first one's kind acts), compressed B at GLB and RF (no codec), bitmask A
    at two levels, Z skipped at DRAM, compute gating and skipping together."""
    b = _tensor(ref, "B")
    rf, glb = _level(ref, "RF"), _level(ref, "GLB")
    both = (sd.skipped[:, glb, b, READS] > 0) & (sd.gated[:, rf, b, READS] > 0)
    assert both.sum() >= 20
    assert (sd.holder[(b, 1)] == sd.holder[(b, 2)]).all()
    assert not sd.skipped[sd.holder[(b, 1)] == rf, rf, b].any()
    assert not sd.decompressions.any()
    assert (sd.gated_computes > 0).sum() >= 50 and (sd.skipped_computes > 0).sum() >= 50
    assert _metadata_rejected(ref, r, rows) >= 300


def _ex_placed(ref, sd, r, rows) -> None:
    """The stacked spec with Z backed at GLB: DRAM keeps no Z, so Z's skipping declared at
    DRAM has no keeper to act at; the other optimizations still act."""
    b, z = _tensor(ref, "B"), _tensor(ref, "Z")
    dram = _level(ref, "DRAM")
    assert not sd.keep[:, dram, z].any() and (sd.holder[(z, 4)] == -1).all()
    assert not sd.skipped[:, :, z].any()
    assert _rows_with(sd.skipped[:, :, b]) >= 50 and _rows_with(sd.gated[:, :, b]) >= 20
    assert (sd.gated_computes > 0).sum() >= 20 and (sd.skipped_computes > 0).sum() >= 20


SYN_CASES = {
    # name: (spec, bits, rows, min valid with the capacity check, exercised)
    "hypergeometric_skipping": ("hypergeometric_skipping", False, 3000, 300,
                                _ex_hypergeometric_skipping),
    "fixed_structured_gating": ("fixed_structured_gating", False, 1500, 300,
                                _ex_fixed_structured_gating),
    "banded_numpy_fallback": ("banded", False, 1500, 600, _ex_banded),
    "stacked_optimizations": ("stacked", False, 1500, 500, _ex_stacked),
    "bits-hypergeometric_skipping": ("hypergeometric_skipping", True, 3000, 300,
                                     _ex_hypergeometric_skipping),
    "bits-fixed_structured_gating": ("fixed_structured_gating", True, 1500, 300,
                                     _ex_fixed_structured_gating),
    # Z backed at GLB (DRAM holds none of it): its RLE at DRAM is never used, the rows
    # whose temporal loops above GLB walk M or N are invalid
    "placement-stacked_optimizations": ("stacked", False, 3000, 150, _ex_placed,
                                        {"Z": "GLB"}),
}


@pytest.mark.parametrize("case", list(SYN_CASES))
def test_synthetic_sparse_features_give_identical_rows(case: str) -> None:
    """Small matmuls on a three-level design, each spec exercising a set of the sparse step's
    features (checked on the numpy step's detail of the valid rows)."""
    spec_name, bits, n, min_valid, exercised, *placement = SYN_CASES[case]
    problem, arch, sparse = _syn_problem(bits), _syn_arch(), _syn_spec(spec_name)
    rows = _rows(MapSpace(problem, arch, Constraints({})), n, 3)
    fast, ref = _models(problem, arch, sparse, placement=placement[0] if placement else None)
    assert ref.placed_inside == bool(placement)
    assert ref.has_bits == bits
    # every case but the banded one runs the compiled step on the numba side
    assert fast.sparse.compilable == (spec_name != "banded")
    if bits:  # GLB's 32-bit rows carry 8 words of A and B, 2 of Z (vector tables 8 and 2)
        assert ref.block_t[_level(ref, "GLB")].tolist() == [8, 8, 2]
    r = _identical(fast, ref, rows, min_valid, min_valid_unchecked=min_valid)
    exercised(ref, _detail(ref, rows, r.valid), r, rows)


# ------------------------------------------------------------------------ random specs
KEYS = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


@KEYS
@given(designs())
def test_small_random_designs_give_identical_rows(design) -> None:
    """tests/test_sparse_batch.py's small matmul designs (fixed_structured densities, one
    format per operand, one optimization, compute gating or skipping), both kinds."""
    m, n, k, dens, fmt_a, fmt_b, saf, level, seed, comp = design
    problem, arch = _matmul_design(m, n, k)
    rows = _rows(MapSpace(problem, arch, Constraints({})), 64, seed)
    for kind in ("gating", "skipping"):
        fast, ref = _models(problem, arch, _spec(dens, fmt_a, fmt_b, saf, level, kind, comp))
        _identical(fast, ref, rows, 10, min_valid_unchecked=10)


SYN_FORMATS = (None, ("UOP",), ("CP",), ("RLE",), ("B",), ("UB",), ("UOP", "CP"),
               ("UOP", "RLE"), ("UB", "B"), "flattened")


@st.composite
def syn_specs(draw):
    """A sparse spec for the synthetic design: each tensor fixed_structured or
    hypergeometric, any format (or none) at each (level, tensor), up to four gating/skipping
    optimizations on any level, compute gating and skipping, 8-bit or narrower words."""
    from dse.model.density import DensityModel
    from dse.model.formats import RankFormat
    from dse.model.sparse import ActionOptimization, SparseSpec

    sizes = {"A": 64, "B": 32, "Z": 32}
    dims = {"A": ("M", "K"), "B": ("K", "N"), "Z": ("M", "N")}
    densities = {}
    for t in ("A", "B", "Z"):
        d = draw(st.sampled_from([0.125, 0.25, 0.4, 0.5, 0.75, 1.0]))
        dist = draw(st.sampled_from(["fixed_structured", "hypergeometric"]))
        densities[t] = DensityModel(dist, d, sizes[t] if dist == "hypergeometric" else 0)
    formats = {}
    for lv in ("DRAM", "GLB", "RF"):
        for t in ("A", "B", "Z"):
            f = draw(st.sampled_from(SYN_FORMATS))
            if f == "flattened":
                formats[(lv, t)] = (RankFormat("UOP", dims[t][:1]), RankFormat("CP", dims[t][1:]))
            elif f is not None:
                formats[(lv, t)] = tuple(RankFormat(x) for x in f)
    actions = []
    for _ in range(draw(st.integers(0, 4))):
        target = draw(st.sampled_from(["A", "B", "Z"]))
        others = [t for t in ("A", "B", "Z") if t != target]
        cond = draw(st.sampled_from([(others[0],), (others[1],), tuple(others)]))
        actions.append(ActionOptimization(draw(st.sampled_from(["gating", "skipping"])),
                                          draw(st.sampled_from(["DRAM", "GLB", "RF"])),
                                          target, cond))
    return (SparseSpec(densities, formats, tuple(actions), draw(st.booleans()),
                       draw(st.booleans())),
            draw(st.booleans()), draw(st.integers(0, 10_000)))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(syn_specs())
def test_random_specs_on_the_synthetic_design_give_identical_rows(drawn) -> None:
    """Random combinations of densities, formats and optimizations on the three-level
    synthetic design, with and without per-tensor word bits."""
    sparse, bits, seed = drawn
    problem, arch = _syn_problem(bits), _syn_arch()
    rows = _rows(MapSpace(problem, arch, Constraints({})), 400, seed)
    fast, ref = _models(problem, arch, sparse)
    _identical(fast, ref, rows, 10, min_valid_unchecked=20)


# ------------------------------------------------------------------------ batch independence
def _split_equals_whole(model: SparseBatchModel, rows) -> None:
    """A row's result does not depend on its batch: the whole batch, the batch cut in two,
    the batch reversed and a few rows alone all give each row the same bytes."""
    n = len(rows[0])
    for check in (True, False):
        whole = model.evaluate(*rows, check_capacity=check)
        cut = n // 3 + 1
        parts = [model.evaluate(*(a[s] for a in rows), check_capacity=check)
                 for s in (slice(0, cut), slice(cut, n))]
        joined = BatchResult(*(np.concatenate([getattr(p, f.name) for p in parts])
                               for f in fields(whole)))
        _assert_same(joined, whole, f"cut at {cut}, check_capacity={check}")
        back = model.evaluate(*(a[::-1] for a in rows), check_capacity=check)
        _assert_same(BatchResult(*(getattr(back, f.name)[::-1] for f in fields(whole))), whole,
                     f"reversed, check_capacity={check}")
        for b in np.nonzero(whole.valid)[0][:8]:
            one = model.evaluate(*(a[b:b + 1] for a in rows), check_capacity=check)
            _assert_same(one, BatchResult(*(getattr(whole, f.name)[b:b + 1]
                                            for f in fields(whole))), f"row {b} alone")


@pytest.mark.parametrize("case", ["hypergeometric_skipping", "fixed_structured_gating",
                                  "stacked", "banded"])
def test_a_row_does_not_depend_on_its_batch_synthetic(case: str) -> None:
    problem, arch = _syn_problem(case == "fixed_structured_gating"), _syn_arch()
    rows = _rows(MapSpace(problem, arch, Constraints({})), 1200, 21)
    fast = SparseBatchModel(problem, arch, _syn_spec(case), kernel="numba")
    assert fast.kernel == "numba"
    _split_equals_whole(fast, rows)


def test_a_row_does_not_depend_on_its_batch_sparse_vgg(tmp_path) -> None:
    from dse.bench.run import EYERISS, SPARSE_VGG, _bundled

    layer = tmp_path / "vgg02_conv5_sparse.yaml"
    layer.write_text(SPARSE_VGG)
    spec, searcher = _prepare([_bundled(f) for f in EYERISS] + [layer])
    fast = SparseBatchModel(spec.problem, spec.arch, spec.sparse, kernel="numba")
    _split_equals_whole(fast, _searcher_rows(searcher, 1500))


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_capacity_with_word_bits_counts_bits_as_the_dense_model(kernel: str) -> None:
    """With per-tensor word widths (A, B 4-bit, Z 16-bit on 8-bit levels) and nothing sparse,
    the sparse model's capacity check is the dense one: the same rows fit and the same words
    are over, on both kernels; the one-mapping check refuses exactly the rows the dense
    check refuses. (It used to count words, letting through tiles whose bits overflow.)"""
    from dse.model import evaluate
    from dse.model.batch import BatchModel
    from dse.model.evaluate import MappingError
    from dse.model.sparse import SparseSpec, check_sparse_capacity, sparse_evaluate

    problem, arch = _syn_problem(True), _syn_arch()
    space = MapSpace(problem, arch, Constraints({}))
    rows = _rows(space, 1500, 4)
    sparse = SparseBatchModel(problem, arch, SparseSpec(), kernel=kernel).evaluate(*rows)
    dense = BatchModel(problem, arch, kernel=kernel).evaluate(*rows)
    assert np.array_equal(sparse.capacity_ok, dense.capacity_ok)
    assert np.array_equal(sparse.overflow, dense.overflow)
    words = SparseBatchModel(_syn_problem(False), arch, SparseSpec(), kernel=kernel)
    by_words = words.evaluate(*rows).capacity_ok
    differ = np.nonzero(by_words != dense.capacity_ok)[0]
    assert len(differ) >= 20  # counting words would have accepted these rows
    for b in differ[:15]:
        m = space.to_mapping(*(a[b] for a in rows))
        ev = evaluate(problem, arch, m, check_capacity=False)
        sev = sparse_evaluate(problem, arch, m, ev, SparseSpec())
        refused = False
        try:
            check_sparse_capacity(problem, arch, m, sev)
        except MappingError as e:
            refused = "bits" in str(e)
        assert refused == (not dense.capacity_ok[b]), f"row {b}: {m}"
