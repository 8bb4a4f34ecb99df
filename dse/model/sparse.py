"""Sparseloop's sparse step on top of the dense model (Wu et al., MICRO 2022).

The dense evaluation gives, per (level, tensor), the algorithmic reads/fills/updates and the
tile size. This step turns them into expected actual / gated / skipped counts, metadata
traffic and compressed occupancy from the tensors' density models, the levels' representation
formats and the gating/skipping optimizations; then re-derives cycles (gated accesses use
bandwidth, skipped ones do not) and energy (per action, from the ERT). See docs/sparse.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dse.arch.architecture import Architecture
from dse.mapping import Mapping
from dse.model import generation as generations
from dse.model.density import DENSE, DensityModel
from dse.model.evaluate import Evaluation, LevelSummary, LevelTensorStats
from dse.model.formats import RankFormat, RankUnits
from dse.model.sparse_batch import KINDS, attribute, md_word_bits
from dse.model.wordbits import tensor_bits
from dse.workload.problem import Problem


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
    # what reading the design made of the layer's inputs (e.g. an N:M structured tensor's
    # density raised to N/M), shown with the results
    notes: tuple[str, ...] = ()

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


def sparse_evaluate(problem: Problem, arch: Architecture, mapping: Mapping, ev: Evaluation,
                    spec: SparseSpec, *, link_transfers: bool | str | None = None,
                    generation: str = generations.DEFAULT,
                    placement: dict[str, str] | None = None) -> SparseEvaluation:
    """The dense evaluation `ev` post-processed with densities, formats and gating/skipping:
    the batch sparse step (dse.model.sparse_batch) on a one-row batch, unpacked into
    per-(level, tensor) rows. The options are those `ev` was evaluated with."""
    from dse.model.batch import BatchModel, rows_from_mappings, spatial_orders
    from dse.model.sparse_batch import SparseStep

    model = BatchModel(problem, arch, link_transfers, generation=generation,
                       placement=placement)
    T, SX, SY, perm, keep = rows_from_mappings(model, [mapping])
    order = spatial_orders(model, [mapping])
    det = model.detail(T, SX, SY, perm, keep, spatial_order=order)
    step = SparseStep(model, spec)
    sd = step.apply(det, T, SX, SY, perm, order)
    return unpack_row(problem, model.arch, ev, step, sd, 0)


def unpack_row(problem: Problem, arch: Architecture, ev: Evaluation, step, sd, b: int
               ) -> SparseEvaluation:
    """Row `b` of a SparseDetail as per-(level, tensor) SparseRows and level summaries."""
    names = [lv.name for lv in arch.levels]
    index = {ds.name: t for t, ds in enumerate(problem.data_spaces)}
    notes = list(step.spec.notes)
    notes += [f"note: {lv} has a representation format for {t} but does not keep {t} under "
              "this mapping; the format is unused (as in Sparseloop)"
              for lv, t in step.spec.formats if not sd.keep[b, names.index(lv), index[t]]]
    for (_, k), h in sd.holder.items():
        ao = step.spec.actions[k]
        li = names.index(ao.level)
        if h[b] >= 0 and h[b] != li:
            notes.append(f"note: the {ao.kind} of {ao.target} declared at {ao.level} acts at "
                         f"{names[h[b]]}, the nearest outer level keeping {ao.target}")
    rows = []
    for d in ev.stats:
        i, t = names.index(d.level), index[d.tensor]
        data = {k: Counts(int(sd.algorithmic[b, i, t, j]), int(sd.actual[b, i, t, j]),
                          int(sd.gated[b, i, t, j]), int(sd.skipped[b, i, t, j]))
                for j, k in enumerate(KINDS)}
        fmts = step.formats.get((i, t), ())
        md: dict[str, list[tuple[RankUnits, RankUnits, RankUnits]]] = {k: [] for k in KINDS}
        for j, k in enumerate(KINDS):
            for r in range(len(fmts)):
                u = sd.metadata[b, i, t, j, r]
                md[k].append(tuple(RankUnits(float(u[w, 0]), float(u[w, 1]))
                                   for w in range(3)))
        cap = [RankUnits(float(sd.capacity_units[b, i, t, r, 0]),
                         float(sd.capacity_units[b, i, t, r, 1])) for r in range(len(fmts))]
        rows.append(SparseRow(
            dense=d, data=data, metadata=md, formats=fmts, capacity_ranks=cap,
            utilized_capacity_words=int(sd.occupancy[b, i, t]), density=step.dens[t],
            temporal_reductions=int(sd.temporal_reductions[b, i, t]),
            decompressions=int(sd.decompressions[b, i, t]),
            compressions=int(sd.compressions[b, i, t]), energy_pJ=float(sd.energy[b, i, t])))
    summaries = []
    for i, (lv, dense_sum) in enumerate(zip(arch.levels, ev.levels, strict=True)):
        summaries.append(LevelSummary(
            name=lv.name, instances=lv.instances, utilized_instances=dense_sum.utilized_instances,
            capacity_words=lv.capacity_words,
            used_words=int(sum(sd.occupancy[b, i])), slowdown=float(sd.slowdown[b, i]),
            cycles=int(sd.level_cycles[b, i]), energy_pJ=float(sd.level_energy[b, i]),
            leakage_pJ=float(sd.leak[b, i])))
    return SparseEvaluation(
        dense=ev, rows=rows, macs=ev.macs, actual_computes=int(sd.actual_computes[b]),
        gated_computes=int(sd.gated_computes[b]), skipped_computes=int(sd.skipped_computes[b]),
        compute_cycles=int(sd.compute_cycles[b]), cycles=int(sd.cycles[b]),
        utilization=float(sd.utilization[b]), compute_energy_pJ=float(sd.compute_energy[b]),
        levels=summaries, energy_pJ=float(sd.energy_total[b]), notes=notes)


def classify_computes(total: int, operands: list[tuple[float, bool]], gate: bool, skip: bool
                      ) -> tuple[int, int, int]:
    """(actual, gated, skipped) of `total` computes, no storage optimization having removed
    any: operands as (density, has metadata) (sparse_batch.classify_operand_states)."""
    import numpy as np

    from dse.model.sparse_batch import classify_operand_states

    enz = np.array([[d for d, _ in operands]])
    md = np.array([[c for _, c in operands]], dtype=bool)
    a, g, s = classify_operand_states(np.array([total]), enz.reshape(1, len(operands)),
                                      md.reshape(1, len(operands)), gate, skip)
    return int(a[0]), int(g[0]), int(s[0])


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


def check_sparse_capacity(problem: Problem, arch: Architecture, mapping: Mapping,
                          sev: SparseEvaluation) -> None:
    """Compressed tiles must fit each level's data storage (in bits when tensors have their
    own word widths, as the dense check), and their formats its metadata storage
    (metadata_storage_depth x metadata_storage_width bits, when given)."""
    from dse.model.evaluate import MappingError

    by_level: dict[str, list[SparseRow]] = {}
    for r in sev.rows:
        by_level.setdefault(r.level, []).append(r)
    has_bits = any(ds.word_bits for ds in problem.data_spaces)
    for name, rows in by_level.items():
        lv = arch.levels[arch.index(name)]
        cap = lv.effective_capacity_words
        if has_bits:
            bits = {r.tensor: tensor_bits(lv, problem.data_space(r.tensor)) for r in rows}
            used = sum(r.utilized_capacity_words * bits[r.tensor] for r in rows)
            if cap is not None and used > cap * lv.datawidth:
                parts = ", ".join(f"{r.tensor} {r.utilized_capacity_words} x {bits[r.tensor]} b"
                                  for r in rows)
                raise MappingError(
                    f"compressed tiles kept at level {name} need {used} bits ({parts}) but "
                    f"it holds {cap * lv.datawidth} bits ({cap} words of {lv.datawidth} b) "
                    "per instance", file=mapping.source, line=mapping.line,
                    key_path=f"mapping.{name}",
                    hint="use smaller factors at or below this level, or bypass a tensor here")
        used = sum(r.utilized_capacity_words for r in rows)
        if not has_bits and cap is not None and used > cap:
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
        depth = attribute(lv, "metadata_storage_depth", 0)
        width = attribute(lv, "metadata_storage_width", 0)
        if not (depth and width):
            continue
        bits = 0.0
        for r in rows:
            for fmt, u in zip(r.formats, r.capacity_ranks, strict=True):
                mdb, plb = md_word_bits(lv, fmt)
                bits += mdb * u.metadata + plb * u.payload
        if bits > depth * width:
            raise MappingError(
                f"the formats' metadata at level {name} need {round(bits)} bits but its "
                f"metadata storage holds {depth * width} ({depth} x {width} bits)",
                file=mapping.source, line=mapping.line, key_path=f"mapping.{name}",
                hint="use smaller tiles at this level or a more compact format")
