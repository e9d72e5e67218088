"""ONNX attention graphs (macscalc.models.onnx.tokens_ops): a small DeiT built by hand in
each exporter's op patterns counts exactly what the same network written in the spec
language counts (MACs, parameters, extra ops per category); every unknown operator is
named in the first error."""

from __future__ import annotations

from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx", reason="the ONNX tests need the onnx extra: "
                           "pip install 'macscalc[onnx]'")

from typer.testing import CliRunner  # noqa: E402

from macscalc import PARAM_CONVENTIONS, Convention, count  # noqa: E402
from macscalc.cli import app  # noqa: E402
from macscalc.core.errors import MacscalcError  # noqa: E402
from macscalc.models.onnx.reader import read_network  # noqa: E402
from tests.conftest import counted as spec_counted  # noqa: E402
from tests.onnx_build import G  # noqa: E402

np = pytest.importorskip("numpy", reason="the onnx extra needs numpy")

runner = CliRunner()

C, HEADS, D, N = 16, 2, 8, 17  # width, heads, head width, tokens (16 patches + class)

# specs/deit_small.yaml's structure at 32×32 px, 8×8 patches, width 16, 2 heads, 1 block
MINI_DEIT = f"""name: mini_deit
source: test
input: {{size: 32, channels: 3}}
classes: 10
blocks:
  vit_block:
    args: {{c: required, heads: required}}
    layers:
      - layernorm: {{}}
      - attention: {{heads: $heads}}
      - residual: {{name: mixed}}
      - layernorm: {{}}
      - fc: {{c: $c * 4, act: gelu}}
      - fc: {{c: $c}}
      - residual: {{from: mixed}}
layers:
  - conv: {{c: {C}, k: 8, s: 8, padding: 0, bias: true}}
  - to_tokens: {{}}
  - class_token: {{}}
  - pos_embed: {{}}
  - vit_block: {{c: {C}, heads: {HEADS}, n: 1}}
  - layernorm: {{}}
  - take_tokens: {{}}
  - fc: {{c: classes}}
"""


