"""The sparse designs of the library (arch_specs/eyeriss_v1_sparse, eyeriss_v2, tensor_core_2to4),
the workloads with published densities (alexnet_pruned, mobilenet05_sparse), network densities,
and densities measured by `dse import` from an ONNX model.

Each design is evaluated with `dse model` on one layer with a mapping found on its dense twin
(tests/data/sparse_designs/README.md) and compared with the same design on the same layer with
every density 1.0: the sparse features must show (gated/skipped counts, compressed tiles) and
save energy.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dse.cli import main
from dse.errors import SpecError
from dse.spec.arch_library import load_architecture
from dse.spec.network import load_network_text
from dse.spec.workload_library import load_workload

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "sparse_designs"
ARCH = REPO / "arch_specs"


def _model(tmp: Path, *files: Path | str) -> tuple[dict, dict[tuple[str, str], dict]]:
    res = CliRunner().invoke(main, ["model", *map(str, files), "--out", str(tmp), "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp / "summary.json").read_text())
    with open(tmp / "levels.csv", newline="") as f:
        rows = {(r["level"], r["tensor"]): r for r in csv.DictReader(f)}
    return summary, rows


def _with_density_one(problem: Path, tmp: Path) -> Path:
    """The same layer file with every given density replaced by 1.0."""
    doc = yaml.safe_load(problem.read_text())
    holder = doc["problem"].get("instance", doc["problem"])
    holder["densities"] = {t: 1.0 for t in holder["densities"]}
    out = tmp / f"dense_{problem.name}"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def _compare(tmp: Path, arch: str, problem: Path, mapping: Path):
    sparse = _model(tmp / "sparse", ARCH / f"{arch}.yaml", problem, mapping)
    ones = _model(tmp / "ones", ARCH / f"{arch}.yaml", _with_density_one(problem, tmp), mapping)
    return sparse, ones


def _i(row: dict, key: str) -> int:
    return int(float(row[key] or 0))


# ----------------------------------------------------------------------------- the designs


def test_sparse_architectures_load_with_their_published_sizes() -> None:
    v1 = load_architecture("eyeriss_v1_sparse").arch
    assert v1.compute.instances == 168
    lv = {x.name: x for x in v1.levels}
    assert lv["DRAM"].attributes["metadata_datawidth"] == 5  # RLC run: 5 bits (JSSC17 IV-B)
    assert lv["shared_glb"].attributes["decompression_supported"] is True
    assert lv["weights_spad"].read_bandwidth == 1
    v2 = load_architecture("eyeriss_v2").arch
    assert v2.compute.instances == 384  # 16 clusters x 12 PEs x SIMD 2
    lv = {x.name: x for x in v2.levels}
    assert lv["iact_glb"].instances == 16 and lv["iact_spad"].instances == 192
    assert lv["iact_glb"].capacity_words == 4608  # 3 x 1.5 kB of 8-bit iacts
    assert lv["psum_glb"].capacity_words * 20 == 7680 * 8  # 4 x 1.875 kB of 20-bit psums
    assert (lv["iact_spad"].capacity_words, lv["weight_spad"].capacity_words,
            lv["psum_spad"].capacity_words) == (16, 192, 32)
    assert lv["iact_spad"].attributes["metadata_storage_depth"] == 25
    tc = load_architecture("tensor_core_2to4").arch
    assert tc.compute.instances == 4 * 256
    # the estimator prices metadata rows from the data energy per bit (docs/energy.md)
    dram = tc.levels[0]
    assert dram.energy["metadata_read"].pJ == pytest.approx(dram.energy["read"].pJ / 64 * 16)
    assert dram.energy["metadata_read"].source.startswith("estimator:")


def test_eyeriss_v1_zero_gating_saves_energy_not_time(tmp_path: Path) -> None:
    (s, rows), (one, one_rows) = _compare(tmp_path, "eyeriss_v1_sparse",
                                          DATA / "alexnet_pruned_conv3.yaml",
                                          DATA / "eyeriss_v1.conv3.map.yaml")
    w = rows[("weights_spad", "Weights")]
    p = rows[("psum_spad", "Outputs")]
    # a zero ifmap (density 0.275) gates the filter read and the psum access
    assert _i(w, "gated_reads_per_instance") > 0 and _i(p, "gated_reads_per_instance") > 0
    alg = _i(w, "algorithmic_reads_per_instance")
    assert _i(w, "gated_reads_per_instance") == pytest.approx(alg * (1 - 0.275), rel=1e-3)
    assert _i(one_rows[("weights_spad", "Weights")], "gated_reads_per_instance") == 0
    # RLC on the DRAM link: only nonzero ifmaps travel
    d = rows[("DRAM", "Inputs")]
    assert _i(d, "reads_per_instance") < _i(d, "algorithmic_reads_per_instance") * 0.3
    assert _i(d, "metadata_reads_per_instance") > 0
    assert _i(rows[("shared_glb", "Inputs")], "decompressions_per_instance") > 0
    # gated reads keep their cycle: as slow as dense, far less energy (with every density 1.0
    # the RLC metadata even slows the DRAM link: run lengths travel with dense data too)
    assert s["cycles"] == s["dense_cycles"] < one["cycles"]
    assert s["actual_computes"] < s["macs"] * 0.3
    assert s["energy_pJ"] < 0.6 * one["energy_pJ"]


def test_eyeriss_v2_skips_zero_work_and_is_faster(tmp_path: Path) -> None:
    (s, rows), (one, _) = _compare(tmp_path, "eyeriss_v2", DATA / "alexnet_pruned_conv3.yaml",
                                   DATA / "eyeriss_v2.conv3.map.yaml")
    w = rows[("weight_spad", "Weights")]
    assert _i(w, "skipped_reads_per_instance") > 0
    assert _i(rows[("psum_spad", "Outputs")], "skipped_reads_per_instance") > 0
    # CSC: compressed tiles hold only the nonzero weights
    assert _i(w, "utilized_capacity_words") < _i(w, "data_tile_shape_words") * 0.4
    assert w["representation_format"] == "uop rle"
    # a weight is read only for a nonzero iact (27.5 %): the other MACs vanish; of those left
    # the zero weights (1 - 0.346133, never stored: absent) are skipped by the MAC-level
    # skipping, so a MAC is done only for a nonzero pair
    left = s["macs"] - int(s["macs"] * (1 - 0.275))
    skipped = math.floor(left * (1 - 0.346133))
    assert (s["actual_computes"], s["skipped_computes"]) == (left - skipped, skipped)
    assert s["gated_computes"] == 0
    assert one["actual_computes"] == one["macs"]
    assert s["cycles"] < 0.3 * one["cycles"]
    assert s["energy_pJ"] < 0.3 * one["energy_pJ"]


def test_tensor_core_2to4_halves_the_macs(tmp_path: Path) -> None:
    (s, rows), (one, _) = _compare(tmp_path, "tensor_core_2to4", DATA / "conv_2to4.yaml",
                                   DATA / "tensor_core_2to4.map.yaml")
    inputs = rows[("registers", "Inputs")]
    alg = _i(inputs, "algorithmic_reads_per_instance")
    # exactly half the activation fetches meet a zero of a 2:4 group and are skipped
    assert _i(inputs, "skipped_reads_per_instance") == alg // 2
    assert s["actual_computes"] == s["macs"] // 2
    weights = rows[("DRAM", "Weights")]
    assert _i(weights, "utilized_capacity_words") == _i(weights, "data_tile_shape_words") // 2
    assert s["cycles"] < one["cycles"]
    assert s["energy_pJ"] < 0.7 * one["energy_pJ"]


# ----------------------------------------------------------------------------- workloads


def test_pruned_alexnet_has_its_published_densities() -> None:
    net = load_workload("alexnet_pruned")
    dense = load_workload("alexnet")
    assert net.stats()["macs"] == dense.stats()["macs"] == 724_406_816
    assert net.layer("conv3").densities == {"Inputs": 0.275, "Weights": 0.346133,
                                            "Outputs": 0.303}
    assert net.layer("conv1").densities["Weights"] == 0.710166
    for name in ("fc6", "fc7", "fc8", "pool1"):
        assert net.layer(name).densities == {}  # no published density: dense
    assert all(not lay.densities for lay in dense.layers)


def test_sparse_mobilenet_matches_eyeriss_v2s_workload() -> None:
    net = load_workload("mobilenet05_sparse")
    assert round(net.stats()["macs"] / 1e6, 1) == 49.2  # EV2: 49.2 M MACs
    sparse = {lay.name: lay.densities for lay in net.layers if lay.densities}
    assert sorted(sparse) == ["L07_pw3", "L09_pw4", "L13_pw6", "L19_pw9", "L21_pw10",
                              "L23_pw11", "L25_pw12", "L27_pw13"]
    assert sparse["L27_pw13"]["Weights"] == {"distribution": "hypergeometric", "density": 0.30}
    lay = net.layer("L07_pw3")
    assert lay.problem.bounds["C"] == lay.problem.bounds["M"] == 64  # Sparseloop's L07


def test_exported_layer_carries_densities_into_dse_model(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["workload", "export", "mobilenet05_sparse", "--timeloop",
                                    "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    doc = yaml.safe_load(next(tmp_path.glob("*_L27_pw13.yaml")).read_text())
    assert doc["problem"]["instance"]["densities"]["Inputs"] == {
        "distribution": "hypergeometric", "density": 0.58}
    dense_doc = yaml.safe_load(next(tmp_path.glob("*_L26_dw13.yaml")).read_text())
    assert "densities" not in dense_doc["problem"]["instance"]
    from dse.spec.build import load_spec

    spec = load_spec([ARCH / "eyeriss_v2.yaml", next(tmp_path.glob("*_L27_pw13.yaml"))],
                     need_mapping=False, allow_sparse=True)
    assert spec.sparse.densities["Weights"].density == 0.30
    assert spec.sparse.densities["Weights"].distribution == "hypergeometric"


def test_dse_run_searches_a_library_sparse_design_with_layer_densities(tmp_path: Path) -> None:
    """eyeriss_v2 with a layer's densities: the layer is searched sparse and dense, and
    layers.csv says how much the sparsity saved (skipping on v2: fewer cycles). The max-pool
    after it runs too, without the design's weight formats."""
    net = tmp_path / "net.yaml"
    net.write_text(NET.replace("DENS", "densities: {Weights: 0.4, Inputs: 0.5}"))
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["run", "--arch", "eyeriss_v2", "--workload", str(net),
                                    "--out", str(out), "--max-evals", "300", "-q"])
    assert res.exit_code == 0, res.output
    rows = {r["layer"]: r for r in csv.DictReader(open(out / "layers.csv"))}
    c1 = rows["c1"]
    assert float(c1["sparse_speedup"]) > 1.0
    assert int(c1["actual_computes"]) < int(c1["macs"])
    assert "p1" in rows  # the pooling layer has no Weights: the weight formats do not apply


