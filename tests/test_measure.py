"""macscalc measure: the protocol's output is CSV that calibrate reads, and grids."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from macscalc.analysis.calibrate import calibrate_file, comments, layout_block_of, read_measurements
from macscalc.analysis.kernels import NHWC
from macscalc.cli import app
from macscalc.core.errors import MacscalcError
from macscalc.models.measure import grid_points, layout_block, layout_line, time_networks
from tests.conftest import counted

pytest.importorskip("onnxruntime", reason="measure needs the onnx extra")
runner = CliRunner()


def test_measure_prints_a_row_calibrate_reads(tmp_path):
    result = runner.invoke(app, ["measure", "mobilenet_v3_small", "--res", "32", "--runs", "3",
                                 "--warmup", "1", "--threads", "1", "--max-runs", "3"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "# macscalc measure: median of 3 runs after 1 warm-up"
    assert lines[1].startswith("# machine: ")
    assert lines[1].endswith(" CPUExecutionProvider, 1 intra-op thread")
    assert "load average (1 min) when timing began: " in lines[2]
    # the layout block calibrate builds the kernels with: 16 channels on a CPU with
    # AVX-512 (this machine), else 8
    assert lines[3] == layout_line(layout_block())
    assert layout_line(16) == ("# layout: onnxruntime's blocked conv layout holds 16 channels "
                               "a block (AVX-512)")
    assert lines[4] == "spec,alpha,res,classes,ms,q1_ms,q3_ms,min_ms,max_ms,threads,runs"
    assert lines[5].startswith("mobilenet_v3_small,1.0,32,1000,") and lines[5].endswith(",1,3")
    assert "mobilenet_v3_small α1.0 32: median " in result.stderr
    path = tmp_path / "m.csv"
    path.write_text(result.stdout, encoding="utf-8")
    (m,) = read_measurements(path)
    assert (m.spec, m.res, m.classes, m.ms > 0) == ("mobilenet_v3_small", 32, 1000, True)
    # calibrate takes the block from the comment, whatever machine it runs on
    path.write_text(result.stdout.replace(lines[3], layout_line(8)) + result.stdout.splitlines()[5]
                    + "\n", encoding="utf-8")
    assert calibrate_file(path, prior=None).profile.block == 8


def test_grid_interleaves_rounds():
    nets = [counted("mobilenet_v3_small", res=32).network, counted("mobilenet_v1", "0.25",
                                                                   32).network]
    seen = []
    timings = time_networks(nets, threads=1, runs=5, warmup=0, rounds=2, step=seen.append)
    # loading (0, 1), then round 1 (0, 1) and round 2 (0, 1); 3 + 2 runs each
    assert seen == [0, 1, 0, 1, 0, 1]
    assert [t.runs for t in timings] == [5, 5]
    assert all(t.min <= t.q1 <= t.ms <= t.q3 <= t.max for t in timings)


def test_on_several_threads_a_network_holds_its_session_only_while_it_is_timed(monkeypatch):
    # an onnxruntime session's thread pool spins after each run, on the cores the next
    # network's threads need (interleaved at 2 threads here: MicroNet-M3 7.7 ms median,
    # 2.6 ms alone): on several threads each visit loads the session afresh, runs it once
    # untimed, and lets it go; on one thread the sessions stay loaded
    import macscalc.models.measure as measure

    events = []
    load = measure.Runner.load
    monkeypatch.setattr(measure.Runner, "load", lambda self: events.append("load") or load(self))
    monkeypatch.setattr(measure.Timing, "stable", lambda self: False)
    nets = [counted("mobilenet_v3_small", res=32).network, counted("mobilenet_v1", "0.25",
                                                                   32).network]
    timings = time_networks(nets, threads=2, runs=2, warmup=1, rounds=2, max_runs=4)
    # built (2), 2 rounds of 2 visits, then one more visit each for the unstable ones
    assert events.count("load") == 2 + 2 * 2 + 2
    assert [t.runs for t in timings] == [4, 4]
    events.clear()
    time_networks(nets, threads=1, runs=2, warmup=1, rounds=2, max_runs=4)
    assert events.count("load") == 2


def test_provenance_names_the_stability_rule_and_the_pinned_cpu():
    from macscalc.models.measure import provenance

    lines = provenance(threads=1, runs=20, warmup=3, rounds=4, max_runs=100, cpu=1)
    assert lines[0] == ("# macscalc measure: median of 20 runs after 3 warm-up, in 4 interleaved "
                        "rounds; up to 100 where the interquartile range exceeds 5 % of the "
                        "median")
    assert lines[1].endswith(" CPUExecutionProvider, 1 intra-op thread, pinned to CPU 1")


def test_unstable_timings_get_more_runs_up_to_the_limit(monkeypatch):
    # every timing made unstable: each network gets batches of --runs until --max-runs
    import macscalc.models.measure as measure

    monkeypatch.setattr(measure.Timing, "stable", lambda self: False)
    nets = [counted("mobilenet_v3_small", res=32).network]
    (t,) = time_networks(nets, threads=1, runs=3, warmup=0, max_runs=10)
    assert t.runs == 9  # 3, then 6, then 9; a fourth batch would pass 10
    monkeypatch.setattr(measure.Timing, "stable", lambda self: True)
    (t,) = time_networks(nets, threads=1, runs=3, warmup=0, max_runs=10)
    assert t.runs == 3


def test_stability_is_the_interquartile_range_against_the_median():
    from macscalc.models.measure import Timing

    assert Timing(10.0, 9.8, 10.3, 9.7, 12.0, 1, 20).stable()  # 0.5 ≤ 5 % of 10
    assert not Timing(10.0, 9.7, 10.3, 9.7, 12.0, 1, 20).stable()  # 0.6 > 0.5
    assert Timing(10.0, 9.7, 10.3, 9.7, 12.0, 1, 20).describe().endswith(", UNSTABLE")


def test_pinning_to_a_cpu(monkeypatch):
    import os

    from macscalc.models.measure import pin

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this system")
    before = os.sched_getaffinity(0)
    cpu = min(before)
    try:
        pin(cpu)
        assert os.sched_getaffinity(0) == {cpu}
    finally:
        os.sched_setaffinity(0, before)
    with pytest.raises(MacscalcError, match=r"^cannot pin to CPU 100000: "):
        pin(100_000)


def test_grid_sources(tmp_path):
    # slim V2 grid: 22 published points; a spec alone at its defaults
    points = grid_points("v2,mobilenet_v1")
    assert len(points) == 23 and (points[-1].spec, points[-1].res) == ("mobilenet_v1", None)
    path = tmp_path / "g.csv"
    path.write_text("spec,alpha,res,classes\nmobilenet_v3_small,0.75,32,\n", encoding="utf-8")
    result = runner.invoke(app, ["measure", "--grid", str(path), "--runs", "2", "--warmup", "0",
                                 "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 0, result.output
    (m,) = read_measurements(tmp_path / "out.csv")
    assert (m.spec, str(m.alpha), m.res) == ("mobilenet_v3_small", "3/4", 32)


@pytest.mark.parametrize(("args", "message"), [
    ([], "error: give a SPEC or --grid GRID (not both)\n"),
    (["mobilenet_v1", "--grid", "v1"], "error: give a SPEC or --grid GRID (not both)\n"),
    (["--grid", ","], "error: --grid ',' names no specs (a CSV file, or families such as "
                      "detection, hybrid, micronet, segmentation, v1, v2, v3, zoo, or specs, "
                      "comma-separated)\n"),
])
def test_measure_bad_input(args, message):
    result = runner.invoke(app, ["measure", *args])
    assert (result.exit_code, result.stderr) == (2, message)


def test_noise_is_reported(monkeypatch):
    import os

    from macscalc.models.measure import Timing, noise_warnings

    steady = Timing(10.0, 9.9, 10.2, 9.8, 11.0, 2, 50)
    noisy = Timing(10.0, 9.0, 12.0, 8.9, 40.0, 2, 50)  # 12 > 1.25 × 9
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert noise_warnings([steady]) == []
    assert noise_warnings([steady, noisy]) == [
        "WARNING: 1 of 2 timings spread widely (upper quartile over 1.25 × the lower): measure "
        "again, or with more --runs and --rounds"]
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 1.0, 1.0))
    assert noise_warnings([steady])[0].startswith("WARNING: the machine is busy (load average "
                                                   "64.0 on ")


def test_layers_sets_measured_time_per_kernel_beside_the_estimate(spec_file):
    import json

    # the hand network of tests/test_latency.py: 10 kernels, 3 of them layout conversions
    path = spec_file("  - conv: {c: 8, k: 3, bn: true, act: relu}\n"
                     "  - dw: {k: 5, bn: true, act: hswish}\n"
                     "  - shuffle: {groups: 2}\n"
                     "  - pw: {c: 8, bn: true, act: swish}\n"
                     "  - global_pool: {}\n  - fc: {c: classes}\n")
    result = runner.invoke(app, ["measure", str(path), "--layers", "--runs", "3", "--warmup",
                                 "1", "--device", "cpu_epyc_1t", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {r["layer"]: r for r in data["kernels"]}
    # each spec kernel once, by the layer that launches it, and the conversions as one row
    assert list(rows) == ["conv1/conv", "dw1/dw", "shuffle1", "pw1/pw", "pw1/pw.swish",
                          "global_pool1", "fc1/fc", "layout conversion"]
    # onnxruntime ran every one of them (its names trimmed back to the spec's layers)
    assert all(r["measured_us"] and r["measured_us"] > 0 for r in rows.values())
    assert data["estimated_us"] == pytest.approx(sum(r["est_us"] for r in rows.values()))
    from tests.test_schema import SCHEMA, validate

    validate(data, SCHEMA)
    result = runner.invoke(app, ["measure", "--grid", "v1", "--layers"])
    assert (result.exit_code, result.stderr) == (2, "error: --layers profiles one SPEC in "
                                                    "onnxruntime, not a --grid or another "
                                                    "runtime\n")


@pytest.mark.parametrize("dtype", ["fp32", "int8"])
def test_measure_with_litert(tmp_path, dtype):
    pytest.importorskip("ai_edge_litert.interpreter", reason="--runtime litert needs the "
                        "tflite extra")
    result = runner.invoke(app, ["measure", "mobilenet_v3_small", "--res", "32", "--runs", "3",
                                 "--warmup", "1", "--max-runs", "3", "--runtime", "litert",
                                 "--dtype", dtype])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].startswith("# machine: ")
    assert " with XNNPACK, 1 thread, TFLite export in " + dtype in lines[1]
    # LiteRT keeps one channels-last layout: calibrate builds the kernels without blocks
    assert lines[3] == ("# layout: LiteRT keeps one channels-last layout, 0 channels a block "
                        "(none)")
    assert lines[5].startswith("mobilenet_v3_small,1.0,32,1000,") and lines[5].endswith(",1,3")
    path = tmp_path / "m.csv"
    path.write_text(result.stdout, encoding="utf-8")
    (m,) = read_measurements(path)
    assert (m.spec, m.res, m.ms > 0) == ("mobilenet_v3_small", 32, True)
    assert layout_block_of(comments(path)) == NHWC == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--runtime", "tvm"], "error: --runtime is one of onnxruntime, litert, not 'tvm'\n"),
    (["--dtype", "int8"], "error: --dtype applies to --runtime litert; onnxruntime runs fp32\n"),
    (["--runtime", "litert", "--dtype", "int4"],
     "error: --dtype is one of fp32, fp16, int8, not 'int4'\n"),
])
def test_measure_runtime_refusals(args, message):
    result = runner.invoke(app, ["measure", "mobilenet_v1", *args])
    assert (result.exit_code, result.stderr) == (2, message)
