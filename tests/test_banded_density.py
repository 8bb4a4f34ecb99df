"""Sparseloop's banded density model: per-tile counts against a brute-force count over the actual
band matrix, the readers, and `dse model` on a small banded spMspM (counts conserved)."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from dse.cli import main
from dse.errors import SpecError
from dse.model import evaluate
from dse.model.density import banded
from dse.model.sparse import sparse_evaluate
from dse.spec.build import load_spec
from tests.conftest import SPARSELOOP_REFS

SPMSPM = SPARSELOOP_REFS / "sparseloop_02_2_1_spmspm" / "inputs"


def band_matrix(side: int, width: int) -> np.ndarray:
    """The actual 0/1 matrix: nonzero where |row - col| <= width."""
    r, c = np.indices((side, side))
    return (np.abs(r - c) <= width).astype(np.int64)


def tile_counts(side: int, width: int, rows: int, cols: int) -> list[int]:
    """Nonzeros of every rows x cols tile of the partition, counted element by element."""
    m = band_matrix(side, width)
    return [int(m[i:i + rows, j:j + cols].sum())
            for i in range(0, side, rows) for j in range(0, side, cols)]


def _divisors(n: int) -> list[int]:
    return [x for x in range(1, n + 1) if n % x == 0]


CASES = [(side, width, rows, cols)
         for side, width in [(8, 0), (8, 1), (8, 2), (12, 3), (16, 5), (6, 5)]
         for rows, cols in itertools.product(_divisors(side), repeat=2)]


@pytest.mark.parametrize("side,width,rows,cols", CASES)
def test_expected_occupancy_and_density_match_the_band(side, width, rows, cols) -> None:
    """Global density = nonzeros of the band / side^2; the expected occupancy (S d) is the
    mean count over the tiles, and so is the mean of the model's distribution."""
    model = banded(side, width)
    counts = tile_counts(side, width, rows, cols)
    assert model.density == pytest.approx(band_matrix(side, width).sum() / side ** 2, abs=1e-15)
    assert model.expected_occupancy(rows * cols, (rows, cols)) == pytest.approx(
        float(np.mean(counts)), rel=1e-12)
    pmf = model.occupancy_pmf(rows * cols, (rows, cols))
    assert sum(pmf.values()) == pytest.approx(1.0, abs=1e-12)
    assert sum(k * p for k, p in pmf.items()) == pytest.approx(np.mean(counts), rel=1e-12)


@pytest.mark.parametrize("side,width,rows,cols",
                         [c for c in CASES if c[2] % c[3] == 0])
def test_distribution_equals_brute_force_when_tiles_repeat_along_the_band(
        side, width, rows, cols) -> None:
    """When a tile's column count divides its row count, every steady-state row group holds
    the same tiles shifted, so Sparseloop's walk (one representative steady group) is exact:
    P(empty), the whole distribution and the max occupancy equal the brute-force count."""
    model = banded(side, width)
    counts = tile_counts(side, width, rows, cols)
    n = len(counts)
    want = {k: counts.count(k) / n for k in sorted(set(counts))}
    got = model.occupancy_pmf(rows * cols, (rows, cols))
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-12)
    assert model.prob_empty(rows * cols, (rows, cols)) == pytest.approx(counts.count(0) / n,
                                                                        abs=1e-12)
    assert model.max_occupancy(rows * cols, (rows, cols)) == max(counts)


def test_representative_group_is_sparseloops_approximation() -> None:
    """1 x 4 tiles of an 8 x 8 band of width 1: rows differ in how the band meets the column
    tiles, and Sparseloop takes row 1 for all steady rows. 6 of the 16 tiles are really empty;
    the walk says 8 (documented in docs/sparse.md)."""
    counts = tile_counts(8, 1, 1, 4)
    assert counts.count(0) == 6
    assert banded(8, 1).prob_empty(4, (1, 4)) == pytest.approx(8 / 16)


def test_batch_queries_take_shape_arrays() -> None:
    model = banded(8, 1)
    sizes = np.array([4, 1, 64, 0, 8])
    shape = (np.array([2, 1, 8, 0, 2]), np.array([2, 1, 8, 0, 4]))
    empty = model.prob_empty(sizes, shape)
    assert empty.tolist() == pytest.approx(
        [tile_counts(8, 1, 2, 2).count(0) / 16, 1 - 22 / 64, 0.0, 1.0,
         tile_counts(8, 1, 2, 4).count(0) / 8])
    assert model.max_occupancy(sizes, shape).tolist() == [4, 1, 22, 0, max(tile_counts(8, 1, 2, 4))]
    with pytest.raises(ValueError, match="does not divide"):
        model.prob_empty(9, (3, 3))
    with pytest.raises(ValueError, match="needs its shape"):
        model.prob_empty(4)


# ------------------------------------------------------------------ readers and dse model
MAPPING = """
mapping:
  - {target: Buffer, type: datatype, keep: [A, B, Z], bypass: []}
  - {target: BackingStorage, type: datatype, keep: [A, B, Z], bypass: []}
  - {target: Buffer, type: temporal, factors: M2 N8 K2, permutation: MNK}
  - {target: BackingStorage, type: temporal, factors: M4 N1 K4, permutation: MKN}
"""


