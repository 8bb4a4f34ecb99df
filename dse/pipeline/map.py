"""From input files to a searched mapping and its output files (used by `dse map`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from dse import __version__
from dse.errors import SpecError, did_you_mean
from dse.mapper.search import OBJECTIVES, SearchConfig, Searcher, SearchResult
from dse.model import evaluate
from dse.pipeline.writers import (
    LEVEL_COLUMNS,
    SPARSE_COLUMNS,
    atomic_write,
    csv_text,
    level_rows,
    sparse_level_rows,
    sparse_summary,
    summary,
    write_outputs,
)
from dse.spec.build import Spec, load_spec
from dse.spec.common import get, whole_number
from dse.spec.constraints import constraints_from_document
from dse.spec.convert import mapping_to_native, mapping_to_timeloop

ALGORITHMS = {"exhaustive": "exhaustive", "linear_pruned": "exhaustive",
              "linear-pruned": "exhaustive", "random": "random", "random_pruned": "auto",
              "random-pruned": "auto", "hybrid": "auto"}


@dataclass
class MapperDefaults:
    """Settings taken from a Timeloop `mapper:` section (CLI options override them)."""

    objective: str | None = None
    search: str | None = None
    max_evals: int | None = None


# Timeloop `mapper:` keys: honoured (objective, algorithm, search size) or accepted because they
# steer Timeloop's own threads, logging and stopping rules, not which mapping is best.
MAPPER_HONOURED = {"optimization_metrics", "optimization_metric", "algorithm", "search_size",
                   "max_temporal_loops_in_a_mapping"}
MAPPER_IGNORED = {"version", "live_status", "num_threads", "timeout", "victory_condition",
                  "max_permutations_per_if_visit", "diagnostics", "log_stats", "log_suboptimal",
                  "log_interval", "log_oaves", "log_oaves_mappings", "log_all",
                  "penalize_consecutive_bypass_fails", "emit_whoop_nest", "out_prefix",
                  "filter_revisits", "sync_interval"}


def mapper_defaults(spec: Spec) -> MapperDefaults:
    node = spec.document.data.get("mapper")
    out = MapperDefaults()
    if not isinstance(node, dict):
        return out
    from dse.spec.common import check_keys, where

    check_keys(node, MAPPER_HONOURED | MAPPER_IGNORED, "mapper")
    loops = get(node, "max_temporal_loops_in_a_mapping")
    if loops not in (None, -1):
        raise SpecError("'max_temporal_loops_in_a_mapping' is not modelled yet",
                        key_path="mapper.max_temporal_loops_in_a_mapping", found=loops,
                        expected="-1 (no limit)",
                        **where(node, "max_temporal_loops_in_a_mapping"))
    metrics = get(node, "optimization_metrics") or get(node, "optimization_metric")
    if isinstance(metrics, str):
        metrics = [metrics]
    if metrics:
        joined = ",".join(str(m) for m in metrics[:2])
        if joined not in OBJECTIVES:
            f, line = node.file_of("optimization_metrics"), node.line_of("optimization_metrics")
            raise SpecError(f"optimization metrics {metrics} are not supported",
                            file=f, line=line, expected=", ".join(OBJECTIVES),
                            hint=did_you_mean(joined, OBJECTIVES))
        out.objective = joined
    algo = get(node, "algorithm")
    if algo is not None:
        if str(algo) not in ALGORITHMS:
            raise SpecError(f"unknown mapper algorithm '{algo}'", key_path="mapper.algorithm",
                            expected="one of " + ", ".join(sorted(ALGORITHMS)),
                            hint=did_you_mean(str(algo), ALGORITHMS),
                            **where(node, "algorithm"))
        out.search = ALGORITHMS[str(algo)]
    if get(node, "search_size") is not None:  # 0 = no limit given (Timeloop's default)
        size = whole_number(node, "search_size", "mapper", 0, minimum=0)
        if size > 0:
            out.max_evals = size
    return out


def pareto_rows(searcher: Searcher, result: SearchResult) -> list[dict]:
    rows = []
    for energy, cycles, cand in result.pareto:
        m = searcher.mapping_of(cand)
        loops = " | ".join(
            f"{lm.target}: " + " ".join(f"{d}{n}" for d, n in lm.temporal.items())
            + ("" if not lm.spatial else (" " if lm.temporal else "") + "spatial " + " ".join(
                f"{d}{n}" for d, n in lm.spatial.items()))
            for lm in m.levels if lm.temporal or lm.spatial)
        rows.append({"energy_pJ": energy, "cycles": cycles, "edp_pJ_cycles": energy * cycles,
                     "mapping": loops})
    return rows


def write_search_outputs(out: Path, spec: Spec, searcher: Searcher, result: SearchResult,
                         cfg: SearchConfig) -> dict:
    sizes = searcher.space.sizes()
    info = {
        "tool": "dse", "version": __version__,
        "objective": cfg.objective, "search": cfg.search, "seed": cfg.seed, "jobs": cfg.jobs,
        "max_evals": cfg.max_evals, "time_limit_s": cfg.time_limit,
        "mapspace_size": sizes["mapspace_size"],
        "pruned_size": sizes["pruned_size_upper_bound"],
        "pruned_size_is_upper_bound": True,
        "mapspace_parts": sizes,
        # evaluated: candidates the model ran on; skipped_by_bound: candidates whose lower
        # bounds could not win (not evaluated; --max-evals counts both); valid and rejected
        # count evaluated candidates only
        "evaluated": result.evaluated, "skipped_by_bound": result.skipped_by_bound,
        "bound_skip": searcher.bounds is not None, "valid": result.valid,
        "rejected": dict(sorted(result.rejected.items())),
        "evals_per_s": result.evaluated / result.wall_s if result.wall_s else None,
        "wall_s": result.wall_s, "interrupted": result.interrupted,
        "exhausted": result.exhausted,
    }
    if result.best is None:
        info["best"] = None
        info["smallest_change"] = result.smallest_change
        atomic_write(out / "search.json", json.dumps(info, indent=2) + "\n")
        return info
    mapping = searcher.mapping_of(result.best)
    ev, shown, rows, columns = evaluate_best(spec, mapping, cfg)
    info["best"] = {"energy_pJ": shown.energy_pJ, "cycles": shown.cycles,
                    "edp_pJ_cycles": shown.energy_pJ * shown.cycles}
    native = mapping_to_native(mapping, spec.arch, spec.problem)
    atomic_write(out / "mapping.yaml", "# Found by dse map; native dse format\n"
                 + yaml.safe_dump({"mapping": native}, sort_keys=False))
    timeloop = mapping_to_timeloop(mapping, spec.arch, spec.problem)
    atomic_write(out / "map.yaml", "# Found by dse map; Timeloop mapping format\n"
                 + yaml.safe_dump({"mapping": timeloop}, sort_keys=False))
    from dse.model.dram_bound import dram_summary
    from dse.model.links import resolve_link_mode

    extra = {"search": {k: info[k] for k in ("objective", "search", "seed", "evaluated",
                                             "skipped_by_bound")},
             "link_transfers": resolve_link_mode(spec.arch, cfg.link_transfers),
             "dram": dram_summary(spec.problem, spec.arch, ev)}  # docs/bounds.md
    if spec.problem.padded_from:
        from dse.arch.rules import true_macs

        extra["padded_from"] = dict(spec.problem.padded_from)
        extra["true_macs"] = true_macs(spec.problem)
        extra["notes"] = list(spec.notes)
    if spec.sparse is None:
        summ = summary(ev, spec.arch, spec.problem, spec.document.hashes, extra)
    else:
        summ = sparse_summary(shown, spec.arch, spec.problem, spec.document.hashes, extra)
    write_outputs(out, rows, summ, columns)
    atomic_write(out / "search.json", json.dumps(info, indent=2) + "\n")
    if cfg.pareto:
        prow = pareto_rows(searcher, result)
        atomic_write(out / "pareto.csv", csv_text(prow, ["energy_pJ", "cycles", "edp_pJ_cycles",
                                                         "mapping"]))
    return info


def evaluate_best(spec: Spec, mapping, cfg: SearchConfig):
    """The found mapping evaluated for the outputs: (dense evaluation, the one shown — the
    sparse one for a sparse design —, levels.csv rows, their columns or None for the dense
    ones)."""
    ev = evaluate(spec.problem, spec.arch, mapping, link_transfers=cfg.link_transfers,
                  generation=cfg.generation, check_capacity=spec.sparse is None)
    if spec.sparse is None:
        return ev, ev, level_rows(ev, spec.arch), None
    from dse.model.sparse import check_sparse_capacity, sparse_evaluate

    sev = sparse_evaluate(spec.problem, spec.arch, mapping, ev, spec.sparse,
                          link_transfers=cfg.link_transfers, generation=cfg.generation)
    check_sparse_capacity(spec.problem, spec.arch, mapping, sev)
    return ev, sev, sparse_level_rows(sev, spec.arch), LEVEL_COLUMNS + SPARSE_COLUMNS


def check_sparse_generation(spec: Spec, generation: str) -> None:
    if spec.sparse is not None and generation != "2024":
        raise SpecError("sparse designs are modelled as the 2024 Timeloop (Sparseloop) build "
                        "only", key_path="--timeloop-generation", found=generation,
                        hint="drop --timeloop-generation legacy")


def prepare(files, cfg: SearchConfig, parameters: dict | None = None) -> tuple[Spec, Searcher]:
    """Load the spec, refuse layers the hardware cannot run (its `rules:`), round dimensions up
    to the units the hardware processes them in (`dimension_granularity:`), build the search."""
    from dataclasses import replace

    from dse.arch.rules import check_layer, prepare_problem

    spec = load_spec(files, need_mapping=False, parameters=parameters, allow_sparse=True)
    check_sparse_generation(spec, cfg.generation)
    check_layer(spec.problem, spec.arch)
    problem, notes = prepare_problem(spec.problem, spec.arch)
    spec = replace(spec, problem=problem, notes=list(spec.notes) + list(notes))
    cons = constraints_from_document(spec.document.data, spec.arch, spec.problem,
                                     spec.arch_constraints)
    spec = replace(spec, notes=list(spec.notes) + list(cons.notes))
    return spec, Searcher(spec.problem, spec.arch, cons, cfg, sparse=spec.sparse)

