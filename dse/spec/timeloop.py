"""Readers for Timeloop's input formats: architecture (v0.3 tree and v0.4 node list), problem,
mapping directives and Accelergy ERT tables. They build dse's plain objects.

v0.4 spatial containers become zero-capacity levels named `inter_<Container>_spatial` that keep
nothing and only host spatial loops, as Timeloop's front end does; `!Parallel` children become
consecutive levels (first listed = outermost).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from dse.arch.architecture import Architecture, ComputeLevel, Energy, StorageLevel
from dse.errors import SpecError, did_you_mean
from dse.mapping import LevelMapping, Mapping
from dse.spec.common import (
    check_keys,
    get,
    has,
    norm_key,
    number,
    require_list,
    require_mapping,
    where,
)
from dse.spec.expr import ExpressionError, to_number
from dse.spec.yamlload import Node
from dse.workload.problem import DataSpace, Problem

_RANGE = re.compile(r"^(?P<name>[^\[\]]+?)\s*\[\s*(?P<lo>\d+)\s*\.\.\s*(?P<hi>\d+)\s*\]$")



# Timeloop's word size when a storage level names none (model/buffer.hpp kDefaultWordBits)
DEFAULT_WORD_BITS = 16


def split_range(name: str) -> tuple[str, int]:
    """'PE[0..167]' -> ('PE', 168); 'DRAM' -> ('DRAM', 1)."""
    m = _RANGE.match(str(name).strip())
    if not m:
        return str(name).strip(), 1
    return m.group("name"), int(m.group("hi")) - int(m.group("lo")) + 1


# ----------------------------------------------------------------------------- accepted keys
# Every key of a Timeloop input is honoured, accepted-but-not-modelled (listed here, and in the
# table of docs/formats.md), or refused. Attribute keys are open-ended in Timeloop (Accelergy
# reads any), so an unknown attribute is refused only when it looks like a misspelt known one.

V4_ARCH_KEYS = {"version", "nodes", "name", "energy_model"}
V3_ARCH_KEYS = {"version", "subtree", "name", "energy_model"}
V3_NODE_KEYS = {"name", "attributes", "local", "subtree"}
V3_LOCAL_KEYS = {"name", "class", "subclass", "attributes", "enabled", "required_actions",
                 "area_share"}
V4_COMPONENT_KEYS = {"name", "class", "subclass", "attributes", "spatial", "constraints",
                     "sparse_optimizations", "required_actions", "area_share", "enabled"}
V4_CONTAINER_KEYS = {"name", "attributes", "spatial", "constraints", "sparse_optimizations",
                     "networks"}
V4_BRANCH_KEYS = {"nodes"}
NODE_CONSTRAINT_KEYS = {"spatial", "temporal", "dataspace", "utilization",
                        "max_overbooked_proportion"}
# Attributes dse's model reads (hyphenated spellings are accepted too).
MODELLED_ATTRIBUTES = {
    "datawidth", "word_bits", "word_width", "width", "memory_width", "data_storage_width",
    "depth", "memory_depth", "data_storage_depth", "entries", "sizeKB", "block_size", "n_words",
    "cluster_size", "read_bandwidth", "write_bandwidth", "shared_bandwidth",
    "multiple_buffering", "meshX", "meshY", "instances", "energy", "type", "technology",
    "global_cycle_seconds",
}
# Attributes Timeloop or Accelergy read that do not change dse's numbers (energies come from
# the ERT or inline `energy:`; these describe the circuit the energies were estimated for).
IGNORED_ATTRIBUTES = {
    "version", "n_banks", "num_banks", "n_rdwr_ports", "n_rd_ports", "n_wr_ports", "num_ports",
    "reduction_supported", "has_power_gating", "power_gated_at", "latency", "n_rw_ports",
    "update_fifo_depth", "multiplier_width", "adder_width", "network_fill_latency",
    "network_drain_latency", "area_share", "cycle_time", "resolution", "vdd", "voltage",
    # sparse-capable hardware: read by the sparse model (dse.model.sparse) from `attributes`
    "metadata_datawidth", "metadata_storage_width", "metadata_storage_depth",
    "decompression_supported", "compression_supported",
    # read by Sparseloop but without effect on its numbers: the block size scales only its
    # unused `md_size` (capacity checks use depth x width bits, as dse does), and concordant
    # traversal is parsed and never used (timeloop src/model/buffer.cpp)
    "metadata_block_size", "concordant_compressed_tile_traversal",
}
# Attributes whose non-default values change the result in ways dse does not model yet.
UNMODELLED_ATTRIBUTES = {
    "allow_overbooking": (False, "overbooking (a Sparseloop feature)"),
    "min_utilization": (0, "a minimum buffer utilization for the mapper"),
    "per_dataspace_bandwidth_consumption_scale": ({}, "per-tensor bandwidth scaling"),
    # Sparseloop asserts it false: online tile partitioning is not implemented there either
    "tile_partition_supported": (False, "online tile partitioning"),
}
KNOWN_ATTRIBUTES = MODELLED_ATTRIBUTES | IGNORED_ATTRIBUTES | set(UNMODELLED_ATTRIBUTES)
CHECKED_ATTRIBUTES = MODELLED_ATTRIBUTES | set(UNMODELLED_ATTRIBUTES)


def not_modelled(what: str, node, key: str, path: str, hint: str | None = None) -> SpecError:
    """The error for a valid Timeloop/Sparseloop key whose meaning dse does not model yet."""
    return SpecError(f"'{key}' ({what}) is not modelled yet",
                     key_path=f"{path}.{key}" if path else key,
                     hint=hint or "remove it to evaluate the dense design, or use Timeloop/"
                     "Sparseloop for this input", **where(node, key))


def refuse_sparse(node, key: str, path: str) -> None:
    """Sparse keys dse does not read (on architecture nodes, in native files): refused.
    Sparseloop's top-level `sparse_optimizations` and `densities` are read by dse.spec.sparse."""
    value = node.get(key) if isinstance(node, dict) else None
    if value in (None, {}, []):
        return
    raise not_modelled("sparsity given here", node, key, path,
                       hint="`dse model` reads Sparseloop's top-level form (`sparse_optimizations:"
                       " {targets: [{name: LEVEL, ...}]}`, `problem.instance.densities`); see "
                       "docs/sparse.md")


