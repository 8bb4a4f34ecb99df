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

SCHEDULE_KINDS = ("layerwise", "fused", "pipeline")
SEARCHED_KINDS = ("auto",)  # chosen by a search (dse/schedule/auto.py), never read from a file
SEGMENT_KEYS = {"layers", "tile_rows", "halo", "halo_of", "level", "mappings"}
SEGMENT_COLUMNS = ["network", "arch", "point", "segment", "layers", "level", "tile_rows", "tiles",
                   "halo", "weights", "dram_read_bytes", "dram_write_bytes", "dram_bytes",
                   "layerwise_dram_bytes", "dram_bytes_lower_bound", "dram_bytes_over_bound",
                   "onchip_read_bytes", "onchip_write_bytes",
                   "buffer_peak_bytes", "capacity_bytes", "macs",
                   "recomputed_macs", "ops", "cycles", "energy_pJ", "layerwise_cycles",
                   "layerwise_energy_pJ", "mappings"]
FUSED_TOTAL_EXTRA = ["schedule", "segments", "fused_layers", "dram_bytes", "layerwise_dram_bytes",
                     "layerwise_cycles", "layerwise_energy_pJ"]


@dataclass(frozen=True)
class ScheduleSpec:
    kind: str  # layerwise | fused | pipeline | auto
    segments: tuple[Segment, ...] | None  # None = choose them (greedy or the auto search)
    level: str | None = None
    halo: str = "retain"
    file: str | None = None
    lines: tuple[int | None, ...] = ()
    pipeline: object = None  # kind pipeline: dse.schedule.pipeline.Pipeline (None = shipped)
    # layer -> mapping option (dse.schedule.auto: layerwise | onchip); absent = layerwise
    mappings: tuple[tuple[str, str], ...] = ()


def outermost_buffer(arch) -> str:
    """The default level for fused intermediates: the outermost on-chip buffer."""
    for lv in arch.levels:
        if not lv.is_dram and not lv.is_dummy and lv.effective_capacity_words is not None:
            return lv.name
    raise SpecError(f"{arch.name} has no on-chip buffer with a capacity to fuse layers in")


def parse_schedule_option(value: str) -> ScheduleSpec:
    """`--schedule`: layerwise, fused, pipeline, auto, or a schedule YAML file."""
    if value in SCHEDULE_KINDS + SEARCHED_KINDS:
        return ScheduleSpec(value, None)
    path = Path(value)
    if not path.exists():
        from dse.errors import did_you_mean

        raise SpecError("--schedule takes layerwise, fused, pipeline, auto or a schedule YAML "
                        "file; no such file", found=value,
                        hint=did_you_mean(value, SCHEDULE_KINDS + SEARCHED_KINDS))
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
    if node.get("kind") == "pipeline" and node.get("version", 1) == 1:
        from dse.pipeline.pipelined import read_pipeline

        pipe, lines = read_pipeline(node, str(path))
        return ScheduleSpec("pipeline", None, file=str(path), lines=lines, pipeline=pipe)
    if node.get("version", 1) != 1:
        raise SpecError("unsupported schedule version", key_path="schedule.version",
                        found=node.get("version"), expected="1", **where(node, "version"))
    kind = node.get("kind", "fused")
    if kind not in SCHEDULE_KINDS:
        from dse.errors import did_you_mean

        raise SpecError("unknown schedule kind", key_path="schedule.kind", found=kind,
                        expected=" or ".join(SCHEDULE_KINDS), **where(node, "kind"),
                        hint=did_you_mean(str(kind), SCHEDULE_KINDS))
    if "stages" in node:
        raise SpecError("`stages:` belongs to a pipeline schedule", key_path="schedule.kind",
                        found=kind, expected="pipeline", **where(node, "kind" if "kind" in node
                                                                 else "stages"),
                        hint="add `kind: pipeline` (a fused schedule has `segments:`)")
    check_keys(node, {"version", "kind", "level", "halo", "segments"}, "schedule")
    if kind == "layerwise" and set(node) & {"segments", "level", "halo"}:
        raise SpecError("a layerwise schedule has no segments, level or halo",
                        key_path="schedule.kind", found=kind, **where(node, "kind"),
                        hint="use kind: fused, or drop the fused keys")
    level = node.get("level")
    halo = _halo(node.get("halo", "retain"), "schedule.halo", node, "halo")
    if "segments" not in node:
        return ScheduleSpec(kind, None, level, halo, str(path))
    segs, lines, mappings = [], [], []
    for i, s in enumerate(require_list(node["segments"], "schedule.segments", node, "segments")):
        p = f"schedule.segments[{i}]"
        s = require_mapping(s, p, node, "segments")
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
        if "mappings" in s:
            mappings += _mapping_options(s, [str(n) for n in names], p)
    return ScheduleSpec(kind, tuple(segs), level, halo, str(path), tuple(lines),
                        mappings=tuple(mappings))


