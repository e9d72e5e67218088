"""The classic and mobile zoo as built-in specs, exact against PyTorch.

Every expected number was measured with torch.utils.flop_counter.FlopCounterMode (MACs =
FLOPs / 2: conv and linear only), sum(p.numel()) for the parameters (weights, biases,
BN and LayerNorm γ/β, layer scales) and the BN running mean + variance buffers; 1000
classes, batch 1, eval mode. 224: torch 2.11, torchvision 0.26, timm 1.0.29; the other
input sizes: torch 2.14, torchvision 0.29, CPU. Each row names the constructor measured.
"""

from __future__ import annotations

import pytest

from macscalc.lang.spec import builtin_dir
from tests.conftest import counted


@pytest.mark.parametrize(("spec", "alpha", "res", "macs", "params", "bn_stats"), [
    ("resnet18", "1", 224, 1_814_073_344, 11_689_512, 9_600),  # torchvision resnet18()
    ("resnet34", "1", 224, 3_663_761_408, 21_797_672, 17_024),  # torchvision resnet34()
    ("resnet50", "1", 224, 4_089_184_256, 25_557_032, 53_120),  # torchvision resnet50()
    ("resnet50", "1", 160, 2_087_321_600, 25_557_032, 53_120),  # torchvision resnet50()
    ("vgg16", "1", 224, 15_470_264_320, 138_357_544, 0),  # torchvision vgg16()
    ("vgg16", "1", 256, 20_168_212_480, 138_357_544, 0),  # torchvision vgg16(): adaptive pool
    ("alexnet", "1", 224, 714_188_480, 61_100_840, 0),  # torchvision alexnet()
    ("alexnet", "1", 256, 927_124_160, 61_100_840, 0),  # torchvision alexnet(): adaptive pool
    ("squeezenet1_0", "1", 224, 818_924_576, 1_248_424, 0),  # torchvision squeezenet1_0()
    ("squeezenet1_0", "1", 227, 832_667_936, 1_248_424, 0),  # ceil_mode max pools
    ("squeezenet1_1", "1", 224, 349_151_936, 1_235_496, 0),  # torchvision squeezenet1_1()
    ("squeezenet1_1", "1", 227, 387_747_520, 1_235_496, 0),  # ceil_mode max pools
    # torchvision googlenet(aux_logits=False, init_weights=False)
    ("googlenet", "1", 224, 1_498_376_192, 6_624_904, 14_560),
    ("googlenet", "1", 227, 1_515_588_352, 6_624_904, 14_560),
    ("shufflenet_v2_x0_5", "1", 224, 40_476_448, 1_366_792, 7_952),  # shufflenet_v2_x0_5()
    ("shufflenet_v2_x1_0", "1", 224, 144_907_992, 2_278_604, 16_180),  # shufflenet_v2_x1_0()
    ("shufflenet_v2_x1_0", "1", 160, 74_434_200, 2_278_604, 16_180),  # shufflenet_v2_x1_0()
    ("shufflenet_v2_x2_0", "1", 224, 583_253_464, 7_393_996, 33_716),  # shufflenet_v2_x2_0()
    ("mnasnet1_0", "1", 224, 314_415_872, 4_383_312, 37_920),  # torchvision mnasnet1_0()
    ("mnasnet1_0", "0.5", 224, 104_455_968, 2_218_512, 20_624),  # torchvision mnasnet0_5()
    ("efficientnet_b0", "1", 224, 385_814_752, 5_288_548, 42_016),  # efficientnet_b0()
    ("regnet_x_400mf", "1", 224, 413_812_608, 5_495_976, 37_856),  # regnet_x_400mf()
    ("convnext_tiny", "1", 224, 4_455_531_264, 28_589_128, 0),  # torchvision convnext_tiny()
    ("mobilenet_v1", "1.25", 224, 879_516_800, 6_270_840, 27_360),  # timm mobilenetv1_125
    ("ghostnet_100", "1", 224, 141_150_512, 5_182_508, 21_968),  # timm ghostnet_100
    # timm ghostnet_050 (torch 2.14.1, timm 1.0.31): the ghost kind halves the rounded width
    ("ghostnet_100", "0.5", 224, 42_328_152, 2_587_292, 10_984),
    ("lcnet_100", "1", 224, 155_700_480, 2_953_800, 10_944),  # timm lcnet_100
    ("lcnet_100", "0.5", 224, 44_731_008, 1_880_856, 5_472),  # timm lcnet_050
    ("mobilenetv4_conv_small", "1", 224, 186_005_568, 3_774_024, 25_088),  # timm, same name
    ("fbnet_c", "1", 224, 384_960_160, 5_572_200, 44_368),  # timm fbnetc_100
    ("spnasnet_100", "1", 224, 333_467_072, 4_421_616, 39_504),  # timm spnasnet_100
    # timm mixnet_s, torch 2.14.1 and timm 1.0.31 (CPU), at 224 and 256
    ("mixnet_s", "1", 224, 239_173_360, 4_134_606, 32_192),
    ("mixnet_s", "1", 256, 311_684_800, 4_134_606, 32_192),
    # timm ghostnetv2_100, torch 2.14.1 and timm 1.0.31 (CPU): DFC attention upsampled back
    # to any size (225: 113 → 57 → 29 → 15 → 8, pooled 2×2 by floor, then up again)
    ("ghostnetv2_100", "1", 224, 167_048_288, 6_156_908, 62_384),
    ("ghostnetv2_100", "1", 256, 219_729_728, 6_156_908, 62_384),
    ("ghostnetv2_100", "1", 225, 193_676_456, 6_156_908, 62_384),
    ("ghostnetv2_100", "1.3", 224, 269_322_976, 8_960_404, 81_048),  # timm ghostnetv2_130
])
def test_zoo_matches_pytorch(spec, alpha, res, macs, params, bn_stats):
    report = counted(spec, alpha, res, classes=1000, params="torch")
    assert (report.macs, report.params, report.param_parts.bn_stats) == (macs, params, bn_stats)


