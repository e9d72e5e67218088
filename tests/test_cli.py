"""The commands end to end: what a person and a program read."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

from typer.testing import CliRunner

from macscalc.cli import app
from macscalc.lang.spec import builtin_names

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def count_report(*args: str) -> dict:
    """The one report of ``count ... --format json``, checked for its envelope."""
    data = json.loads(run("count", *args, "--format", "json"))
    assert (data["schema_version"], data["kind"], len(data["reports"])) == (1, "count", 1)
    return data["reports"][0]


def test_table_v1_alpha_res_selects_one_row():
    data = json.loads(run("table", "v1", "--alpha", "0.5", "--res", "160", "--format", "json"))
    assert data["schema_version"] == 1
    (row,) = data["rows"]
    # slim README: MobileNet_v1_0.50_160 77 M MACs, 1.34 M params, 59.9 / 82.5
    assert (row["model"], row["macs"], row["params"]) == ("v1_0.5_160", 76_525_312, 1_337_577)
    assert (row["published_macs"], row["macs_agrees"], row["params_agrees"]) == ("77", True,
                                                                                   True)
    assert (row["accuracy"], row["metric"], row["top5"]) == ("59.9", "top-1", "82.5")
    # the V1 paper's Table 9 gives 76 for the same model: computed 76.52 M does not cut to it
    (paper,) = row["other_sources"]
    assert (paper["ref"], paper["published_macs"], paper["macs_agrees"]) == ("Table 9", "76",
                                                                               False)


def test_table_v1_terminal_shows_marks_and_mismatch_notes():
    text = run("table", "v1")
    # three decimals: at two, 149,497,600 MACs would show as 149.50 beside slim's 150
    assert "v1_0.75_224   325.401   317  ✗" in text
    assert "v1_0.5_224    149.498   150  ✗" in text
    assert ("v1_0.75_224: mismatch: published 317 M MACs, computed 325.401 M; agrees with the "
            "computation: MobileNet V1 paper Table 6 (325 M MACs, 2.6 M params)") in text
    assert "v1_0.25_192: mismatch: published 34 M MACs, computed 30.213 M" in text


def test_table_off_grid_point_is_computed_and_marked():
    data = json.loads(run("table", "v2", "--alpha", "0.6", "--res", "224", "--format", "json"))
    (row,) = data["rows"]
    assert (row["model"], row["on_grid"], row["published_macs"]) == ("v2_0.6_224*", False, None)
    # computed under the slim table's convention: 1001 classes, weights + biases
    same = count_report("mobilenet_v2", "--alpha", "0.6", "--classes", "1001", "--params",
                        "weights+biases")["totals"]
    assert (row["macs"], row["params"]) == (same["macs"], same["params"])
    assert "* off the published grid" in " ".join(data["notes"])


def test_table_alpha_off_grid_spans_published_resolutions():
    data = json.loads(run("table", "v2", "--alpha", "0.6", "--format", "json"))
    assert [r["res"] for r in data["rows"]] == [224, 192, 160, 128, 96]


def test_table_max_macs_keeps_rows_under_budget_best_first():
    data = json.loads(run("table", "v2", "--max-macs", "100M", "--format", "json"))
    assert all(r["macs"] <= 100_000_000 for r in data["rows"])
    top1 = [float(r["accuracy"]) for r in data["rows"]]
    assert top1 == sorted(top1, reverse=True)
    # slim README: 0.5_224 (65.4 %, 97 M) edges out 1.0_128 (65.3 %, 99 M)
    assert [r["model"] for r in data["rows"][:2]] == ["v2_0.5_224", "v2_1.0_128"]


def test_table_csv_and_markdown():
    rows = list(csv.DictReader(io.StringIO(run("table", "v2", "--res", "96", "-f", "csv"))))
    assert [r["model"] for r in rows] == ["v2_1.0_96", "v2_0.75_96", "v2_0.5_96", "v2_0.35_96"]
    assert rows[0]["macs"] == "56290432" and rows[0]["latency_pixel1_ms"] == "17.6"
    md = run("table", "v2", "--alpha", "1.4", "-f", "markdown")
    assert "| v2_1.4_224 | 582.20 | 582 | ✓ | 6.063 | 6.06 | ✓ | 75.0 | 92.5 | 138.0 |" in md


def test_count_json_is_exact_and_names_its_convention():
    data = count_report("mobilenet_v2", "--count", "add",
                          "--flops")
    t = data["totals"]
    assert (t["macs"], t["params"]) == (300_774_272, 3_504_872)  # torchvision
    assert t["params_parts"]["bn_stats"] == 34_112
    # 10 residual adds: 2×56²×24... summed exactly
    assert t["extra_ops"]["add"]["counted"] is True
    assert t["flops"] == 2 * t["macs"] + t["extra_ops"]["add"]["ops"]
    assert data["convention"]["params"] == "torch"
    assert data["settings"] == {"alpha": "1.0", "resolution": [224, 224], "classes": 1000,
                                "rounding": "make_divisible_8"}
    assert len(data["layers"]) == 152
    assert sum(layer["macs"] for layer in data["layers"]) == t["macs"]


def test_count_residual_adds_are_where_slim_puts_them():
    data = count_report("mobilenet_v2")
    adds = [layer["name"] for layer in data["layers"] if layer["kind"] == "add"]
    assert adds == ["ir2_2/add", "ir3_2/add", "ir3_3/add", "ir4_2/add", "ir4_3/add",
                    "ir4_4/add", "ir5_2/add", "ir5_3/add", "ir6_2/add", "ir6_3/add"]
    # 56²·24 + 2·28²·32 + 3·14²·64 + 2·14²·96 + 2·7²·160 elements, one add each
    assert sum(layer["out_shape"][0] * layer["out_shape"][1] * layer["out_shape"][2]
               for layer in data["layers"] if layer["kind"] == "add") == (
        56 * 56 * 24 + 2 * 28 * 28 * 32 + 3 * 14 * 14 * 64 + 2 * 14 * 14 * 96 + 2 * 7 * 7 * 160)


def test_count_v1_checks_the_papers_table_2():
    data = count_report("mobilenet_v1")
    rows = {r["type"]: r for r in data["paper_split"]["rows"]}
    assert (rows["Conv 1×1"]["macs_pct"], rows["Conv 1×1"]["macs_agrees"]) == ("94.86", True)
    assert (rows["Conv 3×3"]["macs_pct"], rows["Conv 3×3"]["paper_macs_pct"]) == ("1.91", "1.19")
    assert rows["Conv 3×3"]["macs_agrees"] is False
    assert all(r["params_agrees"] for r in rows.values())
    assert data["paper_split"]["paper_macs_sum"] == "99.29"


def test_count_split_only_at_the_papers_setting():
    data = count_report("mobilenet_v1", "--res", "160")
    assert "paper_split" not in data


def test_count_table_and_csv():
    text = run("count", "mobilenet_v1", "--params", "weights+biases")
    assert "MACs: 568,740,352 (568.74 M)" in text
    assert "params = weights+biases" in text
    rows = list(csv.DictReader(io.StringIO(run("count", "mobilenet_v1", "-f", "csv"))))
    assert rows[0]["name"] == "conv1/conv" and rows[0]["macs"] == "10838016"
    assert rows[0]["out_shape"] == "112×112×32"


def test_count_switched_ops_never_enter_macs():
    plain = count_report("mobilenet_v2")
    all_ops = count_report("mobilenet_v2", "--count", "all")
    assert plain["totals"]["macs"] == all_ops["totals"]["macs"]
    ops = all_ops["totals"]["extra_ops"]
    assert all(v["counted"] for v in ops.values())
    assert all_ops["totals"]["flops"] == 2 * plain["totals"]["macs"] + sum(
        v["ops"] for v in ops.values())
    # BN: 2 ops per element of every BN output; 17,056 BN channels... checked per layer
    bn = sum(2 * x["out_shape"][0] * x["out_shape"][1] * x["out_shape"][2]
             for x in all_ops["layers"] if x["kind"] == "batchnorm")
    assert ops["bn"]["ops"] == bn


def test_output_file_is_written_whole(tmp_path):
    out = tmp_path / "r.md"
    run("count", "mobilenet_v2", "-f", "markdown", "-o", str(out))
    text = out.read_text(encoding="utf-8")
    assert text.startswith("## MobileNet V2")
    # conv 864 weights + BN γ/β 64 (torch convention), 10,838,016 / 300,774,272 = 3.60 %
    assert ("| 0 | conv1/conv | conv2d+bn+relu6 | 224×224×3 | 112×112×32 | 3×3/2 | 10,838,016 "
            "| 928 | 3.60 |") in text


def test_specs_lists_builtins_with_sources():
    data = json.loads(run("specs", "-f", "json"))
    names = [s["name"] for s in data["specs"]]
    assert names == builtin_names() and names == sorted(names)
    assert {"mobilenet_v2", "resnet50", "ghostnet_100", "ssdlite_mobilenet_v2"} <= set(names)
    v2 = data["specs"][names.index("mobilenet_v2")]
    assert v2["source"].startswith("arXiv:1801.04381 Table 2")


def test_python_dash_m_and_help():
    result = subprocess.run([sys.executable, "-m", "macscalc", "--help"], capture_output=True,
                            text=True, check=True)
    assert "count" in result.stdout and "table" in result.stdout


def test_count_and_table_do_not_import_numpy():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom macscalc.cli import app\n"
            "r = CliRunner()\n"
            "assert r.invoke(app, ['count', 'mobilenet_v2']).exit_code == 0\n"
            "assert r.invoke(app, ['table', 'v2']).exit_code == 0\n"
            "print('numpy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_table_micronet_sets_mobilenet_v3_beside_at_matched_madds():
    data = json.loads(run("table", "micronet", "-f", "json"))
    assert [r["model"] for r in data["rows"]] == ["M0", "M1", "M2", "M3"]
    assert data["rows"][2]["macs"] == 12_743_440  # conv/FC MACs + shift-max fusion
    order = [(e["model"], e["accuracy"]) for e in data["comparison"]]
    # arXiv:2108.05894: MicroNet-M2 59.4 % at 12 M against MobileNetV3 49.8 % at 12 M
    assert order[2:4] == [("M2", "59.4"), ("V3-Small_0.35", "49.8")]


def test_count_micronet_splits_cost_by_block_part():
    data = count_report("micronet_m0", "--count", "shiftmax")
    kinds = {k["kind"]: k for k in data["by_kind"]}
    assert list(kinds) == ["conv 3×1", "bn", "dw 1×3", "micro dw", "micro pw", "dyshiftmax",
                           "fc"]
    # the classifier: SwishLinear 384→640 and 640→1000 (sources.md §4: 885,760)
    assert kinds["fc"]["macs"] == 885_760
    # generator FCs 104,496 MACs + fusion 605,248 multiply-adds
    assert (kinds["dyshiftmax"]["macs"], kinds["dyshiftmax"]["madds"]) == (104_496, 709_744)
    assert sum(k["madds"] for k in kinds.values()) == 4_054_128


def test_version_and_shell_completion():
    assert run("--version") == "macscalc 0.1.0\n"
    help_text = run("--help")
    assert "--install-completion" in help_text and "--show-completion" in help_text


def test_table_help_lists_every_family():
    help_text = " ".join(run("table", "--help").split())  # as wrapped to the terminal
    assert ("FAMILY Published family: detection, hybrid, micronet, segmentation, v1, v2, v3, "
            "zoo." in help_text)


def test_table_detection_with_no_matching_row_is_an_error():
    result = runner.invoke(app, ["table", "detection", "--alpha", "0.5"])
    assert result.exit_code == 2
    # detection.yaml: every row is at α 1.0, SSD 300 at 300×300, SSD512 at 512×512 and the
    # rest at 320×320
    assert result.stderr == ("error: no SSD and SSDLite detectors row matches these options; "
                             "the published rows are at α 1.0 at 300, α 1.0 at 320, α 1.0 at "
                             "416, α 1.0 at 512\n")


def test_off_grid_rows_are_named_like_the_published_ones():
    data = json.loads(run("table", "v3", "--alpha", "0.5", "-f", "json"))
    # v3.yaml names its rows large_0.75, small_1.0, large_minimal_1.0 …
    assert [r["model"] for r in data["rows"]] == ["large_0.5_224*", "small_0.5_224*",
                                                  "large_minimal_0.5_224*",
                                                  "small_minimal_0.5_224*"]


def test_detection_accuracy_is_map_in_table_pick_and_csv():
    text = run("pick", "--family", "detection")
    assert text.splitlines()[3].split()[:7] == ["#", "model", "family", "MACs", "(M)", "params",
                                                "(M)"]
    assert " mAP " in text.splitlines()[3] and "top-1" not in text
    header = run("pick", "--family", "detection", "-f", "csv").splitlines()[0]
    assert header == ("rank,model,family,macs,params,weight_bytes,accuracy (mAP),frontier,"
                      "source")
    assert run("table", "detection", "-f", "csv").splitlines()[0].split(",")[7] == (
        "accuracy (mAP)")


def test_pick_ranks_classifiers_and_detectors_apart_with_each_latency_source():
    data = json.loads(run("pick", "--device", "pixel1", "-f", "json"))
    detectors = [c for c in data["candidates"] if c["metric"] == "mAP"]
    # arXiv:1801.04381 Table 6: SSD512 26.8 mAP and SSD300 23.2 (no latency), SSDLite on V1
    # 22.2 (270 ms), on V2 22.1 (200 ms), YOLOv2 21.6
    assert [(c["rank"], c["model"], c["latency_ms"]) for c in detectors] == [
        (1, "SSD512", None), (2, "SSD300", None), (3, "MNet V1 + SSDLite", "270"),
        (4, "MNet V2 + SSDLite", "200"), (5, "YOLOv2", None)]
    assert data["candidates"][0]["rank"] == 1 and data["candidates"][0]["metric"] == "top-1"
    # slim V2 and the V2 paper measured on a Pixel 1 CPU, slim V3 on a Pixel 1
    # pixel1 is also a device profile: the published figures win, the rest are estimated
    assert ("Latency on pixel1: Pixel 1 CPU (detection, v2); Pixel 1 (v3), as published where "
            "it is; elsewhere estimated (est. ms) by profile pixel1") in run("pick", "--device",
                                                                               "pixel1")


def test_csv_cells_are_plain_numbers_with_units_in_the_header():
    rows = list(csv.reader(io.StringIO(run("compare", "mobilenet_v2",
                                           "mobilenet_v2 --res 160", "-f", "csv"))))
    assert rows[0][:4] == ["number", "variant", "macs", "macs_delta_pct"]
    assert rows[2][3] == "-48.77"  # torchvision: 154,083,200 / 300,774,272 − 1
    for args in (["table", "v2"], ["memory", "mobilenet_v2"], ["explain", "scaling",
                                                                "mobilenet_v2"]):
        for row in csv.reader(io.StringIO(run(*args, "-f", "csv"))):
            assert not any(cell.endswith(" %") for cell in row), (args, row)
    assert run("memory", "mobilenet_v2", "-f", "csv").splitlines()[0] == (
        "resolution,channels,elements,bytes (fp16),layer,streamed_elements,"
        "streamed_bytes (fp16),streamed_layer")


def test_weights_in_bytes_at_the_dtype():
    # torchvision mobilenet_v2: 3,504,872 params; α 0.5: 1,968,680
    assert "weights: 14,019,488 bytes (14.02 MB) at fp32: 3,504,872 params × 4" in run(
        "count", "mobilenet_v2")
    totals = count_report("mobilenet_v2", "--dtype", "fp16")["totals"]
    assert totals["weight_bytes"] == 2 * 3_504_872
    data = json.loads(run("compare", "mobilenet_v2", "mobilenet_v2 --alpha 0.5", "--dtype",
                          "int8", "-f", "json"))
    assert [t["weight_bytes"] for t in data["totals"]] == [3_504_872, 1_968_680]


def test_pick_max_size_limits_the_weights():
    data = json.loads(run("pick", "--family", "v2", "--max-size", "2MB", "--dtype", "int8",
                          "-f", "json"))
    # slim V2 params (1001 classes, weights + biases): α 0.5 1,951,417 ≤ 2 MB at int8; α 0.75
    # (2.6 M) is over
    assert {c["alpha"] for c in data["candidates"]} == {"0.5", "0.35"}
    assert data["candidates"][0]["weight_bytes"] == 1_951_417


def test_count_sets_torchvision_file_sizes_beside_the_count():
    report = count_report("mobilenet_v2")
    first = report["weight_files"][0]
    # torchvision meta["_file_size"] 13.555 (MiB) for MobileNet_V2.IMAGENET1K_V1; the file
    # holds 3,504,872 params + 34,112 BN running statistics = 3,538,984 fp32 numbers
    assert (first["weights"], first["bytes"], first["stored_bytes"]) == (
        "MobileNet_V2.IMAGENET1K_V1", 14_213_448, 3_538_984 * 4)
    text = run("count", "mobilenet_v2")
    assert "3,538,984 numbers, 14,155,936 bytes (13.500 MiB); the other 58–103 kB are " \
           "serialization" in text
    assert "weight_files" not in count_report("mobilenet_v2", "--alpha", "0.5")
