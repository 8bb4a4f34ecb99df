"""The pipeline schedule (dse.schedule.pipeline, `dse run --schedule pipeline|FILE`): the AMD NPU
ResNet conv2_x design against its reference figures (tests/data/aie), the row recurrence against
closed forms on small chains, memory and FIFO refusals, the schedule file round trip, and the
DRAM lower bound per fused segment against the point-by-point walker."""

from __future__ import annotations

import csv
import itertools
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse.cli import main
from dse.errors import SpecError
from dse.pipeline.fused import load_schedule
from dse.pipeline.spec import load_arch
from dse.schedule.fused import FusedModel, Segment
from dse.schedule.pipeline import Pipeline, PipelineModel, Stage, Staging
from dse.spec.arch_library import resolve
from dse.spec.network import load_network_text
from tests.oracle_fused import walk

REPO = Path(__file__).resolve().parents[1]
AIE = REPO / "tests" / "data" / "aie"
SHIPPED = REPO / "mappings" / "aie_npu_3col.resnet50_conv2x_32.pipeline.yaml"
CONV2X = REPO / "workloads" / "resnet50_conv2x_32.yaml"


def read(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def targets() -> dict[str, int]:
    with (AIE / "targets.csv").open() as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    head = rows[0]
    return {r[0]: float(r[head.index("value")]) for r in rows[1:]}


def tiles() -> list[dict]:
    with (AIE / "tiles.csv").open() as f:
        lines = [x for x in f if not x.startswith("#")]
    return list(csv.DictReader(lines))


def npu_arch():
    return load_arch([str(resolve("aie_npu_3col"))]).arch


def run(tmp_path: Path, out: str, *extra: str, workload: str = "resnet50_conv2x_32"):
    return CliRunner().invoke(main, ["run", "--arch", "aie_npu_3col", "--workload", workload,
                                     "--out", str(tmp_path / out), "--store",
                                     str(tmp_path / "store.sqlite"), "--max-evals", "300",
                                     *extra])


# -- the AMD NPU design --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def design(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("aie")
    r = run(tmp, "p", "--schedule", "pipeline")
    assert r.exit_code == 0, r.output
    return tmp / "p", r.output


def test_aie_design_dram_traffic_and_cycles_match_the_reference(design):
    out, text = design
    t = targets()
    tot = read(out / "totals.csv")[0]
    assert tot["schedule"] == "pipeline"
    # DRAM: input + weights + output once (540,672 B); the same tile groups one after the other,
    # each through DRAM, move the README's layer-by-layer 2,965,504 B
    assert int(tot["dram_bytes"]) == t["dram_bytes_depth_first"] == 540_672
    assert int(tot["stagewise_dram_bytes"]) == t["dram_bytes_layer_by_layer"] == 2_965_504
    # our own layerwise run (every layer mapped alone, conv outputs at the 32-bit accumulator
    # width, adds as separate layers) is what layers.csv says, summed
    layers = read(out / "layers.csv")
    assert int(tot["layerwise_dram_bytes"]) == sum(int(r["dram_bytes"]) for r in layers)
    assert int(tot["layerwise_dram_bytes"]) > int(tot["stagewise_dram_bytes"])
    # cycles: the row recurrence lands exactly on the README's row-pipeline estimate, with the
    # weight load in `cycles` and without it in `cycles_without_weight_load`
    cycles = int(tot["cycles"])
    assert int(tot["stage_bound_cycles"]) == t["bound_stage"] == 131_072
    assert cycles >= t["bound_stage"]
    assert abs(cycles - t["model_latency_wload"]) <= 0.15 * t["model_latency_wload"]
    assert cycles == 179_456
    assert int(tot["cycles_without_weight_load"]) == t["model_latency_no_wload"] == 153_344
    assert int(tot["interval_cycles"]) == t["row_ii_col0"] == 4096
    assert int(tot["tiles_used"]) == t["tiles_used"] == 12
    assert "DRAM 540,672 bytes" in text and "179,456 cycles" in text


def test_aie_design_stages_match_the_tiles(design):
    out, _ = design
    t = targets()
    stages = {s["stage"]: s for s in read(out / "stages.csv")}
    ref = tiles()
    # each reference tile against its stage: per-row cycles (edge rows of the 3x3 included),
    # per-image cycles and the weights the tile holds
    for row in ref:
        col = int(row["column"])
        role = row["role"][0]
        st = stages[("BC" if role in "BC" else role) + str(col)]
        assert row["tile"] in st["place"].split()
        assert int(st["row_cycles_max"]) == int(row["ideal_cycles_per_row"])
        assert int(st["row_cycles_min"]) == int(row["ideal_cycles_edge_row"])
        assert int(st["busy_cycles"]) == int(row["ideal_cycles_per_image"])
        assert int(st["tile_weight_bytes"]) == int(row["weight_bytes"])
    assert sum(int(s["macs"]) for s in stages.values()) == t["macs_executed"]
    for s in stages.values():
        assert int(s["working_set_bytes"]) <= int(s["capacity_bytes"]) == t["l1_per_tile"]
    # the README's memory check: column-0 D = 32 KB weights + 4 KB + 4 KB + 16 KB + 2.5 KB stack
    assert int(stages["D0"]["working_set_bytes"]) == 32768 + 4096 + 4096 + 16384 + 2560
    assert int(stages["BC0"]["working_set_bytes"]) == 36864 + 8192 + 2048 + 2560


def test_aie_design_fifos_live_in_their_memories(design):
    out, _ = design
    fifos = read(out / "fifos.csv")
    assert fifos and all(int(f["bytes"]) <= int(f["capacity_bytes"]) for f in fifos)
    memtile = [f for f in fifos if f["memory"] == "mem_tile"]
    assert {(f["tensor"], f["in"], int(f["bytes"])) for f in memtile} == {
        ("input", "group 0", 4 * 2048), ("b0.add", "group 0", 4 * 8192),
        ("b1.add", "group 2", 4 * 8192)}
    # the A -> BC broadcast of column 0 at depth 4 (fifos.csv act2_02_03_05)
    a_out = [f for f in fifos if f["tensor"] == "b0.conv1" and f["in"] == "A0"]
    assert [(int(f["depth_rows"]), int(f["row_bytes"])) for f in a_out] == [(4, 2048)]


def test_aie_design_segment_row_has_the_bound(design):
    out, _ = design
    seg = read(out / "segments.csv")
    assert len(seg) == 1
    s = seg[0]
    assert int(s["dram_bytes"]) == int(s["dram_bytes_lower_bound"]) == 540_672
    assert float(s["dram_bytes_over_bound"]) == 1.0
    assert int(s["buffer_peak_bytes"]) <= int(s["capacity_bytes"]) == 65536


def test_aie_schedule_written_back_reproduces_the_run(design, tmp_path):
    out, _ = design
    r = run(tmp_path, "again", "--schedule", str(out / "schedule.yaml"), "-q")
    assert r.exit_code == 0, r.output
    for name in ("stages.csv", "fifos.csv", "segments.csv", "totals.csv"):
        assert (tmp_path / "again" / name).read_text() == (out / name).read_text(), name
    again = (tmp_path / "again" / "schedule.yaml").read_text().splitlines()[1:]
    assert again == (out / "schedule.yaml").read_text().splitlines()[1:]


def test_aie_design_at_56x56_is_refused_naming_the_tile_memory(tmp_path):
    text = CONV2X.read_text().replace("H: 32", "H: 56").replace("P: 32", "P: 56")
    w56 = tmp_path / "conv2x_56.yaml"
    w56.write_text(text)
    r = run(tmp_path, "p56", "--schedule", str(SHIPPED), workload=str(w56))
    assert r.exit_code == 2
    assert "Traceback" not in r.output
    assert "tile_memory" in r.output and "65,536 bytes" in r.output
    assert "stage D0" in r.output and "(0,4)" in r.output
    assert "78,336 bytes" in r.output  # 32 KB + 2x(56x64) x2 + 2x(56x256) + 2.5 KB
    assert not (tmp_path / "p56" / "layers.csv").exists()  # refused before any mapping


def test_pipeline_without_a_shipped_schedule_is_refused(tmp_path):
    r = CliRunner().invoke(main, ["run", "--arch", "aie_npu_2col", "--workload",
                                  "resnet50_conv2x_32", "--out", str(tmp_path / "x"),
                                  "--store", str(tmp_path / "s.sqlite"), "--schedule",
                                  "pipeline"])
    assert r.exit_code == 2
    assert "no pipeline schedule is shipped" in r.output
    assert "aie_npu_3col.resnet50_conv2x_32.pipeline.yaml" in r.output


# -- the row recurrence on small chains ----------------------------------------------------------

CHAIN = """
network:
  version: 1
  name: chain
  input: {C: 16, H: 8, W: 32}
  bits: {weights: 8, activations: 8}
  layers:
    - {name: a, type: conv2d, C: 16, K: 32, H: 8, W: 32, R: 1, inputs: [input]}
    - {name: b, type: conv2d, C: 32, K: 64, H: 8, W: 32, R: 1, inputs: [a]}
    - {name: c, type: conv2d, C: 64, K: 16, H: 8, W: 32, R: 1, inputs: [b]}
"""


def chain_pipe(**kw) -> Pipeline:
    stages = (Stage("A", ("a",), 0), Stage("B", ("b",), 1), Stage("C", ("c",), 2))
    return Pipeline(stages, tile_level="tile_memory", group_level="mem_tile", row_time="compute",
                    **kw)


@pytest.mark.parametrize("backpressure", [False, True])
def test_linear_chain_follows_the_pipeline_formula(backpressure):
    """Uniform stages in a line: the first row passes every stage once, then one row per
    slowest-stage time: sum(stage times) + (rows - 1) * max(stage times)."""
    net = load_network_text(CHAIN)
    res = PipelineModel(net).evaluate(chain_pipe(weight_load=False,
                                                 backpressure=backpressure), npu_arch())
    # input DMA 512 B/row at 4 B/cycle; MACs per row / 256; output DMA 512 B/row
    times = [512 // 4, 16 * 32 * 32 // 256, 32 * 64 * 32 // 256, 64 * 16 * 32 // 256, 512 // 4]
    assert [s.row_cycles[0] for s in res.stages] == times[1:4]
    assert res.cycles == sum(times) + 7 * max(times) == 2496
    assert res.interval_cycles == 256 and res.stage_bound_cycles == 8 * 256
    assert res.bottleneck == "B"
    assert res.dram_read_bytes == 16 * 8 * 32 + (16 * 32 + 32 * 64 + 64 * 16)
    assert res.dram_write_bytes == 16 * 8 * 32


def test_weight_load_delays_each_stage_until_its_weights_arrive():
    """Weights: the group's weights from DRAM, then the tile's from the group memory, both at
    4 B/cycle. B's 2,048 B arrive at 2 x 512 = 1,024: its first row starts then and B paces the
    rest: 1,024 + 8 x 256 + C's last row 128 + the output DMA 128."""
    net = load_network_text(CHAIN)
    res = PipelineModel(net).evaluate(chain_pipe(), npu_arch())
    assert [s.weights_ready for s in res.stages] == [256, 1024, 512]
    assert res.cycles == 1024 + 8 * 256 + 128 + 128 == 3328
    assert res.cycles_without_weight_load == 2496
    assert res.fill_cycles == 1024 and res.drain_cycles == 256


def test_split_stage_divides_row_time_and_output_row_over_tiles():
    net = load_network_text(CHAIN)
    stages = (Stage("A", ("a",), 0), Stage("B", ("b",), 1, tiles=2, split="K"),
              Stage("C", ("c",), 2))
    pipe = Pipeline(stages, tile_level="tile_memory", group_level="mem_tile", weight_load=False,
                    row_time="compute")
    res = PipelineModel(net).evaluate(pipe, npu_arch())
    b = res.stages[1]
    assert b.row_cycles[0] == 128 and b.tile_weight_bytes == 32 * 64 // 2
    assert res.cycles == 128 + 64 + 128 + 128 + 128 + 7 * 128


SKIP = """
network:
  version: 1
  name: skip
  input: {C: 16, H: 6, W: 32}
  bits: {weights: 8, activations: 8}
  layers:
    - {name: a, type: conv2d, C: 16, K: 16, H: 6, W: 32, R: 3, pad: 1, inputs: [input]}
    - {name: b, type: add, C: 16, H: 6, W: 32, inputs: [a, input]}
"""


def test_backpressure_deadlock_is_refused_and_staging_resolves_it():
    """The skip row waits in b's FIFO (depth 1) until b runs, b waits for a, and a's first row
    needs input row 1, which has no free slot: a deadlock, refused; a staging FIFO of 2 rows on
    the skip path breaks it. Without back-pressure the same schedule runs."""
    net = load_network_text(SKIP)
    stages = (Stage("A", ("a",), 0), Stage("B", ("b",), 1, in_depth={"input": 1}))
    pipe = Pipeline(stages, tile_level="tile_memory", group_level="mem_tile",
                    weight_load=False, row_time="compute")
    with pytest.raises(SpecError, match="deadlocks"):
        PipelineModel(net).evaluate(pipe, npu_arch())
    free = PipelineModel(net).evaluate(replace(pipe, backpressure=False), npu_arch())
    staged = PipelineModel(net).evaluate(
        replace(pipe, staging=(Staging("input", 1, 2, "B"),)), npu_arch())
    assert staged.cycles == free.cycles
    # 3x3 row times: 16 x 16 x 32 x 9 MACs / 256 = 288, edge rows read 2 of the 3 kernel rows;
    # the add alone in its stage: 16 x 32 ops per row / 256
    assert staged.stages[0].row_cycles == (192, 288, 288, 288, 288, 192)
    assert staged.stages[1].row_cycles == (2,) * 6


def test_fifo_shallower_than_the_window_is_refused():
    net = load_network_text(SKIP)
    stages = (Stage("A", ("a",), 0, in_depth={"input": 2}), Stage("B", ("b",), 1))
    with pytest.raises(SpecError, match="holds 2 row") as exc:
        PipelineModel(net).evaluate(Pipeline(stages, row_time="compute"), npu_arch())
    assert exc.value.key_path == "schedule.stages[0].in_depth.input"


# -- schedule file errors -------------------------------------------------------------------------

def _shipped_with(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text()
    assert old in text
    p = tmp_path / "s.yaml"
    p.write_text(text.replace(old, new, 1))
    return p


@pytest.mark.parametrize("old,new,expect", [
    ("  efficiency: 1.0", "  efficency: 1.0", "efficiency"),
    ("  efficiency: 1.0", "  efficiency: 1.5", "fraction of the peak"),
    ("{name: A1, layers: [b1.conv1], group: 1",
     "{name: A1, layers: [b1.conv1], group: 3",
     "s.yaml:28: at 'schedule.stages[3].group': no group 3"),
    ("{name: A1, layers: [b1.conv1]", "{name: A1, layers: [b0.conv1]", "is in stages A0 and A1"),
    ("tiles: 2, split: K, weights: broadcast,\n       place: [\"(0,3)\", \"(0,5)\"]",
     "tiles: 3, split: K, weights: broadcast,\n       place: [\"(0,3)\", \"(0,5)\", \"(0,1)\"]",
     "split evenly"),
    ("place: [\"(0,3)\", \"(0,5)\"]", "place: [\"(0,3)\"]",
     "s.yaml:25: at 'schedule.stages[1].place': `place` labels each of the stage's 2 tile(s)"),
    ("{name: BC0,", "{name: null,", "s.yaml:24: at 'schedule.stages[1].name': expected a name"),
    ("    - {name: A0,", "    - [A0]\n    - {name: A0,",
     "s.yaml:22: at 'schedule.stages[0]': expected a mapping of keys"),
    ("    - {tensor: input, group: 0, depth: 4, for: D0}",
     "    - {tensor: input, group: 0, depth: 4, for: D9}",
     "s.yaml:39: at 'schedule.staging[0].for': no stage 'D9'"),
    ("    - {tensor: b1.add, group: 2, depth: 4, for: D2}",
     "    - {tensor: b1.ad, group: 2, depth: 4, for: D2}",
     "s.yaml:41: at 'schedule.staging[2].tensor': stage D2 does not read 'b1.ad'"),
    ("  kind: pipeline", "  kind: pipelin", "s.yaml:14: at 'schedule.kind': unknown schedule kind"),
    ("  kind: pipeline\n", "", "`stages:` belongs to a pipeline schedule"),
    ("  version: 1", "  version: 2", "s.yaml:13: at 'schedule.version': unsupported"),
    ("in_depth: {b0.conv1: 4}", "in_depth: {b0.conv9: 4}", "does not read"),
    ("tile_level: tile_memory", "tile_level: tile_mem",
     "s.yaml:15: at 'schedule.tile_level': no on-chip buffer 'tile_mem'"),
    ("group_level: mem_tile", "group_level: mem_tyle",
     "s.yaml:16: at 'schedule.group_level': no on-chip buffer 'mem_tyle'"),
    ("group_level: mem_tile", "group_level: tile_memory",
     "s.yaml:16: at 'schedule.group_level': the group level is the memory shared by a group"),
])
def test_schedule_file_errors_are_located(tmp_path, old, new, expect):
    path = _shipped_with(tmp_path, old, new)
    r = run(tmp_path, "bad", "--schedule", str(path))
    assert r.exit_code == 2, r.output
    assert expect in r.output
    assert str(path) in r.output or "s.yaml" in r.output
    assert "Traceback" not in r.output


def test_a_pipeline_places_every_layer(tmp_path):
    path = _shipped_with(tmp_path, "layers: [b2.conv3, b2.add], group: 2, place: [\"(2,4)\"],\n"
                         "       in_depth: {b2.conv2: 2, b1.add: 2}",
                         "layers: [b2.conv3], group: 2, in_depth: {b2.conv2: 2}")
    spec = load_schedule(path)
    net = load_network_text(CONV2X.read_text())
    with pytest.raises(SpecError, match="not in any stage: b2.add"):
        PipelineModel(net).evaluate(spec.pipeline, npu_arch(), spec.lines)


def test_group_memory_overflow_is_refused(tmp_path):
    path = _shipped_with(tmp_path, "{tensor: b0.add, group: 0, depth: 4, for: D1}",
                         "{tensor: b0.add, group: 0, depth: 60, for: D1}")
    r = run(tmp_path, "big", "--schedule", str(path))
    assert r.exit_code == 2
    assert "mem_tile" in r.output and "524,288 bytes" in r.output


# -- the DRAM lower bound of a fused segment ------------------------------------------------------

BOUND_CHAINS = {
    "conv2": ("{C: 2, H: 8, W: 5}", [
        "{name: a, type: conv2d, C: 2, K: 3, H: 8, W: 5, R: 3, pad: 1, inputs: [input]}",
        "{name: b, type: conv2d, C: 3, K: 2, H: 8, W: 5, R: 3, pad: 1, inputs: [a]}"]),
    "strided": ("{C: 2, H: 9, W: 5}", [
        "{name: a, type: conv2d, C: 2, K: 2, H: 9, W: 5, R: 3, stride: 2, pad: 1, "
        "inputs: [input]}",
        "{name: c, type: conv2d, C: 2, K: 3, H: 5, W: 3, R: 1, stride: 2, inputs: [a]}"]),
    "skip_input": ("{C: 2, H: 6, W: 5}", [
        "{name: a, type: conv2d, C: 2, K: 2, H: 6, W: 5, R: 3, pad: 1, inputs: [input]}",
        "{name: b, type: add, C: 2, H: 6, W: 5, inputs: [a, input]}"]),
}


@pytest.mark.parametrize("kind", sorted(BOUND_CHAINS))
def test_segment_bound_is_the_least_traffic_of_every_walked_schedule(kind):
    """The walker executes every tile height, halo mode per tensor and weight placement; none
    moves fewer DRAM elements than the bound, and the best one reaches it."""
    shape, layers = BOUND_CHAINS[kind]
    text = (f"network:\n  version: 1\n  name: {kind}\n  input: {shape}\n"
            "  bits: {weights: 8, activations: 8}\n  layers:\n"
            + "".join(f"    - {x}\n" for x in layers))
    net = load_network_text(text)
    names = [lay.name for lay in net.layers]
    model = FusedModel(net, default_bits=8)
    bound = model.dram_bits_lower_bound(Segment(tuple(names), 1))
    rows = net.layers[-1].out_shape[1]
    seen = []
    for th in range(1, rows + 1):
        for modes in itertools.product(("retain", "recompute"), repeat=len(names)):
            every = dict(zip(["input", *names[:-1]], modes, strict=True))
            every[names[-1]] = "retain"
            for resident in (True, False):
                ref = walk(net, names, th, every, resident)
                seen.append(8 * (ref.dram_read_elements + ref.dram_weight_elements
                                 + ref.dram_write_elements))
    assert min(seen) == bound
    assert all(s >= bound for s in seen)


def test_fused_segments_csv_reports_the_bound_and_ratio(tmp_path):
    head = REPO / "tests" / "data" / "fused" / "resnet18_head.yaml"
    r = CliRunner().invoke(main, ["run", "--arch", "eyeriss_like", "--workload", str(head),
                                  "--out", str(tmp_path / "f"), "--store",
                                  str(tmp_path / "s.sqlite"), "--max-evals", "300", "-q",
                                  "--schedule", "fused"])
    assert r.exit_code == 0, r.output
    segs = read(tmp_path / "f" / "segments.csv")
    assert segs
    for s in segs:
        bound = int(s["dram_bytes_lower_bound"])
        assert 0 < bound <= int(s["dram_bytes"])
        assert float(s["dram_bytes_over_bound"]) == pytest.approx(int(s["dram_bytes"]) / bound,
                                                                 rel=1e-3)


def test_report_shows_the_pipeline_against_layerwise(design, tmp_path):
    out, _ = design
    r = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "rep"),
                                  "--no-plots"])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "rep" / "report.md").read_text()
    tot = read(out / "totals.csv")[0]
    line = next(x for x in md.splitlines() if "| aie_npu_3col | pipeline |" in x)
    assert f"{int(tot['layerwise_dram_bytes']):,} | 540,672 |" in line
    saved = 1 - 540_672 / int(tot["layerwise_dram_bytes"])
    assert f"{saved:.1%}" in line


