"""Fused segments (dse.schedule.fused) against the point-by-point walker (tests/oracle_fused.py)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse.errors import SpecError
from dse.schedule.fused import FusedModel, Segment
from dse.spec.network import load_network_text
from dse.workload.graph import tensor_graph
from tests.oracle_fused import walk

HEAD = """
network:
  version: 1
  name: {name}
  input: {{C: 2, H: {H}, W: 5}}
  bits: {{weights: 8, activations: 8}}
  layers:
"""

CHAINS = {
    # two 3x3 convs, same size
    "conv2": ["{name: a, type: conv2d, C: 2, K: 3, H: 8, W: 5, R: 3, pad: 1, inputs: [input]}",
              "{name: b, type: conv2d, C: 3, K: 2, H: 8, W: 5, R: 3, pad: 1, inputs: [a]}"],
    # strided conv, a max pool with padding, a strided 1x1 conv (reads every other row)
    "strided": ["{name: a, type: conv2d, C: 2, K: 2, H: 9, W: 5, R: 3, stride: 2, pad: 1, "
                "inputs: [input]}",
                "{name: b, type: maxpool, C: 2, H: 5, W: 3, R: 3, stride: 1, pad: 1, inputs: [a]}",
                "{name: c, type: conv2d, C: 2, K: 3, H: 5, W: 3, R: 1, stride: 2, inputs: [b]}"],
    # a residual block: conv, conv, add(conv2, conv0)
    "residual": ["{name: a, type: conv2d, C: 2, K: 2, H: 7, W: 5, R: 3, pad: 1, inputs: [input]}",
                 "{name: b, type: conv2d, C: 2, K: 2, H: 7, W: 5, R: 3, pad: 1, inputs: [a]}",
                 "{name: c, type: depthwise, C: 2, H: 7, W: 5, R: 3, pad: 1, inputs: [b]}",
                 "{name: d, type: add, C: 2, H: 7, W: 5, inputs: [c, a]}"],
    # the skip tensor is the segment input (read from DRAM by conv and add)
    "skip_input": ["{name: a, type: conv2d, C: 2, K: 2, H: 6, W: 5, R: 3, pad: 1, "
                   "inputs: [input]}",
                   "{name: b, type: conv2d, C: 2, K: 2, H: 6, W: 5, R: 5, pad: 2, inputs: [a]}",
                   "{name: c, type: add, C: 2, H: 6, W: 5, inputs: [b, input]}"],
    # a dilated conv (rows 2 apart) then an avg pool with asymmetric padding
    "dilated": ["{name: a, type: conv2d, C: 2, K: 2, H: 9, W: 5, R: 3, dilation: 2, pad: 2, "
                "inputs: [input]}",
                "{name: b, type: avgpool, C: 2, H: 9, W: 5, R: 2, stride: 2, pad: [1, 0, 0, 1], "
                "inputs: [a]}"],
}
HEIGHT = {"conv2": 8, "strided": 9, "residual": 7, "skip_input": 6, "dilated": 9}


def network(kind: str):
    text = HEAD.format(name=kind, H=HEIGHT[kind]) + "".join(f"    - {x}\n" for x in CHAINS[kind])
    return load_network_text(text)


def compare(kind: str, tile_rows: int, modes: dict[str, str], capacity_bits: int | None):
    net = network(kind)
    names = [lay.name for lay in net.layers]
    model = FusedModel(net, default_bits=8)
    seg = Segment(tuple(names), tile_rows, "retain", modes, "buf")
    got = model.counts(seg, capacity_bits)
    every = {t: modes.get(t, "retain") for t in ["input", *names]}
    ref = walk(net, names, tile_rows, every, got.weights_resident)
    assert got.dram_read_bits - got.weight_read_bits == 8 * ref.dram_read_elements
    assert got.weight_read_bits == 8 * ref.dram_weight_elements
    assert got.dram_write_bits == 8 * ref.dram_write_elements
    assert got.buffer_peak_bits == 8 * ref.peak_elements
    assert got.ops == ref.ops
    assert got.recomputed_ops == ref.recomputed_ops
    assert got.onchip_write_bits == 8 * ref.onchip_write_elements
    assert got.onchip_read_bits == 8 * ref.onchip_read_elements
    return got


def mode_sets(kind: str):
    names = [x.split(",")[0].split(": ")[1] for x in CHAINS[kind]]
    tensors = ["input", *names[:-1]]
    yield {}
    yield {t: "recompute" for t in tensors}
    yield {tensors[-1]: "recompute"}
    yield {tensors[0]: "recompute"}


@pytest.mark.parametrize("kind", sorted(CHAINS))
def test_model_equals_walker_every_tile_height_and_halo_mode(kind):
    for th, modes, cap in itertools.product(range(1, HEIGHT[kind] + 1), list(mode_sets(kind)),
                                            (None, 1)):
        compare(kind, th, modes, cap)


def test_recomputation_recomputes_and_retention_does_not():
    retain = compare("conv2", 2, {}, None)
    recompute = compare("conv2", 2, {"input": "recompute", "a": "recompute"}, None)
    assert retain.recomputed_macs == 0
    assert recompute.recomputed_macs > 0
    # recomputation re-reads the input halo from DRAM, retention reads each row once
    assert recompute.dram_read_bits > retain.dram_read_bits
    assert retain.dram_read_bits - retain.weight_read_bits == 8 * 2 * 8 * 5


def test_weights_per_tile_when_they_do_not_fit():
    fits = compare("conv2", 2, {}, None)
    tight = compare("conv2", 2, {}, fits.activation_peak_bits)  # room for activations only
    assert fits.weights_resident and not tight.weights_resident
    assert tight.weight_read_bits == fits.weight_bits * fits.tiles


def test_segment_rules_are_enforced():
    net = network("residual")
    model = FusedModel(net, 8)
    with pytest.raises(SpecError, match="read outside the segment"):
        model.counts(Segment(("a", "b"), 1, "retain", {}, "buf"), None)
    with pytest.raises(SpecError, match="consecutive"):
        model.counts(Segment(("a", "c"), 1, "retain", {}, "buf"), None)
    with pytest.raises(SpecError, match="no layer 'bb'"):
        model.counts(Segment(("a", "bb"), 1, "retain", {}, "buf"), None)
    with pytest.raises(SpecError, match="halo mode"):
        model.counts(Segment(("a", "b", "c", "d"), 1, "keep", {}, "buf"), None)


def test_tensor_graph_binds_residual_joins():
    g = tensor_graph(network("residual"))
    assert g.bindings["d"] == {"Inputs": "c", "Inputs2": "a", "Outputs": "d"}
    assert g.bindings["a"]["Weights"] == "a.weights"
    assert g.tensors["a"].consumers == ("b", "d")
    assert g.tensors["input"].producer is None and g.tensors["input"].consumers == ("a",)
    assert g.tensors["d"].shape == (2, 7, 5)


def test_tensors_move_at_the_widths_the_layerwise_model_uses():
    """Outputs at the accumulator width (as layerwise writes them), inputs at the readers'."""
    text = HEAD.format(name="w", H=8).replace("{weights: 8, activations: 8}",
                                             "{weights: 8, activations: 4, accumulator: 32}")
    net = load_network_text(text + "".join(f"    - {x}\n" for x in CHAINS["conv2"]))
    model = FusedModel(net, default_bits=8)
    got = model.counts(Segment(("a", "b"), 3, "retain", {}, "buf"), None)
    ref = walk(net, ["a", "b"], 3, {"input": "retain", "a": "retain"}, True)
    assert got.dram_read_bits - got.weight_read_bits == 4 * ref.dram_read_elements
    assert got.dram_write_bits == 32 * ref.dram_write_elements
    assert got.weight_bits == 8 * ref.dram_weight_elements


