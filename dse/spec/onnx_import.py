"""ONNX model -> network YAML (needs the optional extra `onnx`, see `dse.install_hint`).

Shapes come from ONNX shape inference. Handled ops: Conv, Gemm, MatMul, Add/Sum, MaxPool,
AveragePool, GlobalAveragePool/GlobalMaxPool, BatchNormalization (folded into the conv or fc
before it when that layer feeds only it), Concat, Reshape/Flatten/Squeeze/Unsqueeze/Transpose
(pass-through) and the element-wise activations Relu/Clip/LeakyRelu plus Identity/Dropout,
which are fused into their producer. Constant sub-graphs (Shape, Gather on shapes...) are
folded away. Any other op becomes a pass-through node and is listed in the report.

Sparsity: each conv/fc/matmul layer whose weights are an initializer gets its measured weight
density (nonzeros / elements) as `densities: {Weights: d}` when d < 1; activation densities
come from a per-layer table the user provides (`read_activation_densities`, docs/sparse.md).
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dse import install_hint
from dse.errors import SpecError, did_you_mean, short_repr
from dse.spec.network import dump_network, load_network_text
from dse.workload.network import Network

FUSED = {"Relu", "Clip", "LeakyRelu", "Identity", "Dropout"}
RESHAPES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"}
POOLS = {"MaxPool": "maxpool", "AveragePool": "avgpool", "GlobalAveragePool": "avgpool",
         "GlobalMaxPool": "maxpool"}



def conv_groups_and_outputs(entry: dict, c: int, k: int, groups: int, p: int, q: int,
                            n: int = 1, *, bias: bool) -> None:
    """Finish an imported conv layer entry: groups (depthwise when groups == channels), output
    size, batch, bias, no folded batch norm."""
    if groups != 1 and groups == c:
        entry["type"] = "depthwise"
        if k == c:
            del entry["K"]
    elif groups != 1:
        entry["groups"] = groups
    entry["P"] = p
    if q != p:
        entry["Q"] = q
    if n != 1:
        entry["N"] = n
    entry["bias"] = bias
    entry["bn"] = False

@dataclass
class ImportReport:
    """What the importer did besides making layers."""

    unsupported: dict[str, list[str]] = field(default_factory=dict)  # op -> node names
    weight_densities: dict[str, float] = field(default_factory=dict)  # layer -> measured d < 1
    fused: dict[str, int] = field(default_factory=dict)  # op -> count
    excluded: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = []
        if self.unsupported:
            lines.append("unsupported ops (imported as pass-through layers):")
            for op, names in sorted(self.unsupported.items()):
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                lines.append(f"  {op} x{len(names)}: {shown}")
        else:
            lines.append("unsupported ops: none")
        if self.fused:
            lines.append("fused into their producer: " + ", ".join(
                f"{op} x{n}" for op, n in sorted(self.fused.items())))
        if self.excluded:
            lines.append(f"excluded {len(self.excluded)} nodes: " + ", ".join(self.excluded[:8])
                         + (", ..." if len(self.excluded) > 8 else ""))
        if self.weight_densities:
            low = min(self.weight_densities.items(), key=lambda kv: kv[1])
            lines.append(f"measured weight densities below 1 in {len(self.weight_densities)} "
                         f"layers (lowest {low[1]:.4g} in {low[0]}); the others are dense")
        else:
            lines.append("measured weight densities: every layer dense")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise SpecError("importing ONNX models needs the `onnx` package",
                        hint="install the extra: " + install_hint("onnx")) from None
    return onnx


def _text(value: Any) -> str:
    """A protobuf string field as text (an invalid UTF-8 name comes back as bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _check_names(graph: Any, path: str | None) -> None:
    """Every node, tensor and op name must be UTF-8 text; say which node if one is not."""
    for i, node in enumerate(graph.node):
        fields = [("name", node.name), ("op_type", node.op_type)]
        fields += [("input", t) for t in node.input] + [("output", t) for t in node.output]
        for what, value in fields:
            if not isinstance(value, str):
                raise SpecError(f"the node's {what} is not UTF-8 text", file=path,
                                key_path=f"graph.node[{i}] ({_text(node.op_type)})",
                                found=value)
    for group in (graph.input, graph.output, graph.initializer, graph.value_info):
        for item in group:
            if not isinstance(item.name, str):
                raise SpecError("a graph tensor name is not UTF-8 text", file=path,
                                key_path="graph", found=item.name)


def _clean(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.\-/]+", "_", name).strip("_/")
    s = s.lstrip("/").replace("/", ".")
    return s or "node"


def _label(node: Any, index: int) -> str:
    """A readable layer name: '/layer1/layer1.0/conv1/Conv' -> 'layer1.0.conv1'."""
    parts = [p for p in (node.name or "").strip("/").split("/") if p]
    if len(parts) > 1 and re.fullmatch(re.escape(node.op_type) + r"(_\d+)?", parts[-1]):
        parts = parts[:-1]
    out = ""
    for p in parts:
        out = p if (not out or p.startswith(out + ".")) else f"{out}.{p}"
    return out or f"{node.op_type.lower()}_{index}"


def _chw(dims: list[int]) -> tuple[int, int, int, int]:
    """(N, C, H, W) of an ONNX tensor shape (NCHW; lower ranks pad H and W with 1)."""
    d = [x if x > 0 else 1 for x in dims]
    if len(d) == 0:
        return 1, 1, 1, 1
    if len(d) == 1:
        return 1, d[0], 1, 1
    if len(d) == 2:
        return d[0], d[1], 1, 1
    if len(d) == 3:
        return d[0], d[1], d[2], 1
    return d[0], d[1], d[2], math.prod(d[3:])


class _Importer:
    def __init__(self, model: Any, exclude: tuple[str, ...], report: ImportReport,
                 path: str | None = None) -> None:
        import onnx

        self.path = path
        _check_names(model.graph, path)
        self.onnx = onnx
        self.graph = model.graph
        self.report = report
        self.exclude = exclude
        self.const: set[str] = {t.name for t in self.graph.initializer}
        self.init_shape = {t.name: list(t.dims) for t in self.graph.initializer}
        self.init_tensor = {t.name: t for t in self.graph.initializer}
        self.shapes: dict[str, list[int]] = {}
        self.symbolic: set[str] = set()
        for vi in list(self.graph.input) + list(self.graph.value_info) + list(self.graph.output):
            tt = vi.type.tensor_type
            if not tt.HasField("shape"):
                continue
            dims = []
            for d in tt.shape.dim:
                if d.HasField("dim_value"):
                    dims.append(int(d.dim_value))
                else:
                    dims.append(1)
                    self.symbolic.add(vi.name)
            self.shapes[vi.name] = dims
        self.shapes.update(self.init_shape)
        self.src: dict[str, str] = {}  # tensor -> layer (or network input) that holds it
        self.layers: list[dict] = []
        self.by_name: dict[str, dict] = {}
        self.used: set[str] = set()
        self.consumers: dict[str, int] = {}
        for node in self.graph.node:
            for t in node.input:
                self.consumers[t] = self.consumers.get(t, 0) + 1
        self.batch = 1
        self.inputs_spec: list[dict] = []

    # -- helpers
    def shape(self, tensor: str) -> list[int]:
        if tensor not in self.shapes:
            raise SpecError(f"ONNX shape inference gave no shape for tensor '{tensor}'",
                            hint="export the model with static input shapes")
        return self.shapes[tensor]

    def attr(self, node: Any, name: str, default: Any = None) -> Any:
        for a in node.attribute:
            if a.name == name:
                return self.onnx.helper.get_attribute_value(a)
        return default

    def int_attr(self, node: Any, name: str, default: int, *, minimum: int | None = None) -> int:
        """An INT attribute, checked: a string or float where ONNX wants an int is an error."""
        return self.ints_attr(node, name, [default], minimum=minimum, scalar=True)[0]

    def ints_attr(self, node: Any, name: str, default: list[int] | None, *,
                  minimum: int | None = None, scalar: bool = False) -> list[int]:
        """An INTS (or INT when `scalar`) attribute as a list, each value checked."""
        want = self.onnx.AttributeProto.INT if scalar else self.onnx.AttributeProto.INTS
        for a in node.attribute:
            if a.name != name:
                continue
            if a.type != want:
                found = self.onnx.AttributeProto.AttributeType.Name(a.type)
                raise self._node_error(
                    node, f"attribute '{name}' must be {'an INT' if scalar else 'INTS'}, not "
                          f"{found}", found=self.onnx.helper.get_attribute_value(a))
            values = [int(a.i)] if scalar else [int(v) for v in a.ints]
            break
        else:
            if default is None:
                raise self._node_error(node, f"attribute '{name}' is required")
            values = list(default)
        if minimum is not None and any(v < minimum for v in values):
            raise self._node_error(node, f"attribute '{name}' must be >= {minimum}",
                                   found=values if not scalar else values[0])
        return values

    def _node_error(self, node: Any, message: str, found: Any = None) -> SpecError:
        return SpecError(message, file=self.path,
                         key_path=f"node {_text(node.name) or '?'} ({_text(node.op_type)})",
                         found=found)

    def source_of(self, node: Any, tensor: str) -> str:
        """The layer (or network input) that produces `tensor`, or an error naming the node."""
        if tensor not in self.src:
            raise self._node_error(
                node, f"reads tensor '{short_repr(tensor)[1:-1]}', which no graph input or "
                      "earlier node produces", found=None)
        return self.src[tensor]

    def unique(self, base: str) -> str:
        name, k = _clean(base), 2
        stem = name
        while name in self.used:
            name, k = f"{stem}_{k}", k + 1
        self.used.add(name)
        return name

    def add_layer(self, node: Any, entry: dict, inputs: list[str]) -> dict:
        entry["inputs"] = [self.source_of(node, t) for t in inputs]
        self.layers.append(entry)
        self.by_name[entry["name"]] = entry
        for out in node.output:
            self.src[out] = entry["name"]
        return entry

    def alias(self, node: Any, tensor: str) -> None:
        held = self.source_of(node, tensor)
        for out in node.output:
            self.src[out] = held

    def data_inputs(self, node: Any) -> list[str]:
        return [t for t in node.input if t and t not in self.const]

    def measure_weights(self, entry: dict, tensor: str, role: str = "Weights") -> None:
        """Write the measured density of the weight initializer `tensor` into the layer entry
        under `role` (the layer's weight tensor: Weights for conv/fc, B for matmul)
        (only when some weights are zero); weights that are not an initializer, or are all
        zero (a model exported without trained values), stay dense with a note."""
        init = self.init_tensor.get(tensor)
        if init is None:
            self.report.notes.append(f"weights of {entry['name']} are computed, not stored: "
                                     "density not measured (dense)")
            return
        try:
            from onnx import numpy_helper

            values = numpy_helper.to_array(init)
        except Exception as exc:  # noqa: BLE001 - external data missing, odd dtypes
            self.report.notes.append(f"weights of {entry['name']} could not be read ({exc}): "
                                     "density not measured (dense)")
            return
        import numpy as np

        size = int(values.size)
        nnz = int(np.count_nonzero(values))
        if size == 0 or nnz == 0:
            self.report.notes.append(f"weights of {entry['name']} are all zero (no trained "
                                     "values?): density not measured (dense)")
            return
        if nnz < size:
            density = nnz / size
            entry["densities"] = {role: density}
            self.report.weight_densities[entry["name"]] = density

    # -- the walk
    def run(self) -> None:
        g = self.graph
        for vi in g.input:
            if vi.name in self.const:
                continue
            n, c, h, w = _chw(self.shape(vi.name))
            self.batch = n
            name = self.unique(vi.name)
            self.src[vi.name] = name
            self.inputs_spec.append({"name": name, "C": c, "H": h, "W": w})
            if vi.name in self.symbolic:
                self.report.notes.append(f"input '{vi.name}' has symbolic dimensions; taken as 1")
        dropped: set[str] = set()
        for i, node in enumerate(g.node):
            label = _label(node, i)
            try:
                self.visit(node, label, dropped)
            except SpecError:
                raise
            except (IndexError, KeyError, ValueError, TypeError, ZeroDivisionError) as exc:
                raise self._node_error(
                    node, f"cannot import this node ({type(exc).__name__}: "
                          f"{short_repr(str(exc))[1:-1]}); the graph is malformed") from None

    def visit(self, node: Any, label: str, dropped: set[str]) -> None:
        excluded = any(fnmatch.fnmatchcase(label, p) or
                       any(fnmatch.fnmatchcase(o, p) for o in node.output)
                       for p in self.exclude)
        if excluded or any(t in dropped for t in node.input if t):
            dropped.update(node.output)
            self.report.excluded.append(label)
            return
        if node.op_type == "Constant" or (node.op_type == "Shape") or (
                node.input and all((not t) or t in self.const for t in node.input)):
            self.const.update(node.output)
            return
        self.convert(node, label)

    def convert(self, node: Any, label: str) -> None:
        op = node.op_type
        data = self.data_inputs(node)
        if op == "Conv":
            self.conv(node, label, data)
        elif op in ("Gemm", "MatMul"):
            self.gemm(node, label, data)
        elif op in ("Add", "Sum"):
            self.add(node, label, data)
        elif op in POOLS:
            self.pool(node, label, data)
        elif op == "BatchNormalization":
            self.batchnorm(node, label, data)
        elif op == "Concat":
            self.concat(node, label, data)
        elif op in FUSED and data:
            self.report.fused[op] = self.report.fused.get(op, 0) + 1
            self.alias(node, data[0])
        elif op in RESHAPES:
            self.passthrough(node, label, data, op)
        else:
            self.report.unsupported.setdefault(op, []).append(label)
            self.passthrough(node, label, data, op)

    def conv(self, node: Any, label: str, data: list[str]) -> None:
        x, wname = node.input[0], node.input[1]
        n, c, h, w = _chw(self.shape(x))
        wshape = self.shape(wname)
        groups = self.int_attr(node, "group", 1, minimum=1)
        kernel = self.ints_attr(node, "kernel_shape", wshape[2:], minimum=1)
        if not kernel:
            raise self._node_error(node, "the kernel has no spatial dimensions")
        if len(kernel) == 1:
            kernel = kernel + [1]
        strides = self.ints_attr(node, "strides", [1] * len(kernel), minimum=1) + [1]
        dil = self.ints_attr(node, "dilations", [1] * len(kernel), minimum=1) + [1]
        _, k, p, q = _chw(self.shape(node.output[0]))
        entry: dict = {"name": self.unique(label), "type": "conv2d", "C": c, "K": k, "H": h}
        if w != h:
            entry["W"] = w
        entry["R"] = kernel[0]
        if kernel[1] != kernel[0]:
            entry["S"] = kernel[1]
        if strides[:2] != [1, 1]:
            entry["stride"] = strides[0] if strides[0] == strides[1] else strides[:2]
        if dil[:2] != [1, 1]:
            entry["dilation"] = dil[0] if dil[0] == dil[1] else dil[:2]
        pads = self.ints_attr(node, "pads", [], minimum=0)
        if pads and self.attr(node, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"):
            if len(pads) == 2:  # 1-D conv
                pads = [pads[0], 0, pads[1], 0]
            if any(pads):
                entry["pad"] = (pads[0] if len(set(pads)) == 1 else
                                [pads[0], pads[1]] if pads[:2] == pads[2:] else pads)
        conv_groups_and_outputs(entry, c, k, groups, p, q, n,
                                bias=len(node.input) > 2 and bool(node.input[2]))
        self.measure_weights(entry, wname)
        self.add_layer(node, entry, [x])

    def gemm(self, node: Any, label: str, data: list[str]) -> None:
        a, b = node.input[0], node.input[1]
        ashape, bshape = self.shape(a), self.shape(b)
        out = self.shape(node.output[0])
        if node.op_type == "Gemm":
            if self.int_attr(node, "transA", 0):
                ashape = ashape[::-1]
            if self.int_attr(node, "transB", 0):
                bshape = bshape[::-1]
        b_const = b in self.const
        bias = node.op_type == "Gemm" and len(node.input) > 2 and bool(node.input[2])
        if b_const and len(bshape) == 2 and len(ashape) == 2:
            entry: dict = {"name": self.unique(label), "type": "fc", "C": bshape[0],
                           "K": bshape[1]}
            if ashape[0] != 1:
                entry["N"] = ashape[0]
            entry["bias"] = bias
            self.measure_weights(entry, b)
            self.add_layer(node, entry, [a])
            return
        if b_const and len(bshape) == 2:  # shared weights: every leading dim is a row
            M, G = math.prod(ashape[:-1]), 1
        else:
            M, G = (ashape[-2] if len(ashape) > 1 else 1), math.prod(out[:-2])
        entry = {"name": self.unique(label), "type": "matmul", "M": M, "K": ashape[-1],
                 "N": bshape[-1]}
        if G != 1:
            entry["G"] = G
        entry["weights"] = b_const
        entry["bias"] = bias
        if self.batch != 1:
            entry["allow_mismatch"] = "matmul rows include the batch"
        if b_const:
            self.measure_weights(entry, b, "B")
        self.add_layer(node, entry, [a] if b_const or len(data) < 2 else [a, b])

    def add(self, node: Any, label: str, data: list[str]) -> None:
        if len(data) == 1:
            prod = self.by_name.get(self.source_of(node, data[0]))
            if prod is not None and prod["type"] in ("conv2d", "fc", "matmul") and \
                    not prod.get("bias") and self.consumers.get(data[0], 0) == 1:
                prod["bias"] = True
                self.report.fused["Add (bias)"] = self.report.fused.get("Add (bias)", 0) + 1
            else:
                self.report.fused["Add (constant)"] = (
                    self.report.fused.get("Add (constant)", 0) + 1)
            self.alias(node, data[0])
            return
        n, c, h, w = _chw(self.shape(node.output[0]))
        entry: dict = {"name": self.unique(label), "type": "add", "C": c, "H": h}
        if w != h:
            entry["W"] = w
        if n != 1:
            entry["N"] = n
        if any(self.shape(t) != self.shape(node.output[0]) for t in data):
            entry["allow_mismatch"] = "broadcasting add in the ONNX graph"
        self.add_layer(node, entry, data)

    def pool(self, node: Any, label: str, data: list[str]) -> None:
        x = data[0]
        n, c, h, w = _chw(self.shape(x))
        _, _, p, q = _chw(self.shape(node.output[0]))
        entry: dict = {"name": self.unique(label), "type": POOLS[node.op_type], "C": c, "H": h}
        if w != h:
            entry["W"] = w
        if node.op_type.startswith("Global"):
            entry["global"] = True
        else:
            kernel = self.ints_attr(node, "kernel_shape", None, minimum=1) + [1]
            strides = self.ints_attr(node, "strides", [1, 1], minimum=1) + [1]
            entry["R"] = kernel[0]
            if kernel[1] != kernel[0]:
                entry["S"] = kernel[1]
            entry["stride"] = strides[0] if strides[0] == strides[1] else strides[:2]
            pads = self.ints_attr(node, "pads", [], minimum=0)
            if any(pads) and self.attr(node, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"):
                if len(pads) == 2:
                    pads = [pads[0], 0, pads[1], 0]
                entry["pad"] = (pads[0] if len(set(pads)) == 1 else
                                [pads[0], pads[1]] if pads[:2] == pads[2:] else pads)
            if self.int_attr(node, "ceil_mode", 0):
                entry["ceil"] = True
            entry["P"] = p
            if q != p:
                entry["Q"] = q
        if n != 1:
            entry["N"] = n
        self.add_layer(node, entry, [x])

    def batchnorm(self, node: Any, label: str, data: list[str]) -> None:
        x = data[0]
        prod = self.by_name.get(self.src.get(x, ""))
        if prod is not None and prod["type"] in ("conv2d", "fc") and not prod.get("bn") and \
                self.consumers.get(x, 0) == 1:
            prod["bn"] = True
            self.report.fused["BatchNormalization"] = (
                self.report.fused.get("BatchNormalization", 0) + 1)
            self.alias(node, x)
            return
        n, c, h, w = _chw(self.shape(x))
        entry: dict = {"name": self.unique(label), "type": "batchnorm", "C": c, "H": h}
        if w != h:
            entry["W"] = w
        if n != 1:
            entry["N"] = n
        self.add_layer(node, entry, [x])

    def concat(self, node: Any, label: str, data: list[str]) -> None:
        axis = self.int_attr(node, "axis", 1)
        rank = len(self.shape(node.output[0]))
        if axis % max(rank, 1) != 1:
            self.passthrough(node, label, data, "Concat")
            return
        n, c, h, w = _chw(self.shape(node.output[0]))
        entry: dict = {"name": self.unique(label), "type": "concat", "C": c, "H": h}
        if w != h:
            entry["W"] = w
        self.add_layer(node, entry, data)

    def passthrough(self, node: Any, label: str, data: list[str], op: str) -> None:
        if not data:
            self.const.update(node.output)
            return
        out = node.output[0]
        if out not in self.shapes:
            self.shapes[out] = self.shape(data[0])
            self.report.notes.append(f"no inferred shape for the output of {op} '{label}'; "
                                     "assumed equal to its input's")
        _, c, h, w = _chw(self.shapes[out])
        entry: dict = {"name": self.unique(label), "type": "passthrough", "op": op, "C": c,
                       "H": h}
        if w != h:
            entry["W"] = w
        self.add_layer(node, entry, data)


# activation tensors a per-layer table may give, by layer type (weights are measured)
ACTIVATION_TENSORS = {"conv2d": ("Inputs", "Outputs"), "depthwise": ("Inputs", "Outputs"),
                      "fc": ("Inputs", "Outputs"), "matmul": ("A", "Z")}


@dataclass(frozen=True)
class DensityRow:
    layer: str
    densities: dict[str, float]
    line: int


def read_activation_densities(path: str) -> list[DensityRow]:
    """A CSV table `layer,Inputs,Outputs` (matmul layers: `A`, `Z`; an empty cell = not
    given) -> rows, each density checked to be a number in (0, 1]."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # spreadsheets write a BOM
            lines = list(csv.reader(f))
    except FileNotFoundError:
        raise SpecError("file not found", file=path) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SpecError(f"cannot read this table: {exc}", file=path) from None
    if not lines or not lines[0]:
        raise SpecError("the activation-density table is empty", file=path, line=1,
                        expected="a header line: layer,Inputs,Outputs")
    header = [h.strip() for h in lines[0]]
    allowed = sorted({t for ts in ACTIVATION_TENSORS.values() for t in ts})
    if header[0] != "layer":
        raise SpecError("the first column must be `layer`", file=path, line=1,
                        found=header[0], expected="layer,Inputs,Outputs")
    for h in header[1:]:
        if h not in allowed:
            raise SpecError(f"unknown column '{h}'", file=path, line=1,
                            expected="activation tensors: " + ", ".join(allowed),
                            hint=did_you_mean(h, allowed) or "weight densities are measured "
                            "from the model's initializers, not read from the table")
    if len(set(header)) != len(header):
        raise SpecError("a column appears twice", file=path, line=1, found=header)
    rows: list[DensityRow] = []
    seen: dict[str, int] = {}
    for n, cells in enumerate(lines[1:], start=2):
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise SpecError(f"{len(cells)} cells but {len(header)} columns", file=path,
                            line=n, found=cells)
        layer = cells[0].strip()
        if layer in seen:
            raise SpecError(f"layer '{layer}' is listed twice (first on line {seen[layer]})",
                            file=path, line=n)
        seen[layer] = n
        dens: dict[str, float] = {}
        for col, cell in zip(header[1:], cells[1:], strict=False):
            if not cell.strip():
                continue
            try:
                d = float(cell)
            except ValueError:
                d = -1.0
            if not 0.0 < d <= 1.0:
                raise SpecError(f"density of {col} for layer '{layer}' must be a number in "
                                "(0, 1]", file=path, line=n, found=cell.strip())
            dens[col] = d
        rows.append(DensityRow(layer, dens, n))
    return rows


def apply_activation_densities(layers: list[dict], rows: list[DensityRow], path: str) -> None:
    """Merge the table's densities into the imported layer entries (checked: the layer exists,
    has a problem, and the tensor is one of its activations)."""
    by_name = {e["name"]: e for e in layers}
    for row in rows:
        entry = by_name.get(row.layer)
        if entry is None or entry["type"] not in ACTIVATION_TENSORS:
            mac = [e["name"] for e in layers if e["type"] in ACTIVATION_TENSORS]
            what = "no such layer" if entry is None else f"a {entry['type']} layer has no MACs"
            raise SpecError(f"layer '{row.layer}': {what} in the imported network", file=path,
                            line=row.line, expected="a conv, fc or matmul layer name",
                            hint=did_you_mean(row.layer, mac))
        ok = ACTIVATION_TENSORS[entry["type"]]
        for tensor, d in row.densities.items():
            if tensor not in ok:
                raise SpecError(f"layer '{row.layer}' ({entry['type']}) has no activation "
                                f"tensor {tensor}", file=path, line=row.line,
                                expected=" or ".join(ok))
            entry.setdefault("densities", {})[tensor] = d


def import_onnx(model: Any, *, name: str | None = None, exclude: tuple[str, ...] = (),
                source: str | None = None, activation_densities: str | None = None
                ) -> tuple[str, Network, ImportReport]:
    """ONNX model (path or ModelProto) -> (network YAML text, Network, report).
    `activation_densities`: a CSV table of per-layer activation densities to merge in."""
    onnx = require_onnx()
    path = None
    if isinstance(model, (str, Path)):
        path = str(model)
        try:
            model = onnx.load(path)
        except FileNotFoundError:
            raise SpecError("file not found", file=path) from None
        except Exception as exc:  # noqa: BLE001 - protobuf raises many kinds
            raise SpecError(f"cannot read this ONNX model: {exc}", file=path) from None
    report = ImportReport()
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # noqa: BLE001
        report.notes.append(f"shape inference failed ({exc}); using the shapes in the file")
    imp = _Importer(model, tuple(exclude), report, path)
    imp.run()
    if not imp.layers:
        raise SpecError("the ONNX graph has no layers to import", file=path)
    net_name = name or (Path(path).stem if path else (model.graph.name or "imported"))
    spec: dict = {"name": _clean(net_name),
                  "source": source or (f"ONNX import of {Path(path).name}" if path
                                       else "ONNX import")}
    if imp.batch != 1:
        spec["batch"] = imp.batch
    if len(imp.inputs_spec) == 1:
        spec["input"] = imp.inputs_spec[0]
    else:
        spec["inputs"] = imp.inputs_spec
    if activation_densities:
        apply_activation_densities(imp.layers, read_activation_densities(activation_densities),
                                   activation_densities)
    spec["layers"] = imp.layers
    header = [f"Imported by `dse import` from {path or 'an in-memory ONNX model'}.",
              "Unsupported ops became pass-through layers: "
              + (", ".join(sorted(report.unsupported)) or "none") + ".",
              "Weight densities: nonzeros / elements of each layer's initializer (written when "
              "below 1)."]
    if activation_densities:
        header.append(f"Activation densities: from {activation_densities}.")
    text = dump_network(spec, header)
    net = load_network_text(text, f"<import of {path or 'ONNX model'}>")
    return text, net, report