def _mapping_options(seg, names: list[str], key_path: str) -> list[tuple[str, str]]:
    """A segment's `mappings: {layer: layerwise|onchip}` (docs/fusion.md)."""
    from dse.errors import did_you_mean
    from dse.schedule.auto import MAPPING_OPTIONS
    from dse.spec.common import require_mapping, where

    node = require_mapping(seg["mappings"], f"{key_path}.mappings", seg, "mappings")
    out = []
    for layer, option in node.items():
        if str(layer) not in names:
            raise SpecError("`mappings` names a layer that is not in this segment",
                            key_path=f"{key_path}.mappings", found=layer,
                            expected=", ".join(names), hint=did_you_mean(str(layer), names),
                            **where(node, layer))
        if option not in MAPPING_OPTIONS:
            raise SpecError("unknown mapping option", key_path=f"{key_path}.mappings.{layer}",
                            found=option, expected=" or ".join(MAPPING_OPTIONS),
                            hint=did_you_mean(str(option), MAPPING_OPTIONS),
                            **where(node, layer))
        out.append((str(layer), str(option)))
    return out


def _halo(value, key_path: str, node, key) -> str:
    from dse.spec.common import where

    if value not in HALO_MODES:
        raise SpecError("unknown halo mode", key_path=key_path, found=value,
                        expected=" or ".join(HALO_MODES), **where(node, key))
    return str(value)


