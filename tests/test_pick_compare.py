"""macscalc pick (published models under a budget) and compare (variants side by side)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from macscalc.cli import app

runner = CliRunner()


def run_json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_pick_ranks_by_published_top1_and_marks_the_frontier():
    data = run_json("pick", "--max-macs", "60M", "--family", "v2,v3,micronet")
    models = [(c["model"], c["top1"], c["frontier"]) for c in data["candidates"]]
    # slim V3 README 67.5 (56.51 M computed), 65.4 (43.40 M); MicroNet README 62.5 (20.81 M)
    assert models[:4] == [("small_1.0", "67.5", True), ("small_0.75", "65.4", True),
                          ("M3", "62.5", True), ("small_minimal_1.0", "61.9", False)]
    assert all(c["macs"] <= 60_000_000 for c in data["candidates"])
    frontier = [c["model"] for c in data["candidates"] if c["frontier"]]
    assert frontier == ["small_1.0", "small_0.75", "M3", "M2", "M1", "M0"]


def test_pick_latency_uses_only_published_latencies():
    # slim V2 README Pixel 1 CPU ms; V1 and MicroNet publish none, so cannot pass
    data = run_json("pick", "--max-latency", "10", "--device", "pixel1")
    rows = [(c["model"], c["latency_ms"]) for c in data["candidates"]]
    # by top-1: 57.7, 51.2, 50.8, 45.5
    assert rows == [("v2_0.5_128", "9.9"), ("v2_0.5_96", "6.4"), ("v2_0.35_128", "6.9"),
                    ("v2_0.35_96", "4.5")]


def test_pick_unpublished_points_are_marked_and_unranked():
    data = run_json("pick", "--family", "v2", "--res", "192", "--unpublished")
    unranked = [c for c in data["candidates"] if not c["published_accuracy"]]
    assert [c["model"] for c in unranked] == ["mobilenet_v2_1.3_192", "mobilenet_v2_1.4_192"]
    assert all(c["rank"] is None and c["top1"] is None for c in unranked)


@pytest.mark.parametrize(("args", "message"), [
    (["--max-latency", "10"], "error: --max-latency needs --device (one of: pixel1, pixel2, "
                              "pixel3)\n"),
    (["--device", "iphone"], "error: no published latencies for device 'iphone' in these "
                             "families (known: pixel1, pixel2, pixel3)\n"),
    (["--family", "v9"], "error: unknown family 'v9' (known: detection, micronet, v1, v2, "
                         "v3)\n"),
])
def test_pick_bad_input(args, message):
    result = runner.invoke(app, ["pick", *args])
    assert (result.exit_code, result.stderr) == (2, message)


def test_compare_totals_and_stage_deltas():
    data = run_json("compare", "mobilenet_v2 --alpha 0.75", "mobilenet_v2 --res 160")
    assert [r["settings"]["alpha"] for r in data["reports"]] == ["0.75", "1.0"]
    totals = data["totals"]
    # torchvision: 0.75@224 209,069,792 MACs; 1.0@160 154,083,200
    assert (totals[0]["macs"], totals[1]["macs"]) == (209_069_792, 154_083_200)
    assert (totals[0]["macs_delta"], totals[1]["macs_delta"]) == (None, "-26.30 %")
    # peak live activations (fp32), both while ir2's depthwise runs: its expanded input
    # (96 channels at 112² or 80²) and its output (at 56² or 40²), 4 bytes each
    assert totals[0]["memory"] == 4 * (112 * 112 * 96 + 56 * 56 * 96)
    assert totals[1]["memory"] == 4 * (80 * 80 * 96 + 40 * 40 * 96)
    assert totals[1]["memory_delta"] == "-48.98 %"
    stages = {s["stage"]: s for s in data["stages"]}
    assert list(stages) == ["stride 2", "stride 4", "stride 8", "stride 16", "stride 32", "head"]
    assert stages["head"]["macs_0"] == stages["head"]["macs_1"] == 1_280_000
    assert sum(s["macs_1"] for s in data["stages"]) == 154_083_200


@pytest.mark.parametrize(("args", "message"), [
    (["mobilenet_v2"], "error: compare needs two or more variants\n"),
    (["mobilenet_v2", "mobilenet_v2 --width 2"],
     "error: in variant 'mobilenet_v2 --width 2': expected --alpha A, --res R or --classes N, "
     "got '--width'\n"),
    (["mobilenet_v2", "mobilenet_v2 --res 0"], "error: --res must be a positive integer up to "
                                               "16,384, got '0'\n"),
])
def test_compare_bad_input(args, message):
    result = runner.invoke(app, ["compare", *args])
    assert (result.exit_code, result.stderr) == (2, message)
