"""`dse bench --compare REV`: both trees' cases run back to back, medians and the ratio."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from dse.bench.compare import compare, resolve_revision
from dse.cli import main
from dse.errors import SpecError

FAKE_MAIN = '''\
import json, sys
from pathlib import Path
if "--json" in sys.argv and {refuse_json}:
    print("Usage: dse bench [OPTIONS]\\nError: No such option: --json", file=sys.stderr)
    sys.exit(2)
speed = float((Path(__file__).parent / "speed.txt").read_text())
print("a warning line before the JSON")
print(json.dumps({{"case_a": {{"evaluated": 1000, "wall_s": 1000 / speed,
                              "evals_per_s": speed, "cpu_s": 500 / speed}},
                  "case_b": {{"evaluated": 10, "wall_s": 1.0, "evals_per_s": 10.0}}}}))
'''


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org",
                    *args], check=True, capture_output=True)


def _fake_checkout(tmp_path: Path, speed: float, refuse_json: bool = False) -> Path:
    """A git repo whose `python -m dse bench --json` reports `speed` evals/s for one case."""
    repo = tmp_path / "repo"
    (repo / "dse").mkdir(parents=True)
    (repo / "dse" / "__init__.py").write_text("")
    (repo / "dse" / "__main__.py").write_text(FAKE_MAIN.format(refuse_json=refuse_json))
    (repo / "dse" / "speed.txt").write_text(str(speed))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    return repo


def test_compare_reports_medians_and_the_ratio_of_this_tree_over_rev(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _fake_checkout(tmp_path, 100.0)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    (repo / "dse" / "speed.txt").write_text("250")  # uncommitted: "this checkout" is faster
    commit, rows = compare(repo, "HEAD", max_evals=10, rounds=3, network=False)
    assert len(commit) == 40
    assert [r.case for r in rows] == ["case_a", "case_b"]
    row = rows[0]
    assert row.this_samples == [250.0] * 3 and row.rev_samples == [100.0] * 3
    assert row.ratio == pytest.approx(2.5) and row.wall_speedup == pytest.approx(2.5)
    assert row.this_cpu_s == pytest.approx(2.0) and row.cpu_speedup == pytest.approx(2.5)
    assert rows[1].cpu_speedup is None  # a case without cpu_s (the network case)
    assert not list(scratch.iterdir())  # REV's exported tree is removed


def test_a_revision_without_bench_json_is_refused_clearly(tmp_path: Path) -> None:
    repo = _fake_checkout(tmp_path, 100.0, refuse_json=True)
    with pytest.raises(SpecError, match="has no --json option"):
        compare(repo, "HEAD", max_evals=10, rounds=1, network=False)


def test_unknown_revision_and_non_checkout_are_errors(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["bench", "--compare", "no-such-rev-xyz", "--no-network"])
    assert r.exit_code == 2
    assert "unknown revision 'no-such-rev-xyz'" in r.output and "Traceback" not in r.output
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(SpecError, match="git checkout"):
        resolve_revision(plain, "HEAD")


@pytest.mark.slow
def test_compare_head_with_head_prints_a_parseable_ratio() -> None:
    r = CliRunner().invoke(main, ["bench", "--compare", "HEAD", "--max-evals", "500",
                                  "--no-network", "--rounds", "1"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    header = next(i for i, x in enumerate(lines) if x.startswith("case"))
    assert "ratio" in lines[header].split()
    rows = [x.split() for x in lines[header + 1:] if x.strip() and not x.startswith("round")]
    assert {x[0] for x in rows} >= {"eyeriss_vgg02_conv5/random",
                                    "eyeriss_resnet18_conv2_x/auto"}
    for x in rows:
        assert float(x[3]) > 0  # this / HEAD evals/s: a number on every row
