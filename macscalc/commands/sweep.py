"""``macscalc sweep``: MACs, params, memory (and estimated latency) over α × resolution,
the points within the limits or on a frontier, with the published accuracy beside them."""

from __future__ import annotations

from pathlib import Path

from macscalc.commands import inputs
from macscalc.core.errors import MacscalcError


def run_sweep(spec: str, alpha: str, res: str | None, classes: int | None, params: str,
              dtype: str, counts: dict[str, str | None], max_memory: str | None,
              max_latency: float | None, device: str | None, frontier: bool,
              plot: Path | None, fmt: str, output: Path | None) -> None:
    """Sweep ``spec``, render the points chosen, and draw them to ``plot`` if given. The
    grid's size and every limit are checked before anything is built."""
    from macscalc.analysis.sweeps import (
        check_points,
        parse_values,
        progress_bar,
        select,
        sweep,
        value_count,
    )
    from macscalc.core.units import parse_bytes, parse_count, parse_ms
    from macscalc.lang.spec import load_spec
    from macscalc.models.files import FORMATS_A, model_format
    from macscalc.published.tables import published_accuracy
    from macscalc.render.output import render
    from macscalc.render.sweep_view import sweep_doc

    if max_latency is not None:
        if device is None:
            raise MacscalcError("--max-latency needs --device PROFILE and a positive number "
                                "of ms")
        parse_ms(max_latency, "--max-latency")
    profile = inputs.profile(device)
    if plot is not None:
        from macscalc.render.plot import check_target

        check_target(plot)
    limits: dict[str, float] = {k: parse_count(v, f"--max-{k}") for k, v in counts.items()
                                if v is not None}
    if max_memory is not None:
        limits["memory"] = parse_bytes(max_memory, "--max-memory")
    if max_latency is not None:
        limits["latency"] = max_latency
    if model_format(spec):
        raise MacscalcError(f"sweep needs a spec: α and ρ do not apply to "
                            f"{FORMATS_A[model_format(spec)]} file; write one with "
                            "'macscalc import MODEL -o spec.yaml'")
    s = load_spec(spec)
    check_points(value_count(alpha, "--alpha"), value_count(res, "--res") if res else 1)
    sizes = parse_values(res, "--res") if res else [s.size[0]]
    with progress_bar() as progress:
        result = sweep(s, parse_values(alpha, "--alpha"), sizes, classes, params, dtype,
                       progress, profile)
    accuracy = published_accuracy(s)
    chosen = select(result, limits, accuracy.values if accuracy else {}, frontier)
    doc = sweep_doc(result, chosen, accuracy, limits, frontier)
    render(doc, fmt, output)
    if plot is not None:
        from macscalc.render.plot import sweep_plot

        sweep_plot(result, doc.data, plot)
