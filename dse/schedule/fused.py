"""Fused segments: consecutive layers run depth-first over row tiles of the segment's last
output, their intermediates kept in one on-chip level instead of going through DRAM.

The rules (docs/fusion.md says why):

- A segment is a run of consecutive network layers with a sliding-window or element-wise row
  structure (conv2d/pointwise/depthwise, max/avg pool, add, batchnorm). Its *inputs* are the
  tensors its layers read that no segment layer produces (read from DRAM); its *output* is the
  last layer's tensor (written to DRAM once). Residual joins are allowed: an add may read a
  tensor produced in the segment or a segment input. Only the last layer's output may be read
  outside the segment (every other segment layer's output is read only inside it).
- Tiles are bands of `tile_rows` rows of the output (all columns, all channels, all images).
  For each tile the rows every tensor must hold are found by projecting back through the layers:
  output row r of a layer with kernel R, stride s, dilation d and top padding p reads input rows
  r*s - p + d*i (i < R) that lie inside the tensor (padding rows are not stored). Row sets are
  exact: a strided 1x1 conv reads every other row, not a band.
- Halo handling per tensor: `retain` keeps rows already computed (or read) for later tiles, so
  each row is computed or read once; `recompute` keeps nothing between tiles, so overlapping
  rows are computed again (intermediates) or read again from DRAM (segment inputs).
- Work is done in whole rows: a layer computes all columns and channels of a row it needs; a
  DRAM read brings whole rows.
- Buffer occupancy during a tile: the output tile, every recompute tensor's rows needed in the
  tile, every retain tensor's rows that were brought in by then and are still needed in this
  or a later tile, and the weights when resident. Weights are resident (read from DRAM once per
  segment) when everything fits the level together with them; otherwise each tile re-reads the
  weights of the layers it computes and they are not held in the level. When even the
  activations do not fit, the segment is refused.

The model counts exact row sets; tests/oracle_fused.py executes tiny segments point by point
and must agree on every count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dse.errors import SpecError, did_you_mean
from dse.workload.graph import TensorGraph, tensor_graph
from dse.workload.network import CONV_TYPES, MAC_TYPES, POOL_TYPES, Layer, Network

FUSABLE_TYPES = CONV_TYPES + POOL_TYPES + ("add", "batchnorm")
HALO_MODES = ("retain", "recompute")


@dataclass(frozen=True)
class RowWindow:
    """The sliding window along rows (the network's H axis)."""

    kernel: int = 1
    stride: int = 1
    dilation: int = 1
    pad_top: int = 0

    def project(self, rows: set[int], in_rows: int) -> set[int]:
        """Input rows that output rows `rows` read (padding rows are not stored)."""
        out: set[int] = set()
        for r in rows:
            base = r * self.stride - self.pad_top
            out.update(x for x in range(base, base + self.dilation * self.kernel, self.dilation)
                       if 0 <= x < in_rows)
        return out


def pad_top(layer: Layer) -> int:
    """Top padding: `pad: p` -> p, `[ph, pw]` -> ph, `[top, left, bottom, right]` -> top."""
    pad = layer.attrs.get("pad", 0)
    if isinstance(pad, (tuple, list)):
        return int(pad[0])
    return int(pad)


def row_window(layer: Layer) -> RowWindow:
    if layer.type in CONV_TYPES + POOL_TYPES:
        a = layer.attrs
        return RowWindow(a["R"], a["stride"][0], a["dilation"][0], pad_top(layer))
    return RowWindow()


@dataclass(frozen=True)
class Segment:
    """A segment as given: its layers, tile height, per-tensor halo mode and on-chip level."""

    layers: tuple[str, ...]
    tile_rows: int
    halo: str = "retain"  # default mode of every tensor of the segment
    halo_of: dict[str, str] = field(default_factory=dict)  # per-tensor overrides
    level: str = ""

    def mode(self, tensor: str) -> str:
        return self.halo_of.get(tensor, self.halo)

    @property
    def name(self) -> str:
        return self.layers[0] if len(self.layers) == 1 else f"{self.layers[0]}..{self.layers[-1]}"


@dataclass(frozen=True)
class SegmentCounts:
    """What one segment costs in data movement and work (bits, so narrow tensors are exact)."""

    tiles: int
    dram_read_bits: int
    dram_write_bits: int
    weight_read_bits: int  # part of dram_read_bits
    activation_peak_bits: int  # buffer peak without weights
    weight_bits: int  # all weights of the segment
    weights_resident: bool
    buffer_peak_bits: int  # activations + resident weights
    ops: dict[str, int]  # per layer, recomputed ones included
    recomputed_ops: dict[str, int]
    macs: int
    recomputed_macs: int
    # activation traffic of the segment's level: rows written into it (DRAM reads, every row
    # computed) and rows read from it (each consumer reads the rows it needs once per tile;
    # the output is read once to go to DRAM)
    onchip_write_bits: int = 0
    onchip_read_bits: int = 0


@dataclass(frozen=True)
class _LayerRows:
    name: str
    inputs: tuple[str, ...]
    output: str
    window: RowWindow
    ops_per_row: int
    is_mac: bool
    weight_bits: int


def _bytes(bits: int) -> int:
    return -(-bits // 8)


class FusedModel:
    """Row-level model of a network's fused segments (pure; no I/O)."""

    def __init__(self, network: Network, default_bits: int):
        self.network = network
        self.graph: TensorGraph = tensor_graph(network)
        self.default_bits = default_bits
        self.order = {lay.name: i for i, lay in enumerate(network.layers)}

    # -- tensors
    def activation_bits(self, tensor: str, readers: tuple[str, ...] = ()) -> int:
        """Element width of an activation tensor, as the layerwise model moves it: a tensor
        made by a layer at that layer's Outputs width (the accumulator width of a conv when
        the network sets one); a tensor a segment reads from DRAM at the widest Inputs width
        of the segment layers reading it; else the architecture's DRAM word width."""
        t = self.graph.tensors[tensor]
        if readers:
            widths = []
            for name in readers:
                lay = self.network.layer(name)
                for ds_name, tid in self.graph.bindings[name].items():
                    if tid == tensor:
                        widths.append(lay.problem.data_space(ds_name).word_bits
                                      or self.default_bits)
            return max(widths)
        if t.producer is not None:
            p = self.network.layer(t.producer).problem
            if p is not None:
                return p.data_space("Outputs").word_bits or self.default_bits
        return self.network.bits.activations or self.default_bits

    def row_bits(self, tensor: str, readers: tuple[str, ...] = ()) -> int:
        t = self.graph.tensors[tensor]
        c, _h, w = t.shape
        return t.batch * c * w * self.activation_bits(tensor, readers)

    def rows(self, tensor: str) -> int:
        return self.graph.tensors[tensor].shape[1]

    def weight_bits(self, layer: Layer) -> int:
        p = layer.problem
        if p is None or "Weights" not in p.tensor_names:
            return 0
        ds = p.data_space("Weights")
        return p.tensor_size("Weights") * (ds.word_bits or layer.bits.weights or self.default_bits)

    def _layer_rows(self, layer: Layer) -> _LayerRows:
        p = layer.problem
        out_rows = layer.out_shape[1]
        return _LayerRows(layer.name, self.graph.inputs_of(layer.name), layer.name,
                          row_window(layer), p.macs // out_rows, layer.type in MAC_TYPES,
                          self.weight_bits(layer))

    # -- validation
    def check(self, seg: Segment, where: str) -> list[Layer]:
        names = [lay.name for lay in self.network.layers]
        layers = []
        for name in seg.layers:
            if name not in self.order:
                raise SpecError(f"{where}: no layer '{name}' in network {self.network.name}",
                                key_path=f"{where}.layers", found=name,
                                hint=did_you_mean(name, names))
            lay = self.network.layer(name)
            if lay.type not in FUSABLE_TYPES or lay.problem is None:
                raise SpecError(f"{where}: layer '{name}' ({lay.type}) cannot be fused: a fused "
                                f"segment holds {', '.join(FUSABLE_TYPES)} layers",
                                key_path=f"{where}.layers", found=name)
            layers.append(lay)
        idx = [self.order[n] for n in seg.layers]
        if idx != list(range(idx[0], idx[0] + len(idx))):
            raise SpecError(f"{where}: the layers of a segment must be consecutive in the "
                            f"network, in network order", key_path=f"{where}.layers",
                            found=list(seg.layers),
                            hint=f"e.g. {names[idx[0]:idx[0] + len(idx)]}")
        if seg.tile_rows < 1:
            raise SpecError(f"{where}: tile_rows must be at least 1",
                            key_path=f"{where}.tile_rows", found=seg.tile_rows)
        for mode in [seg.halo, *seg.halo_of.values()]:
            if mode not in HALO_MODES:
                raise SpecError(f"{where}: unknown halo mode", key_path=f"{where}.halo",
                                found=mode, expected=" or ".join(HALO_MODES))
        inside = set(seg.layers)
        for name in seg.layers[:-1]:
            readers = self.graph.tensors[name].consumers
            outside = [c for c in readers if c not in inside]
            if outside or not readers:
                raise SpecError(f"{where}: the output of '{name}' is read outside the segment "
                                f"({', '.join(outside) or 'by nothing'}); only the last layer's "
                                f"output leaves a segment", key_path=f"{where}.layers",
                                found=list(seg.layers),
                                hint=f"end the segment at '{name}' or include "
                                     f"{', '.join(outside) or 'its readers'}")
        tensors = self.segment_tensors(seg)
        for t in seg.halo_of:
            if t not in tensors or t == seg.layers[-1]:
                raise SpecError(f"{where}: halo given for '{t}', which is not an input or "
                                f"intermediate of the segment", key_path=f"{where}.halo",
                                found=t, hint=did_you_mean(t, sorted(tensors)))
        return layers

    def segment_tensors(self, seg: Segment) -> list[str]:
        """Inputs first (in order of use), then the layers' outputs."""
        inside = set(seg.layers)
        ins: list[str] = []
        for name in seg.layers:
            for t in self.graph.inputs_of(name):
                if t not in inside and t not in ins:
                    ins.append(t)
        return ins + list(seg.layers)

    # -- the model
    def counts(self, seg: Segment, capacity_bits: int | None, where: str = "segment"
               ) -> SegmentCounts:
        layers = [self._layer_rows(lay) for lay in self.check(seg, where)]
        inside = set(seg.layers)
        final = seg.layers[-1]
        tensors = self.segment_tensors(seg)
        inputs = [t for t in tensors if t not in inside]
        row_bits = {t: self.row_bits(t) for t in seg.layers}
        row_bits.update({t: self.row_bits(t, tuple(n for n in seg.layers
                                                   if t in self.graph.inputs_of(n)))
                         for t in inputs})
        out_rows = self.rows(final)
        tiles = -(-out_rows // seg.tile_rows)
        # pass 1: rows needed and computed per tile
        needs: list[dict[str, set[int]]] = []
        computes: list[dict[str, set[int]]] = []
        done: dict[str, set[int]] = {t: set() for t in seg.layers}
        onchip_read = onchip_write = 0
        for k in range(tiles):
            need = {final: set(range(k * seg.tile_rows, min(out_rows, (k + 1) * seg.tile_rows)))}
            comp: dict[str, set[int]] = {}
            for lr in reversed(layers):
                rows = need.get(lr.output, set())
                if lr.output != final and seg.mode(lr.output) == "retain":
                    rows = rows - done[lr.output]
                if not rows:
                    continue
                comp[lr.name] = rows
                for t in lr.inputs:
                    read = lr.window.project(rows, self.rows(t))
                    onchip_read += len(read) * row_bits[t]
                    need.setdefault(t, set()).update(read)
            for name, rows in comp.items():
                done[name] |= rows
            needs.append(need)
            computes.append(comp)
        # pass 2: DRAM traffic, work, occupancy
        weight_bits = sum(lr.weight_bits for lr in layers)
        have: dict[str, set[int]] = {t: set() for t in tensors}  # rows brought in so far
        first: dict[str, dict[int, int]] = {t: {} for t in tensors}  # row -> tile brought in
        last_need: dict[str, dict[int, int]] = {t: {} for t in tensors}
        for k, need in enumerate(needs):
            for t, rows in need.items():
                for r in rows:
                    last_need[t][r] = k
        read_bits = write_bits = 0
        tile_weight_bits = 0
        ops = {lr.name: 0 for lr in layers}
        re_ops = {lr.name: 0 for lr in layers}
        for k in range(tiles):
            need, comp = needs[k], computes[k]
            for t in inputs:
                rows = need.get(t, set())
                fresh = rows if seg.mode(t) == "recompute" else rows - have[t]
                read_bits += len(fresh) * row_bits[t]
                for r in rows - have[t]:
                    first[t][r] = k
                have[t] |= rows
            for lr in layers:
                rows = comp.get(lr.name)
                if not rows:
                    continue
                ops[lr.name] += len(rows) * lr.ops_per_row
                onchip_write += len(rows) * row_bits[lr.output]
                re_ops[lr.name] += len(rows & have[lr.output]) * lr.ops_per_row
                new = rows - have[lr.output]
                if lr.output == final:
                    write_bits += len(new) * row_bits[lr.output]
                for r in new:
                    first[lr.output][r] = k
                have[lr.output] |= rows
                tile_weight_bits += lr.weight_bits
        peak = 0
        for k in range(tiles):
            occ = 0
            for t in tensors:
                if t == final or seg.mode(t) == "recompute":
                    held = len(needs[k].get(t, ()))
                else:
                    held = sum(1 for r, f in first[t].items()
                               if f <= k <= last_need[t].get(r, -1))
                occ += held * row_bits[t]
            peak = max(peak, occ)
        resident = capacity_bits is None or peak + weight_bits <= capacity_bits
        wread = weight_bits if resident else tile_weight_bits
        macs = sum(ops[lr.name] for lr in layers if lr.is_mac)
        re_macs = sum(re_ops[lr.name] for lr in layers if lr.is_mac)
        return SegmentCounts(tiles, read_bits + wread, write_bits, wread, peak, weight_bits,
                             resident, peak + (weight_bits if resident else 0), ops, re_ops,
                             macs, re_macs, onchip_write + read_bits,
                             onchip_read + write_bits)


def level_capacity_bits(arch, level: str, where: str) -> int:
    """Bits one instance of an on-chip level holds (after multiple buffering)."""
    names = [lv.name for lv in arch.levels if not lv.is_dummy]
    for lv in arch.levels:
        if lv.name == level and not lv.is_dummy:
            if lv.is_dram or lv.effective_capacity_words is None:
                raise SpecError(f"{where}: level '{level}' is not an on-chip buffer with a "
                                f"capacity; fused intermediates need one",
                                key_path=f"{where}.level", found=level)
            return lv.effective_capacity_words * lv.datawidth
    raise SpecError(f"{where}: no storage level '{level}' in {arch.name}",
                    key_path=f"{where}.level", found=level, expected=", ".join(names),
                    hint=did_you_mean(level, names))


def check_fits(seg: Segment, counts: SegmentCounts, capacity_bits: int, where: str) -> None:
    """Refuse a segment whose co-resident activations do not fit its level."""
    if counts.activation_peak_bits > capacity_bits:
        raise SpecError(
            f"{where}: segment {seg.name} needs {_bytes(counts.activation_peak_bits):,} bytes "
            f"of activations co-resident in {seg.level} (tile_rows {seg.tile_rows}, halo "
            f"{seg.halo}), which holds {capacity_bits // 8:,} bytes",
            key_path=f"{where}.tile_rows", found=seg.tile_rows,
            hint="use fewer rows per tile, fewer layers, or a larger level")


def dram_level(arch):
    for lv in arch.levels:
        if lv.is_dram:
            return lv
    return arch.levels[0]


def max_fitting_tile(model: FusedModel, seg: Segment, capacity_bits: int) -> int | None:
    """The largest tile_rows whose activations fit (None when not even one row fits); the
    peak grows with the tile height, so a binary search finds it."""
    from dataclasses import replace

    def fits(th: int) -> bool:
        c = model.counts(replace(seg, tile_rows=th), capacity_bits)
        return c.activation_peak_bits <= capacity_bits

    if not fits(1):
        return None
    lo, hi = 1, model.rows(seg.layers[-1])
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def best_tile(model: FusedModel, seg: Segment, capacity_bits: int
              ) -> tuple[int, int] | None:
    """(DRAM bits, tile_rows) of the tile height with the least DRAM traffic among those that
    fit (ties: the taller tile), or None when not even one row fits."""
    from dataclasses import replace

    top = max_fitting_tile(model, seg, capacity_bits)
    if top is None:
        return None
    best = None
    for th in range(top, 0, -1):
        c = model.counts(replace(seg, tile_rows=th), capacity_bits)
        bits = c.dram_read_bits + c.dram_write_bits
        if best is None or bits < best[0]:
            best = (bits, th)
    return best


def greedy_segments(model: FusedModel, level: str, capacity_bits: int, halo: str = "retain",
                    alone: Callable[[str], int] | None = None) -> list[Segment]:
    """Default segmentation, in network order: a segment starting at a fusable layer is
    extended over the following fusable layers while it is a valid segment that fits the level
    and its DRAM traffic (at its best tile height) is no more than that of the segment so far
    plus the added layers each run alone. `alone(layer)` gives a layer's DRAM bits when it runs
    alone (its layerwise mapping's); without it, the model's one-layer segment is used. A layer
    that starts no segment of two or more layers runs layerwise."""
    layers = model.network.layers
    n = len(layers)

    def fusable(i: int) -> bool:
        return layers[i].type in FUSABLE_TYPES and layers[i].problem is not None

    def seg_of(i: int, end: int) -> Segment:
        return Segment(tuple(lay.name for lay in layers[i:end + 1]), 1, halo, {}, level)

    cache: dict[int, int] = {}

    def alone_bits(j: int) -> int:
        if j not in cache:
            if alone is not None:
                cache[j] = alone(layers[j].name)
            else:
                b = best_tile(model, seg_of(j, j), capacity_bits)
                cache[j] = b[0] if b else 2 ** 62
        return cache[j]

    segs: list[Segment] = []
    i = 0
    while i < n:
        if not fusable(i):
            i += 1
            continue
        best: tuple[int, int, int] | None = None  # (end, dram bits, tile rows)
        end = i + 1
        while end < n and fusable(end):
            seg = seg_of(i, end)
            try:
                model.check(seg, "segment")
            except SpecError:
                end += 1
                continue
            found = best_tile(model, seg, capacity_bits)
            if found is None:
                break
            base_end, base_bits = (best[0], best[1]) if best else (i, alone_bits(i))
            budget = base_bits + sum(alone_bits(j) for j in range(base_end + 1, end + 1))
            if found[0] <= budget:
                best = (end, found[0], found[1])
            end += 1
        if best is None:
            i += 1
            continue
        end, _bits, th = best
        segs.append(Segment(tuple(lay.name for lay in layers[i:end + 1]), th, halo, {}, level))
        i = end + 1
    return segs
