"""Every result is one the described hardware can produce (issue #9, part 4).

* link transfers: `timeloop` (as Timeloop, also into storage-less compute lanes), `declared`
  (only between instances of a level with `neighbour_links: true` that keeps the tensor, the
  native default) and `off`; scalar and batch models agree in every mode; the option reaches
  model/map/run/sweep and the store key; levels.csv shows link transfers;
* regressions: missing energies are a clean error in the batch model too; translation grouping
  is exact for any number of ranks; `dse run` reports layers without a mapping and exits 1;
  `--search auto` honours a small `--max-evals`; bypassing at the outermost level is refused
  before the search; per-tensor `bits` change capacity, words per row and energy.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from dse.arch.architecture import Architecture
from dse.cli import main
from dse.errors import SpecError
from dse.mapper.batch import BatchModel, group_translations
from dse.mapper.constraints import Constraints, LevelConstraints
from dse.mapper.mapspace import MapSpace
from dse.mapper.search import SearchConfig, Searcher
from dse.mapping import LevelMapping, Mapping
from dse.model import evaluate
from dse.model.evaluate import MappingError
from dse.pipeline.run import layer_key
from dse.pipeline.spec import load_arch
from dse.workload.layers import Bits, conv2d
from dse.workload.problem import DataSpace, Problem
from tests.conftest import REPO
from tests.oracle.scalar_model import scalar_evaluate
from tests.test_mapper import _level, _mac, _random_rows
from tests.test_walker_vs_model import make_problem

# ----------------------------------------------------------------------------- designs


def window_design(links: bool = False) -> tuple[Problem, Architecture]:
    """conv1d: DRAM -> GLB -(X 3)-> register files -> MACs; R over the fan-out and P walked
    in time right above it, so neighbouring register files share inputs."""
    problem = make_problem("conv1d", {"K": 2, "C": 2, "R": 3, "P": 8})
    rf = replace(_level("RF", 3, 1, 16, read=0.5, write=0.6, update=0.7), neighbour_links=links)
    arch = Architecture("win", (
        _level("DRAM", 1, 1, None, block=4, read=100, write=100),
        _level("GLB", 1, 1, 64, block=4, read=6, write=7), rf), _mac(3, 1))
    return problem, arch


def window_mapping(rf_keeps_inputs: bool = True) -> Mapping:
    keep = None if rf_keeps_inputs else frozenset({"Weights", "Outputs"})
    return Mapping((
        LevelMapping("DRAM", temporal={"K": 2, "C": 2}),
        LevelMapping("GLB", temporal={"P": 8}, temporal_order=("P",), spatial={"R": 3}),
        LevelMapping("RF", keep=keep)))


def compute_fanout_design() -> tuple[Problem, Architecture]:
    """A buffer fanning out 4x2 straight to the MACs (lanes without storage)."""
    problem = make_problem("conv1d", {"K": 4, "C": 2, "R": 3, "P": 4})
    arch = Architecture("fan", (
        _level("DRAM", 1, 1, None, read=100, write=100),
        _level("Buf", 1, 1, 24, block=2, rbw=3, read=2, write=2.5, update=3)), _mac(4, 2))
    return problem, arch


def native_files(tmp_path: Path, links: bool) -> list[str]:
    """The window design as native YAML files (architecture, problem, mapping)."""
    arch = tmp_path / f"arch_{links}.yaml"
    arch.write_text(f"""\
architecture:
  name: win
  levels:
    - {{name: DRAM, class: DRAM, datawidth: 8, width: 32, energy: {{read: 100, write: 100}}}}
    - {{name: GLB, depth: 64, datawidth: 8, width: 32, energy: {{read: 6, write: 7}}}}
    - fanout: rf_array
      meshX: 3
    - name: RF
      depth: 16
      datawidth: 8
      neighbour_links: {str(links).lower()}
      energy: {{read: 0.5, write: 0.6, update: 0.7}}
  compute: {{name: MAC, energy: {{compute: 1}}}}
""")
    prob = tmp_path / "prob.yaml"
    prob.write_text("""\
