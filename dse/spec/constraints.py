"""Reading mapspace constraints: Timeloop's constraint targets, v0.4 per-node constraints and
native `keep:` lists, into dse.mapper.constraints.Constraints."""

from __future__ import annotations

import re

from dse.arch.architecture import Architecture
from dse.errors import SpecError, did_you_mean
from dse.mapper.constraints import Constraints, outermost_bypass_error
from dse.spec.common import (
    check_keys,
    get,
    number,
    require_list,
    require_mapping,
    where,
    whole_number,
)
from dse.workload.problem import Problem

_FACTOR = re.compile(r"^([A-Za-z_]\w*?)\s*(<=|>=|=)?\s*(\d+)$")


def _factors(value, problem: Problem, path: str, node, lenient: bool = False,
             notes: list[str] | None = None) -> list[tuple[str, str, int]]:
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
        if op == "=" and (n == 0 or n > problem.bounds[d]):
            # Timeloop (src/mapping/constraints.cpp): 0 means the whole dimension, and a factor
            # above the bound was clamped to it (until 2022-07; later builds drop it)
            if n and notes is not None:
                notes.append(f"{path}: {tok} exceeds the bound {d}={problem.bounds[d]}; "
                             f"read as {d}={problem.bounds[d]}, as Timeloop did")
            n = problem.bounds[d]
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
        # one letter a dimension, blanks skipped ("QRSC PNM"), unless every word is a dimension
        words = [w for w in re.split(r"[,\s]+", s.strip()) if w]
        items = words if all(w in problem.dims for w in words) else list("".join(words))
        if lenient:
            items = [d for d in items if d in problem.dims]
        for d in items:
            if d not in problem.dims:
                raise SpecError(f"permutation constraint names unknown dimension '{d}'",
                                key_path=path, hint=did_you_mean(d, problem.dims), **where(node))
        return tuple(items)

    return split(inner), split(outer)


# Keys of a constraint target, per type. Listed-but-unmodelled keys are refused when non-empty.
_COMMON_KEYS = {"target", "type"}
TARGET_KEYS = {
    "temporal": _COMMON_KEYS | {"factors", "permutation", "no_reuse", "rmw_first_update",
                                "default_max_factor", "default_min_factor", "remainders"},
    "spatial": _COMMON_KEYS | {"factors", "permutation", "split", "no_reuse",
                               "no_link_transfer", "default_max_factor", "default_min_factor",
                               "remainders"},
    "bypass": _COMMON_KEYS | {"keep", "bypass", "no_coalesce"},
    "utilization": _COMMON_KEYS | {"min"},
    "max_overbooked_proportion": _COMMON_KEYS | {"proportion"},
}
TARGET_KEYS["datatype"] = TARGET_KEYS["dataspace"] = TARGET_KEYS["bypass"]
TARGET_KEYS["parallelism"] = TARGET_KEYS["utilization"]
_UNMODELLED = {
    "no_reuse": "disabling reuse of a tensor", "rmw_first_update": "read-modify-write on the "
    "first update", "no_link_transfer": "disabling link transfers", "no_coalesce": "uncoalesced "
    "accesses", "default_max_factor": "a default maximum factor", "default_min_factor":
    "a default minimum factor", "remainders": "imperfect factorization (remainders)",
}