class Exporter:
    """One exporter's way of writing each part of the network."""

    def __init__(self, g: G, dynamo: bool, qkv: str, einsum: bool = False,
                 sdpa: bool = False) -> None:
        self.g, self.dynamo, self.qkv_form, self.einsum, self.sdpa = g, dynamo, qkv, einsum, sdpa

    def linear(self, x: str, cin: int, cout: int) -> str:
        g = self.g
        if self.dynamo:  # x·Wᵀ with the weight transposed in the graph
            w = g.node("Transpose", [g.init((cout, cin))], perm=[1, 0])
        else:
            w = g.init((cin, cout))
        return g.node("Add", [g.node("MatMul", [x, w]), g.init((cout,))])

    def layernorm(self, x: str) -> str:
        g = self.g
        if not self.dynamo:
            return g.node("LayerNormalization", [x, g.init((C,)), g.init((C,))], axis=-1)
        m = g.node("ReduceMean", [x, g.ints([-1])])
        d = g.node("Sub", [x, m])
        v = g.node("ReduceMean", [g.node("Pow", [d, g.scalar(2.0)]), g.ints([-1])])
        s = g.node("Sqrt", [g.node("Add", [v, g.scalar(1e-6)])])
        return g.node("Add", [g.node("Mul", [g.node("Div", [d, s]), g.init((C,))]),
                              g.init((C,))])

    def gelu(self, x: str) -> str:
        g = self.g
        if not self.dynamo:
            return g.node("Gelu", [x]) if g.opset >= 20 else self._erf_gelu(x)
        return self._erf_gelu(x)

    def _erf_gelu(self, x: str) -> str:
        g = self.g
        e = g.node("Erf", [g.node("Div", [x, g.scalar(2 ** 0.5)])])
        return g.node("Mul", [g.node("Mul", [x, g.node("Add", [e, g.scalar(1.0)])]),
                              g.scalar(0.5)])

    def heads(self, x: str) -> str:
        """(1, n, c) → (1, heads, n, d)."""
        g = self.g
        x = g.node("Reshape", [x, g.ints([1, N, HEADS, D])])
        return g.node("Transpose", [x], perm=[0, 2, 1, 3])

    def qkv(self, x: str) -> tuple[str, str, str]:
        g = self.g
        if self.qkv_form == "separate":
            return tuple(self.heads(self.linear(x, C, C)) for _ in range(3))  # type: ignore
        # timm: qkv(x).reshape(B, N, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        t = g.node("Reshape", [self.linear(x, C, 3 * C), g.ints([1, N, 3, HEADS, D])])
        t = g.node("Transpose", [t], perm=[2, 0, 3, 1, 4])
        if self.qkv_form == "gather":
            return tuple(g.node("Gather", [t, g.init((), i, "int64")], axis=0)  # type: ignore
                         for i in range(3))
        if self.qkv_form == "slice":  # dynamo (torch 2.13): Slice [i:i+1] on axis 0, Squeeze
            return tuple(g.node("Squeeze", [g.node("Slice", [t, g.ints([i]), g.ints([i + 1]),
                                                             g.ints([0])]), g.ints([0])])
                         for i in range(3))  # type: ignore
        # TorchScript (torch 2.13): Split into ones along axis 0, then Squeeze axis 0
        parts = g.node("Split", [t, g.ints([1, 1, 1])], outputs=3, axis=0)
        return tuple(g.node("Squeeze", [p, g.ints([0])]) for p in parts)  # type: ignore

    def attention(self, x: str) -> str:
        g = self.g
        q, k, v = self.qkv(x)
        if self.einsum:
            scores = g.node("Einsum", [q, k], equation="bhid,bhjd->bhij")
            a = g.node("Softmax", [g.node("Mul", [scores, g.scalar(D ** -0.5)])], axis=-1)
            o = g.node("Einsum", [a, v], equation="bhij, bhjd -> bihd")  # merged heads
            return self.linear(g.node("Reshape", [o, g.ints([1, N, C])]), C, C)
        if self.sdpa:  # TorchScript's scaled_dot_product_attention: q and kᵀ each × √scale
            root = g.scalar(D ** -0.25)
            kt = g.node("Mul", [g.node("Transpose", [k], perm=[0, 1, 3, 2]), root])
            scores = g.node("MatMul", [g.node("Mul", [q, root]), kt])
        elif self.dynamo:  # kᵀ with the heads folded into the batch and back
            kt = g.node("Reshape", [k, g.ints([-1, N, D])])
            kt = g.node("Transpose", [kt], perm=[0, 2, 1])
            kt = g.node("Reshape", [kt, g.ints([1, HEADS, D, N])])
            scores = g.node("Div", [g.node("MatMul", [q, kt]), g.scalar(D ** 0.5)])
        else:
            kt = g.node("Transpose", [k], perm=[0, 1, 3, 2])
            scores = g.node("Mul", [g.node("MatMul", [q, kt]), g.scalar(D ** -0.5)])
        a = g.node("Softmax", [scores], axis=-1)
        o = g.node("Transpose", [g.node("MatMul", [a, v])], perm=[0, 2, 1, 3])
        o = g.node("Reshape", [o, g.ints([1, N, C])])
        return self.linear(o, C, C)

    def network(self) -> str:
        g = self.g
        x = g.conv("x", 3, C, 8, 8, p=0, bias=True)  # 4×4 patches
        x = g.node("Reshape", [x, g.ints([1, C, 16])])  # flatten(2)
        x = g.node("Transpose", [x], perm=[0, 2, 1])  # (1, 16, C)
        cls = g.node("Expand", [g.init((1, 1, C)), g.ints([1, 1, C])])
        x = g.node("Concat", [cls, x], axis=1)
        x = g.node("Add", [x, g.init((1, N, C))])  # positional embedding
        x = g.node("Add", [x, self.attention(self.layernorm(x))])
        h = self.linear(self.gelu(self.linear(self.layernorm(x), C, 4 * C)), 4 * C, C)
        x = g.node("Add", [x, h])
        x = g.node("Gather", [self.layernorm(x), g.init((), 0, "int64")], axis=1)
        return self.linear(x, C, 10)


