"""Conversions from dse's objects to YAML-ready data: the native format (docs/formats.md) and
Timeloop mapping directives.

The output is plain dicts/lists; dump with `yaml.safe_dump(data, sort_keys=False)`. Reading the
result back gives objects that evaluate identically (level names, dummy levels included, are
kept as they are).
"""

from __future__ import annotations

import re

from dse.arch.architecture import Architecture, Energy
from dse.errors import SpecError
from dse.mapping import LevelMapping, Mapping
from dse.spec.native import FORMAT_VERSION, INLINE
from dse.workload.problem import Problem


def _num(x: float | int) -> float | int:
    """Whole floats as ints (16.0 -> 16) for tidier YAML; the value read back is the same."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 2**53:
        return int(x)
    return x


def _source(e: Energy) -> str | None:
    """The `source:` text that reads back as `e.source` (None for a bare inline number)."""
    if e.source == INLINE:
        return None
    if e.source.startswith(f"{INLINE} (") and e.source.endswith(")"):
        return e.source[len(INLINE) + 2:-1]
    return e.source


def _energy(energy: dict[str, Energy]) -> dict:
    sources = {_source(e) for e in energy.values()}
    if len(sources) == 1:
        common = sources.pop()
        out: dict = {a: _num(e.pJ) for a, e in energy.items()}
        if common is not None:
            out["source"] = common
        return out
    out = {}
    for a, e in energy.items():
        src = _source(e)
        out[a] = _num(e.pJ) if src is None else {"pJ": _num(e.pJ), "source": src}
    return out


def _relative(mesh: tuple[int, int], mx: int, my: int, name: str) -> tuple[int, int]:
    if mx % mesh[0] or my % mesh[1]:
        raise SpecError(f"level {name} has a {mx}x{my} mesh, which is not a multiple of the "
                        f"{mesh[0]}x{mesh[1]} mesh above it; the native format cannot express it")
    return mx // mesh[0], my // mesh[1]


def _mesh_keys(rx: int, ry: int) -> dict:
    out = {}
    if rx != 1:
        out["meshX"] = rx
    if ry != 1:
        out["meshY"] = ry
    return out


def arch_to_native(arch: Architecture, constraints: dict | None = None) -> dict:
    """Architecture (+ keep/bypass constraints per level) -> native `architecture:` data."""
    constraints = constraints or {}
    out: dict = {"version": FORMAT_VERSION, "name": arch.name}
    if arch.clock_hz is not None:
        out["clock_hz"] = _num(arch.clock_hz)
    if arch.technology is not None:
        out["technology"] = arch.technology
    if arch.default_link_transfers != "declared":  # e.g. Timeloop's: keep its numbers
        out["link_transfers"] = arch.default_link_transfers
    levels: list[dict] = []
    mesh = (1, 1)
    for i, lv in enumerate(arch.levels):
        if lv.instances != lv.mesh_x * lv.mesh_y:
            raise SpecError(f"level {lv.name} has {lv.instances} instances on a {lv.mesh_x}x"
                            f"{lv.mesh_y} mesh; the native format needs instances = meshX*meshY")
        rel = _relative(mesh, lv.mesh_x, lv.mesh_y, lv.name)
        if lv.is_dummy:
            if rel != (1, 1):
                raise SpecError(f"fan-out level {lv.name} is itself replicated {rel[0]}x{rel[1]}"
                                " by the level above; the native format cannot express it")
            child = arch.levels[i + 1] if i + 1 < len(arch.levels) else arch.compute
            fx, fy = _relative(mesh, child.mesh_x, child.mesh_y, child.name)
            levels.append({"fanout": lv.name, **(_mesh_keys(fx, fy) or {"meshX": 1})})
            mesh = (mesh[0] * fx, mesh[1] * fy)
            continue
        cls = lv.cls
        if lv.is_dram and cls.upper() != "DRAM":
            cls = "DRAM"
        elif not lv.is_dram and cls.upper() == "DRAM":
            raise SpecError(f"level {lv.name} has class DRAM but a bounded capacity")
        entry: dict = {"name": lv.name}
        if cls:
            entry["class"] = cls
        entry.update(_mesh_keys(*rel))
        mesh = (lv.mesh_x, lv.mesh_y)
        if lv.depth is not None:
            entry["depth"] = lv.depth
        if lv.width is not None:
            entry["width"] = lv.width
        entry["datawidth"] = lv.datawidth
        if lv.width is None or lv.width % lv.datawidth or lv.width // lv.datawidth != lv.block_size:
            entry["block_size"] = lv.block_size
        for key in ("read_bandwidth", "write_bandwidth", "shared_bandwidth"):
            if getattr(lv, key) is not None:
                entry[key] = _num(getattr(lv, key))
        if lv.multiple_buffering != 1.0:
            entry["multiple_buffering"] = _num(lv.multiple_buffering)
        if lv.cluster_size != 1:
            entry["cluster_size"] = lv.cluster_size
        if lv.neighbour_links:
            entry["neighbour_links"] = True
        keep, bypass = constraints.get(lv.name, (None, None))
        if keep is not None:
            entry["keep"] = list(keep)
        if bypass is not None:
            entry["bypass"] = list(bypass)
        if lv.energy:
            entry["energy"] = _energy(lv.energy)
        levels.append(entry)
    out["levels"] = levels
    c = arch.compute
    if c.instances != c.mesh_x * c.mesh_y:
        raise SpecError(f"compute {c.name} has {c.instances} instances on a {c.mesh_x}x"
                        f"{c.mesh_y} mesh; the native format needs instances = meshX*meshY")
    compute: dict = {"name": c.name}
    if c.cls:
        compute["class"] = c.cls
    compute.update(_mesh_keys(*_relative(mesh, c.mesh_x, c.mesh_y, c.name)))
    if c.datawidth is not None:
        compute["datawidth"] = c.datawidth
    if c.energy:
        compute["energy"] = _energy(c.energy)
    out["compute"] = compute
    return out


def _plain(value):
    """YAML-located nodes -> plain dicts/lists (for safe_dump)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def arch_constraints_to_native(arch: Architecture, document: dict | None = None) -> dict | None:
    """Constraints declared on a Timeloop v0.4 architecture's nodes, plus the document's
    constraint sections (`constraints`, `architecture_constraints`, ...) -> one `constraints:`
    section (Timeloop's target list, which the mapper reads from any file), or None.
    Node keep/bypass are not here: they become the levels' `keep:`/`bypass:`."""
    from dse.spec.constraints import constraint_sections

    targets = [_plain(t) for t in arch.attributes.get("node_constraints") or []]
    for _, listed in constraint_sections(document or {}):
        targets += [_plain(t) for t in listed]
    return {"targets": targets} if targets else None