def schedule_yaml(network: Network, segments: list[Segment],
                  mappings: dict[str, str] | None = None, notes: list[str] = ()) -> str:
    """The schedule as run, in the format load_schedule reads (`notes`: comment lines first,
    e.g. why the auto search chose it)."""
    from dse.schedule.auto import LAYERWISE

    mappings = mappings or {}
    segs = []
    for s in segments:
        entry: dict = {"layers": list(s.layers), "tile_rows": s.tile_rows, "halo": s.halo}
        if s.halo_of:
            entry["halo_of"] = dict(s.halo_of)
        entry["level"] = s.level
        chosen = {n: mappings[n] for n in s.layers if mappings.get(n, LAYERWISE) != LAYERWISE}
        if chosen:
            entry["mappings"] = chosen
        segs.append(entry)
    doc = {"schedule": {"version": 1, "kind": "fused", "segments": segs}}
    head = "".join(f"# {line}\n" if line else "#\n" for line in notes)
    return (f"# fused schedule of {network.name}; give it back with --schedule FILE\n" + head
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


def layer_options(network: Network, arch_input, cfg, keys: dict, results: dict,
                  onchip: tuple[dict, dict] | None = None) -> dict:
    """layer -> {mapping option: LayerFigures} for every mapped layer: its layerwise mapping
    and, with `onchip` (keys, results of the onchip searches), the ONCHIP mapping."""
    from dse.arch.rules import prepare_problem
    from dse.pipeline.run import task_problem
    from dse.schedule.auto import LAYERWISE, ONCHIP, LayerFigures

    arch = arch_input.arch
    dram = dram_level(arch)
    options: dict[str, dict] = {}
    for lay in network.mappable():
        r = results[keys[lay.name]]
        if r.get("status") != "ok":
            continue
        problem = task_problem(prepare_problem(lay.problem, arch)[0])
        bits = layerwise_dram_bits(problem, arch, r["mapping"], cfg)
        opts = {LAYERWISE: LayerFigures(r["cycles"], r["energy_pJ"],
                                        r["level_energy_pJ"][dram.name], bits,
                                        lay.problem.macs)}
        if onchip is not None and lay.name in onchip[0]:
            o = onchip[1][onchip[0][lay.name]]
            if o.get("status") == "ok":  # its DRAM-level accesses stand for on-chip ones
                opts[ONCHIP] = LayerFigures(o["cycles"], o["energy_pJ"], 0.0,
                                            8 * (o.get("dram_bytes") or 0), lay.problem.macs)
        options[lay.name] = opts
    return options


def auto_search(network: Network, arch_input, cfg, spec: ScheduleSpec, options: dict):
    """The auto search (dse/schedule/auto.py) at the schedule's level (default: the outermost
    on-chip buffer)."""
    from dse.schedule import auto

    arch = arch_input.arch
    dram = dram_level(arch)
    level = spec.level or outermost_buffer(arch)
    cap = level_capacity_bits(arch, level, "schedule")
    model = FusedModel(network, dram.datawidth)
    return auto.search(model, level, cap, options, _energy_per_bit(dram, "read"),
                       _energy_per_bit(dram, "write"), cfg.objective)


def explain(picked, network: Network) -> list[str]:
    """Why the auto search chose its schedule, in lines (stdout and schedule.yaml)."""
    from dse.schedule.auto import LAYERWISE, objective_key

    def ratio(a: float, b: float) -> str:
        return f"x{a / b:.3f}" if b else "-"

    lw_e, lw_c = picked.layerwise_energy_pJ, picked.layerwise_cycles
    lw_obj = objective_key(picked.objective, lw_e, lw_c)[0]
    obj = objective_key(picked.objective, picked.energy_pJ, picked.cycles)[0]
    segs = [s for s in picked.steps if s.segment is not None]
    lines = [f"auto ({picked.objective}): {picked.ranges} layer ranges are candidate "
             f"segments (valid, fit, no more DRAM than layerwise), {picked.candidates} Pareto "
             f"points (tile height x halo x mappings); chose {len(segs)} segment(s) over "
             f"{sum(len(s.layers) for s in segs)} of {len(network.layers)} layers; "
             f"{picked.objective} {ratio(obj, lw_obj)}, energy "
             f"{ratio(picked.energy_pJ, lw_e)}, cycles {ratio(picked.cycles, lw_c)} "
             f"against layerwise"]
    for s in segs:
        seg = s.segment
        maps = [f"{n}={m}" for n, m in zip(s.layers, s.mappings, strict=True) if m != LAYERWISE]
        lw_bits = s.layerwise_dram_bits
        saved = f"{(lw_bits - s.dram_bits) / lw_bits:.0%}" if lw_bits else "-"
        lines.append(
            f"  {seg.name} ({len(s.layers)} layers): tile {seg.tile_rows} row(s), halo "
            f"{seg.halo}, mappings {', '.join(maps) or 'layerwise'}; DRAM "
            f"{_bytes(s.dram_bits):,} B vs {_bytes(s.layerwise_dram_bits):,} B layerwise "
            f"({saved} saved), energy {ratio(s.energy_pJ, s.layerwise_energy_pJ)}, cycles "
            f"{ratio(s.cycles, s.layerwise_cycles)}")
    by_reason: dict[str, list[str]] = {}
    for name, why in picked.why_layerwise.items():
        by_reason.setdefault(why, []).append(name)
    for why, names in by_reason.items():
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        lines.append(f"  layerwise, {why}: {shown}")
    return lines


def fused_run(network: Network, arch_input, cfg, spec: ScheduleSpec, keys: dict,
              results: dict, layer_rows: list[dict], totals: dict, point: str,
              onchip: tuple[dict, dict] | None = None):
    """Segment rows, the schedule's totals row, the segments, the layers' mapping options and
    the explanation lines of an auto search (pure: no I/O)."""
    from dse.schedule.auto import LAYERWISE, segment_cost

    arch = arch_input.arch
    dram = dram_level(arch)
    model = FusedModel(network, dram.datawidth)
    by_name = {r["layer"]: r for r in layer_rows}
    options = layer_options(network, arch_input, cfg, keys, results, onchip)
    lw_bits = {name: o[LAYERWISE].dram_bits for name, o in options.items()}
    notes: list[str] = []
    if spec.kind == "auto":
        picked = auto_search(network, arch_input, cfg, spec, options)
        segments = picked.segments
        mappings = {n: m for s in picked.steps if s.segment is not None
                    for n, m in zip(s.layers, s.mappings, strict=True)}
        notes = explain(picked, network)
    else:
        segments = resolve_segments(spec, model, arch, lw_bits)
        mappings = dict(spec.mappings)
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
        figs = {}
        for name in seg.layers:
            option = mappings.get(name, LAYERWISE)
            if option not in options[name]:
                raise SpecError(f"{where}: layer '{name}' has no {option} mapping (its search "
                                f"found none)", file=spec.file, line=_line(spec, i))
            figs[name] = options[name][option]
        cycles, energy = segment_cost(counts, figs, _energy_per_bit(dram, "read"),
                                      _energy_per_bit(dram, "write"))
        lw_cycles = sum(results[keys[n]]["cycles"] for n in seg.layers)
        lw_energy = sum(results[keys[n]]["energy_pJ"] for n in seg.layers)
        lw_seg_bits = sum(lw_bits[n] for n in seg.layers)
        bound_bits = model.dram_bits_lower_bound(seg)
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
            "dram_bytes_lower_bound": _bytes(bound_bits),
            "dram_bytes_over_bound": (counts.dram_read_bits + counts.dram_write_bits)
            / bound_bits if bound_bits else "",
            "onchip_read_bytes": _bytes(counts.onchip_read_bits),
            "onchip_write_bytes": _bytes(counts.onchip_write_bits),
            "buffer_peak_bytes": _bytes(counts.buffer_peak_bits), "capacity_bytes": cap // 8,
            "macs": counts.macs, "recomputed_macs": counts.recomputed_macs,
            "ops": sum(counts.ops.values()), "cycles": round(cycles),
            "energy_pJ": energy, "layerwise_cycles": round(lw_cycles),
            "layerwise_energy_pJ": lw_energy,
            "mappings": " ".join(f"{n}={mappings[n]}" for n in seg.layers
                                 if mappings.get(n, LAYERWISE) != LAYERWISE)})
    rest = [r for r in layer_rows if r.get("status") == "ok" and r["layer"] not in fused_layers]
    lw_total_bits = sum(lw_bits.values())
    # the layerwise run's per-layer DRAM bound does not bound a fused schedule (its segments
    # move less); segments.csv has each segment's own bound
    tot = {k: v for k, v in totals.items()
           if not (k.startswith("energy_") and k != "energy_pJ")
           and not k.startswith(("reads_", "writes_"))
           and k not in ("dram_words_lower_bound", "dram_traffic_over_bound")}
    tot.update({
        "cycles": round(seg_cycles + sum(r["cycles"] for r in rest)),
        "energy_pJ": seg_energy + sum(r["energy_pJ"] for r in rest),
        "schedule": spec.kind, "segments": len(segments), "fused_layers": len(fused_layers),
        "dram_bytes": _bytes(seg_dram_bits + sum(lw_bits[r["layer"]] for r in rest)),
        "layerwise_dram_bytes": _bytes(lw_total_bits),
        "layerwise_cycles": totals["cycles"], "layerwise_energy_pJ": totals["energy_pJ"]})
    from dse.pipeline.run import time_and_area

    tot.update(time_and_area(arch, tot["cycles"], tot["energy_pJ"]))
    tot["pJ_per_mac"] = tot["energy_pJ"] / tot["macs"] if tot["macs"] else ""
    pes = arch.compute.instances
    tot["utilization"] = tot["ops"] / (pes * tot["cycles"]) if tot["cycles"] else ""
    return rows, tot, segments, mappings, notes


