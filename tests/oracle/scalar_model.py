"""The step-by-step scalar model, kept as a test oracle for dse.model.batch.

This is the model as it stood before the batch model became the only one: per tensor, each
level's delta steps (tests/oracle/deltas_steps.py) and spatial statistics walked one
mapping at a time, then masking, reads/fills/updates, energy and cycles in plain Python. It
is slow and written straight from Timeloop's order of passes, which is why it stays as a
second, independent computation that tests compare the batch model with.
"""

from __future__ import annotations

import math

from dse.arch.architecture import Architecture
from dse.mapping import Mapping
from dse.model import generation as generations
from dse.model.actions import action_energy
from dse.model.evaluate import (  # the capacity rule is validity, not a formula under test
    Evaluation,
    LevelSummary,
    LevelTensorStats,
    MappingError,
    _check_capacity,
    check_mapping,
)
from dse.model.links import linked_fanouts, resolve_link_mode
from dse.model.nest import Nest, build_nest
from dse.model.wordbits import bandwidth_scale, words_per_block
from dse.workload.problem import Problem
from tests.oracle.deltas_steps import boundary_steps, fills_per_instance, spatial_stats


def scalar_evaluate(
    problem: Problem,
    arch: Architecture,
    mapping: Mapping,
    *,
    check_capacity: bool = True,
    link_transfers: bool | str | None = None,
    generation: str = generations.DEFAULT,
) -> Evaluation:
    """`link_transfers`: a mode of dse.model.links (None = the architecture's default;
    True/False = `timeloop`/`off`). `generation` picks the Timeloop build to reproduce
    (dse/model/generation.py)."""
    arch = generations.energies_for(arch, generation)
    elide_fills = generations.elides_output_fills(generation)
    link_mode = resolve_link_mode(arch, link_transfers)
    linked = linked_fanouts(arch, link_mode)
    nest = build_nest(problem, mapping)
    check_mapping(problem, arch, mapping, nest)
    n = len(arch.levels)
    keeps = [
        [lm.keeps(ds.name) and not arch.levels[i].is_dummy for ds in problem.data_spaces]
        for i, lm in enumerate(mapping.levels)
    ]
    for t, ds in enumerate(problem.data_spaces):
        if not keeps[0][t]:
            raise MappingError(
                f"the outermost level {arch.levels[0].name} must keep every tensor, but it "
                f"bypasses {ds.name}",
                file=mapping.source, line=mapping.line,
            )

    rows: list[LevelTensorStats] = []
    per_level_tensor: dict[tuple[int, int], LevelTensorStats] = {}
    link_table: dict[tuple[str, str], tuple[float, int]] = {}
    for t, ds in enumerate(problem.data_spaces):
        size = [ds.size(nest.box(i)) for i in range(n)]
        has_spatial = [bool(nest.spatial_loops(i)) for i in range(n)]
        total = [0.0] * n
        weighted = [0.0] * n
        fanout = [1] * n
        links = [0.0] * n
        for i in range(n):
            steps = boundary_steps(nest, i + 1, ds)
            if has_spatial[i]:
                use_links = linked[i] and (link_mode == "timeloop" or keeps[i + 1][t])
                st = spatial_stats(steps, nest.spatial_loops(i), ds, use_links,
                                   mesh=arch.fanout(i))
                total[i], weighted[i], fanout[i], links[i] = (
                    st.total, st.weighted, st.fanout, st.link_transfers,
                )
            else:
                total[i] = weighted[i] = float(fills_per_instance(steps))
        content = list(total)
        parent_share = [0.0] + [weighted[i - 1] / fanout[i - 1] for i in range(1, n)]
        # partition sizes: outermost holds the whole tensor; shrink through each fan-out
        partition = [0] * n
        partition[0] = size[0]
        for i in range(1, n):
            denom = ds.size(nest.spatial_box(i - 1)) if has_spatial[i - 1] else size[i]
            partition[i] = partition[i - 1] * size[i] // denom
        # mask (bypass) from the innermost level outwards
        kept_size = list(size)
        for i in range(n - 1, 0, -1):
            if keeps[i][t]:
                continue
            outer = i - 1
            factor = content[i] * fanout[outer] / weighted[outer]
            total[outer] *= factor
            weighted[outer] *= factor
            content[outer] = total[outer]
            links[outer] = 0.0
            kept_size[i] = 0
            partition[i] = 0
            content[i] = 0.0
            parent_share[i] = 0.0
        replication = [nest.spatial_product_above(i) for i in range(n + 1)]
        peer = [0] * n
        for i in range(n - 1):
            if links[i]:
                peer[i + 1] += int(links[i]) // replication[i + 1]
        for i in range(n):
            if links[i]:
                link_table[(arch.levels[i].name, ds.name)] = (links[i], replication[i])
        outermost_keeper = min(i for i in range(n) if keeps[i][t])
        for i in range(n):
            if not keeps[i][t]:
                continue
            if ds.read_write:
                updates = round(content[i])
                reads = round(content[i] + peer[i] - partition[i])
                base = parent_share[i] + peer[i]
                elided = elide_fills and i != outermost_keeper
                fills = round(base - partition[i] if elided else base)
                reductions = reads
            else:
                reads = round(content[i] + peer[i])
                updates = 0
                fills = int(parent_share[i] + peer[i])
                reductions = 0
            st = LevelTensorStats(
                level=arch.levels[i].name,
                tensor=ds.name,
                instances=arch.levels[i].instances,
                utilized_instances=replication[i],
                utilized_capacity_words=kept_size[i],
                reads_per_instance=reads,
                fills_per_instance=fills,
                updates_per_instance=updates,
                partition_size=partition[i],
                temporal_reductions_per_instance=reductions,
                link_transfers=links[i],
                peer_accesses_per_instance=peer[i],
            )
            per_level_tensor[(i, t)] = st
    for i in range(n - 1, -1, -1):
        for t in range(len(problem.data_spaces)):
            if (i, t) in per_level_tensor:
                rows.append(per_level_tensor[(i, t)])

    if check_capacity:
        _check_capacity(problem, arch, mapping, rows)
    ev = _finish(problem, arch, mapping, nest, rows)
    ev.link_transfers = link_table
    return ev


