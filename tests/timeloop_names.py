"""A test-side checker of Timeloop's naming rules for mapping targets.

From Timeloop's source (NVlabs/timeloop): a directive's `target` must equal the name of one of
the architecture's storage levels (src/mapping/parser.cpp FindTargetStorageLevel; otherwise
"ERROR: target storage level not found"), or be a level index. A level's name is its `name:`
with any `[a..b]` range removed (config::parseName). In a v0.4 architecture the front end
(timeloopfe) makes every `!Container` with a spatial fan-out (meshX*meshY > 1) a storage level
named `inter_<Container>_spatial`; other containers make no level; the last `!Component` is the
arithmetic unit, not a storage level. In a v0.3 tree the storage levels are the `local:`
components other than the arithmetic unit (its class names a MAC, multiplier or adder).
"""

from __future__ import annotations

import re

import yaml


def _loader():
    class Loader(yaml.SafeLoader):
        pass

    def tagged(loader, suffix, node):
        data = loader.construct_mapping(node, deep=True)
        data["_tag"] = "!" + suffix
        return data

    Loader.add_multi_constructor("!", tagged)
    return Loader


def _strip_range(name: str) -> str:
    return re.sub(r"\[\s*\d+\s*\.\.\s*\d+\s*\]$", "", str(name).strip())


def _v04_levels(nodes: list, out: list) -> None:
    for node in nodes:
        tag = node.get("_tag", "!Component")
        if tag in ("!Parallel", "!Hierarchical", "!Pipelined"):
            _v04_levels(node.get("nodes", []), out)
        elif tag == "!Container":
            sp = node.get("spatial") or {}
            if int(sp.get("meshX", 1)) * int(sp.get("meshY", 1)) > 1:
                out.append(f"inter_{node['name']}_spatial")
        elif tag == "!Component":
            out.append(_strip_range(node["name"]))


def _v03_levels(subtree: list, out: list) -> None:
    for node in subtree:
        for local in node.get("local", []) or []:
            if not re.search(r"mac|compute|multiplier|adder", str(local.get("class", "")), re.I):
                out.append(_strip_range(local["name"]))
        _v03_levels(node.get("subtree", []) or [], out)


def storage_level_names(arch_text: str) -> list[str]:
    """Timeloop's storage level names for an architecture file (outermost first)."""
    arch = yaml.load(arch_text, Loader=_loader())["architecture"]
    names: list[str] = []
    if "nodes" in arch:
        _v04_levels(arch["nodes"], names)
        return names[:-1]  # the last component computes
    _v03_levels(arch["subtree"], names)
    return names


def unknown_targets(arch_text: str, map_text: str) -> list[str]:
    """Targets of the map that timeloop-model would stop at ("target storage level not found")."""
    names = set(storage_level_names(arch_text))
    directives = yaml.safe_load(map_text)["mapping"]
    return [str(d["target"]) for d in directives
            if not isinstance(d["target"], int) and d["target"] not in names]
