"""dse's native YAML format: readers, converters, round trips and the Eyeriss-like data files."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

from dse.errors import SpecError
from dse.model.evaluate import Evaluation, evaluate
from dse.spec import native, timeloop
from dse.spec.build import Spec, load_spec
from dse.spec.convert import (
    arch_to_native,
    mapping_to_native,
    mapping_to_timeloop,
    problem_to_native,
)
from dse.spec.yamlload import load_yaml_text

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "timeloop"
EX06 = REFERENCE / "ispass_06_mapper_eyeriss"
ARCH = REPO / "arch_specs" / "eyeriss_like.yaml"
WORKLOAD = REPO / "workloads" / "vgg02_conv5.yaml"
MAPPING = REPO / "mappings" / "eyeriss_like_vgg02_conv5.yaml"
DATA_FILES = [ARCH, WORKLOAD, MAPPING]

CASES = sorted(p.name for p in REFERENCE.iterdir() if (p / "case.yaml").is_file())
assert CASES, f"no Timeloop reference cases under {REFERENCE}"


def load_case(name: str) -> Spec:
    folder = REFERENCE / name
    case = yaml.safe_load((folder / "case.yaml").read_text())
    return load_spec([folder / "inputs" / f for f in case["inputs"]])


def comparable(ev: Evaluation) -> Evaluation:
    """Everything but the energy provenance strings (which name the file they came from)."""
    return dataclasses.replace(ev, energy_sources={})


def native_text(spec: Spec) -> str:
    doc = {
        "architecture": arch_to_native(spec.arch, spec.arch_constraints),
        "problem": problem_to_native(spec.problem),
        "mapping": mapping_to_native(spec.mapping, spec.arch, spec.problem),
    }
    return yaml.safe_dump(doc, sort_keys=False)


def strip_sources(arch):
    """Architecture with energy sources blanked and Timeloop attribute dumps dropped."""
    def clean(e):
        return {a: dataclasses.replace(v, source="") for a, v in e.items()}
    levels = tuple(dataclasses.replace(lv, energy=clean(lv.energy), attributes={})
                   for lv in arch.levels)
    return dataclasses.replace(arch, levels=levels, source=None,
                               compute=dataclasses.replace(arch.compute,
                                                           energy=clean(arch.compute.energy)))


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("case", CASES)
def test_timeloop_to_native_round_trip(case: str, tmp_path: Path) -> None:
    spec = load_case(case)
    before = evaluate(spec.problem, spec.arch, spec.mapping)
    path = tmp_path / "native.yaml"
    path.write_text(native_text(spec))
    again = load_spec([path])
    assert "levels" in again.document.data["architecture"]  # really read as native
    after = evaluate(again.problem, again.arch, again.mapping)
    assert comparable(after) == comparable(before)
    assert after.cycles == before.cycles and after.energy_pJ == before.energy_pJ
    assert strip_sources(again.arch) == strip_sources(spec.arch)
    assert dataclasses.replace(again.problem, source=None, name="") == \
        dataclasses.replace(spec.problem, source=None, name="")
    assert again.mapping.loops(spec.problem.dims) == spec.mapping.loops(spec.problem.dims)
    tensors = spec.problem.tensor_names
    for lv, a, b in zip(spec.arch.levels, again.mapping.levels, spec.mapping.levels, strict=True):
        assert a.target == b.target == lv.name
        if not lv.is_dummy:
            assert [t for t in tensors if a.keeps(t)] == [t for t in tensors if b.keeps(t)]
    # energies read back inline, naming where they came from
    src = again.arch.levels[0].energy["read"].source
    assert src.startswith("spec:inline (")


@pytest.mark.parametrize("case", CASES)
def test_mapping_to_timeloop_round_trip(case: str) -> None:
    spec = load_case(case)
    before = evaluate(spec.problem, spec.arch, spec.mapping)
    directives = mapping_to_timeloop(spec.mapping, spec.arch, spec.problem)
    node = load_yaml_text(yaml.safe_dump({"mapping": directives}, sort_keys=False), "tl.yaml")
    mapping = timeloop.read_mapping(node["mapping"], spec.arch, spec.problem)
    after = evaluate(spec.problem, spec.arch, mapping)
    assert comparable(after) == comparable(before)
    assert mapping.loops(spec.problem.dims) == spec.mapping.loops(spec.problem.dims)
    targets = {d["target"] for d in directives}
    assert targets == set(spec.arch.level_names())  # dummy (inter_*_spatial) levels included
    for d in directives:
        if d["type"] in ("temporal", "spatial"):
            assert sorted(re.findall(r"[A-Za-z_]+", d["factors"])) == sorted(spec.problem.dims)
            assert sorted(d["permutation"]) == sorted(spec.problem.dims)


def test_ex06_timeloop_export_matches_reference_map() -> None:
    spec = load_case("ispass_06_mapper_eyeriss")
    directives = mapping_to_timeloop(spec.mapping, spec.arch, spec.problem)
    by_key = {(d["target"], d["type"]): d for d in directives}
    assert by_key[("DRAM", "temporal")]["factors"] == "C4 M4 R1 S1 N1 P7 Q4"
    assert by_key[("DRAM", "temporal")]["permutation"] == "MPCQRSN"
    pe = by_key[("inter_PE_spatial", "spatial")]
    assert (pe["factors"], pe["permutation"], pe["split"]) == ("C1 M4 R1 S3 N1 P1 Q1",
                                                               "SMCRNPQ", 0)
    col = by_key[("inter_PE_column_spatial", "spatial")]
    assert (col["permutation"][0], col["split"]) == ("Q", 1)
    assert by_key[("shared_glb", "datatype")] == {
        "target": "shared_glb", "type": "datatype", "keep": ["Inputs", "Outputs"],
        "bypass": ["Weights"]}
    assert by_key[("inter_PE_spatial", "datatype")]["keep"] == []


def test_native_data_files_round_trip_exactly(tmp_path: Path) -> None:
    spec = load_spec(DATA_FILES)
    path = tmp_path / "again.yaml"
    path.write_text(native_text(spec))
    again = load_spec([path])
    assert dataclasses.replace(again.arch, source=None) == \
        dataclasses.replace(spec.arch, source=None)
    assert again.arch_constraints == spec.arch_constraints
    assert dataclasses.replace(again.problem, source=None) == \
        dataclasses.replace(spec.problem, source=None)
    assert again.mapping.loops(spec.problem.dims) == spec.mapping.loops(spec.problem.dims)
    assert evaluate(again.problem, again.arch, again.mapping) == \
        evaluate(spec.problem, spec.arch, spec.mapping)


# ----------------------------------------------------------------------------- data files


def _expected_rows() -> dict[tuple[str, str], dict]:
    with open(EX06 / "expected.csv", newline="") as f:
        return {(r["level"], r["tensor"]): r for r in csv.DictReader(f)}


def test_data_files_reproduce_ex06() -> None:
    spec = load_spec(DATA_FILES)
    ev = evaluate(spec.problem, spec.arch, spec.mapping)
    summary = json.loads((EX06 / "expected_summary.json").read_text())
    assert ev.macs == summary["macs"] == 924_844_032
    assert ev.cycles == summary["cycles"] == 5_505_024
    assert ev.energy_pJ == pytest.approx(summary["energy_pJ"], rel=0.005)
    assert ev.energy_pJ == pytest.approx(2.764377e9, rel=0.005)
    expected = _expected_rows()
    got = {(r.level, r.tensor): r for r in ev.stats}
    assert set(got) == {k for k in expected if k[1] != "compute"}
    for key, row in got.items():
        exp = expected[key]
        assert row.instances == int(exp["instances"])
        assert row.utilized_capacity_words == int(exp["utilized_capacity_words"]), key
        assert row.reads_per_instance == int(exp["reads_per_instance"]), key
        assert row.fills_per_instance == int(exp["fills_per_instance"]), key
        assert row.updates_per_instance == int(exp["updates_per_instance"]), key
        assert row.energy_pJ == pytest.approx(float(exp["energy_pJ"]), rel=0.005), key
    for lv in ev.levels:
        if lv.name in summary["level_energy_pJ"]:
            assert lv.energy_pJ == pytest.approx(summary["level_energy_pJ"][lv.name], rel=0.005)
    # same numbers as the Timeloop-form inputs of the case (whose fan-outs are inter_*_spatial)
    ref = load_case("ispass_06_mapper_eyeriss")
    tl = evaluate(ref.problem, ref.arch, ref.mapping)
    assert ev.stats == tl.stats
    assert (ev.cycles, ev.energy_pJ, ev.compute_energy_pJ) == \
        (tl.cycles, tl.energy_pJ, tl.compute_energy_pJ)
    assert [dataclasses.replace(lv, name="") for lv in ev.levels] == \
        [dataclasses.replace(lv, name="") for lv in tl.levels]


def test_data_files_structure() -> None:
    spec = load_spec(DATA_FILES)
    arch = spec.arch
    assert arch.level_names() == ("DRAM", "shared_glb", "PE_column", "PE", "ifmap_spad",
                                  "weights_spad", "psum_spad")
    assert [lv.instances for lv in arch.levels] == [1, 1, 1, 14, 168, 168, 168]
    assert (arch.levels[4].mesh_x, arch.levels[4].mesh_y) == (14, 12)
    assert arch.fanout(2) == (14, 1) and arch.fanout(3) == (1, 12)
    assert arch.levels[2].is_dummy and arch.levels[3].is_dummy
    assert arch.levels[0].is_dram and arch.levels[0].capacity_words is None
    assert arch.levels[1].capacity_words == 16384 * 8
    assert arch.levels[6].block_size == 1 and arch.levels[4].block_size == 2
    assert arch.compute.instances == 168
    assert arch.clock_hz == 1e9 and arch.technology == "32nm"
    assert arch.levels[1].energy["read"].pJ == 18.183829
    assert arch.levels[1].energy["read"].source == \
        "spec:inline (Accelergy 32 nm via Timeloop ISPASS ex06 reference ERT)"
    assert arch.compute.energy["compute"].pJ == 0.207692
    assert spec.arch_constraints["shared_glb"] == (["Inputs", "Outputs"], None)
    assert spec.problem.bounds == {"C": 128, "M": 256, "R": 3, "S": 3, "N": 1, "P": 56, "Q": 56}
    m = spec.mapping.levels
    assert m[0].temporal_order == ("M", "P", "C", "Q")  # innermost first
    assert m[3].spatial_order == ("S", "M") and m[3].split == 0
    assert m[2].spatial == {"Q": 14} and m[2].split == 1
    assert m[2].keep == frozenset() and m[0].keep is None
    assert spec.mapping.source == str(MAPPING)


# ----------------------------------------------------------------------------- reader details

ARCH_TEXT = """\
architecture:
  version: 1
  name: tiny
  levels:
    - name: DRAM
      class: DRAM
      width: 64
      datawidth: 8
      energy: {read: 100, write: 100, update: 100}
    - name: buf
      depth: 16*1024
      width: 32
      datawidth: 8
      keep: [A, Z]
      energy: {read: {pJ: 2.5, source: CACTI}, write: 2, leak: 0.01}
    - fanout: array
      meshX: 4
      meshY: 2
    - name: reg
      depth: 4
      datawidth: 16
      energy: {read: 0.1, write: 0.1, source: guess}
  compute:
    name: mac
    energy: {compute: 0.5}
