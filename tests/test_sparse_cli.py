"""`dse model` and `dse map` on Sparseloop inputs write the sparse columns and totals; `dse run`
on a sparse architecture and a workload with densities writes the sparse layer columns; bad
sparse input gets a clear error."""

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


def test_map_searches_sparse_designs(tmp_path: Path) -> None:
    """dse map on the gated dot product: the search scores rows with the sparse step and
    writes the sparse levels.csv columns and summary for the best mapping."""
    r = dse("map", *FILES[:1], FILES[2], "--out", tmp_path, "--max-evals", "300", "-q")
    assert r.exit_code == 0, r.output
    rows = {(x["level"], x["tensor"]): x for x in csv.DictReader(open(tmp_path / "levels.csv"))}
    assert rows[("Buffer", "B")]["algorithmic_reads_per_instance"] == "16"
    assert rows[("mac", "compute")]["computes"] == "4"
    summ = json.loads((tmp_path / "summary.json").read_text())
    search = json.loads((tmp_path / "search.json").read_text())
    assert summ["actual_computes"] == 4 and summ["macs"] == 16
    assert search["best"]["energy_pJ"] == pytest.approx(summ["energy_pJ"])
    assert search["best"]["energy_pJ"] < summ["dense_energy_pJ"]
    assert search["bound_skip"] is True  # with the sparse bounds (dse.mapper.bounds)


def test_map_refuses_the_legacy_generation_for_sparse_designs(tmp_path: Path) -> None:
    r = dse("map", *FILES[:1], FILES[2], "--out", tmp_path, "--max-evals", "10", "-q",
            "--timeloop-generation", "legacy")
    assert r.exit_code == 2 and "2024 Timeloop (Sparseloop) build only" in r.output


