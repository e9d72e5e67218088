"""Issue 20: the spec language as 23 more networks needed it. The silent wrong results
first (each test failed before its fix), then what PyTorch runs and the spec refused, then
the constructs. Expected numbers are worked out by hand in the comments."""

from __future__ import annotations

from fractions import Fraction

import pytest

from macscalc import PARAM_CONVENTIONS, Convention, build, count, parse
from macscalc.core.errors import MacscalcError

HEAD = "name: t\nsource: test\ninput: {size: 8}\nclasses: 10\n"


def _net(body: str, alpha: str = "1", size: int | None = None):
    return build(parse(HEAD + body, "t.yaml"), Fraction(alpha),
                 (size, size) if size else None)


def _count(body: str, alpha: str = "1", size: int | None = None):
    return count(_net(body, alpha, size), Convention(PARAM_CONVENTIONS["torch"]))


def _error(body: str, size: int | None = None) -> str:
    with pytest.raises(MacscalcError) as e:
        _net(body, size=size)
    return e.value.located()


# -- silent wrong results ---------------------------------------------------------------


def test_bias_in_defaults_reaches_dw_and_pw_rows():
    # ConvNeXt came out 13,536 params short: its dw and pw rows ignored `bias: true`.
    r = _count("defaults: {bias: true}\nlayers:\n  - conv: {c: 8, k: 3}\n  - dw: {k: 3}\n"
               "  - pw: {c: 16}\n  - depthwise: {k: 3}\n  - conv2d: {c: 4}\n")
    by = {lc.node.name: lc.params.weights + lc.params.biases for lc in r.layers}
    assert by["conv1/conv"] == 3 * 3 * 3 * 8 + 8  # 224
    assert by["dw1/dw"] == 3 * 3 * 8 + 8  # 80 (72 before: no bias)
    assert by["pw1/pw"] == 8 * 16 + 16  # 144 (128 before)
    assert by["depthwise1"] == 3 * 3 * 16 + 16  # 160
    assert by["conv2d1"] == 16 * 4 + 4  # 68
    # a row's own `bias: false` still wins
    r = _count("defaults: {bias: true}\nlayers:\n  - dw: {k: 3, bias: false}\n")
    assert r.params == 3 * 3 * 3  # weights only


RESIDUAL_NAMES = """blocks:
  blk:
    layers:
      - layernorm: {}
      - pw: {c: $c}
      - residual: {}
    args: {c: 8}
layers:
  - conv: {c: 8, k: 3}
  - layernorm: {}
"""


def test_residual_adds_the_block_input_even_when_a_layer_inside_has_its_name():
    # The block's input is the top-level `layernorm1`; inside the block a row is also
    # auto-named `layernorm1` (blk1/layernorm1). The identity read the block's own layer.
    net = _net(RESIDUAL_NAMES + "  - blk: {}\n")
    add = next(n for n in net.nodes if n.layer.kind == "add")
    assert add.inputs == ("blk1/pw1/pw", "layernorm1")
    # with different shapes the projection reads the block's input too (8 → 16 channels)
    net = _net(RESIDUAL_NAMES + "  - blk: {c: 16}\n")
    proj = next(n for n in net.nodes if n.name == "blk1/residual1/proj")
    assert proj.inputs == ("layernorm1",)


def test_a_numeric_padding_in_defaults_never_reaches_a_kernel_it_does_not_fit():
    # `defaults: {padding: 1}` suits 3×3 kernels; a 5×5/2 depthwise inside an ir got
    # padding 1 and the network shrank silently (8 → 3 instead of 4).
    body = ("defaults: {padding: 1}\nlayers:\n  - conv: {c: 8, k: 3}\n"
            "  - ir: {t: 2, c: 8, k: 5, s: 2}\n")
    assert _error(body) == (
        "t.yaml:8:9: padding [1, 1] from 'defaults' (line 5) does not fit this row's 5×5 "
        "kernel, which keeps its size with padding [2, 2]: write 'padding: torch' in "
        "defaults for (k−1)/2·d on every kernel, or give this row its own padding")
    # a 1×1 conv would grow by 2: refused as well
    assert "fit this row's 1×1 kernel" in _error(
        "defaults: {padding: 1}\nlayers:\n  - conv: {c: 8, k: 1}\n")
    # its own padding wins; the 3×3 rows take the default
    net = _net("defaults: {padding: 1}\nlayers:\n  - conv: {c: 8, k: 3, s: 2}\n"
               "  - ir: {t: 2, c: 8, k: 5, s: 2, padding: 2}\n  - dw: {k: 3}\n")
    assert [n.out for n in net.nodes if n.layer.kind == "depthwise"] == [(2, 2, 16), (2, 2, 8)]


# -- what PyTorch runs and the spec refused ----------------------------------------------


def test_a_residual_projects_at_odd_sizes_as_pytorch_pads():
    # 41×41 → 3×3/2 conv padded 1 → 21×21 (⌊(41 + 2 − 3)/2⌋ + 1); PyTorch's 1×1/2 shortcut
    # gives ⌈41/2⌉ = 21 too. Refused before ("an integer stride of it").
    r = _count("layers:\n  - conv: {c: 8, k: 3, s: 2, padding: 1}\n  - residual: {}\n",
               size=41)
    proj = next(lc for lc in r.layers if lc.node.name == "residual1/proj")
    assert (proj.node.in_shapes[0], proj.node.out) == ((41, 41, 3), (21, 21, 8))
    assert proj.node.layer.detail() == "1×1/2"
    assert proj.macs == 3 * 8 * 21 * 21  # 10,584
    # no strided 1×1 conv makes a larger map: still an error, naming both shapes
    assert _error("layers:\n  - conv: {c: 8, k: 3}\n  - upsample: {scale: 2}\n"
                  "  - residual: {}\n") == (
        "t.yaml:8:5: residual1: residual needs the input's shape 8×8×3 to match the "
        "output's 16×16×8 or reach its size through a 1×1 conv with a stride (⌈n/s⌉)")


