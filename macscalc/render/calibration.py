"""``calibrate``'s document: the fitted constants, the errors, each row's residual."""

from __future__ import annotations

import math

from macscalc.analysis.calibrate import Calibration
from macscalc.analysis.latency import TERMS
from macscalc.core.units import fmt_alpha
from macscalc.render.output import Column, Doc, Table
from macscalc.render.report import envelope


def calibrate_doc(cal: Calibration, profile_file: str) -> Doc:
    """The constants, the errors, and every row's residual, fitted and held out."""
    p = cal.profile
    const_rows = [{"term": t.what, "key": t.key, "value": p.constants[t.key],
                   "unit": t.unit} for t in TERMS]
    consts = Table("Fitted constants", [Column("term", "term", left=True),
                                        Column("constant", "key", left=True),
                                        Column("value", "value", lambda v: f"{v:.4g}"),
                                        Column("unit", "unit", left=True)], const_rows)
    pct = lambda v: f"{v:+.1f} %"  # noqa: E731
    ms = lambda v: f"{v:.3f}"  # noqa: E731
    auto = bool(cal.rows) and "set" in cal.rows[0]
    if auto:
        residuals = Table("Each graph: fitted on, or held out and predicted", [
            Column("#", "line"), Column("graph", "spec", left=True), Column("set", "set"),
            Column("measured ms", "ms", ms), Column("predicted ms", "fitted_ms", ms),
            Column("error", "error_pct", pct)], cal.rows)
    else:
        residuals = Table("Each row: fitted, and predicted without it (leave-one-out)", [
            Column("line", "line"), Column("spec", "spec", left=True),
            Column("α", "alpha", fmt_alpha), Column("res", "res"),
            Column("dw % MACs", "dw_share_pct", lambda v: f"{v:.1f}"),
            Column("measured ms", "ms", ms), Column("fitted ms", "fitted_ms", ms),
            Column("error", "error_pct", pct), Column("held-out ms", "loo_ms", ms),
            Column("held-out error", "loo_error_pct", pct)], cal.rows)
    e, h = p.in_sample, p.loo
    held_line = (f"Held out (graphs the fit never saw): MAPE {h.mape:.1f} %, {h.within_10:.0f} % "
                 f"within ±10 %, 90 % within ±{h.p90:.1f} % (the band every estimate carries)."
                 if auto else
                 f"Leave-one-out (each row predicted by a fit on the others): MAPE {h.mape:.1f} "
                 f"%, {h.within_10:.0f} % within ±10 %, 90 % within ±{h.p90:.1f} % (the band "
                 "every estimate carries).")
    ratio = (p.constants["conv1x1_gmacs_per_s"] / p.constants["dw_gmacs_per_s"]
             if 0 < p.constants["dw_gmacs_per_s"] < float("inf") else None)
    notes = [f"In sample: MAPE {e.mape:.1f} %, {e.within_10:.0f} % of rows within ±10 %.",
             held_line,
             *([f"A depthwise MAC costs {ratio:.1f} 1×1-conv MACs on this device (before "
                "its per-output cost)."] if ratio else []),
             f"Profile written to {profile_file}; use it with --device {profile_file}.",
             *[f"WARNING: {w}" for w in cal.warnings]]
    finite = {k: (None if math.isinf(v) else v) for k, v in p.constants.items()}
    data = envelope("calibrate", profile=p.name, constants=finite,
                    in_sample=e.data(), leave_one_out=h.data(), warnings=cal.warnings,
                    rows=[{k: (fmt_alpha(v) if k == "alpha" else v) for k, v in r.items()}
                          for r in cal.rows])
    return Doc(f"macscalc calibrate: {p.name} ({p.device})", [consts, residuals], notes, data)
