"""What a piece of hardware can run, and in which units: an architecture's `rules:` and
`dimension_granularity:` (native YAML, docs/formats.md), checked before any search.

* `check_layer(layer_or_problem, arch)` raises SpecError naming every rule a layer breaks
  (`rule 'kernel_sizes' of max78000: ...`); `check_network(network, arch)` also checks the rules
  that concern all layers together (weights that must all stay in the weight memory, the layer
  count).
* `prepare_problem(problem, arch)` rounds dimension bounds up to the units the hardware processes
  them in (e.g. input channels in passes of 64 processors, each a multiple of 4 = one 32-bit data
  word): the padded Problem is what the mapper maps; `padded_from` keeps the true bounds, and
  `true_macs(problem)` gives the layer's real MAC count.

Rules apply to convolution-shaped layers (conv2d, pointwise, depthwise, fc); other layer types
(matmul, add, pooling) are not checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from dse.arch.architecture import Architecture
from dse.errors import SpecError
from dse.workload.problem import Problem

# rule name -> (kind, what it means); kind: 'int' (whole number >= 1), 'ints' (list of them),
# 'groups' (false, true or 'depthwise')
RULES: dict[str, tuple[str, str]] = {
    "kernel_sizes": ("ints", "square kernels (R = S) of these sizes only"),
    "strides": ("ints", "convolution strides allowed"),
    "max_dilation": ("int", "largest dilation"),
    "allow_groups": ("groups", "grouped convolutions: false, true or depthwise (groups = C)"),
    "max_channels": ("int", "largest input and output channel count of a layer"),
    "weight_capacity_bytes": ("int", "bytes of weight memory; every layer's weights stay in it"),
    "weight_bits": ("int", "bits per weight when a layer does not give its weight width"),
    "max_layers": ("int", "largest number of conv/fc layers in one network"),
    "fc_max_inputs": ("int", "largest C*H*W of a fully connected layer (flattened input)"),
}


# ----------------------------------------------------------------------------- layer facts


@dataclass(frozen=True)
class LayerFacts:
    """What the rules look at, from a network Layer or a conv-shaped Problem."""

    name: str
    kind: str  # 'conv', 'fc' or 'other'
    C: int = 0
    K: int = 0
    R: int = 1
    S: int = 1
    H: int = 1
    W: int = 1
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    weights: int = 0
    weight_bits: int | None = None


def layer_facts(item) -> LayerFacts:
    if isinstance(item, Problem):
        return _problem_facts(item)
    if isinstance(item, LayerFacts):
        return item
    # a dse.workload.network.Layer (duck-typed to keep this module free of the network parser)
    typ, a = item.type, item.attrs
    bits = item.bits.weights if item.bits is not None else None
    if typ in ("conv2d", "pointwise", "depthwise"):
        return LayerFacts(item.name, "conv", a["C"], a["K"], a["R"], a["S"], a.get("H", 1),
                          a.get("W", 1), tuple(a["stride"]), tuple(a["dilation"]), a["groups"],
                          item.weights, bits)
    if typ == "fc":
        return LayerFacts(item.name, "fc", a["C"], a["K"], 1, 1, a.get("H", 1), a.get("W", 1),
                          weights=item.weights, weight_bits=bits)
    return LayerFacts(item.name, "other")


def _problem_facts(problem: Problem) -> LayerFacts:
    from dse.workload.layers import as_conv2d

    p = as_conv2d(problem)
    if p is None:
        return LayerFacts(problem.name, "other")
    weights = p["K"] * (p["C"] // p["groups"]) * p["R"] * p["S"]
    try:
        bits = problem.data_space("Weights").word_bits
    except KeyError:
        bits = None
    return LayerFacts(problem.name, "conv", p["C"], p["K"], p["R"], p["S"],
                      stride=tuple(p["stride"]), dilation=tuple(p["dilation"]),
                      groups=p["groups"], weights=weights, weight_bits=bits)


def _weight_bytes(f: LayerFacts, rules: dict, arch: Architecture) -> int:
    bits = f.weight_bits or rules.get("weight_bits")
    if bits is None:
        raise SpecError(f"layer {f.name} does not give its weight width and the rules of "
                        f"{arch.name} give no `weight_bits:`",
                        hint="add weight_bits to the architecture's rules")
    return math.ceil(f.weights * bits / 8)


# ----------------------------------------------------------------------------- checks


def layer_violations(item, arch: Architecture) -> list[str]:
    """One message per rule the layer breaks (empty when it runs, or when no rule applies)."""
    return [msg for _, msg in _violations(item, arch)]


def _violations(item, arch: Architecture) -> list[tuple[str, str]]:
    rules = arch.attributes.get("rules") or {}
    f = layer_facts(item)
    if not rules or f.kind == "other":
        return []
    out: list[tuple[str, str]] = []

    def rule(name: str, text: str) -> None:
        out.append((name, f"rule '{name}' of {arch.name}: layer {f.name} {text}"))

    if f.kind == "conv":
        sizes = rules.get("kernel_sizes")
        if sizes is not None and (f.R != f.S or f.R not in sizes):
            allowed = " or ".join(f"{k}x{k}" for k in sizes)
            rule("kernel_sizes", f"has a {f.R}x{f.S} kernel; {arch.name} runs {allowed} "
                                 "kernels only")
        strides = rules.get("strides")
        if strides is not None and any(s not in strides for s in f.stride):
            rule("strides", f"has stride {'x'.join(map(str, f.stride))}; {arch.name} runs "
                            f"stride {' or '.join(map(str, strides))} only (downsample with a "
                            "pooling layer instead)")
        dil = rules.get("max_dilation")
        if dil is not None and max(f.dilation) > dil:
            rule("max_dilation", f"has dilation {max(f.dilation)}; at most {dil}")
        groups = rules.get("allow_groups")
        if groups is not None and f.groups > 1:
            depthwise = f.groups == f.C
            if groups is False:
                kind = "a depthwise" if depthwise else f"a grouped (groups={f.groups})"
                rule("allow_groups", f"is {kind} convolution; {arch.name} runs groups=1 only")
            elif groups == "depthwise" and not depthwise:
                rule("allow_groups", f"is a grouped convolution (groups={f.groups}, C={f.C}); "
                                     f"{arch.name} runs groups=1 or depthwise (groups = C) only")
    else:  # fc
        n = rules.get("fc_max_inputs")
        if n is not None and f.C * f.H * f.W > n:
            rule("fc_max_inputs", f"reads {f.C}x{f.H}x{f.W} = {f.C * f.H * f.W:,} inputs; "
                                  f"a fully connected layer takes at most {n:,}")
    mc = rules.get("max_channels")
    if mc is not None and max(f.C, f.K) > mc:
        rule("max_channels", f"has {f.C} input and {f.K} output channels; at most {mc} each")
    cap = rules.get("weight_capacity_bytes")
    if cap is not None:
        need = _weight_bytes(f, rules, arch)
        if need > cap:
            rule("weight_capacity_bytes", f"needs {need:,} bytes of weights; the weight memory "
                                          f"holds {cap:,} bytes")
    return out


def check_layer(layer_or_problem, arch: Architecture) -> None:
    """Raise SpecError naming each rule of `arch` the layer breaks; return if it can run."""
    msgs = layer_violations(layer_or_problem, arch)
    if msgs:
        raise SpecError("; ".join(msgs),
                        hint="the architecture's rules: section says what the hardware runs")


def check_network(network, arch: Architecture) -> None:
    """Every layer's rules plus the rules on all layers together: their weights must all fit
    the weight memory at once, and the layer count. `network` is a dse.workload.network.Network or a
    list of its layers (or Problems)."""
    rules = arch.attributes.get("rules") or {}
    if not rules:
        return
    items = list(getattr(network, "layers", network))
    name = getattr(network, "name", None) or "these layers"
    facts = [layer_facts(x) for x in items]
    mac = [f for f in facts if f.kind != "other"]
    msgs: list[str] = []
    cap = rules.get("weight_capacity_bytes")
    if cap is not None and mac:
        total = sum(_weight_bytes(f, rules, arch) for f in mac)
        if total > cap:
            msgs.append(f"rule 'weight_capacity_bytes' of {arch.name}: the weights of the "
                        f"{len(mac)} conv/fc layers of {name} need {total:,} bytes together "
                        f"(they all stay in the weight memory); it holds {cap:,} bytes")
    ml = rules.get("max_layers")
    if ml is not None and len(mac) > ml:
        msgs.append(f"rule 'max_layers' of {arch.name}: {name} has {len(mac)} conv/fc layers; "
                    f"at most {ml}")
    # per-layer rules: the first layer's message per rule, then how many more layers break it
    by_rule: dict[str, list[str]] = {}
    for item, f in zip(items, facts, strict=True):
        for rule, msg in _violations(item, arch):
            by_rule.setdefault(rule, []).append(msg if not by_rule.get(rule) else f.name)
    for entries in by_rule.values():
        more = entries[1:]
        tail = ""
        if more:
            listed = ", ".join(more[:5]) + (", ..." if len(more) > 5 else "")
            tail = f" (and {len(more)} more layer{'s' if len(more) > 1 else ''}: {listed})"
        msgs.append(entries[0] + tail)
    if msgs:
        raise SpecError(f"{arch.name} cannot run {name}: " + "; ".join(msgs))


# ----------------------------------------------------------------------------- granularity


def padded_bound(bound: int, pass_size: int, multiple_of: int) -> int:
    """ceil(bound / pass_size) passes of ceil(bound / passes) rounded up to `multiple_of`.
    A bound of 1 is left alone (the dimension is absent, not a partial unit)."""
    if bound <= 1:
        return bound
    passes = -(-bound // pass_size)
    per = -(-bound // passes)
    per = -(-per // multiple_of) * multiple_of
    return passes * per


def prepare_problem(problem: Problem, arch: Architecture) -> tuple[Problem, list[str]]:
    """The problem to map on `arch`: bounds rounded up to its dimension_granularity, with
    `padded_from` recording the true bounds, and notes saying what changed."""
    gran = arch.attributes.get("dimension_granularity") or {}
    bounds = dict(problem.bounds)
    padded: dict[str, int] = dict(problem.padded_from or {})
    notes: list[str] = []
    for dim, (size, mult) in gran.items():
        if dim not in bounds:
            continue
        b = bounds[dim]
        new = padded_bound(b, size, mult)
        if new != b:
            passes = -(-b // size)
            padded.setdefault(dim, b)
            bounds[dim] = new
            notes.append(f"{problem.name or 'problem'}: {dim} {b} -> {new} on {arch.name} "
                         f"({passes} pass{'es' if passes > 1 else ''} of {new // passes}; "
                         f"{dim} runs in passes of up to {size}, each a multiple of {mult})")
    if not notes:
        return problem, []
    return replace(problem, bounds=bounds, padded_from=padded), notes


def true_macs(problem: Problem) -> int:
    """MACs of the layer itself (before padding) for a problem from prepare_problem."""
    bounds = dict(problem.bounds)
    bounds.update(problem.padded_from or {})
    return math.prod(bounds[d] for d in problem.dims)


__all__ = ["RULES", "check_layer", "check_network", "layer_violations", "prepare_problem",
           "true_macs", "padded_bound"]
