"""N:M structured sparsity (`structured: {n, m}` on a format's data space, a dse extension):
a design that declares 2:4 Weights (arch_specs/tensor_core_2to4.yaml) runs a fixed_structured
density below 0.5 at the 2:4 pace, refuses a density it cannot run (above 0.5, unstructured),
and runs a dense layer in its dense mode. Each check compares with a copy of the design
without the declaration, which still skips by density (what the model did before)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from dse.cli import main
from dse.pipeline.spec import load_arch
from dse.spec.network import load_network_text

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "sparse_designs"
DECLARED = REPO / "arch_specs" / "tensor_core_2to4.yaml"
MAPPING = DATA / "tensor_core_2to4.map.yaml"
INDENT = " " * 12
DECLARATION = INDENT + "structured: {n: 2, m: 4}"  # on a format entry (not the header's text)


def _undeclared(tmp: Path) -> Path:
    """tensor_core_2to4 without its 2:4 declarations (the header's text is left as it is)."""
    text = DECLARED.read_text()
    out = re.sub(r"\n *structured: \{n: 2, m: 4\}[^\n]*", "", text)
    assert out.count("\n") == text.count("\n") - 3  # one per level: DRAM, smem, registers
    path = tmp / "tc_undeclared.yaml"
    path.write_text(out)
    return path


def _design(tmp: Path, old: str, new: str) -> Path:
    """tensor_core_2to4 with its first 2:4 declaration replaced."""
    text = DECLARED.read_text()
    assert old in text
    path = tmp / "tc_bad.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def _layer(tmp: Path, density: str | None, pq: int = 14) -> Path:
    """The 3x3, 256 -> 256 conv of conv_2to4.yaml; `density`: its Weights density (a
    `{distribution, density}` mapping text), None = dense."""
    text = (DATA / "conv_2to4.yaml").read_text().replace("P: 14", f"P: {pq}") \
        .replace("Q: 14", f"Q: {pq}")
    old = "  densities: {Weights: {distribution: fixed_structured, density: 0.5}}\n"
    assert old in text
    text = text.replace(old, "" if density is None else f"  densities: {{Weights: {density}}}\n")
    path = tmp / f"conv_{abs(hash((density, pq)))}.yaml"
    path.write_text(text)
    return path


def _fs(d: float) -> str:
    return f"{{distribution: fixed_structured, density: {d}}}"


def _cli(*args) -> tuple[int, str]:
    res = CliRunner().invoke(main, [*map(str, args)])
    return res.exit_code, res.output


def _model(tmp: Path, arch: Path, layer: Path, name: str):
    out = tmp / name
    code, text = _cli("model", arch, layer, MAPPING, "--out", out, "-q")
    assert code == 0, text
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "levels.csv", newline="") as f:
        rows = {(r["level"], r["tensor"]): r for r in csv.DictReader(f)}
    return summary, rows, text


KEYS = ("cycles", "energy_pJ", "actual_computes", "skipped_computes", "gated_computes")


def test_density_half_is_what_it_was_without_the_declaration(tmp_path: Path) -> None:
    """At 0.5 (what the hardware does) the declaration changes nothing, row by row."""
    layer = _layer(tmp_path, _fs(0.5))
    s, rows, _ = _model(tmp_path, DECLARED, layer, "decl")
    u, urows, _ = _model(tmp_path, _undeclared(tmp_path), layer, "undecl")
    assert {k: s[k] for k in KEYS} == {k: u[k] for k in KEYS}
    assert rows == urows
    assert s["actual_computes"] == s["macs"] // 2


@pytest.mark.parametrize("density", [0.3, 0.25, 0.1])
def test_a_lower_density_runs_at_the_2to4_pace(tmp_path: Path, density: float) -> None:
    """Below 0.5 the core still keeps 2 of every 4 (the extra zeros stored as values): the
    same cycles, energy and counts as 0.5; the undeclared copy skips them (fewer cycles)."""
    half, half_rows, _ = _model(tmp_path, DECLARED, _layer(tmp_path, _fs(0.5)), "half")
    low_layer = _layer(tmp_path, _fs(density))
    low, low_rows, text = _model(tmp_path, DECLARED, low_layer, "low")
    assert {k: low[k] for k in KEYS} == {k: half[k] for k in KEYS}
    for key, row in low_rows.items():
        for col in ("reads_per_instance", "skipped_reads_per_instance",
                    "utilized_capacity_words", "metadata_reads_per_instance"):
            assert row[col] == half_rows[key][col], (key, col)
    assert f"Weights density {density:g} runs 2:4" in text
    free, _, _ = _model(tmp_path, _undeclared(tmp_path), low_layer, "undecl")
    assert free["cycles"] < half["cycles"]
    assert free["actual_computes"] < half["actual_computes"]
    assert free["energy_pJ"] < half["energy_pJ"]


