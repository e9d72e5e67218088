"""ONNX to spec (``macscalc import``) and spec against model (``check --against``)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

pytest.importorskip("onnx", reason="the ONNX tests need the onnx extra: "
                    "pip install 'macscalc[onnx]'")

from typer.testing import CliRunner  # noqa: E402

from macscalc import PARAM_CONVENTIONS, Convention, build, count, load_spec  # noqa: E402
from macscalc.cli import app  # noqa: E402
from macscalc.lang.spec_writer import repeats, rows, spec_text  # noqa: E402
from macscalc.models.onnx.reader import read_network  # noqa: E402
from tests.onnx_build import G  # noqa: E402

runner = CliRunner()
ALL = Convention(PARAM_CONVENTIONS["all"])


def resnet_like(tmp_path: Path, folded: bool = False, blocks: int = 3) -> Path:
    """A stem, ``blocks`` identical residual blocks, a 1×1 branch concatenated, a head.

    On 16×16×3: stem 3×3/2 3→16 (8×8): 3·3·3·16·64 = 27,648 MACs; each block two 3×3
    16→16 convs: 2·9·16·16·64 = 294,912; the branch 1×1 16→8: 16·8·64 = 8,192; the
    head 24→10: 240. Total 27,648 + 294,912·blocks + 8,192 + 240.
    """
    g = G(("N", 3, 16, 16))

    def cbr(x, cin, cout, k, s, name, act=True):
        x = g.conv(x, cin, cout, k, s, bias=folded, name=f"/{name}/conv/Conv")
        if not folded:
            x = g.bn(x, cout, name=f"/{name}/bn/BatchNormalization")
        return g.node("Relu", [x], name=f"/{name}/relu/Relu") if act else x

    x = cbr("x", 3, 16, 3, 2, "stem")
    for i in range(blocks):
        y = cbr(x, 16, 16, 3, 1, f"layer1/layer1.{i}/a")
        y = cbr(y, 16, 16, 3, 1, f"layer1/layer1.{i}/b", act=False)
        x = g.node("Relu", [g.node("Add", [y, x], name=f"/layer1/layer1.{i}/Add")],
                   name=f"/layer1/layer1.{i}/relu/Relu")
    b = cbr(x, 16, 8, 1, 1, "branch")
    x = g.node("Concat", [x, b], axis=1, name="/cat/Concat")
    x = g.node("GlobalAveragePool", [x])
    x = g.node("Flatten", [x], axis=1)
    x = g.node("Gemm", [x, g.init((10, 24)), g.init((10,))], transB=1, name="/fc/Gemm")
    return g.save(tmp_path / "net.onnx", x)


MACS = {3: 27648 + 294912 * 3 + 8192 + 240, 2: 27648 + 294912 * 2 + 8192 + 240}


@pytest.mark.parametrize("folded", [False, True])
def test_written_spec_counts_like_the_model(tmp_path, folded):
    p = resnet_like(tmp_path, folded)
    net = read_network(str(p))
    spec_path = tmp_path / "net.yaml"
    spec_path.write_text(spec_text(net), encoding="utf-8")
    spec = load_spec(str(spec_path))
    a, b = count(net, ALL), count(build(spec), ALL)
    assert a.macs == b.macs == MACS[3]
    assert a.param_parts == b.param_parts
    assert a.ops_by_category == b.ops_by_category
    assert a.memory[0].elements == b.memory[0].elements


def test_written_spec_reads_like_a_table(tmp_path):
    text = spec_text(read_network(str(resnet_like(tmp_path))))
    assert text.splitlines()[3:] == [
        'notes: "ONNX export: batch norm kept (8 BatchNormalization nodes)"',
        "input: {size: 16, channels: 3}",
        "classes: 10",
        "rounding: make_divisible_8        # how α rounds every width of this imported network",
        "blocks:             # repeated row sequences of the model",
        "  layer1:",
        "    layers:",
        "      - conv: {c: 16, k: 3, bn: true, act: relu, name: a.conv}",
        "      - conv: {c: 16, k: 3, bn: true, name: b.conv}",
        "      - add: {name: add, from: input}",
        "      - act: {fn: relu, name: relu}",
        "layers:",
        "  - conv: {c: 16, k: 3, s: 2, bn: true, act: relu, name: stem.conv}",
        "  - layer1: {n: 3, name: layer1}  # 3 × 4 rows",
        "  - pw: {c: 8, bn: true, act: relu, name: branch.conv}",
        "  - concat: {name: cat.concat, from: [layer1, branch.conv]}",
        "  - global_pool: {name: globalaveragepool69}",
        "  - flatten: {name: flatten70}",
        "  - fc: {c: classes, name: fc}",
    ]


def test_alpha_applies_to_an_imported_spec(tmp_path):
    net = read_network(str(resnet_like(tmp_path, blocks=2)))
    spec_path = tmp_path / "net.yaml"
    spec_path.write_text(spec_text(net), encoding="utf-8")
    half = count(build(load_spec(str(spec_path)), Fraction(1, 2)), ALL)
    # α 0.5, make_divisible_8: 16 → 8, 8 → 8 (never below 8). Stem 3·3·3·8·64 = 13,824;
    # blocks 2·2·9·8·8·64 = 147,456; branch 8·8·64 = 4,096; head (8 + 8)·10 = 160
    assert half.macs == 13824 + 147456 + 4096 + 160


def test_repeats_of_row_sequences(tmp_path):
    rs = rows(read_network(str(resnet_like(tmp_path))))
    assert repeats(rs) == [(1, 4, 3)]


def test_import_cli(tmp_path):
    p = resnet_like(tmp_path)
    out = tmp_path / "spec.yaml"
    result = runner.invoke(app, ["import", str(p), "-o", str(out), "--rounding", "slim_v1"])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"wrote {out}: a spec with slim_v1 rounding (how --alpha rounds " \
                            "its widths; --rounding to change)\n"
    counted = json.loads(runner.invoke(app, ["count", str(out), "-f", "json"]).stdout)
    assert counted["reports"][0]["totals"]["macs"] == MACS[3]
    assert runner.invoke(app, ["import", "specs/mobilenet_v2.yaml"]).exit_code == 2


# -- check --against ----------------------------------------------------------------------

def test_spec_matches_its_model_bn_folded_or_not(tmp_path):
    p = resnet_like(tmp_path, folded=False)
    spec = tmp_path / "net.yaml"
    spec.write_text(spec_text(read_network(str(p))), encoding="utf-8")
    folded = resnet_like(tmp_path / "f" if (tmp_path / "f").mkdir() is None else tmp_path,
                         folded=True)
    for model in (p, folded):
        result = runner.invoke(app, ["check", str(spec), "--against", str(model)])
        assert result.exit_code == 0, result.output
        assert "MATCH: 9 aligned conv/linear layers agree (spec 9, model 9)" in result.stdout


def test_drift_is_reported_at_its_first_divergence(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(spec_text(read_network(str(resnet_like(tmp_path)))), encoding="utf-8")
    (tmp_path / "two").mkdir()
    model = resnet_like(tmp_path / "two", blocks=2)  # the code lost a block
    result = runner.invoke(app, ["check", str(spec), "--against", str(model), "-f", "json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    d = data["drift"][0]
    assert data["verdict"] == "fail"
    assert (d["agree"], d["layers_spec"], d["layers_model"], d["layers_matching"]) == \
        (False, 9, 7, 7)
    # 294,912 MACs (one block) more in the spec
    assert d["macs_spec"] - d["macs_model"] == 294912
    first = d["first_divergence"]
    assert first["status"] == "only in spec"
    # three identical blocks against two: the alignment puts the missing one first
    assert first["spec_name"] == "layer1_1/a.conv/conv"
    text = runner.invoke(app, ["check", str(spec), "--against", str(model)]).stdout
    assert "DRIFT: 7 aligned conv/linear layers agree (spec 9, model 7)" in text
    assert "First divergence at conv/linear layer " in text


def test_changed_width_is_a_difference(tmp_path):
    p = resnet_like(tmp_path)
    spec = tmp_path / "net.yaml"
    spec.write_text(spec_text(read_network(str(p))).replace(
        "pw: {c: 8, bn: true", "pw: {c: 16, bn: true"), encoding="utf-8")
    result = runner.invoke(app, ["check", str(spec), "--against", str(p), "-f", "json"])
    assert result.exit_code == 1
    first = json.loads(result.stdout)["drift"][0]["first_divergence"]
    assert first["status"] == "differs: output, MACs, weights"
    assert (first["spec_name"], first["model_name"]) == ("branch.conv/pw", "branch.conv")
    assert (first["spec_out"], first["model_out"]) == ("8×8×16", "8×8×8")


def test_check_against_bad_input_exits_2(tmp_path):
    result = runner.invoke(app, ["check", "mobilenet_v2", "--against",
                                 str(tmp_path / "none.onnx")])
    assert result.exit_code == 2
    assert "cannot read ONNX file" in result.stderr


def test_json_documents_follow_the_schema(tmp_path):
    from tests.test_schema import SCHEMA, validate

    p = resnet_like(tmp_path)
    spec = tmp_path / "net.yaml"
    spec.write_text(spec_text(read_network(str(p))), encoding="utf-8")
    for args in (["count", str(p)], ["check", str(spec), "--against", str(p)],
                 ["check", str(p), "--max-macs", "1G"], ["compare", str(p), str(spec)],
                 ["memory", str(p)]):
        doc = json.loads(runner.invoke(app, [*args, "-f", "json"]).stdout)
        validate(doc, SCHEMA)
        assert all(r["status"] == "complete" for r in doc.get("reports", []))


def test_against_with_a_budget(tmp_path):
    p = resnet_like(tmp_path)
    spec = tmp_path / "net.yaml"
    spec.write_text(spec_text(read_network(str(p))), encoding="utf-8")
    # the spec matches its model but is over a limit: exit 1 (MACS[3] = 920,816)
    result = runner.invoke(app, ["check", str(spec), "--against", str(p), "--max-macs", "900K"])
    assert result.exit_code == 1
    assert "MATCH: 9 aligned conv/linear layers agree" in result.stdout
    assert "FAIL: 0 of 1 limits met across 1 spec(s)." in result.stdout
    ok = runner.invoke(app, ["check", str(spec), "--against", str(p), "--max-macs", "1M"])
    assert ok.exit_code == 0
