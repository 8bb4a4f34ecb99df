"""Sparseloop's sparse step on top of the dense model (Wu et al., MICRO 2022).

The dense evaluation gives, per (level, tensor), the algorithmic reads/fills/updates and the
tile size. This step turns them into expected actual / gated / skipped counts, metadata
traffic and compressed occupancy from the tensors' density models, the levels' representation
formats and the gating/skipping optimizations; then re-derives cycles (gated accesses use
bandwidth, skipped ones do not) and energy (per action, from the ERT). See docs/sparse.md.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from dse.arch.architecture import Architecture, StorageLevel
from dse.mapping import Mapping
from dse.model.density import DENSE, DensityModel
from dse.model.evaluate import Evaluation, LevelSummary, LevelTensorStats, action_energy
from dse.model.formats import RankFormat, RankUnits, rank_units
from dse.model.nest import build_nest
from dse.model.wordbits import bandwidth_scale, words_per_block
from dse.workload.problem import Problem

KINDS = ("reads", "fills", "updates")


@dataclass(frozen=True)
class ActionOptimization:
    """`kind` (gating/skipping) of `target`'s accesses at `level` when a `condition_on` piece
    is empty."""

    kind: str
    level: str
    target: str
    condition_on: tuple[str, ...]


@dataclass(frozen=True)
class SparseSpec:
    densities: dict[str, DensityModel] = field(default_factory=dict)
    formats: dict[tuple[str, str], tuple[RankFormat, ...]] = field(default_factory=dict)
    actions: tuple[ActionOptimization, ...] = ()
    # compute-level optimizations (Sparseloop's gate_on_zero_operand /
    # skip_on_not_aligned_operands)
    compute_gating: bool = False
    compute_skipping: bool = False

    def density(self, tensor: str) -> DensityModel:
        return self.densities.get(tensor, DENSE)

    @property
    def is_dense(self) -> bool:
        return (all(d.dense for d in self.densities.values()) and not self.formats
                and not self.actions and not self.compute_gating and not self.compute_skipping)


@dataclass
class Counts:
    """One access kind of one (level, tensor): the four ways an algorithmic access ends."""

    algorithmic: int = 0
    actual: int = 0
    gated: int = 0
    skipped: int = 0


@dataclass
class SparseRow:
    dense: LevelTensorStats
    data: dict[str, Counts]
    # per kind, per rank (outermost first): (actual, gated, skipped) RankUnits
    metadata: dict[str, list[tuple[RankUnits, RankUnits, RankUnits]]]
    formats: tuple[RankFormat, ...]
    capacity_ranks: list[RankUnits]
    utilized_capacity_words: int
    density: DensityModel
    temporal_reductions: int
    decompressions: int = 0
    compressions: int = 0
    energy_pJ: float = 0.0

    @property
    def level(self) -> str:
        return self.dense.level

    @property
    def tensor(self) -> str:
        return self.dense.tensor

    @property
    def representation_format(self) -> str:
        return " ".join(f.format.lower() for f in self.formats) if self.formats else "none"

    @property
    def metadata_capacity_units(self) -> int:
        return round(sum(u.metadata + u.payload for u in self.capacity_ranks))

    def metadata_total(self, kind: str, which: int) -> int:
        """Units (metadata + payload, all ranks) of `kind`; which: 0 actual, 1 gated, 2 skipped."""
        return round(sum(r[which].metadata + r[which].payload for r in self.metadata[kind]))


@dataclass
class SparseEvaluation:
    dense: Evaluation
    rows: list[SparseRow]
    macs: int
    actual_computes: int
    gated_computes: int
    skipped_computes: int
    compute_cycles: int
    cycles: int
    utilization: float
    compute_energy_pJ: float
    levels: list[LevelSummary]
    energy_pJ: float
    # what the mapping made of the sparse inputs (relocated or unused optimizations)
    notes: list[str] = field(default_factory=list)

    @property
    def pJ_per_mac(self) -> float:
        return self.energy_pJ / self.macs

    def level_energy(self) -> dict[str, float]:
        out = {self.dense.compute_name: self.compute_energy_pJ}
        for lv in self.levels:
            out[lv.name] = lv.energy_pJ
        return out


def _floor(x: float) -> int:
    # products like 16 x 0.75 must not lose an integer to rounding noise
    return math.floor(x + 1e-9)


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)


def rank_shapes(formats: tuple[RankFormat, ...], tensor_dims: set[str], loops,
                tile: int, child_tile: int) -> list[int]:
    """Fiber shape of each rank (outermost first).

    Without `flattened_rankIDs` the ranks take the tile's loops over the tensor's dimensions
    from the innermost out, one loop each; the outermost rank takes what is left. With them,
    the innermost rank is the whole tile of the next inner level keeping the tensor and the
    rank above it this level's own loops (as Sparseloop's reference outputs show)."""
    n = len(formats)
    shapes = [1] * n
    if any(f.dims for f in formats):
        shapes[-1] = child_tile
        if n > 1:
            shapes[-2] = max(tile // max(child_tile, 1), 1)
        return shapes
    bounds = [lp.bound for lp in loops if lp.dim in tensor_dims and lp.bound > 1]
    r = n - 1
    for b in reversed(bounds):
        shapes[max(r, 0)] *= b
        r -= 1
    return shapes


def sparse_evaluate(problem: Problem, arch: Architecture, mapping: Mapping, ev: Evaluation,
                    spec: SparseSpec) -> SparseEvaluation:
    """The dense evaluation `ev` post-processed with densities, formats and gating/skipping."""
    nest = build_nest(problem, mapping)
    n = len(arch.levels)
    by_key = {(r.level, r.tensor): r for r in ev.stats}
    rows: dict[tuple[str, str], SparseRow] = {}
    computes = ev.macs
    notes = [f"note: {lv} has a representation format for {t} but does not keep {t} under "
             "this mapping; the format is unused (as in Sparseloop)"
             for lv, t in spec.formats if (lv, t) not in by_key]
    operand_saf = False
    # per operand at its innermost keeper: (density, stored with metadata)
    operand_state: list[tuple[float, bool]] = []
    for ds in problem.data_spaces:
        t = ds.name
        dens = spec.density(t)
        keepers = [i for i in range(n) if (arch.levels[i].name, t) in by_key]  # outer first
        # each optimization acts at its level, or at the nearest outer level keeping t
        own: dict[int, list[ActionOptimization]] = {}
        for ao in spec.actions:
            if ao.target != t:
                continue
            li = arch.index(ao.level)
            holder = max((i for i in keepers if i <= li), default=None)
            if holder is not None:
                own.setdefault(holder, []).append(ao)
                if holder != li:
                    notes.append(f"note: the {ao.kind} of {t} declared at {ao.level} acts at "
                                 f"{arch.levels[holder].name}, the nearest outer level "
                                 f"keeping {t}")
        p_above = 0.0
        parent_compressed = False
        parent_row: SparseRow | None = None
        for pos, i in enumerate(keepers):
            lv = arch.levels[i]
            d = by_key[(lv.name, t)]
            child = keepers[pos + 1] if pos + 1 < len(keepers) else n
            fmts = spec.formats.get((lv.name, t), ())
            compressed = any(f.compressed for f in fmts) and not dens.dense
            p_own = None
            kind = None
            if i in own:
                p_own = _prob_ineffectual(own[i], problem, nest, spec, arch, i, ds, child)
                kind = own[i][0].kind
            p_cond = 0.0
            if p_own is not None:
                p_cond = 1.0 - (1.0 - p_own) / (1.0 - p_above) if p_above < 1.0 else 0.0
            data: dict[str, Counts] = {}
            for k, alg in zip(KINDS, (d.reads_per_instance, d.fills_per_instance,
                                      d.updates_per_instance), strict=True):
                x = alg
                if compressed:
                    x -= _floor(x * (1.0 - dens.density))
                x -= _floor(x * p_above)
                off = 0
                if p_own is not None and k != "fills":
                    off = _ceil(x * p_cond) if (k == "reads" and ds.read_write) \
                        else _floor(x * p_cond)
                c = Counts(alg, x - off)
                if kind == "gating":
                    c.gated = off
                elif kind == "skipping":
                    c.skipped = off
                data[k] = c
            tile = d.utilized_capacity_words
            tile_loops = [lp for lp in nest.loops if lp.level >= i]
            child_tile = ds.size(nest.box(child)) if child < n else 1
            shapes = rank_shapes(fmts, set(ds.dims()), tile_loops, tile, child_tile) \
                if fmts else []
            md: dict[str, list[tuple[RankUnits, RankUnits, RankUnits]]] = {k: [] for k in KINDS}
            cap_ranks: list[RankUnits] = []
            if fmts:
                per_tile = rank_units(list(fmts), shapes, dens, worst_case=False)
                cap_ranks = rank_units(list(fmts), shapes, dens, worst_case=True)
                for k in KINDS:
                    alg = data[k].algorithmic
                    for u in per_tile:
                        triple = []
                        for units in (u.metadata, u.payload):
                            x = math.ceil(units * alg / tile) if tile else 0  # raw, as Timeloop
                            x -= _floor(x * p_above)
                            off = _floor(x * p_cond) if (p_own is not None and k != "fills") else 0
                            triple.append((x - off, off))
                        act = RankUnits(triple[0][0], triple[1][0])
                        offu = RankUnits(triple[0][1], triple[1][1])
                        zero = RankUnits(0, 0)
                        md[k].append((act, offu if kind == "gating" else zero,
                                      offu if kind == "skipping" else zero))
            alg_upd = d.updates_per_instance
            reductions = d.temporal_reductions_per_instance
            if alg_upd and data["updates"].actual != alg_upd:
                reductions = _ceil(reductions * data["updates"].actual / alg_upd)
            row = SparseRow(
                dense=d, data=data, metadata=md, formats=fmts, capacity_ranks=cap_ranks,
                utilized_capacity_words=dens.max_occupancy(tile) if compressed else tile,
                density=dens, temporal_reductions=reductions,
            )
            if parent_row is not None and parent_compressed and not compressed:
                # every fill arrives compressed; what goes up is compressed into the
                # parent's (compressed) updates
                row.decompressions = data["fills"].actual
                if ds.read_write:
                    row.compressions = parent_row.data["updates"].actual
            rows[(lv.name, t)] = row
            parent_compressed = compressed
            parent_row = row
            if p_own is not None:
                p_above = p_own
        if not ds.read_write:
            inner = arch.levels[keepers[-1]].name
            operand_state.append((dens.density, bool(spec.formats.get((inner, t)))
                                  and not dens.dense))
        if not ds.read_write and own:
            operand_saf = True
            innermost = max(own)
            child = next((k for k in keepers if k > innermost), n)
            p = _prob_ineffectual(own[innermost], problem, nest, spec, arch, innermost, ds, child)
            computes -= _floor(computes * p)
    gated = skipped = 0
    if not operand_saf:
        computes, gated, skipped = classify_computes(ev.macs, operand_state,
                                                     spec.compute_gating, spec.compute_skipping)
    ordered = [rows[(r.level, r.tensor)] for r in ev.stats]
    sev = _micro_architecture(problem, arch, ev, ordered, computes, gated, skipped)
    sev.notes = notes
    return sev


def classify_computes(total: int, operands: list[tuple[float, bool]], gate: bool, skip: bool
                      ) -> tuple[int, int, int]:
    """(actual, gated, skipped) computes when no storage optimization removed any: each
    operand is nonzero (d), a stored zero (1 - d, uncompressed) or absent (1 - d, compressed).
    All absent: the compute never exists. Some absent: skipped by an aligning unit
    (`skip`), else gated (`gate`), else performed. Zeros present, none absent: gated (`gate`)
    or performed."""
    p_gate = p_skip = p_none = 0.0
    for states in itertools.product(range(3), repeat=len(operands)):  # 0 nonzero, 1 zero, 2 absent
        p = 1.0
        for state, (d, compressed) in zip(states, operands, strict=True):
            p *= (d, 0.0 if compressed else 1.0 - d, 1.0 - d if compressed else 0.0)[state]
        if not p:
            continue
        absent = sum(1 for x in states if x == 2)
        if absent == len(operands) and operands:
            p_none += p
        elif absent:
            if skip:
                p_skip += p
            elif gate:
                p_gate += p
        elif any(x == 1 for x in states) and gate:
            p_gate += p
    skipped, gated, none = _floor(total * p_skip), _floor(total * p_gate), _floor(total * p_none)
    return total - skipped - gated - none, gated, skipped


def _prob_ineffectual(opts: list[ActionOptimization], problem: Problem, nest, spec: SparseSpec,
                      arch: Architecture, level: int, ds, child: int) -> float:
    """P(a request for `ds` from the child is ineffectual): some condition piece is empty.
    The piece of C is C's part of the child's tile (one operand at the compute level), grown
    to the level's block when the block is larger than the requested piece."""
    lv = arch.levels[level]
    box = nest.box(child) if child < nest.n_levels else {d: 1 for d in problem.dims}
    grow = max(1, lv.block_size // max(ds.size(box), 1))
    if grow > 1:
        # the block runs along the innermost loop over one of the target's dimensions
        inner = [lp for lp in nest.loops if lp.level >= level and lp.bound > 1
                 and lp.dim in ds.dims()]
        if inner:
            box = dict(box)
            box[inner[-1].dim] *= grow
    p_effectual = 1.0
    for ao in opts:
        for c in ao.condition_on:
            piece = problem.data_space(c).size(box)
            p_effectual *= 1.0 - spec.density(c).prob_empty(piece)
    return 1.0 - p_effectual


def _md_bits(lv: StorageLevel, fmt: RankFormat) -> tuple[int, int]:
    dw = _attr(lv, "metadata_datawidth", lv.datawidth)
    mdb = fmt.metadata_word_bits if fmt.metadata_word_bits is not None else (
        1 if fmt.format in ("B", "UB") else dw)
    plb = fmt.payload_word_bits if fmt.payload_word_bits is not None else dw
    return mdb, plb


def _attr(lv: StorageLevel, key: str, default: int) -> int:
    v = lv.attributes.get(key, lv.attributes.get(key.replace("_", "-")))
    return default if v is None else int(v)


def _metadata_bits(lv: StorageLevel, row: SparseRow, kind: str, which: int) -> int:
    bits = 0.0
    for fmt, triple in zip(row.formats, row.metadata[kind], strict=True):
        mdb, plb = _md_bits(lv, fmt)
        bits += mdb * triple[which].metadata + plb * triple[which].payload
    return round(bits)


def _energy(lv: StorageLevel, action: str, fallback: str | None = None) -> float:
    e = lv.energy
    if action in e:
        return e[action].pJ
    if fallback and fallback in e:
        return e[fallback].pJ
    return 0.0


# Timeloop's thresholds (model/buffer.hpp, VectorWidthCoefficientTable): for a compressed tile
# of S words at a level with block (vector) B, when S // B is below the entry for the tile's
# density (0.1 .. 1.0), vector accesses are not ceil(count / B) but corrected by the expected
# number of vectors a tile with its random nonzero count really needs.
VECTOR_WIDTH_THRESHOLDS = {
    2: (251, 125, 84, 63, 51, 42, 36, 32, 28, 1),
    4: (375, 188, 125, 94, 75, 63, 54, 47, 42, 1),
    8: (438, 219, 146, 110, 88, 73, 63, 55, 49, 1),
    16: (469, 235, 157, 118, 94, 79, 67, 59, 52, 1),
    32: (485, 243, 162, 122, 97, 81, 70, 61, 52, 1),
}


def vector_ratio(row: SparseRow, block: int) -> float:
    """Factor on a compressed tile's vector accesses (1.0 when the naive count holds)."""
    tile = row.dense.utilized_capacity_words
    d = row.density.density
    compressed = any(f.compressed for f in row.formats)
    if not compressed or tile == 0 or block <= 1 or d >= 1.0:
        return 1.0
    table = VECTOR_WIDTH_THRESHOLDS.get(block)
    if table is None:
        return 1.0
    idx = max(math.floor(d / 0.1) - 1, 0) if d >= 0.1 else 0
    if table[idx] <= tile // block:
        return 1.0
    expected = sum(math.ceil(k / block) * p for k, p in row.density.occupancy_pmf(tile).items()
                   if k >= 1)
    return expected / (tile * d / block)


DATA_ACTIONS = {"reads": "read", "fills": "write", "updates": "update"}
MD_ACTIONS = {"reads": "metadata_read", "fills": "metadata_write", "updates": "metadata_update"}


def _micro_architecture(problem: Problem, arch: Architecture, ev: Evaluation,
                        rows: list[SparseRow], computes: int, gated_computes: int = 0,
                        skipped_computes: int = 0) -> SparseEvaluation:
    """Energy per action from the ERT; bandwidth demand (actual + gated) -> cycles."""
    for r in rows:
        lv = arch.levels[arch.index(r.level)]
        ds = problem.data_space(r.tensor)
        block = words_per_block(lv, ds)
        md_width = _attr(lv, "metadata_storage_width", 0) or lv.datawidth
        ratio = vector_ratio(r, block)
        e = 0.0
        for k in KINDS:
            c = r.data[k]
            base = DATA_ACTIONS[k] if k != "updates" or "update" in lv.energy else "write"
            data_e = math.ceil(c.actual / block) * (action_energy(lv, base) if c.actual else 0.0)
            data_e += math.ceil(c.gated / block) * _energy(lv, f"gated_{base}")
            data_e += math.ceil(c.skipped / block) * _energy(lv, f"skipped_{base}",
                                                              f"gated_{base}")
            e += data_e * ratio
            if r.formats:
                mact = MD_ACTIONS[k]
                for which, name in ((0, mact), (1, f"gated_{mact}"), (2, f"skipped_{mact}")):
                    bits = _metadata_bits(lv, r, k, which)
                    if bits:
                        fb = f"gated_{mact}" if which == 2 else None
                        e += math.ceil(bits / md_width) * _energy(lv, name, fb)
        e += r.decompressions * _energy(lv, "decompression_count")
        e += r.compressions * _energy(lv, "compression_count")
        r.energy_pJ = e * lv.utilized_clusters(r.dense.utilized_instances)
    used = max(ev.compute_utilized_instances, 1)
    compute_cycles = math.ceil((computes + gated_computes) / used)
    cycles = compute_cycles
    summaries: list[LevelSummary] = []
    by_level: dict[str, list[SparseRow]] = {}
    for r in rows:
        by_level.setdefault(r.level, []).append(r)
    for lv, dense_sum in zip(arch.levels, ev.levels, strict=True):
        lr = by_level.get(lv.name, [])
        rd = wr = 0.0
        for r in lr:
            k = bandwidth_scale(lv, problem.data_space(r.tensor))
            rd += (r.data["reads"].actual + r.data["reads"].gated) * k
            wr += sum(r.data[x].actual + r.data[x].gated for x in ("fills", "updates")) * k
            if r.formats:  # whole data words of metadata (Timeloop divides integers)
                rd += sum(_metadata_bits(lv, r, "reads", w) for w in (0, 1)) // lv.datawidth
                wr += sum(_metadata_bits(lv, r, x, w) for x in ("fills", "updates")
                          for w in (0, 1)) // lv.datawidth
        slowdown = 1.0
        if compute_cycles:
            rd, wr = rd / compute_cycles, wr / compute_cycles
            if lv.read_bandwidth is not None and lv.read_bandwidth < rd:
                slowdown = min(slowdown, lv.read_bandwidth / rd)
            if lv.write_bandwidth is not None and lv.write_bandwidth < wr:
                slowdown = min(slowdown, lv.write_bandwidth / wr)
            if lv.shared_bandwidth is not None and lv.shared_bandwidth < rd + wr:
                slowdown = min(slowdown, lv.shared_bandwidth / (rd + wr))
        lv_cycles = math.ceil(compute_cycles / slowdown)
        cycles = max(cycles, lv_cycles)
        summaries.append(LevelSummary(
            name=lv.name, instances=lv.instances, utilized_instances=dense_sum.utilized_instances,
            capacity_words=lv.capacity_words,
            used_words=sum(r.utilized_capacity_words for r in lr), slowdown=slowdown,
            cycles=lv_cycles, energy_pJ=sum(r.energy_pJ for r in lr), leakage_pJ=0.0))
    for s, lv in zip(summaries, arch.levels, strict=True):
        if s.utilized_instances and "leak" in lv.energy:
            s.leakage_pJ = lv.energy["leak"].pJ * cycles * s.utilized_instances
            s.energy_pJ += s.leakage_pJ
    comp = arch.compute
    e_compute = action_energy(comp, "compute")
    ce = comp.energy
    e_gated = next((ce[a].pJ for a in ("gated_compute", "compute_gated") if a in ce), e_compute)
    e_skipped = next((ce[a].pJ for a in ("skipped_compute", "compute_skipped") if a in ce),
                     e_gated)
    compute_energy = (computes * e_compute + gated_computes * e_gated
                      + skipped_computes * e_skipped)
    total = compute_energy + sum(s.energy_pJ for s in summaries)
    return SparseEvaluation(
        dense=ev, rows=rows, macs=ev.macs, actual_computes=computes,
        gated_computes=gated_computes, skipped_computes=skipped_computes,
        compute_cycles=compute_cycles, cycles=cycles,
        utilization=(computes + gated_computes) / (comp.instances * cycles) if cycles else 0.0,
        compute_energy_pJ=compute_energy, levels=summaries, energy_pJ=total)


def sparse_columns(row: SparseRow) -> dict[str, object]:
    """The sparse columns of one levels.csv row (names as in Sparseloop's reference CSVs)."""
    out: dict[str, object] = {}
    for k in KINDS:
        c = row.data[k]
        out[f"algorithmic_{k}_per_instance"] = c.algorithmic
        out[f"gated_{k}_per_instance"] = c.gated
        out[f"skipped_{k}_per_instance"] = c.skipped
    for k in KINDS:
        for which, prefix in ((0, ""), (1, "gated_"), (2, "skipped_")):
            out[f"{prefix}metadata_{k}_per_instance"] = (
                row.metadata_total(k, which) if row.formats else 0)
    out["representation_format"] = row.representation_format
    out["metadata_capacity_units"] = row.metadata_capacity_units
    out["data_tile_shape_words"] = row.dense.utilized_capacity_words
    out["density_distribution"] = row.density.distribution
    out["decompressions_per_instance"] = row.decompressions
    out["compressions_per_instance"] = row.compressions
    return out


def check_sparse_capacity(arch: Architecture, mapping: Mapping, sev: SparseEvaluation) -> None:
    """Compressed tiles must fit each level's data storage, and their formats its metadata
    storage (metadata_storage_depth x metadata_storage_width bits, when given)."""
    from dse.model.evaluate import MappingError

    by_level: dict[str, list[SparseRow]] = {}
    for r in sev.rows:
        by_level.setdefault(r.level, []).append(r)
    for name, rows in by_level.items():
        lv = arch.levels[arch.index(name)]
        cap = lv.effective_capacity_words
        used = sum(r.utilized_capacity_words for r in rows)
        if cap is not None and used > cap:
            parts = ", ".join(f"{r.tensor} {r.utilized_capacity_words}" for r in rows)
            raise MappingError(
                f"compressed tiles kept at level {name} need {used} words ({parts}) but it "
                f"holds {cap} words per instance", file=mapping.source, line=mapping.line,
                key_path=f"mapping.{name}",
                hint="use smaller factors at or below this level, or bypass a tensor here")
        for r in rows:
            for count, attr, what in (
                    (r.decompressions, "decompression_supported", "decompress its fills"),
                    (r.compressions, "compression_supported", "compress its updates")):
                if count and str(lv.attributes.get(attr, False)).lower() != "true":
                    raise MappingError(
                        f"level {name} keeps {r.tensor} uncompressed below a level that "
                        f"keeps it compressed, so it must {what}, but its `{attr}` is not "
                        "true", file=mapping.source, line=mapping.line,
                        key_path=f"architecture.{name}.attributes.{attr}",
                        hint=f"set {attr}: true, give {name} a compressed format for "
                        f"{r.tensor}, or bypass {r.tensor} at {name}")
        depth = _attr(lv, "metadata_storage_depth", 0)
        width = _attr(lv, "metadata_storage_width", 0)
        if not (depth and width):
            continue
        bits = 0.0
        for r in rows:
            for fmt, u in zip(r.formats, r.capacity_ranks, strict=True):
                mdb, plb = _md_bits(lv, fmt)
                bits += mdb * u.metadata + plb * u.payload
        if bits > depth * width:
            raise MappingError(
                f"the formats' metadata at level {name} need {round(bits)} bits but its "
                f"metadata storage holds {depth * width} ({depth} x {width} bits)",
                file=mapping.source, line=mapping.line, key_path=f"mapping.{name}",
                hint="use smaller tiles at this level or a more compact format")
