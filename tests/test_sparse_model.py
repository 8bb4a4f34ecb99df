"""The sparse step: dense inputs stay dense; conservation and monotonicity properties on small
problems (the Sparseloop spMspM and dot-product cases with other densities and SAFs)."""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import replace

import pytest
import yaml

from dse.model import evaluate
from dse.model.density import DensityModel
from dse.model.formats import RankFormat
from dse.model.sparse import ActionOptimization, SparseSpec, sparse_evaluate
from dse.spec.build import load_spec
from tests.conftest import SPARSELOOP_REFS, TIMELOOP_REFS

DENSE_CASES = sorted(r["folder"] for r in csv.DictReader(open(TIMELOOP_REFS / "MANIFEST.csv")))


def _load(root, name):
    case = root / name
    meta = yaml.safe_load((case / "case.yaml").read_text())
    return load_spec([case / "inputs" / f for f in meta["inputs"]], allow_sparse=True)


@pytest.mark.parametrize("name", DENSE_CASES)
def test_density_one_changes_nothing_on_dense_reference_cases(name: str) -> None:
    """Every tensor at density 1.0, no SAF: the sparse step returns the dense model's numbers."""
    spec = _load(TIMELOOP_REFS, name)
    ev = evaluate(spec.problem, spec.arch, spec.mapping)
    dens = {ds.name: DensityModel("fixed_structured", 1.0) for ds in spec.problem.data_spaces}
    sev = sparse_evaluate(spec.problem, spec.arch, spec.mapping, ev, SparseSpec(dens))
    assert sev.cycles == ev.cycles
    assert sev.actual_computes == ev.macs
    assert sev.energy_pJ == pytest.approx(ev.energy_pJ, rel=1e-12)
    for r, d in zip(sev.rows, ev.stats, strict=True):
        assert (r.data["reads"].actual, r.data["fills"].actual, r.data["updates"].actual) == (
            d.reads_per_instance, d.fills_per_instance, d.updates_per_instance)
        assert r.utilized_capacity_words == d.utilized_capacity_words
        assert r.energy_pJ == pytest.approx(d.energy_pJ, rel=1e-12)


def _spmspm():
    return _load(SPARSELOOP_REFS, "sparseloop_02_2_1_spmspm")


DENSITIES = [0.1, 0.25, 0.5, 0.8, 1.0]


def _variant(spec, da: float, db: float, kind: str, formats: bool) -> SparseSpec:
    base = spec.sparse
    dens = {"A": DensityModel("fixed_structured", da), "B": DensityModel("fixed_structured", db)}
    actions = tuple(replace(a, kind=kind) for a in base.actions)
    return SparseSpec(dens, base.formats if formats else {}, actions)


def _run(spec, sparse):
    ev = evaluate(spec.problem, spec.arch, spec.mapping)
    return ev, sparse_evaluate(spec.problem, spec.arch, spec.mapping, ev, sparse)


@pytest.mark.parametrize("da,db", list(itertools.product(DENSITIES, DENSITIES)))
def test_counts_are_conserved(da: float, db: float) -> None:
    """actual + gated + skipped + vanished == algorithmic, with vanished exactly the accesses a
    compressed format does not store (floor(count x (1 - d))) or an outer SAF removed."""
    spec = _spmspm()
    for kind, formats in itertools.product(("gating", "skipping"), (True, False)):
        ev, sev = _run(spec, _variant(spec, da, db, kind, formats))
        for r in sev.rows:
            d = r.density.density
            compressed = any(f.compressed for f in r.formats) and d < 1.0
            for c in r.data.values():
                assert min(c.actual, c.gated, c.skipped) >= 0
                vanished = c.algorithmic - c.actual - c.gated - c.skipped
                # no SAF on these tensors sits above another level keeping them
                expect = math.floor(c.algorithmic * (1 - d) + 1e-9) if compressed else 0
                assert vanished == expect, (kind, formats, r.level, r.tensor, c)
                if kind == "gating":
                    assert c.skipped == 0
                else:
                    assert c.gated == 0
        assert 0 < sev.actual_computes <= ev.macs
        # computes left = MACs where both operands are nonzero (skipping on A then on B)
        left = ev.macs - math.floor(ev.macs * (1 - db) + 1e-9)
        left -= math.floor(left * (1 - da) + 1e-9)
        assert sev.actual_computes == left


