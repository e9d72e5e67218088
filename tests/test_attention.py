"""Tokens, attention and the hybrid built-ins (macscalc.lang.tokens, .attention)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from macscalc.analysis.memory import peak
from macscalc.cli import app
from macscalc.core.errors import ShapeError
from macscalc.lang.attention import Eltwise, MatMul
from macscalc.lang.layers import Params, Scalar, Shape
from macscalc.lang.norms import GlobalResponseNorm, GroupNorm
from macscalc.lang.tokens import (
    BiasTable,
    ClassToken,
    Heads,
    MergeHeads,
    PadChannels,
    PosEmbed,
    Reshape,
    ToImage,
    Tokens,
    ToTokens,
    WindowMerge,
    WindowPartition,
)
from tests.conftest import counted

runner = CliRunner()


# /work/shared/reference/hybrid-counts.md (timm 1.0.31, torch 2.14.1 FlopCounterMode, fused
# attention added back): MACs, params = sum(p.numel()), BN stats = running mean + var,
# weights = Conv2d + Linear weight elements.
@pytest.mark.parametrize(("spec", "timm_name", "res", "macs", "params", "bn_stats", "weights"), [
    ("deit_small", "deit_small_patch16_224", 224, 4_598_882_304, 22_050_664, 0, 21_912_576),
    ("efficientvit_m0", "efficientvit_m0", 224, 79_193_600, 2_349_436, 28_656, 2_318_040),
    ("mobilevit_s", "mobilevit_s", 256, 2_000_831_488, 5_578_632, 12_256, 5_544_688),
    ("convnextv2_femto", "convnextv2_femto", 224, 779_629_824, 5_233_240, 0, 5_194_656),
    ("efficientvit_b1", "efficientvit_b1", 224, 519_214_592, 9_102_024, 13_408, 9_071_616),
    ("fastvit_t12", "fastvit_t12", 256, 1_397_727_232, 7_553_704, 41_472, 7_492_480),
    ("efficientformer_l3", "efficientformer_l3", 224, 3_906_573_312, 31_406_000, 58_432,
     31_271_776),
    ("levit_192", "levit_192", 224, 657_022_080, 10_947_069, 55_376, 10_884_360),
    ("mobilenetv4_hybrid_large", "mobilenetv4_hybrid_large", 384, 7_711_877_120, 37_764_624,
     164_400, 37_586_936),
    ("fasternet_t1", "fasternet_t1", 224, 850_511_872, 7_595_368, 15_488, 7_578_880),
    ("starnet_s2", "starnet_s2", 224, 544_113_664, 3_682_024, 7_296, 3_657_376),
    ("repvit_m1_0", "repvit_m1_0", 224, 1_108_077_600, 7_302_796, 56_616, 7_236_684),
    # timm's default tag of tiny_vit_11m_224 is dist_in22k: create_model builds its
    # 21,841-class head (448·21,841 weights), so the row is counted with those classes
    ("tiny_vit_11m", "tiny_vit_11m_224", 224, 2_025_382_912, 20_354_581, 12_864, 20_272_864),
])
def test_hybrid_builtins_match_timm(spec, timm_name, res, macs, params, bn_stats, weights):
    classes = 21_841 if timm_name == "tiny_vit_11m_224" else 1000
    report = counted(spec, "1", res, classes=classes, params="torch")
    parts = report.param_parts
    assert (report.macs, report.params, parts.bn_stats, parts.weights) == (
        macs, params, bn_stats, weights), timm_name


def test_deit_small_attention_share():
    # hybrid-counts.md "+attn" of deit_small_patch16_224: 357,663,744 = 12 blocks ·
    # 6 heads · 197² · (64 + 64), the MACs of q·kᵀ and attn·v
    report = counted("deit_small")
    assert sum(lc.macs for lc in report.layers if lc.node.layer.kind == "matmul") == (
        357_663_744)
    # class token 384 + positional embedding 197·384 (timm cls_token, pos_embed)
    assert report.param_parts.tables == 384 + 197 * 384


def test_mobilevit_s_attention_share():
    # hybrid-counts.md "+attn" of mobilevit_s: 177,635,328, the fused attention of 4
    # grids · 4 heads over 32², 16², 8² maps halved (N = 256, 64, 16 tokens)
    report = counted("mobilevit_s")
    assert sum(lc.macs for lc in report.layers if lc.node.layer.kind == "matmul") == (
        177_635_328)


def test_mobilenetv4_hybrid_large_multi_query_attention():
    # hybrid-counts.md "+attn" of mobilenetv4_hybrid_large: 339,738,624 = 4 · 8 heads ·
    # 24²·12² · (48 + 48) (keys and values at stride 2) + 4 · 8 · 12²·12² · (64 + 64)
    report = counted("mobilenetv4_hybrid_large")
    assert sum(lc.macs for lc in report.layers if lc.node.layer.kind == "matmul") == (
        339_738_624)


def test_efficientvit_m0_attention_matmuls_and_bias_tables():
    # issue 22: q·kᵀ and attn·v of EfficientViT-M0 are 2,347,904 MACs; its attention
    # biases 780 params: 4 heads · (7² + 2·7² + 3·4²) relative offsets
    report = counted("efficientvit_m0")
    assert sum(lc.macs for lc in report.layers if lc.node.layer.kind == "matmul") == 2_347_904
    assert report.param_parts.tables == 4 * (49 + 2 * 49 + 3 * 16) == 780


def test_attention_matrix_is_live_at_the_peak():
    # DeiT-S at 224: while the scores are scaled, the 6×197×197 scores (read) and their
    # scaled copy (written) live with v (197·384, read later) and the residual input
    network = counted("deit_small").network
    p = peak(network)
    assert p.at == "vit_block1_1/attention1/scale"
    assert p.elements == 2 * 6 * 197 * 197 + 2 * 197 * 384 == 617_004


def test_layout_views_are_free_and_exact():
    img = Shape(14, 14, 64)
    assert ToTokens().out_shape([img]) == Tokens(1, 196, 64)
    assert ToImage().out_shape([Tokens(1, 196, 64)]) == img
    assert ToImage(size=(7, 28)).out_shape([Tokens(1, 196, 64)]) == Shape(7, 28, 64)
    assert WindowPartition(size=7).out_shape([img]) == Tokens(4, 49, 64)
    assert WindowPartition(size=2, mode="grid").out_shape([img]) == Tokens(4, 49, 64)
    assert WindowMerge().out_shape([Tokens(4, 49, 64)]) == img
    assert Heads(heads=4).out_shape([Tokens(4, 49, 64)]) == Tokens(16, 49, 16)
    assert MergeHeads(heads=4).out_shape([Tokens(16, 49, 16)]) == Tokens(4, 49, 64)
    assert Reshape(shape=(1536, 2, 32)).out_shape([Shape(1, 96, 1024)]) == Tokens(1536, 2, 32)
    for layer in (ToTokens(), WindowPartition(size=7)):
        out = layer.out_shape([img])
        assert (layer.macs([img], out), layer.params([img]), layer.ops([img], out)) == (
            0, Params(), {})


@pytest.mark.parametrize(("layer", "shape", "message"), [
    (Reshape(shape=(1536, 2, 16)), Shape(32, 32, 96),
     "cannot reshape 32×32×96 (98,304 elements) to 1536×2×16 (49,152 elements)"),
    (WindowPartition(size=7), Shape(16, 16, 8), "a 7×7 window does not tile the 16×16 image"),
    (ToImage(), Tokens(1, 197, 8),
     "to_image: 197 tokens are not a square grid; give size: [h, w]"),
    (ToImage(size=(14, 15)), Tokens(1, 196, 8), "to_image size 14×15 holds 210 tokens, not 196"),
    (Heads(heads=5), Tokens(1, 196, 64), "5 heads do not divide the 64 channels"),
    (ToTokens(), Tokens(1, 4, 8), "to_tokens needs an image (H×W×C), got 4×8 tokens"),
    (ClassToken(), Shape(2, 2, 8),
     "class_token needs tokens, got the image 2×2×8; use to_tokens first"),
])
def test_layout_errors(layer, shape, message):
    with pytest.raises(ShapeError) as e:
        layer.out_shape([shape])
    assert str(e.value) == message


def test_matmul_counts_multiply_accumulates():
    q, k = Tokens(6, 197, 64), Tokens(6, 197, 64)
    mm = MatMul(tb=True)
    out = mm.out_shape([q, k])
    assert out == Tokens(6, 197, 197)
    assert mm.macs([q, k], out) == 6 * 197 * 197 * 64
    # multi-query: one key sequence shared by 4 heads
    assert MatMul(tb=True).out_shape([Tokens(4, 16, 8), Tokens(1, 16, 8)]) == Tokens(4, 16, 16)
    with pytest.raises(ShapeError) as e:
        MatMul().out_shape([q, k])
    assert str(e.value) == ("cannot multiply 6×197×64 tokens by 6×197×64 tokens: need 64 rows "
                            "in each of 6 (or a divisor of 6) sequences")


def test_linear_attention_products_and_padding():
    # EfficientViT-B1's LiteMLA per head: kᵀ·v over N tokens (16 × N by N × 17, v padded
    # with a column of ones), then q·(kᵀv) (N × 16 by 16 × 17)
    k, v = Tokens(16, 196, 16), PadChannels().out_shape([Tokens(16, 196, 16)])
    assert v == Tokens(16, 196, 17)
    kv = MatMul(ta=True)
    assert kv.out_shape([k, v]) == Tokens(16, 16, 17)
    assert kv.macs([k, v], Tokens(16, 16, 17)) == 16 * 16 * 196 * 17
    out = MatMul().out_shape([Tokens(16, 196, 16), Tokens(16, 16, 17)])
    assert out == Tokens(16, 196, 17)
    assert Eltwise(op="div").out_shape([Tokens(16, 196, 16), Tokens(16, 196, 1)]) == (
        Tokens(16, 196, 16))


def test_tables_cost_parameters_and_adds_but_no_macs():
    x = Tokens(1, 196, 384)
    assert ClassToken().params([x]) == Params(tables=384)
    assert PosEmbed().params([x]) == Params(tables=196 * 384)
    assert PosEmbed().ops([x], x) == {"add": 196 * 384}
    scores = Tokens(4 * 4, 49, 49)  # 4 windows × 4 heads
    assert BiasTable(entries=49, per=4).params([scores]) == Params(tables=4 * 49)
    for layer in (ClassToken(), PosEmbed()):
        assert layer.macs([x], layer.out_shape([x])) == 0


def test_scalar_eltwise_and_groupnorm_are_extra_ops():
    x = Shape(2, 2, 8)
    assert Eltwise(op="sub").ops([x, x], x) == {"add": 32}
    assert Eltwise(op="div").out_shape([x, Shape(1, 1, 8)]) == x
    with pytest.raises(ShapeError) as e:
        Eltwise(op="sub").out_shape([x, Shape(2, 2, 4)])
    assert str(e.value) == ("sub needs inputs of one shape (or a 1×1×8 or 2×2×1 second), got "
                            "2×2×8, 2×2×4")
    assert Scalar(op="div").ops([x], x) == {"mul": 32}
    assert Scalar(op="sub").ops([x], x) == {"add": 32}
    assert GroupNorm(groups=4).params([x]) == Params(ln_scale=8, ln_shift=8)
    with pytest.raises(ShapeError, match="groupnorm groups=3 must divide the 8 channels"):
        GroupNorm(groups=3).out_shape([x])


def test_global_response_norm_costs_norm_parameters_and_extra_ops():
    # ConvNeXt-V2 (arXiv:2301.00808 Alg. 1): γ, β per channel; 6 ops per element and 3
    # per channel (see macscalc.lang.norms)
    x = Shape(7, 7, 1536)
    grn = GlobalResponseNorm()
    assert grn.params([x]) == Params(ln_scale=1536, ln_shift=1536)
    assert grn.ops([x], x) == {"bn": 6 * 7 * 7 * 1536 + 3 * 1536}
    assert grn.macs([x], x) == 0


def _fails(path, message: str) -> None:
    result = runner.invoke(app, ["count", str(path)])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {path}:{message}\n"


@pytest.mark.parametrize(("rows", "message"), [
    ("  - to_tokens: {}\n  - conv: {c: 8, k: 3}\n",
     "7:5: conv1/conv: conv2d needs an image (H×W×C), got 64×3 tokens; turn tokens back "
     "into an image first (to_image or window_merge)"),
    ("  - attention: {heads: 2}\n",
     "6:5: attention1: attention needs tokens, got the image 8×8×3; use to_tokens or "
     "window_partition first"),
    ("  - to_tokens: {}\n  - attention: {heads: 2}\n",
     "7:5: attention1: 2 heads do not divide the 3 channels; give key_dim"),
    ("  - reshape: {shape: [2, 2, 2]}\n",
     "6:5: reshape1: cannot reshape 8×8×3 (192 elements) to 2×2×2 (8 elements)"),
    ("  - window_partition: {size: 3}\n",
     "6:5: window_partition1: a 3×3 window does not tile the 8×8 image"),
])
def test_spec_errors_are_located(spec_file, rows, message):
    _fails(spec_file(rows), message)


def _totals(path) -> dict:
    result = runner.invoke(app, ["count", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["reports"][0]["totals"]


def test_attention_by_hand_matches_the_composite(spec_file, tmp_path):
    # the README's worked example, on 16 tokens of 8 channels and 2 heads: four linears
    # 4·16·8·8 = 4,096 MACs and 4·(8·8 + 8) = 288 params; q·kᵀ and attn·v 2·(2·16·16·4)
    # = 4,096 MACs
    header = "name: t\nsource: test\ninput: {size: 4, channels: 8}\nclasses: 10\n"
    by_hand = _totals(spec_file(
        "  - to_tokens: {name: x}\n"
        "  - linear: {c: 8, name: q}\n"
        "  - linear: {c: 8, name: k, from: x}\n"
        "  - linear: {c: 8, name: v, from: x}\n"
        "  - heads: {heads: 2, from: q, name: qh}\n"
        "  - heads: {heads: 2, from: k, name: kh}\n"
        "  - heads: {heads: 2, from: v, name: vh}\n"
        "  - matmul: {from: [qh, kh], tb: true}\n"
        "  - scalar: {op: mul}\n"
        "  - act: {fn: softmax}\n"
        "  - matmul: {from: [prev, vh]}\n"
        "  - merge_heads: {heads: 2}\n"
        "  - linear: {c: 8}\n", header=header))
    composite = _totals(spec_file("  - to_tokens: {}\n  - attention: {heads: 2}\n",
                                  header=header))
    assert (by_hand["macs"], by_hand["params"]) == (8_192, 288)
    assert (composite["macs"], composite["params"], composite["extra_ops"]) == (
        by_hand["macs"], by_hand["params"], by_hand["extra_ops"])


def test_readme_vit_block_by_hand_counts_deit_small(tmp_path):
    # README "Tokens and attention": the ViT block written in primitives, with DeiT-S's
    # stem and head, counts what specs/deit_small.yaml (the composite) and timm count
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Tokens and attention\n", 1)[1].split("\n## ", 1)[0]
    rows = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    spec = tmp_path / "vit.yaml"
    spec.write_text("name: vit\nsource: README\ninput: {size: 224, channels: 3}\n"
                    "classes: 1000\n" + rows, encoding="utf-8")
    totals = _totals(spec)
    assert (totals["macs"], totals["params"]) == (4_598_882_304, 22_050_664)


def test_pick_weighs_hybrids_against_mobilenets():
    # macscalc/data/hybrid.yaml (timm results-imagenet.csv): convnextv2_femto 78.476 at
    # 224, mobilevit_s 78.298 at 256; within 6 M params and 2.1 G MACs both beat
    # torchvision's EfficientNet-B0 (77.692, macscalc/data/zoo.yaml)
    result = runner.invoke(app, ["pick", "--max-params", "6M", "--max-macs", "2.1G",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    top = json.loads(result.stdout)["candidates"][:3]
    assert [(c["model"], c["accuracy"], c["macs"], c["params"]) for c in top] == [
        ("convnextv2_femto.fcmae_ft_in1k", "78.476", 779_629_824, 5_233_240),
        ("mobilevit_s.cvnets_in1k", "78.298", 2_000_831_488, 5_578_632),
        ("EfficientNet_B0", "77.692", 385_814_752, 5_288_548)]
