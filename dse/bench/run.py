"""Benchmark cases: mapper throughput (evaluated mappings per second, one process) on the
Eyeriss-like VGG layer (Timeloop ISPASS ex06), the same layer sparse (SPARSE_VGG) and a
ResNet-18 3x3 layer, and single-mapping model evaluation time. Figures are measured, never
stored."""

from __future__ import annotations

import time
from pathlib import Path

from dse.spec.library_paths import bundled_dir

EYERISS = ["arch_specs/eyeriss_like.yaml", "arch_specs/eyeriss_like.constraints.yaml"]
CASES = {
    "eyeriss_vgg02_conv5": EYERISS + ["workloads/vgg02_conv5.yaml"],
    "eyeriss_resnet18_conv2_x": EYERISS + ["workloads/resnet18_conv2_x.yaml"],
}


# The VGG layer above as a Timeloop problem with densities, and an Eyeriss-v1-like set of
# sparse optimizations on the Eyeriss-like design: input activations at density 0.5 (an
# illustrative figure for post-ReLU activations, not a measured one) gate the weight and psum
# scratchpads' accesses, and the input scratchpad keeps inputs run-length compressed. Same
# design, layer and constraints as eyeriss_vgg02_conv5, so the mapspace is the same and the
# two throughputs compare the dense and the sparse model.
SPARSE_VGG = """
problem:
  version: '0.4'
  shape:
    name: CNN_Layer
    dimensions: [C, M, R, S, N, P, Q]
    coefficients:
    - {name: Wstride, default: 1}
    - {name: Hstride, default: 1}
    - {name: Wdilation, default: 1}
    - {name: Hdilation, default: 1}
    data_spaces:
    - name: Weights
      projection: [[[C]], [[M]], [[R]], [[S]]]
    - name: Inputs
      projection: [[[N]], [[C]], [[R, Wdilation], [P, Wstride]], [[S, Hdilation], [Q, Hstride]]]
    - name: Outputs
      projection: [[[N]], [[M]], [[Q]], [[P]]]
      read_write: true
  instance:
    C: 128
    M: 256
    R: 3
    S: 3
    N: 1
    P: 56
    Q: 56
    densities:
      Inputs: {distribution: fixed_structured, density: 0.5}
sparse_optimizations:
  targets:
  - name: weights_spad
    action_optimization:
    - type: gating
      options: [{target: Weights, condition_on: [Inputs]}]
  - name: psum_spad
    action_optimization:
    - type: gating
      options: [{target: Outputs, condition_on: [Inputs]}]
  - name: ifmap_spad
    representation_format:
      data_spaces:
      - name: Inputs
        ranks: [{format: RLE}]
"""


def _bundled(rel: str) -> str:
    """`arch_specs/x.yaml` -> that file of the bundled library (checkout or installed); an
    absolute path stays as it is."""
    if Path(rel).is_absolute():
        return rel
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
        "considered_per_cpu_s": round(result.considered / cpu, 1),
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


def bench_sparse(search: str, max_evals: int, objective: str = "delay,energy",
                 bound_skip: bool = True) -> dict:
    """The mapper on the sparse VGG case (SPARSE_VGG); `dense_ratio` is added by run_all."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        sparse_file = Path(tmp) / "vgg02_conv5_sparse.yaml"
        sparse_file.write_text(SPARSE_VGG)
        return bench_mapper(EYERISS + [str(sparse_file)], search, max_evals,
                            objective=objective, bound_skip=bound_skip)


def run_all(max_evals: int, searches: tuple[str, ...] = ("random", "auto"),
            network: bool = True, objective: str = "delay,energy",
            bound_skip: bool = True) -> dict:
    out = {}
    for name, files in CASES.items():
        for search in searches:
            out[f"{name}/{search}"] = bench_mapper(files, search, max_evals,
                                                   objective=objective, bound_skip=bound_skip)
    for search in searches:
        # against the dense case on the same design, layer and mapspace (measured just
        # before), per CPU second: the search's pace (candidates drawn; a sparse search
        # evaluates every one, a dense one skips by bound unless --no-bound-skip) and, without
        # bound-skip, the model's rate (evaluated mappings)
        r = bench_sparse(search, max_evals, objective=objective, bound_skip=bound_skip)
        dense = out[f"eyeriss_vgg02_conv5/{search}"]
        r["considered_per_cpu_s_vs_dense"] = round(
            r["considered_per_cpu_s"] / dense["considered_per_cpu_s"], 3)
        if not bound_skip:
            r["evals_per_cpu_s_vs_dense"] = round(
                r["evals_per_cpu_s"] / dense["evals_per_cpu_s"], 3)
        out[f"eyeriss_vgg02_conv5_sparse/{search}"] = r
    out["model_single_mapping/eyeriss_vgg02_conv5"] = bench_model()
    if network:
        out["network_end_to_end/resnet50_eyeriss_like_jobs2"] = bench_network()
    return out
