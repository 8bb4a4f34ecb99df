"""The estimator's data tables (dse/energy/data/*.csv), read once, and the lookups on them.

Every row names its source in a `source` column; docs/energy.md explains the scaling rules.
All lookups return energies at the tables' own node (45 nm, 0.9 V) unless they say otherwise.
"""

from __future__ import annotations

import csv
import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

from dse.errors import SpecError

DATA = Path(__file__).resolve().parent / "data"
BASE_NODE_NM = 45.0
BASE_VDD = 0.9  # Horowitz's 45 nm figures are at 0.9 V


@dataclass(frozen=True)
class StorageAnchor:
    kind: str  # 'sram' or 'regfile'
    size_bytes: int
    width_bits: int
    read_pJ: float
    write_pJ: float
    source: str

    @property
    def read_per_bit(self) -> float:
        return self.read_pJ / self.width_bits

    @property
    def write_per_bit(self) -> float:
        return self.write_pJ / self.width_bits


@dataclass(frozen=True)
class NodeRow:
    node_nm: float
    variant: str
    vdd: float
    a: float
    b: float
    c: float
    source: str

    def energy_factor(self, vdd: float | None = None) -> float:
        v = self.vdd if vdd is None else vdd
        return self.a * v * v + self.b * v + self.c


@dataclass(frozen=True)
class Tables:
    storage: tuple[StorageAnchor, ...]
    compute: dict[tuple[str, int], tuple[float, str]]  # (op, bits) -> (pJ, source)
    dram: dict[str, tuple[float, str]]  # type -> (pJ per bit, source)
    nodes: tuple[NodeRow, ...]  # largest node first
    normalized: dict[str, tuple[float, str]]  # component -> (relative energy, source)


def _rows(name: str) -> list[dict[str, str]]:
    with open(DATA / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@functools.cache
def tables() -> Tables:
    storage = tuple(
        StorageAnchor(r["kind"], int(r["size_bytes"]), int(r["width_bits"]), float(r["read_pJ"]),
                      float(r["write_pJ"]), r["source"])
        for r in _rows("storage_45nm.csv"))
    compute = {(r["op"], int(r["bits"])): (float(r["pJ"]), r["source"])
               for r in _rows("compute_45nm.csv")}
    dram = {r["type"]: (float(r["pJ_per_bit"]), r["source"]) for r in _rows("dram.csv")}
    nodes = tuple(sorted(
        (NodeRow(float(r["node_nm"]), r["variant"], float(r["vdd_V"]), float(r["a"]),
                 float(r["b"]), float(r["c"]), r["source"]) for r in _rows("technology.csv")),
        key=lambda n: -n.node_nm))
    normalized = {r["component"]: (float(r["relative_energy"]), r["source"])
                  for r in _rows("eyeriss_normalized.csv")}
    return Tables(storage, compute, dram, nodes, normalized)


# ----------------------------------------------------------------------------- interpolation


def power_law(points: list[tuple[float, float]], x: float) -> float:
    """Piecewise power law through (x, y) points (log-log linear); the end segments extend
    beyond the first and last points. One point = a constant."""
    pts = sorted(points)
    if len(pts) == 1:
        return pts[0][1]
    for j in range(len(pts) - 1):
        (x0, y0), (x1, y1) = pts[j], pts[j + 1]
        if x <= x1 or j == len(pts) - 2:
            slope = math.log(y1 / y0) / math.log(x1 / x0)
            return y0 * (x / x0) ** slope
    raise AssertionError("unreachable")


def storage_kind(cls: str) -> str:
    """'regfile' for register-file classes (regfile, *_RF, register...), else 'sram'."""
    c = cls.lower()
    if "regfile" in c or "register" in c or c.endswith("_rf") or c == "rf":
        return "regfile"
    return "sram"


def storage_per_bit(kind: str, size_bytes: float) -> tuple[float, float, str]:
    """(read pJ/bit, write pJ/bit, sources) at 45 nm for an array of `size_bytes`."""
    rows = [a for a in tables().storage if a.kind == kind]
    read = power_law([(a.size_bytes, a.read_per_bit) for a in rows], size_bytes)
    write = power_law([(a.size_bytes, a.write_per_bit) for a in rows], size_bytes)
    return read, write, "; ".join(sorted({a.source.split(":")[0] for a in rows}))


def mac_energy(bits: int, floating: bool = False) -> float:
    """One multiply-accumulate at 45 nm: multiplier of `bits` + adder of 2*bits (integer) or of
    `bits` (floating point), each interpolated as a power law in the bit width."""
    t = tables().compute
    kind = "fp" if floating else "int"
    mult = power_law([(b, e) for (op, b), (e, _) in t.items() if op == f"{kind}_mult"], bits)
    add_bits = bits if floating else 2 * bits
    add = power_law([(b, e) for (op, b), (e, _) in t.items() if op == f"{kind}_add"], add_bits)
    return mult + add


# ----------------------------------------------------------------------------- technology

_TECH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*nm(?:\s*[@,]?\s*(\d+(?:\.\d+)?)\s*V)?\s*$", re.I)


def parse_technology(text) -> tuple[float, float | None]:
    """'65nm' -> (65, None); '65nm 1.0V' or '65 nm @ 1.0 V' -> (65, 1.0)."""
    m = _TECH.match(str(text))
    if not m:
        raise SpecError(f"cannot read technology {text!r}",
                        expected="a node like '45nm', optionally with a supply: '65nm 1.0V'")
    return float(m.group(1)), (float(m.group(2)) if m.group(2) else None)


def technology_factor(technology) -> tuple[float, str]:
    """Energy multiplier from the tables' node (45 nm, 0.9 V) to `technology`, and a note.

    Stillmaker & Baas's polynomial gives an energy factor per node at a supply V; between two
    table nodes the factor is interpolated as a power law in the node size; outside 7-130 nm
    the nearest end node is used (said in the note).
    """
    if technology is None:
        return 1.0, "45 nm (no technology given)"
    node, vdd = parse_technology(technology)
    nodes = tables().nodes
    base = next(n for n in nodes if n.node_nm == BASE_NODE_NM).energy_factor(BASE_VDD)
    note = f"{technology}"
    if node > nodes[0].node_nm or node < nodes[-1].node_nm:
        end = nodes[0] if node > nodes[0].node_nm else nodes[-1]
        f = end.energy_factor(vdd) / base
        return f, f"{technology} outside the scaling table, scaled as {end.node_nm:g} nm"
    exact = [n for n in nodes if n.node_nm == node]
    if exact:
        f = exact[0].energy_factor(vdd) / base
    else:
        hi = next(n for n in nodes if n.node_nm > node and
                  nodes[nodes.index(n) + 1].node_nm < node)
        lo = nodes[nodes.index(hi) + 1]
        f = power_law([(hi.node_nm, hi.energy_factor(vdd)), (lo.node_nm, lo.energy_factor(vdd))],
                      node) / base
    return f, note
