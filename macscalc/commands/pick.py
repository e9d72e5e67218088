"""Picking a published model under a budget, most accurate first.

Candidates are the published rows of each family's primary table, counted by this tool
under that table's convention (MAdds for MicroNet). Accuracy is only ever a published
figure, with its source. Latency is the published figure for the chosen device where
there is one; with a device profile every other candidate gets an estimate, marked as
such, and without one it cannot pass a latency limit. Classifiers (top-1), detectors
(mAP) and segmenters (mIOU) are ranked each among their own. Grid points with no
published accuracy may be listed on request, marked as such, after the ranked ones. A
size limit is on the weights: the counted parameters at a stated number type.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple

from macscalc.core.errors import MacscalcError, show
from macscalc.core.units import DTYPE_BYTES, fmt_alpha, fmt_int
from macscalc.published.grid import Grid
from macscalc.published.tables import families, load_family
from macscalc.render.output import Column, Doc, Table
from macscalc.render.report import envelope

if TYPE_CHECKING:
    from macscalc.analysis.latency import Profile


class Candidate(NamedTuple):
    family: str
    model: str
    spec: str
    alpha: Fraction
    res: int
    macs: int
    params: int
    top1: str | None  # the published accuracy, in ``metric``
    top5: str | None
    latency: str | None  # ms on the chosen device, as published
    source: str  # where the accuracy (and latency) were published
    metric: str = "top-1"  # top-1 for classifiers, mAP for detectors, mIOU for segmenters
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
            raise MacscalcError(f"unknown family {show(n)} (known: {', '.join(known)})")
    if not names:
        raise MacscalcError(f"--family {show(text)} names no family (known: {', '.join(known)})")
    return names


def devices(names: list[str]) -> dict[str, dict[str, str]]:
    """Device ids with published latencies, and per family what each was measured on."""
    out: dict[str, dict[str, str]] = {}
    for n in names:
        for dev, label in load_family(n).primary.devices.items():
            out.setdefault(dev, {})[n] = label
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
            macs, params = grid.counts(table, row.point, row)
            out.append(Candidate(name, row.model, row.spec, row.alpha, row.res, macs, params,
                                 row.top1, row.top5, row.latency.get(device) if device else None,
                                 table.source, table.metric))
        if unpublished:
            for point in grid.lattice(res=res):
                if point in seen:
                    continue
                macs, params = grid.counts(table, point)
                spec, alpha, r = point
                out.append(Candidate(name, grid.name(point), spec, alpha, r, macs, params,
                                     None, None, None, "computed only", table.metric))
    return out


def with_estimates(cands: list[Candidate], profile: Profile) -> list[Candidate]:
    """Every candidate without a published latency gets one estimated by ``profile``."""
    from macscalc.analysis.counting import PARAM_CONVENTIONS, Convention, count
    from macscalc.analysis.latency import estimate
    from macscalc.lang.graph import build
    from macscalc.lang.spec import load_spec

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
    """Models on the accuracy/MACs Pareto frontier of their metric: none cheaper is as
    accurate (a detector's mAP is never weighed against a classifier's top-1)."""
    out = set()
    for metric in {c.metric for c in cands}:
        ranked = sorted((c for c in cands if c.published and c.metric == metric),
                        key=lambda c: (c.macs, -float(c.top1)))
        best = float("-inf")
        for c in ranked:
            if float(c.top1) > best:
                out.add(c.model)
                best = float(c.top1)
    return out


class Limits(NamedTuple):
    macs: int | None = None
    params: int | None = None
    latency: float | None = None  # ms on the chosen device
    size: int | None = None  # weight bytes at ``dtype``
    dtype: str = "fp32"

    def weight_bytes(self, c: Candidate) -> int:
        return c.params * DTYPE_BYTES[self.dtype]


def pick(cands: list[Candidate], limits: Limits) -> tuple[list[Candidate], int]:
    """The candidates within every limit, ranked by accuracy within each metric; and how
    many lacked a needed latency."""
    fits = [c for c in cands if (limits.macs is None or c.macs <= limits.macs)
            and (limits.params is None or c.params <= limits.params)
            and (limits.size is None or limits.weight_bytes(c) <= limits.size)]
    no_latency = 0
    if limits.latency is not None:
        no_latency = sum(1 for c in fits if _latency(c) is None)
        fits = [c for c in fits if (ms := _latency(c)) is not None and ms <= limits.latency]
    fits.sort(key=lambda c: (c.metric != "top-1", c.metric, not c.published,
                             -float(c.top1 or 0), c.macs))
    return fits, no_latency


def pick_doc(fits: list[Candidate], no_latency: int, device: str | None,
             labels: dict[str, str] | None, limits: Limits, given: dict[str, Any],
             profile: Profile | None = None) -> Doc:
    """The ranked table; ``given`` holds the limits as the user wrote them."""
    front = frontier(fits)
    rank: dict[str, int] = {}
    rows = []
    for c in fits:
        if c.published:
            rank[c.metric] = rank.get(c.metric, 0) + 1
        rows.append({"rank": rank[c.metric] if c.published else None, "model": c.model,
                     "family": c.family, "spec": c.spec, "alpha": fmt_alpha(c.alpha),
                     "res": c.res, "macs": c.macs, "params": c.params,
                     "weight_bytes": limits.weight_bytes(c), "accuracy": c.top1,
                     "metric": c.metric, "top5": c.top5, "latency_ms": c.latency,
                     "latency_estimated_ms": c.estimate, "unseen_kinds": list(c.unseen),
                     "_warn": bool(c.unseen),
                     "frontier": c.model in front, "published_accuracy": c.published,
                     "source": c.source})
    metrics = list(dict.fromkeys(c.metric for c in fits)) or ["top-1"]
    mixed = len(metrics) > 1
    cols = [Column("#", "rank"), Column("model", "model", left=True, cut=12),
            Column("family", "family", left=True, drop=1),
            Column("MACs (M)", "macs", lambda v: f"{v / 1e6:.2f}"),
            Column("params (M)", "params", lambda v: f"{v / 1e6:.3f}"),
            Column(f"{limits.dtype} MB", "weight_bytes", lambda v: f"{v / 1e6:.2f}", drop=3),
            Column("accuracy" if mixed else metrics[0], "accuracy",
                   unit="" if mixed else metrics[0])]
    if mixed:
        cols.append(Column("metric", "metric", left=True))
    if any(c.top5 for c in fits):
        cols.append(Column("top-5", "top5", drop=2))
    if device:
        cols.append(Column(f"{device} ms", "latency_ms"))
    if profile is not None:
        cols.append(Column("est. ms", "latency_estimated_ms", lambda v: f"{v:.2f}"))
    cols += [Column("Pareto", "frontier", lambda v: "★" if v else ""),
             Column("accuracy from", "source", left=True, text=True)]
    said = ", ".join(f"{k} ≤ {v}" for k, v in given.items() if v is not None) or "no limits"
    notes = [f"{len(rows)} model(s) within {said}; ★ marks the accuracy/MACs Pareto frontier "
             "(no cheaper model is as accurate).",
             "MACs are this tool's counts under each family's published convention (MicroNet: "
             "MAdds with the shift-max fusion); accuracy is a published figure"
             + ("." if profile else ", and so is latency."),
             f"{limits.dtype} MB: the counted params × {DTYPE_BYTES[limits.dtype]} bytes, in "
             "10^6 bytes (params under each family's published convention)."]
    if mixed:
        notes.append("Ranked within each metric: a detector's COCO mAP, a segmenter's mIOU "
                     "and a classifier's ImageNet top-1 are not comparable.")
    shown = {c.family for c in fits}
    published = ""
    if labels and any(f in shown for f in labels):
        published = "; ".join(f"{label} ({', '.join(f for f in labels if labels[f] == label)})"
                              for label in dict.fromkeys(labels[f] for f in labels if f in shown))
    if profile is not None:
        where = (f"{published}, as published where it is; elsewhere estimated" if published
                 else "estimated")
        notes.append(f"Latency on {device}: {where} (est. ms) by profile {profile.name}, "
                     f"±{profile.loo.p90:.0f} % for 9 of 10 of its held-out rows.")
    elif published:
        notes.append(f"Latency on {device}: {published}, as published; nothing is estimated.")
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
    data = envelope("pick", limits={k: v for k, v in given.items() if v is not None},
                    device=device, dtype=limits.dtype, candidates=rows)
    return Doc("macscalc pick: the most accurate published models that fit",
               [Table(f"{fmt_int(len(rows))} model{'' if len(rows) == 1 else 's'}", cols, rows)],
               notes, data)
