"""`--schedule auto`: the search against brute force, never worse than layerwise, the
schedule file round trip, the report's comparison, and (property) no more DRAM traffic than
layerwise for the same per-layer mappings."""

from __future__ import annotations

import csv
import itertools
import random
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse.cli import main
from dse.mapper.search import SearchConfig
from dse.pipeline.fused import ScheduleSpec, fused_run
from dse.pipeline.layer import map_layer
from dse.pipeline.run import layer_rows, plan, totals_row
from dse.pipeline.spec import load_arch
from dse.schedule import auto
from dse.schedule.auto import LAYERWISE, ONCHIP, LayerFigures, objective_key, segment_cost
from dse.schedule.fused import FusedModel, Segment, max_fitting_tile
from dse.spec.network import load_network_text

REPO = Path(__file__).resolve().parents[1]
HEAD = REPO / "tests" / "data" / "fused" / "resnet18_head.yaml"
EYERISS = REPO / "arch_specs" / "eyeriss_like.yaml"

# conv, conv, residual add (skip = the block input), strided 1x1 conv, pool
BLOCK = """
network:
  version: 1
  name: block
  input: {C: 4, H: 12, W: 6}
  layers:
    - {name: a, type: conv2d, C: 4, K: 4, H: 12, W: 6, R: 3, pad: 1, inputs: [input]}
    - {name: b, type: conv2d, C: 4, K: 4, H: 12, W: 6, R: 3, pad: 1, inputs: [a]}
    - {name: s, type: add, C: 4, H: 12, W: 6, inputs: [b, input]}
    - {name: c, type: conv2d, C: 4, K: 6, H: 12, W: 6, R: 1, stride: 2, inputs: [s]}
    - {name: p, type: maxpool, C: 6, H: 6, W: 3, R: 3, pad: 1, inputs: [c]}
"""


def random_options(net, model: FusedModel, rng: random.Random) -> dict:
    """Two mapping options per layer with random figures; layerwise DRAM bits at least what
    the layer alone moves in the fused model (so some segments beat it and some do not)."""
    opts = {}
    for lay in net.layers:
        alone = model.counts(Segment((lay.name,), 1, "retain", {}, "x"), None)
        bits = int((alone.dram_read_bits + alone.dram_write_bits) * rng.uniform(1.0, 1.6))
        figs = {}
        for name in (LAYERWISE, ONCHIP):
            e = rng.uniform(1e3, 1e4)
            figs[name] = LayerFigures(rng.uniform(100, 1000), e, e * rng.uniform(0.1, 0.6), bits,
                                      lay.problem.macs)
        opts[lay.name] = figs
    return opts


def brute_force(model: FusedModel, cap: int, opts: dict, objective: str) -> float:
    """The least objective over every cut of the network into steps, every halo mode, tile
    height and mapping combination of each segment (the search's candidate set)."""
    names = [lay.name for lay in model.network.layers]
    n = len(names)

    def step_options(i: int, j: int) -> list[tuple[float, float]]:
        if j == i:
            f = opts[names[i]][LAYERWISE]
            return [(f.energy_pJ, f.cycles)]
        seg = Segment(tuple(names[i:j + 1]), 1, "retain", {}, "lvl")
        try:
            model.check(seg, "s")
        except Exception:
            return []
        lw_bits = sum(opts[x][LAYERWISE].dram_bits for x in seg.layers)
        out = []
        for halo in ("retain", "recompute"):
            top = max_fitting_tile(model, replace(seg, halo=halo), cap)
            if top is None:
                continue
            for th in auto.tile_heights(top, model.rows(seg.layers[-1])):
                counts = model.counts(replace(seg, halo=halo, tile_rows=th), cap)
                if counts.dram_read_bits + counts.dram_write_bits > lw_bits:
                    continue
                for combo in itertools.product(*[opts[x] for x in seg.layers]):
                    figs = {x: opts[x][m] for x, m in zip(seg.layers, combo, strict=True)}
                    c, e = segment_cost(counts, figs, 0.5, 0.7)
                    out.append((e, c))
        return out

    best = float("inf")
    for cuts in itertools.product([0, 1], repeat=n - 1):
        bounds = [0] + [k + 1 for k, cut in enumerate(cuts) if cut] + [n]
        steps = [step_options(a, b - 1) for a, b in itertools.pairwise(bounds)]
        if any(not s for s in steps):
            continue
        for pick in itertools.product(*steps):
            e, c = sum(p[0] for p in pick), sum(p[1] for p in pick)
            best = min(best, objective_key(objective, e, c)[0])
    return best


