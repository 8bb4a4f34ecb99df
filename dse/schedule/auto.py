"""`--schedule auto`: choose where to cut a network into fused segments, each segment's tile
height and halo mode, and each layer's mapping, under the run's objective.

The search (docs/fusion.md, "The auto search"):

- A *step* covers consecutive layers: one layer run layerwise (its layerwise mapping and
  figures, unchanged), or a fused segment of two or more fusable layers at one level.
- A fused step's cost follows the fused model: cycles and on-chip energy of each layer under
  the mapping chosen for it, scaled by the work the segment does for the layer, plus the
  segment's own DRAM traffic at the DRAM level's energy per bit (`segment_cost`).
- Per segment (layers i..j), for every halo mode and every tile height that fits the level,
  the per-layer mapping options are joined layer by layer, keeping only the (energy, cycles)
  Pareto points; the segment's candidates are the Pareto points over all tile heights and
  halo modes. A segment that moves more DRAM bytes than its layers layerwise is no candidate.
- Dynamic programming over cut points: the best schedules of layers 0..k are the Pareto front
  of (energy, cycles) over every last step ending at k joined with the front before it. Energy
  and cycles add up over steps and every objective (energy, delay, EDP, either order) is
  monotone in both, so dropping dominated partial schedules never drops the optimum: the
  search is exact over the candidates it enumerates.
- The all-layerwise schedule is one path of the DP; the chosen schedule replaces it only when
  it is strictly better under the objective, so `auto` never has a worse objective than
  `layerwise` under the same model.

Pure: no I/O. The per-layer figures come from the caller (dse/pipeline/fused.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from dse.errors import SpecError
from dse.schedule.fused import (
    FUSABLE_TYPES,
    HALO_MODES,
    FusedModel,
    Segment,
    SegmentCounts,
    max_fitting_tile,
)

LAYERWISE = "layerwise"  # the mapping option every mapped layer has: its layerwise mapping


@dataclass(frozen=True)
class LayerFigures:
    """One layer under one mapping, as the layerwise model evaluated it."""

    cycles: float
    energy_pJ: float  # DRAM accesses included
    dram_energy_pJ: float  # the DRAM level's part of energy_pJ
    dram_bits: int  # the mapping's DRAM reads and writes, each tensor at its width
    macs: int  # the network layer's MACs (what the segment's op counts are scaled against)

    @property
    def onchip_energy_pJ(self) -> float:
        return self.energy_pJ - self.dram_energy_pJ


def segment_cost(counts: SegmentCounts, figures: dict[str, LayerFigures],
                 read_pJ_per_bit: float, write_pJ_per_bit: float) -> tuple[float, float]:
    """(cycles, energy_pJ) of a fused segment: each layer's cycles and on-chip energy scaled by
    the work the segment does for it (recomputed rows included), plus the segment's DRAM
    traffic at the DRAM level's energy per bit."""
    cycles = energy = 0.0
    for name, fig in figures.items():
        scale = counts.ops[name] / fig.macs
        cycles += fig.cycles * scale
        energy += fig.onchip_energy_pJ * scale
    energy += counts.dram_read_bits * read_pJ_per_bit + counts.dram_write_bits * write_pJ_per_bit
    return cycles, energy


def objective_key(objective: str, energy: float, cycles: float) -> tuple[float, ...]:
    """What `objective` minimises (the mapper's objectives; ties broken by the other figure)."""
    if objective == "edp":
        return (energy * cycles, energy, cycles)
    if objective in ("delay", "delay,energy"):
        return (cycles, energy)
    if objective in ("energy", "energy,delay"):
        return (energy, cycles)
    raise ValueError(f"unknown objective {objective}")


@dataclass(frozen=True)
class Step:
    """One step of a schedule: a layer run layerwise (`segment` None) or a fused segment."""

    layers: tuple[str, ...]
    segment: Segment | None
    mappings: tuple[str, ...]  # the mapping option of each layer
    cycles: float
    energy_pJ: float
    dram_bits: int
    layerwise_cycles: float
    layerwise_energy_pJ: float
    layerwise_dram_bits: int
    buffer_peak_bits: int = 0


@dataclass
class AutoResult:
    steps: list[Step]
    objective: str
    cycles: float
    energy_pJ: float
    layerwise_cycles: float
    layerwise_energy_pJ: float
    candidates: int  # fused segment candidates (Pareto points) the DP joined
    ranges: int  # layer ranges that make a valid segment which fits
    why_layerwise: dict[str, str] = field(default_factory=dict)  # layer -> reason

    @property
    def segments(self) -> list[Segment]:
        return [s.segment for s in self.steps if s.segment is not None]


@dataclass(frozen=True)
class _Point:
    energy: float
    cycles: float
    steps: tuple  # a linked list (previous steps, step) keeps joins cheap


