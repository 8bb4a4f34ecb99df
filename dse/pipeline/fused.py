"""`dse run --schedule fused|FILE`: fused segments on top of a layerwise run.

Every layer is first mapped as usual (layers.csv keeps those per-layer rows). The segments'
DRAM traffic, buffer peak and work come from dse.schedule.fused; their cycles and energy are
the layerwise figures of each layer scaled by the work the segment does for it (recomputation
included), with the layer's DRAM energy replaced by the segment's DRAM traffic at the DRAM
level's energy per bit. Layers outside every segment stay layerwise. Outputs: segments.csv,
schedule.yaml (which `--schedule FILE` reads back) and totals.csv for the whole schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from dse.errors import SpecError
from dse.schedule.fused import (
    HALO_MODES,
    FusedModel,
    Segment,
    check_fits,
    dram_level,
    greedy_segments,
    level_capacity_bits,
)
from dse.workload.network import Network

SCHEDULE_KINDS = ("layerwise", "fused")
NOT_YET = ("pipeline", "auto")
SEGMENT_KEYS = {"layers", "tile_rows", "halo", "halo_of", "level"}
SEGMENT_COLUMNS = ["network", "arch", "point", "segment", "layers", "level", "tile_rows", "tiles",
                   "halo", "weights", "dram_read_bytes", "dram_write_bytes", "dram_bytes",
                   "layerwise_dram_bytes", "onchip_read_bytes", "onchip_write_bytes",
                   "buffer_peak_bytes", "capacity_bytes", "macs",
                   "recomputed_macs", "ops", "cycles", "energy_pJ", "layerwise_cycles",
                   "layerwise_energy_pJ"]
FUSED_TOTAL_EXTRA = ["schedule", "segments", "fused_layers", "dram_bytes", "layerwise_dram_bytes",
                     "layerwise_cycles", "layerwise_energy_pJ"]


@dataclass(frozen=True)
class ScheduleSpec:
    kind: str  # layerwise | fused
    segments: tuple[Segment, ...] | None  # None = choose them (greedy)
    level: str | None = None
    halo: str = "retain"
    file: str | None = None
    lines: tuple[int | None, ...] = ()


def outermost_buffer(arch) -> str:
    """The default level for fused intermediates: the outermost on-chip buffer."""
    for lv in arch.levels:
        if not lv.is_dram and not lv.is_dummy and lv.effective_capacity_words is not None:
            return lv.name
    raise SpecError(f"{arch.name} has no on-chip buffer with a capacity to fuse layers in")


def parse_schedule_option(value: str) -> ScheduleSpec:
    """`--schedule`: layerwise, fused, or a schedule YAML file."""
    if value in SCHEDULE_KINDS:
        return ScheduleSpec(value, None)
    if value in NOT_YET:
        raise SpecError(f"--schedule {value} is not available in this version",
                        expected="layerwise, fused or a schedule YAML file")
    path = Path(value)
    if not path.exists():
        from dse.errors import did_you_mean

        raise SpecError("--schedule takes layerwise, fused or a schedule YAML file; no such "
                        "file", found=value, hint=did_you_mean(value, SCHEDULE_KINDS + NOT_YET))
    return load_schedule(path)


def load_schedule(path: Path) -> ScheduleSpec:
    """A schedule YAML: `schedule: {version: 1, kind: fused, level: L, segments: [{layers: [..],
    tile_rows: N, halo: retain|recompute, halo_of: {tensor: mode}, level: L}]}`."""
    from dse.spec.common import check_keys, require_list, require_mapping, where
    from dse.spec.yamlload import load_yaml_text

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read the schedule: {exc.strerror}", file=str(path)) from None
    doc = load_yaml_text(text, str(path))
    if not isinstance(doc, dict) or "schedule" not in doc:
        raise SpecError("a schedule file needs a top-level `schedule:` mapping", file=str(path),
                        line=1)
    check_keys(doc, {"schedule"}, "")
    node = require_mapping(doc["schedule"], "schedule", doc, "schedule")
    check_keys(node, {"version", "kind", "level", "halo", "segments"}, "schedule")
    if node.get("version", 1) != 1:
        raise SpecError("unsupported schedule version", key_path="schedule.version",
                        found=node.get("version"), expected="1", **where(node, "version"))
    kind = node.get("kind", "fused")
    if kind not in SCHEDULE_KINDS:
        raise SpecError("unknown schedule kind", key_path="schedule.kind", found=kind,
                        expected=" or ".join(SCHEDULE_KINDS), **where(node, "kind"))
    if kind == "layerwise" and set(node) & {"segments", "level", "halo"}:
        raise SpecError("a layerwise schedule has no segments, level or halo",
                        key_path="schedule.kind", found=kind, **where(node, "kind"),
                        hint="use kind: fused, or drop the fused keys")
    level = node.get("level")
    halo = _halo(node.get("halo", "retain"), "schedule.halo", node, "halo")
    if "segments" not in node:
        return ScheduleSpec(kind, None, level, halo, str(path))
    segs, lines = [], []
    for i, s in enumerate(require_list(node["segments"], "schedule.segments", node, "segments")):
        p = f"schedule.segments[{i}]"
        s = require_mapping(s, p)
        check_keys(s, SEGMENT_KEYS, p)
        if "layers" not in s:
            raise SpecError("a segment needs `layers:`", key_path=p, **where(s))
        names = require_list(s["layers"], f"{p}.layers", s, "layers")
        if not names:
            raise SpecError("a segment needs at least one layer", key_path=f"{p}.layers",
                            **where(s, "layers"))
        tile = s.get("tile_rows", 1)
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
            raise SpecError("expected a whole number of rows, at least 1",
                            key_path=f"{p}.tile_rows", found=tile, **where(s, "tile_rows"))
        halo_of = {}
        if "halo_of" in s:
            hm = require_mapping(s["halo_of"], f"{p}.halo_of", s, "halo_of")
            halo_of = {str(k): _halo(v, f"{p}.halo_of.{k}", hm, k) for k, v in hm.items()}
        seg_level = s.get("level", level)
        if seg_level is None:
            seg_level = ""
        segs.append(Segment(tuple(str(n) for n in names), tile,
                            _halo(s.get("halo", halo), f"{p}.halo", s, "halo"), halo_of,
                            str(seg_level)))
        lines.append(where(s)["line"])
    return ScheduleSpec(kind, tuple(segs), level, halo, str(path), tuple(lines))


def _halo(value, key_path: str, node, key) -> str:
    from dse.spec.common import where

    if value not in HALO_MODES:
        raise SpecError("unknown halo mode", key_path=key_path, found=value,
                        expected=" or ".join(HALO_MODES), **where(node, key))
    return str(value)


def schedule_yaml(network: Network, segments: list[Segment]) -> str:
    """The schedule as run, in the format load_schedule reads."""
    segs = []
    for s in segments:
        entry: dict = {"layers": list(s.layers), "tile_rows": s.tile_rows, "halo": s.halo}
        if s.halo_of:
            entry["halo_of"] = dict(s.halo_of)
        entry["level"] = s.level
        segs.append(entry)
    doc = {"schedule": {"version": 1, "kind": "fused", "segments": segs}}
    return (f"# fused schedule of {network.name}; give it back with --schedule FILE\n"
            + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))


def resolve_segments(spec: ScheduleSpec, model: FusedModel, arch, layerwise_bits: dict
                     ) -> list[Segment]:
    """The segments to run: the file's (level defaulted) or the greedy default, which compares
    against the layers' layerwise DRAM bits (so it never picks a segment that moves more)."""
    default_level = spec.level or outermost_buffer(arch)
    if spec.segments is None:
        try:
            cap = level_capacity_bits(arch, default_level, "schedule")
        except SpecError as exc:
            exc.file = exc.file or spec.file
            raise
        return greedy_segments(model, default_level, cap, spec.halo,
                               alone=lambda name: layerwise_bits.get(name, 2 ** 62))
    from dataclasses import replace

    segs = [replace(s, level=s.level or default_level) for s in spec.segments]
    seen: dict[str, int] = {}
    for i, s in enumerate(segs):
        for name in s.layers:
            if name in seen:
                raise SpecError(f"layer '{name}' is in segments {seen[name]} and {i}",
                                file=spec.file, line=_line(spec, i),
                                key_path=f"schedule.segments[{i}].layers",
                                hint="a layer belongs to one segment at most")
            seen[name] = i
    return segs


