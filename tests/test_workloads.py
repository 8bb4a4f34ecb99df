"""The workload library and network graphs: published totals, per-layer shapes against the
reference tables, unique shapes, layer -> Problem, Timeloop export/import and bad input."""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from dse.cli import main
from dse.errors import SpecError
from dse.spec.network import dump_network, layer_spec, load_network, load_network_text
from dse.spec.timeloop import read_problem
from dse.spec.workload_library import list_workloads, load_workload, resolve
from dse.spec.yamlload import load_yaml_text
from dse.workload import layers as L

REPO = Path(__file__).resolve().parents[1]
SHAPES_MD = REPO / "tests" / "data" / "workload_shapes.md"

LIBRARY = ["resnet18", "resnet50", "resnet152", "resnet50_conv2x", "resnet50_conv2x_32",
           "resnet8", "resnet20", "mobilenetv2", "mobilenetv2_cifar", "alexnet",
           "alexnet_torchvision", "vgg16", "vgg19", "inception_v3", "xception"]

_CACHE: dict = {}


def net(name: str):
    if name not in _CACHE:
        _CACHE[name] = load_workload(name)
    return _CACHE[name]


# ----------------------------------------------------------------------------- published totals

# The figures. `params` counts weights + biases + batch-norm scale/shift (trainable
# parameters as torchvision/Keras count them); MACs count conv + fc layers.
PUBLISHED = {
    "resnet18": (1.814e9, 11.69e6),
    "resnet50": (4.09e9, 25.56e6),
    "resnet152": (11.5e9, 60.2e6),
    "alexnet": (724e6, 61e6),
    "vgg16": (15.47e9, 138.36e6),
    "vgg19": (19.63e9, 143.67e6),
    "mobilenetv2": (300e6, 3.5e6),
    "xception": (8.4e9, 22.9e6),
    "inception_v3": (5.7e9, 23.9e6),
    "resnet20": (41e6, 0.27e6),
    "resnet8": (12.5e6, 78e3),
}
# Two published figures are only given to two significant digits and describe a slightly
# different count; they are checked against what they describe in separate tests below.
SEPARATE = {("xception", "macs"), ("resnet20", "params")}
CASES = [(n, k) for n in PUBLISHED for k in ("macs", "params") if (n, k) not in SEPARATE]


@pytest.mark.parametrize("name,key", CASES)
def test_totals_match_published_within_half_a_percent(name: str, key: str) -> None:
    published = PUBLISHED[name][0 if key == "macs" else 1]
    ours = net(name).stats()[key]
    assert abs(ours - published) / published <= 0.005, (name, key, ours, published)


def test_xception_macs_against_its_published_precision() -> None:
    # "~8.4 G" (timm's count, which also counts batch-norm ops) has two significant digits;
    # conv + fc MACs alone are 8.357 G, as recomputed in tests/data/hardware.md §7.
    macs = net("xception").stats()["macs"]
    assert macs == 8_357_403_496
    assert round(macs / 1e9, 1) == 8.4
    assert abs(macs - 8.357e9) / 8.357e9 < 5e-4


def test_resnet20_params_against_option_a() -> None:
    # 0.27 M (He et al. 2016, Table 6) is the option-A ResNet-20 with parameter-free shortcuts.
    # The library file is NN2FPGA's option B: + two 1x1 projection convs with batch norm.
    n = net("resnet20")
    total = n.stats()["params"]
    ds = [n.layer("l2.0.ds"), n.layer("l3.0.ds")]
    option_a = total - sum(lay.params for lay in ds)
    assert option_a == 269_712
    assert abs(option_a - 0.27e6) / 0.27e6 <= 0.005
    assert round(total / 1e6, 2) == 0.27
    assert n.stats()["macs"] - sum(lay.macs for lay in ds) == 40_551_040  # table: 40.55 M


EXACT = {  # MACs from workload_shapes.md; params = torchvision/Keras trainable counts
    "resnet18": (1_814_073_344, 11_689_512),
    "resnet50": (4_089_184_256, 25_557_032),
    "resnet152": (11_513_626_624, 60_192_808),
    "resnet50_conv2x": (667_942_912, None),
    "resnet50_conv2x_32": (218_103_808, None),
    "resnet8": (12_501_632, None),
    "resnet20": (40_813_184, None),
    "mobilenetv2": (300_774_272, 3_504_872),
    "mobilenetv2_cifar": (275_292_672, None),
    "alexnet": (724_406_816, None),
    "alexnet_torchvision": (714_188_480, 61_100_840),
    "vgg16": (15_470_264_320, 138_357_544),
    "vgg19": (19_632_062_464, 143_667_240),
    "inception_v3": (5_713_216_096, 23_834_568),
    "xception": (8_357_403_496, 22_855_952),
}


