"""Text tables and exports for networks: per-layer table, totals, Timeloop problem files."""

from __future__ import annotations

import re
from pathlib import Path

from dse.workload.network import CONV_TYPES, MAC_TYPES, POOL_TYPES, Layer, Network


def _hw(a: int, b: int) -> str:
    return str(a) if a == b else f"{a}x{b}"


def _row(i: int, lay: Layer) -> list[str]:
    a = lay.attrs
    C = K = HW = RS = PQ = stride = groups = pad = ""
    if lay.type in CONV_TYPES or lay.type in POOL_TYPES:
        C, HW, RS, PQ = str(a["C"]), _hw(a["H"], a["W"]), _hw(a["R"], a["S"]), _hw(a["P"], a["Q"])
        stride = _hw(*a["stride"])
        K = str(a.get("K", a["C"]))
        groups = str(a.get("groups", "")) if a.get("groups", 1) != 1 else ""
        p = a.get("pad")
        pad = "" if p is None else (",".join(map(str, p)) if isinstance(p, tuple) else str(p))
    elif lay.type == "fc":
        C, K, HW, RS, PQ = str(a["C"]), str(a["K"]), _hw(a["H"], a["W"]), _hw(a["H"], a["W"]), "1"
    elif lay.type == "matmul":
        C, K = str(a["K"]), str(a["N"])
        HW = f"M={a['M']}" + (f" G={a['G']}" if a["G"] != 1 else "")
    else:
        C, K, HW = str(a["C"]), str(lay.out_shape[0]), _hw(a["H"], a["W"])
        PQ = _hw(lay.out_shape[1], lay.out_shape[2])
    ops = f"{lay.macs:,}" if lay.type in MAC_TYPES else (f"({lay.ops:,})" if lay.ops else "")
    return [str(i), lay.name, lay.type, str(lay.N), C, K, HW, RS, stride, pad, groups, PQ, ops,
            f"{lay.params:,}" if lay.params else "", ",".join(lay.inputs)]


HEADERS = ["#", "layer", "type", "N", "C", "K", "H_in", "RxS", "stride", "pad", "groups", "PxQ",
           "MACs", "params", "inputs"]
RIGHT = {0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}


def layer_table(net: Network) -> str:
    """A fixed-width table, one row per layer, then the totals."""
    rows = [HEADERS] + [_row(i + 1, lay) for i, lay in enumerate(net.layers)]
    widths = [max(len(r[c]) for r in rows) for c in range(len(HEADERS))]
    out = []
    for j, r in enumerate(rows):
        cells = [(v.rjust(widths[c]) if c in RIGHT else v.ljust(widths[c]))
                 for c, v in enumerate(r)]
        out.append("  ".join(cells).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("")
    out.append("MACs: conv, fc and matmul layers; (n) = operations of add/pool/batchnorm layers "
               "(not MACs).")
    out.append(stats_text(net))
    return "\n".join(out)


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3f} {unit}"
    return str(n)


def stats_text(net: Network) -> str:
    s = net.stats()
    kinds = ", ".join(f"{n} {t}" for t, n in s["layers_by_type"].items())
    lines = [
        f"network      {s['name']}" + (f"  (source: {s['source']})" if s["source"] else ""),
        f"layers       {s['layers']} ({kinds})",
        f"MACs         {s['macs']:,} ({_si(s['macs'])}), batch {s['batch']}",
        f"other ops    {s['other_ops']:,} (add, pool, batchnorm element operations)",
        f"params       {s['params']:,} ({_si(s['params'])}) = weights {s['weights']:,} + biases "
        f"{s['biases']:,} + batch-norm {s['bn_params']:,}",
        "             counted: " + s["params_counted"],
        f"activations  {s['activations']:,} ({_si(s['activations'])}): "
        + s["activations_counted"],
        f"shapes       {s['unique_shapes']} unique of {s['mappable_layers']} mappable layers "
        f"({s['unique_mac_shapes']} unique of {s['mac_layers']} conv/fc/matmul layers)",
    ]
    if s["param_bytes"]:
        lines.insert(6, f"param bytes  {s['param_bytes']:,} at the declared weight/bias bit "
                        "widths (batch-norm folded)")
    return "\n".join(lines)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def export_timeloop(net: Network, out_dir: str | Path, *, unique: bool = False) -> list[Path]:
    """Write one Timeloop problem YAML per mappable layer (or per unique shape)."""
    import yaml

    from dse.pipeline.writers import atomic_write
    from dse.workload.layers import to_timeloop

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if unique:
        items = [(g.problem, g.layers) for g in net.unique_shapes()]
    else:
        items = [(lay.problem, (lay.name,)) for lay in net.mappable()]
    width = len(str(len(items)))
    for i, (problem, names) in enumerate(items, start=1):
        path = out / f"{i:0{width}d}_{_safe(names[0])}.yaml"
        header = (f"# {net.name}: layer {names[0]}" if len(names) == 1 else
                  f"# {net.name}: {len(names)} layers of this shape: {', '.join(names)}")
        bits = {ds.name: ds.word_bits for ds in problem.data_spaces if ds.word_bits}
        if bits:
            header += "\n# bit widths (not part of Timeloop's problem format): " + ", ".join(
                f"{k} {v}" for k, v in bits.items())
        text = yaml.safe_dump(to_timeloop(problem), sort_keys=False, default_flow_style=None)
        atomic_write(path, header + "\n" + text)
        written.append(path)
    return written