def _banded_case(tmp_path: Path, density: dict, targets: list | None = None) -> list[Path]:
    """The Sparseloop spMspM (8 x 8 x 8) with A banded, 2 x 2 tiles of A at the Buffer, and
    B's reads at the BackingStorage skipped when A's Buffer tile is empty."""
    data = yaml.safe_load((SPMSPM / "parsed-processed-input.yaml").read_text())
    data["problem"]["instance"]["densities"]["A"] = density
    data["sparse_optimizations"] = {"targets": targets if targets is not None else [
        {"name": "BackingStorage", "action_optimization": [
            {"type": "skipping", "options": [{"target": "B", "condition_on": ["A"]}]}]}]}
    data.pop("mapping", None)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    mapping = tmp_path / "map.yaml"
    mapping.write_text(MAPPING)
    return [spec, mapping, SPMSPM / "timeloop-mapper.ERT.yaml"]


def test_dse_model_on_a_banded_spmspm(tmp_path: Path) -> None:
    files = _banded_case(tmp_path, {"distribution": "banded", "band_width": 1})
    spec = load_spec(files, allow_sparse=True)
    model = spec.sparse.density("A")
    assert (model.distribution, model.band_width, model.side) == ("banded", 1, 8)
    ev = evaluate(spec.problem, spec.arch, spec.mapping)
    sev = sparse_evaluate(spec.problem, spec.arch, spec.mapping, ev, spec.sparse)
    p_empty = tile_counts(8, 1, 2, 2).count(0) / 16  # 6 of the 16 2x2 tiles of A are empty
    for r in sev.rows:
        for c in r.data.values():
            vanished = c.algorithmic - c.actual - c.gated - c.skipped
            assert min(c.actual, c.gated, c.skipped, vanished) >= 0, (r.level, r.tensor, c)
        if (r.level, r.tensor) == ("BackingStorage", "B"):
            reads = r.data["reads"]
            assert reads.algorithmic > 0
            assert reads.skipped == pytest.approx(reads.algorithmic * p_empty, abs=1)
            assert reads.actual + reads.skipped == reads.algorithmic
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["model", *map(str, files), "--out", str(out)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = {(x["level"], x["tensor"]): x for x in csv.DictReader(open(out / "levels.csv"))}
    b = rows[("BackingStorage", "B")]
    assert int(b["skipped_reads_per_instance"]) == pytest.approx(
        int(b["algorithmic_reads_per_instance"]) * p_empty, abs=1)
    assert json.loads((out / "summary.json").read_text())["macs"] == 512


@pytest.mark.parametrize("density,message", [
    ({"distribution": "banded", "band_width": 8}, "band_width is an integer"),
    ({"distribution": "banded", "band_width": 1, "density": 0.5}, "follows from its band"),
    ({"distribution": "banded", "band_width": 1, "bandwidth": 1}, "bandwidth"),
    ({"distribution": "fixed_structured", "density": 0.5, "band_width": 2}, "band_width applies"),
])
def test_bad_banded_input_is_refused_with_its_line(tmp_path: Path, density, message) -> None:
    files = _banded_case(tmp_path, density)
    with pytest.raises(SpecError, match=message) as err:
        load_spec(files, allow_sparse=True)
    assert "spec.yaml" in str(err.value) and ":" in str(err.value)


def test_banded_needs_a_square_matrix(tmp_path: Path) -> None:
    files = _banded_case(tmp_path, {"distribution": "banded", "band_width": 1})
    text = files[0].read_text().replace("M: 8", "M: 4")
    files[0].write_text(text)
    with pytest.raises(SpecError, match="square 2-D tensor"):
        load_spec(files, allow_sparse=True)


def test_formats_on_a_banded_tensor_are_refused(tmp_path: Path) -> None:
    targets = [{"name": "BackingStorage", "representation_format": {"data_spaces": [
        {"name": "A", "ranks": [{"format": "UOP"}, {"format": "CP"}]}]}}]
    files = _banded_case(tmp_path, {"distribution": "banded", "band_width": 1}, targets)
    with pytest.raises(SpecError, match="banded tensor A"):
        load_spec(files, allow_sparse=True)


def test_a_tile_not_dividing_the_matrix_is_a_spec_error(tmp_path: Path) -> None:
    """The batch sparse step asks the banded model about A's tile in an op-space box; a 3 x 3
    tile of the 8 x 8 A (no mapping makes one today: factors divide) is refused, not a
    traceback."""
    from dse.model.batch import BatchModel
    from dse.model.sparse_batch import SparseStep

    spec = load_spec(_banded_case(tmp_path, {"distribution": "banded", "band_width": 1}),
                     allow_sparse=True)
    model = BatchModel(spec.problem, spec.arch)
    step = SparseStep(model, spec.sparse)
    a = step.tensor_index["A"]
    box = np.ones((2, len(model.dims)), dtype=np.int64)
    m, k = model.dims.index("M"), model.dims.index("K")
    box[0, m], box[0, k] = 2, 2
    assert step._prob_empty(a, box)[0] == pytest.approx(6 / 16)
    box[1, m], box[1, k] = 3, 3
    with pytest.raises(SpecError, match="does not divide") as err:
        step._prob_empty(a, box)
    assert "densities.A" in str(err.value)
