"""Streaming dataflow FPGA designs (NN2FPGA, arXiv:2309.15631): the per-layer cost model, the
pipeline II/FPS, the allocators and `dse run` on streaming architectures.
Reference data: tests/data/nn2fpga (README there)."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from dse.cli import main
from dse.schedule.allocate import allocate_exact, allocate_proportional, candidates
from dse.schedule.streaming import (
    Board,
    Engine,
    Memory,
    Par,
    StreamingArch,
    build_stages,
    evaluate,
)
from dse.spec.network import load_network_text
from dse.spec.streaming_arch import load_streaming
from dse.spec.workload_library import load_workload

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "nn2fpga"
ARCHS = {"ultra96v2": "ultra96v2_streaming", "kv260": "kv260_streaming"}
PREFIX = {"ultra96v2": "u96", "kv260": "kv260"}


def _rows(name: str) -> list[dict]:
    lines = [ln for ln in (DATA / name).read_text().splitlines() if not ln.startswith("#")]
    return list(csv.DictReader(lines))


def published_fps(net: str, board: str) -> float:
    rows = {r["target_id"]: r for r in _rows("targets.csv")}
    return float(rows[f"{net}_{board}_fps"]["value"])


def reference_ii(net: str, board: str) -> int:
    rows = {r["target_id"]: r for r in _rows("targets.csv")}
    return int(rows[f"{net}_{board}_ii_model"]["value"])


def dse_name(ref: str) -> str:
    return ref.replace("layer", "l", 1) if ref.startswith("layer") else ref


def reference_plan(net: str, board: str) -> dict[str, Par]:
    """The derived per-layer plan of the reference table, in dse's layer names; the merged 1x1
    shortcuts ('ds') run in their host conv's loop, so they must agree with it."""
    pre = PREFIX[board]
    plan, ds = {}, {}
    for r in _rows(f"{net}_layers.csv"):
        par = Par(int(r[f"{pre}_och_par"]), 1, int(r[f"{pre}_ow_par"]))
        (ds if r["merged_into_conv1"] == "1" else plan)[dse_name(r["layer"])] = par
    for name, par in ds.items():
        assert plan[name.replace(".ds", ".conv1")] == par
    return plan


CASES = [(n, b) for b in ARCHS for n in ("resnet8", "resnet20")]


@pytest.mark.parametrize(("net", "board"), CASES)
def test_reference_plans_give_exact_ii_and_published_fps(net: str, board: str) -> None:
    arch = load_streaming(REPO / "arch_specs" / f"{ARCHS[board]}.yaml")
    res = evaluate(load_workload(net), arch, reference_plan(net, board))["totals"]
    assert res["ii_cycles"] == reference_ii(net, board)
    assert {16384: 1, 65536: 1, 8192: 1, 32768: 1}.get(res["ii_cycles"])  # the values
    pub = published_fps(net, board)
    assert abs(res["fps"] - pub) / pub < 0.05
    # the model's multipliers match the reference table's count for the same plan
    pre = PREFIX[board]
    assert res["multipliers"] == sum(int(r[f"{pre}_multipliers"])
                                     for r in _rows(f"{net}_layers.csv"))


@pytest.mark.parametrize(("net", "board"), CASES)
def test_exact_allocation_fits_the_board_and_explains(net: str, board: str) -> None:
    arch = load_streaming(REPO / "arch_specs" / f"{ARCHS[board]}.yaml")
    network = load_workload(net)
    alloc = allocate_exact(network, arch)
    tot = evaluate(network, arch, alloc["plan"])["totals"]
    assert tot["ii_cycles"] == alloc["ii"]
    assert tot["dsp_used"] <= arch.board.dsp and tot["bram36_used"] <= arch.board.bram36
    assert "smallest feasible II" in alloc["why"] and "next faster II" in alloc["why"]
    pub = published_fps(net, board)
    if (net, board) == ("resnet20", "kv260"):
        # Known deviation (docs/streaming.md): with the whole 1,248-DSP budget the exact search
        # finds II 24,576 (conv1 at och 2, every 3x3 engine at 16 products: 1,242 DSPs), 34 %
        # faster than the published build, which used II 32,768.
        assert tot["ii_cycles"] == 24576 and tot["fps"] > pub * 1.15
    else:
        assert abs(tot["fps"] - pub) / pub < 0.15


