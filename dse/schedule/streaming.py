"""Streaming dataflow accelerators on FPGAs: one engine per layer, all running at once, joined by
on-chip streams (the NN2FPGA style, arXiv:2309.15631). Pure functions: a network's stages, the
cost of one stage at a given parallelism, and the pipeline's II / FPS / latency / resources.

The model (docs/streaming.md): a convolution engine visits every output pixel, input channel and
output-channel group in turn with all kernel taps and `och_par*ich_par*ow_par` products in
parallel, so one image takes `oh*ow*och*ich / (och_par*ich_par*ow_par)` cycles. Stages overlap;
the slowest one sets the initiation interval II and FPS = clock / II.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dse.errors import SpecError

BRAM36_WIDTHS = (72, 36, 18, 9)  # read widths a BRAM36 block can be configured to (bits)
URAM_WIDTH, URAM_DEPTH = 72, 4096  # an UltraRAM block: 4K x 72 bits, fixed width
WEIGHT_MEMORIES = ("auto", "bram", "uram")  # auto: LUTRAM if small enough, else BRAM


@dataclass(frozen=True)
class Board:
    """An FPGA's budgets and the clock the design runs at."""

    name: str
    dsp: int
    bram36: int
    uram: int
    lut: int
    clock_hz: float
    device: str = ""
    source: str = ""


@dataclass(frozen=True)
class Engine:
    """The per-layer engine template: how far each loop may be unrolled, and DSP packing."""

    max_och_par: int = 64
    max_ich_par: int = 64
    max_ow_par: int = 4
    dsp_packing: bool = True
    products_per_dsp: tuple[tuple[int, int], ...] = ((4, 4), (8, 2))  # (max bits, products)
    merge_shortcut: bool = True
    line_buffer_stage: bool = False
    # every engine sized for the heaviest engine's rate: II = work_max / P for a parallelism P
    # of the heaviest engine (the 2023 NN2FPGA allocator's rule; docs/streaming.md)
    balanced: bool = False


@dataclass(frozen=True)
class Memory:
    """On-chip storage sizes: what fits in LUTRAM, BRAM36/URAM block sizes, stream FIFO depth."""

    lutram_max_bits: int = 36 * 1024
    bram36_bits: int = 36 * 1024
    fifo_depth: int = 2


@dataclass(frozen=True)
class Power:
    """Per-resource power figures (W), only when the architecture file gives them."""

    static_W: float = 0.0
    per_dsp_W: float = 0.0
    per_bram36_W: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class StreamingArch:
    name: str
    board: Board
    engine: Engine = field(default_factory=Engine)
    memory: Memory = field(default_factory=Memory)
    skip_forwarding: bool = True
    power: Power | None = None
    weight_bits: int | None = None  # None: the workload's bits
    activation_bits: int | None = None
    file: str | None = None


@dataclass(frozen=True)
class Stage:
    """One hardware engine: a conv/fc layer (with a 1x1 shortcut merged into it, if any)."""

    name: str
    ich: int
    och: int
    ih: int
    iw: int
    oh: int
    ow: int
    fh: int
    fw: int
    weights: int  # weights of the layer, plus the merged shortcut's
    merged: str = ""  # name of the 1x1 shortcut computed in this engine's loop
    depthwise: bool = False
    adds_skip: str = ""  # name of the residual add absorbed into this engine's output

    @property
    def work(self) -> int:
        """Inner-loop iterations at parallelism 1 (taps unrolled)."""
        return self.oh * self.ow * self.och * (1 if self.depthwise else self.ich)

    @property
    def taps(self) -> int:
        return self.fh * self.fw + (1 if self.merged else 0)


@dataclass(frozen=True)
class Par:
    och_par: int = 1
    ich_par: int = 1
    ow_par: int = 1
    weight_memory: str = "auto"  # where weights too big for LUTRAM go: bram or uram

    @property
    def product(self) -> int:
        return self.och_par * self.ich_par * self.ow_par


