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
    models = [(c["model"], c["accuracy"], c["frontier"]) for c in data["candidates"]]
    # slim V3 README 67.5 (56.51 M computed), 65.4 (43.40 M); MicroNet README 62.5 (20.81 M)
    assert models[:4] == [("small_1.0", "67.5", True), ("small_0.75", "65.4", True),
                          ("M3", "62.5", True), ("small_minimal_1.0", "61.9", False)]
    assert all(c["macs"] <= 60_000_000 for c in data["candidates"])
    frontier = [c["model"] for c in data["candidates"] if c["frontier"]]
    assert frontier == ["small_1.0", "small_0.75", "M3", "M2", "M1", "M0"]


def test_pick_latency_uses_only_published_latencies():
    # pixel2 has published latencies (slim V3 README) but no profile: nothing is estimated
    data = run_json("pick", "--max-latency", "16", "--device", "pixel2")
    rows = [(c["model"], c["latency_ms"]) for c in data["candidates"]]
    # by top-1: 65.4, 61.9; the other V3 rows run 19.4 ms and more, V1/V2 publish none
    assert rows == [("small_0.75", "15.9"), ("small_minimal_1.0", "15.1")]


def test_pick_with_a_profile_prefers_published_latencies_and_estimates_the_rest():
    data = run_json("pick", "--max-latency", "10", "--device", "pixel1")
    published = [(c["model"], c["latency_ms"]) for c in data["candidates"] if c["latency_ms"]]
    # slim V2 README Pixel 1 CPU ms, by top-1: 57.7, 51.2, 50.8, 45.5
    assert published == [("v2_0.5_128", "9.9"), ("v2_0.5_96", "6.4"), ("v2_0.35_128", "6.9"),
                         ("v2_0.35_96", "4.5")]
    assert all(c["latency_estimated_ms"] is None for c in data["candidates"] if c["latency_ms"])
    estimated = [c for c in data["candidates"] if not c["latency_ms"]]
    assert {c["family"] for c in estimated} == {"v1", "micronet"}
    assert all(c["latency_estimated_ms"] <= 10 for c in estimated)
    # pixel1 is fitted on MobileNets: MicroNet's shuffles and shift-max, ShuffleNet's
    # splits, concatenations and shuffles were never seen, and each estimate says so
    unseen = {"micronet": ["group conv2d", "shiftmax", "shuffle"],
              "zoo": ["concat", "pool", "shuffle", "slice"], "v1": []}
    assert all(c["unseen_kinds"] == unseen[c["family"]] for c in estimated)
    # ShuffleNet V2 0.5× (13.6 ms estimated: its splits, concatenations and shuffles cost
    # as bytes at rates the MobileNet rows pin) is past the limit, with the same warning
    wider = run_json("pick", "--max-latency", "14", "--device", "pixel1")
    zoo = [c for c in wider["candidates"] if c["family"] == "zoo" and not c["latency_ms"]]
    assert [(c["model"], c["unseen_kinds"]) for c in zoo] == [
        ("ShuffleNet_V2_X0_5", unseen["zoo"])]


def test_pick_unpublished_points_are_marked_and_unranked():
    data = run_json("pick", "--family", "v2", "--res", "192", "--unpublished")
    unranked = [c for c in data["candidates"] if not c["published_accuracy"]]
    # named as the family's published rows are (v2_1.4_224), as in `table`
    assert [c["model"] for c in unranked] == ["v2_1.3_192", "v2_1.4_192"]
    assert all(c["rank"] is None and c["accuracy"] is None for c in unranked)


@pytest.mark.parametrize(("args", "message"), [
    (["--max-latency", "10"], "error: --max-latency needs --device (published: pixel1, pixel2, "
                              "pixel3; profiles: cpu_epyc_1t, pixel1 or a file from macscalc "
                              "calibrate)\n"),
    (["--device", "iphone"], "error: no published latencies or profile for device 'iphone' "
                             "(published: pixel1, pixel2, pixel3; profiles: cpu_epyc_1t, "
                             "pixel1 or a file from macscalc calibrate)\n"),
    (["--family", "v9"], "error: unknown family 'v9' (known: detection, hybrid, micronet, "
                         "segmentation, v1, v2, v3, zoo)\n"),
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
    assert (totals[0]["macs_delta_pct"], totals[1]["macs_delta_pct"]) == (None, "-26.30")
    # peak live activations (fp32), both while ir2's depthwise runs: its expanded input
    # (96 channels at 112² or 80²) and its output (at 56² or 40²), 4 bytes each
    assert totals[0]["memory"] == 4 * (112 * 112 * 96 + 56 * 56 * 96)
    assert totals[1]["memory"] == 4 * (80 * 80 * 96 + 40 * 40 * 96)
    assert totals[1]["memory_delta_pct"] == "-48.98"
    stages = {s["stage"]: s for s in data["stages"]}
    assert list(stages) == ["stride 2", "stride 4", "stride 8", "stride 16", "stride 32", "head"]
    assert stages["head"]["macs_0"] == stages["head"]["macs_1"] == 1_280_000
    assert sum(s["macs_1"] for s in data["stages"]) == 154_083_200


@pytest.mark.parametrize(("args", "message"), [
    (["mobilenet_v2"], "error: compare needs two or more variants\n"),
    (["mobilenet_v2", "mobilenet_v2 --width 2"],
     "error: in variant 'mobilenet_v2 --width 2': expected --alpha A, --res R, --depth D or "
     "--classes N, got '--width'\n"),
    (["mobilenet_v2", "mobilenet_v2 --res 0"], "error: --res must be a positive integer up to "
                                               "16,384, got '0'\n"),
])
def test_compare_bad_input(args, message):
    result = runner.invoke(app, ["compare", *args])
    assert (result.exit_code, result.stderr) == (2, message)


def test_stages_of_an_unpadded_network_are_powers_of_two():
    # SqueezeNet 1.1 (no padding) ends its features at 13×13 from 224: output stride 16,
    # not 224 // 13 = 17
    from macscalc.commands.compare import stages
    from tests.conftest import counted

    assert list(stages(counted("squeezenet1_1"))) == ["stride 2", "stride 4", "stride 8",
                                                      "stride 16", "head"]
