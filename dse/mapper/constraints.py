"""Mapspace constraints: Timeloop's `constraints`/`architecture_constraints`/`mapspace_constraints`
targets, v0.4 per-node constraints and native `keep:` lists, read into one plain object.

Factor constraints use `D=n` (exact), `D<=n`, `D>=n`; a partial permutation lists the innermost
loops in order (`prefix _ suffix` also fixes the outermost ones); a spatial `split` with a
permutation fixes which dims may go to mesh X (the first `split`) or Y.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dse.arch import Architecture
from dse.errors import SpecError, did_you_mean
from dse.spec.common import get, number, require_list, require_mapping, where, whole_number
from dse.workload import Problem

_FACTOR = re.compile(r"^([A-Za-z_]\w*?)\s*(<=|>=|=)?\s*(\d+)$")


@dataclass
class LevelConstraints:
    temporal_exact: dict[str, int] = field(default_factory=dict)
    temporal_max: dict[str, int] = field(default_factory=dict)
    temporal_min: dict[str, int] = field(default_factory=dict)
    spatial_exact: dict[str, int] = field(default_factory=dict)
    spatial_max: dict[str, int] = field(default_factory=dict)
    spatial_min: dict[str, int] = field(default_factory=dict)
    perm_inner: tuple[str, ...] = ()  # innermost-first fixed prefix
    perm_outer: tuple[str, ...] = ()  # fixed outermost loops, innermost-first
    x_only: frozenset[str] = frozenset()
    y_only: frozenset[str] = frozenset()
    keep: frozenset[str] = frozenset()  # must keep
    bypass: frozenset[str] = frozenset()  # must bypass
    min_utilization: float = 0.0


@dataclass
class Constraints:
    levels: dict[str, LevelConstraints]
    min_utilization: float = 0.0  # over all PEs
    sources: list[str] = field(default_factory=list)

    def level(self, name: str) -> LevelConstraints:
        return self.levels.setdefault(name, LevelConstraints())


def _factors(value, problem: Problem, path: str, node, lenient: bool = False
             ) -> list[tuple[str, str, int]]:
    if value is None:
        return []
    if isinstance(value, str):
        tokens = [t for t in re.split(r"[,\s]+", value.strip()) if t]
    elif isinstance(value, list):
        tokens = [str(t).replace(" ", "") for t in value]
    else:
        raise SpecError("factors must be a string like 'C=4 M<=8' or a list", key_path=path,
                        found=value, **where(node))
    out = []
    for tok in tokens:
        m = _FACTOR.match(tok)
        if not m:
            raise SpecError(f"cannot read factor constraint '{tok}'", key_path=path,
                            expected="D=n, D<=n or D>=n", **where(node))
        d, op, n = m.group(1), m.group(2) or "=", int(m.group(3))
        if d not in problem.dims and lenient:
            continue
        if d not in problem.dims:
            raise SpecError(f"factor constraint for unknown dimension '{d}'", key_path=path,
                            hint=did_you_mean(d, problem.dims), **where(node))
        if op == "=" and n == 0:
            raise SpecError(f"'{tok}' (the remaining factor) is not supported by dse's mapper",
                            key_path=path, hint="give the number, or a <= bound", **where(node))
        out.append((d, op, n))
    return out


def _perm(value, problem: Problem, path: str, node, lenient: bool = False
          ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if value is None:
        return (), ()
    if isinstance(value, list):
        text = " ".join(str(v) for v in value)
    else:
        text = str(value)
    inner, _, outer = text.partition("_")

    def split(s: str) -> tuple[str, ...]:
        s = s.strip()
        items = s.split() if (" " in s or "," in s) else list(s)
        items = [i.strip(",") for i in items if i.strip(",")]
        if lenient:
            items = [d for d in items if d in problem.dims]
        for d in items:
            if d not in problem.dims:
                raise SpecError(f"permutation constraint names unknown dimension '{d}'",
                                key_path=path, hint=did_you_mean(d, problem.dims), **where(node))
        return tuple(items)

    return split(inner), split(outer)


def read_constraints(targets: list, arch: Architecture, problem: Problem, path: str,
                     into: Constraints | None = None, lenient: bool = False) -> Constraints:
    """Timeloop constraint targets -> Constraints (merged into `into` when given). `lenient`
    skips dimensions and tensors the problem does not have (one constraint file serves every
    layer type of a network: a residual add has no weights and no R/S loops)."""
    cons = into or Constraints({})
    names = list(arch.level_names())
    for j, t in enumerate(require_list(targets, path)):
        tp = f"{path}[{j}]"
        require_mapping(t, tp)
        target = str(get(t, "target", ""))
        kind = str(get(t, "type", "temporal"))
        if kind in ("utilization", "parallelism"):
            low = number(t, "min", tp) if get(t, "min") is not None else 0
            cons.min_utilization = max(cons.min_utilization, float(low))
            continue
        if kind == "max_overbooked_proportion":
            continue
        if target not in names and f"inter_{target}_spatial" in names:
            target = f"inter_{target}_spatial"
        if target not in names:
            raise SpecError(f"constraint targets unknown level '{target}'",
                            key_path=f"{tp}.target", hint=did_you_mean(target, names),
                            **where(t, "target"))
        lc = cons.level(target)
        if kind in ("temporal", "spatial"):
            for d, op, n in _factors(get(t, "factors"), problem, f"{tp}.factors", t, lenient):
                table = {("temporal", "="): lc.temporal_exact, ("temporal", "<="): lc.temporal_max,
                         ("temporal", ">="): lc.temporal_min, ("spatial", "="): lc.spatial_exact,
                         ("spatial", "<="): lc.spatial_max, ("spatial", ">="): lc.spatial_min}
                table[(kind, op)][d] = n
            inner, outer = _perm(get(t, "permutation"), problem, f"{tp}.permutation", t, lenient)
            if kind == "temporal":
                lc.perm_inner, lc.perm_outer = inner, outer
            else:
                split = get(t, "split")
                if split is not None and inner:
                    k = whole_number(t, "split", tp, 0, minimum=0)
                    listed = list(inner)
                    lc.x_only = frozenset(listed[:k])
                    lc.y_only = frozenset(listed[k:])
        elif kind in ("bypass", "datatype", "dataspace"):
            keep = get(t, "keep") or []
            byp = get(t, "bypass") or []
            if lenient:
                keep = [x for x in keep if x in problem.tensor_names]
                byp = [x for x in byp if x in problem.tensor_names]
            for name in list(keep) + list(byp):
                if name not in problem.tensor_names:
                    raise SpecError(f"unknown tensor '{name}'", key_path=tp,
                                    hint=did_you_mean(name, problem.tensor_names), **where(t))
            lc.keep = lc.keep | frozenset(keep)
            lc.bypass = lc.bypass | frozenset(byp)
        else:
            raise SpecError(f"unknown constraint type '{kind}'", key_path=f"{tp}.type",
                            hint=did_you_mean(kind, ["temporal", "spatial", "bypass"]),
                            **where(t, "type"))
    return cons


def constraints_from_document(data, arch: Architecture, problem: Problem,
                              arch_keep: dict, lenient: bool = False) -> Constraints:
    """Every key containing 'constraints' (Timeloop merges them all) plus architectural keeps."""
    cons = Constraints({})
    for key in data:
        if "constraints" not in str(key):
            continue
        node = data[key]
        targets = get(node, "targets") if isinstance(node, dict) else node
        if targets is None:
            continue
        read_constraints(targets, arch, problem, str(key), cons, lenient)
        cons.sources.append(str(key))
    for level, (keep, bypass) in arch_keep.items():
        if level not in arch.level_names():
            continue
        lc = cons.level(level)
        if keep is not None:
            lc.keep = lc.keep | frozenset(keep)
            lc.bypass = lc.bypass | frozenset(t for t in problem.tensor_names if t not in keep)
        if bypass:
            lc.bypass = lc.bypass | frozenset(bypass)
    return cons