@pytest.mark.parametrize("name", LIBRARY)
def test_exact_totals(name: str) -> None:
    macs, params = EXACT[name]
    s = net(name).stats()
    assert s["macs"] == macs
    if params is not None:
        assert s["params"] == params
    assert s["params"] == s["weights"] + s["biases"] + s["bn_params"]


def test_weight_counts_of_the_reference_tables() -> None:
    # "no BN, no bias" weight counts of tests/data/hardware.md §7 and the NPU weight bytes
    assert round(net("resnet18").stats()["weights"] / 1e6, 2) == 11.68
    assert round(net("resnet50").stats()["weights"] / 1e6, 2) == 25.50
    assert round(net("alexnet").stats()["weights"] / 1e6, 2) == 60.95
    assert net("resnet8").stats()["weights"] == 77_360
    assert net("resnet50_conv2x_32").stats()["weights"] == 212_992  # test.py shape_total_wts


# ----------------------------------------------------------------------------- per-layer rows

SECTIONS = {  # heading prefix in workload_shapes.md -> library network
    "## ResNet-18": "resnet18",
    "## ResNet-50": "resnet50",
    "### conv2_x as mapped on the AMD NPU": "resnet50_conv2x_32",
    "## ResNet-8": "resnet8",
    "## ResNet-20": "resnet20",
    "### ImageNet 1.0, 224": "mobilenetv2",
    "### CIFAR-10 variant exactly": "mobilenetv2_cifar",
    "### Original two-tower AlexNet": "alexnet",
    "### torchvision AlexNet": "alexnet_torchvision",
    "## VGG16": "vgg16",
}


def _tables() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    current = None
    cols: list[str] | None = None
    for line in SHAPES_MD.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            current = next((v for k, v in SECTIONS.items() if line.startswith(k)), None)
            cols = None
            continue
        if current and line.startswith("| # | layer"):
            cols = [c.strip() for c in line.strip("|").split("|")]
            out[current] = []
            continue
        if current and cols and line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not cells[0]:
                continue  # total row
            out[current].append(dict(zip(cols, cells, strict=True)))
        elif cols and not line.startswith("|"):
            cols = None
    return out


def test_every_reference_row_matches_the_library() -> None:
    tables = _tables()
    assert set(tables) == set(SECTIONS.values())
    checked = 0
    for name, rows in tables.items():
        mac_layers = [lay for lay in net(name).layers if lay.type in ("conv2d", "pointwise",
                                                                      "depthwise", "fc")]
        assert len(mac_layers) == len(rows), name
        for row, lay in zip(rows, mac_layers, strict=True):
            ref = {k: int(row[k].replace(",", "")) for k in
                   ("N", "C", "K", "P", "Q", "R", "S", "stride", "groups", "H_in", "MACs")}
            label = re.split(r"[ (]", row["layer"])[0]
            assert lay.name == label, (name, row["layer"], lay.name)
            a = lay.attrs
            if lay.type == "fc":
                got = {"C": a["C"], "K": a["K"], "P": 1, "Q": 1, "R": a["H"], "S": a["W"],
                       "stride": 1, "groups": 1, "H_in": a["H"]}
            else:
                got = {"C": a["C"], "K": a["K"], "P": a["P"], "Q": a["Q"], "R": a["R"],
                       "S": a["S"], "stride": a["stride"][0], "groups": a["groups"],
                       "H_in": a["H"]}
            got.update(N=lay.N, MACs=lay.macs)
            assert got == ref, (name, lay.name)
            assert lay.problem.macs == ref["MACs"]
            checked += 1
    assert checked == 21 + 54 + 10 + 10 + 22 + 53 + 54 + 8 + 8 + 16


def test_conv2x_stage_is_rows_2_to_11_of_resnet50() -> None:
    full = [lay for lay in net("resnet50").layers if lay.name.startswith(("conv2_", "add2_"))]
    stage = list(net("resnet50_conv2x").layers)
    assert [lay.name for lay in full] == [lay.name for lay in stage]
    for a, b in zip(full, stage, strict=True):
        assert L.strip(a.problem) == L.strip(b.problem)
    assert sum(lay.macs for lay in stage) == 667_942_912