@dataclass(frozen=True)
class SkipBuffer:
    add: str
    channels: int
    height: int
    width: int
    full_bits: int  # the whole skip tensor
    forwarded_bits: int  # only the lag of the consuming conv's window
    used_bits: int


# ----------------------------------------------------------------------------- network -> stages


def _conv_geometry(layer) -> tuple[int, int, int, int, int, int, int, int]:
    c, h, w = layer.in_shape
    k, oh, ow = layer.out_shape
    if layer.type == "fc":
        return c * h * w, k, 1, 1, 1, 1, 1, 1
    return c, k, h, w, oh, ow, int(layer.attrs.get("R", 1)), int(layer.attrs.get("S", 1))


def build_stages(network, engine: Engine) -> tuple[list[Stage], list]:
    """The engines of a network, in order, and the residual adds they absorb.

    A 1x1 conv that reads the same tensor as a k x k conv with the same output shape is computed
    in that conv's loop (merge_shortcut); an add is absorbed into the conv producing one of its
    inputs; pools and adds do not get an engine of their own."""
    stages: dict[str, Stage] = {}
    merged_into: dict[str, str] = {}
    supported = {"conv2d", "pointwise", "depthwise", "fc", "add", "maxpool", "avgpool",
                 "batchnorm", "passthrough"}
    for layer in network.layers:
        if layer.type not in supported:
            raise SpecError(f"the streaming model has no engine for layer '{layer.name}' of type "
                            f"'{layer.type}'", file=layer.file, line=layer.line,
                            expected="conv2d, pointwise, depthwise, fc, add, maxpool, avgpool")
    convs = [lay for lay in network.layers if lay.type in ("conv2d", "pointwise", "depthwise",
                                                            "fc")]
    if engine.merge_shortcut:
        for lay in convs:
            ich, och, ih, iw, oh, ow, fh, fw = _conv_geometry(lay)
            if (fh, fw) != (1, 1) or lay.type == "fc":
                continue
            for host in convs:
                if host is lay or host.inputs != lay.inputs or host.name in merged_into:
                    continue
                if host.out_shape == lay.out_shape and _conv_geometry(host)[6:] != (1, 1):
                    merged_into[lay.name] = host.name
                    break
    hosts = {v: k for k, v in merged_into.items()}
    for lay in convs:
        if lay.name in merged_into:
            continue
        ich, och, ih, iw, oh, ow, fh, fw = _conv_geometry(lay)
        extra = network.layer(hosts[lay.name]).weights if lay.name in hosts else 0
        stages[lay.name] = Stage(lay.name, ich, och, ih, iw, oh, ow, fh, fw,
                                 lay.weights + extra, hosts.get(lay.name, ""),
                                 lay.type == "depthwise")
    adds = [lay for lay in network.layers if lay.type == "add"]
    for add in adds:
        for src in add.inputs:
            if src in stages and not stages[src].adds_skip:
                s = stages[src]
                stages[src] = Stage(**{**s.__dict__, "adds_skip": add.name})
                break
    return list(stages.values()), adds