def _rank_text(rank) -> str:
    return " + ".join(d if c == 1 else f"{c}*{d}" for d, c in rank)


def problem_to_native(problem: Problem) -> dict:
    """Problem -> native `problem:` data (explicit dims and tensors; coefficients resolved)."""
    out: dict = {"version": FORMAT_VERSION, "name": problem.name,
                 "dims": {d: problem.bounds[d] for d in problem.dims}}
    if problem.coefficients:
        out["coefficients"] = dict(problem.coefficients)
    tensors: dict = {}
    for ds in problem.data_spaces:
        ranks = [_rank_text(r) for r in ds.ranks]
        if ds.read_write or ds.word_bits is not None:
            long: dict = {"ranks": ranks}
            if ds.read_write:
                long["read_write"] = True
            if ds.word_bits is not None:
                long["bits"] = ds.word_bits
            tensors[ds.name] = long
        else:
            tensors[ds.name] = ranks
    out["tensors"] = tensors
    return out


def _token(d: str, n: int, dims: tuple[str, ...]) -> str:
    """'C4', or 'K1=4' where the short form would be ambiguous (a dim ending in a digit)."""
    plain = f"{d}{n}"
    clash = any(o != d and plain.startswith(o) and plain[len(o):].isdigit() for o in dims)
    return f"{d}={n}" if d[-1].isdigit() or clash else plain


