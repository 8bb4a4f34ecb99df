"""Readers for dse's native YAML format: `architecture:` with a `levels:` list, `problem:` with
`dims:`/`tensors:` (or a `type:` shorthand) and `mapping:` as a list of per-level entries.

The format is simpler to hand-write than Timeloop's: levels and loops are written outermost
first, fan-outs are explicit list entries, and every number may be an arithmetic string
(`16*1024`). Each section may say `version: 1` (missing = 1). See docs/formats.md.
"""

from __future__ import annotations

import re

from dse.arch.architecture import Architecture, ComputeLevel, Energy, StorageLevel
from dse.errors import SpecError, did_you_mean
from dse.mapping import LevelMapping, Mapping
from dse.spec.common import check_keys, get, has, number, require_list, require_mapping, where
from dse.spec.yamlload import Node
from dse.workload.problem import DataSpace, Problem

FORMAT_VERSION = 1
INLINE = "spec:inline"

ARCH_KEYS = {"version", "name", "clock_hz", "technology", "levels", "compute",
             # optional architecture-level keys (docs/formats.md "Parameters, rules, energy model")
             "parameters", "energy_model", "rules", "dimension_granularity", "extends",
             "execution", "link_transfers"}
# `levels:` may appear in an extending file only empty (it marks the section as native for
# readers that look for `levels:`); the levels come from the base file.
EXTENDS_KEYS = {"version", "extends", "name", "parameters", "energy_model", "levels"}
PARAMETER_KEYS = {"value", "min", "max", "source"}
STORAGE_KEYS = {
    "name", "class", "depth", "width", "datawidth", "block_size", "read_bandwidth",
    "write_bandwidth", "shared_bandwidth", "multiple_buffering", "keep", "bypass", "energy",
    "meshX", "meshY", "banks", "cluster_size", "neighbour_links",
} | {"metadata_datawidth", "metadata_storage_width", "metadata_storage_depth",
     "compression_supported", "decompression_supported"}
# sparse-capable hardware (read by dse.model.sparse from the level's attributes; docs/sparse.md)
SPARSE_INT_ATTRIBUTES = ("metadata_datawidth", "metadata_storage_width", "metadata_storage_depth")
SPARSE_FLAG_ATTRIBUTES = ("compression_supported", "decompression_supported")
FANOUT_KEYS = {"fanout", "meshX", "meshY"}
COMPUTE_KEYS = {"name", "class", "datawidth", "energy", "meshX", "meshY"}
# gated/skipped accesses, metadata accesses and (de)compressions of sparse designs (Sparseloop's
# ERT action names); an action a sparse design performs but the level does not price costs 0
SPARSE_STORAGE_ACTIONS = (
    {f"{k}_{a}" for k in ("gated", "skipped") for a in ("read", "write", "update")}
    | {f"{k}metadata_{a}" for k in ("", "gated_", "skipped_") for a in ("read", "write", "update")}
    | {"decompression_count", "compression_count"})
STORAGE_ACTIONS = {"read", "write", "update", "leak"} | SPARSE_STORAGE_ACTIONS
COMPUTE_ACTIONS = {"compute", "add", "compare", "leak", "gated_compute", "skipped_compute"}

# `densities:` is read by dse.spec.sparse (Sparseloop density models; docs/sparse.md)
PROBLEM_KEYS = {"version", "name", "dims", "coefficients", "tensors", "type", "densities"}
TENSOR_KEYS = {"ranks", "read_write", "bits"}
CONV2D_KEYS = {"N", "C", "M", "P", "Q", "R", "S", "stride", "dilation", "Wstride", "Hstride",
               "Wdilation", "Hdilation"}
MATMUL_KEYS = {"M", "N", "K"}
LAYER_TYPES = ("conv2d", "matmul")

MAPPING_KEYS = {"version", "levels"}
ENTRY_KEYS = {"level", "temporal", "spatial", "keep", "bypass"}

_NAME = re.compile(r"^[A-Za-z_]\w*$")
_TERM = re.compile(r"^\s*(\w+)\s*(?:\*\s*(\w+))?\s*$")
_TOKEN = re.compile(r"^([A-Za-z_]\w*?)(\d+)$")


class Located(list):
    """A list that remembers where it was written (for constraint errors found later)."""

    file: str | None = None
    line: int | None = None


# ----------------------------------------------------------------------------- helpers


def check_version(node: Node, path: str) -> None:
    """`version:` may be missing (= 1) or 1; anything else is an error."""
    if "version" not in node:
        return
    v = node["version"]
    ok = not isinstance(v, bool) and (v == FORMAT_VERSION or str(v).strip() == str(FORMAT_VERSION))
    if not ok:
        raise SpecError(
            f"unsupported native format version {v!r}", key_path=f"{path}.version",
            expected=f"version: {FORMAT_VERSION}",
            hint="this dse reads native format version 1 (Timeloop files with version '0.3' or "
                 "'0.4' use `nodes:`/`subtree:`, `shape:`/`instance:` and `target:` instead)",
            **where(node, "version"),
        )


