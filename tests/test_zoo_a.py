"""The classic zoo as built-in specs, exact against PyTorch (shared/reference/framework-counts.md).

Every expected number was measured with torch.utils.flop_counter.FlopCounterMode (MACs =
FLOPs / 2, conv and linear only), sum(p.numel()) for the parameters (weights, biases, BN
γ/β) and the BN running mean + var buffers; 1000 classes, batch 1. 224: torch 2.11,
torchvision 0.26; the other sizes: torch 2.14, torchvision 0.29, CPU.
"""

from __future__ import annotations

import pytest

from macscalc.spec import builtin_dir
from tests.conftest import counted


@pytest.mark.parametrize(("spec", "alpha", "res", "macs", "params", "bn_stats"), [
    ("resnet18", "1", 224, 1_814_073_344, 11_689_512, 9_600),  # torchvision resnet18()
    ("resnet34", "1", 224, 3_663_761_408, 21_797_672, 17_024),  # torchvision resnet34()
    ("resnet50", "1", 224, 4_089_184_256, 25_557_032, 53_120),  # torchvision resnet50()
    ("resnet50", "1", 160, 2_087_321_600, 25_557_032, 53_120),  # torchvision resnet50()
    ("vgg16", "1", 224, 15_470_264_320, 138_357_544, 0),  # torchvision vgg16()
    ("vgg16", "1", 256, 20_168_212_480, 138_357_544, 0),  # torchvision vgg16()
    ("alexnet", "1", 224, 714_188_480, 61_100_840, 0),  # torchvision alexnet()
    ("alexnet", "1", 256, 927_124_160, 61_100_840, 0),  # torchvision alexnet()
    ("squeezenet1_0", "1", 224, 818_924_576, 1_248_424, 0),  # torchvision squeezenet1_0()
    ("squeezenet1_0", "1", 227, 832_667_936, 1_248_424, 0),  # torchvision squeezenet1_0()
    ("squeezenet1_1", "1", 224, 349_151_936, 1_235_496, 0),  # torchvision squeezenet1_1()
    ("squeezenet1_1", "1", 227, 387_747_520, 1_235_496, 0),  # torchvision squeezenet1_1()
    # torchvision googlenet(aux_logits=False, init_weights=False)
    ("googlenet", "1", 224, 1_498_376_192, 6_624_904, 14_560),
    ("googlenet", "1", 227, 1_515_588_352, 6_624_904, 14_560),
])
def test_zoo_matches_pytorch(spec, alpha, res, macs, params, bn_stats):
    report = counted(spec, alpha, res, classes=1000, params="torch")
    assert (report.macs, report.params, report.param_parts.bn_stats) == (macs, params, bn_stats)


def _yaml_lines(spec: str) -> int:
    """Lines of YAML, not counting comments and blank lines."""
    text = (builtin_dir() / f"{spec}.yaml").read_text(encoding="utf-8")
    return sum(1 for line in text.splitlines()
               if line.strip() and not line.lstrip().startswith("#"))


@pytest.mark.parametrize(("spec", "limit"), [("resnet50", 25), ("googlenet", 40)])
def test_zoo_spec_is_compact(spec, limit):
    # issue 9, "Blocks of your own": ResNet-50 in at most 25 lines, GoogLeNet in at most 40
    assert _yaml_lines(spec) <= limit