def test_resnet18_graph_and_greedy_segments_are_valid_and_fit():
    from dse.schedule.fused import check_fits, greedy_segments
    from dse.spec.workload_library import load_workload

    net = load_workload("resnet18")
    g = tensor_graph(net)
    assert g.bindings["add2_1"] == {"Inputs": "conv2_1b", "Inputs2": "pool1",
                                    "Outputs": "add2_1"}
    assert set(g.tensors["add2_2"].consumers) == {"conv3_1a", "conv3_1_ds"}
    model = FusedModel(net, 8)
    cap = 131072 * 8
    segs = greedy_segments(model, "shared_glb", cap)
    assert segs and all(len(s.layers) >= 2 for s in segs)
    covered = [n for s in segs for n in s.layers]
    assert len(covered) == len(set(covered))
    for s in segs:
        c = model.counts(s, cap)
        check_fits(s, c, cap, "segment")
        # the chosen tile height: a taller one does not fit or moves more DRAM bytes
        if s.tile_rows < model.rows(s.layers[-1]):
            bigger = model.counts(replace(s, tile_rows=s.tile_rows + 1), cap)
            assert (bigger.activation_peak_bits > cap
                    or bigger.dram_read_bits + bigger.dram_write_bits
                    > c.dram_read_bits + c.dram_write_bits)


