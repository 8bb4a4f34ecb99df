"""Hardware rules and pass structure reach every command: map, model, run, sweep."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from dse.cli import main
from tests.conftest import REPO

C65 = ("problem: {version: 1, type: conv2d, name: c65, N: 1, C: 65, M: 64, P: 32, Q: 32,"
       " R: 3, S: 3}\n")
DW = """\
network:
  version: 1
  name: dwnet
  input: {C: 32, H: 16}
  layers:
    - {name: dw, type: depthwise, C: 32, H: 16, R: 3, pad: 1, P: 16, inputs: [input]}
"""
MAX = str(REPO / "arch_specs" / "max78000.yaml")


def invoke(args: list[str]):
    return CliRunner().invoke(main, args)


def test_map_pads_channels_into_passes_and_reports_true_macs(tmp_path: Path) -> None:
    (tmp_path / "c65.yaml").write_text(C65)
    r = invoke(["map", MAX, str(tmp_path / "c65.yaml"), "--max-evals", "2000",
                "--out", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0, r.output
    assert "C 65 -> 72" in r.output  # the note names the padding
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["padded_from"] == {"C": 65}
    assert s["true_macs"] == 65 * 64 * 32 * 32 * 9 < s["macs"]


def test_run_refuses_a_network_the_hardware_cannot_run(tmp_path: Path) -> None:
    (tmp_path / "dw.yaml").write_text(DW)
    r = invoke(["run", "--arch", MAX, "--workload", str(tmp_path / "dw.yaml"),
                "--out", str(tmp_path / "o"), "--store", str(tmp_path / "s.sqlite"), "-q"])
    assert r.exit_code == 2
    assert "rule 'allow_groups' of max78000" in r.output and "Traceback" not in r.output


def test_model_checks_rules_before_evaluating(tmp_path: Path) -> None:
    (tmp_path / "dw.yaml").write_text(
        "problem: {version: 1, type: conv2d, name: s2, N: 1, C: 16, M: 16, P: 8, Q: 8, R: 3,"
        " S: 3, stride: 2}\n")
    r = invoke(["model", MAX, str(tmp_path / "dw.yaml"),
                str(REPO / "mappings" / "eyeriss_like_vgg02_conv5.yaml")])
    assert r.exit_code == 2
    assert "rule 'strides' of max78000" in r.output


def test_set_changes_an_architecture_parameter(tmp_path: Path) -> None:
    aie = str(REPO / "arch_specs" / "aie_npu.yaml")
    layer = str(REPO / "workloads" / "resnet18_conv2_x.yaml")
    peaks = {}
    for cols in ("1", "4"):
        r = invoke(["map", aie, layer, "--set", f"columns={cols}", "--max-evals", "1500",
                    "--out", str(tmp_path / cols), "-q"])
        assert r.exit_code == 0, r.output
        rows = (tmp_path / cols / "levels.csv").read_text().splitlines()
        peaks[cols] = int(next(x for x in rows if ",compute," in x).split(",")[2])
    assert peaks["4"] == 4 * peaks["1"]  # compute instances scale with the columns
    r = invoke(["map", aie, layer, "--set", "columns=9", "--max-evals", "10",
                "--out", str(tmp_path / "bad"), "-q"])
    assert r.exit_code == 2 and "columns" in r.output


def test_sweep_records_refused_points_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "dw.yaml").write_text(DW)
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"""\
sweep:
  version: 1
  name: t
  architectures: [{MAX}, {REPO / 'arch_specs' / 'eyeriss_like.yaml'}]
  workloads: [{tmp_path / 'dw.yaml'}]
  mapper: {{objective: edp, search: auto, max_evals: 500, seed: 0}}
""")
    r = invoke(["sweep", str(sweep), "--out", str(tmp_path / "o"), "--store",
                str(tmp_path / "st.sqlite"), "-q"])
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "o" / "sweep.json").read_text())
    assert list(info["refused"]) == ["max78000__dw"]
    assert "allow_groups" in info["refused"]["max78000__dw"]
    rows = (tmp_path / "o" / "sweep.csv").read_text().splitlines()
    assert len(rows) == 2 and "eyeriss_like" in rows[1]
