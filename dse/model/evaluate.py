"""Evaluate one mapping: per level and tensor the tile, reads/fills/updates, energy; then cycles.

There is one model, dse.model.batch, over arrays with a batch axis (the mapper's). Here it runs
on a one-row batch; this module checks the mapping (with file:line errors), unpacks the row
into per-(level, tensor) tables and per-level summaries, and names the energy sources.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dse.arch.architecture import Architecture
from dse.errors import SpecError
from dse.mapping import Mapping
from dse.model import generation as generations
from dse.model.actions import action_energy, compute_energy  # noqa: F401 (action_energy: re-export)
from dse.model.nest import Nest, build_nest
from dse.model.wordbits import tensor_bits
from dse.workload.problem import Problem


@dataclass
class LevelTensorStats:
    level: str
    tensor: str
    instances: int
    utilized_instances: int
    utilized_capacity_words: int
    reads_per_instance: int
    fills_per_instance: int
    updates_per_instance: int
    partition_size: int
    temporal_reductions_per_instance: int
    energy_pJ: float = 0.0
    read_energy_pJ: float = 0.0
    fill_energy_pJ: float = 0.0
    update_energy_pJ: float = 0.0
    # words forwarded between the children of one instance over neighbour links (Timeloop's
    # network "link transfers"); peer accesses: the reads (and as many fills) each instance
    # makes for its neighbours, already included in reads/fills
    link_transfers: float = 0.0
    peer_accesses_per_instance: int = 0


@dataclass
class LevelSummary:
    name: str
    instances: int
    utilized_instances: int
    capacity_words: int | None
    used_words: int
    slowdown: float
    cycles: int
    energy_pJ: float
    leakage_pJ: float


@dataclass
class Evaluation:
    macs: int
    cycles: int
    compute_cycles: int
    utilization: float
    energy_pJ: float
    stats: list[LevelTensorStats]
    levels: list[LevelSummary]
    compute_name: str
    compute_instances: int
    compute_utilized_instances: int
    compute_energy_pJ: float
    compute_action: str = "mac"  # Problem.compute_action: what each of the `macs` operations is
    energy_sources: dict[str, str] = field(default_factory=dict)
    # (level, tensor) -> (words forwarded between the children of one instance of the level,
    # utilized instances): every fan-out with link transfers, including fan-out levels that
    # hold no data (dse.model.links)
    link_transfers: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)

    @property
    def pJ_per_mac(self) -> float:
        return self.energy_pJ / self.macs

    def level_energy(self) -> dict[str, float]:
        out = {self.compute_name: self.compute_energy_pJ}
        for lv in self.levels:
            out[lv.name] = lv.energy_pJ
        return out


class MappingError(SpecError):
    """The mapping is not valid for this problem and architecture (says which level and why)."""


def check_mapping(problem: Problem, arch: Architecture, mapping: Mapping, nest: Nest) -> None:
    """Reject mappings that do not factor the problem or do not fit the hardware's fan-out."""
    src = mapping.source
    line = mapping.line
    if len(mapping.levels) != len(arch.levels):
        raise MappingError(
            f"the mapping has {len(mapping.levels)} levels but the architecture has "
            f"{len(arch.levels)}",
            file=src, line=line,
        )
    for d in problem.dims:
        got = mapping.factor_product(d)
        if got != problem.bounds[d]:
            raise MappingError(
                f"factors of dimension {d} multiply to {got}, but the problem bound is "
                f"{problem.bounds[d]}",
                file=src, line=line,
                key_path=f"mapping.{d}",
            )
    for i, lv in enumerate(arch.levels):
        fx, fy = arch.fanout(i)
        sp = nest.spatial_loops(i)
        ux = math.prod(lp.bound for lp in sp if lp.spatial_x)
        uy = math.prod(lp.bound for lp in sp if not lp.spatial_x)
        if ux > fx or uy > fy:
            raise MappingError(
                f"spatial fan-out at level {lv.name} is {ux}x{uy} (X x Y) but the hardware "
                f"allows {fx}x{fy}",
                file=src, line=line,
                key_path=f"mapping.{lv.name}.spatial",
                hint="move factors to the other mesh axis (split) or to a temporal loop",
            )