# -- placements the design does not use: an independent row recurrence ---------------------------

def rows_oracle(stages: list[tuple[str, list[int], object, int]]) -> int:
    """Finish of the last row of the last entry: stages in dependency order, each (name, row
    times, row -> [(stage, row)] it needs, cycle its weights arrive); no back-pressure."""
    fin: dict[tuple[str, int], int] = {}
    for name, times, deps, ready in stages:
        t = ready
        for r, svc in enumerate(times):
            t = max([t] + [fin[d] for d in deps(r)]) + svc
            fin[(name, r)] = t
    last = stages[-1][0]
    return fin[(last, len(stages[-1][1]) - 1)]


def conv2x_oracle(column0: str, weight_load: bool) -> int:
    """The conv2_x design by hand: 32 rows; DMA 512 cycles per input row, 2,048 per output
    row; 1x1 64->64 512 cycles per row, 256->64 and 64->256 2,048; the 3x3 halves 2,304
    (1,536 on the edge rows). column0: 'placed' (D0 does conv3 + projection), 'fifth' (the
    projection on its own tile E0 in a fourth column), 'split_d' (D0 on two tiles by output
    channels, A0 moved to a fourth column)."""
    R = 32
    three = [1536] + [2304] * (R - 2) + [1536]

    def win(a):
        return lambda r: [(a, x) for x in (r - 1, r, r + 1) if 0 <= x < R]

    def one(*src):
        return lambda r: [(s, r) for s in src]

    def wl(col_bytes, tile_bytes):
        return (col_bytes + tile_bytes) // 4 if weight_load else 0

    st = [("in", [512] * R, one(), 0)]
    d0 = {"placed": 4096, "fifth": 2048, "split_d": 2048}[column0]
    # column 0's weights: 4,096 (A) + 36,864 (3x3) + 16,384 (last 1x1) + 16,384 (projection)
    col0 = {"placed": 73728, "fifth": 73728 - 16384, "split_d": 73728 - 4096}[column0]
    a0_col = 4096 if column0 == "split_d" else col0
    st.append(("A0", [512] * R, one("in"), wl(a0_col, 4096)))
    st.append(("B0", three, win("A0"), wl(col0, 36864)))
    if column0 == "fifth":
        st.append(("E0", [2048] * R, one("in"), wl(16384, 16384)))
        st.append(("D0", [d0] * R, one("B0", "E0"), wl(col0, 16384)))
    else:
        d_w = 32768 if column0 == "placed" else 16384
        st.append(("D0", [d0] * R, one("B0", "in"), wl(col0, d_w)))
    prev = "D0"
    for c in (1, 2):
        st.append((f"A{c}", [2048] * R, one(prev), wl(69632, 16384)))
        st.append((f"B{c}", three, win(f"A{c}"), wl(69632, 36864)))
        st.append((f"D{c}", [2048] * R, one(f"B{c}", prev), wl(69632, 16384)))
        prev = f"D{c}"
    st.append(("out", [2048] * R, one(prev), 0))
    return rows_oracle(st)


