"""The batch sparse step (dse/model/sparse_batch.py): the mapper's rows equal the one-mapping
path row by row; a batch equals its rows run one at a time; property tests on small problems
with fixed_structured densities (conservation, skipping vs gating, compression vs occupancy,
density 1 = the dense model); the mapper finds mappings of sparse designs."""

from __future__ import annotations

import functools
from dataclasses import fields

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse.arch.architecture import Architecture
from dse.mapper.bounds import SparseBounds
from dse.mapper.constraints import Constraints
from dse.mapper.mapspace import MapSpace
from dse.mapper.search import SearchConfig, Searcher
from dse.model import evaluate
from dse.model.batch import BatchModel
from dse.model.density import DensityModel
from dse.model.evaluate import MappingError
from dse.model.formats import RankFormat
from dse.model.sparse import ActionOptimization, SparseSpec, check_sparse_capacity, sparse_evaluate
from dse.model.sparse_batch import SparseBatchModel, SparseStep
from dse.spec.build import load_spec
from tests.conftest import SPARSELOOP_REFS
from tests.test_mapper import _level, _mac
from tests.test_walker_vs_model import make_problem


def _case(name: str):
    case = SPARSELOOP_REFS / name
    meta = yaml.safe_load((case / "case.yaml").read_text())
    return load_spec([case / "inputs" / f for f in meta["inputs"]], allow_sparse=True)


def _rows(space: MapSpace, n: int, seed: int):
    rng = np.random.default_rng(seed)
    choice = space.sample_choices(n, rng)
    T, SX, SY = space.factor_arrays(choice)
    return T, SX, SY, space.perms_random(T, rng), space.keep_random(n, rng)


def _one(problem, arch, m, sparse):
    """The one-mapping path: (energy, cycles), or None when it refuses the mapping."""
    try:
        ev = evaluate(problem, arch, m, check_capacity=False)
        sev = sparse_evaluate(problem, arch, m, ev, sparse)
        check_sparse_capacity(problem, arch, m, sev)
    except MappingError:
        return None
    return sev.energy_pJ, sev.cycles


@pytest.mark.parametrize("name,n,min_valid", [
    ("sparseloop_01_2_2_sudu_dot_product", 60, 6),
    ("sparseloop_01_2_3_scdu_dot_product", 60, 6),
    ("sparseloop_02_2_1_spmspm", 150, 15),
    ("sparseloop_02_2_2_spmspm_tiled", 150, 15),
    ("sparseloop_03_2_2_conv1d_oc", 150, 15),
    # its scratchpads are small: few random rows fit (seed 6: 5 of 400); ~10 s
    pytest.param("sparseloop_04_2_1_eyeriss_like_gating", 400, 4, marks=pytest.mark.slow),
])
def test_mapper_rows_equal_the_one_mapping_path(name: str, n: int, min_valid: int) -> None:
    """Random rows of the unconstrained mapspace (any factors, loop orders and bypass):
    SparseBatchModel.evaluate (what the mapper scores) gives the same validity, cycles and
    energy as dse model's path on each row's mapping."""
    spec = _case(name)
    space = MapSpace(spec.problem, spec.arch, Constraints({}))
    rows = _rows(space, n, 6)
    r = SparseBatchModel(spec.problem, spec.arch, spec.sparse).evaluate(*rows)
    valid = 0
    for b in range(n):
        m = space.to_mapping(*(a[b] for a in rows))
        got = _one(spec.problem, spec.arch, m, spec.sparse)
        if got is None:
            assert not r.valid[b], f"row {b}: batch valid, one-mapping path refuses; {m}"
            continue
        assert r.valid[b], f"row {b}: batch invalid, one-mapping path accepts; {m}"
        assert int(r.cycles[b]) == got[1], f"row {b}: {m}"
        assert float(r.energy_pJ[b]) == pytest.approx(got[0], rel=1e-9), f"row {b}: {m}"
        valid += 1
    assert valid >= min_valid


