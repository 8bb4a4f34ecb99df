"""`torch.nn.Module` -> network YAML through `torch.fx` (Python API only; needs `torch`).

The module is traced with `torch.fx.symbolic_trace` and its tensor shapes are found by running
an example input through it (`torch.fx.passes.shape_prop.ShapeProp`). Conv2d, Linear,
BatchNorm2d (folded into the conv or linear before it), ReLU-like activations, Dropout, pools,
adaptive pools, flatten/view/reshape, `+` / torch.add, torch.cat and matmul are handled; other
modules and functions become pass-through layers listed in the report, as in the ONNX importer.
A model that symbolic tracing cannot follow (data-dependent control flow) should be exported to
ONNX and imported with `dse import`.
"""

from __future__ import annotations

import fnmatch
import math
import operator
from typing import Any

from dse.errors import SpecError
from dse.network import Network, dump_network, load_network_text
from dse.onnx_import import ImportReport, _chw, _clean, conv_groups_and_outputs

_FUSED_MODULES = ("ReLU", "ReLU6", "LeakyReLU", "Identity", "Dropout", "Dropout2d", "Hardtanh")
_RESHAPE_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "permute",
                    "transpose", "contiguous"}
_FUSED_METHODS = {"relu", "relu_", "clamp", "clamp_"}


