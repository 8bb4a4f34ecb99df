"""Rows and files for one evaluated mapping: levels.csv, summary.json and a terminal table.

Leakage is reported in its own row per level (tensor = `leakage`), not folded into tensor rows,
so every tensor row is the dynamic energy of that level and tensor summed over utilized instances.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from dse import __version__
from dse.model.evaluate import Evaluation

LEVEL_COLUMNS = [
    "level", "tensor", "instances", "utilized_instances", "utilized_capacity_words",
    "capacity_words", "reads_per_instance", "fills_per_instance", "updates_per_instance",
    "partition_size", "temporal_reductions_per_instance", "link_transfers_per_instance",
    "peer_accesses_per_instance", "read_energy_pJ", "fill_energy_pJ",
    "update_energy_pJ", "energy_pJ", "energy_source",
]
# added when the design is sparse (dse.model.sparse): reads/fills/updates above are the actual
# ones, utilized_capacity_words the compressed tile
SPARSE_COLUMNS = [
    "algorithmic_reads_per_instance", "gated_reads_per_instance", "skipped_reads_per_instance",
    "algorithmic_fills_per_instance", "gated_fills_per_instance", "skipped_fills_per_instance",
    "algorithmic_updates_per_instance", "gated_updates_per_instance",
    "skipped_updates_per_instance", "metadata_reads_per_instance",
    "gated_metadata_reads_per_instance", "skipped_metadata_reads_per_instance",
    "metadata_fills_per_instance", "gated_metadata_fills_per_instance",
    "skipped_metadata_fills_per_instance", "metadata_updates_per_instance",
    "gated_metadata_updates_per_instance", "skipped_metadata_updates_per_instance",
    "decompressions_per_instance", "compressions_per_instance", "representation_format",
    "metadata_capacity_units", "data_tile_shape_words", "density_distribution", "computes",
    "algorithmic_computes", "gated_computes", "skipped_computes",
]


def level_rows(ev: Evaluation, arch) -> list[dict]:
    """One row per (level, tensor), one leakage row per level with leakage, one compute row."""
    rows: list[dict] = []
    caps = {lv.name: lv.capacity_words for lv in arch.levels}
    leak = {s.name: s for s in ev.levels}
    by_level: dict[str, list] = {}  # report order: first appearance in ev.stats
    for r in ev.stats:
        by_level.setdefault(r.level, []).append(r)
    for name in by_level:
        lv = arch.levels[arch.index(name)]
        src = "; ".join(sorted({lv.energy[a].source for a in ("read", "write", "update")
                                if a in lv.energy}))
        for r in by_level[name]:
            rows.append({
                "level": r.level, "tensor": r.tensor, "instances": r.instances,
                "utilized_instances": r.utilized_instances,
                "utilized_capacity_words": r.utilized_capacity_words,
                "capacity_words": "" if caps[name] is None else caps[name],
                "reads_per_instance": r.reads_per_instance,
                "fills_per_instance": r.fills_per_instance,
                "updates_per_instance": r.updates_per_instance,
                "partition_size": r.partition_size,
                "temporal_reductions_per_instance": r.temporal_reductions_per_instance,
                "link_transfers_per_instance": _f(r.link_transfers),
                "peer_accesses_per_instance": r.peer_accesses_per_instance,
                "read_energy_pJ": _f(r.read_energy_pJ), "fill_energy_pJ": _f(r.fill_energy_pJ),
                "update_energy_pJ": _f(r.update_energy_pJ), "energy_pJ": _f(r.energy_pJ),
                "energy_source": src,
            })
        s = leak[name]
        if s.leakage_pJ:
            rows.append({
                "level": name, "tensor": "leakage", "instances": s.instances,
                "utilized_instances": s.utilized_instances, "energy_pJ": _f(s.leakage_pJ),
                "energy_source": lv.energy["leak"].source,
            })
    # fan-outs whose parent holds no copy of the tensor (fan-out levels, bypass): their link
    # transfers have no tensor row above, so they get one of their own
    for (name, tensor), (words, used) in ev.link_transfers.items():
        if name in by_level and any(r.tensor == tensor for r in by_level[name]):
            continue
        lv = arch.levels[arch.index(name)]
        rows.append({
            "level": name, "tensor": tensor, "instances": lv.instances,
            "utilized_instances": used, "link_transfers_per_instance": _f(words),
            "energy_pJ": 0.0, "energy_source": "link transfers only (network energy not "
            "modelled; peer accesses are charged at the receiving level)",
        })
    comp = arch.compute
    rows.append({
        "level": comp.name, "tensor": "compute", "instances": comp.instances,
        "utilized_instances": ev.compute_utilized_instances, "energy_pJ": _f(ev.compute_energy_pJ),
        "energy_source": comp.energy["compute"].source,
    })
    return [{c: row.get(c, "") for c in LEVEL_COLUMNS} for row in rows]


def sparse_level_rows(sev, arch) -> list[dict]:
    """levels.csv rows of a sparse evaluation: the dense rows with actual counts, compressed
    capacities, energies with metadata, and the sparse columns."""
    from dse.model.sparse import sparse_columns

    rows = level_rows(sev.dense, arch)
    by_key = {(r.level, r.tensor): r for r in sev.rows}
    leak = {s.name: s.leakage_pJ for s in sev.levels}
    out = []
    for row in rows:
        row = {**row, **{c: "" for c in SPARSE_COLUMNS}}
        key = (row["level"], row["tensor"])
        if key in by_key:
            r = by_key[key]
            row.update(sparse_columns(r))
            row.update({
                "utilized_capacity_words": r.utilized_capacity_words,
                "reads_per_instance": r.data["reads"].actual,
                "fills_per_instance": r.data["fills"].actual,
                "updates_per_instance": r.data["updates"].actual,
                "temporal_reductions_per_instance": r.temporal_reductions,
                "read_energy_pJ": "", "fill_energy_pJ": "", "update_energy_pJ": "",
                "energy_pJ": _f(r.energy_pJ),
            })
        elif row["tensor"] == "leakage":
            row["energy_pJ"] = _f(leak[row["level"]])
        elif row["tensor"] == "compute":
            row.update({"energy_pJ": _f(sev.compute_energy_pJ), "computes": sev.actual_computes,
                        "algorithmic_computes": sev.macs, "gated_computes": sev.gated_computes,
                        "skipped_computes": sev.skipped_computes})
        out.append(row)
    return out


def sparse_summary(sev, arch, problem, inputs: dict[str, str], extra: dict | None = None
                   ) -> dict:
    """summary.json of a sparse evaluation: the dense keys with sparse totals, plus computes."""
    out = summary(sev.dense, arch, problem, inputs, extra)
    out.update({
        "cycles": sev.cycles, "compute_cycles": sev.compute_cycles,
        "utilization": sev.utilization, "energy_pJ": sev.energy_pJ,
        "pJ_per_mac": sev.pJ_per_mac, "actual_computes": sev.actual_computes,
        "gated_computes": sev.gated_computes, "skipped_computes": sev.skipped_computes,
        "level_energy_pJ": sev.level_energy(),
        "level_leakage_pJ": {s.name: s.leakage_pJ for s in sev.levels},
        "level_cycles": {s.name: s.cycles for s in sev.levels},
        "level_bandwidth_slowdown": {s.name: s.slowdown for s in sev.levels},
        "dense_energy_pJ": sev.dense.energy_pJ, "dense_cycles": sev.dense.cycles,
    })
    return out


def _f(x: float) -> float:
    return round(float(x), 6)


def summary(ev: Evaluation, arch, problem, inputs: dict[str, str], extra: dict | None = None
            ) -> dict:
    out = {
        "macs": ev.macs,
        "cycles": ev.cycles,
        "compute_cycles": ev.compute_cycles,
        "utilization": ev.utilization,
        "energy_pJ": ev.energy_pJ,
        "pJ_per_mac": ev.pJ_per_mac,
        "level_energy_pJ": ev.level_energy(),
        "level_leakage_pJ": {s.name: s.leakage_pJ for s in ev.levels},
        "level_cycles": {s.name: s.cycles for s in ev.levels},
        "level_bandwidth_slowdown": {s.name: s.slowdown for s in ev.levels},
        "architecture": arch.name,
        "problem": problem.name,
        "provenance": {
            "tool": "dse",
            "version": __version__,
            "inputs": [{"file": f, "sha256": h} for f, h in inputs.items()],
            "energy_sources": dict(sorted(ev.energy_sources.items())),
        },
    }
    from dse.energy.area import level_areas_mm2

    areas = level_areas_mm2(arch)
    out["area_mm2"] = sum(areas.values())
    out["level_area_mm2"] = areas
    out["clock_hz"] = arch.clock_hz
    if arch.clock_hz:  # without a clock the result is in cycles only
        out["latency_s"] = ev.cycles / arch.clock_hz
        out["power_W"] = ev.energy_pJ * 1e-12 / out["latency_s"] if ev.cycles else None
    out["provenance"]["area_sources"] = {
        **{lv.name: lv.area_source for lv in arch.levels if lv.name in areas},
        arch.compute.name: arch.compute.area_source}
    if extra:
        out.update(extra)
    return out


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file.
    The file gets the permissions of a normally created one (0666 less the umask; the temp
    file would be 0600). A path that exists but is not a regular file (/dev/stdout, a FIFO)
    is written in place. An OSError always names the path it was about writing."""
    try:
        if path.exists() and not path.is_file():
            with open(path, "wb" if isinstance(data, bytes) else "w", newline=None
                      if isinstance(data, bytes) else "") as fh:
                fh.write(data)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w",
                           newline=None if isinstance(data, bytes) else "") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        if exc.filename is None or exc.filename2 is not None:  # not the temp file's name
            exc.filename, exc.filename2 = str(path), None
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_outputs(out_dir: Path, rows: list[dict], summ: dict,
                  columns: list[str] | None = None) -> None:
    atomic_write(out_dir / "levels.csv", csv_text(rows, columns or LEVEL_COLUMNS))
    atomic_write(out_dir / "summary.json", json.dumps(summ, indent=2) + "\n")


