"""Composite blocks expand to the primitives their reference implementations build."""

from __future__ import annotations

from fractions import Fraction

from macscalc import PARAM_CONVENTIONS, Convention, build, count, parse

HEADER = "name: t\nsource: test\ninput: {size: 8, channels: 16}\nclasses: 10\nlayers:\n"


def _count(rows: str, ops: tuple[str, ...] = ()):
    net = build(parse(HEADER + rows, "t.yaml"), Fraction(1))
    return count(net, Convention(PARAM_CONVENTIONS["torch"], ops))


def _names(report) -> list[str]:
    return [lc.node.name for lc in report.layers]


def test_inverted_residual_without_expansion_and_with_residual():
    r = _count("  - ir: {t: 1, c: 16, bn: true, act: relu6}\n")
    assert _names(r) == ["ir1/dw", "ir1/dw.bn", "ir1/dw.relu6", "ir1/project",
                         "ir1/project.bn", "ir1/add"]
    # dw 3·3·16 at 8·8, project 16·16 at 8·8
    assert r.macs == 9 * 16 * 64 + 16 * 16 * 64


def test_squeeze_excite_width_and_cost():
    # SE on 72 channels: make_divisible(72/4 = 18, 8) = 24 (16 would drop > 10 %)
    r = _count("  - pw: {c: 72}\n  - se: {}\n")
    by = {lc.node.name: lc for lc in r.layers}
    assert by["se1/reduce"].node.out.c == 24
    assert by["se1/reduce"].macs == 72 * 24 and by["se1/expand"].macs == 24 * 72
    assert by["se1/reduce"].params.biases == 24
    assert by["se1/scale"].ops == {"mul": 8 * 8 * 72}
    assert {lc.node.role for lc in r.layers if lc.node.block == "se1"} == {"se"}


def test_micro_dw_is_k_by_1_then_1_by_k():
    r = _count("  - micro_dw: {k: 5, s: 2, m: [2, 1]}\n")
    assert _names(r) == ["micro_dw1/dw_k1", "micro_dw1/dw_k1.bn", "micro_dw1/dw_1k",
                         "micro_dw1/dw_1k.bn"]
    # 5×1 depthwise ×2 at 4×8, then 1×5 depthwise at 4×4 on 32 channels
    assert r.macs == 5 * (4 * 8 * 32) + 5 * (4 * 4 * 32)


def test_micro_pw_two_group_convs_around_a_shuffle():
    r = _count("  - micro_pw: {c: 24, r: 2, groups: [4, 2]}\n")
    assert _names(r) == ["micro_pw1/squeeze", "micro_pw1/squeeze.bn", "micro_pw1/shuffle",
                         "micro_pw1/expand", "micro_pw1/expand.bn"]
    # 16 → 8 with 4 groups, 8 → 24 with 2 groups, at 8×8
    assert r.macs == (16 // 4) * 8 * 64 + (8 // 2) * 24 * 64


def test_dyshiftmax_generator_and_fusion():
    r = _count("  - dyshiftmax: {k: 2, reduction: 8}\n", ops=("shiftmax",))
    by = {lc.node.name: lc for lc in r.layers}
    # squeeze: make_divisible(16 // 8 = 2, 4) → 4; FC 16→4, FC 4→16·2·2
    assert by["dyshiftmax1/fc1"].macs == 16 * 4
    assert by["dyshiftmax1/fc2"].macs == 4 * 64
    assert r.ops_by_category["shiftmax"] == 4 * 8 * 8 * 16


def test_micro_block_kinds_follow_the_config_values():
    a = _count("  - micro: {s: 2, c: 8, k: 3, ch_exp: [2, 2], ch_per_group: [0, 4], "
               "groups_1x1: [8, 2, 2], dy: [2, 0, 1], r: 1}\n")
    assert _names(a)[:4] == ["micro1/dw/dw_k1", "micro1/dw/dw_k1.bn", "micro1/dw/dw_1k",
                             "micro1/dw/dw_1k.bn"]
    c = _count("  - micro: {s: 1, c: 64, k: 3, ch_exp: [1, 4], ch_per_group: [4, 4], "
               "groups_1x1: [0, 0, 0], dy: [2, 2, 1], r: 2}\n")
    assert _names(c)[0] == "micro1/pw" and "micro1/add" not in _names(c)
    b = _count("  - micro: {s: 1, c: 16, k: 5, ch_exp: [1, 4], ch_per_group: [4, 4], "
               "groups_1x1: [16, 4, 4], dy: [2, 2, 1], r: 1}\n")
    assert _names(b)[0] == "micro1/pw1" and _names(b)[-1] == "micro1/add"
