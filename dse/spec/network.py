"""Reading and writing network files (the format is described in dse.workload.network).

Every check of a network file lives here: keys per layer type, shapes against producers,
defaults and bit widths; errors name the file, line and key path."""

from __future__ import annotations

import heapq
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dse.errors import SpecError, did_you_mean
from dse.workload import layers as L
from dse.workload.network import (
    BUILTIN_DEFAULTS,
    COMMON_KEYS,
    CONV_TYPES,
    FORMAT_VERSION,
    LAYER_TYPES,
    NETWORK_KEYS,
    POOL_TYPES,
    TYPE_KEYS,
    Layer,
    Network,
    Shape,
)
from dse.workload.problem import Problem

# ----------------------------------------------------------------------------- parsing helpers


def _where(node: Any, key: str | None = None) -> dict[str, Any]:
    from dse.spec.common import where

    return where(node, key)


def _int(node: Any, key: str, path: str, *, minimum: int = 1) -> int:
    value = node[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SpecError("expected a whole number", key_path=f"{path}.{key}", found=value,
                        **_where(node, key))
    if isinstance(value, str):
        from dse.spec.expr import ExpressionError, to_number

        try:
            value = to_number(value)
        except ExpressionError as exc:
            raise SpecError(exc.message, key_path=f"{path}.{key}", **_where(node, key)) from None
    if isinstance(value, float):
        if not value.is_integer():
            raise SpecError("expected a whole number", key_path=f"{path}.{key}", found=value,
                            **_where(node, key))
        value = int(value)
    from dse.spec.expr import INT_LIMIT

    if value > INT_LIMIT:
        raise SpecError("this whole number is beyond the 64-bit range", key_path=f"{path}.{key}",
                        expected="|x| < 2**63", found=value, **_where(node, key))
    if value < minimum:
        raise SpecError(f"expected a whole number >= {minimum}", key_path=f"{path}.{key}",
                        found=value, **_where(node, key))
    return value


def _ints(node: Any, key: str, path: str, lengths: tuple[int, ...], *, minimum: int = 1
          ) -> tuple[int, ...]:
    """An int or a list of ints of one of `lengths` (a scalar is repeated)."""
    value = node[key]
    if isinstance(value, list):
        if len(value) not in lengths:
            raise SpecError(f"expected a number or a list of {' or '.join(map(str, lengths))}",
                            key_path=f"{path}.{key}", found=value, **_where(node, key))
        holder = {str(i): v for i, v in enumerate(value)}
        out = []
        for i in range(len(value)):
            try:
                out.append(_int(holder, str(i), f"{path}.{key}", minimum=minimum))
            except SpecError as exc:
                raise SpecError(exc.message, key_path=exc.key_path, found=exc.found,
                                **_where(node, key)) from None
        return tuple(out)
    return (_int(node, key, path, minimum=minimum),)


def _bool(node: Any, key: str, path: str) -> bool:
    value = node[key]
    if not isinstance(value, bool):
        raise SpecError("expected true or false", key_path=f"{path}.{key}", found=value,
                        **_where(node, key))
    return value


def _pair(node: Any, key: str, path: str, default: tuple[int, int]) -> tuple[int, int]:
    if key not in node:
        return default
    v = _ints(node, key, path, (2,))
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def _pads(node: Any, path: str) -> tuple[int, int] | None:
    """Total padding along (H, W): `pad: p`, `[ph, pw]` or `[top, left, bottom, right]`."""
    if "pad" not in node:
        return None
    v = _ints(node, "pad", path, (2, 4), minimum=0)
    if len(v) == 1:
        return 2 * v[0], 2 * v[0]
    if len(v) == 2:
        return 2 * v[0], 2 * v[1]
    return v[0] + v[2], v[1] + v[3]


# ----------------------------------------------------------------------------- building layers


@dataclass
class _Raw:
    index: int
    name: str
    type: str
    inputs: tuple[str, ...]
    node: Any
    path: str


class _Builder:
    def __init__(self, file: str | None, batch: int, bits: L.Bits,
                 defaults: dict[str, dict[str, Any]]) -> None:
        self.file = file
        self.batch = batch
        self.bits = bits
        self.defaults = defaults
        self.shapes: dict[str, Shape] = {}

    # -- helpers
    def _default(self, typ: str, key: str) -> Any:
        chain = [typ] + (["conv2d"] if typ in CONV_TYPES else [])
        for t in chain:
            if key in self.defaults.get(t, {}):
                return self.defaults[t][key]
        for t in chain:
            if key in BUILTIN_DEFAULTS.get(t, {}):
                return BUILTIN_DEFAULTS[t][key]
        return None

    def _flag(self, raw: _Raw, key: str) -> bool:
        if key in raw.node:
            return _bool(raw.node, key, raw.path)
        return bool(self._default(raw.type, key))

    def _spatial(self, raw: _Raw, first: Shape | None) -> Shape:
        """(C, H, W) of the layer's input: given keys, else the first producer's output."""
        node = raw.node
        vals = []
        for key, idx in (("C", 0), ("H", 1)):
            if key in node:
                vals.append(_int(node, key, raw.path))
            elif first is not None:
                vals.append(first[idx])
            else:
                raise self.missing(raw, key)
        if "W" in node:
            w = _int(node, "W", raw.path)
        elif "H" in node:
            w = vals[1]
        elif first is not None:
            w = first[2]
        else:
            raise self.missing(raw, "W")
        return vals[0], vals[1], w

    def missing(self, raw: _Raw, key: str) -> SpecError:
        return SpecError(f"layer '{raw.name}' ({raw.type}) needs `{key}`",
                         key_path=f"{raw.path}.{key}", **_where(raw.node))

    def need(self, raw: _Raw, key: str, *, minimum: int = 1) -> int:
        if key not in raw.node:
            raise self.missing(raw, key)
        return _int(raw.node, key, raw.path, minimum=minimum)

    def _window(self, raw: _Raw, H: int, W: int, R: int, S: int, stride: tuple[int, int],
                dil: tuple[int, int], ceil: bool = False) -> tuple[int, int]:
        node = raw.node
        pads = _pads(node, raw.path)
        outs = []
        for axis, size, k, st, d, okey in ((0, H, R, stride[0], dil[0], "P"),
                                           (1, W, S, stride[1], dil[1], "Q")):
            derived = None
            if pads is not None or okey not in node:
                pad = pads[axis] if pads is not None else 0
                derived = L.out_size(size, k, st, pad, d, ceil)
                if derived < 1:
                    raise SpecError(
                        f"layer '{raw.name}': the {'RS'[axis]}={k} window (dilation {d}) does "
                        f"not fit the padded input ({size} + {pad} padding)",
                        key_path=raw.path, **_where(node))
            if okey == "Q" and "Q" not in node and "P" in node and pads is None and \
                    (W, S, stride[1], dil[1]) == (H, R, stride[0], dil[0]):
                outs.append(outs[0])  # a square layer: Q defaults to P
                continue
            if okey in node:
                given = _int(node, okey, raw.path)
                if derived is not None and given != derived:
                    raise SpecError(
                        f"layer '{raw.name}': {okey}={given} disagrees with the output size "
                        f"{derived} computed from {'HW'[axis]}={size}, kernel {k}, stride {st}, "
                        f"padding {pads[axis] if pads else 0} (total), dilation {d}",
                        key_path=f"{raw.path}.{okey}", **_where(node, okey),
                        hint="drop P/Q to derive them, or fix pad/stride")
                outs.append(given)
            else:
                outs.append(derived)
        return outs[0], outs[1]

    # -- one layer
    def build(self, raw: _Raw) -> Layer:
        node = raw.node
        in_shapes = [self.shapes[i] for i in raw.inputs]
        first = in_shapes[0] if in_shapes else None
        bits = self.bits
        if "bits" in node:
            bits = bits.merged(_parse_bits(node["bits"], f"{raw.path}.bits", node))
        N = _int(node, "N", raw.path) if "N" in node and raw.type != "matmul" else self.batch
        typ = raw.type
        attrs: dict[str, Any] = {}
        problem: Problem | None = None
        weights = biases = bn = macs = 0
        src = self.file
        if typ in CONV_TYPES:
            C, H, W = self._spatial(raw, first)
            if typ == "pointwise":
                R = S = 1
                for bad in ("R", "S", "dilation"):
                    if bad in node:
                        raise SpecError(f"a pointwise layer is 1x1; drop `{bad}`",
                                        key_path=f"{raw.path}.{bad}", **_where(node, bad))
            else:
                R = self.need(raw, "R")
                S = _int(node, "S", raw.path) if "S" in node else R
            if typ == "depthwise":
                K = _int(node, "K", raw.path) if "K" in node else C
                groups = C
            else:
                K = self.need(raw, "K")
                groups = _int(node, "groups", raw.path) if "groups" in node else 1
            if C % groups or K % groups:
                raise SpecError(f"layer '{raw.name}': C={C} and K={K} must both be divisible "
                                f"by groups={groups}", key_path=raw.path, **_where(node))
            stride = _pair(node, "stride", raw.path, (1, 1))
            dil = _pair(node, "dilation", raw.path, (1, 1))
            P, Q = self._window(raw, H, W, R, S, stride, dil)
            problem = L.conv2d(raw.name, C=C, K=K, P=P, Q=Q, R=R, S=S, N=N, stride=stride,
                               dilation=dil, groups=groups, bits=bits, source=src)
            macs = problem.macs
            weights = K * (C // groups) * R * S
            biases = K if self._flag(raw, "bias") else 0
            bn = 2 * K if self._flag(raw, "bn") else 0
            attrs = {"C": C, "K": K, "H": H, "W": W, "P": P, "Q": Q, "R": R, "S": S,
                     "stride": stride, "dilation": dil, "groups": groups}
            in_shape, out_shape = (C, H, W), (K, P, Q)
        elif typ == "fc":
            if "C" in node:
                C = _int(node, "C", raw.path)
                H = _int(node, "H", raw.path) if "H" in node else 1
                W = _int(node, "W", raw.path) if "W" in node else H
            elif first is not None:
                C, H, W = first
            else:
                raise self.missing(raw, "C")
            K = self.need(raw, "K")
            problem = L.fc(raw.name, C=C, K=K, N=N, R=H, S=W, bits=bits, source=src)
            macs = problem.macs
            weights = C * H * W * K
            biases = K if self._flag(raw, "bias") else 0
            bn = 2 * K if self._flag(raw, "bn") else 0
            attrs = {"C": C, "K": K, "H": H, "W": W}
            in_shape, out_shape = (C, H, W), (K, 1, 1)
        elif typ == "matmul":
            M, K, Nn = self.need(raw, "M"), self.need(raw, "K"), self.need(raw, "N")
            B = _int(node, "G", raw.path) if "G" in node else 1
            if "weights" in node:
                is_w = _bool(node, "weights", raw.path)
            elif "weights" in self.defaults.get("matmul", {}):
                is_w = self.defaults["matmul"]["weights"]
            else:
                is_w = len(raw.inputs) == 1
            if is_w and len(raw.inputs) == 2:
                raise SpecError(f"matmul layer '{raw.name}' has two inputs, so its second "
                                "operand is an activation; drop `weights: true`",
                                key_path=f"{raw.path}.weights", **_where(node, "weights"))
            problem = L.matmul(raw.name, M=M, N=Nn, K=K, G=B, b_is_weight=is_w, bits=bits,
                               source=src)
            macs = problem.macs
            weights = B * K * Nn if is_w else 0
            biases = Nn if self._flag(raw, "bias") else 0
            attrs = {"M": M, "K": K, "N": Nn, "G": B, "weights": is_w}
            in_shape, out_shape = (K, M, B), (Nn, M, B)
            N = 1
        elif typ in ("add", "batchnorm"):
            C, H, W = self._spatial(raw, first)
            if typ == "add":
                if len(raw.inputs) < 2:
                    raise SpecError(f"add layer '{raw.name}' needs at least two inputs",
                                    key_path=f"{raw.path}.inputs", **_where(node))
                problem = L.eltwise(raw.name, C=C, P=H, Q=W, N=N, operands=len(raw.inputs),
                                    bits=bits, source=src)
            else:
                problem = L.scale_shift(raw.name, C=C, P=H, Q=W, N=N, bits=bits, source=src)
                bn = 2 * C
            attrs = {"C": C, "H": H, "W": W}
            in_shape = out_shape = (C, H, W)
        elif typ in POOL_TYPES:
            C, H, W = self._spatial(raw, first)
            glob = _bool(node, "global", raw.path) if "global" in node else False
            if glob:
                R, S = H, W
            else:
                R = self.need(raw, "R")
                S = _int(node, "S", raw.path) if "S" in node else R
            stride = _pair(node, "stride", raw.path, (R, S))
            dil = _pair(node, "dilation", raw.path, (1, 1))
            ceil = _bool(node, "ceil", raw.path) if "ceil" in node else False
            P, Q = self._window(raw, H, W, R, S, stride, dil, ceil)
            problem = L.pool(raw.name, C=C, P=P, Q=Q, R=R, S=S, N=N, stride=stride,
                             dilation=dil, bits=bits, source=src, kind=typ)
            attrs = {"C": C, "H": H, "W": W, "P": P, "Q": Q, "R": R, "S": S, "stride": stride,
                     "dilation": dil}
            in_shape, out_shape = (C, H, W), (C, P, Q)
        elif typ == "concat":
            if not in_shapes:
                raise SpecError(f"concat layer '{raw.name}' needs inputs",
                                key_path=f"{raw.path}.inputs", **_where(node))
            total = sum(s[0] for s in in_shapes)
            C = _int(node, "C", raw.path) if "C" in node else total
            H = _int(node, "H", raw.path) if "H" in node else in_shapes[0][1]
            W = _int(node, "W", raw.path) if "W" in node else (H if "H" in node
                                                               else in_shapes[0][2])
            attrs = {"C": C, "H": H, "W": W}
            in_shape = out_shape = (C, H, W)
        else:  # passthrough
            C, H, W = self._spatial(raw, first)
            attrs = {"C": C, "H": H, "W": W}
            in_shape = first if first is not None else (C, H, W)
            out_shape = (C, H, W)
        self._check_inputs(raw, typ, in_shape, in_shapes, attrs)
        for key in ("op", "allow_mismatch"):
            if key in node:
                attrs[key] = str(node[key])
        if "pad" in node and (typ in CONV_TYPES or typ in POOL_TYPES):
            pad = node["pad"]
            attrs["pad"] = tuple(pad) if isinstance(pad, list) else pad
        self.shapes[raw.name] = out_shape
        ops = problem.macs if problem is not None else 0
        note = node.get("note")
        return Layer(raw.name, typ, raw.inputs, attrs, in_shape, out_shape, problem, bits, N,
                     macs, ops, weights, biases, bn, raw.node.file, raw.node.line,
                     str(note) if note is not None else None)

    def _check_inputs(self, raw: _Raw, typ: str, in_shape: Shape, in_shapes: list[Shape],
                      attrs: dict[str, Any]) -> None:
        node = raw.node
        if typ in CONV_TYPES + POOL_TYPES + ("fc", "batchnorm") and len(raw.inputs) != 1:
            raise SpecError(f"{typ} layer '{raw.name}' takes exactly one input, found "
                            f"{len(raw.inputs)}", key_path=f"{raw.path}.inputs",
                            **_where(node, "inputs"))
        if typ == "matmul" and len(raw.inputs) not in (1, 2):
            raise SpecError(f"matmul layer '{raw.name}' takes one or two inputs",
                            key_path=f"{raw.path}.inputs", **_where(node, "inputs"))
        if "allow_mismatch" in node or typ == "passthrough":
            return
        problems = []
        pairs = list(zip(raw.inputs, in_shapes, strict=True))
        if typ == "fc":
            got = in_shapes[0]
            if math.prod(got) != math.prod(in_shape):
                problems.append(f"'{raw.inputs[0]}' makes {math.prod(got)} elements {got} but "
                                f"the fc layer reads C*H*W = {math.prod(in_shape)}")
        elif typ == "matmul":
            wants = [in_shape, (attrs["N"], attrs["K"], attrs["G"])]
            for (name, got), want in zip(pairs, wants, strict=False):
                if math.prod(got) != math.prod(want):
                    problems.append(f"'{name}' makes {math.prod(got)} elements but the operand "
                                    f"has {math.prod(want)}")
        elif typ == "concat":
            for name, got in pairs:
                if got[1:] != in_shape[1:]:
                    problems.append(f"'{name}' makes H x W = {got[1:]}, not {in_shape[1:]}")
            if sum(s[0] for s in in_shapes) != in_shape[0]:
                problems.append(f"the inputs have {sum(s[0] for s in in_shapes)} channels in "
                                f"total, not C = {in_shape[0]}")
        else:
            for name, got in pairs:
                if got != in_shape:
                    problems.append(f"'{name}' makes (C, H, W) = {got} but '{raw.name}' reads "
                                    f"{in_shape}")
        if problems:
            raise SpecError(f"shape mismatch at layer '{raw.name}': " + "; ".join(problems),
                            key_path=raw.path, **_where(node),
                            hint="fix the shape, or add `allow_mismatch: <reason>` to the layer "
                                 "if the source network really does this")


def _parse_bits(value: Any, path: str, parent: Any) -> dict[str, int | None]:
    from dse.spec.common import check_keys, require_mapping

    require_mapping(value, path, parent, "bits")
    check_keys(value, set(L.Bits.FIELDS), path)
    return {k: _int(value, k, path) for k in value if not str(k).startswith("_")}


def _input_shape(node: Any, path: str) -> tuple[str, Shape]:
    from dse.spec.common import check_keys, require_mapping

    require_mapping(node, path)
    check_keys(node, {"name", "C", "H", "W"}, path)
    name = str(node.get("name", "input"))
    for key in ("C", "H"):
        if key not in node:
            raise SpecError(f"the network input needs `{key}`", key_path=f"{path}.{key}",
                            **_where(node))
    C, H = _int(node, "C", path), _int(node, "H", path)
    W = _int(node, "W", path) if "W" in node else H
    return name, (C, H, W)


def _layer_name(node: Any, path: str) -> str:
    if "name" not in node:
        raise SpecError("every layer needs a `name`", key_path=f"{path}.name", **_where(node))
    name = node["name"]
    if not isinstance(name, (str, int)) or isinstance(name, bool) or str(name) == "":
        raise SpecError("a layer name must be a non-empty string", key_path=f"{path}.name",
                        found=name, **_where(node, "name"))
    return str(name)


def parse_network(doc: Any, file: str | None = None) -> Network:
    """Build a Network from the loaded YAML mapping that holds `network:`."""
    from dse.spec.common import check_keys, require_list, require_mapping

    require_mapping(doc, "")
    if "network" not in doc:
        raise SpecError("a network file needs a top-level `network:` key", file=file, line=1,
                        hint="a Timeloop problem file (problem:) can be imported with "
                             "`dse import FILE -o NET.yaml`")
    net = require_mapping(doc["network"], "network", doc, "network")
    check_keys(net, NETWORK_KEYS, "network")
    version = net.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise SpecError(f"unsupported network format version {version!r}",
                        key_path="network.version", expected=str(FORMAT_VERSION),
                        **_where(net, "version"))
    name = str(net.get("name", Path(file).stem if file else "network"))
    batch = _int(net, "batch", "network") if "batch" in net else 1
    bits = L.Bits()
    if "bits" in net:
        bits = bits.merged(_parse_bits(net["bits"], "network.bits", net))
    defaults: dict[str, dict[str, Any]] = {}
    if "defaults" in net:
        dnode = require_mapping(net["defaults"], "network.defaults", net, "defaults")
        for typ, vals in dnode.items():
            dp = f"network.defaults.{typ}"
            if typ not in TYPE_KEYS:
                raise SpecError(f"defaults for unknown layer type '{typ}'", key_path=dp,
                                expected="one of " + ", ".join(LAYER_TYPES),
                                hint=did_you_mean(typ, LAYER_TYPES), **_where(dnode, typ))
            require_mapping(vals, dp, dnode, typ)
            check_keys(vals, TYPE_KEYS[typ] & {"bias", "bn", "weights"}, dp)
            defaults[typ] = {k: _bool(vals, k, dp) for k in vals}
    inputs: dict[str, Shape] = {}
    if "input" in net and "inputs" in net:
        raise SpecError("give either `input:` or `inputs:`, not both", key_path="network",
                        **_where(net, "inputs"))
    if "input" in net:
        n, s = _input_shape(net["input"], "network.input")
        inputs[n] = s
    elif "inputs" in net:
        for j, item in enumerate(require_list(net["inputs"], "network.inputs", net, "inputs")):
            n, s = _input_shape(item, f"network.inputs[{j}]")
            inputs[n] = s
    else:
        raise SpecError("a network needs `input: {C, H, W}`", key_path="network.input",
                        **_where(net))
    if "layers" not in net:
        raise SpecError("a network needs `layers:`", key_path="network.layers", **_where(net))
    items = require_list(net["layers"], "network.layers", net, "layers")
    if not items:
        raise SpecError("`layers:` is empty", key_path="network.layers", **_where(net, "layers"))
    raws: list[_Raw] = []
    seen: dict[str, _Raw] = {}
    prev = next(iter(inputs))
    for j, node in enumerate(items):
        path = f"network.layers[{j}]"
        require_mapping(node, path)
        lname = _layer_name(node, path)
        path = f"network.layers[{j}] ({lname})"
        if "type" not in node:
            raise SpecError(f"layer '{lname}' needs a `type`", key_path=f"{path}.type",
                            expected="one of " + ", ".join(LAYER_TYPES), **_where(node))
        typ = str(node["type"])
        if typ not in TYPE_KEYS:
            raise SpecError(f"unknown layer type '{typ}'", key_path=f"{path}.type",
                            expected="one of " + ", ".join(LAYER_TYPES),
                            hint=did_you_mean(typ, LAYER_TYPES), **_where(node, "type"))
        allowed = TYPE_KEYS[typ] | COMMON_KEYS
        check_keys(node, allowed, path)
        if lname in seen or lname in inputs:
            other = seen[lname].node.line if lname in seen else None
            raise SpecError(f"layer name '{lname}' is used twice"
                            + (f" (first at line {other})" if other else " (it names an input)"),
                            key_path=f"{path}.name", **_where(node, "name"))
        if "inputs" in node:
            ins = node["inputs"]
            if isinstance(ins, (str, int)) and not isinstance(ins, bool):
                ins = [ins]
            require_list(ins, f"{path}.inputs", node, "inputs")
            ins = tuple(str(i) for i in ins)
            if not ins:
                raise SpecError(f"layer '{lname}' has an empty `inputs:` list",
                                key_path=f"{path}.inputs", **_where(node, "inputs"))
        else:
            ins = (prev,)
        raw = _Raw(j, lname, typ, ins, node, path)
        raws.append(raw)
        seen[lname] = raw
        prev = lname
    known = set(seen) | set(inputs)
    for raw in raws:
        for i in raw.inputs:
            if i not in known:
                raise SpecError(f"layer '{raw.name}' reads from unknown layer '{i}'",
                                key_path=f"{raw.path}.inputs", **_where(raw.node, "inputs"),
                                hint=did_you_mean(i, sorted(known)))
    order = _topological(raws)
    builder = _Builder(file, batch, bits, defaults)
    builder.shapes.update(inputs)
    built = {raw.name: builder.build(raw) for raw in order}
    return Network(name, tuple(built[r.name] for r in order), inputs, batch,
                   str(net["source"]) if "source" in net else None, file, bits,
                   str(net["description"]) if "description" in net else None)


def _topological(raws: list[_Raw]) -> list[_Raw]:
    """Kahn's algorithm, keeping file order among ready layers; a cycle is a SpecError."""
    by_name = {r.name: r for r in raws}
    indeg = {r.name: sum(1 for i in r.inputs if i in by_name) for r in raws}
    users: dict[str, list[str]] = {}
    for r in raws:
        for i in r.inputs:
            if i in by_name:
                users.setdefault(i, []).append(r.name)
    ready = [(r.index, r.name) for r in raws if indeg[r.name] == 0]
    heapq.heapify(ready)
    out: list[_Raw] = []
    while ready:
        _, name = heapq.heappop(ready)
        out.append(by_name[name])
        for u in users.get(name, []):
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(ready, (by_name[u].index, u))
    if len(out) != len(raws):
        stuck = [r for r in raws if indeg[r.name] > 0]
        cycle = _find_cycle(stuck, by_name)
        first = by_name[cycle[0]]
        raise SpecError("the layers form a cycle: " + " -> ".join(cycle + [cycle[0]]),
                        key_path=f"{first.path}.inputs", **_where(first.node, "inputs"),
                        hint="a network must be a directed acyclic graph")
    return out


def _find_cycle(stuck: list[_Raw], by_name: dict[str, _Raw]) -> list[str]:
    names = {r.name for r in stuck}
    start = stuck[0].name
    path: list[str] = []
    node = start
    while node not in path:
        path.append(node)
        node = next(i for i in by_name[node].inputs if i in names)
    cycle = path[path.index(node):]
    cycle.reverse()  # producer -> consumer order
    first = min(range(len(cycle)), key=lambda i: by_name[cycle[i]].index)
    return cycle[first:] + cycle[:first]


def load_network_text(text: str, file: str = "<string>") -> Network:
    from dse.spec.yamlload import load_yaml_text

    doc = load_yaml_text(text, file)
    if doc is None:
        raise SpecError("the file is empty", file=file, line=1)
    if not isinstance(doc, dict):
        raise SpecError("the top level must be a mapping with `network:`", file=file, line=1,
                        found=type(doc).__name__)
    return parse_network(doc, file)


def load_network(path: str | Path) -> Network:
    from dse.spec.yamlload import read_spec_text

    return load_network_text(read_spec_text(path), str(path))


# ----------------------------------------------------------------------------- writing


_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "none", "y", "n", "~"}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {_scalar(v)}" for k, v in value.items()) + "}"
    s = str(value)
    if _PLAIN.match(s) and s.lower() not in _YAML_WORDS:
        return s
    return json.dumps(s)


