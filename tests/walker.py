"""A brute-force reference for `dse.model.evaluate`: Timeloop's nest analysis with explicit sets.

Nothing here uses the closed forms of `dse.model.deltas` or the boxes of `dse.model.nest`. The
walker flattens the mapping itself, enumerates every operation point of every tile, projects the
points into each tensor and fills their bounding box (Timeloop's axis-aligned hyper-rectangles),
then replays Timeloop's sampled recursion (`nest-analysis.cpp`): for each temporal loop,
iteration #0 with the current weight and iteration #1 with weight * (bound - 1); every spatial
instance at every sampled step. At each tile boundary each instance keeps
(previous tile, previous translation) and subtracts like `SaveAndSubtractIfSameStride`.
Multicast groups are children with equal delta sets; link transfers compare a child's delta with
a mesh neighbour's delta at the previous sampled step. The bookkeeping afterwards (partition
sizes, parent shares, masking of bypassed levels, first-read elision, peer accesses, bandwidth
slowdown, energy) mirrors `tiling.cpp` / `buffer.cpp`, as `dse.model.evaluate` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import product

from dse.arch.architecture import Architecture
from dse.mapping import Mapping
from dse.workload.problem import DataSpace, Problem

Point = tuple[int, ...]


@dataclass(frozen=True)
class WLoop:
    """One non-unit loop of the flattened nest (outermost first)."""

    dim: str
    bound: int
    level: int
    spatial: bool
    x: bool  # spatial along mesh X
    stride: int  # op-space step: product of the bounds of all loops below over the same dim


@dataclass(frozen=True)
class Tile:
    """A data-space tile: its bounding box (lo inclusive, hi inclusive) and every point in it."""

    lo: Point
    hi: Point
    points: frozenset[Point]


@dataclass
class WalkRow:
    """Per storage level and tensor, what the walker predicts (per instance)."""

    level: str
    tensor: str
    utilized_instances: int
    utilized_capacity_words: int
    partition_size: int
    reads: int
    fills: int
    updates: int
    link_transfers: float = 0.0


@dataclass
class Walk:
    rows: dict[tuple[str, str], WalkRow]
    compute_cycles: int
    cycles: int
    compute_utilized_instances: int
    energy_pJ: float
    level_stats: dict[str, dict[str, list[Fraction]]] = field(default_factory=dict)


def flatten(problem: Problem, mapping: Mapping) -> list[WLoop]:
    """The loop nest, outermost first: per level its temporal loops, then its spatial loops.

    Orders are innermost-first; unlisted dims go outermost (temporal) or after the listed ones
    (spatial). The first `split` dims of the spatial order are mesh X. Unit loops are dropped.
    """
    dims = problem.dims
    raw: list[tuple[str, int, int, bool, bool]] = []
    for i, lm in enumerate(mapping.levels):
        listed = [d for d in lm.temporal_order if d in dims]
        outer_first = [d for d in dims if d not in listed] + listed[::-1]
        for d in outer_first:
            raw.append((d, lm.temporal.get(d, 1), i, False, False))
        order = [d for d in lm.spatial_order if d in dims]
        order += [d for d in dims if d not in order]
        split = len(order) if lm.split is None else lm.split
        for pos in range(len(order) - 1, -1, -1):
            d = order[pos]
            raw.append((d, lm.spatial.get(d, 1), i, True, pos < split))
    raw = [r for r in raw if r[1] > 1]
    loops: list[WLoop] = []
    for k, (d, n, lvl, sp, x) in enumerate(raw):
        stride = math.prod(r[1] for r in raw[k + 1 :] if r[0] == d)
        loops.append(WLoop(d, n, lvl, sp, x, stride))
    return loops


def sampled_steps(bounds: list[int]) -> list[tuple[tuple[int, ...], int]]:
    """Timeloop's sampled walk of temporal loops (outermost first): (indices, weight) in order."""
    if not bounds:
        return [((), 1)]
    inner = sampled_steps(bounds[1:])
    out = []
    for idx, w in ((0, 1), (1, bounds[0] - 1)):
        for rest, wr in inner:
            out.append(((idx, *rest), w * wr))
    return out


