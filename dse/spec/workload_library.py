"""The workload library: resolve NAME -> workloads/NAME.yaml, list it, and load any workload file.

A workload file is either a network (`network:`, see `dse.workload.network`) or a single layer
(`problem:` in Timeloop's format or dse's native one); a single layer loads as a one-layer
network, so every command can take either. Extra library folders can be given in the
environment variable DSE_WORKLOADS (separated like PATH); they are searched first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dse.errors import SpecError, did_you_mean
from dse.spec.library_paths import bundled_dir
from dse.spec.network import dump_network, load_network_text
from dse.workload.network import Network
from dse.workload.problem import Problem

REPO_WORKLOADS = bundled_dir("workloads")  # the library folder (checkout or installed)


def library_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("DSE_WORKLOADS", "").split(os.pathsep) if p]
    return [d for d in extra + [REPO_WORKLOADS] if d.is_dir()]


@dataclass(frozen=True)
class Entry:
    name: str
    path: Path
    kind: str  # "network" or "problem"


def _kind(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("network:"):
                    return "network"
                if line.startswith("problem:") or line.startswith("workload:"):
                    return "problem"
    except (OSError, UnicodeDecodeError):
        pass
    return "other"


def list_workloads() -> list[Entry]:
    """Every YAML file of the library folders (first folder wins for a repeated name)."""
    seen: dict[str, Entry] = {}
    for d in library_dirs():
        for p in sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml")):
            if p.stem not in seen:
                kind = _kind(p)
                if kind != "other":
                    seen[p.stem] = Entry(p.stem, p, kind)
    return sorted(seen.values(), key=lambda e: e.name)


def resolve(ref: str | Path) -> Path:
    """A file path as given, else a library name; unknown names get a did-you-mean."""
    p = Path(ref)
    if p.is_file():
        return p
    if p.suffix in (".yaml", ".yml") or os.sep in str(ref):
        raise SpecError("file not found", file=str(ref))
    entries = {e.name: e for e in list_workloads()}
    if str(ref) in entries:
        return entries[str(ref)].path
    raise SpecError(f"no workload named '{ref}' in the library (and no such file)",
                    hint=did_you_mean(str(ref), entries) or "see `dse workload list`")


def load_workload(ref: str | Path) -> Network:
    """Load a network file, or a single-layer problem file as a one-layer network."""
    from dse.spec.yamlload import load_yaml_text, read_spec_text

    path = resolve(ref)
    doc = load_yaml_text(read_spec_text(path), str(path))
    if isinstance(doc, dict) and "network" not in doc and (
            "problem" in doc or "workload" in doc):
        problem = read_any_problem(doc, str(path))
        return load_network_text(
            network_text_from_problems([problem], path.stem, f"problem file {path}"),
            str(path))
    if doc is None:
        raise SpecError("the file is empty", file=str(path), line=1)
    from dse.spec.network import parse_network

    return parse_network(doc, str(path))


def read_any_problem(doc: dict, file: str) -> Problem:
    """The `problem:` (or `workload:`) of a loaded YAML mapping, Timeloop or native format."""
    from dse.spec.common import require_mapping

    key = "problem" if "problem" in doc else "workload"
    node = require_mapping(doc[key], key, doc, key)
    if any(k in node for k in ("tensors", "dims", "type")):
        from dse.spec import native

        return native.read_problem(node, key)
    from dse.spec import timeloop

    return timeloop.read_problem(node, key)


def load_problem_file(path: str | Path) -> Problem:
    from dse.spec.yamlload import load_yaml_text, read_spec_text

    p = Path(path)
    doc = load_yaml_text(read_spec_text(p), str(p))
    if not isinstance(doc, dict) or not ("problem" in doc or "workload" in doc):
        raise SpecError("expected a problem file (a top-level `problem:` key)", file=str(p),
                        line=1)
    return read_any_problem(doc, str(p))


def problem_layer(problem: Problem, name: str, input_name: str) -> tuple[dict, dict]:
    """(network input, layer entry) for a conv2d- or matmul-shaped problem."""
    from dse.workload import layers as L

    conv = L.as_conv2d(problem)
    if conv is not None:
        ws, hs = conv["stride"]
        wd, hd = conv["dilation"]
        H = (conv["P"] - 1) * ws + wd * (conv["R"] - 1) + 1
        W = (conv["Q"] - 1) * hs + hd * (conv["S"] - 1) + 1
        C, K, groups = conv["C"], conv["K"], conv["groups"]
        typ = "depthwise" if groups == C and groups > 1 else "conv2d"
        entry: dict = {"name": name, "type": typ, "C": C, "K": K, "H": H, "W": W,
                       "R": conv["R"], "S": conv["S"], "P": conv["P"], "Q": conv["Q"],
                       "stride": list(conv["stride"]), "dilation": list(conv["dilation"]),
                       "groups": groups, "N": conv["N"]}
        for key, other in (("W", "H"), ("S", "R"), ("Q", "P")):
            if entry[key] == entry[other]:
                del entry[key]
        for key in ("stride", "dilation"):
            a, b = entry[key]
            entry[key] = a if a == b else [a, b]
        for key, default in (("stride", 1), ("dilation", 1), ("groups", 1), ("N", 1)):
            if entry[key] == default or (key == "groups" and typ == "depthwise"):
                del entry[key]
        if typ == "depthwise" and K == C:
            del entry["K"]
        entry["bias"] = False
        entry["inputs"] = [input_name]
        return {"name": input_name, "C": C, "H": H, "W": W}, entry
    mm = _as_matmul(problem)
    if mm is not None:
        entry = {"name": name, "type": "matmul", "M": mm["M"], "K": mm["K"], "N": mm["N"]}
        if mm["G"] != 1:
            entry["G"] = mm["G"]
        entry["inputs"] = [input_name]
        return {"name": input_name, "C": mm["K"], "H": mm["M"], "W": mm["G"]}, entry
    raise SpecError(f"problem '{problem.name}' (dimensions {' '.join(problem.dims)}) is neither "
                    "conv2d- nor matmul-shaped, so it cannot become a network layer",
                    file=problem.source,
                    hint="evaluate it on its own with `dse model`")


def _as_matmul(problem: Problem) -> dict | None:
    from dse.workload import layers as L

    dims = set(problem.dims)
    if dims not in ({"M", "N", "K"}, {"G", "M", "N", "K"}):
        return None
    b = problem.bounds
    rebuilt = L.matmul("", M=b["M"], N=b["N"], K=b["K"], G=b.get("G", 1))
    if L.strip(rebuilt).data_spaces != L.strip(problem).data_spaces:
        return None
    return {"M": b["M"], "N": b["N"], "K": b["K"], "G": b.get("G", 1)}


def network_text_from_problems(problems: list[Problem], name: str, source: str,
                               names: list[str] | None = None) -> str:
    """Network YAML with one layer per problem, each reading its own network input."""
    inputs, entries = [], []
    used: set[str] = set()
    for i, prob in enumerate(problems):
        lname = (names[i] if names else prob.name) or f"layer{i}"
        base, k = lname, 2
        while lname in used:
            lname, k = f"{base}_{k}", k + 1
        used.add(lname)
        inp, entry = problem_layer(prob, lname, f"{lname}.in")
        inputs.append(inp)
        entries.append(entry)
    spec = {"name": name, "source": source, "inputs": inputs, "layers": entries}
    return dump_network(spec, [f"Imported from Timeloop/native problem files: {source}."])
