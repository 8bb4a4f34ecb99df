"""Data flows one way: no module under dse/ imports from a layer above its own.

Lazy imports inside functions count too (they are still a dependency); README's "Layout"
section lists the same order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DSE = Path(__file__).resolve().parents[1] / "dse"

# lowest first; a module may import from its own layer or any layer below it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("dse", "dse.errors", "dse.factors")),
    ("data", ("dse.workload", "dse.arch", "dse.mapping")),
    ("energy", ("dse.energy",)),
    ("model", ("dse.model",)),
    ("mapper", ("dse.mapper",)),
    ("schedule", ("dse.schedule",)),
    ("spec", ("dse.spec",)),
    ("pipeline", ("dse.pipeline",)),
    ("report", ("dse.report",)),
    ("app", ("dse.cli", "dse.bench.run", "dse.__main__")),
]


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest prefix that names `module` or a package containing it."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and README")
    return best


def module_name(path: Path) -> str:
    parts = path.relative_to(DSE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, mod: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module) of every dse import in the file, lazy ones included."""
    mod = mod or module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == "dse" or name.startswith("dse."):
                # `from dse import x` may name a submodule: judge by the submodule
                for alias in node.names:
                    full = f"{name}.{alias.name}"
                    sub = DSE.parent.joinpath(*full.split("."))
                    exists = sub.with_suffix(".py").exists() or sub.is_dir()
                    out.append((node.lineno, full if exists else name))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("dse")]
    return out


def test_every_module_belongs_to_a_layer() -> None:
    for path in DSE.rglob("*.py"):
        layer_of(module_name(path))


def test_no_module_imports_from_a_layer_above_it() -> None:
    upward = []
    for path in sorted(DSE.rglob("*.py")):
        mod = module_name(path)
        own = layer_of(mod)
        for line, target in imports_of(path):
            if layer_of(target) > own:
                above = LAYERS[layer_of(target)][0]
                upward.append(f"{path.relative_to(DSE.parent)}:{line}: {mod} "
                              f"({LAYERS[own][0]}) imports {target} ({above})")
    assert not upward, "imports from a layer above:\n" + "\n".join(upward)


@pytest.mark.parametrize("source, expected", [
    ("from dse.pipeline.writers import atomic_write\n", "dse.pipeline.writers"),
    ("def f():\n    from dse.report import tables\n", "dse.report.tables"),
])
def test_the_check_sees_top_level_and_lazy_imports(tmp_path, source, expected) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    found = [t for _, t in imports_of(probe, "dse.model.probe")]
    assert found == [expected]
    assert layer_of(expected) > layer_of("dse.model.probe")
