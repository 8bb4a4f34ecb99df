"""A whole network on one architecture: map every unique layer once, then write one row per
layer (layers.csv) and the totals (totals.csv). Finished layers are stored as they complete.
layers.csv and totals.csv depend only on the inputs and the seed; wall-clock figures go to
timing.csv."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dse import __version__
from dse.errors import SpecError
from dse.mapper.search import SearchConfig
from dse.pipeline.layer import LayerTask, map_layer
from dse.pipeline.spec import ArchInput
from dse.pipeline.store import ResultStore, content_key
from dse.pipeline.work import Interrupted, gather
from dse.pipeline.writers import atomic_write, csv_text
from dse.spec.convert import problem_to_native
from dse.workload.layers import shape_key, strip
from dse.workload.network import Network

# the Timeloop generation changes the numbers: results of different generations never mix
SEARCH_KEYS = ("objective", "search", "max_evals", "time_limit", "seed", "generation")


def layer_key(arch: ArchInput, problem, cfg: SearchConfig, densities: dict | None = None,
              dense: bool = False) -> str:
    """The store key of one layer's search. `densities` (a layer's Layer.densities) and the
    architecture's sparse optimizations are part of it; `dense`: the key of the
    same layer on the same architecture run dense (its sparse optimizations dropped)."""
    from dse.model.links import resolve_link_mode

    settings = {k: getattr(cfg, k) for k in SEARCH_KEYS}
    # the mode actually used, so an explicit default and no option share stored results
    settings["link_transfers"] = resolve_link_mode(arch.arch, cfg.link_transfers)
    if problem.compute_action != "mac":  # not in the native problem text; it prices compute
        settings["compute_action"] = problem.compute_action
    identity = arch.identity()
    if dense:
        identity.pop("sparse_optimizations", None)
    elif densities:
        settings["densities"] = densities
    return content_key(identity, problem_to_native(task_problem(problem)), settings,
                       __version__)


def is_sparse(network: Network, arch: ArchInput) -> bool:
    """A run is sparse when the architecture has sparse optimizations or a layer densities."""
    return bool(arch.sparse_optimizations) or any(
        lay.densities for lay in network.mappable())


def dense_twin_keys(network: Network, arch: ArchInput, cfg: SearchConfig) -> dict[str, str]:
    """Layer name -> key of the same layer run dense, for every layer of a sparse run (the
    speed-up and energy saving columns compare with it)."""
    from dse.arch.rules import prepare_problem

    if not is_sparse(network, arch):
        return {}
    return {lay.name: layer_key(arch, prepare_problem(lay.problem, arch.arch)[0], cfg,
                                dense=True)
            for lay in network.mappable()}


def task_problem(problem):
    """The problem a layer is mapped as: no name or source (layers of one shape share a task)
    but with its tensors' bit widths, which the model uses (dse.model.wordbits)."""
    from dataclasses import replace

    return replace(strip(problem), data_spaces=problem.data_spaces)


def shape_id(problem) -> str:
    return content_key(shape_key(problem))[:12]


def level_columns(arch) -> list[str]:
    names = [lv.name for lv in arch.levels if not lv.is_dummy]
    return ([f"energy_{n}_pJ" for n in names] + ["energy_compute_pJ"]
            + [f"reads_{n}_words" for n in names] + [f"writes_{n}_words" for n in names])


# outermost-level (DRAM) reads + writes in bytes (each tensor at its word width), the least
# words any tiling can move there with the on-chip capacity (docs/bounds.md) and actual / bound
DRAM_COLUMNS = ["dram_bytes", "dram_words_lower_bound", "dram_traffic_over_bound"]