def test_metadata_storage_rejects_the_same_rows_as_the_one_mapping_path(tmp_path) -> None:
    """conv1d with output channels, its Buffer's metadata storage cut from 38 to 6 rows of 4
    bits: random rows whose formats' metadata no longer fit are invalid for the mapper exactly
    where dse model refuses them, though their compressed words fit."""
    case = SPARSELOOP_REFS / "sparseloop_03_2_2_conv1d_oc"
    meta = yaml.safe_load((case / "case.yaml").read_text())
    files = [case / "inputs" / f for f in meta["inputs"]]
    text = files[0].read_text()
    assert text.count("metadata_storage_depth: 38") == 1
    edited = tmp_path / files[0].name
    edited.write_text(text.replace("metadata_storage_depth: 38", "metadata_storage_depth: 6"))
    spec = load_spec([edited, *files[1:]], allow_sparse=True)
    space = MapSpace(spec.problem, spec.arch, Constraints({}))
    model = SparseBatchModel(spec.problem, spec.arch, spec.sparse)
    rows = _rows(space, 300, 8)
    r = model.evaluate(*rows)
    words_ok, _ = model.word_capacity(rows[0], rows[1], rows[2], rows[4])
    metadata_only = r.fanout_ok & words_ok & ~r.capacity_ok
    assert metadata_only.sum() >= 5
    for b in range(len(rows[0])):
        m = space.to_mapping(*(a[b] for a in rows))
        got = _one(spec.problem, spec.arch, m, spec.sparse)
        assert (got is not None) == bool(r.valid[b]), f"row {b}: {m}"


@pytest.mark.parametrize("name", ["sparseloop_02_2_2_spmspm_tiled",
                                  "sparseloop_03_2_2_conv1d_oc",
                                  "sparseloop_04_2_1_eyeriss_like_gating"])
def test_a_batch_equals_its_rows_one_at_a_time(name: str) -> None:
    """Every array of the sparse step on a 24-row batch (the reference mapping first, then
    random rows) equals the same step on each row alone: no row leaks into another."""
    spec = _case(name)
    model = BatchModel(spec.problem, spec.arch)
    step = SparseStep(model, spec.sparse)
    from dse.model.batch import rows_from_mappings

    ref = rows_from_mappings(model, [spec.mapping])
    space = MapSpace(spec.problem, spec.arch, Constraints({}))
    rnd = _rows(space, 23, 9)
    rows = [np.concatenate([a, b.astype(a.dtype)]) for a, b in zip(ref, rnd, strict=True)]
    T, SX, SY, perm, keep = rows
    whole = step.apply(model.detail(*rows), T, SX, SY, perm)
    for b in range(len(T)):
        one = [a[b:b + 1] for a in rows]
        alone = step.apply(model.detail(*one), *one[:4])
        for f in fields(whole):
            if f.name == "holder":
                for k, h in whole.holder.items():
                    assert h[b] == alone.holder[k][0]
                continue
            np.testing.assert_array_equal(getattr(whole, f.name)[b], getattr(alone, f.name)[0],
                                          err_msg=f"row {b} {f.name}")


# ------------------------------------------------------------------------ property tests
@functools.cache
def _matmul_design(m: int, n: int, k: int) -> tuple:
    """matmul M x N x K: DRAM -> Buffer (32 words, 2 words/cycle read bandwidth) -> 2 MACs."""
    problem = make_problem("matmul", {"M": m, "N": n, "K": k})
    arch = Architecture("tiny", (
        _level("DRAM", 1, 1, None, read=100, write=100),
        _level("Buffer", 1, 1, 32, rbw=2, read=2, write=2.5, update=3, leak=0.01,
               metadata_read=0.5, metadata_write=0.6, gated_read=0.2)), _mac(2, 1))
    return problem, arch


DENS = st.sampled_from([0.125, 0.25, 0.5, 0.75, 1.0])
FMT = st.sampled_from([None, "CP", "RLE", "B", "UOP", "UB"])


