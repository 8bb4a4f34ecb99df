"""Nothing lost, nothing poisoned: Ctrl-C, kill -9, shared stores, reproducible CSVs, file
permissions, and unusable stores or output paths (exit 2, one paragraph, no traceback)."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dse.cli import main
from tests.conftest import REPO

ARCH = str(REPO / "arch_specs" / "eyeriss_like.yaml")
TINY = """\
network:
  version: 1
  name: tiny
  input: {C: 16, H: 16}
  layers:
    - {name: a, type: conv2d, C: 16, K: 32, H: 16, R: 3, pad: 1, P: 16, inputs: [input]}
    - {name: b, type: conv2d, C: 32, K: 32, H: 16, R: 3, pad: 1, P: 16, inputs: [a]}
    - {name: c, type: conv2d, C: 32, K: 64, H: 16, R: 1, P: 16, inputs: [b]}
"""


LAYER = "problem: {type: conv2d, C: 4, M: 4, P: 4, Q: 4, R: 3, S: 3}\n"


@pytest.fixture
def layer(tmp_path: Path) -> str:
    f = tmp_path / "layer.yaml"
    f.write_text(LAYER)
    return str(f)


@pytest.fixture
def tiny(tmp_path: Path) -> str:
    f = tmp_path / "tiny.yaml"
    f.write_text(TINY)
    return str(f)


def run_args(workload: str, out: Path, store: Path, evals: int, *extra: str) -> list[str]:
    return ["run", "--arch", ARCH, "--workload", workload, "--out", str(out), "--store",
            str(store), "--max-evals", str(evals), "-q", *extra]


def dse_cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "dse", *args]


def stored(store: Path) -> dict[str, dict]:
    if not store.exists():
        return {}
    try:
        db = sqlite3.connect(str(store), timeout=5)
        try:
            return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM results")}
        finally:
            db.close()
    except sqlite3.OperationalError:  # not created yet
        return {}


def children(pid: int) -> list[int]:
    """Live (non-zombie) processes whose parent is `pid` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def start(args: list[str]) -> subprocess.Popen:
    """A dse process in its own process group, as a terminal would run it."""
    return subprocess.Popen(dse_cmd(args), cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ------------------------------------------------------------------ Ctrl-C and resume


@pytest.mark.slow
def test_ctrl_c_in_run_stores_no_cut_short_search_and_a_rerun_completes(tmp_path: Path,
                                                                       tiny: str) -> None:
    # long enough per layer (~2 s with the compiled kernel) to interrupt the second one
    evals = 500_000
    full = tmp_path / "full"
    subprocess.run(dse_cmd(run_args(tiny, full, tmp_path / "full.sqlite", evals,
                                    "--no-bound-skip")), cwd=REPO, check=True)
    reference = stored(tmp_path / "full.sqlite")
    assert len(reference) == 3

    store, out = tmp_path / "s.sqlite", tmp_path / "out"
    proc = start(run_args(tiny, out, store, evals, "--no-bound-skip"))
    wait_for(lambda: len(stored(store)) >= 1 or proc.poll() is not None, 120, "a stored layer")
    time.sleep(0.3)  # into the next layer's search
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    kept = stored(store)
    assert 1 <= len(kept) < 3
    for key, value in kept.items():  # every stored layer is a complete search
        assert value == {**reference[key], "search_s": value["search_s"]}
    assert "Traceback" not in err and "run the same command again" in err
    # the message names exactly the layers that are not stored
    names = {"a", "b", "c"}
    timing = (full / "timing.csv").read_text().splitlines()[1:]
    key_of = {line.split(",")[0]: line.split(",")[1] for line in timing}
    missing = {n for n in names if key_of[n] not in kept}
    assert f"({', '.join(sorted(missing))})" in err
    assert not (out / "layers.csv").exists()

    rerun = subprocess.run(dse_cmd(run_args(tiny, out, store, evals, "--no-bound-skip")), cwd=REPO,
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    for name in ("layers.csv", "totals.csv"):
        assert (out / name).read_bytes() == (full / name).read_bytes()
    sources = {line.split(",")[0]: line.split(",")[2]
               for line in (out / "timing.csv").read_text().splitlines()[1:]}
    assert {n for n, s in sources.items() if s == "computed"} == missing


def test_a_search_cut_short_in_process_is_not_stored(tmp_path: Path, tiny: str) -> None:
    from dse.mapper.search import SearchConfig
    from dse.pipeline.run import run_network
    from dse.pipeline.spec import load_arch
    from dse.pipeline.store import ResultStore
    from dse.pipeline.work import Interrupted
    from dse.spec.workload_library import load_workload

    arch = load_arch([ARCH])
    net = load_workload(tiny)
    store = ResultStore(tmp_path / "s.sqlite")
    searched: list[str] = []

    def on_search(task):
        searched.append(task.problem.name)

        def progress(result, rate):
            if len(searched) == 2:
                raise KeyboardInterrupt  # Ctrl-C during the second layer's search
        return progress

    cfg = SearchConfig(max_evals=3000, seed=1)
    with pytest.raises(Interrupted) as caught:
        run_network(net, arch, cfg, tmp_path / "out", store, on_search=on_search)
    assert caught.value.missing == ["b", "c"]
    assert len(store) == 1
    with pytest.raises(ValueError, match="never stored"):
        store.put("k", {"interrupted": True, "evaluated": 5})
    store.close()


# ------------------------------------------------------------------ --jobs 2: workers


def _started_pool(tmp_path: Path, tiny: str) -> tuple[subprocess.Popen, list[int]]:
    proc = start(run_args(tiny, tmp_path / "out", tmp_path / "s.sqlite", 10_000_000,
                          "--jobs", "2"))
    wait_for(lambda: len(children(proc.pid)) >= 2 or proc.poll() is not None, 60,
             "two workers")
    assert proc.poll() is None
    time.sleep(0.5)  # the workers are searching
    return proc, children(proc.pid)


def test_ctrl_c_with_jobs_2_exits_within_2_s_and_leaves_no_worker(tmp_path: Path,
                                                                 tiny: str) -> None:
    proc, workers = _started_pool(tmp_path, tiny)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    took = time.monotonic() - t0
    assert proc.returncode == 130, err
    assert took < 2.0, f"exit took {took:.2f} s"
    assert "a, b, c" in err
    assert stored(tmp_path / "s.sqlite") == {}
    wait_for(lambda: not any(alive(w) for w in workers), 2, "workers to end")


def test_kill_9_of_the_parent_leaves_no_worker(tmp_path: Path, tiny: str) -> None:
    proc, workers = _started_pool(tmp_path, tiny)
    assert len(workers) == 2
    try:
        proc.kill()
        proc.wait()
        wait_for(lambda: not any(alive(w) for w in workers), 3, "orphaned workers to exit")
    finally:
        for w in workers:  # do not leave searches running if the test fails
            if alive(w):
                os.kill(w, signal.SIGKILL)


def test_a_worker_that_dies_is_a_clear_error_not_a_hang(tmp_path: Path, tiny: str) -> None:
    proc, workers = _started_pool(tmp_path, tiny)
    os.kill(workers[0], signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2, err
    assert err.startswith("error: a worker process died") and "Traceback" not in err
    wait_for(lambda: not any(alive(w) for w in workers), 2, "workers to end")


# ------------------------------------------------------------------ reproducible CSVs


def test_layers_csv_is_byte_identical_for_any_jobs(tmp_path: Path, tiny: str) -> None:
    for jobs in ("1", "2"):
        r = CliRunner().invoke(main, run_args(tiny, tmp_path / jobs, tmp_path / f"{jobs}.sqlite",
                                              2000, "--jobs", jobs))
        assert r.exit_code == 0, r.output
    for name in ("layers.csv", "totals.csv"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()
    header = (tmp_path / "1" / "layers.csv").read_text().splitlines()[0].split(",")
    assert "search_s" not in header
    timing = (tmp_path / "1" / "timing.csv").read_text().splitlines()
    assert timing[0] == "layer,layer_key,source,evaluated,search_s,evals_per_s"
    assert [line.split(",")[0] for line in timing[1:]] == ["a", "b", "c"]
    assert all(float(line.split(",")[4]) > 0 for line in timing[1:])


# ------------------------------------------------------------------ shared store

SWEEP = """\
sweep:
  version: 1
  name: t
  architectures: [{arch}]
  workloads: [resnet8]
  parameters:
    shared_glb.depth: [4096, 8192]
  mapper: {{objective: edp, search: auto, max_evals: 1000, seed: 3}}
"""


def test_two_sweeps_on_one_store_share_the_work(tmp_path: Path) -> None:
    f = tmp_path / "sweep.yaml"
    f.write_text(SWEEP.format(arch=ARCH))
    store = tmp_path / "s.sqlite"
    procs = [start(["sweep", str(f), "--out", str(tmp_path / f"out{i}"), "--store", str(store),
                    "-q"]) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    infos = [json.loads((tmp_path / f"out{i}" / "sweep.json").read_text()) for i in range(2)]
    tasks = infos[0]["tasks"]
    assert tasks == 26 and infos[1]["tasks"] == tasks
    # every layer mapping was computed once, by one of the two
    assert infos[0]["computed"] + infos[1]["computed"] == tasks
    assert all(i["computed"] + i["reused"] == tasks for i in infos)
    assert len(stored(store)) == tasks
    a, b = tmp_path / "out0", tmp_path / "out1"
    assert (a / "sweep.csv").read_bytes() == (b / "sweep.csv").read_bytes()
    for point in infos[0]["points"]:
        assert (a / point / "layers.csv").read_bytes() == (b / point / "layers.csv").read_bytes()
    db = sqlite3.connect(str(store))
    assert db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0  # all released
    db.close()


def test_ctrl_c_in_a_sweep_exits_130_and_names_the_missing_points(tmp_path: Path) -> None:
    f = tmp_path / "sweep.yaml"
    f.write_text(SWEEP.format(arch=ARCH).replace("max_evals: 1000", "max_evals: 10000000"))
    store, out = tmp_path / "s.sqlite", tmp_path / "out"
    proc = start(["sweep", str(f), "--out", str(out), "--store", str(store), "--jobs", "2",
                  "-q"])
    wait_for(lambda: len(children(proc.pid)) >= 2 or proc.poll() is not None, 60,
             "two workers")
    time.sleep(0.5)
    workers = children(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "2 design point(s) not finished" in err and "run the same command again" in err
    assert not (out / "sweep.csv").exists() and stored(store) == {}
    wait_for(lambda: not any(alive(w) for w in workers), 2, "workers to end")


def test_a_claim_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    from dse.pipeline.store import ResultStore

    a, b = ResultStore(tmp_path / "s.sqlite"), ResultStore(tmp_path / "s.sqlite")
    assert a.claim("k") and a.claim("k")
    assert not b.claim("k")  # a is alive: b waits
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    db = sqlite3.connect(str(tmp_path / "s.sqlite"))
    with db:
        db.execute("UPDATE claims SET pid = ? WHERE key = 'k'", (int(dead.stdout),))
    db.close()
    assert b.claim("k")  # its owner is gone
    a.close()
    b.close()


def test_a_key_finished_since_the_caller_looked_is_not_claimed_again(tmp_path: Path) -> None:
    """The race two sweeps on one store hit: b looks (nothing stored), a stores the result and
    drops its claim, b claims. b must not get the key, or the layer is computed twice."""
    from dse.pipeline.store import ResultStore

    a, b = ResultStore(tmp_path / "s.sqlite"), ResultStore(tmp_path / "s.sqlite")
    assert a.claim("k")
    assert b.get("k") is None  # b's look, before a finishes
    a.put("k", {"cycles": 1})
    assert not b.claim("k")
    assert b.get("k") == {"cycles": 1}  # its next look finds the result
    a.close()
    b.close()


# ------------------------------------------------------------------ permissions


def test_outputs_get_the_permissions_of_normally_created_files(tmp_path: Path) -> None:
    from dse.pipeline.writers import atomic_write

    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "x" / "a.csv", "a\n")
        atomic_write(tmp_path / "x" / "b.png", b"\x89PNG")
    finally:
        os.umask(old)
    for name in ("a.csv", "b.png"):
        assert stat.S_IMODE((tmp_path / "x" / name).stat().st_mode) == 0o640
    assert not [p for p in (tmp_path / "x").iterdir() if p.name.startswith(".")]


def test_run_outputs_are_not_private(tmp_path: Path, tiny: str) -> None:
    old = os.umask(0o022)
    try:
        r = CliRunner().invoke(main, run_args(tiny, tmp_path / "o", tmp_path / "s.sqlite", 300))
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    files = [p for p in (tmp_path / "o").rglob("*") if p.is_file()]
    assert len(files) == 6  # layers, totals, timing, three mappings
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}


# ------------------------------------------------------------------ unusable stores


def one_paragraph_exit_2(args: list[str], *needles: str) -> str:
    r = subprocess.run(dse_cmd(args), cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr
    return r.stderr


def _good_store(tmp_path: Path, tiny: str) -> Path:
    store = tmp_path / "good.sqlite"
    r = CliRunner().invoke(main, run_args(tiny, tmp_path / "o", store, 300))
    assert r.exit_code == 0, r.output
    return store


@pytest.mark.parametrize("case", ["directory", "not a database", "garbage", "truncated"])
def test_an_unusable_store_file_is_exit_2(tmp_path: Path, tiny: str, case: str) -> None:
    if case == "directory":
        store = tmp_path / "dir"
        store.mkdir()
        needle = "is a folder"
    elif case == "not a database":
        store = tmp_path / "notes.yaml"
        store.write_text("architecture: {}\n" * 20)
        needle = "not a database"
    else:
        store = _good_store(tmp_path, tiny)
        data = store.read_bytes()
        store.write_bytes(os.urandom(4096) if case == "garbage" else data[:1500])
        for ext in ("-wal", "-shm"):
            Path(str(store) + ext).unlink(missing_ok=True)
        needle = "result store"
    before = store.read_bytes() if store.is_file() else None
    one_paragraph_exit_2(run_args(tiny, tmp_path / "o2", store, 300), str(store), needle,
                         "--store")
    if before is not None:
        assert store.read_bytes() == before  # nothing of the user's file is changed


@pytest.mark.parametrize("value,found", [("{}", "keys []"), ("not json", "not json"),
                                         ("[1, 2]", "[1, 2]"),
                                         ('{"status": "ok", "evaluated": 1, "valid": 1}',
                                          "cycles")])
def test_store_rows_of_the_wrong_shape_are_exit_2(tmp_path: Path, tiny: str, value: str,
                                                  found: str) -> None:
    store = _good_store(tmp_path, tiny)
    db = sqlite3.connect(str(store))
    with db:
        db.execute("UPDATE results SET value = ?", (value,))
    db.close()
    one_paragraph_exit_2(run_args(tiny, tmp_path / "o2", store, 300), str(store),
                         "not what this dse writes", found, "move or delete")


# ------------------------------------------------------------------ unusable output paths


def test_out_below_a_regular_file_is_exit_2(tmp_path: Path, tiny: str, layer: str) -> None:
    (tmp_path / "afile").write_text("x")
    one_paragraph_exit_2(run_args(tiny, tmp_path / "afile" / "sub", tmp_path / "s.sqlite",
                                  300), "not a folder")
    one_paragraph_exit_2(["convert", str(REPO / "arch_specs" / "eyeriss_like.yaml"), "--out",
                          str(tmp_path / "afile" / "sub")], "afile", "not a folder")
    one_paragraph_exit_2(["import", layer, "-o", str(tmp_path / "afile" / "net.yaml")],
                         "afile", "a file is in the way")
    one_paragraph_exit_2(run_args(tiny, tmp_path / "o", tmp_path / "afile" / "s.sqlite", 300),
                         "afile")


def test_disk_full_name_too_long_and_symlink_loop_are_exit_2(tmp_path: Path, tiny: str,
                                                             layer: str) -> None:
    one_paragraph_exit_2(["import", layer, "-o", "/dev/full", "--force"], "/dev/full",
                         "disk is full", "ENOSPC")
    one_paragraph_exit_2(run_args(tiny, tmp_path / ("n" * 300), tmp_path / "s.sqlite", 300),
                         "too long", "ENAMETOOLONG")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    one_paragraph_exit_2(run_args(tiny, loop / "sub", tmp_path / "s.sqlite", 300),
                         "symlink loop", "ELOOP")
    one_paragraph_exit_2(["model", str(loop), str(loop)], "symlink loop")


@pytest.mark.parametrize("code,needle", [(errno.EROFS, "read-only"),
                                         (errno.EACCES, "permission denied"),
                                         (errno.ENOSPC, "disk is full")])
def test_write_failures_while_saving_results_are_exit_2(tmp_path: Path, tiny: str,
                                                        monkeypatch, code: int,
                                                        needle: str) -> None:
    # as root, a read-only folder is still writable: make the rename fail the way it would
    def refuse(src, dst):
        raise OSError(code, os.strerror(code), src, None, dst)

    monkeypatch.setattr(os, "replace", refuse)
    r = CliRunner().invoke(main, run_args(tiny, tmp_path / "o", tmp_path / "s.sqlite", 300))
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
    assert needle in r.output and str(tmp_path / "o") in r.output
    assert not [p for p in (tmp_path / "o").rglob(".*")]  # no temp files left behind