def test_exact_search_matches_brute_force_on_a_small_network() -> None:
    net = load_network_text("""
network:
  name: tiny
  input: {C: 4, H: 8}
  bits: {weights: 8, activations: 8}
  layers:
    - {name: a, type: conv2d, C: 4, K: 8, H: 8, R: 3, pad: 1, P: 8, inputs: [input]}
    - {name: b, type: conv2d, C: 8, K: 8, H: 8, R: 3, pad: 1, P: 8, inputs: [a]}
    - {name: c, type: conv2d, C: 8, K: 16, H: 8, R: 3, stride: 2, pad: 1, P: 4, inputs: [b]}
    - {name: d, type: conv2d, C: 16, K: 4, H: 4, R: 1, P: 4, inputs: [c]}
""")
    checked = with_uram = 0
    # (DSP, BRAM36, URAM, LUTRAM bits): DSP binding; every memory in BRAM so BRAM binds too;
    # with URAM the weights may go to either
    budgets = [(dsp, 8, 0, 36 * 1024) for dsp in (10, 23, 40, 77, 150)]
    budgets += [(150, bram, 0, 0) for bram in (5, 8, 9, 10, 12, 16)]
    budgets += [(150, 5, 2, 0), (60, 6, 1, 0), (150, 4, 4, 0)]
    for dsp, bram, uram, lutram in budgets:
        arch = StreamingArch("t", Board("t", dsp, bram, uram, 0, 1e8),
                             Engine(max_och_par=4, max_ich_par=2, max_ow_par=2),
                             Memory(lutram_max_bits=lutram))
        stages, _ = build_stages(net, arch.engine)
        cands = [candidates(s, arch, 8, 8) for s in stages]
        best = None
        for combo in itertools.product(*cands):
            b, u = sum(c.bram36 for c in combo), sum(c.uram for c in combo)
            d = sum(c.dsp for c in combo)
            if d <= dsp and b <= bram and u <= uram:
                key = (max(max(c.cycles for c in combo), 256), d, b + u, u)
                best = key if best is None else min(best, key)
        alloc = allocate_exact(net, arch)
        if best is None:
            assert alloc["plan"] is None
            continue
        tot = evaluate(net, arch, alloc["plan"])["totals"]
        got = (tot["ii_cycles"], tot["dsp_used"], tot["bram36_used"] + tot["uram_used"],
               tot["uram_used"])
        assert got == best
        checked += 1
        with_uram += tot["uram_used"] > 0
    assert checked >= 10 and with_uram >= 1


def test_paper_era_allocator_reproduces_its_documented_outcome() -> None:
    u96 = load_streaming(REPO / "arch_specs" / "ultra96v2_streaming.yaml")
    outcome = {}
    for net in ("resnet8", "resnet20"):
        network = load_workload(net)
        plain = allocate_proportional(network, u96, num_dsp=400, packing=False)
        packed = allocate_proportional(network, u96, num_dsp=400, packing=True)
        outcome[net] = (plain["heavy_par"], packed["heavy_par"])
        ii = evaluate(network, u96, plain["plan"])["totals"]["ii_cycles"]
        assert ii == 262144 // plain["heavy_par"]
    assert outcome == {"resnet8": (8, 16), "resnet20": (2, 4)}


