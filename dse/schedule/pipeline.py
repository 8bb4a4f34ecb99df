"""Pipelined schedules: stages of layers on disjoint groups of tiles, streaming row by row.

A *stage* is a few layers in network order (the fused-segment rules of dse.schedule.fused,
except that it may skip layers other stages run) placed on `tiles` tiles of one *group* (an
instance of the group level, e.g. an NPU column and its memory tile). Stages exchange
activations one row at a time through FIFOs; only the tensors no stage produces are read from
DRAM (once, broadcast to every reader) and only the tensors no stage reads are written to DRAM
(docs/fusion.md, "Pipelines", says why).

Timing is a row recurrence: row r of a stage starts when its previous row is done, the rows of
its inputs that row r needs (back-projected through the stage's layers) are done by their
producers, its weights are loaded, and (with back-pressure) the FIFO slots the row's output goes
to are free. A row's service time is each layer's row time (`row_time: mapped`: the row problem
mapped on a one-tile slice; `compute`: its MACs over the tile's MAC units), counting only the
kernel rows that do not fall on padding; DMA streams move `dma_bytes_per_cycle` per cycle.
The initiation interval is the slowest stage's row time; fill and drain follow from the
recurrence.

Memory: a tile holds its weights (all of them when a split stage's weights are broadcast), its
input FIFOs (depth x row) and its output FIFO (depth x row share); a group memory holds the
weights of the group's stages (one shim transfer) and the staging FIFOs placed in it. Both are
checked against the level's capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from dse.errors import SpecError, did_you_mean
from dse.schedule.fused import FusedModel, Segment, dram_level, row_window
from dse.workload.network import MAC_TYPES, Network

SPLITS = ("K",)
ROW_TIMES = ("mapped", "compute")
WEIGHT_MODES = ("split", "broadcast")


@dataclass(frozen=True)
class Stage:
    """Consecutive layers on `tiles` tiles of group `group`; a split stage divides the output
    channels (`split: K`) evenly over its tiles."""

    name: str
    layers: tuple[str, ...]
    group: int
    tiles: int = 1
    split: str = ""
    weights: str = "split"  # split stage: each tile holds its share, or all (broadcast)
    in_depth: dict[str, int] = field(default_factory=dict)  # tensor -> rows (default window+1)
    out_depth: int = 2
    place: tuple[str, ...] = ()  # tile labels, for the reports only


@dataclass(frozen=True)
class Staging:
    """A FIFO of `depth` rows of `tensor` in group `group`'s memory on the way to `consumer`."""

    tensor: str
    group: int
    depth: int
    consumer: str


@dataclass(frozen=True)
class Pipeline:
    stages: tuple[Stage, ...]
    staging: tuple[Staging, ...] = ()
    tile_level: str = ""  # memory of one tile ("" = innermost buffer)
    group_level: str = ""  # memory of one group ("" = the buffer above the tile level)
    efficiency: float = 1.0  # fraction of the MAC units' peak a kernel reaches
    weight_load: bool = True  # weights stream in before a stage's first row
    backpressure: bool = True  # a row waits for a free slot in the FIFOs it writes
    dma_bytes_per_cycle: float | None = None  # None = the DRAM level's word width
    stack_bytes: int = 0  # per tile, beside weights and FIFOs
    row_time: str = "mapped"  # mapped (the mapper on a one-tile slice) | compute (MACs / units)
    row_search_evals: int = 20000  # mapper budget per row problem (row_time: mapped)


@dataclass(frozen=True)
class Hardware:
    """The slice sizes a pipeline is checked and timed against."""

    tile_level: str
    tile_bytes: int
    group_level: str
    group_bytes: int
    groups: int
    tiles_per_group: int
    macs_per_tile: int
    dma_bytes_per_cycle: float


