"""Property tests for untrusted input (issue 10): any spec, row, option value, budget file
or baseline gets a result or one located error, never a traceback, a negative count or an
empty tensor.

Bounded for the everyday suite; ``MACSCALC_FUZZ_EXAMPLES=5000 python -m pytest
tests/test_fuzz.py`` is the long run (it also draws fresh random examples, where the
everyday run replays the same ones).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from macscalc import PARAM_CONVENTIONS, Convention, build, count, parse
from macscalc.cli import app
from macscalc.commands.budget import Limit, SpecCheck, check_doc, outcomes
from macscalc.core.errors import MacscalcError
from macscalc.lang.layers import OP_CATEGORIES
from macscalc.lang.schema import (
    ACT,
    ACT_FN,
    BOOL,
    CHANNELS,
    INTS,
    NAMES,
    PADDING,
    PAIR,
    POOL_OP,
    POS_INT,
    RATIO,
)
from macscalc.lang.spec import ROW_KINDS, builtin_dir, builtin_names
from macscalc.render.output import render
from macscalc.render.views import count_doc

LONG_RUN = "MACSCALC_FUZZ_EXAMPLES" in os.environ
FUZZ = settings(max_examples=int(os.environ.get("MACSCALC_FUZZ_EXAMPLES", "60")),
                deadline=None, derandomize=not LONG_RUN, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FILE = "fuzz.yaml"
runner = CliRunner()

# Values a hostile or careless author might write anywhere.
ODD_TEXT = ["88/0", "1/0", "3/4", "classes", "same", "valid", "relu", "none", "fixed", "²",
            "1e999", "-0.5", "nan", ".inf", "", " ", "mobilenet_v2", "/etc/passwd", "a.yaml"]
WILD = st.one_of(
    st.none(), st.booleans(),
    st.integers(-3, 70),
    st.sampled_from([0, -1, 1000, 1001, 1024, 1025, 16_384, 16_385, 10**6, 10**6 + 1, 2**63,
                     10**30, 10**200]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 1.5, 1e-7, 1e160, 1e300]),
    st.sampled_from(ODD_TEXT), st.text(max_size=12),
)
WILD_ANY = st.recursive(WILD, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)


def outcome(text: str, alpha: Fraction = Fraction(1), res: int | None = None) -> None:
    """The one property: a counted network with no empty tensor and no negative count, its
    report and a failed check rendered, or a single-line MacscalcError located in the spec."""
    try:
        net = build(parse(text, FILE), alpha, (res, res) if res else None)
        report = count(net, Convention(PARAM_CONVENTIONS["all"], OP_CATEGORIES))
        peak = report.peak_bytes
        checked = [SpecCheck(FILE, report, outcomes(report, {"macs": Limit("macs", 1,
                                                                              "fuzz")}))]
        with contextlib.redirect_stdout(io.StringIO()):
            for doc in (count_doc(report, flops=True), check_doc(checked)):
                render(doc, "json")
                render(doc, "table")
    except MacscalcError as e:
        assert e.file == FILE, e
        assert "\n" not in str(e) and len(str(e)) <= 1100, e
        return
    for node in net.nodes:
        assert min(node.out) > 0 and all(min(s) > 0 for s in node.in_shapes), node
    for lc in report.layers:
        assert lc.macs >= 0 and min(lc.params) >= 0 and min(lc.ops.values(), default=0) >= 0
    assert min(report.macs, report.flops, report.params, peak) >= 0


def _containers(node: Any) -> list[Any]:
    values = node.values() if isinstance(node, dict) else node
    return [v for v in values if isinstance(v, (dict, list)) and v]


@st.composite
def mutated_builtin(draw: st.DrawFn) -> str:
    """A built-in spec with 1–3 mutations: a key deleted, a value replaced by a wild one,
    two values swapped, or a value's type changed."""
    name = draw(st.sampled_from(builtin_names()))
    doc = yaml.safe_load((builtin_dir() / f"{name}.yaml").read_text(encoding="utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        node = doc
        for _ in range(draw(st.integers(0, 6))):
            inner = _containers(node)
            if not inner:
                break
            node = draw(st.sampled_from(inner))
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            continue
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["delete", "replace", "swap", "retype"]))
        if action == "delete":
            del node[key]
        elif action == "replace":
            node[key] = draw(st.one_of(st.integers(-1, 4), WILD_ANY))
        elif action == "swap":
            other = draw(st.sampled_from(keys))
            node[key], node[other] = node[other], node[key]
        else:
            v = node[key]
            node[key] = ([v] if not isinstance(v, list) else v[0] if v else {}) \
                if draw(st.booleans()) else str(v)
    return yaml.safe_dump(doc, sort_keys=False)


