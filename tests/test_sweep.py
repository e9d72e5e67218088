"""macscalc sweep: vectorized counts over α × resolution equal count's, point by point."""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
import sys
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from macscalc import PARAM_CONVENTIONS, Convention, build, count, load_spec, sweep
from macscalc.cli import app
from macscalc.core.errors import MacscalcError
from macscalc.lang.layers import KINDS
from macscalc.lang.spec import builtin_names

np = pytest.importorskip("numpy")
from macscalc.analysis import sweeps  # noqa: E402  (imports numpy)

runner = CliRunner()
TORCH = Convention(PARAM_CONVENTIONS["torch"])


def counted(spec, alpha: Fraction, res: int) -> tuple[int, int, int] | None:
    """What count gives at one point (MACs, torch params, fp32 peak bytes); None if the
    network cannot be built there."""
    try:
        report = count(build(spec, alpha, (res, res)), TORCH)
    except MacscalcError:
        return None
    return report.macs, report.params, report.peak_bytes


def swept(result, i: int, j: int) -> tuple[int, int, int] | None:
    if not result.valid[i, j]:
        return None
    return int(result.macs[i, j]), int(result.params[i, j]), int(result.memory[i, j])


@pytest.mark.parametrize("name", builtin_names())
def test_sweep_equals_count_on_a_random_sample_of_every_builtin(name):
    rng = random.Random(f"sweep {name}")  # seeded: the same sample every run
    spec = load_spec(name)
    alphas = sorted({Fraction(rng.randrange(10, 200), 100) for _ in range(12)} | {Fraction(1)})
    res = sorted({rng.randrange(1, 400) for _ in range(8)} | {spec.size[0]})
    if any(sweeps.SPATIAL[n.layer.kind] is sweeps._tokens for n in build(spec).nodes):
        # attention's q·kᵀ grows with the square of the tokens: refused, never approximated
        with pytest.raises(MacscalcError, match="token and attention costs do not scale"):
            sweep(spec, alphas, res)
        return
    result = sweep(spec, alphas, res)
    points = [(i, j) for i in range(len(alphas)) for j in range(len(res))]
    for i, j in rng.sample(points, 8):
        assert swept(result, i, j) == counted(spec, alphas[i], res[j]), (alphas[i], res[j])


def test_sweep_reproduces_torchvision_mobilenet_v2():
    # shared/reference/framework-counts.md: torchvision mobilenet_v2(width_mult=α), MACs
    # and sum(p.numel())
    result = sweep("mobilenet_v2", ["0.35", "0.5", "0.75", "1.0"], [96, 160, 224])
    assert result.macs.tolist() == [[11_934_128, 30_874_800, 59_285_808],
                                    [18_885_440, 50_184_000, 97_131_840],
                                    [39_445_472, 107_295_200, 209_069_792],
                                    [56_289_152, 154_083_200, 300_774_272]]
    assert result.params[:, 0].tolist() == [1_677_128, 1_968_680, 2_636_424, 3_504_872]
    assert result.macs.dtype == np.int64 and result.valid.all() and result.errors == ()


EDGE_SPECS = {
    # windows that collapse at small inputs (valid padding, a ceil-mode pool)
    "collapse": ("{bn: true, act: relu, padding: valid}", """
  - conv: {c: 16, k: 3, s: 2}
  - pool: {op: max, k: 3, s: 2, ceil: true}
  - conv: {c: 32, k: 5, padding: 1}
  - dw: {k: 3, s: 2, padding: same}
  - ir: {t: 4, c: 32, padding: same}
  - global_pool: {}
  - fc: {c: classes}
"""),
    # a flatten: the FC's input width, so its parameters, depend on the resolution
    "flatten": ("{act: relu}", """
  - conv: {c: 16, k: 3, s: 2}
  - pool: {op: max, k: 2, s: 2}
  - conv: {c: 32, k: 3}
  - flatten: {}
  - fc: {c: 64}
  - fc: {c: classes}
"""),
    # upsample + concat (sizes match only at some resolutions), adaptive pool, layer norm
    "branches": ("{bn: true, act: relu}", """
  - conv: {c: 16, k: 3, s: 2, name: stem}
  - conv: {c: 24, k: 3, s: 2}
  - upsample: {scale: 2, mode: bilinear, name: up}
  - concat: {from: [stem, up]}
  - adaptive_pool: {op: avg, size: 7}
  - conv: {c: 32, k: 3, padding: valid}
  - conv2d: {c: 32, k: 1, name: mid}
  - layernorm: {}
  - add: {from: mid}
  - global_pool: {}
  - fc: {c: classes}
"""),
}


