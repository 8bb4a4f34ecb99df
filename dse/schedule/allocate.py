"""Choosing every engine's parallelism for a streaming design (docs/streaming.md).

`allocate_exact` finds the smallest II the board's DSP, BRAM36 and URAM budgets allow, then the
plan using the fewest DSPs (then memory blocks) at that II. With a balanced engine template the
II is restricted to the heaviest engine's cycle counts (every engine sized for its rate).

Why it is exact: II can only take values in the finite set of per-stage cycle counts the
candidate tuples produce, and a larger II admits a superset of tuples, so feasibility is
monotone in II and a bisection over that sorted set (or its balanced subset) finds the smallest
feasible value. Feasibility at one II is a multiple-choice knapsack with separable budgets (sums
of DSPs, BRAM36 and URAM blocks); it is solved exactly by dynamic programming over layers with
the state "DSPs used so far" keeping the non-dominated (BRAM36, URAM) totals for each DSP total
(integer DSPs, bounded by the budget), over each layer's Pareto-optimal candidates. Dropping a
dominated partial plan loses nothing: whatever completes it completes the dominating one within
no more of any resource.

`allocate_proportional` is the rule of the 2023 NN2FPGA flow, for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dse.schedule.streaming import (
    Par,
    Stage,
    StreamingArch,
    bits_of,
    build_stages,
    fixed_stages,
    memory_blocks,
    skip_buffers,
    stage_cost,
)


def divisors(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


@dataclass(frozen=True)
class Candidate:
    par: Par
    cycles: int
    dsp: int
    bram36: int
    uram: int = 0


def candidates(stage: Stage, arch: StreamingArch, wbits: int, abits: int) -> list[Candidate]:
    """Every tuple within the engine template; weights too big for LUTRAM are offered in BRAM
    and, when the board has URAM, in URAM."""
    e = arch.engine
    ichs = [1] if stage.depthwise else divisors(stage.ich, e.max_ich_par)
    big = stage.weights * wbits > arch.memory.lutram_max_bits
    memories = ("bram", "uram") if big and arch.board.uram > 0 else ("auto",)
    out = []
    for o in divisors(stage.och, e.max_och_par):
        for i in ichs:
            for w in divisors(stage.ow, e.max_ow_par):
                for m in memories:
                    p = Par(o, i, w, m)
                    c = stage_cost(stage, p, arch, wbits, abits)
                    out.append(Candidate(p, c["stage_cycles"], c["dsp"], c["bram36"], c["uram"]))
    return out


def _dominated(b: int, u: int, front: list[tuple[int, int]]) -> bool:
    return any(fb <= b and fu <= u for fb, fu in front)


def _pareto(cands: list[Candidate], ii: int) -> list[Candidate]:
    """Tuples meeting the II that no other meeting tuple beats on DSPs, BRAM36 and URAM."""
    # ties: the smaller tuple, then och_par and ich_par balanced (as NN2FPGA's last ILP does),
    # then more output channels in parallel, then BRAM before URAM
    ok = sorted((c for c in cands if c.cycles <= ii),
                key=lambda c: (c.dsp, c.bram36, c.uram, c.par.product,
                               abs(c.par.och_par - c.par.ich_par), -c.par.och_par, c.par.ow_par,
                               c.par.weight_memory))
    front: list[Candidate] = []
    seen: list[tuple[int, int]] = []  # (bram, uram) of the kept, all with no more DSPs
    for c in ok:
        if not _dominated(c.bram36, c.uram, seen):
            front.append(c)
            seen.append((c.bram36, c.uram))
    return front


def _knapsack(fronts: list[list[Candidate]], dsp_cap: int, bram_cap: int, uram_cap: int = 0):
    """Fewest (DSP, BRAM36, URAM) choice of one tuple per layer within the caps, or None.
    State: DSPs used so far -> the non-dominated (BRAM36, URAM) totals with their choices."""
    states: dict[int, list[tuple[int, int, tuple]]] = {0: [(0, 0, ())]}
    for front in fronts:
        nxt: dict[int, list[tuple[int, int, tuple]]] = {}
        for dsp, entries in states.items():
            for bram, uram, picks in entries:
                for j, c in enumerate(front):
                    d, b, u = dsp + c.dsp, bram + c.bram36, uram + c.uram
                    if d > dsp_cap or b > bram_cap or u > uram_cap:
                        continue
                    nxt.setdefault(d, []).append((b, u, picks + (j,)))
        # keep a state only if no state with no more DSPs has no more BRAM36 and URAM
        states, seen = {}, []
        for d in sorted(nxt):
            kept = []
            for b, u, picks in sorted(nxt[d], key=lambda t: (t[0], t[1])):
                if not _dominated(b, u, seen):
                    kept.append((b, u, picks))
                    seen.append((b, u))
            if kept:
                states[d] = kept
        if not states:
            return None
    d = min(states)  # fewest DSPs, then fewest memory blocks, then BRAM36 before URAM
    b, u, picks = min(states[d], key=lambda t: (t[0] + t[1], t[1]))
    return d, b, [f[j] for f, j in zip(fronts, picks, strict=True)], u


def heaviest_cycles(stages: list[Stage], cands: list[list[Candidate]]) -> set[int]:
    """Cycle counts the heaviest engine(s) (most work) can run at: the II values a balanced
    design may have, since its heaviest engine sets the pace."""
    wmax = max(s.work for s in stages)
    return {c.cycles for s, cs in zip(stages, cands, strict=True) if s.work == wmax for c in cs}


def _smallest_feasible(iis: list[int], solve):
    """Bisection over sorted II values (feasibility is monotone in II): the index of the
    smallest feasible one and its solution, or (None, None)."""
    if not iis or solve(iis[-1]) is None:
        return None, None
    lo, hi = 0, len(iis) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if solve(iis[mid]) is None:
            lo = mid + 1
        else:
            hi = mid
    return lo, solve(iis[lo])


def allocate_exact(network, arch: StreamingArch) -> dict:
    """Smallest feasible II, then fewest DSPs / memory blocks at it; with the reasoning: the
    binding resource (what the next faster II lacks) and, for a balanced engine template, the
    II an unbalanced plan would reach."""
    stages, adds = build_stages(network, arch.engine)
    wbits, abits = bits_of(network, arch)
    cands = [candidates(s, arch, wbits, abits) for s in stages]
    floor_ii = max(c for _, c in fixed_stages(network, stages))
    skip_bram = sum(memory_blocks(s.used_bits, s.channels * abits, arch.memory)[1]
                    for s in skip_buffers(network, stages, adds, abits, arch.skip_forwarding))
    board = arch.board
    dsp_cap, bram_cap, uram_cap = board.dsp, board.bram36 - skip_bram, board.uram
    lowest = max([floor_ii] + [min(c.cycles for c in cs) for cs in cands])
    free_iis = sorted({c.cycles for cs in cands for c in cs if c.cycles >= lowest} | {lowest})
    balanced = arch.engine.balanced
    iis = sorted(h for h in heaviest_cycles(stages, cands) if h >= lowest) or [lowest]
    iis = iis if balanced else free_iis
    tried = 0

    def solve(ii: int, caps=(dsp_cap, bram_cap, uram_cap)):
        nonlocal tried
        tried += 1
        return _knapsack([_pareto(cs, ii) for cs in cands], *caps)

    lo, best = _smallest_feasible(iis, solve)
    searched = tried
    if best is None:
        least_dsp = sum(min(c.dsp for c in cs) for cs in cands)
        least_mem = sum(min(c.bram36 + c.uram for c in cs) for cs in cands) + skip_bram
        return {"plan": None, "ii": None, "tried": tried,
                "why": f"no plan fits {board.dsp} DSPs, {board.bram36} BRAM36 "
                       f"and {board.uram} URAM even at the slowest II: it needs at least "
                       f"{least_dsp} DSPs and {least_mem} memory blocks (BRAM36 + URAM; weights, "
                       "line buffers and skip buffers all on chip)"}
    dsp, bram, picks, uram = best
    # the plan's own II: its slowest stage (below the searched value only if faster tuples
    # cost nothing more)
    ii = max([floor_ii] + [c.cycles for c in picks])
    plan = {s.name: c.par for s, c in zip(stages, picks, strict=True)}
    mode = (" (balanced: II = a cycle count of the heaviest engine, the 2023 NN2FPGA rule)"
            if balanced else "")
    why = [f"exact search{mode} over {sum(len(c) for c in cands)} tuples of {len(stages)} "
           f"engines, {searched} II values tested: smallest feasible II {ii:,} cycles uses "
           f"{dsp:,} of {board.dsp:,} DSPs" + (", " if board.uram else " and ")
           + f"{bram + skip_bram} of {board.bram36} BRAM36"
           + (f" and {uram} of {board.uram} URAM" if board.uram else "")]
    if lo > 0:
        why.append(_binding(iis[lo - 1], cands, solve, (dsp_cap, bram_cap, uram_cap), board))
    else:
        why.append("no faster II exists (every engine is at its largest tuple or a fixed "
                   f"stage sets it: {floor_ii:,} cycles)")
    if balanced:
        _, free = _smallest_feasible([i for i in free_iis if i < ii], solve)
        if free is not None:
            cycles, slowest = max((c.cycles, s.name) for c, s in zip(free[2], stages,
                                                                     strict=True))
            why.append(f"an unbalanced plan would reach II {max(cycles, floor_ii):,} with "
                       f"{slowest} the bottleneck and {free[0]:,} DSPs (engine.balanced: false)")
    return {"plan": plan, "ii": ii, "tried": tried, "why": "; ".join(why)}


def _binding(faster: int, cands: list[list[Candidate]], solve, caps: tuple[int, int, int],
             board) -> str:
    """Which budget rules out the next faster II: DSPs alone (their minimum is a sum of
    per-engine minima), memory blocks alone, or only the two together."""
    fastest = [[c.dsp for c in cs if c.cycles <= faster] for cs in cands]
    if not all(fastest):
        return f"the next faster II {faster:,} is unreachable (engine template limits)"
    need = sum(min(d) for d in fastest)
    dsp_cap, bram_cap, uram_cap = caps
    if need > dsp_cap:
        return (f"binding resource: DSP — the next faster II {faster:,} needs at least "
                f"{need:,} DSPs (budget {board.dsp:,})")
    mem = f"{board.bram36} BRAM36" + (f" and {board.uram} URAM" if board.uram else "")
    if solve(faster, (10**9, bram_cap, uram_cap)) is None:
        return (f"binding resource: on-chip memory — no plan at the next faster II {faster:,} "
                f"fits {mem} (weights, line buffers, skip buffers)")
    return (f"binding resources: DSP and memory together — the next faster II {faster:,} fits "
            f"{board.dsp:,} DSPs or {mem}, not both")


def allocate_proportional(network, arch: StreamingArch, num_dsp: int | None = None,
                          packing: bool = False, clamp: int = 64) -> dict:
    """The 2023 NN2FPGA rule: the heaviest layer gets parallelism p, the largest the DSP budget
    allows when every layer gets parallelism in proportion to its work (output channels only);
    p is rounded to a divisor of that layer's och and the others to the next divisor of theirs.
    That flow counted one product per DSP (packing=False); packing=True doubles the budget."""
    stages, _ = build_stages(network, arch.engine)
    budget = arch.board.dsp if num_dsp is None else num_dsp
    if packing:
        budget *= dict(arch.engine.products_per_dsp).get(8, 2)
    merges = sum(1 for s in stages if s.merged)
    heavy = max(stages, key=lambda s: s.work)
    total = sum(s.fh * s.fw * s.work for s in stages)
    p = min(clamp, max(1, (budget - merges) * heavy.work // total))
    p_heavy = max(d for d in divisors(heavy.och, p))
    plan = {}
    for s in stages:
        want = math.ceil(p_heavy * s.work / heavy.work)
        fits = [d for d in divisors(s.och, s.och) if d >= want]
        plan[s.name] = Par(1 if s.depthwise else (fits[0] if fits else s.och), 1, 1)
    counted = "two products per DSP" if packing else "one product per DSP, as that flow counted"
    why = (f"2023 proportional rule ({counted}): "
           f"p = floor(({budget} - {merges} merged) x {heavy.work:,} / {total:,}) = {p}; "
           f"heaviest engine {heavy.name} och_par {p_heavy}")
    return {"plan": plan, "heavy_layer": heavy.name, "heavy_par": p_heavy, "p": p, "why": why}
