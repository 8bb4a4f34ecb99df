"""The vectorised spatial-combination construction of the mapspace equals the obvious recursive
one (kept here as the oracle): same combinations in the same order -- seeded sampling indexes
into that list, so a different order would change search results -- and the same counts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dse.arch.architecture import Architecture
from dse.mapper.constraints import Constraints, LevelConstraints
from dse.mapper.mapspace import MapSpace, spatial_combinations
from dse.mapper.search import SearchConfig
from dse.pipeline.map import prepare
from dse.spec.library_paths import bundled_dir
from tests.test_mapper import _level, _mac, _window_design
from tests.test_walker_vs_model import make_problem


def recursive_combos(space: MapSpace) -> tuple[list[tuple[int, ...]], list[int]]:
    """The former construction: depth-first over dims, keys in order, pruning a prefix as soon
    as a mesh axis overflows. Returns the combinations and their factorization counts."""
    limits = []
    for j in space._spatial_cols:
        s = space.slots[j]
        fx, fy = space.arch.fanout(s.level)
        limits.append(fx if s.kind == "X" else fy)
    limits = np.array(limits, dtype=np.int64)
    n_axes = len(limits)
    combos: list[tuple[int, ...]] = []

    def rec(d: int, prod: np.ndarray, acc: list[int]) -> None:
        if d == space.D:
            combos.append(tuple(acc))
            return
        keys = space.spatial_keys[d]
        for k in range(len(keys)):
            p = prod * keys[k] if n_axes else prod
            if n_axes and np.any(p > limits):
                continue
            acc.append(k)
            rec(d + 1, p, acc)
            acc.pop()

    rec(0, np.ones(n_axes, dtype=np.int64), [])
    counts = [int(np.prod([len(space.completions[d][k]) for d, k in enumerate(c)], dtype=object))
              for c in combos]
    return combos, counts


def _files(*rel: str) -> list[str]:
    return [str(bundled_dir(r.partition("/")[0]) / r.partition("/")[2]) for r in rel]


EYERISS = ("arch_specs/eyeriss_like.yaml", "arch_specs/eyeriss_like.constraints.yaml")
V1 = ("arch_specs/eyeriss_v1.yaml", "arch_specs/eyeriss_v1.constraints.yaml")
AIE = "arch_specs/aie_npu.yaml"
RESNET = "workloads/resnet18_conv2_x.yaml"
VGG = "workloads/vgg02_conv5.yaml"


def _spec_space(files: tuple[str, ...], parameters: dict | None = None) -> MapSpace:
    _, searcher = prepare(_files(*files), SearchConfig(), parameters=parameters)
    return searcher.space


def _synthetic_spaces() -> list[MapSpace]:
    problem, arch = _window_design()
    window = Constraints({"GLB": LevelConstraints(spatial_exact={"R": 3}, perm_inner=("P",),
                                                  temporal_min={"P": 2})})
    fan_problem = make_problem("conv1d", {"K": 4, "C": 2, "R": 3, "P": 4})
    fan = Architecture("fan", (_level("DRAM", 1, 1, None, read=100, write=100),
                               _level("Buf", 1, 1, 24, block=2, rbw=3, read=2, write=2.5)),
                       _mac(4, 2))
    mesh = Architecture("mesh", (_level("DRAM", 1, 1, None, read=100, write=100),
                                 _level("GLB", 2, 2, 64, read=6, write=7),
                                 _level("RF", 8, 6, 16, read=0.5, write=0.6)), _mac(8, 6))
    mesh_problem = make_problem("conv1d", {"K": 8, "C": 6, "R": 3, "P": 12})
    mesh_cons = Constraints({"GLB": LevelConstraints(spatial_max={"K": 2}, spatial_min={"C": 2},
                                                     x_only=frozenset({"P"})),
                             "DRAM": LevelConstraints(y_only=frozenset({"K"}))})
    flat = Architecture("flat", (_level("DRAM", 1, 1, None, read=100, write=100),
                                 _level("Buf", 1, 1, 24, read=2, write=2.5)), _mac(1, 1))
    impossible = Constraints({"GLB": LevelConstraints(spatial_exact={"R": 5})})
    return [MapSpace(problem, arch, Constraints({})), MapSpace(problem, arch, window),
            MapSpace(fan_problem, fan, Constraints({})),
            MapSpace(mesh_problem, mesh, Constraints({})),
            MapSpace(mesh_problem, mesh, mesh_cons),
            MapSpace(fan_problem, flat, Constraints({})),
            MapSpace(problem, arch, impossible)]


def _assert_same_as_oracle(space: MapSpace) -> None:
    combos, counts = recursive_combos(space)
    assert isinstance(space.combos, np.ndarray) and space.combos.shape == (len(combos), space.D)
    assert [tuple(int(k) for k in row) for row in space.combos] == combos  # same order
    assert [int(c) for c in space.combo_counts] == counts
    assert space.if_feasible == sum(counts)


def test_synthetic_spaces_match_the_recursive_oracle() -> None:
    spaces = _synthetic_spaces()
    for space in spaces:
        _assert_same_as_oracle(space)
    assert len(spaces[-1].combos) == 0 and spaces[-1].if_feasible == 0  # R=5 cannot fit 3 RFs
    assert len(spaces[-2].combos) == 1  # no fan-out: one (empty) spatial combination
    assert len(spaces[4].combos) < len(spaces[3].combos)  # constraints prune


@pytest.mark.parametrize("files", [EYERISS + (VGG,), EYERISS + (RESNET,), V1 + (RESNET,),
                                   (AIE, RESNET)], ids=["eyeriss-vgg", "eyeriss-resnet18",
                                                        "eyeriss_v1-resnet18", "aie1-resnet18"])
def test_library_spaces_match_the_recursive_oracle(files: tuple[str, ...]) -> None:
    params = {"columns": 1} if files[0] == AIE else None
    _assert_same_as_oracle(_spec_space(files, params))


def test_feasible_size_counts_every_fitting_factorization() -> None:
    """if_feasible and iter_choices agree with a brute force over all option tuples (every
    tuple's per-axis spatial product, no keys, no pruning)."""
    checked = 0
    for space in _synthetic_spaces():
        lim = []
        for j in space._spatial_cols:
            s = space.slots[j]
            fx, fy = space.arch.fanout(s.level)
            lim.append(fx if s.kind == "X" else fy)
        prod = np.ones((1, len(lim)), dtype=np.int64)
        for opts in space.options:  # all tuples in full: up to 735,165 here
            sub = opts[:, space._spatial_cols]
            prod = (prod[:, None, :] * sub[None, :, :]).reshape(len(prod) * len(sub), len(lim))
        brute = int(np.all(prod <= np.array(lim, dtype=np.int64), axis=1).sum())
        assert brute == space.if_feasible == space.sizes()["if_feasible"]
        assert brute == sum(len(c) for c in space.iter_choices())
        checked += brute > 0
    assert checked == 6


def test_spatial_combinations_order_and_pruning() -> None:
    """Lexicographic order, prefix pruning, and small broadcast blocks give the same answer."""
    keys = [np.array([[1, 1], [2, 1], [4, 1]]), np.array([[1, 1], [1, 3], [2, 2]]),
            np.array([[1, 1], [2, 1]])]
    limits = np.array([4, 3])
    want = [c for c in itertools.product(range(3), range(3), range(2))
            if np.all(np.prod([keys[d][k] for d, k in enumerate(c)], axis=0) <= limits)]
    for block in (1, 5, 1 << 20):
        got = spatial_combinations(keys, limits, block=block)
        assert [tuple(r) for r in got.tolist()] == want
    assert spatial_combinations(keys + [np.zeros((0, 2), dtype=np.int64)], limits).shape == (0, 4)


def test_seeded_samples_are_unchanged() -> None:
    """Sampling draws the same factorizations as with the oracle's combination list."""
    space = _spec_space(EYERISS + (RESNET,))
    combos, counts = recursive_combos(space)
    first = space.sample_choices(500, np.random.default_rng(7))
    space.combos = np.array(combos, dtype=np.int64)
    space.combo_counts = np.array(counts, dtype=object)
    assert np.array_equal(first, space.sample_choices(500, np.random.default_rng(7)))


def test_aie_npu_four_columns_builds_fast() -> None:
    """The mapspace of the whole 4-column NPU on a ResNet-18 layer (252,939 spatial
    combinations) took 8-16 s with the recursive construction; now ~0.1 s of CPU
    (bound generous for a shared machine)."""
    import time

    _, searcher = prepare(_files(AIE, RESNET), SearchConfig(), parameters={"columns": 4})
    space = searcher.space
    t0 = time.process_time()
    space._build_spatial_combos()
    cpu = time.process_time() - t0
    assert len(space.combos) == 252_939 and space.if_feasible == 26_515_395_672
    assert cpu < 2.0  # the recursive construction: 7.8 s of CPU on the project VM


def test_counts_fall_back_to_python_ints_when_int64_could_overflow(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import math
    from types import SimpleNamespace

    import dse.mapper.mapspace as mapspace

    huge = SimpleNamespace(prod=lambda *_: 2 ** 63, comb=math.comb, factorial=math.factorial)
    monkeypatch.setattr(mapspace, "math", huge)
    monkeypatch.setattr(mapspace, "MAX_ITERATIONS", 2 ** 64)  # the patched prod is not a problem
    space = _synthetic_spaces()[3]
    assert space.combo_counts.dtype == object
    _assert_same_as_oracle(space)
