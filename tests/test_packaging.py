"""Packaging / CLI-startup checks: version flag, lazy imports, pyproject metadata."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import dse

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("pandas", "numpy", "yaml", "tqdm")


def _env() -> dict[str, str]:
    """Subprocess environment with the repo root importable (works without pip install)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def test_version_flag_prints_version_quickly() -> None:
    code = "import dse.cli, sys; sys.argv = ['dse', '--version']; dse.cli.main()"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=_env(),
        timeout=30,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"dse {dse.__version__}"
    # Startup-latency budget: the CLI must not import heavy deps at module load.
    assert elapsed < 1.0, f"`dse --version` took {elapsed:.3f}s"


def test_cli_import_is_lazy() -> None:
    code = (
        "import json, sys; import dse.cli; "
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=_env(),
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing dse.cli eagerly imported: {loaded}"


def test_pyproject_metadata() -> None:
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = data["project"]
    assert project["name"] == "dse"
    assert project["scripts"]["dse"] == "dse.cli:main"
    assert "version" in project["dynamic"]
    assert data["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "dse.__version__"
    dep_names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in project["dependencies"]}
    assert {"click", "pyyaml", "pandas", "numpy", "tqdm"} <= dep_names
    extras = project["optional-dependencies"]
    assert {"onnx", "plot", "dask", "dev"} <= set(extras)
