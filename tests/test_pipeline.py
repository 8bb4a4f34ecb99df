"""Whole networks and sweeps: every layer once, totals add up, nothing lost or recomputed."""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dse.cli import main
from dse.spec.workload_library import load_workload
from tests.conftest import REPO

ARCH = str(REPO / "arch_specs" / "eyeriss_like.yaml")


def read(path: Path) -> list[dict]:
    return list(csv.DictReader(open(path)))


def run_cli(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output


def test_run_resnet18_every_layer_once_totals_add_up(tmp_path: Path) -> None:
    out, store = tmp_path / "r18", tmp_path / "s.sqlite"
    run_cli(["run", "--arch", ARCH, "--workload", "resnet18", "--out", str(out),
             "--max-evals", "1500", "--store", str(store), "-q"])
    rows = read(out / "layers.csv")
    net = load_workload("resnet18")
    assert [r["layer"] for r in rows] == [lay.name for lay in net.layers]
    (tot,) = read(out / "totals.csv")
    assert int(tot["macs"]) == net.stats()["macs"] == sum(int(r["macs"]) for r in rows)
    for col in ("cycles", "energy_pJ", "energy_DRAM_pJ", "reads_DRAM_words",
                "writes_shared_glb_words", "energy_compute_pJ"):
        assert float(tot[col]) == pytest.approx(sum(float(r[col] or 0) for r in rows), rel=1e-12)
    assert all(r["status"] == "ok" for r in rows)
    # identical shapes were mapped once: one mapping file per unique shape
    assert len(list((out / "mappings").glob("*.yaml"))) == len({r["shape_id"] for r in rows})
    # the same command again reuses the store and writes identical files
    run_cli(["run", "--arch", ARCH, "--workload", "resnet18", "--out", str(tmp_path / "again"),
             "--max-evals", "1500", "--store", str(store), "-q"])
    for name in ("layers.csv", "totals.csv"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


SWEEP = """\
sweep:
  version: 1
  name: t
  architectures: [{arch}]
  workloads: [resnet8]
  parameters:
    shared_glb.depth: [4096, 8192, 16384]
  mapper: {{objective: edp, search: auto, max_evals: {evals}, seed: 3}}
"""


def write_sweep(tmp_path: Path, evals: int) -> Path:
    f = tmp_path / "sweep.yaml"
    f.write_text(SWEEP.format(arch=ARCH, evals=evals))
    return f


def test_sweep_rows_and_parameters(tmp_path: Path) -> None:
    f = write_sweep(tmp_path, 1000)
    out = tmp_path / "out"
    run_cli(["sweep", str(f), "--out", str(out), "--store", str(tmp_path / "s.sqlite"), "-q"])
    rows = read(out / "sweep.csv")
    assert [r["param.shared_glb.depth"] for r in rows] == ["4096", "8192", "16384"]
    assert len({r["point"] for r in rows}) == 3
    for r in rows:
        (tot,) = read(out / r["point"] / "totals.csv")
        assert tot == {k: v for k, v in r.items() if k in tot}


def _stored(db: Path) -> int:
    try:
        con = sqlite3.connect(str(db), timeout=5)
        n = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        con.close()
        return n
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_killed_sweep_resumes_without_recomputing(tmp_path: Path) -> None:
    f = write_sweep(tmp_path, 6000)
    store = tmp_path / "s.sqlite"
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dse", "sweep", str(f), "--out", str(out), "--store",
           str(store), "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO)
    deadline = time.time() + 120
    while _stored(store) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _stored(store)
    assert not (out / "sweep.csv").exists()
    subprocess.run(cmd, cwd=REPO, check=True)
    info = json.loads((out / "sweep.json").read_text())
    assert info["reused"] == done_before
    assert info["computed"] == info["tasks"] - done_before
    assert _stored(store) == info["tasks"]  # no duplicates: one row per task
    rows = read(out / "sweep.csv")
    assert len(rows) == 3 and len({r["point"] for r in rows}) == 3
    # a second identical command changes nothing (but the wall-clock file, timing.csv)
    before = {p: p.read_bytes() for p in out.rglob("*.csv") if p.name != "timing.csv"}
    subprocess.run(cmd, cwd=REPO, check=True)
    assert {p: p.read_bytes() for p in out.rglob("*.csv") if p.name != "timing.csv"} == before


@pytest.mark.slow
def test_shards_partition_the_points(tmp_path: Path) -> None:
    f = write_sweep(tmp_path, 800)
    store = str(tmp_path / "s.sqlite")
    seen = []
    for i in range(2):
        out = tmp_path / f"shard{i}"
        run_cli(["sweep", str(f), "--out", str(out), "--store", store, "--shard", f"{i}/2",
                 "-q"])
        seen += [r["point"] for r in read(out / "sweep.csv")]
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 3


@pytest.mark.slow
def test_dask_executor_gives_the_same_rows(tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    from dse.pipeline.store import ResultStore
    from dse.pipeline.sweep import read_sweep, run_sweep

    spec = read_sweep(str(write_sweep(tmp_path, 800)))
    local = run_sweep(spec, tmp_path / "local", ResultStore(tmp_path / "a.sqlite"), jobs=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        remote = run_sweep(spec, tmp_path / "dask", ResultStore(tmp_path / "b.sqlite"),
                           executor="dask", scheduler=cluster.scheduler_address)
    assert remote.rows == local.rows
    assert remote.computed == local.computed
    for p in spec.points:
        for name in ("layers.csv", "totals.csv"):
            a = (tmp_path / "local" / p.id / name).read_bytes()
            assert (tmp_path / "dask" / p.id / name).read_bytes() == a


def test_unknown_parameter_level_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(SWEEP.format(arch=ARCH, evals=100).replace("shared_glb.depth",
                                                            "shared_gbl.depth"))
    result = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "o"),
                                       "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2
    assert "did you mean 'shared_glb'" in result.output