NET = """network:
  name: t
  input: {C: 8, H: 8}
  layers:
    - {name: c1, type: conv2d, C: 8, K: 8, H: 8, R: 3, pad: 1, P: 8, DENS}
    - {name: p1, type: maxpool, C: 8, H: 8, R: 2, stride: 2, P: 4}
"""


@pytest.mark.parametrize("dens,message", [
    ("densities: {Weight: 0.5}", "unknown tensor 'Weight'"),
    ("densities: {Weights: 1.5}", "a density is a number in (0, 1]"),
    ("densities: {Weights: {distribution: banded, density: 0.5}}", "banded"),
    ("densities: {Weights: {distribution: fixed, density: 0.5}}", "unknown density distribution"),
])
def test_bad_network_densities_are_clear_errors(dens: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        load_network_text(NET.replace("DENS", dens), "t.yaml")
    assert message in str(err.value)
    assert "t.yaml:5" in str(err.value)


def test_densities_on_a_layer_without_macs_are_refused() -> None:
    text = NET.replace("DENS", "bias: false").replace("P: 4}", "P: 4, densities: {Inputs: 0.5}}")
    with pytest.raises(SpecError) as err:
        load_network_text(text, "t.yaml")
    assert "densities apply to conv, fc and matmul layers, not to a maxpool layer" in str(
        err.value)


def test_network_densities_round_trip_through_layer_spec() -> None:
    from dse.spec.network import dump_network, layer_spec

    net = load_network_text(NET.replace("DENS", "densities: {Weights: 0.25, Inputs: {"
                                        "distribution: hypergeometric, density: 0.5}}"), "t")
    spec = {"name": "t", "input": {"C": 8, "H": 8},
            "layers": [layer_spec(lay) for lay in net.layers]}
    again = load_network_text(dump_network(spec), "again")
    assert again.layer("c1").densities == net.layer("c1").densities == {
        "Weights": 0.25, "Inputs": {"distribution": "hypergeometric", "density": 0.5}}


# ----------------------------------------------------------------------------- native inputs


def test_native_problem_densities_and_refused_flags(tmp_path: Path) -> None:
    prob = tmp_path / "p.yaml"
    prob.write_text("problem: {type: conv2d, C: 4, M: 4, P: 4, Q: 4, R: 1, S: 1,\n"
                    "          densities: {Weights: 0.5}}\n")
    from dse.spec.build import load_spec

    spec = load_spec([ARCH / "tensor_core_2to4.yaml", prob], need_mapping=False,
                     allow_sparse=True)
    assert spec.sparse.densities["Weights"].density == 0.5
    bad = tmp_path / "a.yaml"
    text = (ARCH / "eyeriss_v1_sparse.yaml").read_text().replace(
        "decompression_supported: true", "decompression_supported: yes please")
    bad.write_text(text)
    res = CliRunner().invoke(main, ["arch", "show", str(bad)])
    assert res.exit_code == 2
    assert "decompression_supported" in res.output and "expected true or false" in res.output
    text = (ARCH / "eyeriss_v2.yaml").read_text()
    assert "metadata_storage_depth: 25" in text
    bad.write_text(text.replace("metadata_storage_depth: 25", "metadata_storage_depth: -3"))
    res = CliRunner().invoke(main, ["arch", "show", str(bad)])
    assert res.exit_code == 2
    assert "metadata_storage_depth" in res.output and ">= 0" in res.output and "a.yaml:" in \
        res.output


# ----------------------------------------------------------------------------- ONNX import

def _pruned_model(path: Path) -> tuple:
    """conv (8x4x3x3 = 288 weights, 99 zero) -> relu -> flatten -> gemm (32x10, 264 zero)."""
    onnx = pytest.importorskip("onnx")  # the optional extra: only these tests need it
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(1, 289, dtype=np.float32).reshape(8, 4, 3, 3)
    w.reshape(-1)[::8] = 0.0  # 36 zeros
    w[:2] = 0.0  # two whole filters: 72 zeros, 9 of them already zero above
    g = np.ones((8 * 2 * 2, 10), dtype=np.float32)
    g[:, :3] = 0.0  # 96 zeros
    g[:24, 3:] = 0.0  # 168 more
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3],
                              strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "g"], ["y"], name="fc")]
    graph = helper.make_graph(
        nodes, "pruned", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(g, "g")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))
    return w, g