# random tiny chains: kernel, stride, padding and halo modes drawn by hypothesis

RANDOM_LAYER = st.tuples(st.sampled_from(["conv2d", "depthwise", "maxpool"]), st.integers(1, 2),
                         st.integers(1, 4), st.integers(1, 3), st.integers(0, 2),
                         st.sampled_from(["retain", "recompute"]))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@given(st.lists(RANDOM_LAYER, min_size=1, max_size=3), st.integers(5, 10), st.integers(1, 4),
       st.sampled_from(["retain", "recompute"]), st.booleans())
def test_model_equals_walker_on_random_chains(layers, H, tile_rows, input_mode, tight):
    lines, prev, c, h, w = [], "input", 2, H, 4
    modes = {"input": input_mode}
    for i, (typ, k, r, s, pad, mode) in enumerate(layers):
        pad = min(pad, r - 1)
        if (h + 2 * pad - r) < 0 or (w + 2 * pad - r) < 0:
            break
        k = c if typ != "conv2d" else k
        extra = "" if typ == "maxpool" else f", K: {k}"
        lines.append(f"{{name: l{i}, type: {typ}, C: {c}{extra}, H: {h}, W: {w}, R: {r}, "
                     f"stride: {s}, pad: {pad}, inputs: [{prev}]}}")
        modes[f"l{i}"] = mode
        prev, c = f"l{i}", k
        h, w = (h + 2 * pad - r) // s + 1, (w + 2 * pad - r) // s + 1
    if not lines:
        return
    text = HEAD.format(name="rand", H=H).replace("W: 5", "W: 4")
    net = load_network_text(text + "".join(f"    - {x}\n" for x in lines))
    names = [lay.name for lay in net.layers]
    model = FusedModel(net, 8)
    seg = Segment(tuple(names), tile_rows, "retain", {t: modes[t] for t in ["input", *names[:-1]]},
                  "buf")
    free = model.counts(seg, None)
    got = model.counts(seg, free.activation_peak_bits if tight else None)
    ref = walk(net, names, tile_rows, modes, got.weights_resident)
    assert got.dram_read_bits - got.weight_read_bits == 8 * ref.dram_read_elements
    assert got.weight_read_bits == 8 * ref.dram_weight_elements
    assert got.dram_write_bits == 8 * ref.dram_write_elements
    assert got.buffer_peak_bits == 8 * ref.peak_elements
    assert got.ops == ref.ops and got.recomputed_ops == ref.recomputed_ops
    assert got.onchip_write_bits == 8 * ref.onchip_write_elements
    assert got.onchip_read_bits == 8 * ref.onchip_read_elements
