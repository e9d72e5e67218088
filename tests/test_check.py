"""macscalc check: limits, where they come from, the verdict and its exit status."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from macscalc.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
TINY = """name: tiny
source: test
input: {size: 32}
classes: 10
budget: {macs: 1M, params: 2_000}
layers:
  - conv: {c: 16, k: 3, s: 2, bn: true, act: relu}
  - global_pool: {}
  - fc: {c: classes}
"""
# tiny: conv 3·3·3·16 at 16·16 = 110,592 MACs; fc 16·10 = 160 → 110,752 MACs
# params (torch): conv 432 + BN γ/β 32 + fc 160 + 10 = 634


def check(*args: str):
    return runner.invoke(app, ["check", *args])


def test_within_budget_exits_0_and_names_the_margin(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY, encoding="utf-8")
    result = check(str(spec), "-f", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["kind"], data["verdict"]) == ("check", "pass")
    checks = {c["metric"]: c for c in data["reports"][0]["checks"]}
    assert (checks["macs"]["value"], checks["macs"]["margin"]) == (110_752, 889_248)
    assert (checks["params"]["value"], checks["params"]["margin_pct"]) == (634, "68.30")
    assert checks["macs"]["set_by"] == f"{spec}:5"


def test_over_budget_exits_1_with_the_overshoot():
    result = check("mobilenet_v2", "--max-macs", "300M", "--max-params", "3.6M")
    assert result.exit_code == 1
    assert ("mobilenet_v2  MACs    300,774,272  300,000,000  -774,272     -0.26  --max-macs    OVER"
            in result.stdout)
    assert "FAIL: 1 of 2 limits met across 1 spec(s)." in result.stdout


def test_flops_limits_compare_with_twice_the_macs():
    # 2 × 300,774,272 = 601,548,544 FLOPs: over 0.6G although the MACs are half of it
    result = check("mobilenet_v2", "--max-flops", "0.6G", "-f", "json")
    assert result.exit_code == 1
    (c,) = json.loads(result.stdout)["reports"][0]["checks"]
    assert (c["metric"], c["value"], c["max"]) == ("flops", 601_548_544, 600_000_000)


def test_the_most_specific_limit_wins(tmp_path):
    """Flags, then the file's entry for the spec, then the spec's own budget, then the
    file's top-level defaults."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY, encoding="utf-8")
    budget = tmp_path / "budget.yaml"
    budget.write_text("params: 600\nflops: 1M\nspecs:\n  tiny: {macs: 100_000}\n",
                      encoding="utf-8")
    result = check(str(spec), "--budget", str(budget), "-f", "json")
    assert result.exit_code == 1
    checks = {c["metric"]: c for c in json.loads(result.stdout)["reports"][0]["checks"]}
    # the file's entry for tiny (100,000) beats the spec's own 1M: 110,752 MACs are over
    assert checks["macs"]["set_by"] == f"{budget}:4" and checks["macs"]["ok"] is False
    # the spec's own params: 2_000 beats the file's default 600: 634 params are within
    assert checks["params"]["set_by"] == f"{spec}:5" and checks["params"]["ok"] is True
    # the spec sets no FLOPs, so the file's default applies: 2 × 110,752 ≤ 1M
    assert checks["flops"]["set_by"] == f"{budget}:2" and checks["flops"]["value"] == 221_504
    result = check(str(spec), "--budget", str(budget), "--max-macs", "1M", "--max-params",
                   "1K", "-f", "json")
    assert result.exit_code == 0
    checks = {c["metric"]: c["set_by"] for c in json.loads(result.stdout)["reports"][0]["checks"]}
    assert checks == {"macs": "--max-macs", "params": "--max-params", "flops": f"{budget}:2"}


def test_github_annotations_point_at_the_limit(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.replace("macs: 1M", "macs: 100K"), encoding="utf-8")
    result = check(str(spec), "-f", "github")
    assert result.exit_code == 1
    first = result.stdout.splitlines()[0]
    assert first == (f"::error file={spec},line=5,col=16,title=macscalc budget::tiny: MACs "
                     f"110,752 exceeds 100,000 ({spec}:5) by 10,752 (10.75 %25)")
    assert len(result.stdout.splitlines()) == 1  # the params limit met: no notice
    noisy = check(str(spec), "-f", "github", "--notices").stdout.splitlines()
    assert noisy[1] == (f"::notice file={spec},line=5,col=30,title=macscalc budget::tiny: "
                        f"params 634 within 2,000 ({spec}:5), 1,366 to spare (68.30 %25)")


