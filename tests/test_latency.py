"""The latency model: features, the non-negative fit, leave-one-out, profiles, estimates,
calibrate and --device on the commands."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from macscalc.analysis import latency
from macscalc.analysis.calibrate import calibrate_file, calibrate_networks, read_measurements
from macscalc.analysis.design import suggest
from macscalc.analysis.kernels import NHWC, kernels, padded_rows
from macscalc.analysis.latency import (
    TERM_NAMES,
    TERMS,
    Errors,
    Profile,
    estimate,
    features,
    fit,
    leave_one_out,
    load_profile,
    nnls,
    predict,
    profile_yaml,
    term_ties,
)
from macscalc.cli import app
from macscalc.core.errors import MacscalcError
from tests.conftest import counted

np = pytest.importorskip("numpy", reason="the fit needs numpy")
runner = CliRunner()

# (spec, α, res) rows of many families, so that every term varies on its own
GRID = [("resnet18", "1.0", 96), ("regnet_x_400mf", "1.0", 96), ("mobilenet_v2", "0.5", 128),
        ("mnasnet1_0", "1.0", 128), ("efficientnet_b0", "1.0", 96),
        ("shufflenet_v2_x1_0", "1.0", 128), ("alexnet", "1.0", 224),
        ("mobilenet_v1", "0.25", 128), ("squeezenet1_1", "1.0", 96),
        ("mobilenet_v3_small", "1.0", 160), ("ghostnet_100", "1.0", 96),
        ("micronet_m0", "1.0", 160), ("efficientnet_b0", "1.0", 128),
        ("regnet_x_400mf", "1.0", 128), ("mobilenet_v3_large", "1.0", 128),
        ("googlenet", "1.0", 96), ("resnet50", "1.0", 96), ("squeezenet1_0", "1.0", 128),
        ("lraspp_mobilenet_v3_small", "1.0", 128), ("deeplabv3_mobilenet_v2", "1.0", 65)]
# constants to recover, in the profile's physical units
KNOWN = {"conv1x1_gmacs_per_s": 40.0, "conv_gmacs_per_s": 30.0, "group_gmacs_per_s": 20.0,
         "dw_gmacs_per_s": 10.0, "direct_gmacs_per_s": 15.0, "dw_mplanes_per_s": 20.0,
         "plane_mplanes_per_s": 60.0, "exp_gelems_per_s": 3.0, "resize_gelems_per_s": 0.5,
         "strided_gelems_per_s": 1.5, "pass_gbytes_per_s": 12.0,
         "gbytes_per_s": 25.0,
         "weight_gbytes_per_s": 8.0, "dram_gbytes_per_s": 4.0,
         "us_per_kernel": 2.5}
HAND = ("  - conv: {c: 8, k: 3, bn: true, act: relu}\n"
        "  - dw: {k: 5, bn: true, act: hswish}\n"
        "  - shuffle: {groups: 2}\n"
        "  - pw: {c: 8, bn: true, act: swish}\n"
        "  - global_pool: {}\n  - fc: {c: classes}\n")


def synthetic(constants: dict[str, float] = KNOWN) -> tuple[list[list[float]], list[float]]:
    coefs = [t.coef(constants[t.key]) for t in TERMS]
    x = [[features(counted(s, a, r).network)[t.name] for t in TERMS] for s, a, r in GRID]
    return x, [predict(coefs, row) for row in x]


def profile(**changes) -> Profile:
    base = Profile("toy", "a toy device", dict(KNOWN), ("conv2d", "depthwise"), 9,
                   Errors(5.0, 80.0, 10.0), Errors(6.0, 75.0, 20.0), "test rows")
    return base._replace(**changes)


def test_kernels_by_hand(spec_file):
    # 8×8×3 input ('same' padding), onnxruntime's blocked layout in blocks of 16 channels
    # (this machine's AVX-512): every kernel it runs, with its fusions and layout
    # conversions, counted by hand (float32: 4 bytes an element). onnxruntime 1.32 writes
    # for it: Conv, Conv (both blocked), ReorderOutput, Reshape, Transpose, Reshape, Conv
    # (blocked, reading the plain shuffle output directly), QuickGelu, ReorderOutput,
    # GlobalAveragePool, Flatten, Gemm, Reshape: 13 kernels, as here (9, the shuffle
    # counting 3 and the FC 3)
    net = counted(str(spec_file(HAND))).network
    got = [(k.nodes[0], k.what, k.features) for k in kernels(net)]
    assert got == [
        # 8 output channels computed as a block of 16: 3·3·3·16·64 MACs but the kernel rows
        # that read padding (output rows 0 and 7, each 8 positions of 3·3·16): 27,648 −
        # 2,304; bytes 4·(192 in, read plain + 1,024 out), weights 4·216; BN, relu fused
        ("conv1/conv", "conv2d", {"macs_conv": 25_344, "bytes": 4_864, "wbytes": 864}),
        # 5·5·16·64 MACs but 6 (output row, kernel row) pairs in the padding, each 8
        # positions of 5·16: 25,600 − 3,840; 16 channel planes; 4·(1,024 + 1,024), weights
        # 4·200; h-swish fused, in a pass of its own over the output: 4·(1,024 + 1,024) more
        ("dw1/dw", "depthwise", {"macs_dw": 21_760, "bytes": 16_384, "wbytes": 800,
                                 "dw_planes": 16}),
        # the shuffle runs in plain layout: its input converted (read 1,024 blocked, write
        # 512 plain), itself (read + write 512)
        ("dw1/dw.hswish", "reorder", {"pbytes": 6_144}),
        # a shuffle is three kernels to onnxruntime: reshape, transpose, reshape; the
        # transpose copies each of the 8 channel planes as a run of its own
        ("shuffle1", "shuffle", {"launches": 3, "pbytes": 4_096, "planes": 8}),
        # 8 input channels, fewer than a block: the 1×1 conv reads them plain, directly;
        # 8·16·64 MACs; 4·(512 + 1,024), weights 4·64; swish is not fused: a pass over the
        # blocked output, exp on its 1,024 elements
        ("pw1/pw", "conv2d", {"macs_direct": 8_192, "bytes": 6_144, "wbytes": 256}),
        ("pw1/pw.swish", "act", {"pbytes": 8_192, "exp": 1_024}),
        # a pool over 8 channels, not a whole block, runs plain: its input converted
        ("pw1/pw.swish", "reorder", {"pbytes": 6_144}),
        ("global_pool1", "global_pool (plain)", {"pbytes": 4 * (512 + 8)}),
        # the FC of a 1×1 image: flatten, Gemm, reshape back to an image
        ("fc1/fc", "linear", {"launches": 3, "macs_fc": 80, "bytes": 4 * (8 + 10),
                              "wbytes": 4 * 80})]
    assert features(net) == {"macs_conv1x1": 80, "macs_conv": 25_344, "macs_group": 0,
                             "macs_dw": 21_760, "macs_direct": 8_192, "dw_planes": 16,
                             "planes": 8, "exp": 1_024, "resize": 0, "strided": 0,
                             "pbytes": 26_656, "bytes": 27_464, "wbytes": 2_240, "dram": 0,
                             "kernels": 13}


def test_weights_past_the_first_8_mib_and_a_resize_have_terms_of_their_own(spec_file):
    # AlexNet streams 2,468,544 conv weights, then 37,748,736 + 16,777,216 + 4,096,000 FC
    # weights, 244,361,984 bytes at float32: the first 8 MiB (8,388,608 bytes, inside the
    # convs) at the cached rate, the rest from memory (dram)
    f = features(counted("alexnet").network)
    assert (f["wbytes"], f["dram"]) == (8_388_608, 244_361_984 - 8_388_608)
    # MobileNet V2 streams 3,469,760 conv and FC weights (torchvision's 3,504,872
    # parameters less 34,112 of batch norm, which folds into them, and the FC's 1,000
    # biases): 13.9 MB, 5.5 MB of them from memory; MicroNet-M0's 1.4 MB none
    f = features(counted("mobilenet_v2").network)
    assert (f["wbytes"], f["dram"]) == (8_388_608, 4 * 3_469_760 - 8_388_608)
    assert features(counted("micronet_m0").network)["dram"] == 0
    # a ×2 resize of 4×4×8 writes 8×8×8 elements (onnxruntime's Resize takes about 1 ns an
    # element, nearest or bilinear). Bilinear by a whole factor of a blocked tensor runs in
    # the blocked layout, over 16 channels a block: 1,024 elements; its output leaves
    # converted (4 · (1,024 read + 512 written)). A nearest resize (half-pixel, as the
    # export writes it) and one by no whole factor (4×4 → 6×6) run plain, their input
    # converted first (4 · (256 + 128)). onnxruntime 1.32 writes Conv, Upsample,
    # ReorderOutput for the first; Conv, ReorderOutput, Resize for the others
    def run(rows: str) -> list[tuple]:
        path = spec_file(rows, "name: t\nsource: test\ninput: {size: 4}\nclasses: 10\n")
        return [(k.what, k.features.get("resize"), k.features.get("pbytes"))
                for k in kernels(counted(str(path)).network)]

    assert run("  - pw: {c: 8}\n  - upsample: {scale: 2, mode: bilinear}\n") == [
        ("conv2d", None, None), ("upsample", 1_024, 4 * (256 + 1_024)),
        ("reorder", None, 4 * (1_024 + 512))]
    for rows in ("  - pw: {c: 8}\n  - upsample: {scale: 2, mode: nearest}\n",
                 "  - pw: {c: 8}\n  - upsample: {size: 6, mode: bilinear}\n"):
        out = 512 if "scale" in rows else 288
        assert run(rows) == [("conv2d", None, None), ("reorder", None, 4 * (256 + 128)),
                             ("upsample (plain)", out, 4 * (128 + out))]


def test_tensors_past_8_mib_come_from_memory_too(spec_file):
    # a 1×1 conv from a 1024×1024×3 image to 4 channels (computed as a block of 16; it
    # reads the 3 plain channels directly) reads 12 MiB and writes 16 MiB (64 MiB
    # blocked), past kernels.CACHED_BYTES: the tensors' bytes count again at the memory
    # rate (dram), as do the layout conversion's of the output; a 512×512 one's 3 and
    # 4 MiB do not
    def feats(size: int) -> list[tuple[str, dict]]:
        path = spec_file("  - pw: {c: 4}\n", f"name: t\nsource: test\ninput: {{size: {size}}}\n"
                         "classes: 10\n")
        return [(k.what, k.features) for k in kernels(counted(str(path)).network)]

    mib = 2**20
    assert feats(1024) == [
        ("conv2d", {"macs_direct": 48 * mib, "bytes": 76 * mib, "wbytes": 48,
                    "dram": 28 * mib}),
        ("reorder", {"pbytes": 80 * mib, "dram": 32 * mib})]
    assert [f.get("dram") for _, f in feats(512)] == [None, None]


@pytest.mark.parametrize("name", ["deit_small", "efficientvit_m0", "mobilevit_s"])
def test_attention_models_run_every_counted_mac(name):
    # the kernels carry every MAC the count has (but the kernel rows a blocked conv skips
    # at the padding): token-wise FC layers per token, and q·kᵀ and attn·v (matmul, at
    # the 1×1 rate: a batched GEMM) whole; before, the matmuls were left out (DeiT-S:
    # 357,663,744 of its MACs)
    report = counted(name)
    assert kernel_macs(report.network) == report.macs


def kernel_macs(net, skipping: bool = False, prefix: str = "macs_", block: int = 1) -> int:
    """MACs the kernels carry (those named ``prefix``…), by default with no kernel rows
    skipped and in a layout of one channel a block, which pads none."""
    clip = None if skipping else (lambda *_: 0)
    return sum(v for k in kernels(net, clip=clip, block=block) for name, v in k.features.items()
               if name.startswith(prefix))


def test_an_add_fuses_only_into_a_conv_without_an_activation(spec_file):
    # onnxruntime fuses a residual add into the conv before it (V2's linear projection,
    # ResNet's conv + BN) but not into one that fused an activation: there the add is a
    # kernel of its own. The graphs onnxruntime 1.32 writes for these specs: Conv,
    # ReorderOutput, Conv (the add fused), ReorderOutput; with relu, Conv, ReorderOutput,
    # Conv, Add, ReorderOutput. The second conv reads its 8 input channels, fewer than a
    # block, plain: x is converted for it, while the add reads x blocked
    def whats(act: str) -> list[str]:
        path = spec_file(f"  - pw: {{c: 8, name: x}}\n  - conv: {{c: 8, k: 1, act: {act}}}\n"
                         "  - residual: {from: x}\n")
        return [k.what for k in kernels(counted(str(path)).network)]

    assert whats("none") == ["conv2d", "reorder", "conv2d", "reorder"]
    assert whats("relu") == ["conv2d", "reorder", "conv2d", "add", "reorder"]


def test_a_fused_activation_other_than_relu_is_a_pass_over_the_output(spec_file):
    # onnxruntime's conv applies a fused ReLU in registers and any other fused activation
    # in a pass of its own (benchmarks/kernel_costs.py, onnxruntime 1.32 on this machine:
    # ReLU +0.01 ns an output element, ReLU6 +0.23, h-swish +0.29, sigmoid +0.41): the
    # pass reads and writes the 8×8×16 output again, 4·(1,024 + 1,024) bytes, in cache; a
    # sigmoid's 1,024 elements go through exp as well. (The 1×1 conv reads the 3-channel
    # image plain, directly: 3·16·64 MACs of their own class.)
    def conv(act: str) -> tuple[tuple[str, ...], dict[str, int]]:
        path = spec_file(f"  - conv: {{c: 16, k: 1, act: {act}}}\n")
        first = kernels(counted(str(path)).network)[0]
        return first.nodes, first.features

    plain = {"macs_direct": 3 * 16 * 64, "bytes": 4 * (192 + 1_024), "wbytes": 4 * 48}
    passed = {**plain, "bytes": 4 * (192 + 1_024) + 4 * (1_024 + 1_024)}
    assert conv("relu") == (("conv1/conv", "conv1/conv.relu"), plain)
    assert conv("relu6") == (("conv1/conv", "conv1/conv.relu6"), passed)
    assert conv("hswish") == (("conv1/conv", "conv1/conv.hswish"), passed)
    assert conv("sigmoid") == (("conv1/conv", "conv1/conv.sigmoid"), {**passed, "exp": 1_024})


def test_a_conv_onnxruntime_cannot_block_runs_in_plain_layout(spec_file):
    # the graphs onnxruntime 1.32 writes for each spec (8×8 input, blocks of 16 channels):
    # a depthwise conv of 6 channels or with a multiplier runs in NCHW between conversions
    # (Conv, ReorderOutput, FusedConv, [ReorderInput,] Conv, ReorderOutput); a dense conv
    # of 18 input channels (not a multiple of 4) as well; a dense conv reads fewer input
    # channels than a block (6, 8, 10, 12) plain, directly, as it reads an image: a blocked
    # one is converted back (Conv, ReorderOutput, Conv, ReorderOutput, Conv, ...); 20
    # channels, or a depthwise conv of 8, stay blocked
    def run(rows: str) -> list[tuple[str, str]]:
        net = counted(str(spec_file(rows))).network
        return [(k.nodes[0], k.what) for k in kernels(net)]

    then = "  - pw: {c: 8}\n"
    assert run("  - pw: {c: 6}\n  - dw: {k: 3}\n" + then) == [
        ("pw1/pw", "conv2d"), ("pw1/pw", "reorder"), ("dw1/dw", "depthwise (plain)"),
        ("pw2/pw", "conv2d"), ("pw2/pw", "reorder")]
    assert run("  - pw: {c: 8}\n  - dw: {k: 3, m: 2}\n" + then) == [
        ("pw1/pw", "conv2d"), ("pw1/pw", "reorder"), ("dw1/dw", "depthwise (plain)"),
        ("dw1/dw", "reorder"), ("pw2/pw", "conv2d"), ("pw2/pw", "reorder")]
    assert run("  - pw: {c: 18}\n  - conv: {c: 8, k: 3}\n" + then) == [
        ("pw1/pw", "conv2d"), ("pw1/pw", "reorder"), ("conv1/conv", "conv2d (plain)"),
        ("pw2/pw", "conv2d"), ("pw2/pw", "reorder")]
    for c in (10, 12):
        assert run(f"  - pw: {{c: {c}}}\n  - conv: {{c: 8, k: 3}}\n" + then) == [
            ("pw1/pw", "conv2d"), ("pw1/pw", "reorder"), ("conv1/conv", "conv2d"),
            ("conv1/conv", "reorder"), ("pw2/pw", "conv2d"), ("pw2/pw", "reorder")]
    assert [w for _, w in run("  - pw: {c: 20}\n  - conv: {c: 8, k: 3}\n" + then)] == [
        "conv2d", "conv2d", "reorder", "conv2d", "reorder"]
    assert [w for _, w in run("  - pw: {c: 8}\n  - dw: {k: 3}\n" + then)] == [
        "conv2d", "depthwise", "reorder", "conv2d", "reorder"]
    # in plain layout a depthwise conv runs through im2col: each of its 6·9·64 MACs reads
    # an element copied for it, 2·4 bytes a MAC as a memory-bound pass; no per-plane cost
    net = counted(str(spec_file("  - pw: {c: 6}\n  - dw: {k: 3}\n" + then))).network
    dw = kernels(net)[2].features
    assert (dw["macs_dw"], dw["pbytes"], "dw_planes" in dw) == (3_456, 27_648, False)


@pytest.mark.parametrize(("name", "conversions"), [
    ("micronet_m1", 10), ("micronet_m3", 25), ("shufflenet_v2_x1_0", 32),
    ("shufflenet_v1_1_5x", 29), ("ssd_mobilenet_v1", 12), ("convnext_tiny", 40),
    ("starnet_s2", 1), ("efficientnet_b0", 55), ("ghostnet_100", 108), ("deit_small", 1),
    ("mixnet_s", 174), ("repvit_m1_0", 127), ("lraspp_mobilenet_v3_large", 31)])
def test_layout_conversions_are_where_onnxruntime_puts_them(name, conversions):
    # the ReorderInput and ReorderOutput nodes in the graph onnxruntime 1.32 optimises for
    # each export on this machine (blocks of 16; benchmarks/ort_layout.py: 68 of the 70
    # built-ins agree): MicroNet runs its grouped 1×1s, pools and shift-max plain, an SSD
    # converts each of its 12 predictor outputs, StarNet's star product stays blocked
    net = counted(name).network
    assert sum(k.what == "reorder" for k in kernels(net, block=16)) == conversions


def test_the_layout_block_decides_what_runs_blocked(spec_file):
    # onnxruntime (MLAS) holds 16 channels a block on a CPU with AVX-512, 8 with AVX2, and
    # its NchwcTransformer blocks a grouped conv only when every group's input and output
    # channels are whole blocks, a pool only over whole blocks, a concat only of whole
    # blocks: a grouped 1×1 conv with 8 channels a group (MicroNet's), a max pool over 24
    # channels (ShuffleNet V1's) and a concat of 24 + 24 run plain with blocks of 16 (the
    # graphs onnxruntime 1.32 writes on this machine), blocked with blocks of 8
    def whats(rows: str, block: int) -> list[str]:
        net = counted(str(spec_file(rows))).network
        return [k.what for k in kernels(net, block=block)]

    group = "  - pw: {c: 32}\n  - conv: {c: 32, k: 1, groups: 4}\n"
    assert whats(group, 16) == ["conv2d", "reorder", "conv2d (plain)"]
    assert whats(group, 8) == ["conv2d", "conv2d", "reorder"]
    pool = "  - pw: {c: 24}\n  - pool: {op: max, k: 3, s: 2, padding: 1}\n"
    assert whats(pool, 16) == ["conv2d", "reorder", "pool (plain)"]
    assert whats(pool, 8) == ["conv2d", "pool", "reorder"]
    cat = "  - pw: {c: 24, name: a}\n  - pw: {c: 24, name: b}\n  - concat: {from: [a, b]}\n"
    assert whats(cat, 16) == ["conv2d", "conv2d", "reorder", "reorder", "concat (plain)"]
    assert whats(cat, 8) == ["conv2d", "conv2d", "concat", "reorder"]
    # the blocked layout computes whole blocks: a 1×1 conv from 32 to 24 channels does
    # 32·32 MACs a position with blocks of 16 (it takes as long as one to 32), 32·24 with 8
    net = counted(str(spec_file("  - pw: {c: 32}\n  - pw: {c: 24}\n"))).network
    assert [kernels(net, block=b)[1].features["macs_conv1x1"] for b in (16, 8)] == [
        32 * 32 * 64, 32 * 24 * 64]


def test_a_plain_conv_strided_along_the_width_copies_its_columns_one_by_one(spec_file):
    # MLAS's im2col copies a plain conv's columns a row at a time, but one element at a
    # time where the conv strides along the width. Timed here (onnxruntime 1.32, 1 thread),
    # a plain 3×3 depthwise conv over 112×112×6: 124 µs at stride 1, 65 µs at stride
    # (2, 1), 213 µs at stride (1, 2) for the same 338,688 elements as (2, 1)
    def strided(rows: str) -> list[int]:
        header = "name: t\nsource: test\ninput: {size: 224}\nclasses: 10\n"
        net = counted(str(spec_file(rows, header))).network
        return [k.features.get("strided", 0) for k in kernels(net, block=16)
                if k.what != "reorder"]

    # MicroNet-M1's stem: a 3×1 conv to 3 channels, then a 1×3 depthwise conv with a
    # multiplier of 2, stride (1, 2), plain: 3 channels · 1·3 taps · 112·112 outputs
    stem = ("  - conv: {c: 3, k: [3, 1], s: [2, 1]}\n"
            "  - dw: {k: [1, 3], s: [1, 2], m: 2}\n")
    assert strided(stem) == [0, 3 * 3 * 112 * 112]
    assert strided("  - pw: {c: 6}\n  - dw: {k: 3, s: [2, 1]}\n") == [0, 0]
    # blocked (24 channels, a multiple of 4), the conv reads its input directly
    assert strided("  - pw: {c: 24}\n  - dw: {k: 3, s: 2}\n") == [0, 0]


def test_a_plain_conv_packs_its_input_matrix_first(spec_file):
    # onnxruntime runs a conv it cannot block as an SGEMM a group, which packs its input
    # matrix (the input of a 1×1 conv, the im2col columns of a k×k one) before it
    # computes: a memory-bound pass, read and written, 4 bytes an element. A grouped 1×1
    # conv of 8 channels a group (MicroNet's) over 8×8×32: 2·4·32·64; a blocked one none
    def pack(rows: str) -> list[tuple[str, int]]:
        net = counted(str(spec_file(rows))).network
        return [(k.what, k.features.get("pbytes", 0)) for k in kernels(net, block=16)
                if k.what.startswith("conv2d")]

    group = "  - pw: {c: 32}\n  - conv: {c: 32, k: 1, group_width: 8}\n"
    assert pack(group) == [("conv2d", 0), ("conv2d (plain)", 2 * 4 * 32 * 64)]
    assert pack("  - pw: {c: 32}\n  - conv: {c: 32, k: 1, group_width: 16}\n") == [
        ("conv2d", 0), ("conv2d", 0)]
    # a 3×3 conv over 18 plain channels: its 18·9 columns at each of the 64 positions
    assert pack("  - pw: {c: 18}\n  - conv: {c: 8, k: 3}\n") == [
        ("conv2d", 0), ("conv2d (plain)", 2 * 4 * 18 * 9 * 64)]


def test_some_kernels_loop_over_channel_planes(spec_file):
    # a product by a per-channel gate in plain layout, a channel shuffle's transpose and
    # Dynamic Shift-Max's gathers and products each copy channel planes as runs of their
    # own: 7–9 ns a plane here beyond their bytes, a few per cent of MicroNet's time
    def planes(rows: str) -> list[tuple[str, int]]:
        net = counted(str(spec_file(rows))).network
        return [(k.what, k.features["planes"]) for k in kernels(net, block=16)
                if "planes" in k.features]

    se = ("  - pw: {c: 24, name: x}\n  - global_pool: {op: avg}\n  - pw: {c: 24}\n"
          "  - mul: {from: [x, prev]}\n")
    assert planes(se) == [("mul (plain)", 24)]
    assert planes("  - pw: {c: 24}\n  - shuffle: {groups: 2}\n") == [("shuffle", 24)]
    # J = 2 shifts and K = 2 coefficient sets over 96 channels: one gather and four
    # products, each over the 96 planes; one Split of the coefficients, as onnxruntime fuses
    # their slices: 1 gather + 1 split + 4 products + 2 sums + 1 maximum = 9 kernels
    net = counted(str(spec_file("  - pw: {c: 96}\n  - dyshiftmax: {k: 2}\n"))).network
    (dsm,) = [k for k in kernels(net, block=16) if k.what == "shiftmax"]
    assert (dsm.features["planes"], dsm.features["launches"]) == (5 * 96, 9)


@pytest.mark.parametrize(("name", "nodes"), [
    ("micronet_m3", 386), ("mobilenet_v2", 57), ("alexnet", 21), ("resnet50", 59),
    ("shufflenet_v2_x1_0", 170), ("efficientnet_b0", 221), ("mobilenet_v3_large", 115),
    ("shufflenet_v1_1_5x", 140)])
def test_kernels_are_the_nodes_onnxruntime_runs(name, nodes):
    # the nodes of the graph onnxruntime 1.32 optimises for each export here (blocks of
    # 16): an FC of a 1×1 image is Flatten, Gemm and Reshape, and fuses no batch norm or
    # activation after it (AlexNet's two ReLUs between its FCs run alone); a plain conv
    # fuses a plain residual sum and the ReLU after it (ShuffleNet V1 1.5×'s FusedConv)
    assert features(counted(name).network, 16)["kernels"] == nodes


def test_a_channels_last_runtime_blocks_pads_and_converts_nothing():
    # TFLite and LiteRT with XNNPACK keep NHWC throughout (layout_block 0): MobileNet V3
    # Small has 30 conversions in onnxruntime's blocked layout and none here; its SE
    # products do not loop over planes, and its 24-channel stage computes 24 channels
    net = counted("mobilenet_v3_small").network
    ks = kernels(net, block=NHWC)
    assert sum(k.what == "reorder" for k in kernels(net, block=16)) == 30
    assert [k for k in ks if k.what == "reorder" or "plain" in k.what] == []
    assert sum(k.features.get("planes", 0) for k in ks) == 0
    assert features(net, NHWC)["macs_conv1x1"] < features(net, 16)["macs_conv1x1"]


def test_a_blocked_conv_skips_the_kernel_rows_that_read_padding():
    # onnxruntime's blocked conv skips a kernel row that falls in the padding, not a
    # column (benchmarks/kernel_costs.py: a 3×3 conv over 65×65×256 dilated 18 takes
    # 0.83 of its undilated time; 0.82 of its (output row, kernel row) pairs read the
    # input, 0.66 of its taps). DeepLabV3's ASPP over its 33×33 map, 'same' padding:
    # rate 6 loses 6 rows at the top and 6 at the bottom of 3·33 pairs, 12 and 18 more
    from types import SimpleNamespace

    def conv(k: int, s: int = 1, d: int = 1, padding: object = "same") -> SimpleNamespace:
        return SimpleNamespace(k=(k, k), s=(s, s), d=(d, d), padding=padding)

    assert [padded_rows(conv(3, d=r), 33, 33) for r in (1, 6, 12, 18)] == [2, 12, 24, 36]
    assert padded_rows(conv(5), 7, 7) == 6  # 29 of 35 pairs: a 5×5 over 7×7 does 83 %
    assert padded_rows(conv(1), 7, 7) == 0
    # every case against the definition: input row y·s − top + i·d outside [0, h)
    for k, s, d, h in itertools.product((3, 5, 7), (1, 2), (1, 2, 6), (1, 2, 7, 8, 65)):
        for padding in ("same", (0, 0), (1, 1), (k // 2 * d, 0)):
            span = d * (k - 1) + 1
            if padding == "same":
                ho = -(-h // s)
                top = max((ho - 1) * s + span - h, 0) // 2
            else:
                top = padding[0]
                ho = (h + 2 * top - span) // s + 1
            if ho < 1:
                continue
            want = sum(not 0 <= y * s - top + i * d < h for y in range(ho) for i in range(k))
            assert padded_rows(conv(k, s, d, padding), h, ho) == want, (k, s, d, h, padding)
    # and on numpy arrays, as a sweep calls it point by point
    got = padded_rows(conv(3, d=12), np.array([33, 65, 9]), np.array([33, 65, 9]))
    assert got.tolist() == [24, 24, 18]


def test_a_split_is_one_kernel(spec_file):
    # onnxruntime fuses the slices of one tensor into a Split: it reads 8×8×8 once and
    # writes both halves (4·(512 + 256 + 256) bytes); the concat reads plain-layout parts
    path = spec_file("  - pw: {c: 8}\n  - split: {parts: 2, name: x}\n"
                     "  - concat: {from: [x.1, x.0]}\n")
    net = counted(str(path)).network
    got = [(k.nodes, k.what, k.features.get("pbytes")) for k in kernels(net)]
    assert got[2] == (("x.0", "x.1"), "slice", 4 * (512 + 256 + 256))
    assert [w for _, w, _ in got] == ["conv2d", "reorder", "slice", "concat (plain)"]


def test_features_of_mobilenet_v2_match_onnxruntime_kernels():
    # the graph onnxruntime 1.32 (CPU, all optimisations) writes for the exported V2 runs
    # 52 Conv (BN, relu6 and the 10 residual adds fused), a GlobalAveragePool, one
    # ReorderOutput, and the FC as Flatten, Gemm and Reshape: 57 kernels
    net = counted("mobilenet_v2").network
    assert features(net)["kernels"] == 57
    assert kernel_macs(net) == 300_774_272  # all MACs
    # in blocks of 16 channels the 24-channel stage computes 32 (a 1×1 conv to 24
    # channels takes as long as one to 32, benchmarks/README): 8 more output channels of
    # the projections from 96 and 144 and 8 more input channels of the two expansions to
    # 144, all at 56×56: 3,136 · 8 · (96 + 144 + 2 · 144) = 13,246,464 MACs
    assert kernel_macs(net, block=16) == 300_774_272 + 13_246_464
    # less those of kernel rows that read padding (kernels.padded_rows): 0.18 % here
    assert kernel_macs(net, skipping=True, block=16) == 300_774_272 + 13_246_464 - 561_792
    # depthwise MACs: V1's 13 dw layers at 224, k²·h·w·c summed (tests/test_layers agree)
    assert kernel_macs(counted("mobilenet_v1").network, prefix="macs_dw") == 17_385_984


def test_fit_recovers_known_constants():
    x, ms = synthetic()
    got = [t.constant(c) for t, c in zip(TERMS, fit(x, ms), strict=True)]
    assert got == pytest.approx([KNOWN[t.key] for t in TERMS], rel=1e-6)


def test_a_prior_holds_what_few_rows_leave_loose():
    # three rows (V2, MNASNet, V1 0.25) cannot pin twelve constants: pulled toward a prior
    # of the true constants at half speed, the fit scales it (one factor for rates, one
    # for launches) and recovers every constant, those the rows never exercise (grouped,
    # exp, resize, FC weights from memory) included; without the prior those are 0
    x, ms = synthetic()
    rows = [2, 3, 7]
    truth = [t.coef(KNOWN[t.key]) for t in TERMS]
    got = fit([x[i] for i in rows], [ms[i] for i in rows], term_ties(), [2 * c for c in truth])
    assert got == pytest.approx(truth, rel=1e-6)
    alone = fit([x[i] for i in rows], [ms[i] for i in rows])
    assert alone[TERM_NAMES.index("exp")] == 0


def test_a_prior_is_scaled_to_the_rows_group_by_group():
    # a prior off by a different factor in each group (MAC rates 2×, other compute rates
    # 3×, memory rates 0.5×, the launch cost 4×: more threads move them apart) is scaled
    # back exactly by rows that tell the groups apart; three rows cannot tell four groups
    # apart, and get one factor for the rates and one for launches
    import numpy as np

    x, ms = synthetic()
    truth = np.array([t.coef(KNOWN[t.key]) for t in TERMS])
    off = {"macs": 2.0, "compute": 3.0, "memory": 0.5, "launch": 4.0}
    prior = truth * [off[g] for g in latency.SCALE_LEVELS[-1]]
    a, t = np.array(x), np.array(ms)
    assert latency._scaled(a, t, prior) == pytest.approx(truth, rel=1e-6)
    rows = [2, 3, 7]
    got = latency._scaled(a[rows], t[rows], prior)
    launch = [term.part == "launch" for term in TERMS]
    rate = got[~np.array(launch)] / prior[~np.array(launch)]
    assert rate == pytest.approx(np.full(len(rate), rate[0]))  # one factor for all rates


def test_a_weak_pull_to_the_prior_settles_only_what_the_rows_leave_loose(monkeypatch):
    # the other host's 2-thread MobileNet timings (benchmarks/data/mobilenets_epyc_2t.csv,
    # 50 networks; an EPYC without AVX-512: blocks of 8): the 8 that --suggest picks,
    # fitted with the Pixel 1 phone's profile as the prior, predict 39 of the other 42
    # within ±10 % (leave-one-out over the 8 chooses no pull). A strong pull (10, which
    # leave-one-out always chose when it was on offer) carries the phone's proportions into
    # what the rows pin: 38 of 42 with the prior scaled group by group, 20 with one factor
    # for all rates
    data = Path(__file__).resolve().parents[1] / "benchmarks" / "data"
    rows = read_measurements(data / "mobilenets_epyc_2t.csv")
    nets = [m.network(data) for m in rows]
    picks = suggest(nets, 8, load_profile("cpu_epyc_1t")).picks

    def fitted() -> tuple[str, tuple[int, int]]:
        p = calibrate_networks([nets[i] for i in picks], [rows[i].ms for i in picks], "s",
                               "d", "f", ["s"] * 8, [None] * 8, load_profile("pixel1"),
                               block=8).profile
        within = [abs(p.predict(n) / m.ms - 1) <= 0.1
                  for i, (n, m) in enumerate(zip(nets, rows, strict=True)) if i not in picks]
        return p.fitted_on, (sum(within), len(within))

    how, counts = fitted()
    assert "with strength 0," in how and counts == (39, 42)
    monkeypatch.setattr(latency, "RIDGE", (10.0,))
    how, counts = fitted()
    assert "with strength 10," in how and counts == (38, 42)
    monkeypatch.setattr(latency, "SCALE_LEVELS", latency.SCALE_LEVELS[:2])
    assert fitted()[1] == (20, 42)


def test_a_file_without_a_layout_block_is_fitted_with_the_block_the_prior_explains(tmp_path):
    # the other host's grids predate measure's layout comment; its EPYC has no AVX-512
    # (blocks of 8: leave-one-out over all 50 rows 96 % within ±10 % against 82 % with 16).
    # This machine's has (16). 8 rows --suggest picks fit themselves with either block,
    # and their leave-one-out error chose 8 for both; the prior's proportions, scaled to
    # the rows, explain each set better with its true block (benchmarks/latency.py (g))
    data = Path(__file__).resolve().parents[1] / "benchmarks" / "data"
    prior = load_profile("cpu_epyc_1t")
    for name, block in (("mobilenets_epyc_2t.csv", 8), ("whole_epyc_1t.csv", 16)):
        lines = (data / name).read_text(encoding="utf-8").splitlines()
        rows = read_measurements(data / name)
        picks = suggest([m.network(data) for m in rows], 8, prior).picks
        head = [i for i, line in enumerate(lines) if line.startswith("spec,")][0]
        body = [line for line in lines[head + 1:] if line and not line.startswith("#")]
        path = tmp_path / name
        path.write_text("\n".join([lines[head], *(body[i] for i in picks)]) + "\n",
                        encoding="utf-8")
        cal = calibrate_file(path, prior=prior)
        assert cal.profile.block == block
        assert f"layout block {block}: the file names none" in cal.profile.fitted_on
        assert any(w.startswith(f"layout block {block}: ") for w in cal.warnings)


def test_a_rate_no_row_pins_takes_its_tie_never_zero():
    # V1 rows have no grouped conv: its rate is the 1×1 rate, not a free conv
    x, ms = synthetic()
    j, k = TERM_NAMES.index("macs_group"), TERM_NAMES.index("macs_conv1x1")
    rows = [i for i, row in enumerate(x) if row[j] == 0]
    coefs = fit([x[i] for i in rows], [ms[i] for i in rows], term_ties())
    assert coefs[j] == coefs[k] > 0
    assert fit([x[i] for i in rows], [ms[i] for i in rows])[j] == 0  # without ties


def test_fit_is_nonnegative_and_optimal():
    # the kernel term's true cost is negative: the unconstrained fit would use it, NNLS
    # sets 0
    last = len(TERMS) - 1
    x, ms = synthetic({**KNOWN, "us_per_kernel": 0.0})
    ms = [t - 0.0004 * row[last] for t, row in zip(ms, x, strict=True)]
    a = np.asarray(x) / np.asarray(ms)[:, None]
    free = np.linalg.lstsq(a, np.ones(len(ms)), rcond=None)[0]
    assert free[last] < 0
    coefs = np.asarray(fit(x, ms))
    assert (coefs >= 0).all() and coefs[last] == 0
    # KKT: zero gradient on the free coefficients, non-negative on the one held at 0
    grad = a.T @ (a @ coefs - 1)
    scale = np.linalg.norm(a, axis=0)
    assert np.abs(grad[:last] / scale[:last]).max() < 1e-9
    assert grad[last] / scale[last] > 0


def test_nnls_on_a_hand_example():
    # min ‖[[1, 0], [0, 1], [1, 1]]·x − (2, −1, 1)‖ over x ≥ 0: x = (1.5, 0)
    # (x2 = 0; then x1 minimises (x1 − 2)² + (x1 − 1)²)
    x = nnls(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([2.0, -1.0, 1.0]))
    assert x.tolist() == pytest.approx([1.5, 0.0])


def test_leave_one_out_never_sees_the_left_out_row():
    x, ms = synthetic()
    ms = [t * (1 + 0.05 * ((i % 3) - 1)) for i, t in enumerate(ms)]  # some noise
    base = leave_one_out(x, ms)
    for i in (0, len(ms) // 2, len(ms) - 1):  # the first, a middle and the last row
        # a wildly different measurement of row i cannot change row i's held-out prediction
        moved = leave_one_out(x, ms[:i] + [ms[i] * 50] + ms[i + 1:])
        assert moved[i] == base[i]
        assert base[i] == predict(fit(x[:i] + x[i + 1:], ms[:i] + ms[i + 1:]), x[i])
    # ... while the in-sample fit does move with it
    assert predict(fit(x, ms[:-1] + [ms[-1] * 50]), x[-1]) != predict(fit(x, ms), x[-1])


def test_errors_summary():
    # |errors| 0, 0.05, 0.10, 0.2, 0.5 → MAPE 17 %; 3 of 5 within ±10 %; p90 = 5th of 5
    e = Errors.of([1.0, 1.05, 0.9, 1.2, 1.5], [1.0] * 5)
    assert (round(e.mape, 6), e.within_10, round(e.p90, 6)) == (17.0, 60.0, 50.0)


def test_estimate_by_hand(spec_file):
    report = counted(str(spec_file(HAND)))
    # the features of test_kernels_by_hand at KNOWN's rates, each amount / (rate · 1e6) ms:
    # 80 / 40 + 25,344 / 30 + 21,760 / 10 + 8,192 / 15 + 1,024 / 3 (× 1e-6 ms) + 27,464 B
    # at 25 GB/s + 26,656 B of memory-bound passes at 12 GB/s + 2,240 weight bytes at
    # 8 GB/s; 16 depthwise planes at 20 M/s (16 / 20e3 ms), 8 shuffled planes at 60 M/s;
    # 13 launches × 2.5 µs
    ms = ((80 / 40 + 25344 / 30 + 21760 / 10 + 8192 / 15 + 1024 / 3 + 27464 / 25 + 26656 / 12
           + 2240 / 8) * 1e-6 + 16 / 20e3 + 8 / 60e3 + 0.0325)
    est = estimate(report, profile())
    assert est.ms == pytest.approx(ms, rel=1e-12)
    # band from the leave-one-out p90 of 20 %: [ms / 1.2, ms / 0.8]
    assert (est.low, est.high) == pytest.approx((ms / 1.2, ms / 0.8))
    # the toy calibration saw only convolutions
    assert est.unseen == ("batchnorm", "global_pool", "hswish", "linear", "relu", "shuffle",
                          "swish")
    # per kernel: the parts add up to the estimate; 2.5 µs of launch beats the few hundred
    # ns of every kernel but the depthwise conv's 2.98 µs of MACs and planes
    times = profile().kernel_times(report.network)
    assert sum(t.ms for t in times) == pytest.approx(ms, rel=1e-12)
    assert [t.bound for t in times] == ["launch", "compute"] + ["launch"] * 7
    big = profile(constants={**KNOWN, "us_per_kernel": 0.0}).kernel_times(report.network)
    # (the 1×1 conv: 546 ns of MACs, 278 ns of bytes; swish: 341 ns of exp, 683 of bytes)
    assert [t.bound for t in big] == ["compute", "compute", "memory", "memory", "compute",
                                      "memory", "memory", "memory", "memory"]


def test_profile_round_trips(tmp_path):
    p = profile(published="pixel1", sources=("a table",), constants={**KNOWN, "us_per_kernel": 0.0})
    path = tmp_path / "toy.yaml"
    path.write_text(profile_yaml(p), encoding="utf-8")
    assert load_profile(str(path)) == p
    zero_rate = profile(constants={**KNOWN, "dw_mplanes_per_s": math.inf})
    path.write_text(profile_yaml(zero_rate), encoding="utf-8")
    loaded = load_profile(str(path))
    assert loaded.constants["dw_mplanes_per_s"] == math.inf
    assert loaded.coefs()[TERM_NAMES.index("dw_planes")] == 0


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\n", "p.yaml:1:1: a profile needs 'device'"),
    ("name: x\ndevice: d\nconstants: {conv1x1_gmacs_per_s: -1}\ncalibration: {}\n",
     "p.yaml:3:34: 'conv1x1_gmacs_per_s' must be a positive number up to 1,000,000,000 or .inf "
     "(no cost: a term the calibration left free), got -1"),
    ("name: x\ndevice: d\nconstants: [1, 2]\ncalibration: {}\n",
     "p.yaml:3:12: 'constants' must be a mapping, got [1, 2]"),
    ("name: [x\n", "p.yaml:2:1: invalid YAML"),
])
def test_a_malformed_profile_is_a_located_error(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MacscalcError) as e:
        load_profile(str(path))
    assert e.value.located().replace(str(tmp_path) + "/", "").startswith(message)


def test_unknown_profile_names_the_built_ins():
    with pytest.raises(MacscalcError, match=r"no profile file or built-in profile named 'x9' "
                                            r"\(built-ins: .*pixel1"):
        load_profile("x9")


def test_builtin_pixel1_profile_says_what_it_was_fitted_on():
    p = load_profile("pixel1")
    # slim README V2 grid (22 Pixel-1 rows) + slim V3 table (6)
    assert (p.rows, p.published) == (28, "pixel1")
    assert "22 rows" in p.fitted_on and "6 rows" in p.fitted_on
    assert {"depthwise", "hswish", "mul"} <= set(p.kinds)
    # V2/V3 rows have no grouped conv, and cannot tell a depthwise conv's MACs from the
    # bytes of the ReLU6 pass after it: both rates are tied to the 1×1 one rather than left
    # free (benchmarks/latency.py --write-profiles); their 3-channel stems pin a dense k×k
    # rate below it
    c = p.constants
    assert c["dw_gmacs_per_s"] == c["group_gmacs_per_s"] == c["conv1x1_gmacs_per_s"] < math.inf
    assert c["conv_gmacs_per_s"] < c["conv1x1_gmacs_per_s"]


def _csv(tmp_path: Path, rows: list[str], head: str = "spec,alpha,res,classes,ms") -> Path:
    path = tmp_path / "m.csv"
    path.write_text("# measured by hand\n" + head + "\n" + "\n".join(rows) + "\n",
                    encoding="utf-8")
    return path


@pytest.mark.parametrize(("rows", "head", "message"), [
    (["mobilenet_v2,x,224,,10"], None, "m.csv:3:14: width multiplier must be a positive "
                                      "number up to 16 (at most 6 decimals), got 'x'"),
    (["mobilenet_v2,0.5,-3,,10"], None, "m.csv:3:18: res must be a positive integer up to "
                                        "16,384, got '-3'"),
    (["mobilenet_v2,0.5,512x,,10"], None, "m.csv:3:18: res must be R or HxW, each a positive "
                                          "integer up to 16,384, got '512x'"),
    (["mobilenet_v2,0.5,160,,0"], None, "m.csv:3:23: ms must be a number of milliseconds from "
                                        "0.001 to 10,000,000, got '0'"),
    (["mobilenet_v2,0.5,160,,"], None, "m.csv:3:23: ms must be a number of milliseconds from "
                                       "0.001 to 10,000,000, got ''"),
    (["mobilenet_v2,0.5,160"], None, "m.csv:3:21: 3 fields where the header has 5"),
    ([",0.5,160,,3"], None, "m.csv:3:1: spec must name a built-in spec or a spec file"),
    (["mobilenet_v9,1,224,,3"], None, "m.csv:3:1: spec 'mobilenet_v9': no spec file or "
                                      "built-in spec named 'mobilenet_v9'"),
    (["mobilenet_v2,1,224,,3"], "spec,alpha,resolution,classes,ms",
     "m.csv:2:12: the header must start spec,alpha,res,classes,ms; column 3 is 'resolution'"),
    ([], None, "m.csv:2:1: no measurements after the header"),
    (["mobilenet_v2,,,,10"], None, "m.csv: calibrate needs at least 2 measured rows (each is "
                                   "predicted from the others), got 1"),
])
def test_bad_csv_is_a_located_error(tmp_path, rows, head, message):
    path = _csv(tmp_path, rows, head or "spec,alpha,res,classes,ms")
    result = runner.invoke(app, ["calibrate", str(path), "-o", str(tmp_path / "p.yaml")])
    assert result.exit_code == 2
    assert result.stderr.replace(str(tmp_path) + "/", "").startswith(f"error: {message}")
    assert not (tmp_path / "p.yaml").exists()


def test_calibrate_recovers_constants_and_is_deterministic(tmp_path):
    x, ms = synthetic()
    path = _csv(tmp_path, [f"{s},{a},{r},,{t!r}" for (s, a, r), t in zip(GRID, ms, strict=True)])
    outs = []
    for name in ("a.yaml", "b.yaml"):
        result = runner.invoke(app, ["calibrate", str(path), "-o", str(tmp_path / name),
                                     "--name", "toy", "--format", "json"])
        assert result.exit_code == 0, result.output
        outs.append((tmp_path / name).read_text(encoding="utf-8"))
    assert outs[0] == outs[1]
    p = load_profile(str(tmp_path / "a.yaml"))
    # written to 4 significant digits
    assert p.constants == pytest.approx(KNOWN, rel=5e-4)
    assert (p.rows, p.loo.within_10, p.name) == (20, 100.0, "toy")
    # exact rows: leave-one-out wants no pull toward the prior; the file names no layout
    # block, and the rows (features with blocks of 16) fit exactly only with 16
    block = ("layout block 16: the file names none, and the rows' leave-one-out error is "
             "lower with 16 channels a block than with 8 (MAPE 0.0 % against 4.8 %)")
    assert p.fitted_on == ("m.csv, 20 rows (measured by hand); pulled toward the cpu_epyc_1t "
                           "profile's proportions with strength 0, chosen by leave-one-out "
                           f"(--prior); {block}")
    assert p.block == 16
    data = json.loads(result.stdout)
    assert [round(r["loo_error_pct"], 6) for r in data["rows"]] == [0.0] * 20
    # 20 rows for 15 constants: fitted exactly, but fewer than two rows a constant
    assert [w.split(":")[0] for w in data["warnings"]] == ["only 20 rows for 15 constants",
                                                           "layout block 16"]


def test_calibrate_warns_when_terms_are_not_identified(tmp_path):
    # three V1 rows: too few rows, no depthwise-heavy model (V1 1.0 at 224: 3.1 % of MACs
    # depthwise), and no element-wise ops beyond one global pool each
    path = _csv(tmp_path, ["mobilenet_v1,1.0,224,,30", "mobilenet_v1,0.75,192,,14",
                           "mobilenet_v1,0.5,160,,6"])
    result = runner.invoke(app, ["calibrate", str(path), "-o", str(tmp_path / "p.yaml"),
                                 "--prior", "none"])
    assert result.exit_code == 0, result.output
    assert "WARNING: only 3 rows for 15 constants: too few to fit them" in result.stdout
    assert "WARNING: no depthwise-heavy model" in result.stdout
    assert ("WARNING: no row has grouped conv MACs: group_gmacs_per_s is not fitted (taken as "
            "conv1x1_gmacs_per_s)") in result.stdout
    assert ("WARNING: no row has elements through exp (swish, sigmoid, GELU): exp_gelems_per_s "
            "is not fitted (0 cost)") in result.stdout


def test_calibrate_writes_a_rate_the_rows_leave_free_as_inf(tmp_path):
    """Three V1 rows at one width: the rates they cannot pin are written as .inf (no cost)
    with a warning. Issue 19 found .inf estimating 0.00 ms; a profile keeps at least one
    finite rate (test_hostile), so its estimates stay positive."""
    path = _csv(tmp_path, ["mobilenet_v1,1.0,224,,30", "mobilenet_v1,1.0,192,,24",
                           "mobilenet_v1,1.0,160,,19"])
    out = tmp_path / "p.yaml"
    result = runner.invoke(app, ["calibrate", str(path), "-o", str(out), "--prior", "none"])
    assert result.exit_code == 0, result.output
    assert "  exp_gelems_per_s: .inf  #" in out.read_text(encoding="utf-8")
    assert ("WARNING: no row has elements through exp (swish, sigmoid, GELU): exp_gelems_per_s "
            "is not fitted (0 cost)") in result.stdout
    loaded = load_profile(str(out))
    assert math.isinf(loaded.constants["exp_gelems_per_s"])
    assert estimate(counted("mobilenet_v1"), loaded).ms > 0


def _json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_count_device_adds_an_estimate_beside_the_published_figure():
    data = _json("count", "mobilenet_v2", "--alpha", "0.5", "--res", "160", "--device", "pixel1")
    lat = data["reports"][0]["totals"]["latency_ms"]
    p = load_profile("pixel1")
    f = features(counted("mobilenet_v2", "0.5", 160).network, p.block)  # blocks of 8 there
    assert lat["ms"] == round(predict(p.coefs(), [f[t.name] for t in TERMS]), 4)
    assert (lat["estimated"], lat["profile"], lat["band_pct"]) == (True, "pixel1", p.loo.p90)
    assert lat["low"] < lat["ms"] < lat["high"]
    # slim README: MobileNet V2 0.5 160 runs 14.9 ms on the Pixel 1
    assert lat["published_ms"] == "14.9"


def test_a_kind_the_calibration_never_saw_warns():
    data = _json("count", "micronet_m0", "--device", "pixel1")
    # pixel1 is fitted on MobileNet V2/V3: no group convs, shuffles or Dynamic Shift-Max
    assert data["reports"][0]["totals"]["latency_ms"]["unseen_kinds"] == [
        "group conv2d", "shiftmax", "shuffle"]
    out = runner.invoke(app, ["count", "micronet_m0", "--device", "pixel1"]).stdout
    assert "WARNING: the calibration never saw group conv2d, shiftmax, shuffle" in out


def test_check_max_latency_on_a_profile():
    p = load_profile("pixel1")
    us = round(p.predict(counted("mobilenet_v2").network) * 1000)
    data = _json("check", "mobilenet_v2", "--device", "pixel1", "--max-latency",
                 str((us - 1) / 1000))
    (c,) = data["reports"][0]["checks"]
    assert (c["metric"], c["value"], c["max"], c["ok"]) == ("latency", us, us - 1, False)
    result = runner.invoke(app, ["check", "mobilenet_v2", "--device", "pixel1",
                                 "--max-latency", str(us / 1000)])
    assert result.exit_code == 0
    result = runner.invoke(app, ["check", "mobilenet_v2", "--max-latency", "10"])
    assert (result.exit_code, result.stderr) == (
        2, "error: --max-latency needs --device PROFILE (built-in: cpu_epyc_1t, pixel1; or a "
           "file from macscalc calibrate)\n")


def test_compare_and_table_show_estimates():
    data = _json("compare", "mobilenet_v2", "mobilenet_v2 --alpha 0.5", "--device", "pixel1")
    est = [r["latency_est_ms"] for r in data["totals"]]
    assert est[0] > est[1] > 0
    rows = _json("table", "v2", "--res", "224", "--device", "pixel1")["rows"]
    # every row keeps its published Pixel-1 figure beside the estimate
    assert [(r["model"], r["latency_pixel1_ms"]) for r in rows][:2] == [("v2_1.4_224", "138.0"),
                                                                        ("v2_1.3_224", "123.0")]
    assert all(r["latency_estimate"]["estimated"] for r in rows)


def test_explain_latency_gives_the_depthwise_ratio_and_what_bounds_each_kernel():
    p = load_profile("pixel1")
    ratio = p.constants["conv1x1_gmacs_per_s"] / p.constants["dw_gmacs_per_s"]
    out = runner.invoke(app, ["explain", "latency", "mobilenet_v2", "--device", "pixel1"]).stdout
    assert f"= {ratio:.1f} 1×1-conv MACs here" in out
    data = _json("explain", "latency", "mobilenet_v2", "--device", "pixel1")
    assert sum(t["ms"] for t in data["terms"]) == pytest.approx(data["latency_ms"]["ms"])
    # one row per kernel, each split into its parts and named by what dominates: the 52
    # convs, the global pool and the FC; pixel1's TFLite keeps one channels-last layout,
    # so no conversion before the FC (onnxruntime's graph has one,
    # test_features_of_mobilenet_v2_match_onnxruntime_kernels)
    kernels_ = data["kernels"]
    assert len(kernels_) == 54
    for k in kernels_:
        parts = {"compute": k["compute_us"], "memory": k["memory_us"], "launch": k["launch_us"]}
        assert k["us"] == pytest.approx(sum(parts.values()))
        assert k["bound"] == max(parts, key=parts.__getitem__)
    assert kernels_[0]["kernel"] == "conv1/conv + conv1/conv.bn + conv1/conv.relu6"
    assert sum(k["us"] for k in kernels_) / 1000 == pytest.approx(data["latency_ms"]["ms"])


def test_plain_count_imports_no_numpy():
    code = ("import sys\nfrom macscalc.cli import app\n"
            "try:\n    app(['count', 'mobilenet_v2', '--device', 'pixel1'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in ('numpy', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines()[-1] == "[]"



def test_count_device_gives_each_layer_its_estimate_and_the_time_by_kind():
    data = _json("count", "shufflenet_v2_x1_0", "--device", "cpu_epyc_1t")
    report = data["reports"][0]
    lat = report["totals"]["latency_ms"]
    layers = report["layers"]
    # every kernel's µs sits under the layer that launches it; fused BN/relu rows get 0
    assert sum(r["est_us"] for r in layers) / 1000 == pytest.approx(lat["ms"], abs=1e-3)
    assert {r["est_us"] for r in layers if r["kind"] == "batchnorm"} == {0.0}
    kinds_ = {k["kind"]: k for k in lat["by_kind"]}
    assert sum(k["ms"] for k in lat["by_kind"]) == pytest.approx(lat["ms"], abs=1e-3)
    # ShuffleNet V2 1.0: 16 shuffles, and 32 layout conversions around its splits,
    # concatenations, shuffles, 58-channel branches and the max pool over 24 channels, as
    # in the graph onnxruntime 1.32 writes (benchmarks/ort_layout.py)
    assert (kinds_["shuffle"]["kernels"], kinds_["layout conversion"]["kernels"]) == (16, 32)
    out = runner.invoke(app, ["count", "shufflenet_v2_x1_0", "--device", "cpu_epyc_1t"]).stdout
    assert "Estimated time by layer kind on cpu_epyc_1t" in out and "est. µs" in out
