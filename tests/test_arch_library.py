"""The architecture library (arch_specs/): every file loads, validates and maps; the hardware
rules, packing and passes of MAX78000; AIE tile memory and MAC lanes; Eyeriss peak and energy
ratios; `dse arch show|list`."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from dse.arch.rules import check_layer, check_network, prepare_problem, true_macs
from dse.cli import main
from dse.energy import estimate
from dse.errors import SpecError
from dse.mapper.search import SearchConfig, Searcher
from dse.model import evaluate
from dse.model.evaluate import MappingError
from dse.pipeline.map import prepare
from dse.spec.arch_library import (
    REPO_ARCH_SPECS,
    architecture_files,
    constraints_file,
    load_architecture,
)
from dse.spec.build import load_spec
from dse.spec.constraints import constraints_from_document
from dse.spec.native import read_mapping
from dse.spec.workload_library import load_workload
from dse.workload.layers import conv2d

REPO = Path(__file__).resolve().parents[1]
SMALL_CONV = "problem: {type: conv2d, C: 16, M: 16, P: 8, Q: 8, R: 3, S: 3}\n"
ENERGY_SOURCES = ("estimator:table-45nm", "estimator:eyeriss-normalized", "spec:inline", "ert:")


def _cfg(evals: int) -> SearchConfig:
    return SearchConfig(objective="delay", search="auto", max_evals=evals, block=1024)


def _problem_file(tmp_path: Path, text: str = SMALL_CONV) -> Path:
    p = tmp_path / "problem.yaml"
    p.write_text(text)
    return p


def _search(files, problem, evals: int = 4096):
    """Map `problem` (a Problem object) on the architecture and constraints in `files`."""
    spec = load_spec(list(files) + [REPO / "workloads" / "vgg02_conv5.yaml"],
                     need_mapping=False)
    cons = constraints_from_document(spec.document.data, spec.arch, problem,
                                     spec.arch_constraints)
    searcher = Searcher(problem, spec.arch, cons, _cfg(evals))
    result = searcher.run()
    assert result.best is not None, dict(result.rejected)
    mapping = searcher.mapping_of(result.best)
    return spec.arch, mapping, evaluate(problem, spec.arch, mapping)


# ----------------------------------------------------------------------------- every file


def test_library_has_the_seed_architectures() -> None:
    names = {p.stem for p in architecture_files()}
    assert {"eyeriss_v1", "eyeriss_like", "eyeriss_like_72pe", "aie_npu", "max78000",
            "max78002"} <= names
    # every constraints file belongs to an architecture file
    for c in REPO_ARCH_SPECS.glob("*.constraints.yaml"):
        assert (c.parent / c.name.replace(".constraints.yaml", ".yaml")).is_file(), c


@pytest.mark.parametrize("path", architecture_files(), ids=lambda p: p.stem)
def test_every_architecture_loads_validates_and_maps(path: Path, tmp_path: Path) -> None:
    files = [path] + ([constraints_file(path)] if constraints_file(path) else [])
    files.append(_problem_file(tmp_path))
    spec, searcher = prepare(files, _cfg(2048))
    arch = spec.arch
    # validates: every energy the model needs is there, each with a source
    for lv in arch.levels:
        if lv.is_dummy:
            continue
        for action in ("read", "write"):
            assert action in lv.energy, (lv.name, action)
            assert lv.energy[action].source.startswith(ENERGY_SOURCES), lv.energy[action]
    assert arch.compute.energy["compute"].source.startswith(ENERGY_SOURCES)
    result = searcher.run()
    assert result.best is not None, dict(result.rejected)
    ev = evaluate(spec.problem, arch, searcher.mapping_of(result.best))
    assert ev.macs == 16 * 16 * 8 * 8 * 9
    assert ev.cycles * arch.compute.instances >= ev.macs
    assert ev.energy_pJ > 0
    assert all(s.startswith(ENERGY_SOURCES) for s in ev.energy_sources.values())


@pytest.mark.parametrize("path", architecture_files(), ids=lambda p: p.stem)
def test_arch_show_prints_hierarchy_peak_and_energy_sources(path: Path) -> None:
    res = CliRunner().invoke(main, ["arch", "show", path.stem])
    assert res.exit_code == 0, res.output
    arch = load_architecture(path).arch
    assert f"peak {arch.compute.instances:,} MACs/cycle" in res.output
    for lv in arch.levels:
        assert lv.name in res.output
    assert "estimator:" in res.output or "spec:inline" in res.output


def test_arch_list_and_unknown_name() -> None:
    res = CliRunner().invoke(main, ["arch", "list"])
    assert res.exit_code == 0
    assert "eyeriss_v1" in res.output and "max78000" in res.output
    res = CliRunner().invoke(main, ["arch", "show", "eyeriss_v2"])
    assert res.exit_code == 2
    assert "did you mean 'eyeriss_v1'" in res.output


# ----------------------------------------------------------------------------- Eyeriss


def test_eyeriss_v1_peak_and_sizes() -> None:
    arch = load_architecture("eyeriss_v1").arch
    assert arch.compute.instances == 168  # 12 x 14 PEs, one MAC per cycle each
    res = CliRunner().invoke(main, ["arch", "show", "eyeriss_v1"])
    assert "peak 168 MACs/cycle" in res.output and "33.6 GMAC/s at 200 MHz" in res.output
    words = {lv.name: lv.capacity_words for lv in arch.levels if not lv.is_dummy}
    assert words == {"DRAM": None, "shared_glb": 51200, "ifmap_spad": 12, "weights_spad": 224,
                     "psum_spad": 24}
    assert {lv.datawidth for lv in arch.levels if not lv.is_dummy} == {16}


def _strip_energies(arch):
    return replace(arch, levels=tuple(replace(lv, energy={}) for lv in arch.levels),
                   compute=replace(arch.compute, energy={}))


def _per_16bit_read(arch) -> dict[str, float]:
    return {lv.name: lv.energy["read"].pJ / lv.block_size * 16 / lv.datawidth
            for lv in arch.levels if not lv.is_dummy}


# Per 16-bit access, the ranges the sources give (docs/energy.md, "Checks"): ISCA16 Table IV
# (200:6:1), Accelergy 45 nm (FUS ERT: DRAM 128, GLB 8.68, RF 0.153-0.404; TLX ISPASS ERT:
# DRAM 128, GLB 8.09, RF 0.311-3.006) and Horowitz 45 nm (DRAM 325-650; SRAM 32 KB-1 MB
# 5-25 pJ): DRAM/GLB 13-130, GLB/RF 2.7-56.7, DRAM/RF 42.6-837.
RATIO_RANGES = {"DRAM/GLB": (13.0, 130.0), "GLB/RF": (2.7, 56.7), "DRAM/RF": (42.6, 837.0)}


def eyeriss_ratios(technology: str) -> dict[str, list[float]]:
    arch = estimate(_strip_energies(load_architecture("eyeriss_v1").arch), "table-45nm",
                    technology=technology)
    e = _per_16bit_read(arch)
    rfs = [e["ifmap_spad"], e["weights_spad"], e["psum_spad"]]
    return {"DRAM/GLB": [e["DRAM"] / e["shared_glb"]],
            "GLB/RF": [e["shared_glb"] / r for r in rfs],
            "DRAM/RF": [e["DRAM"] / r for r in rfs]}


def test_estimator_dram_glb_rf_ratios_are_in_the_sources_ranges_and_documented() -> None:
    ratios = eyeriss_ratios("45nm")
    for key, values in ratios.items():
        lo, hi = RATIO_RANGES[key]
        for v in values:
            assert lo <= v <= hi, (key, v)
    doc = (REPO / "docs" / "energy.md").read_text()
    # the documented numbers are the estimator's own
    line = next(ln for ln in doc.splitlines() if ln.startswith("| table-45nm, 45 nm |"))
    nums = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", line.split("|", 2)[2])]
    expect = ratios["DRAM/GLB"] + ratios["GLB/RF"] + ratios["DRAM/RF"]
    assert nums[:len(expect)] == pytest.approx(expect, rel=0.01)


def test_eyeriss_normalized_model_is_200_6_1() -> None:
    arch = load_architecture("eyeriss_v1", energy_model="eyeriss-normalized").arch
    e = _per_16bit_read(arch)
    mac = arch.compute.energy["compute"].pJ
    assert e["DRAM"] / mac == pytest.approx(200)
    assert e["shared_glb"] / mac == pytest.approx(6)
    for rf in ("ifmap_spad", "weights_spad", "psum_spad"):
        assert e[rf] / mac == pytest.approx(1)
    assert arch.compute.energy["compute"].source.startswith("estimator:eyeriss-normalized")


# ----------------------------------------------------------------------------- MAX78000


MAX = REPO_ARCH_SPECS / "max78000.yaml"


def _max_cycles(C: int, R: int, K: int = 64):
    arch = load_architecture(MAX).arch
    layer = conv2d(f"conv_c{C}_r{R}", C=C, K=K, P=32, Q=32, R=R, S=R)
    check_layer(layer, arch)
    problem, notes = prepare_problem(layer, arch)
    _, _, ev = _search([MAX], problem, 4096)
    return layer, problem, notes, ev


def test_max78000_channel_words_and_passes() -> None:
    _, p64, notes64, ev64 = _max_cycles(64, 3)
    _, p60, notes60, ev60 = _max_cycles(60, 3)
    layer65, p65, notes65, ev65 = _max_cycles(65, 3)
    # 64 and 60 channels: one pass, 16 resp. 15 words of 4 channels, same cycles
    assert notes64 == notes60 == []
    assert ev64.cycles == ev60.cycles == 64 * 32 * 32
    # 65 channels: a second pass (2 x 36 channels, each a multiple of 4), twice the cycles
    assert p65.bounds["C"] == 72 and p65.padded_from == {"C": 65}
    assert "2 passes of 36" in notes65[0]
    assert true_macs(p65) == layer65.macs
    assert ev65.cycles == 2 * ev64.cycles
    assert ev64.utilization == pytest.approx(1.0)


def test_max78000_1x1_uses_one_of_nine_lanes() -> None:
    l3, _, _, ev3 = _max_cycles(64, 3)
    l1, _, _, ev1 = _max_cycles(64, 1)
    peak = 576  # 64 processors x 9 lanes
    frac3 = l3.macs / ev3.cycles / peak
    frac1 = l1.macs / ev1.cycles / peak
    assert frac3 == pytest.approx(1.0)
    assert frac1 == pytest.approx(1 / 9)
    assert frac1 < frac3


def test_max78000_refuses_depthwise() -> None:
    arch = load_architecture(MAX).arch
    dw = conv2d("dw", C=32, K=32, P=16, Q=16, R=3, S=3, groups=32)
    with pytest.raises(SpecError, match=r"rule 'allow_groups' of max78000: layer dw is a "
                                        r"depthwise convolution"):
        check_layer(dw, arch)
    net = load_workload("mobilenetv2_cifar")
    layer = next(lay for lay in net.layers if lay.type == "depthwise"
                 or lay.attrs.get("groups", 1) > 1)
    with pytest.raises(SpecError, match="rule 'allow_groups'"):
        check_layer(layer, arch)
    # the MAX78002 runs depthwise, but not other grouped convolutions
    arch2 = load_architecture("max78002").arch
    check_layer(dw, arch2)
    with pytest.raises(SpecError, match="rule 'allow_groups' of max78002"):
        check_layer(conv2d("g2", C=32, K=32, P=8, Q=8, R=3, S=3, groups=2), arch2)


def test_max78000_other_rules_are_named() -> None:
    arch = load_architecture(MAX).arch
    cases = [
        (conv2d("k5", C=16, K=16, P=8, Q=8, R=5, S=5), "kernel_sizes"),
        (conv2d("s2", C=16, K=16, P=8, Q=8, R=3, S=3, stride=(2, 2)), "strides"),
        (conv2d("wide", C=2048, K=16, P=8, Q=8, R=1, S=1), "max_channels"),
        (conv2d("heavy", C=256, K=256, P=8, Q=8, R=3, S=3), "weight_capacity_bytes"),
    ]
    for layer, rule in cases:
        with pytest.raises(SpecError, match=f"rule '{rule}' of max78000: layer {layer.name}"):
            check_layer(layer, arch)
    check_layer(conv2d("ok", C=64, K=64, P=32, Q=32, R=3, S=3), arch)


def test_max78000_refuses_resnet50_beyond_weight_memory() -> None:
    arch = load_architecture(MAX).arch
    net = load_workload("resnet50")
    # layers the engine could run one by one (1x1/3x3, stride 1, <= 1024 channels, fit alone)
    runnable = [lay for lay in net.layers if lay.problem is not None and lay.type == "conv2d"
                and check_layer_ok(lay, arch)]
    assert len(runnable) > 10
    with pytest.raises(SpecError, match=r"rule 'weight_capacity_bytes' of max78000: the weights "
                                        r"of the \d+ conv/fc layers of these layers need") as exc:
        check_network(runnable, arch)
    assert "kernel_sizes" not in str(exc.value)
    with pytest.raises(SpecError) as exc:
        check_network(net, arch)
    text = str(exc.value)
    for rule in ("kernel_sizes", "strides", "weight_capacity_bytes", "max_layers"):
        assert f"rule '{rule}' of max78000" in text
    assert text.startswith("max78000 cannot run resnet50")


def check_layer_ok(layer, arch) -> bool:
    try:
        check_layer(layer, arch)
    except SpecError:
        return False
    return True


# ----------------------------------------------------------------------------- AIE


AIE = REPO_ARCH_SPECS / "aie_npu.yaml"
AIE3 = REPO_ARCH_SPECS / "aie_npu_3col.yaml"


def test_aie_columns_parameter() -> None:
    for n in (1, 2, 3, 4):
        arch = load_architecture(AIE, parameters={"columns": n}).arch
        assert arch.compute.instances == n * 4 * 256
        assert arch.levels[0].read_bandwidth == 8 * n  # 2 shim MM2S channels x 4 B per column
        assert load_architecture(f"aie_npu_{n}col" if n < 4 else "aie_npu").arch \
            .compute.instances == n * 1024
    with pytest.raises(SpecError, match="parameter columns = 5 is outside its range 1..4"):
        load_architecture(AIE, parameters={"columns": 5})
    res = CliRunner().invoke(main, ["arch", "show", "aie_npu", "--set", "columns=3"])
    assert res.exit_code == 0 and "peak 3,072 MACs/cycle" in res.output


def test_aie_tile_over_64kb_is_only_mapped_with_a_smaller_tile() -> None:
    layer = conv2d("b0.conv2", C=64, K=64, P=32, Q=32, R=3, S=3, bits=None)
    spec = load_spec([AIE3, REPO / "workloads" / "vgg02_conv5.yaml"], need_mapping=False)
    arch = spec.arch
    tile = arch.levels[arch.index("tile_memory")]
    assert tile.capacity_words == 65536  # 64 KB of int8
    whole = sum(ds.size(layer.bounds) for ds in layer.data_spaces)
    assert whole > 65536  # inputs 34x34x64 + weights 36,864 + outputs 65,536
    # the whole layer in one tile: refused, naming the tile memory
    mapping = read_mapping([{"level": "tile_memory", "temporal": "C64 M64 R3 S3 P32 Q32"}],
                           arch, layer, spec.arch_constraints)
    with pytest.raises(MappingError, match="tile_memory need .* holds 65536 words"):
        evaluate(layer, arch, mapping)
    # the mapper finds only smaller tiles
    _, mapping, ev = _search([AIE3], layer, 4096)
    used = next(lv.used_words for lv in ev.levels if lv.name == "tile_memory")
    assert 0 < used <= 65536


def test_aie_never_more_than_256_macs_per_cycle_per_tile() -> None:
    layer = conv2d("c", C=64, K=64, P=32, Q=32, R=1, S=1)
    spec = load_spec([AIE3, REPO / "workloads" / "vgg02_conv5.yaml"], need_mapping=False)
    arch = spec.arch
    mapping = read_mapping([{"level": "mem_tile", "temporal": "C64 M2 P32"},
                            {"level": "mac_lanes", "spatial": {"X": "M32 Q32"}}],
                           arch, layer, spec.arch_constraints)
    with pytest.raises(MappingError, match="mac_lanes is 1024x1 .* allows 256x1"):
        evaluate(layer, arch, mapping)
    cons = constraints_from_document(spec.document.data, arch, layer, spec.arch_constraints)
    searcher = Searcher(layer, arch, cons, _cfg(4096))
    choice, perm, keep = searcher.random_block(0, 2048)
    T, SX, SY = searcher.space.factor_arrays(choice)
    lanes = arch.index("mac_lanes")
    per_tile = (SX[:, lanes] * SY[:, lanes]).prod(axis=1)
    assert per_tile.max() <= 256


@pytest.mark.slow
def test_aie_resnet_conv2x_on_three_columns_respects_peak() -> None:
    net = load_workload("resnet50_conv2x_32")
    tiles = 3 * 4
    total_cycles = 0
    total_macs = 0
    for group in net.unique_shapes(mac_only=True):
        problem = group.problem
        arch, _, ev = _search([AIE3], problem, 3072)
        assert arch.compute.instances == tiles * 256
        assert problem.macs / ev.cycles / tiles <= 256
        total_cycles += ev.cycles * len(group.layers)
        total_macs += problem.macs * len(group.layers)
    assert total_macs == 218_103_808
    assert total_cycles >= total_macs / (tiles * 256)  # 70,997.3


# ----------------------------------------------------------------------------- estimator


def test_estimator_fills_only_missing_energies(tmp_path: Path) -> None:
    arch = load_architecture("eyeriss_like").arch  # every energy given inline
    same = estimate(arch, "table-45nm")
    for a, b in zip(arch.levels, same.levels, strict=True):
        assert a.energy == b.energy
    assert same.compute.energy == arch.compute.energy
    partial = replace(arch, levels=tuple(
        replace(lv, energy={"read": lv.energy["read"]}) if lv.energy else lv
        for lv in arch.levels))
    filled = estimate(partial, "table-45nm")
    glb = filled.levels[filled.index("shared_glb")]
    assert glb.energy["read"].source.startswith("spec:inline")
    assert glb.energy["write"].source.startswith("estimator:table-45nm")


def test_estimator_close_to_accelergy_32nm_for_eyeriss_like() -> None:
    ref = load_architecture("eyeriss_like").arch  # Accelergy 32 nm ERT of ISPASS ex06
    est = estimate(_strip_energies(ref), "table-45nm")  # technology 32nm from the file
    for a, b in zip(ref.levels, est.levels, strict=True):
        if a.is_dummy:
            continue
        ratio = b.energy["read"].pJ / a.energy["read"].pJ
        assert 0.7 <= ratio <= 1.5, (a.name, ratio)


def test_no_energy_model_means_missing_energies_stay_an_error(tmp_path: Path) -> None:
    text = (REPO_ARCH_SPECS / "eyeriss_v1.yaml").read_text()
    arch_file = tmp_path / "arch.yaml"
    arch_file.write_text(text.replace("  energy_model: table-45nm", "  #"))
    mapping = tmp_path / "map.yaml"
    mapping.write_text("mapping:\n  - level: DRAM\n    temporal: C16 M16 R3 S3 P8 Q8\n")
    spec = load_spec([arch_file, _problem_file(tmp_path), mapping])
    with pytest.raises(SpecError, match="no energy per 'read' for component"):
        evaluate(spec.problem, spec.arch, spec.mapping)
    with pytest.raises(SpecError, match="unknown energy model 'table-45'.*did you mean"):
        arch_file.write_text(text.replace("energy_model: table-45nm", "energy_model: table-45"))
        load_spec([arch_file, _problem_file(tmp_path)], need_mapping=False)


# ----------------------------------------------------------------------------- native keys


NEW_KEYS_ARCH = """\
architecture:
  name: tiny
  parameters: {lanes: {value: 4, min: 1, max: 8}, rows: 2*lanes}
  energy_model: table-45nm
  rules: {kernel_sizes: [1, 3], allow_groups: depthwise, weight_capacity_bytes: 64*1024}
  dimension_granularity: {C: {pass_size: 16, multiple_of: 4}, M: 8}
  levels:
    - {name: DRAM, class: DRAM, width: 64, datawidth: 8}
    - {name: buf, depth: 1024, width: 64, datawidth: 8, banks: 4}
    - {fanout: pe, meshX: lanes, meshY: rows}
    - {name: reg, class: regfile, depth: 8, width: 8, datawidth: 8}
  compute: {name: mac, datawidth: 8}