def test_onnx_import_measures_weight_densities_exactly(tmp_path: Path) -> None:
    import numpy as np

    model = tmp_path / "pruned.onnx"
    w, g = _pruned_model(model)
    acts = tmp_path / "acts.csv"
    acts.write_text("layer,Inputs,Outputs\nconv,0.9,0.45\nfc,0.5,\n")
    out = tmp_path / "net.yaml"
    res = CliRunner().invoke(main, ["import", str(model), "-o", str(out),
                                    "--activation-densities", str(acts)])
    assert res.exit_code == 0, res.output
    assert "measured weight densities below 1 in 2 layers" in res.output
    net = load_network_text(out.read_text(), str(out))
    want_conv = np.count_nonzero(w) / w.size
    want_fc = np.count_nonzero(g) / g.size
    assert net.layer("conv").densities == {"Weights": want_conv, "Inputs": 0.9,
                                           "Outputs": 0.45}
    assert net.layer("fc").densities == {"Weights": want_fc, "Inputs": 0.5}
    assert (want_conv, want_fc) == (189 / 288, 56 / 320)  # the counts _pruned_model gives


def test_onnx_import_all_zero_weights_stay_dense_with_a_note(tmp_path: Path) -> None:
    from dse.spec.onnx_import import import_onnx

    model = tmp_path / "m.onnx"
    w, g = _pruned_model(model)
    import onnx

    m = onnx.load(str(model))
    for init in m.graph.initializer:
        if init.name == "g":
            from onnx import numpy_helper

            init.CopyFrom(numpy_helper.from_array(g * 0.0, "g"))
    _, net, report = import_onnx(m)
    assert net.layer("fc").densities == {}
    assert any("all zero" in n for n in report.notes)