# level capacities (bytes) from one segment that fits to the whole network in one segment
@pytest.mark.parametrize("cap_bytes, seed", [(150, 0), (200, 1), (300, 2), (400, 3), (600, 4)])
@pytest.mark.parametrize("objective", ["edp", "energy", "delay"])
def test_search_equals_brute_force_over_cuts_tiles_halos_and_mappings(cap_bytes, seed,
                                                                       objective):
    net = load_network_text(BLOCK)
    model = FusedModel(net, 8)
    opts = random_options(net, model, random.Random(seed))
    cap = cap_bytes * 8
    got = auto.search(model, "lvl", cap, opts, 0.5, 0.7, objective)
    want = brute_force(model, cap, opts, objective)
    assert objective_key(objective, got.energy_pJ, got.cycles)[0] == pytest.approx(want,
                                                                                     rel=1e-12)
    lw = objective_key(objective, got.layerwise_energy_pJ, got.layerwise_cycles)[0]
    assert objective_key(objective, got.energy_pJ, got.cycles)[0] <= lw
    # the chosen steps add up to the reported figures and cover every layer once, in order
    assert [n for s in got.steps for n in s.layers] == [lay.name for lay in net.layers]
    assert sum(s.energy_pJ for s in got.steps) == pytest.approx(got.energy_pJ)
    assert sum(s.cycles for s in got.steps) == pytest.approx(got.cycles)


def test_search_keeps_layerwise_when_nothing_fits():
    net = load_network_text(BLOCK)
    model = FusedModel(net, 8)
    opts = random_options(net, model, random.Random(5))
    got = auto.search(model, "lvl", 8, opts, 0.5, 0.7, "edp")  # one byte: no segment fits
    assert got.segments == [] and got.ranges == 0
    assert got.energy_pJ == got.layerwise_energy_pJ and got.cycles == got.layerwise_cycles
    assert set(got.why_layerwise) == {lay.name for lay in net.layers}
    assert all("no valid segment" in why for why in got.why_layerwise.values())


def test_onchip_architecture_prices_dram_as_the_level():
    arch = load_arch([str(EYERISS)]).arch
    on = auto.onchip_architecture(arch, "shared_glb")
    dram = [lv for lv in on.levels if lv.is_dram][0]
    glb = [lv for lv in on.levels if lv.name == "shared_glb"][0]
    per_bit = glb.energy["read"].pJ / (glb.block_size * glb.datawidth)
    assert dram.energy["read"].pJ == pytest.approx(per_bit * dram.block_size * dram.datawidth)
    assert [lv.name for lv in on.levels] == [lv.name for lv in arch.levels]
    assert all(a == b for a, b in zip(on.levels[1:], arch.levels[1:], strict=True))


# -- end to end on the ResNet-18 head


def run(tmp_path: Path, out: str, *extra: str):
    return CliRunner().invoke(main, ["run", "--arch", "eyeriss_like", "--workload", str(HEAD),
                                     "--out", str(tmp_path / out), "--store",
                                     str(tmp_path / "store.sqlite"), "--max-evals", "300",
                                     *extra])


def read(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("objective", ["edp", "energy"])
def test_auto_run_beats_layerwise_explains_and_round_trips(tmp_path, objective):
    r = run(tmp_path, "a", "--schedule", "auto", "--objective", objective)
    assert r.exit_code == 0, r.output
    tot = read(tmp_path / "a" / "totals.csv")[0]
    segs = read(tmp_path / "a" / "segments.csv")
    assert tot["schedule"] == "auto" and segs
    e, c = float(tot["energy_pJ"]), int(tot["cycles"])
    lw_e, lw_c = float(tot["layerwise_energy_pJ"]), int(tot["layerwise_cycles"])
    assert objective_key(objective, e, c)[0] < objective_key(objective, lw_e, lw_c)[0]
    assert e * c < lw_e * lw_c or objective != "edp"
    assert int(tot["dram_bytes"]) < int(tot["layerwise_dram_bytes"])
    # the layerwise per-layer DRAM bound is not the schedule's: not carried into its row
    assert tot["dram_words_lower_bound"] == "" and tot["dram_traffic_over_bound"] == ""
    for s in segs:
        assert int(s["buffer_peak_bytes"]) <= int(s["capacity_bytes"])
        assert int(s["dram_bytes"]) <= int(s["layerwise_dram_bytes"])
    # the explanation: one line per chosen segment, on stdout and in schedule.yaml
    text = (tmp_path / "a" / "schedule.yaml").read_text()
    assert f"# auto ({objective}):" in text and f"auto ({objective}):" in r.output
    for s in segs:
        assert f"  {s['segment']} ({len(s['layers'].split())} layers): tile {s['tile_rows']} " \
               in r.output
    # given back as a file, the schedule reproduces the segments and the figures
    r = run(tmp_path, "b", "--schedule", str(tmp_path / "a" / "schedule.yaml"), "--objective",
            objective)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a" / "segments.csv").read_bytes() == \
        (tmp_path / "b" / "segments.csv").read_bytes()
    tot_b = read(tmp_path / "b" / "totals.csv")[0]
    assert {k: v for k, v in tot_b.items() if k != "schedule"} == \
        {k: v for k, v in tot.items() if k != "schedule"}
    # the report compares it with layerwise: DRAM saved, speed-up, energy ratio
    r = CliRunner().invoke(main, ["report", str(tmp_path / "a"), "--out", str(tmp_path / "r"),
                                  "--no-plots"])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "r" / "report.md").read_text()
    lw, fu = int(tot["layerwise_dram_bytes"]), int(tot["dram_bytes"])
    assert f"| auto | {lw:,} | {fu:,} | {(lw - fu) / lw:.1%} | {lw_c / c:.3f}x | " \
           f"{e / lw_e:.3f}x |" in md


