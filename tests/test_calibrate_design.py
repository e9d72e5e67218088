"""calibrate --suggest (which whole models to time), --auto (single layers timed here) and
--figure (which column of measure's CSV is fitted)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from macscalc.analysis.calibrate import read_measurements
from macscalc.analysis.design import suggest
from macscalc.analysis.latency import TERMS, features, load_profile
from macscalc.cli import app
from macscalc.lang.spec import builtin_names
from macscalc.models.autocal import CHAIN, SHAPES, auto_calibrate, designs
from tests.conftest import counted

np = pytest.importorskip("numpy", reason="the design needs numpy")
runner = CliRunner()


def _networks(names: list[str]) -> list:
    return [counted(n).network for n in names]


def test_suggest_is_deterministic_and_pins_every_constant():
    names = [n for n in builtin_names() if not n.startswith("ssd")]
    nets = _networks(names)
    ref = load_profile("cpu_epyc_1t")
    # the built-ins exercise all 15 terms; cpu_epyc_1t prices the depthwise planes at
    # nothing (.inf M planes/s), so the design spends no pick on them: 14 constants
    priced = [t.name for t, c in zip(TERMS, ref.coefs(), strict=True) if c > 0]
    assert [t.name for t in TERMS if t.name not in priced] == ["dw_planes"]
    n = len(priced)
    first = suggest(nets, n, ref)
    assert suggest(nets, n, ref) == first
    assert len(set(first.picks)) == n
    # the n picks identify all of them: the chosen rows (as the fit weights them) have
    # full column rank
    assert first.terms == priced
    x = np.array([[features(nets[i])[t] for t in priced] for i in first.picks])
    t = np.array([[features(nets[i])[t.name] for t in TERMS] for i in first.picks]) \
        @ np.array(ref.coefs())
    assert np.linalg.matrix_rank(x / t[:, None]) == n == first.rank
    # 8 picks are the first 8 of these (greedy) and leave the other directions unpinned
    eight = suggest(nets, 8, ref)
    assert (eight.picks, eight.rank) == (first.picks[:8], 8)
    # MobileNets alone cannot: no grouped convs, no swish, no FC-heavy model
    mobilenets = _networks([n for n in names if n.startswith("mobilenet")])
    assert suggest(mobilenets, n, ref).rank < n


def test_suggest_prints_the_csv_calibrate_reads(tmp_path):
    result = runner.invoke(app, ["calibrate", "--suggest", "3",
                                 "mobilenet_v2,resnet18,efficientnet_b0,shufflenet_v2_x1_0"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == ("# macscalc calibrate --suggest 3: of 4 candidates, the 3 whose timings "
                        "best pin the latency model's constants (greedy D-optimal design over "
                        "their features)")
    assert lines[1].endswith(": too few models to pin them all")  # 3 rows, 8 terms used
    # timed by measure --grid on the device, the file gets the layout line calibrate reads
    assert lines[3] == ("# or, where onnxruntime runs: macscalc measure --grid FILE -o TIMED.csv,"
                        " which also writes the layout line calibrate reads")
    assert lines[4] == "spec,alpha,res,classes,ms"
    rows = lines[5:]
    assert len(rows) == 3 and all(r.endswith(",1.0,224,1000,") for r in rows)
    path = tmp_path / "todo.csv"
    path.write_text(result.stdout, encoding="utf-8")
    assert [m.ms for m in read_measurements(path, need_ms=False)] == [None] * 3


def test_a_non_square_input_round_trips_through_the_csv(tmp_path):
    # LR-ASPP runs at 1024×2048: measure's row and --suggest's write 1024x2048 and calibrate
    # reads it back as such (before, both wrote 1024 and calibrate fitted a 1024×1024
    # network's features to the 1024×2048 timing: 2× too little work)
    from macscalc.models.measure import Timing, csv_row

    net = counted("lraspp_mobilenet_v3_small").network
    assert net.settings.size == (1024, 2048)
    row = csv_row(net, "lraspp_mobilenet_v3_small", Timing(210.0, 156.0, 239.0, 146.0, 309.0,
                                                            1, 24))
    assert row.startswith("lraspp_mobilenet_v3_small,1.0,1024x2048,19,210.0000,")
    path = tmp_path / "m.csv"
    path.write_text("spec,alpha,res,classes,ms,q1_ms,q3_ms,min_ms,max_ms,threads,runs\n"
                    f"{row}\nmobilenet_v2,1.0,224,1000,12.0,11,13,9.5,30,1,24\n",
                    encoding="utf-8")
    rows = read_measurements(path)
    assert [m.size for m in rows] == [(1024, 2048), (224, 224)]
    assert rows[0].label() == "lraspp_mobilenet_v3_small α1.0 1024×2048"
    assert rows[0].network().input.h * rows[0].network().input.w == 1024 * 2048
    result = runner.invoke(app, ["calibrate", "--suggest", "2",
                                 "lraspp_mobilenet_v3_small,mobilenet_v2"])
    assert result.exit_code == 0, result.output
    assert "lraspp_mobilenet_v3_small,1.0,1024x2048,19," in result.stdout.splitlines()


@pytest.mark.parametrize(("args", "message"), [
    (["--suggest", "2"], "error: --suggest N needs CANDIDATES (and no --auto)\n"),
    (["m.csv"], "error: give the profile to write with -o PROFILE.yaml\n"),
    (["-o", "p.yaml"], "error: give MEASURED.csv or --auto (not both)\n"),
    (["--auto", "m.csv", "-o", "p.yaml"], "error: give MEASURED.csv or --auto (not both)\n"),
    (["m.csv", "-o", "p.yaml", "--figure", "mean"],
     "error: --figure must be one of median, min, got 'mean'\n"),
    (["--auto", "--budget", "0", "-o", "p.yaml"],
     "error: --budget must be a positive number of seconds\n"),
])
def test_calibrate_bad_input(args, message):
    result = runner.invoke(app, ["calibrate", *args])
    assert (result.exit_code, result.stderr) == (2, message)


def test_suggest_locates_a_bad_candidate_row(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("spec,alpha,res,classes\nmobilenet_v2,1.0,224,\nnot_a_spec,,,\n",
                    encoding="utf-8")
    result = runner.invoke(app, ["calibrate", "--suggest", "1", str(path)])
    assert result.exit_code == 2
    assert result.stderr.replace(str(tmp_path) + "/", "").startswith(
        "error: c.csv:3:1: spec 'not_a_spec': no spec file or built-in spec named 'not_a_spec'")


def test_suggest_takes_a_list_longer_than_a_file_name():
    # a comma-separated list past the system's 255-byte name limit is no file to look up:
    # before, asking whether it was one raised OSError (a traceback); now its names are
    # read as candidates, and the first unknown one is refused
    names = ",".join(["mobilenet_v2"] * 30)
    result = runner.invoke(app, ["calibrate", "--suggest", "1", names])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "mobilenet_v2,1.0,224,1000,"
    result = runner.invoke(app, ["calibrate", "--suggest", "1", names + ",x" * 200])
    assert (result.exit_code, result.stderr) == (
        2, "error: no spec file or built-in spec named 'x' (70 built-ins: macscalc specs "
           "lists them)\n")


def test_figure_min_fits_the_minimum_column(tmp_path):
    head = "spec,alpha,res,classes,ms,q1_ms,q3_ms,min_ms,max_ms,threads,runs"
    path = tmp_path / "m.csv"
    path.write_text(f"{head}\nmobilenet_v2,1.0,224,,12.0,11,13,9.5,30,1,100\n", encoding="utf-8")
    assert [m.ms for m in read_measurements(path)] == [12.0]
    assert [m.ms for m in read_measurements(path, figure="min")] == [9.5]
    path.write_text("spec,alpha,res,classes,ms\nmobilenet_v2,1.0,224,,12.0\n", encoding="utf-8")
    result = runner.invoke(app, ["calibrate", str(path), "-o", str(tmp_path / "p.yaml"),
                                 "--figure", "min"])
    assert result.exit_code == 2
    assert result.stderr.replace(str(tmp_path) + "/", "") == (
        "error: m.csv:1:26: --figure min needs a 'min_ms' column (as measure writes)\n")


def test_auto_runs_end_to_end_on_a_tiny_budget(tmp_path):
    pytest.importorskip("onnxruntime", reason="--auto times graphs with onnxruntime")
    # a budget of 1 s stops after the first batch of 10 graphs: 8 fitted, 2 held out
    result = runner.invoke(app, ["calibrate", "--auto", "--budget", "1", "-o",
                                 str(tmp_path / "auto.yaml"), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    from tests.test_schema import SCHEMA, validate

    validate(data, SCHEMA)
    sets = [r["set"] for r in data["rows"]]
    assert len(sets) >= 10 and sets[:5] == ["fit"] * 4 + ["held out"]
    p = load_profile(str(tmp_path / "auto.yaml"))
    assert p.name == "auto" and p.rows == sets.count("fit")
    assert p.fitted_on.startswith(f"calibrate --auto: {len(sets)} single-layer and block graphs "
                                  f"({sets.count('held out')} held out), the median of each")
    # the held-out band is the error on graphs the fit never saw
    held = [abs(r["error_pct"]) for r in data["rows"] if r["set"] == "held out"]
    assert data["leave_one_out"]["mape_pct"] == pytest.approx(sum(held) / len(held), abs=0.01)


def test_auto_times_the_graphs_again_while_the_budget_lasts():
    pytest.importorskip("onnxruntime", reason="--auto times graphs with onnxruntime")
    # ten graphs take a fraction of a second a pass: within 2 s they are timed pass after
    # pass, each keeping its lowest figure (one pass here held out 62 % of the 515 graphs
    # within ±10 %; the lowest over 8, in --auto's default 180 s, 84 %)
    seen: list[str] = []
    cal, _ = auto_calibrate(1, 2.0, limit=10, step=lambda done, total, label: seen.append(
        label.split(":")[0]))
    passes = len(set(seen))
    assert passes >= 2 and seen[:2] == ["pass 1", "pass 2"]
    # (a pass of one batch always completes once it starts)
    assert f"the median of each, the lowest over {passes} passes" in cal.profile.fitted_on
    assert len(cal.rows) == 10


def test_auto_holds_out_every_kind_at_some_shapes_and_fits_it_at_the_others():
    ds = designs()
    # 13 shapes x 20 kinds, each alone and as a chain of 3, a first conv from a 3-channel
    # image and 20 shuffles in a row at each, 5 FC layers and 3 long chains of tiny
    # kernels (autocal.py)
    assert (len(SHAPES), CHAIN, len(ds)) == (13, 3, 13 * 20 * 2 + 13 + 13 + 5 + 3)
    by_kind: dict[str, set[bool]] = {}
    for d in ds:
        kind = d.label.split(" c")[0] if d.label.startswith(("fc", "stem")) else \
            d.label.replace(f" c{d.channels} {d.size}", "")
        by_kind.setdefault("fc" if kind.startswith("fc") else kind, set()).add(d.held)
    # a hold-out rule that aliased with the design's period held out every FC graph; the
    # grouped 3×3 conv has groups of 16 channels, of 8 over 24 and 40
    assert len(by_kind) == 46 and all(v == {True, False} for v in by_kind.values())
    fc = [d.held for d in ds if d.label.startswith("fc")]
    assert fc == [False, False, False, True, False]
    # a chain repeats the rows of its single graph three times, split names numbered
    one = next(d for d in ds if d.label == "split concat c32 56")
    three = next(d for d in ds if d.label == "split concat c32 56 x3")
    assert three.rows == tuple(r.replace("#", str(n)) for n in range(3) for r in (
        "pw: {c: 32}", "split: {parts: 2, name: x#}", "concat: {from: [x#.1, x#.0]}"))
    assert len(one.rows) == 3 and one.held == three.held
    three.network()  # it builds