def check_attributes(attrs: Node, path: str) -> None:
    """Refuse misspelt attributes (did-you-mean) and non-default values of unmodelled ones."""
    known = {norm_key(k) for k in KNOWN_ATTRIBUTES}
    for key in attrs:
        k = norm_key(key)
        if k.startswith("_"):
            continue
        if k in UNMODELLED_ATTRIBUTES:
            default, what = UNMODELLED_ATTRIBUTES[k]
            value = attrs[key]
            if value != default and not (default in (0, False) and value in (0, False, None)):
                raise not_modelled(what, attrs, key, f"{path}.attributes")
            continue
        if k in known:
            continue
        # only a near-miss of an attribute that changes the numbers is an error: any other
        # key may be an estimator's own attribute (Accelergy reads attributes freely)
        close = [c for c in difflib.get_close_matches(k, sorted(CHECKED_ATTRIBUTES), n=3,
                                                      cutoff=0.8) if abs(len(c) - len(k)) <= 2]
        if close:
            raise SpecError(f"unknown attribute '{key}'", key_path=f"{path}.attributes.{key}",
                            hint=f"did you mean '{close[0]}'?", **where(attrs, key),
                            expected="an attribute listed in docs/formats.md (other keys pass "
                            "to estimators, unless they are a near-miss of a modelled one)")


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
    # constraint targets from v0.4 nodes' `constraints:` (temporal/spatial/utilization)
    node_constraints: list = field(default_factory=list)


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


def _check_enabled(node: Node, path: str) -> None:
    if get(node, "enabled", True) is not True:
        raise not_modelled("a disabled component", node, "enabled", path,
                           hint="remove the component from the file instead")


