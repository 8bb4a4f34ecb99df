"""From merged YAML documents to the objects the model evaluates.

Each top-level section is read by the reader for its format: Timeloop (v0.3/v0.4) or dse's
native format (`levels:` architectures, `tensors:` workloads, list-of-levels mappings), so the
two can be mixed in one command.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from dse.arch.architecture import Architecture
from dse.errors import SpecError, did_you_mean
from dse.mapping import Mapping
from dse.spec import timeloop
from dse.spec.common import get, where
from dse.spec.yamlload import Document, Node, load_documents
from dse.workload.problem import Problem

if TYPE_CHECKING:
    from dse.model.sparse import SparseSpec

KNOWN_TOP_LEVEL = {
    "architecture", "problem", "workload", "mapping", "ERT", "ART", "ERT_summary",
    "architecture_constraints", "mapspace_constraints", "constraints", "mapper", "mapspace",
    "compound_components", "components", "globals", "variables", "sparse_optimizations",
    "dumped_by_timeloop_front_end", "version", "model", "energy", "description", "network",
}


@dataclass
class Spec:
    """What `dse model` needs, plus where it came from."""

    problem: Problem
    arch: Architecture
    mapping: Mapping | None
    document: Document
    arch_constraints: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # densities / formats / gating-skipping (Sparseloop inputs); None = a dense design
    sparse: SparseSpec | None = None


def _is_native_arch(node) -> bool:
    return isinstance(node, dict) and ("levels" in node or "extends" in node)


def _is_native_problem(node) -> bool:
    return isinstance(node, dict) and ("tensors" in node or "dims" in node or "type" in node
                                       or "layers" in node)


def _is_native_mapping(node) -> bool:
    if isinstance(node, list):
        return any(isinstance(d, dict) and "level" in d and "target" not in d for d in node)
    return isinstance(node, dict) and "levels" in node


def check_top_level(doc: Document) -> None:
    for key in doc.data:
        if key not in KNOWN_TOP_LEVEL and not str(key).endswith("constraints"):
            f, line = doc.where(key)
            raise SpecError(f"unknown top-level key '{key}'", file=f, line=line,
                            expected="one of architecture, problem (or workload), mapping, ERT",
                            hint=did_you_mean(key, KNOWN_TOP_LEVEL))


def read_arch(doc: Document, parameters: dict | None = None) -> tuple[Architecture, dict]:
    """`parameters` override a native architecture's `parameters:` (e.g. {'columns': 3})."""
    node = doc.data.get("architecture")
    if node is None:
        raise SpecError("no `architecture:` section in the input files",
                        hint="pass an architecture YAML (e.g. arch_specs/eyeriss_like.yaml)")
    if isinstance(node, dict) and "kind" in node:  # only `kind: streaming` exists (own reader)
        from dse.errors import did_you_mean

        f, line = doc.where("architecture")
        raise SpecError(f"architecture kind {node['kind']!r} has no loop-nest levels",
                        file=f, line=line, key_path="architecture.kind",
                        expected="streaming (read by `dse run`, docs/streaming.md) or no `kind:`",
                        hint=did_you_mean(str(node["kind"]), ["streaming"]))
    if _is_native_arch(node):
        from dse.spec import native

        arch, cons = native.read_architecture(node, parameters=parameters)
    else:
        if parameters:
            f, line = doc.where("architecture")
            raise SpecError("--set needs a native architecture with `parameters:`", file=f,
                            line=line)
        arch, cons = timeloop.read_architecture(node, variables=read_variables(doc))
        for lv in arch.levels:
            cluster = lv.attributes.get("cluster_size", lv.attributes.get("cluster-size", 1))
            if str(cluster) not in ("1", "None"):
                doc.notes.append(f"note: {lv.name} has cluster_size {cluster}; dse does not "
                                 "model clusters, so its energy can differ from Timeloop's "
                                 "(see docs/timeloop.md)")
    base = arch.attributes.get("extends")
    if base:  # the file a variant extends is an input too: hash it for provenance
        import hashlib
        from pathlib import Path

        try:
            doc.hashes[str(base)] = hashlib.sha256(Path(base).read_bytes()).hexdigest()
        except OSError:
            pass
    ert = doc.data.get("ERT")
    if ert is not None:
        arch = timeloop.apply_ert(arch, timeloop.read_ert(ert, doc.data.file_of("ERT") or "ERT"))
    for key in ("ART", "ART_summary"):  # an ART wins over its summary (same numbers)
        art = doc.data.get(key)
        if art is not None:
            src = doc.data.file_of(key) or key
            arch = timeloop.apply_art(arch, timeloop.read_art(art, src, key), src)
            break
    from dse.energy.area import with_area

    return with_area(arch), cons


def read_variables(doc: Document) -> dict:
    """Timeloop v0.4 top-level `variables:`, evaluated (names attribute expressions may use)."""
    node = doc.data.get("variables")
    return timeloop.evaluate_variables(node) if node else {}


def read_problem(doc: Document) -> Problem:
    node = doc.data.get("problem", doc.data.get("workload"))
    if node is None and "network" in doc.data:
        f, line = doc.where("network")
        raise SpecError("this is a whole network; a mapping is evaluated for one layer",
                        file=f, line=line,
                        hint="export a layer with `dse workload export NAME --timeloop --out DIR`")
    if node is None:
        raise SpecError("no `problem:` (or `workload:`) section in the input files")
    if _is_native_problem(node):
        from dse.spec import native

        return native.read_problem(node)
    return timeloop.read_problem(node)


def read_mapping(doc: Document, arch: Architecture, problem: Problem,
                 constraints: dict) -> Mapping:
    node = doc.data.get("mapping")
    if node is None or node == []:
        raise SpecError("no mapping to evaluate: the `mapping:` section is missing or empty",
                        hint="pass a map.yaml, or use `dse map` to search for one")
    if _is_native_mapping(node):
        from dse.spec import native

        mapping = native.read_mapping(node, arch, problem, constraints)
    else:
        mapping = timeloop.read_mapping(node, arch, problem, constraints=constraints)
    file, line = doc.where("mapping")
    return replace(mapping, source=file, line=line)


def load_spec(paths, *, need_mapping: bool = True, parameters: dict | None = None,
              jinja_data: dict | None = None, allow_sparse: bool = False) -> Spec:
    """`jinja_data` fills Jinja2 templates among the files (Timeloop's `jinja_parse_data`).
    `allow_sparse`: the caller handles densities / sparse optimizations (`dse model`);
    otherwise they are refused (searches model dense designs only)."""
    from dse.spec import sparse

    doc = load_documents(list(paths), jinja_data=jinja_data)
    check_top_level(doc)
    if not allow_sparse:
        sparse.refuse_sparse_search(doc.data)
    problem = read_problem(doc)
    arch, cons = read_arch(doc, parameters)
    mapping = read_mapping(doc, arch, problem, cons) if need_mapping else None
    sp = sparse.read_sparse(doc.data, problem, arch) if sparse.has_sparse_inputs(doc.data) \
        else None
    return Spec(problem, arch, mapping, doc, cons, sparse=sp)


__all__ = ["Spec", "load_spec", "Node", "get", "where"]