def dram_fields(arch, result: dict) -> dict:
    """A stored layer result's DRAM columns; `dram_bytes` counts each tensor at its own word
    width (dse/pipeline/layer.py)."""
    outer = arch.levels[0].name
    words = result["reads_words"][outer] + result["writes_words"][outer]
    bound_words = result.get("dram_words_lower_bound")
    out = {"dram_bytes": result.get("dram_bytes", "")}
    if bound_words is not None:  # None: a result stored before the bound existed
        out.update(dram_words_lower_bound=bound_words,
                   dram_traffic_over_bound=words / bound_words if bound_words else "")
    return out


# a sparse run's layers (docs/sparse.md): the densities, computes as the sparse model counts
# them, and the same layer searched and run dense on the same design
SPARSE_LAYER_COLUMNS = ["densities", "actual_computes", "gated_computes", "skipped_computes",
                        "dense_cycles", "dense_energy_pJ", "sparse_speedup",
                        "sparse_energy_saving"]


def layer_columns(arch, sparse: bool = False) -> list[str]:
    return (["network", "layer", "type", "arch", "point", "shape_id", "macs", "ops", "cycles",
             "energy_pJ", "pJ_per_mac", "utilization", "area_mm2"] + level_columns(arch)
            + DRAM_COLUMNS + (SPARSE_LAYER_COLUMNS if sparse else [])
            + ["status", "reason", "mapping", "evaluated", "valid", "seed", "objective",
               "tool_version", "layer_key", "energy_sources"])


def area_columns(arch) -> list[str]:
    from dse.energy.area import level_areas_mm2

    return ["area_mm2"] + [f"area_{n}_mm2" for n in level_areas_mm2(arch)]


TIME_COLUMNS = ["clock_hz", "latency_s", "throughput_inf_per_s", "power_W"]
BUDGET_COLUMNS = ["search", "max_evals", "time_limit_s", "seed", "objective"]


def total_columns(arch, params: dict) -> list[str]:
    return (["network", "arch", "point", *[f"param.{k}" for k in params], "layers",
             "mapped_layers", "macs", "ops", "cycles", "energy_pJ", "pJ_per_mac", "utilization",
             *TIME_COLUMNS, *area_columns(arch), "energy_pinned", "energy_pinned_levels"]
            + level_columns(arch) + DRAM_COLUMNS
            + [*BUDGET_COLUMNS, "tool_version", "arch_key"])


def time_and_area(arch, cycles: float, energy_pJ: float) -> dict:
    """Seconds, inferences/s and watts from the clock (empty without one: cycles only), and the
    area per level and in total (mm^2)."""
    from dse.energy.area import level_areas_mm2

    out: dict = {c: "" for c in TIME_COLUMNS}
    if arch.clock_hz:
        out["clock_hz"] = arch.clock_hz
        if cycles:
            latency = cycles / arch.clock_hz
            out.update(latency_s=latency, throughput_inf_per_s=1.0 / latency,
                       power_W=energy_pJ * 1e-12 / latency)
    areas = level_areas_mm2(arch)
    out["area_mm2"] = sum(areas.values())
    out.update({f"area_{n}_mm2": a for n, a in areas.items()})
    return out


def plan(network: Network, arch: ArchInput, cfg: SearchConfig) -> tuple[list[LayerTask], dict]:
    """One task per unique layer shape; returns the tasks and layer name -> key. The hardware's
    rules are checked first (SpecError naming the rule), and each layer is rounded up to the
    units the hardware processes it in before it is mapped."""
    from dse.arch.rules import check_network, prepare_problem

    check_network(network, arch.arch)
    tasks: dict[str, LayerTask] = {}
    keys: dict[str, str] = {}
    sparse_run = is_sparse(network, arch)
    if sparse_run and cfg.generation != "2024":
        raise SpecError("sparse designs are modelled as the 2024 Timeloop (Sparseloop) build "
                        "only", key_path="--timeloop-generation", found=cfg.generation,
                        hint="drop --timeloop-generation legacy")
    for layer in network.mappable():
        problem = prepare_problem(layer.problem, arch.arch)[0]
        densities = layer.densities or None
        key = layer_key(arch, problem, cfg, densities)
        keys[layer.name] = key
        if key not in tasks:
            tasks[key] = LayerTask(key, task_problem(problem), arch.arch,
                                   arch.constraints_for(problem), cfg,
                                   arch.sparse_for(problem, densities,
                                                   (layer.file, layer.line)))
        if sparse_run:  # the same layer run dense, for the speed-up and energy saving
            twin = layer_key(arch, problem, cfg, dense=True)
            if twin not in tasks:
                tasks[twin] = LayerTask(twin, task_problem(problem), arch.arch,
                                        arch.constraints_for(problem), cfg)
    return list(tasks.values()), keys