@pytest.mark.parametrize(("alpha", "params", "gmacs"), [
    ("0.75", 3_170_208, 0.215),  # torchvision MNASNet0_75_Weights meta: num_params, _ops
    ("1.3", 6_282_256, 0.526),  # torchvision MNASNet1_3_Weights meta: num_params, _ops
])
def test_mnasnet_other_widths_match_torchvision_metadata(alpha, params, gmacs):
    # "_ops" (the docs' GFLOPS) is conv + linear multiply-adds, rounded to three decimals
    report = counted("mnasnet1_0", alpha, 224, classes=1000, params="torch")
    assert (report.params, round(report.macs / 1e9, 3)) == (params, gmacs)


def test_convnext_tiny_layer_norms_and_layer_scale():
    # torchvision convnext.py: 23 LayerNorms (γ, β) on the stem (96), every block (3·96,
    # 3·192, 9·384, 3·768), each downsampling's input (96, 192, 384) and the head (768), and
    # a per-channel layer-scale γ in every block: 22,944 parameters together, issue 9's
    # shortfall before these kinds existed
    parts = counted("convnext_tiny").param_parts
    ln = 2 * (96 + 3 * 96 + 96 + 3 * 192 + 192 + 9 * 384 + 384 + 3 * 768 + 768)
    assert (parts.ln_scale + parts.ln_shift, parts.layer_scale) == (
        ln, 3 * 96 + 3 * 192 + 9 * 384 + 3 * 768)
    assert parts.ln_scale + parts.ln_shift + parts.layer_scale == 22_944


@pytest.mark.parametrize(("spec", "limit"), [
    # issue 9's aims for a spec written as the paper's table with blocks of its own
    ("resnet50", 25),
    ("googlenet", 40),
    ("shufflenet_v2_x0_5", 35),
    ("shufflenet_v2_x1_0", 35),
    ("shufflenet_v2_x2_0", 35),
    ("convnext_tiny", 30),
    ("efficientnet_b0", 25),
])
def test_zoo_spec_is_compact(spec, limit):
    text = (builtin_dir() / f"{spec}.yaml").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(lines) <= limit
