"""MAX78000 whole networks: the vendor zoo models map whole, the latency follows the vendor
estimator's shape, and networks the chip cannot run are refused with the layer, rule and fix."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dse.cli import main
from dse.errors import SpecError
from dse.pipeline.spec import load_arch
from dse.schedule.max78000 import MAX78000, layer_cycles, rows, schedule
from dse.spec.network import load_network_text
from dse.spec.workload_library import load_workload
from tests.conftest import REPO

MAX = str(REPO / "arch_specs" / "max78000.yaml")
DATA = REPO / "tests" / "data" / "max78000"
ZOO = {  # name: (hardware layers, pass-through layers, streaming layers) of the vendor's
    # synthesis description (ai8x-synthesis networks/cifar100-ressimplenet.yaml,
    # kws20-hwc.yaml, faceid.yaml, cifar100-simple.yaml, cifar100-nas.yaml, commit ab4f4c0)
    "ai85ressimplenet": (17, 3, 0),
    "ai85kws20": (10, 0, 0),
    "ai85faceid": (9, 1, 2),
    "ai85simplenet": (14, 0, 0),
    "ai85nascifarnet": (11, 0, 0),
    # ai85-faceid_112.yaml has 18: the same 16 plus an identity 1x1 conv that carries the 7x7
    # average pool and a separate element-wise add layer; dse runs both in flight (the pool
    # ends at 1x1, so it needs no conv of its own: ai8x-synthesis README "Limitations")
    "ai85faceid_112": (16, 1, 2),
}
MEASURED = DATA / "measured_latency.csv"


@pytest.fixture(scope="module")
def arch():
    return load_arch([MAX]).arch


def run(name_or_net, arch):
    net = load_workload(name_or_net) if isinstance(name_or_net, str) else name_or_net
    hw, tensors = schedule(net, arch)
    return net, hw, tensors, *rows(net, arch, hw, tensors)


def pair(text: str) -> tuple[int, int]:
    a, b = text.split("x")
    return int(a), int(b)


# ----------------------------------------------------------------------------- latency


def test_cycles_match_every_vendor_case() -> None:
    """The vendor's own regression values (tests/data/max78000/README.md); each includes the
    estimator's one start-up cycle."""
    checked = 0
    for r in csv.DictReader(open(DATA / "vendor_cycles.csv")):
        if r["operator"] not in ("op.CONV2D", "op.NONE"):
            continue  # transposed convolution: not modelled
        size, pool, stride = pair(r["input_dim"]), pair(r["pool"]), pair(r["pool_stride"])
        kernel, pad = pair(r["kernel_size"]), pair(r["padding"])
        pooled = tuple((size[i] + stride[i] - pool[i]) // stride[i] for i in range(2))
        out = tuple(pooled[i] - kernel[i] + 1 + 2 * pad[i] for i in range(2))
        slots = int(np.prod([int(x) for x in r["timeslots"].split("*")]))
        cycles = layer_cycles(
            passes=int(r["in_expand"]), operands=int(r["operands"]), pool=pool, pooled=pooled,
            pad=pad, kernel=kernel, out_channels=int(r["output_chan"]), out_dims=out,
            pool_first=r["pool_first"] == "True", passthrough=r["operator"] == "op.NONE",
            timeslots=slots, flatten=r["flatten"] == "True")
        assert cycles + 1 == int(r["expected"]), r["name"]
        checked += 1
    assert checked == 18


def test_one_layer_cycles_derived_by_hand() -> None:
    """3 x 32 x 32 input, 3x3 kernel, padding 1, 64 output channels, one pass, no pooling.
    Reading a data column costs 1 read + 1 line-buffer write = 2, a padding column also 2, and
    each column then 1 write-back: 3 per column.
      top padding row:  2 pad columns x 3 + 32 columns x 3                    = 102
      window-fill row:  (kernel rows - 1 - pad = 1 row) the same                = 102
      convolving row:   left pad 3 + 1 fill column x 3 + 31 columns x 2 + right pad 2 = 70,
                        plus 32 output columns x 64 channels (one per cycle) = 2,048
      31 convolving rows: 31 x 2,118 = 65,658
      bottom padding row: 3 + 3 + 31 x 2 + 2 = 70, plus its 2,048 outputs     = 2,118
      total = 102 + 102 + 65,658 + 2,118 = 67,980 (MACs / 64 would be 27,648)."""
    by_hand = 102 + 102 + 31 * (70 + 32 * 64) + (70 + 32 * 64)
    assert by_hand == 67_980
    assert layer_cycles(passes=1, operands=1, pool=(1, 1), pooled=(32, 32), pad=(1, 1),
                        kernel=(3, 3), out_channels=64, out_dims=(32, 32)) == by_hand
    # one more input pass or twice the output channels cost about twice as much; more input
    # channels in the same pass cost nothing extra (C = 3 and C = 60 are the same layer)
    two = layer_cycles(passes=2, operands=1, pool=(1, 1), pooled=(32, 32), pad=(1, 1),
                       kernel=(3, 3), out_channels=64, out_dims=(32, 32))
    assert 1.9 < two / by_hand < 2.1


def test_streaming_layers_cost_one_and_a_half(arch) -> None:
    net, hw, _, lrows, tot = run("ai85faceid", arch)
    assert [h.streaming for h in hw] == [True, True] + [False] * 7
    conv1 = hw[0]
    plain = layer_cycles(passes=1, operands=1, pool=(1, 1), pooled=(160, 120), pad=(1, 1),
                         kernel=(3, 3), out_channels=16, out_dims=(160, 120))
    assert conv1.cycles == (15 * plain + 9) // 10


@pytest.mark.parametrize("row", list(csv.DictReader(open(MEASURED))),
                         ids=lambda r: f"{r['network']}-{r['latency_us']}us")
def test_latency_against_inferences_measured_on_the_chip(row, arch) -> None:
    """At the 50 MHz CNN clock the examples set (MAX78000: APB clock, no PLL, no pipeline;
    izer/tornadocnn.py). Measurements: tests/data/max78000/README.md. A preloaded input: within
    10% (both ai85simplenet measurements, 2,570 and 2,593 us, against 2,586 us; writing four
    output channels per cycle instead of one would give 1.1 ms). A streamed input also times
    the Arm feeding the FIFO, and the estimator's 1.5x for streaming layers is itself an
    estimate: within 1.5x (ai85faceid: 14,001 us measured, 17,537 us here)."""
    _, _, _, _, tot = run(row["network"], arch)
    assert tot["clock_hz"] == float(row["cnn_clock_hz"]) == 50e6
    ratio = tot["latency_s"] / (float(row["latency_us"]) * 1e-6)
    limit = 1.5 if row["includes_input_loading"] == "yes" else 1.1
    assert 1 / limit < ratio < limit, ratio


def test_the_published_faceid_figure_is_not_a_zoo_network(arch) -> None:
    """The published 1.4 ms / 117 MAC per cycle (openreview hw6s-qry_qx) ran the paper's own face
    network, which is not public: at the 50 MHz CNN clock that is 117 x 70,000 cycles = 8.2 M
    MACs. Neither zoo FaceID network is it (55.2 M and 146.6 M MACs), and for both this model
    predicts far more than 1.5 x 1.4 ms (docs/architectures.md records why)."""
    published_s, published_macs_per_cycle = 1.4e-3, 117
    implied_macs = published_macs_per_cycle * published_s * 50e6  # 8.2 M
    for name in ("ai85faceid", "ai85faceid_112"):
        _, _, _, _, tot = run(name, arch)
        assert tot["macs"] > 6 * implied_macs
        assert tot["latency_s"] > 5 * 1.5 * published_s  # not near the 1.5x band at all


# ----------------------------------------------------------------------------- the zoo


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_maps_whole_within_the_chip(name, arch) -> None:
    net, hw, tensors, lrows, tot = run(name, arch)
    n_hw, n_pass, n_stream = ZOO[name]
    assert (tot["hw_layers"], tot["passthrough_layers"], tot["streaming_layers"]) == \
        (n_hw, n_pass, n_stream) and n_hw <= MAX78000.max_layers
    macs = [lay for lay in net.layers if lay.type in ("conv2d", "pointwise", "fc")]
    assert sorted(h.layer.name for h in hw if h.layer is not None) == \
        sorted(lay.name for lay in macs)  # every MAC layer is one hardware layer
    # weight memory: blocks inside 64 x 768 rows and never overlapping
    used = np.zeros((64, 768), dtype=int)
    for h in hw:
        if h.layer is None:
            assert h.weight_rows == 0
            continue
        assert h.weight_col % 4 == 0 and h.weight_col + h.weight_rows <= 768
        assert h.proc_first + h.proc_count <= 64
        used[h.proc_first:h.proc_first + h.proc_count,
             h.weight_col:h.weight_col + h.weight_rows] += 1
    assert used.max() == 1
    # weight bytes: every layer's parameter count at its own bit width
    assert tot["weight_bytes"] == sum(-(-lay.weights * lay.bits.weights // 8) for lay in macs) \
        <= MAX78000.weight_bytes_total
    # data memory: every tensor inside its instances, and no two live at once overlap
    placed = [t for t in tensors.values() if t["words"]]
    for t in placed:
        assert t["offset"] + 4 * t["words"] <= MAX78000.instance_bytes
    for i, a in enumerate(placed):
        for b in placed[i + 1:]:
            if a["live"][0] <= b["live"][1] and b["live"][0] <= a["live"][1]:
                assert a["offset"] + 4 * a["words"] <= b["offset"] or \
                    b["offset"] + 4 * b["words"] <= a["offset"]
    assert tot["cycles"] == 1 + sum(r["cycles"] for r in lrows)
    assert tot["latency_s"] == pytest.approx(tot["cycles"] / 50e6)


@pytest.mark.parametrize("row", list(csv.DictReader(open(DATA / "sdk_resource_usage.csv"))),
                         ids=lambda r: r["network"])
def test_macs_weight_and_bias_bytes_equal_the_vendor_tool(row, arch) -> None:
    """What ai8x-synthesis printed for the SDK examples (tests/data/max78000/README.md)."""
    _, _, _, _, tot = run(row["network"], arch)
    assert (tot["macs"], tot["weight_bytes"], tot["bias_bytes"]) == \
        (int(row["macs"]), int(row["weight_bytes"]), int(row["bias_bytes"]))


def test_residual_adds_run_in_flight(arch) -> None:
    """ai85ressimplenet: each add runs inside the conv that reads it; its two operands are
    written interleaved (write_gap 1, one 32-bit word apart), one of them by a pass-through
    layer because the conv that made it is read by another layer too (vendor recipe)."""
    net, hw, tensors, lrows, _ = run("ai85ressimplenet", arch)
    for add in ("resid1", "resid2", "resid3"):
        readers = [r for r in lrows if add in r["fused_layers"].split("+")]
        assert len(readers) == 1 and readers[0]["type"] == "conv2d"
        assert readers[0]["operands"] == 2
        writers = [r for r in lrows if r["note"].endswith(f"of {add}")]
        assert len(writers) == 2 and {w["write_gap"] for w in writers} == {1}
        assert sorted(w["type"] for w in writers) == ["conv2d", "passthrough"]
        offsets = sorted(w["data_mem_offset"] for w in writers)
        assert offsets[1] - offsets[0] == 4
        assert readers[0]["data_in_offset"] == offsets[0]
    assert lrows[12]["fused_layers"] == "resid3+pool10+conv10"  # add, then pool, then conv


def test_faceid_112_pools_and_adds_in_flight_with_mixed_bit_weights(arch) -> None:
    """ai85faceid_112: the residual add runs in the conv after it, the 7x7 average pool (to 1x1)
    in the linear; 2-bit and 4-bit kernels pack into the 72-bit rows by hand:
    b1.conv2: 192 inputs = 3 passes of 64, 3 x 64 kernels x 9 taps x 2 bits / 72 = 48 rows;
    b3.conv2: 256 inputs = 4 passes, 4 x 96 x 9 x 4 / 72 = 192 rows (8-bit would be 384)."""
    _, hw, _, lrows, _ = run("ai85faceid_112", arch)
    by = {r["layer"]: r for r in lrows}
    assert (by["b3.conv1"]["fused_layers"], by["b3.conv1"]["operands"]) == ("b2.add+b3.conv1", 2)
    assert by["linear"]["fused_layers"] == "avg_pool+linear"
    assert by["b2.conv2"]["write_gap"] == by["b1.conv2.to.b2.add"]["write_gap"] == 1
    assert (by["b1.conv2"]["passes"], by["b1.conv2"]["weight_mem_rows"]) == (3, 48)
    assert (by["b3.conv2"]["passes"], by["b3.conv2"]["weight_mem_rows"]) == (4, 192)
    assert by["b1.conv2"]["weight_bytes"] == 192 * 64 * 9 * 2 // 8


def test_weight_bytes_are_the_parameter_count_at_the_layer_bit_width(arch) -> None:
    net, hw, *_ = run("ai85ressimplenet", arch)
    for h in hw:
        if h.layer is not None:
            assert h.weight_bytes == h.layer.weights  # 8-bit weights
    conv11 = next(h for h in hw if h.name == "conv11")  # 1x1, 96 -> 512
    # 96 channels: 2 passes of 48 processors; 2 x 512 kernels of 1 byte per processor, 9 to a
    # 72-bit row
    assert (conv11.passes, conv11.proc_count, conv11.weight_rows) == (2, 48, 114)
    assert conv11.weight_bytes == 96 * 512
    text = """network:
  version: 1
  name: q
  input: {C: 16, H: 8}
  layers:
    - {name: a, type: conv2d, C: 16, K: 32, H: 8, R: 3, pad: 1, bias: false,
       bits: {weights: WB}}
    - {name: b, type: pointwise, C: 32, K: 20, H: 8, bias: false, bits: {weights: WB}}
"""
    got = {}
    for bits in (8, 4, 1):
        _, hw, *_ = run(load_network_text(text.replace("WB", str(bits))), arch)
        got[bits] = [(h.weight_bytes, h.weight_rows) for h in hw]
    assert got[8] == [(16 * 32 * 9, 32), (32 * 20, 3)]      # 20 1x1 kernels: 3 rows
    assert got[4] == [(16 * 32 * 9 // 2, 16), (32 * 20 // 2, 2)]
    assert got[1] == [(16 * 32 * 9 // 8, 4), (32 * 20 // 8, 1)]


# ----------------------------------------------------------------------------- refusals


def test_resnet20_is_refused_with_the_stride_rule_and_its_fix(arch) -> None:
    with pytest.raises(SpecError) as err:
        run("resnet20", arch)
    msg = str(err.value)
    assert msg.startswith("max78000 cannot run resnet20")
    assert "rule 'strides' of max78000: layer l2.0.conv1 has stride 2x2" in msg
    assert "fix: stride 2 -> max_pool 2 before a stride-1 conv" in msg
    assert "(and 3 more layers: l2.0.ds, l3.0.conv1, l3.0.ds)" in msg


def test_ai8x_style_resnet20_maps(arch) -> None:
    net, hw, tensors, lrows, tot = run("ai85resnet20", arch)
    assert tot["hw_layers"] == 29 <= 32 and tot["passthrough_layers"] == 7
    adds = [lay.name for lay in net.layers if lay.type == "add"]
    fused = [x for r in lrows if r["type"] != "passthrough" for x in r["fused_layers"].split("+")]
    assert all(a in fused for a in adds)  # every add also runs in flight in a conv
    assert tot["macs"] == net.stats()["macs"]


def test_too_many_weights_says_how_many(arch) -> None:
    with pytest.raises(SpecError, match=r"KiB of weights needed, 432 KiB available"):
        run("mobilenetv2_cifar", arch)


def test_data_memory_overflow_names_the_layer(arch) -> None:
    net = load_network_text("""network:
  version: 1
  name: big
  input: {C: 3, H: 90}
  layers:
    - {name: wide, type: conv2d, C: 3, K: 64, H: 90, R: 3, pad: 1}
    - {name: next, type: conv2d, C: 64, K: 8, H: 90, R: 3, pad: 1}
""")
    with pytest.raises(SpecError, match=r"layer wide: its output \(64x90x90\) needs 32,400 bytes "
                                        r"in each data-memory instance next to input"):
        run(net, arch)


def test_unknown_execution_is_refused(tmp_path: Path) -> None:
    text = Path(MAX).read_text().replace("execution: max78000", "execution: max7800")
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(SpecError, match=r"unknown execution model 'max7800'.*did you mean "
                                        r"'max78000'"):
        load_arch([str(tmp_path / "m.yaml")])


# ----------------------------------------------------------------------------- dse run


def test_dse_run_ai85ressimplenet_end_to_end(tmp_path: Path) -> None:
    for out in ("a", "b"):
        r = CliRunner().invoke(main, ["run", "--arch", "max78000", "--workload", "ai85ressimplenet",
                                      "--out", str(tmp_path / out)])
        assert r.exit_code == 0, r.output
    assert "17 hardware layers" in r.output and "ms at 50 MHz" in r.output
    for name in ("layers.csv", "totals.csv"):  # reproducible
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    (tot,) = csv.DictReader(open(tmp_path / "a" / "totals.csv"))
    assert float(tot["clock_hz"]) == 50e6
    assert float(tot["latency_s"]) == pytest.approx(int(tot["cycles"]) / 50e6)
    lrows = list(csv.DictReader(open(tmp_path / "a" / "layers.csv")))
    assert len(lrows) == 17
    assert {"processors", "passes", "data_mem_offset", "data_mem_bytes", "weight_mem_bytes",
            "cycles", "latency_s"} <= set(lrows[0])
    # ... and the report takes it: latency, no energy (not modelled for whole networks)
    r = CliRunner().invoke(main, ["report", str(tmp_path / "a"), "--out", str(tmp_path / "rep"),
                                  "--no-plots"])
    assert r.exit_code == 0, r.output
    (rep,) = csv.DictReader(open(tmp_path / "rep" / "report.csv"))
    assert rep["network"] == "ai85ressimplenet" and rep["energy_pJ"] == ""
    assert float(rep["latency_s"]) == pytest.approx(float(tot["latency_s"]))
    md = (tmp_path / "rep" / "report.md").read_text()
    best = md.split("## Best per network", 1)[1]
    line = next(x for x in best.splitlines() if x.startswith("| ai85ressimplenet"))
    assert "energy not modelled" in line  # the network is listed with its fastest design
    assert f"{float(tot['latency_s']) * 1e3:.4g} ms" in line
    r = CliRunner().invoke(main, ["run", "--arch", MAX, "--workload", "resnet20",
                                  "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "stride 2 -> max_pool 2 before a stride-1 conv" in r.output


def test_totals_have_latency_for_mapped_architectures(tmp_path: Path) -> None:
    arch = str(REPO / "arch_specs" / "eyeriss_like.yaml")
    r = CliRunner().invoke(main, ["run", "--arch", arch, "--workload", "vgg02_conv5", "--out",
                                  str(tmp_path / "o"), "--max-evals", "300",
                                  "--store", str(tmp_path / "s.sqlite"), "-q"])
    assert r.exit_code == 0, r.output
    (tot,) = csv.DictReader(open(tmp_path / "o" / "totals.csv"))
    assert float(tot["clock_hz"]) == 1e9
    assert float(tot["latency_s"]) == pytest.approx(int(tot["cycles"]) / 1e9)


def test_sweep_runs_the_execution_model_and_refuses_parameters(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(f"sweep:\n  version: 1\n  name: m\n  architectures: [{MAX}]\n"
                 "  workloads: [ai85kws20, resnet20]\n")
    r = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "o"),
                                  "--store", str(tmp_path / "s.sqlite")])
    assert r.exit_code == 0, r.output
    rows_ = list(csv.DictReader(open(tmp_path / "o" / "sweep.csv")))
    assert [x["network"] for x in rows_] == ["ai85kws20"] and rows_[0]["hw_layers"] == "10"
    refused = (tmp_path / "o" / "sweep.json").read_text()
    assert "resnet20" in refused and "stride 2 -> max_pool 2" in refused
    f.write_text(f.read_text() + "  parameters:\n    data_memory.depth: [4096, 8192]\n")
    r = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "p"),
                                  "--store", str(tmp_path / "s.sqlite")])
    assert "would change nothing" in (tmp_path / "p" / "sweep.json").read_text()


def test_the_architecture_rules_set_the_chip_limits(tmp_path: Path) -> None:
    text = Path(MAX).read_text().replace("max_layers: 32 ", "max_layers: 16 ")
    (tmp_path / "m.yaml").write_text(text)
    r = CliRunner().invoke(main, ["run", "--arch", str(tmp_path / "m.yaml"), "--workload",
                                  "ai85ressimplenet", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert ("rule 'max_layers' of max78000: ai85ressimplenet needs 17 hardware layers "
            "(3 of them pass-through") in r.output and "at most 16" in r.output
