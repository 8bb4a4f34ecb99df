"""Each class of bad input gives one paragraph naming file:line and the key, exit code 2,
and no traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dse.cli import main

ARCH = """\
architecture:
  version: 0.4
  nodes:
  - !Container
    name: system
    attributes: {technology: 45nm}
  - !Component
    name: MainMemory
    class: DRAM
    attributes: {width: 64, datawidth: 8, energy: {read: 64, write: 64, update: 64}}
  - !Component
    name: Buffer
    class: SRAM
    attributes: {depth: 64, width: 8, datawidth: 8,
                 energy: {read: 1.0, write: 1.2, update: 1.2, leak: 0.01}}
  - !Component
    name: MAC
    class: intmac
    attributes: {energy: {compute: 0.5}}
"""
PROBLEM = """\
problem:
  version: 0.4
  shape:
    name: conv1d
    dimensions: [R, P]
    data_spaces:
    - {name: Weights, projection: [[[R]]]}
    - {name: Inputs, projection: [[[R], [P]]]}
    - {name: Outputs, projection: [[[P]]], read_write: true}
  instance: {R: 3, P: 16}
"""
MAPPING = """\
mapping:
- {target: MainMemory, type: temporal, factors: R=1 P=4, permutation: RP}
- {target: Buffer, type: temporal, factors: R=3 P=4, permutation: RP}
"""


def run(tmp_path: Path, arch: str = ARCH, problem: str = PROBLEM, mapping: str = MAPPING):
    files = []
    for name, text in (("arch.yaml", arch), ("prob.yaml", problem), ("map.yaml", mapping)):
        p = tmp_path / name
        p.write_text(text)
        files.append(str(p))
    return CliRunner().invoke(main, ["model", *files, "--out", str(tmp_path / "out")])


def assert_clean_error(result, filename: str, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    msg = result.output
    assert "Traceback" not in msg
    assert msg.startswith("error: ")
    assert msg.strip().count("\n") == 0, "one paragraph"
    assert re.search(re.escape(filename) + r":\d+", msg), f"no file:line in {msg!r}"
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


def test_valid_input_runs(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "levels.csv").exists()


def test_unknown_key(tmp_path: Path) -> None:
    bad = PROBLEM.replace("  instance:", "  instanse:")
    msg = assert_clean_error(run(tmp_path, problem=bad), "prob.yaml", "instanse")
    assert "did you mean 'instance'" in msg


def test_wrong_type(tmp_path: Path) -> None:
    bad = ARCH.replace("depth: 64", "depth: lots")
    assert_clean_error(run(tmp_path, arch=bad), "arch.yaml", "depth", "lots")


def test_missing_dimension(tmp_path: Path) -> None:
    bad = PROBLEM.replace("{R: 3, P: 16}", "{R: 3}")
    assert_clean_error(run(tmp_path, problem=bad), "prob.yaml", "P", "problem.instance")


def test_factor_mismatch(tmp_path: Path) -> None:
    bad = MAPPING.replace("R=1 P=4", "R=1 P=2")
    assert_clean_error(run(tmp_path, mapping=bad), "map.yaml", "P", "multiply to 8", "16")


def test_duplicate_key(tmp_path: Path) -> None:
    bad = PROBLEM.replace("    name: conv1d\n", "    name: conv1d\n    name: again\n")
    assert_clean_error(run(tmp_path, problem=bad), "prob.yaml", "twice")


def test_bad_yaml(tmp_path: Path) -> None:
    bad = MAPPING.replace("permutation: RP}", "permutation: RP")
    assert_clean_error(run(tmp_path, mapping=bad), "map.yaml", "not valid YAML")


def test_capacity_exceeded_names_level(tmp_path: Path) -> None:
    bad = ARCH.replace("depth: 64", "depth: 4")
    assert_clean_error(run(tmp_path, arch=bad), "map.yaml", "Buffer", "holds 4 words")


def test_unknown_level_in_mapping(tmp_path: Path) -> None:
    bad = MAPPING.replace("target: Buffer", "target: Bufer")
    msg = assert_clean_error(run(tmp_path, mapping=bad), "map.yaml", "Bufer")
    assert "did you mean 'Buffer'" in msg


def test_missing_energy_is_an_error_not_a_default(tmp_path: Path) -> None:
    bad = ARCH.replace("energy: {read: 1.0, write: 1.2, update: 1.2, leak: 0.01}", "")
    result = run(tmp_path, arch=bad)
    assert result.exit_code == 2
    assert "no energy" in result.output and "Buffer" in result.output


def test_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("problem: [1, 2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "dse", "model", str(tmp_path / "p.yaml")],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "p.yaml:" in proc.stderr


def test_later_file_wins_and_is_noted(tmp_path: Path) -> None:
    other = MAPPING.replace("R=1 P=4, permutation: RP}", "R=1 P=4, permutation: PR}")
    (tmp_path / "map2.yaml").write_text(other)
    files = []
    for name, text in (("arch.yaml", ARCH), ("prob.yaml", PROBLEM), ("map.yaml", MAPPING)):
        (tmp_path / name).write_text(text)
        files.append(str(tmp_path / name))
    result = CliRunner().invoke(main, ["model", *files, str(tmp_path / "map2.yaml")])
    assert result.exit_code == 0
    assert "map2.yaml" in result.output and "replaces" in result.output


@pytest.mark.parametrize("expr,value", [("16*1024", 16384), ("max(1, ceil(log2(12)))", 4)])
def test_safe_expressions(expr: str, value: int) -> None:
    from dse.spec.expr import evaluate_expression

    assert evaluate_expression(expr) == value


def test_expressions_refuse_code() -> None:
    from dse.spec.expr import ExpressionError, evaluate_expression

    with pytest.raises(ExpressionError):
        evaluate_expression("__import__('os').system('true')")
    with pytest.raises(ExpressionError):
        evaluate_expression("(1).__class__")
