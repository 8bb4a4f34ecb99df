"""Readers for Timeloop's input formats: architecture (v0.3 tree and v0.4 node list), problem,
mapping directives and Accelergy ERT tables. They build dse's plain objects.

v0.4 spatial containers become zero-capacity levels named `inter_<Container>_spatial` that keep
nothing and only host spatial loops, as Timeloop's front end does; `!Parallel` children become
consecutive levels (first listed = outermost).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dse.arch import Architecture, ComputeLevel, Energy, StorageLevel
from dse.errors import SpecError, did_you_mean
from dse.mapping import LevelMapping, Mapping
from dse.spec.common import check_keys, get, has, number, require_list, require_mapping, where
from dse.spec.expr import ExpressionError, to_number
from dse.spec.yamlload import Node
from dse.workload import DataSpace, Problem

_RANGE = re.compile(r"^(?P<name>[^\[\]]+?)\s*\[\s*(?P<lo>\d+)\s*\.\.\s*(?P<hi>\d+)\s*\]$")



def split_range(name: str) -> tuple[str, int]:
    """'PE[0..167]' -> ('PE', 168); 'DRAM' -> ('DRAM', 1)."""
    m = _RANGE.match(str(name).strip())
    if not m:
        return str(name).strip(), 1
    return m.group("name"), int(m.group("hi")) - int(m.group("lo")) + 1


# ----------------------------------------------------------------------------- architecture


@dataclass
class _Component:
    name: str
    cls: str
    attrs: Node
    instances: int
    mesh_x: int | None
    mesh_y: int | None
    node: Node
    dummy: bool = False
    keep: list[str] | None = None
    bypass: list[str] | None = None


@dataclass
class ArchBuild:
    components: list[_Component] = field(default_factory=list)
    technology: str | None = None
    cycle_seconds: float | None = None


def _merged_attrs(inherited: dict, node: Node, path: str) -> Node:
    attrs = Node()
    attrs.update(inherited)
    own = get(node, "attributes")
    if own is not None:
        require_mapping(own, f"{path}.attributes", node, "attributes")
        attrs.update(own)
        attrs.key_lines.update(own.key_lines)
        attrs.key_files.update(own.key_files)
        attrs.file, attrs.line = own.file, own.line
    else:
        attrs.file, attrs.line = node.file, node.line
    return attrs


def _flatten_v3(nodes: list, mult: int, inherited: dict, build: ArchBuild, path: str) -> None:
    for idx, node in enumerate(nodes):
        p = f"{path}[{idx}]"
        require_mapping(node, p)
        name, count = split_range(get(node, "name", f"node{idx}"))
        attrs = _merged_attrs(inherited, node, p)
        for j, local in enumerate(require_list(get(node, "local", []) or [], f"{p}.local", node)):
            lp = f"{p}.local[{j}]"
            require_mapping(local, lp)
            lname, lcount = split_range(get(local, "name", f"local{j}"))
            lattrs = _merged_attrs(attrs, local, lp)
            instances = mult * count * lcount
            build.components.append(
                _Component(lname, str(get(local, "class", "")), lattrs, instances,
                           _opt_int(lattrs, "meshX", lp), _opt_int(lattrs, "meshY", lp), local,
                           dummy=str(get(local, "class", "")) == "dummy_storage")
            )
        sub = get(node, "subtree")
        if sub:
            _flatten_v3(require_list(sub, f"{p}.subtree", node), mult * count, attrs, build,
                        f"{p}.subtree")


def _opt_int(attrs: Node, key: str, path: str) -> int | None:
    if not has(attrs, key) or get(attrs, key) is None:
        return None
    return number(attrs, key, path + ".attributes", integer=True, positive=True)


def _flatten_v4(nodes: list, mesh: tuple[int, int], inherited: dict, build: ArchBuild,
                path: str) -> tuple[int, int]:
    for idx, node in enumerate(nodes):
        p = f"{path}[{idx}]"
        require_mapping(node, p)
        tag = node.get("_tag", "!Component")
        if tag == "!Nothing":
            continue
        if tag in ("!Parallel", "!Hierarchical", "!Pipelined"):
            sub = require_list(get(node, "nodes", []), f"{p}.nodes", node)
            mesh = _flatten_v4(sub, mesh, inherited, build, f"{p}.nodes")
            continue
        name = str(get(node, "name", f"node{idx}"))
        attrs = _merged_attrs(inherited, node, p)
        constraints = get(node, "constraints") or {}
        keep = bypass = None
        if isinstance(constraints, dict):
            ds = get(constraints, "dataspace") or {}
            if isinstance(ds, dict):
                keep, bypass = get(ds, "keep"), get(ds, "bypass")
        if tag == "!Container":
            spatial = get(node, "spatial") or {}
            mx = int(to_number(get(spatial, "meshX", 1))) if spatial else 1
            my = int(to_number(get(spatial, "meshY", 1))) if spatial else 1
            if mx * my > 1:
                build.components.append(
                    _Component(f"inter_{name}_spatial", "dummy_storage", Node(), mesh[0] * mesh[1],
                               mesh[0], mesh[1], node, dummy=True)
                )
                mesh = (mesh[0] * mx, mesh[1] * my)
            inherited = attrs
            continue
        if tag != "!Component":
            raise SpecError(f"unknown architecture node tag {tag}", key_path=p, **where(node),
                            hint=did_you_mean(tag, ["!Container", "!Component", "!Parallel"]))
        build.components.append(
            _Component(name, str(get(node, "class", "")), attrs, mesh[0] * mesh[1], mesh[0],
                       mesh[1], node, keep=keep, bypass=bypass)
        )
    return mesh


def _energy_from_attrs(attrs: Node, path: str) -> dict[str, Energy]:
    """Inline energies (pJ per vector access) given as attributes `energy: {read: ..}`."""
    out: dict[str, Energy] = {}
    e = get(attrs, "energy")
    if isinstance(e, dict):
        for action, value in e.items():
            try:
                out[str(action)] = Energy(float(to_number(value)), "spec:inline")
            except ExpressionError as exc:
                raise SpecError(str(exc), key_path=f"{path}.energy.{action}",
                                **where(e, action)) from None
    return out


def _storage(comp: _Component, path: str) -> StorageLevel:
    a = comp.attrs
    names = {k: v for k, v in a.items() if isinstance(v, (int, float))}
    is_dram = "DRAM" in comp.cls.upper() or str(get(a, "type", "")).upper().startswith("DRAM")
    p = path

    def num(*keys, integer=True):
        for k in keys:
            if has(a, k) and get(a, k) is not None:
                return number(a, k, p, names, integer=integer, positive=True)
        return None

    if comp.dummy:
        instances = comp.instances
        mx = comp.mesh_x or instances
        return StorageLevel(comp.name, instances, mx, max(1, instances // mx), depth=1, width=1,
                            datawidth=1, block_size=1, is_dummy=True, cls=comp.cls)
    datawidth = num("datawidth", "word_bits", "word_width")
    width = num("width", "memory_width", "data_storage_width")
    depth = num("depth", "memory_depth", "data_storage_depth", "entries")
    block = num("block_size", "n_words")
    if datawidth is None:
        raise SpecError(f"storage level {comp.name} needs a datawidth (bits per word)",
                        key_path=f"{p}.attributes.datawidth", **where(a))
    if width is None:
        width = datawidth * (block or 1)
    if block is None:
        if width % datawidth:
            raise SpecError(f"width {width} of {comp.name} is not a multiple of its datawidth "
                            f"{datawidth}", key_path=f"{p}.attributes.width", **where(a, "width"))
        block = width // datawidth
    if has(a, "sizeKB") and depth is None:
        depth = int(number(a, "sizeKB", p, names) * 1024 * 8 // width)
    if depth is None and not is_dram:
        raise SpecError(f"storage level {comp.name} needs a depth (rows)",
                        key_path=f"{p}.attributes.depth", **where(a))
    mx = comp.mesh_x or comp.instances
    my = comp.mesh_y or max(1, comp.instances // mx)

    def bw(key):
        if has(a, key) and get(a, key) is not None:
            return float(number(a, key, p, names, positive=True))
        return None

    mb = float(number(a, "multiple_buffering", p, names)) if has(a, "multiple_buffering") else 1.0
    return StorageLevel(
        comp.name, comp.instances, mx, my, depth=depth, width=width, datawidth=datawidth,
        block_size=block, is_dram=is_dram, multiple_buffering=mb or 1.0,
        read_bandwidth=bw("read_bandwidth"), write_bandwidth=bw("write_bandwidth"),
        shared_bandwidth=bw("shared_bandwidth"), energy=_energy_from_attrs(a, p), cls=comp.cls,
        attributes=dict(a),
    )


def read_architecture(node: Node, path: str = "architecture") -> tuple[Architecture, dict]:
    """Build an Architecture from Timeloop v0.3 (`subtree`) or v0.4 (`nodes`) YAML.

    Returns the architecture and per-level architectural keep/bypass constraints (v0.4).
    """
    require_mapping(node, path)
    build = ArchBuild()
    if has(node, "nodes"):
        _flatten_v4(require_list(get(node, "nodes"), f"{path}.nodes", node, "nodes"), (1, 1), {},
                    build, f"{path}.nodes")
    elif has(node, "subtree"):
        _flatten_v3(require_list(get(node, "subtree"), f"{path}.subtree", node, "subtree"), 1, {},
                    build, f"{path}.subtree")
    else:
        raise SpecError("an architecture needs `nodes:` (v0.4), `subtree:` (v0.3) or `levels:` "
                        "(dse native)", key_path=path, **where(node))
    comps = build.components
    if len(comps) < 2:
        raise SpecError("an architecture needs at least one storage level and a compute unit",
                        key_path=path, **where(node))
    compute_c = comps[-1]
    storages = []
    for c in comps[:-1]:
        storages.append(_storage(c, f"{path}.{c.name}"))
    names = [s.name for s in storages]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SpecError(f"level names must be unique; repeated: {', '.join(sorted(dupes))}",
                        key_path=path, **where(node))
    cattrs = compute_c.attrs
    cinst = compute_c.instances
    cmx = compute_c.mesh_x or cinst
    cpath = f"{path}.{compute_c.name}"
    # operand width: Accelergy's intmac names it multiplier_width; other classes datawidth
    cbits = _opt_int(cattrs, "multiplier_width", cpath) or _opt_int(cattrs, "datawidth", cpath)
    compute = ComputeLevel(compute_c.name, cinst, cmx, max(1, cinst // cmx),
                           energy=_energy_from_attrs(cattrs, cpath), cls=compute_c.cls,
                           datawidth=cbits)
    tech = None
    cycle = None
    for c in comps:
        t = get(c.attrs, "technology")
        if tech is None and t not in (None, -1, "-1"):
            tech = str(t)
        g = get(c.attrs, "global_cycle_seconds")
        if cycle is None and g is not None:
            try:
                cycle = float(to_number(g))
            except ExpressionError:
                pass
    arch = Architecture(
        name=str(get(node, "name", "architecture")), levels=tuple(storages), compute=compute,
        clock_hz=(1.0 / cycle) if cycle else None, technology=tech, source=node.file,
    )
    constraints = {c.name: (c.keep, c.bypass) for c in comps if c.keep or c.bypass}
    return arch, constraints


# ----------------------------------------------------------------------------- problem

CNN_LAYER = {
    "name": "CNN_Layer",
    "dimensions": ["C", "M", "R", "S", "N", "P", "Q"],
    "coefficients": [{"name": n, "default": 1}
                     for n in ("Wstride", "Hstride", "Wdilation", "Hdilation")],
    "data_spaces": [
        {"name": "Weights", "projection": [[["C"]], [["M"]], [["R"]], [["S"]]]},
        {"name": "Inputs", "projection": [[["N"]], [["C"]], [["R", "Wdilation"], ["P", "Wstride"]],
                                          [["S", "Hdilation"], ["Q", "Hstride"]]]},
        {"name": "Outputs", "projection": [[["N"]], [["M"]], [["Q"]], [["P"]]],
         "read_write": True},
    ],
}
BUILTIN_SHAPES = {"cnn-layer": CNN_LAYER, "cnn_layer": CNN_LAYER}
_TERM = re.compile(r"^\s*(?:(\w+)\s*\*\s*)?(\w+)\s*$")


def _parse_rank(rank, dims: list[str], coefs: dict[str, int], path: str, node) -> tuple:
    terms = []
    if isinstance(rank, str):
        pieces = [s for s in rank.split("+")]
        raw_terms = []
        for s in pieces:
            m = _TERM.match(s)
            if not m:
                raise SpecError(f"cannot read projection term '{s.strip()}'", key_path=path,
                                **where(node), expected="like 'P', 'Wstride*P'")
            a, b = m.group(1), m.group(2)
            raw_terms.append([b, a] if a else [b])
    else:
        raw_terms = rank if isinstance(rank, list) else [rank]
    for term in raw_terms:
        if isinstance(term, str):
            term = [term]
        if not isinstance(term, list) or not 1 <= len(term) <= 2:
            raise SpecError("a projection term is [dimension] or [dimension, coefficient]",
                            key_path=path, found=term, **where(node))
        names = [str(x) for x in term]
        dim = next((x for x in names if x in dims), None)
        if dim is None:
            raise SpecError(f"projection term {term} names no dimension of the problem",
                            key_path=path, expected="one of " + ", ".join(dims),
                            hint=did_you_mean(names[0], dims), **where(node))
        coef = 1
        for x in names:
            if x == dim:
                continue
            if x in coefs:
                coef = coefs[x]
            else:
                try:
                    coef = int(to_number(x))
                except ExpressionError:
                    raise SpecError(f"unknown coefficient '{x}'", key_path=path,
                                    hint=did_you_mean(x, coefs), **where(node)) from None
        terms.append((dim, coef))
    return tuple(terms)


def read_problem(node: Node, path: str = "problem") -> Problem:
    require_mapping(node, path)
    check_keys(node, {"version", "shape", "instance", "name"}, path)
    shape = get(node, "shape")
    if isinstance(shape, str):
        if shape not in BUILTIN_SHAPES:
            raise SpecError(f"unknown built-in problem shape '{shape}'", key_path=f"{path}.shape",
                            hint=did_you_mean(shape, BUILTIN_SHAPES), **where(node, "shape"))
        shape = Node(BUILTIN_SHAPES[shape])
        shape.file, shape.line = node.file, node.line_of("shape")
    if shape is None:
        raise SpecError("a problem needs a `shape:` (dimensions, data spaces)", key_path=path,
                        **where(node))
    require_mapping(shape, f"{path}.shape", node, "shape")
    check_keys(shape, {"name", "dimensions", "coefficients", "data_spaces"}, f"{path}.shape")
    dims = [str(d) for d in require_list(get(shape, "dimensions"), f"{path}.shape.dimensions",
                                         shape, "dimensions")]
    inst = get(node, "instance")
    if inst is None:
        raise SpecError("a problem needs an `instance:` with the bound of every dimension",
                        key_path=f"{path}.instance", **where(node))
    require_mapping(inst, f"{path}.instance", node, "instance")
    coefs: dict[str, int] = {}
    for c in get(shape, "coefficients") or []:
        cname = str(get(c, "name"))
        coefs[cname] = int(to_number(get(c, "default", 1)))
    bounds: dict[str, int] = {}
    allowed = set(dims) | set(coefs) | {"densities"}
    for key in inst:
        if str(key).startswith("_"):
            continue
        if key not in allowed:
            # Timeloop ignores extra instance keys (H, W, G...) only when they aren't shape dims
            continue
        if key == "densities":
            continue
        value = number(inst, key, f"{path}.instance", integer=True)
        if key in coefs:
            coefs[key] = value
        else:
            if value < 1:
                raise SpecError("a dimension bound must be at least 1",
                                key_path=f"{path}.instance.{key}", found=value,
                                **where(inst, key))
            bounds[key] = value
    missing = [d for d in dims if d not in bounds]
    if missing:
        raise SpecError(f"missing bound for dimension(s) {', '.join(missing)}",
                        key_path=f"{path}.instance", **where(node, "instance"),
                        hint="every dimension in shape.dimensions needs a value in instance")
    spaces = []
    for j, dsn in enumerate(require_list(get(shape, "data_spaces"), f"{path}.shape.data_spaces",
                                         shape, "data_spaces")):
        dp = f"{path}.shape.data_spaces[{j}]"
        require_mapping(dsn, dp)
        check_keys(dsn, {"name", "projection", "read_write"}, dp)
        proj = get(dsn, "projection")
        if isinstance(proj, str):
            proj = [proj]
        proj = require_list(proj, f"{dp}.projection", dsn, "projection")
        ranks = tuple(_parse_rank(r, dims, coefs, f"{dp}.projection", dsn) for r in proj)
        spaces.append(DataSpace(str(get(dsn, "name")), ranks, bool(get(dsn, "read_write", False))))
    return Problem(str(get(shape, "name", "problem")), tuple(dims), bounds, tuple(spaces),
                   coefs, source=node.file)


# ----------------------------------------------------------------------------- mapping

_FACTOR = re.compile(r"^([A-Za-z_]\w*?)\s*=?\s*(\d+)$")


def parse_factors(value, dims: tuple[str, ...], path: str, node) -> dict[str, int]:
    if value is None:
        return {}
    tokens: list[str] = []
    if isinstance(value, str):
        tokens = [t for t in re.split(r"[,\s]+", value.strip()) if t]
    elif isinstance(value, list):
        tokens = [str(t).strip() for t in value]
    elif isinstance(value, dict):
        tokens = [f"{k}={v}" for k, v in value.items() if not str(k).startswith("_")]
    else:
        raise SpecError("factors must be a string like 'C4 M2' or a list like [C=4, M=2]",
                        key_path=path, found=value, **where(node))
    out: dict[str, int] = {}
    for tok in tokens:
        tok = tok.replace(" ", "")
        m = _FACTOR.match(tok)
        if not m:
            raise SpecError(f"cannot read factor '{tok}'", key_path=path,
                            expected="DIM=N or DIMN, e.g. C=4 or C4", **where(node))
        d, n = m.group(1), int(m.group(2))
        if d not in dims:
            raise SpecError(f"factor for unknown dimension '{d}'", key_path=path,
                            expected="one of " + ", ".join(dims), hint=did_you_mean(d, dims),
                            **where(node))
        if n < 1:
            raise SpecError(f"factor {tok} must be at least 1 for a mapping", key_path=path,
                            **where(node))
        out[d] = n
    return out


def parse_permutation(value, dims: tuple[str, ...], path: str, node) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items = value.split() if " " in value.strip() or "," in value else list(value.strip())
        items = [i.strip(",") for i in items if i.strip(",")]
    elif isinstance(value, list):
        items = [str(v) for v in value]
    else:
        raise SpecError("permutation must be a string like 'PCM' or a list", key_path=path,
                        found=value, **where(node))
    for d in items:
        if d not in dims:
            raise SpecError(f"permutation names unknown dimension '{d}'", key_path=path,
                            expected="one of " + ", ".join(dims), hint=did_you_mean(d, dims),
                            **where(node))
    if len(set(items)) != len(items):
        raise SpecError("permutation repeats a dimension", key_path=path, found=value,
                        **where(node))
    return tuple(items)


def read_mapping(value, arch: Architecture, problem: Problem, path: str = "mapping",
                 constraints: dict | None = None) -> Mapping:
    """Timeloop mapping directives -> Mapping aligned with the architecture's levels."""
    if isinstance(value, dict) and "targets" in value:
        value = value["targets"]
    directives = require_list(value, path)
    names = list(arch.level_names())
    temporal: dict[str, tuple] = {}
    spatial: dict[str, tuple] = {}
    keep: dict[str, set[str] | None] = {}
    tensors = problem.tensor_names
    src = getattr(value, "file", None)
    for j, d in enumerate(directives):
        dp = f"{path}[{j}]"
        require_mapping(d, dp)
        check_keys(d, {"target", "type", "factors", "permutation", "split", "keep", "bypass",
                       "name", "no_reuse", "no_temporal_reuse", "no_multicast_no_reduction",
                       "no_link_transfer", "rmw_first_update", "no_coalesce", "min",
                       "proportion", "level"}, dp)
        target = str(get(d, "target", get(d, "level", "")))
        if target not in names and f"inter_{target}_spatial" in names:
            target = f"inter_{target}_spatial"
        m_inter = re.match(r"^inter_(.+)_spatial$", target)
        if target not in names and m_inter and m_inter.group(1) in names:
            target = m_inter.group(1)  # a Timeloop map file against a native fan-out level
        if target not in names:
            raise SpecError(f"mapping targets unknown level '{target}'", key_path=f"{dp}.target",
                            expected="one of " + ", ".join(names),
                            hint=did_you_mean(target, names), **where(d, "target"))
        kind = str(get(d, "type", "temporal"))
        if kind in ("temporal", "spatial"):
            factors = parse_factors(get(d, "factors"), problem.dims, f"{dp}.factors", d)
            perm = parse_permutation(get(d, "permutation"), problem.dims, f"{dp}.permutation", d)
            table = temporal if kind == "temporal" else spatial
            if target in table:
                raise SpecError(f"a second {kind} directive for level {target}",
                                key_path=dp, **where(d))
            split = None
            if kind == "spatial" and get(d, "split") is not None:
                split = number(d, "split", dp, integer=True)
            table[target] = (factors, perm, split)
        elif kind in ("bypass", "datatype", "dataspace"):
            k = get(d, "keep")
            b = get(d, "bypass")
            for lst, key in ((k, "keep"), (b, "bypass")):
                for tname in lst or []:
                    if tname not in tensors:
                        raise SpecError(f"unknown tensor '{tname}'", key_path=f"{dp}.{key}",
                                        expected="one of " + ", ".join(tensors),
                                        hint=did_you_mean(tname, tensors), **where(d, key))
            kept = set(tensors) if k is None else set(k)
            if b:
                kept -= set(b)
            keep[target] = kept
        elif kind in ("utilization", "parallelism", "max_overbooked_proportion", "skew"):
            continue
        else:
            raise SpecError(f"unknown directive type '{kind}'", key_path=f"{dp}.type",
                            expected="temporal, spatial, bypass, datatype or dataspace",
                            hint=did_you_mean(kind, ["temporal", "spatial", "bypass", "datatype"]),
                            **where(d, "type"))
    levels = []
    for name in names:
        tf, tp, _ = temporal.get(name, ({}, (), None))
        sf, sp, split = spatial.get(name, ({}, (), None))
        k = keep.get(name)
        if k is None and constraints and name in constraints:
            ck, cb = constraints[name]
            k = set(ck) if ck is not None else set(tensors)
            k -= set(cb or [])
        levels.append(LevelMapping(name, tf, tp, sf, sp, split,
                                   frozenset(k) if k is not None else None))
    return Mapping(tuple(levels), source=src)