def terminal_table(ev, rows: list[dict]) -> str:
    """A readable fixed-width table plus the totals (`ev`: a dense or sparse evaluation)."""
    head = ["level", "tensor", "inst", "tile", "reads/inst", "fills/inst", "updates/inst",
            "energy_pJ"]
    body = []
    for r in rows:
        body.append([
            str(r["level"]), str(r["tensor"]),
            f"{r['utilized_instances']}/{r['instances']}" if r["instances"] != "" else "",
            _n(r["utilized_capacity_words"]), _n(r["reads_per_instance"]),
            _n(r["fills_per_instance"]), _n(r["updates_per_instance"]), _e(r["energy_pJ"]),
        ])
    if rows and "gated_reads_per_instance" in rows[0]:  # sparse: where the rest went
        head.insert(5, "gated/skipped reads")
        for b, r in zip(body, rows, strict=True):
            g, k = r["gated_reads_per_instance"], r["skipped_reads_per_instance"]
            b.insert(5, f"{g:,}/{k:,}" if isinstance(g, int) else "")
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in
                       enumerate(zip(head, widths, strict=True)))]
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                               enumerate(zip(b, widths, strict=True))))
    lines.append("")
    lines.append(
        f"MACs {ev.macs:,}   cycles {ev.cycles:,}   utilization {ev.utilization:.3f}   "
        f"energy {_energy_text(ev.energy_pJ)}   {ev.pJ_per_mac:.4f} pJ/MAC"
    )
    if "actual_computes" in dir(ev):
        lines.append(f"computes: actual {ev.actual_computes:,}   gated {ev.gated_computes:,}   "
                     f"skipped {ev.skipped_computes:,}   (dense model: "
                     f"{ev.dense.energy_pJ:,.2f} pJ, {ev.dense.cycles:,} cycles)")
    return "\n".join(lines)


def _energy_text(pJ: float) -> str:
    """uJ, or pJ for designs too small to show in uJ."""
    return f"{pJ / 1e6:,.3f} uJ" if pJ >= 1e3 else f"{pJ:,.2f} pJ"


def _n(x) -> str:
    return f"{x:,}" if isinstance(x, int) else str(x)


def _e(x) -> str:
    return f"{x:,.2f}" if isinstance(x, float) else str(x)
