"""Each primitive on tiny shapes, with the hand arithmetic in the assert."""

from __future__ import annotations

import pytest

from macscalc.core.errors import ShapeError
from macscalc.lang.layers import (
    KINDS,
    Activation,
    AdaptivePool,
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    ConvTranspose2d,
    Depthwise,
    Dropout,
    Flatten,
    GlobalPool,
    LayerNorm,
    LayerScale,
    Linear,
    Mul,
    Params,
    Pool,
    Scalar,
    Shape,
    ShiftMax,
    Shuffle,
    Slice,
    Upsample,
)

X = Shape(8, 8, 4)


def test_conv_same_padding_stride_2():
    conv = Conv2d(c=6, k=(3, 3), s=(2, 2), bias=True)
    out = conv.out_shape([X])
    assert out == Shape(4, 4, 6)  # TF 'same': ceil(8 / 2)
    assert conv.macs([X], out) == 3 * 3 * 4 * 6 * 4 * 4
    assert conv.params([X]) == Params(weights=3 * 3 * 4 * 6, biases=6)
    assert conv.label([X]) == "conv 3×3"


def test_conv_valid_and_explicit_padding_and_dilation():
    assert Conv2d(c=1, k=(3, 3), padding="valid").out_shape([X]) == Shape(6, 6, 1)
    assert Conv2d(c=1, k=(3, 3), padding=(1, 1)).out_shape([X]) == Shape(8, 8, 1)
    # dilation 2 spans 5 pixels: (8 - 5) // 1 + 1 = 4
    assert Conv2d(c=1, k=(3, 3), d=(2, 2), padding="valid").out_shape([X]) == Shape(4, 4, 1)
    # asymmetric kernel and stride, as MicroNet's k×1 stem
    assert Conv2d(c=2, k=(3, 1), s=(2, 1), padding=(1, 0)).out_shape([X]) == Shape(4, 8, 2)