def test_skip_forwarding_saves_what_the_model_derives_on_resnet8() -> None:
    network = load_workload("resnet8")
    base = load_streaming(REPO / "arch_specs" / "ultra96v2_streaming.yaml")
    plan = reference_plan("resnet8", "ultra96v2")
    fwd = evaluate(network, base, plan)["totals"]
    whole = evaluate(network, StreamingArch(**{**base.__dict__, "skip_forwarding": False}),
                     plan)["totals"]
    # (channels, height, width) of ResNet-8's three joins; 3x3 consuming conv; 8-bit
    joins = [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    full = sum(c * h * w * 8 for c, h, w in joins)
    lag = sum((1 * w + 1 + 1) * c * 8 for c, h, w in joins)  # one row + one pixel + the current
    assert whole["skip_buffer_bits"] == full == 229376
    assert fwd["skip_buffer_bits"] == lag == 14080
    assert whole["skip_buffer_bits"] - fwd["skip_buffer_bits"] == 215296
    assert fwd["ii_cycles"] == whole["ii_cycles"]  # buffering does not change throughput


def test_packing_halves_dsps_and_latency_exceeds_ii() -> None:
    network = load_workload("resnet8")
    arch = load_streaming(REPO / "arch_specs" / "kv260_streaming.yaml")
    plan = reference_plan("resnet8", "kv260")
    packed = evaluate(network, arch, plan)["totals"]
    unpacked = evaluate(network, StreamingArch(**{**arch.__dict__, "engine": Engine(
        dsp_packing=False)}), plan)["totals"]
    assert unpacked["dsp_used"] == packed["multipliers"] == 1545
    assert packed["dsp_used"] == sum(math.ceil(m / 2) for m in (72, 288, 288, 144 + 16, 288,
                                                              144 + 16, 288)) + 1
    assert packed["ii_cycles"] < packed["latency_cycles"] < 2 * packed["ii_cycles"]


def _run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_dse_run_streaming_writes_layers_and_totals(tmp_path: Path) -> None:
    out = tmp_path / "r8"
    res = _run(["run", "--arch", "kv260_streaming", "--workload", "resnet8", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "FPS" in res.output and "bottleneck" in res.output and "allocation:" in res.output
    tot = next(csv.DictReader((out / "totals.csv").open()))
    for col in ("fps", "ii_cycles", "clock_hz", "dsp_used", "dsp_budget", "bottleneck_layer"):
        assert tot[col] != ""
    assert int(tot["ii_cycles"]) == 8192 and float(tot["clock_hz"]) == 250e6
    layers = list(csv.DictReader((out / "layers.csv").open()))
    assert {"och_par", "ich_par", "ow_par", "cycles", "dsp", "bram36"} <= set(layers[0])
    assert max(int(r["stage_cycles"]) for r in layers) == 8192


def test_dse_run_with_a_plan_file(tmp_path: Path) -> None:
    plan = tmp_path / "plan.csv"
    rows = ["layer,och_par,ow_par"] + [f"{k},{p.och_par},{p.ow_par}" for k, p in
                                       reference_plan("resnet20", "ultra96v2").items()]
    plan.write_text("\n".join(rows) + "\n")
    out = tmp_path / "o"
    res = _run(["run", "--arch", "ultra96v2_streaming", "--workload", "resnet20", "--out",
                str(out), "--plan", str(plan)])
    assert res.exit_code == 0, res.output
    tot = next(csv.DictReader((out / "totals.csv").open()))
    assert int(tot["ii_cycles"]) == 65536 and tot["allocator"] == "plan file"
    yplan = tmp_path / "plan.yaml"
    yplan.write_text("plan:\n" + "".join(f"  {k}: {{och_par: {p.och_par}}}\n" for k, p in
                                         reference_plan("resnet20", "ultra96v2").items()))
    res = _run(["run", "--arch", "ultra96v2_streaming", "--workload", "resnet20", "--out",
                str(out), "--plan", str(yplan), "-q"])
    assert res.exit_code == 0, res.output
    assert int(next(csv.DictReader((out / "totals.csv").open()))["ii_cycles"]) == 65536


def test_bad_plans_and_specs_are_clear_errors(tmp_path: Path) -> None:
    plan = tmp_path / "plan.csv"
    plan.write_text("layer,och_par\nl1.0.conv1x,4\n")
    res = _run(["run", "--arch", "ultra96v2_streaming", "--workload", "resnet8", "--out",
                str(tmp_path / "o"), "--plan", str(plan)])
    assert res.exit_code == 2 and "did you mean 'l1.0.conv1'" in res.output
    plan.write_text("layer,och_pr\nconv1,4\n")
    res = _run(["run", "--arch", "ultra96v2_streaming", "--workload", "resnet8", "--out",
                str(tmp_path / "o"), "--plan", str(plan)])
    assert res.exit_code == 2 and "did you mean 'och_par'" in res.output
    plan.write_text("layer,och_par\nconv1,3\n")
    res = _run(["run", "--arch", "ultra96v2_streaming", "--workload", "resnet8", "--out",
                str(tmp_path / "o"), "--plan", str(plan)])
    assert res.exit_code == 2 and "no parallelism for" in res.output
    bad = tmp_path / "bad.yaml"
    text = (REPO / "arch_specs" / "ultra96v2_streaming.yaml").read_text()
    bad.write_text(text.replace("dsp_packing:", "dsp_pakcing:"))
    res = _run(["run", "--arch", str(bad), "--workload", "resnet8", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "did you mean 'dsp_packing'" in res.output
    assert "bad.yaml:" in res.output


def test_arch_list_shows_streaming_designs() -> None:
    res = _run(["arch", "list"])
    assert res.exit_code == 0, res.output
    for name in ("ultra96v2_streaming", "kv260_streaming", "zcu102_streaming"):
        assert name in res.output
    res = _run(["arch", "show", "kv260_streaming"])
    assert res.exit_code == 0 and "1,248" in res.output and "250" in res.output


def test_line_buffer_stage_bounds_a_stride_two_conv() -> None:
    """With the newer flow's line-buffer bound, the KV260 ResNet-8 plan is held back by the
    stride-2 conv reading the 32x32 tensor one value per cycle; ich_par 2 there restores it."""
    network = load_workload("resnet8")
    arch = load_streaming(REPO / "arch_specs" / "kv260_streaming.yaml")
    lb = StreamingArch(**{**arch.__dict__, "engine": Engine(line_buffer_stage=True)})
    plan = reference_plan("resnet8", "kv260")
    tot = evaluate(network, lb, plan)["totals"]
    assert (tot["ii_cycles"], tot["bottleneck_layer"]) == (16 * 32 * 32, "l2.0.conv1")
    plan["l2.0.conv1"] = Par(8, 2, 1)
    fixed = evaluate(network, lb, plan)["totals"]
    assert fixed["ii_cycles"] == 8192 and fixed["multipliers"] == tot["multipliers"]
    assert allocate_exact(network, lb)["ii"] == 8192


def test_sweep_over_boards_and_bits_and_report_fps(tmp_path: Path) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text("""
sweep:
  name: s
  architectures: [ultra96v2_streaming, kv260_streaming]
  workloads: [resnet8]
  parameters:
    bits.weights: [8, 4]
    bits.activations: [8, 4]
""")
    out = tmp_path / "out"
    res = _run(["sweep", str(sweep), "--out", str(out), "-q", "--store",
                str(tmp_path / "store.sqlite")])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert len(rows) == 8
    by = {(r["arch"], r["param.bits.weights"], r["param.bits.activations"]): r for r in rows}
    # four 4-bit products per DSP where two 8-bit ones fit: the Ultra96 budget doubles the rate
    assert int(by[("ultra96v2_streaming", "8", "8")]["ii_cycles"]) == 16384
    assert int(by[("ultra96v2_streaming", "4", "4")]["ii_cycles"]) == 8192
    assert int(by[("ultra96v2_streaming", "4", "8")]["ii_cycles"]) == 16384
    res = _run(["report", str(out), "--out", str(tmp_path / "rep"), "--no-plots"])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Streaming designs" in md and "FPS per DSP" in md and "13,079" in md
    rep = list(csv.DictReader((tmp_path / "rep" / "report.csv").open()))
    assert {"fps", "fps_per_dsp"} <= set(rep[0])
    bad = tmp_path / "bad.yaml"
    bad.write_text(sweep.read_text().replace("bits.weights", "bits.weigths"))
    res = _run(["sweep", str(bad), "--out", str(out), "-q"])
    assert res.exit_code == 2 and "did you mean 'weights'" in res.output


def test_power_figures_give_energy_and_unknown_kinds_are_refused(tmp_path: Path) -> None:
    text = (REPO / "arch_specs" / "kv260_streaming.yaml").read_text()
    arch_file = tmp_path / "p.yaml"
    arch_file.write_text(text + "  power: {static_W: 1.0, per_dsp_W: 0.001, per_bram36_W: 0.002,"
                                " source: 'made up for this test'}\n")
    out = tmp_path / "o"
    res = _run(["run", "--arch", str(arch_file), "--workload", "resnet8", "--out", str(out),
                "--plan", str(DATA / "plans" / "resnet8_kv260.csv"), "-q"])
    assert res.exit_code == 0, res.output
    tot = next(csv.DictReader((out / "totals.csv").open()))
    watts = 1.0 + 0.001 * int(tot["dsp_used"]) + 0.002 * int(tot["bram36_used"])
    assert math.isclose(float(tot["power_W"]), watts)
    assert math.isclose(float(tot["energy_pJ"]), watts * 8192 / 250e6 * 1e12)
    arch_file.write_text(text + "  power: {static_W: 1.0}\n")
    res = _run(["run", "--arch", str(arch_file), "--workload", "resnet8", "--out", str(out)])
    assert res.exit_code == 2 and "source" in res.output
    arch_file.write_text(text.replace("kind: streaming", "kind: streeming"))
    res = _run(["arch", "show", str(arch_file)])
    assert res.exit_code == 2 and "did you mean 'streaming'" in res.output


def test_a_network_too_big_for_the_board_says_what_it_needs(tmp_path: Path) -> None:
    res = _run(["run", "--arch", "ultra96v2_streaming", "--workload", "mobilenetv2_cifar", "--out",
                str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "does not fit" in res.output and "BRAM36" in res.output and "at least" in res.output


def test_cli_proportional_allocator_and_merged_names_in_plans(tmp_path: Path) -> None:
    out = tmp_path / "p"
    res = _run(["run", "--arch", "ultra96v2_streaming", "--workload", "resnet20", "--out",
                str(out), "--allocator", "proportional"])
    assert res.exit_code == 0, res.output
    tot = next(csv.DictReader((out / "totals.csv").open()))
    assert int(tot["ii_cycles"]) == 131072 and "och_par 2" in tot["explanation"]
    layers = {r["layer"]: r for r in csv.DictReader((out / "layers.csv").open())}
    assert layers["l1.0.conv1"]["och_par"] == "2" and layers["l2.0.conv1"]["och_par"] == "1"
    plan = tmp_path / "plan.csv"
    rows = [f"{k},{p.och_par},{p.ow_par}" for k, p in
            reference_plan("resnet8", "ultra96v2").items()]
    plan.write_text("layer,och_par,ow_par\n" + "\n".join(rows) + "\nl2.0.ds,8,1\n")
    res = _run(["run", "--arch", "ultra96v2_streaming", "--workload", "resnet8", "--out",
                str(out), "--plan", str(plan), "-q"])
    assert res.exit_code == 0, res.output
    plan.write_text("layer,och_par,ow_par\n" + "\n".join(rows) + "\nl2.0.ds,4,1\n")
    res = _run(["run", "--arch", "ultra96v2_streaming", "--workload", "resnet8", "--out",
                str(out), "--plan", str(plan), "-q"])
    assert res.exit_code == 2 and "merged shortcut 'l2.0.ds'" in res.output
    res = _run(["run", "--arch", "ultra96v2_streaming", "--workload", "resnet8", "--out",
                str(out), "--plan", str(plan), "--allocator", "proportional"])
    assert res.exit_code == 2 and "ignored" in res.output


def test_same_inputs_give_identical_files(tmp_path: Path) -> None:
    for d in ("a", "b"):
        res = _run(["run", "--arch", "kv260_streaming", "--workload", "resnet20", "--out",
                    str(tmp_path / d), "-q"])
        assert res.exit_code == 0, res.output
    for f in ("layers.csv", "skips.csv", "totals.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_output_channel_only_and_a_third_board() -> None:
    """KV260 ResNet-8 with only output-channel parallelism: the 16-channel layers cap every
    engine at 16 products, so II = 262,144 / 16. ZCU102 with the 2023 rule: the heavy layers'
    16 output channels cap p on both networks."""
    network = load_workload("resnet8")
    kv = load_streaming(REPO / "arch_specs" / "kv260_streaming.yaml")
    och_only = StreamingArch(**{**kv.__dict__, "engine": Engine(max_ich_par=1, max_ow_par=1)})
    alloc = allocate_exact(network, och_only)
    tot = evaluate(network, och_only, alloc["plan"])["totals"]
    assert tot["ii_cycles"] == 16384 and round(tot["fps"]) == 15259
    assert all(p.ich_par == 1 and p.ow_par == 1 for p in alloc["plan"].values())
    zcu = load_streaming(REPO / "arch_specs" / "zcu102_streaming.yaml")
    for net in ("resnet8", "resnet20"):
        res = allocate_proportional(load_workload(net), zcu)
        assert res["p"] >= 16 and res["heavy_par"] == 16
        tot = evaluate(load_workload(net), zcu, res["plan"])["totals"]
        assert tot["ii_cycles"] == 16384 and round(tot["fps"]) == 12207