@dataclass(frozen=True)
class StageResult:
    stage: Stage
    row_cycles: tuple[int, ...]  # per output row, per tile
    busy_cycles: int
    macs: int  # executed (all tiles)
    weight_bytes: int  # the stage's layers' weights
    tile_weight_bytes: int  # held by each tile
    fifo_bytes: int  # input + output FIFOs per tile
    working_set_bytes: int  # per tile
    weights_ready: int
    first_start: int
    last_finish: int


@dataclass(frozen=True)
class Fifo:
    tensor: str
    producer: str  # stage name or "DRAM"
    consumer: str  # stage name or "DRAM"
    memory: str  # level name
    where: str  # stage (tile) or group the buffer is in
    depth: int
    row_bytes: int

    @property
    def bytes(self) -> int:
        return self.depth * self.row_bytes


@dataclass(frozen=True)
class PipelineResult:
    hardware: Hardware
    stages: tuple[StageResult, ...]
    fifos: tuple[Fifo, ...]
    group_bytes: dict[int, int]  # group -> bytes held in its memory
    group_weight_bytes: dict[int, int]
    cycles: int
    cycles_without_weight_load: int
    weight_load_cycles: int  # the longest weight load (shim + group -> tile)
    interval_cycles: int  # slowest stage's row time (the initiation interval of a row)
    stage_bound_cycles: int  # slowest stage's busy cycles (a lower bound on `cycles`)
    bottleneck: str
    fill_cycles: int  # until the bottleneck stage starts its first row
    drain_cycles: int  # after the bottleneck stage finishes its last row
    macs: int
    dram_read_bytes: int
    dram_write_bytes: int
    weight_bytes: int
    stagewise_dram_bytes: int  # the same stages one after the other, each through DRAM
    dram_inputs: tuple[str, ...]
    dram_outputs: tuple[str, ...]

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes


