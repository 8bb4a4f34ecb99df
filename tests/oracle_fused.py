"""Brute-force executor of a fused segment, point by point (the oracle of dse.schedule.fused).

It runs the depth-first schedule element by element: for every tile of the last layer's output
it demands each output element; an element of an intermediate row that is not in the buffer
makes the layer compute that whole row (every channel and column, every MAC / op counted one by
one, every operand demanded in turn); a segment-input row not in the buffer is read from DRAM
whole. Buffers hold whole rows. Rows of `recompute` tensors are dropped at the start of every
tile; rows of `retain` tensors stay. Occupancy during a tile counts every row that is held:
recompute rows touched in the tile, retain rows from the tile they arrived until the last tile
that touches them, the output tile, and resident weights. Weights are read from DRAM on their
first use in the segment (resident) or on their first use in each tile (per tile).

Nothing here uses row projections, intervals or per-row op counts: those are what it checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from dse.workload.network import Network


@dataclass
class WalkResult:
    dram_read_elements: int  # activation elements read from DRAM
    dram_weight_elements: int
    dram_write_elements: int
    peak_elements: int  # activations + resident weights
    ops: dict[str, int]
    recomputed_ops: dict[str, int]
    onchip_write_elements: int  # into the buffer: DRAM reads and computed rows
    onchip_read_elements: int  # out of it: (tile, reader, row) once each, and the write-out


def walk(network: Network, layers: list[str], tile_rows: int, mode: dict[str, str],
         weights_resident: bool) -> WalkResult:
    """`mode[tensor]` is retain or recompute for every input and intermediate."""
    lay = {n: network.layer(n) for n in layers}
    inside = set(layers)
    final = layers[-1]

    def shape(t: str) -> tuple[int, int, int]:
        return tuple(network.inputs[t]) if t in network.inputs else network.layer(t).out_shape

    buffer: set[tuple[str, int]] = set()  # (tensor, row) held
    computed_once: set[tuple[str, int, int, int]] = set()  # elements computed in any tile
    touched: dict[tuple[str, int], list[int]] = {}  # (tensor, row) -> tiles it was touched in
    weights_seen: set[tuple] = set()
    counts = {"read": 0, "wread": 0, "write": 0, "computed": 0}
    reads_seen: set[tuple] = set()  # (tile, reading layer, tensor, row)
    ops = {n: 0 for n in layers}
    re_ops = {n: 0 for n in layers}
    tile = 0

    def touch(t: str, h: int) -> None:
        tiles = touched.setdefault((t, h), [])
        if not tiles or tiles[-1] != tile:
            tiles.append(tile)

    def weight(name: str, *idx) -> None:
        key = (name, *idx) if weights_resident else (tile, name, *idx)
        if key not in weights_seen:
            weights_seen.add(key)
            counts["wread"] += 1

    def get(t: str, c: int, h: int, w: int, reader: str | None = None) -> None:
        """Demand one element of tensor t (in range) for layer `reader`."""
        if reader is not None:
            reads_seen.add((tile, reader, t, h))
        if (t, h) not in buffer:
            if t in inside:
                compute_row(t, h)
            else:
                counts["read"] += shape(t)[0] * shape(t)[2]
                buffer.add((t, h))
        touch(t, h)

    def compute_row(name: str, h: int) -> None:
        layer = lay[name]
        K, _P, Q = layer.out_shape
        for m in range(K):
            for q in range(Q):
                n_ops = compute_element(layer, m, h, q)
                ops[name] += n_ops
                if (name, m, h, q) in computed_once:
                    re_ops[name] += n_ops
                computed_once.add((name, m, h, q))
        counts["computed"] += K * Q
        buffer.add((name, h))

    def compute_element(layer, m: int, p: int, q: int) -> int:
        ins = layer.inputs
        a = layer.attrs
        if layer.type in ("add", "batchnorm"):
            for t in ins:
                get(t, m, p, q, layer.name)
            if layer.type == "batchnorm":
                weight(layer.name, m)
            return 1
        R, S = a["R"], a["S"]
        sh, sw = a["stride"]
        dh, dw = a["dilation"]
        pad = a.get("pad", 0)
        ph, pw = (pad, pad) if isinstance(pad, int) else (pad[0], pad[1])  # top, left
        C, H, W = shape(ins[0])
        if layer.type in ("maxpool", "avgpool"):
            chans = [m]
        else:
            groups = a["groups"]
            per_in, per_out = C // groups, layer.out_shape[0] // groups
            g = m // per_out
            chans = list(range(g * per_in, (g + 1) * per_in))
        n = 0
        for c in chans:
            for i in range(R):
                for j in range(S):
                    n += 1
                    if layer.type not in ("maxpool", "avgpool"):
                        weight(layer.name, m, c, i, j)
                    x, y = p * sh - ph + i * dh, q * sw - pw + j * dw
                    if 0 <= x < H and 0 <= y < W:
                        get(ins[0], c, x, y, layer.name)
        return n

    out_c, out_h, out_w = shape(final)
    tiles = -(-out_h // tile_rows)
    peak = 0
    for tile in range(tiles):
        for key in [k for k in buffer if k[0] != final and mode[k[0]] == "recompute"]:
            buffer.discard(key)
        for h in range(tile * tile_rows, min(out_h, (tile + 1) * tile_rows)):
            for c in range(out_c):
                for w in range(out_w):
                    get(final, c, h, w)
            counts["write"] += out_c * out_w
    # occupancy from the touch record
    for k in range(tiles):
        occ = 0
        for (t, _h), ts in touched.items():
            row = shape(t)[0] * shape(t)[2]
            if t == final or mode[t] == "recompute":
                occ += row if k in ts else 0
            else:
                occ += row if ts[0] <= k <= ts[-1] else 0
        peak = max(peak, occ)
    if weights_resident:
        peak += len({w for w in weights_seen})
    onchip_reads = sum(shape(t)[0] * shape(t)[2] for (_k, _r, t, _h) in reads_seen)
    return WalkResult(counts["read"], counts["wread"], counts["write"], peak, ops, re_ops,
                      counts["read"] + counts["computed"], onchip_reads + counts["write"])
