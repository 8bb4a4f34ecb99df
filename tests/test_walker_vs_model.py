"""`dse.model.evaluate` against the brute-force walker in tests/walker.py, exactly.

Random tiny problems (conv1d with stride/dilation, depthwise conv1d, 2D conv, matmul, 1D conv),
random architectures (2-4 storage levels, DRAM outermost, random X/Y fan-outs, optional bandwidth
limits and dummy levels) and random mappings (factors, permutations, X/Y splits, keep sets).
The walker is also checked against the small Timeloop reference cases.
"""

from __future__ import annotations

import csv
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse.arch.architecture import Architecture, ComputeLevel, Energy, StorageLevel
from dse.mapping import LevelMapping, Mapping
from dse.model import Evaluation, evaluate
from dse.workload.problem import DataSpace, Problem
from tests.conftest import TIMELOOP_REFS
from tests.walker import Walk, flatten, walk

MAX_OPS = 300  # product of all bounds


# ---------------------------------------------------------------- problems


def _ds(name: str, ranks: list[list[tuple[str, int]]], rw: bool = False) -> DataSpace:
    return DataSpace(name, tuple(tuple(r) for r in ranks), read_write=rw)


def make_problem(kind: str, bounds: dict[str, int], s: int = 1, d: int = 1) -> Problem:
    """One of a small pool of layer shapes; `s`/`d` are the input stride/dilation coefficients."""
    if kind == "conv1d":
        spaces = (
            _ds("Weights", [[("K", 1)], [("C", 1)], [("R", 1)]]),
            _ds("Inputs", [[("C", 1)], [("P", s), ("R", d)]]),
            _ds("Outputs", [[("K", 1)], [("P", 1)]], rw=True),
        )
    elif kind == "dwconv1d":
        spaces = (
            _ds("Weights", [[("C", 1)], [("R", 1)]]),
            _ds("Inputs", [[("C", 1)], [("P", s), ("R", d)]]),
            _ds("Outputs", [[("C", 1)], [("P", 1)]], rw=True),
        )
    elif kind == "conv2d":
        spaces = (
            _ds("Weights", [[("R", 1)], [("S", 1)]]),
            _ds("Inputs", [[("P", s), ("R", d)], [("Q", 1), ("S", 1)]]),
            _ds("Outputs", [[("P", 1)], [("Q", 1)]], rw=True),
        )
    elif kind == "matmul":
        spaces = (
            _ds("A", [[("M", 1)], [("K", 1)]]),
            _ds("B", [[("K", 1)], [("N", 1)]]),
            _ds("Z", [[("M", 1)], [("N", 1)]], rw=True),
        )
    elif kind == "conv1d_small":
        spaces = (
            _ds("Weights", [[("R", 1)]]),
            _ds("Inputs", [[("P", s), ("R", d)]]),
            _ds("Outputs", [[("P", 1)]], rw=True),
        )
    else:
        raise ValueError(kind)
    return Problem(kind, tuple(bounds), dict(bounds), spaces)


DIMS = {
    "conv1d": ("K", "C", "R", "P"),
    "dwconv1d": ("C", "R", "P"),
    "conv2d": ("R", "S", "P", "Q"),
    "matmul": ("M", "N", "K"),
    "conv1d_small": ("R", "P"),
}


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    kind = draw(st.sampled_from(sorted(DIMS)))
    bounds: dict[str, int] = {}
    budget = MAX_OPS
    for d in DIMS[kind]:
        b = draw(st.integers(1, max(1, min(6, budget))))
        bounds[d] = b
        budget //= b
    s = draw(st.sampled_from([1, 1, 2]))
    dil = draw(st.sampled_from([1, 1, 2]))
    return make_problem(kind, bounds, s, dil)


# ------------------------------------------------------------ architectures


