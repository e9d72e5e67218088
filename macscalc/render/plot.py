"""Figures where a picture beats a table: published accuracy against MACs (``pick``,
``table``) and a sweep's cost over α × resolution (``sweep``).

matplotlib is the optional ``plot`` extra, imported only here and only when drawing, with
the Agg canvas (no display). Each figure is drawn from the same data the command prints as
JSON, and each function returns what it plotted, so tests can compare the two. Files are
written whole or not at all.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from macscalc.core.errors import MacscalcError
from macscalc.core.units import parse_count

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from macscalc.analysis.sweeps import Sweep

FORMATS = (".png", ".svg")
MISSING = "plotting needs the plot extra: pip install 'macscalc[plot]'"


def check_target(path: Path) -> None:
    """Fail before any work when the file type is unknown or matplotlib is missing."""
    if path.suffix.lower() not in FORMATS:
        raise MacscalcError(f"--plot needs a .png or .svg file name, got {str(path)!r}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MacscalcError(MISSING) from None


def _figure(title: str, subtitle: str) -> Figure:
    check_target(Path("x.png"))
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(f"{title}\n{subtitle}", fontsize=10)
    return fig


def _save(fig: Figure, path: Path, footnote: str) -> None:
    """Render to memory, then write it whole or not at all."""
    import textwrap

    from macscalc.core.files import write_atomic

    check_target(path)
    fig.supxlabel(textwrap.fill(footnote, 160), x=0.01, ha="left", fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lower()[1:])
    write_atomic(path, buf.getvalue())


def pick_plot(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Published top-1 against MACs, one colour per family, the Pareto frontier drawn and
    labelled, the MACs budget as a line. ``data`` is ``pick --format json``; models ranked by
    another metric (a detector's mAP) are left out."""
    points = [c for c in data["candidates"]
              if c["accuracy"] is not None and c["metric"] == "top-1"]
    fig = _figure("macscalc pick: published top-1 against MACs",
                  "MACs counted under each family's published convention (MicroNet: MAdds)")
    ax = fig.add_subplot()
    for family in dict.fromkeys(c["family"] for c in points):
        mine = [c for c in points if c["family"] == family]
        ax.scatter([c["macs"] / 1e6 for c in mine], [float(c["accuracy"]) for c in mine],
                   label=family, s=18)
    front = sorted((c for c in points if c["frontier"]), key=lambda c: c["macs"])
    ax.step([c["macs"] / 1e6 for c in front], [float(c["accuracy"]) for c in front],
            where="post", color="black", linewidth=1, label="Pareto frontier")
    for c in front:
        ax.annotate(c["model"], (c["macs"] / 1e6, float(c["accuracy"])), fontsize=7,
                    xytext=(3, -9), textcoords="offset points")
    budget = data["limits"].get("MACs")
    if budget is not None:
        ax.axvline(parse_count(str(budget)) / 1e6, color="red", linestyle="--",
                   label=f"budget {budget} MACs")
    ax.set(xlabel="MACs (millions)", ylabel="ImageNet top-1 (%)")
    ax.legend(fontsize=8, loc="lower right")
    sources = dict.fromkeys(c["source"] for c in points)
    _save(fig, path, "Accuracy as published: " + "; ".join(sources))
    return {"points": [(c["model"], c["family"], c["macs"], c["accuracy"]) for c in points],
            "frontier": [c["model"] for c in front],
            "budget": None if budget is None else parse_count(str(budget))}


def table_plot(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """A published grid's accuracy against MACs, one line per α through its resolutions (as
    the V2 paper's Figure 5). ``data`` is ``table --format json``."""
    rows = [r for r in data["rows"] if r["accuracy"] is not None]
    if not rows:
        raise MacscalcError(f"family {data['family']!r} has no published accuracy to plot")
    metric = rows[0]["metric"]
    rows = [r for r in rows if r["metric"] == metric]
    specs = ", ".join(dict.fromkeys(r["spec"] for r in rows))
    fig = _figure(f"macscalc table {data['family']} ({specs}): published {metric} against "
                  "MACs", data["convention"])
    ax = fig.add_subplot()
    lines: dict[str, list[str]] = {}
    for alpha in dict.fromkeys(r["alpha"] for r in rows):
        mine = sorted((r for r in rows if r["alpha"] == alpha), key=lambda r: r["macs"])
        ax.plot([r["macs"] / 1e6 for r in mine], [float(r["accuracy"]) for r in mine],
                marker="o", markersize=4, label=f"α {alpha}")
        for r in mine:
            ax.annotate(str(r["res"]), (r["macs"] / 1e6, float(r["accuracy"])), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
        lines[alpha] = [r["model"] for r in mine]
    ax.set(xlabel="MACs (millions, computed)", ylabel=f"published {metric} (%)",
           xscale="log")
    ax.legend(fontsize=8, title="width multiplier (points labelled by resolution)",
              title_fontsize=8)
    _save(fig, path, f"Accuracy as published: {data['primary_source']}")
    return {"points": [(r["model"], r["macs"], r["accuracy"]) for r in rows], "lines": lines}


def sweep_plot(result: Sweep, data: dict[str, Any], path: Path) -> dict[str, Any]:
    """MACs over α × resolution as a heat map, the MACs budget's contour, and the points on
    the MACs frontier. ``data`` is ``sweep --format json`` for ``result``."""
    import numpy as np

    res = result.resolutions
    alphas = np.array([float(a) for a in result.alphas])
    macs = np.ma.masked_array(result.macs / 1e6, mask=~result.valid)
    settings = data["settings"]
    fig = _figure(f"macscalc sweep {result.spec.name}: MACs over α × resolution",
                  f"MACs = conv + FC multiply-accumulates; {settings['classes']} classes; α "
                  f"rounded by {settings['rounding']}")
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(res, alphas, macs, shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="MACs (millions)")
    budget = data["limits"].get("macs")
    if budget is not None and min(macs.shape) > 1:
        ax.contour(res, alphas, macs, levels=[budget / 1e6], colors="red", linewidths=1.5)
        ax.plot([], [], color="red", label=f"budget {budget / 1e6:g} M MACs")
    front = [(p["alpha"], p["res"]) for p in data["points"]
             if any(v for k, v in p.items() if k.startswith("pareto_macs_"))]
    ax.scatter([r for _, r in front], [float(a) for a, _ in front], marker="*", s=40,
               color="white", edgecolors="black", linewidths=0.5,
               label="Pareto: MACs vs α·ρ or published accuracy")
    ax.set(xlabel="input resolution R (pixels, R×R)", ylabel="width multiplier α")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.1), ncol=2)
    accuracy = data["objectives"]["accuracy"]
    _save(fig, path, f"Spec: {result.spec.source}" +
          (f" · {accuracy['metric']} as published: {accuracy['source']}" if accuracy else ""))
    return {"alphas": list(settings["alphas"]),
            "resolutions": res.tolist(),
            "macs": [[int(v) if ok else None for v, ok in zip(row, valid, strict=True)]
                     for row, valid in zip(result.macs.tolist(), result.valid.tolist(),
                                           strict=True)],
            "frontier": front, "budget": budget}