"""


def test_native_parameters_rules_granularity_and_banks(tmp_path: Path) -> None:
    f = tmp_path / "arch.yaml"
    f.write_text(NEW_KEYS_ARCH)
    arch = load_architecture(f).arch
    assert arch.compute.instances == 4 * 8
    assert arch.attributes["parameters"] == {"lanes": 4, "rows": 8}
    assert arch.attributes["dimension_granularity"] == {"C": (16, 4), "M": (8, 8)}
    assert arch.attributes["rules"]["weight_capacity_bytes"] == 65536
    assert arch.levels[1].attributes == {"banks": 4}
    assert "2 KiB per bank x 4 banks" in arch.levels[1].energy["read"].source
    assert load_architecture(f, parameters={"lanes": 2}).arch.compute.instances == 2 * 4
    layer = conv2d("l", C=20, K=12, P=4, Q=4, R=3, S=3)
    p, notes = prepare_problem(layer, arch)
    assert (p.bounds["C"], p.bounds["M"]) == (24, 16) and p.padded_from == {"C": 20, "M": 12}
    assert true_macs(p) == layer.macs and len(notes) == 2
    bad = [
        ("kernel_sizes: [1, 3]", "kernel_size: [1, 3]", "unknown key 'kernel_size'.*did you mean"),
        ("allow_groups: depthwise", "allow_groups: some", "expected false, true or depthwise"),
        ("M: 8}", "M: 0}", "expected a whole number >= 1"),
        ("multiple_of: 4}", "multiple_of: 5}", "multiple_of 5 does not divide pass_size 16"),
        ("rows: 2*lanes", "rows: 2*lane", "unknown name 'lane'"),
        ("banks: 4", "banks: 0", "expected a positive number"),
    ]
    for old, new, msg in bad:
        f.write_text(NEW_KEYS_ARCH.replace(old, new))
        with pytest.raises(SpecError, match=msg):
            load_architecture(f)
    f.write_text(NEW_KEYS_ARCH)
    with pytest.raises(SpecError, match="has no parameter 'lane'.*did you mean 'lanes'"):
        load_architecture(f, parameters={"lane": 2})


def test_extends_takes_levels_from_the_base(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(NEW_KEYS_ARCH)
    var = tmp_path / "var.yaml"
    var.write_text("architecture:\n  extends: base.yaml\n  name: small\n"
                   "  parameters: {lanes: 1}\n  levels:\n")
    arch = load_architecture(var).arch
    assert arch.name == "small" and arch.compute.instances == 1 * 2
    assert arch.attributes["extends"].endswith("base.yaml")
    var.write_text("architecture:\n  extends: base.yaml\n  levels: [{name: x}]\n")
    with pytest.raises(SpecError, match="takes its levels from it"):
        load_architecture(var)
    var.write_text("architecture:\n  extends: nothere.yaml\n  levels:\n")
    with pytest.raises(SpecError, match="base architecture file nothere.yaml not found"):
        load_architecture(var)