@pytest.mark.parametrize("da,db", list(itertools.product(DENSITIES, DENSITIES)))
def test_skipping_never_costs_more_cycles_than_gating_or_dense(da: float, db: float) -> None:
    spec = _spmspm()
    ev, gated = _run(spec, _variant(spec, da, db, "gating", False))
    _, skipped = _run(spec, _variant(spec, da, db, "skipping", False))
    assert skipped.cycles <= gated.cycles
    assert skipped.cycles <= ev.cycles
    assert skipped.energy_pJ <= gated.energy_pJ + 1e-9


@pytest.mark.parametrize("d", DENSITIES)
@pytest.mark.parametrize("fmt", ["CP", "RLE", "B", "UOP", "UB"])
def test_compressing_never_increases_occupancy(d: float, fmt: str) -> None:
    spec = _load(SPARSELOOP_REFS, "sparseloop_01_2_1_dudu_dot_product")
    dens = {"A": DensityModel("fixed_structured", d)}
    _, plain = _run(spec, SparseSpec(dens))
    _, packed = _run(spec, SparseSpec(dens, {("Buffer", "A"): (RankFormat(fmt),)}))
    a0 = next(r for r in plain.rows if r.tensor == "A")
    a1 = next(r for r in packed.rows if r.tensor == "A")
    assert a1.utilized_capacity_words <= a0.utilized_capacity_words
    assert a1.data["reads"].actual <= a0.data["reads"].actual
    if fmt in ("CP", "RLE", "B") and d < 1.0:
        assert a1.utilized_capacity_words == math.ceil(16 * d)


def test_gated_accesses_take_bandwidth_skipped_do_not() -> None:
    """The worked dot product: gating B and Z on A (d 0.25) is bandwidth-bound at 16 cycles;
    the same with skipping needs 4 compute cycles' worth of accesses."""
    spec = _load(SPARSELOOP_REFS, "sparseloop_01_2_2_sudu_dot_product")
    _, gated = _run(spec, spec.sparse)
    skip = replace(spec.sparse, actions=tuple(replace(a, kind="skipping")
                                              for a in spec.sparse.actions))
    _, skipped = _run(spec, skip)
    assert (gated.cycles, gated.actual_computes) == (16, 4)
    assert skipped.cycles < gated.cycles


@pytest.mark.parametrize("dist", ["fixed_structured", "hypergeometric"])
@pytest.mark.parametrize("tile", [1, 3, 16, 50])
def test_density_models_are_distributions(dist: str, tile: int) -> None:
    m = DensityModel(dist, 0.3, 100)
    pmf = m.occupancy_pmf(tile)
    assert sum(pmf.values()) == pytest.approx(1.0)
    mean = sum(k * p for k, p in pmf.items())
    nnz = 30 if dist == "hypergeometric" else None
    assert mean == pytest.approx(tile * (nnz / 100 if nnz else 0.3))
    assert m.prob_empty(tile) == pytest.approx(pmf.get(0, 0.0))
    assert max(pmf) <= m.max_occupancy(tile)



def test_hypergeometric_empty_tiles_are_likelier_than_structured_ones() -> None:
    """16 elements, 4 nonzeros: a 2-element tile is empty with C(12,2)/C(16,2) = 66/120; a
    fixed-structured tile of mean 0.5 nonzeros with 0.5."""
    assert DensityModel("hypergeometric", 0.25, 16).prob_empty(2) == pytest.approx(66 / 120)
    assert DensityModel("fixed_structured", 0.25).prob_empty(2) == pytest.approx(0.5)
    assert DensityModel("hypergeometric", 0.25, 16).prob_empty(13) == 0.0


def _dot(d_a: float, d_b: float, formats: dict, gate: bool = False, skip: bool = False):
    spec = _load(SPARSELOOP_REFS, "sparseloop_01_2_1_dudu_dot_product")
    dens = {"A": DensityModel("fixed_structured", d_a), "B": DensityModel("fixed_structured", d_b)}
    return _run(spec, SparseSpec(dens, formats, (), gate, skip))