def _resnet50_macs(res: int) -> int:
    """torchvision's ResNet-50 (models/resnet.py) counted independently of the spec
    language: conv MACs k²·cin·cout·hout·wout with PyTorch's output sizes."""
    def out(n: int, k: int, s: int, p: int) -> int:
        return (n + 2 * p - k) // s + 1

    h = out(res, 7, 2, 3)
    macs = 7 * 7 * 3 * 64 * h * h
    h = out(h, 3, 2, 1)  # max pool
    cin = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            s = stride if i == 0 else 1
            h2 = out(h, 3, s, 1)
            macs += cin * width * h * h + 9 * width * width * h2 * h2 + width * 4 * width * h2 * h2
            if i == 0:  # downsample: 1×1/s conv
                macs += cin * width * 4 * out(h, 1, s, 0) ** 2
            cin, h = width * 4, h2
    return macs + 2048 * 1000


def test_resnet50_builds_at_any_resolution_and_counts_as_pytorch():
    from macscalc import load_spec

    spec = load_spec("resnet50")
    torch_rule = Convention(PARAM_CONVENTIONS["torch"])
    # the independent count reproduces torchvision's FlopCounterMode figures
    # (/work/shared/reference/framework-counts.md: 4,089,184,256 at 224, 2,087,321,600 at 160)
    assert _resnet50_macs(224) == 4_089_184_256
    assert _resnet50_macs(160) == 2_087_321_600
    for res in (200, 41, 97):  # 200: 100 → 50 → 25 → 13 → 7, refused before
        report = count(build(spec, Fraction(1), (res, res)), torch_rule)
        assert report.macs == _resnet50_macs(res), res
        assert report.params == 25_557_032


def test_what_pytorch_runs_builds():
    # dropout p 0 (refused before, while p 2 was accepted) and p past 1 refused
    r = _count("layers:\n  - conv: {c: 8, k: 3}\n  - dropout: {p: 0}\n")
    assert r.macs == 3 * 3 * 3 * 8 * 8 * 8
    assert _error("layers:\n  - dropout: {p: 2}\n") == (
        "t.yaml:6:18: 'p' of 'dropout' must be a probability from 0 to 1 (at most 6 "
        "decimals, or a fraction such as '1/75'), got 2")
    # act fn none is nn.Identity: nothing placed, its name stands for its input
    net = _net("layers:\n  - conv: {c: 8, k: 3}\n  - act: {fn: none, name: ident}\n"
               "  - conv: {c: 8, k: 1, from: ident}\n")
    assert [n.name for n in net.nodes] == ["conv1/conv", "conv2/conv"]
    assert net.nodes[1].inputs == ("conv1/conv",)
    # booleans as block arguments, in conditions
    blocks = ("blocks:\n  b:\n    args: {se: false, c: 8}\n    layers:\n"
              "      - conv: {c: $c, k: 1}\n      - se: {if: $se}\n"
              "      - act: {fn: relu, if: not $se and $c > 4}\n")
    kinds = [n.layer.kind for n in _net(blocks + "layers:\n  - b: {se: true}\n").nodes]
    assert kinds == ["conv2d", "global_pool", "conv2d", "act", "conv2d", "act", "mul"]
    kinds = [n.layer.kind for n in _net(blocks + "layers:\n  - b: {}\n").nodes]
    assert kinds == ["conv2d", "act"]
    # n: 0 places nothing; a bare kind is a row with no arguments
    net = _net("layers:\n  - conv: {c: 8, k: 3, n: 0}\n  - conv: {c: 4, k: 1}\n  - flatten\n"
               "  - fc: {c: classes}\n")
    assert [n.name for n in net.nodes] == ["conv1/conv", "flatten1", "fc1/fc"]
    assert net.nodes[1].out == (1, 1, 8 * 8 * 4)
    # a block that uses itself bare is still found
    assert _error("blocks:\n  b:\n    layers:\n      - b\nlayers:\n  - b\n") == (
        "t.yaml:8:9: block 'b' uses itself: b → b")


# -- misleading errors --------------------------------------------------------------------


FUSED = """blocks:
  fusedb:
    args: {c: required, cin: $c, t: 4}
    layers:
      - conv: {c: $cin * $t, k: 3}
      - conv: {c: $c, k: 1}
layers:
"""


def test_argument_defaults_use_the_arguments_before_them_and_errors_point_at_the_default():
    net = _net(FUSED + "  - fusedb: {c: 2}\n  - fusedb: {c: 2, cin: 3, t: 1}\n")
    assert [n.out.c for n in net.nodes] == [8, 2, 3, 2]  # 2·4, 2, then 3·1, 2
    # a default that names an argument declared after it: the error is at the default
    # (was: "'$c' is not a number (in block 'fused' used at line 16)", at the use)
    bad = FUSED.replace("{c: required, cin: $c, t: 4}", "{cin: $c, c: required, t: 4}")
    assert _error(bad + "  - fusedb: {c: 2}\n") == (
        "t.yaml:7:17: unknown argument $c (known: none) (in the default of 'cin' of block "
        "'fusedb', used at line 12)")


# -- constructs --------------------------------------------------------------------------


def test_words_and_booleans_in_conditions_and_arguments():
    spec = ("blocks:\n  b:\n    args: {act: relu, se: false}\n    layers:\n"
            "      - conv: {c: 8, k: 1, act: $act}\n"
            "      - act: {fn: hswish, if: $act == relu and not $se}\n"
            "      - act: {fn: sigmoid, if: \"$act != 'relu'\"}\n"
            "layers:\n  - b: {}\n  - b: {act: swish}\n")
    assert [n.layer.label(n.in_shapes) for n in _net(spec).nodes if n.layer.kind == "act"] == [
        "relu", "hswish", "swish", "sigmoid"]
    assert "'relu' is not a number" in _error(
        "blocks:\n  b:\n    args: {act: relu}\n    layers:\n      - conv: {c: $act * 2}\n"
        "layers:\n  - b: {}\n")