def test_bad_mapping_options_in_a_schedule_file_are_refused(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("schedule:\n  segments:\n    - layers: [conv1, pool1]\n"
                 "      mappings: {conv1: onchp}\n")
    r = run(tmp_path, "x", "--schedule", str(f))
    assert r.exit_code == 2 and "did you mean 'onchip'" in r.output and f"{f}:" in r.output
    f.write_text("schedule:\n  segments:\n    - layers: [conv1, pool1]\n"
                 "      mappings: {conv2_1a: onchip}\n")
    r = run(tmp_path, "x", "--schedule", str(f))
    assert r.exit_code == 2 and "not in this segment" in r.output
    # onchip mappings are searched for the schedule's level only
    f.write_text("schedule:\n  segments:\n    - layers: [conv1, pool1]\n"
                 "      level: ifmap_spad\n      mappings: {conv1: onchip}\n")
    r = run(tmp_path, "x", "--schedule", str(f))
    assert r.exit_code == 2 and "onchip mappings are searched for the schedule's level " \
        "(shared_glb); this segment is at ifmap_spad" in r.output and f"{f}:3" in r.output


# -- property: for the same per-layer mappings, a fused schedule (the greedy default or the
# auto search restricted to the layerwise mappings) never moves more DRAM bytes than the
# layerwise run, in total and per segment, and auto never has a worse objective

ARCH = load_arch([str(EYERISS)])
CFG = SearchConfig(max_evals=150, seed=0)


def chain(layers: list[tuple[str, int, int, int]], C: int, H: int) -> str:
    lines = ["network:", "  version: 1", "  name: chain", f"  input: {{C: {C}, H: {H}, W: 6}}",
             "  layers:"]
    prev, c, h, w = "input", C, H, 6
    for i, (typ, k, r, s) in enumerate(layers):
        name, pad = f"l{i}", r // 2
        if typ == "conv":
            lines.append(f"    - {{name: {name}, type: conv2d, C: {c}, K: {k}, H: {h}, W: {w}, "
                         f"R: {r}, stride: {s}, pad: {pad}, inputs: [{prev}]}}")
            c = k
        elif typ == "pool":
            lines.append(f"    - {{name: {name}, type: maxpool, C: {c}, H: {h}, W: {w}, R: {r}, "
                         f"stride: {s}, pad: {pad}, inputs: [{prev}]}}")
        else:  # a residual join with the previous tensor's producer input
            lines.append(f"    - {{name: {name}a, type: conv2d, C: {c}, K: {c}, H: {h}, W: {w}, "
                         f"R: 3, pad: 1, inputs: [{prev}]}}")
            lines.append(f"    - {{name: {name}, type: add, C: {c}, H: {h}, W: {w}, "
                         f"inputs: [{name}a, {prev}]}}")
            s = 1
            r = 1
        h, w = (h + 2 * (r // 2) - r) // s + 1, (w + 2 * (r // 2) - r) // s + 1
        prev = name
    return "\n".join(lines) + "\n"


LAYER = st.tuples(st.sampled_from(["conv", "conv", "pool", "res"]), st.integers(2, 6),
                  st.sampled_from([1, 3]), st.integers(1, 2))


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@given(st.lists(LAYER, min_size=2, max_size=4), st.integers(2, 4), st.integers(8, 12),
       st.sampled_from([64, 256, 1024, 65536]), st.sampled_from(["edp", "energy", "delay"]))
def test_fused_schedules_never_move_more_dram_than_layerwise(layers, C, H, glb_words, objective):
    net = load_network_text(chain(layers, C, H))
    arch = load_arch([str(EYERISS)], {"shared_glb.depth": glb_words // 4})
    cfg = replace(CFG, objective=objective)
    tasks, keys = plan(net, arch, cfg)
    results = {t.key: map_layer(t) for t in tasks}
    rows = layer_rows(net, arch, cfg, keys, results, "", "m")
    tot = totals_row(net, arch, cfg, rows, "", {})
    assert all(r["status"] == "ok" for r in rows)
    for spec in (ScheduleSpec("fused", None), ScheduleSpec("auto", None)):
        segs, ftot, *_ = fused_run(net, arch, cfg, spec, keys, results, rows, tot, "")
        assert ftot["dram_bytes"] <= ftot["layerwise_dram_bytes"]
        # the layerwise reference is the layerwise run's (bytes rounded up per layer there)
        assert 0 <= tot["dram_bytes"] - ftot["layerwise_dram_bytes"] < len(net.layers)
        for s in segs:
            assert s["dram_bytes"] <= s["layerwise_dram_bytes"]
        if spec.kind == "auto":
            assert objective_key(objective, ftot["energy_pJ"], ftot["cycles"]) <= \
                objective_key(objective, tot["energy_pJ"], tot["cycles"])


# -- schedule as a sweep axis


def test_sweep_takes_schedule_as_an_axis(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("sweep:\n  version: 1\n  architectures: [eyeriss_like]\n"
                 f"  workloads: [{HEAD}]\n  schedule: [layerwise, fused, auto]\n"
                 "  mapper: {max_evals: 300}\n")
    r = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "o"), "--store",
                                  str(tmp_path / "st.sqlite")])
    assert r.exit_code == 0, r.output
    rows = {row["schedule"]: row for row in read(tmp_path / "o" / "sweep.csv")}
    assert set(rows) == {"layerwise", "fused", "auto"}
    lw = rows["layerwise"]
    for kind in ("fused", "auto"):
        row = rows[kind]
        assert row["point"].endswith(f"schedule={kind}")
        # each scheduled point carries the layerwise reference of the same mappings
        assert row["layerwise_cycles"] == lw["cycles"]
        assert row["layerwise_dram_bytes"] == lw["dram_bytes"]
        assert int(row["dram_bytes"]) < int(lw["dram_bytes"])
        assert (tmp_path / "o" / row["point"] / "segments.csv").exists()
    # same segments and figures as `dse run --schedule auto` with the same store
    r = run(tmp_path, "a", "--schedule", "auto", "--store", str(tmp_path / "st.sqlite"))
    assert r.exit_code == 0, r.output
    auto_run = read(tmp_path / "a" / "segments.csv")
    auto_sweep = read(tmp_path / "o" / rows["auto"]["point"] / "segments.csv")
    drop = ("point",)
    assert [{k: v for k, v in s.items() if k not in drop} for s in auto_run] == \
        [{k: v for k, v in s.items() if k not in drop} for s in auto_sweep]
    assert float(rows["auto"]["energy_pJ"]) * int(rows["auto"]["cycles"]) <= \
        float(lw["energy_pJ"]) * int(lw["cycles"])
    # the report tells the sweep's schedules apart by point
    r = CliRunner().invoke(main, ["report", str(tmp_path / "o"), "--out", str(tmp_path / "r"),
                                  "--no-plots"])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "r" / "report.md").read_text()
    for kind in ("fused", "auto"):
        row = rows[kind]
        saved = 1 - int(row["dram_bytes"]) / int(row["layerwise_dram_bytes"])
        assert f"| {row['point']} | {kind} | {int(lw['dram_bytes']):,} | " \
               f"{int(row['dram_bytes']):,} | {saved:.1%} |" in md


def test_sweep_refuses_fused_schedules_on_sparse_points_as_run_does(tmp_path):
    """A network with densities is a sparse run: `dse run --schedule fused` refuses it, and a
    sweep point must be refused for the same reason (not evaluated dense by the fused model)."""
    net = tmp_path / "n.yaml"
    net.write_text("network:\n  version: 1\n  name: n\n  input: {C: 8, H: 8}\n  layers:\n"
                   "    - {name: c1, type: conv2d, C: 8, K: 8, H: 8, R: 3, pad: 1, P: 8,\n"
                   "       densities: {Inputs: 0.5}, inputs: [input]}\n"
                   "    - {name: c2, type: conv2d, C: 8, K: 8, H: 8, R: 3, pad: 1, P: 8,\n"
                   "       inputs: [c1]}\n")
    f = tmp_path / "s.yaml"
    f.write_text("sweep:\n  version: 1\n  architectures: [eyeriss_like]\n"
                 f"  workloads: [{net}]\n  schedule: [layerwise, fused]\n"
                 "  mapper: {max_evals: 100}\n")
    r = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "o"), "--store",
                                  str(tmp_path / "st.sqlite")])
    assert r.exit_code == 0, r.output
    assert "schedule fused: fused schedules are not modelled for sparse designs" in r.output
    rows = read(tmp_path / "o" / "sweep.csv")
    assert [row["point"].rsplit("=", 1)[-1] for row in rows] == ["layerwise"]