def test_compute_classification_without_storage_optimizations() -> None:
    """Dot product, 16 MACs, A at 0.25 and B at 0.5 compressed (CP) at the Buffer: a compute
    whose two operands are both absent (p 0.75 x 0.5) never exists; with one absent an
    aligning unit skips it; with stored zeros (uncompressed) a gating unit gates it."""
    cp = (RankFormat("CP"),)
    both = {("Buffer", "A"): cp, ("Buffer", "B"): cp}
    _, plain = _dot(0.25, 0.5, both)
    assert (plain.actual_computes, plain.gated_computes, plain.skipped_computes) == (10, 0, 0)
    _, skipping = _dot(0.25, 0.5, both, skip=True)
    # actual = 16 x 0.25 x 0.5 = 2; skipped = floor(16 x (0.25 x 0.5 + 0.75 x 0.5)) = 8
    assert (skipping.actual_computes, skipping.gated_computes,
            skipping.skipped_computes) == (2, 0, 8)
    # skipped computes take no compute cycle (the Buffer's bandwidth still bounds the total)
    assert (skipping.compute_cycles, plain.compute_cycles) == (2, 10)
    _, gating = _dot(0.25, 0.5, {}, gate=True)  # zeros stored: 14 of 16 computes gated
    assert (gating.actual_computes, gating.gated_computes, gating.skipped_computes) == (2, 14, 0)
    assert gating.compute_cycles == 16  # gated computes still take their cycle


def _dot_saf(formats: dict, actions: tuple, gate: bool = False, skip: bool = False):
    spec = _load(SPARSELOOP_REFS, "sparseloop_01_2_1_dudu_dot_product")
    dens = {"A": DensityModel("fixed_structured", 0.25), "B": DensityModel("fixed_structured", 0.5)}
    return _run(spec, SparseSpec(dens, formats, actions, gate, skip))[1]


def _computes(sev) -> tuple[int, int, int]:
    return sev.actual_computes, sev.gated_computes, sev.skipped_computes


def test_compute_optimization_combined_with_storage_skipping() -> None:
    """Dot product, 16 MACs, A at 0.25 and B at 0.5, both kept in the Buffer. The Buffer skips
    A's reads when B is zero: that removes floor(16 x 0.5) = 8 computes, leaving 8 in which B
    is nonzero — so B, conditioned on that, is nonzero with P = 0.5 / (1 - 0.5) = 1, and A
    with P 0.25 (Sparseloop's compute analysis).
    * A uncompressed: its zeros are stored (P 0.75), so 6 of the 8 have a zero operand and
      none an absent one: gating gates floor(8 x 0.75) = 6; skipping needs an absent operand,
      so all 8 are performed.
    * A compressed (CP): its zeros are absent, so skipping skips 6 and 2 are performed, gating
      gates those 6 instead, and without a compute optimization all 8 are performed (an
      aligning unit without skip/gate sends a bubble that still computes).
    * Both directions (A on B, B on A, both CP): 8 - floor(8 x 0.75) = 2 computes are left,
      in which both operands are nonzero (P 0.25 / 0.25 and 0.5 / 0.5): 2 actual = 16 x 0.25
      x 0.5, nothing left to skip."""
    a_on_b = (ActionOptimization("skipping", "Buffer", "A", ("B",)),)
    b_on_a = (ActionOptimization("skipping", "Buffer", "B", ("A",)),)
    cp = (RankFormat("CP"),)
    both = {("Buffer", "A"): cp, ("Buffer", "B"): cp}
    assert _computes(_dot_saf({}, a_on_b, gate=True)) == (2, 6, 0)
    assert _computes(_dot_saf({}, a_on_b, skip=True)) == (8, 0, 0)
    assert _computes(_dot_saf(both, a_on_b, skip=True)) == (2, 0, 6)
    assert _computes(_dot_saf(both, a_on_b, gate=True)) == (2, 6, 0)
    assert _computes(_dot_saf(both, a_on_b)) == (8, 0, 0)
    assert _computes(_dot_saf(both, a_on_b + b_on_a, skip=True)) == (2, 0, 0)
    # skipped computes take no compute cycle; gated ones do
    assert _dot_saf(both, a_on_b, skip=True).compute_cycles == 2
    assert _dot_saf(both, a_on_b, gate=True).compute_cycles == 8