problem:
  name: conv1d
  dims: {K: 2, C: 2, R: 3, P: 8}
  tensors:
    Weights: [K, C, R]
    Inputs: [C, P + R]
    Outputs: {ranks: [K, P], read_write: true}
""")
    mapping = tmp_path / "map.yaml"
    mapping.write_text("""\
mapping:
  - {level: DRAM, temporal: K2 C2}
  - {level: GLB, temporal: P8}
  - {level: rf_array, spatial: {X: R3}}
""")
    return [str(arch), str(prob), str(mapping)]


def _links(ev) -> float:
    return sum(words for words, _ in ev.link_transfers.values())


# ----------------------------------------------------------------------------- link modes


def test_declared_links_only_between_declared_keepers() -> None:
    problem, arch = window_design(links=False)
    m = window_mapping()
    timeloop = evaluate(problem, arch, m, link_transfers="timeloop")
    off = evaluate(problem, arch, m, link_transfers="off")
    assert _links(timeloop) > 0 and timeloop.energy_pJ < off.energy_pJ
    # undeclared links: none, exactly the `off` numbers
    undeclared = evaluate(problem, arch, m, link_transfers="declared")
    assert _links(undeclared) == 0 and undeclared.energy_pJ == off.energy_pJ
    # declared on the register files, which keep Inputs: Timeloop's numbers, and the peer
    # accesses are charged at the register files
    _, linked_arch = window_design(links=True)
    declared = evaluate(problem, linked_arch, m, link_transfers="declared")
    assert declared.energy_pJ == timeloop.energy_pJ
    rf = next(r for r in declared.stats if r.level == "RF" and r.tensor == "Inputs")
    assert rf.peer_accesses_per_instance > 0
    # declared, but the register files bypass Inputs: no links for Inputs
    bypass = window_mapping(rf_keeps_inputs=False)
    ev = evaluate(problem, linked_arch, bypass, link_transfers="declared")
    assert _links(ev) == 0
    assert ev.energy_pJ == evaluate(problem, linked_arch, bypass, link_transfers="off").energy_pJ


def test_no_free_links_between_compute_lanes() -> None:
    """Timeloop forwards data between MAC lanes (no storage) and charges nobody; `declared`
    never does, so it equals `off` on every row, while `timeloop` differs on some."""
    problem, arch = compute_fanout_design()
    space = MapSpace(problem, arch, Constraints({}))
    T, SX, SY, perm, keep = _random_rows(space, 200, 13)
    differs = 0
    for b in range(len(T)):
        m = space.to_mapping(T[b], SX[b], SY[b], perm[b], keep[b])
        try:
            off = evaluate(problem, arch, m, link_transfers="off")
        except MappingError:
            continue
        declared = evaluate(problem, arch, m, link_transfers="declared")
        assert declared.energy_pJ == off.energy_pJ and declared.cycles == off.cycles
        differs += evaluate(problem, arch, m, link_transfers="timeloop").energy_pJ != off.energy_pJ
    assert differs > 0


@pytest.mark.parametrize("mode", ["timeloop", "declared", "off"])
@pytest.mark.parametrize("design", ["window", "fan"])
def test_batch_equals_scalar_in_every_link_mode(mode: str, design: str) -> None:
    if design == "window":
        problem, arch = window_design(links=True)
        cons = Constraints({"GLB": LevelConstraints(spatial_exact={"R": 3}, perm_inner=("P",),
                                                    temporal_min={"P": 2})})
    else:
        problem, arch = compute_fanout_design()
        arch = replace(arch, levels=(arch.levels[0], replace(arch.levels[1],
                                                             neighbour_links=True)))
        cons = Constraints({})
    space = MapSpace(problem, arch, cons)
    T, SX, SY, perm, keep = _random_rows(space, 150, 5)
    r = BatchModel(problem, arch, mode).evaluate(T, SX, SY, perm, keep)
    valid = 0
    for b in range(len(T)):
        m = space.to_mapping(T[b], SX[b], SY[b], perm[b], keep[b])
        try:
            ev = scalar_evaluate(problem, arch, m, link_transfers=mode)
        except MappingError:
            assert not r.valid[b]
            continue
        assert r.valid[b] and int(r.cycles[b]) == ev.cycles
        assert float(r.energy_pJ[b]) == pytest.approx(ev.energy_pJ, rel=1e-9), (mode, m)
        valid += 1
    assert valid > 30


def test_default_mode_follows_the_input_format(tmp_path: Path) -> None:
    files = native_files(tmp_path, links=False)
    from dse.spec.build import load_spec

    spec = load_spec(files)
    assert spec.arch.default_link_transfers == "declared"
    assert spec.arch.levels[-1].neighbour_links is False
    ev = evaluate(spec.problem, spec.arch, spec.mapping)
    assert _links(ev) == 0
    assert _links(evaluate(spec.problem, spec.arch, spec.mapping, link_transfers="timeloop")) > 0
    bad = Path(files[0])
    bad.write_text(bad.read_text().replace("neighbour_links: false", "neighbour_links: yes please"))
    with pytest.raises(SpecError, match="neighbour_links.*expected true or false"):
        load_spec(files)


def test_cli_link_option_and_levels_csv(tmp_path: Path) -> None:
    files = native_files(tmp_path, links=True)
    out = {}
    for args in (["--link-transfers", "off"], ["--no-link-transfers"], [],
                 ["--link-transfers", "declared"]):
        d = tmp_path / ("o" + "_".join(a.strip("-") for a in args))
        res = CliRunner().invoke(main, ["model", *files, "--out", str(d), "-q", *args])
        assert res.exit_code == 0, res.output
        out[tuple(args)] = (json.loads((d / "summary.json").read_text()),
                            list(csv.DictReader(open(d / "levels.csv"))))
    s_off, _ = out[("--link-transfers", "off")]
    assert out[("--no-link-transfers",)][0]["energy_pJ"] == s_off["energy_pJ"]
    s_def, rows = out[()]
    assert s_def["link_transfers"] == "declared" and s_off["link_transfers"] == "off"
    assert s_def["energy_pJ"] == out[("--link-transfers", "declared")][0]["energy_pJ"]
    assert s_def["energy_pJ"] != s_off["energy_pJ"]
    glb = next(r for r in rows if r["level"] == "rf_array" and r["tensor"] == "Inputs")
    rf = next(r for r in rows if r["level"] == "RF" and r["tensor"] == "Inputs")
    assert float(glb["link_transfers_per_instance"]) > 0
    assert int(rf["peer_accesses_per_instance"]) > 0
    res = CliRunner().invoke(main, ["model", *files, "--no-link-transfers", "--link-transfers",
                                    "timeloop"])
    assert res.exit_code == 2 and "contradicts" in res.output
    res = CliRunner().invoke(main, ["map", *files[:2], "--out", str(tmp_path / "m"), "-q",
                                    "--max-evals", "300", "--link-transfers", "timeloop"])
    assert res.exit_code == 0, res.output


def test_link_mode_is_part_of_the_store_key() -> None:
    arch = load_arch([str(REPO / "arch_specs" / "eyeriss_like.yaml")])
    problem = conv2d("c", C=8, K=8, P=4, Q=4, R=3, S=3)
    keys = {m: layer_key(arch, problem, SearchConfig(link_transfers=m))
            for m in ("timeloop", "declared", "off")}
    assert len(set(keys.values())) == 3
    assert layer_key(arch, problem, SearchConfig()) == keys["declared"]  # native default


def test_sweep_file_takes_the_link_mode(tmp_path: Path) -> None:
    from dse.pipeline.sweep import read_sweep

    f = tmp_path / "s.yaml"
    arch = REPO / "arch_specs" / "eyeriss_like.yaml"
    f.write_text(f"sweep:\n  architectures: [{arch}]\n  workloads: [resnet8]\n"
                 "  mapper: {link_transfers: timeloop}\n")
    assert read_sweep(str(f)).config.link_transfers == "timeloop"
    f.write_text(f.read_text().replace("timeloop}", "timelop}"))
    with pytest.raises(SpecError, match="unknown link-transfer mode.*did you mean"):
        read_sweep(str(f))


# ----------------------------------------------------------------------------- regressions


def test_batch_model_missing_read_energy_is_the_model_error(tmp_path: Path) -> None:
    """Was: NaN energies in the batch model, so the search quietly avoided the level."""
    problem, arch = window_design()
    rf = arch.levels[2]
    arch = replace(arch, levels=arch.levels[:2] + (replace(rf, energy={
        k: v for k, v in rf.energy.items() if k != "read"}),))
    with pytest.raises(SpecError, match="no energy per 'read' for component RF"):
        evaluate(problem, arch, window_mapping())
    with pytest.raises(SpecError, match="no energy per 'read' for component RF"):
        BatchModel(problem, arch)
    files = native_files(tmp_path, links=False)
    Path(files[0]).write_text(Path(files[0]).read_text().replace("read: 0.5, ", ""))
    res = CliRunner().invoke(main, ["map", *files[:2], "--out", str(tmp_path / "m"), "-q",
                                    "--max-evals", "200"])
    assert res.exit_code == 2 and "no energy per 'read' for component RF" in res.output


def _five_rank_problem() -> Problem:
    """A grouped conv1d with batch: Inputs have 5 ranks (N, G, C, P + R, and a unit rank)."""
    d = {"N": 2, "G": 2, "C": 2, "K": 2, "R": 3, "P": 6, "U": 1}
    return Problem("g", tuple(d), d, (
        DataSpace("Weights", ((("G", 1),), (("K", 1),), (("C", 1),), (("R", 1),), (("U", 1),))),
        DataSpace("Inputs", ((("N", 1),), (("G", 1),), (("C", 1),), (("P", 1), ("R", 1)),
                             (("U", 1),))),
        DataSpace("Outputs", ((("N", 1),), (("G", 1),), (("K", 1),), (("P", 1),), (("U", 1),)),
                  read_write=True)))


def test_batch_with_five_rank_tensors_matches_scalar() -> None:
    """Was: 1_000_003 ** 4 does not fit int64 (OverflowError) once a link path is taken."""
    problem = _five_rank_problem()
    problem = replace(problem, bounds={**problem.bounds, "U": 2})
    _, arch = window_design(links=True)
    cons = Constraints({"GLB": LevelConstraints(spatial_exact={"R": 3}, perm_inner=("P",),
                                                temporal_min={"P": 2})})
    space = MapSpace(problem, arch, cons)
    T, SX, SY, perm, keep = _random_rows(space, 120, 3)
    r = BatchModel(problem, arch, "timeloop").evaluate(T, SX, SY, perm, keep)
    linked = 0
    for b in range(len(T)):
        m = space.to_mapping(T[b], SX[b], SY[b], perm[b], keep[b])
        try:
            ev = scalar_evaluate(problem, arch, m, link_transfers="timeloop")
        except MappingError:
            assert not r.valid[b]
            continue
        assert float(r.energy_pJ[b]) == pytest.approx(ev.energy_pJ, rel=1e-9)
        linked += _links(ev) > 0
    assert linked > 0


def test_translation_groups_are_exact_where_int64_codes_wrap() -> None:
    """Was: translations grouped by an int64 code sum(v_k * 1_000_003**k), which wraps at 4
    ranks, so two different translations could share one link effect."""
    w = [1_000_003 ** k for k in range(4)]
    a = (0, 0, 0, 18)
    rest = 2**64 - 18 * w[3]  # find b with code(b) == code(a) - 2**64 (same int64 code)
    b2, rem = divmod(rest, w[2])
    b1, b0 = divmod(rem, w[1])
    b = (-b0, -b1, -b2, 0)
    code = lambda v: sum(x * y for x, y in zip(v, w, strict=True))  # noqa: E731
    assert a != b and (code(a) - code(b)) % 2**64 == 0  # they collide in int64
    wrapped = np.array([a, b], dtype=np.int64) @ BatchModel._hash_weights(None, 4)
    assert wrapped[0] == wrapped[1]
    uniq, inv = group_translations(np.zeros(2, dtype=np.int64), np.array([a, b]))
    assert len(uniq) == 2 and inv[0] != inv[1]


def _tiny_net(tmp_path: Path) -> Path:
    f = tmp_path / "net.yaml"
    f.write_text("""\
