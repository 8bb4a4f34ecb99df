"""Reader for `architecture: {kind: streaming, ...}`: a streaming dataflow FPGA design (a board,
the per-layer engine template, memories, skip buffering, optional power). See docs/streaming.md.
Every key is read or refused with a did-you-mean."""

from __future__ import annotations

from pathlib import Path

from dse.errors import SpecError
from dse.schedule.streaming import Board, Engine, Memory, Power, StreamingArch
from dse.spec.common import check_keys, get, has, number, require_mapping, where
from dse.spec.yamlload import Node

KIND = "streaming"
TOP_KEYS = {"version", "kind", "name", "description", "board", "engine", "memory", "skip",
            "power", "bits"}
BOARD_KEYS = {"name", "device", "dsp", "bram36", "uram", "lut", "clock_hz", "source"}
ENGINE_KEYS = {"max_och_par", "max_ich_par", "max_ow_par", "dsp_packing", "products_per_dsp",
               "merge_shortcut", "line_buffer_stage", "balanced"}
MEMORY_KEYS = {"lutram_max_bits", "bram36_bits", "fifo_depth"}
SKIP_KEYS = {"forwarding"}
POWER_KEYS = {"static_W", "per_dsp_W", "per_bram36_W", "source"}
BITS_KEYS = {"weights", "activations"}


def is_streaming(node) -> bool:
    return isinstance(node, dict) and node.get("kind") == KIND


def file_is_streaming(path: Path) -> bool:
    """Cheap check used by the library listing (no full parse)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    return any(line.strip() == f"kind: {KIND}" for line in text.splitlines())


def _section(node: Node, key: str, path: str, allowed: set[str]) -> Node:
    value = get(node, key)
    if value is None:
        return Node()
    sec = require_mapping(value, f"{path}.{key}", node, key)
    check_keys(sec, allowed, f"{path}.{key}")
    return sec


def _bool(node: Node, key: str, path: str, default: bool) -> bool:
    if not has(node, key):
        return default
    value = get(node, key)
    if not isinstance(value, bool):
        raise SpecError("expected true or false", key_path=f"{path}.{key}", found=value,
                        **where(node, key))
    return value


def _int(node: Node, key: str, path: str, default: int | None, *, positive: bool = True):
    if not has(node, key):
        if default is None:
            raise SpecError(f"`{key}:` is required", key_path=path, **where(node))
        return default
    return number(node, key, path, integer=True, positive=positive)


def _text(node: Node, key: str, path: str) -> str:
    value = get(node, key, "")
    if not isinstance(value, str):
        raise SpecError("expected a text string", key_path=f"{path}.{key}", found=value,
                        **where(node, key))
    return value


def read_streaming(node: Node, path: str = "architecture", file: str | None = None
                   ) -> StreamingArch:
    check_keys(node, TOP_KEYS, path)
    if has(node, "version") and get(node, "version") != 1:
        raise SpecError("unsupported version", key_path=f"{path}.version", expected="1",
                        found=get(node, "version"), **where(node, "version"))
    b = _section(node, "board", path, BOARD_KEYS)
    if not b:
        raise SpecError("a streaming architecture needs `board:`", key_path=path, **where(node))
    bp = f"{path}.board"
    clock = number(b, "clock_hz", bp, positive=True) if has(b, "clock_hz") else None
    if clock is None:
        raise SpecError("`clock_hz:` is required", key_path=bp, **where(b))
    board = Board(_text(b, "name", bp) or str(get(node, "name", "board")),
                  _int(b, "dsp", bp, None), _int(b, "bram36", bp, None, positive=False),
                  _int(b, "uram", bp, 0, positive=False), _int(b, "lut", bp, 0, positive=False),
                  float(clock), _text(b, "device", bp), _text(b, "source", bp))
    e = _section(node, "engine", path, ENGINE_KEYS)
    ep = f"{path}.engine"
    d = Engine()
    ppd = d.products_per_dsp
    if has(e, "products_per_dsp"):
        raw = require_mapping(get(e, "products_per_dsp"), f"{ep}.products_per_dsp", e,
                              "products_per_dsp")
        pairs = []
        for k, v in raw.items():
            if not isinstance(k, int) or not isinstance(v, int) or k < 1 or v < 1:
                raise SpecError("expected `max_bits: products` pairs of whole numbers, like "
                                "{4: 4, 8: 2}", key_path=f"{ep}.products_per_dsp.{k}",
                                found=v, **where(raw, k))
            pairs.append((k, v))
        ppd = tuple(sorted(pairs))
    engine = Engine(_int(e, "max_och_par", ep, d.max_och_par),
                    _int(e, "max_ich_par", ep, d.max_ich_par),
                    _int(e, "max_ow_par", ep, d.max_ow_par),
                    _bool(e, "dsp_packing", ep, d.dsp_packing), ppd,
                    _bool(e, "merge_shortcut", ep, d.merge_shortcut),
                    _bool(e, "line_buffer_stage", ep, d.line_buffer_stage),
                    _bool(e, "balanced", ep, d.balanced))
    m = _section(node, "memory", path, MEMORY_KEYS)
    mp = f"{path}.memory"
    dm = Memory()
    memory = Memory(_int(m, "lutram_max_bits", mp, dm.lutram_max_bits, positive=False),
                    _int(m, "bram36_bits", mp, dm.bram36_bits),
                    _int(m, "fifo_depth", mp, dm.fifo_depth))
    s = _section(node, "skip", path, SKIP_KEYS)
    power = None
    if has(node, "power"):
        p = _section(node, "power", path, POWER_KEYS)
        pp = f"{path}.power"
        if not _text(p, "source", pp):
            raise SpecError("power figures need a `source:` saying where they come from",
                            key_path=pp, **where(p))
        power = Power(*(float(number(p, k, pp)) if has(p, k) else 0.0
                        for k in ("static_W", "per_dsp_W", "per_bram36_W")),
                      source=_text(p, "source", pp))
    bits = _section(node, "bits", path, BITS_KEYS)
    name = _text(node, "name", path) or (Path(file).stem if file else "streaming")
    return StreamingArch(name, board, engine, memory, _bool(s, "forwarding", f"{path}.skip", True),
                         power,
                         _int(bits, "weights", f"{path}.bits", 0, positive=False) or None,
                         _int(bits, "activations", f"{path}.bits", 0, positive=False) or None,
                         file)


def load_streaming(path: str | Path, overrides: dict | None = None) -> StreamingArch:
    """Read a streaming architecture file; `overrides` ({'engine.dsp_packing': False, ...})
    replace values before validation (what `dse sweep` varies)."""
    from dse.spec.yamlload import load_documents

    doc = load_documents([path])
    check_keys(doc.data, {"architecture"}, "")
    node = doc.data.get("architecture")
    if not is_streaming(node):
        raise SpecError("not a streaming architecture (needs `kind: streaming`)", file=str(path))
    for dotted, value in (overrides or {}).items():
        target = node
        *parents, leaf = dotted.split(".")
        for p in parents:
            if not isinstance(target.get(p), dict):
                target[p] = Node()
            target = target[p]
        target[leaf] = value
    return read_streaming(node, file=str(path))
