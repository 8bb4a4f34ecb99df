"""Find and load result files below the folders given to `dse report`.

Layouts understood (searched recursively, in sorted order):

* `dse run --out DIR`: DIR/totals.csv + DIR/layers.csv (point empty);
* `dse sweep --out DIR`: DIR/<point>/totals.csv + layers.csv per design point and DIR/sweep.csv
  with every point's totals row. Below a folder holding sweep.csv the per-point totals.csv files
  are used, and sweep.csv only supplies points that have no totals.csv of their own (e.g. when
  only sweep.csv was copied), so nothing is counted twice.

Rows repeated across inputs (same network, arch, point — e.g. a folder passed twice, or a point
folder and its sweep) are kept once if their results agree; if they disagree it is an error.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dse.errors import SpecError

KEY = ["network", "arch", "point"]
TOTALS_REQUIRED = ["network", "arch", "macs", "cycles", "energy_pJ"]
LAYERS_REQUIRED = ["network", "layer", "arch", "cycles", "energy_pJ"]
TEXT_COLUMNS = {"network", "arch", "point", "layer", "type", "status", "shape_id", "mapping",
                "objective", "tool_version", "arch_key", "layer_key", "energy_sources"}
NUMERIC = ["macs", "ops", "cycles", "energy_pJ", "pJ_per_mac", "utilization"]
COMPARE = ["macs", "cycles", "energy_pJ"]  # what must agree when a row is found twice
RESULT_NAMES = ("totals.csv", "sweep.csv", "layers.csv")
HINT = "result folders are written by `dse run --out DIR` or `dse sweep --out DIR`"
_LEVEL_ENERGY = re.compile(r"energy_(.+)_pJ")


@dataclass
class Results:
    """Everything loaded: totals (one row per network x arch x point), layers, provenance."""

    totals: pd.DataFrame
    layers: pd.DataFrame
    inputs: list[str]
    files: list[str]
    # (network, arch, point) -> its energy_<LEVEL>_pJ columns in the file's order
    level_columns: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def is_level_energy(col: str) -> bool:
    return col != "energy_pJ" and _LEVEL_ENERGY.fullmatch(col) is not None


def natural_key(text: str) -> tuple:
    """Sort 'p2' before 'p10' and 'depth=4096' before 'depth=16384'."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t)
                 for t in re.split(r"(\d+)", str(text)) if t != "")


def sort_rows(df: pd.DataFrame, extra: list[str] | None = None) -> pd.DataFrame:
    cols = KEY + (extra or [])
    keys = [tuple(natural_key(v) for v in row) for row in df[cols].itertuples(index=False)]
    order = sorted(range(len(df)), key=lambda i: keys[i])
    return df.iloc[order].reset_index(drop=True)


def find_files(paths: list[str]) -> tuple[list[Path], list[Path], list[Path]]:
    """(totals.csv files, sweep.csv files, layers.csv files) below `paths`, without repeats."""
    if not paths:
        raise SpecError("no result folders given", hint=HINT)
    totals: list[Path] = []
    sweeps: list[Path] = []
    layers: list[Path] = []
    seen: set[Path] = set()
    for given in paths:
        p = Path(given)
        if not p.exists():
            raise SpecError("no such file or folder", file=str(p), hint=HINT)
        if p.is_file():
            if p.name not in RESULT_NAMES:
                raise SpecError("not a result file", file=str(p),
                                expected="a folder, totals.csv, sweep.csv or layers.csv")
            found = [p]
        else:
            found = sorted(f for f in p.rglob("*.csv") if f.name in RESULT_NAMES and f.is_file())
        if not any(f.name in ("totals.csv", "sweep.csv") for f in found):
            what = ("layers.csv but no totals.csv or sweep.csv (an unfinished run?)"
                    if found else "no results (totals.csv, sweep.csv or layers.csv)")
            raise SpecError(f"found {what} below this folder" if p.is_dir() else what,
                            file=str(p), hint=HINT)
        for f in found:
            real = f.resolve()
            if real in seen:
                continue
            seen.add(real)
            {"totals.csv": totals, "sweep.csv": sweeps, "layers.csv": layers}[f.name].append(f)
    return sorted(totals, key=str), sorted(sweeps, key=str), sorted(layers, key=str)


