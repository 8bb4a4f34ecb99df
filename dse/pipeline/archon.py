"""The ARCHON study (`dse archon`): each network pair on the dense 72-PE baseline, the sparse
baseline (same hardware, pruned weights, per-PE nonzero counts) and ARCHON (predictions, fused
main convolutions, overhead hardware), side by side per block, with whole-network speed-ups.

Every layer and phase is mapped with the mapper (results stored, so reruns are instant); cycles of
the sparse and ARCHON columns come from dse.model.actual_density and dse.schedule.archon.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from dse.errors import SpecError
from dse.mapper.search import SearchConfig
from dse.model.actual_density import synthetic_nonzeros
from dse.pipeline.store import ResultStore
from dse.schedule import archon as A
from dse.spec.archon import ArchonStudy, LayerNonzeros, Study, read_nonzero_index
from dse.spec.network import layer_spec, load_network_text
from dse.workload.network import Layer, Network

GENERATION = "legacy"  # the artifact's runs are Timeloop v0.3
OBJECTIVE = "delay,energy"  # the artifact's mapper: optimise delay, then energy

BLOCK_COLUMNS = [
    "network", "dataset", "row", "kind",
    "dense_cycles", "sparse_cycles", "archon_cycles",
    "dense_energy_uJ", "sparse_energy_uJ", "archon_energy_uJ",
    "dense_layers", "sparse_nonzero_source",
    "archon_pred1_cycles", "archon_pred2_cycles", "archon_main_cycles",
    "archon_pred1_energy_uJ", "archon_pred2_energy_uJ", "archon_main_energy_uJ",
    "archon_overhead_energy_uJ",
]
SPEEDUP_COLUMNS = ["network", "dataset", "dense_cycles", "sparse_cycles", "archon_cycles",
                   "speedup_vs_dense", "speedup_vs_sparse", "dense_energy_uJ",
                   "sparse_energy_uJ", "archon_energy_uJ"]
LAYER_KEYS = {"PW1": "pw1", "DW": "dw", "PW2": "pw2", "GPW1": "gpw1", "GPW2": "gpw2"}


@dataclass
class LayerResult:
    name: str
    cycles: int
    energy_pJ: float
    energies: dict  # (level, tensor) -> pJ, ("compute", "") for the MACs
    macs: int
    dram_out_words: int = 0
    tiling: tuple[int, int, int] = (1, 1, 1)  # (PEs used, passes, MACs per PE per pass)


@dataclass
class RunContext:
    store: ResultStore
    cfg: SearchConfig
    out: Path
    jobs: int
    compat: bool
    log: Callable[[str], None]


# ----------------------------------------------------------------------------- networks

def _network_text(name: str, layers: list[dict]) -> str:
    """A network of independent layers (phases), each reading the network input as given."""
    lines = ["network:", "  version: 1", f"  name: {name}", "  input: {C: 1, H: 1}", "  layers:"]
    for d in layers:
        d = {**d, "inputs": ["input"], "allow_mismatch": "ARCHON phase: shapes as given"}
        lines.append("    - " + yaml.safe_dump(d, default_flow_style=True, width=10_000).strip())
    return "\n".join(lines) + "\n"


def _as_one_channel(spec: dict) -> dict:
    """Artifact: a depthwise layer run as a normal conv with one input channel (C=1, M=ch)."""
    d = {k: v for k, v in spec.items() if k not in ("type", "C", "K", "bias", "bn")}
    return {**d, "type": "conv2d", "C": 1, "K": spec["C"]}


def _spec(layer: Layer, compat: bool, rename: str | None = None) -> dict:
    d = layer_spec(layer)
    d.pop("bias", None)
    d.pop("bn", None)
    if compat and layer.type == "depthwise":
        d = _as_one_channel(d)
    if rename:
        d["name"] = rename
    return d


# ----------------------------------------------------------------------------- mapping

def _factors(text) -> int:
    """'Q4 C16' -> 64."""
    return math.prod(int(t.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
                     for t in str(text or "").split())


def mapping_tiling(entries: list) -> tuple[int, int, int]:
    """A mapping's work tiles: PEs used (all spatial factors), passes (temporal loops above the
    innermost spatial fan-out) and MACs per PE per pass (temporal loops below it)."""
    last = max((i for i, e in enumerate(entries) if e.get("spatial")), default=-1)
    pes = math.prod(_factors(v) for e in entries for v in (e.get("spatial") or {}).values())
    passes = math.prod(_factors(e.get("temporal")) for e in entries[:last + 1])
    tile = math.prod(_factors(e.get("temporal")) for e in entries[last + 1:])
    return pes, passes, tile


def _tensor_energies(arch_input, problem, mapping_file: Path) -> tuple[dict, int]:
    """Per-(level, tensor) energies of the stored best mapping, and the DRAM Outputs words."""
    from dse.arch.rules import prepare_problem
    from dse.model.evaluate import evaluate
    from dse.spec.native import read_mapping
    from dse.spec.yamlload import load_yaml_text

    problem = prepare_problem(problem, arch_input.arch)[0]
    doc = load_yaml_text(mapping_file.read_text(), str(mapping_file))
    mapping = read_mapping(doc["mapping"], arch_input.arch, problem)
    ev = evaluate(problem, arch_input.arch, mapping, check_capacity=False, generation=GENERATION)
    energies = {(s.level, s.tensor): s.energy_pJ for s in ev.stats}
    energies[("compute", "")] = ev.compute_energy_pJ
    dram = arch_input.arch.levels[0].name
    out_words = next((s.partition_size for s in ev.stats
                      if s.level == dram and s.tensor == "Outputs"), 0)
    return energies, out_words


def map_network(network: Network, arch_name: str, ctx: RunContext, label: str
                ) -> dict[str, LayerResult]:
    """Map every layer (stored results are reused) and return per-layer results."""
    from dse.pipeline.run import run_network
    from dse.pipeline.spec import load_arch, sibling_constraints
    from dse.spec.arch_library import resolve as resolve_arch

    arch_file = str(resolve_arch(arch_name))
    arch = load_arch([arch_file, *sibling_constraints(arch_file)])
    out = ctx.out / label
    ctx.log(f"  mapping {network.name} on {arch.name} ({len(network.mappable())} layers)")
    rows, _ = run_network(network, arch, ctx.cfg, out, ctx.store, jobs=ctx.jobs)
    results = {}
    for row in rows:
        if row["status"] != "ok":
            raise SpecError(f"no valid mapping for {row['layer']} on {arch.name}: "
                            f"{row.get('reason', '')}", hint="see " + str(out / "layers.csv"))
        layer = network.layer(row["layer"])
        energies, out_words = _tensor_energies(arch, layer.problem, out / row["mapping"])
        entries = yaml.safe_load((out / row["mapping"]).read_text())["mapping"]
        results[row["layer"]] = LayerResult(row["layer"], int(row["cycles"]),
                                            float(row["energy_pJ"]), energies,
                                            int(row["macs"]), out_words, mapping_tiling(entries))
    return results


def _check_pe_count(arch_name: str, d: A.ArchonDesign, file: str) -> None:
    """The closed-form cycles use pe_rows x pe_cols PEs and the energies come from mappings on
    the named array: both must describe the same hardware."""
    from dse.pipeline.spec import load_arch
    from dse.spec.arch_library import resolve as resolve_arch

    macs = load_arch([str(resolve_arch(arch_name))]).arch.compute.instances
    if macs != d.pes:
        raise SpecError(f"the ARCHON design has pe_rows x pe_cols = {d.pes} PEs but its array "
                        f"{arch_name!r} has {macs} MAC units", file=file,
                        key_path="archon.design.pe_rows / pe_cols",
                        expected=f"{macs} PEs, or an array architecture with {d.pes}",
                        found=f"{d.pe_rows} x {d.pe_cols}")


# ----------------------------------------------------------------------------- baselines

def _block_of(name: str) -> tuple[str, str]:
    """'b3.PW1' -> ('b3', 'PW1'); head/tail layers keep their full name as the row."""
    head, _, tail = name.partition(".")
    if head.startswith("b") and head[1:].isdigit():
        return head, tail
    return name, ""


def _nonzero_rule(study: ArchonStudy, s: Study, index: dict, block: str, part: str,
                  layer: LayerResult | None, seed: int) -> tuple[int | None, str]:
    """Sparse cycles of one pruned layer (a block's layer; head and tail are not pruned) and
    where they come from. Without measured data: seeded synthetic tiles on our own dense
    mapping's tiling, at the study's density."""
    key = LAYER_KEYS.get(part)
    if key is None:
        return None, "not pruned"
    rec: LayerNonzeros | None = None
    if s.nonzeros is not None:
        rec = index.get((s.nonzeros, int(block[1:]), key))
    if rec is None:
        if layer is None:
            return None, "no nonzero data"
        density = study.sparse_density["depthwise" if key == "dw" else "pointwise"]
        tiles = synthetic_nonzeros(*layer.tiling, density, seed + zlib.crc32(layer.name.encode()))
        return tiles.slowest_pe_cycles(), "synthetic on own mapping"
    if rec.tiles is not None and study.sparse_source == "measured":
        return rec.tiles.slowest_pe_cycles() * rec.group_multiplier, "per-PE nonzeros"
    if study.sparse_source == "measured" and study.missing_nonzeros == "measured" and \
            rec.measured_sparse_cycles is not None:
        return rec.measured_sparse_cycles * rec.group_multiplier, "measured per layer"
    density = study.sparse_density["depthwise" if key == "dw" else "pointwise"]
    tiles = synthetic_nonzeros(rec.pes, rec.passes, rec.tile_macs, density,
                               seed + zlib.crc32(f"{block}.{part}".encode()))
    return tiles.slowest_pe_cycles() * rec.group_multiplier, "synthetic"


def baseline_rows(study: ArchonStudy, s: Study, ctx: RunContext, index: dict, seed: int
                  ) -> dict[str, dict]:
    """Dense and sparse cycles/energy per row (block or head/tail layer)."""
    from dse.spec.workload_library import load_workload

    net = load_workload(s.baseline)
    if ctx.compat:
        specs = [_spec(lay, True) for lay in net.mappable()]
        net = load_network_text(_network_text(net.name + "_compat", specs))
    arch = (study.dense_artifact_arch or study.dense_arch) if ctx.compat else study.dense_arch
    dense = map_network(net, arch, ctx, f"{s.network}_{s.dataset}/dense")
    d = s.design
    compat = s.compat if ctx.compat else None
    rows: dict[str, dict] = {}
    for layer in net.mappable():
        r = dense[layer.name]
        block, part = _block_of(layer.name)
        depthwise = layer.type == "depthwise" or (ctx.compat and layer.attrs.get("C") == 1
                                                  and layer.attrs.get("R", 1) > 1)
        e_dense = r.energy_pJ
        if ctx.compat and depthwise and part:
            e_dense = A.dense_dw_energy_compat_pJ(r.energies, layer.attrs["K"])
        sparse_c, source = _nonzero_rule(study, s, index, block, part, r, seed)
        if sparse_c is None:
            sparse_c, e_sparse = r.cycles, e_dense
        else:
            density = study.sparse_density["depthwise" if depthwise else "pointwise"]
            e_sparse = e_dense if (ctx.compat and depthwise) else A.sparse_energy_pJ(
                r.energies, density=density, pointwise=not depthwise, d=d, compat=compat)
        row = rows.setdefault(block, {"dense_cycles": 0, "sparse_cycles": 0,
                                      "dense_energy_pJ": 0.0, "sparse_energy_pJ": 0.0,
                                      "dense_layers": [], "sources": set()})
        row["dense_cycles"] += r.cycles
        row["sparse_cycles"] += sparse_c
        row["dense_energy_pJ"] += e_dense
        row["sparse_energy_pJ"] += e_sparse
        row["dense_layers"].append(f"{layer.name}:{r.cycles}")
        row["sources"].add(source)
    return rows


# ----------------------------------------------------------------------------- ARCHON

def archon_rows(study: ArchonStudy, s: Study, ctx: RunContext) -> dict[str, dict]:
    """ARCHON cycles/energy per fused block and per head/tail layer."""
    from dse.spec.workload_library import load_workload

    net = load_workload(s.archon)
    blocks = A.find_bottlenecks(net)
    if not blocks:
        raise SpecError(f"{s.archon} has no expanding pointwise -> depthwise -> pointwise "
                        "block for ARCHON to fuse", hint="docs/archon.md, 'Workloads'")
    d = s.design
    compat = s.compat if ctx.compat else None
    fused = {name for b in blocks for name in b.layers}
    pred_specs, main_specs = [], []
    for b in blocks:
        # the two predicted layers: PW1 and the DW, or (ShuffleNet) both grouped pointwise
        first, second = net.layer(b.layers[0]), net.layer(b.layers[1])
        pred_specs.append(_spec(first, ctx.compat, f"{b.name}.pred_pw1"))
        pred_specs.append(_spec(second, ctx.compat, f"{b.name}.pred_2"))
        main_specs.append({"name": f"{b.name}.main", "type": "conv2d",
                           "C": b.in_ch // b.groups, "K": b.out_ch, "H": b.in_pixels,
                           "R": b.kernel, "stride": b.stride, "pad": b.kernel // 2,
                           "P": b.out_pixels})
    other = [_spec(lay, ctx.compat) for lay in net.mappable() if lay.name not in fused]
    tag = f"{s.network}_{s.dataset}"
    pred = map_network(load_network_text(_network_text(f"{tag}_pred", pred_specs)),
                       study.prediction_array, ctx, f"{tag}/archon_pred")
    main = map_network(load_network_text(_network_text(f"{tag}_main", main_specs)),
                       study.main_array, ctx, f"{tag}/archon_main")
    ht = map_network(load_network_text(_network_text(f"{tag}_headtail", other)),
                     study.prediction_array, ctx, f"{tag}/archon_headtail") if other else {}
    rows: dict[str, dict] = {}
    for b in blocks:
        cyc = A.block_cycles(b, d, compat)
        p1, p2 = pred[f"{b.name}.pred_pw1"], pred[f"{b.name}.pred_2"]
        dw2 = b.style == "expand_dw_project"
        mn = main[f"{b.name}.main"]
        e1 = A.prediction_energy_pJ(p1.energies, kind="pw", macs=p1.macs,
                                    outputs=p1.macs // max(1, b.in_ch // b.groups),
                                    in_ch=b.in_ch // b.groups, mid_ch=b.mid_ch,
                                    dram_out_words=p1.dram_out_words, d=d, compat=compat)
        e2 = A.prediction_energy_pJ(
            p2.energies, kind="dw" if dw2 else "pw", macs=p2.macs,
            outputs=p2.macs // (b.kernel ** 2 if dw2 else max(1, b.mid_ch // b.groups)),
            in_ch=b.mid_ch if dw2 else b.mid_ch // b.groups, mid_ch=b.mid_ch,
            dram_out_words=p2.dram_out_words, d=d, compat=compat)
        em = A.main_energy_pJ(mn.energies)
        over = A.overhead_energy_pJ(b, d, cyc["main_cycles"], compat)
        rows[b.name] = {
            "archon_cycles": sum(cyc.values()),
            "archon_pred1_cycles": cyc["pred1_cycles"], "archon_pred2_cycles": cyc["pred2_cycles"],
            "archon_main_cycles": cyc["main_cycles"],
            "archon_pred1_energy_pJ": e1, "archon_pred2_energy_pJ": e2,
            "archon_main_energy_pJ": em, "archon_overhead_energy_pJ": sum(over.values()),
            "archon_energy_pJ": e1 + e2 + em + sum(over.values()),
            "overhead_parts_pJ": over, "main_mapped_cycles": mn.cycles,
        }
    for lay in net.mappable():
        if lay.name in fused:
            continue
        r = ht[lay.name]
        e = r.energy_pJ
        if ctx.compat and lay.type == "depthwise":
            e = A.dense_dw_energy_compat_pJ(r.energies, lay.attrs["C"])
        rows[lay.name] = {"archon_cycles": r.cycles, "archon_energy_pJ": e}
    return rows


# ----------------------------------------------------------------------------- study

def _order(baseline: Network | None, archon: Network) -> list[str]:
    """Rows in network order: head layers, blocks b1..bN, tail layers."""
    seen: list[str] = []
    for net in (baseline, archon):
        if net is None:
            continue
        for lay in net.mappable():
            row = _block_of(lay.name)[0]
            if row not in seen:
                seen.append(row)
    head = [r for r in seen if r.startswith("head.")]
    tail = sorted((r for r in seen if r.startswith("tail.")), key=lambda r: "FC" in r)
    blocks = sorted((r for r in seen if r not in head and r not in tail),
                    key=lambda r: (int(r[1:]) if r[1:].isdigit() else 10 ** 6, r))
    return head + blocks + tail


def run_study(study: ArchonStudy, s: Study, ctx: RunContext, index: dict, seed: int
              ) -> tuple[list[dict], dict]:
    from dse.spec.workload_library import load_workload

    ctx.log(f"{s.network}/{s.dataset}")
    base = baseline_rows(study, s, ctx, index, seed) if s.baseline else {}
    arch = archon_rows(study, s, ctx)
    order = _order(load_workload(s.baseline) if s.baseline else None, load_workload(s.archon))
    rows = []
    for name in order:
        b, a = base.get(name, {}), arch.get(name, {})
        uj = 1e-6
        rows.append({
            "network": s.network, "dataset": s.dataset, "row": name,
            "kind": "block" if name[1:].isdigit() else "layer",
            "dense_cycles": b.get("dense_cycles", ""), "sparse_cycles": b.get("sparse_cycles", ""),
            "archon_cycles": a.get("archon_cycles", ""),
            "dense_energy_uJ": _round(b.get("dense_energy_pJ"), uj),
            "sparse_energy_uJ": _round(b.get("sparse_energy_pJ"), uj),
            "archon_energy_uJ": _round(a.get("archon_energy_pJ"), uj),
            "dense_layers": " ".join(b.get("dense_layers", [])),
            "sparse_nonzero_source": ";".join(sorted(b.get("sources", set()))),
            "archon_pred1_cycles": a.get("archon_pred1_cycles", ""),
            "archon_pred2_cycles": a.get("archon_pred2_cycles", ""),
            "archon_main_cycles": a.get("archon_main_cycles", ""),
            "archon_pred1_energy_uJ": _round(a.get("archon_pred1_energy_pJ"), uj),
            "archon_pred2_energy_uJ": _round(a.get("archon_pred2_energy_pJ"), uj),
            "archon_main_energy_uJ": _round(a.get("archon_main_energy_pJ"), uj),
            "archon_overhead_energy_uJ": _round(a.get("archon_overhead_energy_pJ"), uj),
        })
    return rows, speedup_row(s, rows, bool(s.baseline))


def _round(v, scale: float):
    return "" if v is None else round(v * scale, 4)


def _sum(rows: list[dict], col: str) -> float:
    return sum(r[col] for r in rows if r[col] != "")


def speedup_row(s: Study, rows: list[dict], has_baseline: bool) -> dict:
    dense, sparse, arch = (_sum(rows, c) for c in ("dense_cycles", "sparse_cycles",
                                                   "archon_cycles"))
    return {
        "network": s.network, "dataset": s.dataset,
        "dense_cycles": int(dense) if has_baseline else "",
        "sparse_cycles": int(sparse) if has_baseline else "",
        "archon_cycles": int(arch),
        "speedup_vs_dense": round(dense / arch, 4) if has_baseline else "",
        "speedup_vs_sparse": round(sparse / arch, 4) if has_baseline else "",
        "dense_energy_uJ": round(_sum(rows, "dense_energy_uJ"), 3) if has_baseline else "",
        "sparse_energy_uJ": round(_sum(rows, "sparse_energy_uJ"), 3) if has_baseline else "",
        "archon_energy_uJ": round(_sum(rows, "archon_energy_uJ"), 3),
    }


def select(study: ArchonStudy, names: list[str]) -> list[Study]:
    """Studies by `network` or `network/dataset` (all when `names` is empty)."""
    if not names:
        return list(study.studies)
    out = []
    for n in names:
        hit = [s for s in study.studies if n in (s.network, f"{s.network}/{s.dataset}")]
        if not hit:
            from dse.errors import did_you_mean
            choices = [f"{s.network}/{s.dataset}" for s in study.studies]
            raise SpecError(f"no study {n!r} in {study.file}", expected=", ".join(choices),
                            hint=did_you_mean(n, choices))
        out += [s for s in hit if s not in out]
    return out


def run_archon(study: ArchonStudy, studies: list[Study], out: Path, store: ResultStore,
               cfg: SearchConfig, jobs: int, compat: bool, seed: int,
               log: Callable[[str], None]) -> tuple[list[dict], list[dict]]:
    """Every selected study; writes blocks.csv per study and speedups.csv, atomically."""
    from dse.pipeline.writers import atomic_write, csv_text
    from dse.spec.library_paths import bundled_dir

    for s in studies:
        for arch_name in (study.main_array, study.prediction_array):
            _check_pe_count(arch_name, s.design, study.file)
    cfg = dataclasses.replace(cfg, objective=OBJECTIVE, generation=GENERATION)
    ctx = RunContext(store, cfg, out, jobs, compat, log)
    index = read_nonzero_index(bundled_dir("workloads") / study.nonzero_dir)
    configs = sorted({rec.config for rec in index.values()})
    for s in studies:
        if s.nonzeros is not None and s.nonzeros not in configs:
            from dse.errors import did_you_mean
            i = study.studies.index(s)
            raise SpecError(f"no per-PE nonzero data {s.nonzeros!r} in {study.nonzero_dir}",
                            file=study.file, key_path=f"archon.studies[{i}].nonzeros",
                            expected=", ".join(configs), hint=did_you_mean(s.nonzeros, configs)
                            or "leave `nonzeros` out to use synthetic tiles")
    all_rows, speedups = [], []
    for s in studies:
        rows, sp = run_study(study, s, ctx, index, seed)
        atomic_write(out / f"{s.network}_{s.dataset}" / "blocks.csv",
                     csv_text(rows, BLOCK_COLUMNS))
        all_rows += rows
        speedups.append(sp)
    atomic_write(out / "speedups.csv", csv_text(speedups, SPEEDUP_COLUMNS))
    return all_rows, speedups


def is_close(a: float, b: float, rel: float) -> bool:
    return math.isclose(a, b, rel_tol=rel)
