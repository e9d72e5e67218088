"""Compute budgets: limits on MACs, FLOPs and parameters, where each comes from, and the
verdict of ``macscalc check``.

A limit comes from, in order of precedence: a command-line flag, the budget file
(``--budget``; an entry for the spec, then its top-level limits), the spec's own
``budget:`` section. A FLOPs limit is compared with FLOPs (2 × MACs plus the extra ops
switched on), never with MACs. A baseline report adds growth limits: a counter may not
grow by more than ``--max-growth`` over the same spec in the saved report.
"""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

from macscalc.counting import Report
from macscalc.errors import MacscalcError, show
from macscalc.limits import MAX_COUNT, MAX_GROWTH, MAX_REPORT_BYTES
from macscalc.output import Column, Doc, Table
from macscalc.report import envelope, pct, report_data, settings_data
from macscalc.spec import BUDGET_KEYS, Spec
from macscalc.units import exact, fmt_int, parse_limit
from macscalc.yamlload import LocDict, load, read_text

NAMES = {"macs": "MACs", "flops": "FLOPs", "params": "params", "memory": "peak memory (bytes)"}


class Limit(NamedTuple):
    metric: str  # macs, flops, params
    value: int
    origin: str  # where it was set, as people read it
    file: str | None = None
    line: int | None = None
    col: int | None = None


class Outcome(NamedTuple):
    spec: str
    limit: Limit
    actual: int
    baseline: int | None = None  # set for growth limits

    @property
    def ok(self) -> bool:
        return self.actual <= self.limit.value

    @property
    def margin(self) -> int:
        """Room left (positive) or overshoot (negative), in the counter's unit."""
        return self.limit.value - self.actual

    def message(self) -> str:
        name = NAMES[self.limit.metric]
        what = f"{name} {fmt_int(self.actual)}"
        if self.baseline is not None:
            what += (f" ({'+' if self.actual >= self.baseline else ''}"
                     f"{pct(self.actual - self.baseline, self.baseline)} % over the baseline's "
                     f"{fmt_int(self.baseline)})")
        if self.ok:
            return (f"{self.spec}: {what} within {fmt_int(self.limit.value)} "
                    f"({self.limit.origin}), {fmt_int(self.margin)} to spare "
                    f"({pct(self.margin, self.limit.value)} %)")
        return (f"{self.spec}: {what} exceeds {fmt_int(self.limit.value)} "
                f"({self.limit.origin}) by {fmt_int(-self.margin)} "
                f"({pct(-self.margin, self.limit.value)} %)")


class BudgetFile(NamedTuple):
    """``--budget FILE``: top-level limits for every spec, and ``specs:`` entries by name."""

    file: str
    common: dict[str, Limit]
    per_spec: dict[str, dict[str, Limit]]


def _limits(m: LocDict, file: str, where: str) -> dict[str, Limit]:
    out = {}
    for key, value in m.items():
        line, col = m.value_locs[key]
        if key not in BUDGET_KEYS:
            line, col = m.key_locs[key]
            raise MacscalcError(f"unknown limit {show(key)} in {where} (expected one of: "
                                f"{', '.join(BUDGET_KEYS)})", file, line, col)
        try:
            n = parse_limit(key, value, f"{key!r}")
        except MacscalcError as e:
            raise MacscalcError(e.message, file, line, col) from None
        out[key] = Limit(key, n, f"{file}:{line}", file, line, col)
    return out


def load_budget_file(path: Path) -> BudgetFile:
    file = str(path)
    doc = load(read_text(path, file, "budget file"), file)
    if not isinstance(doc, LocDict):
        raise MacscalcError("a budget file must be a mapping of limits", file, 1, 1)
    per_spec: dict[str, dict[str, Limit]] = {}
    specs = LocDict() if doc.get("specs") is None else doc["specs"]
    if not isinstance(specs, LocDict):
        line, col = doc.value_locs["specs"]
        raise MacscalcError("'specs' must map spec names or paths to limits", file, line, col)
    for name, limits in specs.items():
        if not isinstance(limits, LocDict):
            line, col = specs.value_locs[name]
            raise MacscalcError(f"limits for {show(name)} must be a mapping", file, line, col)
        per_spec[str(name)] = _limits(limits, file, f"the limits of {show(name)}")
    common = LocDict()
    for key in doc:
        if key != "specs":
            common[key] = doc[key]
            common.key_locs[key], common.value_locs[key] = doc.key_locs[key], doc.value_locs[key]
    return BudgetFile(file, _limits(common, file, "the budget file"), per_spec)


def limits_for(spec: Spec, ref: str, flags: dict[str, int],
               budget_file: BudgetFile | None) -> dict[str, Limit]:
    """The limits that apply to one spec, flags first."""
    out = {k: Limit(k, v.value, f"{spec.file}:{v.line}", spec.file, v.line, v.col)
           for k, v in spec.budget.items()}
    if budget_file is not None:
        out.update(budget_file.common)
        out.update(budget_file.per_spec.get(spec.name, {}))
        out.update(budget_file.per_spec.get(ref, {}))
    out.update({k: Limit(k, v, f"--max-{k}") for k, v in flags.items()})
    return out


def parse_growth(text: str) -> Decimal:
    """``2%``, ``2`` or ``0.5 %`` → Decimal percent, from 0 to ``MAX_GROWTH``."""
    number = text.strip().removesuffix("%").strip()
    try:
        value = exact(number)
    except ValueError:
        raise MacscalcError(f"--max-growth must be a percentage such as 2%, got {show(text)}") \
            from None
    if not 0 <= value <= MAX_GROWTH:
        raise MacscalcError(f"--max-growth must be from 0 to {MAX_GROWTH:,} %, got {show(text)}")
    return Decimal(number)


