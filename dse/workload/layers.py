"""Layer types as `dse.workload.Problem`s: one function per type.

Conventions (see docs/workloads.md):

- conv2d uses Timeloop's CNN_Layer dimensions C M R S N P Q (M = output channels, called K in
  network files) with coefficients Wstride, Hstride, Wdilation, Hdilation. The P/R axis carries
  Wstride/Wdilation, the Q/S axis Hstride/Hdilation, as in Timeloop; dse puts the network's
  first spatial axis (H, P, R) on the P/R axis.
- A grouped conv (groups > 1, including depthwise) adds a dimension G: C and M are then the
  channels *per group*, and Weights[G][C][M][R][S], Inputs[N][G][C][..][..],
  Outputs[N][G][M][Q][P]. MACs = N*K*P*Q*(C/groups)*R*S = the product of all bounds.
- Timeloop has no padding: the Inputs tile of a padded layer spans (P-1)*stride + dil*(R-1) + 1
  rows, i.e. the model sees the padded input extent.
- fc is a CNN_Layer with P = Q = 1 (R = S = the input's spatial size when an fc layer reads a
  feature map, as AlexNet/VGG fc6); matmul uses dimensions M N K (+ G when batched) and the
  tensors of the native `type: matmul` problem: Z[G][M][N] += A[G][M][K] * B[G][K][N].
- add (element-wise, 2+ operands), pooling and batchnorm are problems without a reduction
  over channels; their operation count is the product of their bounds, but they do no MACs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dse.workload.problem import DataSpace, Problem

CNN_DIMS = ("C", "M", "R", "S", "N", "P", "Q")
GROUPED_DIMS = ("G", "C", "M", "R", "S", "N", "P", "Q")
# The Timeloop coefficient name each CNN dimension is multiplied by in the Inputs projection.
COEFFICIENT_OF = {"P": "Wstride", "R": "Wdilation", "Q": "Hstride", "S": "Hdilation"}


@dataclass(frozen=True)
class Bits:
    """Bit widths of a layer's tensors; None = leave it to the architecture's datawidth.

    `outputs` is the width the Outputs tensor moves at; when unset it is `accumulator` for
    layers that reduce (conv, fc, matmul) and `activations` for the others.
    """

    weights: int | None = None
    activations: int | None = None
    bias: int | None = None
    accumulator: int | None = None
    outputs: int | None = None

    FIELDS = ("weights", "activations", "bias", "accumulator", "outputs")

    def merged(self, overrides: dict[str, int | None]) -> Bits:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def output_bits(self, reduces: bool) -> int | None:
        if self.outputs is not None:
            return self.outputs
        return self.accumulator if reduces else self.activations

    def as_dict(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in self.FIELDS if getattr(self, f) is not None}


def out_size(size: int, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1,
             ceil: bool = False) -> int:
    """Output extent of a sliding window: floor((size + pad - dil*(kernel-1) - 1)/stride) + 1.

    `pad` is the total padding along the axis (both sides).
    """
    span = size + pad - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    if ceil:
        out = -(-span // stride) + 1
        # PyTorch/ONNX: the last window must start inside the (left-padded) input
        if (out - 1) * stride >= size + pad // 2:
            out -= 1
        return out
    return span // stride + 1


def conv2d(name: str, *, C: int, K: int, P: int, Q: int, R: int = 1, S: int = 1, N: int = 1,
           stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
           groups: int = 1, bits: Bits | None = None, source: str | None = None) -> Problem:
    """A 2-D convolution. C, K are total channels; with groups > 1 a G dimension is added."""
    if C % groups or K % groups:
        raise ValueError(f"{name}: channels C={C}, K={K} are not divisible by groups={groups}")
    bits = bits or Bits()
    coefs = {"Wstride": stride[0], "Hstride": stride[1],
             "Wdilation": dilation[0], "Hdilation": dilation[1]}
    w_rank = (("R", coefs["Wdilation"]), ("P", coefs["Wstride"]))
    h_rank = (("S", coefs["Hdilation"]), ("Q", coefs["Hstride"]))
    n = (("N", 1),)
    if groups == 1:
        dims = CNN_DIMS
        bounds = {"C": C, "M": K, "R": R, "S": S, "N": N, "P": P, "Q": Q}
        g: tuple = ()
    else:
        dims = GROUPED_DIMS
        bounds = {"G": groups, "C": C // groups, "M": K // groups, "R": R, "S": S, "N": N,
                  "P": P, "Q": Q}
        g = ((("G", 1),),)
    spaces = (
        DataSpace("Weights", g + ((("C", 1),), (("M", 1),), (("R", 1),), (("S", 1),)),
                  word_bits=bits.weights),
        DataSpace("Inputs", (n,) + g + ((("C", 1),), w_rank, h_rank),
                  word_bits=bits.activations),
        DataSpace("Outputs", (n,) + g + ((("M", 1),), (("Q", 1),), (("P", 1),)),
                  read_write=True, word_bits=bits.output_bits(True)),
    )
    return Problem(name, dims, bounds, spaces, coefs, source=source)


def fc(name: str, *, C: int, K: int, N: int = 1, R: int = 1, S: int = 1,
       bits: Bits | None = None, source: str | None = None) -> Problem:
    """Fully connected: a CNN_Layer with P = Q = 1 (R x S = the input map it reads, if any)."""
    return conv2d(name, C=C, K=K, P=1, Q=1, R=R, S=S, N=N, bits=bits, source=source)


def matmul(name: str, *, M: int, N: int, K: int, G: int = 1, b_is_weight: bool = True,
           bits: Bits | None = None, source: str | None = None) -> Problem:
    """Z[G][M][N] += A[G][M][K] * B[G][K][N]; the G (batch) dimension only when G > 1.

    Tensor names follow the native `type: matmul` problem (A, B, Z). B is a parameter (weights
    bit width) when `b_is_weight`, else a second activation (e.g. attention scores).
    """
    bits = bits or Bits()
    g: tuple = ((("G", 1),),) if G > 1 else ()
    dims = (("G",) if G > 1 else ()) + ("M", "N", "K")
    bounds = {"M": M, "N": N, "K": K} | ({"G": G} if G > 1 else {})
    spaces = (
        DataSpace("A", g + ((("M", 1),), (("K", 1),)), word_bits=bits.activations),
        DataSpace("B", g + ((("K", 1),), (("N", 1),)),
                  word_bits=bits.weights if b_is_weight else bits.activations),
        DataSpace("Z", g + ((("M", 1),), (("N", 1),)), read_write=True,
                  word_bits=bits.output_bits(True)),
    )
    return Problem(name, dims, bounds, spaces, {}, source=source)


def _map_space() -> tuple:
    return ((("N", 1),), (("C", 1),), (("Q", 1),), (("P", 1),))


def eltwise(name: str, *, C: int, P: int, Q: int, N: int = 1, operands: int = 2,
            bits: Bits | None = None, source: str | None = None) -> Problem:
    """Element-wise join (residual add): `operands` read-only inputs, one output."""
    bits = bits or Bits()
    ranks = _map_space()
    names = ["Inputs"] + [f"Inputs{i}" for i in range(2, operands + 1)]
    spaces = tuple(DataSpace(n, ranks, word_bits=bits.activations) for n in names)
    spaces += (DataSpace("Outputs", ranks, read_write=True, word_bits=bits.output_bits(False)),)
    return Problem(name, ("N", "C", "P", "Q"), {"N": N, "C": C, "P": P, "Q": Q}, spaces, {},
                   source=source, compute_action="add")


def pool(name: str, *, C: int, P: int, Q: int, R: int, S: int, N: int = 1,
         stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
         bits: Bits | None = None, source: str | None = None, kind: str = "maxpool"
         ) -> Problem:
    """Max/avg pooling: a window of R x S per channel, no weights, no channel reduction.
    `kind` maxpool costs a compare per window element, avgpool an add."""
    bits = bits or Bits()
    coefs = {"Wstride": stride[0], "Hstride": stride[1],
             "Wdilation": dilation[0], "Hdilation": dilation[1]}
    spaces = (
        DataSpace("Inputs", ((("N", 1),), (("C", 1),),
                             (("R", coefs["Wdilation"]), ("P", coefs["Wstride"])),
                             (("S", coefs["Hdilation"]), ("Q", coefs["Hstride"]))),
                  word_bits=bits.activations),
        DataSpace("Outputs", _map_space(), read_write=True, word_bits=bits.output_bits(False)),
    )
    return Problem(name, ("C", "R", "S", "N", "P", "Q"),
                   {"C": C, "R": R, "S": S, "N": N, "P": P, "Q": Q}, spaces, coefs,
                   source=source, compute_action="compare" if kind == "maxpool" else "add")


def scale_shift(name: str, *, C: int, P: int, Q: int, N: int = 1, bits: Bits | None = None,
                source: str | None = None) -> Problem:
    """A standalone (not folded) batch norm: per-channel scale and shift of every element."""
    bits = bits or Bits()
    spaces = (
        DataSpace("Weights", ((("C", 1),),), word_bits=bits.weights),
        DataSpace("Inputs", _map_space(), word_bits=bits.activations),
        DataSpace("Outputs", _map_space(), read_write=True, word_bits=bits.output_bits(False)),
    )
    return Problem(name, ("N", "C", "P", "Q"), {"N": N, "C": C, "P": P, "Q": Q}, spaces, {},
                   source=source)


# ----------------------------------------------------------------------------- Timeloop I/O


def _term(problem: Problem, dim: str, coef: int, in_sum: bool) -> list:
    """A projection term; a sliding-window sum names Timeloop's coefficient (R*Wdilation...)."""
    name = COEFFICIENT_OF.get(dim)
    if in_sum and name is not None and problem.coefficients.get(name) == coef:
        return [dim, name]
    if coef == 1:
        return [dim]
    for cname, value in problem.coefficients.items():
        if value == coef:
            return [dim, cname]
    return [dim, coef]


