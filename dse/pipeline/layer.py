"""Map one layer on one architecture: the unit of parallel work (a pure function of its task)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import yaml

from dse import __version__
from dse.arch.architecture import Architecture
from dse.mapper.constraints import Constraints
from dse.mapper.search import SearchConfig, Searcher
from dse.model import evaluate
from dse.model.wordbits import tensor_bits
from dse.spec.convert import mapping_to_native
from dse.workload.problem import Problem


@dataclass(frozen=True)
class LayerTask:
    key: str
    problem: Problem
    arch: Architecture
    constraints: Constraints
    config: SearchConfig
    # densities / formats / gating-skipping (dse.model.sparse.SparseSpec); None = dense
    sparse: object = None


def dram_bound_fields(problem: Problem, arch: Architecture) -> dict:
    """The least outermost-level (DRAM) traffic any tiling reaches with this architecture's
    on-chip words (docs/bounds.md); `exact` False = a relaxation (search budget ran out)."""
    from dse.model.dram_bound import dram_bound, on_chip_capacity_words

    bound = dram_bound(problem, on_chip_capacity_words(arch, len(problem.data_spaces)))
    return {"dram_words_lower_bound": bound.words, "dram_bound_exact": bound.exact}


def map_layer(task: LayerTask, progress=None) -> dict:
    """Search, then evaluate the best mapping; everything a per-layer CSV row needs.
    `progress(result, rate)` is called during the search (in-process runs only). A search cut
    short by Ctrl-C gives a row with `interrupted: True`, which is never stored."""
    cfg = SearchConfig(**{**asdict(task.config), "jobs": 1, "pareto": False})
    searcher = Searcher(task.problem, task.arch, task.constraints, cfg, sparse=task.sparse)
    searcher.progress = progress
    result = searcher.run()
    if result.interrupted:
        return {"interrupted": True, "evaluated": result.evaluated}
    row: dict = {"evaluated": result.evaluated, "valid": result.valid,
                 "search_s": round(result.wall_s, 3), "tool_version": __version__}
    if result.best is None:
        row.update({"status": "no valid mapping", "rejected": dict(result.rejected),
                    "smallest_change": result.smallest_change})
        return row
    mapping = searcher.mapping_of(result.best)
    ev = evaluate(task.problem, task.arch, mapping, link_transfers=cfg.link_transfers,
                  generation=cfg.generation, check_capacity=task.sparse is None)
    arch = task.arch
    shown = ev
    # per (level, tensor): (reads, fills + updates) per instance and utilized instances
    moves = [(r.level, r.tensor, r.reads_per_instance,
              r.fills_per_instance + r.updates_per_instance, r.utilized_instances)
             for r in ev.stats]
    if task.sparse is not None:
        from dse.model.sparse import check_sparse_capacity, sparse_evaluate

        shown = sparse_evaluate(task.problem, arch, mapping, ev, task.sparse,
                                link_transfers=cfg.link_transfers, generation=cfg.generation)
        check_sparse_capacity(task.problem, arch, mapping, shown)
        moves = [(r.level, r.tensor, r.data["reads"].actual,
                  r.data["fills"].actual + r.data["updates"].actual,
                  r.dense.utilized_instances) for r in shown.rows]
        row.update({"actual_computes": shown.actual_computes,
                    "gated_computes": shown.gated_computes,
                    "skipped_computes": shown.skipped_computes})
    level_energy = {lv.name: s.energy_pJ for lv, s in zip(arch.levels, shown.levels,
                                                           strict=True)}
    reads = {lv.name: 0 for lv in arch.levels}
    writes = {lv.name: 0 for lv in arch.levels}
    dram_bits = 0  # all outermost-level reads and writes, each tensor at its own word width
    for level, tensor, rd, wr, used in moves:
        reads[level] += rd * used
        writes[level] += wr * used
        if level == arch.levels[0].name:
            dram_bits += (rd + wr) * used * tensor_bits(arch.levels[0],
                                                        task.problem.data_space(tensor))
    row.update({
        "status": "ok",
        "cycles": shown.cycles,
        "energy_pJ": shown.energy_pJ,
        "ops": ev.macs,
        "utilization": shown.utilization,
        "energy_compute_pJ": shown.compute_energy_pJ,
        "level_energy_pJ": level_energy,
        "reads_words": reads,
        "writes_words": writes,
        "dram_bytes": -(-dram_bits // 8),
        "energy_sources": dict(sorted(ev.energy_sources.items())),
        **dram_bound_fields(task.problem, arch),
        "mapping": yaml.safe_dump({"mapping": mapping_to_native(mapping, arch, task.problem)},
                                  sort_keys=False),
    })
    return row



ROW_KEYS = {"status": str, "evaluated": int, "valid": int}
OK_KEYS = {"cycles": int, "energy_pJ": float, "ops": int, "utilization": float,
           "energy_compute_pJ": float, "level_energy_pJ": dict, "reads_words": dict,
           "writes_words": dict, "energy_sources": dict, "mapping": str}


def row_problem(row: dict, level_names: list[str]) -> tuple[str, object] | None:
    """Why a stored row is not one map_layer writes, as (expected, found); None if it is."""
    keys = {**ROW_KEYS, **(OK_KEYS if row.get("status") == "ok" else {})}
    for k, kind in keys.items():
        v = row.get(k)
        ok = isinstance(v, (int, float)) if kind is float else isinstance(v, kind)
        if not ok or isinstance(v, bool):
            return f"'{k}' ({kind.__name__})", (f"keys {sorted(row)}" if k not in row else v)
    if row["status"] == "ok":
        for k in ("level_energy_pJ", "reads_words", "writes_words"):
            missing = [n for n in level_names if n not in row[k]]
            if missing:
                return f"'{k}' for every level", f"no {', '.join(missing)}"
    return None