def layer_rows(network: Network, arch: ArchInput, cfg: SearchConfig, keys: dict,
               results: dict, point: str, mapping_dir: str) -> list[dict]:
    from dse.energy.area import total_area_mm2

    cols = level_columns(arch.arch)
    area = total_area_mm2(arch.arch)  # the design's, on every row (per level: totals.csv)
    twins = dense_twin_keys(network, arch, cfg)
    rows = []
    for layer in network.layers:
        row = {"network": network.name, "layer": layer.name, "type": layer.type,
               "arch": arch.name, "point": point, "macs": layer.macs, "area_mm2": area,
               "seed": cfg.seed,
               "objective": cfg.objective, "tool_version": __version__}
        if layer.problem is None:
            row.update({"status": "not mapped (no data movement modelled)", "ops": 0,
                        "cycles": 0, "energy_pJ": 0.0, **{c: 0 for c in cols}})
            rows.append(row)
            continue
        key = keys[layer.name]
        r = results[key]
        sid = shape_id(layer.problem)
        row.update({"shape_id": sid, "layer_key": key, "status": r["status"],
                    "evaluated": r["evaluated"], "valid": r["valid"]})
        if r["status"] != "ok":
            row["reason"] = failure_reason(r)
        if r["status"] == "ok":
            row.update({
                "ops": r["ops"], "cycles": r["cycles"], "energy_pJ": r["energy_pJ"],
                "pJ_per_mac": r["energy_pJ"] / layer.macs if layer.macs else "",
                "utilization": r["utilization"],
                "energy_compute_pJ": r["energy_compute_pJ"],
                "mapping": f"{mapping_dir}/{sid}.yaml",
                "energy_sources": "; ".join(sorted(set(r["energy_sources"].values()))),
            })
            for lv in arch.arch.levels:
                if lv.is_dummy:
                    continue
                row[f"energy_{lv.name}_pJ"] = r["level_energy_pJ"][lv.name]
                row[f"reads_{lv.name}_words"] = r["reads_words"][lv.name]
                row[f"writes_{lv.name}_words"] = r["writes_words"][lv.name]
            row.update(dram_fields(arch.arch, r))
            if twins:
                row.update(sparse_fields(layer, r, results.get(twins[layer.name])))
        rows.append(row)
    return rows


def sparse_fields(layer, result: dict, dense: dict | None) -> dict:
    """A sparse run's layer columns: densities, computes, and the comparison with the same
    layer searched and run dense (speed-up = dense cycles / cycles; energy saving = 1 -
    energy / dense energy)."""
    dens = {t: v["density"] if isinstance(v, dict) else v for t, v in layer.densities.items()}
    out = {"densities": " ".join(f"{t}={v:g}" for t, v in sorted(dens.items())) or "dense",
           "actual_computes": result.get("actual_computes", result["ops"]),
           "gated_computes": result.get("gated_computes", 0),
           "skipped_computes": result.get("skipped_computes", 0)}
    if dense is not None and dense.get("status") == "ok":
        out.update(dense_cycles=dense["cycles"], dense_energy_pJ=dense["energy_pJ"],
                   sparse_speedup=dense["cycles"] / result["cycles"] if result["cycles"] else "",
                   sparse_energy_saving=1.0 - result["energy_pJ"] / dense["energy_pJ"]
                   if dense["energy_pJ"] else "")
    return out


