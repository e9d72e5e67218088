"""Exact integers measured in PyTorch, on torchvision's and timm's own models.

torch.utils.flop_counter.FlopCounterMode (MACs = FLOPs / 2, conv and linear only) and
sum(p.numel()) (weights, biases, BN γ/β), 1000 classes, batch 1; torch 2.11,
torchvision 0.26, timm 1.0.29.
"""

from __future__ import annotations

import pytest

from tests.conftest import counted


@pytest.mark.parametrize(("alpha", "res", "macs", "params", "bn_stats"), [
    # torchvision mobilenet_v2(width_mult=α)
    ("0.35", 224, 59_285_808, 1_677_128, 14_080),
    ("0.35", 160, 30_874_800, 1_677_128, 14_080),
    ("0.35", 96, 11_934_128, 1_677_128, 14_080),
    ("0.5", 224, 97_131_840, 1_968_680, 18_544),
    ("0.5", 160, 50_184_000, 1_968_680, 18_544),
    ("0.5", 96, 18_885_440, 1_968_680, 18_544),
    ("0.75", 224, 209_069_792, 2_636_424, 26_640),
    ("0.75", 160, 107_295_200, 2_636_424, 26_640),
    ("0.75", 96, 39_445_472, 2_636_424, 26_640),
    ("1.0", 224, 300_774_272, 3_504_872, 34_112),
    ("1.0", 160, 154_083_200, 3_504_872, 34_112),
    ("1.0", 96, 56_289_152, 3_504_872, 34_112),
    ("1.3", 224, 509_374_560, 5_386_792, 44_256),
    ("1.4", 224, 582_195_824, 6_108_776, 47_936),
    ("1.4", 96, 108_396_784, 6_108_776, 47_936),
])
def test_torchvision_mobilenet_v2(alpha, res, macs, params, bn_stats):
    report = counted("mobilenet_v2", alpha, res, classes=1000, params="torch")
    assert (report.macs, report.params, report.param_parts.bn_stats) == (macs, params, bn_stats)


def test_timm_mobilenetv1_100():
    report = counted("mobilenet_v1", "1.0", 224, classes=1000, params="torch")
    assert (report.macs, report.params, report.param_parts.bn_stats) == (
        568_740_352, 4_231_976, 21_888)


def test_slim_v1_docstring_per_layer_figures():
    # tensorflow/models research/slim/nets/mobilenet_v1.py docstring (base network:
    # no BN, no logits): Conv2d_0 864 / 10,838,016; Conv2d_1_depthwise 288 / 3,612,672;
    # Conv2d_1_pointwise 2,048 / 25,690,112; Conv2d_13_pointwise 1,048,576 / 51,380,224;
    # total 3,185,088 / 567,716,352.
    report = counted("mobilenet_v1", params="weights")
    by_name = {lc.node.name: lc for lc in report.layers}
    for name, params, macs in [("conv1/conv", 864, 10_838_016), ("dwsep1/dw", 288, 3_612_672),
                               ("dwsep1/pw", 2_048, 25_690_112),
                               ("dwsep9/pw", 1_048_576, 51_380_224)]:
        assert (by_name[name].params.weights, by_name[name].macs) == (params, macs)
    fc = by_name["fc1/fc"]
    assert report.param_parts.weights - fc.params.weights == 3_185_088
    assert report.macs - fc.macs == 567_716_352


def test_slim_v1_docstring_075_128():
    # same docstring, "75% Mobilenet V1 (base) with input size 128x128":
    # Conv2d_0 648 / 2,654,208; total 1,800,144 / 106,002,432
    report = counted("mobilenet_v1", "0.75", 128, params="weights")
    fc = report.layers[-1]
    assert (report.layers[0].params.weights, report.layers[0].macs) == (648, 2_654_208)
    assert (report.param_parts.weights - fc.params.weights, report.macs - fc.macs) == (
        1_800_144, 106_002_432)


@pytest.mark.parametrize(("spec", "alpha", "macs", "params", "bn_stats"), [
    ("mobilenet_v3_large", "1", 216_589_760, 5_483_032, 24_400),  # torchvision
    ("mobilenet_v3_small", "1", 56_510_400, 2_542_856, 12_112),  # torchvision
    ("mobilenet_v3_large", "0.75", 154_560_624, 3_993_528, 19_088),  # timm tf_..._075
    ("mobilenet_v3_small", "0.75", 43_399_344, 2_041_872, 9_680),  # timm tf_..._075
    ("mobilenet_v3_large_minimal", "1", 209_136_704, 3_924_288, 24_400),  # timm
    ("mobilenet_v3_small_minimal", "1", 52_288_448, 2_044_736, 12_112),  # timm
])
def test_mobilenet_v3(spec, alpha, macs, params, bn_stats):
    report = counted(spec, alpha, 224, classes=1000, params="torch")
    assert (report.macs, report.params, report.param_parts.bn_stats) == (macs, params, bn_stats)


@pytest.mark.parametrize(("spec", "params", "conv", "linear", "shiftmax"), [
    # the official MicroNet (liyunsheng13/micronet@ed89b26,
    # eval-script settings) built in CPU PyTorch: sum(p.numel()); conv and Linear MACs
    # and DYShiftMax's exp × numel counted with forward hooks
    ("micronet_m0", 1_019_590, 2_458_624, 990_256, 605_248),
    ("micronet_m1", 1_777_587, 3_578_176, 1_735_904, 805_952),
    ("micronet_m2", 2_393_876, 8_025_024, 2_313_104, 2_405_312),
    ("micronet_m3", 2_622_960, 15_763_104, 2_472_896, 2_571_520),
])
def test_micronet_official_model(spec, params, conv, linear, shiftmax):
    report = counted(spec, params="torch", ops=("shiftmax",))
    by_kind = {"linear": 0, "other": 0}
    for lc in report.layers:
        by_kind["linear" if lc.node.layer.kind == "linear" else "other"] += lc.macs
    assert report.params == params
    assert (by_kind["other"], by_kind["linear"]) == (conv, linear)
    assert report.ops_by_category["shiftmax"] == shiftmax


def test_v3_small_035_stem_is_the_micronet_papers_2_7m():
    # arXiv:2108.05894: "2.7M MAdds are consumed by a thin stem layer that contains a
    # single convolution with 3 input channels and 8 output channels over a 3x3 grid
    # (stride=2)" — MobileNetV3 at 12 M MAdds: 112·112·3·3·3·8
    report = counted("mobilenet_v3_small", "0.35")
    assert (report.layers[0].node.out.c, report.layers[0].macs) == (8, 2_709_504)
