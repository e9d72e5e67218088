"""Exact integers measured in PyTorch (shared/reference/framework-counts.md).

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
    for name, params, macs in [("conv0/conv", 864, 10_838_016), ("dwsep1/dw", 288, 3_612_672),
                               ("dwsep1/pw", 2_048, 25_690_112),
                               ("dwsep13/pw", 1_048_576, 51_380_224)]:
        assert (by_name[name].params.weights, by_name[name].macs) == (params, macs)
    fc = by_name["fc16/fc"]
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
