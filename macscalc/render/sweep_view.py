"""The sweep as a document: the points shown, the objectives behind the frontiers, the
convention, and the points that have no network. The points and their frontiers come from
``analysis.sweeps``, the published accuracy from ``published.tables``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from macscalc.analysis.sweeps import Selection, Sweep
from macscalc.core.units import fmt_alpha, fmt_int
from macscalc.lang.spec import Spec
from macscalc.render.output import Column, Doc, Table
from macscalc.render.report import envelope

if TYPE_CHECKING:
    from macscalc.published.tables import Accuracy

COST_NAMES = {"macs": "MACs", "params": "params", "memory": "peak memory",
              "latency": "est. latency"}


def sweep_doc(result: Sweep, chosen: Selection, accuracy: Accuracy | None,
              limits: dict[str, float], frontier_only: bool = False) -> Doc:
    """The points ``chosen`` (within the limits, or only those on a frontier), with the
    objectives, the convention and the points that have no network."""
    r0 = result.spec.size[0]
    objectives = {
        "costs": chosen.costs,
        "capacity": f"α·ρ with ρ = R/{r0} (the spec's input size), a proxy where no "
                    "accuracy is published",
        "accuracy": {"metric": accuracy.metric, "source": accuracy.source} if accuracy
        else None,
        "rule": "on a cost's frontier: no point within the limits costs as little or less "
                "and gives as much or more α·ρ (or published accuracy), one strictly",
    }
    counts = {"points": int(result.valid.size), "valid": int(result.valid.sum()),
              "within_limits": chosen.within_limits, "shown": len(chosen.rows)}
    data = envelope("sweep", spec=_spec_data(result.spec), settings=_settings(result),
                    convention=_convention_text(result), limits=limits,
                    objectives=objectives, counts=counts, points=chosen.rows,
                    errors=[{"alphas": [fmt_alpha(result.alphas[i]) for i in e.alphas],
                             "resolutions": [int(result.resolutions[j]) for j in e.resolutions],
                             "message": e.message} for e in result.errors])
    return Doc(f"{result.spec.title}: {len(result.alphas)} α × {len(result.resolutions)} "
               f"resolution{'s' if len(result.resolutions) > 1 else ''}",
               [_table(result, chosen, counts, limits, frontier_only, accuracy)],
               _notes(result, chosen.costs, accuracy, counts), data)


def _table(result: Sweep, chosen: Selection, counts: dict[str, int], limits: dict[str, float],
           frontier_only: bool, accuracy: Accuracy | None) -> Table:
    dtype = result.convention.dtype
    metric = accuracy.metric if accuracy else ""
    cols = [Column("α", "alpha"), Column("R", "res", unit="pixels"),
            Column("MACs (M)", "macs", lambda v: f"{v / 1e6:.2f}", unit="MACs"),
            Column("params (M)", "params", lambda v: f"{v / 1e6:.3f}",
                   unit=result.convention.params.name),
            Column(f"peak memory ({dtype}, bytes)", "memory", fmt_int, unit=f"{dtype} bytes"),
            Column("α·ρ", "alpha_rho", lambda v: f"{v:.4f}", drop=2)]
    if result.profile is not None:
        cols.append(Column("est. ms", "latency_ms", lambda v: f"{v:.2f}",
                           unit=f"ms estimated on {result.profile.name}"))
    if any(m.endswith("/accuracy") for m in chosen.marks):
        cols.append(Column(metric, "accuracy", unit=metric))
    for m in chosen.marks:
        cost, versus = m.split("/")
        cols.append(Column(f"★ {COST_NAMES[cost]}/{'α·ρ' if versus == 'alpha_rho' else metric}",
                           f"pareto_{cost}_{versus}", lambda v: "★" if v else ""))
    which = "on a frontier" if frontier_only else "within the limits" if limits else "valid"
    return Table(f"{fmt_int(counts['shown'])} point{'s' if counts['shown'] != 1 else ''} "
                 f"{which}", cols, chosen.rows)


def _notes(result: Sweep, costs: list[str], accuracy: Accuracy | None,
           counts: dict[str, int]) -> list[str]:
    notes = [f"{fmt_int(counts['within_limits'])} of {fmt_int(counts['points'])} points "
             f"within the limits; {fmt_int(counts['valid'])} have a network.",
             f"Pareto: for each cost ({', '.join(COST_NAMES[c] for c in costs)}), the points no "
             f"other point within the limits beats on that cost and α·ρ = α·R/"
             f"{result.spec.size[0]} (capacity, a proxy: nothing is trained here); among "
             "equal networks the largest α wins."]
    if accuracy is not None:
        notes.append(f"Published {accuracy.metric} ({accuracy.source}) where the point is on "
                     "the published grid, with its own frontier per cost.")
    if result.errors:
        bad = counts["points"] - counts["valid"]
        notes.append(f"{fmt_int(bad)} point(s) have no network, e.g. "
                     f"{result.errors[0].message} (JSON lists them all).")
    if result.profile is not None:
        p = result.profile
        notes.append(f"est. ms: estimated on profile {p.name} ({p.device}), not measured; "
                     f"±{p.loo.p90:.0f} % held 9 of 10 of its held-out rows.")
    notes.append(f"Convention: {_convention_text(result)}")
    return notes


def _convention_text(result: Sweep) -> str:
    c = result.convention
    return (f"MACs = conv + FC multiply-accumulates; params = {c.params.name} "
            f"({c.params.description}); {result.classes} classes; α with "
            f"{result.spec.rounding.name} rounding; input R×R×{result.spec.channels}; "
            f"batch 1; peak memory = the plain liveness peak (macscalc memory) in {c.dtype}")


def _spec_data(spec: Spec) -> dict[str, Any]:
    return {"name": spec.name, "title": spec.title, "source": spec.source, "file": spec.file}


def _settings(result: Sweep) -> dict[str, Any]:
    return {"alphas": [fmt_alpha(a) for a in result.alphas],
            "resolutions": result.resolutions.tolist(), "classes": result.classes,
            "rounding": result.spec.rounding.name, "params": result.convention.params.name,
            "dtype": result.convention.dtype, "reference_resolution": result.spec.size[0]}
