"""The CLI end to end: the bundled default (what `make run` evaluates), output files, convert."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from click.testing import CliRunner

from dse.cli import main
from tests.conftest import REPO, TIMELOOP_REFS

DEFAULT = [str(REPO / p) for p in ("arch_specs/eyeriss_like.yaml", "workloads/vgg02_conv5.yaml",
                                   "mappings/eyeriss_like_vgg02_conv5.yaml")]
REQUIRED = ["level", "tensor", "instances", "utilized_instances", "utilized_capacity_words",
            "reads_per_instance", "fills_per_instance", "updates_per_instance", "energy_pJ"]


def test_default_run_writes_levels_and_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["model", *DEFAULT, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "5,505,024" in result.output  # cycles in the terminal table
    rows = list(csv.DictReader(open(tmp_path / "levels.csv")))
    assert set(REQUIRED) <= set(rows[0])
    kinds = {(r["level"], r["tensor"]) for r in rows}
    assert ("mac", "compute") in kinds and ("shared_glb", "leakage") in kinds
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("macs", "cycles", "utilization", "energy_pJ", "pJ_per_mac", "level_energy_pJ"):
        assert key in summary
    assert summary["cycles"] == 5_505_024
    # the rows add up to the total (leakage rows included, no double counting)
    assert abs(sum(float(r["energy_pJ"]) for r in rows) - summary["energy_pJ"]) < 1e-3
    prov = summary["provenance"]
    digest = hashlib.sha256(Path(DEFAULT[0]).read_bytes()).hexdigest()
    assert {"file": DEFAULT[0], "sha256": digest} in prov["inputs"]
    assert prov["energy_sources"]["shared_glb.read"].startswith("spec:inline")


def test_same_inputs_give_identical_files(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        CliRunner().invoke(main, ["model", *DEFAULT, "-q", "--out", str(tmp_path / sub)])
    for name in ("levels.csv", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_convert_timeloop_to_native_keeps_numbers(tmp_path: Path) -> None:
    inputs = TIMELOOP_REFS / "ispass_04_conv1d_oc_3levelspatial_cp" / "inputs"
    files = [str(inputs / "parsed-processed-input.yaml"), str(inputs / "timeloop-model.ERT.yaml")]
    r = CliRunner().invoke(main, ["convert", *files, "--out", str(tmp_path / "native")])
    assert r.exit_code == 0, r.output
    native = sorted(str(p) for p in (tmp_path / "native").glob("*.yaml"))
    assert len(native) == 3
    for src, out in ((files, "tl"), (native, "nat")):
        r = CliRunner().invoke(main, ["model", *src, "-q", "--out", str(tmp_path / out)])
        assert r.exit_code == 0, r.output
    a = json.loads((tmp_path / "tl" / "summary.json").read_text())
    b = json.loads((tmp_path / "nat" / "summary.json").read_text())
    assert a["cycles"] == b["cycles"] == 3072
    assert abs(a["energy_pJ"] - b["energy_pJ"]) < 1e-6 * a["energy_pJ"]


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "model" in result.output and "convert" in result.output
