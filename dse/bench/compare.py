"""`dse bench --compare REV`: the benchmark cases of this checkout and of another git revision,
run back to back in fresh processes, so a speed-up is measured as a ratio in one sitting on the
same (possibly noisy, shared) machine rather than against figures written down on another day.

REV's tree is exported with `git archive` into a temporary folder (no worktree bookkeeping in the
shared git directory) and run with `python -m dse bench --json` and PYTHONPATH pointing at it, so
REV only needs that command, not any newer option. Rounds alternate A B, B A, ... and the table
reports per case the median over rounds and the ratio this / REV.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dse.errors import SpecError


@dataclass
class CaseComparison:
    case: str
    this_evals_per_s: float | None
    rev_evals_per_s: float | None
    this_wall_s: float | None
    rev_wall_s: float | None
    this_samples: list[float] = field(default_factory=list)  # evals/s, one per round
    rev_samples: list[float] = field(default_factory=list)
    # CPU seconds of the search process (mapper cases, where both sides report `cpu_s`):
    # less disturbed than wall time by other jobs on a shared machine
    this_cpu_s: float | None = None
    rev_cpu_s: float | None = None

    @property
    def ratio(self) -> float | None:
        """Throughput of this checkout over REV's (> 1: this checkout is faster)."""
        if not self.this_evals_per_s or not self.rev_evals_per_s:
            return None
        return self.this_evals_per_s / self.rev_evals_per_s

    @property
    def wall_speedup(self) -> float | None:
        """REV's wall time over this checkout's (the end-to-end speed-up)."""
        if not self.this_wall_s or not self.rev_wall_s:
            return None
        return self.rev_wall_s / self.this_wall_s

    @property
    def cpu_speedup(self) -> float | None:
        """REV's CPU time over this checkout's, where both report it."""
        if not self.this_cpu_s or not self.rev_cpu_s:
            return None
        return self.rev_cpu_s / self.this_cpu_s

    def as_dict(self) -> dict:
        return {"case": self.case, "this_evals_per_s": self.this_evals_per_s,
                "rev_evals_per_s": self.rev_evals_per_s, "ratio": self.ratio,
                "this_wall_s": self.this_wall_s, "rev_wall_s": self.rev_wall_s,
                "wall_speedup": self.wall_speedup, "this_cpu_s": self.this_cpu_s,
                "rev_cpu_s": self.rev_cpu_s, "cpu_speedup": self.cpu_speedup,
                "this_samples": self.this_samples,
                "rev_samples": self.rev_samples}


def _git(root: Path, *args: str, binary: bool = False) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=not binary, check=False)
    except FileNotFoundError as exc:
        raise SpecError("git is not installed; --compare needs it") from exc


def resolve_revision(root: Path, rev: str) -> str:
    """REV -> full commit id, or a clear error (not a checkout, unknown revision)."""
    top = _git(root, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise SpecError("--compare needs dse to run from a git checkout", file=str(root),
                        found=top.stderr.strip().splitlines()[-1] if top.stderr.strip() else None,
                        hint="run it from a clone of the dse repository")
    out = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if out.returncode != 0 or not out.stdout.strip():
        refs = _git(root, "for-each-ref", "--format=%(refname:short)").stdout.split()
        from dse.errors import did_you_mean

        raise SpecError(f"unknown revision '{rev}'", key_path="--compare",
                        expected="a commit, branch or tag of this repository",
                        hint=did_you_mean(rev, refs) or "see `git log --oneline`")
    return out.stdout.strip()


def export_revision(root: Path, commit: str, dest: Path) -> Path:
    """REV's tracked files into dest (git archive, extracted with tarfile's safe filter)."""
    out = _git(root, "archive", "--format=tar", commit, binary=True)
    if out.returncode != 0:
        raise SpecError(f"git archive {commit[:12]} failed",
                        found=out.stderr.decode(errors="replace").strip())
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        tar.extractall(dest, filter="data")
    if not (dest / "dse" / "__init__.py").is_file():
        raise SpecError(f"revision {commit[:12]} has no dse package at the top level")
    return dest


def run_bench(tree: Path, label: str, max_evals: int, network: bool) -> dict:
    """`python -m dse bench --json` with the dse package of `tree`; its parsed JSON."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    check = subprocess.run([sys.executable, "-c", "import dse; print(dse.__file__)"], cwd=tree,
                           env=env, capture_output=True, text=True, check=False)
    used = Path(check.stdout.strip()).resolve() if check.returncode == 0 else None
    if used is None or not used.is_relative_to(tree.resolve()):
        raise SpecError(f"{label}: Python did not import the dse package of {tree}",
                        found=check.stdout.strip() or check.stderr.strip()[-300:])
    cmd = [sys.executable, "-m", "dse", "bench", "--json", "--max-evals", str(max_evals)]
    if not network:
        cmd.append("--no-network")
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.strip()
        for option in ("--json", "--no-network", "--max-evals"):
            if f"No such option: {option}" in err:
                raise SpecError(f"{label}'s `dse bench` has no {option} option, so it cannot be "
                                "compared automatically", hint="pick a newer revision")
        raise SpecError(f"{label}: `dse bench` failed (exit {proc.returncode})",
                        found=err[-600:])
    text = proc.stdout
    start = text.find("{")
    try:
        return json.loads(text[start:]) if start >= 0 else json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{label}: `dse bench --json` did not print JSON",
                        found=text[-300:]) from exc


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def compare(this_tree: Path, rev: str, *, max_evals: int, rounds: int = 3,
            network: bool = True, progress: Callable[[str], None] | None = None
            ) -> tuple[str, list[CaseComparison]]:
    """Run the cases of this_tree (as it is on disk) and of REV alternately, `rounds` each.
    Returns REV's commit id and one row per case (medians over rounds)."""
    if rounds < 1:
        raise SpecError("--rounds must be at least 1", found=rounds)
    commit = resolve_revision(this_tree, rev)
    samples: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory(prefix="dse-bench-rev-") as tmp:
        rev_tree = export_revision(this_tree, commit, Path(tmp))
        sides = {"this": this_tree, "rev": rev_tree}
        for r in range(rounds):
            order = ("this", "rev") if r % 2 == 0 else ("rev", "this")
            for side in order:
                label = "this checkout" if side == "this" else f"revision {rev}"
                if progress:
                    progress(f"round {r + 1}/{rounds}: {label}")
                result = run_bench(sides[side], label, max_evals, network)
                for case, row in result.items():
                    samples.setdefault(case, {"this": [], "rev": []})[side].append(row)
    rows = []
    for case, by_side in samples.items():
        eps = {s: [float(x["evals_per_s"]) for x in by_side[s] if "evals_per_s" in x]
               for s in ("this", "rev")}
        wall = {s: [float(x["wall_s"]) for x in by_side[s] if "wall_s" in x]
                for s in ("this", "rev")}
        cpu = {s: [float(x["cpu_s"]) for x in by_side[s] if x.get("cpu_s")]
               for s in ("this", "rev")}
        rows.append(CaseComparison(case, _median(eps["this"]), _median(eps["rev"]),
                                   _median(wall["this"]), _median(wall["rev"]),
                                   eps["this"], eps["rev"], _median(cpu["this"]),
                                   _median(cpu["rev"])))
    return commit, rows
