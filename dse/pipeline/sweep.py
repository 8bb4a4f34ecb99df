"""Sweeps: a grid over architectures x workloads x parameter overrides.

Every design point is expanded into (point, unique layer) tasks; identical tasks (same content
key) run once. Results go to the store as they finish, so a killed sweep resumes where it
stopped; a point's folder is written as soon as its last layer is done, and sweep.csv at the
end. Points are ordered deterministically; `shard i/N` takes every N-th point from i.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dse.errors import SpecError, did_you_mean
from dse.mapper.search import OBJECTIVES, SearchConfig
from dse.network import Network
from dse.pipeline.executor import run_tasks
from dse.pipeline.layer import map_layer
from dse.pipeline.run import plan, write_results
from dse.pipeline.spec import ArchInput, load_arch, sibling_constraints
from dse.pipeline.store import ResultStore
from dse.report_model import atomic_write, csv_text
from dse.spec.common import check_keys, get, require_list, require_mapping, where
from dse.spec.yamlload import load_documents

SWEEP_KEYS = {"version", "name", "architectures", "workloads", "parameters", "mapper",
              "description"}
ARCH_KEYS = {"file", "name", "constraints", "parameters"}
MAPPER_KEYS = {"objective", "search", "max_evals", "seed"}


@dataclass
class Point:
    id: str
    arch_files: list[str]
    arch_name: str | None
    workload: str
    params: dict


@dataclass
class SweepSpec:
    name: str
    points: list[Point]
    config: SearchConfig
    file: str
    notes: list[str] = field(default_factory=list)


def _grid(params: dict, path: str, node) -> list[dict]:
    keys = list(params)
    values = []
    for k in keys:
        v = params[k]
        values.append(v if isinstance(v, list) else [v])
        if isinstance(v, list) and not v:
            raise SpecError(f"parameter '{k}' has an empty list", key_path=f"{path}.{k}",
                            **where(node, k))
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)


def read_sweep(file: str) -> SweepSpec:
    doc = load_documents([file])
    node = doc.data.get("sweep")
    if node is None:
        raise SpecError("a sweep file needs a top-level `sweep:` section", file=file, line=1)
    require_mapping(node, "sweep")
    check_keys(node, SWEEP_KEYS, "sweep")
    base = Path(file).parent
    name = str(get(node, "name", Path(file).stem))
    mapper = get(node, "mapper") or {}
    require_mapping(mapper, "sweep.mapper", node, "mapper")
    check_keys(mapper, MAPPER_KEYS, "sweep.mapper")
    objective = str(get(mapper, "objective", "edp"))
    if objective not in OBJECTIVES:
        raise SpecError(f"unknown objective '{objective}'", key_path="sweep.mapper.objective",
                        hint=did_you_mean(objective, OBJECTIVES), **where(mapper, "objective"))
    cfg = SearchConfig(objective=objective, search=str(get(mapper, "search", "auto")),
                       max_evals=int(get(mapper, "max_evals", 100_000)),
                       seed=int(get(mapper, "seed", 0)))
    glob_params = get(node, "parameters") or {}
    require_mapping(glob_params, "sweep.parameters", node, "parameters")
    workloads = [str(w) for w in require_list(get(node, "workloads"), "sweep.workloads", node,
                                              "workloads")]
    points: list[Point] = []
    for j, a in enumerate(require_list(get(node, "architectures"), "sweep.architectures", node,
                                       "architectures")):
        ap = f"sweep.architectures[{j}]"
        if isinstance(a, str):
            a = {"file": a}
        require_mapping(a, ap)
        if hasattr(a, "key_lines"):
            check_keys(a, ARCH_KEYS, ap)
        arch_file = _resolve(str(get(a, "file")), base)
        cons = [_resolve(str(c), base) for c in (get(a, "constraints") or [])]
        files = [arch_file, *(cons or sibling_constraints(arch_file))]
        params = {**glob_params, **(get(a, "parameters") or {})}
        for combo in _grid(params, ap + ".parameters", a) if params else [{}]:
            for w in workloads:
                label = get(a, "name") or Path(arch_file).stem
                pid = _slug("__".join([str(label), Path(w).stem]
                                      + [f"{k}={v}" for k, v in combo.items()]))
                points.append(Point(pid, files, get(a, "name"), w, combo))
    ids = [p.id for p in points]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise SpecError(f"design points repeat: {', '.join(sorted(dupes))}", file=file)
    return SweepSpec(name, points, cfg, file, doc.notes)


def _resolve(path: str, base: Path) -> str:
    p = Path(path)
    if p.is_absolute() or p.exists():
        return str(p)
    return str(base / p) if (base / p).exists() else str(p)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise SpecError(f"shard '{text}' must look like i/N with 0 <= i < N")
    return int(m.group(1)), int(m.group(2))


@dataclass
class SweepResult:
    points: int
    computed: int
    reused: int
    rows: list[dict]
    refused: dict = field(default_factory=dict)
    pinned: dict = field(default_factory=dict)  # point id -> levels whose costs did not follow


def pinned_warning(point: str, levels: list[str]) -> str:
    return (f"WARNING {point}: the sweep resizes {', '.join(levels)} but their energy per "
            "action / area are pinned in the spec, so they do NOT follow the new size "
            "(energy_pinned=True); set `energy_model:` and drop the fixed energies to have them "
            "re-estimated")


def run_sweep(spec: SweepSpec, out: Path, store: ResultStore, jobs: int = 1,
              executor: str = "local", scheduler: str | None = None,
              shard: tuple[int, int] | None = None,
              progress: Callable[[int, int], None] | None = None) -> SweepResult:
    from dse.workload_library import load_workload

    points = spec.points
    if shard is not None:
        i, n = shard
        points = [p for k, p in enumerate(points) if k % n == i]
    loaded: dict[str, tuple[ArchInput, Network, list, dict]] = {}
    networks: dict[str, Network] = {}
    all_tasks: dict[str, object] = {}
    waiting: dict[str, set[str]] = {}
    refused: dict[str, str] = {}
    pinned: dict[str, list[str]] = {}
    for p in points:
        arch = load_arch(p.arch_files, p.params, p.arch_name)
        if arch.pinned():
            pinned[p.id] = arch.pinned()
        if p.workload not in networks:
            networks[p.workload] = load_workload(p.workload)
        net = networks[p.workload]
        try:
            tasks, keys = plan(net, arch, spec.config)
        except SpecError as exc:  # the hardware cannot run this network: say so, go on
            refused[p.id] = str(exc)
            continue
        loaded[p.id] = (arch, net, tasks, keys)
        waiting[p.id] = {t.key for t in tasks}
        for t in tasks:
            all_tasks.setdefault(t.key, t)
    results: dict[str, dict] = {}
    todo = []
    for key, t in all_tasks.items():
        cached = store.get(key)
        if cached is None:
            todo.append(t)
        else:
            results[key] = cached
    reused = len(all_tasks) - len(todo)
    done_points: dict[str, dict] = {}

    def finish_ready() -> None:
        for p in points:
            if p.id in done_points or not waiting[p.id] <= results.keys():
                continue
            arch, net, _, keys = loaded[p.id]
            _, tot = write_results(out / p.id, net, arch, spec.config, keys, results, p.id,
                                   p.params)
            done_points[p.id] = tot

    points = [p for p in points if p.id not in refused]
    finish_ready()
    done = reused
    if progress:
        progress(done, len(all_tasks))
    # one layer search evaluates ~40,000 mappings/s: group small searches so that each task
    # sent to a dask worker is worth at least ~0.1 s
    group = math.ceil(4000 / spec.config.max_evals) if spec.config.max_evals < 4000 else 1
    for task, res in run_tasks(map_layer, todo, jobs, executor, scheduler, batch=group):
        store.put(task.key, res)
        results[task.key] = res
        done += 1
        if progress:
            progress(done, len(all_tasks))
        finish_ready()
    ordered = [done_points[p.id] for p in points]
    columns: list[str] = []
    for tot in ordered:
        for c in tot:
            if c not in columns:
                columns.append(c)
    atomic_write(out / "sweep.csv", csv_text(ordered, columns))
    atomic_write(out / "sweep.json", json.dumps({
        "sweep": spec.name, "file": spec.file, "points": [p.id for p in points],
        "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
        "tasks": len(all_tasks), "computed": len(todo), "reused": reused,
        "refused": refused,
        "energy_pinned": pinned,
        "mapper": {"objective": spec.config.objective, "search": spec.config.search,
                   "max_evals": spec.config.max_evals, "seed": spec.config.seed},
    }, indent=2) + "\n")
    return SweepResult(len(points), len(todo), reused, ordered, refused, pinned)
