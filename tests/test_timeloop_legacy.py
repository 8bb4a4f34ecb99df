"""`--timeloop-generation legacy` reproduces v0.3-era Timeloop references from their raw files.

Cases: tests/data/timeloop_legacy/<case> (ERT + stats.txt of the 2020 ISPASS tutorial, from
Accelergy-Project/timeloop-accelergy-exercises@778460f; see each case.yaml). Inputs are the raw
exercise files in tests/data/timeloop_raw/...@778460f. Counts exact, energies within 0.5 %.
"""

from __future__ import annotations

import pytest
import yaml

from dse.mapper.batch import BatchModel, rows_from_mappings
from dse.model import evaluate
from dse.spec.build import load_spec
from tests.conftest import DATA, TIMELOOP_RAW
from tests.test_timeloop_reference import close
from tests.timeloop_stats import read_stats

LEGACY = DATA / "timeloop_legacy"
RAW = (TIMELOOP_RAW / "Accelergy-Project" / "timeloop-accelergy-exercises@778460f" / "workspace"
       / "exercises" / "2020.ispass" / "timeloop")
CASES = sorted(p.name for p in LEGACY.iterdir() if (p / "case.yaml").is_file())
COUNTS = ["utilized_instances", "reads_per_instance", "fills_per_instance",
          "updates_per_instance", "partition_size", "utilized_capacity_words"]


def load(name: str):
    meta = yaml.safe_load((LEGACY / name / "case.yaml").read_text())
    spec = load_spec([RAW / f for f in meta["raw_inputs"]] + [LEGACY / name /
                                                                "timeloop-model.ERT.yaml"])
    return spec, read_stats(LEGACY / name / "timeloop-model.stats.txt")


def mismatches(ev, ref) -> list[str]:
    got = {(r.level, r.tensor): r for r in ev.stats}
    bad = []
    if set(got) != set(ref["rows"]):
        bad.append(f"rows differ: {sorted(set(got) ^ set(ref['rows']))}")
    for key, row in ref["rows"].items():
        g = got.get(key)
        if g is None:
            continue
        bad += [f"{key} {c}: {getattr(g, c)} vs {row[c]}" for c in COUNTS
                if getattr(g, c) != row[c]]
        if not close(g.energy_pJ, row["energy_pJ"]):
            bad.append(f"{key} energy {g.energy_pJ} vs {row['energy_pJ']}")
    if not close(ev.compute_energy_pJ, ref["compute"]["Energy (total)"]):
        bad.append(f"compute energy {ev.compute_energy_pJ}")
    if ev.cycles != ref["cycles"]:
        bad.append(f"cycles {ev.cycles} vs {ref['cycles']}")
    return bad


def test_there_are_legacy_cases() -> None:
    assert len(CASES) == 9


@pytest.mark.parametrize("name", CASES)
def test_legacy_generation_reproduces_v03_reference(name: str) -> None:
    spec, ref = load(name)
    ev = evaluate(spec.problem, spec.arch, spec.mapping, generation="legacy")
    assert mismatches(ev, ref) == []
    total = sum(r["energy_pJ"] for r in ref["rows"].values()) + ref["compute"]["Energy (total)"]
    assert close(ev.energy_pJ, total)
    assert all(s.leakage_pJ == 0 for s in ev.levels)