def evaluate(
    problem: Problem,
    arch: Architecture,
    mapping: Mapping,
    *,
    check_capacity: bool = True,
    link_transfers: bool | str | None = None,
    generation: str = generations.DEFAULT,
    placement: dict[str, str] | None = None,
) -> Evaluation:
    """The batch model (dse.model.batch) on a one-row batch, unpacked into per-(level, tensor)
    rows. `link_transfers`: a mode of dse.model.links (None = the architecture's default;
    True/False = `timeloop`/`off`). `generation` picks the Timeloop build to reproduce
    (dse/model/generation.py). `placement`: tensor -> backing level (dse.model.placement;
    default the outermost level)."""
    from dse.model.batch import BatchModel, rows_from_mappings, spatial_orders
    from dse.model.kernel import kernel_for_one_mapping

    nest = build_nest(problem, mapping)
    check_mapping(problem, arch, mapping, nest)
    model = BatchModel(problem, arch, link_transfers, generation=generation,
                       placement=placement, kernel=kernel_for_one_mapping())
    arch = model.arch  # energies of the chosen generation
    arrays = rows_from_mappings(model, [mapping])
    keep = arrays[4][0] & ~model.dummy[:, None]
    for t, ds in enumerate(problem.data_spaces):
        b = int(model.backing[t])
        if not keep[b, t]:
            what = "the outermost level" if b == 0 else "the backing level"
            raise MappingError(
                f"{what} {arch.levels[b].name} of {ds.name} must keep it, but the mapping "
                f"bypasses {ds.name} there",
                file=mapping.source, line=mapping.line,
                key_path=f"mapping.{arch.levels[b].name}",
            )
    if not model.placement_ok(arrays[0])[0]:
        walked = [
            f"{ds.name} at {arch.levels[i].name} over {d}"
            for t, ds in enumerate(problem.data_spaces)
            for i in range(int(model.backing[t]))
            for j, d in enumerate(model.dims)
            if arrays[0][0, i, j] > 1 and d in ds.dims()
        ]
        raise MappingError(
            "a temporal loop above a tensor's backing level walks that tensor ("
            + ", ".join(walked) + "), so the backing level would hold only part of it",
            file=mapping.source, line=mapping.line,
            hint="move those factors to the backing level or below, or place the tensor "
                 "further out",
        )
    det = model.detail(*arrays, spatial_order=spatial_orders(model, [mapping]))
    rows = _stats_rows(problem, arch, det)
    if check_capacity:
        _check_capacity(problem, arch, mapping, rows)
    return _evaluation(problem, arch, nest, det, rows)


def _stats_rows(problem: Problem, arch: Architecture, det) -> list[LevelTensorStats]:
    """One LevelTensorStats per kept (level, tensor), innermost level first."""
    rows = []
    for i in range(len(arch.levels) - 1, -1, -1):
        lv = arch.levels[i]
        for t, ds in enumerate(problem.data_spaces):
            if not det.keep[0, i, t]:
                continue
            reads, fills, updates = (int(x) for x in det.counts[0, i, t])
            e_read, e_fill, e_update = (float(x) for x in det.energy_by_action[0, i, t])
            rows.append(LevelTensorStats(
                level=lv.name,
                tensor=ds.name,
                instances=lv.instances,
                utilized_instances=int(det.replication[0, i]),
                utilized_capacity_words=int(det.size[0, i, t]),
                reads_per_instance=reads,
                fills_per_instance=fills,
                updates_per_instance=updates,
                partition_size=int(det.partition[0, i, t]),
                temporal_reductions_per_instance=reads if ds.read_write else 0,
                energy_pJ=e_read + e_fill + e_update,
                read_energy_pJ=e_read,
                fill_energy_pJ=e_fill,
                update_energy_pJ=e_update,
                link_transfers=float(det.links[0, i, t]),
                peer_accesses_per_instance=int(det.peer[0, i, t]),
            ))
    return rows


