"""Maps that dse writes name the levels as Timeloop names them (tests/timeloop_names.py), so
`timeloop-model` finds every target; `dse convert --to timeloop` and the map agree."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from dse.cli import main
from dse.model import evaluate
from dse.spec.build import load_spec
from tests.conftest import REPO, TIMELOOP_RAW
from tests.timeloop_names import storage_level_names, unknown_targets

EX = TIMELOOP_RAW / "Accelergy-Project"
V04 = (EX / "timeloop-accelergy-exercises@2ffec69" / "workspace" / "tutorial_exercises"
       / "01_accelergy_timeloop_2020_ispass" / "timeloop")
V03 = EX / "timeloop-accelergy-exercises@778460f" / "workspace" / "exercises" / "2020.ispass"
NATIVE = [REPO / "arch_specs" / "eyeriss_like.yaml", REPO / "workloads" / "vgg02_conv5.yaml",
          REPO / "mappings" / "eyeriss_like_vgg02_conv5.yaml"]


def text(path) -> str:
    return path.read_text()


def test_checker_follows_timeloop_on_its_own_files() -> None:
    ex04 = V04 / "04-model-conv1d+oc-3levelspatial"
    arch = text(ex04 / "arch" / "3levelspatial.arch.yaml")
    assert storage_level_names(arch) == ["MainMemory", "inter_PE_spatial", "GlobalBuffer",
                                         "RegisterFile"]
    # the exercise's map names the container (its front end rewrote that); the C++ rule refuses
    assert unknown_targets(arch, text(ex04 / "map" / "conv1d+oc+ic-3levelspatial-kp-ws.map.yaml")
                           ) == ["PE"]
    # what Timeloop's mapper emitted for a v0.4 arch passes
    ex06 = V04 / "06-mapper-convlayer-eyeriss"
    assert unknown_targets(text(ex06 / "arch" / "eyeriss_like.yaml"),
                           text(ex06 / "ref-output" / "timeloop-mapper.map.yaml")) == []
    # v0.3: names with ranges, the compute unit excluded
    v03 = text(V03 / "timeloop+accelergy" / "arch" / "eyeriss_like-int16.yaml")
    assert storage_level_names(v03) == ["DRAM", "shared_glb", "DummyBuffer", "ifmap_spad",
                                        "weights_spad", "psum_spad"]


def test_converted_architecture_and_map_agree(tmp_path) -> None:
    res = CliRunner().invoke(main, ["convert", "--to", "timeloop", *map(str, NATIVE),
                                    "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    arch, mp = text(tmp_path / "architecture.yaml"), text(tmp_path / "map.yaml")
    names = storage_level_names(arch)
    assert "inter_PE_column_spatial" in names and "PE_column" not in names
    assert unknown_targets(arch, mp) == []
    # and the Timeloop files evaluate exactly as the native ones
    native = load_spec(NATIVE)
    tl = load_spec([tmp_path / f for f in ("architecture.yaml", "problem.yaml", "map.yaml",
                                           "ERT.yaml")])
    a = evaluate(native.problem, native.arch, native.mapping)
    b = evaluate(tl.problem, tl.arch, tl.mapping)
    assert (a.cycles, a.energy_pJ) == (b.cycles, pytest.approx(b.energy_pJ, rel=1e-12))
    assert [lv.name for lv in tl.arch.levels] == [n for n in names]


def test_dse_map_writes_targets_timeloop_finds(tmp_path) -> None:
    problem = {"problem": {"version": 0.4, "shape": "cnn-layer", "instance": {
        "C": 4, "M": 8, "R": 1, "S": 1, "N": 1, "P": 4, "Q": 4}}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(problem))
    arch = str(NATIVE[0])
    res = CliRunner().invoke(main, ["map", arch, str(tmp_path / "p.yaml"), "--max-evals", "300",
                                    "--out", str(tmp_path / "m"), "-q"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["convert", "--to", "timeloop", arch, "--out",
                                    str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    mp = text(tmp_path / "m" / "map.yaml")
    assert "PE_column" in mp  # the search used the fan-out levels
    assert unknown_targets(text(tmp_path / "c" / "architecture.yaml"), mp) == []
