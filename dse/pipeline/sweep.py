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
from dse.model.links import LINK_MODES
from dse.pipeline.run import is_sparse, plan, run_execution, write_results
from dse.pipeline.spec import ArchInput, load_arch, sibling_constraints
from dse.pipeline.store import ResultStore
from dse.pipeline.work import Interrupted, gather
from dse.pipeline.writers import atomic_write, csv_text
from dse.spec.common import (
    check_keys,
    get,
    require_list,
    require_mapping,
    where,
    whole_number,
)
from dse.spec.yamlload import load_documents
from dse.workload.network import Network

SWEEP_KEYS = {"version", "name", "architectures", "workloads", "parameters", "mapper",
              "description", "schedule"}
ARCH_KEYS = {"file", "name", "constraints", "parameters"}
SEARCHES = ("auto", "random", "exhaustive")
MAPPER_KEYS = {"objective", "search", "max_evals", "seed", "timeloop_generation", "link_transfers"}


@dataclass
class Point:
    id: str
    arch_files: list[str]
    arch_name: str | None
    workload: str
    params: dict
    schedule: str = "layerwise"  # layerwise | fused | auto | a schedule file (--schedule)


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


def _generation(mapper) -> str:
    from dse.model.generation import GENERATIONS

    value = str(get(mapper, "timeloop_generation", "2024"))
    if value not in GENERATIONS:
        raise SpecError(f"unknown Timeloop generation '{value}'",
                        key_path="sweep.mapper.timeloop_generation",
                        expected=" or ".join(GENERATIONS), **where(mapper, "timeloop_generation"))
    return value


def read_sweep(file: str) -> SweepSpec:
    doc = load_documents([file])
    node = doc.data.get("sweep")
    if node is None:
        raise SpecError("a sweep file needs a top-level `sweep:` section", file=file, line=1)
    require_mapping(node, "sweep")
    check_keys(node, SWEEP_KEYS, "sweep")
    version = get(node, "version", 1)
    if isinstance(version, bool) or str(version).strip() != "1":
        raise SpecError("unsupported sweep format version", key_path="sweep.version",
                        expected="version: 1", found=version, **where(node, "version"))
    base = Path(file).parent
    name = str(get(node, "name", Path(file).stem))
    mapper = get(node, "mapper") or {}
    require_mapping(mapper, "sweep.mapper", node, "mapper")
    check_keys(mapper, MAPPER_KEYS, "sweep.mapper")
    objective = str(get(mapper, "objective", "edp"))
    if objective not in OBJECTIVES:
        raise SpecError(f"unknown objective '{objective}'", key_path="sweep.mapper.objective",
                        hint=did_you_mean(objective, OBJECTIVES), **where(mapper, "objective"))
    links = get(mapper, "link_transfers")
    if links is not None and links not in LINK_MODES:
        raise SpecError(f"unknown link-transfer mode {links!r}",
                        key_path="sweep.mapper.link_transfers", expected=", ".join(LINK_MODES),
                        hint=did_you_mean(str(links), LINK_MODES),
                        **where(mapper, "link_transfers"))
    search = str(get(mapper, "search", "auto"))
    if search not in SEARCHES:
        raise SpecError(f"unknown search '{search[:80]}'", key_path="sweep.mapper.search",
                        expected="one of " + ", ".join(SEARCHES),
                        hint=did_you_mean(search, SEARCHES), **where(mapper, "search"))
    cfg = SearchConfig(objective=objective, search=search,
                       max_evals=whole_number(mapper, "max_evals", "sweep.mapper", 100_000,
                                              minimum=1),
                       seed=whole_number(mapper, "seed", "sweep.mapper", 0, minimum=0),
                       link_transfers=links, generation=_generation(mapper))
    glob_params = get(node, "parameters") or {}
    require_mapping(glob_params, "sweep.parameters", node, "parameters")
    workloads = [str(w) for w in require_list(get(node, "workloads"), "sweep.workloads", node,
                                              "workloads")]
    schedules = _schedules(node, base)
    points: list[Point] = []
    for j, a in enumerate(require_list(get(node, "architectures"), "sweep.architectures", node,
                                       "architectures")):
        ap = f"sweep.architectures[{j}]"
        at = where(node, "architectures")
        if isinstance(a, str):
            a = {"file": a}
        require_mapping(a, ap)
        if hasattr(a, "key_lines"):
            check_keys(a, ARCH_KEYS, ap)
            at = where(a, "file")
        arch_file = _resolve_arch(str(get(a, "file")), base, f"{ap}.file", at)
        cons = [_resolve(str(c), base) for c in (get(a, "constraints") or [])]
        files = [arch_file, *(cons or sibling_constraints(arch_file))]
        params = {**glob_params, **(get(a, "parameters") or {})}
        for combo in _grid(params, ap + ".parameters", a) if params else [{}]:
            for w in workloads:
                for sched in schedules or ["layerwise"]:
                    label = get(a, "name") or Path(arch_file).stem
                    pid = _slug("__".join([str(label), Path(w).stem]
                                          + [f"{k}={v}" for k, v in combo.items()]
                                          + ([f"schedule={Path(sched).stem}"] if schedules
                                             else [])))
                    points.append(Point(pid, files, get(a, "name"), w, combo, sched))
    ids = [p.id for p in points]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise SpecError(f"design points repeat: {', '.join(sorted(dupes))}", file=file)
    return SweepSpec(name, points, cfg, file, doc.notes)