network:
  name: two
  input: {C: 4, H: 6}
  bits: {weights: 8, activations: 8, accumulator: 8}
  layers:
    - {name: narrow, type: conv2d, C: 4, K: 4, H: 6, R: 1, P: 6}
    - {name: wide, type: conv2d, C: 4, K: 4, H: 6, R: 3, P: 4, bits: {accumulator: 32}}
""")
    return f


def test_run_reports_layers_without_a_mapping_and_exits_1(tmp_path: Path) -> None:
    """Was: a layer without a valid mapping was neither reported nor made `dse run` fail.
    The register file holds 3 bytes and must keep all three tensors: one 8-bit word each fits,
    a 32-bit partial sum does not."""
    arch = tmp_path / "a.yaml"
    arch.write_text("""\
architecture:
  name: tiny
  levels:
    - {name: DRAM, class: DRAM, datawidth: 8, energy: {read: 10, write: 10}}
    - {name: RF, depth: 3, datawidth: 8, keep: [Weights, Inputs, Outputs],
       energy: {read: 1, write: 1}}
  compute: {name: MAC, energy: {compute: 1}}
""")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", "--arch", str(arch), "--workload",
                                    str(_tiny_net(tmp_path)), "--out", str(out), "--max-evals",
                                    "300", "--store", str(tmp_path / "s.sqlite"), "-q"])
    assert res.exit_code == 1, res.output
    rows = {r["layer"]: r for r in csv.DictReader(open(out / "layers.csv"))}
    assert set(rows) == {"narrow", "wide"}
    assert rows["narrow"]["status"] == "ok"
    assert rows["wide"]["status"] == "no valid mapping"
    assert "capacity at RF" in rows["wide"]["reason"]
    assert "layer wide: no valid mapping" in res.output and "capacity at RF" in res.output


def test_auto_search_honours_a_budget_below_its_block() -> None:
    problem, arch = window_design()
    for budget in (100, 3000):
        searcher = Searcher(problem, arch, Constraints({}),
                            SearchConfig(search="auto", max_evals=budget))
        result = searcher.run()
        assert 0 < result.evaluated <= budget
        assert result.best is not None


def test_outermost_bypass_constraint_is_refused_before_searching(tmp_path: Path) -> None:
    problem, arch = window_design()
    cons = Constraints({"DRAM": LevelConstraints(bypass=frozenset({"Weights"}))})
    with pytest.raises(SpecError, match="bypass Weights at the outermost level DRAM"):
        Searcher(problem, arch, cons, SearchConfig(max_evals=10**9))
    files = native_files(tmp_path, links=False)
    c = tmp_path / "c.yaml"
    c.write_text("mapspace_constraints:\n  targets:\n"
                 "    - {target: DRAM, type: bypass, bypass: [Inputs]}\n")
    res = CliRunner().invoke(main, ["map", *files[:2], str(c), "--out", str(tmp_path / "m"),
                                    "-q", "--max-evals", "100000000"])
    assert res.exit_code == 2
    assert "bypass Inputs at the outermost level DRAM" in res.output and "c.yaml:3" in res.output


# ----------------------------------------------------------------------------- bits


def _bits_design() -> Architecture:
    """DRAM -> a 16-bit buffer of 2 words per row, 64 words -> one MAC."""
    buf = replace(_level("Buf", 1, 1, 32, block=2, read=4, write=5), datawidth=16, width=32)
    dram = replace(_level("DRAM", 1, 1, None, block=2, read=100, write=100), datawidth=16,
                   width=32)
    return Architecture("bits", (dram, buf), _mac(1, 1))


def test_tensor_bits_set_capacity_words_per_row_and_energy() -> None:
    """8-bit weights take half the room of 16-bit ones and pack 4 to a 32-bit row."""
    arch = _bits_design()
    plain = conv2d("c", C=8, K=8, P=1, Q=1, R=1, S=1)  # Weights 64, Inputs 8, Outputs 8
    narrow = conv2d("c", C=8, K=8, P=1, Q=1, R=1, S=1, bits=Bits(weights=8, activations=16,
                                                                 accumulator=16))
    m = Mapping((LevelMapping("DRAM"), LevelMapping("Buf", temporal={"C": 8, "M": 8})))
    with pytest.raises(MappingError, match="Buf need 80 words .* holds 64 words"):
        evaluate(plain, arch, m)
    ev = evaluate(narrow, arch, m)  # 64 x 8 b + 16 x 16 b = 768 b <= 1024 b
    w = next(r for r in ev.stats if r.level == "Buf" and r.tensor == "Weights")
    i = next(r for r in ev.stats if r.level == "Buf" and r.tensor == "Inputs")
    assert w.read_energy_pJ == np.ceil(w.reads_per_instance / 4) * 4  # 4 weights per row
    assert i.read_energy_pJ == np.ceil(i.reads_per_instance / 2) * 4  # 2 inputs per row
    assert w.reads_per_instance == 64
    # 32-bit words take twice the room: 44 words fit as 16-bit, not as 32-bit
    wide = replace(plain, data_spaces=tuple(replace(ds, word_bits=32)
                                            for ds in plain.data_spaces))
    half = Mapping((LevelMapping("DRAM", temporal={"M": 2}),
                    LevelMapping("Buf", temporal={"C": 8, "M": 4})))
    evaluate(plain, arch, half)  # (32 + 8 + 4) x 16 b = 704 b
    with pytest.raises(MappingError, match="need 1408 bits .* holds 1024 bits"):
        evaluate(wide, arch, half)


def test_tensor_bits_batch_equals_scalar() -> None:
    arch = _bits_design()
    problem = conv2d("c", C=8, K=8, P=3, Q=1, R=3, S=1,
                     bits=Bits(weights=8, activations=16, accumulator=32))
    space = MapSpace(problem, arch, Constraints({}))
    T, SX, SY, perm, keep = _random_rows(space, 200, 9)
    r = BatchModel(problem, arch).evaluate(T, SX, SY, perm, keep)
    valid = invalid = 0
    for b in range(len(T)):
        m = space.to_mapping(T[b], SX[b], SY[b], perm[b], keep[b])
        try:
            ev = scalar_evaluate(problem, arch, m)
        except MappingError:
            assert not r.valid[b]
            invalid += 1
            continue
        assert r.valid[b] and int(r.cycles[b]) == ev.cycles
        assert float(r.energy_pJ[b]) == pytest.approx(ev.energy_pJ, rel=1e-9)
        valid += 1
    assert valid > 20 and invalid > 0


def test_converted_timeloop_architecture_keeps_timeloop_links(tmp_path: Path) -> None:
    """`dse convert` of a Timeloop architecture says `link_transfers: timeloop`, so the native
    file gives Timeloop's numbers; `neighbour_links` survives a native round trip."""
    from dse.spec import native
    from dse.spec.build import load_spec
    from dse.spec.convert import arch_to_native
    from dse.spec.yamlload import load_documents
    from tests.conftest import TIMELOOP_REFS

    case = TIMELOOP_REFS / "ispass_04_conv1d_oc_3levelspatial_kp" / "inputs"
    spec = load_spec(sorted(case.glob("*.yaml")), need_mapping=False)
    assert spec.arch.default_link_transfers == "timeloop"
    data = arch_to_native(spec.arch)
    assert data["link_transfers"] == "timeloop"
    files = native_files(tmp_path, links=True)
    arch = load_spec(files).arch
    back = tmp_path / "back.yaml"
    back.write_text(yaml.safe_dump({"architecture": arch_to_native(arch)}))
    again, _ = native.read_architecture(load_documents([back]).data["architecture"])
    assert [lv.neighbour_links for lv in again.levels] == [lv.neighbour_links
                                                           for lv in arch.levels]
    assert again.levels[-1].neighbour_links and again.default_link_transfers == "declared"