def _bytes(bits: int) -> int:
    return -(-bits // 8)


def fused_total_columns(layerwise_columns: list[str]) -> list[str]:
    keep = [c for c in layerwise_columns
            if not (c.startswith("energy_") and c != "energy_pJ")
            and not c.startswith(("reads_", "writes_")) and c not in FUSED_TOTAL_EXTRA]
    i = keep.index("point") + 1
    return keep[:i] + ["schedule"] + keep[i:] + [c for c in FUSED_TOTAL_EXTRA if c != "schedule"]


def onchip_results(network: Network, arch_input, cfg, store, level: str, jobs: int = 1,
                   only: set[str] | None = None) -> tuple[dict, dict]:
    """(layer -> key, key -> result) of the ONCHIP mapping searches (dse/schedule/auto.py) of
    the fusable layers (or of `only`) with DRAM priced as `level`, stored like any layer
    result."""
    from dataclasses import replace

    from dse.pipeline.run import plan
    from dse.pipeline.work import gather
    from dse.schedule.auto import onchip_architecture
    from dse.schedule.fused import FUSABLE_TYPES

    onchip_arch = replace(arch_input, arch=onchip_architecture(arch_input.arch, level))
    tasks, keys = plan(network, onchip_arch, cfg)
    wanted = {lay.name for lay in network.mappable() if lay.type in FUSABLE_TYPES}
    if only is not None:
        wanted &= only
    keys = {n: k for n, k in keys.items() if n in wanted}
    needed = set(keys.values())
    work = gather([t for t in tasks if t.key in needed], store, jobs)
    return keys, work.results


def _onchip_level_check(spec: ScheduleSpec, level: str) -> None:
    """onchip mappings are searched with DRAM priced as the schedule's level: a segment at
    another level cannot use them."""
    from dse.schedule.auto import ONCHIP

    onchip = {n for n, m in spec.mappings if m == ONCHIP}
    for i, seg in enumerate(spec.segments or ()):
        if seg.level and seg.level != level and onchip & set(seg.layers):
            raise SpecError(f"schedule.segments[{i}]: onchip mappings are searched for the "
                            f"schedule's level ({level}); this segment is at {seg.level}",
                            file=spec.file, line=_line(spec, i),
                            key_path=f"schedule.segments[{i}].mappings",
                            hint="set the schedule's `level:` to the segment's level, or map "
                                 "these layers layerwise")


def write_fused(out: Path, network: Network, arch_input, cfg, spec: ScheduleSpec, store,
                layer_rows: list[dict], totals: dict, point: str = "",
                params: dict | None = None, jobs: int = 1
                ) -> tuple[list[dict], dict, list[str]]:
    """After run_network: segments.csv, schedule.yaml and the schedule's totals.csv (replacing
    the layerwise one; its figures stay in the layerwise_* columns); returns the segment rows,
    the totals and, for auto, the lines saying why it chose its schedule. The layers' results
    are read back from the store run_network filled; the ONCHIP mappings an auto search or a
    file asks for are searched (and stored) here."""
    from dse.pipeline.run import plan, total_columns
    from dse.pipeline.writers import atomic_write, csv_text
    from dse.schedule.auto import ONCHIP

    _tasks, keys = plan(network, arch_input, cfg)
    results = {k: store.get(k) for k in set(keys.values())}
    params = params or {}
    onchip = None
    level = spec.level or outermost_buffer(arch_input.arch)
    if spec.kind == "auto":  # onchip mappings for the layers some fused candidate holds
        from dse.schedule.auto import fusable_layers

        cap = level_capacity_bits(arch_input.arch, level, "schedule")
        arch = arch_input.arch
        covered = fusable_layers(FusedModel(network, dram_level(arch).datawidth), level, cap,
                                 layer_options(network, arch_input, cfg, keys, results))
        onchip = onchip_results(network, arch_input, cfg, store, level, jobs, covered)
    elif any(m == ONCHIP for _, m in spec.mappings):
        _onchip_level_check(spec, level)
        onchip = onchip_results(network, arch_input, cfg, store, level, jobs,
                                {n for n, m in spec.mappings if m == ONCHIP})
    rows, tot, segments, mappings, notes = fused_run(
        network, arch_input, cfg, spec, keys, results, layer_rows, totals, point, onchip)
    atomic_write(out / "segments.csv", csv_text(rows, SEGMENT_COLUMNS))
    atomic_write(out / "schedule.yaml", schedule_yaml(network, segments, mappings, notes))
    cols = fused_total_columns(total_columns(arch_input.arch, params))
    atomic_write(out / "totals.csv", csv_text([tot], cols))
    return rows, tot, notes