def test_compute_optimization_with_storage_gating_is_read(tmp_path) -> None:
    """The Sparseloop SUDU dot product (B and Z gated on A at the Buffer) with a compute
    gating added to its YAML: read (it used to be refused) and modelled. 16 MACs, A at 0.25
    uncompressed: the Buffer gating of B removes floor(16 x 0.75) = 12 computes, in the 4 left
    A is nonzero (0.25 / 0.25) and B dense, so nothing is left to gate: (4, 0, 0), as
    without the compute optimization."""
    case = SPARSELOOP_REFS / "sparseloop_01_2_2_sudu_dot_product" / "inputs"
    data = yaml.safe_load((case / "parsed-processed-input.yaml").read_text())
    data["sparse_optimizations"]["targets"].append(
        {"name": "mac", "compute_optimization": [{"type": "gate_on_zero_operand"}]})
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    spec = load_spec([spec_file, case / "timeloop-mapper.map.yaml",
                      case / "timeloop-mapper.ERT.yaml"], allow_sparse=True)
    assert spec.sparse.compute_gating and spec.sparse.actions
    _, sev = _run(spec, spec.sparse)
    assert _computes(sev) == (4, 0, 0)


def test_compute_optimization_with_storage_skipping_and_three_operands_is_refused(tmp_path
                                                                                  ) -> None:
    """Sparseloop conditions the operand states on a storage optimization for two operands
    only: a third read-only operand with both optimizations is refused with file:line."""
    from dse.errors import SpecError

    case = SPARSELOOP_REFS / "sparseloop_01_2_1_dudu_dot_product" / "inputs"
    data = yaml.safe_load((case / "parsed-processed-input.yaml").read_text())
    data["problem"]["shape"]["data_spaces"].insert(
        2, {"name": "C", "projection": [[["K"]]], "read_write": False})
    skip_a = {"type": "skipping", "options": [{"target": "A", "condition_on": ["B"]}]}
    data["sparse_optimizations"] = {"targets": [
        {"name": "Buffer", "action_optimization": [skip_a]},
        {"name": "mac", "compute_optimization": [{"type": "skip_on_not_aligned_operands"}]}]}
    mapping = yaml.safe_load((case / "timeloop-mapper.map.yaml").read_text())
    mapping["mapping"][0]["keep"].append("C")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(mapping))
    files = [tmp_path / "spec.yaml", tmp_path / "map.yaml", case / "timeloop-mapper.ERT.yaml"]
    with pytest.raises(SpecError, match="3 operands") as err:
        load_spec(files, allow_sparse=True)
    assert "spec.yaml:" in str(err.value) and "not modelled yet" in str(err.value)
    data["sparse_optimizations"]["targets"].pop()  # without the compute optimization: read
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data))
    assert load_spec(files, allow_sparse=True).sparse.actions


def test_compute_optimization_is_read_and_checked(tmp_path) -> None:
    from dse.errors import SpecError

    case = SPARSELOOP_REFS / "sparseloop_01_2_1_dudu_dot_product" / "inputs"
    extra = tmp_path / "so.yaml"
    extra.write_text("sparse_optimizations:\n  targets:\n  - name: mac\n"
                     "    compute_optimization: [{type: gate_on_zero_operand}]\n")
    spec = load_spec([case / "parsed-processed-input.yaml", case / "timeloop-mapper.map.yaml",
                      case / "timeloop-mapper.ERT.yaml", extra], allow_sparse=True)
    assert spec.sparse.compute_gating and not spec.sparse.compute_skipping
    extra.write_text("sparse_optimizations:\n  targets:\n  - name: mac\n"
                     "    compute_optimization: [{type: gate_on_zero_operands}]\n")
    with pytest.raises(SpecError, match="did you mean 'gate_on_zero_operand'"):
        load_spec([case / "parsed-processed-input.yaml", case / "timeloop-mapper.map.yaml",
                   case / "timeloop-mapper.ERT.yaml", extra], allow_sparse=True)


def test_unused_formats_and_relocated_optimizations_are_noted() -> None:
    """spMspM: the mapper bypassed A at Buffer, so Buffer's format for A is unused and A's
    skipping acts at BackingStorage; both are said, not silently applied or dropped."""
    spec = _spmspm()
    _, sev = _run(spec, spec.sparse)
    assert any("Buffer has a representation format for A but does not keep A" in n
               for n in sev.notes)
    assert any("skipping of A declared at Buffer acts at BackingStorage" in n for n in sev.notes)
    _, sudu = _run(_load(SPARSELOOP_REFS, "sparseloop_01_2_2_sudu_dot_product"),
                    _load(SPARSELOOP_REFS, "sparseloop_01_2_2_sudu_dot_product").sparse)
    assert sudu.notes == []
