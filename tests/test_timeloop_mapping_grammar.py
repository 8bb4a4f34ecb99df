"""Timeloop's mapping grammar, as its parser reads it (src/mapping/parser.cpp, NVlabs/timeloop):

* `X=0` in a mapping means X's whole bound ("0 means full problem dimension");
* a permutation string is read one letter at a time, blanks skipped (`QRSC PNM`);
* a factor above the bound is not clamped in a mapping (the product check then fails); in
  mapper constraints it was clamped to the bound until 2022-07 (9ea4b94) and is ignored since.

Raw-file case: the v0.3 eyeriss_like_w_gating fixed mapping (X=0 and blank-separated
permutations) of Accelergy-Project/timeloop-accelergy-exercises@778460f, against the 2022
Sparseloop run of it (tests/data/timeloop_mapping_grammar): its printed loop nest and its
algorithmic (dense) counts, exact. Sparse effects (gating, compression) are not compared.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dse.errors import SpecError
from dse.model import evaluate
from dse.spec.build import load_spec
from dse.spec.timeloop import parse_permutation
from tests.conftest import DATA, TIMELOOP_RAW
from tests.timeloop_maptxt import read_map_txt
from tests.timeloop_stats import read_stats

CASE = DATA / "timeloop_mapping_grammar" / "eyeriss_like_w_gating"
RAW = (TIMELOOP_RAW / "Accelergy-Project" / "timeloop-accelergy-exercises@778460f" / "workspace"
       / "baseline_designs" / "example_designs" / "eyeriss_like_w_gating")


def dense_problem(tmp_path) -> Path:
    """The layer with its `densities` removed: dse refuses sparse inputs until sparsity is
    modelled, and these tests compare the dense (algorithmic) counts only."""
    doc = yaml.safe_load((RAW / "prob" / "layer3.yaml").read_text())
    assert doc["problem"]["instance"].pop("densities")
    out = tmp_path / "layer3_dense.yaml"
    out.write_text(yaml.safe_dump(doc))
    return out


@pytest.fixture
def files(tmp_path) -> list[Path]:
    return [RAW / "arch" / "arch.yaml", dense_problem(tmp_path), RAW / "mapping" / "layer3.yaml",
            CASE / "timeloop-model.ERT.yaml"]


def test_the_raw_problem_is_sparse_and_refused_as_such() -> None:
    with pytest.raises(SpecError, match="not modelled yet"):
        load_spec([RAW / "arch" / "arch.yaml", RAW / "prob" / "layer3.yaml",
                   RAW / "mapping" / "layer3.yaml", CASE / "timeloop-model.ERT.yaml"])


def nontrivial(factors: dict) -> dict:
    return {d: n for d, n in factors.items() if n > 1}


def test_raw_mapping_reads_as_timeloop_printed_it(files) -> None:
    spec = load_spec(files)
    printed = read_map_txt(CASE / "timeloop-model.map.txt", list(spec.problem.dims),
                           list(spec.problem.tensor_names))
    want: dict = {}
    for d in printed:
        if d["type"] in ("temporal", "spatial"):
            pairs = [t.split("=") for t in d["factors"].split()]
            want[(d["target"], d["type"])] = {k: int(v) for k, v in pairs if int(v) > 1}
    for lm in spec.mapping.levels:
        assert nontrivial(lm.temporal) == want.get((lm.target, "temporal"), {}), lm.target
        assert nontrivial(lm.spatial) == want.get((lm.target, "spatial"), {}), lm.target
    glb = next(lm for lm in spec.mapping.levels if lm.target == "shared_glb")
    assert glb.temporal["P"] == 13 and glb.spatial["Q"] == 13  # P=0, Q=0: the whole bound
    assert glb.temporal_order == tuple("QRSCPNM")  # "QRSC PNM"


def test_raw_mapping_counts_match_the_reference_exactly(files) -> None:
    spec = load_spec(files)
    ev = evaluate(spec.problem, spec.arch, spec.mapping, generation="legacy")
    ref = read_stats(CASE / "timeloop-model.stats.txt")
    got = {(r.level, r.tensor): r for r in ev.stats}
    assert set(got) == set(ref["rows"])
    for key, row in ref["rows"].items():
        for c in ("utilized_instances", "reads_per_instance", "fills_per_instance",
                  "updates_per_instance", "partition_size"):
            assert getattr(got[key], c) == row[c], (key, c)


def test_permutation_words_and_letters() -> None:
    dims = ("C", "M", "R", "S", "N", "P", "Q")
    assert parse_permutation("QRSC PNM", dims, "p", None) == tuple("QRSCPNM")
    assert parse_permutation("Q R S C P N M", dims, "p", None) == tuple("QRSCPNM")
    assert parse_permutation("Pa Qb", ("Pa", "Qb"), "p", None) == ("Pa", "Qb")


def test_factor_zero_is_the_bound_and_products_are_checked(tmp_path) -> None:
    arch = RAW / "arch" / "arch.yaml"
    text = (RAW / "mapping" / "layer3.yaml").read_text().replace("P=0 C=1 N=4", "P=0 C=2 N=4")
    bad = tmp_path / "map.yaml"
    bad.write_text(text)
    spec = load_spec([arch, dense_problem(tmp_path), bad, CASE / "timeloop-model.ERT.yaml"])
    with pytest.raises(SpecError, match="multiply to"):
        evaluate(spec.problem, spec.arch, spec.mapping)


def test_mapper_on_raw_v03_files_with_oversized_constraint_factors(tmp_path) -> None:
    """baseline-designs@1932af8 simple_weight_stationary: its map constraints ask C=16 where
    AlexNet layer 1 has C=3 (Timeloop of that era clamped to the bound). With the raw files
    `dse map --timeloop-generation legacy` finds Timeloop's reference result (2021 run, ERT
    and stats in tests/data/timeloop_legacy_designs), and its map.yaml names the v0.3 levels."""
    import json

    from click.testing import CliRunner

    from dse.cli import main
    from tests.test_timeloop_reference import close
    from tests.timeloop_names import unknown_targets

    base = TIMELOOP_RAW / "Accelergy-Project" / "baseline-designs@1932af8"
    design = base / "arch" / "simple_weight_stationary"
    ref_dir = DATA / "timeloop_legacy_designs" / "simple_weight_stationary"
    files = [design / "arch" / "simple_weight_stationary.yaml",
             *sorted((design / "arch" / "components").glob("*.yaml")),
             *sorted((design / "constraints").glob("*.yaml")),
             base / "workload" / "AlexNet" / "AlexNet_layer1.yaml",
             ref_dir / "timeloop-mapper.ERT.yaml"]
    res = CliRunner().invoke(main, ["map", *map(str, files), "--max-evals", "20000",
                                    "--timeloop-generation", "legacy", "--out",
                                    str(tmp_path), "-q"])
    assert res.exit_code == 0, res.output
    assert "C=16 exceeds the bound C=3; read as C=3" in res.output  # said, not silent
    got = json.loads((tmp_path / "summary.json").read_text())
    ref = read_stats(ref_dir / "timeloop-mapper.stats.txt")
    want = sum(r["energy_pJ"] for r in ref["rows"].values()) + ref["compute"]["Energy (total)"]
    assert got["cycles"] == ref["cycles"]
    assert close(got["energy_pJ"], want)
    arch_text = files[0].read_text()
    assert unknown_targets(arch_text, (tmp_path / "map.yaml").read_text()) == []