@pytest.mark.parametrize("old,new,needles", [
    ("distribution: fixed_structured", "distribution: fixed_structure",
     ["did you mean 'fixed_structured'", "densities.A.distribution"]),
    # the dot product's A is 1-D: Sparseloop's banded model takes square matrices only
    ("distribution: fixed_structured", "distribution: banded",
     ["banded density model needs a square 2-D tensor", "found '16'"]),
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


SPARSE_TARGETS = """
sparse_optimizations:
  targets:
  - name: weights_spad
    action_optimization:
    - type: gating
      options: [{target: Weights, condition_on: [Inputs]}]
  - name: psum_spad
    action_optimization:
    - type: skipping
      options: [{target: Outputs, condition_on: [Inputs]}]
  - name: ifmap_spad
    representation_format:
      data_spaces:
      - name: Inputs
        ranks: [{format: RLE}]
"""

TINY_NET = """
network:
  version: 1
  name: tiny
  input: {C: 8, H: 8}
  bits: {weights: 8, activations: 8, bias: 16, accumulator: 32}
  layers:
    - {name: c1, type: conv2d, C: 8, K: 16, H: 8, R: 3, pad: 1, P: 8, bias: false,
       inputs: [input], densities: {Inputs: 0.5}}
    - {name: c2, type: conv2d, C: 16, K: 16, H: 8, R: 3, pad: 1, P: 8, bias: false,
       inputs: [c1], densities: {Inputs: 0.25, Weights: {distribution: hypergeometric,
                                                         density: 0.5}}}
    - {name: c3, type: conv2d, C: 16, K: 16, H: 8, R: 3, pad: 1, P: 8, bias: false,
       inputs: [c2]}
"""


def _sparse_design(tmp_path: Path) -> tuple[Path, Path]:
    root = Path(__file__).resolve().parents[1] / "arch_specs"
    arch = tmp_path / "eyeriss_sparse.yaml"
    arch.write_text((root / "eyeriss_like.yaml").read_text() + SPARSE_TARGETS)
    (tmp_path / "eyeriss_sparse.constraints.yaml").write_text(
        (root / "eyeriss_like.constraints.yaml").read_text())
    net = tmp_path / "tiny.yaml"
    net.write_text(TINY_NET)
    return arch, net


def test_run_writes_sparse_layer_columns(tmp_path: Path) -> None:
    """Each layer searched with the sparse step and again dense (its own stored task): the
    speed-up and energy saving are the ratios of the two; a second run reuses every result
    and writes the same layers.csv."""
    arch, net = _sparse_design(tmp_path)
    args = ["run", "--arch", arch, "--workload", net, "--max-evals", "1500", "-q",
            "--store", tmp_path / "store.sqlite"]
    r = dse(*args, "--out", tmp_path / "a")
    assert r.exit_code == 0, r.output
    rows = {x["layer"]: x for x in csv.DictReader(open(tmp_path / "a" / "layers.csv"))}
    assert rows["c1"]["densities"] == "Inputs=0.5"
    assert rows["c2"]["densities"] == "Inputs=0.25 Weights=0.5"
    assert rows["c3"]["densities"] == "dense"
    for x in rows.values():
        assert x["status"] == "ok"
        cyc, dense_cyc = int(x["cycles"]), int(x["dense_cycles"])
        e, dense_e = float(x["energy_pJ"]), float(x["dense_energy_pJ"])
        assert float(x["sparse_speedup"]) == pytest.approx(dense_cyc / cyc)
        assert float(x["sparse_energy_saving"]) == pytest.approx(1 - e / dense_e)
        assert int(x["actual_computes"]) <= int(x["ops"])
    # half the inputs are zero: the MACs they would feed vanish, and gating saves energy
    assert int(rows["c1"]["actual_computes"]) == int(rows["c1"]["ops"]) // 2
    assert float(rows["c1"]["sparse_energy_saving"]) > 0.05
    again = dse(*args, "--out", tmp_path / "b")
    assert again.exit_code == 0, again.output
    assert (tmp_path / "a" / "layers.csv").read_bytes() == \
        (tmp_path / "b" / "layers.csv").read_bytes()


def test_dense_run_layers_csv_is_unchanged_by_the_sparse_columns(tmp_path: Path) -> None:
    net = tmp_path / "tiny.yaml"
    net.write_text(TINY_NET.replace("densities:", "_densities:"))
    r = dse("run", "--arch", "eyeriss_like", "--workload", net, "--max-evals", "200", "-q",
            "--store", tmp_path / "s.sqlite", "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    header = (tmp_path / "o" / "layers.csv").read_text().splitlines()[0]
    assert "densities" not in header and "sparse_speedup" not in header


@pytest.mark.parametrize("old,new,needles", [
    ("densities: {Inputs: 0.5}", "densities: {Input: 0.5}",
     ["unknown tensor 'Input'", "did you mean 'Inputs'", "tiny.yaml:"]),
    ("densities: {Inputs: 0.5}", "densities: {Inputs: 2}", ["a density is a number in (0, 1]"]),
    ("distribution: hypergeometric", "distribution: banded", ["banded", "not modelled yet"]),
])
def test_bad_layer_densities_are_clear_errors(tmp_path: Path, old: str, new: str,
                                              needles: list[str]) -> None:
    arch, net = _sparse_design(tmp_path)
    net.write_text(TINY_NET.replace(old, new))
    r = dse("run", "--arch", arch, "--workload", net, "--max-evals", "10", "-q",
            "--store", tmp_path / "s.sqlite", "--out", tmp_path / "o")
    assert r.exit_code == 2, r.output
    for needle in needles:
        assert needle in r.output


def test_run_refuses_what_sparse_designs_do_not_model(tmp_path: Path) -> None:
    arch, net = _sparse_design(tmp_path)
    base = ["run", "--arch", arch, "--workload", net, "--max-evals", "10", "-q",
            "--store", tmp_path / "s.sqlite", "--out", tmp_path / "o"]
    r = dse(*base, "--timeloop-generation", "legacy")
    assert r.exit_code == 2 and "2024 Timeloop (Sparseloop) build only" in r.output
    r = dse(*base, "--schedule", "fused")
    assert r.exit_code == 2 and "not modelled for sparse designs" in r.output


@pytest.mark.parametrize("case", ["sparseloop_04_2_1_eyeriss_like_gating",
                                  "sparseloop_02_2_2_spmspm_tiled"])
def test_map_is_identical_on_the_kernel_and_the_numpy_passes(tmp_path: Path, monkeypatch,
                                                              case: str) -> None:
    """The sparse search takes its dense detail from the compiled kernel (dse.model.kernel)
    or, with DSE_KERNEL=numpy, from the numpy passes: the same best mapping, the same
    evaluated/skipped/valid counts and a byte-identical levels.csv either way."""
    from dse.model import kernel as kernels

    if not kernels.numba_available():
        pytest.skip("numba not installed")
    inputs = SPARSELOOP_REFS / case / "inputs"
    out = {}
    for kernel in ("numba", "numpy"):
        monkeypatch.setenv(kernels.ENV, kernel)
        folder = tmp_path / kernel
        r = dse("map", inputs / "parsed-processed-input.yaml", inputs / "timeloop-mapper.ERT.yaml",
                "--out", folder, "--max-evals", "3000", "--seed", "4", "-q")
        assert r.exit_code == 0, r.output
        search = json.loads((folder / "search.json").read_text())
        timing = ("wall_s", "evals_per_s")
        out[kernel] = ({k: v for k, v in search.items() if k not in timing},
                       (folder / "levels.csv").read_bytes(),
                       (folder / "map.yaml").read_bytes(),
                       (folder / "summary.json").read_text())
    assert out["numba"] == out["numpy"]
    assert out["numba"][0]["evaluated"] > 0
