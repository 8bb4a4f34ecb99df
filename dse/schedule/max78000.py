"""The MAX78000 CNN engine running a whole network: which hardware layers the network becomes,
where each one's processors, kernels, biases and data sit, and how many cycles it takes.

The chip has a fixed dataflow, so there is no mapping search: the network graph is lowered to
the engine's hardware layers and every resource is placed, or the network is refused with the
layer, the rule and a fix. Facts and their sources (tags as in tests/data/hardware.md section 5):
the ai8x-synthesis README ("Limitations of MAX78000 Networks", "Multi-Pass", "Streaming Mode",
"Residual Connections", "Data Memory Ping-Pong", `write_gap`, "Weight Memory", "Bias Memories",
commit ab4f4c0), izer/tornadocnn.py (class DevAI85) and the shape of its latency estimator
(izer/latency.py). docs/architectures.md lists what is modelled and what is not.

Lowering (`lower`):
* conv2d / pointwise / fc layers are hardware layers. A pooling layer feeding only such layers
  runs in flight in front of each of them (it is not a hardware layer); so does an element-wise
  add (2-16 operands), before or after the pool. Reshapes and folded batch norms cost nothing.
* An add reads its operands interleaved from one data-memory region. The producer of an operand
  writes straight into the region with `write_gap` when the add is its only reader; otherwise a
  pass-through hardware layer copies the operand there (the vendor's residual recipe).
* Any other pooling or add result that must be stored (a network output, an operand of another
  add) is computed by a pass-through hardware layer.

Placement (`schedule`): kernels first-fit (largest first) into the 64 per-processor weight
memories, at a start column that is a multiple of 4 and the same for all of a layer's
processors; biases into the 4 bias memories; data tensors into the 32 KiB data-memory instances
(ping-pong halves first, then first fit), alive from the layer that writes them to the last
layer that reads them. Layers whose input exceeds 8,192 pixels per channel stream, and so do all
layers before them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dse.errors import SpecError

# ----------------------------------------------------------------------------- the chip


@dataclass(frozen=True)
class Chip:
    """MAX78000 (AI85) facts used by the schedule; [P] read in the source, [D] derived."""

    name: str = "max78000"
    processors: int = 64            # 4 quadrants x 16 (P_NUMGROUPS, P_NUMPRO) [P]
    per_quadrant: int = 16          # [P]
    per_instance: int = 4           # processors sharing one data-memory instance [P]
    data_instances: int = 16        # 16 x 32 KiB = 512 KiB [P]
    instance_bytes: int = 32768     # [P]
    weight_rows: int = 768          # 72-bit kernel rows per processor (MASK_WIDTH_SMALL) [P]
    weight_row_bits: int = 72       # one 3x3 8-bit kernel, or nine 1x1 8-bit weights [P]
    weight_col_align: int = 4       # a layer's start column is a multiple of 4 [P]
    weight_bits: tuple[int, ...] = (1, 2, 4, 8)  # per layer [P]
    bias_memories: int = 4          # [P]
    bias_bytes: int = 512           # BIAS_SIZE per memory; 8-bit biases [P]
    max_layers: int = 32            # in-flight pooling / element-wise do not count [P]
    max_channels: int = 1024        # input and output channels per layer [P]
    max_bias_channels: int = 512    # bias for up to 512 output channels [P]
    max_pad: int = 2                # conv padding 0, 1 or 2 [P]
    max_pool: int = 16              # pooling kernel and stride 1..16 [P]
    operands: tuple[int, int] = (2, 16)  # element-wise operands [P]
    stream_pixels: int = 8192       # HWC pixels per channel above which a layer streams [P]
    max_streaming_layers: int = 8   # [P]
    fifo_channels: int = 16         # 4 FIFOs, up to 16 HWC input channels when streaming [P]
    flatten_max_inputs: int = 16384  # C x H x W of a flattening fc [P]
    flatten_max_pixels: int = 256   # H x W of a flattening fc [P]
    max_dim: int = 1023             # rows / columns of any data (MAX_ROW_COL - 1) [P]
    # AI85 estimator details (tornadocnn.py DevAI85): a pass-through with pooling and more than
    # one output pass reads 2 x passes - 1 times; a layer that adds before pooling pays a
    # pre-read proportional to its kernel start column [P]
    passthrough_2x_multipass: bool = True
    pre_read_by_kernel_offset: bool = True
    streaming_factor: tuple[int, int, int] = (15, 9, 10)  # (15 t + 9) // 10 = 1.5 x [P]

    @property
    def half_bytes(self) -> int:
        """Ping-pong: offset 0 and half the instance (0x4000 on MAX78000) [P]."""
        return self.instance_bytes // 2

    @property
    def weight_bytes_total(self) -> int:
        return self.processors * self.weight_rows * self.weight_row_bits // 8


MAX78000 = Chip()

# rule name (dse.arch.rules) -> how to fix a layer that breaks it
FIXES = {
    "strides": "fix: stride {s} -> max_pool {s} before a stride-1 conv (the pool runs in flight "
               "in the same hardware layer)",
    "kernel_sizes": "fix: use 3x3 (or 1x1) kernels; stack 3x3 layers for a larger receptive "
                    "field",
    "max_dilation": "fix: dilation 1",
    "allow_groups": "fix: a dense (groups = 1) conv; depthwise needs the MAX78002",
    "max_channels": "fix: at most 1,024 channels, or split the layer",
    "fc_max_inputs": "fix: pool before the fully connected layer",
    "weight_capacity_bytes": "fix: fewer or narrower layers, or 1/2/4-bit weights "
                             "(`bits: {weights: 4}`)",
}

# ----------------------------------------------------------------------------- latency


def layer_cycles(*, passes: int, operands: int, pool: tuple[int, int],
                 pooled: tuple[int, int], pad: tuple[int, int], kernel: tuple[int, int],
                 out_channels: int, out_dims: tuple[int, int], pool_first: bool = True,
                 passthrough: bool = False, timeslots: int = 1, flatten: bool = False,
                 streaming: bool = False, kernel_offset: int = 0, chip: Chip = MAX78000) -> int:
    """Cycles of one hardware layer, with the terms of the vendor's estimator (izer/latency.py).

    The engine walks the pooled input row by row. Every input column costs one read per pooled
    element and operand plus one line-buffer write per pass (a padding column costs a read and a
    write), and one write-back; once the kernel window is full, each output row adds
    passes x output columns x output channels cycles (one output channel per cycle). The frame
    is the top padding rows, the rows that only fill the window, the convolving rows, and the
    bottom padding rows. A pass-through layer instead costs, per pooled pixel, its reads plus
    passes x its write time slots. Streaming layers are estimated at 1.5x."""
    ph, pw = pad
    kh, kw = kernel
    hp, wp = pooled
    wo = out_dims[1]
    window = pool[0] * pool[1]
    if pool_first:  # pool each operand, then combine
        pad_col = passes * operands * 2
        data_col = passes * operands * (window + 1)
        per_col_passes = 1
        pre_read = 0
    else:  # combine the operands, then pool: each pass walks the columns on its own
        pad_col = passes * 2
        data_col = passes * (operands * window + 1)
        per_col_passes = passes
        pre_read = 0
        if chip.pre_read_by_kernel_offset and (passes > 1 or operands > 1):
            pre_read = ((hp + 2 * ph - kw + 1) * pw + (wp + 2 * pw - kh + 1) * ph
                        - ph * pw) * kernel_offset
    if passthrough:
        total = hp * wp * (data_col + passes * timeslots)
    else:
        edge = pw * (pad_col + 1)              # one padding column at a row end
        pad_row = 2 * edge + per_col_passes * wp * (pad_col + 1)
        fill_row = 2 * edge + per_col_passes * wp * (data_col + 1)
        lead = per_col_passes * (kw - 1 - pw)  # columns before the window is full
        body = per_col_passes * (wo - pw)      # columns that produce an output
        conv_row = edge + lead * (data_col + 1) + body * data_col + pw * pad_col
        bottom_row = edge + lead * (pad_col + 1) + body * pad_col + pw * pad_col
        out_row = passes * wo * out_channels + (out_channels if out_channels == 1
                                                and passes == 1 else 0)
        fill_rows = kh - 1 - ph
        total = (int(flatten) + pre_read + ph * pad_row + fill_rows * fill_row
                 + (conv_row + out_row) * (hp - fill_rows) + ph * (bottom_row + out_row))
    if streaming:
        a, b, c = chip.streaming_factor
        total = (a * total + b) // c
    return total


# ----------------------------------------------------------------------------- lowering


@dataclass
class Front:
    """How a hardware layer reads its input: a stored tensor, maybe pooled and/or combined
    element-wise in flight."""

    tensor: str
    shape: tuple[int, int, int]  # stored (C, H, W), before pooling
    pool: Any = None             # network Layer (maxpool/avgpool) or None
    add: Any = None              # network Layer (add) or None
    pool_first: bool = True
    fused: tuple[str, ...] = ()  # network layers run in flight / for free


@dataclass
class HwLayer:
    """One hardware layer and its placement (filled in by `schedule`)."""

    name: str
    op: str                      # conv2d | fc | passthrough
    front: Front
    layer: Any = None            # the network MAC layer (None for pass-through)
    out_tensor: str = ""         # tensor written
    out_slot: int = 0            # operand slot in an element-wise region
    write_gap: int = 0
    order: tuple = ()
    why: str = ""                # for pass-through layers: what it does
    # filled in by schedule()
    index: int = 0
    streaming: bool = False
    passes: int = 1
    out_passes: int = 1
    proc_count: int = 0
    proc_first: int = 0
    weight_col: int | None = None
    weight_rows: int = 0
    weight_bytes: int = 0
    weight_mem_bytes: int = 0
    bias_bytes: int = 0
    bias_memory: int | None = None
    cycles: int = 0


MAC_KINDS = ("conv2d", "pointwise", "depthwise", "fc")  # depthwise: refused by allow_groups
FREE_KINDS = ("passthrough", "batchnorm")


def _operand_shape(net, name: str) -> tuple[int, int, int]:
    if name in net.inputs:
        return net.inputs[name]
    return net.layer(name).out_shape


def lower(net, chip: Chip = MAX78000) -> tuple[list[HwLayer], dict[str, dict], list[str]]:
    """Network -> hardware layers (in run order), the tensors they read and write
    ({name: {shape, operands}}), and the problems found (messages)."""
    problems: list[str] = []
    layers = {lay.name: lay for lay in net.layers}
    topo = {lay.name: i for i, lay in enumerate(net.layers)}
    for name in net.inputs:
        topo[name] = -1

    def resolve(v: str) -> str:  # skip reshapes and folded batch norms
        while v in layers and layers[v].type in FREE_KINDS:
            v = layers[v].inputs[0]
        return v

    def free_chain(v: str) -> tuple[str, ...]:
        out = []
        while v in layers and layers[v].type in FREE_KINDS:
            out.append(v)
            v = layers[v].inputs[0]
        return tuple(out)

    eff_inputs = {n: tuple(resolve(i) for i in lay.inputs) for n, lay in layers.items()
                  if lay.type not in FREE_KINDS}
    consumers: dict[str, list[str]] = {}
    for n, ins in eff_inputs.items():
        for i in ins:
            consumers.setdefault(i, []).append(n)
    for n, lay in layers.items():
        if lay.type not in MAC_KINDS + FREE_KINDS + ("add", "maxpool", "avgpool"):
            problems.append(f"layer {n}: a {lay.type} layer is not something the MAX78000 "
                            "engine runs (conv2d, pointwise, fc, max/avg pooling and "
                            "element-wise add are)")
    if problems:
        return [], {}, problems

    def is_flatten_fc(n: str) -> bool:
        lay = layers[n]
        return lay.type == "fc" and lay.attrs["H"] * lay.attrs["W"] > 1

    stored = set(net.inputs) | {n for n in eff_inputs if layers[n].type in MAC_KINDS}
    fronts: dict[str, Front] = {}
    for _ in range(len(layers) + 1):  # decide what must be stored, until nothing changes
        before = set(stored)
        fronts = {}
        for n in (lay.name for lay in net.layers):
            lay = layers[n]
            if lay.type in MAC_KINDS or lay.type in FREE_KINDS:
                continue
            if lay.type == "add":
                for o in eff_inputs[n]:
                    stored.add(o)  # operands sit in the interleaved region
                fronts[n] = Front(f"{n}.operands", lay.in_shape, add=lay, fused=(n,))
                continue
            u = eff_inputs[n][0]  # a pool
            f = (Front(u, lay.in_shape) if u in stored else fronts[u])
            if f.pool is not None:
                stored.add(u)
                f = Front(u, lay.in_shape)
            fronts[n] = Front(f.tensor, f.shape, pool=lay, add=f.add,
                              pool_first=f.add is None, fused=f.fused + (n,))
        for n, f in fronts.items():
            users = consumers.get(n, [])
            # pools and adds reading n carry it in flight (or store it themselves); a MAC layer
            # reads it in flight unless it flattens (no pooling while flattening)
            if not users or any(is_flatten_fc(c) and f.pool is not None for c in users):
                stored.add(n)
        if stored == before:
            break

    def front_of(v: str, reader: str) -> Front:
        chain = free_chain(v)
        r = resolve(v)
        if r in fronts and not (is_flatten_fc(reader) and fronts[r].pool is not None):
            f = fronts[r]  # pooling / add in flight, even when a pass-through also stores it
        else:  # stored (a flattening fc's pooled input was made a stored value above)
            f = Front(r, layers[reader].in_shape)  # as the reader sees it (after reshapes)
        return Front(f.tensor, f.shape, f.pool, f.add, f.pool_first, f.fused + chain)

    hw: list[HwLayer] = []
    tensors: dict[str, dict] = {n: {"shape": s, "operands": 1} for n, s in net.inputs.items()}
    for lay in net.layers:
        n = lay.name
        if lay.type in MAC_KINDS:
            hw.append(HwLayer(n, "fc" if lay.type == "fc" else "conv2d",
                              front_of(lay.inputs[0], n), layer=lay, out_tensor=n,
                              order=(topo[n], 0)))
            tensors[n] = {"shape": lay.out_shape, "operands": 1}
        elif lay.type not in FREE_KINDS and n in stored:
            f = fronts[n]
            what = "pooling" if f.pool is not None else ""
            if f.add is not None:
                what = (what + " and " if what else "") + f"element-wise {f.add.type}"
            hw.append(HwLayer(f"{n}.pass", "passthrough", f, out_tensor=n, order=(topo[n], 0),
                              why=f"computes {n} ({what}) into data memory"))
            tensors[n] = {"shape": lay.out_shape, "operands": 1}
        if lay.type == "add":
            ops = eff_inputs[n]
            lo, hi = chip.operands
            if not lo <= len(ops) <= hi:
                problems.append(f"layer {n}: element-wise add of {len(ops)} operands; the "
                                f"engine takes {lo} to {hi}")
            tensors[f"{n}.operands"] = {"shape": lay.in_shape, "operands": len(ops)}
    # route every operand into its add's region
    plain_readers: dict[str, int] = {}
    for h in hw:
        plain_readers[h.front.tensor] = plain_readers.get(h.front.tensor, 0) + 1
    operand_of: dict[str, list[str]] = {}
    for lay in net.layers:
        if lay.type == "add":
            for o in eff_inputs[lay.name]:
                operand_of.setdefault(o, []).append(lay.name)
    by_out = {h.out_tensor: h for h in hw}
    copies = []
    for lay in net.layers:
        if lay.type != "add":
            continue
        ops = eff_inputs[lay.name]
        region = f"{lay.name}.operands"
        for slot, o in enumerate(ops):
            prod = by_out.get(o)
            if (prod is not None and not plain_readers.get(o) and len(operand_of[o]) == 1
                    and prod.out_tensor == o):
                prod.out_tensor, prod.out_slot, prod.write_gap = region, slot, len(ops) - 1
                tensors.pop(o, None)
            else:
                copies.append(HwLayer(
                    f"{o}.to.{lay.name}", "passthrough", Front(o, _operand_shape(net, o)),
                    out_tensor=region, out_slot=slot, write_gap=len(ops) - 1,
                    order=(topo[o], 1 + len(copies)),
                    why=f"copies {o} into the interleaved operands of {lay.name} "
                        f"(write_gap {len(ops) - 1})"))
    hw = sorted(hw + copies, key=lambda h: h.order)
    for i, h in enumerate(hw):
        h.index = i
    return hw, tensors, problems


# ----------------------------------------------------------------------------- placement


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _ceil_to(a: int, b: int) -> int:
    return _ceil_div(a, b) * b


def _passes(channels: int, chip: Chip) -> tuple[int, int]:
    """(passes, processors per pass): > 64 channels run in passes, each a multiple of 4."""
    passes = _ceil_div(channels, chip.processors)
    per = channels if passes == 1 else _ceil_to(_ceil_div(channels, passes), 4)
    return passes, per


def _layer_checks(h: HwLayer, arch, chip: Chip) -> list[str]:
    from dse.arch.rules import _violations

    out: list[str] = []
    f = h.front
    label = f"layer {h.layer.name if h.layer is not None else (f.fused or (h.name,))[-1]}"
    if h.layer is not None:
        for rule, msg in _violations(h.layer, arch):
            if rule == "weight_capacity_bytes":
                continue  # checked for the whole network below
            fix = FIXES.get(rule, "")
            if rule == "strides":
                fix = fix.format(s=max(h.layer.attrs["stride"]))
            out.append(f"{msg} — {fix}" if fix else msg)
    if f.pool is not None:
        a = f.pool.attrs
        if max(a["R"], a["S"]) > chip.max_pool or max(a["stride"]) > chip.max_pool:
            out.append(f"{label}: pooling {a['R']}x{a['S']} stride {a['stride'][0]} (in flight "
                       f"from {f.pool.name}); the engine pools 1x1 to 16x16, stride 1 to 16")
        if a["stride"][0] != a["stride"][1]:
            out.append(f"{label}: pooling stride {a['stride']} differs per axis; 2D pooling "
                       "uses one stride — fix: a square stride")
        if a["dilation"] != (1, 1):
            out.append(f"{label}: pooling dilation {a['dilation']}; dilation must be 1")
        h_, w_ = f.shape[1], f.shape[2]
        if (a["P"], a["Q"]) != ((h_ - a["R"]) // a["stride"][0] + 1,
                                (w_ - a["S"]) // a["stride"][1] + 1):
            out.append(f"{label}: pooling {f.pool.name} pads its input; pooling does not "
                       "support padding — fix: pool without padding (crop or pad the conv)")
        if h.op == "passthrough" and f.shape[0] > chip.processors and (a["P"], a["Q"]) != (1, 1):
            out.append(f"{label}: pooling {f.shape[0]} channels without a conv; more than 64 "
                       "channels pool only with a fused conv (or to 1x1) — fix: fuse the pool "
                       "into the next conv")
    if h.op == "conv2d" and h.layer.attrs["stride"] == (1, 1):
        a = h.layer.attrs
        hp, wp = _pooled(f)
        for axis, (size, k, o) in enumerate(((hp, a["R"], a["P"]), (wp, a["S"], a["Q"]))):
            pad2 = o - (size - k + 1)
            if pad2 < 0 or pad2 % 2 or pad2 // 2 > chip.max_pad:
                out.append(f"{label}: padding {pad2 / 2:g} on the {'HW'[axis]} axis (output "
                           f"{o} from {size} with a {k}-wide kernel); the engine pads 0, 1 or 2 "
                           "on both sides equally")
    if h.op == "fc":
        a = h.layer.attrs
        if a["H"] * a["W"] > chip.flatten_max_pixels:  # C*H*W: rule fc_max_inputs
            out.append(f"{label}: flattens {a['H']}x{a['W']} pixels; at most "
                       f"{chip.flatten_max_pixels} — fix: pool before the fully connected "
                       "layer")
    if h.layer is not None and h.layer.biases and h.layer.attrs["K"] > chip.max_bias_channels:
        out.append(f"{label}: bias on {h.layer.attrs['K']} output channels; bias is supported "
                   f"for up to {chip.max_bias_channels} — fix: bias: false")
    dims = [*f.shape[1:]] + ([h.layer.attrs.get("P", 1), h.layer.attrs.get("Q", 1)]
                             if h.layer is not None else [])
    if max(dims) > chip.max_dim:
        out.append(f"{label}: {max(dims)} rows or columns; at most {chip.max_dim}")
    return out


def _pooled(f: Front) -> tuple[int, int]:
    if f.pool is None:
        return f.shape[1], f.shape[2]
    return f.pool.attrs["P"], f.pool.attrs["Q"]


def _weight_bits(h: HwLayer, arch) -> int:
    rules = arch.attributes.get("rules") or {}
    return h.layer.bits.weights or rules.get("weight_bits") or 8


def _place_weights(hw: list[HwLayer], chip: Chip) -> list[str]:
    """First fit, largest layers first: rows [col, col + rows) on processors
    [first, first + count) must be free; col is a multiple of 4, first a multiple of 4."""
    import numpy as np

    used = np.zeros((chip.processors, chip.weight_rows), dtype=bool)
    problems = []
    macs = [h for h in hw if h.layer is not None]
    for h in sorted(macs, key=lambda h: (-h.weight_rows * h.proc_count, h.index)):
        n, rows = h.proc_count, h.weight_rows
        best = None
        for col in range(0, chip.weight_rows - rows + 1, chip.weight_col_align):
            for first in range(0, chip.processors - n + 1, chip.per_instance):
                if not used[first:first + n, col:col + rows].any():
                    best = (col, first)
                    break
            if best:
                break
        if best is None:
            free = int((~used).sum())
            problems.append(
                f"layer {h.layer.name}: its kernels need {rows} rows of 72 bits on each of {n} "
                f"processors, and no such block is free in the weight memories ({chip.weight_rows}"
                f" rows per processor; {free:,} rows free in total, fragmented) — fix: fewer "
                "output channels, or 1/2/4-bit weights")
            continue
        h.weight_col, h.proc_first = best
        used[h.proc_first:h.proc_first + n, h.weight_col:h.weight_col + rows] = True
    return problems


def _place_biases(hw: list[HwLayer], chip: Chip) -> list[str]:
    free = [chip.bias_bytes] * chip.bias_memories
    problems = []
    for h in sorted((h for h in hw if h.bias_bytes), key=lambda h: (-h.bias_bytes, h.index)):
        best = max(range(chip.bias_memories), key=lambda i: (free[i], -i))
        if free[best] < h.bias_bytes:
            problems.append(f"layer {h.layer.name}: {h.bias_bytes} bias bytes do not fit the "
                            f"bias memories ({chip.bias_memories} x {chip.bias_bytes} bytes, "
                            f"{sum(free)} left) — fix: bias: false on some layers")
            continue
        h.bias_memory = best
        free[best] -= h.bias_bytes
    return problems


def _tensor_words(shape: tuple[int, int, int], operands: int, chip: Chip) -> tuple[int, int]:
    """(32-bit words per data-memory instance, instances used) of a (C, H, W) tensor in HWC:
    4 channels per word, one word per pass and pixel in each instance."""
    passes, per = _passes(shape[0], chip)
    return operands * passes * shape[1] * shape[2], -(-per // chip.per_instance)


def _place_data(hw: list[HwLayer], tensors: dict, chip: Chip) -> list[str]:
    """Offsets in the data-memory instances: live ranges [first write, last read]; ping-pong
    halves first, then the lowest offset that overlaps nothing alive at the same time."""
    n = len(hw)
    live: dict[str, list[int]] = {}
    for t in tensors:
        live[t] = [-1 if t not in {h.out_tensor for h in hw} else n, -1]
    for h in hw:
        s = live[h.out_tensor]
        s[0] = min(s[0], h.index)
        r = live[h.front.tensor]
        r[1] = max(r[1], h.index)
    for span in live.values():
        if span[1] < 0:
            span[1] = n  # a network output stays
    streamed_in = {h.front.tensor for h in hw if h.streaming and h.index == 0}
    placed: list[tuple[str, int, int, int, int]] = []  # name, start, end, lo, hi (bytes)
    problems = []
    for t in sorted(tensors, key=lambda t: (live[t][0], t)):
        start, end = live[t]
        words, inst = _tensor_words(tensors[t]["shape"], tensors[t]["operands"], chip)
        writer = next((h for h in hw if h.out_tensor == t), None)
        readers = [h for h in hw if h.front.tensor == t]
        if t in streamed_in:
            words = 0  # fed through the FIFOs
        elif writer is not None and writer.streaming and readers and \
                all(r.streaming for r in readers):
            r = readers[0]
            rows = (r.front.pool.attrs["R"] if r.front.pool is not None else 1) + \
                (r.layer.attrs.get("R", 1) if r.layer is not None else 1)
            passes = _passes(tensors[t]["shape"][0], chip)[0]
            words = min(words, passes * rows * tensors[t]["shape"][2])  # a rolling buffer
        size = 4 * words
        tensors[t].update(words=words, instances=inst, bytes=size * inst, live=(start, end))
        busy = [(lo, hi) for _, s, e, lo, hi in placed if s <= end and start <= e and hi > lo]
        cands = [0, chip.half_bytes] + sorted(hi for _, hi in busy)
        offset = next((c for c in cands if c + size <= chip.instance_bytes
                       and all(c + size <= lo or c >= hi for lo, hi in busy)), None)
        if offset is None:
            c_, h_, w_ = tensors[t]["shape"]
            alive = ", ".join(p[0] for p in placed if p[1] <= end and start <= p[2]
                              and p[4] > p[3]) or "nothing else"
            who = writer.name if writer is not None else t
            problems.append(
                f"layer {who}: its output ({c_}x{h_}x{w_}"
                + (f", {tensors[t]['operands']} interleaved operands" if tensors[t]["operands"]
                   > 1 else "")
                + f") needs {size:,} bytes in each data-memory instance next to {alive}; an "
                f"instance holds {chip.instance_bytes:,} bytes (ping-pong halves of "
                f"{chip.half_bytes:,}) — fix: pool earlier or use fewer channels")
            continue
        tensors[t]["offset"] = offset
        placed.append((t, start, end, offset, offset + size))
    return problems


def schedule(net, arch, chip: Chip = MAX78000) -> tuple[list[HwLayer], dict]:
    """Lower and place `net` on the chip; raise SpecError naming each layer, rule and fix."""
    hw, tensors, problems = lower(net, chip)
    if problems:
        _refuse(net, chip, problems)
    for h in hw:
        problems += _layer_checks(h, arch, chip)
    # streaming: every layer up to the last whose input is larger than the data memory allows
    big = [h.index for h in hw if h.front.shape[1] * h.front.shape[2] > chip.stream_pixels]
    last_stream = max(big) if big else -1
    for h in hw:
        h.streaming = h.index <= last_stream
    if last_stream + 1 > chip.max_streaming_layers:
        problems.append(f"layer {hw[last_stream].name}: streaming would span {last_stream + 1} "
                        f"layers (its input has more than {chip.stream_pixels:,} pixels per "
                        f"channel); at most {chip.max_streaming_layers} layers stream — fix: "
                        "pool earlier")
    if hw and hw[0].streaming and hw[0].front.shape[0] > chip.fifo_channels:
        problems.append(f"layer {hw[0].name}: a streamed input has {hw[0].front.shape[0]} "
                        f"channels; the FIFOs take at most {chip.fifo_channels}")
    # processors, passes, kernels
    total_weight_bytes = 0
    for h in hw:
        f = h.front
        h.passes, h.proc_count = _passes(f.shape[0], chip)
        if h.layer is not None:
            a = h.layer.attrs
            h.out_passes = _passes(a["K"], chip)[0]
            bits = _weight_bits(h, arch)
            if bits not in chip.weight_bits:
                problems.append(f"layer {h.layer.name}: {bits}-bit weights; the engine stores "
                                "1, 2, 4 or 8-bit weights")
                bits = 8
            taps = a.get("R", 1) * a.get("S", 1) if h.op == "conv2d" else 1
            positions = a["H"] * a["W"] if h.op == "fc" else 1
            kernels = h.passes * a["K"] * positions  # per processor
            h.weight_rows = -(-kernels * taps * bits // chip.weight_row_bits)
            h.weight_bytes = math.ceil(h.layer.weights * bits / 8)
            h.weight_mem_bytes = h.weight_rows * h.proc_count * chip.weight_row_bits // 8
            h.bias_bytes = h.layer.biases  # 8-bit biases
            total_weight_bytes += h.weight_bytes
        else:
            h.out_passes = h.passes
    if total_weight_bytes > chip.weight_bytes_total:
        problems.append(f"rule 'weight_capacity_bytes' of {chip.name}: "
                        f"{total_weight_bytes / 1024:,.0f} KiB of weights needed, "
                        f"{chip.weight_bytes_total / 1024:,.0f} KiB available "
                        f"({total_weight_bytes:,} > {chip.weight_bytes_total:,} bytes; all "
                        f"layers' kernels stay in the weight memories) — "
                        + FIXES["weight_capacity_bytes"])
    if len(hw) > chip.max_layers:
        extra = sum(1 for h in hw if h.op == "passthrough")
        problems.append(f"rule 'max_layers' of {chip.name}: {net.name} needs {len(hw)} hardware "
                        f"layers ({extra} of them pass-through layers for residuals or stored "
                        f"pooling); at most {chip.max_layers} — fix: fewer layers, or fuse "
                        "pooling and adds into the following conv")
    if problems:
        _refuse(net, chip, problems)
    problems += _place_weights(hw, chip)
    problems += _place_biases(hw, chip)
    problems += _place_data(hw, tensors, chip)
    if problems:
        _refuse(net, chip, problems)
    for h in hw:
        h.cycles = _cycles(h, chip)
    return hw, tensors


def _cycles(h: HwLayer, chip: Chip) -> int:
    f = h.front
    pool = (f.pool.attrs["R"], f.pool.attrs["S"]) if f.pool is not None else (1, 1)
    operands = len(f.add.inputs) if f.add is not None else 1
    pooled = _pooled(f)
    if h.op == "passthrough":
        passes = h.passes
        if chip.passthrough_2x_multipass and h.out_passes > 1 and pool != (1, 1):
            passes = 2 * passes - 1
        per_quadrant = min(h.proc_count, chip.per_quadrant)
        return layer_cycles(passes=passes, operands=operands, pool=pool, pooled=pooled,
                            pad=(0, 0), kernel=(1, 1), out_channels=f.shape[0],
                            out_dims=pooled, pool_first=f.pool_first, passthrough=True,
                            timeslots=(per_quadrant - 1) // 4 + 1, streaming=h.streaming,
                            chip=chip)
    a = h.layer.attrs
    if h.op == "fc":
        kernel, pad, out_dims, flatten = (1, 1), (0, 0), (a["H"], a["W"]), a["H"] * a["W"] > 1
        pooled = (a["H"], a["W"]) if f.pool is None else pooled
    else:
        kernel, flatten = (a["R"], a["S"]), False
        out_dims = (a["P"], a["Q"])
        pad = ((a["P"] - pooled[0] + a["R"] - 1) // 2, (a["Q"] - pooled[1] + a["S"] - 1) // 2)
    return layer_cycles(passes=h.passes, operands=operands, pool=pool, pooled=pooled, pad=pad,
                        kernel=kernel, out_channels=a["K"], out_dims=out_dims,
                        pool_first=f.pool_first, flatten=flatten, streaming=h.streaming,
                        kernel_offset=h.weight_col or 0, chip=chip)


def _refuse(net, chip: Chip, problems: list[str]) -> None:
    """One error: per kind of problem the first message in full, then the other layers."""
    import re

    groups: dict[str, list[tuple[str, str]]] = {}
    for msg in problems:
        m = re.search(r"layer (\S+?)[:\s]", msg)
        layer = m.group(1) if m else ""
        kind = re.sub(r"\d+", "#", msg.replace(layer, "<layer>", 1)) if layer else msg
        kind = re.sub(r"\bon the [HW] axis\b", "", kind)
        groups.setdefault(kind, []).append((layer, msg))
    parts = []
    for entries in groups.values():
        first, more = entries[0][1], list(dict.fromkeys(e[0] for e in entries[1:]))
        more = [x for x in more if x != entries[0][0]]
        if more:
            listed = ", ".join(more[:5]) + (", ..." if len(more) > 5 else "")
            first += f" (and {len(more)} more layer{'s' if len(more) > 1 else ''}: {listed})"
        parts.append(first)
    raise SpecError(f"{chip.name} cannot run {net.name}: " + "; ".join(parts),
                    hint="the execution model is described in docs/architectures.md")


# ----------------------------------------------------------------------------- rows


LAYER_COLUMNS = ["network", "layer", "type", "arch", "point", "index", "fused_layers", "macs",
                 "processors", "processor_count", "passes", "out_passes", "operands", "pool",
                 "streaming", "write_gap", "data_in_offset", "data_mem_offset",
                 "data_mem_bytes", "weight_mem_col", "weight_mem_rows", "weight_bytes",
                 "weight_mem_bytes", "bias_bytes", "bias_memory", "cycles", "latency_s",
                 "energy_pJ", "status", "note", "tool_version"]
TOTAL_COLUMNS = ["network", "arch", "point", "execution", "layers", "hw_layers",
                 "passthrough_layers", "streaming_layers", "macs", "cycles", "clock_hz",
                 "latency_s", "macs_per_cycle", "weight_bytes", "weight_mem_bytes",
                 "weight_capacity_bytes", "bias_bytes", "data_mem_peak_bytes", "energy_pJ",
                 "tool_version"]
START_CYCLES = 1  # the estimator's start-up cycle, once per inference [P]


def rows(net, arch, hw: list[HwLayer], tensors: dict, point: str = "",
         chip: Chip = MAX78000) -> tuple[list[dict], dict]:
    """layers.csv rows (one per hardware layer) and the totals.csv row."""
    from dse import __version__

    clock = arch.clock_hz
    out = []
    for h in hw:
        f = h.front
        t_out = tensors[h.out_tensor]
        t_in = tensors[f.tensor]
        mask = ((1 << h.proc_count) - 1) << h.proc_first
        pool = ""
        if f.pool is not None:
            pool = (f"{f.pool.type} {f.pool.attrs['R']}x{f.pool.attrs['S']} "
                    f"s{f.pool.attrs['stride'][0]}")
        note = h.why
        if f.add is not None and h.op != "passthrough":
            note = f"{f.add.name} ({len(f.add.inputs)} operands) in flight"
        if h.write_gap:
            note = (note + "; " if note else "") + \
                f"writes operand {h.out_slot} of {h.out_tensor.removesuffix('.operands')}"
        out.append({
            "network": net.name, "layer": h.name, "type": h.op, "arch": arch.name,
            "point": point, "index": h.index,
            "fused_layers": "+".join(f.fused + ((h.layer.name,) if h.layer else ())),
            "macs": h.layer.macs if h.layer is not None else 0,
            "processors": f"0x{mask:016x}", "processor_count": h.proc_count,
            "passes": h.passes, "out_passes": h.out_passes,
            "operands": len(f.add.inputs) if f.add is not None else 1, "pool": pool,
            "streaming": int(h.streaming), "write_gap": h.write_gap,
            "data_in_offset": t_in.get("offset", ""), "data_mem_offset": t_out["offset"]
            + 4 * h.out_slot, "data_mem_bytes": t_out["bytes"],
            "weight_mem_col": "" if h.weight_col is None else h.weight_col,
            "weight_mem_rows": h.weight_rows, "weight_bytes": h.weight_bytes,
            "weight_mem_bytes": h.weight_mem_bytes, "bias_bytes": h.bias_bytes,
            "bias_memory": "" if h.bias_memory is None else h.bias_memory,
            "cycles": h.cycles, "latency_s": h.cycles / clock if clock else "",
            "energy_pJ": "", "status": "ok", "note": note, "tool_version": __version__,
        })
    cycles = START_CYCLES + sum(h.cycles for h in hw)
    macs = sum(h.layer.macs for h in hw if h.layer is not None)
    tot = {"network": net.name, "arch": arch.name, "point": point, "execution": chip.name,
           "layers": len(net.layers), "hw_layers": len(hw),
           "passthrough_layers": sum(1 for h in hw if h.op == "passthrough"),
           "streaming_layers": sum(1 for h in hw if h.streaming), "macs": macs,
           "cycles": cycles, "clock_hz": clock or "",
           "latency_s": cycles / clock if clock else "",
           "macs_per_cycle": macs / cycles if cycles else "",
           "weight_bytes": sum(h.weight_bytes for h in hw),
           "weight_mem_bytes": sum(h.weight_mem_bytes for h in hw),
           "weight_capacity_bytes": chip.weight_bytes_total,
           "bias_bytes": sum(h.bias_bytes for h in hw),
           "data_mem_peak_bytes": max((t.get("offset", 0) + t["words"] * 4
                                       for t in tensors.values()), default=0),
           "energy_pJ": "", "tool_version": __version__}
    return out, tot


def chip_for(arch) -> Chip:
    """The chip facts for an architecture that declares `execution: max78000`, with the limits
    its `rules:` give (layers, fc inputs, weight capacity) taking precedence."""
    from dataclasses import replace

    rules = arch.attributes.get("rules") or {}
    chip = MAX78000
    if "max_layers" in rules:
        chip = replace(chip, max_layers=rules["max_layers"])
    if "fc_max_inputs" in rules:
        chip = replace(chip, flatten_max_inputs=rules["fc_max_inputs"])
    if "weight_capacity_bytes" in rules:
        row_bytes = chip.processors * chip.weight_row_bits // 8
        chip = replace(chip, weight_rows=rules["weight_capacity_bytes"] // row_bytes)
    return chip