@pytest.mark.parametrize("table,message,line", [
    ("layer,Inputs\nconvv,0.5\n", "did you mean 'conv'", 2),
    ("layer,Inputs\nconv,0\n", "must be a number in (0, 1]", 2),
    ("layer,Weights\nconv,0.5\n", "unknown column 'Weights'", 1),
    ("layer,Inputs\nconv,0.5\nconv,0.4\n", "listed twice", 3),
    ("layer,Inputs\nrelu,0.5\n", "no such layer", 2),
])
def test_bad_activation_density_tables(tmp_path: Path, table: str, message: str,
                                       line: int) -> None:
    model = tmp_path / "m.onnx"
    _pruned_model(model)
    acts = tmp_path / "acts.csv"
    acts.write_text(table)
    res = CliRunner().invoke(main, ["import", str(model), "-o", str(tmp_path / "n.yaml"),
                                    "--activation-densities", str(acts)])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert f"acts.csv:{line}" in res.output
    assert not (tmp_path / "n.yaml").exists()


def test_activation_density_table_saved_with_a_bom(tmp_path: Path) -> None:
    """Spreadsheets save CSV with a byte-order mark; the `layer` header must still be found."""
    from dse.spec.onnx_import import read_activation_densities

    acts = tmp_path / "acts.csv"
    acts.write_bytes("layer,Inputs\nconv,0.5\n".encode("utf-8-sig"))
    rows = read_activation_densities(str(acts))
    assert [(r.layer, r.densities) for r in rows] == [("conv", {"Inputs": 0.5})]