def _finish(
    problem: Problem, arch: Architecture, mapping: Mapping, nest: Nest, rows: list[LevelTensorStats]
) -> Evaluation:
    compute_cycles = nest.temporal_iterations
    sources: dict[str, str] = {}
    for r in rows:
        lv = arch.levels[arch.index(r.level)]
        block = words_per_block(lv, problem.data_space(r.tensor))
        er, ew, eu = (action_energy(lv, a) for a in ("read", "write", "update"))
        # one access energy per utilized cluster (= per utilized instance when cluster_size 1)
        charged = lv.utilized_clusters(r.utilized_instances)
        r.read_energy_pJ = math.ceil(r.reads_per_instance / block) * er * charged
        r.fill_energy_pJ = math.ceil(r.fills_per_instance / block) * ew * charged
        r.update_energy_pJ = math.ceil(r.updates_per_instance / block) * eu * charged
        r.energy_pJ = r.read_energy_pJ + r.fill_energy_pJ + r.update_energy_pJ
        for a in ("read", "write", "update"):
            if a in lv.energy:
                sources[f"{lv.name}.{a}"] = lv.energy[a].source
    # bandwidth throttling per level (per-instance demand in words per compute cycle)
    summaries: list[LevelSummary] = []
    cycles = compute_cycles
    level_rows: dict[str, list[LevelTensorStats]] = {}
    for r in rows:
        level_rows.setdefault(r.level, []).append(r)
    for lv in arch.levels:
        lr = level_rows.get(lv.name, [])
        scale = [bandwidth_scale(lv, problem.data_space(r.tensor)) for r in lr]
        reads = sum(r.reads_per_instance * k for r, k in zip(lr, scale, strict=True))
        writes = sum((r.fills_per_instance + r.updates_per_instance) * k
                     for r, k in zip(lr, scale, strict=True))
        slowdown = 1.0
        rd, wd = reads / compute_cycles, writes / compute_cycles
        if lv.read_bandwidth is not None and lv.read_bandwidth < rd:
            slowdown = min(slowdown, lv.read_bandwidth / rd)
        if lv.write_bandwidth is not None and lv.write_bandwidth < wd:
            slowdown = min(slowdown, lv.write_bandwidth / wd)
        if lv.shared_bandwidth is not None and lv.shared_bandwidth < rd + wd:
            slowdown = min(slowdown, lv.shared_bandwidth / (rd + wd))
        lv_cycles = math.ceil(compute_cycles / slowdown)
        cycles = max(cycles, lv_cycles)
        summaries.append(
            LevelSummary(
                name=lv.name,
                instances=lv.instances,
                utilized_instances=max((r.utilized_instances for r in lr), default=0),
                capacity_words=lv.capacity_words,
                used_words=sum(r.utilized_capacity_words for r in lr),
                slowdown=slowdown,
                cycles=lv_cycles,
                energy_pJ=sum(r.energy_pJ for r in lr),
                leakage_pJ=0.0,
            )
        )
    for s, lv in zip(summaries, arch.levels, strict=True):
        if s.utilized_instances and "leak" in lv.energy:
            s.leakage_pJ = lv.energy["leak"].pJ * cycles * s.utilized_instances
            s.energy_pJ += s.leakage_pJ
            sources[f"{lv.name}.leak"] = lv.energy["leak"].source
    comp = arch.compute
    e_compute = action_energy(comp, "compute")
    sources[f"{comp.name}.compute"] = comp.energy["compute"].source
    compute_energy = problem.macs * e_compute
    total = compute_energy + sum(s.energy_pJ for s in summaries)
    used_pes = nest.spatial_iterations
    return Evaluation(
        macs=problem.macs,
        cycles=cycles,
        compute_cycles=compute_cycles,
        utilization=problem.macs / (comp.instances * cycles),
        energy_pJ=total,
        stats=rows,
        levels=summaries,
        compute_name=comp.name,
        compute_instances=comp.instances,
        compute_utilized_instances=used_pes,
        compute_energy_pJ=compute_energy,
        energy_sources=sources,
    )