def test_grouped_conv_divides_cost_by_groups():
    conv = Conv2d(c=8, k=(1, 1), groups=2)
    out = conv.out_shape([X])
    assert conv.macs([X], out) == (4 // 2) * 8 * 8 * 8
    assert conv.label([X]) == "group conv 1×1"


def test_groups_must_divide_channels():
    with pytest.raises(ShapeError, match=r"groups=3 must divide the input \(4\) and output \(6\)"):
        Conv2d(c=6, groups=3).out_shape([X])


def test_collapse_to_zero_is_an_error():
    with pytest.raises(ShapeError, match="collapses a 2×2 input to 0×0"):
        Conv2d(c=1, k=(3, 3), padding="valid").out_shape([Shape(2, 2, 1)])


def test_depthwise_with_channel_multiplier():
    dw = Depthwise(k=(3, 3), s=(1, 1), m=2)
    out = dw.out_shape([X])
    assert out == Shape(8, 8, 8)
    assert dw.macs([X], out) == 3 * 3 * 8 * 8 * 8
    assert dw.params([X]) == Params(weights=3 * 3 * 8)
    assert dw.label([X]) == "dw 3×3"


def test_linear_works_over_channels_at_every_position():
    fc = Linear(c=10)
    v = Shape(1, 1, 16)
    assert fc.macs([v], fc.out_shape([v])) == 16 * 10
    assert fc.params([v]) == Params(weights=160, biases=10)
    # ConvNeXt's channels-last Linear: the same cost as a 1×1 conv
    assert fc.out_shape([X]) == Shape(8, 8, 10)
    assert fc.macs([X], Shape(8, 8, 10)) == 4 * 10 * 8 * 8

def test_batchnorm_parameter_parts_and_ops():
    bn = BatchNorm()
    assert bn.params([X]) == Params(bn_scale=4, bn_shift=4, bn_stats=8)
    assert bn.ops([X], X) == {"bn": 2 * 256}
    assert bn.macs([X], X) == 0


@pytest.mark.parametrize(("fn", "per_element"), [("relu", 1), ("relu6", 2), ("hsigmoid", 4),
                                                 ("hswish", 5), ("sigmoid", 4), ("swish", 5)])
def test_activation_ops_per_element(fn, per_element):
    assert Activation(fn=fn).ops([X], X) == {"act": per_element * 256}


def test_pooling():
    avg = Pool(op="avg", k=(2, 2), s=(2, 2))
    out = avg.out_shape([X])
    assert out == Shape(4, 4, 4)
    assert avg.ops([X], out) == {"pool": 4 * 64}  # 3 adds and a divide per output
    assert Pool(op="max").ops([X], out) == {"pool": 3 * 64}
    g = GlobalPool(op="avg")
    assert g.out_shape([X]) == Shape(1, 1, 4)
    assert g.ops([X], Shape(1, 1, 4)) == {"pool": 64 * 4}


def test_add_and_mul():
    assert Add().ops([X, X, X], X) == {"add": 2 * 256}
    with pytest.raises(ShapeError, match="add needs inputs of one shape"):
        Add().out_shape([X, Shape(8, 8, 5)])
    gate = Shape(1, 1, 4)
    assert Mul().out_shape([X, gate]) == X  # SE channel gate broadcasts
    assert Mul().ops([X, gate], X) == {"mul": 256}


def test_scalar_with_a_constant_is_one_op_per_element_and_no_parameter():
    # 8·8·4 = 256 elements; sub counts as an add, div and pow as a mul, max as an act compare
    for op, category in (("add", "add"), ("sub", "add"), ("mul", "mul"), ("div", "mul"),
                         ("pow", "mul"), ("max", "act"), ("min", "act")):
        layer = Scalar(op=op)
        assert layer.out_shape([X]) == X
        assert (layer.macs([X], X), layer.params([X]), layer.ops([X], X)) == \
            (0, Params(), {category: 256})
    assert Scalar(op="sub").label([X]) == "sub constant"


def test_free_layers_cost_nothing():
    assert Flatten().out_shape([X]) == Shape(1, 1, 256)
    for layer in (Flatten(), Dropout()):
        out = layer.out_shape([X])
        assert (layer.macs([X], out), layer.params([X]), layer.ops([X], out)) == (0, Params(), {})


def test_every_kind_is_registered_once():
    import macscalc.lang.attention  # noqa: F401  (files the token and attention kinds)

    assert sorted(KINDS) == sorted(["conv2d", "depthwise", "linear", "batchnorm", "act", "pool",
                                    "global_pool", "add", "mul", "flatten", "dropout", "drop_path",
                                    "shuffle", "shiftmax", "adaptive_pool", "concat", "slice",
                                    "layernorm", "layer_scale", "upsample", "conv_transpose",
                                    "space_to_depth", "l2norm",
                                    # macscalc.lang.tokens and .attention
                                    "to_tokens", "to_image", "window_partition",
                                    "window_merge", "heads", "merge_heads", "take_tokens",
                                    "reshape", "pad_channels", "class_token", "pos_embed",
                                    "bias_table",
                                    "matmul", "scalar", "eltwise", "groupnorm", "grn"])


def test_shuffle_is_free_and_checks_groups():
    assert Shuffle(groups=2).out_shape([X]) == X
    assert Shuffle(groups=2).ops([X], X) == {}
    with pytest.raises(ShapeError, match="shuffle groups=3 must divide the 4 channels"):
        Shuffle(groups=3).out_shape([X])


def test_shift_max_fusion():
    # J = 2 channels fused per output, K = 2 maxima: 4 multiply-adds per element;
    # 1 max compare per element and 3 ops per coefficient (8·2·2 = 16 of them)
    sm = ShiftMax(j=2, k=2)
    coeffs = Shape(1, 1, 4 * 2 * 2)
    assert sm.out_shape([X, coeffs]) == X
    assert sm.ops([X, coeffs], X) == {"shiftmax": 4 * 256, "act": 256 + 3 * 16}
    assert ShiftMax(j=2, k=1).ops([X, Shape(1, 1, 8)], X) == {"shiftmax": 2 * 256, "act": 24}
    with pytest.raises(ShapeError, match="needs coefficients of shape 1×1×16, got 1×1×8"):
        sm.out_shape([X, Shape(1, 1, 8)])


def test_a_kind_registered_twice_is_a_bug():
    from typing import ClassVar

    from macscalc.lang.layers import Layer, primitive

    with pytest.raises(RuntimeError, match="kind 'conv2d' registered twice"):
        @primitive
        class Again(Layer):
            kind: ClassVar[str] = "conv2d"


def test_group_width_becomes_a_group_count():
    conv = Conv2d(c=8, k=(3, 3), group_width=2).resolve([X])
    assert conv.groups == 2  # 4 input channels / 2 per group
    assert conv.macs([X], conv.out_shape([X])) == 3 * 3 * 2 * 8 * 8 * 8
    with pytest.raises(ShapeError, match="group_width=3 must divide the 4 input channels"):
        Conv2d(c=6, group_width=3).resolve([X])


@pytest.mark.parametrize(("n", "k", "s", "p", "floor", "ceil"), [
    (112, 3, 2, 0, 55, 56),  # GoogLeNet's MaxPool2d(3, 2, ceil_mode=True) on 112
    (5, 2, 2, 0, 2, 3),  # the last window starts inside the input
    (3, 2, 2, 1, 2, 2),  # a window starting in the right padding is dropped
])
def test_pool_ceil_mode_follows_pytorch(n, k, s, p, floor, ceil):
    x = Shape(n, n, 1)
    pad = (p, p)
    assert Pool(op="max", k=(k, k), s=(s, s), padding=pad).out_shape([x]).h == floor
    assert Pool(op="max", k=(k, k), s=(s, s), padding=pad, ceil=True).out_shape([x]).h == ceil


def test_pool_padding_above_half_the_window_is_an_error():
    with pytest.raises(ValueError, match=r"pool padding \[2, 2\] is more than half the 3×3"):
        Pool(op="max", k=(3, 3), s=(2, 2), padding=(2, 2))


def test_adaptive_pool_fixes_the_output_size():
    pool = AdaptivePool(op="avg", size=(3, 3))
    out = pool.out_shape([X])
    assert out == Shape(3, 3, 4)
    # windows along 8 → 3: [0, 3), [2, 6), [5, 8): 3 + 4 + 3 = 10 per axis
    assert pool.ops([X], out) == {"pool": 10 * 10 * 4}
    assert AdaptivePool(op="max", size=(3, 3)).ops([X], out) == {"pool": (100 - 9) * 4}


def test_concat_and_slice():
    cat = Concat()
    assert cat.out_shape([X, Shape(8, 8, 6)]) == Shape(8, 8, 10)
    with pytest.raises(ShapeError, match="concat needs inputs of one spatial size, got "
                       "8×8×4, 4×4×4"):
        cat.out_shape([X, Shape(4, 4, 4)])
    assert Slice(c=2, start=2).out_shape([X]) == Shape(8, 8, 2)
    with pytest.raises(ShapeError, match="channels 3…4 are not all in the 4 input channels"):
        Slice(c=2, start=3).out_shape([X])


def test_layernorm_layer_scale_and_gelu():
    assert LayerNorm().params([X]) == Params(ln_scale=4, ln_shift=4)
    assert LayerNorm().ops([X], X) == {"bn": 7 * 256}
    assert LayerScale().params([X]) == Params(layer_scale=4)
    assert LayerScale().ops([X], X) == {"mul": 256}
    assert Activation(fn="gelu").ops([X], X) == {"act": 5 * 256}


def test_upsample():
    up = Upsample(scale=2, mode="bilinear")
    out = up.out_shape([X])
    assert out == Shape(16, 16, 4)
    assert up.ops([X], out) == {"pool": 7 * 16 * 16 * 4}
    assert Upsample(size=(5, 7)).out_shape([X]) == Shape(5, 7, 4)
    with pytest.raises(ValueError, match="exactly one of scale, size or like"):
        Upsample()


def test_conv_transpose_counts_as_pytorch_does():
    # ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1) on 8×8: side
    # (8 − 1)·2 − 2 + 2 + 1 + 1 = 16; FlopCounterMode counts over input positions:
    # kh·kw·cout·cin·hin·win
    deconv = ConvTranspose2d(c=6, k=(3, 3), s=(2, 2), padding=(1, 1), output_padding=(1, 1))
    out = deconv.out_shape([X])
    assert out == Shape(16, 16, 6)
    assert deconv.macs([X], out) == 3 * 3 * 6 * 4 * 8 * 8
    assert deconv.params([X]) == Params(weights=3 * 3 * 6 * 4)


def test_pytorch_activation_names_are_accepted():
    from macscalc.lang.schema import ACT_FN

    assert [ACT_FN(n) for n in ("silu", "hardswish", "hardsigmoid", "tanh")] == [
        "swish", "hswish", "hsigmoid", "tanh"]