def variant(column0: str) -> tuple[Pipeline, object]:
    spec = load_schedule(SHIPPED)
    stages = list(spec.pipeline.stages)
    staging = spec.pipeline.staging
    by = {s.name: i for i, s in enumerate(stages)}
    if column0 == "fifth":
        stages[by["D0"]] = replace(stages[by["D0"]], layers=("b0.conv3", "b0.add"),
                                   in_depth={"b0.conv2": 2, "b0.skip": 2})
        stages.insert(by["D0"], Stage("E0", ("b0.skip",), 3, in_depth={"input": 2}))
        staging = tuple(g for g in staging if g.consumer != "D0")
    elif column0 == "split_d":
        stages[by["D0"]] = replace(stages[by["D0"]], tiles=2, split="K")
        stages[by["A0"]] = replace(stages[by["A0"]], group=3)
    arch = load_arch([str(resolve("aie_npu"))]).arch  # four columns
    return replace(spec.pipeline, stages=tuple(stages), staging=staging), arch


def test_the_oracle_reproduces_the_reference_estimates():
    assert conv2x_oracle("placed", False) == 153_344
    assert conv2x_oracle("placed", True) == 179_456


@pytest.mark.parametrize("column0,bound", [("fifth", 72_192), ("split_d", 72_192)])
def test_other_placements_follow_the_row_recurrence(column0, bound):
    """Moving the projection to a fifth tile, or splitting tile D over two tiles, makes the 3x3
    halves the slowest tiles (72,192 cycles per image); without back-pressure the model's cycles
    equal the hand-built recurrence, with and without weight load; back-pressure can only add
    cycles; DRAM traffic does not change."""
    pipe, arch = variant(column0)
    net = load_network_text(CONV2X.read_text())
    free = PipelineModel(net).evaluate(replace(pipe, backpressure=False), arch)
    held = PipelineModel(net).evaluate(replace(pipe, backpressure=True), arch)
    assert free.cycles_without_weight_load == conv2x_oracle(column0, False)
    assert free.cycles == conv2x_oracle(column0, True)
    for res in (free, held):
        assert res.stage_bound_cycles == bound
        assert res.interval_cycles == 2304
        assert res.dram_bytes == 540_672
        assert all(s.working_set_bytes <= 65536 for s in res.stages)
    assert held.cycles >= free.cycles
    assert held.cycles_without_weight_load >= free.cycles_without_weight_load


