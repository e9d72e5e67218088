"""ONNX in: every supported operator and exporter pattern, counted from graphs built with
onnx.helper. Expected numbers are worked out by hand in the comments (MACs of a conv:
kh·kw·cin/g·cout·hout·wout; of a linear layer: cin·cout per position)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx", reason="the ONNX tests need the onnx extra: "
                           "pip install 'macscalc[onnx]'")

from typer.testing import CliRunner  # noqa: E402

from macscalc import PARAM_CONVENTIONS, Convention, count  # noqa: E402
from macscalc.cli import app  # noqa: E402
from macscalc.core.errors import MacscalcError  # noqa: E402
from macscalc.models.onnx.reader import read_network  # noqa: E402
from tests.onnx_build import G  # noqa: E402

runner = CliRunner()


def counted(path: Path, params: str = "torch", allow_unknown: bool = False):
    net = read_network(str(path), allow_unknown)
    return count(net, Convention(PARAM_CONVENTIONS[params]))


def kinds(path: Path) -> list[str]:
    return [n.layer.kind + (f":{n.layer.fn}" if n.layer.kind == "act" else "")
            for n in read_network(str(path)).nodes]


def error(path: Path, allow_unknown: bool = False) -> str:
    with pytest.raises(MacscalcError) as e:
        read_network(str(path), allow_unknown)
    return e.value.message


def stem(g: G, folded: bool) -> str:
    """3→16 3×3/2 conv on 8×8 (out 4×4), BN kept or folded into a bias, then ReLU."""
    x = g.conv("x", 3, 16, 3, 2, bias=folded, name="/stem/conv/Conv")
    if not folded:
        x = g.bn(x, 16, name="/stem/bn/BatchNormalization")
    return g.node("Relu", [x], name="/stem/act/Relu")


# -- exporter patterns -----------------------------------------------------------------------

@pytest.mark.parametrize("folded", [False, True])
def test_bn_kept_or_folded(tmp_path, folded):
    g = G()
    p = g.save(tmp_path / "m.onnx", stem(g, folded))
    r = counted(p)
    # 3·3·3·16 · 4·4 = 6,912 MACs; weights 432
    assert r.macs == 6912
    assert counted(p, "weights").params == 432
    # kept: γ, β 16 each (torch convention) → 464; folded: a 16-bias → 448
    assert r.params == (448 if folded else 464)
    assert r.param_parts.bn_stats == (0 if folded else 32)
    text = r.convention.describe(r.network)
    assert ("batch norm kept (1 BatchNormalization nodes)" in text) != folded
    assert ("folded into the conv biases by the exporter" in text) == folded
    assert [n.name for n in r.network.nodes][0] == "stem.conv"  # /stem/conv/Conv


def classifier(g: G, x: str, how: str) -> str:
    """Global pool, then 16 → 10 linear with bias as Gemm, or MatMul + Add."""
    x = g.node("GlobalAveragePool", [x])
    if how == "gemm":
        x = g.node("Flatten", [x], axis=1)
        return g.node("Gemm", [x, g.init((10, 16)), g.init((10,))], transB=1)
    x = g.node("Reshape", [x, g.ints([1, -1])])
    x = g.node("MatMul", [x, g.init((16, 10))])
    return g.node("Add", [x, g.init((10,))])


@pytest.mark.parametrize("how", ["gemm", "matmul"])
def test_linear_as_gemm_or_matmul_add(tmp_path, how):
    g = G()
    p = g.save(tmp_path / "m.onnx", classifier(g, stem(g, False), how))
    r = counted(p)
    # conv 6,912 + linear 16·10 = 7,072 MACs; params 464 + 160 + 10 = 634
    assert (r.macs, r.params) == (7072, 634)
    assert kinds(p)[-1] == "linear"
    assert kinds(p).count("linear") == 1  # MatMul + Add is one layer, not two


def test_transposed_linear_weight_and_channels_last(tmp_path):
    """The dynamo exporter's linear: MatMul by Transpose(W) on an N×H×W×C tensor."""
    g = G()
    x = g.conv("x", 3, 16, 3, 2, bias=True)  # 8×8 → 4×4×16: 6,912 MACs, 448 params
    x = g.node("Transpose", [x], perm=[0, 2, 3, 1])
    w = g.node("Transpose", [g.init((32, 16))], perm=[1, 0])
    x = g.node("MatMul", [x, w])
    x = g.node("Add", [x, g.init((32,))])
    x = g.node("Transpose", [x], perm=[0, 3, 1, 2])
    p = g.save(tmp_path / "m.onnx", x)
    r = counted(p)
    # linear at every position: 4·4·16·32 = 8,192 MACs; 512 + 32 params
    assert (r.macs, r.params) == (6912 + 8192, 448 + 544)
    assert r.network.nodes[-1].out == (4, 4, 32)