def load_baseline(path: Path) -> list[dict[str, Any]]:
    """The reports of a saved ``count``/``check``/``compare`` JSON document, each checked to
    have the parts ``check`` reads (a spec name and integer totals)."""
    file = str(path)
    text = read_text(path, file, "baseline", MAX_REPORT_BYTES)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise MacscalcError(f"baseline is not JSON: {e.msg}", file, e.lineno, e.colno) from None
    except (ValueError, RecursionError):  # a number of thousands of digits; deep nesting
        raise MacscalcError("baseline is not a JSON report macscalc can read (a number too "
                            "long or arrays nested too deep)", file) from None
    reports = data.get("reports") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("schema_version") != 1 or \
            not isinstance(reports, list):
        raise MacscalcError("baseline must be a macscalc JSON report (schema_version 1 with "
                            "'reports'), as written by count --format json", file)
    for i, r in enumerate(reports, 1):
        if not (isinstance(r, dict) and isinstance(r.get("spec"), dict)
                and isinstance(r.get("totals"), dict)):
            raise MacscalcError(f"report {i} of the baseline must be an object with 'spec' and "
                                "'totals'", file)
    return reports


def _baseline_for(report: Report, baseline: list[dict[str, Any]], file: str) -> dict[str, Any]:
    name = report.network.spec.name
    same = [b for b in baseline if b["spec"].get("name") == name]
    exact_settings = [b for b in same if b.get("settings") == settings_data(report.network)]
    if exact_settings or same:
        return (exact_settings or same)[0]
    raise MacscalcError(f"the baseline has no report for {show(name)}", file)


def growth_outcomes(report: Report, baseline: list[dict[str, Any]], file: str,
                    max_growth: Decimal) -> list[Outcome]:
    """Each counter against the baseline's, allowed to grow by ``max_growth`` percent."""
    old = _baseline_for(report, baseline, file)["totals"]
    actual = actuals(report)
    out = []
    for metric in ("macs", "flops", "params"):
        base = old.get(metric)
        if base is None:
            continue
        if isinstance(base, bool) or not isinstance(base, int) or not 0 <= base <= MAX_COUNT:
            raise MacscalcError(f"the baseline's {metric} for {show(report.network.spec.name)} "
                                f"must be a whole number from 0 to 1e18, got {show(base)}", file)
        allowed = int(base + Fraction(base) * Fraction(max_growth) / 100)
        limit = Limit(metric, allowed, f"baseline {file} + {max_growth} %")
        out.append(Outcome(report.network.spec.name, limit, actual[metric], base))
    return out


def actuals(report: Report) -> dict[str, int]:
    return {"macs": report.macs, "flops": report.flops, "params": report.params,
            "memory": report.peak_bytes}


def outcomes(report: Report, limits: dict[str, Limit]) -> list[Outcome]:
    actual = actuals(report)
    return [Outcome(report.network.spec.name, lim, actual[m]) for m, lim in limits.items()]


def check_doc(checked: list[tuple[Report, list[Outcome]]]) -> Doc:
    """The verdict as a table (and JSON: each report with its checks)."""
    rows = []
    for _, results in checked:
        for o in results:
            rows.append({"spec": o.spec, "limit": NAMES[o.limit.metric], "value": o.actual,
                         "max": o.limit.value, "margin": o.margin,
                         "margin_pct": pct(o.margin, o.limit.value), "origin": o.limit.origin,
                         "status": "ok" if o.ok else "OVER", "_warn": not o.ok})
    failed = sum(1 for _, res in checked for o in res if not o.ok)
    total = sum(len(res) for _, res in checked)
    cols = [Column("spec", "spec", left=True), Column("limit", "limit", left=True),
            Column("value", "value", fmt_int), Column("max", "max", fmt_int),
            Column("margin", "margin", fmt_int), Column("margin %", "margin_pct"),
            Column("set by", "origin", left=True), Column("", "status", left=True)]
    verdict = "pass" if failed == 0 else "fail"
    conventions = sorted({r.convention.describe(r.network) for r, _ in checked})
    notes = [f"{'PASS' if failed == 0 else 'FAIL'}: {total - failed} of {total} limits met "
             f"across {len(checked)} spec(s).",
             "A FLOPs limit is compared with FLOPs = 2 × MACs + the extra ops switched on, "
             "never with MACs.",
             *[f"Convention: {c}" for c in conventions]]
    reports = [{**report_data(r), "checks": [_outcome_data(o) for o in res],
                "passed": all(o.ok for o in res)} for r, res in checked]
    return Doc("macscalc budget check", [Table("Limits", cols, rows)], notes,
               envelope("check", verdict=verdict, reports=reports))


def _outcome_data(o: Outcome) -> dict[str, Any]:
    return {"metric": o.limit.metric, "value": o.actual, "max": o.limit.value,
            "margin": o.margin, "margin_pct": pct(o.margin, o.limit.value), "ok": o.ok,
            "set_by": o.limit.origin, "baseline": o.baseline}


def github_annotations(checked: list[tuple[Report, list[Outcome]]]) -> str:
    """GitHub Actions workflow commands: an error per limit exceeded, a notice per limit met,
    each pointing at the line that set the limit (or the spec's first line)."""
    lines = []
    for report, results in checked:
        for o in results:
            file = o.limit.file or report.network.spec.file
            line = o.limit.line or report.network.spec.line
            props = f"file={_prop(file)},line={line}"
            if o.limit.col:
                props += f",col={o.limit.col}"
            level = "notice" if o.ok else "error"
            lines.append(f"::{level} {props},title=macscalc budget::{_data(o.message())}")
    return "\n".join(lines) + "\n"


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
