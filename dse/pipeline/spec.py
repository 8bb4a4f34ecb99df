"""Architecture inputs for pipeline runs: files (+ constraints, + parameter overrides)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

from dse.arch.architecture import Architecture
from dse.errors import SpecError, did_you_mean
from dse.mapper.constraints import Constraints
from dse.spec import build
from dse.spec.constraints import constraints_from_document
from dse.spec.yamlload import Document, Node, load_documents
from dse.workload.problem import Problem


@dataclass
class ArchInput:
    """An architecture as loaded for a run, with everything that identifies it."""

    name: str
    arch: Architecture
    document: Document
    arch_keep: dict
    files: list[str]
    overrides: dict

    def constraints_for(self, problem: Problem) -> Constraints:
        return constraints_from_document(self.document.data, self.arch, problem, self.arch_keep,
                                         lenient=True)

    def pinned(self) -> list[str]:
        """Overridden levels whose energy per action or area was pinned (inline, ERT, ART) and so
        did not follow the override: `shared_glb (energy spec:inline; area table)`."""
        return pinned_levels(self.arch, self.overrides)

    def identity(self) -> dict:
        """What a result depends on: the resolved architecture and the constraint sections."""
        from dse.spec.constraints import constraint_sections
        from dse.spec.convert import arch_to_native

        cons = {k: _plain(self.document.data[k]) for k, _ in
                constraint_sections(self.document.data)}
        nodes = self.arch.attributes.get("node_constraints")
        if nodes:
            cons["architecture.nodes"] = _plain(nodes)
        out = {"arch": arch_to_native(self.arch, self.arch_keep), "constraints": cons,
               "overrides": self.overrides}
        if self.sparse_optimizations:  # a dense architecture's identity stays as it was
            out["sparse_optimizations"] = _plain(self.sparse_optimizations)
        return out

    @property
    def sparse_optimizations(self):
        """The file's Sparseloop `sparse_optimizations` (formats, gating, skipping), or None."""
        return self.document.data.get("sparse_optimizations") or None

    def sparse_for(self, problem: Problem, densities: dict | None,
                   at: tuple[str | None, int | None] = (None, None)):
        """The sparse spec of a layer (its densities; `at`: the layer's file and line, for
        errors) on this architecture; None = dense."""
        from dse.spec.sparse import layer_sparse_spec

        return layer_sparse_spec(self.document.data, densities, problem, self.arch, at)


def _plain(node):
    return json.loads(json.dumps(node, default=str))


def sibling_constraints(arch_file: str) -> list[str]:
    """`NAME.constraints.yaml` next to `NAME.yaml`, if it exists (documented convention)."""
    p = Path(arch_file)
    c = p.with_name(p.stem + ".constraints.yaml")
    return [str(c)] if c.exists() and not p.name.endswith(".constraints.yaml") else []


# keys that change what a level costs per access and its area (size, row width, word width)
COST_KEYS = {"depth", "width", "datawidth", "block_size", "banks", "class"}
PINNED_PREFIXES = ("spec:inline", "ert:", "art:")


def pinned_levels(arch: Architecture, overrides: dict) -> list[str]:
    """Levels (or compute) an override resized whose energies or area were given, not estimated:
    those numbers stay what the file said, whatever the new size."""
    out = []
    for path in overrides:
        level, _, key = str(path).partition(".")
        if key not in COST_KEYS:
            continue
        if level == "compute":
            comp = arch.compute
            sources = [e.source for a, e in comp.energy.items() if a != "leak"]
            area = comp.area_source
        else:
            lv = next((x for x in arch.levels if x.name == level), None)
            if lv is None:
                continue
            sources = [e.source for a, e in lv.energy.items() if a != "leak"]
            area = lv.area_source
        what = sorted({s.split(" ")[0] for s in sources if s.startswith(PINNED_PREFIXES)})
        if area.startswith("art:"):
            what.append("area " + area.split(" ")[0])
        if what and level not in [o.split(" ")[0] for o in out]:
            out.append(f"{level} ({', '.join(what)})")
    return out


def apply_overrides(data: Node, overrides: dict, where: str) -> None:
    """Set `LEVEL.key` (native architectures): e.g. shared_glb.depth, PE_column.meshX."""
    arch = data.get("architecture")
    if not isinstance(arch, dict) or "levels" not in arch:
        raise SpecError("parameter overrides need a native architecture (with `levels:`)",
                        file=where)
    levels = arch["levels"]
    names = [str(lv.get("name", lv.get("fanout"))) for lv in levels]
    for path, value in overrides.items():
        level, _, key = str(path).partition(".")
        if not key:
            raise SpecError(f"parameter '{path}' must look like LEVEL.key", file=where)
        if level == "compute":
            target = arch["compute"]
        elif level in names:
            target = levels[names.index(level)]
        else:
            raise SpecError(f"parameter '{path}' names unknown level '{level}'", file=where,
                            expected="one of " + ", ".join(names),
                            hint=did_you_mean(level, names))
        target[key] = value


def load_arch(files: list[str], overrides: dict | None = None, name: str | None = None
              ) -> ArchInput:
    doc = load_documents(files)
    from dse.spec.sparse import densities_in_arch_files

    # an architecture's sparse_optimizations are read per layer (ArchInput.sparse_for);
    # densities belong to the workload's layers
    densities_in_arch_files(doc.data)
    if overrides:
        doc = copy.copy(doc)
        doc.data = copy.deepcopy(doc.data)
        apply_overrides(doc.data, overrides, files[0])
    arch, keep = build.read_arch(doc)
    label = name or (arch.name if arch.name != "architecture" else Path(files[0]).stem)
    return ArchInput(label, arch, doc, keep, list(files), dict(overrides or {}))