def test_selected_layer_macs() -> None:
    assert net("resnet50").layer("conv3_1b").macs == 115_605_504  # v1.5: stride on the 3x3
    assert net("resnet50").layer("conv3_1b").attrs["stride"] == (2, 2)
    assert net("resnet50").layer("conv3_1a").attrs["stride"] == (1, 1)
    assert net("alexnet").layer("conv2").macs == 223_948_800  # groups = 2
    assert net("mobilenetv2").layer("b2.dw").macs == 2_709_504  # depthwise, 96 channels
    assert net("mobilenetv2_cifar").layer("b12.DW").macs == 331_776  # repo's 8x8 (as-is)
    assert net("mobilenetv2_cifar").layer("b13.PW1").macs == 14_155_776
    assert net("xception").layer("block4_sepconv1_dw").macs == 256 * 9 * 37 * 37
    assert net("inception_v3").layer("Mixed_6b.branch7x7_2").attrs["R"] == 1
    assert net("inception_v3").layer("Mixed_6b.branch7x7_2").attrs["S"] == 7


@pytest.mark.parametrize("name", LIBRARY)
def test_library_files_name_their_source(name: str) -> None:
    n = net(name)
    assert n.source and len(n.source) > 20
    text = resolve(name).read_text(encoding="utf-8")
    assert text.startswith("# ")
    assert n.name == name


def test_library_lists_every_network() -> None:
    entries = {e.name: e for e in list_workloads()}
    for name in LIBRARY:
        assert entries[name].kind == "network"


# ----------------------------------------------------------------------------- graphs, shapes


def test_resnet18_unique_shapes() -> None:
    n = net("resnet18")
    # by hand: conv1; one 3x3 64@56 shape; per later stage a strided 3x3, a stride-1 3x3 and
    # the 1x1 projection (3 x 3); fc -> 12 conv/fc shapes. Plus maxpool, 4 add sizes, avgpool.
    mac = n.unique_shapes(mac_only=True)
    assert len(mac) == 12
    groups = {g.layers[0]: g.layers for g in mac}
    assert groups["conv2_1a"] == ("conv2_1a", "conv2_1b", "conv2_2a", "conv2_2b")
    assert groups["conv3_1b"] == ("conv3_1b", "conv3_2a", "conv3_2b")
    assert groups["conv3_1a"] == ("conv3_1a",)
    assert len(n.unique_shapes()) == 18
    assert n.stats()["unique_shapes"] == 18 and n.stats()["unique_mac_shapes"] == 12


def test_resnet50_unique_shapes() -> None:
    # conv1 + conv2_x {1a, 1b, 1c = 1_ds, 2a} + 6 per later stage + fc = 24
    mac = net("resnet50").unique_shapes(mac_only=True)
    assert len(mac) == 24
    groups = {g.layers[0]: g.layers for g in mac}
    assert groups["conv2_1c"] == ("conv2_1c", "conv2_1_ds", "conv2_2c", "conv2_3c")


def test_residual_graph_producers_and_consumers() -> None:
    n = net("resnet18")
    assert n.producers("add3_1") == ("conv3_1b", "conv3_1_ds")
    assert set(n.consumers("add2_2")) == {"conv3_1a", "conv3_1_ds"}
    assert n.layer("add3_1").macs == 0 and n.layer("add3_1").ops == 128 * 28 * 28
    x = net("xception")
    assert x.layer("block13_add").inputs == ("block13_pool", "block13_res")


def test_concat_channels_inception() -> None:
    n = net("inception_v3")
    assert n.layer("Mixed_5b.concat").out_shape == (256, 35, 35)
    assert n.layer("Mixed_7c.concat").out_shape == (2048, 8, 8)
    assert n.layer("Mixed_7c.concat").problem is None


def test_conv_problem_padding_and_bits() -> None:
    conv1 = net("resnet18").layer("conv1").problem
    assert conv1.dims == ("C", "M", "R", "S", "N", "P", "Q")
    assert conv1.coefficients == {"Wstride": 2, "Hstride": 2, "Wdilation": 1, "Hdilation": 1}
    # no padding in the model: the Inputs tile is (P-1)*stride + R = 229 <= 224 + 2*3
    assert conv1.data_space("Inputs").extents(conv1.bounds) == (1, 3, 229, 229)
    assert {ds.name: ds.word_bits for ds in conv1.data_spaces} == {
        "Weights": 8, "Inputs": 8, "Outputs": 32}
    alex = net("alexnet").layer("conv1").problem
    assert {ds.word_bits for ds in alex.data_spaces} == {16}


