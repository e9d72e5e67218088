"""Measuring a spec's latency on this machine with onnxruntime.

Why: a latency profile (``latency.py``) is only as good as its measurements, and a user
should get a profile of their own CPU in minutes. Protocol: the spec exported with
seeded weights (``onnx_export.py``), one session with the intra-op threads pinned, one
inter-op thread, sequential execution and full graph optimisation (what a deployment
gets: batch norm and activations fused into convolutions); warm-up runs, then the
median of N timed runs with its spread. Rows are the CSV that ``calibrate`` reads, with
the machine and runtime in comment lines.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from macscalc.analysis.calibrate import CSV_COLUMNS, Measurement, read_measurements
from macscalc.core.errors import MacscalcError, show
from macscalc.core.extras import require
from macscalc.core.limits import MAX_CSV_ROWS, MAX_MEASURE_BYTES, MAX_MEASURE_MACS
from macscalc.core.units import fmt_alpha, fmt_int
from macscalc.lang.graph import Network

EXTRA_COLUMNS = ("q1_ms", "q3_ms", "min_ms", "max_ms", "threads", "runs")


class Timing(NamedTuple):
    """Milliseconds of ``runs`` timed runs: the median and the spread."""

    ms: float
    q1: float
    q3: float
    min: float
    max: float
    threads: int
    runs: int

    def describe(self) -> str:
        return (f"median {self.ms:.3f} ms (quartiles {self.q1:.3f}–{self.q3:.3f}, "
                f"min {self.min:.3f}, max {self.max:.3f}) over {self.runs} runs, "
                f"{self.threads} thread{'s' if self.threads > 1 else ''}")


def _timing(times: list[float], threads: int) -> Timing:
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return Timing(statistics.median(times), q1, q3, min(times), max(times), threads,
                  len(times))


class Runner:
    """One network loaded into onnxruntime, ready to time."""

    def __init__(self, network: Network, threads: int) -> None:
        ort = require("onnxruntime", "measure")
        onnx = require("onnx", "measure")
        import numpy as np

        from macscalc.models.onnx.export import export

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        with tempfile.TemporaryDirectory(prefix="macscalc-") as tmp:
            path = Path(tmp) / "model.onnx"
            onnx.save(export(network), path)
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        x = network.input
        self.feed = {"input": np.random.default_rng(0).standard_normal(
            (1, x.c, x.h, x.w), dtype=np.float32)}
        self.times: list[float] = []

    def run(self, n: int, timed: bool = True) -> None:
        for _ in range(n):
            start = time.perf_counter_ns()
            self.session.run(None, self.feed)
            if timed:
                self.times.append((time.perf_counter_ns() - start) / 1e6)


def _check_measurable(network: Network) -> None:
    """A model this machine can run in seconds: its MACs and peak activation memory within
    the limits, checked before it is exported or any memory is taken."""
    from macscalc.analysis.memory import peak

    macs = sum(n.layer.macs(n.in_shapes, n.out) for n in network.nodes)
    nbytes = 4 * peak(network).elements
    if macs > MAX_MEASURE_MACS or nbytes > MAX_MEASURE_BYTES:
        raise MacscalcError(f"{network.spec.name} ({fmt_int(macs)} MACs, {fmt_int(nbytes)} "
                            f"bytes of activations at fp32) is past what measure runs "
                            f"({fmt_int(MAX_MEASURE_MACS)} MACs, {fmt_int(MAX_MEASURE_BYTES)} "
                            "bytes)", network.spec.file)


def effective_rounds(networks: int, rounds: int, runs: int) -> int:
    """Rounds only interleave several networks, and never hold fewer than one run."""
    return min(rounds, runs) if networks > 1 else 1


def time_networks(networks: list[Network], threads: int, runs: int, warmup: int,
                  rounds: int = 1, step: Callable[[int], None] | None = None) -> list[Timing]:
    """Time each network ``runs`` times after ``warmup`` untimed runs. With several
    networks the runs are spread over ``rounds`` interleaved rounds (one untimed run
    before each visit), so a burst of load on the machine touches every network a little
    instead of spoiling a few; ``step(i)`` is called as network i finishes a round."""
    if runs < 1 or warmup < 0 or threads < 1 or rounds < 1:
        raise MacscalcError("--runs, --threads and --rounds must be at least 1, --warmup at "
                            "least 0")
    for network in networks:
        _check_measurable(network)
    runners = []
    for i, network in enumerate(networks):
        runners.append(Runner(network, threads))
        runners[-1].run(warmup, timed=False)
        if step:
            step(i)
    rounds = effective_rounds(len(networks), rounds, runs)
    for r in range(rounds):
        share = runs // rounds + (r < runs % rounds)
        for i, runner in enumerate(runners):
            if rounds > 1:
                runner.run(1, timed=False)
            runner.run(share)
            if step:
                step(i)
    return [_timing(runner.times, threads) for runner in runners]


def machine() -> str:
    """The CPU model, as ``lscpu`` names it."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(threads: int, runs: int, warmup: int, rounds: int) -> list[str]:
    """Comment lines saying what measured a CSV; ``calibrate`` takes the device from the
    ``machine:`` line and keeps them all in the profile."""
    import os

    ort = require("onnxruntime", "measure")
    load = f"; load average (1 min) when timing began: {os.getloadavg()[0]:.2f}" \
        if hasattr(os, "getloadavg") else ""
    return [f"# macscalc measure: median of {runs} runs after {warmup} warm-up"
            + (f", in {rounds} interleaved rounds" if rounds > 1 else ""),
            f"# machine: {machine()} ({os.cpu_count()} CPUs), onnxruntime {ort.__version__} "
            f"CPUExecutionProvider, {threads} intra-op thread{'s' if threads > 1 else ''}",
            f"# system: {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}{load}"]