def test_the_repeat_index_and_drop_path():
    # EfficientNet's stochastic depth, 0.2·i/3 over four repeats: free at inference
    spec = ("blocks:\n  b:\n    args: {s: 1}\n    layers:\n      - conv: {c: 8, k: 3, s: $s}\n"
            "      - drop_path: {p: 0.2 * $i / 3}\n"
            "      - conv: {c: 8, k: 1, s: 1, if: $i == 3}\n"
            "layers:\n  - b: {s: 2, n: 4}\n")
    net = _net(spec)
    assert [(n.name, n.out) for n in net.nodes] == [
        ("b1_1/conv1/conv", (4, 4, 8)), ("b1_2/conv1/conv", (4, 4, 8)),
        ("b1_3/conv1/conv", (4, 4, 8)), ("b1_4/conv1/conv", (4, 4, 8)),
        ("b1_4/conv2/conv", (4, 4, 8))]
    assert "'i' of block 'b' is set by the builder" in _error(
        "blocks:\n  b:\n    args: {i: 1}\n    layers:\n      - flatten\nlayers:\n  - b\n")
    assert "'p' of 'drop_path' must be a probability" in _error(
        "layers:\n  - drop_path: {p: 1.5}\n")


def test_the_repeat_index_in_a_uses_arguments():
    # GhostNet's last stage: SE on every second of four repeats, `se: $i % 2 / 4` on one
    # row, is the same network as the four rows written out (se 0, 0.25, 0, 0.25)
    block = ("blocks:\n  b:\n    args: {se: 0}\n    layers:\n      - pw: {c: 16}\n"
             "      - se: {r: $se, if: $se > 0}\n")
    one = _net(block + "layers:\n  - b: {se: $i % 2 / 4, n: 4}\n")
    four = _net(block + "layers:\n" + "".join(f"  - b: {{se: {v}}}\n" for v in
                                                   ("0", "0.25", "0", "0.25")))
    assert [n.layer.label(n.in_shapes) for n in one.nodes] == \
        [n.layer.label(n.in_shapes) for n in four.nodes]
    assert [n.layer.kind for n in one.nodes].count("global_pool") == 2  # two SE blocks


@pytest.mark.parametrize(("alpha", "depth", "res", "params", "gmacs"), [
    # torchvision models/efficientnet.py: efficientnet_bN = _efficientnet_conf(width_mult,
    # depth_mult) at the weights' crop; EfficientNet_BN_Weights meta num_params and _ops
    # (conv + linear multiply-accumulates in billions, three decimals)
    ("1.0", "1.1", 240, 7_794_184, 0.687),  # B1
    ("1.1", "1.2", 288, 9_109_994, 1.088),  # B2
    ("1.2", "1.4", 300, 12_233_232, 1.827),  # B3
    ("1.4", "1.8", 380, 19_341_616, 4.394),  # B4
    ("1.6", "2.2", 456, 30_389_784, 10.266),  # B5
])
def test_efficientnet_b1_to_b5_from_b0_rows_and_a_depth_multiplier(alpha, depth, res, params,
                                                                  gmacs):
    from macscalc import load_spec

    spec = load_spec("efficientnet_b0", Fraction(depth))
    report = count(build(spec, Fraction(alpha), (res, res)),
                   Convention(PARAM_CONVENTIONS["torch"]))
    assert (report.params, round(report.macs / 1e9, 3)) == (params, gmacs)


