"""Compute budgets: limits on MACs, FLOPs, parameters, weight size and activation memory,
where each comes from, and the verdict of ``macscalc check``.

The most specific limit wins: a command-line flag, then the budget file's entry for the
spec (by path, then by name), then the spec's own ``budget:`` section, then the budget
file's top-level defaults. A FLOPs limit is compared with FLOPs (2 × MACs plus the extra
ops switched on), never with MACs; a size limit with the weights (the counted parameters
at ``--dtype``). A baseline report adds growth limits: a counter may not grow by more
than ``--max-growth`` over the same spec in the saved report.

Every spec is checked, whatever happens to the others: a spec that cannot be read or
counted is reported with its location (status 2), a limit exceeded fails it (1), and a
spec with no limit at all is reported as such (0, or 2 with ``--require-limits``). The
run's exit status is the worst of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

from macscalc.analysis.counting import Report, settings_text
from macscalc.core.errors import MacscalcError, printable, show
from macscalc.core.limits import MAX_COUNT, MAX_GROWTH, MAX_REPORT_BYTES
from macscalc.core.units import exact, fmt_int, parse_limit, pct
from macscalc.core.yamlload import LocDict, load, read_text
from macscalc.lang.spec import BUDGET_KEYS, Spec
from macscalc.render.output import Column, Doc, Table
from macscalc.render.report import envelope, report_data, settings_data

NAMES = {"macs": "MACs", "flops": "FLOPs", "params": "params", "memory": "peak bytes",
         "size": "weight bytes", "latency": "estimated latency (µs)"}


class Limit(NamedTuple):
    metric: str  # macs, flops, params, memory, size
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
    """The limits that apply to one spec, the most specific winning: flags, the budget
    file's entry for the spec (by path, then by name), the spec's own ``budget:``, the
    budget file's top-level defaults."""
    own = {k: Limit(k, v.value, f"{spec.file}:{v.line}", spec.file, v.line, v.col)
           for k, v in spec.budget.items()}
    layers = [own, {k: Limit(k, v, f"--max-{k}") for k, v in flags.items()}]
    if budget_file is not None:
        layers[1:1] = [budget_file.per_spec.get(spec.name, {}), budget_file.per_spec.get(ref, {})]
        layers.insert(0, budget_file.common)
    out: dict[str, Limit] = {}
    for layer in layers:  # least specific first
        out.update(layer)
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


def actuals(report: Report, metrics: Iterable[str] = ()) -> dict[str, int]:
    """Each metric's value. A TFLite file is gated as a microcontroller holds it: size is
    its weights and biases as stored (flash), memory the tensor arena TFLite Micro plans
    for it (SRAM), planned only when ``metrics`` asks for memory."""
    out = {"macs": report.macs, "flops": report.flops, "params": report.params,
           "memory": report.peak_bytes, "size": report.weight_bytes}
    stored = report.network.stored
    if stored is not None:
        out["size"] = stored["weight_bytes"] + stored["bias_bytes"]
        if "memory" in metrics:
            from macscalc.models.tflite.arena import plan
            from macscalc.models.tflite.model import load

            out["memory"] = plan(load(report.network.spec.file), stored["subgraph"]).bytes
    if report.latency is not None:  # estimated on a device profile, in whole µs
        out["latency"] = round(report.latency.ms * 1000)
    return out


def outcomes(report: Report, limits: dict[str, Limit]) -> list[Outcome]:
    actual = actuals(report, limits)
    return [Outcome(report.network.spec.name, lim, actual[m]) for m, lim in limits.items()]


class SpecCheck(NamedTuple):
    """One spec's part of a check run: its report and outcomes, or why it has none."""

    ref: str
    report: Report | None  # None: the spec could not be read or counted
    outcomes: list[Outcome]
    error: MacscalcError | None = None

    @property
    def status(self) -> int:
        """2: broken (or unlimited under --require-limits), 1: over a limit, 0: fine."""
        return 2 if self.error else 1 if any(not o.ok for o in self.outcomes) else 0


def check_specs(refs: list[str], counted: Callable[[str], Report],
                limits: Callable[[Report, str], dict[str, Limit]],
                growth: Callable[[Report], list[Outcome]],
                require_limits: bool = False) -> list[SpecCheck]:
    """Check every spec, whatever happens to the others."""
    out = []
    for ref in refs:
        try:
            report = counted(ref)
            results = outcomes(report, limits(report, ref)) + growth(report)
        except MacscalcError as e:
            out.append(SpecCheck(ref, None, [], e))
            continue
        error = None
        if not results and require_limits:
            spec = report.network.spec
            error = MacscalcError(f"no limits for {ref!r} (--require-limits): give --max-macs, "
                                  "--max-flops, --max-params, --max-memory or --max-size, a "
                                  "'budget:' section in the spec, --budget FILE or --baseline",
                                  spec.file, spec.line)
        out.append(SpecCheck(ref, report, results, error))
    return out


