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