def counted(path: Path):
    return count(read_network(str(path)), Convention(PARAM_CONVENTIONS["torch"],
                                                     ("add", "mul", "act", "bn")))


FORMS = {  # (opset, dynamo, q/k/v, einsum)
    "torchscript-separate-qkv": (17, False, "separate", False),
    "torchscript-fused-qkv": (17, False, "split", False),
    "torchscript-gelu-op": (20, False, "split", False),
    "dynamo": (18, True, "slice", False),
    "gather-unbind": (17, False, "gather", False),
    "einsum": (17, False, "separate", True),
}


@pytest.mark.parametrize("form", FORMS)
def test_mini_deit_counts_as_its_spec(tmp_path, form):
    opset, dynamo, qkv, einsum = FORMS[form]
    g = G(("N", 3, 32, 32), opset=opset)
    p = g.save(tmp_path / "m.onnx", Exporter(g, dynamo, qkv, einsum).network())
    spec = tmp_path / "mini_deit.yaml"
    spec.write_text(MINI_DEIT, encoding="utf-8")
    want = spec_counted(str(spec), ops=("add", "mul", "act", "bn"))
    got = counted(p)
    # by hand: patch conv 8·8·3·16·16 = 49,152; q, k, v, proj 4·17·16·16 = 17,408;
    # q·kᵀ and attn·v 2·2·17·17·8 = 9,248; MLP 2·17·16·64 = 34,816; head 16·10 = 160
    assert want.macs == 49_152 + 17_408 + 9_248 + 34_816 + 160 == 110_784
    assert (got.macs, got.params) == (want.macs, want.params)
    # params: conv 3,088, class token 16, pos 272, 3 LNs 96, qkv+proj 1,088, MLP 2,128,
    # head 170
    assert got.params == 3_088 + 16 + 272 + 96 + 1_088 + 2_128 + 170 == 6_858
    assert got.ops_by_category == want.ops_by_category
    assert got.param_parts.tables == 16 + 272  # class token and positional table


def test_scores_are_a_matmul_of_two_computed_tensors(tmp_path):
    g = G(("N", 3, 32, 32), opset=17)
    p = g.save(tmp_path / "m.onnx", Exporter(g, False, "separate").network())
    net = read_network(str(p))
    mm = [n for n in net.nodes if n.layer.kind == "matmul"]
    # (2 heads × 17 × 8)·(2 × 8 × 17) → 2 × 17 × 17, then (2 × 17 × 17)·(2 × 17 × 8)
    assert [(n.in_shapes, n.out) for n in mm] == [
        (((2, 17, 8), (2, 8, 17)), (2, 17, 17)), (((2, 17, 17), (2, 17, 8)), (2, 17, 8))]
    assert [n.layer.kind for n in net.nodes if n.layer.kind in
            ("class_token", "pos_embed", "scalar", "take_tokens")] == [
        "class_token", "pos_embed", "scalar", "take_tokens"]


def test_windows_folded_into_the_batch_are_not_counted(tmp_path):
    """Swin's view(-1, p·p, C) stacks windows on the batch axis: read by a layer (not only
    by other views, as the dynamo exporter's kᵀ is), it has no rule: counting it as one
    image would drop the windows, so an unknown op, never a wrong count."""
    g = G(("N", 8, 4, 4))
    x = g.node("Transpose", ["x"], perm=[0, 2, 3, 1])
    x = g.node("Reshape", [x, g.ints([-1, 4, 8])], name="win")
    p = g.save(tmp_path / "m.onnx", g.node("Relu", [x]))
    with pytest.raises(MacscalcError) as e:
        read_network(str(p))
    assert e.value.message.startswith("no counting rule for these ONNX operators: Reshape "
                                      "folding positions into the batch axis (1: win)")


