"""Conversions from dse's objects to YAML-ready data: the native format (docs/formats.md) and
Timeloop mapping directives.

The output is plain dicts/lists; dump with `yaml.safe_dump(data, sort_keys=False)`. Reading the
result back gives objects that evaluate identically (level names, dummy levels included, are
kept as they are).
"""

from __future__ import annotations

from dse.arch import Architecture, Energy
from dse.errors import SpecError
from dse.mapping import LevelMapping, Mapping
from dse.spec.native import FORMAT_VERSION, INLINE
from dse.workload import Problem


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

    Targets are the architecture's level names (for a Timeloop v0.4 arch these include the
    generated `inter_<Container>_spatial` levels); permutations are innermost first.
    """
    dims = problem.dims
    tensors = problem.tensor_names
    out: list[dict] = []
    for lv, lm in zip(arch.levels, mapping.levels, strict=True):
        kept = [] if lv.is_dummy else _kept(lm, problem)
        out.append({"target": lv.name, "type": "datatype", "keep": kept,
                    "bypass": [t for t in tensors if t not in kept]})
        inner_first = mapping.ordered(lm.temporal_order, lm.temporal, dims)[::-1]
        out.append({"target": lv.name, "type": "temporal",
                    "factors": " ".join(_token(d, lm.temporal.get(d, 1), dims) for d in dims),
                    "permutation": _permutation(inner_first)})
        if any(n > 1 for n in lm.spatial.values()):
            order, split = _spatial_split(lm, dims)
            out.append({"target": lv.name, "type": "spatial",
                        "factors": " ".join(_token(d, lm.spatial.get(d, 1), dims) for d in dims),
                        "permutation": _permutation(order), "split": split})
    return out
