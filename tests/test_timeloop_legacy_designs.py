"""v0.3 baseline designs and the 2020 ISPASS mapper exercises (2021 outputs) load raw and, with
`--timeloop-generation legacy`, reproduce their reference stats: counts exact, energies within
0.5 %.

They exercise the v0.3 forms: the arithmetic unit in the middle of a `local:` list
(simple_output_stationary, simple_weight_stationary), storage without a word size (Timeloop's
default 16 bits), ERT tables named with ranges (`System.ws.PE[0..15].PEWeightRegs[0..15]`) and
components whose only action is `access` (reg_storage). The mapping is the mapper's printed best
mapping (timeloop-mapper.map.txt, read by tests/timeloop_maptxt.py).
"""

from __future__ import annotations

import pytest
import yaml

from dse.mapper.batch import BatchModel, rows_from_mappings
from dse.model import evaluate
from dse.spec.build import load_spec, read_mapping
from dse.spec.yamlload import load_yaml_text
from tests.conftest import DATA, TIMELOOP_RAW
from tests.test_timeloop_reference import close
from tests.timeloop_maptxt import read_map_txt
from tests.timeloop_stats import read_stats

DESIGNS = DATA / "timeloop_legacy_designs"
RAW = TIMELOOP_RAW / "Accelergy-Project" / "timeloop-accelergy-exercises@778460f"
NAMES = sorted(p.name for p in DESIGNS.iterdir() if (p / "case.yaml").is_file())
COUNTS = ["utilized_instances", "reads_per_instance", "fills_per_instance",
          "updates_per_instance", "partition_size", "utilized_capacity_words"]
# PEWeightRegs has cluster-size 64 (instances sharing one array): not modelled, energy differs
CLUSTERED = {"simba_like": {("PEWeightRegs", "Weights")}}


def load(name: str):
    case = DESIGNS / name
    meta = yaml.safe_load((case / "case.yaml").read_text())
    root = RAW / meta["raw_root"]
    spec = load_spec([root / f for f in meta["raw_inputs"]] + [case / "timeloop-mapper.ERT.yaml"],
                     need_mapping=False)
    directives = read_map_txt(case / "timeloop-mapper.map.txt", list(spec.problem.dims),
                              list(spec.problem.tensor_names))
    spec.document.data["mapping"] = load_yaml_text(yaml.safe_dump({"mapping": directives}),
                                                   "timeloop-mapper.map.txt")["mapping"]
    spec.mapping = read_mapping(spec.document, spec.arch, spec.problem, spec.arch_constraints)
    return spec, read_stats(case / "timeloop-mapper.stats.txt")


def energy_mismatches(ev, ref) -> set:
    got = {(r.level, r.tensor): r for r in ev.stats}
    return {k for k, row in ref["rows"].items() if not close(got[k].energy_pJ, row["energy_pJ"])}


@pytest.mark.parametrize("name", NAMES)
def test_v03_design_reproduces_reference_with_legacy_generation(name: str) -> None:
    spec, ref = load(name)
    ev = evaluate(spec.problem, spec.arch, spec.mapping, generation="legacy")
    got = {(r.level, r.tensor): r for r in ev.stats}
    assert set(got) == set(ref["rows"])
    for key, row in ref["rows"].items():
        for c in COUNTS:
            assert getattr(got[key], c) == row[c], (key, c)
    assert energy_mismatches(ev, ref) == CLUSTERED.get(name, set())
    assert any("cluster_size" in n for n in spec.document.notes) == (name in CLUSTERED)
    assert ev.cycles == ref["cycles"]
    assert close(ev.compute_energy_pJ, ref["compute"]["Energy (total)"])
    model = BatchModel(spec.problem, spec.arch, generation="legacy")
    res = model.evaluate(*rows_from_mappings(model, [spec.mapping]))
    assert float(res.energy_pJ[0]) == pytest.approx(ev.energy_pJ, rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_v03_design_is_not_matched_by_the_2024_generation(name: str) -> None:
    spec, ref = load(name)
    ev = evaluate(spec.problem, spec.arch, spec.mapping)
    assert energy_mismatches(ev, ref) - CLUSTERED.get(name, set())


def test_v03_forms_are_read_as_timeloop_reads_them() -> None:
    spec, _ = load("simple_output_stationary")
    names = [lv.name for lv in spec.arch.levels]
    assert spec.arch.compute.name == "mac"  # listed before the registers in `local:`
    assert names[-3:] == ["weight_reg", "input_activation_reg", "output_activation_reg"]
    reg = spec.arch.levels[names.index("weight_reg")]
    assert reg.datawidth == 16  # no word size given: Timeloop's default
    assert reg.energy["read"].pJ == reg.energy["write"].pJ == 0.009  # the `access` action
    simba, _ = load("simba_like")
    regs = simba.arch.levels[[lv.name for lv in simba.arch.levels].index("PEWeightRegs")]
    assert regs.instances == 256 and "read" in regs.energy  # ERT name PE[0..15].PEWeightRegs[0..15]