def _schedules(node, base: Path) -> list[str]:
    """`schedule: auto` or a list (an axis): layerwise, fused, auto or schedule files (beside
    the sweep file or as given), each checked now as `dse run --schedule` checks it."""
    from dse.pipeline.fused import SCHEDULE_KINDS, SEARCHED_KINDS, parse_schedule_option

    if "schedule" not in node:
        return []
    value = get(node, "schedule")
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SpecError("`schedule` has an empty list", key_path="sweep.schedule",
                        **where(node, "schedule"))
    out = []
    for v in values:
        v = str(v)
        if v not in SCHEDULE_KINDS + SEARCHED_KINDS:
            v = _resolve(v, base)
        try:
            kind = parse_schedule_option(v).kind
        except SpecError as exc:
            if exc.file is None:
                exc.key_path = exc.key_path or "sweep.schedule"
                exc.file, exc.line = where(node, "schedule").get("file"), \
                    where(node, "schedule").get("line")
            raise
        if kind == "pipeline":
            raise SpecError("pipeline schedules are not a sweep axis yet", found=v,
                            key_path="sweep.schedule", expected="layerwise, fused, auto or a "
                            "fused schedule file", hint="run a pipeline with `dse run --schedule "
                            "pipeline`", **where(node, "schedule"))
        out.append(v)
    if len(set(out)) != len(out):
        raise SpecError("`schedule` lists a schedule twice", key_path="sweep.schedule",
                        found=values, **where(node, "schedule"))
    return out


def _resolve(path: str, base: Path) -> str:
    p = Path(path)
    if p.is_absolute() or p.exists():
        return str(p)
    return str(base / p) if (base / p).exists() else str(p)


def _resolve_arch(ref: str, base: Path, key_path: str, at: dict) -> str:
    """A file (as given or beside the sweep file) or a library name, as `dse arch show` takes."""
    from dse.spec.arch_library import resolve

    path = _resolve(ref, base)
    try:
        if Path(path).is_file():
            return path
    except (OSError, ValueError):  # a name too long or with a NUL byte: no such file
        pass
    try:
        return str(resolve(ref))
    except SpecError as exc:
        raise SpecError(exc.message, key_path=key_path, expected=exc.expected, hint=exc.hint,
                        **at) from None


def _streaming_point(p: Point, out: Path, networks: dict, done: dict, refused: dict) -> bool:
    """A streaming dataflow design is allocated and evaluated at once (no layer mappings);
    its `parameters` are dotted overrides of the architecture file (`bits.weights: [8, 4]`,
    `engine.dsp_packing: [true, false]`). False if the point is a loop-nest architecture."""
    from dse.pipeline.streaming import run_streaming
    from dse.spec.streaming_arch import file_is_streaming, load_streaming
    from dse.spec.workload_library import load_workload

    if not file_is_streaming(Path(p.arch_files[0])):
        return False
    arch = load_streaming(p.arch_files[0], p.params)
    if p.arch_name:
        arch = type(arch)(**{**arch.__dict__, "name": p.arch_name})
    if p.workload not in networks:
        networks[p.workload] = load_workload(p.workload)
    try:
        _, tot = run_streaming(networks[p.workload], arch, out / p.id, point=p.id)
    except SpecError as exc:  # does not fit the board: say so, go on
        refused[p.id] = str(exc)
        return True
    done[p.id] = {**tot, **{f"param.{k}": v for k, v in p.params.items()}}
    return True


def _schedule_refused(p: Point, refused: dict) -> bool:
    """A fused or auto schedule applies to loop-nest architectures only."""
    from dse.spec.streaming_arch import file_is_streaming

    if file_is_streaming(Path(p.arch_files[0])):
        refused[p.id] = (f"schedule {p.schedule}: a streaming architecture runs every layer on "
                         "its own engine (schedules apply to loop-nest architectures)")
        return True
    return False