def to_timeloop(problem: Problem) -> dict:
    """A Timeloop problem document ({'problem': {shape, instance}}) for one Problem.

    The shape is written out in full (no `shape: cnn-layer`), so any problem round-trips through
    `dse.spec.timeloop.read_problem`; per-tensor bit widths have no place in Timeloop's format.
    """
    spaces = []
    for ds in problem.data_spaces:
        entry: dict = {"name": ds.name,
                       "projection": [[_term(problem, d, c, len(rank) > 1) for d, c in rank]
                                      for rank in ds.ranks]}
        if ds.read_write:
            entry["read_write"] = True
        spaces.append(entry)
    shape: dict = {"name": problem.name, "dimensions": list(problem.dims)}
    if problem.coefficients:
        shape["coefficients"] = [{"name": n, "default": 1} for n in problem.coefficients]
    shape["data_spaces"] = spaces
    instance = {d: int(problem.bounds[d]) for d in problem.dims}
    instance.update({n: int(v) for n, v in problem.coefficients.items()})
    return {"problem": {"version": 0.4, "shape": shape, "instance": instance}}


def strip(problem: Problem) -> Problem:
    """The problem without name, source and bit widths: what makes two layers the same shape."""
    spaces = tuple(replace(ds, word_bits=None) for ds in problem.data_spaces)
    return replace(problem, name="", source=None, data_spaces=spaces)