def _energy(draw: st.DrawFn, leak: bool = True) -> dict[str, Energy]:
    pj = st.sampled_from([0.5, 1.0, 2.25, 7.0])
    out = {a: Energy(draw(pj), "spec:inline") for a in ("read", "write")}
    if draw(st.booleans()):
        out["update"] = Energy(draw(pj), "spec:inline")
    if leak and draw(st.booleans()):
        out["leak"] = Energy(draw(st.sampled_from([0.01, 0.1])), "spec:inline")
    return out


def storage(
    name: str, mx: int, my: int, block: int, *, dram: bool = False, dummy: bool = False,
    energy: dict[str, Energy] | None = None, bw: tuple[float | None, ...] = (None, None, None),
) -> StorageLevel:
    return StorageLevel(
        name=name, instances=mx * my, mesh_x=mx, mesh_y=my,
        depth=None if dram else (0 if dummy else 4096), width=8 * block, datawidth=8,
        block_size=block, is_dram=dram, is_dummy=dummy,
        read_bandwidth=bw[0], write_bandwidth=bw[1], shared_bandwidth=bw[2],
        energy=energy if energy is not None else {
            "read": Energy(2.0, "spec:inline"), "write": Energy(3.0, "spec:inline")},
    )


@st.composite
def architectures(draw: st.DrawFn) -> Architecture:
    n = draw(st.integers(2, 4))
    levels = []
    mx = my = 1
    for i in range(n):
        if i > 0:
            mx *= draw(st.integers(1, 4))
            my *= draw(st.integers(1, 4))
        limited = draw(st.integers(0, 3)) == 0
        bw = tuple(draw(st.sampled_from([None, 0.5, 2.0])) if limited else None for _ in range(3))
        dummy = i > 0 and draw(st.integers(0, 7)) == 0
        levels.append(storage(
            "DRAM" if i == 0 else f"L{i}", mx, my, draw(st.integers(1, 4)), dram=i == 0,
            dummy=dummy, energy=_energy(draw), bw=bw,  # type: ignore[arg-type]
        ))
    mx *= draw(st.integers(1, 4))
    my *= draw(st.integers(1, 4))
    compute = ComputeLevel("MAC", mx * my, mx, my,
                           energy={"compute": Energy(draw(st.sampled_from([1.0, 0.3])), "inline")})
    return Architecture("rand", tuple(levels), compute)


# ----------------------------------------------------------------- mappings


def _divisor(draw: st.DrawFn, n: int, cap: int | None = None) -> int:
    opts = [k for k in range(1, n + 1) if n % k == 0 and (cap is None or k <= cap)]
    return draw(st.sampled_from(opts))


Window = tuple[int, str, bool, str]  # (level, spatial dim, on mesh X, temporal dim innermost)


