"""Read Sparseloop's inputs (v0.4 processed form): tensor densities and `sparse_optimizations`.

Supported: density models fixed_structured / hypergeometric / banded; per-level representation
formats (UOP, CP, RLE, B, UB per rank, `flattened_rankIDs`, metadata/payload word bits); gating
and skipping (`target`, `condition_on`). Anything else is refused with its file:line and key.
One dse extension: `structured: {n, m}` on a format's data space declares N:M structured
sparsity (`apply_structured`; docs/sparse.md "N:M structured sparsity").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dse.arch.architecture import Architecture
from dse.errors import SpecError, did_you_mean
from dse.model.density import SUPPORTED_DISTRIBUTIONS, DensityModel, banded
from dse.model.formats import FORMATS, RankFormat
from dse.model.sparse import ActionOptimization, SparseSpec
from dse.spec.common import check_keys, get, require_list, require_mapping, where
from dse.spec.timeloop import not_modelled
from dse.workload.problem import Problem

DENSITY_KEYS = {"distribution", "density", "band_width", "workload_tensor_size"}
TARGET_KEYS = {"name", "representation_format", "action_optimization", "compute_optimization"}
RANK_KEYS = {"format", "flattened_rankIDs", "flattened_rank_ids", "metadata_word_bits",
             "payload_word_bits"}
FORMAT_DATA_SPACE_KEYS = {"name", "ranks", "structured"}
STRUCTURED_KEYS = {"n", "m"}


@dataclass(frozen=True)
class Structured:
    """A design's N:M structured sparsity support for one tensor (a dse extension of
    Sparseloop's format entry): the hardware keeps exactly `n` slots of every `m` elements,
    at the `levels` whose format of the tensor is declared so. `file`/`line`/`key_path`: the
    first declaration, for errors."""

    tensor: str
    n: int
    m: int
    levels: tuple[str, ...]
    file: str | None = None
    line: int | None = None
    key_path: str = ""

    @property
    def label(self) -> str:
        return f"{self.n}:{self.m}"

    @property
    def density(self) -> float:
        return self.n / self.m


def densities_node(data):
    """(mapping holding `densities`, its key path) — Timeloop's `problem.instance.densities` or a
    native problem's `problem.densities` (`workload:` is the native alias of `problem:`);
    (None, path) when neither is given."""
    prob = data.get("problem", data.get("workload")) if isinstance(data, dict) else None
    if not isinstance(prob, dict):
        return None, "problem.instance.densities"
    inst = prob.get("instance")
    if isinstance(inst, dict) and "densities" in inst:
        return inst, "problem.instance.densities"
    if "densities" in prob:
        return prob, "problem.densities"
    return None, "problem.instance.densities"


def has_sparse_inputs(data) -> bool:
    holder, _ = densities_node(data)
    dens = holder.get("densities") if holder is not None else None
    return bool(dens) or bool(data.get("sparse_optimizations"))


def read_sparse(data, problem: Problem, arch: Architecture,
                absent: frozenset[str] = frozenset(),
                structured_out: dict[str, Structured] | None = None) -> SparseSpec:
    """Densities from `problem.instance.densities`, SAFs from top-level `sparse_optimizations`.
    Formats and optimizations naming a tensor in `absent` (one this layer does not have) are
    left out; any other unknown tensor is an error. N:M structured declarations are applied
    to the densities read here (`apply_structured`), or, when `structured_out` is given, put
    there for the caller to apply to densities given elsewhere."""
    densities: dict[str, DensityModel] = {}
    inst, path = densities_node(data)
    tensors = [ds.name for ds in problem.data_spaces]
    dens = inst.get("densities") if inst is not None else None
    if dens:
        require_mapping(dens, path, inst, "densities")
        for name, node in dens.items():
            if str(name).startswith("_"):
                continue
            if name not in tensors:
                raise SpecError(f"density for unknown tensor '{name}'", key_path=f"{path}.{name}",
                                expected=f"one of {', '.join(tensors)}",
                                hint=did_you_mean(name, tensors), **where(dens, name))
            ds = problem.data_space(name)
            densities[str(name)] = read_density(node, f"{path}.{name}", dens, name,
                                                ds.size(problem.bounds),
                                                ds.extents(problem.bounds))
    so = data.get("sparse_optimizations")
    formats: dict[tuple[str, str], tuple[RankFormat, ...]] = {}
    structured: dict[str, Structured] = {}
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
                _formats(rf, f"{tp}.representation_format", tgt, level, tensors, formats,
                         absent, structured, problem)
                _no_banded_format(formats, densities, level, rf, f"{tp}.representation_format")
            for k, ao in enumerate(require_list(get(tgt, "action_optimization") or [],
                                                f"{tp}.action_optimization", tgt,
                                                "action_optimization")):
                actions.extend(_action(ao, f"{tp}.action_optimization[{k}]", level, tensors,
                                       absent))
    gating = skipping = False
    if compute_node is not None:
        gating, skipping = compute_flags
        operand_saf = [a for a in actions if not problem.data_space(a.target).read_write]
        n_operands = sum(1 for ds in problem.data_spaces if not ds.read_write)
        if (gating or skipping) and operand_saf and n_operands != 2:
            raise not_modelled(
                "compute-level optimization together with storage gating/skipping of an "
                f"operand ({operand_saf[0].target} at {operand_saf[0].level}) with "
                f"{n_operands} operands (Sparseloop conditions two)", compute_node,
                "compute_optimization", "sparse_optimizations.targets")
    spec = SparseSpec(densities, formats, tuple(actions), gating, skipping)
    if structured_out is not None:
        structured_out.update(structured)
        return spec
    return apply_structured(spec, structured, problem, _density_where(data))


def _density_where(data):
    """tensor -> (file, line, key path) of its density entry in `data` (for errors)."""
    inst, path = densities_node(data)
    dens = inst.get("densities") if inst is not None else None
    if not isinstance(dens, dict):
        return {}
    out = {}
    for k in dens:
        loc = where(dens, k)
        out[str(k)] = (loc["file"], loc["line"], f"{path}.{k}")
    return out


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


def read_density(node, path: str, parent, key, tensor_size: int,
                 extents: tuple[int, ...] | None = None) -> DensityModel:
    """One tensor's density: a number (fixed_structured), {distribution, density}, or
    {distribution: banded, band_width} (`extents`: the tensor's size per rank, which banded
    needs; None where the tensor's shape is not known, e.g. a network layer's densities)."""
    if isinstance(node, (int, float)):
        return DensityModel("fixed_structured", _fraction(node, path, parent, key))
    require_mapping(node, path, parent, key)
    dist = str(get(node, "distribution", "fixed_structured"))
    if dist == "banded":
        return _read_banded(node, path, extents)
    check_keys(node, DENSITY_KEYS, path)
    if get(node, "band_width", 0) not in (0, None):
        # Sparseloop's processed inputs carry band_width: 0 on every density; another value
        # would mean a band on a model that has none
        raise SpecError(f"band_width applies to the banded density model, not to '{dist}'",
                        key_path=f"{path}.band_width", found=get(node, "band_width"),
                        hint="distribution: banded", **where(node, "band_width"))
    if dist not in SUPPORTED_DISTRIBUTIONS:
        raise SpecError(f"unknown density distribution '{dist}'", key_path=f"{path}.distribution",
                        expected=" or ".join(SUPPORTED_DISTRIBUTIONS),
                        hint=did_you_mean(dist, SUPPORTED_DISTRIBUTIONS),
                        **where(node, "distribution"))
    d = _fraction(get(node, "density", 1.0), f"{path}.density", node, "density")
    return DensityModel(dist, d, tensor_size)


def _read_banded(node, path: str, extents: tuple[int, ...] | None) -> DensityModel:
    """Sparseloop's banded model: nonzeros within `band_width` of the diagonal of a square
    2-D tensor (band_width 0, a diagonal matrix, when not given; the density follows from the
    band: a `density` other than the band's is refused)."""
    check_keys(node, DENSITY_KEYS, path)
    if extents is None:
        raise not_modelled("banded density on a network layer (its tensor's shape is needed; "
                           "use dse model)", node, "distribution", path)
    if len(extents) != 2 or extents[0] != extents[1]:
        shape = " x ".join(str(x) for x in extents)
        raise SpecError("the banded density model needs a square 2-D tensor (as Sparseloop's)",
                        key_path=f"{path}.distribution", expected="N x N", found=shape,
                        **where(node, "distribution"))
    value = get(node, "band_width", 0)
    side = int(extents[0])
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < side:
        raise SpecError("band_width is an integer from 0 (a diagonal matrix) to side - 1",
                        key_path=f"{path}.band_width", expected=f"0 .. {side - 1}",
                        found=value, **where(node, "band_width"))
    model = banded(side, value)
    given = get(node, "density")
    if given is not None and not (isinstance(given, (int, float))
                                  and abs(float(given) - model.density) <= 1e-6):
        raise SpecError("a banded tensor's density follows from its band",
                        key_path=f"{path}.density", expected=f"{model.density:.6g} (or none)",
                        found=given, **where(node, "density"))
    size = get(node, "workload_tensor_size")
    if size not in (None, 0, model.tensor_size):
        raise SpecError("workload_tensor_size differs from the tensor's size",
                        key_path=f"{path}.workload_tensor_size",
                        expected=str(model.tensor_size), found=size,
                        **where(node, "workload_tensor_size"))
    return model


def _no_banded_format(formats, densities, level: str, node, path: str) -> None:
    """Formats on a banded tensor need the shape of every fiber, which the format model does
    not pass on: refused."""
    for (lv, t) in formats:
        if lv == level and densities.get(t) is not None \
                and densities[t].distribution == "banded":
            raise not_modelled(f"a representation format on banded tensor {t}", node,
                               "data_spaces", path)


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
             out: dict[tuple[str, str], tuple[RankFormat, ...]],
             absent: frozenset[str] = frozenset(),
             structured: dict[str, Structured] | None = None,
             problem: Problem | None = None) -> None:
    require_mapping(rf, path, parent, "representation_format")
    check_keys(rf, {"data_spaces"}, path)
    for j, ds in enumerate(require_list(get(rf, "data_spaces") or [], f"{path}.data_spaces", rf,
                                        "data_spaces")):
        dp = f"{path}.data_spaces[{j}]"
        require_mapping(ds, dp)
        check_keys(ds, FORMAT_DATA_SPACE_KEYS, dp)
        name = str(get(ds, "name"))
        if name in absent:
            continue
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
        if "structured" in ds and structured is not None:  # present, even left empty
            _structured(ds, dp, level, name, tuple(ranks), structured, problem)