def failure_reason(result: dict) -> str:
    """Why a layer has no mapping: the search's rejection counts and the smallest change."""
    rejected = ", ".join(f"{k} {v:,}" for k, v in sorted((result.get("rejected") or {}).items())
                         if v)
    text = f"{result.get('evaluated', 0):,} mappings evaluated, none valid"
    if rejected:
        text += f"; rejected: {rejected}"
    if result.get("smallest_change"):
        text += f"; smallest change that admits one: {result['smallest_change']}"
    return text


def totals_row(network: Network, arch: ArchInput, cfg: SearchConfig, rows: list[dict],
               point: str, params: dict) -> dict:
    ok = [r for r in rows if r.get("status") == "ok"]
    tot = {"network": network.name, "arch": arch.name, "point": point,
           **{f"param.{k}": v for k, v in params.items()},
           "layers": len(rows), "mapped_layers": len(ok),
           "macs": sum(r["macs"] for r in rows), "ops": sum(r["ops"] for r in ok),
           "cycles": sum(r["cycles"] for r in ok),
           "energy_pJ": sum(r["energy_pJ"] for r in ok),
           "search": cfg.search, "max_evals": "" if cfg.max_evals is None else cfg.max_evals,
           "time_limit_s": "" if cfg.time_limit is None else cfg.time_limit,
           "seed": cfg.seed, "objective": cfg.objective, "tool_version": __version__,
           "arch_key": content_key(arch.identity())[:16]}
    pinned = arch.pinned()
    tot["energy_pinned"] = bool(pinned)
    tot["energy_pinned_levels"] = "; ".join(pinned)
    tot["pJ_per_mac"] = tot["energy_pJ"] / tot["macs"] if tot["macs"] else ""
    pes = arch.arch.compute.instances
    tot["utilization"] = tot["ops"] / (pes * tot["cycles"]) if tot["cycles"] else ""
    for c in level_columns(arch.arch):
        tot[c] = sum(r.get(c, 0) or 0 for r in ok)
    dram = [r.get("dram_bytes", "") for r in ok]
    tot["dram_bytes"] = sum(dram) if "" not in dram else ""  # "": stored before it existed
    if all(r.get("dram_words_lower_bound", "") != "" for r in ok):
        outer = arch.arch.levels[0].name
        bound = sum(r["dram_words_lower_bound"] for r in ok)
        words = sum(r[f"reads_{outer}_words"] + r[f"writes_{outer}_words"] for r in ok)
        tot["dram_words_lower_bound"] = bound
        tot["dram_traffic_over_bound"] = words / bound if bound else ""
    tot.update(time_and_area(arch.arch, tot["cycles"], tot["energy_pJ"]))
    return {c: tot.get(c, "") for c in total_columns(arch.arch, params)}


def run_network(network: Network, arch: ArchInput, cfg: SearchConfig, out: Path,
                store: ResultStore, jobs: int = 1, executor: str = "local",
                scheduler: str | None = None, point: str = "", params: dict | None = None,
                on_layer: Callable[[str, bool], None] | None = None,
                on_search: Callable | None = None) -> tuple[list, dict]:
    """Map, store, and write layers.csv, totals.csv, timing.csv and one mapping YAML per
    unique shape. Ctrl-C raises Interrupted (its `missing`: the layers not mapped yet) and
    writes nothing; the layers finished so far are stored, so rerunning completes the run.
    An architecture with `execution:` runs the network with its execution model instead."""
    if arch.arch.attributes.get("execution"):
        from dse.spec.sparse import refuse_sparse_network

        refuse_sparse_network(network)
        return run_execution(network, arch, out, point, params or {})
    tasks, keys = plan(network, arch, cfg)

    def local_fn(task: LayerTask) -> dict:
        return map_layer(task, on_search(task) if on_search else None)

    def on_result(task: LayerTask, value: dict, computed: bool) -> None:
        if on_layer:
            on_layer(task.problem.name, not computed)

    try:
        work = gather(tasks, store, jobs, executor, scheduler, local_fn=local_fn,
                      on_result=on_result)
    except Interrupted as exc:
        exc.missing = [lay.name for lay in network.mappable() if keys[lay.name] not in exc.done]
        raise
    return write_results(out, network, arch, cfg, keys, work.results, point, params or {},
                         computed=work.computed)