@st.composite
def designs(draw):
    m, n, k = (draw(st.integers(1, 6)) for _ in range(3))
    dens = {"A": draw(DENS), "B": draw(DENS)}
    fmt_a, fmt_b = draw(FMT), draw(FMT)
    saf = draw(st.sampled_from(["none", "A_on_B", "B_on_A", "Z_on_AB"]))
    level = draw(st.sampled_from(["Buffer", "DRAM"]))
    seed = draw(st.integers(0, 10_000))
    comp = draw(st.sampled_from(["none", "gating", "skipping"]))  # compute-level optimization
    return m, n, k, dens, fmt_a, fmt_b, saf, level, seed, comp


def _spec(dens, fmt_a, fmt_b, saf, level, kind, comp: str = "none") -> SparseSpec:
    formats = {}
    if fmt_a:
        formats[("Buffer", "A")] = (RankFormat(fmt_a),)
    if fmt_b:
        formats[("Buffer", "B")] = (RankFormat(fmt_b),)
    target, cond = {"none": (None, ()), "A_on_B": ("A", ("B",)), "B_on_A": ("B", ("A",)),
                    "Z_on_AB": ("Z", ("A", "B"))}[saf]
    actions = () if target is None else (ActionOptimization(kind, level, target, cond),)
    return SparseSpec({t: DensityModel("fixed_structured", d) for t, d in dens.items()},
                      formats, actions, comp == "gating", comp == "skipping")


def _batch(problem, arch, seed: int, n: int = 48):
    model = BatchModel(problem, arch)
    space = MapSpace(problem, arch, Constraints({}))
    rows = _rows(space, n, seed)
    return model, rows, model.detail(*rows)


PROPS = settings(max_examples=40, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(designs())
def test_every_algorithmic_access_ends_somewhere(design) -> None:
    """actual + gated + skipped + vanished = algorithmic with every part >= 0; nothing
    vanishes at an uncompressed (level, tensor) that no outer level optimizes; gating never
    skips and skipping never gates."""
    m, n, k, dens, fmt_a, fmt_b, saf, level, seed, comp = design
    problem, arch = _matmul_design(m, n, k)
    model, rows, det = _batch(problem, arch, seed)
    for kind in ("gating", "skipping"):
        step = SparseStep(model, _spec(dens, fmt_a, fmt_b, saf, level, kind, comp))
        sd = step.apply(det, *rows[:4])
        vanished = sd.algorithmic - sd.actual - sd.gated - sd.skipped
        assert (sd.actual >= 0).all() and (sd.gated >= 0).all() and (sd.skipped >= 0).all()
        assert (vanished >= 0).all()
        assert not (sd.skipped if kind == "gating" else sd.gated).any()
        for t in range(3):
            for i in range(2):
                outer_saf = np.zeros(len(rows[0]), dtype=bool)
                for (tt, _), h in sd.holder.items():
                    if tt == t:
                        outer_saf |= (h >= 0) & (h < i)
                plain = ~outer_saf & sd.keep[:, i, t]
                if not step.compressed[i, t]:
                    assert (vanished[plain, i, t] == 0).all()
        assert (sd.actual_computes + sd.gated_computes + sd.skipped_computes
                <= problem.macs).all()


@PROPS
@given(designs())
def test_skipping_never_costs_more_cycles_than_gating(design) -> None:
    m, n, k, dens, fmt_a, fmt_b, saf, level, seed, comp = design
    problem, arch = _matmul_design(m, n, k)
    model, rows, det = _batch(problem, arch, seed)
    gate = SparseStep(model, _spec(dens, fmt_a, fmt_b, saf, level, "gating", comp)).apply(
        det, *rows[:4])
    skip = SparseStep(model, _spec(dens, fmt_a, fmt_b, saf, level, "skipping", comp)).apply(
        det, *rows[:4])
    assert (skip.cycles <= gate.cycles).all()
    if not (fmt_a or fmt_b):  # no metadata traffic: never slower than the dense model
        assert (skip.cycles <= det.cycles).all()
    # at the compute level too: skipping computes never costs more compute cycles than gating
    # them (nor total cycles, but for the one-cycle rounding of a throttled level's
    # ceil(compute cycles / slowdown), done in floating point as Timeloop does), and neither
    # changes how many computes exist (actual + gated + skipped)
    by_comp = {c: SparseStep(model, _spec(dens, fmt_a, fmt_b, saf, level, "skipping", c)).apply(
        det, *rows[:4]) for c in ("gating", "skipping")}
    assert (by_comp["skipping"].compute_cycles <= by_comp["gating"].compute_cycles).all()
    assert (by_comp["skipping"].cycles <= by_comp["gating"].cycles + 1).all()
    total = {c: r.actual_computes + r.gated_computes + r.skipped_computes
             for c, r in by_comp.items()}
    assert (total["skipping"] == total["gating"]).all()


@PROPS
@given(designs(), st.sampled_from(["CP", "RLE", "B", "UOP", "UB"]))
def test_compressing_a_tensor_never_increases_its_occupancy(design, fmt: str) -> None:
    m, n, k, dens, _, fmt_b, saf, level, seed, comp = design
    problem, arch = _matmul_design(m, n, k)
    model, rows, det = _batch(problem, arch, seed)
    plain = SparseStep(model, _spec(dens, None, fmt_b, saf, level, "skipping", comp))
    packed = SparseStep(model, _spec(dens, fmt, fmt_b, saf, level, "skipping", comp))
    a0 = plain.apply(det, *rows[:4])
    a1 = packed.apply(det, *rows[:4])
    assert (a1.occupancy <= a0.occupancy).all()
    assert (a1.occupancy[:, 1, 0] <= det.size[:, 1, 0]).all()
    # the mapper's capacity check sees the same occupancy
    assert (packed.occupancy(det.size, det.keep) == a1.occupancy).all()


@PROPS
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6), st.integers(0, 10_000))
def test_density_one_without_optimizations_is_the_dense_model(m, n, k, seed) -> None:
    problem, arch = _matmul_design(m, n, k)
    model, rows, det = _batch(problem, arch, seed)
    dense = {t: DensityModel("fixed_structured", 1.0) for t in ("A", "B", "Z")}
    sd = SparseStep(model, SparseSpec(dense)).apply(det, *rows[:4])
    np.testing.assert_array_equal(sd.actual, det.counts)
    assert not sd.gated.any() and not sd.skipped.any()
    np.testing.assert_array_equal(sd.cycles, det.cycles)
    np.testing.assert_allclose(sd.energy_total, det.energy, rtol=1e-12)
    assert (sd.actual_computes == problem.macs).all()