"""
MATMUL = "problem: {type: matmul, M: 16, N: 8, K: 32}\n"


def read_text(tmp_path: Path, **texts: str) -> Spec:
    paths = []
    for name, text in texts.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        paths.append(path)
    return load_spec(paths)


def test_architecture_reader(tmp_path: Path) -> None:
    arch, cons = native.read_architecture(load_yaml_text(ARCH_TEXT, "a.yaml")["architecture"])
    buf, fan, reg = arch.levels[1], arch.levels[2], arch.levels[3]
    assert buf.depth == 16384 and buf.block_size == 4 and buf.capacity_words == 65536
    assert (fan.name, fan.is_dummy, fan.instances, fan.depth, fan.block_size) == \
        ("array", True, 1, 1, 1)
    assert (reg.instances, reg.mesh_x, reg.mesh_y, reg.width, reg.block_size) == (8, 4, 2, 16, 1)
    assert arch.compute.instances == 8 and arch.fanout(2) == (4, 2)
    assert buf.energy["read"].source == "spec:inline (CACTI)"
    assert buf.energy["write"].source == "spec:inline"
    assert reg.energy["read"].source == "spec:inline (guess)"
    assert "update" not in buf.energy  # not defaulted
    assert cons == {"buf": (["A", "Z"], None)}
    assert arch.clock_hz is None


def test_missing_version_means_one_and_string_one_is_accepted() -> None:
    text = ARCH_TEXT.replace("  version: 1\n", "")
    a1, _ = native.read_architecture(load_yaml_text(text, "a.yaml")["architecture"])
    a2, _ = native.read_architecture(load_yaml_text(
        ARCH_TEXT.replace("version: 1", "version: '1'"), "a.yaml")["architecture"])
    assert a1 == a2


def test_mapping_defaults_from_architecture_constraints(tmp_path: Path) -> None:
    mapping = """\
