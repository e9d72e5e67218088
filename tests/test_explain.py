"""macscalc explain: every number, exact fractions where the formula is exact."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from macscalc.cli import app

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(app, ["explain", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def run_json(*args: str) -> dict:
    return json.loads(run(*args, "--format", "json"))


def test_dwsep_reproduces_the_v1_papers_table_3():
    # arXiv:1704.04861 Table 3 (Dk 3, M = N = 512, Df 14): convolution 462 M Mult-Adds,
    # 2.36 M params; depthwise separable 52.3 M, 0.27 M
    data = run_json("dwsep")
    assert (data["standard"]["macs"], data["standard"]["params"]) == (462_422_016, 2_359_296)
    sep_macs = data["depthwise"]["macs"] + data["pointwise"]["macs"]
    sep_params = data["depthwise"]["params"] + data["pointwise"]["params"]
    assert (sep_macs, sep_params) == (903_168 + 51_380_224, 4_608 + 262_144)
    # 1/512 + 1/9 = (9 + 512) / 4608
    assert data["ratio"] == data["one_over_n_plus_one_over_k2"] == "521/4608"


def test_dwsep_text_shows_symbols_numbers_and_the_grid():
    text = run("dwsep", "--cin", "32", "--cout", "64", "--k", "3", "--size", "112",
               "--stride", "2")
    assert "standard      Dk·Dk·M·N·Df·Df = 3·3·32·64·56·56 = 57,802,752 MACs" in text
    assert "1/N + 1/Dk²   1/64 + 1/9 = 73/576 = 0.126736" in text
    assert "3  0.1111  0.1736  0.1267  0.1150  0.1121" in text


def test_bottleneck_cost_equals_the_papers_formula():
    data = run_json("bottleneck", "--cin", "24", "--cout", "24", "--t", "6", "--size", "56")
    # 56·56·24·6·(24 + 9 + 24)
    assert data["macs"]["total"] == 56 * 56 * 24 * 6 * (24 + 9 + 24)
    assert data["macs"]["v1_block"] == 56 * 56 * 24 * (9 + 24)
    expanded = data["tensors"][1]
    assert (expanded["elements"], expanded["bytes"]) == (56 * 56 * 144, 2 * 56 * 56 * 144)


def test_bottleneck_with_stride_computes_depthwise_and_projection_at_the_output():
    data = run_json("bottleneck", "--cin", "16", "--cout", "24", "--size", "112",
                    "--stride", "2", "--dtype", "int8")
    assert data["macs"] == {"expand": 112 * 112 * 16 * 96, "depthwise": 56 * 56 * 96 * 9,
                            "project": 56 * 56 * 96 * 24,
                            "total": 112 * 112 * 16 * 96 + 56 * 56 * 96 * (9 + 24),
                            "v1_block": 56 * 56 * 16 * (9 + 24)}


def test_micro_factorization_cost_and_connectivity():
    data = run_json("micro", "--channels", "64", "--ratio", "4", "--groups", "4,4")
    assert (data["dense_weights"], data["factorized_weights"], data["ratio"]) == (4096, 512,
                                                                                  "1/8")
    assert (data["reach_min"], data["reach_max"]) == (64, 64)  # G1·G2 = 16 = C/R
    reach = {g["g"]: g["reach"] for g in data["groups"]}
    assert reach == {1: "64–64", 2: "64–64", 4: "64–64", 8: "16–16", 16: "4–4"}


def test_micro_text_has_the_depthwise_factorization():
    text = run("micro", "--k", "5")
    assert "k×1 then 1×k    2k = 10: ratio 2/k = 2/5 = 0.4000" in text


def test_scaling_shows_where_rounding_leaves_alpha2_rho2():
    data = run_json("scaling", "mobilenet_v2", "--alpha", "0.5", "--res", "160")
    assert data["rho"] == "5/7" and data["alpha2_rho2"] == "25/196"
    # torchvision mobilenet_v2 at 224: 300,774,272; width_mult=0.5 at 160: 50,184,000
    assert (data["macs"], data["scaled_macs"]) == (300_774_272, 50_184_000)
    assert data["total_ratio"] == "784125/4699598"  # 50,184,000 / 300,774,272 reduced
    rows = {r["layer"]: r for r in data["layers"]}
    assert (rows["ir2_2/expand"]["law"], rows["ir2_2/expand"]["off_pct"]) == ("α²·ρ²", "77.8")
    assert rows["ir2_2/expand"]["why"] == "cin 24→16 not 12; cout 144→96 not 72"
    assert rows["pw1/pw"]["why"] == "cout kept at 1280"
    assert (rows["fc1/fc"]["law"], rows["fc1/fc"]["actual"]) == ("α", "1.0000")


def test_layer_formula_with_numbers():
    text = run("mobilenet_v1", "--layer", "dwsep9/pw")
    assert ("MACs        kh·kw·(cin/groups)·cout·hout·wout = 1·1·1024·1024·7·7 = 51,380,224"
            in text)
    md = run("mobilenet_v1", "--layer", "conv1", "--format", "markdown")
    assert md.startswith("## MobileNet V1: conv1 (α 1.0, 224×224)\n\n```text\n")


def test_layer_unknown_name_suggests():
    result = runner.invoke(app, ["explain", "mobilenet_v1", "--layer", "dwsep9/pww"])
    assert result.exit_code == 2
    assert result.stderr == ("error: no layer or block named 'dwsep9/pww' in mobilenet_v1; "
                             "did you mean 'dwsep9/pw'?\n")


def test_bad_micro_groups():
    result = runner.invoke(app, ["explain", "micro", "--channels", "64", "--ratio", "4",
                                 "--groups", "3,4"])
    assert result.exit_code == 2
    assert result.stderr == "error: G1 = 3 must divide both C = 64 and C/R = 16\n"


def test_an_unknown_topic_is_named_with_the_topics():
    result = runner.invoke(app, ["explain", "dwsepp"])
    assert result.exit_code == 2
    assert result.stderr == ("error: unknown topic 'dwsepp'; did you mean 'dwsep'? (topics: "
                             "dwsep, bottleneck, micro, scaling, latency; or SPEC --layer NAME)\n")


def test_bottleneck_expansion_ratio_must_be_positive():
    result = runner.invoke(app, ["explain", "bottleneck", "--t", "0"])
    assert result.exit_code == 2
    assert result.stderr == ("error: the expansion ratio --t must be a positive number up to "
                             "1000 (at most 6 decimals), got '0'\n")