def test_sweep_refuses_an_unknown_schedule_with_file_and_line(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("sweep:\n  version: 1\n  architectures: [eyeriss_like]\n"
                 f"  workloads: [{HEAD}]\n  schedule: [layerwise, atuo]\n")
    r = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "o"), "--store",
                                  str(tmp_path / "st.sqlite")])
    assert r.exit_code == 2, r.output
    assert "did you mean 'auto'" in r.output and f"{f}:5" in r.output


def test_sweep_refuses_a_pipeline_schedule_with_file_and_line(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("sweep:\n  version: 1\n  architectures: [eyeriss_like]\n"
                 f"  workloads: [{HEAD}]\n  schedule: [layerwise, pipeline]\n")
    r = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "o"), "--store",
                                  str(tmp_path / "st.sqlite")])
    assert r.exit_code == 2, r.output
    assert "not a sweep axis yet" in r.output and f"{f}:5" in r.output


# -- whole networks (the check): DRAM saving reported, never more EDP than layerwise


@pytest.mark.slow
@pytest.mark.parametrize("network", ["resnet18", "resnet50"])
def test_resnets_on_eyeriss_auto_saves_dram_and_never_more_edp(tmp_path, network):
    r = CliRunner().invoke(main, ["run", "--arch", "eyeriss_like", "--workload", network,
                                  "--out", str(tmp_path / "a"), "--store",
                                  str(tmp_path / "st.sqlite"), "--max-evals", "3000",
                                  "--schedule", "auto", "--jobs", "2"])
    assert r.exit_code == 0, r.output
    tot = read(tmp_path / "a" / "totals.csv")[0]
    lw, fu = int(tot["layerwise_dram_bytes"]), int(tot["dram_bytes"])
    assert fu < lw
    assert f"DRAM {fu:,} bytes vs {lw:,} layerwise ({lw - fu:,} saved)" in r.output
    edp = float(tot["energy_pJ"]) * int(tot["cycles"])
    assert edp <= float(tot["layerwise_energy_pJ"]) * int(tot["layerwise_cycles"])
    segs = read(tmp_path / "a" / "segments.csv")
    assert int(tot["segments"]) == len(segs) > 0
    for s in segs:
        assert int(s["buffer_peak_bytes"]) <= int(s["capacity_bytes"])


def test_auto_outputs_do_not_depend_on_jobs(tmp_path):
    outs = []
    for jobs in ("1", "2"):
        r = CliRunner().invoke(main, ["run", "--arch", "eyeriss_like", "--workload", str(HEAD),
                                      "--out", str(tmp_path / jobs), "--store",
                                      str(tmp_path / f"st{jobs}.sqlite"), "--max-evals", "300",
                                      "--schedule", "auto", "--jobs", jobs, "-q"])
        assert r.exit_code == 0, r.output
        outs.append([(tmp_path / jobs / n).read_bytes()
                     for n in ("segments.csv", "totals.csv", "schedule.yaml", "layers.csv")])
    assert outs[0] == outs[1]


def test_a_layerwise_run_into_a_fused_runs_folder_leaves_no_stale_schedule_files(tmp_path):
    r = run(tmp_path, "a", "--schedule", "fused")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a" / "segments.csv").exists()
    r = run(tmp_path, "a")  # the same folder, layerwise
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "a" / "segments.csv").exists()
    assert not (tmp_path / "a" / "schedule.yaml").exists()
    assert read(tmp_path / "a" / "totals.csv")[0].get("schedule", "layerwise") in ("", "layerwise")