def pareto(points: list, energy: Callable, cycles: Callable) -> list:
    """The points no other point beats in both energy and cycles (first one kept on ties),
    sorted by energy."""
    out = []
    best_cycles = float("inf")
    for p in sorted(points, key=lambda p: (energy(p), cycles(p))):
        if cycles(p) < best_cycles:
            out.append(p)
            best_cycles = cycles(p)
    return out


def tile_heights(top: int, rows: int) -> list[int]:
    """Tile heights worth trying up to `top`: for every distinct number of tiles, the smallest
    height giving it (the same tiles with fewer rows held), plus `top` itself."""
    heights = {top}
    for th in range(1, top + 1):
        tiles = -(-rows // th)
        if th == 1 or -(-rows // (th - 1)) != tiles:
            heights.add(th)
    return sorted(heights)


def segment_candidates(model: FusedModel, seg: Segment, capacity_bits: int,
                       options: dict[str, dict[str, LayerFigures]], read_pJ: float,
                       write_pJ: float, halos: tuple[str, ...] = HALO_MODES
                       ) -> list[tuple[float, float, Segment, tuple[str, ...], SegmentCounts]]:
    """Pareto candidates (energy, cycles, segment, mappings, counts) of one layer range."""
    layerwise_bits = sum(options[n][LAYERWISE].dram_bits for n in seg.layers)
    out = []
    for halo in halos:
        base = replace(seg, halo=halo)
        top = max_fitting_tile(model, base, capacity_bits)
        if top is None:
            continue
        for th in tile_heights(top, model.rows(seg.layers[-1])):
            s = replace(base, tile_rows=th)
            counts = model.counts(s, capacity_bits)
            if counts.dram_read_bits + counts.dram_write_bits > layerwise_bits:
                continue
            # join the layers' mapping options, keeping the Pareto points only
            partial = [(0.0, 0.0, ())]
            for name in seg.layers:
                scale = counts.ops[name] / options[name][LAYERWISE].macs
                partial = pareto(
                    [(e + fig.onchip_energy_pJ * scale, c + fig.cycles * scale, m + (opt,))
                     for e, c, m in partial for opt, fig in options[name].items()],
                    lambda p: p[0], lambda p: p[1])
            for _e, _c, mappings in partial:
                figs = {n: options[n][m] for n, m in zip(seg.layers, mappings, strict=True)}
                cycles, energy = segment_cost(counts, figs, read_pJ, write_pJ)
                out.append((energy, cycles, s, mappings, counts))
    return pareto(out, lambda p: p[0], lambda p: p[1])


def fusable_layers(model: FusedModel, level: str, capacity_bits: int,
                   options: dict[str, dict[str, LayerFigures]], max_layers: int = 16,
                   halos: tuple[str, ...] = HALO_MODES) -> set[str]:
    """The layers some fused candidate of the search holds. Which ranges have candidates
    depends on the fused model and the layerwise DRAM bits only, not on the mapping options,
    so the caller searches the extra mappings of these layers alone."""
    layerwise = {n: {LAYERWISE: o[LAYERWISE]} for n, o in options.items() if LAYERWISE in o}
    out: set[str] = set()
    for _j, _i, seg, _cands in _ranges(model, level, capacity_bits, layerwise, 0.0, 0.0,
                                       max_layers, halos):
        out.update(seg.layers)
    return out


def _ranges(model: FusedModel, level: str, capacity_bits: int,
            options: dict[str, dict[str, LayerFigures]], read_pJ: float, write_pJ: float,
            max_layers: int, halos: tuple[str, ...]):
    """(last, first, segment, candidates) of every layer range that makes a valid segment
    with at least one candidate."""
    layers = model.network.layers
    n = len(layers)

    def fusable(i: int) -> bool:
        lay = layers[i]
        return (lay.type in FUSABLE_TYPES and lay.problem is not None
                and LAYERWISE in options.get(lay.name, {}))

    for i in range(n):
        if not fusable(i):
            continue
        for j in range(i + 1, min(n, i + max_layers)):
            if not fusable(j):
                break
            seg = Segment(tuple(lay.name for lay in layers[i:j + 1]), 1, halos[0], {}, level)
            try:
                model.check(seg, "segment")
            except SpecError:
                continue
            cands = segment_candidates(model, seg, capacity_bits, options, read_pJ, write_pJ,
                                       halos)
            if cands:
                yield j, i, seg, cands


def search(model: FusedModel, level: str, capacity_bits: int,
           options: dict[str, dict[str, LayerFigures]], read_pJ_per_bit: float,
           write_pJ_per_bit: float, objective: str, max_layers: int = 16,
           halos: tuple[str, ...] = HALO_MODES) -> AutoResult:
    """The best schedule of `model.network` under `objective` (see the module docstring).
    `options[layer]` maps mapping names to figures; every mapped layer has LAYERWISE."""
    layers = model.network.layers
    n = len(layers)

    def layerwise_step(i: int) -> Step:
        lay = layers[i]
        fig = options.get(lay.name, {}).get(LAYERWISE)
        if fig is None:  # not mapped: no data movement modelled, no cost
            return Step((lay.name,), None, ("",), 0.0, 0.0, 0, 0.0, 0.0, 0)
        return Step((lay.name,), None, (LAYERWISE,), fig.cycles, fig.energy_pJ, fig.dram_bits,
                    fig.cycles, fig.energy_pJ, fig.dram_bits)

    # the fused candidates ending at each layer
    ending: dict[int, list[tuple[int, list]]] = {}
    covered: set[str] = set()
    ranges = candidates = 0
    for j, i, seg, cands in _ranges(model, level, capacity_bits, options, read_pJ_per_bit,
                                    write_pJ_per_bit, max_layers, halos):
        ranges += 1
        candidates += len(cands)
        covered.update(seg.layers)
        ending.setdefault(j, []).append((i, cands))

    # dynamic programming over cut points: fronts[k] = schedules of layers[:k]
    fronts: list[list[_Point]] = [[_Point(0.0, 0.0, ())]] + [[] for _ in range(n)]
    for k in range(1, n + 1):
        j = k - 1
        step = layerwise_step(j)
        pts = [_Point(p.energy + step.energy_pJ, p.cycles + step.cycles, (p.steps, step))
               for p in fronts[j]]
        for i, cands in ending.get(j, []):
            lw = [layerwise_step(x) for x in range(i, j + 1)]
            for energy, cycles, seg, mappings, counts in cands:
                st = Step(seg.layers, seg, mappings, cycles, energy,
                          counts.dram_read_bits + counts.dram_write_bits,
                          sum(s.layerwise_cycles for s in lw),
                          sum(s.layerwise_energy_pJ for s in lw),
                          sum(s.layerwise_dram_bits for s in lw), counts.buffer_peak_bits)
                pts += [_Point(p.energy + energy, p.cycles + cycles, (p.steps, st))
                        for p in fronts[i]]
        fronts[k] = pareto(pts, lambda p: p.energy, lambda p: p.cycles)

    def unroll(steps: tuple) -> list[Step]:
        out: list[Step] = []
        while steps:
            steps, step = steps
            out.append(step)
        return out[::-1]

    lw_steps = [layerwise_step(i) for i in range(n)]
    lw_energy = sum(s.energy_pJ for s in lw_steps)
    lw_cycles = sum(s.cycles for s in lw_steps)
    best = min(fronts[n], key=lambda p: objective_key(objective, p.energy, p.cycles))
    chosen = unroll(best.steps)
    if not any(s.segment is not None for s in chosen) or (
            objective_key(objective, best.energy, best.cycles)
            >= objective_key(objective, lw_energy, lw_cycles)):
        chosen, energy, cycles = lw_steps, lw_energy, lw_cycles
    else:
        energy, cycles = best.energy, best.cycles
    why: dict[str, str] = {}
    for s in chosen:
        if s.segment is not None:
            continue
        name = s.layers[0]
        lay = model.network.layer(name)
        if lay.problem is None or lay.type not in FUSABLE_TYPES:
            why[name] = f"{lay.type} layers are not fused"
        elif name not in covered:
            why[name] = (f"no valid segment with its neighbours fits {level} and moves no "
                         f"more DRAM bytes than layerwise")
        else:
            why[name] = f"every segment with it has a worse {objective} here"
    return AutoResult(chosen, objective, cycles, energy, lw_cycles, lw_energy, candidates,
                      ranges, why)


ONCHIP = "onchip"  # the layer's mapping searched with DRAM accesses priced as the level's
MAPPING_OPTIONS = (LAYERWISE, ONCHIP)


def onchip_architecture(arch, level: str):
    """The architecture a layer inside a segment is mapped on for the ONCHIP option: the same
    hardware with each DRAM access priced, per bit, as the same action at `level` (where the
    segment's tensors live; leakage at zero). In a segment the DRAM traffic is the segment's
    (counted by the fused model), so the mapping should weigh where its tensors really are;
    nothing becomes free. DRAM bandwidth still limits cycles (conservative)."""
    from dse.arch.architecture import Energy

    lv = next(x for x in arch.levels if x.name == level)
    per_bit = {a: e.pJ / (lv.block_size * lv.datawidth) for a, e in lv.energy.items()}

    def priced(dram):
        out = {}
        for action in dram.energy:
            pj = 0.0 if action == "leak" else per_bit.get(action, per_bit.get("read", 0.0))
            out[action] = Energy(pj * dram.block_size * dram.datawidth,
                                 f"{level} energy per bit (auto: onchip mapping)")
        return replace(dram, energy=out)

    return replace(arch, levels=tuple(priced(x) if x.is_dram else x for x in arch.levels))
