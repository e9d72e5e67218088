"""Untrusted input (issue 10): specs, budget files, baselines and options may come from a
pull request. Each gets a result or one located error line with exit 2, within 2 s; no
traceback, no message that shows another file or more than an excerpt of a value."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from macscalc import parse
from macscalc.cli import app
from macscalc.core.errors import MacscalcError, kind, show
from macscalc.core.files import write_atomic
from macscalc.lang.spec import builtin_names

runner = CliRunner()
HEAD = "name: t\nsource: s\ninput: {size: 32}\nclasses: 10\n"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Work in an empty folder, so messages name files as 't.yaml'."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(name: str, body: str | bytes, head: str = HEAD) -> str:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(body, bytes):
        path.write_bytes(head.encode() + body)
    else:
        path.write_text(head + body, encoding="utf-8")
    return name


def fails(args: list[str], message: str) -> None:
    """Exit 2 with exactly ``error: message`` on stderr, nothing on stdout, within 2 s."""
    start = time.perf_counter()
    result = runner.invoke(app, args)
    assert time.perf_counter() - start < 2, args
    assert isinstance(result.exception, SystemExit), result.exception
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"error: {message}\n")


# 1. A spec can make macscalc read no file but built-ins and .yaml files near it.

BASE = "base: {{spec: {}, until: a}}\nlayers:\n  - flatten: {{}}\n"
BUILTINS = len(builtin_names())


@pytest.mark.parametrize("ref", ["/etc/passwd", "../../../../etc/passwd", "/proc/self/environ",
                                 "../../../../../../etc/hostname"])
def test_base_names_no_other_file(here, ref):
    fails(["count", write("t.yaml", BASE.format(ref))],
          f"t.yaml:5:14: base spec: no spec file or built-in spec named {ref!r} ({BUILTINS} "
          "built-ins: macscalc specs lists them); a base file's name ends in .yaml or .yml")


def test_base_file_is_relative_and_stays_inside(here, monkeypatch):
    outside = here / "outside.yaml"
    write(str(outside), "layers:\n  - conv: {c: 8, name: a}\n")
    (here / "work").mkdir()
    monkeypatch.chdir(here / "work")
    fails(["count", write("t.yaml", BASE.format(outside))],
          f"t.yaml:5:14: base spec: a base file is named relative to the spec that names it, "
          f"got {show(str(outside))}")
    fails(["count", write("t.yaml", BASE.format("../outside.yaml"))],
          "t.yaml:5:14: base spec: '../outside.yaml' is outside the folder of t.yaml and the "
          "current folder")
    Path("link.yaml").symlink_to(outside)
    fails(["count", write("t.yaml", BASE.format("link.yaml"))],
          "t.yaml:5:14: base spec: 'link.yaml' is outside the folder of t.yaml and the current "
          "folder")


def test_base_file_next_to_the_spec_that_names_it(here):
    write("specs/backbone.yaml", "layers:\n  - conv: {c: 8, k: 3, name: a}\n  - conv: {c: 4}\n")
    write("specs/det/head.yaml", BASE.format("../backbone.yaml"))
    result = runner.invoke(app, ["count", "specs/det/head.yaml", "-f", "json"])
    assert result.exit_code == 0, result.output
    names = [p["name"] for p in json.loads(result.stdout)["reports"][0]["layers"]]
    assert names == ["a/conv", "flatten1"]  # the backbone up to 'a', then the head's row


def test_base_cycles_report_the_chain(here):
    fails(["count", write("t.yaml", BASE.format("t.yaml"))],
          "t.yaml:5:14: base spec: base specs form a cycle: t.yaml → t.yaml")
    write("b.yaml", BASE.format("a.yaml"))
    fails(["count", write("a.yaml", BASE.format("b.yaml"))],
          "b.yaml:5:14: base spec: base specs form a cycle: a.yaml → b.yaml → a.yaml")


def test_at_most_eight_specs_are_chained(here):
    for i in range(9):
        write(f"c{i}.yaml", BASE.format(f"c{i + 1}.yaml"))
    fails(["count", "c0.yaml"], "c7.yaml:5:14: base spec: more than 8 specs named through "
                                "base:, one after another")


def test_a_mistake_inside_a_base_file_is_located_there(here):
    write("b.yaml", "layers:\n  - conv: {c: 8, k: x}\n")
    fails(["count", write("t.yaml", BASE.format("b.yaml"))],
          "b.yaml:6:21: 'k' of 'conv' must be a positive integer up to 1,024 or a list [h, w] "
          "of two, got 'x'")


def test_messages_quote_an_excerpt_only(here):
    Path("t.yaml").write_text("root:x:0:0:root:/root:/bin/bash\n"
                              "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    fails(["count", "t.yaml"], "t.yaml:1:1: a spec must be a mapping, got text")
    Path("t.yaml").write_text("- secret\n")  # the whole document is never quoted
    fails(["count", "t.yaml"], "t.yaml:1:1: a spec must be a mapping, got a list")
    fails(["count", write("t.yaml", "layers:\n  - conv: {c: " + "x" * 100_000 + "}\n")],
          "t.yaml:6:15: 'c' of 'conv' must be a positive integer up to 1,000,000 or 'classes', "
          "got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…")


def test_show_and_the_message_cap():
    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    assert show(nested) == "[" * 40 + "…"
    assert show(10**5000) == "a very large number"
    assert show({"a": [1, None], "b": "x" * 99}) == "{'a': [1, None], 'b': 'xxxxxxxxxxxxxxxxx…"
    assert (show(None), show(True), show(1.5), show("a")) == ("nothing", "True", "1.5", "'a'")
    assert [kind(v) for v in ("a", 1, 1.5, True, [], {}, b"")] == [
        "text", "a number", "a number", "true or false", "a list", "a mapping", "bytes"]
    assert len(MacscalcError("x" * 10**6).message) == 1001


# 2. YAML: size, nesting, aliases, numbers, encodings, keys.

def laughs(levels: int) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i > 1 else "*a"] * 9) + "]\n"
    return text


def short(value: object) -> str:
    return str(value)[:24]


DEEP_COLUMN = 1003 if tuple(map(int, yaml.__version__.split(".")[:3])) >= (6, 0, 4) else 67


@pytest.mark.parametrize(("body", "message"), ids=short, argvalues=[
    (laughs(9), "5:5: more than 10,000 values once aliases are expanded"),
    # the column is ours (67) or, with PyYAML ≥ 6.0.4's own earlier check, its (1003)
    ("a: " + "[" * 100_000 + "]" * 100_000, f"1:{DEEP_COLUMN}: lists and mappings nested more "
     "than 64 deep"),
    ("a: [" + ", ".join(["0"] * 30_000) + "]", "1:29996: more than 10,000 values in one document"),
    ("a: " + "1" * 5000, "1:4: a number longer than 100 characters"),
    ("a: !!int x", "1:4: cannot read this int value"),
    ("? [a, b]\n: 1", "1:3: a key must be a single value, not a list or mapping"),
    ("{a: 1}: 2", "1:1: a key must be a single value, not a list or mapping"),
    ("a: 1\na: 2", "2:1: duplicate key 'a'"),
    ("a: 1\n b\x01: 2", "2:3: character U+0001 is not allowed in YAML"),
    ("a: 1\n\x00", "2:1: character U+0000 is not allowed in YAML (a NUL: is the file UTF-16?)"),
])
def test_yaml_bounds_are_located(here, body, message):
    fails(["count", write("t.yaml", body, head="")], f"t.yaml:{message}")


def test_a_large_file_is_refused_unread(here):
    write("t.yaml", "layers:\n  - conv: {c: 8}\n" + "#" * (50 << 20))
    fails(["count", "t.yaml"], "t.yaml: spec is larger than 1,048,576 bytes")


@pytest.mark.parametrize(("data", "message"), [
    ("layers: [x]\n".encode("utf-16"), "1:1: spec is UTF-16; save it as UTF-8"),
    ("layers: [x]\n".encode("utf-16-le"), "1:2: character U+0000 is not allowed in YAML (a NUL: "
                                          "is the file UTF-16?)"),
    (b"name: t\nsource: \xc3\xa9t\xff\n", "2:11: byte 0xFF is not UTF-8; save spec as UTF-8"),
])
def test_encodings_are_located(here, data, message):
    write("t.yaml", data, head="")
    fails(["count", "t.yaml"], f"t.yaml:{message}")


def test_a_merge_key_may_be_overridden(here):
    spec = write("t.yaml", "layers:\n  - conv: &a {c: 8, k: 3}\n  - conv: {<<: *a, c: 16}\n")
    result = runner.invoke(app, ["count", spec, "-f", "json"])
    assert result.exit_code == 0, result.output
    shapes = [p["out_shape"] for p in json.loads(result.stdout)["reports"][0]["layers"]]
    assert shapes == [[32, 32, 8], [32, 32, 16]]  # 'same' padding, stride 1


# 3. Values: every number has a limit, and none reaches arithmetic unchecked.

@pytest.mark.parametrize(("body", "message"), [
    ("layers:\n  - ir: {t: 88/0, c: 8}\n", "6:13: 't' of 'ir' must be a positive number up to "
     "1,000 (or a fraction such as '88/24'), got '88/0'"),
    ("layers:\n  - se: {r: 1/0}\n", "6:13: 'r' of 'se' must be a positive number up to 1,000 (or "
     "a fraction such as '88/24'), got '1/0'"),
    ("layers:\n  - dropout: {p: 1/0}\n", "6:18: 'p' of 'dropout' must be a probability from 0 to "
     "1 (at most 6 decimals, or a fraction such as '1/75'), got '1/0'"),
    ("layers:\n  - conv: {c: 1.0e+160}\n", "6:15: 'c' of 'conv' must be a positive integer up to "
     "1,000,000 or 'classes', got 1e+160"),
    ("layers:\n  - conv: {c: 8, k: .inf}\n", "6:21: 'k' of 'conv' must be a positive integer up "
     "to 1,024 or a list [h, w] of two, got inf"),
    ("layers:\n  - conv: {c: 8, groups: true}\n", "6:26: 'groups' of 'conv' must be a positive "
     "integer up to 1,000,000, got True"),
    ("layers:\n  - ir: {t: .nan, c: 8}\n", "6:13: 't' of 'ir' must be a positive number up to "
     "1,000 (or a fraction such as '88/24'), got nan"),
    ("layers:\n  - ir: {t: 1.0e+300, c: 8}\n", "6:13: 't' of 'ir' must be a positive number up "
     "to 1,000 (or a fraction such as '88/24'), got 1e+300"),
    ("layers:\n  - conv: {c: 8, n: 1000000000}\n", "6:21: 'n' of 'conv' must be a non-negative "
     "integer up to 1,000, got 1000000000"),
    ("layers:\n  - conv: {c: 8, n: " + "1" * 201 + "}\n", "6:21: a number longer than 100 "
     "characters"),
    ("layers:\n  - conv: {c: 8, width: {min: 1.0e+300}}\n", "6:25: 'width' of 'conv' must be "
     "'scaled', 'fixed' or {min: multiplier}, got {'min': 1e+300}"),
    ("budget: {macs: .inf}\nlayers:\n  - flatten: {}\n", "5:16: 'macs' of 'budget' must be a "
     "number such as 300M, 0.3G, 3.5e8 or 1_000_000, got 'inf'"),
    ("budget: {params: 1.0e+300}\nlayers:\n  - flatten: {}\n", "5:18: 'params' of 'budget' must "
     "be at most 1e18, got '1e+300'"),
    ("budget: {macs: [1]}\nlayers:\n  - flatten: {}\n", "5:16: 'macs' of 'budget' must be a "
     "number such as 300M, got [1]"),
])
def test_values_past_their_limits(here, body, message):
    fails(["count", write("t.yaml", body)], f"t.yaml:{message}")


@pytest.mark.parametrize(("size", "message"), [
    ("1.0e+160", "got 1e+160"), ("16385", "got 16385"), (".nan", "got nan"),
    ("[8, 0]", "got [8, 0]")])
def test_input_size_limits(here, size, message):
    head = f"name: t\nsource: s\ninput: {{size: {size}}}\nclasses: 10\n"
    fails(["count", write("t.yaml", "layers:\n  - flatten: {}\n", head)],
          f"t.yaml:3:15: 'size' of 'input' must be a positive integer up to 16,384 or [h, w], "
          f"{message}")


def test_the_largest_network_is_counted_and_checked(here):
    """Every value at its limit: counts of 29 digits, and their percentages, are exact."""
    head = "name: t\nsource: s\ninput: {size: 16384, channels: 1000000}\nclasses: 10\n"
    spec = write("t.yaml", "layers:\n  - conv: {c: 1000000, k: 1024}\n", head)
    start = time.perf_counter()
    result = runner.invoke(app, ["check", spec, "--max-macs", "1", "-f", "json"])
    assert time.perf_counter() - start < 2 and result.exit_code == 1, result.output
    (check,) = json.loads(result.stdout)["reports"][0]["checks"]
    # 1024·1024·1,000,000·1,000,000·16384·16384 ('same' padding, stride 1)
    assert check["value"] == 1024**2 * 10**12 * 16384**2 == 281_474_976_710_656 * 10**12
    assert check["margin_pct"] == f"-{(1024**2 * 10**12 * 16384**2 - 1) * 100}.00"


@pytest.mark.parametrize(("row", "message"), [
    # issue 10 §7: this built a 32×32×0 tensor and exited 0
    ("micro: {c: 8, ch_exp: [0, 1], ch_per_group: [0, 1], groups_1x1: [1, 1, 1], dy: [0, 0, 0]}",
     "6:12: micro needs ch_exp of two positive channel multipliers"),
    ("micro: {c: 8, ch_exp: [1, 1], ch_per_group: [1, 0], groups_1x1: [1, 1, 1], dy: [0, 0, 0]}",
     "6:5: micro1/shuffle1: shuffle groups=0 must divide the 3 channels"),
    ("micro: {c: 8, ch_exp: [1, 1], ch_per_group: [1, 1], groups_1x1: [1, 0, 1], dy: [0, 0, 0]}",
     "6:5: micro1/pw2: groups=0 must divide the input (3) and output (8) channels"),
    ("micro: {c: 8, ch_exp: [2, 2], ch_per_group: [0, 4], groups_1x1: [8, 2, 2], dy: [2, 0, 1], "
     "reduction: 1}", "6:5: micro1/act3: the squeeze reduction must be at least 1, got 0"),
    ("micro_pw: {c: 8, r: 1, groups: [0, 1]}",
     "6:15: micro_pw needs groups: [G1, G2], two positive group counts"),
])
def test_micronet_rows_with_zero_groups_or_channels(here, row, message):
    fails(["count", write("t.yaml", f"layers:\n  - {row}\n")], f"t.yaml:{message}")


# 4. Options and the other files check reads.

@pytest.mark.parametrize(("args", "message"), [
    (["check", "mobilenet_v1", "--max-macs", "nan"], "--max-macs must be a number such as 300M, "
     "0.3G, 3.5e8 or 1_000_000, got 'nan'"),
    (["check", "mobilenet_v1", "--max-macs", "inf"], "--max-macs must be a number such as 300M, "
     "0.3G, 3.5e8 or 1_000_000, got 'inf'"),
    (["check", "mobilenet_v1", "--max-params", "1e99999999999"], "--max-params must be a number "
     "such as 300M, 0.3G, 3.5e8 or 1_000_000, got '1e99999999999'"),
    (["check", "mobilenet_v1", "--max-flops", "2e18"], "--max-flops must be at most 1e18, got "
     "'2e18'"),
    (["check", "mobilenet_v1", "--max-memory", "nanMB"], "--max-memory must be a size such as "
     "2MB, 512KiB or 1_000_000, got 'nanMB'"),
    (["check", "mobilenet_v1", "--max-macs", "1G", "--max-growth", "nan"], "--max-growth must be "
     "a percentage such as 2%, got 'nan'"),
    (["check", "mobilenet_v1", "--max-macs", "1G", "--max-growth", "1e9%"], "--max-growth must "
     "be from 0 to 1,000,000 %, got '1e9%'"),
    (["count", "mobilenet_v1", "--alpha", "1e99999999"], "width multiplier must be a positive "
     "number up to 16 (at most 6 decimals), got '1e99999999'"),
    (["explain", "scaling", "mobilenet_v1", "--alpha", "1e308"], "width multiplier must be a "
     "positive number up to 16 (at most 6 decimals), got '1e308'"),
    (["explain", "scaling", "mobilenet_v1", "--alpha", "0.0000001"], "width multiplier must be "
     "a positive number up to 16 (at most 6 decimals), got '0.0000001'"),
    (["explain", "bottleneck", "--t", "²"], "the expansion ratio --t must be a positive number "
     "up to 1000 (at most 6 decimals), got '²'"),
    (["explain", "micro", "--groups", "²,4"], "each of --groups must be a positive integer up to "
     "4,096, got '²'"),
    (["compare", "mobilenet_v1", "mobilenet_v1 --res ²"], "--res must be a positive integer up "
     "to 16,384, got '²'"),
    (["compare", "mobilenet_v1", "mobilenet_v1 --classes 9999999"], "--classes must be a "
     "positive integer up to 1,000,000, got '9999999'"),
    (["pick", "--device", "pixel1", "--max-latency", "nan"], "--max-latency must be a number of "
     "milliseconds from 0.001 to 10,000,000, got nan"),
    (["count", "mobilenet_v1", "-o", ""], "cannot write '.': not a file name"),
])
def test_bad_options(args, message):
    fails(args, message)


@pytest.mark.parametrize("args", [["explain", "micro", "--channels", "100000"],
                                  ["count", "mobilenet_v1", "--res", "²"],
                                  ["count", "mobilenet_v1", "--res", "16385"]])
def test_integer_options_are_bounded_by_the_parser(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Invalid value for" in result.stderr
    assert isinstance(result.exception, SystemExit)


def test_explain_micro_at_its_largest_is_quick():
    start = time.perf_counter()
    result = runner.invoke(app, ["explain", "micro", "--channels", "4096", "--ratio", "1",
                                 "--groups", "1,1", "-f", "json"])
    assert time.perf_counter() - start < 2 and result.exit_code == 0
    assert json.loads(result.stdout)["reach_min"] == 4096  # G1·G2 = 1 ≤ C/R: all reached


def test_budget_file_with_a_byte_that_is_not_utf8(here):
    Path("b.yaml").write_bytes(b"macs: 300M\xff\n")
    fails(["check", "mobilenet_v1", "--budget", "b.yaml"],
          "b.yaml:1:11: byte 0xFF is not UTF-8; save budget file as UTF-8")


@pytest.mark.parametrize(("text", "message"), ids=short, argvalues=[
    ("specs: 0\n", "1:8: 'specs' must map spec names or paths to limits"),
    ("specs: {mobilenet_v1: [1]}\n", "1:23: limits for 'mobilenet_v1' must be a mapping"),
    ("macs: .nan\n", "1:7: 'macs' must be a number such as 300M, 0.3G, 3.5e8 or 1_000_000, got "
     "'nan'"),
    ("memory: {a: 1}\n", "1:9: 'memory' must be a number such as 300M, got {'a': 1}"),
    (f"? {'x' * 5000}\n: 1\n", "1:3: unknown limit 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… in "
     "the budget file (expected one of: macs, flops, params, memory, size)"),
    (laughs(9), "5:5: more than 10,000 values once aliases are expanded"),
])
def test_bad_budget_files_are_located(here, text, message):
    Path("b.yaml").write_text(text, encoding="utf-8")
    fails(["check", "mobilenet_v1", "--budget", "b.yaml"], f"b.yaml:{message}")


def test_budget_file_that_is_not_a_regular_file(here):
    os.mkfifo("fifo")  # opened without blocking, then refused
    fails(["check", "mobilenet_v1", "--budget", "fifo"],
          "fifo: cannot read budget file: not a regular file")


REPORT = {"schema_version": 1, "reports": [{"spec": {"name": "mobilenet_v1"},
                                            "totals": {"macs": 1}}]}


@pytest.mark.parametrize(("text", "message"), [
    ('{"schema_version": 1, "reports": [1, 2]}', "report 1 of the baseline must be an object "
     "with 'spec' and 'totals'"),
    ('{"schema_version": 1, "reports": [{"spec": {"name": "x"}}]}', "report 1 of the baseline "
     "must be an object with 'spec' and 'totals'"),
    ('{"schema_version": 1, "reports": [{"spec": {}, "totals": []}]}', "report 1 of the "
     "baseline must be an object with 'spec' and 'totals'"),
    ("[" * 100_000 + "]" * 100_000, "baseline is not a JSON report macscalc can read (a number "
     "too long or arrays nested too deep)"),
    ('{"reports": [' + "9" * 5000 + "]}", "baseline is not a JSON report macscalc can read (a "
     "number too long or arrays nested too deep)"),
    (json.dumps(REPORT).replace('"macs": 1', '"macs": true'), "the baseline's macs for "
     "'mobilenet_v1' must be a whole number from 0 to 1e18, got True"),
    (json.dumps(REPORT).replace('"macs": 1', '"macs": -5'), "the baseline's macs for "
     "'mobilenet_v1' must be a whole number from 0 to 1e18, got -5"),
    ('{"a": 1,}', "4:1: baseline is not JSON: Expecting property name enclosed in double quotes"),
])
def test_baselines_of_the_wrong_shape(here, text, message):
    Path("base.json").write_text(text.replace(",}", ",\n\n\n}"), encoding="utf-8")
    where = "base.json:" if message[0].isdigit() else "base.json: "
    # a baseline read whole fails the run; one whose totals fail a spec's comparison is
    # that spec's error, reported in the check's table beside the others
    result = runner.invoke(app, ["check", "mobilenet_v1", "--baseline", "base.json"])
    assert result.exit_code == 2 and f"error: {where}{message}\n" in result.stderr


# 5. -o: the mode of the file it replaces, nothing left behind.

def test_output_keeps_the_mode_of_the_file_it_replaces(here):
    Path("r.txt").write_text("old")
    for mode in (0o644, 0o640, 0o600):
        os.chmod("r.txt", mode)
        assert runner.invoke(app, ["specs", "-o", "r.txt"]).exit_code == 0
        assert Path("r.txt").stat().st_mode & 0o777 == mode
    assert sorted(p.name for p in here.iterdir()) == ["r.txt"]


def test_a_new_output_file_gets_the_umask_default(here):
    old = os.umask(0o022)
    try:
        write_atomic(Path("new.txt"), "x")
        os.umask(0o077)
        write_atomic(Path("private.txt"), "x")
    finally:
        os.umask(old)
    assert Path("new.txt").stat().st_mode & 0o777 == 0o644
    assert Path("private.txt").stat().st_mode & 0o777 == 0o600


class Stopped(Exception):
    pass


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_write_leaves_nothing(here, monkeypatch, signum):
    """The signal reaches its own handler after the temporary file is gone."""
    Path("r.txt").write_text("old")
    seen = []

    def handler(s, frame):
        seen.append((s, sorted(p.name for p in here.iterdir())))
        raise Stopped

    def replace(src, dst):
        signal.raise_signal(signum)

    previous = signal.signal(signum, handler)
    monkeypatch.setattr(os, "replace", replace)
    try:
        with pytest.raises(Stopped):
            write_atomic(Path("r.txt"), "new")
    finally:
        signal.signal(signum, previous)
    assert seen == [(signum, ["r.txt"])]  # handled once, temporary file already removed
    assert Path("r.txt").read_text() == "old"
    assert signal.getsignal(signum) is previous


def test_sigterm_ends_the_process_as_usual_and_leaves_nothing(here):
    code = ("import os, signal; from pathlib import Path; from macscalc.render.output import "
            "write_atomic; os.replace = lambda a, b: os.kill(os.getpid(), signal.SIGTERM); "
            "write_atomic(Path('r.txt'), 'new')")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert list(here.iterdir()) == []


def test_parse_is_bounded_without_the_cli():
    with pytest.raises(MacscalcError) as e:
        parse(laughs(9), "x.yaml")
    assert str(e.value) == "x.yaml:5:5: more than 10,000 values once aliases are expanded"