def _ceil(a: float, b: float) -> int:
    return int(-(-a // b))


def hardware(arch, pipe: Pipeline, where: str = "schedule") -> Hardware:
    """Tile and group memories of `arch` and the MAC units and DMA width a stage sees."""
    buffers = [lv for lv in arch.levels if not lv.is_dram and not lv.is_dummy
               and lv.effective_capacity_words is not None]
    names = [lv.name for lv in buffers]
    if not buffers:
        raise SpecError(f"{arch.name} has no on-chip buffer to hold pipeline stages")

    def find(name: str, key: str):
        for lv in buffers:
            if lv.name == name:
                return lv
        raise SpecError(f"no on-chip buffer '{name}' in {arch.name}",
                        key_path=f"{where}.{key}", found=name, expected=", ".join(names),
                        hint=did_you_mean(name, names))

    tile = find(pipe.tile_level, "tile_level") if pipe.tile_level else buffers[-1]
    ti = buffers.index(tile)
    if pipe.group_level:
        group = find(pipe.group_level, "group_level")
    elif ti > 0:
        group = buffers[ti - 1]
    else:
        group = tile
    if buffers.index(group) > ti:
        raise SpecError("the group level must be above the tile level",
                        key_path=f"{where}.group_level", found=group.name,
                        expected=f"one of {', '.join(names[:ti + 1])}")
    dram = dram_level(arch)
    dma = pipe.dma_bytes_per_cycle
    if dma is None:
        dma = dram.block_size * dram.datawidth / 8
    return Hardware(tile.name, tile.effective_capacity_words * tile.datawidth // 8,
                    group.name, group.effective_capacity_words * group.datawidth // 8,
                    group.instances, tile.instances // group.instances,
                    arch.compute.instances // tile.instances, dma)


class PipelineModel:
    """Row-level timing, traffic and memory of a pipeline (pure; no I/O)."""

    def __init__(self, network: Network, activation_bits: int | None = None):
        self.network = network
        self.fused = FusedModel(network, activation_bits or 8)
        self.graph = self.fused.graph
        self.bits = activation_bits or network.bits.activations or 8

    def row_bytes(self, tensor: str) -> int:
        """Activations stream at the network's activation width (a stage requantizes its
        output before sending it on, as the AIE kernels' shift-round-saturate step does)."""
        t = self.graph.tensors[tensor]
        c, _h, w = t.shape
        return _ceil(t.batch * c * w * self.bits, 8)

    def weight_bytes(self, layer: str) -> int:
        return _ceil(self.fused.weight_bits(self.network.layer(layer)), 8)

    # -- validation
    def check(self, pipe: Pipeline, hw: Hardware, lines: tuple[int | None, ...] = ()
              ) -> list[Stage]:
        """Stages in dependency order; refuses overlaps, gaps, bad splits, unknown groups."""
        order = self.fused.order
        seen: dict[str, str] = {}
        names: set[str] = set()
        per_group: dict[int, int] = {}
        for i, st in enumerate(pipe.stages):
            where = f"schedule.stages[{i}]"
            if st.name in names:
                raise SpecError(f"two stages are named '{st.name}'",
                                key_path=f"{where}.name", found=st.name)
            names.add(st.name)
            self.fused.check(Segment(st.layers, 1), where, consecutive=False)
            for name in st.layers:
                if name in seen:
                    raise SpecError(f"layer '{name}' is in stages {seen[name]} and "
                                    f"{st.name}", key_path=f"{where}.layers", found=name,
                                    hint="a layer belongs to one stage")
                seen[name] = st.name
            if not 0 <= st.group < hw.groups:
                raise SpecError(f"no group {st.group} ({hw.group_level}); the "
                                f"architecture has {hw.groups}", key_path=f"{where}.group",
                                found=st.group, expected=f"0 to {hw.groups - 1}")
            if st.tiles < 1:
                raise SpecError("a stage needs at least one tile",
                                key_path=f"{where}.tiles", found=st.tiles)
            if st.tiles > 1:
                if st.split not in SPLITS:
                    raise SpecError(f"a stage on {st.tiles} tiles must say how its "
                                    f"work is split", key_path=f"{where}.split", found=st.split,
                                    expected=" or ".join(SPLITS))
                k = self._split_extent(st, where)
                if k % st.tiles:
                    raise SpecError(f"{k} output channels do not split evenly over "
                                    f"{st.tiles} tiles", key_path=f"{where}.tiles",
                                    found=st.tiles)
            if st.weights not in WEIGHT_MODES:
                raise SpecError("unknown weights mode", key_path=f"{where}.weights",
                                found=st.weights, expected=" or ".join(WEIGHT_MODES))
            for t in st.in_depth:
                if t not in self._stage_inputs(st):
                    raise SpecError(f"in_depth given for '{t}', which stage "
                                    f"{st.name} does not read", key_path=f"{where}.in_depth",
                                    found=t, hint=did_you_mean(t, self._stage_inputs(st)))
            per_group[st.group] = per_group.get(st.group, 0) + st.tiles
            if per_group[st.group] > hw.tiles_per_group:
                raise SpecError(f"group {st.group} has {hw.tiles_per_group} tiles "
                                f"({hw.tile_level}); its stages ask for {per_group[st.group]}",
                                key_path=f"{where}.tiles", found=st.tiles)
        missing = [lay.name for lay in self.network.layers if lay.name not in seen]
        if missing:
            raise SpecError(f"a pipeline places every layer; not in any stage: "
                            f"{', '.join(missing)}", key_path="schedule.stages",
                            hint="add them to a stage")
        stage_names = [s.name for s in pipe.stages]
        for j, sg in enumerate(pipe.staging):
            where = f"schedule.staging[{j}]"
            if sg.consumer not in names:
                raise SpecError(f"no stage '{sg.consumer}'", key_path=f"{where}.for",
                                found=sg.consumer, hint=did_you_mean(sg.consumer, stage_names))
            st = next(s for s in pipe.stages if s.name == sg.consumer)
            if sg.tensor not in self._stage_inputs(st):
                raise SpecError(f"stage {st.name} does not read '{sg.tensor}'",
                                key_path=f"{where}.tensor", found=sg.tensor,
                                hint=did_you_mean(sg.tensor, self._stage_inputs(st)))
            if not 0 <= sg.group < hw.groups:
                raise SpecError(f"no group {sg.group}", key_path=f"{where}.group",
                                found=sg.group, expected=f"0 to {hw.groups - 1}")
            if sg.depth < 1:
                raise SpecError("depth must be at least 1", key_path=f"{where}.depth",
                                found=sg.depth)
        # a stage's producers output a layer earlier than its own last one: topological order
        return sorted(pipe.stages, key=lambda s: order[s.layers[-1]])

    def _split_extent(self, st: Stage, where: str) -> int:
        """Output channels a split stage divides over its tiles. Each tile computes its share
        of the channels of every layer, so no conv may read a tensor made inside the stage
        (it would need every channel of it) and every layer keeps the output's channels."""
        inside = set(st.layers)
        k = self.graph.tensors[st.layers[-1]].shape[0]
        for name in st.layers:
            lay = self.network.layer(name)
            reads_inside = [t for t in self.graph.inputs_of(name) if t in inside]
            if (lay.type in MAC_TYPES and reads_inside) or \
                    self.graph.tensors[name].shape[0] != k:
                raise SpecError(f"stage {st.name} cannot be split by output channels: "
                                f"'{name}' needs every channel of "
                                f"{', '.join(reads_inside) or 'its input'} or changes the "
                                f"channel count", key_path=f"{where}.split",
                                found=list(st.layers),
                                hint="split a stage whose convs read only tensors from "
                                     "outside it (a conv, or convs joined by an add)")
        return k

    def _stage_inputs(self, st: Stage) -> list[str]:
        seg = Segment(st.layers, 1)
        return [t for t in self.fused.segment_tensors(seg) if t not in st.layers]

    def _window_rows(self, st: Stage, tensor: str) -> int:
        """Most rows of `tensor` one output row of the stage reads (what its FIFO must hold)."""
        out = st.layers[-1]
        most = 1
        for r in range(self.fused.rows(out)):
            most = max(most, len(self._needs(st, r)[tensor]))
        return most

    def in_depth(self, st: Stage, tensor: str) -> int:
        """Given depth, else the window plus one row (double buffering of a 1-row window)."""
        return st.in_depth.get(tensor, self._window_rows(st, tensor) + 1)

    # -- row structure
    def _needs(self, st: Stage, r: int) -> dict[str, set[int]]:
        """Rows of every tensor the stage touches for its output row r (back-projection)."""
        need: dict[str, set[int]] = {st.layers[-1]: {r}}
        for name in reversed(st.layers):
            rows = need.get(name, set())
            for t in self.graph.inputs_of(name):
                lay = self.network.layer(name)
                need.setdefault(t, set()).update(
                    row_window(lay).project(rows, self.fused.rows(t)))
        return need

    def _row_work(self, st: Stage) -> list[tuple[int, list[tuple[str, Fraction]], dict]]:
        """Per output row: the executed MACs (ops when the stage has no MAC layer) of the rows
        each layer computes first for that row, the same as (layer, fraction of a full row)
        parts (a kernel row on padding is not executed), and the input rows it needs."""
        layers = [self.network.layer(n) for n in st.layers]
        has_mac = any(lay.type in MAC_TYPES for lay in layers)
        done: dict[str, set[int]] = {n: set() for n in st.layers}
        out = []
        for r in range(self.fused.rows(st.layers[-1])):
            need = self._needs(st, r)
            work = 0
            parts: list[tuple[str, Fraction]] = []
            for lay in layers:
                new = need.get(lay.name, set()) - done[lay.name]
                done[lay.name] |= new
                if has_mac and lay.type not in MAC_TYPES:
                    continue  # element-wise epilogue of a conv stage: no extra cycles
                per_row = lay.problem.macs // lay.out_shape[1]
                win = row_window(lay)
                for x in sorted(new):
                    used = len(win.project({x}, self.fused.rows(self.graph.inputs_of(
                        lay.name)[0]))) if win.kernel > 1 else win.kernel
                    work += per_row * used // win.kernel
                    parts.append((lay.name, Fraction(used, win.kernel)))
            inputs = {t: rows for t, rows in need.items() if t not in st.layers}
            out.append((work, parts, inputs))
        return out

    def row_problem(self, layer: str, tiles: int):
        """One output row of `layer` (its share on one of `tiles` tiles split by channels): the
        problem a stage's tile runs per row."""
        from dataclasses import replace

        p = self.network.layer(layer).problem
        ranks = p.data_space("Outputs").ranks
        row_dim, chan_dim = ranks[-1][0][0], ranks[1][0][0]
        bounds = dict(p.bounds)
        bounds[row_dim] = 1
        bounds[chan_dim] //= tiles
        return replace(p, name=f"{p.name}.row", bounds=bounds)

    def layer_row_cycles(self, pipe: Pipeline, hw: Hardware, arch, st: Stage
                         ) -> dict[str, Fraction]:
        """Cycles of one full output row of each layer of the stage on one of its tiles:
        `row_time: mapped` maps the row problem on a one-tile slice of the architecture (the
        fastest mapping the mapper finds), `compute` divides its MACs by the tile's MAC units;
        both over `efficiency`."""
        eff = Fraction(str(pipe.efficiency))
        out = {}
        for name in st.layers:
            prob = self.row_problem(name, st.tiles if st.tiles > 1 else 1)
            if pipe.row_time == "mapped":
                cycles = Fraction(mapped_cycles(prob, slice_arch(arch, hw),
                                                pipe.row_search_evals))
            else:
                cycles = Fraction(prob.macs, hw.macs_per_tile)
            out[name] = cycles / eff
        return out

    # -- the model
    def evaluate(self, pipe: Pipeline, arch, lines: tuple[int | None, ...] = ()
                 ) -> PipelineResult:
        hw = hardware(arch, pipe)
        stages = self.check(pipe, hw, lines)
        produced = {st.layers[-1]: st for st in stages}
        idx = {st.name: i for i, st in enumerate(pipe.stages)}
        work = {st.name: self._row_work(st) for st in stages}
        # inputs from DRAM, in network order of first use
        dram_in: list[str] = []
        for st in stages:
            for t in self._stage_inputs(st):
                if t not in produced and t not in dram_in:
                    dram_in.append(t)
        readers: dict[str, list[Stage]] = {}
        for st in stages:
            for t in self._stage_inputs(st):
                readers.setdefault(t, []).append(st)
        dram_out = [st.layers[-1] for st in stages if st.layers[-1] not in readers]
        # weights and memory per tile / group
        group_w: dict[int, int] = {}
        tile_w: dict[str, int] = {}
        stage_w: dict[str, int] = {}
        for st in stages:
            w = sum(self.weight_bytes(n) for n in st.layers)
            stage_w[st.name] = w
            tile_w[st.name] = w if st.tiles == 1 or st.weights == "broadcast" \
                else _ceil(w, st.tiles)
            group_w[st.group] = group_w.get(st.group, 0) + w
        fifos: list[Fifo] = []
        for st in stages:
            for t in self._stage_inputs(st):
                depth = self.in_depth(st, t)
                need = self._window_rows(st, t)
                if depth < need:
                    i = idx[st.name]
                    raise SpecError(f"the FIFO of '{t}' into stage "
                                    f"{st.name} holds {depth} row(s); one output row reads "
                                    f"{need}", key_path=f"schedule.stages[{i}].in_depth.{t}",
                                    found=depth, expected=f"at least {need}",
                                    **_line(lines, i))
                src = produced[t].name if t in produced else "DRAM"
                fifos.append(Fifo(t, src, st.name, hw.tile_level, st.name, depth,
                                  self.row_bytes(t)))
            out_row = self.row_bytes(st.layers[-1]) // st.tiles
            dst = ",".join(s.name for s in readers.get(st.layers[-1], ())) or "DRAM"
            fifos.append(Fifo(st.layers[-1], st.name, dst, hw.tile_level, st.name,
                              st.out_depth, out_row))
        for sg in pipe.staging:
            src = produced[sg.tensor].name if sg.tensor in produced else "DRAM"
            fifos.append(Fifo(sg.tensor, src, sg.consumer, hw.group_level,
                              f"group {sg.group}", sg.depth, self.row_bytes(sg.tensor)))
        group_bytes = dict(group_w)
        for sg in pipe.staging:
            group_bytes[sg.group] = group_bytes.get(sg.group, 0) + sg.depth * \
                self.row_bytes(sg.tensor)
        fifo_of = {st.name: sum(f.bytes for f in fifos if f.where == st.name) for st in stages}
        for st in stages:
            ws = tile_w[st.name] + fifo_of[st.name] + pipe.stack_bytes
            if ws > hw.tile_bytes:
                i = idx[st.name]
                parts = (f"weights {tile_w[st.name]:,} + FIFOs {fifo_of[st.name]:,}"
                         + (f" + stack {pipe.stack_bytes:,}" if pipe.stack_bytes else ""))
                tiles = f" (tile {', '.join(st.place)})" if st.place else ""
                raise SpecError(
                    f"stage {st.name} ({' '.join(st.layers)}) needs {ws:,} bytes in each "
                    f"tile's {hw.tile_level}{tiles} ({parts}), which holds "
                    f"{hw.tile_bytes:,} bytes", key_path=f"schedule.stages[{i}]",
                    found=f"{ws:,} bytes", expected=f"at most {hw.tile_bytes:,} bytes",
                    hint="use more tiles (split: K), shallower FIFOs, or smaller rows",
                    **_line(lines, i))
        for g, b in sorted(group_bytes.items()):
            if b > hw.group_bytes:
                raise SpecError(
                    f"group {g} needs {b:,} bytes in its {hw.group_level} (weights "
                    f"{group_w.get(g, 0):,} + staging FIFOs {b - group_w.get(g, 0):,}), which "
                    f"holds {hw.group_bytes:,} bytes", key_path="schedule.staging",
                    found=f"{b:,} bytes", expected=f"at most {hw.group_bytes:,} bytes")
        # timing
        dma = hw.dma_bytes_per_cycle
        ready = {st.name: (_ceil(group_w[st.group], dma) + _ceil(tile_w[st.name], dma))
                 for st in stages}
        svc = {}
        for st in stages:
            full = self.layer_row_cycles(pipe, hw, arch, st)
            svc[st.name] = [math.ceil(sum((full[n] * f for n, f in parts), Fraction(0)))
                            for _w, parts, _i in work[st.name]]
        with_w = _timeline(self, pipe, dma, stages, produced, dram_in, dram_out, work, svc,
                           ready if pipe.weight_load else None)
        without = with_w if not pipe.weight_load else _timeline(
            self, pipe, dma, stages, produced, dram_in, dram_out, work, svc, None)
        start, finish, total = with_w
        results = []
        for st in stages:
            rows = svc[st.name]
            results.append(StageResult(
                st, tuple(rows), sum(rows), sum(w for w, _p, _i in work[st.name]), stage_w[st.name],
                tile_w[st.name], fifo_of[st.name],
                tile_w[st.name] + fifo_of[st.name] + pipe.stack_bytes,
                ready[st.name] if pipe.weight_load else 0, start[st.name][0],
                finish[st.name][-1]))
        slow = max(results, key=lambda s: (s.busy_cycles, -idx[s.stage.name]))
        interval = max(max(s.row_cycles) for s in results)
        weights = sum(stage_w.values())
        reads = sum(self.row_bytes(t) * self.fused.rows(t) for t in dram_in)
        writes = sum(self.row_bytes(t) * self.fused.rows(t) for t in dram_out)
        stagewise = weights + sum(
            self.row_bytes(t) * self.fused.rows(t)
            for st in stages for t in [*self._stage_inputs(st), st.layers[-1]])
        return PipelineResult(
            hw, tuple(results), tuple(fifos), group_bytes, group_w, total, without[2],
            max(ready.values()) if pipe.weight_load else 0, interval, slow.busy_cycles,
            slow.stage.name, slow.first_start, total - slow.last_finish,
            sum(s.macs for s in results), reads + weights, writes, weights, stagewise,
            tuple(dram_in), tuple(dram_out))


def _line(lines: tuple[int | None, ...], i: int) -> dict:
    return {"line": lines[i]} if i < len(lines) and lines[i] else {}


def _timeline(model: PipelineModel, pipe: Pipeline, dma: float, stages: list[Stage],
              produced: dict, dram_in: list[str], dram_out: list[str], work: dict, svc: dict,
              ready: dict | None) -> tuple[dict, dict, int]:
    """Start and finish cycle of every row of every stage and DMA stream, and the end.

    A node is a stage, `in:T` (DRAM -> chip stream of T) or `out:T` (chip -> DRAM). Row r of a
    node starts at the latest of: its previous row's finish, the finish of the input rows it
    needs, its weights (when loading), and with back-pressure the release of the row `capacity`
    rows earlier by every reader of its output (capacity = the output FIFO, the staging FIFO
    and the reader's input FIFO on that path; a row is released when the last output row that
    reads it finishes)."""
    nodes: dict[str, dict] = {}
    for t in dram_in:
        rows = model.fused.rows(t)
        nodes[f"in:{t}"] = {"out": t, "rows": rows, "deps": [{} for _ in range(rows)],
                            "svc": None, "ready": 0, "out_depth": 0}
    for st in stages:
        deps = []
        for _w, _p, inputs in work[st.name]:
            d = {}
            for t, rows in inputs.items():
                src = produced[t].name if t in produced else f"in:{t}"
                if rows:
                    d[src] = max(rows)
            deps.append(d)
        nodes[st.name] = {"out": st.layers[-1], "rows": len(deps), "deps": deps,
                          "svc": svc[st.name], "ready": ready[st.name] if ready else 0,
                          "out_depth": st.out_depth, "stage": st}
    for t in dram_out:
        src = produced[t].name
        rows = model.fused.rows(t)
        nodes[f"out:{t}"] = {"out": None, "rows": rows,
                             "deps": [{src: r} for r in range(rows)], "svc": None,
                             "ready": 0, "out_depth": 0}
    for t in dram_in:
        nodes[f"in:{t}"]["svc"] = [_ceil(model.row_bytes(t), dma)] * nodes[f"in:{t}"]["rows"]
    for t in dram_out:
        nodes[f"out:{t}"]["svc"] = [_ceil(model.row_bytes(t), dma)] * \
            nodes[f"out:{t}"]["rows"]
    # release: reader node, row x of tensor t is free once the reader's last row needing it ends
    last_use: dict[tuple[str, str], dict[int, int]] = {}
    for name, n in nodes.items():
        if name.startswith("out:"):
            t = name[4:]
            last_use[(t, name)] = {r: r for r in range(n["rows"])}
            continue
        if name.startswith("in:"):
            continue
        st = n["stage"]
        for r, (_w, _p, inputs) in enumerate(work[st.name]):
            for t, rows in inputs.items():
                lu = last_use.setdefault((t, name), {})
                for x in rows:
                    lu[x] = r
    capacity: dict[tuple[str, str], int] = {}
    for (t, reader), _lu in last_use.items():
        src = produced[t].name if t in produced else f"in:{t}"
        cap = nodes[src]["out_depth"]  # the DRAM write DMA drains the producer's FIFO
        if not reader.startswith("out:"):
            st = nodes[reader]["stage"]
            cap += model.in_depth(st, t)
            cap += sum(sg.depth for sg in pipe.staging
                       if sg.tensor == t and sg.consumer == reader)
        capacity[(t, reader)] = cap
    start = {name: [None] * n["rows"] for name, n in nodes.items()}
    finish = {name: [None] * n["rows"] for name, n in nodes.items()}
    pending = [(name, 0) for name in nodes]
    progress = True
    while pending and progress:
        progress = False
        still = []
        for name, r in pending:
            n = nodes[name]
            if r >= n["rows"]:
                continue
            t0 = n["ready"] if r == 0 else finish[name][r - 1]
            ok = True
            for src, x in n["deps"][r].items():
                f = finish[src][x]
                if f is None:
                    ok = False
                    break
                t0 = max(t0, f)
            if ok and pipe.backpressure and n["out"] is not None:
                for (t, reader), cap in capacity.items():
                    if t != n["out"] or r < cap:
                        continue
                    lu = last_use[(t, reader)]
                    user = lu.get(r - cap)
                    if user is None:
                        continue
                    f = finish[reader][user]
                    if f is None:
                        ok = False
                        break
                    t0 = max(t0, f)
            if not ok:
                still.append((name, r))
                continue
            start[name][r] = t0
            finish[name][r] = t0 + n["svc"][r]
            progress = True
            still.append((name, r + 1))
        pending = [p for p in still if p[1] < nodes[p[0]]["rows"]]
    if pending:
        stuck = sorted({name for name, _ in pending})
        raise SpecError(f"the pipeline deadlocks: stages {', '.join(stuck)} wait for "
                        f"each other's FIFO slots", key_path="schedule.stages",
                        hint="deepen the FIFOs between them (in_depth, out_depth, staging)")
    end = max(f[-1] for name, f in finish.items() if name.startswith("out:")) \
        if dram_out else max(f[-1] for f in finish.values())
    return start, finish, end



def slice_arch(arch, hw: Hardware):
    """One tile of `arch`: the DRAM level (no bandwidth limit: a stage's operands arrive
    through its FIFOs, timed by the recurrence), the tile level with one instance, the levels
    below it and the tile's compute units."""
    from dataclasses import replace

    tile_i = next(i for i, lv in enumerate(arch.levels) if lv.name == hw.tile_level)
    tile = arch.levels[tile_i]
    dram = replace(dram_level(arch), read_bandwidth=None, write_bandwidth=None,
                   shared_bandwidth=None)

    def one(lv):
        return replace(lv, instances=max(1, lv.instances // tile.instances),
                       mesh_x=max(1, lv.mesh_x // tile.mesh_x),
                       mesh_y=max(1, lv.mesh_y // tile.mesh_y))

    levels = (dram, *[one(lv) for lv in arch.levels[tile_i:]])
    return replace(arch, name=f"{arch.name}.{hw.tile_level}", levels=levels,
                   compute=one(arch.compute))


_MAPPED: dict[tuple, int] = {}


def mapped_cycles(problem, arch, evals: int) -> int:
    """Cycles of the fastest mapping the mapper finds for `problem` on `arch` (seed 0;
    memoized in the process: the same row problem on the same slice is searched once)."""
    from dse.mapper.constraints import Constraints
    from dse.mapper.search import SearchConfig, Searcher
    from dse.model import evaluate

    key = (repr(problem), repr(arch), evals)
    if key not in _MAPPED:
        searcher = Searcher(problem, arch, Constraints({}),
                            SearchConfig(objective="delay", max_evals=evals, seed=0))
        result = searcher.run()
        if result.best is None:
            raise SpecError(f"no mapping of one row of {problem.name} fits one tile of "
                            f"{arch.name}", hint="use `row_time: compute`, or split the "
                                                 "stage over more tiles")
        _MAPPED[key] = evaluate(problem, arch, searcher.mapping_of(result.best)).cycles
    return _MAPPED[key]
