"""Choosing every engine's parallelism for a streaming design (docs/streaming.md).

`allocate_exact` finds the smallest II the board's DSP and BRAM36 budgets allow, then the plan
using the fewest DSPs (then BRAM36) at that II. Why it is exact: II can only take values in the
finite set of per-stage cycle counts the candidate tuples produce, and a larger II admits a
superset of tuples, so feasibility is monotone in II and a bisection over that sorted set finds
the smallest feasible value. Feasibility at one II is a multiple-choice knapsack with two
separable budgets (sums of DSPs and of BRAM36 blocks); it is solved exactly by dynamic
programming over layers with the state "DSPs used so far" keeping the fewest BRAM36 blocks for
each DSP total (integer DSPs, bounded by the budget), over each layer's Pareto-optimal tuples.

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


def candidates(stage: Stage, arch: StreamingArch, wbits: int, abits: int) -> list[Candidate]:
    e = arch.engine
    ichs = [1] if stage.depthwise else divisors(stage.ich, e.max_ich_par)
    out = []
    for o in divisors(stage.och, e.max_och_par):
        for i in ichs:
            for w in divisors(stage.ow, e.max_ow_par):
                p = Par(o, i, w)
                c = stage_cost(stage, p, arch, wbits, abits)
                out.append(Candidate(p, c["stage_cycles"], c["dsp"], c["bram36"]))
    return out


def _pareto(cands: list[Candidate], ii: int) -> list[Candidate]:
    """Tuples meeting the II that no other meeting tuple beats on both DSPs and BRAM36."""
    # ties: the smaller tuple, then och_par and ich_par balanced (as NN2FPGA's last ILP does),
    # then more output channels in parallel
    ok = sorted((c for c in cands if c.cycles <= ii),
                key=lambda c: (c.dsp, c.bram36, c.par.product,
                               abs(c.par.och_par - c.par.ich_par), -c.par.och_par, c.par.ow_par))
    front: list[Candidate] = []
    best_bram = math.inf
    for c in ok:
        if c.bram36 < best_bram:
            front.append(c)
            best_bram = c.bram36
    return front


def _knapsack(fronts: list[list[Candidate]], dsp_cap: int, bram_cap: int):
    """Fewest (DSP, BRAM36) choice of one tuple per layer within both caps, or None."""
    states: dict[int, tuple[int, tuple]] = {0: (0, ())}  # dsp -> (bram, choice indexes)
    for front in fronts:
        nxt: dict[int, tuple[int, tuple]] = {}
        for dsp, (bram, picks) in states.items():
            for j, c in enumerate(front):
                d, b = dsp + c.dsp, bram + c.bram36
                if d > dsp_cap or b > bram_cap:
                    continue
                old = nxt.get(d)
                if old is None or b < old[0]:
                    nxt[d] = (b, picks + (j,))
        # drop states another state dominates (fewer DSPs and no more BRAM)
        states, best = {}, math.inf
        for d in sorted(nxt):
            if nxt[d][0] < best:
                states[d] = nxt[d]
                best = nxt[d][0]
        if not states:
            return None
    d = min(states)
    return d, states[d][0], [f[j] for f, j in zip(fronts, states[d][1], strict=True)]


def allocate_exact(network, arch: StreamingArch) -> dict:
    """Smallest feasible II, then fewest DSPs/BRAM36 at it; with the reasoning for the output."""
    stages, adds = build_stages(network, arch.engine)
    wbits, abits = bits_of(network, arch)
    cands = [candidates(s, arch, wbits, abits) for s in stages]
    floor_ii = max(c for _, c in fixed_stages(network, stages))
    skip_bram = sum(memory_blocks(s.used_bits, s.channels * abits, arch.memory)[1]
                    for s in skip_buffers(network, stages, adds, abits, arch.skip_forwarding))
    dsp_cap, bram_cap = arch.board.dsp, arch.board.bram36 - skip_bram
    lowest = max([floor_ii] + [min(c.cycles for c in cs) for cs in cands])
    iis = sorted({c.cycles for cs in cands for c in cs if c.cycles >= lowest} | {lowest})
    tried = 0

    def solve(ii: int):
        nonlocal tried
        tried += 1
        return _knapsack([_pareto(cs, ii) for cs in cands], dsp_cap, bram_cap)

    lo, hi = 0, len(iis) - 1
    if solve(iis[hi]) is None:
        least_dsp = sum(min(c.dsp for c in cs) for cs in cands)
        least_bram = sum(min(c.bram36 for c in cs) for cs in cands) + skip_bram
        return {"plan": None, "ii": None, "tried": tried,
                "why": f"no plan fits {arch.board.dsp} DSPs and {arch.board.bram36} BRAM36 "
                       f"even at the slowest II: it needs at least {least_dsp} DSPs and "
                       f"{least_bram} BRAM36 (weights, line buffers and skip buffers on chip; "
                       "URAM is not used by this model)"}
    while lo < hi:
        mid = (lo + hi) // 2
        if solve(iis[mid]) is None:
            lo = mid + 1
        else:
            hi = mid
    ii = iis[lo]
    dsp, bram, picks = solve(ii)
    plan = {s.name: c.par for s, c in zip(stages, picks, strict=True)}
    why = [f"exact search over {sum(len(c) for c in cands)} tuples of {len(stages)} engines, "
           f"{tried} II values tested: smallest feasible II {ii:,} cycles uses {dsp} of "
           f"{arch.board.dsp} DSPs and {bram + skip_bram} of {arch.board.bram36} BRAM36"]
    if lo > 0:
        faster = iis[lo - 1]
        need_dsp = _knapsack([_pareto(cs, faster) for cs in cands], 10**9, 10**9)
        if need_dsp is None:
            why.append(f"the next faster II {faster:,} is unreachable")
        else:
            why.append(f"the next faster II {faster:,} needs at least {need_dsp[0]} DSPs "
                       f"(budget {arch.board.dsp}) / {need_dsp[1] + skip_bram} BRAM36 at that "
                       f"DSP count (budget {arch.board.bram36})")
    else:
        why.append("no faster II exists (every engine is at its largest tuple or a fixed "
                   f"stage sets it: {floor_ii:,} cycles)")
    return {"plan": plan, "ii": ii, "tried": tried, "why": "; ".join(why)}


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
