"""Every JSON document validates against macscalc/data/report.schema.json.

A small validator for the subset the schema uses (type, const, enum, required,
properties, items, minItems, maxItems, minimum, $ref), so tests need no extra package.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from macscalc.cli import app

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "macscalc" / "data" /
                     "report.schema.json").read_text(encoding="utf-8"))
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "number": (int, float)}


def validate(value, schema, path="$"):
    if "$ref" in schema:
        return validate(value, SCHEMA["$defs"][schema["$ref"].split("/")[-1]], path)
    t = schema.get("type")
    if t == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: not an integer"
    elif t:
        assert isinstance(value, TYPES[t]), f"{path}: not {t}"
    if "const" in schema:
        assert value == schema["const"], path
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if "minimum" in schema:
        assert value >= schema["minimum"], path
    for key in schema.get("required", []):
        assert key in value, f"{path}: missing {key!r}"
    for key, sub in schema.get("properties", {}).items():
        if isinstance(value, dict) and key in value:
            validate(value[key], sub, f"{path}.{key}")
    if "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], f"{path}[{i}]")
    assert len(value) >= schema.get("minItems", 0) if isinstance(value, list) else True
    assert len(value) <= schema.get("maxItems", 10**9) if isinstance(value, list) else True


@pytest.mark.parametrize("args", [
    ["count", "mobilenet_v2", "--count", "all"],
    ["count", "micronet_m1", "--count", "shiftmax"],
    ["check", "mobilenet_v3_small", "--max-macs", "60M"],
    ["compare", "mobilenet_v1", "mobilenet_v1 --alpha 0.5"],
    ["table", "v3"],
    ["pick", "--max-macs", "50M"],
    ["specs"],
    ["memory", "mobilenet_v2"],
    ["explain", "dwsep"],
    ["check", "mobilenet_v2", "--max-memory", "8MB"],
    ["count", "mobilenet_v3_small", "--device", "pixel1"],
    ["check", "mobilenet_v2", "--max-latency", "500", "--device", "cpu_epyc_2t"],
    ["compare", "mobilenet_v2", "mobilenet_v1", "--device", "pixel1"],
])
def test_json_validates(args):
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    validate(json.loads(result.stdout), SCHEMA)


def test_validator_rejects_a_broken_report():
    result = CliRunner().invoke(app, ["count", "mobilenet_v1", "--format", "json"])
    data = json.loads(result.stdout)
    del data["reports"][0]["totals"]["macs"]
    with pytest.raises(AssertionError, match=r"totals: missing 'macs'"):
        validate(data, SCHEMA)