def _check_capacity(problem: Problem, arch: Architecture, mapping: Mapping,
                    rows: list[LevelTensorStats]) -> None:
    if any(ds.word_bits for ds in problem.data_spaces):
        _check_capacity_bits(problem, arch, mapping, rows)
        return
    used: dict[str, int] = {}
    for r in rows:
        used[r.level] = used.get(r.level, 0) + r.utilized_capacity_words
    for lv in arch.levels:
        cap = lv.effective_capacity_words
        if cap is not None and used.get(lv.name, 0) > cap:
            parts = ", ".join(
                f"{r.tensor} {r.utilized_capacity_words}" for r in rows if r.level == lv.name
            )
            raise MappingError(
                f"tiles kept at level {lv.name} need {used[lv.name]} words ({parts}) but it "
                f"holds {cap} words per instance",
                file=mapping.source, line=mapping.line,
                key_path=f"mapping.{lv.name}",
                hint="use smaller factors at or below this level, or bypass a tensor here",
            )


def _check_capacity_bits(problem: Problem, arch: Architecture, mapping: Mapping,
                         rows: list[LevelTensorStats]) -> None:
    """Capacity with per-tensor word widths (dse.model.wordbits): counted in bits."""
    used: dict[str, int] = {}
    for r in rows:
        lv = arch.levels[arch.index(r.level)]
        bits = tensor_bits(lv, problem.data_space(r.tensor))
        used[r.level] = used.get(r.level, 0) + r.utilized_capacity_words * bits
    for lv in arch.levels:
        cap = lv.effective_capacity_words
        if cap is not None and used.get(lv.name, 0) > cap * lv.datawidth:
            parts = ", ".join(
                f"{r.tensor} {r.utilized_capacity_words} x "
                f"{tensor_bits(lv, problem.data_space(r.tensor))} b"
                for r in rows if r.level == lv.name
            )
            raise MappingError(
                f"tiles kept at level {lv.name} need {used[lv.name]} bits ({parts}) but it "
                f"holds {cap * lv.datawidth} bits ({cap} words of {lv.datawidth} b) per instance",
                file=mapping.source, line=mapping.line,
                key_path=f"mapping.{lv.name}",
                hint="use smaller factors at or below this level, or bypass a tensor here",
            )


def _evaluation(problem: Problem, arch: Architecture, nest: Nest, det,
                rows: list[LevelTensorStats]) -> Evaluation:
    """Per-level summaries, totals and the energy sources of one evaluated mapping."""
    sources: dict[str, str] = {}
    level_rows: dict[str, list[LevelTensorStats]] = {}
    for r in rows:
        level_rows.setdefault(r.level, []).append(r)
    for lv in arch.levels:
        if lv.name in level_rows:
            for a in ("read", "write", "update"):
                if a in lv.energy:
                    sources[f"{lv.name}.{a}"] = lv.energy[a].source
    summaries: list[LevelSummary] = []
    for i, lv in enumerate(arch.levels):
        lr = level_rows.get(lv.name, [])
        leak = float(det.leak[0, i])
        if lr and "leak" in lv.energy:
            sources[f"{lv.name}.leak"] = lv.energy["leak"].source
        summaries.append(
            LevelSummary(
                name=lv.name,
                instances=lv.instances,
                utilized_instances=int(det.replication[0, i]) if lr else 0,
                capacity_words=lv.capacity_words,
                used_words=sum(r.utilized_capacity_words for r in lr),
                slowdown=float(det.slowdown[0, i]),
                cycles=int(det.level_cycles[0, i]),
                energy_pJ=sum(r.energy_pJ for r in lr) + leak,
                leakage_pJ=leak,
            )
        )
    comp = arch.compute
    pj, source, key = compute_energy(comp, problem.compute_action, arch.source)
    sources[f"{comp.name}.{key}"] = source
    compute_pJ = problem.macs * pj
    cycles = int(det.cycles[0])
    link_table = {
        (arch.levels[i].name, ds.name): (float(det.links[0, i, t]), int(det.replication[0, i]))
        for i in range(len(arch.levels)) for t, ds in enumerate(problem.data_spaces)
        if det.links[0, i, t]
    }
    return Evaluation(
        macs=problem.macs,
        cycles=cycles,
        compute_cycles=int(det.compute_cycles[0]),
        utilization=problem.macs / (comp.instances * cycles),
        energy_pJ=compute_pJ + sum(s.energy_pJ for s in summaries),
        stats=rows,
        levels=summaries,
        compute_name=comp.name,
        compute_instances=comp.instances,
        compute_utilized_instances=nest.spatial_iterations,
        compute_energy_pJ=compute_pJ,
        compute_action=problem.compute_action,
        energy_sources=sources,
        link_transfers=link_table,
    )