@pytest.mark.parametrize("opset", [11, 13, 17, 21])
def test_opsets_and_symbolic_batch(tmp_path, opset):
    g = G(("batch", 3, 8, 8), opset=opset)
    x = stem(g, False)
    x = g.node("Clip", [x, g.scalar(0.0), g.scalar(6.0)])
    axes = g.ints([2, 3])
    if opset >= 18:
        x = g.node("ReduceMean", [x, axes], keepdims=0)
    else:
        x = g.node("ReduceMean", [x], axes=[2, 3], keepdims=0)
    x = g.node("Gemm", [x, g.init((10, 16)), g.init((10,))], transB=1)
    p = g.save(tmp_path / "m.onnx", x)
    r = counted(p)
    assert (r.macs, r.params) == (7072, 634)  # as in test_linear_as_gemm_or_matmul_add
    assert kinds(p) == ["conv2d", "batchnorm", "act:relu", "act:relu6", "global_pool",
                        "linear"]


def test_external_data(tmp_path):
    g = G()
    x = g.conv("x", 3, 64, 3, 2)  # 1,728 weights: stored in the external file
    x = g.node("Reshape", [x, g.ints([1, -1])])  # a small constant, kept inline
    p = g.save(tmp_path / "m.onnx", x, external=True)
    assert (tmp_path / "m.onnx.data").stat().st_size == 1728 * 4
    # 3·3·3·64·4·4 = 27,648 MACs
    assert counted(p).macs == 27648
    (tmp_path / "m.onnx.data").unlink()  # sizes come from the dims: not needed
    assert counted(p).macs == 27648


