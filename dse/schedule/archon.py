"""ARCHON (Olyaiy, Ng, Lis, ICS'21): a bottleneck block executed as predictive layer fusion.

Per block: (1) the first pointwise layer is *predicted* at low precision (ternary weights,
few-bit activations) on the adders of the 64-PE array, giving the mask of expanded activations
that survive the ReLU; (2) the depthwise layer (ShuffleNet-style blocks: the second grouped
pointwise layer) is predicted the same way; (3) one fused k x k convolution C_in -> C_out runs at
the block's output resolution on the 8 x 8 array (one output pixel per PE), its weights streaming
from DRAM (no weight scratchpad); (4) the overhead hardware (prediction buffer, binary decoder,
bit masks, muxes, adders, prediction GLB) does its work alongside.

Pure functions: shapes and design parameters in, cycles / action counts / energies out. Phase
energies are post-processed from per-(level, tensor) energies of an evaluated mapping, which the
caller supplies (dse.pipeline.archon). Choices of the reference artifact that are not physical
are taken only with `ArtifactCompat` (docs/archon.md lists each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

STYLES = ("expand_dw_project", "gpw_gpw_dw")


@dataclass(frozen=True)
class Bottleneck:
    """One fusable block. expand_dw_project: PW1 (groups g) in->mid, DW k x k on mid with the
    stride, PW2 mid->out (MobileNetV2, MnasNet, FusioNet). gpw_gpw_dw: GPW1 in->mid, GPW2 mid->out,
    DW on out with the stride (ShuffleNet); both pointwise layers at the input resolution."""

    name: str
    style: str
    in_ch: int
    mid_ch: int
    out_ch: int
    out_pixels: int
    stride: int
    kernel: int
    groups: int = 1
    layers: tuple[str, ...] = ()  # the network layers the block replaces

    @property
    def in_pixels(self) -> int:
        return self.out_pixels * self.stride


@dataclass(frozen=True)
class OverheadEnergies:
    """pJ per action of ARCHON's overhead hardware (Accelergy 45 nm, reference ERT)."""

    pred_glb_read: float = 21.203
    pred_glb_write: float = 21.456
    pred_buffer_read: float = 0.545
    pred_buffer_write: float = 0.718
    add: float = 0.054
    bitwise: float = 0.018  # bit-mask AND, each mux, binary decoder: one value in the ERT
    predictor_multiply: float = 0.22  # one scaling multiply per predicted output
    predictor_add: float = 0.043  # one full-width add per predicted MAC
    dram_word: float = 128.0  # one 16-bit word of DRAM traffic (512 pJ per 4-word vector)