def _flatten_v3(nodes: list, mult: int, inherited: dict, build: ArchBuild, path: str) -> None:
    for idx, node in enumerate(nodes):
        p = f"{path}[{idx}]"
        require_mapping(node, p)
        check_keys(node, V3_NODE_KEYS, p)
        name, count = split_range(get(node, "name", f"node{idx}"))
        attrs = _merged_attrs(inherited, node, p)
        for j, local in enumerate(require_list(get(node, "local", []) or [], f"{p}.local", node)):
            lp = f"{p}.local[{j}]"
            require_mapping(local, lp)
            check_keys(local, V3_LOCAL_KEYS, lp)
            _check_enabled(local, lp)
            lname, lcount = split_range(get(local, "name", f"local{j}"))
            lattrs = _merged_attrs(attrs, local, lp)
            check_attributes(lattrs, lp)
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


def _mesh_of(node: Node, path: str) -> tuple[int, int]:
    spatial = get(node, "spatial")
    if not spatial:
        return 1, 1
    require_mapping(spatial, f"{path}.spatial", node, "spatial")
    check_keys(spatial, {"meshX", "meshY"}, f"{path}.spatial")
    mx = number(spatial, "meshX", f"{path}.spatial", integer=True, positive=True) \
        if has(spatial, "meshX") else 1
    my = number(spatial, "meshY", f"{path}.spatial", integer=True, positive=True) \
        if has(spatial, "meshY") else 1
    return mx, my


def _node_constraints(node: Node, target: str, path: str, container: bool,
                      build: ArchBuild) -> tuple[list | None, list | None]:
    """A v0.4 node's `constraints:` -> mapspace constraint targets for its level (kept in
    `build.node_constraints`, read by the mapper like a constraints file) and its keep/bypass."""
    cons = get(node, "constraints")
    if cons is None or cons == {}:
        return None, None
    cp = f"{path}.constraints"
    require_mapping(cons, cp, node, "constraints")
    check_keys(cons, NODE_CONSTRAINT_KEYS, cp)
    keep = bypass = None
    for kind in ("temporal", "spatial", "utilization", "max_overbooked_proportion"):
        body = get(cons, kind)
        if body is None:
            continue
        if kind == "max_overbooked_proportion":
            raise not_modelled("overbooking, a Sparseloop feature", cons, kind, cp)
        require_mapping(body, f"{cp}.{kind}", cons, kind)
        if container and kind == "temporal":
            raise SpecError("a !Container holds no data, so it has no temporal loops to "
                            "constrain", key_path=f"{cp}.temporal", **where(cons, kind),
                            hint="put temporal constraints on a !Component")
        target_node = Node(body)
        target_node.file, target_node.line = body.file, body.line
        target_node.key_lines.update(body.key_lines)
        target_node.key_files.update(body.key_files)
        for k, v in (("target", target), ("type", kind)):
            if k in body:
                raise SpecError(f"'{k}' is implied by the node a constraint sits on",
                                key_path=f"{cp}.{kind}.{k}", **where(body, k))
            target_node[k] = v
        target_node["_path"] = f"{cp}.{kind}"  # for error messages (keys with _ are skipped)
        build.node_constraints.append(target_node)
    ds = get(cons, "dataspace")
    if ds is not None:
        dp = f"{cp}.dataspace"
        require_mapping(ds, dp, cons, "dataspace")
        check_keys(ds, {"keep", "bypass", "no_coalesce"}, dp)
        if get(ds, "no_coalesce"):
            raise not_modelled("uncoalesced accesses", ds, "no_coalesce", dp)
        keep, bypass = get(ds, "keep"), get(ds, "bypass")
        for key, lst in (("keep", keep), ("bypass", bypass)):
            if lst is not None:
                require_list(lst, f"{dp}.{key}", ds, key)
        if container and keep:
            raise SpecError("a !Container holds no data: it cannot keep a tensor",
                            key_path=f"{dp}.keep", **where(ds, "keep"))
    return keep, bypass