def _structured(ds, path: str, level: str, tensor: str, ranks: tuple[RankFormat, ...],
                out: dict[str, Structured], problem: Problem | None) -> None:
    """Read `structured: {n, m}` of one format entry into `out` (one declaration per tensor:
    every level that declares it must give the same N:M)."""
    node = get(ds, "structured")
    sp = f"{path}.structured"
    require_mapping(node, sp, ds, "structured")
    check_keys(node, STRUCTURED_KEYS, sp)
    nm = {}
    for key in ("n", "m"):
        v = get(node, key)
        if v is None:
            raise SpecError(f"structured sparsity needs '{key}'", key_path=f"{sp}.{key}",
                            expected="{n: N, m: M}, e.g. {n: 2, m: 4} for 2:4",
                            **where(ds, "structured"))
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SpecError(f"'{key}' of N:M structured sparsity is a whole number >= 1",
                            key_path=f"{sp}.{key}", found=v, **where(node, key))
        nm[key] = v
    n, m = nm["n"], nm["m"]
    if n >= m:
        raise SpecError("N:M structured sparsity keeps fewer slots than the group has",
                        key_path=sp, expected="n < m (e.g. n: 2, m: 4)",
                        found=f"n: {n}, m: {m}", **where(ds, "structured"))
    if not any(r.compressed for r in ranks):
        raise SpecError(f"structured sparsity stores only the kept slots of {tensor}: its "
                        "format needs a rank that does not store zeros",
                        key_path=f"{path}.ranks", expected="a CP, RLE or B rank",
                        found=" ".join(r.format for r in ranks) or "no ranks",
                        **where(ds, "structured"))
    if problem is not None and problem.data_space(tensor).read_write:
        raise SpecError(f"structured sparsity is a property of an operand; {tensor} is the "
                        "tensor this layer writes", key_path=sp,
                        expected="an operand ("
                        + ", ".join(d.name for d in problem.data_spaces if not d.read_write)
                        + ")", **where(ds, "structured"))
    first = out.get(tensor)
    if first is None:
        out[tensor] = Structured(tensor, n, m, (level,), **where(ds, "structured"),
                                 key_path=sp)
    elif (first.n, first.m) != (n, m):
        at = f" ({first.file}:{first.line})" if first.file else ""
        raise SpecError(f"{tensor} is declared {n}:{m} here but {first.label} at "
                        f"{first.levels[0]}{at}: the hardware has one N:M pattern per tensor",
                        key_path=sp, expected=f"n: {first.n}, m: {first.m}",
                        **where(ds, "structured"))
    else:
        out[tensor] = replace(first, levels=first.levels + (level,))


