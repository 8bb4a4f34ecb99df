"""`dse report`: merged rows, ratios recomputed from the inputs, side-by-side layers, report.md,
plots, errors, determinism, and the sweep layout (DIR/<point>/ + DIR/sweep.csv)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dse.cli import main
from tests.conftest import REPO

ARCH = REPO / "arch_specs" / "eyeriss_like.yaml"
PNG = b"\x89PNG\r\n\x1a\n"
EVALS = "2000"


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """resnet8 on eyeriss_like (a/) and on a copy with a smaller GLB and another name (b/)."""
    root = tmp_path_factory.mktemp("report")
    small = root / "eyeriss_small.yaml"
    text = ARCH.read_text()
    assert "name: eyeriss_like\n" in text and "depth: 16384\n" in text
    small.write_text(text.replace("name: eyeriss_like\n", "name: eyeriss_small\n")
                     .replace("depth: 16384\n", "depth: 4096\n"))
    shutil.copy(ARCH.with_name("eyeriss_like.constraints.yaml"),
                root / "eyeriss_small.constraints.yaml")
    for arch, out in ((ARCH, "a"), (small, "b")):
        r = invoke("run", "--arch", arch, "--workload", "resnet8", "--out", root / out,
                   "--max-evals", EVALS, "--store", root / "store.sqlite", "-q")
        assert r.exit_code == 0, r.output
    return root


@pytest.fixture(scope="module")
def report(runs: Path) -> Path:
    out = runs / "rep"
    r = invoke("report", runs / "a", runs / "b", "--baseline", "eyeriss_like", "--out", out)
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.output
    return out


def test_one_row_per_network_arch_point_with_ratios_from_the_inputs(runs, report) -> None:
    got = rows(report / "report.csv")
    a, b = rows(runs / "a" / "totals.csv")[0], rows(runs / "b" / "totals.csv")[0]
    assert [(r["network"], r["arch"], r["point"]) for r in got] == [
        ("resnet8", "eyeriss_like", ""), ("resnet8", "eyeriss_small", "")]
    by = {r["arch"]: r for r in got}
    for src in (a, b):
        mine = by[src["arch"]]
        for c in ("macs", "cycles", "energy_pJ", "pJ_per_mac", "utilization"):
            assert mine[c] == src[c], c  # copied, not re-derived
        assert mine["baseline"] == "eyeriss_like"
        assert float(mine["speedup_vs_baseline"]) == pytest.approx(
            float(a["cycles"]) / float(src["cycles"]), rel=1e-12)
        assert float(mine["energy_ratio_vs_baseline"]) == pytest.approx(
            float(src["energy_pJ"]) / float(a["energy_pJ"]), rel=1e-12)
    assert float(by["eyeriss_like"]["speedup_vs_baseline"]) == 1.0
    assert float(by["eyeriss_like"]["energy_ratio_vs_baseline"]) == 1.0


def test_side_by_side_has_every_layer_of_both_archs(runs, report) -> None:
    side = rows(report / "layers_side_by_side.csv")
    la, lb = rows(runs / "a" / "layers.csv"), rows(runs / "b" / "layers.csv")
    assert [r["layer"] for r in side] == [r["layer"] for r in la]  # network order
    for arch, src in (("eyeriss_like", la), ("eyeriss_small", lb)):
        for s, r in zip(side, src, strict=True):
            assert float(s[f"{arch}_energy_pJ"]) == float(r["energy_pJ"])
            assert s[f"{arch}_cycles"] == r["cycles"]


def test_markdown_names_inputs_archs_and_numbers(runs, report) -> None:
    md = (report / "report.md").read_text()
    for word in ("eyeriss_like", "eyeriss_small", str(runs / "a"), "Baseline: `eyeriss_like`",
                 "report.csv", "layers_side_by_side.csv"):
        assert word in md, word
    cycles = int(rows(runs / "a" / "totals.csv")[0]["cycles"])
    assert f"{cycles:,}" in md


def test_plots_are_svg_pdf_and_200dpi_png(report) -> None:
    pytest.importorskip("matplotlib")
    stems = ["latency_resnet8", "pareto_resnet8_energy_latency", "pareto_resnet8_energy_area",
             "energy_breakdown_resnet8_eyeriss_like", "energy_breakdown_resnet8_eyeriss_small"]
    md = (report / "report.md").read_text()
    for n in stems:
        png = (report / f"{n}.png").read_bytes()
        assert png[:8] == PNG, n
        width = int.from_bytes(png[16:20], "big")  # IHDR width in pixels
        assert width >= 4.8 * 200, (n, width)  # 200 dpi at >= 4.8 in
        assert (report / f"{n}.pdf").read_bytes()[:5] == b"%PDF-", n
        assert "<svg" in (report / f"{n}.svg").read_text(), n
        assert f"{n}.png" in md
    # file names carry no dots but the extension's
    assert all(p.name.count(".") == 1 for p in report.iterdir() if p.is_file())


def test_without_matplotlib_a_note_and_no_plots(runs, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    r = invoke("report", runs / "a", "--out", tmp_path)
    assert r.exit_code == 0, r.output
    assert "pip install 'dnn-accel-dse[plot]'" in r.output
    assert not list(tmp_path.glob("*.png")) and (tmp_path / "report.csv").exists()


def test_no_baseline_leaves_ratios_empty_and_no_plots_flag(runs, tmp_path) -> None:
    r = invoke("report", runs / "a", runs / "b", "--out", tmp_path, "--no-plots")
    assert r.exit_code == 0, r.output
    got = rows(tmp_path / "report.csv")
    assert len(got) == 2
    assert all(r[c] == "" for r in got for c in
               ("speedup_vs_baseline", "energy_ratio_vs_baseline", "baseline"))
    assert not list(tmp_path.glob("*.png"))


def test_same_inputs_give_identical_files(runs, report, tmp_path) -> None:
    # other argument order, a folder given twice: same bytes
    r = invoke("report", runs / "b", runs / "a", runs / "a", "--baseline",
               "eyeriss_like", "--out", tmp_path)
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in report.iterdir() if p.is_file())  # plots and report.html too
    assert {"report.csv", "layers_side_by_side.csv", "report.md", "pareto.csv",
            "report.html"} <= set(names)
    for name in names:
        assert (tmp_path / name).read_bytes() == (report / name).read_bytes(), name


def test_unknown_baseline_exits_2_with_did_you_mean(runs, tmp_path) -> None:
    r = invoke("report", runs / "a", runs / "b", "--baseline", "eyeris_like", "--out", tmp_path)
    assert r.exit_code == 2
    assert "did you mean 'eyeriss_like'" in r.output
    assert "eyeriss_small" in r.output and "Traceback" not in r.output


def test_bad_inputs_exit_2_naming_the_file(runs, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = invoke("report", empty, "--out", tmp_path / "o")
    assert r.exit_code == 2 and str(empty) in r.output and "no results" in r.output
    r = invoke("report", tmp_path / "missing", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "no such file" in r.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "totals.csv").write_text("network,arch\nresnet8,x\n")
    r = invoke("report", bad, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "totals.csv" in r.output and "cycles" in r.output
    # the same (network, arch, point) twice with different numbers is refused
    other = tmp_path / "other"
    shutil.copytree(runs / "a", other)
    t = rows(other / "totals.csv")
    t[0]["energy_pJ"] = str(float(t[0]["energy_pJ"]) * 2)
    with open(other / "totals.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(t[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(t)
    r = invoke("report", runs / "a", other, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "different results" in r.output


@pytest.fixture(scope="module")
def sweep(runs: Path) -> Path:
    spec = runs / "glb.yaml"
    spec.write_text(json.dumps({"sweep": {
        "name": "glb", "architectures": [str(ARCH)], "workloads": ["resnet8"],
        "parameters": {"shared_glb.depth": [4096, 16384]},
        "mapper": {"max_evals": int(EVALS)}}}))
    out = runs / "sweep"
    r = invoke("sweep", spec, "--out", out, "--store", runs / "store.sqlite", "-q")
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.slow  # the sweep fixture runs a two-point sweep
def test_sweep_over_two_glb_sizes(sweep, tmp_path) -> None:
    swept = rows(sweep / "sweep.csv")
    assert len(swept) == 2
    points = sorted(r["point"] for r in swept)
    big = next(r for r in swept if r["param.shared_glb.depth"] == "16384")
    # a point folder passed as well as the sweep folder is not counted twice
    r = invoke("report", sweep, sweep / points[0], "--baseline",
               f"eyeriss_like@{big['point']}", "--out", tmp_path / "r")
    assert r.exit_code == 0, r.output
    got = rows(tmp_path / "r" / "report.csv")
    assert len(got) == 1 * 1 * 2  # networks x archs x points
    assert sorted(g["point"] for g in got) == points
    for g in got:
        src = next(s for s in swept if s["point"] == g["point"])
        assert g["param.shared_glb.depth"] == src["param.shared_glb.depth"]
        assert g["energy_pJ"] == src["energy_pJ"] and g["cycles"] == src["cycles"]
        assert float(g["speedup_vs_baseline"]) == pytest.approx(
            float(big["cycles"]) / float(src["cycles"]), rel=1e-12)
        assert float(g["energy_ratio_vs_baseline"]) == pytest.approx(
            float(src["energy_pJ"]) / float(big["energy_pJ"]), rel=1e-12)
    side = rows(tmp_path / "r" / "layers_side_by_side.csv")
    assert len(side) == len(rows(sweep / points[0] / "layers.csv"))
    assert {f"eyeriss_like@{p}_cycles" for p in points} <= set(side[0])
    md = (tmp_path / "r" / "report.md").read_text()
    assert "shared_glb.depth" in md
    # only sweep.csv (e.g. copied on its own): the same totals
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(sweep / "sweep.csv", only)
    r = invoke("report", only, "--out", tmp_path / "o", "--no-plots")
    assert r.exit_code == 0, r.output
    again = rows(tmp_path / "o" / "report.csv")
    assert [(g["point"], g["energy_pJ"]) for g in again] == [
        (g["point"], g["energy_pJ"]) for g in got]


@pytest.mark.slow
def test_sweep_baseline_matches_points_by_parameters(sweep, runs, tmp_path) -> None:
    # a second architecture swept over the same sizes: each row is compared with the
    # baseline point of the same GLB depth
    small = runs / "eyeriss_small.yaml"
    spec = runs / "glb2.yaml"
    spec.write_text(json.dumps({"sweep": {
        "name": "glb2", "architectures": [str(small)], "workloads": ["resnet8"],
        "parameters": {"shared_glb.depth": [4096, 16384]},
        "mapper": {"max_evals": int(EVALS)}}}))
    out2 = runs / "sweep2"
    r = invoke("sweep", spec, "--out", out2, "--store", runs / "store.sqlite", "-q")
    assert r.exit_code == 0, r.output
    r = invoke("report", sweep, out2, "--baseline", "eyeriss_like", "--out", tmp_path,
               "--no-plots")
    assert r.exit_code == 0, r.output
    got = rows(tmp_path / "report.csv")
    assert len(got) == 4
    base = {g["param.shared_glb.depth"]: g for g in got if g["arch"] == "eyeriss_like"}
    for g in got:
        b = base[g["param.shared_glb.depth"]]
        assert g["baseline"] == f"eyeriss_like@{b['point']}"
        assert float(g["energy_ratio_vs_baseline"]) == pytest.approx(
            float(g["energy_pJ"]) / float(b["energy_pJ"]), rel=1e-12)


def test_report_command_imports_lazily() -> None:
    code = ("import json, sys; import dse.cli.report_cmd; "
            "print(json.dumps([m for m in ('pandas', 'numpy', 'matplotlib') "
            "if m in sys.modules]))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
