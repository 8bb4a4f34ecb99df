"""`dse run --schedule pipeline|FILE` (kind: pipeline): the pipeline's YAML, its run, its files.

The model is dse.schedule.pipeline. Here: reading and writing the `kind: pipeline` schedule
file, finding the shipped schedule of an architecture and workload
(`mappings/<arch>.<workload>.pipeline.yaml`), and the rows of stages.csv, fifos.csv,
segments.csv (the whole pipeline as one segment) and totals.csv.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from dse.errors import SpecError
from dse.schedule.pipeline import (
    ROW_TIMES,
    SPLITS,
    WEIGHT_MODES,
    Pipeline,
    PipelineModel,
    PipelineResult,
    Stage,
    Staging,
)
from dse.workload.network import Network

PIPELINE_KEYS = {"version", "kind", "tile_level", "group_level", "efficiency", "weight_load",
                 "backpressure", "dma_bytes_per_cycle", "stack_bytes", "row_time",
                 "row_search_evals", "stages", "staging"}
STAGE_KEYS = {"name", "layers", "group", "tiles", "split", "weights", "in_depth", "out_depth",
              "place"}
STAGING_KEYS = {"tensor", "group", "depth", "for"}
STAGE_COLUMNS = ["network", "arch", "stage", "layers", "group", "tiles", "place", "split",
                 "weights", "macs", "row_cycles_max", "row_cycles_min", "busy_cycles",
                 "utilization", "weight_bytes", "tile_weight_bytes", "fifo_bytes",
                 "working_set_bytes", "capacity_bytes", "weights_ready_cycle", "first_start",
                 "last_finish"]
FIFO_COLUMNS = ["network", "arch", "tensor", "producer", "consumer", "memory", "in", "depth_rows",
                "row_bytes", "bytes", "capacity_bytes"]
PIPELINE_TOTAL_EXTRA = ["schedule", "stages", "tiles_used", "dram_bytes",
                        "dram_bytes_lower_bound", "dram_bytes_over_bound", "stagewise_dram_bytes",
                        "layerwise_dram_bytes", "cycles_without_weight_load",
                        "stage_bound_cycles", "interval_cycles", "fill_cycles", "drain_cycles",
                        "layerwise_cycles", "layerwise_energy_pJ"]


def shipped_pipeline(arch_name: str, network_name: str) -> Path | None:
    """The pipeline schedule shipped for this architecture and workload, if any."""
    from dse.spec.library_paths import bundled_dir

    path = bundled_dir("mappings") / f"{arch_name}.{network_name}.pipeline.yaml"
    return path if path.is_file() else None


def shipped_pipelines() -> list[str]:
    from dse.spec.library_paths import bundled_dir

    return sorted(p.name for p in bundled_dir("mappings").glob("*.pipeline.yaml"))


def read_pipeline(node, file: str) -> tuple[Pipeline, tuple[int | None, ...]]:
    """The `schedule:` mapping of a `kind: pipeline` file (docs/fusion.md, "Pipelines"), and
    the line of each stage, then of each staging FIFO, then of `tile_level` and `group_level`
    (None where not given), for errors found later against the architecture."""
    from dse.spec.common import check_keys, require_list, require_mapping, where

    check_keys(node, PIPELINE_KEYS, "schedule")
    if "stages" not in node:
        raise SpecError("a pipeline schedule needs `stages:`", key_path="schedule", file=file,
                        line=where(node)["line"])
    opts = {}
    for key in ("tile_level", "group_level"):
        if key in node:
            opts[key] = _text(node, key, "schedule")
    if opts.get("group_level") and opts.get("group_level") == opts.get("tile_level"):
        raise SpecError("the group level is the memory shared by a group of tiles, above the "
                        "tile level", key_path="schedule.group_level", found=opts["group_level"],
                        expected=f"a buffer above {opts['tile_level']}",
                        **where(node, "group_level"))
    if "efficiency" in node:
        eff = _number(node, "efficiency", "schedule")
        if not 0 < eff <= 1:
            raise SpecError("expected a fraction of the peak, above 0 and at most 1",
                            key_path="schedule.efficiency", found=eff,
                            **where(node, "efficiency"))
        opts["efficiency"] = float(eff)
    for key in ("weight_load", "backpressure"):
        if key in node:
            if not isinstance(node[key], bool):
                raise SpecError("expected true or false", key_path=f"schedule.{key}",
                                found=node[key], **where(node, key))
            opts[key] = node[key]
    if "dma_bytes_per_cycle" in node:
        opts["dma_bytes_per_cycle"] = float(_number(node, "dma_bytes_per_cycle", "schedule",
                                                    positive=True))
    if "stack_bytes" in node:
        opts["stack_bytes"] = _count(node, "stack_bytes", "schedule", minimum=0)
    if "row_time" in node:
        if node["row_time"] not in ROW_TIMES:
            raise SpecError("unknown row_time", key_path="schedule.row_time",
                            found=node["row_time"], expected=" or ".join(ROW_TIMES),
                            **where(node, "row_time"))
        opts["row_time"] = node["row_time"]
    if "row_search_evals" in node:
        opts["row_search_evals"] = _count(node, "row_search_evals", "schedule")
    stages, lines = [], []
    for i, s in enumerate(require_list(node["stages"], "schedule.stages", node, "stages")):
        p = f"schedule.stages[{i}]"
        s = require_mapping(s, p, node, "stages")
        check_keys(s, STAGE_KEYS, p)
        for key in ("layers", "group"):
            if key not in s:
                raise SpecError(f"a stage needs `{key}:`", key_path=p, **where(s))
        names = require_list(s["layers"], f"{p}.layers", s, "layers")
        if not names:
            raise SpecError("a stage needs at least one layer", key_path=f"{p}.layers",
                            **where(s, "layers"))
        in_depth = {}
        if "in_depth" in s:
            d = require_mapping(s["in_depth"], f"{p}.in_depth", s, "in_depth")
            in_depth = {str(k): _count(d, k, f"{p}.in_depth") for k in d}
        split = str(s.get("split", ""))
        if split and split not in SPLITS:
            raise SpecError("unknown split", key_path=f"{p}.split", found=split,
                            expected=" or ".join(SPLITS), **where(s, "split"))
        weights = str(s.get("weights", "split"))
        if weights not in WEIGHT_MODES:
            raise SpecError("unknown weights mode", key_path=f"{p}.weights", found=weights,
                            expected=" or ".join(WEIGHT_MODES), **where(s, "weights"))
        tiles = _count(s, "tiles", p) if "tiles" in s else 1
        place = s.get("place", [])
        place = [place] if isinstance(place, str) else require_list(place, f"{p}.place", s,
                                                                    "place")
        if place and len(place) != tiles:
            raise SpecError(f"`place` labels each of the stage's {tiles} tile(s)",
                            key_path=f"{p}.place", found=place, expected=f"{tiles} label(s)",
                            **where(s, "place"))
        stages.append(Stage(
            _text(s, "name", p) if "name" in s else f"s{i}", tuple(str(n) for n in names),
            _count(s, "group", p, minimum=0), tiles, split, weights, in_depth,
            _count(s, "out_depth", p) if "out_depth" in s else 2,
            tuple(str(x) for x in place)))
        lines.append(where(s)["line"])
    staging = []
    for j, g in enumerate(require_list(node.get("staging", []), "schedule.staging", node,
                                       "staging")):
        p = f"schedule.staging[{j}]"
        g = require_mapping(g, p, node, "staging")
        check_keys(g, STAGING_KEYS, p)
        for key in ("tensor", "group", "depth", "for"):
            if key not in g:
                raise SpecError(f"a staging FIFO needs `{key}:`", key_path=p, **where(g))
        staging.append(Staging(_text(g, "tensor", p), _count(g, "group", p, minimum=0),
                               _count(g, "depth", p), _text(g, "for", p)))
        lines.append(where(g)["line"])
    lines += [where(node, key)["line"] if key in node else None
              for key in ("tile_level", "group_level")]
    return Pipeline(tuple(stages), tuple(staging), **opts), tuple(lines)


def _text(node, key: str, path: str) -> str:
    from dse.spec.common import where

    value = node[key]
    if not isinstance(value, str) or not value:
        raise SpecError("expected a name", key_path=f"{path}.{key}", found=value,
                        **where(node, key))
    return value


def _count(node, key, path: str, minimum: int = 1) -> int:
    from dse.spec.common import where

    value = node[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"expected a whole number, at least {minimum}",
                        key_path=f"{path}.{key}", found=value, **where(node, key))
    return value


def _number(node, key: str, path: str, positive: bool = False) -> float:
    from dse.spec.common import where

    value = node[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or value in (float("inf"), float("-inf")) or (positive and value <= 0):
        raise SpecError("expected a " + ("positive " if positive else "") + "number",
                        key_path=f"{path}.{key}", found=value, **where(node, key))
    return value


def pipeline_yaml(network: Network, arch_name: str, pipe: Pipeline, hw) -> str:
    """The pipeline as run (levels and DMA width resolved), in the format read_pipeline
    reads."""
    stages = []
    for st in pipe.stages:
        e: dict = {"name": st.name, "layers": list(st.layers), "group": st.group,
                   "tiles": st.tiles}
        if st.split:
            e["split"] = st.split
        e["weights"] = st.weights
        if st.place:
            e["place"] = list(st.place)
        if st.in_depth:
            e["in_depth"] = dict(st.in_depth)
        e["out_depth"] = st.out_depth
        stages.append(e)
    node: dict = {"version": 1, "kind": "pipeline", "tile_level": hw.tile_level,
                  "group_level": hw.group_level, "efficiency": pipe.efficiency,
                  "weight_load": pipe.weight_load, "backpressure": pipe.backpressure,
                  "dma_bytes_per_cycle": hw.dma_bytes_per_cycle,
                  "stack_bytes": pipe.stack_bytes, "row_time": pipe.row_time,
                  "row_search_evals": pipe.row_search_evals, "stages": stages}
    if pipe.staging:
        node["staging"] = [{"tensor": g.tensor, "group": g.group, "depth": g.depth,
                            "for": g.consumer} for g in pipe.staging]
    return (f"# pipeline schedule of {network.name} on {arch_name}; give it back with "
            f"--schedule FILE\n"
            + yaml.safe_dump({"schedule": node}, sort_keys=False, default_flow_style=None,
                             width=100))


def evaluate_pipeline(network: Network, arch, pipe: Pipeline, file: str | None,
                      lines: tuple[int | None, ...] = ()) -> PipelineResult:
    """The pipeline model, its errors pointed at the schedule file."""
    import re

    try:
        return PipelineModel(network).evaluate(pipe, arch, lines)
    except SpecError as exc:
        if exc.file is None and file:
            exc.file = file
            m = re.match(r"schedule\.(stages|staging)\[(\d+)\]", exc.key_path or "")
            levels = ({"schedule.tile_level": len(lines) - 2,
                       "schedule.group_level": len(lines) - 1} if len(lines) >= 2 else {})
            i = int(m.group(2)) + (len(pipe.stages) if m and m.group(1) == "staging" else 0) \
                if m else levels.get(exc.key_path or "", len(lines))
            if exc.line is None and i < len(lines):
                exc.line = lines[i]
        raise


def stage_rows(network: Network, arch_name: str, res: PipelineResult) -> list[dict]:
    hw = res.hardware
    rows = []
    for s in res.stages:
        st = s.stage
        rows.append({
            "network": network.name, "arch": arch_name, "stage": st.name,
            "layers": " ".join(st.layers), "group": st.group, "tiles": st.tiles,
            "place": " ".join(st.place), "split": st.split, "weights": st.weights,
            "macs": s.macs, "row_cycles_max": max(s.row_cycles),
            "row_cycles_min": min(s.row_cycles), "busy_cycles": s.busy_cycles,
            "utilization": s.macs / (st.tiles * hw.macs_per_tile * res.cycles),
            "weight_bytes": s.weight_bytes, "tile_weight_bytes": s.tile_weight_bytes,
            "fifo_bytes": s.fifo_bytes, "working_set_bytes": s.working_set_bytes,
            "capacity_bytes": hw.tile_bytes, "weights_ready_cycle": s.weights_ready,
            "first_start": s.first_start, "last_finish": s.last_finish})
    return rows


def fifo_rows(network: Network, arch_name: str, res: PipelineResult) -> list[dict]:
    hw = res.hardware
    return [{"network": network.name, "arch": arch_name, "tensor": f.tensor,
             "producer": f.producer, "consumer": f.consumer, "memory": f.memory,
             "in": f.where, "depth_rows": f.depth, "row_bytes": f.row_bytes, "bytes": f.bytes,
             "capacity_bytes": hw.tile_bytes if f.memory == hw.tile_level else hw.group_bytes}
            for f in res.fifos]


def segment_row(network: Network, arch_name: str, res: PipelineResult, layerwise_bytes: int,
                layerwise_cycles: float, layerwise_energy: float, energy: float,
                point: str = "") -> dict:
    """The whole pipeline as one row of segments.csv (the fused columns that apply)."""
    layers = [n for s in res.stages for n in s.stage.layers]
    bound = res.dram_bytes  # every DRAM tensor moves exactly once: the compulsory traffic
    return {
        "network": network.name, "arch": arch_name, "point": point,
        "segment": f"{layers[0]}..{layers[-1]}", "layers": " ".join(layers),
        "level": res.hardware.tile_level, "tile_rows": 1,
        "tiles": sum(s.stage.tiles for s in res.stages), "halo": "retain",
        "weights": "resident", "dram_read_bytes": res.dram_read_bytes,
        "dram_write_bytes": res.dram_write_bytes, "dram_bytes": res.dram_bytes,
        "dram_bytes_lower_bound": bound,
        "dram_bytes_over_bound": res.dram_bytes / bound if bound else "",
        "layerwise_dram_bytes": layerwise_bytes,
        "buffer_peak_bytes": max(s.working_set_bytes for s in res.stages),
        "capacity_bytes": res.hardware.tile_bytes, "macs": res.macs, "recomputed_macs": 0,
        "ops": res.macs, "cycles": res.cycles, "energy_pJ": energy,
        "layerwise_cycles": round(layerwise_cycles), "layerwise_energy_pJ": layerwise_energy}


def resolve_pipeline(spec, network: Network, arch_input):
    """(Pipeline, file, lines) to run: the schedule file's, else the one shipped for this
    architecture and workload; refused when there is none (no automatic assignment yet)."""
    if spec.pipeline is not None:
        return spec.pipeline, spec.file, spec.lines
    path = shipped_pipeline(arch_input.name, network.name)
    if path is None:
        known = ", ".join(shipped_pipelines()) or "none"
        raise SpecError(f"--schedule pipeline: no pipeline schedule is shipped for "
                        f"{network.name} on {arch_input.name} (stages are not assigned "
                        f"automatically)", found=f"mappings/{arch_input.name}.{network.name}"
                        f".pipeline.yaml", expected=f"one of the shipped ones ({known})",
                        hint="write a `kind: pipeline` schedule file (docs/fusion.md, "
                             "\"Pipelines\") and give it with --schedule FILE")
    from dse.pipeline.fused import load_schedule

    shipped = load_schedule(path)
    return shipped.pipeline, str(path), shipped.lines


def pipeline_totals(network: Network, arch_input, res: PipelineResult, totals: dict,
                    layerwise_bytes: int, energy: float, point: str = "") -> dict:
    """The schedule's totals row: the pipeline's cycles and DRAM bytes beside the layerwise
    figures of the same layers."""
    from dse.pipeline.run import time_and_area

    arch = arch_input.arch
    tot = {k: v for k, v in totals.items()
           if not (k.startswith("energy_") and k != "energy_pJ")
           and not k.startswith(("reads_", "writes_"))
           and k not in ("dram_words_lower_bound", "dram_traffic_over_bound")}
    tot.update({
        "cycles": res.cycles, "energy_pJ": energy, "schedule": "pipeline",
        "stages": len(res.stages), "tiles_used": sum(s.stage.tiles for s in res.stages),
        "dram_bytes": res.dram_bytes, "dram_bytes_lower_bound": res.dram_bytes,
        "dram_bytes_over_bound": 1.0, "stagewise_dram_bytes": res.stagewise_dram_bytes,
        "layerwise_dram_bytes": layerwise_bytes,
        "cycles_without_weight_load": res.cycles_without_weight_load,
        "stage_bound_cycles": res.stage_bound_cycles, "interval_cycles": res.interval_cycles,
        "fill_cycles": res.fill_cycles, "drain_cycles": res.drain_cycles,
        "layerwise_cycles": totals["cycles"], "layerwise_energy_pJ": totals["energy_pJ"]})
    tot.update(time_and_area(arch, tot["cycles"], tot["energy_pJ"]))
    tot["pJ_per_mac"] = tot["energy_pJ"] / tot["macs"] if tot["macs"] else ""
    tot["utilization"] = res.macs / (arch.compute.instances * res.cycles) if res.cycles else ""
    return tot


def pipeline_total_columns(layerwise_columns: list[str]) -> list[str]:
    keep = [c for c in layerwise_columns
            if not (c.startswith("energy_") and c != "energy_pJ")
            and not c.startswith(("reads_", "writes_"))
            and c not in PIPELINE_TOTAL_EXTRA
            and c not in ("dram_words_lower_bound", "dram_traffic_over_bound")]
    i = keep.index("point") + 1
    return keep[:i] + ["schedule"] + keep[i:] + [c for c in PIPELINE_TOTAL_EXTRA
                                                 if c != "schedule"]


def write_pipeline(out: Path, network: Network, arch_input, cfg, pipe: Pipeline,
                   file: str | None, store, layer_rows: list[dict], totals: dict,
                   res: PipelineResult, params: dict | None = None) -> dict:
    """After run_network (the layerwise comparison): stages.csv, fifos.csv, segments.csv
    (the pipeline as one segment), schedule.yaml and the schedule's totals.csv."""
    from dse.arch.rules import prepare_problem
    from dse.pipeline.fused import SEGMENT_COLUMNS, _energy_per_bit, layerwise_dram_bits
    from dse.pipeline.run import plan, task_problem, total_columns
    from dse.pipeline.writers import atomic_write, csv_text
    from dse.schedule.fused import dram_level

    arch = arch_input.arch
    _tasks, keys = plan(network, arch_input, cfg)
    results = {k: store.get(k) for k in set(keys.values())}
    dram = dram_level(arch)
    lw_bits = 0
    onchip_energy = 0.0
    for lay in network.mappable():
        r = results[keys[lay.name]]
        if r.get("status") != "ok":
            continue
        problem = task_problem(prepare_problem(lay.problem, arch)[0])
        lw_bits += layerwise_dram_bits(problem, arch, r["mapping"], cfg)
        onchip_energy += r["energy_pJ"] - r["level_energy_pJ"].get(dram.name, 0.0)
    # energy (an approximation, as for fused segments): the layers' on-chip energy under their
    # layerwise mappings plus the pipeline's own DRAM traffic at the DRAM energy per bit
    energy = (onchip_energy + 8 * res.dram_read_bytes * _energy_per_bit(dram, "read")
              + 8 * res.dram_write_bytes * _energy_per_bit(dram, "write"))
    lw_bytes = -(-lw_bits // 8)
    seg = segment_row(network, arch_input.name, res, lw_bytes, totals["cycles"],
                      totals["energy_pJ"], energy)
    atomic_write(out / "stages.csv", csv_text(stage_rows(network, arch_input.name, res),
                                              STAGE_COLUMNS))
    atomic_write(out / "fifos.csv", csv_text(fifo_rows(network, arch_input.name, res),
                                             FIFO_COLUMNS))
    atomic_write(out / "segments.csv", csv_text([seg], SEGMENT_COLUMNS))
    atomic_write(out / "schedule.yaml", pipeline_yaml(network, arch_input.name, pipe,
                                                      res.hardware))
    tot = pipeline_totals(network, arch_input, res, totals, lw_bytes, energy)
    cols = pipeline_total_columns(total_columns(arch, params or {}))
    atomic_write(out / "totals.csv", csv_text([tot], cols))
    return tot