def test_missing_external_file_when_its_values_are_needed(tmp_path):
    g = G()
    x = g.conv("x", 3, 8, 3, 1)
    shape = g.init((2,), [1, -1], dtype="int64", name="target")
    x = g.node("Reshape", [x, shape])
    m = g.model(x)
    onnx.save_model(m, str(tmp_path / "m.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="w.bin", size_threshold=0)
    (tmp_path / "w.bin").unlink()
    assert error(tmp_path / "m.onnx") == (
        "tensor 'target': external data 'w.bin': the file is missing (its values are needed "
        "here)")


# -- operators --------------------------------------------------------------------------------

def one_op(tmp_path: Path, build, shape=("N", 8, 4, 4), opset=17):
    g = G(shape, opset=opset)
    return g.save(tmp_path / "m.onnx", build(g))


@pytest.mark.parametrize("op, fn", [("Relu", "relu"), ("HardSwish", "hswish"),
                                    ("HardSigmoid", "hsigmoid"), ("Sigmoid", "sigmoid"),
                                    ("Gelu", "gelu"), ("Softmax", "softmax"), ("Tanh", "tanh"),
                                    ("LeakyRelu", "leaky_relu"), ("Mish", "mish")])
def test_activations(tmp_path, op, fn):
    p = one_op(tmp_path, lambda g: g.node(op, ["x"]), opset=20)
    assert kinds(p) == [f"act:{fn}"]


def test_clip_bounds(tmp_path):
    p = one_op(tmp_path, lambda g: g.node("Clip", ["x", g.scalar(0.0)]))
    assert kinds(p) == ["act:relu"]
    p = one_op(tmp_path, lambda g: g.node("Clip", ["x", g.scalar(-1.0), g.scalar(1.0)]))
    assert error(p) == ("no counting rule for these ONNX operators: Clip(-1.0, 1.0) (1: clip3). "
                        "Nothing is counted as zero; --allow-unknown counts them as unknown "
                        "(report status partial)")


def test_swish_and_hard_swish_patterns(tmp_path):
    def build(g):
        s = g.node("Sigmoid", ["x"])
        x = g.node("Mul", ["x", s])
        h = g.node("HardSigmoid", [x], alpha=1 / 6)
        return g.node("Mul", [h, x])

    assert kinds(one_op(tmp_path, build)) == ["act:swish", "act:hswish"]


def test_erf_gelu_pattern_both_orders(tmp_path):
    def build(g):
        # torchscript: ((x / √2) → erf → +1) · x · 0.5
        e = g.node("Erf", [g.node("Div", ["x", g.scalar(2 ** 0.5)])])
        a = g.node("Add", [e, g.scalar(1.0)])
        y = g.node("Mul", [g.node("Mul", ["x", a]), g.scalar(0.5)])
        # dynamo: 0.5·(1 + erf(y·(1/√2))) then · y
        e = g.node("Erf", [g.node("Mul", [y, g.scalar(2 ** -0.5)])])
        a = g.node("Mul", [g.scalar(0.5), g.node("Add", [e, g.scalar(1.0)])])
        return g.node("Mul", [y, a])

    assert kinds(one_op(tmp_path, build)) == ["act:gelu", "act:gelu"]


def test_se_channel_product_and_layer_scale(tmp_path):
    def build(g):
        s = g.node("GlobalAveragePool", ["x"])
        s = g.conv(s, 8, 2, 1, bias=True)  # 8·2 = 16 MACs, 18 params
        s = g.node("Relu", [s])
        s = g.conv(s, 2, 8, 1, bias=True)  # 2·8 = 16 MACs, 24 params
        s = g.node("HardSigmoid", [s])
        x = g.node("Mul", [s, "x"])  # gate first: still the SE product x·s
        return g.node("Mul", [x, g.init((8, 1, 1))])  # layer scale: 8 params

    p = one_op(tmp_path, build)
    assert kinds(p) == ["global_pool", "conv2d", "act:relu", "conv2d", "act:hsigmoid", "mul",
                        "layer_scale"]
    r = counted(p)
    assert (r.macs, r.params) == (32, 18 + 24 + 8)


def test_concat_split_slice(tmp_path):
    def build(g):
        a, b = g.node("Split", ["x", g.ints([3, 5])], outputs=2, axis=1)
        c = g.node("Slice", ["x", g.ints([2]), g.ints([6]), g.ints([1])])
        return g.node("Concat", [b, a, c], axis=1)

    p = one_op(tmp_path, build)
    net = read_network(str(p))
    assert [(n.layer.kind, n.out.c) for n in net.nodes] == [
        ("slice", 3), ("slice", 5), ("slice", 4), ("concat", 12)]
    assert net.nodes[1].layer.start == 3 and net.nodes[2].layer.start == 2


def test_split_by_attribute_opset_11(tmp_path):
    p = one_op(tmp_path, lambda g: g.node("Split", ["x"], outputs=2, axis=1, split=[2, 6])[1],
               opset=11)
    assert [(n.layer.kind, n.layer.c) for n in read_network(str(p)).nodes] == [
        ("slice", 2), ("slice", 6)]


def test_channel_shuffle_with_shape_arithmetic(tmp_path):
    def build(g):
        # the view's target computed from Shape like torch's x.size(): [1, 2, 4, 4, 4]
        shape = g.node("Shape", ["x"])
        n = g.node("Gather", [shape, g.init((), 0, "int64")], axis=0)
        hw = g.node("Slice", [shape, g.ints([2]), g.ints([4])])
        target = g.node("Concat", [g.node("Unsqueeze", [n, g.ints([0])]), g.ints([2, 4]), hw],
                        axis=0)
        x = g.node("Reshape", ["x", target])
        x = g.node("Transpose", [x], perm=[0, 2, 1, 3, 4])
        return g.node("Reshape", [x, g.ints([1, 8, 4, 4])])

    p = one_op(tmp_path, build)
    net = read_network(str(p))
    assert [(n.layer.kind, n.layer.detail()) for n in net.nodes] == [("shuffle", "g2")]


def test_pools_with_pads_and_ceil_mode(tmp_path):
    def build(g):
        # 7×7: 3×3/2 ceil_mode → ⌈(7−3)/2⌉+1 = 3; torch's rule keeps it (2·2 < 7)
        a = g.node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
        # 3×3/2 pad 1 floor → (7+2−3)//2+1 = 4
        b = g.node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                   pads=[1, 1, 1, 1])
        return g.node("Concat", [g.node("GlobalMaxPool", [a]), g.node("GlobalMaxPool", [b])],
                      axis=1)

    net = read_network(str(one_op(tmp_path, build, shape=(1, 8, 7, 7))))
    assert [str(n.out) for n in net.nodes[:2]] == ["3×3×8", "4×4×8"]
    assert net.nodes[0].layer.ceil and net.nodes[1].layer.padding == "same"


def test_pad_folds_into_the_next_conv(tmp_path):
    """TF 'same' for a 3×3/2 conv on 8×8: pad 0 before, 1 after → 4×4."""
    def build(g):
        x = g.node("Pad", ["x", g.ints([0, 0, 0, 0, 0, 0, 1, 1])])
        return g.conv(x, 8, 8, 3, 2, p=0)

    net = read_network(str(one_op(tmp_path, build, shape=(1, 8, 8, 8))))
    assert len(net.nodes) == 1 and str(net.nodes[0].out) == "4×4×8"
    assert net.nodes[0].layer.padding == "same"


def test_layer_norm_op_and_formula(tmp_path):
    def build(g):
        x = g.node("Transpose", ["x"], perm=[0, 2, 3, 1])
        x = g.node("LayerNormalization", [x, g.init((8,)), g.init((8,))], axis=-1)
        # torchscript before opset 17: (x − mean)/√(var + ε)·γ + β over the last axis
        m = g.node("ReduceMean", [x], axes=[-1])
        d = g.node("Sub", [x, m])
        v = g.node("ReduceMean", [g.node("Pow", [d, g.scalar(2.0)])], axes=[-1])
        s = g.node("Sqrt", [g.node("Add", [v, g.scalar(1e-6)])])
        y = g.node("Mul", [g.node("Div", [d, s]), g.init((8,))])
        y = g.node("Add", [y, g.init((8,))])
        return g.node("Transpose", [y], perm=[0, 3, 1, 2])

    p = one_op(tmp_path, build)
    assert kinds(p) == ["layernorm", "layernorm"]
    assert counted(p).params == 32  # 2·8 γ, β twice


def test_resize_identity_dropout_constant(tmp_path):
    def build(g):
        x = g.node("Identity", ["x"])
        x = g.node("Dropout", [x])
        scales = g.node("Constant", [], value=onnx.numpy_helper.from_array(
            __import__("numpy").array([1, 1, 2, 2], "float32")))
        x = g.node("Resize", [x, "", scales], mode="linear")
        return g.node("Resize", [x, "", "", g.ints([1, 8, 12, 12])])

    net = read_network(str(one_op(tmp_path, build)))
    assert [(n.layer.kind, n.layer.detail()) for n in net.nodes] == [
        ("upsample", "×2 bilinear"), ("upsample", "→12×12")]


# -- unknowns -------------------------------------------------------------------------------

def with_unknown(tmp_path: Path) -> Path:
    g = G(("N", 8, 4, 4))
    x = g.node("Softplus", ["x"], name="t1")
    x = g.conv(x, 8, 8, 1)  # 8·8·16 = 1,024 MACs
    x = g.node("Softplus", [x], name="t2")
    x = g.node("Elu", [x], name="e1")
    return g.save(tmp_path / "m.onnx", x)


def test_unknown_operators_are_errors_listing_them(tmp_path):
    p = with_unknown(tmp_path)
    assert error(p) == ("no counting rule for these ONNX operators: Softplus (2: t1, t2); Elu "
                        "(1: e1). Nothing is counted as zero; --allow-unknown counts them as "
                        "unknown (report status partial)")
    result = runner.invoke(app, ["count", str(p)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {p}: no counting rule")


def test_allow_unknown_gives_a_partial_report(tmp_path):
    p = with_unknown(tmp_path)
    result = runner.invoke(app, ["count", str(p), "--allow-unknown", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["reports"][0]
    assert report["status"] == "partial"
    assert report["unknown_ops"] == {"Softplus": ["t1", "t2"], "Elu": ["e1"]}
    assert report["totals"]["macs"] == 1024
    text = runner.invoke(app, ["count", str(p), "--allow-unknown"]).stdout
    assert "status: PARTIAL, these operators are counted as unknown" in text


def test_complete_status(tmp_path):
    g = G()
    p = g.save(tmp_path / "m.onnx", stem(g, False))
    report = json.loads(runner.invoke(app, ["count", str(p), "-f", "json"]).stdout)["reports"][0]
    assert (report["status"], report["unknown_ops"]) == ("complete", {})


# -- malformed files --------------------------------------------------------------------------

def test_truncated_and_non_onnx_files(tmp_path):
    g = G()
    good = g.save(tmp_path / "m.onnx", stem(g, False)).read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(good[: len(good) // 2])
    assert error(bad).startswith("not a readable ONNX model: a field runs past the end")
    bad.write_bytes(b"name: mobilenet\nlayers: []\n")
    assert error(bad).startswith("not a")
    bad.write_bytes(b"")
    assert error(bad) == "not an ONNX model: the file is empty"
    result = runner.invoke(app, ["count", str(bad)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_cycle_missing_input_and_unknown_dtype(tmp_path):
    g = G()
    a = g.node("Relu", ["x", "b_loop"][:1] + [], name="a")
    g.nodes[-1].input[0] = "relu_b_out0"
    g.node("Relu", [a], name="relu_b")
    p = g.save(tmp_path / "cycle.onnx", a)
    assert error(p) == "the graph has a cycle: nodes a, relu_b wait on each other"

    g = G()
    p = g.save(tmp_path / "missing.onnx", g.node("Relu", ["nowhere"], name="r"))
    assert error(p) == "node 'r' (Relu): input 'nowhere' is made by no node, initializer or " \
                       "graph input"

    g = G()
    x = g.conv("x", 3, 4, 3)
    g.inits[0].data_type = 99
    p = g.save(tmp_path / "dtype.onnx", x)
    assert error(p) == "initializer 'w1' has unknown data type 99"


def test_reading_needs_no_extra_and_export_says_how_to_install(tmp_path, monkeypatch):
    """Reading decodes the protobuf itself (models/onnx/proto.py); only export and
    measure import onnx."""
    import sys

    g = G()
    p = g.save(tmp_path / "m.onnx", stem(g, False))
    with_onnx = runner.invoke(app, ["count", str(p), "-f", "json"]).stdout
    monkeypatch.setitem(sys.modules, "onnx", None)
    result = runner.invoke(app, ["count", str(p), "-f", "json"])
    assert (result.exit_code, result.stdout) == (0, with_onnx)
    result = runner.invoke(app, ["export", "mobilenet_v1", "-o", str(tmp_path / "v1.onnx")])
    assert result.exit_code == 2
    assert result.stderr == "error: ONNX export needs the onnx package: pip install " \
                            "'macscalc[onnx]'\n"


def test_alpha_and_res_do_not_apply_to_a_file(tmp_path):
    g = G()
    p = g.save(tmp_path / "m.onnx", stem(g, False))
    result = runner.invoke(app, ["count", str(p), "--alpha", "0.5"])
    assert result.exit_code == 2
    assert "--alpha cannot apply to an ONNX file" in result.stderr
    assert "macscalc import" in result.stderr


# -- more exporter forms ---------------------------------------------------------------------

def test_hard_sigmoid_and_swish_written_out(tmp_path):
    """relu6(x + 3) / 6 and x · relu6(x + 3) / 6, as hand-written modules export them."""
    def build(g):
        h = g.node("Clip", [g.node("Add", ["x", g.scalar(3.0)]), g.scalar(0.0), g.scalar(6.0)])
        y = g.node("Div", [h, g.scalar(6.0)])  # hard-sigmoid of x
        h = g.node("Clip", [g.node("Add", [y, g.scalar(3.0)]), g.scalar(0.0), g.scalar(6.0)])
        return g.node("Div", [g.node("Mul", [y, h]), g.scalar(6.0)])  # hard-swish of y

    assert kinds(one_op(tmp_path, build)) == ["act:hsigmoid", "act:hswish"]


def test_shared_initializers_through_identity(tmp_path):
    """The TorchScript exporter shares equal initializers through Identity nodes."""
    def build(g):
        gamma = g.node("Identity", [g.init((8,))])
        beta = g.node("Identity", [g.init((8,))])
        x = g.node("Transpose", ["x"], perm=[0, 2, 3, 1])
        m = g.node("ReduceMean", [x], axes=[-1])
        d = g.node("Sub", [x, m])
        v = g.node("ReduceMean", [g.node("Pow", [d, g.scalar(2.0)])], axes=[-1])
        s = g.node("Sqrt", [g.node("Add", [v, g.scalar(1e-6)])])
        y = g.node("Add", [g.node("Mul", [g.node("Div", [d, s]), gamma]), beta])
        w = g.node("Identity", [g.init((4, 8, 1, 1))])
        y = g.node("Transpose", [y], perm=[0, 3, 1, 2])
        return g.node("Conv", [y, w], kernel_shape=[1, 1])

    p = one_op(tmp_path, build)
    assert kinds(p) == ["layernorm", "conv2d"]
    assert counted(p).params == 16 + 32  # γ, β; 8·4 weights


def test_dynamo_forms(tmp_path):
    """Generated node names read as the weight's module path; as_strided of a 1×1×C
    vector (Reshape to C, Gather of every index) is free; expand_as of an SE gate."""
    def build(g):
        x = g.node("Conv", ["x", g.init((8, 8, 1, 1), name="features.0.weight")],
                   name="node_Conv_3", kernel_shape=[1, 1])
        s = g.node("ReduceMean", [x, g.ints([-1, -2])], keepdims=1)
        flat = g.node("Reshape", [s, g.ints([8])])
        s = g.node("Gather", [flat, g.init((1, 8, 1, 1), list(range(8)), "int64")], axis=0)
        s = g.node("Expand", [s, g.ints([1, 8, 4, 4])])
        return g.node("Mul", [x, s])

    net = read_network(str(one_op(tmp_path, build, opset=18)))
    assert [(n.name, n.layer.kind) for n in net.nodes] == [
        ("features.0", "conv2d"), ("reducemean4", "global_pool"), ("mul11", "mul")]
    assert net.nodes[-1].in_shapes == ((4, 4, 8), (1, 1, 8))


def test_conv_transpose(tmp_path):
    # 4×4 → (4−1)·2 − 2·1 + 3 + 1 = 8; MACs = 3·3·(16/1)·8·4·4 = 18,432; 1,152 weights
    p = one_op(tmp_path, lambda g: g.node("ConvTranspose", ["x", g.init((8, 16, 3, 3))],
                                           kernel_shape=[3, 3], strides=[2, 2],
                                           pads=[1, 1, 1, 1], output_padding=[1, 1]))
    r = counted(p)
    assert str(r.network.nodes[0].out) == "8×8×16"
    assert (r.macs, r.params) == (18432, 1152)


def test_asymmetric_pool_pads_and_squeeze(tmp_path):
    def build(g):
        # 7×7, 2×2/2 pads (0, 0, 1, 1): (7 + 1 − 2)//2 + 1 = 4, as 'same' gives ⌈7/2⌉
        x = g.node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1])
        x = g.node("GlobalAveragePool", [x])
        x = g.node("Squeeze", [x, g.ints([2, 3])])
        return g.node("Unsqueeze", [x, g.ints([2, 3])])

    net = read_network(str(one_op(tmp_path, build, shape=(1, 8, 7, 7))))
    assert [(n.layer.kind, str(n.out)) for n in net.nodes] == [
        ("pool", "4×4×8"), ("global_pool", "1×1×8")]
    assert net.nodes[0].layer.padding == "same"


def test_pad_before_something_else_is_unknown(tmp_path):
    p = one_op(tmp_path, lambda g: g.node("Relu", [g.node(
        "Pad", ["x", g.ints([0, 0, 1, 1, 0, 0, 1, 1])], name="pad")]))
    assert error(p).startswith("no counting rule for these ONNX operators: Pad not followed by "
                               "a conv or pool (1: pad)")


def test_names_from_the_file_are_sanitized(tmp_path):
    """The file is untrusted and errors go to public CI logs: no control characters, no
    long excerpts."""
    p = one_op(tmp_path, lambda g: g.node("Evil\x1b[2J\nop", ["x"], name="n\x07" + "x" * 200))
    message = error(p)
    assert message.startswith("no counting rule for these ONNX operators: Evil__2J_op (1: n_xxx")
    assert "\x1b" not in message and "\n" not in message and "x" * 60 not in message


def test_res_sizes_a_symbolic_input(tmp_path):
    g = G(("N", 3, "H", "W"))
    x = g.conv("x", 3, 8, 3, 2)
    target = g.node("Concat", [g.ints([1, 8, -1])], axis=0)  # shape arithmetic on constants
    p = g.save(tmp_path / "m.onnx", g.node("Reshape", [x, target]))
    assert error(p) == "input 'x' has a symbolic or zero size ?×3×?×?: give the image size " \
                       "with --res R, or export with a fixed one (a symbolic batch is taken as 1)"
    result = runner.invoke(app, ["count", str(p), "--res", "32", "-f", "json"])
    # the reshape to N×8×(h·w) is patch embedding's flatten (tokens_ops): a free view, so
    # the count is the conv's: 3·3·3·8 · 16·16 = 55,296 MACs at 32×32
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["reports"][0]["totals"]["macs"] == 55296
    g = G(("N", 3, "H", "W"))
    p = g.save(tmp_path / "m.onnx", g.conv("x", 3, 8, 3, 2))
    result = runner.invoke(app, ["count", str(p), "--res", "32", "-f", "json"])
    # 3·3·3·8 · 16·16 = 55,296 MACs at 32×32
    assert json.loads(result.stdout)["reports"][0]["totals"]["macs"] == 55296
    fixed = G(("N", 3, 8, 8))
    p = fixed.save(tmp_path / "f.onnx", fixed.conv("x", 3, 8, 3, 2))
    result = runner.invoke(app, ["count", str(p), "--res", "32"])
    assert result.exit_code == 2
    assert "--res applies only to a model whose input size is symbolic" in result.stderr


def test_nodes_that_do_not_fit_their_operator(tmp_path):
    p = one_op(tmp_path, lambda g: g.node("Conv", ["x"], name="c"))  # no weight
    assert error(p) == ("node 'c' (Conv): the node does not fit the Conv operator (its inputs, "
                        "attributes or weight dims are malformed: IndexError)")
    p = one_op(tmp_path, lambda g: g.node("Conv", ["x", g.init((8, 8, 3, 3))], name="c",
                                          group=0))
    assert error(p) == "node 'c' (Conv): weight 8×8×3×3 with group 0 does not fit 8 input " \
                       "channels"


def test_sum_max_pools_cast_log_softmax(tmp_path):
    def build(g):
        a = g.node("GlobalMaxPool", ["x"])
        b = g.node("ReduceMax", ["x"], axes=[2, 3], keepdims=1)
        x = g.node("Sum", [a, b, g.node("Cast", [a], to=1)])
        return g.node("LogSoftmax", [g.node("Flatten", [x])], axis=1)

    assert kinds(one_op(tmp_path, build)) == ["global_pool", "global_pool", "add", "flatten",
                                              "act:softmax"]
    # the 3-input sum: (3 − 1) adds per element of 1×1×8
    assert counted(one_op(tmp_path, build)).ops_by_category["add"] == 16
