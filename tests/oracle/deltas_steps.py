"""Step-by-step form of the delta (fill), multicast and link rules, kept as a test oracle.

dse.model.batch computes the same rules over arrays; this module walks the sampled step classes
of one mapping in plain Python (see dse/model/deltas.py for the closed form it implements).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

from dse.model.deltas import (  # noqa: F401 (re-exported for the scalar oracle)
    Step,
    Vec,
    delta_size,
    fills_per_instance,
    link_effect,
    neighbour_diffs,
    steps_for,
)
from dse.model.nest import Nest, NestLoop
from dse.workload.problem import DataSpace


def boundary_steps(nest: Nest, boundary: int, ds: DataSpace) -> list[Step]:
    """The classes of steps seen by one instance of the tile at `boundary` for tensor `ds`.

    `boundary == nest.n_levels` is the compute unit, whose 'tile' is one operation that is
    re-delivered on every step (no reuse below the innermost storage level).
    """
    return steps_for(nest.temporal_above(boundary), ds.extents(nest.box(boundary)),
                     boundary == nest.n_levels, ds)


@dataclass
class SpatialStats:
    """Per parent instance: words read for the children (one per multicast group), the
    words delivered summed over children, and words moved between neighbours instead."""

    total: float
    weighted: float
    fanout: int
    link_transfers: float


def child_offsets(spatial: list[NestLoop]) -> tuple[list[dict[str, int]], int, int]:
    """Op-space offset of each child, in Timeloop's linear order (Y outer, X inner)."""
    xs = [lp for lp in spatial if lp.spatial_x]
    ys = [lp for lp in spatial if not lp.spatial_x]
    ordered = ys + xs  # outermost first; the linear id is mixed-radix over this order
    offsets = []
    for idx in product(*[range(lp.bound) for lp in ordered]):
        off: dict[str, int] = {}
        for lp, i in zip(ordered, idx, strict=True):
            off[lp.dim] = off.get(lp.dim, 0) + i * lp.stride
        offsets.append(off)
    h = math.prod(lp.bound for lp in xs)
    v = math.prod(lp.bound for lp in ys)
    return offsets, h, v


def spatial_stats(
    steps: list[Step], spatial: list[NestLoop], ds: DataSpace, link_transfers: bool = True,
    mesh: tuple[int, int] | None = None,
) -> SpatialStats:
    """Multicast (identical child deltas share one parent read) and link transfers (a child
    takes its delta from a mesh neighbour that held it at the previous step) at one fan-out.

    Children are numbered by the mapping's spatial loops (Y outer, X inner) but, as in
    Timeloop, laid out on the *hardware* mesh `mesh` = (fan-out X, fan-out Y) to find
    neighbours; without `mesh` the mapping's own X x Y grid is used."""
    key = tuple(spatial)
    proj, h_size, v_size, groups = _children(key, ds)
    if mesh is not None:
        h_size, v_size = mesh
    fanout = len(proj)
    total = weighted = links = 0.0
    for s in steps:
        if s.size == 0:
            continue
        use_links = False
        if (
            link_transfers
            and s.translation is not None
            and s.prev_kind == s.kind
            and s.kind != "empty"
            and (s.kind == "full" or s.prev_translation == s.translation)
        ):
            n_linked, groups_with, n_rest = _link_effect(key, ds, s.translation, h_size, v_size)
            if n_linked and groups_with < groups:
                use_links = True
                total += s.weight * s.size * groups_with
                weighted += s.weight * s.size * n_rest
                links += s.weight * s.size * n_linked
        if not use_links:
            total += s.weight * s.size * groups
            weighted += s.weight * s.size * fanout
    return SpatialStats(total, weighted, fanout, links)


@lru_cache(maxsize=4096)
def _children(spatial: tuple[NestLoop, ...], ds: DataSpace):
    offsets, h, v = child_offsets(list(spatial))
    proj = tuple(ds.project(o) for o in offsets)
    return proj, h, v, len(set(proj))


@lru_cache(maxsize=4096)
def _neighbour_diffs(spatial: tuple[NestLoop, ...], ds: DataSpace, h: int, v: int
                     ) -> tuple[frozenset, ...]:
    return neighbour_diffs(_children(spatial, ds)[0], h, v)


@lru_cache(maxsize=65536)
def _link_effect(spatial: tuple[NestLoop, ...], ds: DataSpace, translation: Vec, h: int, v: int):
    proj = _children(spatial, ds)[0]
    return link_effect(proj, _neighbour_diffs(spatial, ds, h, v), translation)