mapping:
  - level: DRAM
    temporal: K4
  - level: buf
    temporal: N2 M2 K8
  - level: array
    spatial: {X: M4, Y: N2}
  - level: reg
    temporal: M2 N2
    keep: [Z]
"""
    spec = read_text(tmp_path, arch=ARCH_TEXT, prob=MATMUL, map=mapping)
    dram, buf, fan, reg = spec.mapping.levels
    assert dram.keep is None
    assert buf.keep == frozenset({"A", "Z"})  # from the architecture's keep list
    assert fan.keep == frozenset()
    assert reg.keep == frozenset({"Z"})
    assert buf.temporal == {"N": 2, "M": 2, "K": 8} and buf.temporal_order == ("K", "M", "N")
    assert fan.spatial_order == ("M", "N") and fan.split == 1
    loops = [(lp.dim, lp.bound, lp.spatial, lp.spatial_x)
             for lp in spec.mapping.loops(spec.problem.dims)]
    assert loops[:5] == [("K", 4, False, False), ("N", 2, False, False), ("M", 2, False, False),
                         ("K", 8, False, False), ("N", 2, True, False)]
    assert loops[5] == ("M", 4, True, True)
    ev = evaluate(spec.problem, spec.arch, spec.mapping)
    assert ev.macs == 16 * 8 * 32
    assert {r.tensor for r in ev.stats if r.level == "buf"} == {"A", "Z"}


def test_mapping_dict_form_and_tokens(tmp_path: Path) -> None:
    prob = "problem: {dims: {K: 4, K1: 6}, tensors: {A: [K], Z: {ranks: [K1], read_write: true}}}\n"
    mapping = "mapping: {version: 1, levels: [{level: DRAM, temporal: 'K=4, K1=6'}]}\n"
    spec = read_text(tmp_path, arch=ARCH_TEXT, prob=prob, map=mapping)
    assert spec.mapping.levels[0].temporal == {"K": 4, "K1": 6}
    out = mapping_to_native(spec.mapping, spec.arch, spec.problem)
    assert out[0]["temporal"] == "K4 K1=6"  # 'K16' would be ambiguous
    tl = mapping_to_timeloop(spec.mapping, spec.arch, spec.problem)
    assert tl[1]["factors"] == "K4 K1=6" and tl[1]["permutation"] == "K1 K"
    bad = mapping.replace("'K=4, K1=6'", "'K14'")
    with pytest.raises(SpecError, match="ambiguous"):
        read_text(tmp_path, arch=ARCH_TEXT, prob=prob, map=bad)


def test_conv2d_shorthand_is_timeloop_cnn_layer() -> None:
    ours = native.read_problem(load_yaml_text(
        "{type: conv2d, C: 8, M: 16, R: 3, S: 3, P: 10, Q: 12, stride: 2, Hdilation: 3}", "p.yaml"))
    theirs = timeloop.read_problem(load_yaml_text(
        "{shape: cnn-layer, instance: {C: 8, M: 16, R: 3, S: 3, N: 1, P: 10, Q: 12, Wstride: 2,"
        " Hstride: 2, Hdilation: 3}}", "t.yaml"))
    assert ours.dims == theirs.dims == ("C", "M", "R", "S", "N", "P", "Q")
    assert ours.bounds == theirs.bounds
    assert ours.data_spaces == theirs.data_spaces
    assert ours.coefficients == theirs.coefficients
    assert ours.name == "conv2d"


def test_matmul_shorthand_and_explicit_tensors_agree() -> None:
    short = native.read_problem(load_yaml_text("{type: matmul, M: 4, N: 5, K: 6}", "m.yaml"))
    explicit = native.read_problem(load_yaml_text(
        "{name: matmul, dims: {M: 4, N: 5, K: 6}, tensors: {A: [M, K], B: [K, N],"
        " Z: {ranks: [M, N], read_write: true}}}", "m.yaml"))
    assert short == explicit
    assert [ds.name for ds in short.data_spaces if ds.read_write] == ["Z"]


def test_rank_expressions_and_bits() -> None:
    p = native.read_problem(load_yaml_text("""\
