"""Read Sparseloop's inputs (v0.4 processed form): tensor densities and `sparse_optimizations`.

Supported: density models fixed_structured / hypergeometric; per-level representation formats
(UOP, CP, RLE, B, UB per rank, `flattened_rankIDs`, metadata/payload word bits); gating and
skipping (`target`, `condition_on`). Anything else is refused with its file:line and key.
"""

from __future__ import annotations

from dse.arch.architecture import Architecture
from dse.errors import SpecError, did_you_mean
from dse.model.density import SUPPORTED_DISTRIBUTIONS, DensityModel
from dse.model.formats import FORMATS, RankFormat
from dse.model.sparse import ActionOptimization, SparseSpec
from dse.spec.common import check_keys, get, require_list, require_mapping, where
from dse.spec.timeloop import not_modelled
from dse.workload.problem import Problem

DENSITY_KEYS = {"distribution", "density", "band_width", "workload_tensor_size"}
TARGET_KEYS = {"name", "representation_format", "action_optimization", "compute_optimization"}
RANK_KEYS = {"format", "flattened_rankIDs", "flattened_rank_ids", "metadata_word_bits",
             "payload_word_bits"}


def has_sparse_inputs(data) -> bool:
    prob = data.get("problem") if isinstance(data, dict) else None
    inst = prob.get("instance") if isinstance(prob, dict) else None
    dens = inst.get("densities") if isinstance(inst, dict) else None
    return bool(dens) or bool(data.get("sparse_optimizations"))


def read_sparse(data, problem: Problem, arch: Architecture) -> SparseSpec:
    """Densities from `problem.instance.densities`, SAFs from top-level `sparse_optimizations`."""
    densities: dict[str, DensityModel] = {}
    prob = data.get("problem") or {}
    inst = prob.get("instance") if isinstance(prob, dict) else None
    tensors = [ds.name for ds in problem.data_spaces]
    dens = inst.get("densities") if isinstance(inst, dict) else None
    if dens:
        path = "problem.instance.densities"
        require_mapping(dens, path, inst, "densities")
        for name, node in dens.items():
            if str(name).startswith("_"):
                continue
            if name not in tensors:
                raise SpecError(f"density for unknown tensor '{name}'", key_path=f"{path}.{name}",
                                expected=f"one of {', '.join(tensors)}",
                                hint=did_you_mean(name, tensors), **where(dens, name))
            densities[str(name)] = _density(node, f"{path}.{name}", dens, name,
                                            problem.data_space(name).size(problem.bounds))
    so = data.get("sparse_optimizations")
    formats: dict[tuple[str, str], tuple[RankFormat, ...]] = {}
    actions: list[ActionOptimization] = []
    compute_node = None
    compute_flags = (False, False)
    if so:
        path = "sparse_optimizations"
        require_mapping(so, path, data, "sparse_optimizations")
        check_keys(so, {"targets", "version"}, path)
        levels = [lv.name for lv in arch.levels]
        for j, tgt in enumerate(require_list(get(so, "targets") or [], f"{path}.targets", so,
                                             "targets")):
            tp = f"{path}.targets[{j}]"
            require_mapping(tgt, tp)
            check_keys(tgt, TARGET_KEYS, tp)
            level = str(get(tgt, "name"))
            if level == arch.compute.name:
                check_keys(tgt, {"name", "compute_optimization"}, tp)
                compute_flags = _compute_optimization(tgt, tp)
                compute_node = tgt
                continue
            if level not in levels:
                raise SpecError(f"sparse optimization for unknown level '{level}'",
                                key_path=f"{tp}.name", expected=f"one of {', '.join(levels)}",
                                hint=did_you_mean(level, levels), **where(tgt, "name"))
            if get(tgt, "compute_optimization"):
                raise SpecError(f"compute_optimization belongs to the compute level "
                                f"{arch.compute.name}, not to storage level {level}",
                                key_path=f"{tp}.compute_optimization",
                                **where(tgt, "compute_optimization"))
            rf = get(tgt, "representation_format")
            if rf:
                _formats(rf, f"{tp}.representation_format", tgt, level, tensors, formats)
            for k, ao in enumerate(require_list(get(tgt, "action_optimization") or [],
                                                f"{tp}.action_optimization", tgt,
                                                "action_optimization")):
                actions.extend(_action(ao, f"{tp}.action_optimization[{k}]", level, tensors))
    gating = skipping = False
    if compute_node is not None:
        gating, skipping = compute_flags
        operand_saf = [a for a in actions if not problem.data_space(a.target).read_write]
        if (gating or skipping) and operand_saf:
            raise not_modelled(
                "compute-level optimization together with storage gating/skipping of an "
                f"operand ({operand_saf[0].target} at {operand_saf[0].level})", compute_node,
                "compute_optimization", "sparse_optimizations.targets")
    return SparseSpec(densities, formats, tuple(actions), gating, skipping)


COMPUTE_TYPES = {"gate_on_zero_operand": "gating", "gating": "gating",
                 "skip_on_not_aligned_operands": "skipping", "skipping": "skipping"}


def _compute_optimization(tgt, path: str) -> tuple[bool, bool]:
    kinds = set()
    for j, opt in enumerate(require_list(get(tgt, "compute_optimization") or [],
                                         f"{path}.compute_optimization", tgt,
                                         "compute_optimization")):
        op = f"{path}.compute_optimization[{j}]"
        require_mapping(opt, op)
        check_keys(opt, {"type"}, op)
        kind = str(get(opt, "type")).replace("-", "_")
        if kind not in COMPUTE_TYPES:
            raise SpecError(f"unknown compute optimization '{kind}'", key_path=f"{op}.type",
                            expected=" or ".join(sorted(COMPUTE_TYPES)),
                            hint=did_you_mean(kind, COMPUTE_TYPES), **where(opt, "type"))
        kinds.add(COMPUTE_TYPES[kind])
    return "gating" in kinds, "skipping" in kinds


