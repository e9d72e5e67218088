"""Activation memory: lifetimes, per-resolution maxima, peaks, and the V2 paper's Table 3."""

from __future__ import annotations

import json
from fractions import Fraction

from typer.testing import CliRunner

from macscalc import build, load_spec, parse
from macscalc.analysis.memory import kb_cut, largest_per_resolution, peak, tensors
from macscalc.cli import app
from macscalc.core.units import parse_bytes

runner = CliRunner()
RESIDUAL = """name: r
source: test
input: {size: 8, channels: 4}
classes: 10
layers:
  - conv: {c: 4, k: 3, bn: true, act: relu, name: a}
  - conv: {c: 4, k: 3}
  - add: {from: a}
"""


def test_in_place_layers_allocate_nothing_and_residuals_stay_alive():
    net = build(parse(RESIDUAL, "r.yaml"), Fraction(1))
    names = [t.name for t in tensors(net)]
    assert names == ["input", "a/conv", "conv2/conv", "add1"]  # bn, relu in place
    p = peak(net)
    # while conv2 runs: a (still needed by the add) and conv2's output; then the add
    # reads both and writes its own: 3 tensors of 8·8·4
    assert (p.elements, p.at) == (3 * 256, "add1")


def test_v1_largest_tensors_are_the_papers_table_3():
    # arXiv:1801.04381 Table 3, MobileNetV1: 64/1600, 128/800, 256/400, 512/200, 1024, 1024/2
    rows = {x.h: (x.tensor.shape.c, kb_cut(2 * x.tensor.shape.numel))
            for x in largest_per_resolution(build(load_spec("mobilenet_v1")))}
    assert rows[112] == (64, 1600) and rows[56] == (128, 800) and rows[28] == (256, 400)
    assert rows[14] == (512, 200) and rows[1] == (1024, 2)
    assert rows[7][0] == 1024 and rows[7][1] != 199  # the paper prints 199: 7·7·1024·2 B ≈ 100 kB


def test_v2_streaming_keeps_only_a_slice_of_the_expanded_tensor():
    net = build(load_spec("mobilenet_v2"))
    plain, streamed = peak(net), peak(net, streaming=True)
    # plain: ir2_1's expanded 112·112·96 and its depthwise output 56·56·96
    assert (plain.elements, plain.at) == (112 * 112 * 96 + 56 * 56 * 96, "ir2_1/dw")
    # streamed: the stem output and ir1's depthwise output, 112·112·32 each
    assert (streamed.elements, streamed.at) == (2 * 112 * 112 * 32, "ir1/dw")


def test_memory_command_checks_the_paper_table():
    result = runner.invoke(app, ["memory", "mobilenet_v1", "--format", "json"])
    assert result.exit_code == 0, result.output
    paper = {r["resolution"]: r for r in json.loads(result.stdout)["paper"]}
    assert paper["112×112"]["channels_agree"] and paper["112×112"]["kb_agree"]
    assert paper["7×7"]["channels_agree"] and not paper["7×7"]["kb_agree"]
    assert paper["max"]["kb"] == "1600" and paper["max"]["kb_agree"]


def test_count_and_check_report_and_gate_the_peak():
    result = runner.invoke(app, ["count", "mobilenet_v2", "--dtype", "fp16", "-f", "json"])
    peak_memory = json.loads(result.stdout)["reports"][0]["totals"]["peak_memory"]
    assert peak_memory == {"dtype": "fp16", "elements": 1_505_280, "bytes": 3_010_560,
                           "at": "ir2_1/dw", "streamed_elements": 802_816,
                           "streamed_bytes": 1_605_632}
    over = runner.invoke(app, ["check", "mobilenet_v2", "--max-memory", "4MB"])
    assert over.exit_code == 1  # fp32 by default: 6,021,120 bytes
    assert runner.invoke(app, ["check", "mobilenet_v2", "--max-memory", "4MB",
                               "--dtype", "fp16"]).exit_code == 0


def test_parse_bytes():
    assert [parse_bytes(t) for t in ("2MB", "512KiB", "1.5M", "1_000", "3GiB")] == [
        2_000_000, 524_288, 1_500_000, 1_000, 3 * 2**30]