def test_split_stage_with_chained_convs_is_refused():
    net = load_network_text(CONV2X.read_text())
    spec = load_schedule(SHIPPED)
    stages = [s for s in spec.pipeline.stages if s.name not in ("A0", "BC0")]
    stages.insert(0, Stage("AB", ("b0.conv1", "b0.conv2"), 0, tiles=2, split="K"))
    pipe = replace(spec.pipeline, stages=tuple(stages))
    with pytest.raises(SpecError, match="needs every channel of b0.conv1"):
        PipelineModel(net).evaluate(pipe, npu_arch())


ODD = """
network:
  version: 1
  name: odd
  input: {C: 7, H: 4, W: 7}
  bits: {weights: 8, activations: 8}
  layers:
    - {name: a, type: conv2d, C: 7, K: 7, H: 4, W: 7, R: 1, inputs: [input]}
"""


def test_mapped_row_time_is_what_one_tile_can_map():
    """7 x 7 x 7 = 343 MACs per row: the compute bound says 2 cycles on 256 MAC lanes, but
    spatial factors must divide the dimensions, so at most 7 x 7 = 49 lanes work at once and
    the mapper on one tile finds 7 cycles."""
    net = load_network_text(ODD)
    pipe = Pipeline((Stage("A", ("a",), 0),), tile_level="tile_memory",
                    group_level="mem_tile", weight_load=False)
    mapped = PipelineModel(net).evaluate(pipe, npu_arch())
    compute = PipelineModel(net).evaluate(replace(pipe, row_time="compute"), npu_arch())
    assert compute.stages[0].row_cycles == (2,) * 4
    assert mapped.stages[0].row_cycles == (7,) * 4
    half = PipelineModel(net).evaluate(replace(pipe, efficiency=0.5), npu_arch())
    assert half.stages[0].row_cycles == (14,) * 4


