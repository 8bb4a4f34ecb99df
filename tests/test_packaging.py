"""Packaging / CLI-startup checks: version flag, lazy imports, pyproject metadata, the libraries
shipped inside the package, a built wheel that runs outside the checkout, library names for
`--arch` wherever `dse arch show` takes them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import dse
from dse.cli import main
from dse.errors import SpecError
from dse.pipeline.sweep import read_sweep
from dse.spec.arch_library import REPO_ARCH_SPECS, architecture_files
from dse.spec.workload_library import load_workload

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("pandas", "numpy", "yaml", "tqdm", "numba")


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
    # `dse` on the package index is an unrelated project; the command and import stay `dse`
    assert project["name"] == dse.DISTRIBUTION != "dse"
    assert project["scripts"]["dse"] == "dse.cli:main"
    assert "version" in project["dynamic"]
    assert data["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "dse.__version__"
    dep_names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in project["dependencies"]}
    assert {"click", "pyyaml", "pandas", "numpy", "tqdm", "numba"} <= dep_names
    extras = project["optional-dependencies"]
    assert {"onnx", "plot", "dask", "dev"} <= set(extras)


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_folder_ships() -> None:
    """Packages are listed by hand (the libraries map into the package), so a new folder of
    dse/ must be added there; the libraries install as dse/arch_specs etc."""
    tool = _pyproject()["tool"]["setuptools"]
    listed = set(tool["packages"])
    folders = {".".join(p.relative_to(REPO_ROOT).parts) for p in (REPO_ROOT / "dse").rglob("*")
               if p.is_dir() and p.name != "__pycache__"
               and any(f.suffix in (".py", ".csv", ".yaml") for f in p.iterdir())}
    assert folders | {"dse"} <= listed, f"not in pyproject packages: {folders - listed}"
    assert tool["package-dir"] == {"dse.arch_specs": "arch_specs", "dse.workloads": "workloads",
                                   "dse.mappings": "mappings"}
    for pkg in tool["package-dir"]:
        # the libraries' YAML files, plus data folders beside them (ARCHON: arch_specs/archon/,
        # workloads/archon_nnz/)
        assert pkg in listed and tool["package-data"][pkg][0] == "*.yaml"


def test_messages_name_the_index_distribution() -> None:
    """No text advises `pip install 'dse[...]'` (that installs an unrelated package)."""
    wrong = re.compile(r"(?<![\w-])dse\[")
    texts = [*(REPO_ROOT / "dse").rglob("*.py"), *(REPO_ROOT / "docs").rglob("*.md"),
             *(REPO_ROOT / "tests").glob("*.py"), REPO_ROOT / "README.md",
             REPO_ROOT / "Makefile", REPO_ROOT / ".ci" / "run"]
    here = Path(__file__).resolve()
    bad = [f"{p.relative_to(REPO_ROOT)}:{i}" for p in texts if p.resolve() != here
           for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
           if wrong.search(line)]
    assert bad == []
    assert dse.install_hint("onnx").startswith(f"pip install '{dse.DISTRIBUTION}[onnx]'")


def test_nothing_reads_the_reference_shelf() -> None:
    """The project stands alone: code, tests, docs and build files never point at the reference
    shelf beside the checkout (the data they need is copied into tests/data)."""
    texts = [p for d in ("dse", "tests", "docs", ".ci") for p in (REPO_ROOT / d).rglob("*")
             if p.is_file() and p.suffix in (".py", ".md", ".yaml", "") and "data" not in
             p.relative_to(REPO_ROOT).parts]
    texts += [REPO_ROOT / "README.md", REPO_ROOT / "Makefile", REPO_ROOT / "pyproject.toml"]
    here = Path(__file__).resolve()
    bad = [str(p.relative_to(REPO_ROOT)) for p in texts if p.resolve() != here
           and re.search(r"\.\./shared|/work/shared|shared/reference",
                         p.read_text(encoding="utf-8", errors="replace"))]
    assert bad == []


# ------------------------------------------------------------------ library names for --arch

def _totals(folder: Path) -> str:
    return (folder / "totals.csv").read_text(encoding="utf-8")


def test_run_takes_a_library_name_like_arch_show(tmp_path: Path) -> None:
    """`--arch eyeriss_like` = `--arch arch_specs/eyeriss_like.yaml` (constraints included)."""
    common = ["--workload", "resnet18_conv2_x", "--max-evals", "300", "-q"]
    by_name = CliRunner().invoke(main, ["run", "--arch", "eyeriss_like", "--out",
                                        str(tmp_path / "n"), "--store", str(tmp_path / "n.db"),
                                        *common])
    assert by_name.exit_code == 0, by_name.output
    by_file = CliRunner().invoke(main, ["run", "--arch", str(REPO_ARCH_SPECS / "eyeriss_like.yaml"),
                                        "--out", str(tmp_path / "f"), "--store",
                                        str(tmp_path / "f.db"), *common])
    assert by_file.exit_code == 0, by_file.output
    assert _totals(tmp_path / "n") == _totals(tmp_path / "f")
    assert "resnet18_conv2_x,eyeriss_like," in _totals(tmp_path / "n")


def test_run_unknown_architecture_name_exits_2_with_did_you_mean(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["run", "--arch", "eyeriss_lik", "--workload", "resnet8",
                                  "--out", str(tmp_path / "o"), "--store", str(tmp_path / "s")])
    assert r.exit_code == 2
    assert "no architecture 'eyeriss_lik'" in r.output and "did you mean 'eyeriss_like'" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "o").exists()


def test_sweep_architectures_take_library_names(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("sweep:\n  architectures:\n    - eyeriss_like\n    - file: max78000\n"
                 "  workloads: [resnet8]\n")
    points = read_sweep(str(f)).points
    assert [p.arch_files for p in points] == [
        [str(REPO_ARCH_SPECS / "eyeriss_like.yaml"),
         str(REPO_ARCH_SPECS / "eyeriss_like.constraints.yaml")],
        [str(REPO_ARCH_SPECS / "max78000.yaml")]]
    assert [p.id for p in points] == ["eyeriss_like__resnet8", "max78000__resnet8"]
    f.write_text("sweep:\n  architectures:\n    - file: eyeris_like\n  workloads: [resnet8]\n")
    with pytest.raises(SpecError) as info:
        read_sweep(str(f))
    err = info.value
    assert err.key_path == "sweep.architectures[0].file" and err.line == 3
    assert "did you mean 'eyeriss_like'" in str(err)


# ------------------------------------------------------------ the wheel, outside the checkout

def _copy_source(dest: Path) -> Path:
    """What a fresh clone holds for the build: pyproject, the package and its mapped folders."""
    import shutil

    src = dest / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ["dse", *_pyproject()["tool"]["setuptools"]["package-dir"].values()]:
        shutil.copytree(REPO_ROOT / folder, src / folder, ignore=ignore)
    shutil.copy(REPO_ROOT / "pyproject.toml", src)
    return src


@pytest.mark.slow
def test_built_wheel_runs_outside_the_checkout(tmp_path: Path) -> None:
    """pip wheel -> pip install --target -> `dse arch list`, `dse workload stats resnet18` and
    `dse run --arch eyeriss_like --workload resnet8` from another folder, using only the
    installed copy (offline: the test venv's setuptools builds it)."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    src, wheels, target, work = (_copy_source(tmp_path), tmp_path / "wheels",
                                 tmp_path / "target", tmp_path / "work")
    work.mkdir()
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(src), "-w",
                    str(wheels)], check=True, cwd=tmp_path, timeout=300)
    (wheel,) = wheels.glob("*.whl")
    assert wheel.name.startswith(dse.DISTRIBUTION.replace("-", "_") + "-")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, cwd=tmp_path, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DSE_WORKLOADS")}
    env["PYTHONPATH"] = str(target)

    def dse_cmd(*args: str, entry_point: bool = False) -> str:
        cmd = ([str(target / "bin" / "dse")] if entry_point
               else [sys.executable, "-m", "dse"])
        proc = subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=work, env=env,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    where = subprocess.run([sys.executable, "-c", "import dse; print(dse.__file__)"],
                           capture_output=True, text=True, cwd=work, env=env, check=True)
    assert Path(where.stdout.strip()).is_relative_to(target)

    listing = dse_cmd("arch", "list")
    for path in architecture_files():
        line = next(x for x in listing.splitlines() if x.startswith(path.stem + " "))
        assert str(target / "dse" / "arch_specs" / path.name) in line

    macs = load_workload("resnet18").stats()["macs"]
    assert macs == 1_814_073_344  # torchvision ResNet-18, tests/data/workload_shapes.md
    assert f"MACs         {macs:,}" in dse_cmd("workload", "stats", "resnet18")

    out = dse_cmd("run", "--arch", "eyeriss_like", "--workload", "resnet8", "--out", "r8",
                  "--max-evals", "300", "-q", entry_point=True)
    assert out == ""
    layers = (work / "r8" / "layers.csv").read_text().splitlines()
    assert len(layers) == 1 + len(load_workload("resnet8").layers)
    assert (work / "results" / "store.sqlite").is_file()  # the default store, in the cwd
    here = CliRunner().invoke(main, ["run", "--arch", str(REPO_ARCH_SPECS / "eyeriss_like.yaml"),
                                     "--workload", "resnet8", "--max-evals", "300", "-q",
                                     "--out", str(tmp_path / "checkout"),
                                     "--store", str(tmp_path / "checkout.db")])
    assert here.exit_code == 0, here.output
    assert _totals(work / "r8") == _totals(tmp_path / "checkout")
