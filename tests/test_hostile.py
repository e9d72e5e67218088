"""Untrusted input, second pass (issue 19): ONNX files and their external data, device
profiles, CSVs, sweep ranges, block definitions and output paths. Each input gets a
result or one located error line with exit 2, quickly; no traceback, no bytes of another
file, no control character or workflow command in what is printed, no clobbered file."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from macscalc.cli import app
from macscalc.core.errors import MacscalcError
from macscalc.core.files import write_atomic

runner = CliRunner()
HEAD = "name: t\nsource: s\ninput: {size: 32}\nclasses: 10\n"


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Work in an empty folder, so messages name files as 't.yaml'."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fails(args: list[str], message: str, seconds: float = 2) -> None:
    """Exit 2 with exactly ``error: message`` on stderr, nothing on stdout, in time."""
    start = time.perf_counter()
    result = runner.invoke(app, args)
    assert time.perf_counter() - start < seconds, args
    assert isinstance(result.exception, SystemExit), result.exception
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"error: {message}\n")


# 1. Output paths: only a regular file is replaced, links are written through.

def test_output_through_a_link_writes_its_target(here):
    Path("target.txt").write_text("old")
    Path("link.txt").symlink_to("target.txt")
    assert runner.invoke(app, ["specs", "-o", "link.txt"]).exit_code == 0
    assert Path("link.txt").is_symlink()  # the link stays, its target is the new file
    assert Path("target.txt").read_text().startswith("macscalc built-in specs")
    assert sorted(p.name for p in here.iterdir()) == ["link.txt", "target.txt"]


def test_output_onto_a_dangling_link_creates_its_target(here):
    Path("link.txt").symlink_to("new.txt")
    assert runner.invoke(app, ["specs", "-o", "link.txt"]).exit_code == 0
    assert Path("link.txt").is_symlink() and Path("new.txt").is_file()


def test_output_never_replaces_what_is_not_a_regular_file(here):
    os.mkfifo("fifo")  # as root, /dev/null was replaced the same way
    for args in (["specs", "-o", "fifo"], ["count", "mobilenet_v1", "-o", "fifo"]):
        fails(args, "cannot write 'fifo': not a regular file (only a regular file is "
                    "replaced)")
    os.mkdir("folder")  # the option parser refuses a folder for -o; every writer refuses it
    with pytest.raises(MacscalcError) as e:
        write_atomic(Path("folder"), b"x")
    assert str(e.value) == "cannot write 'folder': not a regular file (only a regular file " \
                           "is replaced)"
    assert sorted(p.name for p in here.iterdir()) == ["fifo", "folder"]


def test_output_onto_a_link_to_a_fifo_is_refused(here):
    os.mkfifo("fifo")
    Path("link").symlink_to("fifo")
    fails(["specs", "-o", "link"], "cannot write 'link': not a regular file (only a regular "
                                   "file is replaced)")
    assert Path("link").is_symlink()


def test_output_paths_that_cannot_be_written_are_located(here):
    Path("reg").write_text("x")
    fails(["specs", "-o", "reg/x.txt"], "cannot write 'reg/x.txt': a part of the path is not "
                                        "a folder")
    name = "a" * 300
    fails(["specs", "-o", name], f"cannot write '{'a' * 39}…: the name is too long")
    Path("b" * 250).write_text("old")  # a name that fits, though its temporary file's would not
    assert runner.invoke(app, ["specs", "-o", "b" * 250]).exit_code == 0
    assert Path("b" * 250).read_text().startswith("macscalc built-in specs")
    assert sorted(p.name for p in here.iterdir()) == ["b" * 250, "reg"]



# 2. Disclosures: no run prints bytes of a file it was not given.

HEAD = "source: s\ninput: {size: 32}\nclasses: 10\nlayers:\n  - conv: {c: 8}\n"


@pytest.mark.parametrize("name", ["/proc/self/cwd/secret", "UP/secret", "x" * 5000],
                         ids=["absolute", "relative", "long"])
def test_a_spec_name_is_never_a_path(here, name):
    name = name.replace("UP", "../" * 12 + str(here).lstrip("/"))
    Path("secret.yaml").write_text("title: TOPSECRET\nsource: hunter2\n")
    Path("t.yaml").write_text(f"name: {name}\n" + HEAD)
    for command in ("count", "memory", "check"):
        result = runner.invoke(app, [command, "t.yaml", "-f", "json"])
        assert result.exit_code == 0, result.output  # the split lookup used to open it
        assert "TOPSECRET" not in result.output and "hunter2" not in result.output


def csv_fails(args: list[str], message: str) -> None:
    fails(args, message)
    assert not Path("p.yaml").exists()


def test_a_csv_that_links_outside_is_refused(here):
    Path("m.csv").symlink_to("/etc/passwd")
    for args in (["calibrate", "m.csv", "-o", "p.yaml"], ["measure", "--grid", "m.csv"]):
        csv_fails(args, "m.csv: measurements 'm.csv' is outside its folder and the current "
                        "folder (links followed)")
    os.mkfifo("fifo.csv")
    csv_fails(["calibrate", "fifo.csv", "-o", "p.yaml"],
              "fifo.csv: cannot read measurements: not a regular file")
    csv_fails(["calibrate", "missing.csv", "-o", "p.yaml"],
              "missing.csv: cannot read measurements: No such file or directory")


ROWS = "spec,alpha,res,classes,ms\nmobilenet_v1,0.5,128,,10\nmobilenet_v2,0.5,128,,9\n"


@pytest.mark.parametrize(("data", "message"), ids=["utf16", "latin1", "tiny", "huge", "arabic",
                                                   "res", "classes"], argvalues=[
    (ROWS.encode("utf-16"), "1:1: measurements is UTF-16; save it as UTF-8"),
    (ROWS.replace("10", "1\xe9").encode("latin-1"), "2:24: byte 0xE9 is not UTF-8; save "
                                                    "measurements as UTF-8"),
    # SVD did not converge
    (ROWS.replace(",10", ",1e-300").encode(), "2:23: ms must be a number of milliseconds from "
                                              "0.001 to 10,000,000, got '1e-300'"),
    (ROWS.replace(",10", ",1e300").encode(), "2:23: ms must be a number of milliseconds from "
                                             "0.001 to 10,000,000, got '1e300'"),
    # str.isdigit() and int() read these as 128
    (ROWS.replace("0.5,128", "0.5,١٢٨", 1).encode(), "2:18: res must be a positive integer up "
                                                     "to 16,384, got '١٢٨'"),
    (ROWS.replace("128", "16385", 1).encode(), "2:18: res must be a positive integer up to "
                                               "16,384, got '16385'"),
    (ROWS.replace("128,", "128,2000000", 1).encode(), "2:22: classes must be a positive integer "
                                                      "up to 1,000,000, got '2000000'"),
])
def test_bad_csvs_are_located(here, data, message):
    Path("m.csv").write_bytes(data)
    csv_fails(["calibrate", "m.csv", "-o", "p.yaml"], f"m.csv:{message}")


def test_csv_rows_and_grid_lists_are_bounded(here):
    Path("m.csv").write_text("spec,alpha,res,classes,ms\n" + "mobilenet_v1,,,,10\n" * 301)
    csv_fails(["calibrate", "m.csv", "-o", "p.yaml"], "m.csv:302:1: more than 300 rows of "
                                                      "measurements")
    fails(["measure", "--grid", ",".join(["mobilenet_v1"] * 3000)],  # once checked as a path
          "--grid names 3,000 points, more than 300")
    fails(["measure", "--grid", ",".join(["v1"] * 1000)], "--grid names 16,000 points, more "
                                                          "than 300")  # v1's 16 rows each


# 3. Injection: names from files reach no terminal or CI log raw.

PIXEL1 = (Path(__file__).resolve().parent.parent / "macscalc" / "data" / "profiles"
          / "pixel1.yaml").read_text(encoding="utf-8")
EVIL = '"x\\n::error file=README.md,line=1::pwned \\e[31mred\\u202e"'


def clean(output: str) -> None:
    """No control or invisible format character but newlines, and no workflow command."""
    assert not any(line.lstrip().startswith("::") for line in output.splitlines()), output
    assert not any(ch in output for ch in "\x1b\x9b\u202e\r"), output


@pytest.mark.parametrize("fmt", ["table", "markdown", "json"])
def test_a_profile_name_cannot_inject(here, fmt):
    Path("p.yaml").write_text(PIXEL1.replace("name: pixel1", f"name: {EVIL}"), encoding="utf-8")
    result = runner.invoke(app, ["count", "mobilenet_v1", "--device", "p.yaml", "-f", fmt])
    assert result.exit_code == 0, result.output
    clean(result.output)
    shown = "\\u001b[31mred" if fmt == "json" else "\\x1b[31mred"
    assert shown in result.output  # escaped, never dropped silently


@pytest.mark.parametrize("fmt", ["table", "wide", "markdown", "json", "github"])
def test_a_spec_name_cannot_inject(here, fmt):
    Path("t.yaml").write_text(f"name: {EVIL}\n" + HEAD, encoding="utf-8")
    command = ["check", "t.yaml", "--max-macs", "1"] if fmt == "github" else ["count", "t.yaml"]
    result = runner.invoke(app, [*command, "-f", fmt])
    assert result.exit_code == (1 if fmt == "github" else 0), result.output
    if fmt == "github":  # one annotation, its own; the name's newline escaped as %0A
        assert result.output.count("\n") == 1 and "x%0A::error" in result.output
    clean(result.output.removeprefix("::"))


# 4. Device profiles and latency limits: finite positive rates, bounded values.

@pytest.mark.parametrize(("value", "shown"), [("0", "0"), ("0.0", "0.0"), (".nan", "nan"),
                                              ("-4.7", "-4.7"), ("1.0e+300", "1e+300")])
def test_a_profile_rate_is_positive_and_bounded(here, value, shown):
    text = re.sub(r"conv1x1_gmacs_per_s: \d[0-9.]*", f"conv1x1_gmacs_per_s: {value}", PIXEL1)
    Path("p.yaml").write_text(text, encoding="utf-8")
    for args in (["count", "mobilenet_v1"], ["check", "mobilenet_v1", "--max-latency", "1"],
                 ["explain", "latency", "mobilenet_v1"], ["pick", "--max-latency", "20"]):
        fails([*args, "--device", "p.yaml"], f"p.yaml:8:24: 'conv1x1_gmacs_per_s' must be a "
                                             "positive number up to 1,000,000,000 or .inf (no "
                                             "cost: a term the calibration left free), got "
                                             f"{shown}")


@pytest.mark.parametrize(("value", "shown"), [("-1", "-1"), ("65", "65"), ("16.0", "16.0"),
                                              ("yes", "True"), ("'16'", "'16'")])
def test_a_profile_layout_block_is_a_whole_number_of_channels(here, value, shown):
    text = re.sub(r"layout_block: \d+", f"layout_block: {value}", PIXEL1)
    Path("p.yaml").write_text(text, encoding="utf-8")
    fails(["count", "mobilenet_v1", "--device", "p.yaml"],
          "p.yaml:6:15: 'layout_block' must be a whole number of channels from 1 to 64, or 0 "
          "for a channels-last runtime, got " + shown)


def test_a_profile_with_every_rate_free_is_refused(here):
    # .inf is a term the calibration left free (pixel1's memory and exp rates); with every
    # rate free, every estimate would be 0 ms and pass any --max-latency
    text = re.sub(r"(_per_s): \d[0-9.]*", r"\1: .inf", PIXEL1)
    Path("p.yaml").write_text(text, encoding="utf-8")
    fails(["check", "mobilenet_v1", "--max-latency", "1", "--device", "p.yaml"],
          "p.yaml:8:3: a profile needs at least one finite rate: with every term free, every "
          "estimate would be 0 ms")


def test_a_profile_that_is_not_a_regular_file_or_too_long_a_name(here):
    os.mkfifo("p.yaml")
    fails(["count", "mobilenet_v1", "--device", "p.yaml"],
          "p.yaml: cannot read profile: not a regular file")
    fails(["count", "mobilenet_v1", "--device", "x" * 5000],
          f"no profile file or built-in profile named '{'x' * 39}… (built-ins: cpu_epyc_1t, "
          "pixel1)")


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "0.0001", "20000000"])
def test_max_latency_is_a_finite_positive_number(value):
    shown = {"1e400": "inf", "0.0001": "0.0001", "20000000": "20000000.0"}.get(value, value)
    for command in (["check", "mobilenet_v1"], ["pick"]):
        fails([*command, "--device", "pixel1", "--max-latency", value],
              f"--max-latency must be a number of milliseconds from 0.001 to 10,000,000, got "
              f"{shown}")


def test_pick_family_names_a_family():
    fails(["pick", "--family", ","], "--family ',' names no family (known: detection, hybrid, "
                                     "micronet, segmentation, v1, v2, v3, zoo)")


# 5. Sweeps: sized before anything is expanded, within the documented α and size limits.

@pytest.mark.parametrize(("alpha", "res", "message"), ids=["product", "range", "alphas", "huge",
                                                           "decimals", "size", "digits"],
                         argvalues=[
    # 16,000,000 α × 16,384 sizes = 2.6e11 points: expanded before the cap was checked
    ("0.000001:16:0.000001", "1:16384", "16,000,000 α values are more than a sweep holds "
                                        "(1,000); take a larger step"),
    ("0.5", "1:16384:0.001", "1 α × 16,383,001 resolutions = 16,383,001 points, more than a "
                             "sweep holds (1,000,000); narrow the ranges or take larger steps"),
    ("0.01:16:0.01", "224", "1,600 α values are more than a sweep holds (1,000); take a larger "
                            "step"),
    ("1" + "0" * 400, "224", "--alpha must be numbers, START:STOP:STEP ranges or comma lists of "
                             "them, got '1" + "0" * 38 + "…"),
    ("0.1234567", "224", "width multiplier must be a positive number up to 16 (at most 6 "
                         "decimals), got 0.1234567"),
    ("0.5", "16385", "resolution must be a whole number from 1 to 16,384, got 16385"),
    ("0.5", "١٢٨", "--res must be numbers, START:STOP:STEP ranges or comma lists of them, got "
                   "'١٢٨'"),
])
def test_sweep_ranges_are_sized_first(alpha, res, message):
    fails(["sweep", "mobilenet_v1", "--alpha", alpha, "--res", res], message)


# 6. Specs: block chains, digits, networks with nothing to count.

SPEC = "name: t\nsource: s\ninput: {size: 32}\nclasses: 10\n"


def chain(depth: int, reverse: bool = False) -> str:
    """Blocks b0 … b{depth-1}, each using the one before; the spec uses the last."""
    defs = ["  b0:\n    layers:\n      - conv: {c: 8}\n"]
    defs += [f"  b{i}:\n    layers:\n      - b{i - 1}: {{}}\n" for i in range(1, depth)]
    return (SPEC + "blocks:\n" + "".join(defs[::-1] if reverse else defs)
            + f"layers:\n  - b{depth - 1}: {{}}\n")


@pytest.mark.parametrize("reverse", [False, True], ids=["defined-inner-first", "outer-first"])
def test_block_chains_are_depth_limited(here, reverse):
    Path("t.yaml").write_text(chain(250, reverse))  # RecursionError in every command
    line, user = (101, 218) if reverse else (104, 32)
    message = (f"t.yaml:{line}:9: blocks are used inside one another more than 32 deep (here "
               f"b{user} uses b{user - 1})")
    for command in ("count", "memory"):
        fails([command, "t.yaml"], message)
    result = runner.invoke(app, ["check", "t.yaml", "--max-macs", "1"])  # a row of its table
    assert result.exit_code == 2 and f"error: {message}\n" in result.stderr
    Path("t.yaml").write_text(chain(32))
    result = runner.invoke(app, ["count", "t.yaml", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert '"macs": 24576' in result.stdout  # 1·1·3·8·32·32 (k defaults to 1), 32 blocks deep


def test_block_expressions_read_ascii_digits_only(here):
    Path("t.yaml").write_text(SPEC + "blocks:\n  b:\n    args: {w: 8}\n    layers:\n"
                              "      - conv: {c: \"$w * ٢\"}\nlayers:\n  - b: {w: 8}\n")
    fails(["count", "t.yaml"], "t.yaml:9:19: cannot read the expression at ' ٢' (in block 'b' "
                               "used at line 11)")


def test_a_network_with_no_layers_is_an_error(here):
    Path("t.yaml").write_text(SPEC + "blocks:\n  b:\n    args: {w: 0}\n    layers:\n"
                              "      - conv: {c: 8, if: \"$w > 0\"}\nlayers:\n  - b: {w: 0}\n")
    for command in ("count", "memory"):  # "MACs: 0" and exit 0 before
        fails([command, "t.yaml"], "t.yaml:1: the network has no layers (every row was left out "
                                   "by its 'if')")


def test_explain_scaling_of_a_spec_without_macs(here):
    Path("t.yaml").write_text(SPEC + "layers:\n  - pool: {op: max, k: 2, s: 2}\n")
    fails(["explain", "scaling", "t.yaml", "--alpha", "0.5"],
          "t.yaml: explain scaling needs conv or FC layers: 't' has no MACs to scale")


# 7. Export and measure: the work a model asks for is sized before it is done.

@pytest.mark.parametrize(("args", "message"), ids=["classes", "alpha"], argvalues=[
    # V1's 4,231,976 torch params (framework-counts.md) less its 1,025,000 classifier, plus
    # 1024·10⁶ + 10⁶ for 1,000,000 classes and 21,888 BN statistics (2 × 10,944 channels):
    # 4.8 GiB drawn before anything was written
    (["export", "mobilenet_v1", "--classes", "1000000", "-o", "m.onnx"],
     "specs/mobilenet_v1.yaml: 1,028,228,864 parameters are more than an exported model holds "
     "(150,000,000): they are drawn and written before anything runs"),
    # = macscalc count mobilenet_v2 --alpha 16 --params all
    (["export", "mobilenet_v2", "--alpha", "16", "-o", "m.onnx"],
     "specs/mobilenet_v2.yaml: 566,530,024 parameters are more than an exported model holds "
     "(150,000,000): they are drawn and written before anything runs"),
])
def test_export_is_bounded(here, args, message):
    pytest.importorskip("onnx")
    fails(args, message, seconds=10)
    assert list(here.iterdir()) == []


@pytest.mark.parametrize(("args", "message"), ids=["res", "alpha"], argvalues=[
    # MACs = macscalc count; bytes = 4 × macscalc memory's peak (8192²·96 elements at 16384:
    # the stem's 32 channels live beside the first pointwise conv's 64)
    (["--res", "16384"], "mobilenet_v1 (3,037,213,990,912 MACs, 25,769,803,776 bytes of "
                         "activations at fp32) is past what measure runs (50,000,000,000 MACs, "
                         "2,147,483,648 bytes)"),
    (["--alpha", "16"], "mobilenet_v2 (69,117,949,952 MACs, 96,337,920 bytes of activations "
                        "at fp32) is past what measure runs (50,000,000,000 MACs, "
                        "2,147,483,648 bytes)"),
])
def test_measure_is_bounded(here, args, message):
    spec = "mobilenet_v2" if "--alpha" in args else "mobilenet_v1"
    fails(["measure", spec, *args], f"specs/{spec}.yaml: {message}", seconds=10)


@pytest.mark.parametrize("args", [["measure", "mobilenet_v1", "--threads", "100000"],
                                  ["measure", "mobilenet_v1", "--runs", "100000000"],
                                  ["measure", "mobilenet_v1", "--warmup", "100000000"],
                                  ["export", "mobilenet_v1", "--seed", "-1", "-o", "m.onnx"],
                                  ["export", "mobilenet_v1", "--classes", "1000001", "-o",
                                   "m.onnx"]])
def test_measure_and_export_options_are_bounded_by_the_parser(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Invalid value for" in result.stderr


@pytest.mark.parametrize(("spec", "message"), [
    ("../secret.env", "a spec file named in a CSV ends in .yaml or .yml"),
    ("link.yaml", "the spec file is outside the CSV's folder and the current folder (links "
                  "followed)"),
])
def test_a_csv_names_spec_files_beside_it_only(here, spec, message):
    Path("secret.env").write_text("API_KEY=hunter2\n")
    Path("sub").mkdir()
    Path("sub/link.yaml").symlink_to("/etc/passwd")
    Path("sub/m.csv").write_text(f"spec,alpha,res,classes,ms\n{spec},,,,10\nmobilenet_v1,,,,9\n")
    csv_fails(["calibrate", "sub/m.csv", "-o", "p.yaml"], f"sub/m.csv:2:1: spec '{spec}': "
                                                           f"{message}")