def test_group_and_instance_norm(tmp_path):
    g = G(("N", 8, 4, 4), opset=21)
    x = g.node("GroupNormalization", ["x", g.init((8,)), g.init((8,))], num_groups=2)
    x = g.node("InstanceNormalization", [x, g.init((8,)), g.init((8,))])
    p = g.save(tmp_path / "m.onnx", x)
    net = read_network(str(p))
    assert [(n.layer.kind, n.layer.groups) for n in net.nodes] == [("groupnorm", 2),
                                                                   ("groupnorm", 8)]
    r = counted(p)
    # γ, β per channel, twice: 32; 7 bn ops per element (lang/norms.py): 2·7·128 = 1,792
    assert (r.params, r.ops_by_category["bn"]) == (32, 1_792)
    g = G(("N", 8, 4, 4), opset=18)  # opset 18: γ, β per group, not per channel
    p = g.save(tmp_path / "m.onnx", g.node("GroupNormalization",
                                           ["x", g.init((2,)), g.init((2,))], num_groups=2))
    assert counted_error(p).startswith("no counting rule for these ONNX operators: "
                                       "GroupNormalization with a scale not of one per channel")


def counted_error(p: Path) -> str:
    with pytest.raises(MacscalcError) as e:
        read_network(str(p))
    return e.value.message


def test_first_error_lists_every_unknown_operator(tmp_path):
    """The walk goes on past an unknown op (through a placeholder of the file's shape), so
    an op with a rule but an unsupported form further on is listed too, with counts."""
    g = G(("N", 8, 4, 4))
    x = g.node("Softplus", ["x"], name="t1")
    for i in range(3):
        x = g.conv(x, 8, 8, 1)
        x = g.node("Clip", [x, g.scalar(0.0), g.scalar(3.0)], name=f"c{i}")
    p = g.save(tmp_path / "m.onnx", x)
    assert counted_error(p) == (
        "no counting rule for these ONNX operators: Softplus (1: t1); Clip(0.0, 3.0) "
        "(3: c0, c1, c2). Nothing is counted as zero; --allow-unknown counts them as "
        "unknown (report status partial)")
    result = runner.invoke(app, ["count", str(p)])
    assert result.exit_code == 2
    assert "Clip(0.0, 3.0) (3: c0, c1, c2)" in result.stderr


GRN_NORMS = {  # opset, how ‖x‖₂ over the positions is written
    "reducel2-17": (17, "ReduceL2"), "reducel2-18": (18, "ReduceL2"),
    "pow-sum-sqrt": (17, "Pow"), "mul-sum-sqrt": (18, "Mul"),
    "sumsquare-sqrt": (17, "ReduceSumSquare")}


def _l2(g: G, x: str, form: str) -> str:
    """‖x‖₂ over axes 1 and 2, keepdims: torch's ``x.norm(p=2)`` (ReduceL2, both exporters,
    torch 2.14) or spelled out, ``x.pow(2).sum(...).sqrt()`` or ``(x * x).sum(...)``."""
    new = g.opset >= 18
    if form == "ReduceL2":
        return g.node("ReduceL2", [x, *([g.ints([1, 2])] if new else [])], keepdims=1,
                      **({} if new else {"axes": [1, 2]}))
    if form == "ReduceSumSquare":
        total = g.node("ReduceSumSquare", [x, *([g.ints([1, 2])] if new else [])],
                       keepdims=1, **({} if new else {"axes": [1, 2]}))
    else:
        sq = g.node("Pow", [x, g.scalar(2.0)]) if form == "Pow" else g.node("Mul", [x, x])
        total = g.node("ReduceSum", [sq, g.ints([1, 2])], keepdims=1)  # axes input: opset 13+
    return g.node("Sqrt", [total])


