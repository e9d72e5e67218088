"""The spec language for any CNN: blocks of your own, split and concat, residuals with
projection, names, expressions, and every mistake located. Expected numbers are worked out
by hand in the comments."""

from __future__ import annotations

from fractions import Fraction

import pytest
from typer.testing import CliRunner

from macscalc import PARAM_CONVENTIONS, Convention, build, count, parse
from macscalc.analysis.memory import tensors
from macscalc.cli import app
from macscalc.core.errors import MacscalcError
from macscalc.core.expr import ExprError, evaluate

HEAD = "name: t\nsource: test\ninput: {size: 8}\nclasses: 10\ndefaults: {bn: true, act: relu}\n"


def _net(body: str, alpha: str = "1"):
    return build(parse(HEAD + body, "t.yaml"), Fraction(alpha))


def _count(body: str, alpha: str = "1"):
    return count(_net(body, alpha), Convention(PARAM_CONVENTIONS["torch"]))


def _error(body: str) -> str:
    with pytest.raises(MacscalcError) as e:
        _net(body)
    return str(e.value)


BOTTLENECK = """blocks:
  bottle:
    args: {c: required, s: 1}
    layers:
      - conv: {c: $c, k: 1}
      - conv: {c: $c, k: 3, s: $s, name: mid}
      - conv: {c: $c * 2, k: 1, act: none}
      - residual: {}
      - act: {fn: relu}
"""


def test_a_block_of_your_own_repeats_with_the_first_stride_rule():
    r = _count(BOTTLENECK + "layers:\n  - conv: {c: 8, k: 1}\n  - bottle: {c: 4, s: 2, n: 2}\n")
    by = {lc.node.name: lc for lc in r.layers}
    # first use: stride 2 on its 3×3 conv, 8×8×8 → 4×4×8, so a projection shortcut
    assert by["bottle1_1/mid/conv"].node.out == (4, 4, 4)
    assert by["bottle1_1/residual1/proj"].macs == 8 * 8 * 4 * 4  # 1×1/2 conv 8 → 8 on 4×4
    assert by["bottle1_1/residual1/add"].node.inputs == ("bottle1_1/conv3/conv.bn",
                                                         "bottle1_1/residual1/proj.bn")
    # the repeat keeps stride 1 and adds its own input: no projection
    assert by["bottle1_2/mid/conv"].node.out == (4, 4, 4)
    assert "bottle1_2/residual1/proj" not in by
    assert by["bottle1_2/residual1"].node.inputs == ("bottle1_2/conv3/conv.bn",
                                                   "bottle1_1/act1")
    assert r.layers[-1].node.name == "bottle1_2/act1"
    # MACs: stem 8·8·3·8; use 1: 8·8·8·4 + 4·4·9·4·4 + 4·4·4·8 + proj 4·4·8·8;
    # use 2: 4·4·8·4 + 4·4·9·4·4 + 4·4·4·8
    assert r.macs == 1536 + (2048 + 2304 + 512 + 1024) + (512 + 2304 + 512)


def test_names_are_scoped_per_instance_and_from_looks_inside_first():
    body = """blocks:
  two:
    args: {}
    layers:
      - conv: {c: 4, k: 1, name: a}
      - conv: {c: 4, k: 1, from: a}
layers:
  - conv: {c: 4, k: 1, name: a}
  - two: {}
  - two: {name: again}
  - add: {from: [a, again/a]}
"""
    net = _net(body)
    inputs = {n.name: n.inputs for n in net.nodes}
    assert inputs["two1/conv2/conv"] == ("two1/a/conv.relu",)
    assert inputs["again/conv2/conv"] == ("again/a/conv.relu",)
    assert inputs["add1"] == ("a/conv.relu", "again/a/conv.relu")


def test_split_concat_and_shuffle_as_shufflenet_builds_them():
    body = """layers:
  - conv: {c: 8, k: 1}
  - split: {parts: 2, name: x}
  - pw: {c: 4}
  - concat: {from: [x.0, prev]}
  - shuffle: {groups: 2}
"""
    net = _net(body)
    by = {n.name: n for n in net.nodes}
    assert by["x.0"].out == by["x.1"].out == (8, 8, 4)
    assert by["pw1/pw"].inputs == ("x.1",)  # the row after a split reads its last part
    assert by["concat1"].inputs == ("x.0", "pw1/pw.relu") and by["concat1"].out == (8, 8, 8)
    # memory: the parts are views of the conv's output; the concat writes a new tensor
    assert [t.name for t in tensors(net)] == ["input", "conv1/conv", "pw1/pw", "concat1"]