def read_csv(path: Path, required: list[str], kind: str) -> tuple[pd.DataFrame, list[str]]:
    """Load one result CSV: text columns as text (empty, not NaN), numbers checked."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {kind} file: {exc}", file=str(path)) from None
    if not header:
        raise SpecError(f"empty {kind} file", file=str(path), hint=HINT)
    missing = [c for c in required if c not in header]
    if missing:
        raise SpecError(f"not a dse {kind} file: missing column(s) {', '.join(missing)}",
                        file=str(path), line=1, hint=HINT)
    try:  # everything as text; numbers are parsed by float() below (exact round trip)
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise SpecError(f"cannot parse {kind} file: {exc}", file=str(path)) from None
    if df.empty:
        raise SpecError(f"{kind} file has a header but no rows", file=str(path), hint=HINT)
    if "point" not in df.columns:
        df["point"] = ""
    df = df.astype(object)
    for c in [*NUMERIC, *(c for c in df.columns if is_level_energy(c))]:
        if c in df.columns:
            df[c] = [_number(v, c, path, i) for i, v in enumerate(df[c])]
    # a streaming design has no energy unless its architecture gives power figures, and a
    # chip's execution model (MAX78000) states energy as not modelled: latency only
    energy_optional = "fps" in df.columns or "execution" in df.columns
    for c in ("macs", "cycles", "energy_pJ") if kind != "layers" else ():
        if energy_optional and c == "energy_pJ":
            continue
        empty = [i for i, v in enumerate(df[c]) if math.isnan(v)]
        if empty:
            i = empty[0]
            raise SpecError(f"column '{c}' is empty", file=str(path), line=i + 2)
    df["_source"] = str(path)
    return df, header


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate; text and parameter columns missing from some files become empty."""
    df = pd.concat(frames, ignore_index=True)
    for c in df.columns:
        if c in TEXT_COLUMNS or c.startswith("param."):
            df[c] = df[c].astype(object).where(df[c].notna(), "")
    return df


def _number(text: str, col: str, path: Path, i: int) -> float:
    if text.strip() == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise SpecError(f"column '{col}' is not a number", file=str(path), line=i + 2,
                        found=text) from None


def _key_list(df: pd.DataFrame) -> list[tuple]:
    return [tuple(k) for k in df[KEY].itertuples(index=False)]


def _keys(df: pd.DataFrame) -> set[tuple]:
    return set(_key_list(df))


def _dedupe(df: pd.DataFrame, key: list[str], what: str) -> pd.DataFrame:
    """Keep one row per key; rows found twice must agree on COMPARE."""
    dup = df.duplicated(key, keep=False)
    if dup.any():
        for k, g in df[dup].groupby(key, sort=False):
            vals = g[COMPARE].astype(float).round(6)
            if len(vals.drop_duplicates()) > 1:
                srcs = list(dict.fromkeys(g["_source"]))
                raise SpecError(
                    f"{what} {'/'.join(str(x) for x in k if x != '')} appears in "
                    f"{' and '.join(srcs)} with different results",
                    file=srcs[0], hint="pass only one of these folders to `dse report`")
    return df.drop_duplicates(key, keep="first").reset_index(drop=True)


def load(paths: list[str]) -> Results:
    totals_files, sweep_files, layers_files = find_files(paths)
    frames = []
    for f in totals_files:
        frames.append(read_csv(f, TOTALS_REQUIRED, "totals")[0])
    covered = _concat(frames) if frames else None
    used = [str(f) for f in totals_files]
    notes = []
    for s in sweep_files:
        df, _ = read_csv(s, TOTALS_REQUIRED, "sweep")
        below = [str(f) for f in totals_files if s.parent in f.parents]
        if below and covered is not None:
            have = _keys(covered[covered["_source"].isin(below)])
            extra = pd.Series([k not in have for k in _key_list(df)], index=df.index, dtype=bool)
            if extra.any():
                notes.append(f"{s}: {int(extra.sum())} point(s) without a totals.csv folder "
                             "taken from sweep.csv")
            df = df[extra]
        if len(df):
            frames.append(df)
            used.append(str(s))
    totals = _dedupe(_concat(frames), KEY, "result")
    totals = sort_rows(totals)

    lframes = []
    level_columns: dict[tuple[str, str, str], list[str]] = {}
    for f in layers_files:
        df, header = read_csv(f, LAYERS_REQUIRED, "layers")
        levels = [c for c in header if is_level_energy(c)]
        for k in df[KEY].drop_duplicates().itertuples(index=False):
            level_columns.setdefault(tuple(k), levels)
        lframes.append(df)
        used.append(str(f))
    layers = pd.DataFrame(columns=[*KEY, "layer"])
    if lframes:
        layers = _dedupe(_concat(lframes), [*KEY, "layer"], "layer")
    have, shown = _keys(totals), _keys(layers)

    def keyed(keys: set) -> list:
        return sorted(keys, key=lambda k: tuple(natural_key(x) for x in k))

    for k in keyed(shown - have):
        notes.append(f"layers of {'/'.join(x for x in k if x)} have no totals row "
                     "(shown per layer only)")
    for k in keyed(have - shown):
        notes.append(f"no layers.csv for {'/'.join(x for x in k if x)} (totals only)")
    inputs = sorted(dict.fromkeys(str(p) for p in paths), key=natural_key)
    return Results(totals, layers, inputs, sorted(used), level_columns, notes)