@pytest.mark.parametrize("name", CASES)
def test_2024_generation_differs_from_v03_reference(name: str) -> None:
    """Without the option these references are not matched (so the option is what matches)."""
    spec, ref = load(name)
    ev = evaluate(spec.problem, spec.arch, spec.mapping)
    legacy = evaluate(spec.problem, spec.arch, spec.mapping, generation="legacy")
    if name == "v03_ispass_00_conv1d_1level":  # one level, one energy: nothing to tell apart
        assert mismatches(ev, ref) == []
    else:
        assert mismatches(ev, ref) != []
        assert ev.energy_pJ < legacy.energy_pJ


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("generation", ["2024", "legacy"])
def test_batch_model_agrees_with_scalar_model_per_generation(name: str, generation: str) -> None:
    spec, _ = load(name)
    ev = evaluate(spec.problem, spec.arch, spec.mapping, generation=generation)
    model = BatchModel(spec.problem, spec.arch, generation=generation)
    res = model.evaluate(*rows_from_mappings(model, [spec.mapping]))
    assert bool(res.valid[0])
    assert int(res.cycles[0]) == ev.cycles
    assert float(res.energy_pJ[0]) == pytest.approx(ev.energy_pJ, rel=1e-12)


def test_unknown_generation_is_refused() -> None:
    from dse.errors import SpecError

    spec, _ = load(CASES[0])
    with pytest.raises(SpecError, match="generation"):
        evaluate(spec.problem, spec.arch, spec.mapping, generation="2020")


def test_cli_model_option_selects_the_generation(tmp_path) -> None:
    import json

    from click.testing import CliRunner

    from dse.cli import main

    name = "v03_ispass_04_conv1d_oc_3levelspatial_cp"
    meta = yaml.safe_load((LEGACY / name / "case.yaml").read_text())
    files = [str(RAW / f) for f in meta["raw_inputs"]] + [str(LEGACY / name /
                                                               "timeloop-model.ERT.yaml")]
    spec, ref = load(name)
    for gen in ("2024", "legacy"):
        out = tmp_path / gen
        res = CliRunner().invoke(main, ["model", *files, "--timeloop-generation", gen,
                                        "--out", str(out), "-q"])
        assert res.exit_code == 0, res.output
        summary = json.loads((out / "summary.json").read_text())
        want = evaluate(spec.problem, spec.arch, spec.mapping, generation=gen).energy_pJ
        got = next(v for k, v in summary.items() if k.startswith("energy_pJ"))
        assert float(got) == pytest.approx(want, rel=1e-6), gen
    bad = CliRunner().invoke(main, ["model", *files, "--timeloop-generation", "2020"])
    assert bad.exit_code == 2


def test_store_key_separates_generations() -> None:
    from dse.mapper.search import SearchConfig
    from dse.pipeline.run import layer_key
    from dse.pipeline.spec import load_arch

    name = "v03_ispass_04_conv1d_oc_3levelspatial_cp"
    meta = yaml.safe_load((LEGACY / name / "case.yaml").read_text())
    arch = load_arch([str(RAW / meta["raw_inputs"][0]), str(LEGACY / name /
                                                           "timeloop-model.ERT.yaml")])
    spec, _ = load(name)
    keys = {layer_key(arch, spec.problem, SearchConfig(generation=g)) for g in ("2024", "legacy")}
    assert len(keys) == 2


def test_sweep_file_and_cli_choose_the_generation(tmp_path) -> None:
    from dse.errors import SpecError
    from dse.pipeline.sweep import read_sweep
    from tests.conftest import REPO

    text = (REPO / "sweeps" / "glb_sizes.yaml").read_text()
    assert read_sweep(str(REPO / "sweeps" / "glb_sizes.yaml")).config.generation == "2024"
    legacy = tmp_path / "s.yaml"
    legacy.write_text(text.replace("seed: 0}", "seed: 0, timeloop_generation: legacy}")
                      .replace("arch_specs/", str(REPO / "arch_specs") + "/"))
    assert read_sweep(str(legacy)).config.generation == "legacy"
    bad = tmp_path / "b.yaml"
    bad.write_text(text.replace("seed: 0}", "seed: 0, timeloop_generation: 2020}"))
    with pytest.raises(SpecError) as err:
        read_sweep(str(bad))
    mapper_line = next(i for i, line in enumerate(text.splitlines(), 1) if "seed: 0}" in line)
    assert err.value.line == mapper_line and "2024 or legacy" in str(err.value)