@pytest.mark.parametrize("name", EDGE_SPECS)
def test_sweep_equals_count_everywhere_on_shapes_that_change_with_resolution(name, spec_file):
    defaults, rows = EDGE_SPECS[name]
    spec = load_spec(str(spec_file(rows.lstrip("\n"), header="name: t\nsource: test\ninput: "
                                   f"{{size: 32}}\nclasses: 10\ndefaults: {defaults}\n")))
    alphas = [Fraction(k, 4) for k in range(1, 6)]
    res = list(range(1, 40))
    result = sweep(spec, alphas, res)
    for i, a in enumerate(alphas):
        for j, r in enumerate(res):
            assert swept(result, i, j) == counted(spec, a, r), (a, r)
    assert not result.valid.all()  # each spec has resolutions it cannot be built at
    failed = {(i, j) for e in result.errors for i in e.alphas for j in e.resolutions}
    assert failed == set(zip(*np.nonzero(~result.valid), strict=True))


def test_every_primitive_has_a_spatial_rule():
    assert set(sweeps.SPATIAL) == set(KINDS)


def test_alpha_applied_out_of_the_keys_sight_splits_the_group(monkeypatch):
    # a width key that sees nothing puts every α in one group; the recorded widths of the
    # build expose it and each α is built on its own, so the numbers stay exact
    monkeypatch.setattr(sweeps, "_width_sites", lambda spec: [])
    result = sweep("mobilenet_v1", ["0.5", "0.75"], [128])
    spec = load_spec("mobilenet_v1")
    assert swept(result, 0, 0) == counted(spec, Fraction(1, 2), 128)
    assert swept(result, 1, 0) == counted(spec, Fraction(3, 4), 128)


def test_alpha_values_that_round_alike_share_one_build():
    # make_divisible_8 rounds every V2 width alike from α 0.75 to 0.76 (24·α: 18 and 18.24
    # both round to 24, as 16 is more than 10 % below): one build for the three
    result = sweep("mobilenet_v2", ["0.75", "0.755", "0.76"], [224])
    assert result.builds == 1
    # torchvision mobilenet_v2(width_mult=0.75) at 224 (shared/reference/framework-counts.md)
    assert result.macs[:, 0].tolist() == [209_069_792] * 3


def test_counts_past_int64_are_refused():
    spec = "name: big\nsource: t\ninput: {size: 8, channels: 1000000}\nclasses: 10\n" \
           "layers:\n  - conv: {c: 1000000, k: 9}\n"
    with pytest.raises(MacscalcError, match="do not fit 64-bit integers"):
        sweep(sweeps_spec(spec), [1], [16384])  # 9·9·10⁶·10⁶·16384² MACs > 2⁶³


def sweeps_spec(text: str):
    from macscalc.lang.spec import parse

    return parse(text, "big.yaml")


def test_parse_values_ranges_are_inclusive_and_exact():
    assert sweeps.parse_values("0.1:0.3:0.1", "--alpha") == [Fraction(1, 10), Fraction(1, 5),
                                                             Fraction(3, 10)]
    assert sweeps.parse_values("96:128:16,224", "--res") == [96, 112, 128, 224]
    assert sweeps.parse_values("1:3", "--res") == [1, 2, 3]


@pytest.mark.parametrize(("text", "message"), [
    ("0.5:0.25:0.05", "--alpha: '0.5:0.25:0.05' needs STOP ≥ START and a positive STEP"),
    ("0.25:1:0", "--alpha: '0.25:1:0' needs STOP ≥ START and a positive STEP"),
    ("a:b", "--alpha must be numbers, START:STOP:STEP ranges or comma lists of them, "
            "got 'a:b'"),
    ("1:2:3:4", "--alpha: a range is START:STOP:STEP, got '1:2:3:4'"),
])
def test_parse_values_errors(text, message):
    with pytest.raises(MacscalcError) as e:
        sweeps.parse_values(text, "--alpha")
    assert e.value.message == message


