"""``macscalc calibrate``: a device profile fitted to measured whole models, to single
layers timed here (``--auto``), or the few models to time on a device (``--suggest``)."""

from __future__ import annotations

import sys
from pathlib import Path

from macscalc.analysis.calibrate import FIGURES, Calibration, calibrate_file
from macscalc.analysis.latency import profile_yaml
from macscalc.core.errors import MacscalcError, show
from macscalc.core.files import write_atomic
from macscalc.render.calibration import calibrate_doc
from macscalc.render.output import render

REFERENCE_PROFILE = "cpu_epyc_1t"  # scales --suggest's rows by an estimated time; the
# default prior of a fit to whole models


def run_calibrate(measured: Path | None, profile: Path | None, *, auto: bool = False,
                  suggest_n: int | None = None, name: str | None = None,
                  figure: str = "median", threads: int = 1, budget: float = 180,
                  cpu: int | None = None, fmt: str = "table",
                  prior: str = REFERENCE_PROFILE) -> str | None:
    """Fit and write the profile and render its document; with ``suggest_n``, the CSV of
    models to time, returned when no file is given to write it to."""
    if figure not in FIGURES:
        raise MacscalcError(f"--figure must be one of {', '.join(FIGURES)}, got {show(figure)}")
    if suggest_n is not None:
        if measured is None or auto:
            raise MacscalcError("--suggest N needs CANDIDATES (and no --auto)")
        text = suggest_csv(str(measured), suggest_n)
        if profile is None:
            return text
        write_atomic(profile, text)
        return None
    if profile is None:
        raise MacscalcError("give the profile to write with -o PROFILE.yaml")
    if auto == (measured is not None):
        raise MacscalcError("give MEASURED.csv or --auto (not both)")
    if auto:
        cal = calibrate_auto(threads, budget, figure, cpu, name)
    else:
        from macscalc.analysis.latency import load_profile
        start = None if prior == "none" else load_profile(prior)
        cal = calibrate_file(measured, name, figure, start)  # type: ignore[arg-type]
    write_atomic(profile, profile_yaml(cal.profile))
    render(calibrate_doc(cal, str(profile)), fmt)
    return None


def calibrate_auto(threads: int, budget: float, figure: str, cpu: int | None,
                   name: str | None) -> Calibration:
    """calibrate --auto with a progress bar on stderr when it is a terminal."""
    from macscalc.models.autocal import auto_calibrate

    if not sys.stderr.isatty():
        cal, _ = auto_calibrate(threads, budget, figure, cpu)
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("timing graphs", total=None)

            def step(done: int, total: int, label: str) -> None:
                bar.update(task, completed=done, total=total, description=label)

            cal, _ = auto_calibrate(threads, budget, figure, cpu, step)
    return cal._replace(profile=cal.profile._replace(name=name or "auto"))


def suggest_csv(candidates: str, n: int) -> str:
    """calibrate --suggest: the chosen candidates as the CSV calibrate reads."""
    from macscalc.analysis.calibrate import size_text
    from macscalc.analysis.design import suggest
    from macscalc.analysis.latency import load_profile
    from macscalc.core.units import fmt_alpha
    from macscalc.lang.spec import is_file
    from macscalc.models.measure import grid_points

    points = grid_points(candidates)
    base = Path(candidates).parent if is_file(Path(candidates)) else None
    networks = [p.network(base) for p in points]
    s = suggest(networks, n, load_profile(REFERENCE_PROFILE))
    lines = [f"# macscalc calibrate --suggest {n}: of {len(points)} candidates, the {len(s.picks)} "
             "whose timings best pin the latency model's constants (greedy D-optimal design "
             "over their features)",
             f"# the design has rank {s.rank} over the {len(s.terms)} constants these "
             f"candidates exercise ({', '.join(s.terms)})"
             + ("" if s.rank == len(s.terms) else ": too few models to pin them all"),
             "# time each model, put the ms in the last column, then: macscalc calibrate "
             "FILE -o PROFILE.yaml",
             "# or, where onnxruntime runs: macscalc measure --grid FILE -o TIMED.csv, which "
             "also writes the layout line calibrate reads",
             "spec,alpha,res,classes,ms"]
    for i in s.picks:
        p, net = points[i], networks[i]
        st = net.settings
        lines.append(f"{p.spec},{fmt_alpha(st.alpha)},{size_text(st.size)},{st.classes},")
    return "\n".join(lines) + "\n"