def _check_target_keys(t, kind: str, tp: str) -> None:
    check_keys(t, TARGET_KEYS[kind], tp)
    for key, what in _UNMODELLED.items():
        if get(t, key) not in (None, [], ""):
            raise SpecError(f"'{key}' ({what}) is not modelled yet", key_path=f"{tp}.{key}",
                            hint="remove it; dse's mapper would otherwise search a different "
                            "mapspace than Timeloop's", **where(t, key))


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
        tp = str(t.get("_path", tp))  # a v0.4 node constraint names its node
        target = str(get(t, "target", ""))
        kind = str(get(t, "type", "temporal"))
        if kind not in TARGET_KEYS:
            raise SpecError(f"unknown constraint type '{kind}'", key_path=f"{tp}.type",
                            expected="one of " + ", ".join(sorted(TARGET_KEYS)),
                            hint=did_you_mean(kind, TARGET_KEYS), **where(t, "type"))
        _check_target_keys(t, kind, tp)
        if kind in ("utilization", "parallelism"):
            cons.min_utilization = max(cons.min_utilization, _fraction(t, "min", tp))
            continue
        if kind == "max_overbooked_proportion":
            raise SpecError("'max_overbooked_proportion' (overbooking, a Sparseloop feature) is "
                            "not modelled yet", key_path=f"{tp}.type", **where(t, "type"),
                            hint="remove it to search dense mappings that fit the buffers")
        if target not in names and f"inter_{target}_spatial" in names:
            target = f"inter_{target}_spatial"
        if target not in names:
            raise SpecError(f"constraint targets unknown level '{target}'",
                            key_path=f"{tp}.target", hint=did_you_mean(target, names),
                            **where(t, "target"))
        lc = cons.level(target)
        if kind in ("temporal", "spatial"):
            for d, op, n in _factors(get(t, "factors"), problem, f"{tp}.factors", t, lenient,
                                     cons.notes):
                table = {("temporal", "="): lc.temporal_exact, ("temporal", "<="): lc.temporal_max,
                         ("temporal", ">="): lc.temporal_min, ("spatial", "="): lc.spatial_exact,
                         ("spatial", "<="): lc.spatial_max, ("spatial", ">="): lc.spatial_min}
                table[(kind, op)][d] = n
            inner, outer = _perm(get(t, "permutation"), problem, f"{tp}.permutation", t, lenient)
            if kind == "temporal":
                lc.perm_inner, lc.perm_outer = inner, outer
            else:
                split = get(t, "split")
                if split is not None and not inner:
                    raise SpecError("a spatial `split` needs a `permutation` (the dimensions "
                                    "before the split go to mesh X)", key_path=f"{tp}.split",
                                    **where(t, "split"))
                if split is not None:
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
            if byp and target == arch.levels[0].name:
                raise outermost_bypass_error(arch, byp, key_path=f"{tp}.bypass",
                                             **where(t, "bypass"))
            lc.keep = lc.keep | frozenset(keep)
            lc.bypass = lc.bypass | frozenset(byp)
    return cons


def _fraction(t, key: str, tp: str) -> float:
    if get(t, key) is None:
        return 0.0
    v = float(number(t, key, tp))
    if not 0.0 <= v <= 1.0:
        raise SpecError("a utilization is a fraction between 0 and 1", key_path=f"{tp}.{key}",
                        found=v, **where(t, key))
    return v


SECTION_KEYS = {"version", "targets"}
MAPSPACE_KEYS = {"version", "targets", "template"}


def constraint_sections(data) -> list[tuple[str, list]]:
    """(section key, targets) of every constraint section of a document: each key containing
    'constraints' (Timeloop merges them all) and v0.3's `mapspace:` (its mapspace constraints).
    A section's keys are checked: `targets` and `version`; `mapspace.template` other than the
    default `uber` (Ruby's imperfect factorization) is refused as not modelled."""
    out = []
    for key in data:
        name = str(key)
        if "constraints" not in name and name != "mapspace":
            continue
        node = data[key]
        if isinstance(node, dict):
            check_keys(node, MAPSPACE_KEYS if name == "mapspace" else SECTION_KEYS, name)
            template = get(node, "template")
            if template not in (None, "uber"):
                raise SpecError(f"mapspace template '{template}' (imperfect factorization) is not "
                                "modelled yet", key_path=f"{name}.template",
                                expected="uber (perfect factorization)",
                                **where(node, "template"))
            targets = get(node, "targets")
        else:
            targets = node
        if targets is not None:
            out.append((name, targets))
    return out
def constraints_from_document(data, arch: Architecture, problem: Problem,
                              arch_keep: dict, lenient: bool = False) -> Constraints:
    """The architecture's node constraints, every constraint section, architectural keeps."""
    cons = Constraints({})
    node_targets = arch.attributes.get("node_constraints")
    if node_targets:  # Timeloop v0.4 `constraints:` written on the architecture's nodes
        read_constraints(node_targets, arch, problem, "architecture.nodes", cons, lenient)
        cons.sources.append("architecture.nodes")
    for key, targets in constraint_sections(data):
        read_constraints(targets, arch, problem, key, cons, lenient)
        cons.sources.append(key)
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
