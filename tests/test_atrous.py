"""Atrous (dilated) convolution and output stride: PyTorch's shape rule, TF 'same',
MACs of the undilated kernel, strides turned into dilations as TF-slim and torchvision do,
and located errors."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from macscalc.cli import app
from macscalc.core.errors import MacscalcError, ShapeError
from macscalc.lang.graph import build
from macscalc.lang.layers import Conv2d, Depthwise, Shape
from macscalc.lang.spec import load_spec, parse

runner = CliRunner()


def _torch_side(n: int, k: int, s: int, d: int, p: int) -> int:
    """torch.nn.Conv2d's documented output size: ⌊(n + 2p − d·(k − 1) − 1) / s + 1⌋."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


@pytest.mark.parametrize("n", [5, 8, 13, 33])
@pytest.mark.parametrize(("k", "s", "d", "p"), [
    (3, 1, 2, 2), (3, 1, 6, 6), (3, 2, 2, 1), (5, 1, 3, 0), (3, 1, 4, 1), (7, 3, 2, 5)])
def test_dilated_shape_is_pytorchs_rule(n, k, s, d, p):
    want = _torch_side(n, k, s, d, p)
    conv = Conv2d(c=4, k=(k, k), s=(s, s), d=(d, d), padding=(p, p))
    dw = Depthwise(k=(k, k), s=(s, s), d=(d, d), padding=(p, p))
    if want <= 0:
        with pytest.raises(ShapeError, match=f"dilation {d}×{d}"):
            conv.out_shape([Shape(n, n, 4)])
        return
    assert conv.out_shape([Shape(n, n, 4)]) == Shape(want, want, 4)
    assert dw.out_shape([Shape(n, n, 4)]) == Shape(want, want, 4)