def shape_key(problem: Problem) -> tuple:
    """Hashable identity of a layer's shape (bounds, projections, coefficients, bit widths,
    and the compute action when it is not a MAC: a max and an average pool differ)."""
    key = (
        problem.dims,
        tuple(problem.bounds[d] for d in problem.dims),
        tuple(sorted(problem.coefficients.items())),
        problem.data_spaces,
    )
    return key if problem.compute_action == "mac" else (*key, problem.compute_action)


def as_conv2d(problem: Problem) -> dict | None:
    """Recognise a CNN_Layer-shaped problem (grouped or not): the conv2d parameters, or None.

    Recognition is by reconstruction: the parameters are read off the bounds and coefficients
    and the problem is rebuilt with `conv2d`; only an exact structural match counts.
    """
    dims = set(problem.dims)
    if dims not in (set(CNN_DIMS), set(GROUPED_DIMS)):
        return None
    b = problem.bounds
    c = problem.coefficients
    groups = b.get("G", 1)
    params = {
        "C": b["C"] * groups, "K": b["M"] * groups, "P": b["P"], "Q": b["Q"], "R": b["R"],
        "S": b["S"], "N": b["N"], "groups": groups,
        "stride": (c.get("Wstride", 1), c.get("Hstride", 1)),
        "dilation": (c.get("Wdilation", 1), c.get("Hdilation", 1)),
    }
    rebuilt = conv2d(problem.name, **params)
    if "G" in dims and groups == 1:
        return None
    if strip(rebuilt).data_spaces != strip(problem).data_spaces:
        return None
    if tuple(sorted(problem.dims)) != tuple(sorted(rebuilt.dims)):
        return None
    return params
