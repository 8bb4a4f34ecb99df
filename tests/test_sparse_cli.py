"""`dse model` on Sparseloop inputs writes the sparse columns and totals; searches refuse them;
bad sparse input gets a clear error."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dse.cli import main
from tests.conftest import SPARSELOOP_REFS

SUDU = SPARSELOOP_REFS / "sparseloop_01_2_2_sudu_dot_product" / "inputs"
FILES = [SUDU / "parsed-processed-input.yaml", SUDU / "timeloop-mapper.map.yaml",
         SUDU / "timeloop-mapper.ERT.yaml"]


def dse(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_model_writes_sparse_columns_and_totals(tmp_path: Path) -> None:
    r = dse("model", *FILES, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    rows = {(x["level"], x["tensor"]): x for x in csv.DictReader(open(tmp_path / "levels.csv"))}
    b = rows[("Buffer", "B")]
    assert (b["reads_per_instance"], b["algorithmic_reads_per_instance"],
            b["gated_reads_per_instance"], b["skipped_reads_per_instance"]) == ("4", "16", "12",
                                                                                "0")
    comp = rows[("mac", "compute")]
    assert (comp["computes"], comp["algorithmic_computes"]) == ("4", "16")
    summ = json.loads((tmp_path / "summary.json").read_text())
    assert summ["actual_computes"] == 4 and summ["macs"] == 16 and summ["cycles"] == 16
    assert summ["energy_pJ"] == pytest.approx(53.8658, rel=1e-3)
    assert summ["dense_energy_pJ"] == pytest.approx(127.27, rel=1e-3)
    assert "computes: actual 4" in r.output


def test_map_refuses_sparse_inputs(tmp_path: Path) -> None:
    r = dse("map", *FILES[:1], FILES[2], "--out", tmp_path / "o", "--max-evals", "10", "-q")
    assert r.exit_code == 2, r.output
    assert "sparse search is not modelled yet" in r.output
    assert "use `dse model`" in r.output
    assert "parsed-processed-input.yaml:" in r.output


@pytest.mark.parametrize("old,new,needles", [
    ("distribution: fixed_structured", "distribution: fixed_structure",
     ["did you mean 'fixed_structured'", "densities.A.distribution"]),
    ("distribution: fixed_structured", "distribution: banded", ["banded", "not modelled yet"]),
    ("density: 0.25", "density: 1.5", ["a density is a number in (0, 1]"]),
    ("target: B\n", "target: Q\n", ["unknown tensor 'Q'", "options[0].target"]),
    ("type: gating", "type: gateing", ["did you mean 'gating'"]),
    ("name: Buffer\n", "name: Bufer\n", ["unknown level 'Bufer'", "did you mean 'Buffer'"]),
])
def test_bad_sparse_input_is_a_clear_error(tmp_path: Path, old: str, new: str,
                                           needles: list[str]) -> None:
    # edits inside the problem's densities or the sparse_optimizations section
    head, tail = FILES[0].read_text().split("sparse_optimizations:", 1)
    if old.startswith(("distribution", "density")):
        head = head.replace(old, new, 1)
    else:
        assert old in tail
        tail = tail.replace(old, new, 1)
    edited = tmp_path / "spec.yaml"
    edited.write_text(head + "sparse_optimizations:" + tail)
    r = dse("model", edited, *FILES[1:])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    for n in needles:
        assert n in r.output, r.output
    assert "spec.yaml:" in r.output


def test_compressed_tiles_are_checked_against_metadata_storage(tmp_path: Path) -> None:
    """SCDU keeps A in CP at a Buffer with 32 x 4 bits of metadata storage; 1 x 4 is too few."""
    scdu = SPARSELOOP_REFS / "sparseloop_01_2_3_scdu_dot_product" / "inputs"
    text = (scdu / "parsed-processed-input.yaml").read_text()
    assert "metadata_storage_depth: 32" in text
    edited = tmp_path / "spec.yaml"
    edited.write_text(text.replace("metadata_storage_depth: 32", "metadata_storage_depth: 1"))
    r = dse("model", edited, scdu / "timeloop-mapper.map.yaml", scdu / "timeloop-mapper.ERT.yaml")
    assert r.exit_code == 2, r.output
    assert "metadata at level Buffer need 16 bits" in r.output
    ok = dse("model", scdu / "parsed-processed-input.yaml", scdu / "timeloop-mapper.map.yaml",
             scdu / "timeloop-mapper.ERT.yaml")
    assert ok.exit_code == 0, ok.output


def test_legacy_generation_is_refused_for_sparse_designs() -> None:
    r = dse("model", *FILES, "--timeloop-generation", "legacy")
    assert r.exit_code == 2, r.output
    assert "2024 Timeloop (Sparseloop) build only" in r.output


def test_hypergeometric_density_is_read(tmp_path: Path) -> None:
    """Gating on single A elements: a hypergeometric A with ceil(16 x 0.25) = 4 nonzeros of 16
    makes an element empty with p = 0.75, as the fixed-structured model does."""
    text = FILES[0].read_text()
    edited = tmp_path / "spec.yaml"
    edited.write_text(text.replace("distribution: fixed_structured",
                                   "distribution: hypergeometric", 1))
    r = dse("model", edited, *FILES[1:], "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "o" / "levels.csv")))
    a = next(x for x in rows if x["tensor"] == "A")
    assert a["density_distribution"] == "hypergeometric"
    summ = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summ["actual_computes"] == 4 and summ["cycles"] == 16
    assert summ["energy_pJ"] == pytest.approx(53.8658, rel=1e-3)


def test_decompression_needs_support(tmp_path: Path) -> None:
    """Eyeriss-like: shared_glb keeps Inputs/Outputs uncompressed below a compressed DRAM; it
    must say it can decompress them."""
    case = SPARSELOOP_REFS / "sparseloop_04_2_1_eyeriss_like_gating" / "inputs"
    text = (case / "parsed-processed-input.yaml").read_text()
    assert text.count("decompression_supported: true") == 1
    edited = tmp_path / "spec.yaml"
    edited.write_text(text.replace("decompression_supported: true",
                                   "decompression_supported: false"))
    r = dse("model", edited, case / "timeloop-mapper.map.yaml", case / "timeloop-mapper.ERT.yaml",
            "-q")
    assert r.exit_code == 2, r.output
    assert "level shared_glb keeps Inputs uncompressed" in r.output
    assert "decompression_supported" in r.output


CASES = sorted(r["folder"] for r in csv.DictReader(open(SPARSELOOP_REFS / "MANIFEST.csv")))


@pytest.mark.parametrize("name", CASES)
def test_levels_csv_carries_the_reference_columns(tmp_path: Path, name: str) -> None:
    """End to end: every column levels.csv shares with the reference expected.csv holds the
    reference's value (counts exactly, formats as printed, energies within 1 %)."""
    import yaml

    case = SPARSELOOP_REFS / name
    meta = yaml.safe_load((case / "case.yaml").read_text())
    r = dse("model", *[case / "inputs" / f for f in meta["inputs"]], "--out", tmp_path, "-q")
    assert r.exit_code == 0, r.output
    got = {(x["level"], x["tensor"]): x for x in csv.DictReader(open(tmp_path / "levels.csv"))}
    expected = list(csv.DictReader(open(case / "expected.csv")))
    shared = [c for c in expected[0] if c in next(iter(got.values()))
              and c not in ("level", "tensor")]
    if name != "sparseloop_01_2_1_dudu_dot_product":  # the dense anchor: dense columns only
        assert "skipped_reads_per_instance" in shared and "computes" in shared
    for want in expected:
        have = got[(want["level"], want["tensor"])]
        for col in shared:
            w, h = want[col], have[col]
            if w == "" or h == "":
                continue
            if col == "energy_pJ":
                assert float(h) == pytest.approx(float(w), rel=0.01, abs=0.011), (want, col)
            elif col in ("representation_format", "density_distribution"):
                assert h == w, (want["level"], want["tensor"], col)
            else:
                assert abs(float(h) - float(w)) <= 1, (want["level"], want["tensor"], col, h, w)