def test_split_sizes_and_errors():
    assert _net("layers:\n  - conv: {c: 6, k: 1}\n  - split: {sizes: [2, 4]}\n"
                ).nodes[-1].out == (8, 8, 4)
    assert _error("layers:\n  - conv: {c: 6, k: 1}\n  - split: {parts: 4}\n") == (
        "t.yaml:8:5: split1: 6 channels do not split into 4 equal parts")
    assert _error("layers:\n  - conv: {c: 6, k: 1}\n  - split: {sizes: [2, 2]}\n") == (
        "t.yaml:8:5: split1: split sizes 2+2 = 4 do not add up to the 6 input channels")


def test_residual_modes():
    body = "layers:\n  - conv: {c: 4, k: 3, s: 2}\n  - residual: {mode: %s}\n"
    assert [n.name for n in _net(body % "skip").nodes][-1] == "conv1/conv.relu"
    assert _error(body % "error") == (
        "t.yaml:8:5: residual1: residual needs the input's shape 8×8×3 to match the output's "
        "4×4×4")
    # ResNet-D: 2×2 average pool, then the 1×1 conv
    net = _net("layers:\n  - conv: {c: 4, k: 3, s: 2}\n  - residual: {proj: avgconv}\n")
    assert [n.layer.kind for n in net.nodes][-4:] == ["pool", "conv2d", "batchnorm", "add"]


def test_inverted_residual_refuses_an_impossible_residual():
    assert _error("layers:\n  - ir: {t: 6, c: 8, s: 2, residual: true}\n") == (
        "t.yaml:7:5: ir1: residual: true needs stride 1 and equal input and output shapes, "
        "got 8×8×3 → 4×4×8")


def test_block_arguments_missing_unknown_and_expression_errors():
    body = BOTTLENECK + "layers:\n  - bottle: {%s}\n"
    assert _error(body % "s: 2") == (
        "t.yaml:16:13: block 'bottle' needs argument 'c' (its arguments: c, s)")
    assert _error(body % "c: 4, cc: 2") == (
        "t.yaml:16:20: unknown argument 'cc' of block 'bottle' (its arguments: c, s)")
    bad = BOTTLENECK.replace("$c * 2", "$c / $q")
    assert _error(bad + "layers:\n  - bottle: {c: 4}\n") == (
        "t.yaml:12:19: unknown argument $q (known: $c, $s, $i) (in block 'bottle' used at line 16)")


def test_recursion_is_reported_with_its_chain():
    body = """blocks:
  a:
    layers:
      - b: {}
  b:
    layers:
      - a: {}
layers:
  - a: {}
"""
    assert _error(body) == "t.yaml:12:9: block 'a' uses itself: a → b → a"


def test_if_rows_and_parametric_rounding():
    body = """rounding: {divisor: 4, min_ratio: 0.9}
blocks:
  maybe:
    args: {c: required, se: 0}
    layers:
      - conv: {c: $c, k: 1}
      - se: {if: $se == 1}
layers:
  - maybe: {c: 20}
  - maybe: {c: 20, se: 1}
"""
    net = _net(body, "0.5")
    kinds = [n.name for n in net.nodes]
    assert not any(k.startswith("maybe1/se") for k in kinds)
    assert any(k.startswith("maybe2/se1/") for k in kinds)
    assert net.nodes[0].out.c == 12  # 20·0.5 = 10 → nearest multiple of 4 is 12
    assert net.spec.rounding.name == "make_divisible_4"


def test_automatic_names_never_collide_with_yours_nor_shift_across_kinds():
    net = _net("layers:\n  - conv: {c: 4, k: 1, name: conv2}\n  - conv: {c: 4, k: 1}\n")
    assert [n.name for n in net.nodes if n.layer.kind == "conv2d"] == ["conv2/conv",
                                                                       "conv2_auto/conv"]
    plain = _net("layers:\n  - conv: {c: 4, k: 1}\n  - pw: {c: 4}\n  - conv: {c: 4, k: 1}\n")
    inserted = _net("layers:\n  - conv: {c: 4, k: 1}\n  - dw: {}\n  - pw: {c: 4}\n"
                    "  - conv: {c: 4, k: 1}\n")
    names = {n.name for n in inserted.nodes}
    assert {n.name for n in plain.nodes} <= names  # inserting a dw renames nothing