def require_torch() -> Any:
    try:
        import torch
        import torch.fx  # noqa: F401
    except ImportError:
        raise SpecError("importing PyTorch modules needs the `torch` package",
                        hint="pip install torch") from None
    return torch


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _Tracer:
    def __init__(self, torch: Any, gm: Any, exclude: tuple[str, ...], report: ImportReport
                 ) -> None:
        self.torch = torch
        self.gm = gm
        self.exclude = exclude
        self.report = report
        self.src: dict[str, str] = {}  # fx node name -> layer or input name
        self.layers: list[dict] = []
        self.by_name: dict[str, dict] = {}
        self.used: set[str] = set()
        self.inputs: list[dict] = []
        self.batch = 1

    def shape(self, node: Any) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta") if hasattr(node, "meta") else None
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def unique(self, base: str) -> str:
        name, k = _clean(base), 2
        stem = name
        while name in self.used:
            name, k = f"{stem}_{k}", k + 1
        self.used.add(name)
        return name

    def tensor_args(self, node: Any) -> list[Any]:
        from torch.fx import Node

        out = []
        for a in list(node.args) + list(node.kwargs.values()):
            items = a if isinstance(a, (list, tuple)) else [a]
            out.extend(x for x in items if isinstance(x, Node) and x.name in self.src)
        return out

    def emit(self, node: Any, entry: dict, inputs: list[Any]) -> dict:
        entry["inputs"] = [self.src[i.name] for i in inputs]
        self.layers.append(entry)
        self.by_name[entry["name"]] = entry
        self.src[node.name] = entry["name"]
        return entry

    def alias(self, node: Any, src: Any, what: str) -> None:
        self.report.fused[what] = self.report.fused.get(what, 0) + 1
        self.src[node.name] = self.src[src.name]

    def run(self) -> None:
        dropped: set[str] = set()
        for node in self.gm.graph.nodes:
            if node.op == "output":
                continue
            label = str(node.target) if node.op == "call_module" else node.name
            if node.op == "placeholder":
                shp = self.shape(node)
                if shp is None:
                    continue
                n, c, h, w = _chw(shp)
                self.batch = n
                name = self.unique(node.name)
                self.src[node.name] = name
                self.inputs.append({"name": name, "C": c, "H": h, "W": w})
                continue
            deps = [a for a in node.all_input_nodes]
            if any(fnmatch.fnmatchcase(label, p) for p in self.exclude) or \
                    any(d.name in dropped for d in deps):
                dropped.add(node.name)
                self.report.excluded.append(label)
                continue
            if self.shape(node) is None or not self.tensor_args(node):
                continue  # sizes, constants, parameters (get_attr)
            self.convert(node, label)

    def convert(self, node: Any, label: str) -> None:
        nn = self.torch.nn
        args = self.tensor_args(node)
        out = self.shape(node)
        if node.op == "call_module":
            mod = self.gm.get_submodule(node.target)
            kind = type(mod).__name__
            if isinstance(mod, nn.Conv2d):
                self.conv(node, label, mod, args[0])
            elif isinstance(mod, nn.Linear):
                self.linear(node, label, mod.in_features, mod.out_features,
                            mod.bias is not None, args[0])
            elif isinstance(mod, nn.BatchNorm2d | nn.BatchNorm1d):
                self.batchnorm(node, label, args[0])
            elif kind in _FUSED_MODULES:
                self.alias(node, args[0], kind)
            elif isinstance(mod, nn.MaxPool2d | nn.AvgPool2d):
                self.pool(node, label, "maxpool" if isinstance(mod, nn.MaxPool2d) else "avgpool",
                          args[0], mod.kernel_size, mod.stride, mod.padding,
                          bool(mod.ceil_mode))
            elif isinstance(mod, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
                self.adaptive(node, label, "maxpool" if "Max" in kind else "avgpool", args[0])
            elif isinstance(mod, nn.Flatten):
                self.passthrough(node, label, args, "Flatten", out)
            else:
                self.unsupported(node, label, args, kind, out)
            return
        fn = node.target
        name = getattr(fn, "__name__", str(fn))
        if node.op == "call_method":
            if fn in _FUSED_METHODS:
                self.alias(node, args[0], fn)
            elif fn in _RESHAPE_METHODS:
                self.passthrough(node, label, args[:1], fn, out)
            elif fn in ("add", "add_") and len(args) >= 2:
                self.add(node, label, args, out)
            else:
                self.unsupported(node, label, args, f"Tensor.{fn}", out)
            return
        torch = self.torch
        F = torch.nn.functional
        if fn in (operator.add, operator.iadd, torch.add) and len(args) >= 2:
            self.add(node, label, args, out)
        elif fn in (operator.add, operator.iadd, torch.add):
            self.alias(node, args[0], "add (constant)")
        elif fn in (F.relu, F.relu6, torch.relu, F.leaky_relu, F.dropout, F.hardtanh):
            self.alias(node, args[0], name)
        elif fn in (torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze,
                    torch.transpose, torch.permute):
            self.passthrough(node, label, args[:1], name, out)
        elif fn is torch.cat:
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            if dim in (1, -3) and len(out) == 4:
                _, c, h, w = _chw(out)
                self.emit(node, {"name": self.unique(label), "type": "concat", "C": c, "H": h,
                                 **({"W": w} if w != h else {})}, args)
            else:
                self.passthrough(node, label, args, "cat", out)
        elif fn in (operator.matmul, torch.matmul, torch.bmm) and len(args) == 2:
            a, b = (self.shape(x) for x in args)
            G = math.prod(out[:-2]) if len(out) > 2 else 1
            entry = {"name": self.unique(label), "type": "matmul", "M": a[-2], "K": a[-1],
                     "N": b[-1], "weights": False}
            if G != 1:
                entry["G"] = G
            self.emit(node, entry, args)
        elif fn in (F.max_pool2d, F.avg_pool2d):
            kind = "maxpool" if fn is F.max_pool2d else "avgpool"
            names = ("kernel_size", "stride", "padding") + (
                ("dilation", "ceil_mode") if kind == "maxpool" else ("ceil_mode",))
            given = dict(zip(names, node.args[1:], strict=False)) | dict(node.kwargs)
            if kind == "maxpool" and _pair(given.get("dilation", 1)) != (1, 1):
                self.unsupported(node, label, args, "max_pool2d with dilation", out)
                return
            self.pool(node, label, kind, args[0], given["kernel_size"], given.get("stride"),
                      given.get("padding", 0), bool(given.get("ceil_mode", False)))
        elif fn in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            self.adaptive(node, label, "avgpool" if "avg" in name else "maxpool", args[0])
        else:
            self.unsupported(node, label, args, name, out)

    def conv(self, node: Any, label: str, mod: Any, x: Any) -> None:
        n, c, h, w = _chw(self.shape(x))
        _, k, p, q = _chw(self.shape(node))
        kh, kw = _pair(mod.kernel_size)
        entry: dict = {"name": self.unique(label), "type": "conv2d", "C": c, "K": k, "H": h}
        if w != h:
            entry["W"] = w
        entry["R"] = kh
        if kw != kh:
            entry["S"] = kw
        sh, sw = _pair(mod.stride)
        if (sh, sw) != (1, 1):
            entry["stride"] = sh if sh == sw else [sh, sw]
        dh, dw = _pair(mod.dilation)
        if (dh, dw) != (1, 1):
            entry["dilation"] = dh if dh == dw else [dh, dw]
        if not isinstance(mod.padding, str):
            ph, pw = _pair(mod.padding)
            if (ph, pw) != (0, 0):
                entry["pad"] = ph if ph == pw else [ph, pw]
        conv_groups_and_outputs(entry, c, k, int(mod.groups), p, q, bias=mod.bias is not None)
        self.emit(node, entry, [x])

    def linear(self, node: Any, label: str, fin: int, fout: int, bias: bool, x: Any) -> None:
        shp = self.shape(x)
        if len(shp) == 2:
            entry: dict = {"name": self.unique(label), "type": "fc", "C": fin, "K": fout,
                           "bias": bias}
        else:
            entry = {"name": self.unique(label), "type": "matmul", "M": math.prod(shp[:-1]),
                     "K": fin, "N": fout, "weights": True, "bias": bias}
        self.emit(node, entry, [x])

    def batchnorm(self, node: Any, label: str, x: Any) -> None:
        prod = self.by_name.get(self.src[x.name])
        if prod is not None and prod["type"] in ("conv2d", "depthwise", "fc") and \
                not prod.get("bn") and len(x.users) == 1:
            prod["bn"] = True
            self.alias(node, x, "BatchNorm")
            self.report.fused["BatchNorm"] -= 1
            self.report.fused["BatchNorm (folded)"] = (
                self.report.fused.get("BatchNorm (folded)", 0) + 1)
            if not self.report.fused["BatchNorm"]:
                del self.report.fused["BatchNorm"]
            return
        _, c, h, w = _chw(self.shape(x))
        self.emit(node, {"name": self.unique(label), "type": "batchnorm", "C": c, "H": h,
                         **({"W": w} if w != h else {})}, [x])

    def pool(self, node: Any, label: str, kind: str, x: Any, k: Any, s: Any, pad: Any,
             ceil: bool) -> None:
        _, c, h, w = _chw(self.shape(x))
        _, _, p, q = _chw(self.shape(node))
        kh, kw = _pair(k)
        sh, sw = _pair(s if s not in (None, [], ()) else k)
        ph, pw = _pair(pad)
        entry: dict = {"name": self.unique(label), "type": kind, "C": c, "H": h}
        if w != h:
            entry["W"] = w
        entry["R"] = kh
        if kw != kh:
            entry["S"] = kw
        entry["stride"] = sh if sh == sw else [sh, sw]
        if (ph, pw) != (0, 0):
            entry["pad"] = ph if ph == pw else [ph, pw]
        if ceil:
            entry["ceil"] = True
        entry["P"] = p
        if q != p:
            entry["Q"] = q
        self.emit(node, entry, [x])

    def adaptive(self, node: Any, label: str, kind: str, x: Any) -> None:
        _, c, h, w = _chw(self.shape(x))
        _, _, p, q = _chw(self.shape(node))
        if (p, q) == (h, w):
            self.alias(node, x, "adaptive pool (identity)")
            return
        entry: dict = {"name": self.unique(label), "type": kind, "C": c, "H": h}
        if w != h:
            entry["W"] = w
        if (p, q) == (1, 1):
            entry["global"] = True
        elif h % p == 0 and w % q == 0:
            entry.update(R=h // p, S=w // q, stride=[h // p, w // q])
        else:
            self.unsupported(node, label, [x], "adaptive pool (uneven windows)", self.shape(node))
            return
        self.emit(node, entry, [x])

    def add(self, node: Any, label: str, args: list[Any], out: tuple[int, ...]) -> None:
        _, c, h, w = _chw(out)
        entry: dict = {"name": self.unique(label), "type": "add", "C": c, "H": h}
        if w != h:
            entry["W"] = w
        if any(self.shape(a) != out for a in args):
            entry["allow_mismatch"] = "broadcasting add"
        self.emit(node, entry, args)

    def passthrough(self, node: Any, label: str, args: list[Any], op: str,
                    out: tuple[int, ...]) -> None:
        _, c, h, w = _chw(out)
        self.emit(node, {"name": self.unique(label), "type": "passthrough", "op": op, "C": c,
                         "H": h, **({"W": w} if w != h else {})}, args)

    def unsupported(self, node: Any, label: str, args: list[Any], op: str,
                    out: tuple[int, ...]) -> None:
        self.report.unsupported.setdefault(op, []).append(label)
        self.passthrough(node, label, args, op, out)


def import_torch(module: Any, example: Any, *, name: str | None = None,
                 exclude: tuple[str, ...] = ()) -> tuple[str, Network, ImportReport]:
    """Trace `module` with torch.fx on `example` (a tensor or a shape tuple) -> YAML, Network,
    report. `exclude` drops nodes (module paths or fx node names, glob patterns) and their
    dependents."""
    torch = require_torch()
    from torch.fx.passes.shape_prop import ShapeProp

    if isinstance(example, (tuple, list)) and all(isinstance(x, int) for x in example):
        example = torch.zeros(*example)
    was_training = module.training
    module.eval()
    try:
        gm = torch.fx.symbolic_trace(module)
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    except Exception as exc:  # noqa: BLE001 - tracing errors come in many kinds
        raise SpecError(f"torch.fx could not trace the module: {exc}",
                        hint="export it to ONNX and use `dse import MODEL.onnx`") from None
    finally:
        module.train(was_training)
    report = ImportReport()
    tr = _Tracer(torch, gm, tuple(exclude), report)
    tr.run()
    if not tr.layers:
        raise SpecError("the traced module has no layers to import")
    net_name = _clean(name or type(module).__name__.lower())
    spec: dict = {"name": net_name, "source": f"torch.fx trace of {type(module).__name__}"}
    if tr.batch != 1:
        spec["batch"] = tr.batch
    if len(tr.inputs) == 1:
        spec["input"] = tr.inputs[0]
    else:
        spec["inputs"] = tr.inputs
    spec["layers"] = tr.layers
    text = dump_network(spec, [f"Imported from a torch.nn.Module ({type(module).__name__}) "
                               "with torch.fx."])
    return text, load_network_text(text, f"<torch import of {type(module).__name__}>"), report