def test_single_column_bottleneck(tmp_path):
    """mlir-aie ml/bottleneck on one column: the 3x3 halves are the slowest tiles (72,192
    cycles per image); DRAM = input + weights + output; cycles equal the hand-built row
    recurrence (DMA 2,048 cycles per 8 KB row; 1x1 stages 2,048 per row)."""
    r = CliRunner().invoke(main, ["run", "--arch", "aie_npu_1col", "--workload",
                                  "resnet50_bottleneck_32", "--out", str(tmp_path / "b"),
                                  "--store", str(tmp_path / "s.sqlite"), "--max-evals", "300",
                                  "-q", "--schedule", "pipeline"])
    assert r.exit_code == 0, r.output
    t = targets()
    tot = read(tmp_path / "b" / "totals.csv")[0]
    assert int(tot["macs"]) == t["bottleneck_single_macs"]
    assert int(tot["stage_bound_cycles"]) == t["bottleneck_single_stage_bound"] == 72_192
    assert int(tot["dram_bytes"]) == 32 * 32 * 256 * 2 + (256 * 64 + 9 * 64 * 64 + 64 * 256)
    R = 32
    three = [1536] + [2304] * (R - 2) + [1536]

    def oracle(weight_load: bool) -> int:
        def w(tile_bytes: int) -> int:
            return (69632 + tile_bytes) // 4 if weight_load else 0

        return rows_oracle([
            ("in", [2048] * R, lambda r: [], 0),
            ("A", [2048] * R, lambda r: [("in", r)], w(16384)),
            ("BC", three, lambda r: [("A", x) for x in (r - 1, r, r + 1) if 0 <= x < R],
             w(36864)),
            ("D", [2048] * R, lambda r: [("BC", r), ("in", r)], w(16384)),
            ("out", [2048] * R, lambda r: [("D", r)], 0)])

    assert int(tot["cycles_without_weight_load"]) == oracle(False) == 83_456
    assert int(tot["cycles"]) == oracle(True) == 103_424
    stages = read(tmp_path / "b" / "stages.csv")
    assert max(int(s["working_set_bytes"]) for s in stages) == 16384 + 4096 + 16384 + 16384