def dump_network(spec: dict[str, Any], header: Iterable[str] = ()) -> str:
    """YAML text of a network spec dict, one flow-style line per layer (compact, diffable)."""
    lines = [f"# {h}" if h else "#" for h in header]
    lines.append("network:")
    lines.append(f"  version: {FORMAT_VERSION}")
    for key in ("name", "source", "description", "batch", "input", "inputs", "bits",
                "defaults"):
        if key in spec and spec[key] is not None:
            value = spec[key]
            if key == "inputs":
                lines.append("  inputs:")
                lines.extend(f"    - {_scalar(v)}" for v in value)
            else:
                lines.append(f"  {key}: {_scalar(value)}")
    lines.append("  layers:")
    for item in spec["layers"]:
        if isinstance(item, str):  # a comment line
            lines.append(f"    # {item}")
        else:
            lines.append(f"    - {_scalar(item)}")
    return "\n".join(lines) + "\n"


def layer_spec(layer: Layer) -> dict[str, Any]:
    """The network-file entry that rebuilds `layer` (explicit shapes, no defaults needed)."""
    a = layer.attrs
    d: dict[str, Any] = {"name": layer.name, "type": layer.type}
    typ = layer.type
    if typ in CONV_TYPES:
        d.update(C=a["C"], K=a["K"], H=a["H"])
        if a["W"] != a["H"]:
            d["W"] = a["W"]
        if typ != "pointwise":
            d["R"] = a["R"]
            if a["S"] != a["R"]:
                d["S"] = a["S"]
        d.update(P=a["P"])
        if a["Q"] != a["P"]:
            d["Q"] = a["Q"]
        if a["stride"] != (1, 1):
            d["stride"] = a["stride"][0] if a["stride"][0] == a["stride"][1] else list(a["stride"])
        if a.get("pad"):
            d["pad"] = list(a["pad"]) if isinstance(a["pad"], tuple) else a["pad"]
        if a["dilation"] != (1, 1) and typ != "pointwise":
            d["dilation"] = (a["dilation"][0] if a["dilation"][0] == a["dilation"][1]
                             else list(a["dilation"]))
        if typ == "conv2d" and a["groups"] != 1:
            d["groups"] = a["groups"]
        d["bias"] = layer.biases > 0
        d["bn"] = layer.bn_params > 0
    elif typ == "fc":
        d.update(C=a["C"], K=a["K"])
        if (a["H"], a["W"]) != (1, 1):
            d.update(H=a["H"], W=a["W"])
        d["bias"] = layer.biases > 0
        if layer.bn_params:
            d["bn"] = True
    elif typ == "matmul":
        d.update(M=a["M"], K=a["K"], N=a["N"])
        if a["G"] != 1:
            d["G"] = a["G"]
        d["weights"] = a["weights"]
        d["bias"] = layer.biases > 0
    elif typ in POOL_TYPES:
        d.update(C=a["C"], H=a["H"])
        if a["W"] != a["H"]:
            d["W"] = a["W"]
        d.update(R=a["R"])
        if a["S"] != a["R"]:
            d["S"] = a["S"]
        d["P"] = a["P"]
        if a["Q"] != a["P"]:
            d["Q"] = a["Q"]
        d["stride"] = a["stride"][0] if a["stride"][0] == a["stride"][1] else list(a["stride"])
        if a.get("pad"):
            d["pad"] = list(a["pad"]) if isinstance(a["pad"], tuple) else a["pad"]
        if a["dilation"] != (1, 1):
            d["dilation"] = list(a["dilation"])
    else:
        d.update(C=a["C"], H=a["H"])
        if a["W"] != a["H"]:
            d["W"] = a["W"]
    for key in ("op", "allow_mismatch"):
        if key in a:
            d[key] = a[key]
    if layer.note:
        d["note"] = layer.note
    d["inputs"] = list(layer.inputs)
    return d
