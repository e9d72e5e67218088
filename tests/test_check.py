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
    assert "│ mobilenet_v2 │ MACs   │ 300,774,272 │ 300,000,000 │ -774,272 │    -0.26 │" in (
        result.stdout)
    assert "FAIL: 1 of 2 limits met across 1 spec(s)." in result.stdout


def test_flops_limits_compare_with_twice_the_macs():
    # 2 × 300,774,272 = 601,548,544 FLOPs: over 0.6G although the MACs are half of it
    result = check("mobilenet_v2", "--max-flops", "0.6G", "-f", "json")
    assert result.exit_code == 1
    (c,) = json.loads(result.stdout)["reports"][0]["checks"]
    assert (c["metric"], c["value"], c["max"]) == ("flops", 601_548_544, 600_000_000)


def test_flags_override_budget_file_which_overrides_the_spec(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY, encoding="utf-8")
    budget = tmp_path / "budget.yaml"
    budget.write_text("params: 600\nspecs:\n  tiny: {macs: 100_000}\n", encoding="utf-8")
    result = check(str(spec), "--budget", str(budget), "-f", "json")
    assert result.exit_code == 1
    checks = {c["metric"]: c for c in json.loads(result.stdout)["reports"][0]["checks"]}
    assert checks["macs"]["set_by"] == f"{budget}:3" and checks["macs"]["ok"] is False
    assert checks["params"]["set_by"] == f"{budget}:1" and checks["params"]["ok"] is False
    result = check(str(spec), "--budget", str(budget), "--max-macs", "1M", "--max-params",
                   "1K", "-f", "json")
    assert result.exit_code == 0
    checks = {c["metric"]: c["set_by"] for c in json.loads(result.stdout)["reports"][0]["checks"]}
    assert checks == {"macs": "--max-macs", "params": "--max-params"}


def test_github_annotations_point_at_the_limit(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.replace("macs: 1M", "macs: 100K"), encoding="utf-8")
    result = check(str(spec), "-f", "github")
    assert result.exit_code == 1
    first = result.stdout.splitlines()[0]
    assert first == (f"::error file={spec},line=5,col=16,title=macscalc budget::tiny: MACs "
                     f"110,752 exceeds 100,000 ({spec}:5) by 10,752 (10.75 %25)")
    assert result.stdout.splitlines()[1].startswith("::notice ")


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
    (["mobilenet_v2"], "error: no limits for 'mobilenet_v2': give --max-macs, --max-flops or "
                       "--max-params, a 'budget:' section in the spec, --budget FILE, "
                       "--baseline or --against MODEL\n"),
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
                             "(expected one of: macs, flops, params, memory)\n")


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