def test_pareto_keeps_points_nothing_beats():
    cost = np.array([1, 2, 2, 3, 3, 4])
    gain = np.array([1, 1, 3, 3, 2, 5])
    # (2, 1) loses to (1, 1); (3, 3) to (2, 3); (3, 2) to (2, 3); equal points stand together
    assert sweeps.pareto(cost, gain).tolist() == [True, False, True, False, False, True]
    # published accuracy is a float: the same answer by the other sort
    assert sweeps.pareto(cost, gain / 10).tolist() == [True, False, True, False, False, True]
    assert sweeps.pareto(np.array([5, 5]), np.array([7, 7])).tolist() == [True, True]


def run(*args: str) -> str:
    result = runner.invoke(app, ["sweep", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cli_json_with_limits_frontier_and_published_accuracy():
    data = json.loads(run("mobilenet_v2", "--alpha", "0.35,0.5,0.75,1.0", "--res", "96:224:32",
                          "--max-macs", "300M", "--format", "json"))
    assert (data["schema_version"], data["kind"]) == (1, "sweep")
    assert data["counts"] == {"points": 20, "valid": 20, "within_limits": 19, "shown": 19}
    points = {(p["alpha"], p["res"]): p for p in data["points"]}
    # torchvision: 300,774,272 MACs at 1.0 / 224, over the 300 M limit
    assert ("1.0", 224) not in points
    p = points[("0.5", 160)]
    assert (p["macs"], p["params"], p["alpha_rho"]) == (50_184_000, 1_968_680, "0.357143")
    # slim README: 0.35_128 is 50.8 % at 20 M MACs, beaten by 0.5_96 (51.2 % at 19 M)
    assert (points[("0.35", 128)]["accuracy"],
            points[("0.35", 128)]["pareto_macs_accuracy"]) == ("50.8", False)
    assert points[("0.5", 96)]["pareto_macs_accuracy"] is True
    assert data["objectives"]["costs"] == ["macs"]
    assert data["limits"] == {"macs": 300_000_000}


def test_cli_frontier_keeps_only_pareto_points_cheapest_first():
    data = json.loads(run("mobilenet_v2", "--alpha", "0.25:1.4:0.05", "--res", "96:224:16",
                          "--frontier", "--max-memory", "2MB", "--format", "json"))
    points = data["points"]
    assert data["objectives"]["costs"] == ["macs", "memory"]
    assert all(any(v for k, v in p.items() if k.startswith("pareto_")) for p in points)
    assert all(p["memory"] <= 2_000_000 for p in points)
    assert [p["macs"] for p in points] == sorted(p["macs"] for p in points)
    full = sweep("mobilenet_v2", sweeps.parse_values("0.25:1.4:0.05", "α"),
                 range(96, 225, 16))
    keep = full.valid & (full.memory <= 2_000_000)
    capacity = sweeps.alpha_rho(full)[0]
    on = sweeps.pareto(full.macs[keep], capacity[keep])
    assert sum(p["pareto_macs_alpha_rho"] for p in points) == int(on.sum())


def test_cli_csv_markdown_and_table():
    args = ("mobilenet_v2", "--alpha", "0.5,1.0", "--res", "96,224")
    rows = list(csv.DictReader(io.StringIO(run(*args, "-f", "csv"))))
    assert [(r["alpha"], r["res (pixels)"], r["macs (MACs)"]) for r in rows] == [
        ("0.5", "96", "18885440"), ("0.5", "224", "97131840"), ("1.0", "96", "56289152"),
        ("1.0", "224", "300774272")]
    assert "| 0.5 | 96 | 18.89 | 1.969 |" in run(*args, "-f", "markdown")
    text = run(*args)
    assert text.startswith("MobileNet V2: 2 α × 2 resolutions")
    assert "1.0  224    300.77       3.505" in text


def test_cli_points_without_a_network_are_errors_not_numbers():
    # MicroNet-M0 at α 0.5: a shuffle's groups no longer divide the rounded channels
    data = json.loads(run("micronet_m0", "--alpha", "0.5,1.0", "--res", "224", "-f", "json"))
    assert [p["alpha"] for p in data["points"]] == ["1.0"]
    (error,) = data["errors"]
    assert (error["alphas"], error["resolutions"]) == (["0.5"], [224])
    assert "must divide" in error["message"]


@pytest.mark.parametrize(("args", "message"), [
    (["--max-latency", "10"], "error: --max-latency needs --device PROFILE and a positive "
                              "number of ms"),
    (["--res", "0,96"], "error: resolution must be a whole number from 1 to 16,384, got 0"),
    (["--res", "95.5"], "error: resolution must be a whole number from 1 to 16,384, got "
                        "95.5"),
    (["--alpha", "0:1:0.5"], "error: width multiplier must be a positive number up to 16 (at "
                             "most 6 decimals), got 0"),
    (["--plot", "x.pdf"], "error: --plot needs a .png or .svg file name, got 'x.pdf'"),
])
def test_cli_bad_input(args, message):
    result = runner.invoke(app, ["sweep", "mobilenet_v2", *args])
    assert (result.exit_code, result.stderr.strip()) == (2, message)


def test_cli_refuses_an_onnx_file():
    result = runner.invoke(app, ["sweep", "model.onnx", "--alpha", "0.5:1:0.25"])
    assert (result.exit_code, result.stderr.strip()) == (
        2, "error: sweep needs a spec: α and ρ do not apply to an ONNX file; write one with "
           "'macscalc import MODEL -o spec.yaml'")


def test_progress_bar_only_on_a_terminal():
    class Stream(io.StringIO):
        def __init__(self, tty: bool) -> None:
            super().__init__()
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    for tty in (False, True):
        stream = Stream(tty)
        with sweeps.progress_bar(stream, delay=0) as progress:
            sweep("mobilenet_v2", ["0.5", "1.0"], [224], progress=progress)
        assert bool(stream.getvalue()) is tty


def test_numpy_and_matplotlib_stay_off_the_count_and_help_paths():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom macscalc.cli import app\n"
            "import macscalc\nr = CliRunner()\n"
            "for args in (['--help'], ['sweep', '--help'], ['count', 'mobilenet_v2']):\n"
            "    assert r.invoke(app, args).exit_code == 0, args\n"
            "print(sorted({'numpy', 'matplotlib'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_latency_stays_exact_where_tensors_outgrow_the_caches():
    # MobileNet V2's 96-channel expansion at half the input's side passes
    # kernels.CACHED_BYTES (8 MiB) above 295 px: from there its bytes also come from
    # memory. Each point still equals count --device there: the sweep notes every tensor
    # and adds, point by point, the bytes of those too big there (without, 320 px got
    # 13.51 ms on cpu_epyc_1t where count says 14.09)
    from macscalc.analysis.latency import estimate, features, load_profile

    profile = load_profile("cpu_epyc_1t")
    res = [224, 256, 288, 320, 352]
    spec = load_spec("mobilenet_v2")
    grid = sweep("mobilenet_v2", ["1.0"], res, profile=profile)
    drams = []
    for j, r in enumerate(res):
        report = count(build(spec, Fraction(1), (r, r)), TORCH)
        assert grid.latency[0, j] == pytest.approx(estimate(report, profile).ms, rel=1e-12)
        drams.append(features(report.network)["dram"])
    # 5,490,432 weight bytes past the first 8 MiB at every size; tensors too from 320
    assert drams[:3] == [5_490_432] * 3 and drams[3] > drams[2]


def test_latency_stays_exact_where_convs_skip_padding_rows():
    # a blocked k×k conv skips its kernel rows in the padding (kernels.padded_rows), which
    # depends on each map's height, not its area: the sweep adds it point by point, and
    # DeepLabV3's dilated ASPP at odd sizes still equals count --device everywhere
    from macscalc.analysis.latency import estimate, load_profile

    profile = load_profile("cpu_epyc_1t")
    res = [65, 97, 129, 161]
    spec = load_spec("deeplabv3_mobilenet_v1")
    grid = sweep("deeplabv3_mobilenet_v1", ["0.5", "1.0"], res, profile=profile)
    for i, a in enumerate(grid.alphas):
        for j, r in enumerate(res):
            report = count(build(spec, a, (r, r)), TORCH)
            assert grid.latency[i, j] == pytest.approx(estimate(report, profile).ms, rel=1e-12)


def test_latency_on_a_device_profile_is_the_estimate_of_each_point():
    # every point's estimate equals what count --device gives there (latency.estimate)
    from macscalc.analysis.latency import estimate, load_profile

    profile = load_profile("cpu_epyc_1t")
    grid = sweep("mobilenet_v3_large", ["0.5", "1.0"], [160, 224], profile=profile)
    for i, a in enumerate(grid.alphas):
        for j, r in enumerate(grid.resolutions.tolist()):
            report = count(build(load_spec("mobilenet_v3_large"), a, (r, r)), TORCH)
            assert grid.latency[i, j] == pytest.approx(estimate(report, profile).ms, rel=1e-12)
    data = json.loads(runner.invoke(app, ["sweep", "mobilenet_v2", "--alpha", "0.5,1.0",
                                          "--res", "128,224", "--device", "cpu_epyc_1t",
                                          "--max-latency", "5", "-f", "json"]).stdout)
    assert {p["latency_ms"] <= 5 for p in data["points"]} == {True}
    assert len(data["points"]) == 3  # 1.0 at 224 is estimated above 5 ms


@pytest.mark.parametrize("name", builtin_names())
def test_replayed_rows_build_the_network_a_fresh_build_gives(name):
    # one Replay across α values and resolutions, as a sweep shares it: every network
    # equals the one built from scratch, node for node
    from macscalc.lang.graph import Replay

    spec, replay = load_spec(name), Replay()
    for alpha, res in [("1", 224), ("0.5", 224), ("0.75", 224), ("0.5", 160), ("0.5", 224),
                       ("0.52", 161), ("1", 224)]:
        a = Fraction(alpha)
        try:
            fresh = build(spec, a, (res, res))
        except MacscalcError as e:
            with pytest.raises(MacscalcError) as again:
                build(spec, a, (res, res), replay=replay)
            assert again.value.located() == e.located()
            continue
        assert build(spec, a, (res, res), replay=replay).nodes == fresh.nodes, (alpha, res)


@pytest.mark.parametrize("name", builtin_names())
def test_alpha_groups_are_the_alphas_whose_widths_all_round_alike(name):
    # the vectorized key against each width rounded on its own, in int64 and, with α
    # over a denominator of 10¹⁸, in Python integers
    spec = load_spec(name)
    sites = sweeps._width_sites(spec)
    for alphas in (sweeps.parse_values("0.05:2.5:0.005", "α"),
                   [Fraction(10**18 + k * 10**15, 10**18) for k in range(-300, 300, 7)]):
        alphas = tuple(sorted(set(alphas) | {Fraction(1)}))
        expected: dict[tuple[int, ...], list[int]] = {}
        for i, a in enumerate(alphas):
            key = tuple(rule.width(c, a if floor is None else max(a, floor))
                        for rule, c, floor in sites)
            expected.setdefault(key, []).append(i)
        groups, _ = sweeps._alpha_groups(spec, alphas)
        assert sorted(groups) == sorted(expected.values())


def _brute_frontier(cost, capacity, keep):
    on = np.zeros(keep.shape, dtype=bool)
    on[keep] = sweeps.pareto(cost[keep], capacity[keep])
    return on


def test_frontier_candidates_leave_out_only_beaten_points(monkeypatch):
    rng = np.random.default_rng(7)
    for trial in range(40):
        num = np.cumsum(rng.integers(1, 4, int(rng.integers(1, 30))))  # α over one den
        res = np.cumsum(rng.integers(1, 4, int(rng.integers(1, 30))))
        capacity = num[:, None] * res[None, :]  # equal across rows: 2·6 = 3·4
        cost = rng.integers(0, 12, capacity.shape) * (capacity // 3 + 1)  # many ties
        if trial % 2:
            cost = cost / 7.0  # latency is a float cost
        keep = rng.random(capacity.shape) < 0.8
        monkeypatch.setattr(sweeps, "BLOCK_CELLS", int(rng.integers(1, 100)))
        for bits in (0, 1, 4, 16):
            maybe = sweeps._candidates(cost, num, res, keep, bits)
            on = np.zeros(capacity.shape, dtype=bool)
            on[maybe] = sweeps.pareto(cost[maybe], capacity[maybe])
            assert (on == _brute_frontier(cost, capacity, keep)).all(), (trial, bits)


def _brute_undominated(rows):
    return [r for i, r in enumerate(rows)
            if not any((s >= r).all() and ((s != r).any() or j < i) for j, s in enumerate(rows)
                       if j != i)]


def test_live_rows_that_can_hold_the_peak():
    rng = np.random.default_rng(3)
    for _ in range(60):
        rows = rng.integers(0, 4, (int(rng.integers(0, 25)), 3))
        got = sweeps._undominated(rows)
        assert got.tolist() == [r.tolist() for r in _brute_undominated(rows)]


def test_many_live_rows_and_large_grids_give_the_same_counts(monkeypatch):
    # too many rows to compare all with all, and products taken a few rows at a time
    args = ("mobilenet_v2", ["0.35", "0.5", "1.0"], [96, 160, 224])
    expected = sweep(*args)
    monkeypatch.setattr(sweeps, "PAIRWISE", 1)
    monkeypatch.setattr(sweeps, "PRODUCT_CELLS", 1)
    result = sweep(*args)
    for field in ("macs", "params", "memory"):
        assert (getattr(result, field) == getattr(expected, field)).all(), field


def test_counts_past_2_53_are_exact():
    # past 2⁵³ float64 products round, so the sweep multiplies in int64 there:
    # 3·3·1000·1,000,000·4096² = 150,994,944,000,000,000 MACs in the second conv
    spec = sweeps_spec("name: big\nsource: t\ninput: {size: 8}\nclasses: 10\nlayers:\n"
                       "  - conv: {c: 1000, k: 3}\n  - conv: {c: 1000000, k: 3}\n")
    result = sweep(spec, [1], [4096])
    report = count(build(spec, Fraction(1), (4096, 4096)), TORCH)
    assert report.macs > 2**53
    assert int(result.macs[0, 0]) == report.macs == 3 * 3 * 3 * 1000 * 4096**2 + \
        150_994_944_000_000_000
    assert int(result.memory[0, 0]) == report.peak_bytes


RESIDUAL_STRIDES = """
  - conv: {c: 8, k: 3, s: 2, padding: 1}
  - conv: {c: 8, k: 3, s: 2, padding: 1}
  - conv: {c: 8, k: 3, s: 2, padding: 1}
  - conv: {c: 16, k: 3, s: 2, padding: 1}
  - residual: {from: input, proj: conv}
  - pool: {op: max, k: 16, s: 16, from: input, name: pooled}
  - concat: {from: [residual1, pooled]}
  - conv: {c: 16, k: 5, padding: valid}
  - global_pool: {}
  - fc: {c: classes}
"""


def test_resolutions_are_classed_from_any_network_that_builds(spec_file):
    # the residual's 1×1 projection reaches ⌈R/16⌉ from R at every R (its stride
    # ⌈R/⌈R/16⌉⌉ changes with R: 2 at R = 2, 16 at 80); the concat needs ⌈R/16⌉ = ⌊R/16⌋,
    # so 16 | R, and the valid 5×5 collapses below 80: 8 of 1..200 build, neither end.
    # The search tries 200, 1, then 128 (R divisible by the highest power of two), and
    # that network classes the rest: a dozen builds (trying from the top down took 32);
    # every point is count's
    spec = load_spec(str(spec_file(RESIDUAL_STRIDES.lstrip("\n"))))
    res = list(range(1, 201))
    result = sweep(spec, [Fraction(1)], res)
    for j, r in enumerate(res):
        assert swept(result, 0, j) == counted(spec, Fraction(1), r), r
    assert result.resolutions[result.valid[0]].tolist() == list(range(80, 193, 16))
    assert result.builds <= 16
