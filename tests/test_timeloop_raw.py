"""Timeloop's own input files, as users have them (tests/data/timeloop_raw, verbatim), load as
they are and reproduce the reference numbers: counts exact, energies within 0.5 %.

Each ISPASS case is loaded from the raw exercise files of the 2ffec69 tree (architecture with its
component files, problem, the exercise's map file or the mapper's emitted map, mapper/constraint
files) plus the case's reference ERT, which pins energies (no Accelergy here).
"""

from __future__ import annotations

import pytest

from dse.errors import SpecError
from dse.model import evaluate
from dse.spec.build import load_spec
from tests.conftest import TIMELOOP_RAW, TIMELOOP_REFS
from tests.test_timeloop_reference import check_against_reference

ISPASS = (TIMELOOP_RAW / "Accelergy-Project" / "timeloop-accelergy-exercises@2ffec69" / "workspace"
          / "tutorial_exercises" / "01_accelergy_timeloop_2020_ispass")
T = "timeloop/"
EX03 = T + "03-model-conv1d+oc-3level/"
EX04 = T + "04-model-conv1d+oc-3levelspatial/"
EX05 = T + "05-mapper-conv1d+oc-3level/"
EX06 = T + "06-mapper-convlayer-eyeriss/"
TA = "timeloop+accelergy/"
INT = {"psum_datawidth": 16, "input_weight_datawidth": 8, "mac_class": "intmac"}
FP = {"psum_datawidth": 32, "input_weight_datawidth": 32, "mac_class": "fpmac"}

# case -> (raw files in the order a user passes them, Jinja2 data); jinja data as in the
# exercise's run script (it renders arch.yaml with these values; parsed-processed-input confirms)
RAW_CASES: dict[str, tuple[list[str], dict]] = {
    "ispass_00_conv1d_1level": ([
        T + "00-model-conv1d-1level/arch/1level.arch.yaml",
        T + "00-model-conv1d-1level/prob/conv1d.prob.yaml",
        T + "00-model-conv1d-1level/map/conv1d-1level.map.yaml"], {}),
    "ispass_01_conv1d_2level_os": ([
        T + "01-model-conv1d-2level/arch/2level.arch.yaml",
        T + "01-model-conv1d-2level/prob/conv1d.prob.yaml",
        T + "01-model-conv1d-2level/map/conv1d-2level-os.map.yaml"], {}),
    "ispass_01_conv1d_2level_ws": ([
        T + "01-model-conv1d-2level/arch/2level.arch.yaml",
        T + "01-model-conv1d-2level/prob/conv1d.prob.yaml",
        T + "01-model-conv1d-2level/map/conv1d-2level-ws.map.yaml"], {}),
    "ispass_02_conv1d_oc_2level_no_tiling": ([
        T + "02-model-conv1d+oc-2level/arch/2level.arch.yaml",
        T + "02-model-conv1d+oc-2level/prob/conv1d+oc.prob.yaml",
        T + "02-model-conv1d+oc-2level/map/conv1d+oc-2level-os.map.yaml"], {}),
    "ispass_02_conv1d_oc_2level_tiling": ([
        T + "02-model-conv1d+oc-2level/arch/2level.arch.yaml",
        T + "02-model-conv1d+oc-2level/prob/conv1d+oc.prob.yaml",
        T + "02-model-conv1d+oc-2level/map/conv1d+oc-2level-os-tiled.map.yaml"], {}),
    "ispass_03_conv1d_oc_3level_bypass": ([
        EX03 + "arch/3level.arch.yaml", EX03 + "prob/conv1d+oc.prob.yaml",
        EX03 + "map/conv1d+oc-3level-bypass.map.yaml"], {}),
    "ispass_03_conv1d_oc_3level_no_bypass": ([
        EX03 + "arch/3level.arch.yaml", EX03 + "prob/conv1d+oc.prob.yaml",
        EX03 + "map/conv1d+oc-3level.map.yaml"], {}),
    "ispass_04_conv1d_oc_3levelspatial_cp": ([
        EX04 + "arch/3levelspatial.arch.yaml", EX04 + "prob/conv1d+oc+ic.prob.yaml",
        EX04 + "map/conv1d+oc+ic-3levelspatial-cp-ws.map.yaml"], {}),
    "ispass_04_conv1d_oc_3levelspatial_kp": ([
        EX04 + "arch/3levelspatial.arch.yaml", EX04 + "prob/conv1d+oc+ic.prob.yaml",
        EX04 + "map/conv1d+oc+ic-3levelspatial-kp-ws.map.yaml"], {}),
    "ispass_05_mapper_baked": ([
        EX05 + "arch/3level.arch.yaml", EX05 + "prob/conv1d+oc.prob.yaml",
        EX05 + "constraints/conv1d+oc-3level-1mapping.constraints.yaml",
        EX05 + "mapper/exhaustive.mapper.yaml",
        EX05 + "ref-output/baked/timeloop-mapper.map.yaml"], {}),
    "ispass_05_mapper_freebypass": ([
        EX05 + "arch/3level.arch.yaml", EX05 + "prob/conv1d+oc.prob.yaml",
        EX05 + "constraints/conv1d+oc-3level-freebypass.constraints.yaml",
        EX05 + "mapper/exhaustive.mapper.yaml",
        EX05 + "ref-output/freebypass/timeloop-mapper.map.yaml"], {}),
    # component file with a YAML merge key overridden (`<<: *write_action` then `name: update`)
    "ispass_06_mapper_eyeriss": ([
        EX06 + "arch/eyeriss_like.yaml", EX06 + "arch/components/smartbuffer_RF.yaml",
        EX06 + "arch/components/smartbuffer_SRAM.yaml", EX06 + "arch/components/intmac.yaml",
        EX06 + "prob/VGG02_layer5.yaml", EX06 + "mapper/mapper.yaml",
        EX06 + "ref-output/timeloop-mapper.map.yaml"], {}),
    # arch.yaml is a Jinja2 template with `variables:` and expressions over them
    "ispass_timeloop_accelergy_intmac": ([
        TA + "arch/arch.yaml", TA + "arch/components/smartbuffer_RF.yaml",
        TA + "prob/prob.yaml", TA + "mapper/mapper.yaml",
        TA + "ref-output/intmac/timeloop-mapper.map.yaml"], INT),
    "ispass_timeloop_accelergy_fpmac": ([
        TA + "arch/arch.yaml", TA + "arch/components/smartbuffer_RF.yaml",
        TA + "prob/prob.yaml", TA + "mapper/mapper.yaml",
        TA + "ref-output/fpmac/timeloop-mapper.map.yaml"], FP),
}


