"""Every JSON document validates against macscalc/data/report.schema.json.

A small validator for the subset the schema uses (type, const, enum, pattern, required,
properties, patternProperties, additionalProperties, items, minItems, maxItems, minimum,
allOf, if/then, $ref), so tests need no extra package. Each document kind lists all of its
keys, so a key added to a command's JSON without its schema fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from macscalc.cli import app

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "macscalc" / "data" /
                     "report.schema.json").read_text(encoding="utf-8"))
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
         "number": (int, float)}


def _is(value, t: str) -> bool:
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, TYPES[t]) and not (t == "number" and isinstance(value, bool))


def validate(value, schema, path="$"):
    if "$ref" in schema:
        return validate(value, SCHEMA["$defs"][schema["$ref"].split("/")[-1]], path)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        assert any(_is(value, t) for t in types), f"{path}: not {' or '.join(types)}"
    if "const" in schema:
        assert value == schema["const"], path
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if "minimum" in schema:
        assert value >= schema["minimum"], path
    if "pattern" in schema and isinstance(value, str):
        assert re.search(schema["pattern"], value), f"{path}: {value!r} does not match"
    if isinstance(value, dict):
        _validate_object(value, schema, path)
    if isinstance(value, list):
        for i, item in enumerate(value):
            if "items" in schema:
                validate(item, schema["items"], f"{path}[{i}]")
        assert len(value) >= schema.get("minItems", 0), f"{path}: too few items"
        assert len(value) <= schema.get("maxItems", 10**9), f"{path}: too many items"
    for sub in schema.get("allOf", []):
        validate(value, sub, path)
    if "if" in schema and _passes(value, schema["if"]):
        validate(value, schema["then"], path)


def _validate_object(value: dict, schema: dict, path: str) -> None:
    for key in schema.get("required", []):
        assert key in value, f"{path}: missing {key!r}"
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    for key, item in value.items():
        where = f"{path}.{key}"
        matched = [sub for p, sub in patterns.items() if re.search(p, key)]
        if key in properties:
            validate(item, properties[key], where)
        for sub in matched:
            validate(item, sub, where)
        extra = schema.get("additionalProperties", True)
        if key not in properties and not matched:
            assert extra is not False, f"{path}: unexpected key {key!r}"
            if isinstance(extra, dict):
                validate(item, extra, where)


def _passes(value, schema) -> bool:
    try:
        validate(value, schema)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("args", [
    ["count", "mobilenet_v2", "--count", "all"],
    ["count", "mobilenet_v1"],
    ["count", "micronet_m1", "--count", "shiftmax"],
    ["check", "mobilenet_v3_small", "--max-macs", "60M"],
    ["check", "mobilenet_v2", "--max-memory", "8MB", "--max-size", "5MB"],
    ["check", "mobilenet_v2", "no_such_spec"],
    ["compare", "mobilenet_v1", "mobilenet_v1 --alpha 0.5", "micronet_m0"],
    ["table", "v1"],
    ["table", "v2", "--alpha", "0.6"],
    ["table", "v3"],
    ["table", "micronet"],
    ["table", "detection"],
    ["pick", "--max-macs", "50M"],
    ["pick", "--device", "pixel1", "--family", "v2,detection", "--unpublished"],
    ["specs"],
    ["memory", "mobilenet_v2"],
    ["memory", "ssdlite_mobilenet_v2"],
    ["explain", "dwsep"],
    ["explain", "bottleneck"],
    ["explain", "micro"],
    ["explain", "scaling", "mobilenet_v2"],
    ["explain", "mobilenet_v2", "--layer", "ir2_2"],
    ["sweep", "mobilenet_v2", "--alpha", "0.35:1.4:0.05", "--res", "96:224:32", "--max-memory",
     "4MB", "--frontier"],
    ["sweep", "micronet_m0", "--alpha", "0.5,1.0", "--max-params", "2M"],
    ["sweep", "mobilenet_v2", "--alpha", "0.5,1.0", "--res", "128", "--device", "pixel1",
     "--max-latency", "30"],
    ["count", "mobilenet_v3_small", "--device", "pixel1"],
    ["check", "mobilenet_v2", "--max-latency", "500", "--device", "cpu_epyc_1t"],
    ["compare", "mobilenet_v2", "mobilenet_v1", "--device", "pixel1"],
    ["table", "v2", "--device", "pixel1"],
    ["memory", "mobilenet_v2", "--alpha", "0.35", "--res", "96", "--planner", "tflm", "--dtype",
     "int8"],
])
def test_json_validates(args):
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code in (0, 1, 2), result.output
    validate(json.loads(result.stdout), SCHEMA)


def test_every_kind_has_a_definition():
    kinds = SCHEMA["properties"]["kind"]["enum"]
    assert [c["then"]["$ref"] for c in SCHEMA["allOf"]] == [f"#/$defs/{k}_doc" for k in kinds]


def test_validator_rejects_a_broken_report():
    result = CliRunner().invoke(app, ["count", "mobilenet_v1", "--format", "json"])
    data = json.loads(result.stdout)
    del data["reports"][0]["totals"]["macs"]
    with pytest.raises(AssertionError, match=r"totals: missing 'macs'"):
        validate(data, SCHEMA)


@pytest.mark.parametrize(("args", "change", "message"), [
    (["table", "v1"], lambda d: d["rows"][0].update(top1="70.7"), r"unexpected key 'top1'"),
    (["pick"], lambda d: d["candidates"][0].update(accuracy=70.7), r"accuracy: not string"),
    (["explain", "micro"], lambda d: d.pop("groups"), r"missing 'groups'"),
    (["compare", "mobilenet_v1", "mobilenet_v2"],
     lambda d: d["totals"][1].update(macs_delta_pct="-47.12 %"), r"does not match"),
])
def test_validator_rejects_what_the_schema_does_not_say(args, change, message):
    data = json.loads(CliRunner().invoke(app, [*args, "--format", "json"]).stdout)
    change(data)
    with pytest.raises(AssertionError, match=message):
        validate(data, SCHEMA)
