"""``macscalc measure SPEC --layers``: onnxruntime's measured time per kernel beside the
latency model's estimate, so a user sees where the model is wrong.

The runtime names a kernel after the last node it fused (``conv1/conv.relu_nchwc``), a
multi-node export after its parts (``shuffle1/swap``) and its layout conversions
``ReorderInput``/``ReorderOutput``; each is matched to the spec's layer by trimming
those suffixes, then to the kernel of ``kernels.py`` that holds the layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from macscalc.core.units import fmt_alpha
from macscalc.render.output import Column, Doc, Table
from macscalc.render.report import envelope

if TYPE_CHECKING:
    from macscalc.analysis.latency import Profile
    from macscalc.lang.graph import Network

CONVERSION = "layout conversion"


def _layer(name: str, known: set[str]) -> str | None:
    """The spec layer an onnxruntime kernel name comes from, if any."""
    base = name.removesuffix("_nchwc")
    while base:
        if base in known:
            return base
        if "/" not in base:
            return None
        base = base.rsplit("/", 1)[0]
    return None


def layers_doc(network: Network, measured: dict[str, float], profile: Profile) -> Doc:
    """Every kernel of the model with its estimated and measured µs."""
    from macscalc.analysis.latency import per_layer

    times = profile.kernel_times(network)
    est_us, _ = per_layer(network, times)
    head_of = {n: t.kernel.nodes[0] for t in times if t.kernel.what != "reorder"
               for n in t.kernel.nodes}
    known = {n.name for n in network.nodes}
    got: dict[str, float] = {}
    for name, us in measured.items():
        layer = _layer(name, known)
        key = head_of.get(layer, layer) if layer else CONVERSION
        got[key] = got.get(key, 0.0) + us
    conv_est = sum(1e3 * t.ms for t in times if t.kernel.what == "reorder")
    rows: list[dict[str, Any]] = []
    for t in times:
        head = t.kernel.nodes[0]
        if t.kernel.what == "reorder" or head not in got and head not in est_us:
            continue
        if any(r["layer"] == head for r in rows):
            continue
        e = est_us.get(head, 0.0) - sum(1e3 * x.ms for x in times if x.kernel.what == "reorder"
                                         and x.kernel.nodes[0] == head)
        m = got.get(head)
        rows.append({"layer": head, "what": t.kernel.what, "bound": t.bound, "est_us": e,
                     "measured_us": m, "error_pct": 100 * (e / m - 1) if m else None,
                     "_warn": bool(m) and abs(e / m - 1) > 0.25})
    rows.append({"layer": CONVERSION, "what": "reorder", "bound": "memory", "est_us": conv_est,
                 "measured_us": got.get(CONVERSION),
                 "error_pct": 100 * (conv_est / got[CONVERSION] - 1)
                 if got.get(CONVERSION) else None, "_warn": False})
    total_est = sum(r["est_us"] for r in rows)
    total_measured = sum(measured.values())
    us = lambda v: "" if v is None else f"{v:.1f}"  # noqa: E731
    pct = lambda v: "" if v is None else f"{v:+.0f} %"  # noqa: E731
    table = Table("Each kernel: estimated beside measured (onnxruntime profiling, median "
                  "per run)", [
                      Column("layer (kernel head)", "layer", left=True, cut=40),
                      Column("kind", "what", left=True), Column("bound", "bound", left=True),
                      Column("est. µs", "est_us", us), Column("measured µs", "measured_us", us),
                      Column("error", "error_pct", pct)], rows)
    s = network.settings
    notes = [f"Estimated on {profile.name}: {total_est / 1e3:.3f} ms; measured kernels sum to "
             f"{total_measured / 1e3:.3f} ms (onnxruntime's per-kernel times, without the "
             "time between kernels).",
             "Rows more than 25 % off are highlighted; the layout conversions are one row. "
             "Profiling adds a few µs to every kernel it times, so the smallest read high."]
    data = envelope("measure", spec=network.spec.name, profile=profile.name,
                    settings={"alpha": fmt_alpha(s.alpha), "resolution": list(s.size)},
                    estimated_us=total_est, measured_us=total_measured,
                    kernels=[{k: v for k, v in r.items() if not k.startswith("_")}
                             for r in rows])
    return Doc(f"Measured per kernel: {network.spec.title} (α {fmt_alpha(s.alpha)}, "
               f"{s.size[0]}×{s.size[1]}) against {profile.name}", [table], notes, data)
