"""Benchmark cases: mapper throughput (evaluated mappings per second, one process) on the
Eyeriss-like VGG layer (Timeloop ISPASS ex06) and a ResNet-18 3x3 layer, and single-mapping
model evaluation time. Figures are measured, never stored."""

from __future__ import annotations

import time
from pathlib import Path

from dse.spec.library_paths import bundled_dir

EYERISS = ["arch_specs/eyeriss_like.yaml", "arch_specs/eyeriss_like.constraints.yaml"]
CASES = {
    "eyeriss_vgg02_conv5": EYERISS + ["workloads/vgg02_conv5.yaml"],
    "eyeriss_resnet18_conv2_x": EYERISS + ["workloads/resnet18_conv2_x.yaml"],
}


def _bundled(rel: str) -> str:
    """`arch_specs/x.yaml` -> that file of the bundled library (checkout or installed)."""
    folder, _, name = rel.partition("/")
    return str(bundled_dir(folder) / name)


def bench_mapper(files: list[str], search: str, max_evals: int, seed: int = 0,
                 objective: str = "delay,energy", bound_skip: bool = True) -> dict:
    from dse.mapper.search import SearchConfig
    from dse.pipeline.map import prepare

    cfg = SearchConfig(objective=objective, search=search, max_evals=max_evals, seed=seed,
                       bound_skip=bound_skip)
    _, searcher = prepare([_bundled(f) for f in files], cfg)
    cpu0 = time.process_time()
    result = searcher.run()
    cpu = time.process_time() - cpu0
    best = result.best
    return {
        "evaluated": result.evaluated,
        "skipped_by_bound": result.skipped_by_bound,
        "valid": result.valid,
        "wall_s": round(result.wall_s, 3),
        "evals_per_s": round(result.evaluated / result.wall_s, 1),
        "cpu_s": round(cpu, 3),
        "evals_per_cpu_s": round(result.evaluated / cpu, 1),
        # candidates drawn (evaluated + skipped by bound) per second: the search's pace
        "considered_per_s": round(result.considered / result.wall_s, 1),
        "best_cycles": None if best is None else best.cycles,
        "best_energy_pJ": None if best is None else best.energy_pJ,
        "kernel": searcher.model.kernel,  # dse.model.kernel: numba or numpy ($DSE_KERNEL)
    }


def bench_model(repeats: int = 100) -> dict:
    from dse.model import evaluate
    from dse.spec.build import load_spec

    spec = load_spec([_bundled(f) for f in (
        "arch_specs/eyeriss_like.yaml", "workloads/vgg02_conv5.yaml",
        "mappings/eyeriss_like_vgg02_conv5.yaml")])
    t0 = time.perf_counter()
    for _ in range(repeats):
        evaluate(spec.problem, spec.arch, spec.mapping)
    wall = time.perf_counter() - t0
    return {"evaluated": repeats, "wall_s": round(wall, 3), "evals_per_s": round(repeats / wall, 1)}


def bench_network(workload: str = "resnet50", jobs: int = 2) -> dict:
    """A whole network end to end with the default search and a fresh result store."""
    import tempfile

    from dse.mapper.search import SearchConfig
    from dse.pipeline.run import run_network
    from dse.pipeline.spec import load_arch
    from dse.pipeline.store import ResultStore
    from dse.spec.workload_library import load_workload

    arch = load_arch([_bundled(f) for f in EYERISS])
    net = load_workload(workload)
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultStore(Path(tmp) / "store.sqlite")
        t0 = time.perf_counter()
        rows, tot = run_network(net, arch, SearchConfig(max_evals=100_000), Path(tmp) / "out",
                                store, jobs=jobs)
        wall = time.perf_counter() - t0
        store.close()
    evaluated = sum(int(r.get("evaluated") or 0) for r in {r.get("layer_key"): r
                                                            for r in rows}.values())
    return {"evaluated": evaluated, "wall_s": round(wall, 2),
            "evals_per_s": round(evaluated / wall, 1), "jobs": jobs,
            "unique_layers": len({r.get("layer_key") for r in rows if r.get("layer_key")}),
            "cycles": tot["cycles"], "energy_pJ": tot["energy_pJ"]}


def run_all(max_evals: int, searches: tuple[str, ...] = ("random", "auto"),
            network: bool = True, objective: str = "delay,energy",
            bound_skip: bool = True) -> dict:
    out = {}
    for name, files in CASES.items():
        for search in searches:
            out[f"{name}/{search}"] = bench_mapper(files, search, max_evals,
                                                   objective=objective, bound_skip=bound_skip)
    out["model_single_mapping/eyeriss_vgg02_conv5"] = bench_model()
    if network:
        out["network_end_to_end/resnet50_eyeriss_like_jobs2"] = bench_network()
    return out