# ----------------------------------------------------------------------------- ERT


def read_ert(node: Node, source: str, path: str = "ERT") -> dict[str, dict[str, Energy]]:
    """Accelergy energy reference table -> {component: {action: Energy}} (max over arguments)."""
    require_mapping(node, path)
    tables = require_list(get(node, "tables"), f"{path}.tables", node, "tables")
    out: dict[str, dict[str, Energy]] = {}
    for j, t in enumerate(tables):
        tp = f"{path}.tables[{j}]"
        require_mapping(t, tp)
        full = str(get(t, "name"))
        comp = split_range(full)[0].split(".")[-1]
        actions: dict[str, Energy] = {}
        for a in require_list(get(t, "actions", []), f"{tp}.actions", t, "actions"):
            aname = str(get(a, "name"))
            energy = float(to_number(get(a, "energy")))
            prev = actions.get(aname)
            if prev is None or energy > prev.pJ:
                actions[aname] = Energy(energy, f"ert:{source}")
        out[comp] = actions
    return out


COMPUTE_ALIASES = ("mac_random", "mult_random", "mac", "mult", "compute")


def apply_ert(arch: Architecture, ert: dict[str, dict[str, Energy]]) -> Architecture:
    """Energies from an ERT replace inline ones for the components it names."""
    from dataclasses import replace

    levels = []
    for lv in arch.levels:
        e = dict(lv.energy)
        for action, en in ert.get(lv.name, {}).items():
            e[action] = en
        levels.append(replace(lv, energy=e))
    ce = dict(arch.compute.energy)
    table = ert.get(arch.compute.name, {})
    for alias in COMPUTE_ALIASES:
        if alias in table:
            ce["compute"] = table[alias]
            break
    if "leak" in table:
        ce["leak"] = table["leak"]
    return replace(arch, levels=tuple(levels), compute=replace(arch.compute, energy=ce))