def test_a_dense_layer_runs_in_the_dense_mode(tmp_path: Path) -> None:
    """No density: the core's dense mode, no 2:4 metadata: exactly the dense model's cycles
    and energy (the undeclared copy pays the CP metadata of dense weights)."""
    layer = _layer(tmp_path, None)
    s, rows, text = _model(tmp_path, DECLARED, layer, "decl")
    assert (s["cycles"], s["energy_pJ"]) == (s["dense_cycles"], s["dense_energy_pJ"])
    assert s["actual_computes"] == s["macs"]
    for level in ("DRAM", "registers"):
        assert rows[(level, "Weights")]["representation_format"] == "none"
        assert int(float(rows[(level, "Weights")]["metadata_reads_per_instance"] or 0)) == 0
    assert "Weights is dense: the design runs it in its dense mode" in text
    u, urows, _ = _model(tmp_path, _undeclared(tmp_path), layer, "undecl")
    assert urows[("registers", "Weights")]["representation_format"] == "cp"
    assert u["energy_pJ"] > s["energy_pJ"] and u["cycles"] > s["cycles"]
    # density 1.0 given is the same dense layer
    one, _, _ = _model(tmp_path, DECLARED, _layer(tmp_path, _fs(1.0)), "one")
    assert {k: one[k] for k in KEYS} == {k: s[k] for k in KEYS}


@pytest.mark.parametrize("command", ["model", "map"])
def test_a_density_above_2to4_is_refused(tmp_path: Path, command: str) -> None:
    layer = _layer(tmp_path, _fs(0.7))
    extra = [MAPPING] if command == "model" else ["--max-evals", "50"]
    code, text = _cli(command, DECLARED, layer, *extra, "--out", tmp_path / "o")
    assert code == 2
    assert "Traceback" not in text
    assert f"{layer}:" in text and "problem.densities.Weights" in text
    assert "density 0.7 of Weights exceeds the 2:4 structured sparsity the design supports " \
           "(0.5" in text
    assert "tensor_core_2to4.yaml:" in text  # where the design declares it
    assert "prune Weights 2:4 or use a dense design" in text
    # the undeclared copy runs it (skipping by density, as before)
    assert _cli(command, _undeclared(tmp_path), layer, *extra, "--out", tmp_path / "u",
                "-q")[0] == 0


@pytest.mark.parametrize("density", ["{distribution: hypergeometric, density: 0.3}",
                                     "{distribution: hypergeometric, density: 0.5}"])
def test_an_unstructured_density_is_refused(tmp_path: Path, density: str) -> None:
    """Nonzeros placed at random are not 2:4: the core cannot run them sparse as given."""
    code, text = _cli("model", DECLARED, _layer(tmp_path, density), MAPPING,
                      "--out", tmp_path / "o")
    assert code == 2 and "Traceback" not in text
    assert "Weights has a hypergeometric density" in text and "2:4" in text
    assert "fixed_structured with density <= 0.5" in text


@pytest.mark.parametrize("new,message", [
    ("structured: {n: two, m: 4}", "'n' of N:M structured sparsity is a whole number >= 1"),
    ("structured: {n: true, m: 4}", "'n' of N:M structured sparsity is a whole number >= 1"),
    ("structured: {n: 2, m: 0.5}", "'m' of N:M structured sparsity is a whole number >= 1"),
    ("structured: {n: 4, m: 2}", "expected n < m"),
    ("structured: {n: 4, m: 4}", "expected n < m"),
    ("structured: {n: 2}", "structured sparsity needs 'm'"),
    ("structured: {n: 2, mm: 4}", "did you mean 'm'?"),
    ("structured: 2:4", "expected a mapping of keys"),
    ("structured:", "expected a mapping of keys"),  # left empty: refused, not dropped
    ("structured: {n: 2, m: 8}", "Weights is declared 2:4 here but 2:8 at DRAM"),
    ("structued: {n: 2, m: 4}", "did you mean 'structured'?"),
])
def test_a_bad_declaration_is_refused(tmp_path: Path, new: str, message: str) -> None:
    if "m: 8" in new:  # the second level (smem) disagrees with the first
        text = DECLARED.read_text()
        first = text.index(DECLARATION)
        second = text.index(DECLARATION, first + 1)
        arch = tmp_path / "tc_bad.yaml"
        arch.write_text(text[:second] + INDENT + new + text[second + len(DECLARATION):])
        message = message.replace("2:4 here but 2:8", "2:8 here but 2:4")
    else:
        arch = _design(tmp_path, DECLARATION, INDENT + new)
    code, text = _cli("model", arch, _layer(tmp_path, _fs(0.5)), MAPPING, "--out",
                      tmp_path / "o")
    assert code == 2, text
    assert "Traceback" not in text
    assert message in text, text
    assert "tc_bad.yaml:" in text and "representation_format.data_spaces[0]" in text


