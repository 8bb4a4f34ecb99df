"""torch.nn.Module import through torch.fx (skipped when torch is not installed)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from dse import layers as L  # noqa: E402
from dse.torch_import import import_torch  # noqa: E402
from dse.workload_library import load_workload  # noqa: E402


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.dw = nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False)
        self.pw = nn.Conv2d(32, 32, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.down = nn.Conv2d(16, 32, 1, stride=2, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.pw(self.dw(y)))
        y = y + self.down(x)
        y = nn.functional.relu(y)
        y = torch.flatten(self.pool(y), 1)
        return self.fc(y)


def test_block() -> None:
    model = Block()
    _, net, report = import_torch(model, (1, 16, 32, 32), name="block")
    names = [lay.name for lay in net.layers]
    assert names == ["conv1", "dw", "pw", "down", "add", "pool", "flatten", "fc"]
    conv1 = net.layer("conv1")
    assert conv1.bn_params == 64 and conv1.macs == 32 * 16 * 16 * 16 * 9
    dw = net.layer("dw")
    assert dw.type == "depthwise" and dw.macs == 32 * 16 * 16 * 9
    assert net.layer("add").inputs == ("pw", "down")
    assert net.layer("fc").macs == 320 and net.layer("fc").biases == 10
    assert net.stats()["params"] == sum(p.numel() for p in model.parameters())
    assert report.unsupported == {}


def test_unsupported_module_is_reported() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Hardswish(), nn.Conv2d(8, 8, 1))
    _, net, report = import_torch(model, (1, 3, 16, 16))
    assert report.unsupported == {"Hardswish": ["1"]}
    assert net.layer("1").type == "passthrough"
    assert net.stats()["macs"] == 8 * 3 * 9 * 256 + 8 * 8 * 256


def test_torchvision_resnet18_matches_the_library() -> None:
    tv = pytest.importorskip("torchvision")
    _, net, _ = import_torch(tv.models.resnet18(), (1, 3, 224, 224))
    lib = load_workload("resnet18")
    assert net.stats()["macs"] == lib.stats()["macs"] == 1_814_073_344
    assert net.stats()["params"] == lib.stats()["params"] == 11_689_512
    ours = [L.strip(lay.problem) for lay in net.layers if lay.type == "conv2d"]
    theirs = [L.strip(lay.problem) for lay in lib.layers if lay.type == "conv2d"]
    assert sorted(map(repr, ours)) == sorted(map(repr, theirs))