def test_github_annotates_a_broken_spec_at_its_mistake_and_goes_on(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(TINY.replace("conv:", "convv:"), encoding="utf-8")
    result = check(str(broken), "mobilenet_v2", "--max-macs", "300M", "-f", "github")
    assert result.exit_code == 2  # the worst status: 2 (broken) over 1 (mobilenet_v2 over)
    first, second = result.stdout.splitlines()
    assert first.startswith(f"::error file={broken},line=7,col=5,title=macscalc::unknown "
                            "layer kind 'convv'")
    # a built-in spec is annotated with its path in macscalc's repository
    assert second.startswith("::error file=specs/mobilenet_v2.yaml,line=2,title=macscalc "
                             "budget::mobilenet_v2: MACs 300,774,272 exceeds 300,000,000")


def test_paths_are_annotated_from_the_repository_root(tmp_path, monkeypatch):
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "tiny.yaml"
    spec.write_text(TINY, encoding="utf-8")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    result = check(str(spec), "--max-macs", "1K", "-f", "github")
    assert result.stdout.startswith("::error file=specs/tiny.yaml,line=1,title=")


def test_every_spec_is_checked_and_the_worst_status_wins(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.replace("macs: 1M", "macs: 100K"), encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text(TINY.replace("conv:", "convv:"), encoding="utf-8")
    result = check(str(bad), "mobilenet_v2", "-f", "json")
    # bad is over its own 100K MACs (1); mobilenet_v2 has no limit: reported, not an error
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["verdict"], data["unlimited"], data["errors"]) == ("fail", ["mobilenet_v2"],
                                                                    [])
    result = check(str(broken), str(bad), "mobilenet_v2", "-f", "json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["verdict"] == "error"
    assert [r["spec"]["name"] for r in data["reports"]] == ["tiny", "mobilenet_v2"]
    (error,) = data["errors"]
    assert (error["file"], error["line"], error["col"]) == (str(broken), 7, 5)
    assert result.stderr.startswith(f"error: {broken}:7:5: unknown layer kind 'convv'")


def test_a_spec_without_limits_is_reported_unless_limits_are_required():
    result = check("mobilenet_v2")
    assert result.exit_code == 0
    assert "mobilenet_v2: no limits (give a --max-* flag or a budget; --require-limits " \
           "makes this an error)" in result.stdout
    result = check("mobilenet_v2", "--require-limits")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: specs/mobilenet_v2.yaml:2: no limits for 'mobilenet_v2' (--require-limits): "
        "give --max-macs, --max-flops, --max-params, --max-memory or --max-size, a 'budget:' "
        "section in the spec, --budget FILE or --baseline\n")


def test_size_limit_is_on_the_weights_at_the_dtype(tmp_path):
    # mobilenet_v2: 3,504,872 params (torchvision) × 4 bytes = 14,019,488; × 1 at int8
    result = check("mobilenet_v2", "--max-size", "5MB", "-f", "json")
    assert result.exit_code == 1
    (c,) = json.loads(result.stdout)["reports"][0]["checks"]
    assert (c["metric"], c["value"], c["max"]) == ("size", 14_019_488, 5_000_000)
    assert check("mobilenet_v2", "--max-size", "5MB", "--dtype", "int8").exit_code == 0
    budget = tmp_path / "budget.yaml"
    budget.write_text("size: 3.5MB\n", encoding="utf-8")
    result = check("mobilenet_v2", "--budget", str(budget), "--dtype", "int8", "-f", "json")
    assert result.exit_code == 1  # 3,504,872 bytes > 3,500,000
    (c,) = json.loads(result.stdout)["reports"][0]["checks"]
    assert (c["value"], c["set_by"]) == (3_504_872, f"{budget}:1")


def test_a_spec_may_limit_its_own_size(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.replace("params: 2_000}", "size: 2KB}"), encoding="utf-8")
    result = check(str(spec), "-f", "json")
    assert result.exit_code == 1  # 634 params × 4 bytes = 2,536 > 2,000
    size = json.loads(result.stdout)["reports"][0]["checks"][1]
    assert (size["metric"], size["value"], size["max"]) == ("size", 2_536, 2_000)


def test_baseline_growth(tmp_path):
    base = tmp_path / "base.json"
    assert runner.invoke(app, ["count", "mobilenet_v2", "-f", "json", "-o", str(base)]
                         ).exit_code == 0
    assert check("mobilenet_v2", "--baseline", str(base)).exit_code == 0
    result = check("mobilenet_v2", "--alpha", "1.3", "--baseline", str(base), "--max-growth",
                   "50%", "-f", "json")
    assert result.exit_code == 1  # 509,374,560 MACs is 69.35 % over 300,774,272
    macs = json.loads(result.stdout)["reports"][0]["checks"][0]
    assert (macs["baseline"], macs["value"], macs["max"]) == (300_774_272, 509_374_560,
                                                              451_161_408)


@pytest.mark.parametrize(("args", "message"), [
    (["mobilenet_v2", "--max-macs", "lots"],
     "error: --max-macs must be a number such as 300M, 0.3G, 3.5e8 or 1_000_000, got "
     "'lots'\n"),
    (["mobilenet_v2", "--max-growth", "x", "--max-macs", "1G"],
     "error: --max-growth must be a percentage such as 2%, got 'x'\n"),
])
def test_bad_input_exits_2(args, message):
    result = check(*args)
    assert result.exit_code == 2
    assert result.stderr == message


def test_bad_budget_file_is_located(tmp_path):
    budget = tmp_path / "b.yaml"
    budget.write_text("macs: 300M\nlatency: 5\n", encoding="utf-8")
    result = check("mobilenet_v2", "--budget", str(budget))
    assert result.exit_code == 2
    assert result.stderr == (f"error: {budget}:2:1: unknown limit 'latency' in the budget file "
                             "(expected one of: macs, flops, params, memory, size)\n")


def test_pre_commit_hook_end_to_end(tmp_path):
    """Run the hook's entry as pre-commit would: on the changed spec files."""
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert re.search(hook["files"], "models/specs/good.yaml")
    assert not re.search(hook["files"], ".github/workflows/ci.yaml")
    entry = shlex.split(hook["entry"])
    assert shutil.which(entry[0]), "macscalc must be installed for the hook to run"
    specs = tmp_path / "specs"
    specs.mkdir()
    good, bad, broken = specs / "good.yaml", specs / "bad.yaml", specs / "broken.yaml"
    good.write_text(TINY, encoding="utf-8")
    bad.write_text(TINY.replace("macs: 1M", "macs: 100K"), encoding="utf-8")
    broken.write_text(TINY.replace("conv:", "convv:"), encoding="utf-8")

    def hook_on(*files: Path) -> int:
        return subprocess.run([*entry, *map(str, files)], capture_output=True,
                              cwd=tmp_path).returncode

    assert hook_on(good) == 0
    assert hook_on(good, bad) == 1
    assert hook_on(good, broken) == 2
