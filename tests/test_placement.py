"""Tensor placement: a tensor backed by an inner level is held by no level above it."""

from __future__ import annotations

import numpy as np
import pytest

from dse.arch.architecture import Architecture
from dse.errors import SpecError
from dse.mapper.constraints import Constraints
from dse.mapper.mapspace import MapSpace
from dse.mapping import LevelMapping, Mapping
from dse.model import evaluate
from dse.model.batch import BatchModel
from dse.model.evaluate import MappingError
from tests.test_mapper import _level, _mac, _random_rows
from tests.test_walker_vs_model import make_problem


def _design():
    problem = make_problem("conv1d", {"K": 2, "C": 2, "R": 3, "P": 8})
    arch = Architecture("two", (
        _level("DRAM", 1, 1, None, read=100, write=100),
        _level("Buf", 1, 1, 64, read=2, write=3, update=4, leak=0.5)), _mac(1, 1))
    return problem, arch


def _mapping(dram: dict[str, int], buf: dict[str, int]) -> Mapping:
    return Mapping((LevelMapping("DRAM", dram, tuple(dram)), LevelMapping("Buf", buf, tuple(buf))))


def test_outputs_backed_on_chip_make_no_dram_traffic() -> None:
    problem, arch = _design()
    # weights and inputs walked from DRAM over C; outputs (K, P) stay whole in the buffer
    m = _mapping({"C": 2}, {"K": 2, "R": 3, "P": 8})
    default = evaluate(problem, arch, m)
    placed = evaluate(problem, arch, m, placement={"Outputs": "Buf"})
    d = {(r.level, r.tensor): r for r in default.stats}
    p = {(r.level, r.tensor): r for r in placed.stats}
    assert ("DRAM", "Outputs") in d and ("DRAM", "Outputs") not in p
    assert set(p) == set(d) - {("DRAM", "Outputs")}
    out_d, out_p = d[("Buf", "Outputs")], p[("Buf", "Outputs")]
    assert out_p.fills_per_instance == 0
    assert d[("DRAM", "Outputs")].updates_per_instance == problem.tensor_size("Outputs")
    assert out_p.reads_per_instance == out_d.reads_per_instance
    assert out_p.updates_per_instance == out_d.updates_per_instance
    assert out_p.utilized_capacity_words == problem.tensor_size("Outputs")
    for key in set(p) - {("Buf", "Outputs")}:  # other tensors are untouched
        assert p[key] == d[key], key
    saved = d[("DRAM", "Outputs")].energy_pJ + out_d.fill_energy_pJ
    assert placed.energy_pJ == pytest.approx(default.energy_pJ - saved, rel=1e-12)


def test_walking_a_placed_tensor_above_its_backing_level_is_refused() -> None:
    problem, arch = _design()
    m = _mapping({"P": 2}, {"K": 2, "C": 2, "R": 3, "P": 4})
    evaluate(problem, arch, m)  # fine with the default placement
    with pytest.raises(MappingError, match=r"Outputs at DRAM over P"):
        evaluate(problem, arch, m, placement={"Outputs": "Buf"})
    bypass = Mapping((LevelMapping("DRAM", {"C": 2}, ("C",)),
                      LevelMapping("Buf", {"K": 2, "R": 3, "P": 8}, ("K",),
                                   keep=frozenset({"Weights", "Inputs"}))))
    with pytest.raises(MappingError, match=r"backing level Buf of Outputs must keep it"):
        evaluate(problem, arch, bypass, placement={"Outputs": "Buf"})


def test_placement_names_are_checked() -> None:
    problem, arch = _design()
    m = _mapping({"C": 2}, {"K": 2, "R": 3, "P": 8})
    with pytest.raises(SpecError, match=r"did you mean 'Outputs'"):
        evaluate(problem, arch, m, placement={"Output": "Buf"})
    with pytest.raises(SpecError, match=r"did you mean 'Buf'"):
        evaluate(problem, arch, m, placement={"Outputs": "buf"})


def test_batch_rows_with_placement_equal_one_mapping_evaluations() -> None:
    """The search path (forced keeps, placement validity) equals evaluate() row by row."""
    problem, arch = _design()
    space = MapSpace(problem, arch, Constraints({}))
    T, SX, SY, perm, keep = _random_rows(space, 200, 31)
    placement = {"Outputs": "Buf"}
    r = BatchModel(problem, arch, placement=placement).evaluate(T, SX, SY, perm, keep)
    valid = refused = 0
    for b in range(len(T)):
        keep_b = keep[b].copy()
        keep_b[1, 2] = True  # the backing level keeps Outputs whatever the row drew
        m = space.to_mapping(T[b], SX[b], SY[b], perm[b], keep_b)
        try:
            ev = evaluate(problem, arch, m, placement=placement)
        except MappingError:
            assert not r.valid[b]
            refused += 1
            continue
        assert r.valid[b] and int(r.cycles[b]) == ev.cycles
        assert float(r.energy_pJ[b]) == pytest.approx(ev.energy_pJ, rel=1e-12)
        valid += 1
    assert valid > 10 and refused > 10
    assert np.isfinite(r.energy_pJ[r.valid]).all()


def test_cli_place_option_errors_are_clear() -> None:
    from click.testing import CliRunner

    from dse.cli import main
    from tests.test_cli import DEFAULT

    run = CliRunner().invoke
    bad = run(main, ["model", *DEFAULT, "-q", "--place", "Outputs"])
    assert bad.exit_code == 2 and "TENSOR=LEVEL" in bad.output
    typo = run(main, ["model", *DEFAULT, "-q", "--place", "Outputs=shared_gbl"])
    assert typo.exit_code == 2 and "did you mean 'shared_glb'" in typo.output
    walked = run(main, ["model", *DEFAULT, "-q", "--place", "Outputs=shared_glb"])
    assert walked.exit_code == 2, walked.output
    assert "Outputs at DRAM over M" in walked.output
    bypassed = run(main, ["model", *DEFAULT, "-q", "--place", "Weights=shared_glb"])
    assert bypassed.exit_code == 2
    assert "backing level shared_glb of Weights must keep it" in bypassed.output
    assert "Traceback" not in bad.output + typo.output + walked.output + bypassed.output