@pytest.mark.parametrize("form", GRN_NORMS)
def test_global_response_norm_pattern(tmp_path, form):
    """timm's GlobalResponseNorm on N×H×W×C: x.norm(p=2, dim=(1, 2)), its mean over the
    channels + ε, x·n, γ·, + β (addcmul), + x: one ``grn``, whichever way the norm is
    written."""
    opset, norm = GRN_NORMS[form]
    g = G(("N", 8, 4, 4), opset=opset)
    x = g.node("Transpose", ["x"], perm=[0, 2, 3, 1])
    n2 = _l2(g, x, norm)
    m = g.node("ReduceMean", [n2, *([g.ints([-1])] if opset >= 18 else [])], keepdims=1,
               **({"axes": [-1]} if opset < 18 else {}))
    nx = g.node("Div", [n2, g.node("Add", [m, g.scalar(1e-6)])])
    y = g.node("Mul", [g.init((8,)), g.node("Mul", [x, nx])])
    y = g.node("Add", [x, g.node("Add", [g.init((8,)), y])])
    p = g.save(tmp_path / "m.onnx", g.node("Transpose", [y], perm=[0, 3, 1, 2]))
    assert [n.layer.kind for n in read_network(str(p)).nodes] == ["grn"]
    r = counted(p)
    # lang/norms.py: γ, β 2·8; bn ops 6·(4·4·8) + 3·8 = 792, as the spec's grn row
    assert (r.params, r.extra_ops, r.ops_by_category["bn"]) == (16, 792, 792)


