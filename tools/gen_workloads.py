"""One-off generator of the network files in workloads/ (kept for reference).

The committed YAML files are the source of truth: edit them directly. Re-running this script
overwrites workloads/<name>.yaml for the networks it knows (check `git diff` afterwards).

    python tools/gen_workloads.py [NAME ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dse.layers import out_size  # noqa: E402
from dse.network import dump_network, load_network_text  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "workloads"
INT8 = {"weights": 8, "activations": 8, "bias": 16, "accumulator": 32}


def _one(v):
    return v[0] if isinstance(v, (list, tuple)) and v[0] == v[1] else list(v)


class Builder:
    """Appends layer dicts with explicit shapes and tracks each output's (C, H, W)."""

    def __init__(self, C: int, H: int, W: int | None = None) -> None:
        self.layers: list = []
        self.shape = {"input": (C, H, W or H)}

    def comment(self, text: str) -> None:
        self.layers.append(text)

    def conv(self, name: str, src: str, K: int, R: int | tuple = 1, stride: int = 1,
             pad: int | tuple | None = None, groups: int = 1, typ: str = "conv2d",
             in_shape: tuple | None = None, **extra) -> str:
        C, H, W = in_shape or self.shape[src]
        kh, kw = (R, R) if isinstance(R, int) else R
        if pad is None:
            pad = (kh // 2, kw // 2)
        if isinstance(pad, int):
            pad = (pad, pad)
        if len(pad) == 2:
            th, tw = 2 * pad[0], 2 * pad[1]
        else:
            th, tw = pad[0] + pad[2], pad[1] + pad[3]
        P, Q = out_size(H, kh, stride, th), out_size(W, kw, stride, tw)
        d: dict = {"name": name, "type": typ, "C": C, "K": K, "H": H}
        if W != H:
            d["W"] = W
        if typ == "depthwise":
            del d["K"]
            assert K == C
        if typ != "pointwise":
            d["R"] = kh
            if kw != kh:
                d["S"] = kw
        else:
            assert kh == kw == 1
        if stride != 1:
            d["stride"] = stride
        if any(pad):
            d["pad"] = _one(pad) if len(pad) == 2 else list(pad)
        if groups != 1:
            d["groups"] = groups
        d["P"] = P
        if Q != P:
            d["Q"] = Q
        d.update(extra)
        d["inputs"] = [src]
        self.layers.append(d)
        self.shape[name] = (K, P, Q)
        return name

    def pool(self, name: str, src: str, kind: str, R: int | None = None, stride: int | None = None,
             pad: int | list = 0, glob: bool = False, **extra) -> str:
        C, H, W = self.shape[src]
        d: dict = {"name": name, "type": kind, "C": C, "H": H}
        if W != H:
            d["W"] = W
        if glob:
            d["global"] = True
            P = Q = 1
        else:
            stride = stride or R
            tot = 2 * pad if isinstance(pad, int) else pad[0] + pad[2]
            P = out_size(H, R, stride, tot)
            Q = out_size(W, R, stride, tot if isinstance(pad, int) else pad[1] + pad[3])
            d["R"] = R
            d["stride"] = stride
            if pad:
                d["pad"] = pad
            d["P"] = P
        d.update(extra)
        d["inputs"] = [src]
        self.layers.append(d)
        self.shape[name] = (C, P, Q)
        return name

    def add(self, name: str, *srcs: str) -> str:
        C, H, W = self.shape[srcs[0]]
        d: dict = {"name": name, "type": "add", "C": C, "H": H}
        if W != H:
            d["W"] = W
        d["inputs"] = list(srcs)
        self.layers.append(d)
        self.shape[name] = (C, H, W)
        return name

    def concat(self, name: str, *srcs: str) -> str:
        C = sum(self.shape[s][0] for s in srcs)
        _, H, W = self.shape[srcs[0]]
        self.layers.append({"name": name, "type": "concat", "C": C, "H": H,
                            "inputs": list(srcs)})
        self.shape[name] = (C, H, W)
        return name

    def fc(self, name: str, src: str, K: int, **extra) -> str:
        C, H, W = self.shape[src]
        d: dict = {"name": name, "type": "fc", "C": C, "K": K}
        if (H, W) != (1, 1):
            d["H"] = H
            if W != H:
                d["W"] = W
        d.update(extra)
        d["inputs"] = [src]
        self.layers.append(d)
        self.shape[name] = (K, 1, 1)
        return name


# ----------------------------------------------------------------------------- ResNets


def resnet_imagenet(depth: int) -> Builder:
    blocks = {18: [2, 2, 2, 2], 50: [3, 4, 6, 3], 152: [3, 8, 36, 3]}[depth]
    bottleneck = depth >= 50
    b = Builder(3, 224)
    x = b.conv("conv1", "input", 64, 7, stride=2, pad=3)
    x = b.pool("pool1", x, "maxpool", 3, 2, 1)
    cin = 64
    for stage, n in enumerate(blocks):
        width = 64 * 2 ** stage
        cout = width * 4 if bottleneck else width
        b.comment(f"conv{stage + 2}_x: {n} {'bottleneck' if bottleneck else 'basic'} blocks, "
                  f"{width} wide")
        for i in range(n):
            s = 2 if (i == 0 and stage > 0) else 1
            p = f"conv{stage + 2}_{i + 1}"
            if bottleneck:
                y = b.conv(p + "a", x, width, 1)
                y = b.conv(p + "b", y, width, 3, stride=s)  # v1.5: stride on the 3x3
                y = b.conv(p + "c", y, cout, 1)
            else:
                y = b.conv(p + "a", x, width, 3, stride=s)
                y = b.conv(p + "b", y, width, 3)
            skip = x
            if s != 1 or cin != cout:
                skip = b.conv(p + "_ds", x, cout, 1, stride=s)
            x = b.add(f"add{stage + 2}_{i + 1}", y, skip)
            cin = cout
    x = b.pool("pool5", x, "avgpool", glob=True)
    b.fc("fc", x, 1000)
    return b


def resnet_conv2x(H: int, names: str) -> Builder:
    b = Builder(64, H)
    x = "input"
    for i in range(3):
        if names == "torch":
            p = f"conv2_{i + 1}"
            n1, n2, n3, nds, nadd = p + "a", p + "b", p + "c", p + "_ds", f"add2_{i + 1}"
        else:
            p = f"b{i}."
            n1, n2, n3, nds, nadd = p + "conv1", p + "conv2", p + "conv3", p + "skip", p + "add"
        y = b.conv(n1, x, 64, 1)
        y = b.conv(n2, y, 64, 3)
        y = b.conv(n3, y, 256, 1)
        skip = b.conv(nds, x, 256, 1) if i == 0 else x
        x = b.add(nadd, y, skip)
    return b


def resnet_cifar(blocks: list[int]) -> Builder:
    b = Builder(3, 32)
    x = b.conv("conv1", "input", 16, 3)
    cin = 16
    for stage, n in enumerate(blocks):
        planes = 16 * 2 ** stage
        for i in range(n):
            s = 2 if (i == 0 and stage > 0) else 1
            p = f"l{stage + 1}.{i}."
            y = b.conv(p + "conv1", x, planes, 3, stride=s)
            y = b.conv(p + "conv2", y, planes, 3)
            skip = x
            if s != 1 or cin != planes:
                skip = b.conv(p + "ds", x, planes, 1, stride=s)
            x = b.add(p + "add", y, skip)
            cin = planes
    x = b.pool("pool", x, "maxpool", 8, 1)
    b.fc("fc", x, 10, bias=False, note="1x1 QuantConv2d classifier without bias")
    return b


# ----------------------------------------------------------------------------- MobileNetV2


def mobilenetv2() -> Builder:
    b = Builder(3, 224)
    x = b.conv("conv0", "input", 32, 3, stride=2)
    cin = 32
    k = 0
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            k += 1
            stride = s if i == 0 else 1
            p = f"b{k}."
            y = x
            if t != 1:
                y = b.conv(p + "pw1", y, cin * t, 1, typ="pointwise")
            y = b.conv(p + "dw", y, cin * t, 3, stride=stride, typ="depthwise")
            y = b.conv(p + "pw2", y, c, 1, typ="pointwise")
            x = b.add(p + "add", y, x) if stride == 1 and cin == c else y
            cin = c
    x = b.conv("conv_last", x, 1280, 1, typ="pointwise")
    x = b.pool("pool", x, "avgpool", glob=True)
    b.fc("fc", x, 1000)
    return b


def mobilenetv2_cifar() -> Builder:
    ins = [16] + [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3
    outs = [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3 + [320]
    pixels = [32] * 5 + [16] * 6 + [8] * 5
    strides = [1] * 5 + [2] + [1] * 6 + [2] + [1] * 3
    b = Builder(3, 32)
    b.comment("head (head_and_tail/baseline/head/sim.py)")
    x = b.conv("head.conv1", "input", 32, 3)
    x = b.conv("head.PW1", x, 32, 1, typ="pointwise")
    x = b.conv("head.DW1", x, 32, 3, typ="depthwise")
    x = b.conv("head.PW2", x, 16, 1, typ="pointwise")
    b.comment("16 bottlenecks (bottlenecks/sim.py bl_* lists): decom = PW1, conv = DW, "
              "comp = PW2")
    for i in range(16):
        k = i + 1
        cin, cout, pix, s = ins[i], outs[i], pixels[i], strides[i]
        mid = 6 * cin
        p = f"b{k}."
        in_pix = pix * s
        if b.shape[x][1] != in_pix:
            why = (f"sim.py runs this PW1 at {in_pix}x{in_pix} although the previous block "
                   f"outputs {b.shape[x][1]}x{b.shape[x][2]} (reproduced as-is)")
            y = b.conv(p + "PW1", x, mid, 1, typ="pointwise", in_shape=(cin, in_pix, in_pix),
                       allow_mismatch=why)
        else:
            y = b.conv(p + "PW1", x, mid, 1, typ="pointwise")
        y = b.conv(p + "DW", y, mid, 3, stride=s, typ="depthwise")
        y = b.conv(p + "PW2", y, cout, 1, typ="pointwise")
        if s == 1 and cin == cout and b.shape[x] == b.shape[y]:
            y = b.add(p + "add", y, x)
        elif s == 1 and cin == cout:
            b.comment(f"no residual add for b{k}: its input and output sizes differ in sim.py")
        x = y
    b.comment("tail (head_and_tail/baseline/tail/sim.py)")
    x = b.conv("tail.PW1", x, 1280, 1, typ="pointwise")
    x = b.pool("tail.pool", x, "avgpool", glob=True)
    b.fc("tail.FC1", x, 10)
    return b


# ----------------------------------------------------------------------------- AlexNet, VGG


def alexnet_grouped() -> Builder:
    b = Builder(3, 227)
    x = b.conv("conv1", "input", 96, 11, stride=4, pad=0)
    x = b.pool("pool1", x, "maxpool", 3, 2)
    x = b.conv("conv2", x, 256, 5, pad=2, groups=2)
    x = b.pool("pool2", x, "maxpool", 3, 2)
    x = b.conv("conv3", x, 384, 3, pad=1)
    x = b.conv("conv4", x, 384, 3, pad=1, groups=2)
    x = b.conv("conv5", x, 256, 3, pad=1, groups=2)
    x = b.pool("pool5", x, "maxpool", 3, 2)
    x = b.fc("fc6", x, 4096)
    x = b.fc("fc7", x, 4096)
    b.fc("fc8", x, 1000)
    return b


def alexnet_torchvision() -> Builder:
    b = Builder(3, 224)
    x = b.conv("conv1", "input", 64, 11, stride=4, pad=2)
    x = b.pool("pool1", x, "maxpool", 3, 2)
    x = b.conv("conv2", x, 192, 5, pad=2)
    x = b.pool("pool2", x, "maxpool", 3, 2)
    x = b.conv("conv3", x, 384, 3, pad=1)
    x = b.conv("conv4", x, 256, 3, pad=1)
    x = b.conv("conv5", x, 256, 3, pad=1)
    x = b.pool("pool5", x, "maxpool", 3, 2)
    x = b.fc("fc6", x, 4096)
    x = b.fc("fc7", x, 4096)
    b.fc("fc8", x, 1000)
    return b


def vgg(cfg: list[int]) -> Builder:
    b = Builder(3, 224)
    x = "input"
    c = 64
    for stage, n in enumerate(cfg):
        for i in range(n):
            x = b.conv(f"conv{stage + 1}_{i + 1}", x, c, 3, pad=1)
        x = b.pool(f"pool{stage + 1}", x, "maxpool", 2, 2)
        c = min(2 * c, 512)
    x = b.fc("fc6", x, 4096)
    x = b.fc("fc7", x, 4096)
    b.fc("fc8", x, 1000)
    return b


# ----------------------------------------------------------------------------- Inception v3


def inception_v3() -> Builder:
    b = Builder(3, 299)

    def cv(name, src, K, R=1, stride=1, pad=0):
        return b.conv(name, src, K, R, stride=stride, pad=pad)

    x = cv("Conv2d_1a_3x3", "input", 32, 3, stride=2)
    x = cv("Conv2d_2a_3x3", x, 32, 3)
    x = cv("Conv2d_2b_3x3", x, 64, 3, pad=1)
    x = b.pool("maxpool1", x, "maxpool", 3, 2)
    x = cv("Conv2d_3b_1x1", x, 80, 1)
    x = cv("Conv2d_4a_3x3", x, 192, 3)
    x = b.pool("maxpool2", x, "maxpool", 3, 2)

    def block_a(m, x, pool_features):
        b.comment(f"{m}: InceptionA")
        a = cv(f"{m}.branch1x1", x, 64)
        c = cv(f"{m}.branch5x5_1", x, 48)
        c = cv(f"{m}.branch5x5_2", c, 64, 5, pad=2)
        d = cv(f"{m}.branch3x3dbl_1", x, 64)
        d = cv(f"{m}.branch3x3dbl_2", d, 96, 3, pad=1)
        d = cv(f"{m}.branch3x3dbl_3", d, 96, 3, pad=1)
        p = b.pool(f"{m}.avgpool", x, "avgpool", 3, 1, 1)
        p = cv(f"{m}.branch_pool", p, pool_features)
        return b.concat(f"{m}.concat", a, c, d, p)

    def block_b(m, x):
        b.comment(f"{m}: InceptionB")
        a = cv(f"{m}.branch3x3", x, 384, 3, stride=2)
        d = cv(f"{m}.branch3x3dbl_1", x, 64)
        d = cv(f"{m}.branch3x3dbl_2", d, 96, 3, pad=1)
        d = cv(f"{m}.branch3x3dbl_3", d, 96, 3, stride=2)
        p = b.pool(f"{m}.maxpool", x, "maxpool", 3, 2)
        return b.concat(f"{m}.concat", a, d, p)

    def block_c(m, x, c7):
        b.comment(f"{m}: InceptionC, c7 = {c7}")
        a = cv(f"{m}.branch1x1", x, 192)
        c = cv(f"{m}.branch7x7_1", x, c7)
        c = cv(f"{m}.branch7x7_2", c, c7, (1, 7), pad=(0, 3))
        c = cv(f"{m}.branch7x7_3", c, 192, (7, 1), pad=(3, 0))
        d = cv(f"{m}.branch7x7dbl_1", x, c7)
        d = cv(f"{m}.branch7x7dbl_2", d, c7, (7, 1), pad=(3, 0))
        d = cv(f"{m}.branch7x7dbl_3", d, c7, (1, 7), pad=(0, 3))
        d = cv(f"{m}.branch7x7dbl_4", d, c7, (7, 1), pad=(3, 0))
        d = cv(f"{m}.branch7x7dbl_5", d, 192, (1, 7), pad=(0, 3))
        p = b.pool(f"{m}.avgpool", x, "avgpool", 3, 1, 1)
        p = cv(f"{m}.branch_pool", p, 192)
        return b.concat(f"{m}.concat", a, c, d, p)

    def block_d(m, x):
        b.comment(f"{m}: InceptionD")
        a = cv(f"{m}.branch3x3_1", x, 192)
        a = cv(f"{m}.branch3x3_2", a, 320, 3, stride=2)
        c = cv(f"{m}.branch7x7x3_1", x, 192)
        c = cv(f"{m}.branch7x7x3_2", c, 192, (1, 7), pad=(0, 3))
        c = cv(f"{m}.branch7x7x3_3", c, 192, (7, 1), pad=(3, 0))
        c = cv(f"{m}.branch7x7x3_4", c, 192, 3, stride=2)
        p = b.pool(f"{m}.maxpool", x, "maxpool", 3, 2)
        return b.concat(f"{m}.concat", a, c, p)

    def block_e(m, x):
        b.comment(f"{m}: InceptionE (the inner 3x3 concats are folded into the module concat)")
        a = cv(f"{m}.branch1x1", x, 320)
        c = cv(f"{m}.branch3x3_1", x, 384)
        c1 = cv(f"{m}.branch3x3_2a", c, 384, (1, 3), pad=(0, 1))
        c2 = cv(f"{m}.branch3x3_2b", c, 384, (3, 1), pad=(1, 0))
        d = cv(f"{m}.branch3x3dbl_1", x, 448)
        d = cv(f"{m}.branch3x3dbl_2", d, 384, 3, pad=1)
        d1 = cv(f"{m}.branch3x3dbl_3a", d, 384, (1, 3), pad=(0, 1))
        d2 = cv(f"{m}.branch3x3dbl_3b", d, 384, (3, 1), pad=(1, 0))
        p = b.pool(f"{m}.avgpool", x, "avgpool", 3, 1, 1)
        p = cv(f"{m}.branch_pool", p, 192)
        return b.concat(f"{m}.concat", a, c1, c2, d1, d2, p)

    x = block_a("Mixed_5b", x, 32)
    x = block_a("Mixed_5c", x, 64)
    x = block_a("Mixed_5d", x, 64)
    x = block_b("Mixed_6a", x)
    for m, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = block_c(m, x, c7)
    x = block_d("Mixed_7a", x)
    x = block_e("Mixed_7b", x)
    x = block_e("Mixed_7c", x)
    x = b.pool("avgpool", x, "avgpool", glob=True)
    b.fc("fc", x, 1000)
    return b


# ----------------------------------------------------------------------------- Xception


def xception() -> Builder:
    b = Builder(3, 299)

    def sep(name, src, K):
        d = b.conv(f"{name}_dw", src, b.shape[src][0], 3, typ="depthwise", bias=False, bn=False)
        return b.conv(f"{name}_pw", d, K, 1, typ="pointwise")

    def pool(name, src):
        H = b.shape[src][1]
        P = -(-H // 2)
        tot = max((P - 1) * 2 + 3 - H, 0)
        pad = tot // 2 if tot % 2 == 0 else [tot // 2, tot // 2, tot - tot // 2, tot - tot // 2]
        return b.pool(name, src, "maxpool", 3, 2, pad)

    b.comment("entry flow")
    x = b.conv("block1_conv1", "input", 32, 3, stride=2, pad=0)
    x = b.conv("block1_conv2", x, 64, 3, pad=0)
    for blk, K in ((2, 128), (3, 256), (4, 728)):
        r = b.conv(f"block{blk}_res", x, K, 1, stride=2)
        y = sep(f"block{blk}_sepconv1", x, K)
        y = sep(f"block{blk}_sepconv2", y, K)
        y = pool(f"block{blk}_pool", y)
        x = b.add(f"block{blk}_add", y, r)
    b.comment("middle flow: 8 blocks of three separable convs")
    for blk in range(5, 13):
        y = x
        for j in (1, 2, 3):
            y = sep(f"block{blk}_sepconv{j}", y, 728)
        x = b.add(f"block{blk}_add", y, x)
    b.comment("exit flow")
    r = b.conv("block13_res", x, 1024, 1, stride=2)
    y = sep("block13_sepconv1", x, 728)
    y = sep("block13_sepconv2", y, 1024)
    y = pool("block13_pool", y)
    x = b.add("block13_add", y, r)
    x = sep("block14_sepconv1", x, 1536)
    x = sep("block14_sepconv2", x, 2048)
    x = b.pool("avg_pool", x, "avgpool", glob=True)
    b.fc("predictions", x, 1000)
    return b


# ----------------------------------------------------------------------------- the library

TORCH_DEFAULTS = {"conv2d": {"bias": False, "bn": True}}
CAFFE_DEFAULTS = {"conv2d": {"bias": True, "bn": False}}

NETWORKS = {
    "resnet18": dict(
        build=lambda: resnet_imagenet(18), defaults=TORCH_DEFAULTS, bits=INT8,
        source="torchvision resnet18 (He et al. 2016, Table 1); shapes as in "
               "tests/data/workload_shapes.md",
        header=["ResNet-18, ImageNet 224x224 (torchvision).",
                "Published: 1.814 G MACs, 11.69 M parameters (torchvision, incl. BN and fc "
                "bias)."]),
    "resnet50": dict(
        build=lambda: resnet_imagenet(50), defaults=TORCH_DEFAULTS, bits=INT8,
        source="torchvision resnet50 = ResNet-50 v1.5 (stride 2 on the 3x3 conv of the first "
               "bottleneck of a stage); He et al. 2016 Table 1",
        header=["ResNet-50 v1.5, ImageNet 224x224 (torchvision).",
                "v1 (Caffe/Keras) puts the stride on the first 1x1 and totals ~3.86 G MACs.",
                "Published: 4.09 G MACs, 25.56 M parameters."]),
    "resnet152": dict(
        build=lambda: resnet_imagenet(152), defaults=TORCH_DEFAULTS, bits=INT8,
        source="torchvision resnet152 (v1.5); He et al. 2016 Table 1",
        header=["ResNet-152 v1.5, ImageNet 224x224 (torchvision).",
                "Published: 11.5 G MACs, 60.2 M parameters."]),
    "resnet50_conv2x": dict(
        build=lambda: resnet_conv2x(56, "torch"), defaults=TORCH_DEFAULTS, bits=INT8,
        source="ResNet-50 v1.5 conv2_x stage alone (rows 2-11 of the ResNet-50 table in "
               "tests/data/workload_shapes.md), input = the 56x56x64 max-pool output",
        header=["ResNet-50 conv2_x: 3 bottleneck blocks at 56x56, 64 -> 256 channels,",
                "1x1 projection on the first block's skip path. 667.9 M MACs."]),
    "resnet50_conv2x_32": dict(
        build=lambda: resnet_conv2x(32, "npu"), defaults=TORCH_DEFAULTS,
        bits={"weights": 8, "activations": 8, "bias": 16, "accumulator": 32},
        source="AMD NPU example mlir-aie programming_examples/ml/resnet/layers_conv2_x "
               "(resnet_placed.py: tensorInW = tensorInH = 32, tensorInCInit = 64, "
               "tensorInCRest = 256)",
        header=["ResNet conv2_x as mapped on the AMD Ryzen AI NPU example: 32x32 input,",
                "3 bottleneck blocks (one per column), 64 -> 256 channels, 1x1 projection on "
                "block 0's skip.",
                "int8 weights, uint8 activations. 218.1 M MACs."]),
    "resnet8": dict(
        build=lambda: resnet_cifar([1, 1, 1]), defaults=TORCH_DEFAULTS, bits=INT8,
        source="robertoBosio/NN2FPGA models/py/models/resnet8.py: ResNet(BasicBlock, [1,1,1]), "
               "1x1 conv + BN shortcuts, 8x8 max-pool, 1x1 conv classifier",
        header=["ResNet-8, CIFAR-10 32x32 (NN2FPGA, arXiv:2309.15631): int8 weights and",
                "activations, 16-bit biases, 32-bit accumulation. Published: ~12.5 M MACs, "
                "~78 k parameters."]),
    "resnet20": dict(
        build=lambda: resnet_cifar([3, 3, 3]), defaults=TORCH_DEFAULTS, bits=INT8,
        source="robertoBosio/NN2FPGA models/py/models/resnet_brevitas_fx.py: "
               "ResNet(BasicBlock, [3,3,3]) with 1x1 conv + BN shortcuts (option B)",
        header=["ResNet-20, CIFAR-10 32x32 (NN2FPGA). He et al.'s option-A ResNet-20 has no "
                "projection convs",
                "(l2.0.ds, l3.0.ds): 40.55 M MACs, 0.27 M parameters. This file: option B."]),
    "mobilenetv2": dict(
        build=mobilenetv2, defaults=TORCH_DEFAULTS, bits=INT8,
        source="torchvision mobilenet_v2 (width 1.0, 224); Sandler et al. 2018 Table 2",
        header=["MobileNetV2 1.0, ImageNet 224x224 (torchvision).",
                "Published: 300 M MACs, 3.5 M parameters."]),
    "mobilenetv2_cifar": dict(
        build=mobilenetv2_cifar, defaults=TORCH_DEFAULTS, bits=INT8,
        source="compstruct/fusion-timeloop-model mobilenet/cifar10: head_and_tail/baseline/"
               "head/sim.py, bottlenecks/sim.py (bl_in_ch, bl_midd_ch, bl_out_ch, bl_pixels, "
               "bl_stride), head_and_tail/baseline/tail/sim.py",
        header=["CIFAR-10 MobileNetV2 of the ARCHON evaluation (baseline network for dense / "
                "sparse Eyeriss),",
                "exactly as the fusion repo lists it: 275.3 M MACs. Block 12 runs at 8x8 although "
                "block 11 outputs",
                "16x16, and block 13's PW1 runs at 16x16: reproduced as-is (allow_mismatch)."]),
    "alexnet": dict(
        build=alexnet_grouped, defaults=CAFFE_DEFAULTS,
        bits={"weights": 16, "activations": 16, "bias": 16, "accumulator": 16},
        source="Krizhevsky et al. 2012 two-tower AlexNet at 227x227, as used by Eyeriss "
               "(stanford-mast/nn_dataflow nn_dataflow/nns/alex_net.py); LRN omitted",
        header=["AlexNet, original two-group form (conv2, conv4, conv5 have groups = 2), "
                "227x227.",
                "16-bit fixed point as on Eyeriss. Published: 724.4 M MACs (666 M conv), 61 M "
                "parameters."]),
    "alexnet_torchvision": dict(
        build=alexnet_torchvision, defaults=CAFFE_DEFAULTS, bits=INT8,
        source="torchvision alexnet (single tower, 224 input, pad 2 on conv1)",
        header=["AlexNet as in torchvision (single tower). Published: 714.2 M MACs, 61.10 M "
                "parameters."]),
    "vgg16": dict(
        build=lambda: vgg([2, 2, 3, 3, 3]), defaults=CAFFE_DEFAULTS, bits=INT8,
        source="Simonyan & Zisserman 2015 configuration D (torchvision vgg16 / Keras VGG16)",
        header=["VGG16, ImageNet 224x224. Published: 15.47 G MACs, 138.36 M parameters."]),
    "vgg19": dict(
        build=lambda: vgg([2, 2, 4, 4, 4]), defaults=CAFFE_DEFAULTS, bits=INT8,
        source="Simonyan & Zisserman 2015 configuration E (torchvision vgg19 / Keras VGG19)",
        header=["VGG19, ImageNet 224x224. Published: 19.63 G MACs, 143.67 M parameters."]),
    "inception_v3": dict(
        build=inception_v3, defaults=TORCH_DEFAULTS, bits=INT8,
        source="torchvision inception_v3 at 299x299, inference graph (the AuxLogits training "
               "branch is left out); Szegedy et al. 2016",
        header=["Inception v3, ImageNet 299x299 (torchvision, no auxiliary classifier).",
                "Published: 5.7 G MACs, 23.9 M parameters (Keras, no aux)."]),
    "xception": dict(
        build=xception, defaults=TORCH_DEFAULTS, bits=INT8,
        source="Keras applications Xception (Chollet 2017, arXiv:1610.02357) at 299x299: "
               "separable convs without bias, BN after each pointwise",
        header=["Xception, ImageNet 299x299 (Keras). 'same' max-pools with stride 2 pad like "
                "TensorFlow",
                "(asymmetric where the total padding is odd). Published: ~8.4 G MACs, 22.9 M "
                "parameters."]),
}

def write(name: str) -> Path:
    cfg = NETWORKS[name]
    b = cfg["build"]()
    defaults = dict(cfg["defaults"])
    spec = {"name": name, "source": cfg["source"], "input": {"C": b.shape["input"][0],
                                                             "H": b.shape["input"][1]},
            "bits": cfg["bits"], "defaults": defaults, "layers": b.layers}
    if b.shape["input"][2] != b.shape["input"][1]:
        spec["input"]["W"] = b.shape["input"][2]
    header = list(cfg["header"]) + ["", "Format: docs/workloads.md. The layer shapes are "
                                        "checked against their producers on load.",
                                    "Generated once by tools/gen_workloads.py; this file is the "
                                    "source of truth."]
    text = dump_network(spec, header)
    load_network_text(text, f"{name}.yaml")  # validates
    path = OUT / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


if __name__ == "__main__":
    for n in sys.argv[1:] or list(NETWORKS):
        print(write(n))
