"""The batch model against the step-by-step scalar model, per (level, tensor, action).

Totals can agree while a count moves between levels or actions; these tests compare every
count the model produces: tile words, partition, utilized instances, reads/fills/updates,
their energies, link transfers and peer accesses, and per level the cycles and leakage.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml

from dse.mapper.constraints import Constraints, LevelConstraints
from dse.mapper.mapspace import MapSpace
from dse.mapper.search import SearchConfig
from dse.model.actions import ACTIONS
from dse.model.batch import BatchModel, rows_from_mappings, spatial_orders
from dse.model.evaluate import MappingError
from dse.pipeline.map import prepare
from dse.spec.build import load_spec
from tests.conftest import TIMELOOP_REFS
from tests.oracle.scalar_model import scalar_evaluate
from tests.test_mapper import _random_rows, _window_design, ref_files

CASES = sorted(r["folder"] for r in csv.DictReader(open(TIMELOOP_REFS / "MANIFEST.csv")))


def assert_same_counts(model: BatchModel, det, b: int, ev) -> None:
    """Row b of a batch detail equals the scalar evaluation `ev` for every (level, tensor)."""
    names = [ds.name for ds in model.tensors]
    levels = [lv.name for lv in model.arch.levels]
    got_keys = {(levels[i], names[t]) for i in range(model.L) for t in range(len(names))
                if det.keep[b, i, t]}
    assert got_keys == {(r.level, r.tensor) for r in ev.stats}
    for r in ev.stats:
        i, t = levels.index(r.level), names.index(r.tensor)
        where = f"{r.level}/{r.tensor}"
        assert int(det.size[b, i, t]) == r.utilized_capacity_words, where
        assert int(det.partition[b, i, t]) == r.partition_size, where
        assert int(det.replication[b, i]) == r.utilized_instances, where
        want = {"read": r.reads_per_instance, "fill": r.fills_per_instance,
                "update": r.updates_per_instance}
        want_e = {"read": r.read_energy_pJ, "fill": r.fill_energy_pJ,
                  "update": r.update_energy_pJ}
        for a, action in enumerate(ACTIONS):
            assert int(det.counts[b, i, t, a]) == want[action], f"{where} {action}"
            assert float(det.energy_by_action[b, i, t, a]) == pytest.approx(
                want_e[action], rel=1e-12), f"{where} {action} energy"
        assert float(det.links[b, i, t]) == r.link_transfers, where
        assert int(det.peer[b, i, t]) == r.peer_accesses_per_instance, where
    for i, s in enumerate(ev.levels):
        assert int(det.level_cycles[b, i]) == s.cycles, s.name
        assert float(det.leak[b, i]) == pytest.approx(s.leakage_pJ, rel=1e-12), s.name
    assert int(det.cycles[b]) == ev.cycles
    assert int(det.compute_cycles[b]) == ev.compute_cycles
    assert float(det.energy[b]) == pytest.approx(ev.energy_pJ, rel=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_reference_cases_per_level_tensor_action(name: str) -> None:
    case = TIMELOOP_REFS / name
    meta = yaml.safe_load((case / "case.yaml").read_text())
    spec = load_spec([case / "inputs" / f for f in meta["inputs"]])
    ev = scalar_evaluate(spec.problem, spec.arch, spec.mapping)
    model = BatchModel(spec.problem, spec.arch)
    det = model.detail(*rows_from_mappings(model, [spec.mapping]),
                       spatial_order=spatial_orders(model, [spec.mapping]))
    assert_same_counts(model, det, 0, ev)


def _compare_random(problem, arch, cons, n: int, seed: int, link_transfers=None) -> int:
    space = MapSpace(problem, arch, cons)
    T, SX, SY, perm, keep = _random_rows(space, n, seed)
    model = BatchModel(problem, arch, link_transfers)
    fan_ok = model.evaluate(T, SX, SY, perm, keep).fanout_ok
    idx = np.nonzero(fan_ok)[0]
    det = model.detail(T[idx], SX[idx], SY[idx], perm[idx], keep[idx])
    checked = 0
    for j, b in enumerate(idx):
        m = space.to_mapping(T[b], SX[b], SY[b], perm[b], keep[b])
        try:
            ev = scalar_evaluate(problem, arch, m, check_capacity=False,
                                 link_transfers=link_transfers)
        except MappingError:
            continue
        assert_same_counts(model, det, j, ev)
        checked += 1
    return checked


def test_random_mappings_per_level_tensor_action_ex06() -> None:
    spec, searcher = prepare(ref_files("ispass_06_mapper_eyeriss"), SearchConfig())
    assert _compare_random(spec.problem, spec.arch, searcher.space.cons, 120, 21) > 60
    assert _compare_random(spec.problem, spec.arch, Constraints({}), 60, 22) > 10


def test_random_mappings_per_level_tensor_action_windows() -> None:
    problem, arch = _window_design()
    window = Constraints({"GLB": LevelConstraints(spatial_exact={"R": 3}, perm_inner=("P",),
                                                  temporal_min={"P": 2})})
    for mode in (None, "off", "timeloop"):
        assert _compare_random(problem, arch, window, 150, 23, mode) > 50
    assert _compare_random(problem, arch, Constraints({}), 150, 24) > 50