@pytest.mark.parametrize("fused", [False, True])
def test_import_writes_the_views_as_reshape_rows(tmp_path, fused):
    """import: the file's layout changes become free ``reshape`` rows, timm's fused qkv
    taken apart becomes three channel ``slice`` rows, and matmul reads both its inputs,
    so the written spec counts exactly what the file counts."""
    g = G(("N", 3, 32, 32), opset=17)
    p = g.save(tmp_path / "m.onnx", Exporter(g, False, "gather" if fused else "separate").network())
    out = tmp_path / "m.yaml"
    result = runner.invoke(app, ["import", str(p), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    if fused:
        assert "  - slice: {c: 16, start: 32, name: gather28, from: matmul17}\n" in text
        assert "  - matmul: {name: matmul30, from: [matmul30.in, matmul30.in1]}\n" in text
    else:
        assert "  - reshape: {shape: [2, 17, 8], layout: tokens, name: matmul38.in, " \
               "from: matmul17}\n" in text
        assert "  - matmul: {name: matmul38, from: [matmul38.in, matmul38.in1]}\n" in text
    spec = spec_counted(str(out), ops=("add", "mul", "act", "bn"))
    onnx_r = counted(p)
    assert (spec.macs, spec.params, spec.ops_by_category) == (
        onnx_r.macs, onnx_r.params, onnx_r.ops_by_category)
    assert spec.macs == 110_784  # the mini DeiT's hand count above


def test_import_refuses_a_view_of_part_of_a_tensor(tmp_path):
    """A layer reading fewer elements than its producer wrote (no slice between) has no
    row: refused with its name, never written as a spec that does not count."""
    from macscalc.lang.spec_writer import spec_text
    from macscalc.lang.tokens import Tokens

    g = G(("N", 3, 32, 32), opset=17)
    net = read_network(str(g.save(tmp_path / "m.onnx", Exporter(g, False, "separate").network())))
    i = next(k for k, n in enumerate(net.nodes) if n.layer.kind == "matmul")
    bad = net.nodes[i]._replace(in_shapes=(Tokens(1, 17, 8), net.nodes[i].in_shapes[1]))
    net = net._replace(nodes=(*net.nodes[:i], bad, *net.nodes[i + 1:]))
    with pytest.raises(MacscalcError) as e:
        spec_text(net)
    assert e.value.message == (
        "cannot write 'matmul38' as a spec row: it reads 17×8 tokens, a part of the output "
        "of 'matmul17' (17×16 tokens); import has no row for such a view yet (the file itself "
        "counts)")


def test_sdpa_scales_q_and_k_not_the_scores(tmp_path):
    """torch 2.13's TorchScript export of scaled_dot_product_attention multiplies q and kᵀ
    by √scale each instead of the scores by scale: the same MACs and params, and the mul
    ops the graph does (2 × 2·17·8 = 544), not the spec's 2·17·17 = 578 on the scores."""
    g = G(("N", 3, 32, 32), opset=17)
    p = g.save(tmp_path / "m.onnx", Exporter(g, False, "split", sdpa=True).network())
    spec = tmp_path / "mini_deit.yaml"
    spec.write_text(MINI_DEIT, encoding="utf-8")
    want = spec_counted(str(spec), ops=("add", "mul", "act", "bn"))
    got = counted(p)
    assert (got.macs, got.params) == (want.macs, want.params) == (110_784, 6_858)
    assert (want.ops_by_category["mul"], got.ops_by_category["mul"]) == (578, 544)
    assert {k: v for k, v in got.ops_by_category.items() if k != "mul"} == \
        {k: v for k, v in want.ops_by_category.items() if k != "mul"}


def test_constants_and_two_tensor_sub_div(tmp_path):
    """Sub/Div/Pow by a scalar constant: ``scalar`` (1 op per element, lang/layers.py
    SCALAR_OPS: sub under add, div and pow under mul); PoolFormer's pool(x) − x and a
    division of two computed tensors: ``eltwise``; Sub by a per-channel constant: unknown."""
    g = G(("N", 8, 4, 4))
    x = g.node("Sub", ["x", g.scalar(0.5)])
    x = g.node("Pow", [g.node("Div", [x, g.scalar(2.0)]), g.scalar(2.0)])
    pooled = g.node("AveragePool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    x = g.node("Div", [g.node("Sub", [pooled, x]), x])
    p = g.save(tmp_path / "m.onnx", x)
    net = read_network(str(p))
    assert [(n.layer.kind, getattr(n.layer, "op", None)) for n in net.nodes] == [
        ("scalar", "sub"), ("scalar", "div"), ("scalar", "pow"), ("pool", "avg"),
        ("eltwise", "sub"), ("eltwise", "div")]
    r = counted(p)
    # 128 elements: sub 128 + eltwise sub 128 under add; div, pow, eltwise div 3·128 under mul
    assert (r.ops_by_category["add"], r.ops_by_category["mul"]) == (256, 384)
    g = G(("N", 8, 4, 4))
    p = g.save(tmp_path / "m.onnx", g.node("Sub", ["x", g.init((1, 8, 1, 1))], name="s"))
    assert counted_error(p).startswith("no counting rule for these ONNX operators: Sub with "
                                       "broadcasting or by a non-scalar constant (1: s)")


def test_bias_table_gathered_and_added(tmp_path):
    """timm's attention_biases[:, attention_bias_idxs] + scores: one ``bias_table`` of
    heads × entries parameters (2 · 3 = 6; 1 add per score, 2·2·4·4 = 64), shared by the
    windows of a [1, windows, heads, m, n] view; an index that does not fit the scores is
    an unknown op, never a positional table of the scores' size."""
    def graph(index_dims: tuple[int, int]) -> Path:
        g = G(("N", 4, 4, 4))
        x = g.node("Transpose", ["x"], perm=[0, 2, 3, 1])  # 4 × 4 × 4 tokens
        x = g.node("Reshape", [x, g.ints([1, 2, 2, 4, 4])])
        idx = g.init(index_dims, np.arange(np.prod(index_dims)) % 3, np.int64)
        bias = g.node("Gather", [g.init((2, 3)), idx], axis=1)
        return g.save(tmp_path / "m.onnx", g.node("Add", [x, bias], name="biased"))

    net = read_network(str(graph((4, 4))))
    (node,) = [n for n in net.nodes if n.layer.kind == "bias_table"]
    assert (node.layer.entries, node.layer.per) == (3, 2)
    r = counted(graph((4, 4)))
    assert (r.params, r.param_parts.tables, r.ops_by_category["add"]) == (6, 6, 64)
    assert counted_error(graph((2, 8))).startswith(
        "no counting rule for these ONNX operators: Gather of a table that is no attention "
        "bias of these scores (1: biased)")


@pytest.mark.parametrize("form", ["torchscript-separate-qkv", "einsum"])
def test_check_against_compares_attention(tmp_path, form):
    """``check --against``: a ViT's spec against its ONNX export matches layer by layer,
    token tensors read as the spec's (17×16 tokens, not 17×1×16), and the compared MACs
    hold q·kᵀ and attn·v (2·2·17·17·8 = 9,248 of the 110,784 counted above)."""
    import json

    opset, dynamo, qkv, einsum = FORMS[form]
    g = G(("N", 3, 32, 32), opset=opset)
    p = g.save(tmp_path / "m.onnx", Exporter(g, dynamo, qkv, einsum).network())
    spec = tmp_path / "mini_deit.yaml"
    spec.write_text(MINI_DEIT, encoding="utf-8")
    result = runner.invoke(app, ["check", str(spec), "--against", str(p), "-f", "json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)["drift"][0]
    assert (d["agree"], d["layers_spec"], d["layers_matching"]) == (True, 10, 10)
    assert d["macs_spec"] == d["macs_model"] == 110_784
    mm = [r for r in d["layers"] if r["spec_detail"].startswith("inner")]
    assert [(r["spec_in"], r["model_out"], r["spec_detail"], r["model_macs"]) for r in mm] == [
        ("2×17×8 tokens", "2×17×17 tokens", "inner 8", 4_624),
        ("2×17×17 tokens", "2×17×8 tokens", "inner 17", 4_624)]
    q = d["layers"][1]
    assert (q["spec_in"], q["model_in"]) == ("17×16 tokens", "17×16 tokens")
    # a spec whose heads are twice as wide (key_dim 16, value_dim with it) drifts: q, k, v
    # and the projection 4·17·16·16 more, q·kᵀ and attn·v 2·2·17·17·8 more
    spec.write_text(MINI_DEIT.replace("attention: {heads: $heads}",
                                      "attention: {heads: $heads, key_dim: 16}"),
                    encoding="utf-8")
    result = runner.invoke(app, ["check", str(spec), "--against", str(p), "-f", "json"])
    assert result.exit_code == 1
    d = json.loads(result.stdout)["drift"][0]
    assert d["macs_spec"] - d["macs_model"] == 4 * 17 * 16 * 16 + 2 * 2 * 17 * 17 * 8
    assert d["first_divergence"]["spec_name"] == "vit_block1/attention1/q"


def _group_norm(g: G, x: str, groups: int, c: int, torchscript: bool,
                scale: float = 1.0) -> str:
    """torch.nn.GroupNorm(groups, c) below opset 21, as torch 2.14 writes it: Reshape to
    (N, G, -1), InstanceNormalization (scale 1, shift 0 per group), Reshape back, Mul γ,
    Add β (C×1×1). TorchScript: the scale and shift as Constant nodes, the shape back as
    Shape(x); dynamo: initializers and the dims as a constant."""
    from onnx import numpy_helper

    def const(v: np.ndarray) -> str:
        if not torchscript:
            return g.init(v.shape, v)
        return g.node("Constant", [], value=numpy_helper.from_array(v.astype(np.float32)))

    y = g.node("Reshape", [x, g.ints([0, groups, -1])], name="/gn/Reshape")
    y = g.node("InstanceNormalization", [y, const(np.full(groups, scale)),
                                         const(np.zeros(groups))], epsilon=1e-5)
    back = g.node("Shape", [x]) if torchscript else g.ints([1, c, 4, 4])
    y = g.node("Reshape", [y, back])
    y = g.node("Mul", [y, g.init((c, 1, 1), np.ones(c))])
    return g.node("Add", [y, g.init((c, 1, 1))], name="/gn/Add")


@pytest.mark.parametrize("torchscript", [True, False])
def test_group_norm_as_the_exporters_write_it(tmp_path, torchscript):
    """GroupNorm(2, 8) below opset 21 reads as one ``groupnorm`` of 2 groups: γ, β per
    channel, 2·8 = 16 params (PyTorch's sum(p.numel()) of nn.GroupNorm(2, 8)); 7 bn ops
    per element, 7·128 = 896 (lang/norms.py), as the spec's row. The instance norm's own
    scale of ones and shift of zeros are the exporter's, no parameters."""
    g = G(("N", 8, 4, 4), opset=17)
    p = g.save(tmp_path / "m.onnx", _group_norm(g, "x", 2, 8, torchscript))
    net = read_network(str(p))
    assert [(n.layer.kind, n.layer.groups, n.name) for n in net.nodes] == [
        ("groupnorm", 2, "gn")]
    r = counted(p)
    assert (r.params, r.param_parts.ln_scale, r.ops_by_category["bn"]) == (16, 8, 896)
    # an instance norm with a scale of its own on the regrouped channels is no GroupNorm
    g = G(("N", 8, 4, 4), opset=17)
    p = g.save(tmp_path / "m.onnx", _group_norm(g, "x", 2, 8, torchscript, scale=0.5))
    assert counted_error(p).startswith(
        "no counting rule for these ONNX operators: InstanceNormalization of regrouped "
        "channels with a learned scale (1: /gn/Add)")


def test_token_runs_other_than_the_first(tmp_path):
    """x[:, 1:] (every token after the class token; torch 2.14 writes Slice [1:INT64_MAX]
    on axis 1 under both exporters) and x[:, 1] (DeiT's distillation token, Gather index 1)
    are ``take_tokens`` from token 1; a Slice with a step is an unknown op, never a count."""
    g = G(("N", 8, 4, 4), opset=17)
    t = g.node("Transpose", [g.node("Reshape", ["x", g.ints([1, 8, 16])])], perm=[0, 2, 1])
    rest = g.node("Slice", [t, g.ints([1]), g.ints([2 ** 63 - 1]), g.ints([1]), g.ints([1])])
    dist = g.node("Gather", [t, g.init((), 1, np.int64)], axis=1)
    p = g.save(tmp_path / "m.onnx", g.node("Relu", [rest]), dist)
    net = read_network(str(p))
    taken = [n for n in net.nodes if n.layer.kind == "take_tokens"]
    assert [(n.layer.start, n.layer.tokens, str(n.in_shapes[0]), str(n.out)) for n in taken] == [
        (1, 15, "16×8 tokens", "15×8 tokens"), (1, 1, "16×8 tokens", "1×8 tokens")]
    g = G(("N", 8, 4, 4), opset=17)
    t = g.node("Transpose", [g.node("Reshape", ["x", g.ints([1, 8, 16])])], perm=[0, 2, 1])
    p = g.save(tmp_path / "m.onnx", g.node("Slice", [t, g.ints([0]), g.ints([16]), g.ints([1]),
                                                    g.ints([2])], name="every_other"))
    assert counted_error(p).startswith("no counting rule for these ONNX operators: Slice of "
                                       "the tokens with a step (1: every_other)")


def test_class_token_on_several_sequences(tmp_path):
    """One (1, 1, 1, c) table expanded over 4 sequences and concatenated before each (what
    ``export`` writes for a class token on windows): ``class_token``, its 8 parameters once;
    4 different tables, one per sequence, are no class token (refused, not counted as one)."""
    def graph(expanded: bool) -> Path:
        g = G(("N", 8, 4, 4), opset=17)
        x = g.node("Transpose", ["x"], perm=[0, 2, 3, 1])  # 4 sequences × 4 tokens × 8
        cls = (g.node("Expand", [g.init((1, 1, 1, 8)), g.ints([1, 4, 1, 8])]) if expanded
               else g.init((1, 4, 1, 8)))
        return g.save(tmp_path / "m.onnx", g.node("Concat", [cls, x], axis=2, name="cat"))

    net = read_network(str(graph(True)))
    assert [(n.layer.kind, n.layer.tokens, str(n.out)) for n in net.nodes] == [
        ("class_token", 1, "4×5×8 tokens")]
    assert counted(graph(True)).param_parts.tables == 8
    assert counted_error(graph(False)).startswith(
        "no counting rule for these ONNX operators: Concat of a constant that is not a class "
        "token (1: cat)")