def csv_row(network: Network, ref: str, t: Timing) -> str:
    s = network.settings
    cells = [ref, fmt_alpha(s.alpha), str(s.size[0]), str(s.classes),
             *(f"{v:.4f}" for v in (t.ms, t.q1, t.q3, t.min, t.max)), str(t.threads),
             str(t.runs)]
    return ",".join(cells)


def csv_header() -> str:
    return ",".join((*CSV_COLUMNS, *EXTRA_COLUMNS))


def grid_points(text: str) -> list[Measurement]:
    """``--grid``: a CSV file (spec,alpha,res,classes[,ms]), or a comma list of family
    names (their published grid points) and specs (at their defaults)."""
    from fractions import Fraction

    from macscalc.lang.spec import is_file
    from macscalc.published.tables import families, load_family

    path = Path(text)
    if is_file(path):
        return read_measurements(path, need_ms=False)
    out = []
    known = families()
    rows: dict[str, list[Measurement]] = {}  # each family read once, however often named
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if item in known:
            if item not in rows:
                rows[item] = [Measurement(r.spec, r.alpha, r.res, None, None)
                              for r in load_family(item).primary.rows]
            out += rows[item]
        else:
            out.append(Measurement(item, Fraction(1), None, None, None))
    if len(out) > MAX_CSV_ROWS:
        raise MacscalcError(f"--grid names {len(out):,} points, more than {MAX_CSV_ROWS:,}")
    if not out:
        raise MacscalcError(f"--grid {show(text)} names no specs (a CSV file, or families such as "
                            f"{', '.join(known)}, or specs, comma-separated)")
    return out


def measure_csv(points: list[Measurement], threads: int, runs: int, warmup: int,
                rounds: int = 1, base: Path | None = None, progress: bool = False
                ) -> tuple[str, list[str]]:
    """Time every point; returns the CSV (comments, header, a row each) and one line per
    point for people. Every spec is built first, so a bad one fails before any timing."""
    networks = [p.network(base) for p in points]
    effective = effective_rounds(len(networks), rounds, runs)
    head = [*provenance(threads, runs, warmup, effective), csv_header()]
    labels = [f"{p.spec} α{fmt_alpha(n.settings.alpha)} {n.settings.size[0]}"
              for p, n in zip(points, networks, strict=True)]
    if progress:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("loading", total=len(networks) * (1 + effective))

            def step(i: int) -> None:
                bar.update(task, advance=1, description=labels[i])

            timings = time_networks(networks, threads, runs, warmup, rounds, step)
    else:
        timings = time_networks(networks, threads, runs, warmup, rounds)
    lines = head + [csv_row(n, p.spec, t)
                    for p, n, t in zip(points, networks, timings, strict=True)]
    summaries = [f"{label}: {t.describe()}" for label, t in zip(labels, timings, strict=True)]
    return "\n".join(lines) + "\n", summaries + noise_warnings(timings)


def noise_warnings(timings: list[Timing]) -> list[str]:
    """Say so when other work on the machine has likely inflated the timings: a busy
    machine (load average above half its CPUs) or a wide spread between quartiles."""
    import os

    out = []
    cpus = os.cpu_count() or 1
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > cpus / 2:
        out.append(f"WARNING: the machine is busy (load average {os.getloadavg()[0]:.1f} on "
                   f"{cpus} CPUs): other work inflates timings, most with several threads; "
                   "measure on an idle machine")
    noisy = sum(1 for t in timings if t.q3 > 1.25 * t.q1)
    if noisy:
        out.append(f"WARNING: {noisy} of {len(timings)} timings spread widely (upper quartile "
                   "over 1.25 × the lower): measure again, or with more --runs and --rounds")
    return out