def test_did_you_mean_only_when_close():
    assert _error("layers:\n  - conv: {c: 8, k: 3, group_widht: 2}\n").startswith(
        "t.yaml:7:24: unknown key 'group_widht' in 'conv'; did you mean 'group_width'?")
    # 'se' is not a misspelt 's': no suggestion
    assert "did you mean" not in _error("layers:\n  - pw: {c: 8, se: true}\n")
    assert _error("layers:\n  - conv: {c: 8, k: 1, name: stem}\n  - pw: {c: 4, from: stme}\n"
                  ) == "t.yaml:8:5: no layer named 'stme' before this row; did you mean 'stem'?"


def test_expressions_are_exact_and_bounded():
    env = {"c": 24, "t": "88/24", "act": "relu"}
    assert evaluate("$c * 4", env) == 96
    assert evaluate("$c * $t", env) == 88
    assert evaluate("$c / 5", env) == "24/5"
    assert evaluate("max($c // 5, 8) + ceil($c / 5)", env) == 13
    assert evaluate("$act", env) == "relu"
    assert evaluate("$c > 8 and not ($c == 24 or $c < 0)", env) == 0
    assert evaluate("($c != 1 or 0) and $c // 24", env) == 1
    with pytest.raises(ExprError, match="division by zero"):
        evaluate("$c // 0", env)
    with pytest.raises(ExprError, match="beyond"):
        evaluate("999999 * 999999 * 999999", env)
    with pytest.raises(ExprError, match="limited to 200 characters"):
        evaluate("$c + " * 60 + "1", env)


def test_cli_reports_block_errors_located_with_exit_2(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(HEAD + "blocks:\n  x:\n    layers:\n      - x: {}\nlayers:\n  - x: {}\n",
                    encoding="utf-8")
    result = CliRunner().invoke(app, ["count", str(spec)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {spec}:9:9: block 'x' uses itself: x → x\n"


def test_readme_documents_every_kind_and_argument():
    from pathlib import Path

    from macscalc.lang.spec import ROW_KEYS, ROW_KINDS, TOP_KEYS

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Spec language"):text.index("## JSON reports")]
    missing = [f"`{k}`" for k in [*ROW_KINDS, *ROW_KEYS, *TOP_KEYS] if f"`{k}`" not in section]
    missing += [f"{kind}.{a}" for kind, cls in ROW_KINDS.items() for a in cls.args
                if f"`{a}`" not in section]
    assert missing == []


def test_explain_a_use_of_your_own_block(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(HEAD + BOTTLENECK + "layers:\n  - bottle: {c: 4}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["explain", str(spec), "--layer", "bottle1", "-f", "json"])
    assert result.exit_code == 0, result.output
    import json

    layers = dict.fromkeys(r["layer"] for r in json.loads(result.stdout)["formulas"])
    assert list(layers)[:2] == ["bottle1/conv1/conv", "bottle1/conv1/conv.bn"]


def test_block_expansion_and_network_size_are_bounded():
    # 30 blocks each using the next twice would expand to 2³⁰ rows (within the 32 levels
    # blocks may nest)
    doubling = "blocks:\n" + "".join(
        f"  b{i}:\n    layers:\n      - b{i + 1}: {{}}\n      - b{i + 1}: {{}}\n"
        for i in range(30)) + "  b30:\n    layers:\n      - act: {fn: relu}\n"
    assert "the spec expands to more than 20,000 rows (in block" in _error(
        doubling + "layers:\n  - b0: {}\n")
    nested = ("blocks:\n  a:\n    layers:\n      - act: {fn: relu, n: 1000}\n  b:\n"
              "    layers:\n      - a: {n: 1000}\nlayers:\n  - b: {n: 1000}\n")
    assert _error(nested) == "t.yaml:9:9: the network has more than 20,000 layers"
    assert _error("layers:\n  - act: {fn: relu, n: 1001}\n") == (
        "t.yaml:7:24: 'n' of 'act' must be a non-negative integer up to 1,000, got 1001")