def _flatten_v4(nodes: list, mesh: tuple[int, int], inherited: dict, build: ArchBuild,
                path: str) -> tuple[int, int]:
    for idx, node in enumerate(nodes):
        p = f"{path}[{idx}]"
        require_mapping(node, p)
        tag = node.get("_tag", "!Component")
        if tag == "!Nothing":
            continue
        if tag in ("!Parallel", "!Hierarchical", "!Pipelined"):
            check_keys(node, V4_BRANCH_KEYS, p)
            sub = require_list(get(node, "nodes", []), f"{p}.nodes", node)
            mesh = _flatten_v4(sub, mesh, inherited, build, f"{p}.nodes")
            continue
        if tag not in ("!Container", "!Component"):
            raise SpecError(f"unknown architecture node tag {tag}", key_path=p, **where(node),
                            hint=did_you_mean(tag, ["!Container", "!Component", "!Parallel"]))
        name = str(get(node, "name", f"node{idx}"))
        p = f"{p}({name})"
        check_keys(node, V4_CONTAINER_KEYS if tag == "!Container" else V4_COMPONENT_KEYS, p)
        refuse_sparse(node, "sparse_optimizations", p)
        attrs = _merged_attrs(inherited, node, p)
        mx, my = _mesh_of(node, p)
        if tag == "!Container":
            if get(node, "networks"):
                raise not_modelled("explicit networks", node, "networks", p)
            if mx * my > 1:
                level = f"inter_{name}_spatial"
                build.components.append(
                    _Component(level, "dummy_storage", Node(), mesh[0] * mesh[1],
                               mesh[0], mesh[1], node, dummy=True)
                )
                _node_constraints(node, level, p, True, build)
                mesh = (mesh[0] * mx, mesh[1] * my)
            elif get(node, "constraints"):
                raise SpecError(f"container {name} has no spatial fan-out (meshX*meshY = 1), "
                                "so there is no level for its constraints", key_path=f"{p}."
                                "constraints", **where(node, "constraints"),
                                hint="give it `spatial: {meshX: N}` or move the constraints")
            check_attributes(attrs, p)
            inherited = attrs
            continue
        _check_enabled(node, p)
        if mx * my > 1:
            raise SpecError(f"component {name} has its own `spatial:` fan-out, which dse does "
                            "not model", key_path=f"{p}.spatial", **where(node, "spatial"),
                            hint="put the fan-out on a !Container around it")
        check_attributes(attrs, p)
        for key, value in (("meshX", mesh[0]), ("meshY", mesh[1])):
            given = _opt_int(attrs, key, p)
            if given is not None and given != value:
                raise SpecError(f"{name} says {key}: {given}, but its containers give it "
                                f"{value}", key_path=f"{p}.attributes.{key}",
                                **where(attrs, key), hint="in v0.4 the mesh comes from the "
                                "containers' `spatial:`; remove the attribute")
        keep, bypass = _node_constraints(node, name, p, False, build)
        build.components.append(
            _Component(name, str(get(node, "class", "")), attrs, mesh[0] * mesh[1], mesh[0],
                       mesh[1], node, keep=keep, bypass=bypass)
        )
    return mesh


def _energy_from_attrs(attrs: Node, path: str, actions: set[str]) -> dict[str, Energy]:
    """Inline energies (pJ per vector access) given as attributes `energy: {read: ..}`."""
    out: dict[str, Energy] = {}
    e = get(attrs, "energy")
    if e is not None:
        require_mapping(e, f"{path}.attributes.energy", attrs, "energy")
        check_keys(e, actions, f"{path}.attributes.energy")
        for action in e:
            out[str(action)] = Energy(float(number(e, action, f"{path}.energy")),
                                      "spec:inline")
    return out