def _line(spec: ScheduleSpec, i: int) -> int | None:
    return spec.lines[i] if i < len(spec.lines) else None


def layerwise_dram_bits(problem, arch, mapping_text: str, cfg) -> int:
    """All DRAM reads, fills and updates of one layer under its mapping, in bits (re-evaluated
    from the mapping YAML, per tensor so each tensor counts at its own width)."""
    from dse.model import evaluate
    from dse.model.wordbits import tensor_bits
    from dse.spec.native import read_mapping

    doc = yaml.safe_load(mapping_text)
    mapping = read_mapping(doc["mapping"], arch, problem)
    ev = evaluate(problem, arch, mapping, link_transfers=cfg.link_transfers,
                  generation=cfg.generation)
    dram = dram_level(arch)
    total = 0
    for st in ev.stats:
        if st.level != dram.name:
            continue
        words = (st.reads_per_instance + st.fills_per_instance + st.updates_per_instance) \
            * st.utilized_instances
        total += words * tensor_bits(dram, problem.data_space(st.tensor))
    return total


def _energy_per_bit(level, action: str) -> float:
    e = level.energy.get(action) or level.energy.get("read")
    if e is None:
        return 0.0
    return e.pJ / (level.block_size * level.datawidth)


def fused_run(network: Network, arch_input, cfg, spec: ScheduleSpec, keys: dict,
              results: dict, layer_rows: list[dict], totals: dict, point: str
              ) -> tuple[list[dict], dict, list[Segment]]:
    """Segment rows and the schedule's totals row (pure: no I/O)."""
    from dse.arch.rules import prepare_problem
    from dse.pipeline.run import task_problem

    arch = arch_input.arch
    dram = dram_level(arch)
    model = FusedModel(network, dram.datawidth)
    by_name = {r["layer"]: r for r in layer_rows}
    lw_bits: dict[str, int] = {}
    for lay in network.mappable():
        r = results[keys[lay.name]]
        if r.get("status") == "ok":
            problem = task_problem(prepare_problem(lay.problem, arch)[0])
            lw_bits[lay.name] = layerwise_dram_bits(problem, arch, r["mapping"], cfg)
    segments = resolve_segments(spec, model, arch, lw_bits)
    rows = []
    fused_layers: set[str] = set()
    seg_cycles = seg_energy = 0.0
    seg_dram_bits = 0
    for i, seg in enumerate(segments):
        where = f"schedule.segments[{i}]"
        try:
            cap = level_capacity_bits(arch, seg.level, where)
            counts = model.counts(seg, cap, where)
            check_fits(seg, counts, cap, where)
        except SpecError as exc:
            if exc.file is None and spec.file:
                exc.file, exc.line = spec.file, _line(spec, i)
            raise
        missing = [n for n in seg.layers if by_name[n].get("status") != "ok"]
        if missing:
            raise SpecError(f"{where}: layers {', '.join(missing)} have no layerwise mapping, "
                            f"which the segment's cycles and energy are scaled from",
                            file=spec.file, line=_line(spec, i))
        cycles = energy = 0.0
        lw_cycles = lw_energy = 0.0
        for name in seg.layers:
            r = results[keys[name]]
            scale = counts.ops[name] / network.layer(name).problem.macs
            cycles += r["cycles"] * scale
            energy += (r["energy_pJ"] - r["level_energy_pJ"][dram.name]) * scale
            lw_cycles += r["cycles"]
            lw_energy += r["energy_pJ"]
        energy += (counts.dram_read_bits * _energy_per_bit(dram, "read")
                   + counts.dram_write_bits * _energy_per_bit(dram, "write"))
        lw_seg_bits = sum(lw_bits[n] for n in seg.layers)
        fused_layers |= set(seg.layers)
        seg_cycles += cycles
        seg_energy += energy
        seg_dram_bits += counts.dram_read_bits + counts.dram_write_bits
        halo = seg.halo + "".join(f"; {t}={m}" for t, m in sorted(seg.halo_of.items()))
        rows.append({
            "network": network.name, "arch": arch_input.name, "point": point,
            "segment": seg.name, "layers": " ".join(seg.layers), "level": seg.level,
            "tile_rows": seg.tile_rows, "tiles": counts.tiles, "halo": halo,
            "weights": "resident" if counts.weights_resident else "per_tile",
            "dram_read_bytes": _bytes(counts.dram_read_bits),
            "dram_write_bytes": _bytes(counts.dram_write_bits),
            "dram_bytes": _bytes(counts.dram_read_bits + counts.dram_write_bits),
            "layerwise_dram_bytes": _bytes(lw_seg_bits),
            "onchip_read_bytes": _bytes(counts.onchip_read_bits),
            "onchip_write_bytes": _bytes(counts.onchip_write_bits),
            "buffer_peak_bytes": _bytes(counts.buffer_peak_bits), "capacity_bytes": cap // 8,
            "macs": counts.macs, "recomputed_macs": counts.recomputed_macs,
            "ops": sum(counts.ops.values()), "cycles": round(cycles),
            "energy_pJ": energy, "layerwise_cycles": round(lw_cycles),
            "layerwise_energy_pJ": lw_energy})
    rest = [r for r in layer_rows if r.get("status") == "ok" and r["layer"] not in fused_layers]
    lw_total_bits = sum(lw_bits.values())
    tot = {k: v for k, v in totals.items()
           if not (k.startswith("energy_") and k != "energy_pJ")
           and not k.startswith(("reads_", "writes_"))}
    tot.update({
        "cycles": round(seg_cycles + sum(r["cycles"] for r in rest)),
        "energy_pJ": seg_energy + sum(r["energy_pJ"] for r in rest),
        "schedule": "fused", "segments": len(segments), "fused_layers": len(fused_layers),
        "dram_bytes": _bytes(seg_dram_bits + sum(lw_bits[r["layer"]] for r in rest)),
        "layerwise_dram_bytes": _bytes(lw_total_bits),
        "layerwise_cycles": totals["cycles"], "layerwise_energy_pJ": totals["energy_pJ"]})
    from dse.pipeline.run import time_and_area

    tot.update(time_and_area(arch, tot["cycles"], tot["energy_pJ"]))
    tot["pJ_per_mac"] = tot["energy_pJ"] / tot["macs"] if tot["macs"] else ""
    pes = arch.compute.instances
    tot["utilization"] = tot["ops"] / (pes * tot["cycles"]) if tot["cycles"] else ""
    return rows, tot, segments


