"""Networks as graphs: named layers, their shapes and the layers that feed them.

A network file (native, versioned; read and written by dse.spec.network) looks like::

    network:
      version: 1
      name: resnet18
      source: "torchvision resnet18; He et al. 2016"
      input: {C: 3, H: 224, W: 224}
      bits: {weights: 8, activations: 8, bias: 16, accumulator: 32}
      defaults: {conv2d: {bias: false, bn: true}}
      layers:
        - {name: conv1, type: conv2d, C: 3, K: 64, H: 224, R: 7, stride: 2, pad: 3, inputs: [input]}

Each layer becomes a `dse.workload.problem.Problem` (see `dse.workload.layers`), except
pass-through and concat layers, which only re-arrange data. Shapes are checked against the
producers: a consumer's input shape must equal what its producer makes (fc and matmul compare
element counts), unless the layer says `allow_mismatch: <reason>`. Stats count MACs of conv,
fc and matmul layers, and parameters = weights + biases + batch-norm scale and shift (2 per
channel), i.e. the trainable parameters as torchvision counts them (batch-norm running
statistics are not counted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dse.workload import layers as L
from dse.workload.problem import Problem

FORMAT_VERSION = 1
Shape = tuple[int, int, int]  # (C, H, W) of one image

CONV_TYPES = ("conv2d", "pointwise", "depthwise")
MAC_TYPES = CONV_TYPES + ("fc", "matmul")
POOL_TYPES = ("maxpool", "avgpool")
_SPATIAL = {"C", "H", "W"}
_WINDOW = {"R", "S", "P", "Q", "stride", "pad", "dilation"}
TYPE_KEYS: dict[str, set[str]] = {
    "conv2d": _SPATIAL | _WINDOW | {"K", "groups", "bias", "bn"},
    "pointwise": _SPATIAL | {"K", "P", "Q", "stride", "pad", "bias", "bn"},
    "depthwise": _SPATIAL | _WINDOW | {"K", "bias", "bn"},
    "fc": _SPATIAL | {"K", "bias", "bn"},
    "matmul": {"M", "K", "N", "G", "weights", "bias"},
    "add": _SPATIAL,
    "maxpool": _SPATIAL | _WINDOW | {"ceil", "global"},
    "avgpool": _SPATIAL | _WINDOW | {"ceil", "global"},
    "concat": _SPATIAL,
    "batchnorm": _SPATIAL,
    "passthrough": _SPATIAL,
}
LAYER_TYPES = tuple(TYPE_KEYS)
COMMON_KEYS = {"name", "type", "inputs", "bits", "N", "note", "allow_mismatch", "op"}
BUILTIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "conv2d": {"bias": True, "bn": False},
    "fc": {"bias": True, "bn": False},
    "matmul": {"bias": False},
}
NETWORK_KEYS = {"version", "name", "source", "input", "inputs", "bits", "defaults", "batch",
                "layers", "description", "notes"}
PARAMS_COUNTED = ("weights + biases + batch-norm scale/shift (2 per channel); BN running "
                  "statistics not counted")
MACS_COUNTED = "multiply-accumulates of conv, fc and matmul layers (add/pool/bn ops separate)"


@dataclass(frozen=True)
class Layer:
    """One node of the network graph, with its shape, its Problem and its counts."""

    name: str
    type: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any]
    in_shape: Shape
    out_shape: Shape
    problem: Problem | None
    bits: L.Bits
    N: int = 1
    macs: int = 0
    ops: int = 0
    weights: int = 0
    biases: int = 0
    bn_params: int = 0
    file: str | None = None
    line: int | None = None
    note: str | None = None

    @property
    def params(self) -> int:
        return self.weights + self.biases + self.bn_params

    @property
    def out_elements(self) -> int:
        return self.N * math.prod(self.out_shape)


@dataclass(frozen=True)
class ShapeGroup:
    """Layers whose Problems are identical up to name (mapped once by the pipeline)."""

    key: tuple
    problem: Problem
    layers: tuple[str, ...]


@dataclass
class Network:
    name: str
    layers: tuple[Layer, ...]
    inputs: dict[str, Shape]
    batch: int = 1
    source: str | None = None
    file: str | None = None
    bits: L.Bits = field(default_factory=L.Bits)
    description: str | None = None

    def layer(self, name: str) -> Layer:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(name)

    def producers(self, name: str) -> tuple[str, ...]:
        return self.layer(name).inputs

    def consumers(self, name: str) -> tuple[str, ...]:
        return tuple(lay.name for lay in self.layers if name in lay.inputs)

    def mappable(self) -> tuple[Layer, ...]:
        """Layers that have a Problem (everything except pass-through and concat)."""
        return tuple(lay for lay in self.layers if lay.problem is not None)

    def unique_shapes(self, mac_only: bool = False) -> list[ShapeGroup]:
        """Groups of layers with identical Problems, in order of first appearance."""
        groups: dict[tuple, list[Layer]] = {}
        for lay in self.mappable():
            if mac_only and lay.type not in MAC_TYPES:
                continue
            groups.setdefault(L.shape_key(lay.problem), []).append(lay)
        return [ShapeGroup(k, v[0].problem, tuple(x.name for x in v)) for k, v in groups.items()]

    def stats(self) -> dict[str, Any]:
        """Totals: MACs, parameters (what counts is in `params_counted`), activations..."""
        weights = sum(lay.weights for lay in self.layers)
        biases = sum(lay.biases for lay in self.layers)
        bn = sum(lay.bn_params for lay in self.layers)
        acts = sum(self.batch * math.prod(s) for s in self.inputs.values())
        acts += sum(lay.out_elements for lay in self.layers
                    if lay.type not in ("passthrough", "concat"))
        by_type: dict[str, int] = {}
        for lay in self.layers:
            by_type[lay.type] = by_type.get(lay.type, 0) + 1
        weight_bits = sum(lay.weights * (lay.bits.weights or 0) + lay.biases * (lay.bits.bias or 0)
                          for lay in self.layers)
        return {
            "name": self.name,
            "source": self.source,
            "macs": sum(lay.macs for lay in self.layers),
            "macs_counted": MACS_COUNTED,
            "other_ops": sum(lay.ops for lay in self.layers if lay.type not in MAC_TYPES),
            "params": weights + biases + bn,
            "params_counted": PARAMS_COUNTED,
            "weights": weights,
            "biases": biases,
            "bn_params": bn,
            "param_bytes": (weight_bits + 7) // 8 if weight_bits else None,
            "activations": acts,
            "activations_counted": "network input(s) + every layer output except pass-through "
                                   "and concat (batch included)",
            "batch": self.batch,
            "layers": len(self.layers),
            "layers_by_type": by_type,
            "mac_layers": sum(1 for lay in self.layers if lay.type in MAC_TYPES),
            "mappable_layers": len(self.mappable()),
            "unique_shapes": len(self.unique_shapes()),
            "unique_mac_shapes": len(self.unique_shapes(mac_only=True)),
        }
