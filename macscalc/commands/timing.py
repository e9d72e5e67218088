"""``macscalc measure``: real latency on this machine (onnxruntime or LiteRT), as the CSV
``calibrate`` reads, or onnxruntime's own time per kernel beside the estimate."""

from __future__ import annotations

import sys
from pathlib import Path

from macscalc.commands import inputs
from macscalc.core.errors import MacscalcError, printable


def run_measure(spec: str | None, grid: str | None, *, alpha: str | None = None,
                res: int | None = None, classes: int | None = None, threads: int = 1,
                runs: int = 30, warmup: int = 5, rounds: int = 1, max_runs: int | None = None,
                cpu: int | None = None, layers: bool = False, device: str | None = None,
                runtime: str = "onnxruntime", dtype: str = "fp32", fmt: str = "table",
                output: Path | None = None) -> None:
    """Time one spec or a grid and write the CSV (one summary line per point on stderr);
    with ``layers``, render the per-kernel document instead."""
    from macscalc.analysis.calibrate import Measurement
    from macscalc.core.files import write_atomic
    from macscalc.core.units import parse_alpha
    from macscalc.models.measure import grid_points, measure_csv, runner_check

    if (spec is None) == (grid is None):
        raise MacscalcError("give a SPEC or --grid GRID (not both)")
    if layers:
        from macscalc.analysis.latency import load_profile
        from macscalc.commands.layers import layers_doc
        from macscalc.models.measure import kernel_times, pin
        from macscalc.render.output import render

        if spec is None or runtime != "onnxruntime":
            raise MacscalcError("--layers profiles one SPEC in onnxruntime, not a --grid "
                                "or another runtime")
        network = inputs.network(spec, alpha, res, classes)
        pin(cpu)
        measured = kernel_times(network, threads, runs, warmup)
        render(layers_doc(network, measured, load_profile(device or "cpu_epyc_1t")), fmt,
               output)
        return
    if grid is not None:
        points, base = grid_points(grid), Path(grid).parent
    else:
        a = parse_alpha(alpha) if alpha is not None else None
        points, base = [Measurement(spec, a, res, classes, None)], None  # type: ignore[arg-type]
    runner_check(runtime, dtype)
    text, summaries = measure_csv(points, threads, runs, warmup, rounds, base,
                                  progress=grid is not None,
                                  max_runs=4 * runs if max_runs is None else max_runs,
                                  cpu=cpu, runtime=runtime, dtype=dtype)
    for line in summaries:
        sys.stderr.write(printable(line) + "\n")
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text)