def apply_structured(spec: SparseSpec, structured: dict[str, Structured], problem: Problem,
                     density_where: dict | None = None, layer: str | None = None
                     ) -> SparseSpec:
    """The densities and formats the hardware actually works with, for each tensor it runs
    N:M structured-sparse (docs/sparse.md "N:M structured sparsity"):

    * fixed_structured d <= N/M: stored and processed as N of every M (the extra zeros are kept
      as values): the tensor's density model becomes fixed_structured N/M;
    * dense (no density, or 1): the hardware's dense mode, the declared formats are not used;
    * anything else (d > N/M, or a distribution that is not N:M-structured) cannot run on this
      hardware as described: SpecError.

    `density_where`: tensor -> (file, line, key path) of its density, for errors; `layer`: the
    network layer's name, for errors."""
    if not structured:
        return spec
    densities = dict(spec.densities)
    formats = dict(spec.formats)
    notes = list(spec.notes)
    tensors = {ds.name for ds in problem.data_spaces}
    for name, st in structured.items():
        if name not in tensors:
            continue
        model = densities.get(name)
        if model is None or model.dense:
            for level in st.levels:
                formats.pop((level, name), None)
            notes.append(f"note: {name} is dense: the design runs it in its dense mode, "
                         f"uncompressed (its {st.label} formats at {', '.join(st.levels)} are "
                         "not used)")
            continue
        file, line, key_path = (density_where or {}).get(
            name, (st.file, st.line, st.key_path))
        of = f" in layer '{layer}'" if layer else ""
        declared = (f"declared at {st.file}:{st.line}" if st.file and file != st.file
                    else "declared in the design")
        if model.distribution != "fixed_structured":
            raise SpecError(
                f"{name}{of} has a {model.distribution} density {model.density:g} "
                f"(nonzeros placed without an N:M pattern), but the design runs {name} "
                f"{st.label} structured-sparse ({declared}): the hardware cannot run it "
                "sparse as given", file=file, line=line, key_path=key_path,
                expected=f"distribution: fixed_structured with density <= {st.density:g}",
                hint=f"prune {name} {st.label} and give it as fixed_structured, or use a "
                "design without the structured declaration")
        if model.density > st.density + 1e-9:
            raise SpecError(
                f"density {model.density:g} of {name}{of} exceeds the {st.label} structured "
                f"sparsity the design supports ({st.density:g}, {declared})",
                file=file, line=line, key_path=key_path,
                expected=f"a density <= {st.density:g}, or 1 (dense)",
                hint=f"prune {name} {st.label} or use a dense design")
        if model.density < st.density - 1e-9:
            notes.append(f"note: {name} density {model.density:g} runs {st.label}: the "
                         f"hardware keeps {st.n} of every {st.m} (the extra zeros are stored "
                         f"and processed as values), modelled as fixed_structured "
                         f"{st.density:g}")
            densities[name] = replace(model, density=st.density)
    return replace(spec, densities=densities, formats=formats, notes=tuple(notes))