def _spatial_split(lm: LevelMapping, dims: tuple[str, ...]) -> tuple[list[str], int]:
    """Full innermost-first spatial order and X/Y split, as the model reads them."""
    order = [d for d in lm.spatial_order if d in dims]
    order += [d for d in dims if d not in order]
    return order, len(order) if lm.split is None else lm.split


def _kept(lm: LevelMapping, problem: Problem) -> list[str]:
    return [t for t in problem.tensor_names if lm.keeps(t)]


def mapping_to_native(mapping: Mapping, arch: Architecture, problem: Problem) -> list:
    """Mapping -> native `mapping:` entries (loops outermost first, unit loops left out).

    Every storage level gets an explicit `keep:` so that architecture defaults cannot change the
    meaning; fan-out levels appear only when they carry spatial loops.
    """
    dims = problem.dims
    out: list[dict] = []
    for lv, lm in zip(arch.levels, mapping.levels, strict=True):
        entry: dict = {"level": lv.name}
        temporal = [d for d in mapping.ordered(lm.temporal_order, lm.temporal, dims)
                    if lm.temporal.get(d, 1) > 1]
        if temporal:
            entry["temporal"] = " ".join(_token(d, lm.temporal[d], dims) for d in temporal)
        order, split = _spatial_split(lm, dims)
        spatial = {}
        for axis, part in (("X", order[:split]), ("Y", order[split:])):
            loops = [_token(d, lm.spatial[d], dims) for d in reversed(part)
                     if lm.spatial.get(d, 1) > 1]
            if loops:
                spatial[axis] = " ".join(loops)
        if spatial:
            entry["spatial"] = spatial
        if not lv.is_dummy:
            entry["keep"] = _kept(lm, problem)
        if len(entry) > 1:
            out.append(entry)
    return out


def _permutation(order: list[str]) -> str | list[str]:
    if all(len(d) == 1 for d in order):
        return "".join(order)
    if len(order) == 1:
        return order
    return " ".join(order)


def mapping_to_timeloop(mapping: Mapping, arch: Architecture, problem: Problem) -> list:
    """Mapping -> Timeloop mapping directives (`mapping:` list), every dim in every directive.

    Targets are the names Timeloop gives the levels (timeloop_level_name: a fan-out level is
    `inter_<Container>_spatial`, as arch_to_timeloop writes it); permutations are innermost
    first.
    """
    dims = problem.dims
    tensors = problem.tensor_names
    out: list[dict] = []
    for lv, lm in zip(arch.levels, mapping.levels, strict=True):
        kept = [] if lv.is_dummy else _kept(lm, problem)
        target = timeloop_level_name(lv)
        out.append({"target": target, "type": "datatype", "keep": kept,
                    "bypass": [t for t in tensors if t not in kept]})
        inner_first = mapping.ordered(lm.temporal_order, lm.temporal, dims)[::-1]
        out.append({"target": target, "type": "temporal",
                    "factors": " ".join(_token(d, lm.temporal.get(d, 1), dims) for d in dims),
                    "permutation": _permutation(inner_first)})
        if any(n > 1 for n in lm.spatial.values()):
            order, split = _spatial_split(lm, dims)
            out.append({"target": target, "type": "spatial",
                        "factors": " ".join(_token(d, lm.spatial.get(d, 1), dims) for d in dims),
                        "permutation": _permutation(order), "split": split})
    return out


# ----------------------------------------------------------------------------- Timeloop v0.4

_INTER = re.compile(r"^inter_(.+)_spatial$")


def timeloop_level_name(level) -> str:
    """The name Timeloop gives a level: a fan-out level is the `!Container` of that name, which
    Timeloop's front end turns into the storage level `inter_<Container>_spatial`."""
    if level.is_dummy and not _INTER.match(level.name):
        return f"inter_{level.name}_spatial"
    return level.name


def _container_name(level) -> str:
    m = _INTER.match(level.name)
    return m.group(1) if m else level.name


class TimeloopNode(dict):
    """A v0.4 architecture node; dumps as `!Container`/`!Component` (see dump_timeloop)."""

    def __init__(self, tag: str, **fields) -> None:
        super().__init__(**fields)
        self.tag = tag