@pytest.mark.parametrize(("n", "s"), [(33, 1), (65, 2), (17, 1), (8, 2)])
def test_tf_same_ignores_the_rate(n, s):
    # TF 'same': output ⌈n / s⌉ whatever the rate (tf.nn.convolution, padding='SAME')
    for d in (1, 2, 6, 12):
        out = Conv2d(c=4, k=(3, 3), s=(s, s), d=(d, d)).out_shape([Shape(n, n, 8)])
        assert (out.h, out.w) == (-(-n // s), -(-n // s))


def test_macs_are_the_undilated_kernels():
    x = Shape(33, 33, 320)
    plain, atrous = Conv2d(c=256, k=(3, 3)), Conv2d(c=256, k=(3, 3), d=(6, 6))
    out = atrous.out_shape([x])
    # 3·3·320·256 per position at 33×33, rate or not
    assert atrous.macs([x], out) == plain.macs([x], plain.out_shape([x])) == 9 * 320 * 256 * 1089
    assert atrous.params([x]).weights == 9 * 320 * 256
    assert atrous.detail() == "3×3/1 d6"
    assert Depthwise(d=(2, 2)).detail() == "3×3/1 d2 dw"


SPEC = """\
name: t
source: test
input: {{size: {size}, channels: 8}}
classes: 10
defaults: {{bn: true, act: relu6}}
layers:
{rows}"""


def _net(rows: str, size: int = 16, **kw):
    return build(parse(SPEC.format(size=size, rows=rows), "t.yaml"), **kw)


@pytest.mark.parametrize("row", [
    "  - ir: {t: 6, c: 8, d: 2}\n",
    "  - dwsep: {c: 8, d: 2}\n",
    "  - uib: {t: 4, c: 8, k_start: 3, k_mid: 3, d: 2}\n",
    "  - dw: {d: 2}\n",
])
def test_blocks_dilate_their_depthwise(row):
    net = _net(row)
    dws = [n for n in net.nodes if n.layer.kind == "depthwise"]
    assert dws and all(n.layer.d == (2, 2) and n.out[:2] == (16, 16) for n in dws)
    undilated = _net(row.replace(", d: 2", "").replace("d: 2", ""))
    assert sum(n.layer.macs(n.in_shapes, n.out) for n in net.nodes) == sum(
        n.layer.macs(n.in_shapes, n.out) for n in undilated.nodes)


def test_a_dilation_that_does_not_fit_is_located():
    bad = SPEC.format(size=8, rows="  - conv: {c: 8, k: 3, d: 4, padding: valid}\n")
    with pytest.raises(MacscalcError) as e:
        build(parse(bad, "t.yaml"))
    assert e.value.located() == (
        "t.yaml:7:5: conv1/conv: a 3×3 window with stride 1×1 and dilation 4×4 (it spans "
        "9×9) and padding 'valid' collapses a 8×8 input to 0×0")


def _dw(net):
    return {n.name: (n.out[:2], n.layer.s, n.layer.d) for n in net.nodes
            if n.layer.kind == "depthwise"}


def test_output_stride_16_and_8_as_tf_slim():
    """mobilenet_base(output_stride=...): once the stride is reached, a layer's stride
    becomes 1, it keeps the rate it had, and later layers' rates grow by that stride."""
    spec = load_spec("mobilenet_v2")
    os32, os16, os8 = (build(spec, size=(513, 513), output_stride=o) for o in (32, 16, 8))
    assert _dw(os32) == _dw(build(spec, size=(513, 513)))  # 513 → 257 → ... → 17: stride 32
    dw16, dw8 = _dw(os16), _dw(os8)
    assert dw16["ir6_1/dw"] == ((33, 33), (1, 1), (1, 1))
    assert dw16["ir6_2/dw"] == dw16["ir7/dw"] == ((33, 33), (1, 1), (2, 2))
    assert dw8["ir4_1/dw"] == ((65, 65), (1, 1), (1, 1))
    assert dw8["ir5_1/dw"] == dw8["ir6_1/dw"] == ((65, 65), (1, 1), (2, 2))
    assert dw8["ir6_2/dw"] == dw8["ir7/dw"] == ((65, 65), (1, 1), (4, 4))
    assert os16.settings.output_stride == 16


def test_output_stride_equals_the_same_spec_written_dilated():
    """The transform against the rows written out by hand: equal shapes and MACs."""
    rows = ("  - conv: {c: 8, k: 3, s: 2}\n  - ir: {t: 6, c: 16, s: 2}\n"
            "  - ir: {t: 6, c: 16, n: 2, s: 2}\n  - ir: {t: 6, c: 24, s: 2}\n")
    written = ("  - conv: {c: 8, k: 3, s: 2}\n  - ir: {t: 6, c: 16, s: 2}\n"
               "  - ir: {t: 6, c: 16, s: 1}\n  - ir: {t: 6, c: 16, d: 2}\n"
               "  - ir: {t: 6, c: 24, s: 1, d: 2}\n")
    got, want = _net(rows, 64, output_stride=4), _net(written, 64)
    shapes = [(n.out, getattr(n.layer, "d", None)) for n in got.nodes]
    assert shapes == [(n.out, getattr(n.layer, "d", None)) for n in want.nodes]
    assert shapes[-1][0] == Shape(16, 16, 24)


def test_output_stride_follows_torchvision_dilated_resnet():
    """torchvision resnet50(replace_stride_with_dilation=[False, True, True]): layer3 and
    layer4 keep 28×28; the first block of each keeps the previous dilation (1, then 2), the
    others get 2 and 4, padded by their dilation; the projections lose their stride."""
    net = build(load_spec("resnet50"), output_stride=8)
    conv2 = {n.name: (n.layer.d, n.layer.padding, n.out[:2]) for n in net.nodes
             if n.name.endswith("conv2/conv")}
    assert conv2["bottleneck3_1/conv2/conv"][:2] == ((1, 1), (1, 1))
    assert conv2["bottleneck3_2/conv2/conv"] == ((2, 2), (2, 2), (28, 28))
    assert conv2["bottleneck4_1/conv2/conv"] == ((2, 2), (2, 2), (28, 28))
    assert conv2["bottleneck4_3/conv2/conv"] == ((4, 4), (4, 4), (28, 28))
    proj = next(n for n in net.nodes if n.name == "bottleneck4_1/residual1/proj")
    assert (proj.layer.s, proj.out) == ((1, 1), Shape(28, 28, 2048))


def test_output_stride_from_the_spec_and_the_option_wins():
    text = SPEC.format(size=32, rows="  - conv: {c: 8, k: 3, s: 2}\n  - dw: {s: 2}\n"
                       "  - dw: {}\n").replace("layers:", "output_stride: 2\nlayers:")
    spec = parse(text, "t.yaml")
    assert _dw(build(spec))["dw2/dw"] == ((16, 16), (1, 1), (2, 2))
    assert _dw(build(spec, output_stride=4))["dw2/dw"] == ((8, 8), (1, 1), (1, 1))


@pytest.mark.parametrize(("rows", "os", "message"), [
    ("  - conv: {c: 8, k: 3, s: 2}\n  - dw: {s: 4}\n", 4,
     "t.yaml:8:5: dw1/dw: output stride 4 cannot be reached: the strides take it from 2 to 8"),
    ("  - conv: {c: 8, k: 3, s: 2}\n  - pool: {op: max, k: 2, s: 2}\n", 2,
     "t.yaml:8:5: pool1: output stride 2: a pool's stride 2 cannot become a dilation (the "
     "input is already reduced 2 times)"),
])
def test_output_stride_errors_are_located(rows, os, message):
    with pytest.raises(MacscalcError) as e:
        _net(rows, 32, output_stride=os)
    assert e.value.located() == message


def test_count_output_stride_option():
    result = runner.invoke(app, ["count", "mobilenet_v2", "--res", "513", "--output-stride",
                                 "16", "--format", "json"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["reports"]
    assert report["settings"]["output_stride"] == 16
    layers = {row["name"]: row for row in report["layers"]}
    assert layers["ir7/project"]["out_shape"] == [33, 33, 320]
    # the last stage at 33×33 instead of 17×17: MobileNet V2 at 513 is 1,663,707,584 MACs
    # as written; OS 16 recomputes ir6_1 … pw1 at 1089 positions instead of 289
    assert report["totals"]["macs"] == 2_950_158_784
    bad = runner.invoke(app, ["count", "mobilenet_v2", "--output-stride", "12"])
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: ") and "output stride 12 cannot be reached" in bad.stderr
    assert "Traceback" not in bad.output


def test_alpha_and_output_stride_compose():
    spec = load_spec("mobilenet_v2")
    net = build(spec, Fraction("0.5"), (224, 224), output_stride=8)
    assert _dw(net)["ir7/dw"] == ((28, 28), (1, 1), (4, 4))
