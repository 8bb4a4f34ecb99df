"""Every Timeloop reference case: accesses and cycles exact, energies within 0.5 %."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from dse.model import evaluate
from dse.spec.build import load_spec
from tests.conftest import TIMELOOP_REFS

CASES = sorted(r["folder"] for r in csv.DictReader(open(TIMELOOP_REFS / "MANIFEST.csv")))
EXACT = [
    "instances", "utilized_instances", "utilized_capacity_words", "reads_per_instance",
    "fills_per_instance", "updates_per_instance", "partition_size",
    "temporal_reductions_per_instance",
]


def close(got: float, want: float, floor: float = 0.011) -> bool:
    return abs(got - want) <= max(0.005 * abs(want), floor)


def load_case(name: str):
    case = TIMELOOP_REFS / name
    meta = yaml.safe_load((case / "case.yaml").read_text())
    spec = load_spec([case / "inputs" / f for f in meta["inputs"]])
    return case, spec, evaluate(spec.problem, spec.arch, spec.mapping)


@pytest.mark.parametrize("name", CASES)
def test_reference_case(name: str) -> None:
    case, spec, ev = load_case(name)
    check_against_reference(case, ev)


def check_against_reference(case, ev) -> None:
    """Every row of the case's expected.csv and its summary: counts exact, energies 0.5 %."""
    expected = list(csv.DictReader(open(case / "expected.csv")))
    got = {(r.level, r.tensor): r for r in ev.stats}
    want_keys = {(r["level"], r["tensor"]) for r in expected if r["tensor"] != "compute"}
    assert set(got) == want_keys, "rows (level, tensor) differ from the reference"
    for row in expected:
        if row["tensor"] == "compute":
            assert ev.compute_instances == int(row["instances"])
            assert ev.compute_utilized_instances == int(row["utilized_instances"])
            assert close(ev.compute_energy_pJ, float(row["energy_pJ"]))
            continue
        g = got[(row["level"], row["tensor"])]
        for key in EXACT:
            assert getattr(g, key) == int(row[key]), f"{row['level']}/{row['tensor']} {key}"
        assert close(g.energy_pJ, float(row["energy_pJ"])), f"{row['level']}/{row['tensor']}"
    summ = json.loads((case / "expected_summary.json").read_text())
    assert ev.macs == summ["macs"]
    assert ev.cycles == summ["cycles"]
    assert ev.utilization == pytest.approx(summ["utilization"], rel=1e-9)
    assert close(ev.energy_pJ, summ["energy_pJ"])
    levels = ev.level_energy()
    for level, energy in summ["level_energy_pJ"].items():
        assert close(levels[level], energy), level
    leak = {s.name: s.leakage_pJ for s in ev.levels}
    for level, energy in summ["level_leakage_pJ"].items():
        if level in leak:
            assert close(leak[level], energy), level


def test_halo_quirk_matches_reference() -> None:
    """An irrelevant loop inside a sliding-window loop refetches the whole tile (see README)."""
    _, _, ev = load_case("ispass_06_mapper_eyeriss")
    glb = {r.tensor: r for r in ev.stats if r.level == "shared_glb"}
    assert glb["Inputs"].fills_per_instance == 5120 * 112


def test_link_transfers_flag_changes_nothing_without_neighbour_reuse() -> None:
    case, spec, ev = load_case("ispass_04_conv1d_oc_3levelspatial_kp")
    ev2 = evaluate(spec.problem, spec.arch, spec.mapping, link_transfers=False)
    assert [r.reads_per_instance for r in ev.stats] == [r.reads_per_instance for r in ev2.stats]


@pytest.mark.parametrize("name", CASES)
def test_batch_model_matches_reference_case(name: str) -> None:
    """The mapper's batch evaluator gives the same energy and cycles as the scalar model."""
    from dse.mapper.batch import BatchModel, rows_from_mappings

    _, spec, ev = load_case(name)
    model = BatchModel(spec.problem, spec.arch)
    res = model.evaluate(*rows_from_mappings(model, [spec.mapping]))
    assert bool(res.valid[0])
    assert int(res.cycles[0]) == ev.cycles
    assert float(res.energy_pJ[0]) == pytest.approx(ev.energy_pJ, rel=1e-12)