def test_grouped_and_depthwise_problems() -> None:
    conv2 = net("alexnet").layer("conv2").problem
    assert conv2.dims == ("G", "C", "M", "R", "S", "N", "P", "Q")
    assert (conv2.bounds["G"], conv2.bounds["C"], conv2.bounds["M"]) == (2, 48, 128)
    assert conv2.tensor_size("Weights") == 256 * 48 * 25
    assert conv2.tensor_size("Inputs") == 96 * 31 * 31  # padded 27 + 2*2
    dw = net("mobilenetv2").layer("b2.dw").problem
    assert (dw.bounds["G"], dw.bounds["C"], dw.bounds["M"]) == (96, 1, 1)
    assert dw.tensor_size("Weights") == 96 * 9
    assert dw.tensor_size("Outputs") == 96 * 56 * 56


@settings(max_examples=60, deadline=None)
@given(C=st.integers(1, 6), K=st.integers(1, 6), g=st.sampled_from([1, 2, 3]),
       H=st.integers(1, 12), R=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2),
       d=st.integers(1, 2), N=st.integers(1, 2))
def test_conv_macs_and_output_size(C, K, g, H, R, s, p, d, N) -> None:
    C, K = C * g, K * g
    windows = [i for i in range(0, H + 2 * p) if i + d * (R - 1) < H + 2 * p and i % s == 0]
    P = L.out_size(H, R, s, 2 * p, d)
    assert P == len(windows)
    if P < 1:
        return
    prob = L.conv2d("x", C=C, K=K, P=P, Q=P, R=R, S=R, N=N, stride=(s, s), dilation=(d, d),
                    groups=g)
    assert prob.macs == N * K * P * P * (C // g) * R * R
    assert prob.tensor_size("Weights") == K * (C // g) * R * R
    assert prob.tensor_size("Outputs") == N * K * P * P
    extent = (P - 1) * s + d * (R - 1) + 1
    assert extent <= H + 2 * p
    assert prob.tensor_size("Inputs") == N * C * extent * extent


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2", "alexnet", "inception_v3"])
def test_timeloop_export_import_round_trip(name: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["workload", "export", name, "--timeloop", "--out",
                                       str(tmp_path), "--unique"])
    assert result.exit_code == 0, result.output
    groups = net(name).unique_shapes()
    files = sorted(tmp_path.glob("*.yaml"))
    assert len(files) == len(groups)
    for group, f in zip(groups, files, strict=True):
        doc = load_yaml_text(f.read_text(encoding="utf-8"), str(f))
        back = read_problem(doc["problem"])
        assert back.name == group.problem.name
        # Timeloop's problem format has no operation type: adds and pools come back as MACs
        assert L.strip(back) == replace(L.strip(group.problem), compute_action="mac"), f.name


def test_export_one_file_per_layer(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["workload", "export", "resnet18", "--timeloop",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("*.yaml"))) == 31
    assert "wrote 31 Timeloop problem files" in result.output


def test_timeloop_problem_files_import_as_layers(tmp_path: Path) -> None:
    sources = []
    for lay in ("conv3_1a", "conv3_1_ds", "fc"):
        p = tmp_path / f"{lay}.yaml"
        problem = net("resnet18").layer(lay).problem
        p.write_text(json.dumps(L.to_timeloop(problem)))
        sources.append(str(p))
    dw = tmp_path / "dw.yaml"
    dw.write_text(json.dumps(L.to_timeloop(net("mobilenetv2").layer("b2.dw").problem)))
    sources.append(str(dw))
    out = tmp_path / "net.yaml"
    result = CliRunner().invoke(main, ["import", *sources, "-o", str(out)])
    assert result.exit_code == 0, result.output
    back = load_network(out)
    assert [lay.type for lay in back.layers] == ["conv2d", "conv2d", "conv2d", "depthwise"]
    for lay, (src_net, src) in zip(back.layers, [("resnet18", "conv3_1a"),
                                                 ("resnet18", "conv3_1_ds"), ("resnet18", "fc"),
                                                 ("mobilenetv2", "b2.dw")], strict=True):
        orig = net(src_net).layer(src).problem
        assert L.strip(lay.problem) == L.strip(orig)
        assert lay.macs == orig.macs


def test_cnn_layer_builtin_problem_is_recognised() -> None:
    text = ("problem:\n  shape: cnn-layer\n  instance: {C: 64, M: 128, R: 3, S: 3, N: 1, "
            "P: 28, Q: 28, Wstride: 2, Hstride: 2}\n")
    prob = read_problem(load_yaml_text(text, "p.yaml")["problem"])
    params = L.as_conv2d(prob)
    assert params["C"] == 64 and params["K"] == 128 and params["stride"] == (2, 2)
    same = net("resnet18").layer("conv3_1a").problem
    assert L.strip(prob) == L.strip(same)


@pytest.mark.parametrize("name", ["resnet50", "inception_v3", "xception", "mobilenetv2_cifar"])
def test_layer_spec_rebuilds_the_network(name: str) -> None:
    n = net(name)
    spec = {"name": n.name, "inputs": [{"name": k, "C": v[0], "H": v[1], "W": v[2]}
                                       for k, v in n.inputs.items()],
            "layers": [layer_spec(lay) for lay in n.layers]}
    again = load_network_text(dump_network(spec), "again.yaml")
    assert [L.strip(a.problem) if a.problem else None for a in again.layers] == \
        [L.strip(b.problem) if b.problem else None for b in n.layers]
    s1, s2 = again.stats(), n.stats()
    for key in ("macs", "params", "activations", "unique_shapes"):
        assert s1[key] == s2[key]


# ----------------------------------------------------------------------------- CLI


def test_cli_stats_json() -> None:
    result = CliRunner().invoke(main, ["workload", "stats", "resnet18", "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    assert s["name"] == "resnet18"
    assert s["macs"] == 1_814_073_344
    assert s["params"] == 11_689_512
    assert "batch-norm" in s["params_counted"] and "biases" in s["params_counted"]
    assert s["layers"] == 31 and s["unique_shapes"] == 18
    assert s["activations"] > 0


def test_cli_stats_and_show_text() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["workload", "stats", "vgg16"])
    assert result.exit_code == 0
    assert "15,470,264,320" in result.output and "counted:" in result.output
    result = runner.invoke(main, ["workload", "show", "alexnet"])
    assert result.exit_code == 0
    row = next(line for line in result.output.splitlines() if " conv2 " in line)
    assert "223,948,800" in row and " 2 " in row  # groups column
    result = runner.invoke(main, ["workload", "list"])
    assert result.exit_code == 0 and "inception_v3" in result.output


def test_cli_unknown_workload_name() -> None:
    result = CliRunner().invoke(main, ["workload", "stats", "resnet19"])
    assert result.exit_code == 2
    assert "did you mean 'resnet18'" in result.output


def test_cli_export_needs_a_format(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["workload", "export", "resnet8", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--timeloop" in result.output


def test_single_layer_problem_file_shows_as_a_network() -> None:
    n = load_workload("vgg02_conv5")
    assert len(n.layers) == 1 and n.stats()["macs"] == 924_844_032


# ----------------------------------------------------------------------------- bad input

GOOD = """\
network:
  version: 1
  name: tiny
  input: {C: 3, H: 32}
  layers:
    - {name: conv1, type: conv2d, K: 16, R: 3, pad: 1, inputs: [input]}
    - {name: conv2, type: conv2d, K: 16, R: 3, pad: 1, inputs: [conv1]}
    - {name: add1, type: add, inputs: [conv2, conv1]}
    - {name: pool, type: avgpool, global: true, inputs: [add1]}
    - {name: fc, type: fc, K: 10, inputs: [pool]}
"""


def _err(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_network_text(text, "net.yaml")
    return info.value


def test_good_network_infers_shapes() -> None:
    n = load_network_text(GOOD, "net.yaml")
    assert n.layer("conv1").attrs["C"] == 3 and n.layer("conv1").attrs["P"] == 32
    assert n.layer("fc").attrs["C"] == 16
    assert n.stats()["macs"] == 3 * 16 * 9 * 1024 + 16 * 16 * 9 * 1024 + 160


def test_unknown_input_name_with_did_you_mean() -> None:
    e = _err(GOOD.replace("inputs: [conv2, conv1]", "inputs: [conv2, conv_1]"))
    assert (e.file, e.line) == ("net.yaml", 8)
    assert "unknown layer 'conv_1'" in str(e) and "did you mean 'conv1'" in str(e)


def test_unknown_layer_type() -> None:
    e = _err(GOOD.replace("type: avgpool", "type: avgpoll"))
    assert (e.file, e.line) == ("net.yaml", 9)
    assert "unknown layer type 'avgpoll'" in str(e) and "did you mean 'avgpool'" in str(e)


def test_missing_key() -> None:
    e = _err(GOOD.replace("{name: conv2, type: conv2d, K: 16, ", "{name: conv2, type: conv2d, "))
    assert (e.file, e.line) == ("net.yaml", 7)
    assert "needs `K`" in str(e)


def test_unknown_key_in_layer() -> None:
    e = _err(GOOD.replace("K: 10,", "K: 10, strides: 2,"))
    assert (e.file, e.line) == ("net.yaml", 10)
    assert "unknown key 'strides'" in str(e)


def test_cycle() -> None:
    e = _err(GOOD.replace("{name: conv1, type: conv2d, K: 16, R: 3, pad: 1, inputs: [input]}",
                          "{name: conv1, type: conv2d, C: 16, K: 16, R: 3, pad: 1, H: 32, "
                          "inputs: [add1]}"))
    assert (e.file, e.line) == ("net.yaml", 6)
    assert "cycle: conv1 -> conv2 -> add1 -> conv1" in str(e)


def test_duplicate_name() -> None:
    e = _err(GOOD.replace("name: conv2,", "name: conv1,"))
    assert e.line == 7 and "used twice (first at line 6)" in str(e)


def test_shape_mismatch_and_allow_mismatch() -> None:
    bad = GOOD.replace("{name: conv2, type: conv2d, K: 16,", "{name: conv2, type: conv2d, C: 8, "
                       "K: 16,")
    e = _err(bad)
    assert e.line == 7 and "shape mismatch" in str(e) and "(16, 32, 32)" in str(e)
    ok = bad.replace("C: 8, ", "C: 8, allow_mismatch: \"as in the paper\", ")
    assert load_network_text(ok, "net.yaml").layer("conv2").attrs["C"] == 8


def test_explicit_output_size_must_agree_with_padding() -> None:
    e = _err(GOOD.replace("K: 16, R: 3, pad: 1, inputs: [input]",
                          "K: 16, R: 3, pad: 1, P: 31, inputs: [input]"))
    assert e.line == 6 and "P=31 disagrees" in str(e)


def test_missing_network_key_and_version() -> None:
    with pytest.raises(SpecError) as info:
        load_network_text("problem: {}\n", "x.yaml")
    assert "network:" in str(info.value) and info.value.line == 1
    e = _err(GOOD.replace("version: 1", "version: 2"))
    assert e.line == 2 and "version" in str(e)


def test_cli_reports_bad_network_with_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(GOOD.replace("type: avgpool", "type: avgpoll"))
    result = CliRunner().invoke(main, ["workload", "show", str(f)])
    assert result.exit_code == 2
    assert f"{f}:9" in result.output and "Traceback" not in result.output


def test_missing_onnx_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from dse.spec import onnx_import

    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(SpecError) as info:
        onnx_import.require_onnx()
    assert "pip install 'dnn-accel-dse[onnx]'" in str(info.value)


def test_params_counting_rules() -> None:
    text = """\
network:
  input: {C: 8, H: 8}
  defaults: {conv2d: {bias: false, bn: true}}
  layers:
    - {name: a, type: conv2d, K: 4, R: 3, pad: 1}
    - {name: b, type: conv2d, K: 4, R: 1, bias: true, bn: false}
    - {name: c, type: depthwise, R: 3, pad: 1}
    - {name: d, type: fc, K: 2}
"""
    n = load_network_text(text, "p.yaml")
    assert (n.layer("a").weights, n.layer("a").biases, n.layer("a").bn_params) == (288, 0, 8)
    assert (n.layer("b").weights, n.layer("b").biases, n.layer("b").bn_params) == (16, 4, 0)
    assert (n.layer("c").weights, n.layer("c").bn_params) == (36, 8)  # inherits conv2d's
    assert n.layer("d").weights == 4 * 8 * 8 * 2 and n.layer("d").biases == 2
    assert n.stats()["params"] == sum(lay.params for lay in n.layers)
    assert math.prod(n.layer("d").in_shape) == 256
