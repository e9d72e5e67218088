"""macscalc measure: the protocol's output is CSV that calibrate reads, and grids."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from macscalc.analysis.calibrate import read_measurements
from macscalc.cli import app
from macscalc.models.measure import grid_points, time_networks
from tests.conftest import counted

pytest.importorskip("onnxruntime", reason="measure needs the onnx extra")
runner = CliRunner()


def test_measure_prints_a_row_calibrate_reads(tmp_path):
    result = runner.invoke(app, ["measure", "mobilenet_v3_small", "--res", "32", "--runs", "3",
                                 "--warmup", "1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "# macscalc measure: median of 3 runs after 1 warm-up"
    assert lines[1].startswith("# machine: ")
    assert lines[1].endswith(" CPUExecutionProvider, 1 intra-op thread")
    assert "load average (1 min) when timing began: " in lines[2]
    assert lines[3] == "spec,alpha,res,classes,ms,q1_ms,q3_ms,min_ms,max_ms,threads,runs"
    assert lines[4].startswith("mobilenet_v3_small,1.0,32,1000,") and lines[4].endswith(",1,3")
    assert "mobilenet_v3_small α1.0 32: median " in result.stderr
    path = tmp_path / "m.csv"
    path.write_text(result.stdout, encoding="utf-8")
    (m,) = read_measurements(path)
    assert (m.spec, m.res, m.classes, m.ms > 0) == ("mobilenet_v3_small", 32, 1000, True)


def test_grid_interleaves_rounds():
    nets = [counted("mobilenet_v3_small", res=32).network, counted("mobilenet_v1", "0.25",
                                                                   32).network]
    seen = []
    timings = time_networks(nets, threads=1, runs=5, warmup=0, rounds=2, step=seen.append)
    # loading (0, 1), then round 1 (0, 1) and round 2 (0, 1); 3 + 2 runs each
    assert seen == [0, 1, 0, 1, 0, 1]
    assert [t.runs for t in timings] == [5, 5]
    assert all(t.min <= t.q1 <= t.ms <= t.q3 <= t.max for t in timings)


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
                      "detection, hybrid, micronet, v1, v2, v3, zoo, or specs, comma-separated)\n"),
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