def skip_buffers(network, stages: list[Stage], adds: list, abits: int,
                 forwarding: bool) -> list[SkipBuffer]:
    """Bits each residual join must hold. Stored whole: the skip tensor. Forwarded through the
    first conv's window buffer: only the lag of the absorbing conv's window, i.e. the pixels
    between the one it reads last and the one it outputs: (fh//2) rows + fw//2 + 1 pixels."""
    by_add = {s.adds_skip: s for s in stages if s.adds_skip}
    out = []
    for add in adds:
        stage = by_add.get(add.name)
        c, h, w = add.out_shape
        full = c * h * w * abits
        lag_pixels = ((stage.fh // 2) * stage.ow + stage.fw // 2 + 1) if stage else h * w
        fwd = min(full, lag_pixels * c * abits)
        out.append(SkipBuffer(add.name, c, h, w, full, fwd, fwd if forwarding else full))
    return out


# ----------------------------------------------------------------------------- one stage


def products_per_dsp(engine: Engine, bits: int, par: Par) -> int:
    """Products one DSP computes: packed (up to two 8-bit, four 4-bit) when that many products
    share an operand (ow_par products share a weight, och_par products an activation): the
    packing factor must divide och_par*ow_par."""
    if not engine.dsp_packing:
        return 1
    for max_bits, n in engine.products_per_dsp:
        if bits <= max_bits:
            return math.gcd(n, par.och_par * par.ow_par)
    return 1


def memory_blocks(bits: int, read_bits: int, mem: Memory, kind: str = "auto"
                  ) -> tuple[str, int]:
    """('lutram', 0) if it fits in LUTRAM, else ('bram', BRAM36 blocks): the best aspect ratio
    giving `read_bits` per cycle (parallel banks, each deep enough for its share), or with
    kind='uram' ('uram', URAM blocks) of fixed 72-bit width."""
    if bits <= mem.lutram_max_bits:
        return "lutram", 0
    if kind == "uram":
        banks = math.ceil(read_bits / URAM_WIDTH)
        depth = math.ceil(bits / (banks * URAM_WIDTH))
        return "uram", banks * math.ceil(depth / URAM_DEPTH)
    best = None
    for width in BRAM36_WIDTHS:
        banks = math.ceil(read_bits / width)
        depth = math.ceil(bits / (banks * width))
        blocks = banks * math.ceil(depth / (mem.bram36_bits // width))
        best = blocks if best is None else min(best, blocks)
    return "bram", int(best)


def stage_cost(stage: Stage, par: Par, arch: StreamingArch, wbits: int, abits: int) -> dict:
    """Cycles per image, multipliers, DSPs, weight memory and line buffer of one engine."""
    cycles = math.ceil(stage.work / par.product)
    lb_cycles = 0
    if arch.engine.line_buffer_stage and (stage.fh > 1 or stage.fw > 1):
        lb_cycles = math.ceil(stage.ich * stage.ih * stage.iw / (par.ich_par * par.ow_par))
    mults = par.product * stage.taps
    ppd = products_per_dsp(arch.engine, max(wbits, abits), par)
    dsp = math.ceil(mults / ppd)
    wmem_bits = stage.weights * wbits
    read_bits = par.och_par * par.ich_par * stage.taps * wbits
    wkind, wblocks = memory_blocks(wmem_bits, read_bits, arch.memory, par.weight_memory)
    wbram, wuram = (0, wblocks) if wkind == "uram" else (wblocks, 0)
    lb_bits = 0
    if stage.fh > 1 or stage.fw > 1:
        lb_bits = ((stage.fh - 1) * stage.iw + stage.fw) * stage.ich * abits
    lkind, lbram = memory_blocks(lb_bits, par.ich_par * par.ow_par * abits, arch.memory)
    fifo_bits = arch.memory.fifo_depth * par.och_par * par.ow_par * abits
    return {"cycles": cycles, "line_buffer_cycles": lb_cycles,
            "stage_cycles": max(cycles, lb_cycles), "multipliers": mults,
            "products_per_dsp": ppd, "dsp": dsp, "weight_bits": wmem_bits,
            "weight_memory": wkind, "weight_bram36": wbram, "weight_uram": wuram,
            "uram": wuram, "line_buffer_bits": lb_bits,
            "line_buffer_bram36": lbram, "fifo_bits": fifo_bits,
            "bram36": wbram + lbram}


# ----------------------------------------------------------------------------- the pipeline


def fixed_stages(network, stages: list[Stage]) -> list[tuple[str, int]]:
    """Stages with no parallelism to choose: the input producer (one pixel-channel per cycle of
    the DMA stream) and the pools (one element per cycle)."""
    c, h, w = next(iter(network.inputs.values()))
    out = [("input", c * h * w)]
    for lay in network.layers:
        if lay.type in ("maxpool", "avgpool"):
            c, h, w = lay.in_shape
            out.append((lay.name, c * h * w))
    return out


def bits_of(network, arch: StreamingArch) -> tuple[int, int]:
    wbits = arch.weight_bits or network.bits.weights or 8
    abits = arch.activation_bits or network.bits.activations or 8
    return int(wbits), int(abits)


def evaluate(network, arch: StreamingArch, plan: dict[str, Par]) -> dict:
    """Per-stage rows and network totals for one per-layer parallelism plan."""
    stages, adds = build_stages(network, arch.engine)
    wbits, abits = bits_of(network, arch)
    missing = [s.name for s in stages if s.name not in plan]
    if missing:
        raise SpecError("the plan gives no parallelism for: " + ", ".join(missing))
    rows = []
    for s in stages:
        p = plan[s.name]
        for dim, size, val in (("och_par", s.och, p.och_par), ("ich_par", s.ich, p.ich_par),
                               ("ow_par", s.ow, p.ow_par)):
            if val < 1 or size % val:
                raise SpecError(f"plan for '{s.name}': {dim} {val} does not divide {size}",
                                expected=f"a divisor of {size}")
        rows.append({"stage": s, "par": p, **stage_cost(s, p, arch, wbits, abits)})
    fixed = fixed_stages(network, stages)
    skips = skip_buffers(network, stages, adds, abits, arch.skip_forwarding)
    return summarize(network, arch, rows, fixed, skips)


def summarize(network, arch: StreamingArch, rows: list[dict], fixed: list[tuple[str, int]],
              skips: list[SkipBuffer]) -> dict:
    candidates = [(r["stage_cycles"], r["stage"].name) for r in rows] + [(c, n) for n, c in fixed]
    ii, bottleneck = max(candidates, key=lambda t: t[0])
    board = arch.board
    skip_bram = sum(memory_blocks(s.used_bits, abits_of(s), arch.memory)[1] for s in skips)
    dsp = sum(r["dsp"] for r in rows)
    bram = sum(r["bram36"] for r in rows) + skip_bram
    uram = sum(r["uram"] for r in rows)
    fill = 0.0
    for r in rows:  # pixels each window must collect before its first output, at the II's pace
        s = r["stage"]
        if s.fh > 1 or s.fw > 1:
            fill += ((s.fh // 2) * s.iw + s.fw // 2 + 1) * ii / (s.ih * s.iw)
    latency_cycles = ii + fill
    tot = {"ii_cycles": ii, "bottleneck_layer": bottleneck, "clock_hz": board.clock_hz,
           "fps": board.clock_hz / ii, "latency_cycles": latency_cycles,
           "latency_s": latency_cycles / board.clock_hz,
           "multipliers": sum(r["multipliers"] for r in rows),
           "dsp_used": dsp, "dsp_budget": board.dsp,
           "bram36_used": bram, "bram36_budget": board.bram36,
           "uram_used": uram, "uram_budget": board.uram,
           "weight_bits": sum(r["weight_bits"] for r in rows),
           "line_buffer_bits": sum(r["line_buffer_bits"] for r in rows),
           "fifo_bits": sum(r["fifo_bits"] for r in rows),
           "skip_buffer_bits": sum(s.used_bits for s in skips),
           "skip_buffer_full_bits": sum(s.full_bits for s in skips),
           "skip_buffer_forwarded_bits": sum(s.forwarded_bits for s in skips),
           "skip_bram36": skip_bram,
           "fits": dsp <= board.dsp and bram <= board.bram36 and uram <= board.uram}
    tot["fps_per_dsp"] = tot["fps"] / dsp if dsp else ""
    if arch.power is not None:
        pw = arch.power
        watts = pw.static_W + pw.per_dsp_W * dsp + pw.per_bram36_W * bram
        tot["power_W"] = watts
        tot["energy_per_image_J"] = watts * ii / board.clock_hz
    return {"rows": rows, "fixed": fixed, "skips": skips, "totals": tot}


def abits_of(skip: SkipBuffer) -> int:
    """Read width of a skip FIFO: one pixel's channels."""
    return skip.channels * (skip.full_bits // (skip.channels * skip.height * skip.width))