def _density(node, path: str, parent, key, tensor_size: int) -> DensityModel:
    if isinstance(node, (int, float)):
        return DensityModel("fixed_structured", _fraction(node, path, parent, key))
    require_mapping(node, path, parent, key)
    check_keys(node, DENSITY_KEYS, path)
    dist = str(get(node, "distribution", "fixed_structured"))
    if dist not in SUPPORTED_DISTRIBUTIONS:
        if dist == "banded":
            raise not_modelled("banded density model", node, "distribution", path)
        raise SpecError(f"unknown density distribution '{dist}'", key_path=f"{path}.distribution",
                        expected=" or ".join(SUPPORTED_DISTRIBUTIONS),
                        hint=did_you_mean(dist, SUPPORTED_DISTRIBUTIONS),
                        **where(node, "distribution"))
    d = _fraction(get(node, "density", 1.0), f"{path}.density", node, "density")
    return DensityModel(dist, d, tensor_size)


def _fraction(value, path: str, parent, key) -> float:
    try:
        d = float(value)
    except (TypeError, ValueError):
        d = -1.0
    if not 0.0 < d <= 1.0:
        raise SpecError("a density is a number in (0, 1]", key_path=path, found=value,
                        **where(parent, key))
    return d


def _formats(rf, path: str, parent, level: str, tensors: list[str],
             out: dict[tuple[str, str], tuple[RankFormat, ...]]) -> None:
    require_mapping(rf, path, parent, "representation_format")
    check_keys(rf, {"data_spaces"}, path)
    for j, ds in enumerate(require_list(get(rf, "data_spaces") or [], f"{path}.data_spaces", rf,
                                        "data_spaces")):
        dp = f"{path}.data_spaces[{j}]"
        require_mapping(ds, dp)
        check_keys(ds, {"name", "ranks"}, dp)
        name = str(get(ds, "name"))
        if name not in tensors:
            raise SpecError(f"format for unknown tensor '{name}'", key_path=f"{dp}.name",
                            expected=f"one of {', '.join(tensors)}",
                            hint=did_you_mean(name, tensors), **where(ds, "name"))
        ranks = []
        for r, rank in enumerate(require_list(get(ds, "ranks") or [], f"{dp}.ranks", ds,
                                              "ranks")):
            rp = f"{dp}.ranks[{r}]"
            require_mapping(rank, rp)
            check_keys(rank, RANK_KEYS, rp)
            fmt = str(get(rank, "format", "")).upper()
            if fmt not in FORMATS:
                raise SpecError(f"unknown rank format '{get(rank, 'format')}'",
                                key_path=f"{rp}.format", expected=" ".join(FORMATS),
                                hint=did_you_mean(fmt, FORMATS), **where(rank, "format"))
            flat = get(rank, "flattened_rankIDs", get(rank, "flattened_rank_ids")) or []
            dims = tuple(str(d) for d in flat[0]) if flat else ()
            ranks.append(RankFormat(fmt, dims, _bits(rank, "metadata_word_bits", rp),
                                    _bits(rank, "payload_word_bits", rp)))
        out[(level, name)] = tuple(ranks)


def _bits(rank, key: str, path: str) -> int | None:
    v = get(rank, key)
    if v is None:
        return None
    if not isinstance(v, int) or v < 0:
        raise SpecError("word bits are a non-negative integer", key_path=f"{path}.{key}",
                        found=v, **where(rank, key))
    return v


def _action(ao, path: str, level: str, tensors: list[str]) -> list[ActionOptimization]:
    require_mapping(ao, path)
    check_keys(ao, {"type", "options"}, path)
    kind = str(get(ao, "type"))
    if kind not in ("gating", "skipping"):
        if kind == "spatial_skipping":
            raise not_modelled("spatial skipping", ao, "type", path)
        raise SpecError(f"unknown action optimization '{kind}'", key_path=f"{path}.type",
                        expected="gating or skipping", hint=did_you_mean(kind, ["gating",
                                                                               "skipping"]),
                        **where(ao, "type"))
    out = []
    for j, opt in enumerate(require_list(get(ao, "options") or [], f"{path}.options", ao,
                                         "options")):
        op = f"{path}.options[{j}]"
        require_mapping(opt, op)
        check_keys(opt, {"target", "condition_on"}, op)
        target = str(get(opt, "target"))
        cond = [str(c) for c in require_list(get(opt, "condition_on") or [],
                                             f"{op}.condition_on", opt, "condition_on")]
        for name, key in [(target, "target")] + [(c, "condition_on") for c in cond]:
            if name not in tensors:
                raise SpecError(f"unknown tensor '{name}'", key_path=f"{op}.{key}",
                                expected=f"one of {', '.join(tensors)}",
                                hint=did_you_mean(name, tensors), **where(opt, key))
        out.append(ActionOptimization(kind, level, target, tuple(cond)))
    return out


def refuse_sparse_search(data, command: str = "map") -> None:
    """Searches (`dse map/run/sweep`) evaluate dense designs only: sparse inputs are refused
    at the key that makes them sparse."""
    if not has_sparse_inputs(data):
        return
    so = data.get("sparse_optimizations")
    if so:
        node, key, path = data, "sparse_optimizations", "sparse_optimizations"
    else:
        node = data["problem"]["instance"]
        key, path = "densities", "problem.instance.densities"
    raise SpecError(f"'{key}': sparse search is not modelled yet (dse {command})",
                    key_path=path, hint="use `dse model` to evaluate a sparse design with a "
                    "fixed mapping (docs/sparse.md)", **where(node, key))