def _bytes(bits: int) -> int:
    return -(-bits // 8)


def fused_total_columns(layerwise_columns: list[str]) -> list[str]:
    keep = [c for c in layerwise_columns
            if not (c.startswith("energy_") and c != "energy_pJ")
            and not c.startswith(("reads_", "writes_")) and c not in FUSED_TOTAL_EXTRA]
    i = keep.index("point") + 1
    return keep[:i] + ["schedule"] + keep[i:] + [c for c in FUSED_TOTAL_EXTRA if c != "schedule"]


def write_fused(out: Path, network: Network, arch_input, cfg, spec: ScheduleSpec, store,
                layer_rows: list[dict], totals: dict, point: str = "",
                params: dict | None = None) -> tuple[list[dict], dict]:
    """After run_network: segments.csv, schedule.yaml and the schedule's totals.csv (replacing
    the layerwise one; its figures stay in the layerwise_* columns). The layers' results are
    read back from the store run_network filled."""
    from dse.pipeline.run import plan, total_columns
    from dse.pipeline.writers import atomic_write, csv_text

    _tasks, keys = plan(network, arch_input, cfg)
    results = {k: store.get(k) for k in set(keys.values())}
    params = params or {}
    rows, tot, segments = fused_run(network, arch_input, cfg, spec, keys, results, layer_rows,
                                    totals, point)
    atomic_write(out / "segments.csv", csv_text(rows, SEGMENT_COLUMNS))
    atomic_write(out / "schedule.yaml", schedule_yaml(network, segments))
    cols = fused_total_columns(total_columns(arch_input.arch, params))
    atomic_write(out / "totals.csv", csv_text([tot], cols))
    return rows, tot
