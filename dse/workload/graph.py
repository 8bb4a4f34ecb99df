"""A network as a graph of tensors: every activation tensor has an identity, a shape, one
producer and its consumers, and every layer binds its data spaces to tensors.

Derived from `dse.workload.network.Network` (whose layers name their inputs): the tensor ids are the
network inputs and the layer outputs (a layer's output tensor has the layer's name). A layer's
`Inputs` data space is bound to its first input, `Inputs2`, `Inputs3`... (the extra operands of
an element-wise add, i.e. residual joins) to the following ones, `Outputs` to its own tensor,
and `Weights` (when the layer has them) to the layer-private parameter tensor `<layer>.weights`.
Schedules that keep tensors on chip (dse.schedule.fused) work on this graph.
"""

from __future__ import annotations

from dataclasses import dataclass

from dse.workload.network import Network

WEIGHTS_SUFFIX = ".weights"


@dataclass(frozen=True)
class Tensor:
    """One activation tensor: `shape` is (C, H, W) of one image, `batch` the images."""

    id: str
    shape: tuple[int, int, int]
    batch: int
    producer: str | None  # None = a network input
    consumers: tuple[str, ...]

    @property
    def elements(self) -> int:
        c, h, w = self.shape
        return self.batch * c * h * w


@dataclass(frozen=True)
class TensorGraph:
    network: str
    tensors: dict[str, Tensor]
    # layer -> {data-space name: tensor id}
    bindings: dict[str, dict[str, str]]

    def inputs_of(self, layer: str) -> tuple[str, ...]:
        """Activation tensors a layer reads, in data-space order (Inputs, Inputs2, ...)."""
        return tuple(t for ds, t in self.bindings[layer].items()
                     if ds != "Outputs" and not t.endswith(WEIGHTS_SUFFIX))



def input_space_names(count: int) -> list[str]:
    """Data-space names of a layer's activation operands (dse.workload.layers.eltwise's naming)."""
    return ["Inputs"] + [f"Inputs{i}" for i in range(2, count + 1)]


def tensor_graph(network: Network) -> TensorGraph:
    """The tensor graph of a network (see the module docstring for the binding rule)."""
    tensors: dict[str, Tensor] = {}
    consumers: dict[str, list[str]] = {}
    for lay in network.layers:
        for src in lay.inputs:
            consumers.setdefault(src, []).append(lay.name)
    for name, shape in network.inputs.items():
        tensors[name] = Tensor(name, tuple(shape), network.batch, None,
                               tuple(consumers.get(name, ())))
    bindings: dict[str, dict[str, str]] = {}
    for lay in network.layers:
        tensors[lay.name] = Tensor(lay.name, tuple(lay.out_shape), lay.N, lay.name,
                                   tuple(consumers.get(lay.name, ())))
        bind = dict(zip(input_space_names(len(lay.inputs)), lay.inputs, strict=True))
        if lay.problem is not None and "Weights" in lay.problem.tensor_names:
            bind["Weights"] = lay.name + WEIGHTS_SUFFIX
        bind["Outputs"] = lay.name
        bindings[lay.name] = bind
    return TensorGraph(network.name, tensors, bindings)