def ert_of(name: str):
    return next((TIMELOOP_REFS / name / "inputs").glob("*ERT.yaml"))


def load_raw(name: str, **kw):
    files, data = RAW_CASES[name]
    spec = load_spec([ISPASS / f for f in files] + [ert_of(name)], jinja_data=data, **kw)
    return spec


@pytest.mark.parametrize("name", sorted(RAW_CASES))
def test_raw_ispass_files_reproduce_reference(name: str) -> None:
    spec = load_raw(name)
    ev = evaluate(spec.problem, spec.arch, spec.mapping)
    check_against_reference(TIMELOOP_REFS / name, ev)


def test_every_ispass_reference_case_has_a_raw_load() -> None:
    import csv

    names = {r["folder"] for r in csv.DictReader(open(TIMELOOP_REFS / "MANIFEST.csv"))}
    assert names == set(RAW_CASES)


def test_raw_template_records_every_included_file_for_provenance() -> None:
    spec = load_raw("ispass_timeloop_accelergy_intmac")
    assert any(f.endswith("arch/arch.yaml") for f in spec.document.hashes)
    # the rendered template's datawidths come from the Jinja data through `variables:`
    assert spec.arch.levels[0].datawidth == 8
    assert spec.arch.levels[spec.arch.index("psum_spad")].datawidth == 16


def test_raw_template_without_its_data_is_a_located_error() -> None:
    files, _ = RAW_CASES["ispass_timeloop_accelergy_intmac"]
    with pytest.raises(SpecError) as err:
        load_spec([ISPASS / f for f in files])
    assert err.value.file.endswith("arch/arch.yaml")
    assert err.value.line == 3  # PSUM_DATAWIDTH: {{psum_datawidth}}
    assert "psum_datawidth" in str(err.value)
