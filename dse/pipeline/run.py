"""A whole network on one architecture: map every unique layer once, then write one row per
layer (layers.csv) and the totals (totals.csv). Finished layers are stored as they complete."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dse import __version__
from dse.errors import SpecError
from dse.layers import shape_key, strip
from dse.mapper.search import SearchConfig
from dse.network import Network
from dse.pipeline.executor import run_tasks
from dse.pipeline.layer import LayerTask, map_layer
from dse.pipeline.spec import ArchInput
from dse.pipeline.store import ResultStore, content_key
from dse.report_model import atomic_write, csv_text
from dse.spec.convert import problem_to_native

# the Timeloop generation changes the numbers: results of different generations never mix
SEARCH_KEYS = ("objective", "search", "max_evals", "time_limit", "seed", "generation")


def layer_key(arch: ArchInput, problem, cfg: SearchConfig) -> str:
    from dse.model.links import resolve_link_mode

    settings = {k: getattr(cfg, k) for k in SEARCH_KEYS}
    # the mode actually used, so an explicit default and no option share stored results
    settings["link_transfers"] = resolve_link_mode(arch.arch, cfg.link_transfers)
    if problem.compute_action != "mac":  # not in the native problem text; it prices compute
        settings["compute_action"] = problem.compute_action
    return content_key(arch.identity(), problem_to_native(task_problem(problem)), settings,
                       __version__)


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


def layer_columns(arch) -> list[str]:
    return (["network", "layer", "type", "arch", "point", "shape_id", "macs", "ops", "cycles",
             "energy_pJ", "pJ_per_mac", "utilization"] + level_columns(arch)
            + ["status", "reason", "mapping", "evaluated", "valid", "search_s", "seed", "objective",
               "tool_version", "layer_key", "energy_sources"])


def latency(cycles: int, clock_hz: float | None) -> dict:
    """clock_hz and latency_s columns; empty when the architecture gives no clock."""
    return {"clock_hz": clock_hz or "", "latency_s": cycles / clock_hz if clock_hz else ""}


def total_columns(arch, params: dict) -> list[str]:
    return (["network", "arch", "point", *[f"param.{k}" for k in params], "layers",
             "mapped_layers", "macs", "ops", "cycles", "clock_hz", "latency_s", "energy_pJ",
             "pJ_per_mac", "utilization"]
            + level_columns(arch) + ["seed", "objective", "tool_version", "arch_key"])


def plan(network: Network, arch: ArchInput, cfg: SearchConfig) -> tuple[list[LayerTask], dict]:
    """One task per unique layer shape; returns the tasks and layer name -> key. The hardware's
    rules are checked first (SpecError naming the rule), and each layer is rounded up to the
    units the hardware processes it in before it is mapped."""
    from dse.arch_rules import check_network, prepare_problem

    check_network(network, arch.arch)
    tasks: dict[str, LayerTask] = {}
    keys: dict[str, str] = {}
    for layer in network.mappable():
        problem = prepare_problem(layer.problem, arch.arch)[0]
        key = layer_key(arch, problem, cfg)
        keys[layer.name] = key
        if key not in tasks:
            tasks[key] = LayerTask(key, task_problem(problem), arch.arch,
                                   arch.constraints_for(problem), cfg)
    return list(tasks.values()), keys


def layer_rows(network: Network, arch: ArchInput, cfg: SearchConfig, keys: dict,
               results: dict, point: str, mapping_dir: str) -> list[dict]:
    cols = level_columns(arch.arch)
    rows = []
    for layer in network.layers:
        row = {"network": network.name, "layer": layer.name, "type": layer.type,
               "arch": arch.name, "point": point, "macs": layer.macs, "seed": cfg.seed,
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
                    "evaluated": r["evaluated"], "valid": r["valid"], "search_s": r["search_s"]})
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
        rows.append(row)
    return rows


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
           "seed": cfg.seed, "objective": cfg.objective, "tool_version": __version__,
           "arch_key": content_key(arch.identity())[:16]}
    tot.update(latency(tot["cycles"], arch.arch.clock_hz))
    tot["pJ_per_mac"] = tot["energy_pJ"] / tot["macs"] if tot["macs"] else ""
    pes = arch.arch.compute.instances
    tot["utilization"] = tot["ops"] / (pes * tot["cycles"]) if tot["cycles"] else ""
    for c in level_columns(arch.arch):
        tot[c] = sum(r.get(c, 0) or 0 for r in ok)
    return tot


def run_network(network: Network, arch: ArchInput, cfg: SearchConfig, out: Path,
                store: ResultStore, jobs: int = 1, executor: str = "local",
                scheduler: str | None = None, point: str = "", params: dict | None = None,
                on_layer: Callable[[str, bool], None] | None = None,
                on_search: Callable | None = None) -> tuple[list, dict]:
    """Map, store, and write layers.csv, totals.csv and one mapping YAML per unique shape.
    An architecture with `execution:` runs the network with its execution model instead."""
    if arch.arch.attributes.get("execution"):
        return run_execution(network, arch, out, point, params or {})
    tasks, keys = plan(network, arch, cfg)
    results: dict[str, dict] = {}
    todo = []
    for t in tasks:
        cached = store.get(t.key)
        if cached is not None:
            results[t.key] = cached
            if on_layer:
                on_layer(t.problem.name, True)
        else:
            todo.append(t)
    if jobs <= 1 and executor == "local" and on_search is not None:
        finished = ((t, map_layer(t, on_search(t))) for t in todo)  # one layer bar per task
    else:
        finished = run_tasks(map_layer, todo, jobs, executor, scheduler)
    for task, res in finished:
        store.put(task.key, res)
        results[task.key] = res
        if on_layer:
            on_layer(task.problem.name, False)
    return write_results(out, network, arch, cfg, keys, results, point, params or {})


def write_results(out: Path, network: Network, arch: ArchInput, cfg: SearchConfig, keys: dict,
                  results: dict, point: str, params: dict) -> tuple[list, dict]:
    """One result folder: a mapping YAML per unique shape, layers.csv and totals.csv."""
    out.mkdir(parents=True, exist_ok=True)
    for layer in network.mappable():
        r = results[keys[layer.name]]
        if r.get("status") == "ok":
            path = out / "mappings" / f"{shape_id(layer.problem)}.yaml"
            if not path.exists():
                atomic_write(path, r["mapping"])
    rows = layer_rows(network, arch, cfg, keys, results, point, "mappings")
    tot = totals_row(network, arch, cfg, rows, point, params)
    atomic_write(out / "layers.csv", csv_text(rows, layer_columns(arch.arch)))
    atomic_write(out / "totals.csv", csv_text([tot], total_columns(arch.arch, params)))
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