def check_doc(checked: list[SpecCheck]) -> Doc:
    """The verdict as a table (and JSON: each report with its checks)."""
    rows = []
    for c in checked:
        for o in c.outcomes:
            rows.append({"spec": o.spec, "limit": NAMES[o.limit.metric], "value": o.actual,
                         "max": o.limit.value, "margin": o.margin,
                         "margin_pct": pct(o.margin, o.limit.value), "origin": o.limit.origin,
                         "status": "ok" if o.ok else "OVER", "_warn": not o.ok})
    results = [o for c in checked for o in c.outcomes]
    failed = sum(1 for o in results if not o.ok)
    broken = [c for c in checked if c.error]
    unlimited = [c for c in checked if not c.outcomes and not c.error]
    cols = [Column("spec", "spec", left=True, cut=12), Column("limit", "limit", left=True),
            Column("value", "value", fmt_int), Column("max", "max", fmt_int),
            Column("margin", "margin", fmt_int, drop=2),
            Column("margin %", "margin_pct"),
            Column("set by", "origin", left=True, cut=10), Column("", "status", left=True)]
    status = max((c.status for c in checked), default=0)
    verdict = ("pass", "fail", "error")[status]
    summary = (f"{verdict.upper()}: {len(results) - failed} of {len(results)} limits met "
               f"across {len(checked)} spec(s)")
    if broken:
        summary += f"; {len(broken)} with errors"
    if unlimited:
        summary += f"; {len(unlimited)} without limits"
    notes = [summary + ".",
             *[f"error: {c.error.located()}" for c in broken if c.error],
             *[f"{c.ref}: no limits (give a --max-* flag or a budget; --require-limits makes "
               "this an error)" for c in unlimited],
             "A FLOPs limit is compared with FLOPs = 2 × MACs + the extra ops switched on, "
             "never with MACs; a size limit with the weights (params × --dtype)."]
    counted = [c.report for c in checked if c.report is not None]
    for rules in dict.fromkeys(r.convention.rules() for r in counted):
        notes.append(f"Convention: {rules}")
    by_settings: dict[str, list[str]] = {}
    for r in counted:
        by_settings.setdefault(settings_text(r.network), []).append(r.network.spec.name)
    notes += [f"Counted at {text}: {', '.join(dict.fromkeys(names))}"
              for text, names in by_settings.items()]
    notes += [f"{r.network.spec.name}: {r.latency.text()}" for r in counted if r.latency]
    reports = [{**report_data(c.report), "checks": [_outcome_data(o) for o in c.outcomes],
                "passed": c.status == 0} for c in checked if c.report is not None]
    errors = [{"spec": c.ref, "message": c.error.message, "file": c.error.file,
               "line": c.error.line, "col": c.error.col} for c in broken if c.error]
    return Doc("macscalc budget check", [Table("Limits", cols, rows)], notes,
               envelope("check", verdict=verdict, reports=reports, errors=errors,
                        unlimited=[c.ref for c in unlimited]))


def _outcome_data(o: Outcome) -> dict[str, Any]:
    return {"metric": o.limit.metric, "value": o.actual, "max": o.limit.value,
            "margin": o.margin, "margin_pct": pct(o.margin, o.limit.value), "ok": o.ok,
            "set_by": o.limit.origin, "baseline": o.baseline}


def github_annotations(checked: list[SpecCheck], notices: bool = False) -> str:
    """GitHub Actions workflow commands: an error per limit exceeded and per broken spec,
    a warning per spec without limits, and (``notices``) a notice per limit met; each at
    the line that set the limit, or the spec's first line, with a path from the
    repository's root."""
    lines = []
    for c in checked:
        if c.error is not None and c.report is None:
            lines.append(_command("error", c.error.file, c.error.line, c.error.col,
                                  "macscalc", c.error.message))
            continue
        assert c.report is not None
        spec = c.report.network.spec
        if c.error is not None:
            lines.append(_command("error", spec.file, spec.line, None, "macscalc budget",
                                  c.error.message))
        elif not c.outcomes:
            lines.append(_command("warning", spec.file, spec.line, None, "macscalc budget",
                                  f"{c.ref}: no limits"))
        for o in c.outcomes:
            if o.ok and not notices:
                continue
            lines.append(_command("notice" if o.ok else "error", o.limit.file or spec.file,
                                  o.limit.line or spec.line, o.limit.col, "macscalc budget",
                                  o.message()))
    return "".join(f"{line}\n" for line in lines)


def _command(level: str, file: str | None, line: int | None, col: int | None, title: str,
             message: str) -> str:
    props = [f"{k}={_prop(str(v))}" for k, v in (("file", file and repo_path(file)),
                                                 ("line", line), ("col", col)) if v]
    return f"::{level} {','.join([*props, f'title={_prop(title)}'])}::{_data(message)}"


def repo_path(file: str) -> str:
    """A path as GitHub annotations want it: from the repository's root (the workspace,
    else the working directory) when the file lies under it; built-in specs are already
    ``specs/NAME.yaml``, their place in macscalc's repository."""
    path = Path(file)
    if not path.is_absolute():
        return path.as_posix()
    root = Path(os.environ.get("GITHUB_WORKSPACE") or Path.cwd()).resolve()
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _data(text: str) -> str:
    return printable(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