PLAUSIBLE = {
    POS_INT: st.integers(1, 8),
    PAIR: st.one_of(st.integers(1, 5), st.lists(st.integers(1, 5), min_size=2, max_size=2)),
    RATIO: st.sampled_from([1, 0.25, 0.5, 4, 6, "88/24"]),
    INTS: st.lists(st.integers(0, 4), min_size=2, max_size=3),
    PADDING: st.one_of(st.sampled_from(["same", "valid"]), st.integers(0, 2)),
    CHANNELS: st.one_of(st.integers(1, 32), st.just("classes")),
    NAMES: st.sampled_from(["r0", "r1", ["r0", "r1"]]),
    ACT: st.sampled_from(["relu", "relu6", "hswish", "none"]),
    ACT_FN: st.sampled_from(["relu", "hsigmoid"]),
    BOOL: st.booleans(),
    POOL_OP: st.sampled_from(["avg", "max"]),
}


def _templates() -> dict[str, list[dict[str, Any]]]:
    """The rows of every built-in spec by kind, for rows that mostly pass validation."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name in builtin_names():
        doc = yaml.safe_load((builtin_dir() / f"{name}.yaml").read_text(encoding="utf-8"))
        for row in doc.get("layers", []):  # a spec on a whole base may have none
            (kind, body), = row.items()
            found.setdefault(kind, []).append(body or {})
    return found


TEMPLATES = _templates()


def _small(draw: st.DrawFn, like: Any) -> Any:
    """A small integer, or a list of them as long as ``like``: zeros and negatives too."""
    if isinstance(like, list):
        return [draw(st.integers(-1, 3)) for _ in like]
    return draw(st.integers(-1, 3))


@st.composite
def random_row(draw: st.DrawFn, index: int) -> dict[str, Any]:
    """One row of any kind, as a built-in row writes it (or plausible where none does),
    then up to three arguments made small, wild, plausible or left out."""
    pick = draw(st.randoms(use_true_random=False))  # uniform: sampled_from favours the first
    kind = pick.choice(sorted(ROW_KINDS))
    args = ROW_KINDS[kind].args
    template = pick.choice(TEMPLATES.get(kind, [{}]))
    body = {name: template[name] for name in args if name in template}
    for name, a in args.items():
        if name not in body and a.type in PLAUSIBLE and (a.required or draw(st.booleans())):
            body[name] = draw(PLAUSIBLE[a.type])
    for _ in range(draw(st.integers(0, 3)) if args else 0):
        name = draw(st.sampled_from(sorted(args)))
        how = draw(st.sampled_from(["small", "small", "wild", "plausible", "absent"]))
        if how == "small":
            body[name] = _small(draw, body.get(name))
        elif how == "wild":
            body[name] = draw(WILD_ANY)
        elif how == "plausible" and args[name].type in PLAUSIBLE:
            body[name] = draw(PLAUSIBLE[args[name].type])
        else:
            body.pop(name, None)
    body["name"] = f"r{index}"
    if draw(st.integers(0, 3)) == 3:
        body[draw(st.sampled_from(["n", "from", "width"]))] = draw(st.one_of(
            st.integers(1, 3), st.sampled_from(["fixed", {"min": 1.0}, "r0"]), WILD))
    return {kind: body}


def _mostly(draw: st.DrawFn, plausible: st.SearchStrategy[Any]) -> Any:
    return draw(WILD) if draw(st.integers(0, 9)) == 9 else draw(plausible)


@st.composite
def random_spec(draw: st.DrawFn) -> str:
    """Random rows after a small input, or after the first rows of a built-in spec (so
    that blocks meet the widths they are written for)."""
    pick = draw(st.randoms(use_true_random=False))
    rows = [draw(random_row(i)) for i in range(draw(st.integers(1, 4)))]
    if draw(st.booleans()):
        doc = yaml.safe_load((builtin_dir() / f"{pick.choice(builtin_names())}.yaml")
                             .read_text(encoding="utf-8"))
        own = doc.get("layers", [])
        doc["layers"] = own[: pick.randrange(len(own) or 1)] + rows
        doc["input"]["size"] = pick.choice([224, 64, 33, 8])
    else:
        doc = {"name": "fuzz", "source": "fuzz",
               "input": {"size": _mostly(draw, st.integers(1, 40)),
                         "channels": _mostly(draw, st.sampled_from([1, 3, 4, 8, 16]))},
               "classes": _mostly(draw, st.integers(1, 12)), "layers": rows}
    return yaml.safe_dump(doc, sort_keys=False)


ALPHAS = st.sampled_from([Fraction(1), Fraction(1, 2), Fraction(1, 4), Fraction(7, 5)])


@FUZZ
@given(mutated_builtin(), ALPHAS, st.sampled_from([None, 1, 33, 96]))
def test_mutated_builtin_specs(text: str, alpha: Fraction, res: int | None) -> None:
    outcome(text, alpha, res)


@FUZZ
@given(random_spec(), ALPHAS)
def test_random_rows(text: str, alpha: Fraction) -> None:
    outcome(text, alpha)


ODD_OPTION = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e99999999", "1e308", "²", "٣", "", " ",
                     "1_0", "3/4", "1/0", "0.5", "2", "160", "300M", "2%", "1E18", "10" * 30,
                     "abc", "all", "bn,foo", "fp16", "json", "csv", "4,4", "0,4", "²,4"]),
    st.text(max_size=10), st.integers(-10**6, 10**6).map(str))
COMMANDS = [
    ["count", "mobilenet_v1", "--res", "64", "--alpha"], ["count", "mobilenet_v1", "--res"],
    ["count", "mobilenet_v1", "--classes"], ["count", "mobilenet_v1", "--count"],
    ["count", "mobilenet_v1", "--params"], ["count", "mobilenet_v1", "--dtype"],
    ["count", "mobilenet_v1", "-f"], ["memory", "mobilenet_v1", "--dtype"],
    ["check", "mobilenet_v1", "--max-macs"], ["check", "mobilenet_v1", "--max-params"],
    ["check", "mobilenet_v1", "--max-memory"], ["check", "mobilenet_v1", "--max-flops"],
    ["check", "mobilenet_v1", "--max-macs", "1G", "--max-growth"],
    ["table", "v1", "--alpha"], ["table", "v1", "--res"], ["table", "v1", "--max-macs"],
    ["pick", "--max-macs"], ["pick", "--max-params"], ["pick", "--device", "pixel1",
                                                       "--max-latency"],
    ["pick", "--family"], ["explain", "dwsep", "--cin"], ["explain", "dwsep", "--k"],
    ["explain", "bottleneck", "--t"], ["explain", "micro", "--channels"],
    ["explain", "micro", "--ratio"], ["explain", "micro", "--groups"],
    ["explain", "scaling", "mobilenet_v1", "--alpha"],
    ["explain", "mobilenet_v1", "--layer"], ["compare", "mobilenet_v1", "mobilenet_v1 --alpha"],
    ["compare", "mobilenet_v1", "mobilenet_v1 --res"], ["compare", "mobilenet_v1"],
]


@FUZZ
@given(st.sampled_from(COMMANDS), ODD_OPTION)
def test_random_option_values(command: list[str], value: str) -> None:
    """Exit 0, 1 (check over budget) or 2 with one ``error:`` line or a usage error."""
    if command[0] == "compare":  # the value goes inside the last variant
        args = command[:-1] + [f"{command[-1]} {value}"] if len(command) == 3 else \
            [*command, value]
    else:
        args = [*command, value]
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        (args, result.exception)
    assert result.exit_code in ((0, 1, 2) if command[0] == "check" else (0, 2)), args
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert (len(lines) == 1 and lines[0].startswith("error: ")) or "Usage:" in lines[0], \
            (args, result.stderr)
        assert len(result.stderr) < 1200


LIMIT_KEYS = st.sampled_from(["macs", "flops", "params", "memory", "specs", "latency"])


@st.composite
def budget_and_baseline(draw: st.DrawFn) -> tuple[str, str]:
    """A budget file (YAML) and a baseline report (JSON), each near the expected shape or
    not at all."""
    limits = st.dictionaries(LIMIT_KEYS, st.one_of(st.sampled_from(["300M", "1G", "2MB"]),
                                                   WILD_ANY), max_size=3)
    budget = draw(st.one_of(limits, st.fixed_dictionaries(
        {"specs": st.dictionaries(st.sampled_from(["mobilenet_v1", "x"]), limits, max_size=2)}),
        WILD_ANY))
    totals = st.dictionaries(st.sampled_from(["macs", "flops", "params"]), WILD, max_size=3)
    report = st.fixed_dictionaries({"spec": st.one_of(st.just({"name": "mobilenet_v1"}), WILD_ANY),
                                    "totals": st.one_of(totals, WILD_ANY)})
    baseline = draw(st.one_of(st.fixed_dictionaries(
        {"schema_version": st.sampled_from([1, 2]), "reports": st.lists(report, max_size=2)}),
        WILD_ANY))
    return yaml.safe_dump(budget), json.dumps(baseline)


@FUZZ
@given(budget_and_baseline())
def test_random_budget_files_and_baselines(files: tuple[str, str]) -> None:
    """check gives a verdict (0 or 1) or one located ``error:`` line (2)."""
    with tempfile.TemporaryDirectory() as folder:
        budget, baseline = Path(folder, "b.yaml"), Path(folder, "base.json")
        budget.write_text(files[0], encoding="utf-8")
        baseline.write_text(files[1], encoding="utf-8")
        result = runner.invoke(app, ["check", "mobilenet_v1", "--res", "32", "--budget",
                                     str(budget), "--baseline", str(baseline)])
    assert isinstance(result.exception, SystemExit) or result.exception is None, result.exception
    assert result.exit_code in (0, 1, 2)
    if result.exit_code == 2:
        (line,) = result.stderr.splitlines()
        assert line.startswith((f"error: {budget}", f"error: {baseline}",
                                "error: no limits for 'mobilenet_v1'")), line
