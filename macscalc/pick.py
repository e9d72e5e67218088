"""Picking a published model under a budget, most accurate first.

Candidates are the published rows of each family's primary table, counted by this tool
under that table's convention (MAdds for MicroNet). Accuracy is only ever a published
figure, with its source. Latency is the published figure for the chosen device where
there is one; with a device profile every other candidate gets an estimate, marked as
such, and without one it cannot pass a latency limit. Grid points with no published
accuracy may be listed on request, marked as such, after the ranked ones.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple

from macscalc.errors import MacscalcError
from macscalc.grid import Grid
from macscalc.output import Column, Doc, Table
from macscalc.published import families, load_family
from macscalc.report import envelope
from macscalc.units import fmt_alpha, fmt_int

if TYPE_CHECKING:
    from macscalc.latency import Profile


class Candidate(NamedTuple):
    family: str
    model: str
    spec: str
    alpha: Fraction
    res: int
    macs: int
    params: int
    top1: str | None
    top5: str | None
    latency: str | None  # ms on the chosen device, as published
    source: str  # where the accuracy (and latency) were published
    estimate: float | None = None  # ms estimated by a device profile, where none is published
    unseen: tuple[str, ...] = ()  # kinds of work the profile's calibration never saw

    @property
    def published(self) -> bool:
        return self.top1 is not None


def family_names(text: str | None) -> list[str]:
    known = families()
    if not text:
        return known
    names = [t.strip() for t in text.split(",") if t.strip()]
    for n in names:
        if n not in known:
            raise MacscalcError(f"unknown family {n!r} (known: {', '.join(known)})")
    return names


def devices(names: list[str]) -> dict[str, str]:
    """Device ids with published latencies, and what each was measured on."""
    out: dict[str, str] = {}
    for n in names:
        for dev, label in load_family(n).primary.devices.items():
            out.setdefault(dev, f"{label} ({n})")
    return out


def candidates(family_text: str | None, res: int | None, device: str | None,
               unpublished: bool) -> list[Candidate]:
    out: list[Candidate] = []
    for name in family_names(family_text):
        grid = Grid(load_family(name))
        table = grid.family.primary
        seen = set()
        for row in table.rows:
            if res is not None and row.res != res:
                continue
            seen.add(row.point)
            macs, params = grid.counts(table, row.point)
            out.append(Candidate(name, row.model, row.spec, row.alpha, row.res, macs, params,
                                 row.top1, row.top5, row.latency.get(device) if device else None,
                                 table.source))
        if unpublished:
            for point in grid.lattice(res=res):
                if point in seen:
                    continue
                macs, params = grid.counts(table, point)
                spec, alpha, r = point
                out.append(Candidate(name, f"{spec}_{fmt_alpha(alpha)}_{r}", spec, alpha, r,
                                     macs, params, None, None, None, "computed only"))
    return out


def with_estimates(cands: list[Candidate], profile: Profile) -> list[Candidate]:
    """Every candidate without a published latency gets one estimated by ``profile``."""
    from macscalc.counting import PARAM_CONVENTIONS, Convention, count
    from macscalc.graph import build
    from macscalc.latency import estimate
    from macscalc.spec import load_spec

    convention = Convention(PARAM_CONVENTIONS["torch"])
    out = []
    for c in cands:
        if c.latency is None:
            est = estimate(count(build(load_spec(c.spec), c.alpha, (c.res, c.res)), convention),
                           profile)
            c = c._replace(estimate=est.ms, unseen=est.unseen)
        out.append(c)
    return out


def _latency(c: Candidate) -> float | None:
    return float(c.latency) if c.latency is not None else c.estimate


def frontier(cands: list[Candidate]) -> set[str]:
    """Models on the accuracy/MACs Pareto frontier: none cheaper is as accurate."""
    ranked = sorted((c for c in cands if c.published), key=lambda c: (c.macs, -float(c.top1)))
    best = float("-inf")
    out = set()
    for c in ranked:
        if float(c.top1) > best:
            out.add(c.model)
            best = float(c.top1)
    return out


def pick(cands: list[Candidate], max_macs: int | None, max_params: int | None,
         max_latency: float | None) -> tuple[list[Candidate], int]:
    """The candidates within every limit, ranked; and how many lacked a needed latency."""
    fits = [c for c in cands if (max_macs is None or c.macs <= max_macs)
            and (max_params is None or c.params <= max_params)]
    no_latency = 0
    if max_latency is not None:
        no_latency = sum(1 for c in fits if _latency(c) is None)
        fits = [c for c in fits if (ms := _latency(c)) is not None and ms <= max_latency]
    fits.sort(key=lambda c: (not c.published, -float(c.top1 or 0), c.macs))
    return fits, no_latency


def pick_doc(fits: list[Candidate], no_latency: int, device: str | None,
             device_label: str | None, limits: dict[str, Any],
             profile: Profile | None = None) -> Doc:
    front = frontier(fits)
    rows = [{"rank": i + 1 if c.published else None, "model": c.model, "family": c.family,
             "spec": c.spec, "alpha": fmt_alpha(c.alpha), "res": c.res, "macs": c.macs,
             "params": c.params, "top1": c.top1, "top5": c.top5, "latency_ms": c.latency,
             "latency_estimated_ms": c.estimate, "unseen_kinds": list(c.unseen),
             "_warn": bool(c.unseen),
             "frontier": c.model in front, "published_accuracy": c.published,
             "source": c.source}
            for i, c in enumerate(fits)]
    cols = [Column("#", "rank"), Column("model", "model", left=True),
            Column("family", "family", left=True),
            Column("MACs (M)", "macs", lambda v: f"{v / 1e6:.2f}"),
            Column("params (M)", "params", lambda v: f"{v / 1e6:.3f}"),
            Column("top-1", "top1"), Column("top-5", "top5")]
    if device:
        cols.append(Column(f"{device} ms", "latency_ms"))
    if profile is not None:
        cols.append(Column("est. ms", "latency_estimated_ms", lambda v: f"{v:.2f}"))
    cols += [Column("Pareto", "frontier", lambda v: "★" if v else ""),
             Column("accuracy from", "source", left=True)]
    given = ", ".join(f"{k} ≤ {v}" for k, v in limits.items() if v is not None) or "no limits"
    notes = [f"{len(rows)} model(s) within {given}; ★ marks the accuracy/MACs Pareto frontier "
             "(no cheaper model is as accurate).",
             "MACs are this tool's counts under each family's published convention (MicroNet: "
             "MAdds with the shift-max fusion); accuracy is a published figure"
             + ("." if profile else ", and so is latency.")]
    if profile is not None:
        where = (f"{device_label}, as published where it is; elsewhere estimated"
                 if device_label else "estimated")
        notes.append(f"Latency: {where} (est. ms) by profile {profile.name}, "
                     f"±{profile.loo.p90:.0f} % for 9 of 10 of its held-out rows.")
    elif device_label:
        notes.append(f"Latency: {device_label}, as published; nothing is estimated.")
    unseen = sorted({k for c in fits for k in c.unseen})
    if unseen:
        notes.append(f"WARNING: the estimates for {', '.join(c.model for c in fits if c.unseen)} "
                     f"rest on work the calibration never saw ({', '.join(unseen)}).")
    if no_latency:
        notes.append(f"{no_latency} model(s) within the other limits have no published "
                     f"latency on {device} and were left out.")
    if any(not c.published for c in fits):
        notes.append("Rows without a rank are grid points with no published accuracy: "
                     "computed only.")
    data = envelope("pick", limits={k: v for k, v in limits.items() if v is not None},
                    device=device, candidates=rows)
    return Doc("macscalc pick: the most accurate published models that fit",
               [Table(f"{fmt_int(len(rows))} model{'' if len(rows) == 1 else 's'}", cols, rows)],
               notes, data)
