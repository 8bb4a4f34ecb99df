"""Bound and skip (issue #10): the lower bounds never exceed the model, and searching with
skipping on or off gives the same best mapping, numbers and Pareto set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dse.mapper.batch import BatchModel
from dse.mapper.bounds import Bounds
from dse.mapper.constraints import Constraints
from dse.mapper.mapspace import MapSpace
from dse.mapper.search import OBJECTIVES, SearchConfig, Searcher
from dse.pipeline.map import prepare
from tests.test_mapper import _window_design, naive_results, tiny_designs
from tests.test_walker_vs_model import make_problem

ROOT = Path(__file__).resolve().parent.parent
EYERISS = ["arch_specs/eyeriss_like.yaml", "arch_specs/eyeriss_like.constraints.yaml"]
LAYERS = {
    "vgg02_conv5": EYERISS + ["workloads/vgg02_conv5.yaml"],
    "resnet18_conv2_x": EYERISS + ["workloads/resnet18_conv2_x.yaml"],
    "resnet18_conv2_x_72pe": ["arch_specs/eyeriss_like_72pe.yaml",
                              "arch_specs/eyeriss_like_72pe.constraints.yaml",
                              "workloads/resnet18_conv2_x.yaml"],
}


def _files(name: str) -> list[str]:
    return [str(ROOT / f) for f in LAYERS[name]]


def _designs():
    out = dict(tiny_designs())
    out["window"] = _window_design()
    for name in LAYERS:
        spec, _ = prepare(_files(name), SearchConfig())
        out[name] = (spec.problem, spec.arch)
    return out


def _check_bounds(problem, arch, link: str | None, generation: str, n: int, seed: int) -> int:
    """Bounds <= the batch model on n random rows of the unconstrained mapspace; returns the
    number of valid rows compared."""
    model = BatchModel(problem, arch, link, generation=generation)
    bounds = Bounds(model)
    space = MapSpace(problem, arch, Constraints({}))
    rng = np.random.default_rng(seed)
    choice = space.sample_choices(n, rng)
    T, SX, SY = space.factor_arrays(choice)
    perm = space.canonical_perm(T, space.perms_random(T, rng))
    keep = space.keep_random(n, rng)
    r = model.evaluate(T, SX, SY, perm, keep)
    lb_e, lb_c = bounds.lower(T, SX, SY, keep)
    v = r.valid
    assert (lb_c[v] <= r.cycles[v]).all()
    bad = np.nonzero(v & (lb_e > r.energy_pJ))[0]
    assert not len(bad), f"energy bound above the model at rows {bad[:5]}"
    # the bound is not vacuous: it includes more than the compute energy somewhere
    assert (lb_e[v] > problem.macs * model.e_compute).any() or not v.any()
    return int(v.sum())


@pytest.mark.parametrize("link", [None, "timeloop", "declared", "off"])
@pytest.mark.parametrize("generation", ["2024", "legacy"])
def test_bounds_never_exceed_the_model(link: str | None, generation: str) -> None:
    valid = 0
    for k, (problem, arch) in enumerate(_designs().values()):
        valid += _check_bounds(problem, arch, link, generation, 600, 100 + k)
    assert valid > 500


def _run(problem, arch, cons, **cfg):
    s = Searcher(problem, arch, cons, SearchConfig(**cfg))
    r = s.run()
    return s, r


def _same(a, b) -> None:
    """Same best mapping (choice, order, keep), numbers and Pareto set."""
    (sa, ra), (sb, rb) = a, b
    assert ra.best is not None and rb.best is not None
    assert ra.best.score == rb.best.score
    assert (ra.best.energy_pJ, ra.best.cycles) == (rb.best.energy_pJ, rb.best.cycles)
    assert sa._key(ra.best.choice, ra.best.perm, ra.best.keep) == sb._key(
        rb.best.choice, rb.best.perm, rb.best.keep)
    assert [(e, c, sa._key(x.choice, x.perm, x.keep)) for e, c, x in ra.pareto] == [
        (e, c, sb._key(x.choice, x.perm, x.keep)) for e, c, x in rb.pareto]
    assert ra.considered == rb.considered


@pytest.mark.parametrize("name", list("ABCD"))
def test_exhaustive_same_with_and_without_skip(name: str) -> None:
    """Exhaustive on the tiny spaces: identical results either way, and still the naive
    optimum (for every objective, with the Pareto set)."""
    problem, arch = tiny_designs()[name]
    naive = naive_results(name, False)
    for objective in OBJECTIVES:
        on = _run(problem, arch, Constraints({}), objective=objective, search="exhaustive",
                  pareto=True, block=64)
        off = _run(problem, arch, Constraints({}), objective=objective, search="exhaustive",
                   pareto=True, block=64, bound_skip=False)
        _same(on, off)
        assert off[1].skipped_by_bound == 0
        # the Pareto set equals the naive enumeration's front
        pts = sorted({(c, e) for e, c, _ in naive})
        front, best_e = [], np.inf
        for c, e in pts:
            if e < best_e * (1 - 1e-12):
                front.append((c, e))
                best_e = e
        got = [(c, e) for e, c, _ in on[1].pareto]
        assert [c for c, _ in got] == [c for c, _ in front]
        assert [e for _, e in got] == pytest.approx([e for _, e in front], rel=1e-12)


@pytest.mark.parametrize("objective,pareto", [("edp", False), ("delay,energy", False),
                                              ("delay,energy", True)])
def test_exhaustive_skips_and_stays_exact(objective: str, pareto: bool) -> None:
    """A sliding-window design of ~29k candidates: skipping happens (without a Pareto front
    to keep) and changes nothing."""
    problem = make_problem("conv1d", {"K": 2, "C": 2, "R": 3, "P": 2})
    _, arch = _window_design()
    kw = dict(objective=objective, search="exhaustive", block=256, pareto=pareto)
    on = _run(problem, arch, Constraints({}), **kw)
    off = _run(problem, arch, Constraints({}), **kw, bound_skip=False)
    _same(on, off)
    assert on[1].exhausted and off[1].exhausted
    assert on[1].evaluated + on[1].skipped_by_bound == off[1].evaluated
    if not pareto:
        assert on[1].skipped_by_bound > 1000


@pytest.mark.parametrize("search", ["random", "auto"])
@pytest.mark.parametrize("objective", ["edp", "delay,energy", "energy"])
def test_search_same_with_and_without_skip(search: str, objective: str) -> None:
    for name, seed in (("vgg02_conv5", 0), ("resnet18_conv2_x", 3)):
        spec, s = prepare(_files(name), SearchConfig())
        cons = s.space.cons
        on = _run(spec.problem, spec.arch, cons, objective=objective, search=search,
                  max_evals=6000, seed=seed, block=1024)
        off = _run(spec.problem, spec.arch, cons, objective=objective, search=search,
                   max_evals=6000, seed=seed, block=1024, bound_skip=False)
        _same(on, off)
        # the energy floor rarely beats a good incumbent's energy: no skip promised there
        assert on[1].skipped_by_bound > 0 or objective == "energy"
        assert on[1].evaluated + on[1].skipped_by_bound == off[1].evaluated


@pytest.mark.parametrize("search", ["random", "auto"])
def test_pareto_same_with_and_without_skip(search: str) -> None:
    spec, s = prepare(_files("resnet18_conv2_x_72pe"), SearchConfig())
    kw = dict(objective="delay,energy", search=search, max_evals=5000, seed=7, block=1024,
              pareto=True)
    on = _run(spec.problem, spec.arch, s.space.cons, **kw)
    off = _run(spec.problem, spec.arch, s.space.cons, **kw, bound_skip=False)
    _same(on, off)
    assert len(on[1].pareto) > 1


def test_cli_search_json_counts_skipped(tmp_path: Path) -> None:
    """`dse map` on the Eyeriss-like VGG layer: search.json counts skipped candidates apart
    from evaluated ones, the budget counts both, and --no-bound-skip writes the same mapping
    and levels (and, with --pareto, the same Pareto set)."""
    from click.testing import CliRunner

    from dse.cli import main

    files = [str(ROOT / f) for f in LAYERS["vgg02_conv5"]]
    out = {}
    for name, extra in (("on", []), ("off", ["--no-bound-skip"]), ("p_on", ["--pareto"]),
                        ("p_off", ["--pareto", "--no-bound-skip"])):
        out[name] = tmp_path / name
        res = CliRunner().invoke(main, ["map", *files, "--objective", "delay,energy",
                                        "--max-evals", "20000", "--seed", "5",
                                        "--out", str(out[name]), "-q", *extra],
                                 catch_exceptions=False)
        assert res.exit_code == 0, res.output
    info = {k: json.loads((p / "search.json").read_text()) for k, p in out.items()}
    assert info["on"]["skipped_by_bound"] > 0 and info["on"]["bound_skip"] is True
    assert info["off"]["skipped_by_bound"] == 0 and info["off"]["bound_skip"] is False
    assert info["on"]["evaluated"] + info["on"]["skipped_by_bound"] == 20000
    assert info["off"]["evaluated"] == 20000
    assert info["on"]["best"] == info["off"]["best"] == info["p_on"]["best"]
    for f in ("mapping.yaml", "map.yaml", "levels.csv"):
        assert (out["on"] / f).read_bytes() == (out["off"] / f).read_bytes(), f
    assert (out["p_on"] / "pareto.csv").read_bytes() == (out["p_off"] / "pareto.csv").read_bytes()


def test_bound_skip_is_not_part_of_the_store_key() -> None:
    """It cannot change a result, so a layer stored with it on is reused with it off."""
    from dse.pipeline.run import layer_key
    from dse.pipeline.spec import load_arch
    from dse.workload.layers import conv2d

    arch = load_arch([str(ROOT / "arch_specs" / "eyeriss_like.yaml")])
    problem = conv2d("c", C=8, K=8, P=4, Q=4, R=3, S=3)
    assert layer_key(arch, problem, SearchConfig(bound_skip=False)) == layer_key(
        arch, problem, SearchConfig())
    assert layer_key(arch, problem, SearchConfig(seed=1)) != layer_key(
        arch, problem, SearchConfig())


@pytest.mark.parametrize("objective", ["edp", "delay,energy"])
def test_auto_default_blocks_same_with_and_without_skip(objective: str) -> None:
    """auto with its default 8,192-row blocks over several rounds (the second block of a
    round is bounded against the first's top rows): identical either way."""
    spec, s = prepare(_files("resnet18_conv2_x"), SearchConfig())
    kw = dict(objective=objective, search="auto", max_evals=40_000, seed=2)
    on = _run(spec.problem, spec.arch, s.space.cons, **kw)
    off = _run(spec.problem, spec.arch, s.space.cons, **kw, bound_skip=False)
    _same(on, off)
    assert on[1].skipped_by_bound > 10_000