# -- property: random chains against the hand-built recurrence ------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([1, 3]), st.sampled_from([8, 16, 32, 64])),
                min_size=1, max_size=4),
       st.integers(min_value=3, max_value=9), st.sampled_from([8, 16, 32]),
       st.booleans(), st.integers(min_value=0, max_value=2))
def test_random_chains_follow_the_recurrence(convs, rows, width, weight_load, extra_depth):
    """A chain of 1x1 / 3x3 convs, one stage per conv on its own tile: without back-pressure
    the model equals the row recurrence built here from the MAC counts; back-pressure and the
    weight load only add cycles; the slowest stage bounds the total; DRAM moves the input,
    the weights and the output once, never more than the stages one by one through DRAM."""
    layers, c, names = [], 8, []
    for i, (k, out) in enumerate(convs):
        pad = ", pad: 1" if k == 3 else ""
        src = names[-1] if names else "input"
        layers.append(f"    - {{name: l{i}, type: conv2d, C: {c}, K: {out}, H: {rows}, "
                      f"W: {width}, R: {k}{pad}, inputs: [{src}]}}\n")
        names.append(f"l{i}")
        c = out
    text = ("network:\n  version: 1\n  name: chain\n"
            f"  input: {{C: 8, H: {rows}, W: {width}}}\n"
            "  bits: {weights: 8, activations: 8}\n  layers:\n" + "".join(layers))
    net = load_network_text(text)
    stages = tuple(Stage(n.upper(), (n,), i // 4, in_depth={
        (names[i - 1] if i else "input"): convs[i][0] + 1 + extra_depth})
        for i, n in enumerate(names))
    pipe = Pipeline(stages, tile_level="tile_memory", group_level="mem_tile",
                    row_time="compute", weight_load=weight_load, backpressure=False)
    free = PipelineModel(net).evaluate(pipe, npu_arch())
    held = PipelineModel(net).evaluate(replace(pipe, backpressure=True), npu_arch())
    # the recurrence by hand
    plan = [("in", [-(-8 * width // 4)] * rows, lambda r: [], 0)]
    cin, prev = 8, "in"
    group_w: dict[int, int] = {}
    for i, (k, out) in enumerate(convs):
        group_w[i // 4] = group_w.get(i // 4, 0) + cin * out * k * k
        cin = out
    cin = 8
    for i, (k, out) in enumerate(convs):
        full = cin * out * k * k * width  # MACs of one row
        times = [-(-full * (min(r + 1, rows - 1) - max(r - 1, 0) + 1 if k == 3 else 1)
                   // (k * 256)) for r in range(rows)]
        w = cin * out * k * k
        ready = (-(-group_w[i // 4] // 4) + -(-w // 4)) if weight_load else 0

        def deps(r, prev=prev, k=k):
            span = range(max(r - 1, 0), min(r + 1, rows - 1) + 1) if k == 3 else [r]
            return [(prev, x) for x in span]

        plan.append((f"L{i}", times, deps, ready))
        prev, cin = f"L{i}", out
    plan.append(("out", [-(-cin * width // 4)] * rows, lambda r, p=prev: [(p, r)], 0))
    assert free.cycles == rows_oracle(plan)
    assert held.cycles >= free.cycles
    assert free.cycles >= free.cycles_without_weight_load
    assert free.cycles >= free.stage_bound_cycles
    weights = sum(group_w.values())
    assert free.dram_bytes == 8 * rows * width + weights + cin * rows * width
    assert free.dram_bytes <= free.stagewise_dram_bytes


def rows_fixed_point(stages: dict, holds: list[tuple[str, str, int, int]]) -> int:
    """The row recurrence with back-pressure, solved by iterating every row's finish time to a
    fixed point (a different algorithm from the model's worklist). `stages`: name -> (row
    times, row -> needed (stage, row) list, weights ready); `holds`: (producer, consumer,
    capacity in rows, look-ahead): the producer's row r also waits until the consumer has
    finished row r - capacity + look-ahead (when it releases row r - capacity)."""
    fin = {(s, r): 0 for s, (times, _d, _w) in stages.items() for r in range(len(times))}
    while True:
        new = {}
        for s, (times, deps, ready) in stages.items():
            for r, svc in enumerate(times):
                t = ready if r == 0 else fin[(s, r - 1)]
                t = max([t] + [fin[d] for d in deps(r)])
                for prod, cons, cap, ahead in holds:
                    if prod == s and r >= cap:
                        user = min(r - cap + ahead, len(stages[cons][0]) - 1)
                        t = max(t, fin[(cons, user)])
                new[(s, r)] = t + svc
        if new == fin:
            return max(fin.values())
        fin = new


def test_backpressure_matches_a_fixed_point_of_the_recurrence():
    """The projection on its own tile E0 with a 2-row input FIFO and no MemTile staging: E0
    (2,048 cycles per row) throttles the shared input stream, which A0 also reads, and the
    run takes 512 cycles longer than without back-pressure. A fixed-point solution of the same
    rules gives the same total."""
    pipe, arch = variant("fifth")
    net = load_network_text(CONV2X.read_text())
    pipe = replace(pipe, weight_load=False)
    held = PipelineModel(net).evaluate(pipe, arch)
    free = PipelineModel(net).evaluate(replace(pipe, backpressure=False), arch)
    R = 32
    three = [1536] + [2304] * (R - 2) + [1536]

    def one(*src):
        return lambda r: [(s, r) for s in src]

    def win(a):
        return lambda r: [(a, x) for x in (r - 1, r, r + 1) if 0 <= x < R]

    stages = {"in": ([512] * R, one(), 0), "A0": ([512] * R, one("in"), 0),
              "B0": (three, win("A0"), 0), "E0": ([2048] * R, one("in"), 0),
              "D0": ([2048] * R, one("B0", "E0"), 0)}
    prev = "D0"
    for c in (1, 2):
        stages[f"A{c}"] = ([2048] * R, one(prev), 0)
        stages[f"B{c}"] = (three, win(f"A{c}"), 0)
        stages[f"D{c}"] = ([2048] * R, one(f"B{c}", prev), 0)
        prev = f"D{c}"
    stages["out"] = ([2048] * R, one(prev), 0)
    # FIFO paths: producer out_depth + staging + consumer in_depth (look-ahead 1 for a 3x3);
    # the output DMA drains D2's own FIFO
    holds = [("in", "A0", 0 + 2, 0), ("in", "E0", 0 + 2, 0), ("A0", "B0", 4 + 4, 1),
             ("B0", "D0", 2 + 2, 0), ("E0", "D0", 2 + 2, 0), ("D0", "A1", 2 + 2, 0),
             ("D0", "D1", 2 + 4 + 2, 0), ("A1", "B1", 4 + 4, 1), ("B1", "D1", 2 + 2, 0),
             ("D1", "A2", 2 + 2, 0), ("D1", "D2", 2 + 4 + 2, 0), ("A2", "B2", 4 + 4, 1),
             ("B2", "D2", 2 + 2, 0), ("D2", "out", 2, 0)]
    assert free.cycles == rows_fixed_point(stages, []) == 95_744
    assert held.cycles == rows_fixed_point(stages, holds) == free.cycles + 512