@dataclass(frozen=True)
class ArchonDesign:
    pe_rows: int = 8
    pe_cols: int = 8
    adders_per_pe: int = 6
    word_bits: int = 16
    predictor_activation_bits: int = 4
    predictor_weight_bits: int = 2
    mask_bits: int = 1
    pred_glb_word_bits: int = 64
    fused_weight_density: float = 0.013  # fraction of fused weights kept after pruning
    fused_weight_index_bits: int = 10  # per kept fused weight (compressed stream)
    energies: OverheadEnergies = field(default_factory=OverheadEnergies)

    @property
    def pes(self) -> int:
        return self.pe_rows * self.pe_cols

    @property
    def prediction_lanes(self) -> int:
        """Predicted MACs per PE per cycle: each adder splits into word_bits / activation_bits
        sub-word lanes (ternary weights need no multiplier)."""
        return self.adders_per_pe * max(1, self.word_bits // self.predictor_activation_bits)


@dataclass(frozen=True)
class ArtifactCompat:
    """The reference artifact's constants where they differ from the physical model
    (compstruct/fusion-timeloop-model@ab4a7ef; docs/archon.md explains each)."""

    prediction_adders: int = 24  # ADDERS dividing the prediction cycles, whatever the precision
    overhead_adders: int = 24  # adders per PE passed to the overhead action counts
    decoder_factor: int = 24  # binary decoder ops = main cycles x this x overhead_adders
    overhead_style: str = "mobilenet"  # or "fusionet": the other copy of the overhead code
    pred_glb_as_dram: float = 128 / 18  # pred GLB energy re-priced as DRAM traffic (fusionet: 8)
    fused_weight_factor: float = 16 / 10  # bits factor on fused-weight DRAM energy, as coded
    sparse_energy_constant: float = 0.91  # not the pruning ratio; PW layers only


# ----------------------------------------------------------------------------- cycles

def phase_macs(b: Bottleneck) -> dict[str, int]:
    """MACs of the two predicted layers and of the fused main convolution."""
    pin2, p2 = b.in_pixels ** 2, b.out_pixels ** 2
    k2 = b.kernel ** 2
    if b.style == "expand_dw_project":
        pred1 = (b.in_ch // b.groups) * b.mid_ch * pin2
        pred2 = b.mid_ch * k2 * p2
    else:  # gpw_gpw_dw: both grouped pointwise layers at the input resolution
        pred1 = (b.in_ch // b.groups) * b.mid_ch * pin2
        pred2 = (b.mid_ch // b.groups) * b.out_ch * pin2
    main = (b.in_ch // b.groups) * b.out_ch * k2 * p2
    return {"pred1": pred1, "pred2": pred2, "main": main}


def prediction_cycles(macs: int, d: ArchonDesign, compat: ArtifactCompat | None) -> int:
    """Predicted MACs spread over every PE's adder lanes. The artifact floors and divides by a
    fixed ADDERS count whatever the predictor precision."""
    if compat is not None:
        return macs // (d.pes * compat.prediction_adders)
    return math.ceil(macs / (d.pes * d.prediction_lanes))


def main_cycles(b: Bottleneck, d: ArchonDesign) -> int:
    """Fused conv with one output pixel per PE (pe_rows x pe_cols pixels at a time); every
    C_in/g x C_out x k x k MAC of a pixel runs on its PE."""
    tiles = math.ceil(b.out_pixels / d.pe_rows) * math.ceil(b.out_pixels / d.pe_cols)
    return tiles * (b.in_ch // b.groups) * b.out_ch * b.kernel ** 2


def block_cycles(b: Bottleneck, d: ArchonDesign, compat: ArtifactCompat | None) -> dict[str, int]:
    m = phase_macs(b)
    return {"pred1_cycles": prediction_cycles(m["pred1"], d, compat),
            "pred2_cycles": prediction_cycles(m["pred2"], d, compat),
            "main_cycles": main_cycles(b, d)}


# ----------------------------------------------------------------------------- overhead

def overhead_actions(b: Bottleneck, d: ArchonDesign, main_c: int,
                     compat: ArtifactCompat | None) -> dict[str, float]:
    """Action counts of the overhead hardware for one block. Per-PE counts are per PE (x pes
    for the array); the others are totals."""
    p2, k2 = b.out_pixels ** 2, b.kernel ** 2
    a = d.prediction_lanes if compat is None else compat.overhead_adders
    per_pe_tiles = math.ceil(p2 / d.pes)
    if compat is not None and compat.overhead_style == "fusionet":
        glb = math.ceil((b.mid_ch + b.in_ch) * p2 / 64)
        return {"pred_glb_write": glb, "pred_glb_read": glb,
                "decoder": math.ceil(main_c * compat.decoder_factor * a),
                "pred_buffer_write": math.ceil((b.mid_ch + b.in_ch) / 8) * per_pe_tiles,
                "pred_buffer_read": a * main_c + 1,
                "add": a * main_c / 2, "mask_and": a * main_c / 2,
                "zero_flag_mux": a * main_c / 2, "zero_replace_mux": a * main_c}
    if compat is not None:
        glb = math.ceil(b.mid_ch * p2 / 64) * 2
        decoder = math.ceil(main_c * compat.decoder_factor * a)
        buf_w = math.ceil(b.mid_ch / 8) * per_pe_tiles * 9
    else:
        # one mask bit per expanded activation, written once and read once
        glb = math.ceil(b.mid_ch * p2 * d.mask_bits / d.pred_glb_word_bits)
        decoder = d.pes * a * main_c  # one decode per adder operation
        buf_w = math.ceil(b.mid_ch / d.pe_cols) * per_pe_tiles * k2
    return {"pred_glb_write": glb, "pred_glb_read": glb, "decoder": decoder,
            "pred_buffer_write": buf_w, "pred_buffer_read": a * main_c,
            "add": a * main_c, "mask_and": a * main_c,
            "zero_flag_mux": a * main_c, "zero_replace_mux": 2 * a * main_c}


def fused_weight_words(b: Bottleneck, d: ArchonDesign, compat: ArtifactCompat | None) -> float:
    """DRAM words of fused weights per block: the kept fused weights (indexed by input channel,
    expanded channel, tap and output channel), re-fetched for every pixel tile because the
    main array has no weight scratchpad."""
    cin = b.in_ch // b.groups
    mid = b.mid_ch // b.groups if (compat is not None and compat.overhead_style == "fusionet") \
        else b.mid_ch
    cout = b.out_ch
    kept = cin * mid * 9 * cout * d.fused_weight_density if compat is not None \
        else cin * mid * b.kernel ** 2 * cout * d.fused_weight_density
    if compat is not None:
        return kept * compat.fused_weight_factor * b.out_pixels ** 2 / 64
    tiles = math.ceil(b.out_pixels / d.pe_rows) * math.ceil(b.out_pixels / d.pe_cols)
    words = kept * (d.word_bits + d.fused_weight_index_bits) / d.word_bits
    return words * tiles


def overhead_energy_pJ(b: Bottleneck, d: ArchonDesign, main_c: int,
                       compat: ArtifactCompat | None) -> dict[str, float]:
    """Per-part overhead energy (pJ), named like the reference's fusion_overhead.csv."""
    e = d.energies
    n = overhead_actions(b, d, main_c, compat)
    glb = n["pred_glb_write"] * e.pred_glb_write + n["pred_glb_read"] * e.pred_glb_read
    parts = {
        "weight_DRAM": fused_weight_words(b, d, compat) * e.dram_word,
        "pred_mask": glb * (compat.pred_glb_as_dram if compat is not None else 1.0),
        "binary_decoder": n["decoder"] * e.bitwise,
        "pred_buffer": d.pes * (n["pred_buffer_write"] * e.pred_buffer_write
                                + n["pred_buffer_read"] * e.pred_buffer_read),
        "zero_replace_flag": d.pes * n["zero_flag_mux"] * e.bitwise,
        "zero_replacing": d.pes * n["zero_replace_mux"] * e.bitwise,
        "adders": d.pes * n["add"] * e.add,
        "masks_and": d.pes * n["mask_and"] * e.bitwise,
    }
    return parts


# ----------------------------------------------------------------------------- phase energies

Energies = dict[tuple[str, str], float]  # (level, tensor) -> pJ; ("compute", "") for the MACs


def _tensor(e: Energies, tensor: str, level: str | None = None) -> float:
    return sum(v for (lv, t), v in e.items() if t == tensor and (level is None or lv == level))


def prediction_energy_pJ(e: Energies, *, kind: str, macs: int, outputs: int, in_ch: int,
                         mid_ch: int, dram_out_words: int, d: ArchonDesign,
                         compat: ArtifactCompat | None, dram: str = "DRAM",
                         glb: str = "shared_glb", ifmap: str = "ifmap_spad",
                         wspad: str = "weights_spad") -> float:
    """Energy of one prediction phase from the 16-bit evaluation of the predicted layer `kind`
    ('pw' or 'dw'): traffic re-priced at the predictor's widths, MACs replaced by adds."""
    ws = d.predictor_weight_bits / d.word_bits
    r = d.predictor_activation_bits / d.word_bits
    total = sum(v for k, v in e.items() if k[0] != "compute")
    w_dram, w_spad = e.get((dram, "Weights"), 0.0), e.get((wspad, "Weights"), 0.0)
    in_dram, in_glb = e.get((dram, "Inputs"), 0.0), e.get((glb, "Inputs"), 0.0)
    in_if = e.get((ifmap, "Inputs"), 0.0)
    out_dram, out_glb = e.get((dram, "Outputs"), 0.0), e.get((glb, "Outputs"), 0.0)
    en = d.energies
    if compat is not None:
        # the artifact's adjust_pred (MobileNet/MnasNet copy), on a DW modelled as C=1
        total -= (1 - ws) * (w_dram + w_spad)
        if kind == "pw":
            total += dram_out_words * en.dram_word / d.word_bits
            total -= (1 - r) * (in_dram + in_glb + in_if + out_dram)
            mult = macs / in_ch
        else:
            total += in_dram * (mid_ch - 1)
            total -= (1 - r) * (in_dram * mid_ch + in_glb + in_if)
            total -= out_glb + out_dram
            mult = macs / 9
        return total + en.predictor_multiply * mult + en.predictor_add * macs * r
    # principled: every weight access at the ternary width, every input access at the
    # predictor width; outputs leave as a 1-bit mask (pw) or stay on chip (dw: the mask goes to
    # the prediction GLB, charged in the overhead)
    total -= (1 - ws) * _tensor(e, "Weights")
    total -= (1 - r) * _tensor(e, "Inputs")
    total -= out_dram
    if kind == "pw":
        total += dram_out_words * d.mask_bits / d.word_bits * en.dram_word
    return total + en.predictor_multiply * outputs + en.predictor_add * macs * r


def main_energy_pJ(e: Energies, dram: str = "DRAM") -> float:
    """Fused conv: everything but the DRAM weight traffic (fused weights are charged with the
    overhead, compressed)."""
    return sum(v for k, v in e.items()) - e.get((dram, "Weights"), 0.0)


# ----------------------------------------------------------------------------- baselines

def dense_dw_energy_compat_pJ(e: Energies, channels: int, dram: str = "DRAM",
                              glb: str = "shared_glb") -> float:
    """Artifact: a depthwise layer modelled as one input channel (C=1, M=channels) gets its
    input energy scaled up to all channels afterwards."""
    return sum(e.values()) + (e.get((glb, "Inputs"), 0.0) + e.get((dram, "Inputs"), 0.0)) * \
        (channels - 1)


def sparse_energy_pJ(e: Energies, *, density: float, pointwise: bool, d: ArchonDesign,
                     compat: ArtifactCompat | None, dram: str = "DRAM",
                     wspad: str = "weights_spad", ifmap: str = "ifmap_spad",
                     psum: str = "psum_spad") -> float:
    """Pruned weights on the dense mapping. Principled: weights move compressed (value + index
    per nonzero), zero weights skip their input read, MAC and partial-sum update. Artifact: a
    0.91 constant and a 10-bit index on PW layers only."""
    total = sum(e.values())
    w = e.get((dram, "Weights"), 0.0) + e.get((wspad, "Weights"), 0.0)
    if compat is not None:
        if not pointwise:
            return total
        c = compat.sparse_energy_constant
        return total - c * (6 / 16) * w - c * e.get((ifmap, "Inputs"), 0.0)
    bits = (d.word_bits + d.fused_weight_index_bits) / d.word_bits
    skipped = e.get((ifmap, "Inputs"), 0.0) + e.get((psum, "Outputs"), 0.0) + \
        e.get(("compute", ""), 0.0)
    return total - w * (1 - density * bits) - skipped * (1 - density)


# ----------------------------------------------------------------------------- graph

def _is_pointwise(layer) -> bool:
    a = layer.attrs
    return layer.type == "pointwise" or (layer.type == "conv2d" and a.get("R") == 1
                                         and a.get("S") == 1)


def _groups(layer) -> int:
    return layer.attrs.get("groups", 1) if layer.type == "conv2d" else 1


def _only_consumer(network, layer):
    nxt = network.consumers(layer.name)
    return network.layer(nxt[0]) if len(nxt) == 1 else None


def find_bottlenecks(network) -> list[Bottleneck]:
    """The blocks ARCHON fuses: an expanding pointwise layer followed by a depthwise and a
    pointwise layer (expand_dw_project) or by a pointwise and a depthwise layer (gpw_gpw_dw,
    ShuffleNet), each layer the only consumer of the one before. Other layers (head, tail) run
    one by one."""
    blocks = []
    for first in network.layers:
        if not _is_pointwise(first) or first.attrs["K"] <= first.attrs["C"]:
            continue
        second = _only_consumer(network, first)
        third = _only_consumer(network, second) if second is not None else None
        if third is None:
            continue
        if second.type == "depthwise" and _is_pointwise(third):
            style, dw, last = "expand_dw_project", second, third
        elif _is_pointwise(second) and third.type == "depthwise":
            style, dw, last = "gpw_gpw_dw", third, second
        else:
            continue
        a, ad = first.attrs, dw.attrs
        if ad["R"] != ad["S"] or ad["stride"][0] != ad["stride"][1] or ad["P"] != ad["Q"]:
            continue  # the fused array model covers square kernels and outputs
        name = first.name.split(".")[0] if "." in first.name else first.name
        blocks.append(Bottleneck(
            name=name, style=style, in_ch=a["C"], mid_ch=a["K"], out_ch=last.attrs["K"],
            out_pixels=ad["P"], stride=ad["stride"][0], kernel=ad["R"], groups=_groups(first),
            layers=(first.name, second.name, third.name)))
    return blocks