# ------------------------------------------------------------------------ the mapper
def test_mapper_finds_a_sparse_mapping_with_compressed_tiles() -> None:
    """spMspM (A and B compressed, skipping), unconstrained mapspace: the search (with the
    sparse bounds) finds a mapping whose one-mapping evaluation equals its score and whose
    energy-delay product is no worse than the tutorial's own mapping's."""
    spec = _case("sparseloop_02_2_1_spmspm")
    cfg = SearchConfig(objective="edp", search="random", max_evals=4000, seed=1)
    searcher = Searcher(spec.problem, spec.arch, Constraints({}), cfg, sparse=spec.sparse)
    result = searcher.run()
    assert result.best is not None and isinstance(searcher.bounds, SparseBounds)
    m = searcher.mapping_of(result.best)
    got = _one(spec.problem, spec.arch, m, spec.sparse)
    assert got == (pytest.approx(result.best.energy_pJ, rel=1e-9), result.best.cycles)
    ev = evaluate(spec.problem, spec.arch, spec.mapping, check_capacity=False)
    ref = sparse_evaluate(spec.problem, spec.arch, spec.mapping, ev, spec.sparse)
    assert result.best.energy_pJ * result.best.cycles <= ref.energy_pJ * ref.cycles


def test_compressed_tiles_admit_mappings_the_dense_check_refuses() -> None:
    """A 1-word-per-density buffer: with A at density 0.25 compressed, tiles of A four times
    the buffer's words fit; the sparse model admits rows the dense model rejects."""
    problem = make_problem("matmul", {"M": 8, "N": 1, "K": 8})
    arch = Architecture("small", (
        _level("DRAM", 1, 1, None, read=100, write=100),
        _level("Buffer", 1, 1, 20, read=2, write=2.5, update=3)), _mac(1, 1))
    sparse = SparseSpec({"A": DensityModel("fixed_structured", 0.25)},
                        {("Buffer", "A"): (RankFormat("CP"),)})
    space = MapSpace(problem, arch, Constraints({}))
    rows = _rows(space, 400, 3)
    keep = np.ones_like(rows[4])
    rows = (*rows[:4], keep)
    dense = BatchModel(problem, arch).evaluate(*rows)
    sparse_r = SparseBatchModel(problem, arch, sparse).evaluate(*rows)
    assert (sparse_r.capacity_ok >= dense.capacity_ok).all()
    assert (sparse_r.capacity_ok & ~dense.capacity_ok).any()