def make_tile(ds: DataSpace, op_points: list[dict[str, int]]) -> Tile:
    """Project operation points and fill their bounding box (Timeloop AAHR semantics)."""
    proj = [ds.project(p) for p in op_points]
    lo = tuple(min(c) for c in zip(*proj, strict=True))
    hi = tuple(max(c) for c in zip(*proj, strict=True))
    pts = frozenset(product(*[range(a, b + 1) for a, b in zip(lo, hi, strict=True)]))
    return Tile(lo, hi, pts)


def op_points(dims: tuple[str, ...], base: dict[str, int], loops: list[WLoop]) -> list[dict]:
    """Every operation point of `loops` (all iterations) offset by `base`."""
    pts = []
    for idx in product(*[range(lp.bound) for lp in loops]):
        p = dict.fromkeys(dims, 0)
        p.update(base)
        for lp, i in zip(loops, idx, strict=True):
            p[lp.dim] += i * lp.stride
        pts.append(p)
    return pts


def box_delta(cur: Tile, prev: Tile | None) -> frozenset[Point]:
    """`AxisAlignedHyperRectangle::Subtract`: cur minus prev, but the whole of cur when the
    boxes differ in more than one rank or do not overlap."""
    if prev is None or not prev.points:
        return cur.points
    if cur.points == prev.points:
        return frozenset()
    differing = [
        r for r in range(len(cur.lo)) if (cur.lo[r], cur.hi[r]) != (prev.lo[r], prev.hi[r])
    ]
    if len(differing) > 1 or not (cur.points & prev.points):
        return cur.points
    return cur.points - prev.points


@dataclass
class _State:
    prev: Tile | None = None
    prev_translation: Point | None = None

    def step(self, tile: Tile) -> frozenset[Point]:
        """`OperationSpace::SaveAndSubtractIfSameStride` for one tensor."""
        translation = None
        if self.prev is not None and self.prev.points:
            translation = tuple(a - b for a, b in zip(tile.lo, self.prev.lo, strict=True))
        if self.prev_translation is None:
            delta = box_delta(tile, self.prev)
            self.prev_translation = translation
        elif translation == self.prev_translation:
            delta = box_delta(tile, self.prev)
        else:
            delta = tile.points
            self.prev_translation = None
        self.prev = tile
        return delta


def boundary_deltas(
    problem: Problem, loops: list[WLoop], b: int, ds: DataSpace, n: int
) -> tuple[list[int], dict[tuple[int, ...], list[frozenset[Point]]], int]:
    """Per instance of tile boundary `b` (spatial indices of the loops above, in nest order), the
    delta set at each sampled step; plus the step weights and the largest tile seen.

    `b == n` is the compute unit: its tile is one operation, re-delivered on every step.
    """
    above = [lp for lp in loops if lp.level < b]
    below = [lp for lp in loops if lp.level >= b]
    temporal = [lp for lp in above if not lp.spatial]
    spatial = [lp for lp in above if lp.spatial]
    steps = sampled_steps([lp.bound for lp in temporal])
    weights = [w for _, w in steps]
    deltas: dict[tuple[int, ...], list[frozenset[Point]]] = {}
    biggest = 0
    for sidx in product(*[range(lp.bound) for lp in spatial]):
        state = _State()
        seq = []
        for tidx, _ in steps:
            base: dict[str, int] = {}
            pairs = list(zip(temporal, tidx, strict=True)) + list(zip(spatial, sidx, strict=True))
            for lp, i in pairs:
                base[lp.dim] = base.get(lp.dim, 0) + i * lp.stride
            tile = make_tile(ds, op_points(problem.dims, base, below))
            biggest = max(biggest, len(tile.points))
            seq.append(tile.points if b == n else state.step(tile))
        deltas[sidx] = seq
    return weights, deltas, biggest


def _mesh_neighbours(c: int, width: int, height: int, count: int) -> list[int]:
    h, v = c % width, c // width
    out = []
    for dh, dv in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nh, nv = h + dh, v + dv
        if 0 <= nh < width and 0 <= nv < height and nv * width + nh < count:
            out.append(nv * width + nh)
    return out