@pytest.mark.parametrize("old,new,message", [
    ("ranks: [{format: CP, metadata_word_bits: 2}]", "ranks: [{format: UOP}]",
     "expected a CP, RLE or B rank; found 'UOP'"),
    ("- name: Weights\n            structured", "- name: Outputs\n            structured",
     "structured sparsity is a property of an operand; Outputs is the tensor this layer "
     "writes"),
])
def test_a_declaration_the_format_cannot_hold_is_refused(tmp_path: Path, old: str, new: str,
                                                         message: str) -> None:
    code, text = _cli("model", _design(tmp_path, old, new), _layer(tmp_path, _fs(0.5)), MAPPING,
                      "--out", tmp_path / "o")
    assert code == 2 and "Traceback" not in text
    assert message in text, text


def test_the_mapper_reports_at_most_2x_for_a_lower_density(tmp_path: Path) -> None:
    """`dse map` on a 56x56 layer (compute-bound) at Weights 0.3: the best mapping takes half
    the dense cycles of the same mapping (2:4 pace), not the 1/0.3 the undeclared copy claims,
    and is no more than 2x faster than the best dense mapping."""
    def best(arch: Path, density: str | None, name: str) -> dict:
        out = tmp_path / name
        code, text = _cli("map", arch, _layer(tmp_path, density, pq=56), "--out", out,
                          "--max-evals", "3000", "--objective", "delay", "-q")
        assert code == 0, text
        return json.loads((out / "summary.json").read_text())

    s = best(DECLARED, _fs(0.3), "decl")
    assert s["dense_cycles"] / s["cycles"] == pytest.approx(2.0, abs=0.01)
    assert s["actual_computes"] == s["macs"] // 2
    dense = best(DECLARED, None, "dense")
    assert dense["actual_computes"] == dense["macs"]
    assert dense["cycles"] / s["cycles"] <= 2.0
    free = best(_undeclared(tmp_path), _fs(0.3), "undecl")
    assert free["dense_cycles"] / free["cycles"] > 2.2  # what the clamp removes


NET = """network:
  name: t
  input: {C: 64, H: 16}
  layers:
    - {name: c1, type: conv2d, C: 64, K: 64, H: 16, R: 3, pad: 1, P: 16, DENS}
    - {name: p1, type: maxpool, C: 64, H: 16, R: 2, stride: 2, P: 8}
"""


def test_network_layers_get_the_2to4_density() -> None:
    """`dse run` reads a layer's densities through ArchInput.sparse_for: the same rules."""
    from dse.arch.rules import prepare_problem

    arch = load_arch([str(DECLARED)])
    net = load_network_text(NET.replace("DENS", "densities: {Weights: 0.3}"), "t")
    c1 = net.layer("c1")
    spec = arch.sparse_for(prepare_problem(c1.problem, arch.arch)[0], c1.densities)
    assert spec.densities["Weights"].density == 0.5
    assert spec.densities["Weights"].distribution == "fixed_structured"
    pool = net.layer("p1")  # no Weights: the declaration does not apply
    spec = arch.sparse_for(prepare_problem(pool.problem, arch.arch)[0], pool.densities)
    assert "Weights" not in spec.densities and not spec.formats


def test_dse_run_refuses_a_layer_the_design_cannot_run_sparse(tmp_path: Path) -> None:
    net = tmp_path / "net.yaml"
    net.write_text(NET.replace("DENS", "densities: {Weights: 0.7}"))
    code, text = _cli("run", "--arch", "tensor_core_2to4", "--workload", net, "--out",
                      tmp_path / "o", "--max-evals", "100", "-q", "--store",
                      tmp_path / "s.sqlite")
    assert code == 2 and "Traceback" not in text
    assert f"{net}:5:" in text and "network.layers (c1).densities.Weights" in text
    assert "density 0.7 of Weights in layer 'c1' exceeds the 2:4" in text


def test_dse_run_reports_at_most_2x(tmp_path: Path) -> None:
    net = tmp_path / "net.yaml"
    net.write_text(NET.replace("DENS", "densities: {Weights: 0.3}"))
    code, text = _cli("run", "--arch", "tensor_core_2to4", "--workload", net, "--out",
                      tmp_path / "o", "--max-evals", "300", "-q", "--store",
                      tmp_path / "s.sqlite")
    assert code == 0, text
    rows = {r["layer"]: r for r in csv.DictReader(open(tmp_path / "o" / "layers.csv"))}
    c1 = rows["c1"]
    assert 1.0 < float(c1["sparse_speedup"]) <= 2.0
    assert int(c1["actual_computes"]) == int(c1["ops"]) // 2


def test_arch_show_names_the_declaration() -> None:
    code, text = _cli("arch", "show", "tensor_core_2to4")
    assert code == 0, text
    assert "registers: Weights CP 2:4 structured; skipping Inputs on Weights" in text