def _schedule_point(p: Point, loaded: tuple, out: Path, store: ResultStore, jobs: int,
                    cfg: SearchConfig, rows: list, tot: dict, done: dict, refused: dict) -> None:
    """A point's fused or auto schedule after its layers are mapped (dse/pipeline/fused.py):
    its totals row replaces the layerwise one; a schedule that cannot run is refused."""
    from dse.pipeline.fused import parse_schedule_option, write_fused

    arch, net, _, _ = loaded
    bad = [r["layer"] for r in rows if r.get("status") not in ("ok", None)
           and not str(r.get("status")).startswith("not mapped")]
    if bad:
        refused[p.id] = (f"schedule {p.schedule}: layers without a layerwise mapping "
                         f"({', '.join(bad[:5])})")
        return
    try:
        _, done[p.id], _ = write_fused(out / p.id, net, arch, cfg,
                                       parse_schedule_option(p.schedule), store, rows, tot,
                                       p.id, p.params, jobs)
    except SpecError as exc:
        refused[p.id] = f"schedule {p.schedule}: {exc}"


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
    from dse.spec.workload_library import load_workload

    points = spec.points
    if shard is not None:
        i, n = shard
        points = [p for k, p in enumerate(points) if k % n == i]
    loaded: dict[str, tuple[ArchInput, Network, list, dict]] = {}
    networks: dict[str, Network] = {}
    all_tasks: dict[str, object] = {}
    waiting: dict[str, set[str]] = {}
    refused: dict[str, str] = {}
    done_points: dict[str, dict] = {}
    pinned: dict[str, list[str]] = {}
    for p in points:
        if p.schedule != "layerwise" and _schedule_refused(p, refused):
            continue
        if _streaming_point(p, out, networks, done_points, refused):
            continue
        arch = load_arch(p.arch_files, p.params, p.arch_name)
        if arch.pinned():
            pinned[p.id] = arch.pinned()
        if p.workload not in networks:
            networks[p.workload] = load_workload(p.workload)
        net = networks[p.workload]
        if arch.arch.attributes.get("execution"):  # a chip's execution model: nothing to map
            if p.schedule != "layerwise":
                refused[p.id] = (f"schedule {p.schedule}: {arch.name} runs networks with its "
                                 "execution model (schedules apply to loop-nest architectures)")
                continue
            try:
                done_points[p.id] = run_execution(net, arch, out / p.id, p.id, p.params)[1]
            except SpecError as exc:
                refused[p.id] = str(exc)
            continue
        if p.schedule != "layerwise" and is_sparse(net, arch):  # as `dse run` refuses it
            refused[p.id] = (f"schedule {p.schedule}: fused schedules are not modelled for "
                             "sparse designs yet (an architecture with sparse_optimizations or "
                             "layers with densities); run them layer by layer")
            continue
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
    computed: set[str] = set()

    points = [p for p in points if p.id not in refused]
    users: dict[str, list[str]] = {}  # layer key -> the points that need it
    for p in points:
        for key in waiting.get(p.id, ()):  # streaming and execution-model points map nothing
            users.setdefault(key, []).append(p.id)
    by_id = {p.id: p for p in points}

    scheduled: dict[str, tuple[list, dict]] = {}  # fused/auto points, finished after gather
    axis = any(p.schedule != "layerwise" for p in points)

    def finish(pid: str) -> None:
        p = by_id[pid]
        arch, net, _, keys = loaded[pid]
        rows, tot = write_results(out / pid, net, arch, spec.config, keys, results, pid,
                                  p.params, computed=computed)
        done_points[pid] = tot
        if p.schedule != "layerwise":
            scheduled[pid] = (rows, tot)
        elif axis:  # beside fused/auto rows in sweep.csv, say which rows are layerwise
            done_points[pid] = {**tot, "schedule": "layerwise"}

    for p in points:
        if p.id in waiting and not waiting[p.id]:
            finish(p.id)
    tasks = list(all_tasks.values())
    if progress:
        progress(0, len(tasks))

    def on_result(task, value: dict, fresh: bool) -> None:
        results[task.key] = value
        if fresh:
            computed.add(task.key)
        if progress:
            progress(len(results), len(tasks))
        for pid in users.get(task.key, []):  # write each point as soon as it is complete
            waiting[pid].discard(task.key)
            if not waiting[pid]:
                finish(pid)

    # one layer search evaluates ~40,000 mappings/s: group small searches so that each task
    # sent to a dask worker is worth at least ~0.1 s
    group = math.ceil(4000 / spec.config.max_evals) if spec.config.max_evals < 4000 else 1
    try:
        work = gather(tasks, store, jobs, executor, scheduler, batch=group,
                      on_result=on_result)
    except Interrupted as exc:
        exc.missing = [p.id for p in points if p.id not in done_points]
        raise
    for pid, (rows, tot) in scheduled.items():  # their own searches may map more layers
        _schedule_point(by_id[pid], loaded[pid], out, store, jobs, spec.config, rows, tot,
                        done_points, refused)
    points = [p for p in points if p.id not in refused]
    reused = len(work.reused)
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
        "tasks": len(all_tasks), "computed": len(work.computed), "reused": reused,
        "refused": refused,
        "energy_pinned": pinned,
        "mapper": {"objective": spec.config.objective, "search": spec.config.search,
                   "max_evals": spec.config.max_evals, "seed": spec.config.seed,
                   "timeloop_generation": spec.config.generation,
                   "link_transfers": spec.config.link_transfers},
    }, indent=2) + "\n")
    return SweepResult(len(points), len(work.computed), reused, ordered, refused, pinned)