def test_arch_show_lists_the_sparse_features() -> None:
    res = CliRunner().invoke(main, ["arch", "show", "eyeriss_v2"])
    assert res.exit_code == 0, res.output
    assert "sparse optimizations" in res.output
    assert "weight_spad: Weights UOP/RLE; skipping Weights on Inputs" in res.output
    assert "psum_spad: skipping Outputs on Inputs, Weights" in res.output
    assert "iact_spad.metadata_read" in res.output  # estimated metadata energies are listed
    dense = CliRunner().invoke(main, ["arch", "show", "eyeriss_v1"])
    assert "sparse optimizations" not in dense.output


def test_workload_show_has_a_densities_column_only_for_sparse_networks() -> None:
    res = CliRunner().invoke(main, ["workload", "show", "alexnet_pruned"])
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if line.split()[1:2] == ["conv3"])
    assert row.endswith("  Inputs 0.275, Weights 0.346133, Outputs 0.303")
    dense = CliRunner().invoke(main, ["workload", "show", "alexnet"])
    assert "densities" not in dense.output.splitlines()[0]


def test_eyeriss_v1_sparse_is_the_dense_chip_plus_zero_handling(tmp_path: Path) -> None:
    """The sparse entry repeats eyeriss_v1's levels: the same sizes and energies, and with
    its sparse features removed the same result on a dense layer (the filter spad's one read
    a cycle does not slow a dense layer down)."""
    dense = load_architecture("eyeriss_v1").arch
    sparse = load_architecture("eyeriss_v1_sparse").arch
    assert [lv.name for lv in dense.levels] == [lv.name for lv in sparse.levels]
    for a, b in zip(dense.levels, sparse.levels, strict=True):
        assert (a.instances, a.depth, a.width, a.datawidth, a.shared_bandwidth,
                a.write_bandwidth) == (b.instances, b.depth, b.width, b.datawidth,
                                       b.shared_bandwidth, b.write_bandwidth)
        assert {k: e.pJ for k, e in a.energy.items()} == {
            k: e.pJ for k, e in b.energy.items() if not k.startswith("metadata_")}
    doc = yaml.safe_load((ARCH / "eyeriss_v1_sparse.yaml").read_text())
    del doc["sparse_optimizations"]
    twin = tmp_path / "twin.yaml"
    twin.write_text(yaml.safe_dump(doc, sort_keys=False))
    layer = tmp_path / "conv3.yaml"
    prob = yaml.safe_load((DATA / "alexnet_pruned_conv3.yaml").read_text())
    del prob["problem"]["instance"]["densities"]
    layer.write_text(yaml.safe_dump(prob, sort_keys=False))
    mapping = DATA / "eyeriss_v1.conv3.map.yaml"
    a, _ = _model(tmp_path / "a", ARCH / "eyeriss_v1.yaml", layer, mapping)
    b, _ = _model(tmp_path / "b", twin, layer, mapping)
    assert (a["cycles"], a["energy_pJ"]) == (b["cycles"], b["energy_pJ"])