def test_mapper_rejects_rows_needing_unsupported_decompression() -> None:
    """Eyeriss-like gating case: DRAM keeps Inputs compressed, shared_glb uncompressed. Without
    shared_glb's decompression_supported the reference mapping is invalid for the mapper (as
    dse model refuses it), counted under its own rejection reason."""
    from dataclasses import replace

    spec = _case("sparseloop_04_2_1_eyeriss_like_gating")
    levels = tuple(replace(lv, attributes={k: v for k, v in lv.attributes.items()
                                           if k != "decompression_supported"})
                   for lv in spec.arch.levels)
    arch = replace(spec.arch, levels=levels)
    from dse.model.batch import rows_from_mappings

    for a, valid in ((spec.arch, True), (arch, False)):
        model = SparseBatchModel(spec.problem, a, spec.sparse)
        r = model.evaluate(*rows_from_mappings(model, [spec.mapping]))
        assert (bool(r.valid[0]), bool(r.capacity_ok[0]), bool(r.fanout_ok[0])) == (
            valid, True, True)
    searcher = Searcher(spec.problem, arch, Constraints({}), SearchConfig(), sparse=spec.sparse)
    rows = _rows(searcher.space, 300, 6)
    choice = np.zeros((300, len(spec.problem.dims)), dtype=np.int64)
    searcher._evaluate(choice, rows[3], rows[4], factors=rows[:3], canonical=True)
    assert searcher.result.rejected["(de)compression not supported"] > 0


# ------------------------------------------------------------------------ bound and skip
@pytest.mark.parametrize("name", ["sparseloop_01_2_2_sudu_dot_product",
                                  "sparseloop_01_2_3_scdu_dot_product",
                                  "sparseloop_02_2_2_spmspm_tiled",
                                  "sparseloop_03_2_2_conv1d_oc",
                                  "sparseloop_04_2_1_eyeriss_like_gating"])
def test_sparse_bounds_never_exceed_the_model(name: str) -> None:
    """SparseBounds.lower <= the sparse model's energy and cycles on every valid random row,
    and the cycles bound is tight for some (full use of the compute units, no throttling)."""
    spec = _case(name)
    model = SparseBatchModel(spec.problem, spec.arch, spec.sparse)
    bounds = SparseBounds(model)
    space = MapSpace(spec.problem, spec.arch, Constraints({}))
    T, SX, SY, perm, keep = _rows(space, 1500, 4)
    r = model.evaluate(T, SX, SY, perm, keep)
    lb_e, lb_c = bounds.lower(T, SX, SY, keep)
    v = r.valid
    assert v.sum() > 5
    assert (lb_c[v] <= r.cycles[v]).all()
    assert (lb_e[v] <= r.energy_pJ[v]).all()
    assert (lb_c[v] > 0).all() and (lb_e[v] > 0).all()


@PROPS
@given(designs())
def test_sparse_bounds_hold_on_small_designs(design) -> None:
    m, n, k, dens, fmt_a, fmt_b, saf, level, seed, comp = design
    problem, arch = _matmul_design(m, n, k)
    for kind in ("gating", "skipping"):
        sparse = _spec(dens, fmt_a, fmt_b, saf, level, kind, comp)
        model = SparseBatchModel(problem, arch, sparse)
        space = MapSpace(problem, arch, Constraints({}))
        T, SX, SY, perm, keep = _rows(space, 64, seed)
        r = model.evaluate(T, SX, SY, perm, keep)
        lb_e, lb_c = SparseBounds(model).lower(T, SX, SY, keep)
        v = r.valid
        assert (lb_c[v] <= r.cycles[v]).all() and (lb_e[v] <= r.energy_pJ[v]).all()