def level_traffic(
    loops: list[WLoop],
    i: int,
    weights: list[int],
    deltas: dict[tuple[int, ...], list[frozenset[Point]]],
    link_transfers: bool,
    mesh: tuple[int, int] | None,
) -> tuple[Fraction, Fraction, int, Fraction]:
    """(total, weighted, fanout, link transfers) per instance of level `i` for its children.

    total counts one parent read per multicast group (children with equal non-empty deltas);
    weighted counts every child. `mesh` = (X, Y) of the hardware to lay children out on, or
    None to use the mapping's spatial X / Y products.
    """
    sp = [lp for lp in loops if lp.level == i and lp.spatial]
    n_outer = sum(1 for lp in loops if lp.spatial and lp.level < i)
    if not sp:
        per = [sum(w * len(d) for w, d in zip(weights, seq, strict=True))
               for seq in deltas.values()]
        avg = Fraction(sum(per), len(per))
        return avg, avg, 1, Fraction(0)
    ys = [k for k, lp in enumerate(sp) if not lp.x]
    xs = [k for k, lp in enumerate(sp) if lp.x]
    ordered = ys + xs  # linear child id: mixed radix, Y loops outer, X loops inner
    width = math.prod(sp[k].bound for k in xs)
    height = math.prod(sp[k].bound for k in ys)
    if mesh is not None:
        width, height = mesh
    fanout = math.prod(lp.bound for lp in sp)
    parents: dict[tuple[int, ...], list[list[frozenset[Point]]]] = {}
    for sidx, seq in deltas.items():
        parents.setdefault(sidx[:n_outer], [None] * fanout)  # type: ignore[list-item]
        local = sidx[n_outer:]
        cid = 0
        for k in ordered:
            cid = cid * sp[k].bound + local[k]
        parents[sidx[:n_outer]][cid] = seq
    total = weighted = links = Fraction(0)
    for kids in parents.values():
        for s, w in enumerate(weights):
            cur = [seq[s] for seq in kids]
            plain_groups = {d for d in cur if d}
            plain = sum(len(d) for d in plain_groups)
            linked: set[int] = set()
            if link_transfers and s > 0:
                for c, d in enumerate(cur):
                    nbrs = _mesh_neighbours(c, width, height, fanout)
                    if d and any(kids[nb][s - 1] == d for nb in nbrs):
                        linked.add(c)
            rest = [d for c, d in enumerate(cur) if c not in linked]
            with_links = sum(len(d) for d in {d for d in rest if d})
            if linked and with_links < plain:
                total += w * with_links
                weighted += w * sum(len(d) for d in rest)
                links += w * sum(len(cur[c]) for c in linked)
            else:
                total += w * plain
                weighted += w * sum(len(d) for d in cur)
    k = len(parents)
    return total / k, weighted / k, fanout, links / k