def test_import_of_problem_files_keeps_their_densities(tmp_path: Path) -> None:
    native = tmp_path / "mm.yaml"
    native.write_text("problem: {type: matmul, M: 8, N: 8, K: 16, densities: {B: 0.5}}\n")
    out = tmp_path / "net.yaml"
    res = CliRunner().invoke(main, ["import", str(DATA / "alexnet_pruned_conv3.yaml"),
                                    str(native), "-o", str(out)])
    assert res.exit_code == 0, res.output
    net = load_network_text(out.read_text(), str(out))
    assert net.layer("alexnet_pruned_conv3").densities == {
        "Inputs": 0.275, "Weights": 0.346133, "Outputs": 0.303}
    assert net.layer("mm").densities == {"B": 0.5}


def test_unique_export_refuses_layers_that_differ_only_in_densities(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["workload", "export", "mobilenet05_sparse", "--timeloop",
                                    "--unique", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "L15_pw7, L17_pw8, L19_pw9, L21_pw10, L23_pw11 share a shape but not their " \
           "densities" in res.output
    assert not list(tmp_path.glob("*.yaml"))  # refused before writing anything


@pytest.mark.parametrize("arch,mapping", [("eyeriss_v1_sparse", "eyeriss_v1.conv3.map.yaml"),
                                          ("eyeriss_v2", "eyeriss_v2.conv3.map.yaml")])
@pytest.mark.parametrize("target", ["native", "timeloop"])
def test_convert_carries_the_sparse_inputs(tmp_path: Path, arch: str, mapping: str,
                                           target: str) -> None:
    """Converted files (densities, metadata attributes, sparse_optimizations, estimated
    metadata energies) evaluate to the same result as the originals."""
    if target == "timeloop" and arch == "eyeriss_v2":
        pytest.skip("eyeriss_v2's SIMD pair is a fan-out on the compute level, which Timeloop "
                    "v0.4 cannot express (dse convert says so)")
    problem = DATA / "alexnet_pruned_conv3.yaml"
    res = CliRunner().invoke(main, ["convert", str(ARCH / f"{arch}.yaml"), str(problem),
                                    "--out", str(tmp_path / "c"), "--to", target])
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "c").glob("*.yaml"))
    want, _ = _model(tmp_path / "a", ARCH / f"{arch}.yaml", problem, DATA / mapping)
    got, _ = _model(tmp_path / "b", *files, DATA / mapping)
    assert (got["cycles"], got["actual_computes"]) == (want["cycles"], want["actual_computes"])
    assert got["energy_pJ"] == pytest.approx(want["energy_pJ"], rel=1e-12)