def test_a_spec_fixes_its_own_alpha_and_depth_and_takes_a_whole_base(tmp_path):
    import json

    from typer.testing import CliRunner

    from macscalc.cli import app

    runner = CliRunner()
    # specs/efficientnet_b3.yaml: base efficientnet_b0, alpha 1.2, depth 1.4, 300×300
    result = runner.invoke(app, ["count", "efficientnet_b3", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["reports"][0]
    assert report["settings"] == {"alpha": "1.2", "resolution": [300, 300], "classes": 1000,
                                  "rounding": "make_divisible_8", "depth": "1.4"}
    assert (report["totals"]["macs"], report["totals"]["params"]) == (1_827_141_392,
                                                                      12_233_232)
    # the options replace the spec's own: B0 again; on the command line, B3 from B0
    result = runner.invoke(app, ["count", "efficientnet_b3", "--alpha", "1", "--depth", "1",
                                 "--res", "224", "--format", "json"])
    assert json.loads(result.stdout)["reports"][0]["totals"]["params"] == 5_288_548
    result = runner.invoke(app, ["count", "efficientnet_b0", "--alpha", "1.2", "--depth",
                                 "1.4", "--res", "300"])
    assert result.exit_code == 0, result.output
    assert "depth 1.4 (each written n → ⌈n·depth⌉)" in result.stdout
    assert "MACs: 1,827,141,392" in result.stdout
    result = runner.invoke(app, ["compare", "efficientnet_b0", "efficientnet_b0 --depth 1.4"])
    assert result.exit_code == 0, result.output
    assert "efficientnet_b0 α1.0 224 d1.4" in result.stdout
    # only rows that write n are scaled: ⌈2·1.5⌉ = 3 repeats, the stem stays one
    net = _net("depth: 1.5\nlayers:\n  - conv: {c: 8, k: 3}\n  - conv: {c: 8, k: 3, n: 2}\n")
    assert [n.name for n in net.nodes] == ["conv1/conv", "conv2_1/conv", "conv2_2/conv",
                                          "conv2_3/conv"]
    assert _error("depth: 0\nlayers:\n  - flatten\n") == (
        "t.yaml:5:8: 'depth' of the spec must be a positive number up to 16 (at most 6 "
        "decimals), got 0")
    assert _error("base: {until: x}\n") == (
        "t.yaml:5:7: 'base' needs 'spec' (a spec name, and optionally 'until', the layer it "
        "ends with)")


def test_fused_mbconv_and_efficientnet_v2_s_as_torchvision():
    # torchvision EfficientNet_V2_S_Weights meta: num_params 21,458,488, _ops 8.366 (G MACs)
    # at the 384 crop (models/efficientnet.py)
    from tests.conftest import counted

    report = counted("efficientnet_v2_s")
    assert (report.params, round(report.macs / 1e9, 3)) == (21_458_488, 8.366)
    assert report.macs == 8_365_617_152
    # t = 1: one 3×3 conv to c (with BN, act), the residual where the shapes allow
    net = _net("defaults: {bn: true, act: swish}\nlayers:\n  - conv: {c: 8, k: 3}\n"
               "  - fused: {t: 1, c: 8}\n  - fused: {t: 4, c: 16, s: 2, se: 0.25}\n")
    assert [(n.name, n.out) for n in net.nodes if n.layer.kind in ("conv2d", "add")] == [
        ("conv1/conv", (8, 8, 8)),
        ("fused1/conv", (8, 8, 8)), ("fused1/add", (8, 8, 8)),
        ("fused2/expand", (4, 4, 32)),  # make_divisible(8·4, 8), 3×3/2 fused
        ("fused2/se/reduce", (1, 1, 8)), ("fused2/se/expand", (1, 1, 32)),  # 32·0.25
        ("fused2/project", (4, 4, 16))]


def test_se_in_defaults_reaches_every_block_that_takes_one():
    # squeeze-excite stated once (EfficientNet's), a row's own se: false wins
    body = ("defaults: {bn: true, act: swish, se: {r: 0.25, of: input, divisor: 1, "
            "gate: sigmoid}}\nlayers:\n  - conv: {c: 16, k: 3}\n  - ir: {t: 4, c: 16}\n"
            "  - dwsep: {c: 16}\n  - ir: {t: 4, c: 16, se: false}\n")
    reduce = [n for n in _net(body).nodes if n.name.endswith("se/reduce")]
    assert [(n.name, n.out.c) for n in reduce] == [("ir1/se/reduce", 4), ("dwsep1/se/reduce", 4)]


def test_count_by_block_and_by_stage_sum_to_the_totals():
    import json

    from typer.testing import CliRunner

    from macscalc.cli import app
    from tests.test_schema import SCHEMA, validate

    runner = CliRunner()
    result = runner.invoke(app, ["count", "resnet18", "--by", "block", "--device", "pixel1",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(doc, SCHEMA)
    report = doc["reports"][0]
    blocks = report["by_block"]
    assert [b["name"] for b in blocks][:4] == ["conv1", "pool1", "basic1_1", "basic1_2"]
    # every group adds up to the totals, and so does the estimate
    assert sum(b["macs"] for b in blocks) == report["totals"]["macs"] == 1_814_073_344
    assert sum(b["params"] for b in blocks) == report["totals"]["params"] == 11_689_512
    assert abs(sum(b["ms"] for b in blocks) - report["totals"]["latency_ms"]["ms"]) < 1e-3
    # basic2_1 (3×3/2 and 3×3 convs 64 → 128 on 28×28, 1×1/2 projection): by hand
    b21 = next(b for b in blocks if b["name"] == "basic2_1")
    assert b21["macs"] == (9 * 64 * 128 + 9 * 128 * 128 + 64 * 128) * 28 * 28  # 179,830,784
    assert (b21["in_shape"], b21["out_shape"]) == ([56, 56, 64], [28, 28, 128])
    result = runner.invoke(app, ["count", "resnet18", "--by", "stage"])
    assert "stride 2        3   224×224×3  112×112×64  118,013,952    6.51      9,536" in \
        result.stdout  # the 7×7/2 stem: 7·7·3·64·112·112 MACs, 9,408 + 128 BN params
    result = runner.invoke(app, ["count", "resnet18", "--by", "layer"])
    assert (result.exit_code, result.stderr) == (2, "error: --by must be block or stage, "
                                                    "got 'layer'\n")


def test_upsample_like_another_tensor_and_a_concat_that_skips_dropped_rows():
    # F.interpolate(x, size=g.shape[-2:]): 9×9 → 5×5 (3×3/2 'same'), back to 9×9 like g
    net = _net("layers:\n  - conv: {c: 4, k: 3, name: g}\n  - conv: {c: 8, k: 3, s: 2}\n"
               "  - upsample: {like: g, mode: bilinear}\n  - concat: {from: [g, prev]}\n",
               size=9)
    up = next(n for n in net.nodes if n.layer.kind == "upsample")
    assert (up.inputs, up.out, up.layer.detail()) == (
        ("conv2/conv", "g/conv"), (9, 9, 8), "like g bilinear")
    assert net.nodes[-1].out == (9, 9, 12)
    from macscalc import sweep
    from macscalc.analysis.memory import peak

    # a sweep follows it: the output takes g's size at every resolution (odd ones too)
    like = ("layers:\n  - conv: {c: 4, k: 3, name: g}\n  - conv: {c: 8, k: 3, s: 2}\n"
            "  - upsample: {like: g}\n  - concat: {from: [g, prev]}\n  - conv: {c: 4, k: 1}\n")
    swept = sweep(parse(HEAD + like, "t.yaml"), ["0.5", "1"], [9, 16, 17])
    for i, alpha in enumerate(["0.5", "1"]):
        for j, res in enumerate([9, 16, 17]):
            net = _net(like, alpha, res)
            assert (int(swept.macs[i, j]), int(swept.memory[i, j])) == (
                _count(like, alpha, res).macs, 4 * peak(net).elements), (alpha, res)
    # an Inception-style block whose optional branch an `if` drops: the concat joins the rest
    spec = ("blocks:\n  mix:\n    args: {pool: true}\n    layers:\n"
            "      - conv: {c: 4, k: 1, from: input, name: b1}\n"
            "      - conv: {c: 4, k: 3, from: input, name: b2}\n"
            "      - pool: {k: 3, s: 1, padding: 1, from: input, name: b3, if: $pool}\n"
            "      - concat: {from: [b1, b2, b3]}\nlayers:\n  - mix: {}\n  - mix: {pool: false}\n")
    assert [n.out.c for n in _net(spec).nodes if n.layer.kind == "concat"] == [11, 8]
    assert _error("layers:\n  - conv: {c: 4, k: 1, name: a}\n"
                  "  - conv: {c: 4, k: 1, name: b, n: 0}\n  - concat: {from: [a, b]}\n") == (
        "t.yaml:8:5: concat needs two or more inputs, and only 1 is left once the rows an if "
        "dropped ('b') are skipped")


BRANCHES = """blocks:
  mix:
    args: {pool: true}
    branches:
      - [conv: {c: 4, k: 1}]
      - [conv: {c: 2, k: 1, name: x}, conv: {c: 3, k: [1, 3]}]
      - [conv: {c: 5, k: [3, 1], from: x}]
      - [pool: {op: max, k: 3, s: 1, padding: 1, if: $pool}, conv: {c: 6, k: 1}]
"""
WRITTEN_OUT = """blocks:
  mix:
    args: {pool: true}
    layers:
      - conv: {c: 4, k: 1, from: input, name: branch1}
      - conv: {c: 2, k: 1, from: input, name: x}
      - conv: {c: 3, k: [1, 3], name: branch2}
      - conv: {c: 5, k: [3, 1], from: x, name: branch3}
      - pool: {op: max, k: 3, s: 1, padding: 1, if: $pool, from: input}
      - conv: {c: 6, k: 1, if: $pool, name: branch4}
      - concat: {from: [branch1, branch2, branch3, branch4]}
"""
USES = "layers:\n  - conv: {c: 8, k: 3}\n  - mix: {}\n  - mix: {pool: false}\n"


def test_a_block_written_as_branches_is_its_rows_written_out():
    # each branch reads the block's input unless its first row says `from:`; an `if` on a
    # branch's first row leaves out the branch, and the concat joins the rest
    def nodes(body: str) -> list[tuple]:
        return [(n.name, n.layer.kind, n.inputs, n.out) for n in _net(body).nodes]

    assert nodes(BRANCHES + USES) == nodes(WRITTEN_OUT + USES)
    concats = [n for n in _net(BRANCHES + USES).nodes if n.layer.kind == "concat"]
    assert [n.out.c for n in concats] == [4 + 3 + 5 + 6, 4 + 3 + 5]
    assert concats[0].inputs == ("mix1/branch1/conv", "mix1/branch2/conv",
                                 "mix1/branch3/conv", "mix1/branch4/conv")


@pytest.mark.parametrize(("branches", "message"), [
    ("    branches:\n      - [conv: {c: 4, k: 1}]\n",
     "t.yaml:8:7: 'branches' of block 'mix' must be a list of two or more branches, each a "
     "list of rows such as [conv: {c: 48, k: 1}, conv: {c: 64, k: 5}]"),
    ("    branches:\n      - [conv: {c: 4, k: 1}]\n      - conv: {c: 4, k: 1}\n",
     "t.yaml:9:9: branch 2 of block 'mix' must be a non-empty list of rows, e.g. "
     "[conv: {c: 64, k: 1}]"),
    ("    branches:\n      - [conv: {c: 4, k: 1}]\n"
     "      - [conv: {c: 4, k: 1}, conv: {c: 4, k: 3, if: false}]\n",
     "t.yaml:9:49: 'if' in branch 2 of block 'mix' may be written only on its first row, "
     "where it leaves out the whole branch"),
    ("    branches:\n      - [conv: {c: 4, k: 1}]\n"
     "      - [conv: {c: 4, k: 1, n: 0}, conv: {c: 4, k: 3}]\n",
     "t.yaml:9:29: 'n' on the first row of branch 2 of block 'mix': at 0 the next row would "
     "read another branch; give the repeats a later row, or a block of their own"),
    ("    layers:\n      - conv: {c: 4, k: 1}\n    branches:\n      - [conv: {c: 4, k: 1}]\n"
     "      - [conv: {c: 4, k: 3}]\n",
     "t.yaml:9:5: block 'mix' has both 'layers' and 'branches'; keep one"),
])
def test_branches_refused_with_their_place(branches, message):
    assert _error("blocks:\n  mix:\n" + branches + "layers:\n  - mix: {}\n") == message


def test_inception_v3_as_torchvision():
    # torchvision Inception_V3_Weights meta (models/inception.py): num_params 27,161,264
    # with the auxiliary classifier, _ops 5.713 G MACs at 299 (eval mode: no aux). The aux
    # head by hand: 1×1 768→128 + BN (98,304 + 256), 5×5 128→768 + BN (2,457,600 + 1,536),
    # fc 768→1000 (769,000): 3,326,696
    from tests.conftest import counted

    aux = 768 * 128 + 2 * 128 + 5 * 5 * 128 * 768 + 2 * 768 + 768 * 1000 + 1000
    report = counted("inception_v3")
    assert report.params == 27_161_264 - aux == 23_834_568
    assert round(report.macs / 1e9, 3) == 5.713
    assert report.macs == 5_713_216_096


@pytest.mark.parametrize(("spec", "limit"), [
    # issue 20's aims, lines that are neither blank nor comments
    ("efficientnet_b3", 10),  # B0's rows and a depth multiplier
    ("efficientnet_v2_s", 25),
    ("inception_v3", 60),  # the aim is 45: not met (five module kinds, one branch a line)
    ("mixnet_s", 30),
    ("ghostnetv2_100", 36),  # the aim is 35: the table's 15 bottlenecks are 15 rows
])
def test_new_specs_are_compact(spec, limit):
    from macscalc.lang.spec import builtin_dir

    text = (builtin_dir() / f"{spec}.yaml").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(lines) <= limit


def test_a_spec_on_a_base_takes_its_alpha_and_depth_unless_it_sets_its_own(tmp_path):
    from macscalc import load_spec

    (tmp_path / "on_b3.yaml").write_text(HEAD + "base: {spec: efficientnet_b3}\n",
                                         encoding="utf-8")
    (tmp_path / "on_b3_d1.yaml").write_text(HEAD + "depth: 1\nalpha: 1\n"
                                            "base: {spec: efficientnet_b3}\n", encoding="utf-8")
    on_b3 = load_spec(str(tmp_path / "on_b3.yaml"))
    assert (on_b3.alpha, on_b3.depth) == (Fraction(6, 5), Fraction(7, 5))
    torch_rule = Convention(PARAM_CONVENTIONS["torch"])
    # B3's rows at 10 classes: 12,233,232 − 1537·990 (990 fewer classifier rows and biases)
    assert count(build(on_b3), torch_rule).params == 12_233_232 - 1537 * 990
    # its own depth and alpha replace B3's: B0 at 10 classes
    on_b0 = load_spec(str(tmp_path / "on_b3_d1.yaml"))
    assert count(build(on_b0), torch_rule).params == 5_288_548 - 1281 * 990


def test_a_depthwise_projection_shortcut_as_ghostnet():
    # timm GhostBottleneck: shortcut = k×k depthwise with the stride + BN, 1×1 + BN where
    # the shape changes (specs/ghostnet_100.yaml now writes one residual row for it and
    # stays exact in test_zoo); 8×8×3 → 4×4×8: dw 5·5·3·4·4 = 1,200 MACs, pw 3·8·4·4 = 384
    net = _net("defaults: {bn: true}\nlayers:\n  - conv: {c: 8, k: 3, s: 2}\n"
               "  - residual: {proj: dwconv, k: 5}\n")
    proj = [(n.name, n.layer.detail(), n.layer.macs(n.in_shapes, n.out)) for n in net.nodes
            if n.name.startswith("residual1/proj") and n.layer.kind != "batchnorm"]
    assert proj == [("residual1/proj_dw", "5×5/2 dw", 1200), ("residual1/proj", "1×1/1", 384)]


def test_a_spec_that_fixes_alpha_means_what_its_name_says(tmp_path):
    # tv_mnasnet0_75.yaml: torchvision MNASNet0_75_Weights meta, num_params 3,170,208 and
    # _ops 0.215 (G MACs), as test_zoo checks through --alpha 0.75
    from macscalc import load_spec

    path = tmp_path / "tv_mnasnet0_75.yaml"
    path.write_text("name: tv_mnasnet0_75\nsource: torchvision mnasnet0_75\n"
                    "input: {size: 224}\nclasses: 1000\nalpha: 0.75\n"
                    "base: {spec: mnasnet1_0}\n", encoding="utf-8")
    report = count(build(load_spec(str(path))), Convention(PARAM_CONVENTIONS["torch"]))
    assert (report.params, round(report.macs / 1e9, 3)) == (3_170_208, 0.215)
    assert report.network.settings.alpha == Fraction(3, 4)


def test_measure_and_calibrate_rows_without_alpha_take_the_specs_own():
    # "empty alpha, res, classes: the spec's defaults": efficientnet_b3 is at α 1.2
    from macscalc.analysis.calibrate import Measurement
    from macscalc.models.measure import grid_points

    (point,) = grid_points("efficientnet_b3")
    assert point.alpha is None
    assert point.network().settings.alpha == Fraction(6, 5)
    assert Measurement("efficientnet_b3", Fraction(1), None, None, None).network(
    ).settings.alpha == 1


MB_IN = """rounding: make_divisible_8
defaults: {bn: true, act: relu6}
blocks:
  mb:
    args: {c: required, t: 6, s: 1, mid: $in * $t}
    layers:
      - pw: {c: $mid, if: $t != 1}
      - dw: {k: 3, s: $s}
      - pw: {c: $c, act: none}
      - residual: {mode: skip, if: $s == 1}
layers:
  - conv: {c: 32, k: 3, s: 2}
  - mb: {t: 1, c: 16}
  - mb: {c: 24, s: 2, n: 2}
"""
IR_ROWS = """rounding: make_divisible_8
defaults: {bn: true, act: relu6}
layers:
  - conv: {c: 32, k: 3, s: 2}
  - ir: {t: 1, c: 16}
  - ir: {t: 6, c: 24, s: 2, n: 2}
"""


@pytest.mark.parametrize(("alpha", "macs", "params"), [
    # α 1 by hand on 8×8 → 4×4 → 2×2: stem 27·32·16 (+64 BN); dw 9·32·16, pw 32·16·16;
    # pw 16·96·16, dw 9·96·4, pw 96·24·4; pw 24·144·4, dw 9·144·4, pw 144·24·4. Params:
    # 928 + (352 + 544) + (1,728 + 1,056 + 2,352) + (3,744 + 1,584 + 3,504)
    ("1", 13_824 + 4_608 + 8_192 + 24_576 + 3_456 + 9_216 + 13_824 + 5_184 + 13_824, 15_792),
    # α 0.5: 16 → 8 → 16 → 16 wide, and the 1×1 after the 8-wide block is 48 (8·6), not 24:
    # 6,912 + 2,304 + 2,048 + 6,144 + 1,728 + 3,072 + 6,144 + 3,456 + 6,144
    ("0.5", 37_952, 6_944),
    ("0.35", 25_472, 3_600),  # 16 → 8 → 8 (make_divisible_8 of 5.6 and 8.4)
])
def test_in_is_the_blocks_input_as_built_and_alpha_never_scales_it_again(alpha, macs, params):
    # `c: $in * $t` is MobileNet V2's expansion from the input actually built (α-scaled and
    # rounded), as `ir: {t}` expands; the block equals the built-in rows at every α
    tr = Convention(PARAM_CONVENTIONS["torch"])
    mine, ir = _count(MB_IN, alpha), _count(IR_ROWS, alpha)
    assert (mine.macs, mine.params) == (ir.macs, ir.params) == (macs, params)
    if alpha == "0.5":
        net = _net(MB_IN, alpha)
        assert [(n.name, n.out.c) for n in net.nodes if n.layer.kind == "conv2d"] == [
            ("conv1/conv", 16), ("mb1/pw1/pw", 8), ("mb2_1/pw1/pw", 48),
            ("mb2_1/pw2/pw", 16), ("mb2_2/pw1/pw", 96), ("mb2_2/pw2/pw", 16)]
    assert count(_net(MB_IN, alpha), tr).params == params
    # a sweep builds such blocks where they are placed too, one network per α
    from macscalc import sweep

    swept = sweep(parse(HEAD + MB_IN, "t.yaml"), [alpha], [8])
    assert (int(swept.macs[0, 0]), int(swept.params[0, 0])) == (macs, params)


def test_in_in_conditions_and_defaults_and_where_it_is_refused():
    # `if: $in != $c`: a 1×1 projection only where the width changes (32 → 16, not 16 → 16);
    # `half` defaults to half the block's input: 16, then 8 (the dropped row takes no name)
    body = ("blocks:\n  blk:\n    args: {c: required, half: $in // 2}\n    layers:\n"
            "      - conv: {c: $c, k: 1, if: $in != $c}\n      - conv: {c: $half, k: 3}\n"
            "layers:\n  - conv: {c: 32, k: 3}\n  - blk: {c: 16}\n  - blk: {c: 16}\n")
    net = _net(body)
    assert [(n.name, n.out.c) for n in net.nodes] == [
        ("conv1/conv", 32), ("blk1/conv1/conv", 16), ("blk1/conv2/conv", 16),
        ("blk2/conv1/conv", 8)]
    # outside a block $in means nothing: located at the value
    assert _error("layers:\n  - conv: {c: 8, k: 3}\n  - pw: {c: $in * 2}\n") == (
        "t.yaml:7:13: $in is the channels of a block's input: it can be used only in the rows "
        "and argument defaults of a block")
    assert _error("blocks:\n  b:\n    args: {c: 8}\n    layers:\n      - pw: {c: $c}\n"
                  "layers:\n  - b: {c: $in}\n").startswith("t.yaml:11:12: $in is the")
    # expanded where it is placed, such a block counts against the spec's 20,000 rows: 26
    # rows 1,000 times is refused at the use
    rows = "".join("      - act: {fn: relu}\n" for _ in range(25))
    assert _error("blocks:\n  b:\n    layers:\n      - pw: {c: $in}\n" + rows +
                  "layers:\n  - conv: {c: 8, k: 3}\n  - b: {n: 1000}\n") == (
        "t.yaml:36:5: the spec expands to more than 20,000 rows")
    # a mistake in a default that uses $in is reported at the default
    assert _error("blocks:\n  b:\n    args: {c: $in * relu}\n    layers:\n"
                  "      - pw: {c: $c}\nlayers:\n  - conv: {c: 8, k: 3}\n  - b: {}\n") == (
        "t.yaml:7:15: 'relu' is not a number (in the default of 'c' of block 'b', used at "
        "line 12)")


def test_mixconv_splits_channels_as_timm_and_gives_each_group_its_kernel():
    # timm _split_channels: equal parts, the remainder to the first: 30 in 4 → 9, 7, 7, 7.
    # Depthwise 3, 5, 7, 9 on 8×8 (stride 1, torch padding): (9·9 + 25·7 + 49·7 + 81·7)·64
    net = _net("layers:\n  - conv: {c: 30, k: 1}\n"
               "  - mixconv: {k: [3, 5, 7, 9], padding: torch, bn: true, act: swish}\n")
    groups = [n for n in net.nodes if n.layer.kind == "depthwise"]
    assert [(n.name, n.layer.k, n.out.c) for n in groups] == [
        ("mixconv1/k3_0", (3, 3), 9), ("mixconv1/k5_1", (5, 5), 7),
        ("mixconv1/k7_2", (7, 7), 7), ("mixconv1/k9_3", (9, 9), 7)]
    r = _count("layers:\n  - conv: {c: 30, k: 1}\n"
               "  - mixconv: {k: [3, 5, 7, 9], padding: torch, bn: true}\n")
    dw = r.macs - 3 * 30 * 64
    assert dw == (9 * 9 + 25 * 7 + 49 * 7 + 81 * 7) * 64 == 74_624
    assert [n.out for n in net.nodes[-3:]] == [(8, 8, 30)] * 3  # concat, BN, act
    # with c, each group is a dense conv on its share: 15 → 9 as 8 → 5 and 7 → 4 (MixNet's
    # 1×1 in two groups): 8·5 + 7·4 = 68 weights; a single kernel is one plain conv
    r = _count("layers:\n  - conv: {c: 15, k: 1}\n  - mixconv: {c: 9, k: [1, 1]}\n"
               "  - mixconv: {c: 4, k: [3]}\n")
    by = {lc.node.name: lc.params.weights for lc in r.layers if lc.params.weights}
    assert by == {"conv1/conv": 45, "mixconv1/k1_0": 40, "mixconv1/k1_1": 28,
                  "mixconv2/k3": 9 * 9 * 4}
    assert _error("layers:\n  - conv: {c: 2, k: 1}\n  - mixconv: {k: [3, 5, 7]}\n") == (
        "t.yaml:7:5: mixconv1: 2 input and 2 output channels do not split into 3 groups, one "
        "per kernel")
    assert _error("defaults: {padding: 1}\nlayers:\n  - mixconv: {k: [3, 5]}\n").startswith(
        "t.yaml:7:14: padding [1, 1] from 'defaults' (line 5) does not fit this row's 5×5")


def test_ghost_module_and_ghostnetv2_dfc_attention_at_an_odd_size():
    # timm GhostModuleV2 on 9×9×4 → 6: primary 1×1 to ⌈6/2⌉ = 3 (4·3·81 = 972 MACs), cheap
    # 3×3 dw (9·3·81 = 2,187), concat, cut to 6; DFC from the module's input: 2×2/2 avg pool
    # to 4×4 (floor), 1×1 4 → 6 (4·6·16 = 384), dw 1×5 and 5×1 (5·6·16 = 480 each), sigmoid,
    # nearest upsampling back to 9×9, product. Weights 12 + 27 + 24 + 30 + 30, BN 2·24.
    body = ("defaults: {bn: true, act: relu}\nlayers:\n  - conv: {c: 4, k: 1, bn: false, "
            "act: none}\n  - ghost: {c: 6, dfc: true}\n")
    net = _net(body, size=9)
    assert [(n.name.removeprefix("ghost1/"), n.out) for n in net.nodes
            if n.layer.kind not in ("batchnorm", "act")] == [
        ("conv1/conv", (9, 9, 4)), ("primary", (9, 9, 3)), ("cheap", (9, 9, 3)),
        ("cat", (9, 9, 6)), ("out", (9, 9, 6)), ("dfc_pool", (4, 4, 4)),
        ("dfc_conv", (4, 4, 6)), ("dfc_1x5", (4, 4, 6)), ("dfc_5x1", (4, 4, 6)),
        ("dfc_up", (9, 9, 6)), ("scale", (9, 9, 6))]
    r = _count(body, size=9)
    assert r.macs - 3 * 4 * 81 == 972 + 2_187 + 384 + 480 + 480
    assert r.params - 12 == 12 + 27 + 24 + 30 + 30 + 2 * (3 + 3 + 6 + 6 + 6)
    # without dfc, GhostNet's module: nothing after the cut
    assert _net(body.replace("dfc: true", "dfc: false"), size=9).nodes[-1].name == "ghost1/out"


def test_tinynet_a_is_b0_rows_at_depth_1_2_rounded_as_timm(tmp_path):
    # timm tinynet_a (torch 2.14.1, timm 1.0.31, FlopCounterMode / sum(p.numel())):
    # 336,867,712 MACs, 6,187,972 params, 52,000 BN statistics at 192×192. timm's
    # _gen_tinynet scales depth with depth_trunc='round': B0's repeats 1, 2, 2, 3, 3, 4, 1
    # become 1, 2, 2, 4, 4, 5, 1 (round(2.4) = 2, round(3.6) = 4), where ceil gives 2, 3, 3,
    # 4, 4, 5, 2
    from macscalc import load_spec

    path = tmp_path / "tinynet_a.yaml"
    path.write_text("name: tinynet_a\nsource: timm tinynet_a\ninput: {size: 192}\n"
                    "classes: 1000\ndepth: 1.2\ndepth_rounding: round\n"
                    "base: {spec: efficientnet_b0}\n", encoding="utf-8")
    tr = Convention(PARAM_CONVENTIONS["torch"])
    spec = load_spec(str(path))
    assert [row.n for row in spec.base.spec.rows if row.item.kind == "mbconv"] == [
        1, 2, 2, 4, 4, 5, 1]
    report = count(build(spec), tr)
    assert (report.macs, report.params, report.param_parts.bn_stats) == (
        336_867_712, 6_187_972, 52_000)
    assert [row.n for row in load_spec("efficientnet_b0", Fraction(6, 5)).rows
            if row.item.kind == "mbconv"] == [2, 3, 3, 4, 4, 5, 2]
    # half to even, never below one repeat: n = 1 at depth 0.5 stays 1, n = 4 at 0.625 is 2
    body = ("depth: 0.5\ndepth_rounding: round\nlayers:\n  - conv: {c: 8, k: 3, n: 1}\n"
            "  - conv: {c: 8, k: 3, n: 3}\n  - conv: {c: 8, k: 3, n: 5}\n")
    assert [row.n for row in parse(HEAD + body, "t.yaml").rows] == [1, 2, 2]
    assert _error("depth_rounding: floor\nlayers:\n  - flatten\n") == (
        "t.yaml:5:17: 'depth_rounding' of the spec must be ceil or round, got 'floor'")


def test_base_fixes_alpha_and_depth_as_the_top_level_keys_do(tmp_path):
    # torchvision MNASNet0_75_Weights meta: num_params 3,170,208, _ops 0.215 (G MACs);
    # B3 (torchvision EfficientNet_B3_Weights: 12,233,232 params) as B0's rows at α 1.2,
    # depth 1.4, 300×300
    from macscalc import load_spec

    tr = Convention(PARAM_CONVENTIONS["torch"])
    path = tmp_path / "tv_mnasnet0_75.yaml"
    path.write_text("name: tv_mnasnet0_75\nsource: torchvision mnasnet0_75\n"
                    "input: {size: 224}\nclasses: 1000\n"
                    "base: {spec: mnasnet1_0, alpha: 0.75}\n", encoding="utf-8")
    report = count(build(load_spec(str(path))), tr)
    assert (report.params, round(report.macs / 1e9, 3)) == (3_170_208, 0.215)
    path = tmp_path / "b3.yaml"
    path.write_text("name: b3\nsource: torchvision efficientnet_b3\ninput: {size: 300}\n"
                    "classes: 1000\nbase: {spec: efficientnet_b0, alpha: 1.2, depth: 1.4}\n",
                    encoding="utf-8")
    assert count(build(load_spec(str(path))), tr).params == 12_233_232
    assert _error("alpha: 0.5\nbase: {spec: mnasnet1_0, alpha: 0.75}\n") == (
        "t.yaml:6:26: 'alpha' is given twice: at the top (line 5) and in 'base'; keep one")
    assert _error("base: {spec: mnasnet1_0, width: 0.75}\n").startswith(
        "t.yaml:5:26: unknown key 'width' in 'base' (expected one of: spec, until, alpha, "
        "depth)")