# ----------------------------------------------------------------------------- ART


def read_art(node: Node, source: str, path: str = "ART") -> dict[str, float]:
    """Accelergy area reference table (`ART: {tables: [{name, area}]}` or an ART_summary's
    `table_summary:`) -> {component: um^2 per instance}."""
    require_mapping(node, path)
    key = "tables" if has(node, "tables") or not has(node, "table_summary") else "table_summary"
    tables = require_list(get(node, key), f"{path}.{key}", node, key)
    out: dict[str, float] = {}
    for j, t in enumerate(tables):
        tp = f"{path}.{key}[{j}]"
        require_mapping(t, tp)
        if not has(t, "area"):
            raise SpecError("an ART entry needs `area:` (um^2 per instance)", key_path=tp,
                            **where(t))
        comp = split_range(str(get(t, "name")))[0].split(".")[-1]
        out[comp] = float(to_number(get(t, "area")))
    return out


def apply_art(arch: Architecture, art: dict[str, float], source: str) -> Architecture:
    """Areas from an ART for the components it names (per instance); the others are estimated
    from the tables later (dse/energy/area.py), and their source says so."""
    from dataclasses import replace

    src = f"art:{source}"
    levels = tuple(replace(lv, area_um2=art[lv.name], area_source=src) if lv.name in art else lv
                   for lv in arch.levels)
    comp = arch.compute
    if comp.name in art:
        comp = replace(comp, area_um2=art[comp.name], area_source=src)
    return replace(arch, levels=levels, compute=comp)