def test_eyeriss_v2_on_a_sparse_mobilenet_layer(tmp_path: Path) -> None:
    """Hypergeometric densities (Sparseloop's Eyeriss v2 setup, L27: iacts 0.58, weights 0.30)
    through the whole design: skipped weight reads, compressed tiles, fewer cycles."""
    s, rows = _model(tmp_path, ARCH / "eyeriss_v2.yaml", DATA / "mobilenet05_sparse_L27.yaml",
                     DATA / "eyeriss_v2.L27.map.yaml")
    w = rows[("weight_spad", "Weights")]
    assert w["density_distribution"] == "hypergeometric"
    assert _i(w, "skipped_reads_per_instance") > 0
    assert _i(rows[("DRAM", "Weights")], "utilized_capacity_words") < 0.31 * 512 * 512
    assert s["actual_computes"] < 0.6 * s["macs"]
    assert s["cycles"] < 0.6 * s["dense_cycles"]
    assert s["energy_pJ"] < 0.4 * s["dense_energy_pJ"]


CONV3_NET = """
network:
  version: 1
  name: alexnet_pruned_conv3
  input: {C: 256, H: 13}
  bits: {weights: 16, activations: 16, bias: 16, accumulator: 16}
  layers:
    - {name: conv3, type: conv2d, C: 256, K: 384, H: 13, R: 3, pad: 1, P: 13, bias: false,
       inputs: [input], densities: {Inputs: 0.275, Weights: 0.346133, Outputs: 0.303}}
"""


def test_mapper_on_eyeriss_v2_reports_the_sparse_speedup(tmp_path: Path) -> None:
    """The issue's check: `dse run` on eyeriss_v2 with AlexNet CONV3 cut from alexnet_pruned
    (its densities as in workloads/alexnet_pruned.yaml) finds a mapping, searched sparse and
    again dense, and layers.csv reports the speed-up (dense cycles / sparse cycles) > 1."""
    pruned = yaml.safe_load((REPO / "workloads" / "alexnet_pruned.yaml").read_text())
    conv3 = next(x for x in pruned["network"]["layers"] if x["name"] == "conv3")
    net = yaml.safe_load(CONV3_NET)
    assert net["network"]["layers"][0]["densities"] == conv3["densities"]
    (tmp_path / "net.yaml").write_text(CONV3_NET)
    r = CliRunner().invoke(main, ["run", "--arch", "eyeriss_v2", "--workload",
                                  str(tmp_path / "net.yaml"), "--max-evals", "2000", "-q",
                                  "--out", str(tmp_path / "out"),
                                  "--store", str(tmp_path / "store.sqlite")])
    assert r.exit_code == 0, r.output
    (row,) = list(csv.DictReader(open(tmp_path / "out" / "layers.csv")))
    assert row["status"] == "ok"
    cycles, dense_cycles = int(row["cycles"]), int(row["dense_cycles"])
    assert float(row["sparse_speedup"]) == pytest.approx(dense_cycles / cycles)
    assert float(row["sparse_speedup"]) > 1
    assert float(row["sparse_energy_saving"]) > 0
    # zero iacts and zero weights both remove MACs: about 0.275 x 0.346 of them are done
    assert int(row["actual_computes"]) < 0.1 * int(row["ops"])
    assert int(row["skipped_computes"]) > 0