def arch_to_timeloop(arch: Architecture, constraints: dict | None = None) -> dict:
    """Architecture -> Timeloop v0.4 `architecture:` (nodes with tags; dump with
    dump_timeloop). Fan-out levels become spatial `!Container`s; energies go to ert_of()."""
    constraints = constraints or {}
    system: dict = {}
    if arch.technology is not None:
        system["technology"] = arch.technology
    if arch.clock_hz:
        system["global_cycle_seconds"] = 1.0 / arch.clock_hz
    nodes: list = [TimeloopNode("!Container", name="system",
                                **({"attributes": system} if system else {}))]
    mesh = (1, 1)
    for i, lv in enumerate(arch.levels):
        if lv.is_dummy:
            child = arch.levels[i + 1] if i + 1 < len(arch.levels) else arch.compute
            fx, fy = _relative(mesh, child.mesh_x, child.mesh_y, child.name)
            if fx * fy == 1:
                raise SpecError(f"fan-out level {lv.name} fans out to 1 instance; Timeloop makes "
                                "no level for such a container, so maps could not target it")
            nodes.append(TimeloopNode("!Container", name=_container_name(lv),
                                      spatial={**({"meshX": fx} if fx > 1 else {}),
                                               **({"meshY": fy} if fy > 1 else {})}))
            mesh = (mesh[0] * fx, mesh[1] * fy)
            continue
        if (lv.mesh_x, lv.mesh_y) != mesh:
            raise SpecError(f"level {lv.name} is replicated {lv.mesh_x}x{lv.mesh_y} without a "
                            "fan-out level above it; Timeloop v0.4 replicates only through a "
                            "spatial container", hint="add a fan-out level (`fanout:`) above it")
        attrs: dict = {}
        if lv.depth is not None and not lv.is_dram:
            attrs["depth"] = lv.depth
        if lv.width is not None:
            attrs["width"] = lv.width
        attrs["datawidth"] = lv.datawidth
        if lv.width is None or lv.width // lv.datawidth != lv.block_size:
            attrs["block_size"] = lv.block_size
        for key in ("read_bandwidth", "write_bandwidth", "shared_bandwidth"):
            if getattr(lv, key) is not None:
                attrs[key] = _num(getattr(lv, key))
        if lv.multiple_buffering != 1.0:
            attrs["multiple_buffering"] = _num(lv.multiple_buffering)
        node = TimeloopNode("!Component", name=lv.name,
                            **{"class": "DRAM" if lv.is_dram else (lv.cls or "SRAM")},
                            attributes=attrs)
        keep, bypass = constraints.get(lv.name, (None, None))
        ds = {k: list(v) for k, v in (("keep", keep), ("bypass", bypass)) if v is not None}
        if ds:
            node["constraints"] = {"dataspace": ds}
        nodes.append(node)
    c = arch.compute
    if (c.mesh_x, c.mesh_y) != mesh:
        raise SpecError(f"compute {c.name} is replicated {c.mesh_x}x{c.mesh_y} without a fan-out "
                        "level above it; Timeloop v0.4 replicates only through a container")
    cattrs = {"datawidth": c.datawidth} if c.datawidth is not None else {}
    nodes.append(TimeloopNode("!Component", name=c.name, **{"class": c.cls or "intmac"},
                              **({"attributes": cattrs} if cattrs else {})))
    return {"version": 0.4, "nodes": nodes}


def ert_of(arch: Architecture) -> dict | None:
    """The architecture's energies as an Accelergy ERT (`ERT:` data), or None if it has none."""
    tables = []
    for lv in [*arch.levels, arch.compute]:
        if lv.energy:
            tables.append({"name": f"system.{lv.name}",
                           "actions": [{"name": a, "energy": _num(e.pJ)}
                                       for a, e in lv.energy.items()]})
    return {"version": 0.4, "tables": tables} if tables else None


def dump_timeloop(data: dict) -> str:
    """YAML text with TimeloopNode tags (`!Container`, `!Component`)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(TimeloopNode, lambda d, n: d.represent_mapping(n.tag, dict(n)))
    return yaml.dump(data, Dumper=Dumper, sort_keys=False)
