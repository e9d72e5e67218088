"""Detection specs: a backbone taken from another spec, extra layers, SSD predictors."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from macscalc import PARAM_CONVENTIONS, Convention, build, count, load_spec, parse
from macscalc.analysis.memory import tensors
from macscalc.cli import app
from macscalc.core.errors import MacscalcError

runner = CliRunner()


def test_base_rows_stop_at_until_and_are_marked_backbone():
    net = build(load_spec("ssdlite_mobilenet_v2"))
    names = [n.name for n in net.nodes]
    assert "pw1/pw" in names and "global_pool1" not in names  # V2's classifier is cut
    assert all(n.base for n in net.nodes[: names.index("pw1/pw.relu6") + 1])
    assert not any(n.base for n in net.nodes[names.index("pw1/pw.relu6") + 1:])


def test_feature_maps_at_320_and_300():
    for res, sides in ((320, [20, 10, 5, 3, 2, 1]), (300, [19, 10, 5, 3, 2, 1])):
        net = build(load_spec("ssdlite_mobilenet_v2"), Fraction(1), (res, res))
        boxes = [n for n in net.nodes if n.name.endswith("/box")]
        assert [n.in_shapes[0].h for n in boxes] == sides
    taps = {n.name: n for n in build(load_spec("ssdlite_mobilenet_v2")).nodes}
    # layer_15/expansion_output: 96·6 = 576 channels at output stride 16
    assert taps["ssd_predictor1/box_dw"].in_shapes[0] == (20, 20, 576)


def test_ssdlite_predictor_arithmetic():
    report = count(build(load_spec("ssdlite_mobilenet_v2"), Fraction(1), None, 81),
                   Convention(PARAM_CONVENTIONS["weights+biases"]))
    by = {lc.node.name: lc for lc in report.layers}
    # first map 20×20×576, 3 anchors: box 1×1 to 3·4, class 1×1 to 3·81, both with biases
    assert by["ssd_predictor1/box"].macs == 20 * 20 * 576 * 12
    assert by["ssd_predictor1/class"].params.weights == 576 * 243
    assert by["ssd_predictor1/class"].params.biases == 243
    assert by["ssd_predictor1/box_dw"].macs == 20 * 20 * 576 * 9
    kinds = {k.label for k in report.by_kind()}
    assert {"extra layers", "box predictor", "class predictor"} <= kinds


def test_ssd_v1_uses_1x1_predictors():
    net = build(load_spec("ssd_mobilenet_v1"))
    box = next(n for n in net.nodes if n.name.endswith("/box"))
    assert box.layer.k == (1, 1) and box.in_shapes[0] == (19, 19, 512)


def test_detection_taps_stay_alive_until_their_predictor():
    net = build(load_spec("ssdlite_mobilenet_v2"))
    life = {t.name: t for t in tensors(net)}
    tap = life["ir6_1/expand"]
    readers = [i for i, n in enumerate(net.nodes) if "ir6_1/expand.relu6" in n.inputs]
    backbone_end = max(i for i, n in enumerate(net.nodes) if n.base)
    # read by ir6_1's depthwise inside the backbone, then again by the first predictor
    assert tap.last == max(readers) > backbone_end


HEAD = "name: d\nsource: test\ninput: {size: 64}\nclasses: 5\n"


def test_unknown_until_is_located_at_the_base_key():
    spec = parse(HEAD + "base: {spec: mobilenet_v2, until: nowhere}\nlayers:\n"
                 "  - flatten: {}\n", "d.yaml")
    with pytest.raises(MacscalcError) as e:
        build(spec)
    assert str(e.value) == "d.yaml:5:35: base spec 'mobilenet_v2' has no layer named 'nowhere'"


def test_unknown_base_spec_is_located():
    with pytest.raises(MacscalcError) as e:
        parse(HEAD + "base: {spec: mobilenet_v9, until: pw18}\nlayers:\n  - flatten: {}\n",
              "d.yaml")
    assert str(e.value).startswith("d.yaml:5:14: base spec: no spec file or built-in spec "
                                   "named 'mobilenet_v9'")


def test_table_detection_json():
    result = runner.invoke(app, ["table", "detection", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {(r["source"], r["model"]): r for r in json.loads(result.stdout)["rows"]}
    t6 = rows[("arXiv:1801.04381 Table 6", "MNet V2 + SSDLite")]
    # 80 classes + background: 788,830,144 MACs and 4,286,261 params (weights + biases)
    assert (t6["macs"], t6["params"], t6["published_macs"], t6["macs_unit"]) == (
        788_830_144, 4_286_261, "0.8", "G")
    assert t6["macs_agrees"] and t6["params_agrees"]
    assert rows[("arXiv:1704.04861 Table 13 (SSD 300)", "SSD 300 MobileNet")]["params_agrees"]
