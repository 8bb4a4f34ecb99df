"""`dse map` and `dse bench` end to end: outputs re-read by `dse model`, determinism over
seeds and --jobs, the no-valid-mapping report, Ctrl-C, Timeloop mapper/constraints input."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dse.cli import main
from dse.spec.build import load_spec
from tests.conftest import REPO
from tests.test_mapper import constraint_violations, ref_files, timeloop_targets

EX06 = "ispass_06_mapper_eyeriss"
EX05 = "ispass_05_mapper_freebypass"


def dse(*args: str) -> Result:
    """Run the CLI in-process (stdout and stderr kept apart)."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def map_case(case: str, out: Path, *extra: str) -> Result:
    result = dse("map", *map(str, ref_files(case)), "--out", str(out), "-q", *extra)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def ex06_seed7(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`dse map` on ex06 with the spec's mapper settings, 20,000 evaluations, seed 7."""
    out = tmp_path_factory.mktemp("ex06") / "seed7_jobs1"
    map_case(EX06, out, "--max-evals", "20000", "--seed", "7", "--jobs", "1")
    return out


@pytest.fixture(scope="module")
def ex05_free(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ex05") / "map"
    map_case(EX05, out)
    return out


# ------------------------------------------------------------------------------ check 4


@pytest.mark.parametrize("case", [EX06, EX05])
@pytest.mark.parametrize("map_file", ["map.yaml", "mapping.yaml"])
def test_found_mapping_round_trips_through_dse_model(case: str, map_file: str, tmp_path: Path,
                                                     request: pytest.FixtureRequest) -> None:
    """The mapping `dse map` wrote (Timeloop map.yaml, native mapping.yaml), fed to `dse model`
    with the same architecture, problem and ERT, reproduces levels.csv and the totals."""
    found: Path = request.getfixturevalue("ex06_seed7" if case == EX06 else "ex05_free")
    out = tmp_path / "model"
    result = dse("model", *map(str, ref_files(case)), str(found / map_file), "--out", str(out),
                 "-q")
    assert result.exit_code == 0, result.output
    assert (out / "levels.csv").read_text() == (found / "levels.csv").read_text()
    ours = json.loads((out / "summary.json").read_text())
    theirs = json.loads((found / "summary.json").read_text())
    for key in ("energy_pJ", "cycles", "compute_cycles", "level_energy_pJ", "macs"):
        assert ours[key] == theirs[key], key
    best = json.loads((found / "search.json").read_text())["best"]
    assert (best["energy_pJ"], best["cycles"]) == (ours["energy_pJ"], ours["cycles"])


# ------------------------------------------------------------------------------ check 5

COMPARED = ("mapping.yaml", "map.yaml", "levels.csv")


def _search_facts(out: Path) -> dict:
    info = json.loads((out / "search.json").read_text())
    return {k: info[k] for k in ("best", "evaluated", "valid", "rejected", "seed", "objective")}


def test_same_seed_same_result_for_any_jobs(ex06_seed7: Path, tmp_path: Path) -> None:
    """Seed 7 with --jobs 2 and again with --jobs 1 gives byte-identical mapping files and
    levels.csv and the same search statistics; another seed also runs."""
    runs = {}
    for name, extra in (("jobs2", ("--jobs", "2")), ("again", ("--jobs", "1"))):
        runs[name] = tmp_path / name
        map_case(EX06, runs[name], "--max-evals", "20000", "--seed", "7", *extra)
    for out in runs.values():
        for f in COMPARED:
            assert (out / f).read_bytes() == (ex06_seed7 / f).read_bytes(), (out.name, f)
        assert _search_facts(out) == _search_facts(ex06_seed7), out.name
    assert json.loads((runs["jobs2"] / "search.json").read_text())["jobs"] == 2
    other = tmp_path / "seed8"
    map_case(EX06, other, "--max-evals", "20000", "--seed", "8")
    facts = _search_facts(other)
    assert facts["seed"] == 8 and facts["best"]["cycles"] > 0


# ------------------------------------------------------------------------------ check 9


def test_ex06_mapper_settings_and_constraints_are_honoured(ex06_seed7: Path) -> None:
    """The spec's `mapper:` optimization_metrics become the objective and algorithm
    random_pruned becomes auto; the written mapping satisfies architecture_constraints."""
    info = json.loads((ex06_seed7 / "search.json").read_text())
    assert info["objective"] == "delay,energy"
    assert info["search"] == "auto"
    for map_file in ("map.yaml", "mapping.yaml"):
        spec = load_spec([*ref_files(EX06), ex06_seed7 / map_file])
        assert spec.mapping is not None
        assert not constraint_violations(spec.mapping, spec.problem, timeloop_targets(EX06))
        levels = {lm.target: lm for lm in spec.mapping.levels}
        assert not any(n > 1 for n in levels["ifmap_spad"].temporal.values())
        assert set(d for d, n in levels["inter_PE_column_spatial"].spatial.items()
                   if n > 1) <= {"Q", "M"}
        assert levels["shared_glb"].keep == frozenset({"Inputs", "Outputs"})


def test_objective_option_overrides_spec(tmp_path: Path) -> None:
    """--objective beats the spec's optimization_metrics."""
    map_case(EX05, tmp_path, "--objective", "energy")
    assert json.loads((tmp_path / "search.json").read_text())["objective"] == "energy"


# ------------------------------------------------------------------------------ check 7

NO_FIT_ARCH = """\
architecture:
  version: 0.4
  nodes:
  - !Container
    name: system
    attributes: {technology: 45nm}
  - !Component
    name: MainMemory
    class: DRAM
    attributes: {width: 8, datawidth: 8, energy: {read: 64, write: 64, update: 64}}
  - !Component
    name: Buffer
    class: SRAM
    attributes: {depth: 1, width: 8, datawidth: 8, energy: {read: 1.0, write: 1.2, update: 1.2}}
  - !Component
    name: MAC
    class: intmac
    attributes: {energy: {compute: 0.5}}
"""
NO_FIT_PROBLEM = """\
problem:
  version: 0.4
  shape:
    name: conv1d
    dimensions: [R, P]
    data_spaces:
    - {name: Weights, projection: [[[R]]]}
    - {name: Inputs, projection: [[[R], [P]]]}
    - {name: Outputs, projection: [[[P]]], read_write: true}
  instance: {R: 3, P: 16}
"""
NO_FIT_CONSTRAINTS = """\
architecture_constraints:
  targets:
  - {target: Buffer, type: bypass, keep: [Weights, Inputs, Outputs]}
"""


@pytest.mark.parametrize("extra", [
    (),
    ("--search", "random", "--max-evals", "5000"),
    ("--search", "exhaustive"),
])
def test_no_valid_mapping_is_explained(extra: tuple[str, ...], tmp_path: Path) -> None:
    """A 1-word buffer that must keep all three tensors: exit 1, rejections per level on
    stderr, the smallest capacity change that would admit a mapping, best null."""
    files = []
    for name, text in (("arch.yaml", NO_FIT_ARCH), ("prob.yaml", NO_FIT_PROBLEM),
                       ("cons.yaml", NO_FIT_CONSTRAINTS)):
        (tmp_path / name).write_text(text)
        files.append(str(tmp_path / name))
    out = tmp_path / "out"
    result = dse("map", *files, "--out", str(out), "-q", *extra)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    info = json.loads((out / "search.json").read_text())
    assert info["best"] is None
    assert not (out / "mapping.yaml").exists()
    m = re.search(r"capacity at Buffer ([\d,]+)", result.stderr)
    assert m, result.stderr
    assert int(m.group(1).replace(",", "")) == info["rejected"]["capacity at Buffer"] > 0
    assert info["valid"] == 0 and info["evaluated"] > 0
    line = next((ln for ln in result.stderr.splitlines() if "smallest change" in ln), "")
    assert "Buffer" in line and "(capacity 1 -> 3)" in line, result.stderr
    assert info["smallest_change"] and "capacity 1 -> 3" in info["smallest_change"]


# ------------------------------------------------------------------------------ check 8


def test_ctrl_c_stops_quickly_and_writes_best(tmp_path: Path) -> None:
    """SIGINT to a running `dse map` (time limit 120 s): exits within 2 s with code 0 and
    writes the best mapping so far, search.json saying interrupted."""
    out = tmp_path / "out"
    log = tmp_path / "stderr.txt"
    cmd = [sys.executable, "-m", "dse", "map", *map(str, ref_files(EX06)), "--time-limit",
           "120s", "--out", str(out)]
    with open(log, "wb") as err, open(tmp_path / "stdout.txt", "wb") as std:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=std, stderr=err)
        try:
            t0 = time.monotonic()
            # ~3 s, and at least until the search reports progress (the spec is loaded)
            # ... and until it has evaluated something ("0map" is printed before that)
            while time.monotonic() - t0 < 3 or (
                    not re.search(rb"[1-9][0-9.,]*k?map", log.read_bytes())
                    and time.monotonic() - t0 < 60):
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            t1 = time.monotonic()
            try:
                rc = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pytest.fail("dse map did not stop within 10 s of SIGINT")
            stop = time.monotonic() - t1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr = log.read_text()
    assert rc == 0, stderr
    assert stop < 2, f"took {stop:.2f} s to stop"
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    assert (out / "mapping.yaml").is_file() and (out / "map.yaml").is_file()
    info = json.loads((out / "search.json").read_text())
    assert info["interrupted"] is True
    assert info["best"] is not None and info["evaluated"] > 0


# ------------------------------------------------------------------------------ bench


def test_bench_json() -> None:
    """`dse bench --json` prints one JSON object; every case has the throughput fields.
    The ResNet-50 end-to-end case (~40 s) is skipped where the option exists."""
    from dse.cli.bench_cmd import bench

    skip = ["--no-network"] if any(p.name == "no_network" for p in bench.params) else []
    result = dse("bench", "--json", "--max-evals", "2000", *skip)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict) and data
    for name, row in data.items():
        assert isinstance(row["evaluated"], int) and row["evaluated"] > 0, name
        assert isinstance(row["wall_s"], int | float) and row["wall_s"] >= 0, name
        assert isinstance(row["evals_per_s"], int | float) and row["evals_per_s"] > 0, name