TIMING_COLUMNS = ["layer", "layer_key", "source", "evaluated", "search_s", "evals_per_s"]


def timing_rows(network: Network, keys: dict, results: dict, computed: set) -> list[dict]:
    """Wall-clock figures per mapped layer; `source` says whether this run computed the layer
    or took it from the store (where search_s is from the run that computed it)."""
    rows = []
    for layer in network.mappable():
        key = keys[layer.name]
        r = results[key]
        s = r.get("search_s")
        rows.append({"layer": layer.name, "layer_key": key,
                     "source": "computed" if key in computed else "stored",
                     "evaluated": r["evaluated"], "search_s": s,
                     "evals_per_s": round(r["evaluated"] / s) if s else ""})
    return rows


def write_results(out: Path, network: Network, arch: ArchInput, cfg: SearchConfig, keys: dict,
                  results: dict, point: str, params: dict, computed: set | None = None
                  ) -> tuple[list, dict]:
    """One result folder: a mapping YAML per unique shape, layers.csv, totals.csv and
    timing.csv (`computed`: the keys this run computed)."""
    out.mkdir(parents=True, exist_ok=True)
    for layer in network.mappable():
        r = results[keys[layer.name]]
        if r.get("status") == "ok":
            path = out / "mappings" / f"{shape_id(layer.problem)}.yaml"
            if not path.exists():
                atomic_write(path, r["mapping"])
    rows = layer_rows(network, arch, cfg, keys, results, point, "mappings")
    tot = totals_row(network, arch, cfg, rows, point, params)
    atomic_write(out / "layers.csv", csv_text(rows, layer_columns(arch.arch,
                                                                  is_sparse(network, arch))))
    atomic_write(out / "totals.csv", csv_text([tot], total_columns(arch.arch, params)))
    atomic_write(out / "timing.csv", csv_text(timing_rows(network, keys, results,
                                                          computed or set()), TIMING_COLUMNS))
    return rows, tot



def run_execution(network: Network, arch: ArchInput, out: Path, point: str = "",
                  params: dict | None = None) -> tuple[list, dict]:
    """A whole network under the architecture's execution model (`execution: max78000`): one
    layers.csv row per hardware layer and the totals; no mapping search, nothing stored."""
    from dse.schedule import max78000

    if params or arch.overrides:
        raise SpecError(f"{arch.name} runs networks with its execution model "
                        f"({arch.arch.attributes['execution']}), which does not read the "
                        f"architecture's levels: the parameters "
                        f"{sorted(set(params or {}) | set(arch.overrides))} would change nothing",
                        hint="sweep this architecture without parameters")
    chip = max78000.chip_for(arch.arch)
    hw, tensors = max78000.schedule(network, arch.arch, chip)
    rows, tot = max78000.rows(network, arch.arch, hw, tensors, point, chip)
    tot = {**{k: v for k, v in tot.items() if k in ("network", "arch", "point")},
           **{f"param.{k}": v for k, v in (params or {}).items()}, **tot}
    cols = max78000.TOTAL_COLUMNS[:3] + [f"param.{k}" for k in (params or {})] + \
        max78000.TOTAL_COLUMNS[3:]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "layers.csv", csv_text(rows, max78000.LAYER_COLUMNS))
    atomic_write(out / "totals.csv", csv_text([tot], cols))
    return rows, tot