@st.composite
def mappings(
    draw: st.DrawFn, problem: Problem, arch: Architecture, window: Window | None = None
) -> Mapping:
    """Random factors over every level's temporal and spatial slots (within the fan-outs),
    random permutations, X/Y splits and keep sets. `window` forces a sliding-window pattern at
    one level: a factor >= 2 of one dim spread over a mesh axis, and a factor >= 2 of another
    dim as the innermost temporal loop right above it."""
    dims = problem.dims
    n = len(arch.levels)
    left = dict(problem.bounds)

    def big_divisor(d: str, cap: int) -> int:
        opts = [k for k in range(2, min(cap, left[d]) + 1) if left[d] % k == 0]
        return draw(st.sampled_from(opts)) if opts else 1

    spatial: list[dict[str, int]] = [{} for _ in range(n)]
    sp_order: list[tuple[str, ...]] = [() for _ in range(n)]
    splits: list[int | None] = [None] * n
    level_order = list(draw(st.permutations(range(n))))
    if window is not None:
        level_order.remove(window[0])
        level_order.insert(0, window[0])
    for i in level_order:
        fx, fy = arch.fanout(i)
        order = list(draw(st.permutations(dims)))
        split = draw(st.integers(0, len(dims)))
        used = {True: 1, False: 1}
        forced = None
        if window is not None and i == window[0]:
            forced, wx = window[1], window[2]
            others = [d for d in order if d != forced]
            split = min(split, len(others))
            xs, ys = others[:split], others[split:]
            peers = xs if wx else ys
            peers.insert(draw(st.integers(0, len(peers))), forced)
            order, split = xs + ys, len(xs)
            f = big_divisor(forced, fx if wx else fy)
            used[wx] = f
            left[forced] //= f
            if f > 1:
                spatial[i][forced] = f
        for pos, d in enumerate(order):
            if d == forced:
                continue
            x = pos < split
            f = _divisor(draw, left[d], (fx if x else fy) // used[x])
            used[x] *= f
            left[d] //= f
            if f > 1:
                spatial[i][d] = f
        sp_order[i] = tuple(order)
        splits[i] = None if split == len(dims) and draw(st.booleans()) else split
    temporal: list[dict[str, int]] = [{} for _ in range(n)]
    orders = [tuple(draw(st.permutations(dims))) for _ in range(n)]
    for i in range(n - 1, 0, -1):
        for d in dims:
            if window is not None and (i, d) == (window[0], window[3]):
                f = big_divisor(d, left[d])
            else:
                f = _divisor(draw, left[d])
            left[d] //= f
            if f > 1:
                temporal[i][d] = f
    temporal[0] = {d: left[d] for d in dims if left[d] > 1}
    if window is not None:
        wl, td = window[0], window[3]
        orders[wl] = (td, *[d for d in orders[wl] if d != td])
    names = problem.tensor_names
    levels = []
    for i in range(n):
        keep = None
        if i > 0 and draw(st.booleans()):
            keep = frozenset(draw(st.sets(st.sampled_from(names))))
        levels.append(LevelMapping(
            target=arch.levels[i].name, temporal=temporal[i], temporal_order=orders[i],
            spatial=spatial[i], spatial_order=sp_order[i], split=splits[i], keep=keep,
        ))
    return Mapping(tuple(levels), source="hypothesis")


@st.composite
def cases(draw: st.DrawFn) -> tuple[Problem, Architecture, Mapping, bool]:
    problem = draw(problems())
    arch = draw(architectures())
    mapping = draw(mappings(problem, arch))
    return problem, arch, mapping, draw(st.booleans())


@st.composite
def window_cases(draw: st.DrawFn) -> tuple[Problem, Architecture, Mapping, bool]:
    """Sliding windows: R (or P) spread over a mesh axis, P (or R) walked in time right above
    it -- the pattern where neighbours' previous deltas can be forwarded (link transfers)."""
    kind = draw(st.sampled_from(["conv1d_small", "dwconv1d", "conv2d", "conv1d"]))
    wd = draw(st.sampled_from(["R", "P"]))
    arch = draw(architectures())
    fans = [(i, *arch.fanout(i)) for i in range(len(arch.levels))]
    wl, fx, fy = draw(st.sampled_from([f for f in fans if max(f[1:]) >= 2] or fans))
    wx = draw(st.sampled_from([ax for ax, f in ((True, fx), (False, fy)) if f >= 2] or [True]))
    bounds = {"R": draw(st.integers(1, 4)), "P": draw(st.integers(2, 8))}
    if kind == "dwconv1d":
        bounds = {"C": draw(st.integers(1, 3)), **bounds}
    if kind == "conv1d":
        bounds = {"K": draw(st.integers(1, 3)), "C": draw(st.integers(1, 2)), **bounds}
    if kind == "conv2d":
        bounds = {"R": bounds["R"], "S": draw(st.integers(1, 3)), "P": bounds["P"],
                  "Q": draw(st.integers(1, 3))}
    problem = make_problem(kind, bounds, draw(st.sampled_from([1, 1, 1, 2])),
                           draw(st.sampled_from([1, 1, 1, 2])))
    mapping = draw(mappings(problem, arch, window=(wl, wd, wx, "P" if wd == "R" else "R")))
    return problem, arch, mapping, draw(st.sampled_from([True, True, True, False]))


# ------------------------------------------------------------------ checks


def assert_same(ev: Evaluation, wk: Walk) -> None:
    got = {(r.level, r.tensor): r for r in ev.stats}
    assert set(got) == set(wk.rows), "rows (level, tensor) differ"
    for key, w in wk.rows.items():
        g = got[key]
        pairs = {
            "utilized_instances": (g.utilized_instances, w.utilized_instances),
            "utilized_capacity_words": (g.utilized_capacity_words, w.utilized_capacity_words),
            "partition_size": (g.partition_size, w.partition_size),
            "reads": (g.reads_per_instance, w.reads),
            "fills": (g.fills_per_instance, w.fills),
            "updates": (g.updates_per_instance, w.updates),
        }
        for name, (model, ref) in pairs.items():
            assert model == ref, f"{key} {name}: model {model} != walker {ref}"
        assert g.link_transfers == pytest.approx(w.link_transfers), f"{key} link_transfers"
    assert ev.compute_cycles == wk.compute_cycles
    assert ev.cycles == wk.cycles
    assert ev.compute_utilized_instances == wk.compute_utilized_instances
    assert ev.energy_pJ == pytest.approx(wk.energy_pJ, rel=1e-9)


def check(problem: Problem, arch: Architecture, mapping: Mapping, links: bool = True) -> Walk:
    ev = evaluate(problem, arch, mapping, link_transfers=links)
    wk = walk(problem, arch, mapping, link_transfers=links)
    assert_same(ev, wk)
    return wk


SETTINGS = settings(max_examples=600, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.slow  # 600 examples, ~10 s
@SETTINGS
@given(cases())
def test_model_matches_walker(case: tuple[Problem, Architecture, Mapping, bool]) -> None:
    problem, arch, mapping, links = case
    check(problem, arch, mapping, links)


@pytest.mark.slow
@SETTINGS
@given(window_cases())
def test_model_matches_walker_sliding_windows(
    case: tuple[Problem, Architecture, Mapping, bool],
) -> None:
    problem, arch, mapping, links = case
    check(problem, arch, mapping, links)


# ------------------------------------------------------------ hand-written


def _chain(fanouts: list[tuple[int, int]], blocks: list[int] | None = None) -> Architecture:
    """DRAM plus len(fanouts)-1 buffers; fanouts[i] is the X/Y fan-out below level i."""
    levels = []
    mx = my = 1
    for i, _ in enumerate(fanouts):
        if i > 0:
            mx *= fanouts[i - 1][0]
            my *= fanouts[i - 1][1]
        blk = blocks[i] if blocks else 1
        levels.append(storage("DRAM" if i == 0 else f"L{i}", mx, my, blk, dram=i == 0))
    mx *= fanouts[-1][0]
    my *= fanouts[-1][1]
    compute = ComputeLevel("MAC", mx * my, mx, my, energy={"compute": Energy(1.0, "inline")})
    return Architecture("hand", tuple(levels), compute)


def test_sliding_window_links() -> None:
    """conv1d R=3 spread over 3 PEs along X, P walked in time: PE r takes input p+r, which its
    right neighbour held at the previous step, so link transfers replace buffer reads."""
    problem = make_problem("conv1d_small", {"R": 3, "P": 8})
    arch = _chain([(1, 1), (3, 1)])
    mapping = Mapping((
        LevelMapping("DRAM", temporal={"P": 2}),
        LevelMapping("L1", temporal={"P": 4}, temporal_order=("P", "R"),
                     spatial={"R": 3}, spatial_order=("R", "P"), split=2),
    ))
    wk = check(problem, arch, mapping, links=True)
    assert wk.rows[("L1", "Inputs")].link_transfers > 0
    no_links = check(problem, arch, mapping, links=False)
    assert no_links.rows[("L1", "Inputs")].link_transfers == 0
    assert wk.rows[("L1", "Inputs")].reads < no_links.rows[("L1", "Inputs")].reads


def test_links_only_when_strictly_cheaper() -> None:
    """X children ordered (R outer, K inner): child (r=0, k=1) could take its Input from its
    right neighbour (r=1, k=0), but group r=0 still needs a parent read through (r=0, k=0), so
    links would not save a read: Timeloop keeps plain multicast (`total_with < total_without`)."""
    problem = make_problem("conv1d", {"K": 2, "C": 1, "R": 2, "P": 4})
    arch = _chain([(1, 1), (4, 1)])
    mapping = Mapping((
        LevelMapping("DRAM"),
        LevelMapping("L1", temporal={"P": 4}, temporal_order=("P",), spatial={"R": 2, "K": 2},
                     spatial_order=("K", "R"), split=2),
    ))
    wk = check(problem, arch, mapping)
    assert wk.rows[("L1", "Inputs")].link_transfers == 0
    inputs = wk.level_stats["Inputs"]
    assert 2 * inputs["total"][1] == inputs["weighted"][1]


def test_links_after_partial_deltas() -> None:
    """Halo tiles (P=2, R=2 per child, children 2 apart in P) stepped by an R loop: a child's
    new tile equals its neighbour's old one, but the deltas differ (partial vs whole tile)."""
    problem = make_problem("conv1d_small", {"R": 4, "P": 6})
    arch = _chain([(1, 1), (3, 1), (1, 1)])
    mapping = Mapping((
        LevelMapping("DRAM"),
        LevelMapping("L1", temporal={"R": 2}, temporal_order=("R", "P"), spatial={"P": 3},
                     spatial_order=("P", "R"), split=2),
        LevelMapping("L2", temporal={"P": 2, "R": 2}),
    ))
    wk = check(problem, arch, mapping)
    assert wk.rows[("L1", "Inputs")].link_transfers == 0


def test_bypassed_middle_level() -> None:
    """A middle buffer that keeps only Weights: Inputs/Outputs traffic re-routes to DRAM."""
    problem = make_problem("conv1d", {"K": 2, "C": 3, "R": 3, "P": 4})
    arch = _chain([(1, 1), (2, 1), (1, 1)], blocks=[4, 2, 1])
    mapping = Mapping((
        LevelMapping("DRAM", temporal={"C": 3, "P": 2}, temporal_order=("P", "C", "K", "R")),
        LevelMapping("L1", temporal={"P": 2}, spatial={"K": 2}, spatial_order=("K",),
                     keep=frozenset({"Weights"})),
        LevelMapping("L2", temporal={"R": 3}, temporal_order=("R", "P", "C", "K")),
    ))
    wk = check(problem, arch, mapping)
    assert ("L1", "Inputs") not in wk.rows and ("L1", "Weights") in wk.rows


def test_spatial_multicast() -> None:
    """K (X) x C (Y) over 2x2 PEs: the two K columns need the same Inputs, so one buffer read
    feeds both (multicast), while Weights are unicast."""
    problem = make_problem("conv1d", {"K": 4, "C": 2, "R": 2, "P": 3})
    arch = _chain([(1, 1), (2, 2)])
    mapping = Mapping((
        LevelMapping("DRAM", temporal={"K": 2}),
        LevelMapping("L1", temporal={"R": 2, "P": 3}, temporal_order=("R", "P", "C", "K"),
                     spatial={"K": 2, "C": 2}, spatial_order=("K", "C", "R", "P"), split=1),
    ))
    wk = check(problem, arch, mapping)
    inputs, weights = wk.level_stats["Inputs"], wk.level_stats["Weights"]
    assert 2 * inputs["total"][1] == inputs["weighted"][1]
    assert weights["total"][1] == weights["weighted"][1]


def test_flatten_matches_model_nest() -> None:
    """The walker's own flattening agrees with the model's on a mixed mapping."""
    from dse.model.nest import build_nest

    problem = make_problem("conv1d", {"K": 4, "C": 2, "R": 3, "P": 2})
    mapping = Mapping((
        LevelMapping("DRAM", temporal={"K": 2, "P": 2}, temporal_order=("P",)),
        LevelMapping("L1", temporal={"R": 3}, spatial={"K": 2, "C": 2},
                     spatial_order=("C", "K"), split=1),
    ))
    mine = [(lp.dim, lp.bound, lp.level, lp.spatial, lp.x, lp.stride)
            for lp in flatten(problem, mapping)]
    nest = build_nest(problem, mapping)
    theirs = [(lp.dim, lp.bound, lp.level, lp.spatial, lp.spatial_x, lp.stride)
              for lp in nest.loops]
    assert mine == theirs


# ------------------------------------------- the walker against Timeloop itself

# Read at collection: a missing MANIFEST fails the run (never an empty, skipped parameter set).
SMALL_REFS = [
    pytest.param(r["folder"], marks=[pytest.mark.slow] if int(r["macs"]) > 5_000 else [])
    for r in csv.DictReader(open(TIMELOOP_REFS / "MANIFEST.csv")) if int(r["macs"]) <= 50_000
]
assert SMALL_REFS, f"no small Timeloop reference cases in {TIMELOOP_REFS / 'MANIFEST.csv'}"


@pytest.mark.parametrize("name", SMALL_REFS)
def test_walker_matches_timeloop_reference(name: str) -> None:
    """The walker alone reproduces Timeloop's per-level accesses on the small reference cases."""
    import yaml

    from dse.spec.build import load_spec

    case = TIMELOOP_REFS / name
    meta = yaml.safe_load((case / "case.yaml").read_text())
    spec = load_spec([case / "inputs" / f for f in meta["inputs"]])
    wk = walk(spec.problem, spec.arch, spec.mapping)
    for row in csv.DictReader(open(case / "expected.csv")):
        if row["tensor"] == "compute":
            assert wk.compute_utilized_instances == int(row["utilized_instances"])
            continue
        w = wk.rows[(row["level"], row["tensor"])]
        assert w.reads == int(row["reads_per_instance"]), f"{row['level']}/{row['tensor']}"
        assert w.fills == int(row["fills_per_instance"]), f"{row['level']}/{row['tensor']}"
        assert w.updates == int(row["updates_per_instance"]), f"{row['level']}/{row['tensor']}"
        assert w.partition_size == int(row["partition_size"])
        assert w.utilized_capacity_words == int(row["utilized_capacity_words"])
    assert wk.cycles == int(next(
        r for r in csv.DictReader(open(TIMELOOP_REFS / "MANIFEST.csv")) if r["folder"] == name
    )["cycles"])
    assert math.isfinite(wk.energy_pJ)


# ------------------------------------------------ link transfers on the hardware mesh


def test_link_layout_uses_hardware_mesh_width() -> None:
    """R=3 spread over mesh Y of a 2x3 fan-out: Timeloop numbers children y*Xmap + x but
    finds neighbours with the hardware X=2 (mapping.fanoutX_map = ArchProperties::FanoutX()),
    so children 1 and 2 are not neighbours there."""
    problem = make_problem("conv1d_small", {"R": 3, "P": 4})
    arch = _chain([(2, 3), (1, 1)])
    mapping = Mapping((
        LevelMapping("DRAM", temporal={"P": 4}, spatial={"R": 3}, spatial_order=("R", "P"),
                     split=0),
        LevelMapping("L1"),
    ))
    assert_same(evaluate(problem, arch, mapping), walk(problem, arch, mapping, hardware_mesh=True))


def test_links_follow_the_mappings_spatial_order() -> None:
    """A fan-out listing R inside C (not the mapper's dimension order) numbers its children
    R-fastest, which changes who neighbours whom (found by hypothesis; assuming dimension
    order gives L1 Inputs reads 16 instead of the walker's 14)."""
    problem = make_problem("conv1d", {"K": 1, "C": 2, "R": 4, "P": 2})
    arch = _chain([(1, 1), (1, 4)])
    for order in (("K", "R", "C", "P"), ("K", "C", "R", "P")):
        mapping = Mapping((
            LevelMapping("DRAM", temporal={"R": 2, "P": 2}, temporal_order=("K", "C", "R", "P")),
            LevelMapping("L1", spatial={"R": 2, "C": 2}, spatial_order=order, split=0),
        ))
        check(problem, arch, mapping)
