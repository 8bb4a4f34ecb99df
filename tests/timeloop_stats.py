"""A small reader of Timeloop's `*.stats.txt` (test-side): per (level, tensor) counts and energy,
the arithmetic level's energy, and the summary's cycles."""

from __future__ import annotations

import re
from pathlib import Path

_KEYS = {
    "Utilized instances (max)": "utilized_instances",
    "Scalar reads (per-instance)": "reads_per_instance",
    "Scalar fills (per-instance)": "fills_per_instance",
    "Scalar updates (per-instance)": "updates_per_instance",
    "Partition size": "partition_size",
    "Utilized capacity": "utilized_capacity_words",
    "Temporal reductions (per-instance)": "temporal_reductions_per_instance",
    "Energy (total)": "energy_pJ",
    # Sparseloop reports: the algorithmic (dense) counts and capacity
    "Algorithmic scalar reads (per-instance)": "reads_per_instance",
    "Algorithmic scalar fills (per-instance)": "fills_per_instance",
    "Algorithmic scalar updates (per-instance)": "updates_per_instance",
}


def read_stats(path: Path) -> dict:
    """{'rows': {(level, tensor): {...}}, 'compute': {...}, 'leak': {level: pJ}, 'cycles': int}.
    """
    rows: dict[tuple[str, str], dict] = {}
    leak: dict[str, float] = {}
    compute: dict = {}
    level = tensor = None
    first_level = True
    cycles = None
    for line in Path(path).read_text().splitlines():
        if line.startswith("Level 1"):
            first_level = False
        if line.startswith("Networks"):
            level = None
        m = re.match(r"^=== (.+) ===$", line.strip())
        if m:
            level, tensor = m.group(1), None
            continue
        if line.startswith("Cycles:"):
            cycles = int(line.split(":")[1])
        if level is None:
            continue
        t = re.match(r"^    (\w+):$", line)
        if t:
            tensor = t.group(1)
            rows[(level, tensor)] = {}
            continue
        kv = re.match(r"^\s+([^:]+?)\s+:\s+(-?[\d.]+)", line)
        if not kv:
            continue
        key, value = kv.group(1), float(kv.group(2))
        if first_level and tensor is None and key in ("Utilized instances", "Energy (total)"):
            compute[key] = value
        if tensor is None and key == "Leakage energy (total)":
            leak[level] = value
        if tensor is not None and key in _KEYS:
            rows[(level, tensor)][_KEYS[key]] = value
    return {"rows": rows, "compute": compute, "leak": leak, "cycles": cycles}
