"""The DRAM lower bound (dse.model.dram_bound, docs/bounds.md).

* attainable: on small matmuls and convs it equals the least DRAM traffic of every mapping of a
  DRAM + one buffer (C words) + MAC architecture, enumerated naively and evaluated by the model;
* the order-free pruning bound never exceeds the exact per-order count (else pruning is wrong);
* valid: no mapping `dse map` finds on (a shrunken) eyeriss_like goes below it;
* with room for everything it is the compulsory traffic, and it is above it when C is small.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse.arch.architecture import Architecture
from dse.factors import divisors
from dse.mapper.search import SearchConfig, Searcher
from dse.model import dram_bound as db
from dse.model import evaluate
from dse.model.evaluate import MappingError
from dse.pipeline.spec import load_arch
from dse.workload.layers import conv2d
from dse.workload.problem import Problem
from tests.test_mapper import _level, _mac, enumerate_mappings
from tests.test_walker_vs_model import make_problem

REPO = Path(__file__).resolve().parents[1]


def two_level(capacity: int) -> Architecture:
    return Architecture("two_level", (_level("DRAM", 1, 1, None, read=1, write=1),
                                      _level("Buf", 1, 1, capacity, read=1, write=1, update=1)),
                        _mac(1, 1))


def dram_words(ev) -> int:
    return sum(r.reads_per_instance + r.fills_per_instance + r.updates_per_instance
               for r in ev.stats if r.level == "DRAM")


def least_dram_words(problem: Problem, arch: Architecture) -> int:
    """Minimum over every mapping (factors, orders, keep sets) the naive enumerator yields."""
    best = None
    for m in enumerate_mappings(problem, arch):
        try:
            ev = evaluate(problem, arch, m)
        except MappingError:
            continue
        w = dram_words(ev)
        best = w if best is None else min(best, w)
    assert best is not None
    return best


CASES = [  # (kind, bounds, input stride, capacities)
    ("matmul", {"M": 4, "N": 3, "K": 2}, 1, (1, 3, 8, 12, 64)),
    ("conv1d", {"K": 2, "C": 1, "R": 3, "P": 4}, 2, (2, 3, 4, 8, 12)),
    ("conv1d_small", {"R": 3, "P": 6}, 1, (2, 3, 4, 6, 8)),
    ("conv2d", {"R": 3, "S": 2, "P": 2, "Q": 3}, 1, (3, 4, 6, 20)),
]


@pytest.mark.parametrize(("kind", "bounds", "stride", "caps"), CASES,
                         ids=[c[0] for c in CASES])
def test_bound_equals_exhaustive_minimum(kind, bounds, stride, caps) -> None:
    problem = make_problem(kind, bounds, stride)
    got = []
    for cap in caps:
        want = least_dram_words(problem, two_level(cap))
        bound = db.dram_bound(problem, cap)
        assert bound.exact
        assert bound.words == want, f"C={cap}"
        got.append(bound.words)
    assert got[0] > got[-1]  # the capacities chosen do make a difference


@pytest.mark.slow
def test_bound_equals_exhaustive_minimum_conv1d_with_channels() -> None:
    problem = make_problem("conv1d", {"K": 2, "C": 2, "R": 3, "P": 4})
    for cap in (1, 3, 6, 8, 12, 20):
        assert db.dram_bound(problem, cap).words == least_dram_words(problem, two_level(cap))


def test_reported_mapping_reaches_the_bound() -> None:
    """The tile/order/keep set the bound names is a mapping the model evaluates to the bound."""
    from dse.mapping import LevelMapping, Mapping

    problem = make_problem("conv1d", {"K": 4, "C": 2, "R": 3, "P": 8})
    for cap in (4, 10, 30):
        b = db.dram_bound(problem, cap)
        outer = {d: problem.bounds[d] // b.tile[d] for d in problem.dims}
        mapping = Mapping((LevelMapping("DRAM", outer, b.order),
                           LevelMapping("Buf", dict(b.tile), (), keep=frozenset(b.kept))))
        assert dram_words(evaluate(problem, two_level(cap), mapping)) == b.words


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["conv1d", "conv2d", "matmul"]), seed=st.integers(0, 10**6),
       stride=st.integers(1, 2))
def test_order_free_bound_below_every_order(kind, seed, stride) -> None:
    rng = np.random.default_rng(seed)
    dims = {"conv1d": "KCRP", "conv2d": "RSPQ", "matmul": "MNK"}[kind]
    bounds = {d: int(rng.choice([1, 2, 3, 4, 6])) for d in dims}
    problem = make_problem(kind, bounds, stride if kind != "matmul" else 1)
    act = [d for d in problem.dims if problem.bounds[d] > 1]
    if not act:
        return
    grid = np.array([[int(rng.choice(divisors(problem.bounds[d]))) for d in act]])
    outer = np.array([[problem.bounds[d] for d in act]]) // grid
    tile = {d: 1 for d in problem.dims} | {d: int(x) for d, x in zip(act, grid[0], strict=True)}
    out = {d: int(x) for d, x in zip(act, outer[0], strict=True)}
    live = [d for d in act if out[d] > 1]
    for ds in problem.data_spaces:
        for f, first in enumerate(act):
            if first not in live:
                continue
            low = int(db._fills_lower(ds, act, grid, outer, f)[0])
            for tail in itertools.permutations([d for d in live if d != first]):
                assert low <= db._fills_exact(ds, tile, out, (first, *tail))


def test_compulsory_when_everything_fits_and_more_when_small() -> None:
    """Unit stride: the compulsory traffic (every tensor word once) is the floor."""
    problem = conv2d("c", C=8, K=16, P=6, Q=6, R=3, S=3)
    floor = db.compulsory_dram_words(problem)
    assert db.dram_words_lower_bound(problem, 10**9) == floor
    small = db.dram_words_lower_bound(problem, 64)
    assert small > floor
    assert db.dram_words_lower_bound(problem, 16) >= small  # less room, never less traffic


def test_strided_window_gaps_are_not_compulsory() -> None:
    """A 1x1 stride-2 conv never touches every other input row/column; the model counts the
    words tiles touch, so the bound (a tiling that skips the gaps) is below the tensor size."""
    problem = conv2d("ds", C=2, K=4, P=4, Q=4, stride=(2, 2))
    touched = 2 * 4 * 4 + db.compulsory_dram_words(problem) - problem.tensor_size("Inputs")
    assert db.dram_words_lower_bound(problem, 10**9) == touched
    assert touched < db.compulsory_dram_words(problem)


def test_nothing_fits_streams_every_tensor_per_mac() -> None:
    problem = make_problem("matmul", {"M": 2, "N": 3, "K": 2})
    b = db.dram_bound(problem, 0)
    assert b.words == 2 * problem.macs + 2 * problem.macs - problem.tensor_size("Z")
    assert b.words == least_dram_words(problem, two_level(0))


def shrunken_eyeriss(glb_words: int):
    """eyeriss_like with a smaller global buffer, so the bound is above compulsory."""
    ai = load_arch([str(REPO / "arch_specs" / "eyeriss_like.yaml"),
                    str(REPO / "arch_specs" / "eyeriss_like.constraints.yaml")])
    levels = tuple(dataclasses.replace(lv, depth=glb_words // lv.block_size)
                   if lv.name == "shared_glb" else lv for lv in ai.arch.levels)
    return dataclasses.replace(ai, arch=dataclasses.replace(ai.arch, levels=levels))


def found_mapping_vs_bound(C, K, P, R, stride, glb, seed) -> tuple[int, int]:
    ai = shrunken_eyeriss(glb)
    problem = conv2d("x", C=C, K=K, P=P, Q=P, R=R, S=R, stride=(stride, stride))
    searcher = Searcher(problem, ai.arch, ai.constraints_for(problem),
                        SearchConfig(objective="energy", max_evals=300, seed=seed))
    result = searcher.run()
    assert result.best is not None
    ev = evaluate(problem, ai.arch, searcher.mapping_of(result.best))
    return dram_words(ev), db.dram_words_lower_bound(problem, db.on_chip_capacity_words(ai.arch, 3))


def test_found_mappings_do_not_beat_the_bound() -> None:
    for args in [(16, 16, 14, 3, 1, 2048, 1), (2, 4, 4, 1, 2, 256, 0), (8, 16, 8, 3, 2, 256, 3)]:
        actual, bound = found_mapping_vs_bound(*args)
        assert actual >= bound > 0, args


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(C=st.sampled_from([2, 4, 8, 16]), K=st.sampled_from([4, 8, 16]),
       P=st.sampled_from([4, 7, 8, 14]), R=st.sampled_from([1, 3]), stride=st.integers(1, 2),
       glb=st.sampled_from([256, 2048, 131072]), seed=st.integers(0, 100))
def test_no_found_mapping_beats_the_bound(C, K, P, R, stride, glb, seed) -> None:
    actual, bound = found_mapping_vs_bound(C, K, P, R, stride, glb, seed)
    assert actual >= bound


def test_run_writes_bound_columns(tmp_path: Path) -> None:
    import csv

    from click.testing import CliRunner

    from dse.cli import main

    out = tmp_path / "r8"
    res = CliRunner().invoke(main, ["run", "--arch", "eyeriss_like", "--workload", "resnet8",
                                    "--out", str(out), "--max-evals", "500",
                                    "--store", str(tmp_path / "s.sqlite"), "-q"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out / "layers.csv")))
    (tot,) = csv.DictReader(open(out / "totals.csv"))
    above = 0
    for r in rows:
        words = int(r["reads_DRAM_words"]) + int(r["writes_DRAM_words"])
        bound = int(r["dram_words_lower_bound"])
        assert words >= bound > 0, r["layer"]
        assert float(r["dram_traffic_over_bound"]) == pytest.approx(words / bound)
        # each tensor at its own width: resnet8 moves 8-bit activations and weights and
        # 32-bit (accumulator) outputs, so the bytes lie between 1 and 4 per word
        assert words <= float(r["dram_bytes"]) <= 4 * words, r["layer"]
        above += words > bound
    assert above  # some layer's mapping is measurably above the bound
    assert float(tot["dram_bytes"]) == sum(float(r["dram_bytes"]) for r in rows)
    assert int(tot["dram_words_lower_bound"]) == sum(int(r["dram_words_lower_bound"])
                                                     for r in rows)


@pytest.mark.parametrize("name", ["C", "D", pytest.param("A", marks=pytest.mark.slow),
                                  pytest.param("B", marks=pytest.mark.slow)])
def test_no_mapping_of_a_multilevel_design_beats_the_bound(name) -> None:
    """Every mapping (factors, spatial splits, orders, bypass) of the mapper tests' tiny designs,
    which fan out to their MACs and (B) have two on-chip levels: none goes below the bound at
    the summed on-chip capacity. Without the compute units' operand words it would (C, D: a
    tensor that bypasses the buffer is multicast to the MACs and read from DRAM only once)."""
    from tests.test_mapper import tiny_designs

    problem, arch = tiny_designs()[name]
    least = least_dram_words(problem, arch)
    bound = db.dram_words_lower_bound(problem, db.on_chip_capacity_words(arch, 3))
    assert least >= bound
    if name in ("C", "D"):
        storage_only = db.on_chip_capacity_words(arch, 0)
        assert least < db.dram_words_lower_bound(problem, storage_only)


def test_map_summary_has_the_bound(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from dse.cli import main

    d = REPO / "tests" / "data" / "timeloop" / "ispass_01_conv1d_2level_ws" / "inputs"
    files = sorted(str(f) for f in d.glob("*.yaml") if "map" not in f.name)
    res = CliRunner().invoke(main, ["map", *files, "--out", str(tmp_path / "m"),
                                    "--max-evals", "200"])
    assert res.exit_code == 0, res.output
    dram = json.loads((tmp_path / "m" / "summary.json").read_text())["dram"]
    assert dram["words"] >= dram["words_lower_bound"] > 0
    assert dram["traffic_over_bound"] == pytest.approx(dram["words"] / dram["words_lower_bound"])
