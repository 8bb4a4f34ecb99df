"""ONNX import: small graphs built with onnx.helper in the test (no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx")
np = pytest.importorskip("numpy")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from dse.cli import main  # noqa: E402
from dse.errors import SpecError  # noqa: E402
from dse.spec.network import load_network  # noqa: E402
from dse.spec.onnx_import import import_onnx  # noqa: E402


def _init(name: str, shape: list[int]):
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)


def _model(nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def _vi(name: str, shape: list[int]):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _bn(name: str, x: str, y: str, c: int) -> tuple[object, list]:
    node = helper.make_node("BatchNormalization", [x, f"{name}.g", f"{name}.b", f"{name}.m",
                                                   f"{name}.v"], [y], name=name)
    return node, [_init(f"{name}.{k}", [c]) for k in "gbmv"]


def residual_block(C: int = 16, H: int = 32, K: int = 32):
    """conv3x3/2-bn-relu-conv3x3-bn + 1x1/2 projection-bn, add, relu, gap, flatten, gemm."""
    nodes, inits = [], []
    nodes.append(helper.make_node("Conv", ["x", "w1"], ["c1"], name="/block/conv1/Conv",
                                  kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]))
    inits.append(_init("w1", [K, C, 3, 3]))
    n, i = _bn("/block/bn1/BatchNormalization", "c1", "b1", K)
    nodes.append(n)
    inits += i
    nodes.append(helper.make_node("Relu", ["b1"], ["r1"], name="/block/relu/Relu"))
    nodes.append(helper.make_node("Conv", ["r1", "w2"], ["c2"], name="/block/conv2/Conv",
                                  kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    inits.append(_init("w2", [K, K, 3, 3]))
    n, i = _bn("/block/bn2/BatchNormalization", "c2", "b2", K)
    nodes.append(n)
    inits += i
    nodes.append(helper.make_node("Conv", ["x", "wd"], ["cd"], name="/block/downsample/Conv",
                                  kernel_shape=[1, 1], strides=[2, 2]))
    inits.append(_init("wd", [K, C, 1, 1]))
    n, i = _bn("/block/bnd/BatchNormalization", "cd", "bd", K)
    nodes.append(n)
    inits += i
    nodes.append(helper.make_node("Add", ["b2", "bd"], ["s"], name="/block/Add"))
    nodes.append(helper.make_node("Relu", ["s"], ["r2"], name="/block/relu_1/Relu"))
    nodes.append(helper.make_node("GlobalAveragePool", ["r2"], ["gap"],
                                  name="/avgpool/GlobalAveragePool"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="/Flatten", axis=1))
    nodes.append(helper.make_node("Gemm", ["flat", "wfc", "bfc"], ["y"], name="/fc/Gemm",
                                  transB=1))
    inits += [_init("wfc", [10, K]), _init("bfc", [10])]
    return _model(nodes, [_vi("x", [1, C, H, H])], [_vi("y", [1, 10])], inits)


def test_residual_block() -> None:
    text, net, report = import_onnx(residual_block(), name="block")
    names = [lay.name for lay in net.layers]
    assert names == ["block.conv1", "block.conv2", "block.downsample", "block", "avgpool",
                     "Flatten", "fc"]
    conv1, conv2, ds, add = (net.layer(n) for n in names[:4])
    assert conv1.attrs["P"] == 16 and conv1.attrs["stride"] == (2, 2)
    assert conv1.macs == 32 * 16 * 16 * 16 * 9
    assert conv2.macs == 32 * 16 * 16 * 32 * 9
    assert ds.macs == 32 * 16 * 16 * 16
    assert add.type == "add" and add.inputs == ("block.conv2", "block.downsample")
    assert add.out_shape == (32, 16, 16) and add.macs == 0
    assert net.layer("fc").type == "fc" and net.layer("fc").macs == 320
    assert net.stats()["macs"] == conv1.macs + conv2.macs + ds.macs + 320
    # batch norms are folded into the convs: weights + 2 * K each, the fc has a bias
    assert conv1.bn_params == 64 and conv1.biases == 0
    assert net.stats()["params"] == (32 * 16 * 9 + 32 * 32 * 9 + 32 * 16 + 3 * 64 + 330)
    assert report.unsupported == {}
    assert report.fused["BatchNormalization"] == 3 and report.fused["Relu"] == 2
    assert "network:" in text and "version: 1" in text


def test_depthwise_conv() -> None:
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="dw", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1], strides=[2, 2], group=24),
             helper.make_node("Conv", ["y", "wp"], ["z"], name="pw", kernel_shape=[1, 1])]
    m = _model(nodes, [_vi("x", [1, 24, 28, 28])], [_vi("z", [1, 48, 14, 14])],
               [_init("w", [24, 1, 3, 3]), _init("wp", [48, 24, 1, 1])])
    _, net, _ = import_onnx(m)
    dw = net.layer("dw")
    assert dw.type == "depthwise" and dw.attrs["groups"] == 24
    assert (dw.attrs["P"], dw.attrs["Q"]) == (14, 14)
    assert dw.macs == 24 * 14 * 14 * 9
    assert dw.weights == 24 * 9
    assert dw.problem.bounds["G"] == 24 and dw.problem.bounds["C"] == 1
    assert net.layer("pw").macs == 48 * 24 * 14 * 14


def test_grouped_conv_with_channel_multiplier_and_asymmetric_pads() -> None:
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="g", kernel_shape=[3, 3],
                              pads=[0, 0, 1, 1], strides=[2, 2], group=4)]
    m = _model(nodes, [_vi("x", [1, 8, 10, 10])], [_vi("y", [1, 16, 5, 5])],
               [_init("w", [16, 2, 3, 3])])
    _, net, _ = import_onnx(m)
    g = net.layer("g")
    assert g.type == "conv2d" and g.attrs["groups"] == 4
    assert g.macs == 16 * 5 * 5 * 2 * 9


def test_unsupported_op_becomes_passthrough_and_is_reported() -> None:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("HardSwish", ["c"], ["h"], name="hswish"),
             helper.make_node("Conv", ["h", "w2"], ["y"], name="conv2", kernel_shape=[1, 1])]
    m = _model(nodes, [_vi("x", [1, 4, 8, 8])], [_vi("y", [1, 4, 8, 8])],
               [_init("w", [4, 4, 1, 1]), _init("w2", [4, 4, 1, 1])])
    _, net, report = import_onnx(m)
    assert report.unsupported == {"HardSwish": ["hswish"]}
    hs = net.layer("hswish")
    assert hs.type == "passthrough" and hs.attrs["op"] == "HardSwish" and hs.problem is None
    assert net.layer("conv2").inputs == ("hswish",)
    assert "HardSwish x1: hswish" in report.text()


def test_exclude_training_branch_by_name() -> None:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="main/conv", kernel_shape=[1, 1]),
             helper.make_node("Conv", ["c", "wa"], ["a"], name="AuxLogits/conv",
                              kernel_shape=[1, 1]),
             helper.make_node("GlobalAveragePool", ["a"], ["ag"], name="AuxLogits/pool"),
             helper.make_node("GlobalAveragePool", ["c"], ["y"], name="main/pool")]
    m = _model(nodes, [_vi("x", [1, 4, 8, 8])], [_vi("y", [1, 4, 1, 1]), _vi("ag", [1, 2, 1, 1])],
               [_init("w", [4, 4, 1, 1]), _init("wa", [2, 4, 1, 1])])
    _, full, _ = import_onnx(m)
    assert len(full.layers) == 4
    _, net, report = import_onnx(m, exclude=("AuxLogits*",))
    assert [lay.name for lay in net.layers] == ["main.conv", "main.pool"]
    assert report.excluded == ["AuxLogits.conv", "AuxLogits.pool"]


def test_concat_maxpool_and_matmuls() -> None:
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
        helper.make_node("Concat", ["p", "c"], ["cat"], name="cat", axis=1),
        helper.make_node("Reshape", ["cat", "shape"], ["r"], name="reshape"),
        helper.make_node("MatMul", ["r", "wm"], ["m"], name="proj"),
        helper.make_node("Add", ["m", "bm"], ["mb"], name="bias"),
        helper.make_node("Transpose", ["mb"], ["t"], name="tr", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["mb", "t"], ["y"], name="scores"),
    ]
    shape = numpy_helper.from_array(np.array([1, 12, 16], dtype=np.int64), "shape")
    m = _model(nodes, [_vi("x", [1, 4, 8, 8])], [_vi("y", [1, 12, 12])],
               [_init("w", [8, 4, 1, 1]), shape, _init("wm", [16, 6]), _init("bm", [6])])
    _, net, report = import_onnx(m)
    assert net.layer("pool").attrs["P"] == 4
    assert net.layer("cat").out_shape == (12, 4, 4)
    proj = net.layer("proj")
    assert proj.type == "matmul" and (proj.attrs["M"], proj.attrs["K"], proj.attrs["N"]) == (
        12, 16, 6)
    assert proj.weights == 16 * 6 and proj.biases == 6  # the Add of a constant is its bias
    scores = net.layer("scores")
    assert scores.type == "matmul" and scores.inputs == ("proj", "tr")
    assert scores.weights == 0 and scores.macs == 12 * 6 * 12
    assert report.fused.get("Add (bias)") == 1


def test_cli_import(tmp_path: Path) -> None:
    path = tmp_path / "block.onnx"
    onnx.save(residual_block(), str(path))
    out = tmp_path / "block.yaml"
    runner = CliRunner()
    result = runner.invoke(main, ["import", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "unsupported ops: none" in result.output
    net = load_network(out)
    assert net.name == "block" and len(net.layers) == 7
    again = runner.invoke(main, ["import", str(path), "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.output
    stats = runner.invoke(main, ["workload", "stats", str(out), "--json"])
    assert stats.exit_code == 0 and '"macs": 3670336' in stats.output


def test_bad_onnx_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(SpecError) as info:
        import_onnx(str(bad))
    assert info.value.file == str(bad)