def _string(node: Node, key: str, path: str, default: str | None = None) -> str | None:
    value = get(node, key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise SpecError("expected a text string", key_path=f"{path}.{key}", found=value,
                        **where(node, key))
    return value


def _identifier(name, path: str, node, key: str | None = None) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError("expected a name made of letters, digits and '_' (not starting with a "
                        "digit)", key_path=path, found=name, **where(node, key))
    return name


def _opt_number(node: Node, key: str, path: str, *, integer: bool = False,
                positive: bool = True, names: dict | None = None):
    if not has(node, key) or get(node, key) is None:
        return None
    return number(node, key, path, names, integer=integer, positive=positive)


def _name_list(node: Node, key: str, path: str) -> Located | None:
    value = get(node, key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError("expected a list of tensor names, like [Inputs, Outputs]",
                        key_path=f"{path}.{key}", found=value, **where(node, key))
    out = Located(value)
    loc = where(node, key)
    out.file, out.line = loc["file"], loc["line"]
    return out


def _mesh(node: Node, path: str, names: dict | None = None) -> tuple[int, int]:
    mx = _opt_number(node, "meshX", path, integer=True, names=names) or 1
    my = _opt_number(node, "meshY", path, integer=True, names=names) or 1
    return mx, my


# ----------------------------------------------------------------------------- architecture


def _energy(node: Node, path: str, actions: set[str],
            names: dict | None = None) -> dict[str, Energy]:
    """`energy: {read: 1.2, write: {pJ: 1.0, source: ..}, source: ..}` -> {action: Energy}.

    A `source:` key beside the actions applies to every bare number in the mapping.
    """
    value = get(node, "energy")
    if value is None:
        return {}
    ep = f"{path}.energy"
    e = require_mapping(value, ep, node, "energy")
    check_keys(e, actions | {"source"}, ep)
    common = _string(e, "source", ep)
    out: dict[str, Energy] = {}
    for action, v in e.items():
        if action == "source" or str(action).startswith("_"):
            continue
        src = common
        if isinstance(v, dict):
            check_keys(v, {"pJ", "source"}, f"{ep}.{action}")
            if "pJ" not in v:
                raise SpecError("an energy given as a mapping needs `pJ:`",
                                key_path=f"{ep}.{action}", **where(v))
            pj = number(v, "pJ", f"{ep}.{action}", names, positive=False)
            src = _string(v, "source", f"{ep}.{action}", common)
            line_node, line_key = v, "pJ"
        else:
            pj = number(e, action, ep, names, positive=False)
            line_node, line_key = e, action
        if pj < 0:
            raise SpecError("an energy cannot be negative", key_path=f"{ep}.{action}", found=pj,
                            **where(line_node, line_key))
        out[str(action)] = Energy(float(pj), f"{INLINE} ({src})" if src else INLINE)
    return out


def _fanout_level(entry: Node, path: str, mesh: tuple[int, int],
                  names: dict | None = None) -> tuple[StorageLevel, tuple]:
    check_keys(entry, FANOUT_KEYS, path)
    name = _identifier(get(entry, "fanout"), f"{path}.fanout", entry, "fanout")
    fx, fy = _mesh(entry, path, names)
    level = StorageLevel(name, mesh[0] * mesh[1], mesh[0], mesh[1], depth=1, width=1,
                         datawidth=1, block_size=1, is_dummy=True, cls="dummy_storage")
    return level, (mesh[0] * fx, mesh[1] * fy)


def _storage_level(entry: Node, path: str, mesh: tuple[int, int],
                   names: dict | None = None) -> tuple[StorageLevel, tuple]:
    from dse.spec.timeloop import refuse_sparse

    refuse_sparse(entry, "sparse_optimizations", path)
    check_keys(entry, STORAGE_KEYS, path)
    name = _identifier(get(entry, "name"), f"{path}.name", entry, "name")
    p = f"{path}({name})"
    cls = _string(entry, "class", p, "")
    is_dram = cls.upper() == "DRAM"
    rx, ry = _mesh(entry, p, names)
    mesh = (mesh[0] * rx, mesh[1] * ry)
    datawidth = _opt_number(entry, "datawidth", p, integer=True, names=names)
    if datawidth is None:
        raise SpecError(f"storage level {name} needs `datawidth:` (bits per word)", key_path=p,
                        **where(entry))
    width = _opt_number(entry, "width", p, integer=True, names=names)
    block = _opt_number(entry, "block_size", p, integer=True, names=names)
    if width is None:
        width = datawidth * (block or 1)
    if block is None:
        if width % datawidth:
            raise SpecError(f"width {width} of {name} is not a multiple of its datawidth "
                            f"{datawidth}", key_path=f"{p}.width", **where(entry, "width"),
                            hint="a row holds width/datawidth whole words")
        block = width // datawidth
    depth = _opt_number(entry, "depth", p, integer=True, names=names)
    if depth is None and not is_dram:
        raise SpecError(f"storage level {name} needs `depth:` (rows); only `class: DRAM` is "
                        "unbounded", key_path=p, **where(entry))
    mb = _opt_number(entry, "multiple_buffering", p, names=names)
    banks = _opt_number(entry, "banks", p, integer=True, names=names)
    cluster = _opt_number(entry, "cluster_size", p, integer=True, positive=True, names=names) or 1
    if (mesh[0] * mesh[1]) % cluster:
        raise SpecError(f"cluster_size {cluster} of {name} does not divide its "
                        f"{mesh[0] * mesh[1]} instances", key_path=f"{p}.cluster_size",
                        **where(entry, "cluster_size"))
    attributes: dict = {"banks": banks} if banks is not None else {}
    for key in SPARSE_INT_ATTRIBUTES:
        v = _opt_number(entry, key, p, integer=True, positive=False, names=names)
        if v is not None and v < 0:  # 0 is allowed: no metadata storage / width
            raise SpecError("a metadata width or depth cannot be negative",
                            key_path=f"{p}.{key}", expected=">= 0", found=v, **where(entry, key))
        if v is not None:
            attributes[key] = v
    for key in SPARSE_FLAG_ATTRIBUTES:
        flag = get(entry, key)
        if flag is not None:
            if not isinstance(flag, bool):
                raise SpecError("expected true or false", key_path=f"{p}.{key}", found=flag,
                                **where(entry, key))
            attributes[key] = flag
    links = get(entry, "neighbour_links", False)
    if not isinstance(links, bool):
        raise SpecError("expected true or false", key_path=f"{p}.neighbour_links", found=links,
                        **where(entry, "neighbour_links"),
                        hint="true: instances of this level forward tiles to their mesh "
                             "neighbours (link transfers)")

    def bw(key: str) -> float | None:
        v = _opt_number(entry, key, p, names=names)
        return None if v is None else float(v)

    level = StorageLevel(
        name, mesh[0] * mesh[1], mesh[0], mesh[1], depth=depth, width=width,
        datawidth=datawidth, block_size=block, is_dram=is_dram,
        multiple_buffering=float(mb) if mb is not None else 1.0,
        read_bandwidth=bw("read_bandwidth"), write_bandwidth=bw("write_bandwidth"),
        shared_bandwidth=bw("shared_bandwidth"),
        energy=_energy(entry, p, STORAGE_ACTIONS, names), cls=cls,
        attributes=attributes, cluster_size=cluster,
        neighbour_links=links,
    )
    return level, mesh


def read_architecture(node: Node, path: str = "architecture", *,
                      parameters: dict | None = None,
                      energy_model: str | None = None) -> tuple[Architecture, dict]:
    """Native `architecture:` -> (Architecture, {level: (keep or None, bypass or None)}).

    `parameters` override the values of the architecture's `parameters:` ({'columns': 3});
    `energy_model` overrides its `energy_model:` key. Both default to what the file says.
    """
    require_mapping(node, path)
    if has(node, "extends"):
        return _read_extends(node, path, parameters, energy_model)
    from dse.spec.timeloop import refuse_sparse

    refuse_sparse(node, "sparse_optimizations", path)
    check_keys(node, ARCH_KEYS, path)
    check_version(node, path)
    names = _parameters(node, path, parameters)
    levels_node = get(node, "levels")
    if levels_node is None:
        raise SpecError("a native architecture needs `levels:` (outermost first)", key_path=path,
                        **where(node))
    entries = require_list(levels_node, f"{path}.levels", node, "levels")
    mesh = (1, 1)
    levels: list[StorageLevel] = []
    constraints: dict = {}
    for j, entry in enumerate(entries):
        lp = f"{path}.levels[{j}]"
        require_mapping(entry, lp, node, "levels")
        if has(entry, "fanout"):
            if j == 0:
                raise SpecError("the outermost level must be a storage level (it holds every "
                                "tensor), not a fan-out", key_path=lp, **where(entry))
            level, mesh = _fanout_level(entry, lp, mesh, names)
        elif has(entry, "name"):
            level, mesh = _storage_level(entry, lp, mesh, names)
            keep = _name_list(entry, "keep", f"{lp}({level.name})")
            bypass = _name_list(entry, "bypass", f"{lp}({level.name})")
            if keep is not None or bypass is not None:
                constraints[level.name] = (keep, bypass)
        else:
            raise SpecError("each level needs `name:` (a storage level) or `fanout:` (a spatial "
                            "fan-out)", key_path=lp, hint=did_you_mean(
                                next(iter(entry), ""), ["name", "fanout"]), **where(entry))
        levels.append(level)
    if not levels:
        raise SpecError("an architecture needs at least one storage level",
                        key_path=f"{path}.levels", **where(node, "levels"))
    cnode = get(node, "compute")
    if cnode is None:
        raise SpecError("a native architecture needs `compute:` (the MAC units)", key_path=path,
                        **where(node))
    cp = f"{path}.compute"
    require_mapping(cnode, cp, node, "compute")
    check_keys(cnode, COMPUTE_KEYS, cp)
    cname = _identifier(get(cnode, "name", "mac"), f"{cp}.name", cnode, "name")
    rx, ry = _mesh(cnode, cp, names)
    mesh = (mesh[0] * rx, mesh[1] * ry)
    compute = ComputeLevel(cname, mesh[0] * mesh[1], mesh[0], mesh[1],
                           energy=_energy(cnode, cp, COMPUTE_ACTIONS, names),
                           cls=_string(cnode, "class", cp, ""),
                           datawidth=_opt_number(cnode, "datawidth", cp, integer=True,
                                                 names=names))
    seen: dict[str, int] = {}
    for j, name in enumerate([lv.name for lv in levels] + [cname]):
        if name in seen:
            raise SpecError(f"level name '{name}' is used twice (levels {seen[name]} and {j})",
                            key_path=f"{path}.levels", **where(node, "levels"),
                            hint="names must be unique: mappings and reports refer to them")
        seen[name] = j
    clock = _opt_number(node, "clock_hz", path, names=names)
    tech = get(node, "technology")
    if tech is not None and not isinstance(tech, (str, int, float)):
        raise SpecError("expected a text like '32nm'", key_path=f"{path}.technology", found=tech,
                        **where(node, "technology"))
    attributes = _arch_attributes(node, path, names, energy_model)
    arch = Architecture(
        name=_string(node, "name", path, "architecture"), levels=tuple(levels), compute=compute,
        clock_hz=float(clock) if clock is not None else None,
        technology=str(tech) if tech is not None else None, source=node.file,
        attributes=attributes, default_link_transfers=_link_default(node, path),
    )
    model = attributes.get("energy_model")
    if model is not None:
        from dse.energy import estimate
        from dse.energy.tables import parse_technology

        if tech is not None:
            try:
                parse_technology(tech)
            except SpecError as exc:
                raise SpecError(exc.message, key_path=f"{path}.technology",
                                expected=exc.expected, hint="the energy model scales its 45 nm "
                                "tables to this node", **where(node, "technology")) from None
        arch = estimate(arch, model)
    return arch, constraints


# ----------------------------------------------------------------------------- arch options


def _parameters(node: Node, path: str, overrides: dict | None) -> dict:
    """`parameters: {columns: 4}` or `{columns: {value: 4, min: 1, max: 4, source: ..}}` ->
    {name: value}, with `overrides` applied and checked against min/max."""
    pp = f"{path}.parameters"
    value = get(node, "parameters")
    declared: dict[str, tuple] = {}
    if value is not None:
        pnode = require_mapping(value, pp, node, "parameters")
        names: dict = {}
        for k, v in pnode.items():
            if str(k).startswith("_"):
                continue
            _identifier(k, f"{pp}.{k}", pnode, k)
            if isinstance(v, dict):
                check_keys(v, PARAMETER_KEYS, f"{pp}.{k}")
                if "value" not in v:
                    raise SpecError(f"parameter {k} needs `value:` (its default)",
                                    key_path=f"{pp}.{k}", **where(v))
                val = number(v, "value", f"{pp}.{k}", names)
                lo = number(v, "min", f"{pp}.{k}", names) if "min" in v else None
                hi = number(v, "max", f"{pp}.{k}", names) if "max" in v else None
                loc = where(v, "value")
            else:
                val = number(pnode, k, pp, names)
                lo = hi = None
                loc = where(pnode, k)
            declared[k] = (lo, hi, loc)
            # an override replaces the value before later parameters use it
            names[k] = (overrides or {}).get(k, val)
    else:
        names = {}
    for k in overrides or {}:
        if k not in names:
            raise SpecError(f"the architecture has no parameter '{k}'", key_path=pp,
                            expected="one of " + (", ".join(names) or "(none declared)"),
                            hint=did_you_mean(k, names), **where(node, "parameters"
                                                                 if value is not None else None))
    for k, (lo, hi, loc) in declared.items():
        v = names[k]
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise SpecError(f"parameter {k} = {v} is outside its range {lo}..{hi}",
                            key_path=f"{pp}.{k}", **loc)
    return names


def _link_default(node: Node, path: str) -> str:
    """`link_transfers:` (default `declared`): the link-transfer mode when none is asked for."""
    from dse.model.links import LINK_MODES

    mode = get(node, "link_transfers", "declared")
    if mode not in LINK_MODES:
        raise SpecError(f"unknown link-transfer mode {mode!r}",
                        key_path=f"{path}.link_transfers", expected=", ".join(LINK_MODES),
                        hint=did_you_mean(str(mode), LINK_MODES),
                        **where(node, "link_transfers"))
    return str(mode)


def _arch_attributes(node: Node, path: str, names: dict, energy_model: str | None) -> dict:
    """The optional architecture-level settings, validated (see dse/arch/rules.py)."""
    from dse.spec import arch_rules

    out: dict = {}
    if names:
        out["parameters"] = dict(names)
    model = energy_model if energy_model is not None else get(node, "energy_model")
    if model is not None:
        from dse.energy import MODELS

        if model not in MODELS:
            raise SpecError(f"unknown energy model {model!r}", key_path=f"{path}.energy_model",
                            expected="one of " + ", ".join(MODELS),
                            hint=did_you_mean(str(model), MODELS),
                            **where(node, "energy_model" if energy_model is None else None))
        out["energy_model"] = model
    if get(node, "rules") is not None:
        out["rules"] = arch_rules.read_rules(get(node, "rules"), f"{path}.rules", node, names)
    if get(node, "dimension_granularity") is not None:
        out["dimension_granularity"] = arch_rules.read_granularity(
            get(node, "dimension_granularity"), f"{path}.dimension_granularity", node, names)
    execution = get(node, "execution")
    if execution is not None:
        from dse.schedule import EXECUTIONS

        if execution not in EXECUTIONS:
            raise SpecError(f"unknown execution model {execution!r}",
                            key_path=f"{path}.execution",
                            expected="one of " + ", ".join(EXECUTIONS),
                            hint=did_you_mean(str(execution), EXECUTIONS),
                            **where(node, "execution"))
        out["execution"] = execution
    return out


def _read_extends(node: Node, path: str, parameters: dict | None,
                  energy_model: str | None, depth: int = 0) -> tuple[Architecture, dict]:
    """`extends: base.yaml` (relative to this file) with other `parameters:` values, a new
    `name:` and/or `energy_model:`; the base file's `architecture:` section does the rest."""
    from dataclasses import replace
    from pathlib import Path

    from dse.spec.yamlload import load_documents

    check_keys(node, EXTENDS_KEYS, path)
    check_version(node, path)
    if get(node, "levels") is not None:
        raise SpecError("an architecture that `extends:` another takes its levels from it",
                        key_path=f"{path}.levels", **where(node, "levels"),
                        hint="leave `levels:` empty or drop it")
    base_ref = get(node, "extends")
    if not isinstance(base_ref, str):
        raise SpecError("expected a file name", key_path=f"{path}.extends", found=base_ref,
                        **where(node, "extends"))
    base_path = Path(base_ref)
    if not base_path.is_absolute() and node.file:
        base_path = Path(node.file).parent / base_path
    if not base_path.is_file():
        raise SpecError(f"base architecture file {base_ref} not found (looked for {base_path})",
                        key_path=f"{path}.extends", **where(node, "extends"))
    base = load_documents([base_path]).data.get("architecture")
    if base is None:
        raise SpecError(f"{base_ref} has no `architecture:` section", key_path=f"{path}.extends",
                        **where(node, "extends"))
    own: dict = {}
    pv = get(node, "parameters")
    if pv is not None:
        pnode = require_mapping(pv, f"{path}.parameters", node, "parameters")
        own = {k: number(pnode, k, f"{path}.parameters") for k in pnode
               if not str(k).startswith("_")}
    own.update(parameters or {})
    model = energy_model if energy_model is not None else get(node, "energy_model")
    if has(base, "extends"):
        if depth > 8:
            raise SpecError("`extends:` chain is too deep (a cycle?)", key_path=f"{path}.extends",
                            **where(node, "extends"))
        arch, cons = _read_extends(base, path, own, model, depth + 1)
    else:
        arch, cons = read_architecture(base, path, parameters=own, energy_model=model)
    attrs = dict(arch.attributes)
    attrs["extends"] = str(base_path)
    return replace(arch, name=_string(node, "name", path, arch.name), source=node.file,
                   attributes=attrs), cons


# ----------------------------------------------------------------------------- problem


def _parse_rank(text, dims: dict[str, int], coefs: dict[str, int], path: str, node,
                key: str | None) -> tuple:
    """'Wstride*P + Wdilation*R' -> (('P', 1), ('R', 1)); terms are DIM, coef*DIM or DIM*coef."""
    if not isinstance(text, str):
        raise SpecError("a rank is a dimension or a sum like 'Wstride*P + Wdilation*R'",
                        key_path=path, found=text, **where(node, key))
    terms: list[tuple[str, int]] = []
    for piece in text.split("+"):
        m = _TERM.match(piece)
        if not m:
            raise SpecError(f"cannot read rank term '{piece.strip()}'", key_path=path,
                            expected="DIM, coef*DIM or N*DIM, e.g. 'P' or 'Wstride*P'",
                            **where(node, key))
        names = [x for x in m.groups() if x is not None]
        in_dims = [x for x in names if x in dims]
        if len(in_dims) != 1:
            if not in_dims:
                msg = f"rank term '{piece.strip()}' names no dimension of the problem"
                hint = did_you_mean(names[-1], dims)
            else:
                msg = f"rank term '{piece.strip()}' multiplies two dimensions"
                hint = "a rank is a sum of terms, each one dimension times a coefficient"
            raise SpecError(msg, key_path=path, expected="one of " + ", ".join(dims), hint=hint,
                            **where(node, key))
        dim = in_dims[0]
        coef = 1
        for x in names:
            if x == dim:
                continue
            if x in coefs:
                coef = coefs[x]
            elif x.isdigit():
                coef = int(x)
            else:
                raise SpecError(f"unknown coefficient '{x}' in rank '{text}'", key_path=path,
                                expected="an integer or one of: " + ", ".join(coefs or ["(none)"]),
                                hint=did_you_mean(x, coefs), **where(node, key))
        if any(d == dim for d, _ in terms):
            raise SpecError(f"dimension {dim} appears twice in rank '{text}'", key_path=path,
                            **where(node, key))
        terms.append((dim, coef))
    return tuple(terms)


def _read_tensors(node: Node, dims: dict[str, int], coefs: dict[str, int],
                  path: str) -> tuple[DataSpace, ...]:
    tp = f"{path}.tensors"
    tensors = require_mapping(get(node, "tensors"), tp, node, "tensors")
    spaces = []
    for tname, value in tensors.items():
        if str(tname).startswith("_"):
            continue
        p = f"{tp}.{tname}"
        _identifier(tname, p, tensors, tname)
        read_write, bits = False, None
        if isinstance(value, dict):
            from dse.spec.timeloop import refuse_sparse

            for key in ("density", "densities"):
                refuse_sparse(value, key, p)
            check_keys(value, TENSOR_KEYS, p)
            if "ranks" not in value:
                raise SpecError(f"tensor {tname} needs `ranks:`", key_path=p, **where(value))
            ranks, rnode, rkey = value["ranks"], value, "ranks"
            rw = get(value, "read_write", False)
            if not isinstance(rw, bool):
                raise SpecError("expected true or false", key_path=f"{p}.read_write", found=rw,
                                **where(value, "read_write"))
            read_write = rw
            bits = _opt_number(value, "bits", p, integer=True)
        else:
            ranks, rnode, rkey = value, tensors, tname
        if not isinstance(ranks, list) or not ranks:
            raise SpecError("expected a list of ranks, like [N, C, 'Wstride*P + Wdilation*R']",
                            key_path=p, found=ranks, **where(rnode, rkey))
        parsed = tuple(_parse_rank(r, dims, coefs, f"{p}[{k}]", rnode, rkey)
                       for k, r in enumerate(ranks))
        spaces.append(DataSpace(str(tname), parsed, read_write, bits))
    if not spaces:
        raise SpecError("a problem needs at least one tensor", key_path=tp,
                        **where(node, "tensors"))
    if not any(ds.read_write for ds in spaces):
        raise SpecError("no tensor is marked `read_write: true` (the output)", key_path=tp,
                        **where(node, "tensors"),
                        hint="write the output as {ranks: [...], read_write: true}")
    return tuple(spaces)


def _int_mapping(node: Node, key: str, path: str, *, positive: bool) -> dict[str, int]:
    value = get(node, key)
    if value is None:
        return {}
    m = require_mapping(value, f"{path}.{key}", node, key)
    out: dict[str, int] = {}
    for k in m:
        if str(k).startswith("_"):
            continue
        _identifier(k, f"{path}.{key}", m, k)
        v = number(m, k, f"{path}.{key}", integer=True)
        if v < (1 if positive else 0):
            raise SpecError(f"expected a whole number >= {1 if positive else 0}",
                            key_path=f"{path}.{key}.{k}", found=v, **where(m, k))
        out[k] = v
    return out


def _shorthand(node: Node, path: str) -> tuple[dict, dict, tuple, str]:
    kind = get(node, "type")
    if kind not in LAYER_TYPES:
        raise SpecError(f"unknown layer type {kind!r}", key_path=f"{path}.type",
                        expected="one of " + ", ".join(LAYER_TYPES),
                        hint=did_you_mean(str(kind), LAYER_TYPES), **where(node, "type"))
    extra = CONV2D_KEYS if kind == "conv2d" else MATMUL_KEYS
    check_keys(node, {"version", "name", "type", "densities"} | extra, path)

    def bound(key: str, default: int | None = None) -> int:
        if key not in node:
            if default is None:
                raise SpecError(f"a {kind} layer needs `{key}:`", key_path=path, **where(node))
            return default
        return number(node, key, path, integer=True, positive=True)

    if kind == "matmul":
        dims = {d: bound(d) for d in ("M", "N", "K")}
        spaces = (
            DataSpace("A", ((("M", 1),), (("K", 1),))),
            DataSpace("B", ((("K", 1),), (("N", 1),))),
            DataSpace("Z", ((("M", 1),), (("N", 1),)), read_write=True),
        )
        return dims, {}, spaces, "matmul"
    dims = {d: bound(d, 1 if d == "N" else None) for d in ("C", "M", "R", "S", "N", "P", "Q")}
    coefs = {}
    pairs = (("stride", ("Wstride", "Hstride")), ("dilation", ("Wdilation", "Hdilation")))
    for both, pair in pairs:
        shared = bound(both, 1)
        for c in pair:
            if c in node and both in node:
                raise SpecError(f"give either `{both}:` or `{c}:`, not both", key_path=path,
                                **where(node, c))
            coefs[c] = bound(c, shared)
    coefs = {k: coefs[k] for k in ("Wstride", "Hstride", "Wdilation", "Hdilation")}
    w, h, wd, hd = (coefs[k] for k in ("Wstride", "Hstride", "Wdilation", "Hdilation"))
    spaces = (
        DataSpace("Weights", ((("C", 1),), (("M", 1),), (("R", 1),), (("S", 1),))),
        DataSpace("Inputs", ((("N", 1),), (("C", 1),), (("R", wd), ("P", w)),
                             (("S", hd), ("Q", h)))),
        DataSpace("Outputs", ((("N", 1),), (("M", 1),), (("Q", 1),), (("P", 1),)),
                  read_write=True),
    )
    return dims, coefs, spaces, "conv2d"


def read_problem(node: Node, path: str = "problem") -> Problem:
    """Native `problem:` (dims + tensors, or a `type:` shorthand) -> Problem."""
    require_mapping(node, path)
    check_version(node, path)
    from dse.spec.timeloop import refuse_sparse

    for key in ("density", "sparse_optimizations"):
        refuse_sparse(node, key, path)
    if has(node, "type"):
        dims, coefs, spaces, default_name = _shorthand(node, path)
    else:
        check_keys(node, PROBLEM_KEYS, path)
        for key in ("dims", "tensors"):
            if not has(node, key):
                raise SpecError(f"a native problem needs `{key}:` (or a `type:` such as conv2d)",
                                key_path=path, **where(node))
        dims = _int_mapping(node, "dims", path, positive=True)
        if not dims:
            raise SpecError("a problem needs at least one dimension", key_path=f"{path}.dims",
                            **where(node, "dims"))
        coefs = _int_mapping(node, "coefficients", path, positive=False)
        clash = sorted(set(dims) & set(coefs))
        if clash:
            raise SpecError(f"{', '.join(clash)} is both a dimension and a coefficient",
                            key_path=f"{path}.coefficients", **where(node, "coefficients"))
        spaces = _read_tensors(node, dims, coefs, path)
        default_name = "problem"
    return Problem(_string(node, "name", path, default_name), tuple(dims), dict(dims), spaces,
                   coefs, source=node.file)


# ----------------------------------------------------------------------------- mapping


def parse_loops(value, dims: tuple[str, ...], path: str, node, key: str) -> list[tuple[str, int]]:
    """'Q4 C=4 P7' (or a list of such tokens) -> [('Q', 4), ('C', 4), ('P', 7)], as written."""
    if value is None:
        return []
    if isinstance(value, str):
        tokens = [t for t in re.split(r"[,\s]+", value.strip()) if t]
    elif isinstance(value, list) and all(isinstance(t, str) for t in value):
        tokens = [t.replace(" ", "") for t in value]
    else:
        raise SpecError("loops are a string like 'Q4 C4 P7' (outermost first)", key_path=path,
                        found=value, **where(node, key))
    out: list[tuple[str, int]] = []
    for tok in tokens:
        dim, n = _loop_token(tok, dims, path, node, key)
        if any(d == dim for d, _ in out):
            raise SpecError(f"dimension {dim} appears twice in '{value}'", key_path=path,
                            hint="one loop per dimension and level: multiply the factors",
                            **where(node, key))
        out.append((dim, n))
    return out


def _loop_token(tok: str, dims: tuple[str, ...], path: str, node, key: str) -> tuple[str, int]:
    expected = "a dimension and a factor, like C4 or C=4"
    if "=" in tok:
        d, _, n = tok.partition("=")
        candidates = [(d, n)]
    else:
        candidates = [(d, tok[len(d):]) for d in dims if tok.startswith(d)
                      and tok[len(d):].isdigit()]
        if len(candidates) > 1:
            raise SpecError(f"loop '{tok}' is ambiguous between dimensions "
                            f"{', '.join(c[0] for c in candidates)}", key_path=path,
                            hint="write it as DIM=N, e.g. " + f"{candidates[-1][0]}="
                                 f"{candidates[-1][1]}", **where(node, key))
        if not candidates:
            m = _TOKEN.match(tok)
            if not m:
                raise SpecError(f"cannot read loop '{tok}'", key_path=path, expected=expected,
                                **where(node, key))
            candidates = [(m.group(1), m.group(2))]
    d, n = candidates[0]
    if not n.isdigit():
        raise SpecError(f"cannot read loop '{tok}'", key_path=path, expected=expected,
                        **where(node, key))
    if d not in dims:
        raise SpecError(f"loop '{tok}' names unknown dimension '{d}'", key_path=path,
                        expected="one of " + ", ".join(dims), hint=did_you_mean(d, dims),
                        **where(node, key))
    if int(n) < 1:
        raise SpecError(f"loop '{tok}' has factor {n}; factors are at least 1", key_path=path,
                        **where(node, key))
    return d, int(n)


def _resolve_level(target, arch: Architecture, path: str, node) -> int:
    names = arch.level_names()
    if not isinstance(target, str):
        raise SpecError("expected a level name", key_path=path, found=target,
                        **where(node, "level"))
    if target not in names and f"inter_{target}_spatial" in names:
        target = f"inter_{target}_spatial"
    if target not in names:
        aliases = [n[len("inter_"):-len("_spatial")] for n in names
                   if n.startswith("inter_") and n.endswith("_spatial")]
        raise SpecError(f"the mapping names unknown level '{target}'", key_path=path,
                        expected="one of " + ", ".join(names),
                        hint=did_you_mean(target, list(names) + aliases), **where(node, "level"))
    return arch.index(target)


def _keep_set(keep, bypass, tensors: tuple[str, ...], path: str,
              hint: str | None = None) -> frozenset[str]:
    """Tensors kept, from keep (None = all) minus bypass; lists carry their file:line."""
    for lst, key in ((keep, "keep"), (bypass, "bypass")):
        for t in lst or []:
            if t not in tensors:
                raise SpecError(f"unknown tensor '{t}'", key_path=f"{path}.{key}",
                                expected="one of " + ", ".join(tensors),
                                hint=did_you_mean(t, tensors) or hint,
                                file=getattr(lst, "file", None), line=getattr(lst, "line", None))
    both = sorted(set(keep or ()) & set(bypass or ()))
    if both:
        raise SpecError(f"{', '.join(both)} is both kept and bypassed", key_path=path,
                        file=getattr(keep, "file", None), line=getattr(keep, "line", None))
    kept = set(tensors) if keep is None else set(keep)
    return frozenset(kept - set(bypass or ()))


def _entries(value, path: str) -> tuple[list, str | None]:
    if isinstance(value, dict):
        check_keys(value, MAPPING_KEYS, path)
        check_version(value, path)
        if not has(value, "levels"):
            raise SpecError("a native mapping is a list of `- level:` entries (or `levels:`)",
                            key_path=path, **where(value))
        return require_list(get(value, "levels"), f"{path}.levels", value, "levels"), value.file
    entries = require_list(value, path)
    src = next((e.file for e in entries if isinstance(e, Node)), None)
    return entries, src


def read_mapping(value, arch: Architecture, problem: Problem, constraints: dict | None = None,
                 path: str = "mapping") -> Mapping:
    """Native mapping entries (outermost level first) -> Mapping aligned with the arch."""
    entries, src = _entries(value, path)
    dims, tensors = problem.dims, problem.tensor_names
    given: dict[int, LevelMapping] = {}
    last = -1
    for j, entry in enumerate(entries):
        ep = f"{path}[{j}]"
        require_mapping(entry, ep)
        check_keys(entry, ENTRY_KEYS, ep)
        if "level" not in entry:
            raise SpecError("each mapping entry needs `level:` (a level of the architecture)",
                            key_path=ep, **where(entry))
        i = _resolve_level(entry["level"], arch, f"{ep}.level", entry)
        lv = arch.levels[i]
        ep = f"{path}.{lv.name}"
        if i in given:
            raise SpecError(f"level {lv.name} appears twice in the mapping", key_path=ep,
                            **where(entry, "level"), hint="give each level one entry")
        if i < last:
            raise SpecError(f"level {lv.name} comes after {arch.levels[last].name} in the mapping "
                            "but is outside it in the architecture", key_path=ep,
                            **where(entry, "level"),
                            hint="list mapping entries outermost level first, as in the "
                                 "architecture: " + ", ".join(arch.level_names()))
        last = i
        temporal = parse_loops(get(entry, "temporal"), dims, f"{ep}.temporal", entry, "temporal")
        xs: list[tuple[str, int]] = []
        ys: list[tuple[str, int]] = []
        sp = get(entry, "spatial")
        if sp is not None:
            if not isinstance(sp, dict):
                raise SpecError("spatial loops are a mapping {X: 'Q14', Y: 'M4 S3'}",
                                key_path=f"{ep}.spatial", found=sp, **where(entry, "spatial"))
            check_keys(sp, {"X", "Y"}, f"{ep}.spatial")
            xs = parse_loops(get(sp, "X"), dims, f"{ep}.spatial.X", sp, "X")
            ys = parse_loops(get(sp, "Y"), dims, f"{ep}.spatial.Y", sp, "Y")
            both = sorted({d for d, _ in xs} & {d for d, _ in ys})
            if both:
                raise SpecError(f"dimension {', '.join(both)} is in both X and Y",
                                key_path=f"{ep}.spatial", **where(sp),
                                hint="one spatial loop per dimension and level")
        keep = _name_list(entry, "keep", ep)
        bypass = _name_list(entry, "bypass", ep)
        kept = None
        if keep is not None or bypass is not None:
            if lv.is_dummy:
                raise SpecError(f"{lv.name} is a fan-out, which holds no data: keep/bypass do "
                                "not apply", key_path=ep, **where(entry, "keep" if keep is not None
                                                                    else "bypass"))
            kept = _keep_set(keep, bypass, tensors, ep)
        spatial = dict(xs + ys)
        given[i] = LevelMapping(
            lv.name, dict(temporal), tuple(d for d, _ in reversed(temporal)), spatial,
            tuple(d for d, _ in reversed(xs)) + tuple(d for d, _ in reversed(ys)),
            len(xs) if spatial else None, kept,
        )
    levels = []
    for i, lv in enumerate(arch.levels):
        lm = given.get(i, LevelMapping(lv.name))
        if lm.keep is None:
            if lv.is_dummy:
                lm = LevelMapping(lm.target, lm.temporal, lm.temporal_order, lm.spatial,
                                  lm.spatial_order, lm.split, frozenset())
            elif constraints and lv.name in constraints:
                ck, cb = constraints[lv.name]
                kept = _keep_set(ck, cb, tensors, f"architecture.{lv.name}",
                                 hint="the architecture's keep/bypass for this level does not fit "
                                      "this problem; give keep/bypass for it in the mapping")
                lm = LevelMapping(lm.target, lm.temporal, lm.temporal_order, lm.spatial,
                                  lm.spatial_order, lm.split, kept)
        levels.append(lm)
    return Mapping(tuple(levels), source=src)
