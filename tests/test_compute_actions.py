"""Compute actions: residual adds and pools are charged as adds and compares, not as MACs."""

from __future__ import annotations

import pytest

from dse.arch.architecture import Architecture, ComputeLevel
from dse.mapping import LevelMapping, Mapping
from dse.model import evaluate
from dse.model.batch import BatchModel, rows_from_mappings
from dse.workload import layers as L
from tests.test_mapper import _energy, _level


def test_layer_types_declare_their_compute_action() -> None:
    assert L.conv2d("c", C=2, K=2, P=2, Q=2, R=1, S=1).compute_action == "mac"
    assert L.matmul("m", M=2, N=2, K=2).compute_action == "mac"
    assert L.eltwise("a", C=2, P=2, Q=2).compute_action == "add"
    assert L.pool("p", C=2, P=2, Q=2, R=2, S=2).compute_action == "compare"
    assert L.pool("p", C=2, P=2, Q=2, R=2, S=2, kind="avgpool").compute_action == "add"


def _arch(**compute_pj: float) -> Architecture:
    return Architecture("t", (
        _level("DRAM", 1, 1, None, read=10, write=10),
        _level("Buf", 1, 1, 4096, read=1, write=1, update=1)),
        ComputeLevel("ALU", 1, 1, 1, energy=_energy(**compute_pj)))


def _one_level_mapping(problem) -> Mapping:
    factors = {d: problem.bounds[d] for d in problem.dims}
    return Mapping((LevelMapping("DRAM"), LevelMapping("Buf", factors, tuple(factors))))


@pytest.mark.parametrize("problem, key", [
    (L.eltwise("add", C=4, P=3, Q=3), "add"),
    (L.pool("maxpool", C=4, P=3, Q=3, R=2, S=2, stride=(2, 2)), "compare"),
])
def test_compute_energy_is_the_actions_energy(problem, key: str) -> None:
    priced = _arch(compute=1.0, add=0.25, compare=0.125)
    ev = evaluate(problem, priced, _one_level_mapping(problem))
    pj = {"add": 0.25, "compare": 0.125}[key]
    assert ev.compute_action == problem.compute_action
    assert ev.compute_energy_pJ == pytest.approx(problem.macs * pj)
    assert ev.energy_sources[f"ALU.{key}"] == "test"
    model = BatchModel(problem, priced)
    res = model.evaluate(*rows_from_mappings(model, [_one_level_mapping(problem)]))
    assert float(res.energy_pJ[0]) == pytest.approx(ev.energy_pJ, rel=1e-12)
    # an architecture that prices only MACs: the MAC energy, and the source says so
    mac_only = evaluate(problem, _arch(compute=1.0), _one_level_mapping(problem))
    assert mac_only.compute_energy_pJ == pytest.approx(problem.macs * 1.0)
    assert "MAC energy" in mac_only.energy_sources[f"ALU.{key}"]
    assert mac_only.energy_pJ - ev.energy_pJ == pytest.approx(problem.macs * (1.0 - pj))


def test_max_and_average_pools_of_one_shape_are_different_tasks() -> None:
    mx = L.pool("p", C=2, P=2, Q=2, R=2, S=2)
    avg = L.pool("p", C=2, P=2, Q=2, R=2, S=2, kind="avgpool")
    assert L.shape_key(mx) != L.shape_key(avg)
    conv = L.conv2d("c", C=2, K=2, P=2, Q=2, R=1, S=1)
    assert len(L.shape_key(conv)) == 4  # MAC layers keep their shape identity as before


def test_native_compute_energy_takes_add_and_compare(tmp_path) -> None:
    from dse.spec.build import read_arch
    from dse.spec.yamlload import load_documents
    from tests.conftest import REPO

    text = (REPO / "arch_specs" / "eyeriss_like.yaml").read_text()
    old = "energy: {compute: 0.207692, leak: 0.002374,"
    assert old in text
    f = tmp_path / "arch.yaml"
    f.write_text(text.replace(old, "energy: {compute: 0.207692, add: 0.03, compare: 0.02, "
                                   "leak: 0.002374,"))
    arch, _ = read_arch(load_documents([f]))
    assert arch.compute.energy["add"].pJ == 0.03
    assert arch.compute.energy["compare"].pJ == 0.02
