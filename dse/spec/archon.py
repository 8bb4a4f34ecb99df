"""Readers for the ARCHON study: the design file (arch_specs/archon/archon.yaml) and the per-PE
nonzero tables of the pruned baselines (workloads/archon_nnz/)."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dse.errors import SpecError
from dse.model.actual_density import TileNonzeros
from dse.schedule.archon import ArchonDesign, ArtifactCompat, OverheadEnergies
from dse.spec.common import check_keys, get, number, require_list, require_mapping, where
from dse.spec.yamlload import load_yaml_text, read_spec_text

DESIGN_KEYS = {f.name for f in dataclasses.fields(ArchonDesign)} - {"energies"} | {
    "main_array", "prediction_array", "overhead_energy_pJ"}
ENERGY_KEYS = {f.name for f in dataclasses.fields(OverheadEnergies)}
COMPAT_KEYS = {f.name for f in dataclasses.fields(ArtifactCompat)}
REFERENCE_KEYS = ("paper_speedup_dense", "paper_speedup_sparse", "artifact_speedup_dense",
                  "artifact_speedup_sparse", "artifact_energy_dense_uJ",
                  "artifact_energy_sparse_uJ", "artifact_energy_archon_uJ")
STUDY_KEYS = {"network", "dataset", "baseline", "archon", "nonzeros", "design", "artifact_compat",
              *REFERENCE_KEYS}
OVERHEAD_STYLES = ("mobilenet", "fusionet")


@dataclass(frozen=True)
class Study:
    network: str
    dataset: str
    archon: str  # workload name or file of the network run on ARCHON
    baseline: str | None  # the compact network on the dense and sparse baselines
    nonzeros: str | None  # "<net>/<dataset>" key of the per-PE tables
    design: ArchonDesign
    compat: ArtifactCompat
    # published / artifact figures, printed beside ours for comparison only
    reference: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ArchonStudy:
    file: str
    main_array: str
    prediction_array: str
    dense_arch: str
    dense_artifact_arch: str | None  # the dense baseline priced as the artifact's runs were
    sparse_arch: str
    nonzero_dir: str
    sparse_density: dict[str, float]
    missing_nonzeros: str
    # "measured": the per-PE tables; "synthetic": seeded tiles at sparse_density everywhere
    # (to sweep the baseline's pruning ratio)
    sparse_source: str = "measured"
    studies: list[Study] = field(default_factory=list)


def _design(node, base: ArchonDesign, path: str) -> ArchonDesign:
    require_mapping(node, path)
    check_keys(node, DESIGN_KEYS, path)
    values = {}
    for f in dataclasses.fields(ArchonDesign):
        if f.name == "energies" or get(node, f.name) is None:
            continue
        integer = isinstance(getattr(base, f.name), int)
        values[f.name] = number(node, f.name, path, integer=integer, positive=True)
    energies = base.energies
    en = get(node, "overhead_energy_pJ")
    if en is not None:
        ep = f"{path}.overhead_energy_pJ"
        require_mapping(en, ep)
        check_keys(en, ENERGY_KEYS, ep)
        values_pJ = {k: float(number(en, k, ep)) for k in en}
        for k, v in values_pJ.items():
            if v < 0:
                raise SpecError("an energy per action cannot be negative", key_path=f"{ep}.{k}",
                                expected=">= 0", found=v, **where(en, k))
        energies = dataclasses.replace(energies, **values_pJ)
    d = dataclasses.replace(base, energies=energies, **values)
    check_design(d, path, lambda key: where(node, key))
    return d


def check_design(d: ArchonDesign, path: str, locate=lambda key: {}, sep: str = ".") -> None:
    """Ranges the hardware imposes, checked on the file's design and on `--set` overrides alike
    (`locate(key)` gives the file:line of a key when there is a file)."""
    if not 0 < d.fused_weight_density <= 1:
        raise SpecError("fused_weight_density is a fraction of the fused weights kept",
                        key_path=f"{path}{sep}fused_weight_density", expected="0 < x <= 1",
                        found=d.fused_weight_density, **locate("fused_weight_density"))
    for key in ("predictor_activation_bits", "predictor_weight_bits"):
        if getattr(d, key) > d.word_bits:
            raise SpecError("the predictor cannot be wider than the datapath",
                            key_path=f"{path}{sep}{key}", expected=f"<= word_bits ({d.word_bits})",
                            found=getattr(d, key), **locate(key))


def _compat(node, path: str) -> ArtifactCompat:
    if node is None:
        return ArtifactCompat()
    require_mapping(node, path)
    check_keys(node, COMPAT_KEYS, path)
    values = {}
    for k in node:
        if k == "overhead_style":
            if node[k] not in OVERHEAD_STYLES:
                raise SpecError("unknown overhead_style", key_path=f"{path}.{k}",
                                expected=" or ".join(OVERHEAD_STYLES), found=node[k],
                                **where(node, k))
            values[k] = node[k]
        else:
            values[k] = number(node, k, path, integer=isinstance(
                getattr(ArtifactCompat(), k), int), positive=True)
    return ArtifactCompat(**values)


def _text(node, key: str, path: str, *, required: bool = True) -> str | None:
    value = get(node, key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise SpecError(f"`{key}` must be a name", key_path=f"{path}.{key}", found=value,
                        **where(node, key))
    return value


def override_design(d: ArchonDesign, settings: dict[str, float]) -> ArchonDesign:
    """`--set NAME=VALUE` on the design (a sweep point); unknown names are errors."""
    names = {f.name for f in dataclasses.fields(ArchonDesign)} - {"energies"}
    values = {}
    for k, v in settings.items():
        if k not in names:
            from dse.errors import did_you_mean
            raise SpecError(f"unknown ARCHON design parameter {k!r}", key_path=f"--set {k}",
                            expected=", ".join(sorted(names)), hint=did_you_mean(k, names))
        if isinstance(getattr(d, k), int):
            if float(v) != int(v) or v <= 0:
                raise SpecError(f"{k} must be a positive whole number", key_path=f"--set {k}",
                                found=v)
            v = int(v)
        elif v <= 0:
            raise SpecError(f"{k} must be positive", key_path=f"--set {k}", found=v)
        values[k] = v
    d = dataclasses.replace(d, **values)
    check_design(d, "--set", sep=" ")
    return d


def read_archon_study(path: str | Path) -> ArchonStudy:
    """The design file: the ARCHON design, its baselines and the network pairs to compare."""
    path = str(path)
    doc = load_yaml_text(read_spec_text(path), path)
    require_mapping(doc, "")
    check_keys(doc, {"archon"}, "")
    root = require_mapping(get(doc, "archon"), "archon", doc, "archon")
    check_keys(root, {"version", "design", "baselines", "studies"}, "archon")
    if get(root, "version", 1) != 1:
        raise SpecError("unsupported study file version", key_path="archon.version",
                        expected="1", found=get(root, "version"), **where(root, "version"))
    dnode = require_mapping(get(root, "design"), "archon.design", root, "design")
    design = _design(dnode, ArchonDesign(), "archon.design")
    bnode = require_mapping(get(root, "baselines"), "archon.baselines", root, "baselines")
    check_keys(bnode, {"dense", "dense_artifact", "sparse"}, "archon.baselines")
    snode = require_mapping(get(bnode, "sparse"), "archon.baselines.sparse", bnode, "sparse")
    sp = "archon.baselines.sparse"
    check_keys(snode, {"arch", "nonzeros", "density", "missing"}, sp)
    dens = require_mapping(get(snode, "density"), f"{sp}.density", snode, "density")
    check_keys(dens, {"pointwise", "depthwise"}, f"{sp}.density")
    density = {}
    for k in ("pointwise", "depthwise"):
        if get(dens, k) is None:
            raise SpecError("the sparse baseline needs a weight density for both layer kinds",
                            key_path=f"{sp}.density.{k}", expected="0 < x <= 1",
                            found="nothing", **where(snode, "density"))
        density[k] = float(number(dens, k, f"{sp}.density", positive=True))
        if density[k] > 1:
            raise SpecError("a density is a fraction of the weights kept",
                            key_path=f"{sp}.density.{k}", expected="0 < x <= 1",
                            found=density[k], **where(dens, k))
    missing = get(snode, "missing", "measured")
    if missing not in ("measured", "synthetic"):
        raise SpecError("unknown `missing` rule", key_path=f"{sp}.missing",
                        expected="measured or synthetic", found=missing,
                        **where(snode, "missing"))
    studies = []
    slist = require_list(get(root, "studies"), "archon.studies", root, "studies")
    for i, s in enumerate(slist):
        p = f"archon.studies[{i}]"
        require_mapping(s, p)
        check_keys(s, STUDY_KEYS, p)
        sd = design if get(s, "design") is None else _design(get(s, "design"), design,
                                                             f"{p}.design")
        pair = (_text(s, "network", p), _text(s, "dataset", p))
        if any((o.network, o.dataset) == pair for o in studies):
            raise SpecError("this network/dataset pair is listed twice (both would write "
                            f"{pair[0]}_{pair[1]}/)", key_path=p, found="/".join(pair),
                            **where(s))
        studies.append(Study(
            network=pair[0], dataset=pair[1],
            archon=_text(s, "archon", p), baseline=_text(s, "baseline", p, required=False),
            nonzeros=_text(s, "nonzeros", p, required=False), design=sd,
            compat=_compat(get(s, "artifact_compat"), f"{p}.artifact_compat"),
            reference={k: float(number(s, k, p)) for k in REFERENCE_KEYS if k in s}))
    return ArchonStudy(
        file=path,
        main_array=_text(dnode, "main_array", "archon.design"),
        prediction_array=_text(dnode, "prediction_array", "archon.design"),
        dense_arch=_text(bnode, "dense", "archon.baselines"),
        dense_artifact_arch=_text(bnode, "dense_artifact", "archon.baselines", required=False),
        sparse_arch=_text(snode, "arch", sp), nonzero_dir=_text(snode, "nonzeros", sp),
        sparse_density=density, missing_nonzeros=missing, studies=studies)


@dataclass(frozen=True)
class LayerNonzeros:
    """What is known about one pruned layer's nonzeros: per-PE tiles, or only the measured
    per-layer result where the per-PE dump is missing."""

    config: str
    block: int
    layer: str  # pw1, dw, pw2, gpw1, gpw2
    pes: int
    passes: int
    tile_macs: int
    nonzeros: int
    density: float
    group_multiplier: int
    tiles: TileNonzeros | None
    measured_sparse_cycles: int | None


def read_tile_table(path: Path, tile_macs: int) -> TileNonzeros:
    """One gzipped per-PE x per-pass table (rows = PEs)."""
    try:
        text = gzip.decompress(path.read_bytes()).decode()
    except (OSError, EOFError) as exc:
        raise SpecError(f"cannot read the nonzero table: {exc}", file=str(path)) from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r and not r[0].startswith("#")]
    try:
        counts = np.array([[int(v) for v in r[1:]] for r in rows[1:]], dtype=np.int64)
    except ValueError as exc:
        raise SpecError(f"non-integer nonzero count: {exc}", file=str(path)) from None
    if counts.size and (counts.min() < 0 or counts.max() > tile_macs):
        raise SpecError("a per-PE nonzero count is outside the tile's MACs", file=str(path),
                        expected=f"0..{tile_macs} (macs_per_iter_per_pe)",
                        found=f"{counts.min()}..{counts.max()}")
    return TileNonzeros(counts, tile_macs, str(path.name))


def read_nonzero_index(directory: Path) -> dict[tuple[str, int, str], LayerNonzeros]:
    """(config, block, layer) -> LayerNonzeros from `sparse_layers.csv` and its tables."""
    index = directory / "sparse_layers.csv"
    if not index.is_file():
        raise SpecError("the nonzero index sparse_layers.csv is missing", file=str(index))
    out = {}
    with open(index, newline="") as fh:
        for line, r in enumerate(csv.DictReader(fh), start=2):
            try:
                tiles = None
                if r["per_pe_nnz_file"]:
                    tiles = read_tile_table(directory / r["per_pe_nnz_file"],
                                            int(r["macs_per_iter_per_pe"]))
                rec = LayerNonzeros(
                    config=r["config"], block=int(r["block"]), layer=r["layer"],
                    pes=int(r["pes"]), passes=int(r["iterations"]),
                    tile_macs=int(r["macs_per_iter_per_pe"]), nonzeros=int(r["sparse_macs"]),
                    density=float(r["density"]), group_multiplier=int(r["group_multiplier"]),
                    tiles=tiles,
                    measured_sparse_cycles=int(r["measured_sparse_cycles"])
                    if r["measured_sparse_cycles"] else None)
            except (KeyError, ValueError) as exc:
                raise SpecError(f"bad row in the nonzero index: {exc}", file=str(index),
                                line=line) from None
            if tiles is not None and (tiles.pes, tiles.passes) != (rec.pes, rec.passes):
                raise SpecError(f"{r['per_pe_nnz_file']} has {tiles.pes} PEs x {tiles.passes} "
                                "passes but the index row says otherwise", file=str(index),
                                line=line, expected=f"{rec.pes} x {rec.passes} (pes x iterations)",
                                found=f"{tiles.pes} x {tiles.passes}")
            out[(rec.config, rec.block, rec.layer)] = rec
    return out
