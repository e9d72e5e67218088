"""The timm mobile zoo (group C) counted exactly as PyTorch measures it.

Every expected number is from shared/reference/framework-counts.md: timm 1.0.29 models
under torch.utils.flop_counter.FlopCounterMode (MACs = FLOPs / 2, conv and linear only)
and sum(p.numel()) (weights, biases, BN γ/β); BN running buffers are mean + var.
1000 classes, batch 1.
"""

from __future__ import annotations

import pytest

from tests.conftest import counted


@pytest.mark.parametrize(("spec", "alpha", "res", "macs", "params", "bn_stats"), [
    ("ghostnet_100", "1", 224, 141_150_512, 5_182_508, 21_968),  # timm ghostnet_100
    ("lcnet_100", "1", 224, 155_700_480, 2_953_800, 10_944),  # timm lcnet_100
    ("lcnet_100", "0.5", 224, 44_731_008, 1_880_856, 5_472),  # timm lcnet_050
    ("mobilenetv4_conv_small", "1", 224, 186_005_568, 3_774_024, 25_088),  # timm same name
    ("fbnet_c", "1", 224, 384_960_160, 5_572_200, 44_368),  # timm fbnetc_100
    ("spnasnet_100", "1", 224, 333_467_072, 4_421_616, 39_504),  # timm spnasnet_100
])
def test_timm_zoo_exact(spec, alpha, res, macs, params, bn_stats):
    report = counted(spec, alpha, res, classes=1000, params="torch")
    assert (report.macs, report.params, report.param_parts.bn_stats) == (macs, params, bn_stats)