def _bits(rank, key: str, path: str) -> int | None:
    v = get(rank, key)
    if v is None:
        return None
    if not isinstance(v, int) or v < 0:
        raise SpecError("word bits are a non-negative integer", key_path=f"{path}.{key}",
                        found=v, **where(rank, key))
    return v


def _action(ao, path: str, level: str, tensors: list[str],
            absent: frozenset[str] = frozenset()) -> list[ActionOptimization]:
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
        if absent & {target, *cond}:
            continue  # nothing to gate, or nothing to condition on, in this layer
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
        node, path = densities_node(data)
        key = "densities"
    raise SpecError(f"'{key}': sparse search is not modelled yet (dse {command})",
                    key_path=path, hint="use `dse model` to evaluate a sparse design with a "
                    "fixed mapping (docs/sparse.md)", **where(node, key))


def refuse_sparse_network(network, command: str = "run") -> None:
    """Network runs evaluate dense designs only: a layer with densities is refused (not run
    dense), at the layer's file:line."""
    layer = next((lay for lay in network.layers if lay.densities), None)
    if layer is None:
        return
    raise SpecError(f"layer '{layer.name}' has densities, but this design's model (dse "
                    f"{command}) evaluates dense layers only: the sparse step is not modelled "
                    "there yet", file=layer.file, line=layer.line,
                    key_path=f"network.layers ({layer.name}).densities",
                    hint="evaluate one layer with `dse model` (export it with `dse workload "
                         "export NAME --timeloop`; docs/sparse.md), or use a network without "
                         "densities to run it dense")
