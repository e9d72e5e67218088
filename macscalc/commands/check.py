"""``macscalc check``: every spec counted and held to its limits (flags, a budget file, the
spec's own ``budget:``, growth over a baseline) or to a shipped model; the exit status is
the verdict (0 within, 1 over, 2 a spec that cannot be read or counted)."""

from __future__ import annotations

import sys
from pathlib import Path

from macscalc.commands import inputs
from macscalc.commands.budget import (
    check_doc,
    check_specs,
    github_annotations,
    growth_outcomes,
    limits_for,
    load_baseline,
    load_budget_file,
    parse_growth,
)
from macscalc.core.errors import MacscalcError, printable
from macscalc.core.files import write_atomic
from macscalc.core.units import parse_bytes, parse_count, parse_ms
from macscalc.render.output import render


def limit_flags(counts: dict[str, str | None], sizes: dict[str, str | None],
                max_latency: float | None, device: str | None) -> dict[str, int]:
    """The --max-* flags given, as exact limits: counts (MACs, FLOPs, params), bytes
    (memory, size) and latency in µs (which needs a device)."""
    flags = {k: parse_count(v, f"--max-{k}") for k, v in counts.items() if v is not None}
    flags |= {k: parse_bytes(v, f"--max-{k}") for k, v in sizes.items() if v is not None}
    if max_latency is not None:
        if device is None:
            from macscalc.analysis.latency import profile_names

            raise MacscalcError(f"--max-latency needs --device PROFILE (built-in: "
                                f"{', '.join(profile_names())}; or a file from macscalc "
                                "calibrate)")
        flags["latency"] = round(parse_ms(max_latency, "--max-latency") * 1000)
    return flags


def run_check(specs: list[str], flags: dict[str, int], *, device: str | None = None,
              budget: Path | None = None, baseline: Path | None = None,
              max_growth: str = "0%", require_limits: bool = False,
              against: str | None = None, notices: bool = False, fmt: str = "text",
              output: Path | None = None, params: str = "torch", ops: str = "none",
              dtype: str = "fp32", alpha: str | None = None, res: int | None = None,
              allow_unknown: bool = False) -> int:
    """Check every spec, write the report (or the GitHub annotations, or the drift against
    ``against``), and return the exit status: the worst of the specs'."""
    conv = inputs.convention(params, ops, dtype)
    budget_file = load_budget_file(budget) if budget else None
    growth = parse_growth(max_growth)
    base = load_baseline(baseline) if baseline else None
    profile = inputs.profile(device)
    checked = check_specs(
        specs, lambda ref: inputs.counted(ref, conv, profile, alpha=alpha, res=res,
                                          allow_unknown=allow_unknown),
        lambda report, ref: limits_for(report.network.spec, ref, flags, budget_file),
        lambda report: growth_outcomes(report, base, str(baseline), growth) if base else [],
        require_limits)
    status = max(c.status for c in checked)
    if against is not None:
        from macscalc.commands.drift import drift_check

        model = inputs.counted(against, conv, allow_unknown=allow_unknown)
        if drift_check(checked, model, fmt, output, against, notices):
            status = max(status, 1)
    elif fmt == "github":
        text = github_annotations(checked, notices)
        if output is None:
            sys.stdout.write(text)
        else:
            write_atomic(output, text)
    else:
        render(check_doc(checked), "table" if fmt == "text" else fmt, output)
    if fmt != "github":
        for c in checked:
            if c.error is not None:
                sys.stderr.write(f"error: {printable(c.error.located())}\n")
    return status