def _storage(comp: _Component, path: str) -> StorageLevel:
    a = comp.attrs
    names = {k: v for k, v in a.items() if isinstance(v, (int, float))}
    is_dram = "DRAM" in comp.cls.upper() or str(get(a, "type", "")).upper().startswith("DRAM")
    p = path

    def num(*keys, integer=True, positive=True):
        for k in keys:
            if has(a, k) and get(a, k) is not None:
                value = number(a, k, p, names, integer=integer, positive=positive)
                if value < 0:
                    raise SpecError("expected a number >= 0", key_path=f"{p}.{k}",
                                    found=get(a, k), **where(a, k))
                return value
        return None

    if comp.dummy:
        instances = comp.instances
        mx = comp.mesh_x or instances
        return StorageLevel(comp.name, instances, mx, max(1, instances // mx), depth=1, width=1,
                            datawidth=1, block_size=1, is_dummy=True, cls=comp.cls)
    datawidth = num("datawidth", "word_bits", "word_width")
    width = num("width", "memory_width", "data_storage_width")
    # depth 0 is legal: v0.3 trees use zero-capacity buffers (DummyBuffer) to host fan-outs
    depth = num("depth", "memory_depth", "data_storage_depth", "entries", positive=False)
    block = num("block_size", "n_words")
    if datawidth is None:
        datawidth = DEFAULT_WORD_BITS
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
    cluster = num("cluster_size") or 1
    if comp.instances % cluster:
        raise SpecError(f"cluster_size {cluster} of {comp.name} does not divide its "
                        f"{comp.instances} instances", key_path=f"{p}.attributes.cluster_size",
                        **where(a, "cluster_size"))
    _check_instances(comp, p)
    return StorageLevel(
        comp.name, comp.instances, mx, my, depth=depth, width=width, datawidth=datawidth,
        block_size=block, is_dram=is_dram, multiple_buffering=mb or 1.0,
        read_bandwidth=bw("read_bandwidth"), write_bandwidth=bw("write_bandwidth"),
        shared_bandwidth=bw("shared_bandwidth"),
        energy=_energy_from_attrs(a, p, {"read", "write", "update", "leak"}), cls=comp.cls,
        attributes=dict(a), cluster_size=cluster,
    )


def _check_instances(comp: _Component, path: str) -> None:
    """An `instances:` attribute must agree with the count the tree gives (Timeloop asserts)."""
    if has(comp.attrs, "instances") and get(comp.attrs, "instances") is not None:
        n = number(comp.attrs, "instances", f"{path}.attributes", integer=True, positive=True)
        if n != comp.instances:
            raise SpecError(f"{comp.name} says instances: {n}, but the architecture tree gives "
                            f"it {comp.instances}", key_path=f"{path}.attributes.instances",
                            **where(comp.attrs, "instances"))


def read_architecture(node: Node, path: str = "architecture",
                      variables: dict | None = None) -> tuple[Architecture, dict]:
    """Build an Architecture from Timeloop v0.3 (`subtree`) or v0.4 (`nodes`) YAML.

    `variables` (v0.4 top-level `variables:`, already evaluated) are names that attribute
    expressions may use. Returns the architecture and per-level architectural keep/bypass
    constraints (v0.4).
    """
    require_mapping(node, path)
    check_keys(node, V4_ARCH_KEYS if has(node, "nodes") else V3_ARCH_KEYS, path)
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
    comps = build.components if has(node, "nodes") else _compute_last(build.components)
    for c in comps:
        resolve_attributes(c.attrs, variables or {})
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
    _check_instances(compute_c, cpath)
    # operand width: Accelergy's intmac names it multiplier_width; other classes datawidth
    cbits = _opt_int(cattrs, "multiplier_width", cpath) or _opt_int(cattrs, "datawidth", cpath)
    compute = ComputeLevel(compute_c.name, cinst, cmx, max(1, cinst // cmx),
                           energy=_energy_from_attrs(cattrs, cpath, {"compute", "leak"}),
                           cls=compute_c.cls, datawidth=cbits)
    tech = None
    cycle = None
    for c in comps:
        t = get(c.attrs, "technology")
        if tech is None and t not in (None, -1, "-1"):
            tech = str(t)
        g = get(c.attrs, "global_cycle_seconds")
        if cycle is None and g is not None:
            gp = f"{c.name}.attributes.global_cycle_seconds"
            try:
                cycle = float(to_number(g, variables or {}))
            except ExpressionError as exc:
                raise SpecError(str(exc), key_path=gp,
                                **where(c.attrs, "global_cycle_seconds")) from None
            if not cycle > 0:
                raise SpecError("a cycle time must be positive", key_path=gp, found=g,
                                **where(c.attrs, "global_cycle_seconds"))
    for key, value in (variables or {}).items():
        if key == "technology" and tech is None:
            tech = str(value)
        if key == "global_cycle_seconds" and cycle is None and isinstance(value, (int, float)):
            cycle = float(value)
    attributes: dict = {}
    if build.node_constraints:
        attributes["node_constraints"] = list(build.node_constraints)
    arch = Architecture(
        name=str(get(node, "name", "architecture")), levels=tuple(storages), compute=compute,
        clock_hz=(1.0 / cycle) if cycle else None, technology=tech, source=node.file,
        attributes=attributes,
    )
    if get(node, "energy_model") is not None:
        arch = _apply_energy_model(arch, node, path)
    constraints = {c.name: (c.keep, c.bypass) for c in comps if c.keep or c.bypass}
    return arch, constraints


def _is_compute(c: _Component) -> bool:
    cls = c.cls.lower()
    return any(k in cls for k in ("mac", "compute", "multiplier")) and not c.dummy


def _compute_last(comps: list[_Component]) -> list[_Component]:
    """v0.3 trees may list the compute unit anywhere in the innermost `local:` list (Timeloop
    takes the arithmetic unit from the innermost subtree whatever its position); move it last."""
    if not comps or _is_compute(comps[-1]):
        return comps
    innermost = [c for c in comps if c.instances == comps[-1].instances]
    compute = [c for c in innermost if _is_compute(c)]
    if len(compute) != 1:
        return comps
    return [c for c in comps if c is not compute[0]] + compute


def evaluate_variables(node: Node, path: str = "variables") -> dict:
    """v0.4 top-level `variables:` in order; a value may use the ones before it. Text that is
    not an expression (e.g. "45nm") stays text."""
    require_mapping(node, path)
    out: dict = {}
    for key, value in node.items():
        if str(key).startswith("_") or key == "version":
            continue
        if isinstance(value, str):
            try:
                value = to_number(value, out)
            except ExpressionError as exc:
                if _looks_like_expression(value, out):
                    raise SpecError(str(exc), key_path=f"{path}.{key}",
                                    **where(node, key)) from None
        out[str(key)] = value
    return out


def _looks_like_expression(text: str, names: dict) -> bool:
    """True when `text` names a known variable (so a failed evaluation is a real error)."""
    return any(re.search(rf"\b{re.escape(n)}\b", text) for n in names)


def resolve_attributes(attrs: Node, variables: dict) -> None:
    """Evaluate attribute expressions in place (`datawidth: DATAWIDTH`, `width: datawidth * 3`):
    names are the variables and the component's other attributes. Text that is no expression
    (a class, a technology like "45nm") is left as written."""
    pending = {k: v for k, v in attrs.items() if isinstance(v, str) and not k.startswith("_")}
    for _ in range(len(pending) + 1):
        progress = False
        names = {**variables, **{k: v for k, v in attrs.items() if isinstance(v, (int, float))
                                 and not isinstance(v, bool)}}
        for key in list(pending):
            try:
                attrs[key] = to_number(pending[key], names)
            except ExpressionError:
                continue
            del pending[key]
            progress = True
        if not progress:
            break
def _apply_energy_model(arch: Architecture, node: Node, path: str) -> Architecture:
    """`energy_model:` fills the energies the file does not give, as in a native architecture
    (an ERT passed alongside still replaces them for the components it names)."""
    from dataclasses import replace

    from dse.energy import MODELS, estimate
    from dse.energy.tables import parse_technology

    model = get(node, "energy_model")
    if model not in MODELS:
        raise SpecError(f"unknown energy model {model!r}", key_path=f"{path}.energy_model",
                        expected="one of " + ", ".join(MODELS),
                        hint=did_you_mean(str(model), MODELS), **where(node, "energy_model"))
    if arch.technology is not None:
        try:
            parse_technology(arch.technology)
        except SpecError as exc:
            raise SpecError(exc.message, key_path=f"{path}.energy_model", expected=exc.expected,
                            hint="the energy model scales its 45 nm tables to the `technology` "
                            "attribute", **where(node, "energy_model")) from None
    arch = replace(arch, attributes={**arch.attributes, "energy_model": model})
    return estimate(arch, model)


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
    for i, c in enumerate(require_list(get(shape, "coefficients") or [],
                                       f"{path}.shape.coefficients", shape, "coefficients")):
        cpath = f"{path}.shape.coefficients[{i}]"
        require_mapping(c, cpath, shape, "coefficients")
        check_keys(c, {"name", "default"}, cpath)
        cname = str(get(c, "name"))
        coefs[cname] = number(c, "default", cpath, integer=True) if has(c, "default") else 1
    bounds: dict[str, int] = {}
    allowed = set(dims) | set(coefs) | {"densities"}
    for key in inst:
        if str(key).startswith("_"):
            continue
        if key not in allowed:
            # Timeloop ignores extra instance keys (H, W, G...) only when they aren't shape dims
            continue
        if key == "densities":  # read by dse.spec.sparse (Sparseloop densities)
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
        out[d] = n  # 0 = the whole dimension (Timeloop's mapping parser); see full_factors
    return out


def full_factors(factors: dict[str, int], bounds: dict[str, int]) -> dict[str, int]:
    """Timeloop reads `X=0` in a mapping as X's whole bound (src/mapping/parser.cpp: "0 means
    full problem dimension"); the product check that follows still applies."""
    return {d: (bounds[d] if n == 0 else n) for d, n in factors.items()}


def parse_permutation(value, dims: tuple[str, ...], path: str, node) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        # Timeloop reads a permutation string one letter at a time, skipping blanks
        # ("QRSC PNM" = QRSCPNM); words are read as dimensions only if every word is one
        words = [w for w in re.split(r"[,\s]+", value.strip()) if w]
        items = words if all(w in dims for w in words) else list("".join(words))
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


# Mapping directive keys that change Timeloop's model of a fixed mapping, not modelled by dse.
MAPPING_UNMODELLED = {
    "no_reuse": "disabling reuse of a tensor", "no_temporal_reuse": "disabling temporal reuse",
    "no_multicast_no_reduction": "disabling multicast and spatial reduction",
    "no_link_transfer": "disabling link transfers", "rmw_first_update":
    "read-modify-write on the first update", "no_coalesce": "uncoalesced accesses",
}


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
        for key, what in MAPPING_UNMODELLED.items():
            if get(d, key) not in (None, [], "", False):
                raise not_modelled(what, d, key, dp)
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
            factors = full_factors(parse_factors(get(d, "factors"), problem.dims,
                                                 f"{dp}.factors", d), problem.bounds)
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
    check_keys(node, {"version", "tables"}, path)
    tables = require_list(get(node, "tables"), f"{path}.tables", node, "tables")
    out: dict[str, dict[str, Energy]] = {}
    for j, t in enumerate(tables):
        tp = f"{path}.tables[{j}]"
        require_mapping(t, tp, node, "tables")
        check_keys(t, {"name", "actions"}, tp)
        full = str(get(t, "name"))
        comp = ert_component_name(full)
        actions: dict[str, Energy] = {}
        for i, a in enumerate(require_list(get(t, "actions", []), f"{tp}.actions", t,
                                           "actions")):
            require_mapping(a, f"{tp}.actions[{i}]", t, "actions")
            check_keys(a, {"name", "arguments", "energy"}, f"{tp}.actions[{i}]")
            aname = str(get(a, "name"))
            energy = float(number(a, "energy", f"{tp}.actions[{i}]"))
            prev = actions.get(aname)
            if prev is None or energy > prev.pJ:
                actions[aname] = Energy(energy, f"ert:{source}")
        out[comp] = actions
    return out


def ert_component_name(full: str) -> str:
    """'system.PE[0..15].LMAC[0..15]' -> 'LMAC': the last part of the path, without range."""
    parts = re.split(r"\.(?![^\[]*\])", full)  # dots outside brackets
    return split_range(parts[-1])[0]


COMPUTE_ALIASES = ("mac_random", "mult_random", "mac", "mult", "compute")


def apply_ert(arch: Architecture, ert: dict[str, dict[str, Energy]]) -> Architecture:
    """Energies from an ERT replace inline ones for the components it names."""
    from dataclasses import replace

    levels = []
    for lv in arch.levels:
        e = dict(lv.energy)
        table = ert.get(lv.name, {})
        for action, en in table.items():
            e[action] = en
        if "access" in table:  # v0.3-era components (regfile) have one `access` action
            for action in ("read", "write", "update"):
                e.setdefault(action, table["access"])
        levels.append(replace(lv, energy=e))
    ce = dict(arch.compute.energy)
    table = ert.get(arch.compute.name, {})
    ce.update({a: e for a, e in table.items() if a not in ce})  # all actions: legacy takes max
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