dims: {P: 5, R: 3, C: 2}
coefficients: {s: 2}
tensors:
  I: ["s*P + R", "2*C"]
  O: {ranks: [P], read_write: true, bits: 16}
""", "p.yaml"))
    assert p.data_space("I").ranks == ((("P", 2), ("R", 1)), (("C", 2),))
    assert p.data_space("O").word_bits == 16
    assert problem_to_native(p)["tensors"]["I"] == ["2*P + R", "2*C"]


# ----------------------------------------------------------------------------- errors

EYERISS = {"arch": ARCH.read_text(), "wl": WORKLOAD.read_text(), "map": MAPPING.read_text()}

ERROR_CASES = [
    # (file, old, new, expected fragments)
    ("arch", "read_bandwidth: 16", "read_bandwith: 16",
     ["unknown key 'read_bandwith'", "did you mean 'read_bandwidth'"]),
    ("arch", "    - fanout: PE\n", "    - fanot: PE\n", ["`fanout:`", "did you mean 'fanout'"]),
    ("arch", "leak: 0.000101", "leek: 0.000101", ["unknown key 'leek'", "did you mean 'leak'"]),
    ("arch", "depth: 16384", "depth: [16384]", ["expected a number"]),
    ("arch", "depth: 192", "depth: 19.5", ["whole number"]),
    ("arch", "name: weights_spad", "name: ifmap_spad", ["used twice"]),
    ("arch", "  version: 1", "  version: 2", ["unsupported native format version 2"]),
    ("wl", "  version: 1", "  version: 1.5", ["unsupported native format version"]),
    ("wl", "dims:", "dimz:", ["unknown key 'dimz'", "did you mean 'dims'"]),
    ("wl", "Wstride*P", "Wstrid*P", ["unknown coefficient 'Wstrid'", "did you mean 'Wstride'"]),
    ("wl", "read_write: true", "read_write: maybe", ["expected true or false"]),
    ("wl", "[C, M, R, S]", "[C, M, R, X]", ["names no dimension"]),
    ("wl", "P: 56,", "P: fifty-six,", ["dims.P"]),
    ("map", "level: PE_column", "level: PE_colum",
     ["unknown level 'PE_colum'", "did you mean 'PE_column'"]),
    ("map", "temporal: Q4 C4 P7 M4", "temporal: Q4 C-4 P7 M4", ["cannot read loop 'C-4'"]),
    ("map", "temporal: Q4 C4 P7 M4", "temporal: Q4 X4 P7 M4", ["unknown dimension 'X'"]),
    ("map", "temporal: Q4 C4 P7 M4", "temporal: Q4 C4 P7 M4 C1", ["appears twice"]),
    ("map", "temporal: Q4 C4 P7 M4", "temporal: Q4 C0 P7 M4", ["at least 1"]),
    ("map", "temporal: Q4 C4 P7 M4", "temporal: {Q: 4}", ["loops are a string"]),
    ("map", "{X: Q14}", "{Z: Q14}", ["unknown key 'Z'"]),
    ("map", "keep: [Inputs]", "keep: [Inputz]", ["unknown tensor 'Inputz'", "'Inputs'"]),
    ("map", "keep: [Inputs]", "keep: Inputs", ["expected a list of tensor names"]),
    ("map", "  - level: PE_column\n", "  - level: PE_column\n    keep: [Inputs]\n", ["fan-out"]),
    ("map", "  - level: DRAM\n", "  - level: DRAM\n    tempral: Q1\n",
     ["unknown key 'tempral'", "did you mean 'temporal'"]),
    ("map", "  - level: psum_spad\n", "  - level: shared_glb\n", ["appears twice"]),
    ("map", "  - level: weights_spad\n", "  - level: DRAM\n", ["appears twice"]),
]


@pytest.mark.parametrize("kind,old,new,fragments", ERROR_CASES,
                         ids=[f"{c[0]}:{c[2].strip()[:24]}" for c in ERROR_CASES])
def test_errors_name_file_and_line(tmp_path: Path, kind: str, old: str, new: str,
                                   fragments: list[str]) -> None:
    texts = dict(EYERISS)
    assert old in texts[kind], old
    texts[kind] = texts[kind].replace(old, new, 1)
    with pytest.raises(SpecError) as info:
        spec = read_text(tmp_path, **texts)
        evaluate(spec.problem, spec.arch, spec.mapping)
    msg = str(info.value)
    assert re.search(rf"{kind}\.yaml:\d+", msg), msg
    for frag in fragments:
        assert frag in msg, msg


def test_error_line_numbers_are_exact(tmp_path: Path) -> None:
    text = EYERISS["map"].replace("temporal: R3 C8", "temporal: R3 C8 Z2")
    line = 1 + next(i for i, t in enumerate(text.splitlines()) if "Z2" in t)
    with pytest.raises(SpecError) as info:
        read_text(tmp_path, arch=EYERISS["arch"], wl=EYERISS["wl"], map=text)
    assert f"map.yaml:{line}:" in str(info.value)


def test_mapping_out_of_order_is_an_error(tmp_path: Path) -> None:
    text = EYERISS["map"].replace("  - level: ifmap_spad\n    keep: [Inputs]\n", "")
    text = text.replace("  - level: PE_column\n",
                        "  - level: ifmap_spad\n    keep: [Inputs]\n  - level: PE_column\n")
    with pytest.raises(SpecError, match=r"map\.yaml:\d+.*outermost level first"):
        read_text(tmp_path, arch=EYERISS["arch"], wl=EYERISS["wl"], map=text)


def test_mapping_version_error(tmp_path: Path) -> None:
    text = "mapping:\n  version: 3\n  levels:\n    - level: DRAM\n"
    with pytest.raises(SpecError, match=r"map\.yaml:2: .*version 3"):
        read_text(tmp_path, arch=EYERISS["arch"], wl=EYERISS["wl"], map=text)


def test_architecture_keep_naming_unknown_tensor_is_reported_where_written(
        tmp_path: Path) -> None:
    # the matmul problem has no Inputs/Outputs: the eyeriss keep lists cannot apply
    mapping = "mapping:\n  - level: DRAM\n    temporal: M16 N8 K32\n"
    with pytest.raises(SpecError) as info:
        read_text(tmp_path, arch=EYERISS["arch"], prob=MATMUL, map=mapping)
    msg = str(info.value)
    assert "unknown tensor 'Inputs'" in msg
    assert re.search(r"arch\.yaml:\d+", msg), msg
    assert "mapping" in msg  # hint: override it there


def test_shorthand_errors() -> None:
    with pytest.raises(SpecError, match=r"s\.yaml:1.*conv2d"):
        native.read_problem(load_yaml_text("{type: conv3d, C: 1}", "s.yaml"))
    with pytest.raises(SpecError, match=r"s\.yaml:1.*needs `K:`"):
        native.read_problem(load_yaml_text("{type: matmul, M: 1, N: 1}", "s.yaml"))
    with pytest.raises(SpecError, match=r"not both"):
        native.read_problem(load_yaml_text(
            "{type: conv2d, C: 1, M: 1, R: 1, S: 1, P: 1, Q: 1, stride: 1, Wstride: 2}",
            "s.yaml"))