@pytest.mark.parametrize("objective", ["edp", "delay,energy", "energy"])
@pytest.mark.parametrize("search", ["random", "auto"])
def test_bound_skip_finds_the_same_sparse_best(tmp_path, objective: str, search: str) -> None:
    """Bound-and-skip with the sparse bounds is exact: on the sparse VGG bench case (Eyeriss-
    like, row-stationary constraints) it skips candidates (for objectives with delay) and
    finds the same best."""
    from dse.bench.run import EYERISS, SPARSE_VGG, _bundled
    from dse.pipeline.map import prepare

    layer = tmp_path / "vgg_sparse.yaml"
    layer.write_text(SPARSE_VGG)
    best = []
    for skip in (True, False):
        cfg = SearchConfig(objective=objective, search=search, max_evals=12000, seed=2,
                           bound_skip=skip, block=2048)
        _, s = prepare([_bundled(f) for f in EYERISS] + [str(layer)], cfg)
        res = s.run()
        best.append((res.best.energy_pJ, res.best.cycles, res.best.perm.tobytes(),
                     res.best.keep.tobytes(), res.best.choice.tobytes(), res.skipped_by_bound))
    assert best[0][:5] == best[1][:5]
    assert best[1][5] == 0
    if objective != "energy":  # the energy bound (compute + leakage) rarely beats a mapping
        assert best[0][5] > 0


def test_sparse_search_is_the_same_for_any_jobs() -> None:
    """Worker processes build the same sparse model (the spec travels with the pool's
    initializer): 1 and 2 jobs give the same best and counts."""
    spec = _case("sparseloop_02_2_2_spmspm_tiled")
    out = []
    for jobs in (1, 2):
        cfg = SearchConfig(objective="edp", search="random", max_evals=8192, seed=3, jobs=jobs,
                           bound_skip=False, block=4096)
        res = Searcher(spec.problem, spec.arch, Constraints({}), cfg, sparse=spec.sparse).run()
        out.append((res.best.energy_pJ, res.best.cycles, res.best.choice.tobytes(),
                    res.best.perm.tobytes(), res.best.keep.tobytes(), res.valid,
                    dict(res.rejected)))
    assert out[0] == out[1]


@pytest.mark.parametrize("links", [None, True])
@pytest.mark.parametrize("name", [p.name for p in sorted(SPARSELOOP_REFS.glob("sparseloop_*"))])
def test_kernel_and_numpy_dense_detail_give_identical_sparse_rows(name: str, links) -> None:
    """The sparse step starts from the dense detail of the compiled kernel or, with
    kernel='numpy', of the numpy passes (rows needing the exact link-transfer walk go to the
    numpy passes either way): every BatchResult array is identical."""
    from dse.model import kernel as kernels

    if not kernels.numba_available():
        pytest.skip("numba not installed")
    spec = _case(name)
    if spec.sparse is None:
        pytest.skip("dense case")
    fast, ref = (SparseBatchModel(spec.problem, spec.arch, spec.sparse, link_transfers=links,
                                  kernel=k) for k in ("numba", "numpy"))
    assert (fast.kernel, ref.kernel) == ("numba", "numpy")
    space = MapSpace(spec.problem, spec.arch, Constraints({}))
    rows = _rows(space, 1500, 11)
    for check in (True, False):  # without capacity, small-buffer designs get valid rows
        a = fast.evaluate(*rows, check_capacity=check)
        b = ref.evaluate(*rows, check_capacity=check)
        for f in fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
    assert a.valid.sum() >= 100
    if links and "eyeriss" in name:  # some rows take the numpy passes' exact link walk
        assert kernels.run_kernel(fast._kernel_consts, *rows, every_row=True)["exact"].any()
