"""ARCHON (Olyaiy, Ng, Lis, ICS'21): closed-form cycles, overhead energy, the actual-data sparse
baseline, design parameters, and (slow) whole networks against the reference artifact's numbers
in tests/data/archon/ (provenance: tests/data/archon/README.md)."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dse.cli import main
from dse.model.actual_density import TileNonzeros, synthetic_nonzeros
from dse.schedule import archon as A
from dse.spec.archon import read_archon_study, read_nonzero_index
from dse.spec.library_paths import bundled_dir
from dse.spec.workload_library import load_workload

DATA = Path(__file__).parent / "data" / "archon"
STUDY = read_archon_study(bundled_dir("arch_specs") / "archon" / "archon.yaml")


def _csv(name: str) -> list[dict]:
    with open(DATA / name) as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def _study(net: str, ds: str):
    return next(s for s in STUDY.studies if (s.network, s.dataset) == (net, ds))


def _targets() -> dict[str, float]:
    out = {}
    for r in _csv("targets.csv"):
        try:
            out[r["target_id"]] = float(r["value"])
        except ValueError:  # ranges such as "6-20"
            pass
    return out


# ----------------------------------------------------------------------------- closed forms

BLOCK_FILES = {("mobilenet", "cifar10"): "mobilenet_cifar10_bottleneck_blocks.csv",
               ("mobilenet", "cifar100"): "mobilenet_cifar100_bottleneck_blocks.csv",
               ("fusionet", "cifar10"): "fusionet_cifar10_bottleneck_blocks.csv",
               ("fusionet", "cifar100"): "fusionet_cifar100_bottleneck_blocks.csv"}


@pytest.mark.parametrize("net,ds", sorted(BLOCK_FILES))
def test_archon_block_cycles_equal_artifact_closed_forms(net, ds):
    """Prediction and main cycles per block, from the shipped ARCHON network, equal the
    artifact's committed values exactly (artifact_compat: its ADDERS constant and floors)."""
    s = _study(net, ds)
    blocks = A.find_bottlenecks(load_workload(s.archon))
    ref = [r for r in _csv(BLOCK_FILES[(net, ds)]) if r["block"] != "total"
           and float(r["7_main_c"]) > 0]
    assert len(blocks) == len(ref)
    for b, r in zip(blocks, ref, strict=True):
        got = A.block_cycles(b, s.design, s.compat)
        assert got == {"pred1_cycles": int(float(r["5_pred_decom_c"])),
                       "pred2_cycles": int(float(r["6_pred_conv_c"])),
                       "main_cycles": int(float(r["7_main_c"]))}, b.name
        # the main convolution is C.M.k^2.P^2/64 whatever the mode
        assert got["main_cycles"] == (b.in_ch // b.groups) * b.out_ch * 9 * \
            b.out_pixels ** 2 // 64


def test_physical_prediction_cycles_match_artifact_where_precision_gives_24_lanes():
    """6 adders x (16/4) lanes = the artifact's 24: the physical model agrees for MobileNet-C10
    (exact divisions), and differs only by the ceiling for FusioNet."""
    s = _study("mobilenet", "cifar10")
    for b in A.find_bottlenecks(load_workload(s.archon)):
        assert A.block_cycles(b, s.design, None) == A.block_cycles(b, s.design, s.compat)
    f = _study("fusionet", "cifar10")
    for b in A.find_bottlenecks(load_workload(f.archon)):
        phys, comp = A.block_cycles(b, f.design, None), A.block_cycles(b, f.design, f.compat)
        for k in phys:
            assert 0 <= phys[k] - comp[k] <= 1


OVERHEAD_FILES = {("mobilenet", "cifar10"): "mobilenet_cifar10_archon_overhead.csv",
                  ("mobilenet", "cifar100"): "mobilenet_cifar100_archon_overhead.csv",
                  ("fusionet", "cifar10"): "fusionet_cifar10_archon_overhead.csv"}
PARTS = {"1_weight_DRAM": "weight_DRAM", "2_pred_DRAM": "pred_mask",
         "4_binary_decoder": "binary_decoder", "5_pred_buffer": "pred_buffer",
         "6_zero_replace_flag": "zero_replace_flag", "7_zero_replacing": "zero_replacing",
         "8_adders": "adders", "9_masks_AND": "masks_and"}


@pytest.mark.parametrize("net,ds", sorted(OVERHEAD_FILES))
def test_overhead_energy_parts_equal_artifact(net, ds):
    """Every part of every block's overhead energy, artifact_compat, within the CSV rounding."""
    s = _study(net, ds)
    blocks = A.find_bottlenecks(load_workload(s.archon))
    ref = _csv(OVERHEAD_FILES[(net, ds)])
    assert len(ref) == len(blocks)
    for b, r in zip(blocks, ref, strict=True):
        main_c = A.block_cycles(b, s.design, s.compat)["main_cycles"]
        parts = A.overhead_energy_pJ(b, s.design, main_c, s.compat)
        for col, key in PARTS.items():
            assert parts[key] / 1e6 == pytest.approx(float(r[col]), abs=0.006), (b.name, col)


def test_block1_overhead_total_target():
    t = _targets()
    s = _study("mobilenet", "cifar10")
    b = A.find_bottlenecks(load_workload(s.archon))[0]
    main_c = A.block_cycles(b, s.design, s.compat)["main_cycles"]
    total = sum(A.overhead_energy_pJ(b, s.design, main_c, s.compat).values()) / 1e6
    assert total == pytest.approx(t["mb10_b1_archon_overhead_e"], rel=1e-3)


# ----------------------------------------------------------------------------- design knobs

def _b1():
    return A.find_bottlenecks(load_workload("archon_mobilenet_cifar10"))[0]


def test_design_parameters_move_results_like_hardware():
    b, d = _b1(), A.ArchonDesign()
    base = A.block_cycles(b, d, None)
    more_adders = A.block_cycles(b, dataclasses.replace(d, adders_per_pe=12), None)
    assert more_adders["pred1_cycles"] * 2 == base["pred1_cycles"]
    assert more_adders["main_cycles"] == base["main_cycles"]
    narrower = A.block_cycles(b, dataclasses.replace(d, predictor_activation_bits=2), None)
    assert narrower["pred1_cycles"] * 2 == base["pred1_cycles"]
    bigger = A.block_cycles(b, dataclasses.replace(d, pe_rows=16, pe_cols=16), None)
    assert bigger["main_cycles"] * 4 == base["main_cycles"]
    assert bigger["pred2_cycles"] * 4 == base["pred2_cycles"]
    # a 12 x 12 array on a 32 x 32 output wastes PEs on ragged tiles: ceil(32/12)^2 = 9 tiles
    ragged = A.block_cycles(b, dataclasses.replace(d, pe_rows=12, pe_cols=12), None)
    assert ragged["main_cycles"] == 9 * 16 * 24 * 9
    # keeping more fused weights costs DRAM energy and nothing else
    lo = A.overhead_energy_pJ(b, d, base["main_cycles"], None)
    hi = A.overhead_energy_pJ(b, dataclasses.replace(d, fused_weight_density=0.026),
                              base["main_cycles"], None)
    assert hi["weight_DRAM"] == pytest.approx(2 * lo["weight_DRAM"])
    assert {k: v for k, v in hi.items() if k != "weight_DRAM"} == \
        {k: v for k, v in lo.items() if k != "weight_DRAM"}


def test_prediction_energy_scales_traffic_by_predictor_width():
    d = A.ArchonDesign()
    e = {("DRAM", "Weights"): 160.0, ("DRAM", "Inputs"): 1600.0, ("DRAM", "Outputs"): 800.0,
         ("shared_glb", "Inputs"): 400.0, ("ifmap_spad", "Inputs"): 80.0,
         ("weights_spad", "Weights"): 32.0, ("psum_spad", "Outputs"): 64.0,
         ("compute", ""): 2200.0}
    got = A.prediction_energy_pJ(e, kind="pw", macs=1000, outputs=100, in_ch=10, mid_ch=100,
                                 dram_out_words=100, d=d, compat=None)
    want = (192 * 2 / 16 + 2080 * 4 / 16 + 64 + 100 / 16 * 128 + 0.22 * 100
            + 0.043 * 1000 * 4 / 16)
    assert got == pytest.approx(want)
    wider = A.prediction_energy_pJ(e, kind="pw", macs=1000, outputs=100, in_ch=10, mid_ch=100,
                                   dram_out_words=100,
                                   d=dataclasses.replace(d, predictor_activation_bits=8),
                                   compat=None)
    assert wider > got


def test_block_detection_styles():
    shuffle = A.find_bottlenecks(load_workload("archon_shufflenet_cifar10"))
    assert len(shuffle) == 15 and {b.style for b in shuffle} == {"gpw_gpw_dw"}
    assert shuffle[0].layers == ("b1.GPW1", "b1.GPW2", "b1.DW") and shuffle[0].groups == 3
    fus = A.find_bottlenecks(load_workload("archon_fusionet_cifar10"))
    assert len(fus) == 16 and fus[0].groups == 4 and fus[0].style == "expand_dw_project"
    # head layers (PW 32->32 -> DW -> PW) do not expand, so they are not fused
    assert all(not b.name.startswith("head") for b in
               A.find_bottlenecks(load_workload("archon_mobilenet_cifar10")))


def test_mapping_tiling_and_design_overrides():
    from dse.pipeline.archon import mapping_tiling
    from dse.spec.archon import override_design

    entries = [{"level": "DRAM", "temporal": "Q4"}, {"level": "glb", "temporal": "P32 M2"},
               {"level": "DummyBuffer", "spatial": {"X": "M2 Q4"}},
               {"level": "PE", "spatial": {"Y": "C4 M2"}},
               {"level": "wspad", "temporal": "C4"}, {"level": "psum", "temporal": "M12"}]
    assert mapping_tiling(entries) == (64, 256, 48)
    d = override_design(A.ArchonDesign(), {"adders_per_pe": 12, "fused_weight_density": 0.02})
    assert (d.adders_per_pe, d.fused_weight_density) == (12, 0.02)
    from dse.errors import SpecError
    with pytest.raises(SpecError, match="positive whole number"):
        override_design(A.ArchonDesign(), {"pe_rows": 2.5})


# ----------------------------------------------------------------------------- sparse baseline

INDEX = read_nonzero_index(bundled_dir("workloads") / STUDY.nonzero_dir)


def test_sparse_layer_cycles_exact_from_per_pe_nonzeros():
    """Every layer with a per-PE dump: slowest-PE cycles and nonzero totals equal the
    artifact's (sparse_layers.csv)."""
    ref = {(r["config"], int(r["block"]), r["layer"]): r for r in _csv("sparse_layers.csv")}
    checked = 0
    for key, rec in INDEX.items():
        if rec.tiles is None:
            assert rec.measured_sparse_cycles == int(ref[key]["sparse_cycles"])
            continue
        r = ref[key]
        assert rec.tiles.slowest_pe_cycles() == int(r["sparse_cycles"]), key
        assert rec.tiles.nonzeros == int(r["sparse_macs"]), key
        assert (rec.tiles.pes, rec.tiles.passes) == (int(r["pes"]), int(r["iterations"]))
        assert rec.tiles.balanced_cycles() == pytest.approx(float(r["balanced_sparse_cycles"]),
                                                            abs=1)
        checked += 1
    assert checked == 164


@pytest.mark.parametrize("net,ds", [("mobilenet", "cifar10"), ("mobilenet", "cifar100"),
                                    ("fusionet", "cifar10")])
def test_sparse_block_cycles_equal_artifact(net, ds):
    """Per block, the sparse baseline's three layers sum to the artifact's block value."""
    from dse.pipeline.archon import _nonzero_rule

    s = _study(net, ds)
    parts = ("PW1", "DW", "PW2") if net == "mobilenet" else ("GPW1", "GPW2", "DW")
    for r in _csv(BLOCK_FILES[(net, ds)]):
        if r["block"] == "total" or float(r["4_PW1_c"]) == 0:
            continue
        blk = f"b{r['block']}"
        got = sum(_nonzero_rule(STUDY, s, INDEX, blk, p, None, 0)[0] for p in parts)
        want = sum(int(float(r[c])) for c in ("sparse_PW1_C", "sparse_PW2_C", "sparse_DW_C"))
        assert got == want, blk


def test_sparse_baseline_pruning_ratio_knob():
    """Synthetic tiles on the measured tiling: fewer nonzeros, fewer cycles; at the measured
    densities the Bernoulli stand-in lands near the measured per-PE result."""
    from dse.pipeline.archon import _nonzero_rule

    s = _study("mobilenet", "cifar10")

    def total(study):
        return sum(_nonzero_rule(study, s, INDEX, f"b{k}", p, None, 0)[0]
                   for k in range(1, 17) for p in ("PW1", "DW", "PW2"))

    measured = total(STUDY)
    synth = [total(dataclasses.replace(STUDY, sparse_source="synthetic",
                                       sparse_density={"pointwise": d, "depthwise": d + 0.1}))
             for d in (0.1, 0.2, 0.4)]
    assert synth[0] < synth[1] < synth[2]
    assert synth[1] == pytest.approx(measured, rel=0.15)


def test_synthetic_nonzeros_are_reproducible_and_bounded():
    a = synthetic_nonzeros(72, 64, 12, 0.3, seed=1)
    assert np.array_equal(a.counts, synthetic_nonzeros(72, 64, 12, 0.3, seed=1).counts)
    assert a.slowest_pe_cycles() >= a.balanced_cycles()
    assert a.slowest_pe_cycles() <= 64 * 12
    denser = synthetic_nonzeros(72, 64, 12, 0.6, seed=1)
    assert denser.slowest_pe_cycles() > a.slowest_pe_cycles()
    full = synthetic_nonzeros(8, 4, 5, 1.0, seed=0)
    assert full.slowest_pe_cycles() == 4 * 5 and full.density == 1.0
    with pytest.raises(ValueError):
        synthetic_nonzeros(8, 4, 5, 1.5, seed=0)


def test_tile_nonzeros_slowest_pe_per_pass():
    t = TileNonzeros(np.array([[3, 0, 2], [1, 4, 2]]), tile_macs=4)
    assert t.slowest_pe_cycles() == 3 + 4 + 2
    assert t.balanced_cycles() == 6
    assert t.density == pytest.approx(12 / 24)


# ----------------------------------------------------------------------------- bad input

def test_bad_design_and_options_exit_2(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "a.yaml"
    text = (bundled_dir("arch_specs") / "archon" / "archon.yaml").read_text()
    bad.write_text(text.replace("adders_per_pe: 6", "adders_per_PE: 6"))
    r = runner.invoke(main, ["archon", "--design", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "adders_per_PE" in r.output and "adders_per_pe" in r.output
    r = runner.invoke(main, ["archon", "--study", "mobilenett", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "mobilenet" in r.output
    r = runner.invoke(main, ["archon", "--set", "adder_per_pe=3", "--study", "mobilenet/cifar10",
                             "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "adders_per_pe" in r.output
    bad.write_text(text.replace("fused_weight_density: 0.013", "fused_weight_density: 3"))
    r = runner.invoke(main, ["archon", "--design", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "fused_weight_density" in r.output


@pytest.mark.parametrize("edit, says", [
    (("pointwise: 0.20, depthwise: 0.30", "pointwise: 1.5, depthwise: 0.30"), "density.pointwise"),
    (("pointwise: 0.20, depthwise: 0.30", "pointwise: 0.20"), "density.depthwise"),
    (("add: 0.054 ", "add: -1 "), "overhead_energy_pJ.add"),
    (("predictor_weight_bits: 2 ", "predictor_weight_bits: 32 "), "predictor_weight_bits"),
    (("pe_rows: 8", "pe_rows: 16"), "pe_rows"),
    (("nonzeros: mobilenet/cifar10,", "nonzeros: mobilenet/cifar1,"), "studies[0].nonzeros"),
    (("{network: mnasnet, dataset: cifar10,", "{network: mobilenet, dataset: cifar10,"),
     "listed twice"),
])
def test_out_of_range_design_values_exit_2_before_any_mapping(tmp_path, edit, says):
    text = (bundled_dir("arch_specs") / "archon" / "archon.yaml").read_text()
    assert edit[0] in text
    bad = tmp_path / "a.yaml"
    bad.write_text(text.replace(*edit))
    r = CliRunner().invoke(main, ["archon", "--design", str(bad), "--study", "mobilenet/cifar10",
                                  "--out", str(tmp_path / "o"), "--store",
                                  str(tmp_path / "s.sqlite"), "--no-plots", "-q"])
    assert r.exit_code == 2 and says in r.output, r.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("setting, says", [
    ("fused_weight_density=2", "fused_weight_density"),
    ("predictor_activation_bits=32", "predictor_activation_bits"),
    ("pe_cols=16", "pe_cols"),
])
def test_out_of_range_set_values_exit_2(tmp_path, setting, says):
    r = CliRunner().invoke(main, ["archon", "--set", setting, "--study", "mobilenet/cifar10",
                                  "--out", str(tmp_path / "o"), "--store",
                                  str(tmp_path / "s.sqlite"), "--no-plots", "-q"])
    assert r.exit_code == 2 and says in r.output, r.output


# ----------------------------------------------------------------------------- whole networks

def _run(tmp_path: Path, study: str, compat: bool) -> tuple[dict, list[dict]]:
    out = tmp_path / ("compat" if compat else "phys")
    args = ["archon", "--study", study, "--out", str(out), "--store",
            str(tmp_path / "store.sqlite"), "--no-plots", "-q"]
    r = CliRunner().invoke(main, args + (["--artifact-compat"] if compat else []))
    assert r.exit_code == 0, r.output
    sp = list(csv.DictReader(io.StringIO((out / "speedups.csv").read_text())))[0]
    net, ds = study.split("/")
    rows = list(csv.DictReader(io.StringIO((out / f"{net}_{ds}" / "blocks.csv").read_text())))
    return sp, rows


@pytest.mark.slow
def test_mobilenet_cifar10_whole_network(tmp_path):
    t = _targets()
    sp, rows = _run(tmp_path, "mobilenet/cifar10", compat=True)
    assert float(sp["speedup_vs_dense"]) == pytest.approx(5.75, rel=0.01)
    assert float(sp["speedup_vs_sparse"]) == pytest.approx(2.11, rel=0.01)
    assert int(sp["archon_cycles"]) == pytest.approx(t["mobilenet_cifar10_whole_archon_c"],
                                                     rel=0.005)
    # dense layers: exact where our mapper reaches the artifact's PE use
    runs = {(r["block"], r["layer"]): r for r in _csv("timeloop_layer_runs.csv")
            if r["config"] == "mobilenet/cifar10" and r["phase"] == "baseline"}
    names = {"PW1": "decom", "DW": "conv", "PW2": "comp"}
    same_use = 0
    for row in rows:
        for item in row["dense_layers"].split():
            layer, cycles = item.rsplit(":", 1)
            blk, part = layer.split(".")
            ref = runs.get((blk[1:], names.get(part, "")))
            if ref is None:
                continue
            macs = int(ref["prob_macs"])
            if round(macs / int(cycles)) == round(float(ref["used_pes"])):
                same_use += 1
                assert int(cycles) == pytest.approx(int(ref["tl_cycles"]), rel=0.005), layer
    assert same_use == 48  # every block layer reaches the artifact's PE use (measured)
    sp, _ = _run(tmp_path, "mobilenet/cifar10", compat=False)
    assert float(sp["speedup_vs_dense"]) == pytest.approx(5.75, rel=0.05)
    assert float(sp["speedup_vs_sparse"]) == pytest.approx(2.11, rel=0.05)


@pytest.mark.slow
def test_fusionet_cifar10_whole_network(tmp_path):
    for compat in (True, False):
        sp, _ = _run(tmp_path, "fusionet/cifar10", compat=compat)
        assert float(sp["speedup_vs_dense"]) == pytest.approx(3.54, rel=0.05)
        assert float(sp["speedup_vs_sparse"]) == pytest.approx(1.02, rel=0.05)
        assert not math.isnan(float(sp["archon_energy_uJ"]))


# ----------------------------------------------------------------------------- committed mappings

KEEP = {"DRAM": ["Weights", "Inputs", "Outputs"], "shared_glb": ["Inputs", "Outputs"],
        "ifmap_spad": ["Inputs"], "weights_spad": ["Weights"], "psum_spad": ["Outputs"]}


def _native_mapping(text: str) -> list[dict]:
    """The artifact's transcribed loop nest ('DRAM: Q8 shared_glb: P32 M2x Q4x DummyBuffer: Q1
    M2y C4y ...', outermost first; x = spatial below the GLB, y = below the DummyBuffers) as
    native mapping entries on eyeriss_like_72pe."""
    import re

    parts = re.split(r"(\w+):", text)
    entries, fanouts = [], {}
    for level, loops in zip(parts[1::2], parts[2::2], strict=True):
        toks = loops.split()
        spatial = [t[:-1] for t in toks if t[-1] in "xy"]
        if spatial:
            fan, axis = {"shared_glb": ("DummyBuffer", "X"), "DummyBuffer": ("PE", "Y")}[level]
            fanouts[fan] = {axis: " ".join(spatial)}
        if level in KEEP:
            entries.append({"level": level, "keep": KEEP[level],
                            "temporal": " ".join(t for t in toks if t[-1] not in "xy")})
    glb = next(i for i, e in enumerate(entries) if e["level"] == "shared_glb")
    fans = [{"level": f, "spatial": fanouts[f]} for f in ("DummyBuffer", "PE") if f in fanouts]
    return entries[:glb + 1] + fans + entries[glb + 1:]


def test_committed_dense_mappings_reproduce_artifact_cycles_and_energy():
    """Evaluating the artifact's own 48 MobileNet-CIFAR-10 baseline mappings on
    eyeriss_like_72pe_v03 (the energies its runs printed) gives Timeloop's cycles exactly and its
    energy within 0.1 % (the printed 2 decimals): the dense/sparse energy gap of --artifact-compat
    comes from our mapper's choice of mappings, not from the model."""
    import yaml

    from dse.model.evaluate import evaluate
    from dse.pipeline.spec import load_arch
    from dse.spec.native import read_mapping
    from dse.spec.network import load_network_text
    from dse.spec.yamlload import load_yaml_text

    arch = load_arch([str(bundled_dir("arch_specs") / "eyeriss_like_72pe_v03.yaml")]).arch
    rows = [r for r in _csv("timeloop_layer_runs.csv")
            if r["config"] == "mobilenet/cifar10" and r["phase"] == "baseline"]
    assert len(rows) == 48
    for r in rows:
        c, m, k, p, s = (int(r[x]) for x in ("C", "M", "R", "P", "stride"))
        net = load_network_text(
            f"network: {{version: 1, name: x, input: {{C: {c}, H: {p * s}}}, layers: [{{name: l, "
            f"type: conv2d, C: {c}, K: {m}, H: {p * s}, R: {k}, stride: {s}, pad: {k // 2}, "
            f"P: {p}}}]}}")
        problem = net.layers[0].problem
        doc = load_yaml_text(yaml.safe_dump({"mapping": _native_mapping(r["mapping"])}))
        ev = evaluate(problem, arch, read_mapping(doc["mapping"], arch, problem),
                      generation="legacy")
        assert ev.cycles == int(r["tl_cycles"]), (r["block"], r["layer"])
        assert ev.energy_pJ / 1e6 == pytest.approx(float(r["tl_energy_uJ"]), rel=1e-3, abs=0.006)


@pytest.mark.slow
def test_outputs_do_not_depend_on_jobs(tmp_path):
    """Same inputs and seed: byte-identical blocks.csv, speedups.csv and per-layer outputs for
    --jobs 1 and 2 (timing.csv holds wall times and is left out)."""
    trees = []
    for jobs in ("1", "2"):
        out = tmp_path / jobs
        r = CliRunner().invoke(main, ["archon", "--study", "mobilenet/cifar10", "--max-evals",
                                      "2000", "--no-plots", "-q", "--jobs", jobs, "--out",
                                      str(out), "--store", str(tmp_path / f"{jobs}.sqlite")])
        assert r.exit_code == 0, r.output
        trees.append({p.relative_to(out).as_posix(): p.read_bytes()
                      for p in sorted(out.rglob("*")) if p.is_file() and p.name != "timing.csv"})
    assert "speedups.csv" in trees[0] and "mobilenet_cifar10/blocks.csv" in trees[0]
    assert trees[0] == trees[1]


def test_nonzero_tables_are_checked_against_the_tile(tmp_path):
    """A per-PE count above the tile's MACs (or negative) would make a pruned layer slower than
    dense; a table whose shape disagrees with its index row would mis-state the passes."""
    import gzip
    import shutil

    from dse.errors import SpecError
    from dse.spec.archon import read_tile_table

    table = tmp_path / "t.csv.gz"
    table.write_bytes(gzip.compress(b"pe,p0,p1\n0,3,4\n1,5,2\n"))
    assert read_tile_table(table, 5).slowest_pe_cycles() == 5 + 4
    with pytest.raises(SpecError, match="outside the tile's MACs"):
        read_tile_table(table, 4)
    src = bundled_dir("workloads") / STUDY.nonzero_dir
    shutil.copytree(src, tmp_path / "nnz")
    index = tmp_path / "nnz" / "sparse_layers.csv"
    lines = index.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("mobilenet/cifar10,1,dw,"))
    lines[row] = lines[row].replace(",dw,72,1024,", ",dw,72,512,")
    index.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError, match="passes but the index row says otherwise") as exc:
        read_nonzero_index(tmp_path / "nnz")
    assert exc.value.line == row + 1
