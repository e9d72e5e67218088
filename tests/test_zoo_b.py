"""The zoo's ShuffleNet V2, MnasNet, EfficientNet, RegNetX and ConvNeXt specs, exact.

Every expected number is from shared/reference/framework-counts.md: torchvision 0.26
(shufflenet_v2_x1_0 at 160: torchvision 0.29), torch.utils.flop_counter.FlopCounterMode
(MACs = FLOPs / 2, conv and linear only) and sum(p.numel()) (BN γ/β included), with the
BN running mean and variance beside them; 1000 classes, batch 1.
"""

from __future__ import annotations

import pytest

from macscalc.spec import builtin_dir
from tests.conftest import counted


@pytest.mark.parametrize(("spec", "alpha", "res", "macs", "params", "bn_stats"), [
    ("shufflenet_v2_x0_5", "1", 224, 40_476_448, 1_366_792, 7_952),  # shufflenet_v2_x0_5()
    ("shufflenet_v2_x1_0", "1", 224, 144_907_992, 2_278_604, 16_180),  # shufflenet_v2_x1_0()
    ("shufflenet_v2_x1_0", "1", 160, 74_434_200, 2_278_604, 16_180),  # shufflenet_v2_x1_0()
    ("shufflenet_v2_x2_0", "1", 224, 583_253_464, 7_393_996, 33_716),  # shufflenet_v2_x2_0()
    ("mnasnet1_0", "1", 224, 314_415_872, 4_383_312, 37_920),  # mnasnet1_0()
    ("mnasnet1_0", "0.5", 224, 104_455_968, 2_218_512, 20_624),  # mnasnet0_5()
    ("efficientnet_b0", "1", 224, 385_814_752, 5_288_548, 42_016),  # efficientnet_b0()
    ("regnet_x_400mf", "1", 224, 413_812_608, 5_495_976, 37_856),  # regnet_x_400mf()
    ("convnext_tiny", "1", 224, 4_455_531_264, 28_589_128, 0),  # convnext_tiny()
])
def test_torchvision_counts(spec, alpha, res, macs, params, bn_stats):
    report = counted(spec, alpha, res, classes=1000, params="torch")
    assert (report.macs, report.params, report.param_parts.bn_stats) == (macs, params, bn_stats)


@pytest.mark.parametrize(("alpha", "params", "gmacs"), [
    ("0.75", 3_170_208, 0.215),  # MNASNet0_75_Weights meta: num_params, _ops
    ("1.3", 6_282_256, 0.526),  # MNASNet1_3_Weights meta: num_params, _ops
])
def test_mnasnet_other_widths_match_torchvision_metadata(alpha, params, gmacs):
    # torchvision models/mnasnet.py weights metadata; "_ops" is GFLOPS meaning
    # multiply-adds, rounded to three decimals
    report = counted("mnasnet1_0", alpha, 224, classes=1000, params="torch")
    assert (report.params, round(report.macs / 1e9, 3)) == (params, gmacs)


def test_convnext_tiny_layer_norms_and_layer_scale():
    # framework-counts.md notes: 23 LayerNorms (γ, β) and a per-channel layer-scale γ in
    # every block (torchvision convnext.py): LayerNorms on the stem (96), every block
    # (3·96, 3·192, 9·384, 3·768), each downsampling's input (96, 192, 384) and the head
    # (768). Together 22,944 parameters: issue 9's shortfall without these kinds.
    parts = counted("convnext_tiny").param_parts
    ln = 2 * (96 + 3 * 96 + 96 + 3 * 192 + 192 + 9 * 384 + 384 + 3 * 768 + 768)
    assert (parts.ln_scale + parts.ln_shift, parts.layer_scale) == (
        ln, 3 * 96 + 3 * 192 + 9 * 384 + 3 * 768)
    assert parts.ln_scale + parts.ln_shift + parts.layer_scale == 22_944


@pytest.mark.parametrize(("spec", "limit"), [
    # issue 9 aims: ShuffleNetV2 ≤ 35, ConvNeXt-T ≤ 30, EfficientNet-B0 ≤ 25 lines
    ("shufflenet_v2_x0_5", 35),
    ("shufflenet_v2_x1_0", 35),
    ("shufflenet_v2_x2_0", 35),
    ("convnext_tiny", 30),
    ("efficientnet_b0", 25),
])
def test_spec_line_limit(spec, limit):
    text = (builtin_dir() / f"{spec}.yaml").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(lines) <= limit