def layer_sparse_spec(arch_data, densities: dict | None, problem: Problem,
                      arch: Architecture, at: tuple[str | None, int | None] = (None, None)
                      ) -> SparseSpec | None:
    """The sparse spec of one network layer on an architecture: the architecture file's
    `sparse_optimizations` and the layer's densities (dse.workload.network.Layer.densities:
    tensor -> d (fixed_structured) or {distribution, density}); None when neither is given
    (the layer runs dense). `at`: the layer's file and line, where a density the design
    cannot run is reported."""
    so = arch_data.get("sparse_optimizations") if isinstance(arch_data, dict) else None
    if not so and not densities:
        return None
    tensors = {ds.name for ds in problem.data_spaces}
    # pooling and element-wise layers have no Weights: what the design does to weights does
    # not apply to them (a layer without Inputs/Outputs, e.g. a matmul's A/B/Z, stays an error)
    absent = (frozenset({"Weights"}) - tensors if {"Inputs", "Outputs"} <= tensors
              else frozenset())
    models = {}
    for name, d in (densities or {}).items():
        size = problem.data_space(name).size(problem.bounds)
        dist, value = (d["distribution"], d["density"]) if isinstance(d, dict) \
            else ("fixed_structured", d)
        models[name] = DensityModel(dist, float(value), size)
    structured: dict[str, Structured] = {}
    spec = read_sparse({"sparse_optimizations": so} if so else {}, problem, arch, absent,
                       structured_out=structured)
    layer = problem.name or None
    located = {name: (*at, f"network.layers ({layer}).densities.{name}") for name in models}
    return apply_structured(replace(spec, densities=models), structured, problem,
                            located if at[0] else None, layer=layer)


def densities_in_arch_files(data) -> None:
    """`dse run`/`sweep` take densities from the workload's layers, not the architecture
    files: refuse them there (they would be ignored)."""
    prob = data.get("problem") if isinstance(data, dict) else None
    inst = prob.get("instance") if isinstance(prob, dict) else None
    if isinstance(inst, dict) and inst.get("densities"):
        raise SpecError("'densities' in an architecture file is not used by dse run",
                        key_path="problem.instance.densities",
                        hint="give them on the workload's layers (`densities: {Weights: 0.4}`"
                        " on a layer, docs/sparse.md)", **where(inst, "densities"))
