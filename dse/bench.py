"""Benchmark cases: mapper throughput (evaluated mappings per second, one process) on the
Eyeriss-like VGG layer (Timeloop ISPASS ex06) and a ResNet-18 3x3 layer, and single-mapping
model evaluation time. Figures are measured, never stored."""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EYERISS = ["arch_specs/eyeriss_like.yaml", "arch_specs/eyeriss_like.constraints.yaml"]
CASES = {
    "eyeriss_vgg02_conv5": EYERISS + ["workloads/vgg02_conv5.yaml"],
    "eyeriss_resnet18_conv2_x": EYERISS + ["workloads/resnet18_conv2_x.yaml"],
}


def bench_mapper(files: list[str], search: str, max_evals: int, seed: int = 0) -> dict:
    from dse.mapper.run import prepare
    from dse.mapper.search import SearchConfig

    cfg = SearchConfig(objective="delay,energy", search=search, max_evals=max_evals, seed=seed)
    _, searcher = prepare([str(ROOT / f) for f in files], cfg)
    result = searcher.run()
    best = result.best
    return {
        "evaluated": result.evaluated,
        "valid": result.valid,
        "wall_s": round(result.wall_s, 3),
        "evals_per_s": round(result.evaluated / result.wall_s, 1),
        "best_cycles": None if best is None else best.cycles,
        "best_energy_pJ": None if best is None else best.energy_pJ,
    }


def bench_model(repeats: int = 100) -> dict:
    from dse.model import evaluate
    from dse.spec.build import load_spec

    spec = load_spec([str(ROOT / f) for f in (
        "arch_specs/eyeriss_like.yaml", "workloads/vgg02_conv5.yaml",
        "mappings/eyeriss_like_vgg02_conv5.yaml")])
    t0 = time.perf_counter()
    for _ in range(repeats):
        evaluate(spec.problem, spec.arch, spec.mapping)
    wall = time.perf_counter() - t0
    return {"evaluated": repeats, "wall_s": round(wall, 3), "evals_per_s": round(repeats / wall, 1)}


def run_all(max_evals: int, searches: tuple[str, ...] = ("random", "auto")) -> dict:
    out = {}
    for name, files in CASES.items():
        for search in searches:
            out[f"{name}/{search}"] = bench_mapper(files, search, max_evals)
    out["model_single_mapping/eyeriss_vgg02_conv5"] = bench_model()
    return out