def walk(
    problem: Problem,
    arch: Architecture,
    mapping: Mapping,
    *,
    link_transfers: bool = True,
    hardware_mesh: bool = True,
) -> Walk:
    """Brute-force per-level, per-tensor reads/fills/updates, capacities, cycles and energy.

    `hardware_mesh=True` lays children out on the architecture's fan-out X (as Timeloop's
    `ComputeNetworkLinkTransfers` does) instead of the mapping's spatial-X product.
    """
    loops = flatten(problem, mapping)
    n = len(arch.levels)
    rows: dict[tuple[str, str], WalkRow] = {}
    instances = [math.prod(lp.bound for lp in loops if lp.spatial and lp.level < b)
                 for b in range(n + 1)]
    stats: dict[str, dict[str, list[Fraction]]] = {}
    for ds in problem.data_spaces:
        keeps = [mapping.levels[i].keeps(ds.name) and not arch.levels[i].is_dummy
                 for i in range(n)]
        assert keeps[0], "the outermost level keeps every tensor"
        size = [0] * n
        total = [Fraction(0)] * n
        weighted = [Fraction(0)] * n
        fanout = [1] * n
        links = [Fraction(0)] * n
        for b in range(n + 1):
            weights, deltas, biggest = boundary_deltas(problem, loops, b, ds, n)
            if b < n:
                size[b] = biggest
            if b > 0:
                mesh = arch.fanout(b - 1) if hardware_mesh else None
                total[b - 1], weighted[b - 1], fanout[b - 1], links[b - 1] = level_traffic(
                    loops, b - 1, weights, deltas, link_transfers, mesh
                )
        stats[ds.name] = {"total": list(total), "weighted": list(weighted)}
        # partition sizes: shrink through each fan-out by (child tile / spatial tile of parent)
        partition = [0] * n
        partition[0] = size[0]
        for i in range(1, n):
            has_sp = any(lp.spatial and lp.level == i - 1 for lp in loops)
            if has_sp:
                box = [lp for lp in loops if lp.level >= i or (lp.spatial and lp.level == i - 1)]
                denom = len(make_tile(ds, op_points(problem.dims, {}, box)).points)
            else:
                denom = size[i]
            partition[i] = partition[i - 1] * size[i] // denom
        content = list(total)
        share = [Fraction(0)] + [weighted[i - 1] / fanout[i - 1] for i in range(1, n)]
        kept_size = list(size)
        for i in range(n - 1, 0, -1):  # MaskTiles, innermost first
            if keeps[i]:
                continue
            o = i - 1
            factor = content[i] * fanout[o] / weighted[o] if weighted[o] else Fraction(0)
            total[o] *= factor
            weighted[o] *= factor
            content[o] = total[o]
            links[o] = Fraction(0)
            kept_size[i] = partition[i] = 0
            content[i] = share[i] = Fraction(0)
        peer = [0] * n
        for i in range(n - 1):
            if links[i]:
                peer[i + 1] += int(links[i]) // instances[i + 1]
        for i in range(n):
            if not keeps[i]:
                continue
            if ds.read_write:
                updates = round(content[i])
                reads = round(content[i] + peer[i] - partition[i])
                fills = round(share[i] + peer[i] - (0 if i == 0 else partition[i]))
            else:
                reads, updates = round(content[i] + peer[i]), 0
                fills = int(share[i] + peer[i])
            rows[(arch.levels[i].name, ds.name)] = WalkRow(
                arch.levels[i].name, ds.name, instances[i], kept_size[i], partition[i],
                reads, fills, updates, float(links[i]),
            )
    compute_cycles = sum(w for _, w in sampled_steps([lp.bound for lp in loops if not lp.spatial]))
    cycles, energy = _cycles_and_energy(problem, arch, rows, compute_cycles)
    return Walk(rows, compute_cycles, cycles, instances[n], energy, stats)


def _cycles_and_energy(
    problem: Problem, arch: Architecture, rows: dict[tuple[str, str], WalkRow], compute: int
) -> tuple[int, float]:
    """Bandwidth throttling (`buffer.cpp`) and energy per vector access, plus leakage."""
    cycles = compute
    for lv in arch.levels:
        mine = [r for r in rows.values() if r.level == lv.name]
        rd = sum(r.reads for r in mine) / compute
        wr = sum(r.fills + r.updates for r in mine) / compute
        slow = 1.0
        for bw, demand in ((lv.read_bandwidth, rd), (lv.write_bandwidth, wr),
                           (lv.shared_bandwidth, rd + wr)):
            if bw is not None and bw < demand:
                slow = min(slow, bw / demand)
        cycles = max(cycles, math.ceil(compute / slow))
    energy = problem.macs * arch.compute.energy["compute"].pJ
    for lv in arch.levels:
        mine = [r for r in rows.values() if r.level == lv.name]
        if not mine:
            continue
        e = lv.energy
        upd = e["update"] if "update" in e else e["write"]
        for r in mine:
            blk = lv.block_size
            energy += r.utilized_instances * (
                math.ceil(r.reads / blk) * e["read"].pJ
                + math.ceil(r.fills / blk) * e["write"].pJ
                + math.ceil(r.updates / blk) * upd.pJ
            )
        used = max((r.utilized_instances for r in mine), default=0)
        if used and "leak" in e:
            energy += e["leak"].pJ * cycles * used
    return cycles, energy
