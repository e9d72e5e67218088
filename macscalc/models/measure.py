"""Measuring a spec's latency on this machine with onnxruntime or LiteRT.

Why: a latency profile (``latency.py``) is only as good as its measurements, and a user
should get a profile of their own CPU in minutes. Protocol: the spec exported with
seeded weights, one session with the intra-op threads pinned; warm-up runs, then the
median of N timed runs with its spread. onnxruntime (``models/onnx/export.py``): one
inter-op thread, sequential execution and full graph optimisation (what a deployment
gets: batch norm and activations fused into convolutions). LiteRT, the runtime the
MobileNet papers time with (``models/tflite/export.py``): BN folded and relu fused as the
converter writes a model, XNNPACK with ``threads`` threads, float32, float16 weights or
int8. Either way: warm-up runs, then N timed runs, optionally pinned to one CPU. A timing
is *stable* when its interquartile range is within ``STABLE_IQR`` of its median; an
unstable one gets further rounds of runs, up to ``max_runs``, because on a shared machine
a burst of other work widens the spread and a longer sample lets the median and minimum
settle. Both the median (the ``ms`` column, what ``calibrate`` fits: it is what a
deployment sees on average) and the minimum (the least disturbed run) are recorded. Rows
are the CSV that ``calibrate`` reads, with the machine, runtime, number type, threads and
pinning in comment lines.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from macscalc.analysis.calibrate import CSV_COLUMNS, Measurement, read_measurements, size_text
from macscalc.core.errors import MacscalcError, show
from macscalc.core.extras import require
from macscalc.core.limits import MAX_CSV_ROWS, MAX_MEASURE_BYTES, MAX_MEASURE_MACS
from macscalc.core.units import fmt_alpha, fmt_int
from macscalc.lang.graph import Network

EXTRA_COLUMNS = ("q1_ms", "q3_ms", "min_ms", "max_ms", "threads", "runs")
STABLE_IQR = 0.05  # a timing is stable when (q3 − q1) ≤ 5 % of its median
RUNTIMES = ("onnxruntime", "litert")


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
                f"{self.threads} thread{'s' if self.threads > 1 else ''}"
                + ("" if self.stable() else ", UNSTABLE"))

    def stable(self) -> bool:
        return self.q3 - self.q1 <= STABLE_IQR * self.ms


def _timing(times: list[float], threads: int) -> Timing:
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return Timing(statistics.median(times), q1, q3, min(times), max(times), threads,
                  len(times))


class Runner:
    """One network exported for onnxruntime, loaded and ready to time. ``release`` lets go
    of the loaded session (and its threads); the next run loads it again from the export
    and runs it once untimed first."""

    def __init__(self, network: Network, threads: int, profile_dir: str | None = None) -> None:
        ort = require("onnxruntime", "measure")
        require("onnx", "measure")
        import numpy as np

        from macscalc.models.onnx.export import export

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if profile_dir is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(profile_dir) / "ort-profile")
        self.options = options
        self.model = export(network).SerializeToString()
        x = network.input
        self.feed = {"input": np.random.default_rng(0).standard_normal(
            (1, x.c, x.h, x.w), dtype=np.float32)}
        self.times: list[float] = []
        self.session = self.load()

    def load(self) -> Any:
        import onnxruntime as ort

        return ort.InferenceSession(self.model, self.options,
                                    providers=["CPUExecutionProvider"])

    def once(self) -> None:
        self.session.run(None, self.feed)

    def release(self) -> None:
        self.session = None

    def run(self, n: int, timed: bool = True) -> None:
        if self.session is None:
            self.session = self.load()
            self.once()
        for _ in range(n):
            start = time.perf_counter_ns()
            self.once()
            if timed:
                self.times.append((time.perf_counter_ns() - start) / 1e6)


class LiteRTRunner(Runner):
    """One network exported to TFLite (``dtype``) and loaded into LiteRT's interpreter
    with the XNNPACK delegate on ``threads`` threads."""

    def __init__(self, network: Network, threads: int, dtype: str = "fp32") -> None:
        require("ai_edge_litert.interpreter", "measure --runtime litert")
        from macscalc.models.tflite.export import export

        self.model = export(network, 0, dtype)
        self.threads = threads
        self.times = []
        self.session = self.load()

    def load(self) -> Any:
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_content=self.model, num_threads=self.threads)
        interpreter.allocate_tensors()
        x = interpreter.get_input_details()[0]
        interpreter.set_tensor(x["index"], np.random.default_rng(0).standard_normal(
            tuple(x["shape"]), dtype=np.float32))
        return interpreter

    def once(self) -> None:
        self.session.invoke()


def runner_check(runtime: str, dtype: str) -> None:
    """A runtime and number type ``measure`` can time, checked before anything is built."""
    from macscalc.models.tflite.export import DTYPES

    if runtime not in RUNTIMES:
        raise MacscalcError(f"--runtime is one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if runtime == "onnxruntime" and dtype != "fp32":
        raise MacscalcError("--dtype applies to --runtime litert; onnxruntime runs fp32")
    if dtype not in DTYPES:
        raise MacscalcError(f"--dtype is one of {', '.join(DTYPES)}, not {dtype!r}")


def runner(network: Network, threads: int, runtime: str = "onnxruntime",
           dtype: str = "fp32") -> Runner:
    """A network loaded into ``runtime``, ready to time."""
    runner_check(runtime, dtype)
    return Runner(network, threads) if runtime == "onnxruntime" else \
        LiteRTRunner(network, threads, dtype)


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


def pin(cpu: int | None) -> None:
    """Run this process (and onnxruntime's threads, which it starts later) on one CPU, so
    the timings do not move with the scheduler on a shared machine."""
    import os

    if cpu is None:
        return
    if not hasattr(os, "sched_setaffinity"):
        raise MacscalcError("--cpu needs an operating system with CPU affinity (Linux)")
    try:
        os.sched_setaffinity(0, {cpu})
    except (OSError, ValueError) as e:
        raise MacscalcError(f"cannot pin to CPU {cpu}: {e}") from None


def time_networks(networks: list[Network], threads: int, runs: int, warmup: int,
                  rounds: int = 1, step: Callable[[int], None] | None = None,
                  max_runs: int | None = None, runtime: str = "onnxruntime",
                  dtype: str = "fp32") -> list[Timing]:
    """Time each network ``runs`` times after ``warmup`` untimed runs. With several
    networks the runs are spread over ``rounds`` interleaved rounds (one untimed run
    before each visit), so a burst of load on the machine touches every network a little
    instead of spoiling a few; ``step(i)`` is called as network i finishes a round. Then,
    while a timing is not stable and has fewer than ``max_runs`` runs, it gets another
    ``runs`` (the unstable ones interleaved run by run on one thread, visit by visit on
    several)."""
    if runs < 1 or warmup < 0 or threads < 1 or rounds < 1:
        raise MacscalcError("--runs, --threads and --rounds must be at least 1, --warmup at "
                            "least 0")
    max_runs = runs if max_runs is None else max_runs
    if max_runs < runs:
        raise MacscalcError(f"--max-runs ({max_runs}) must be at least --runs ({runs})")
    for network in networks:
        _check_measurable(network)
    # several threads: a session's pool keeps spinning a while after each run, on the
    # cores the next network's threads need (measured at 2 threads here, interleaved:
    # MicroNet-M3 7.7 ms median against 2.6 ms alone), so each network holds its session
    # only while it is timed
    alone = threads > 1 and len(networks) > 1
    runners = []
    for i, network in enumerate(networks):
        runners.append(runner(network, threads, runtime, dtype))
        runners[-1].run(warmup, timed=False)
        if alone:
            runners[-1].release()
        if step:
            step(i)
    rounds = effective_rounds(len(networks), rounds, runs)
    for r in range(rounds):
        share = runs // rounds + (r < runs % rounds)
        for i, loaded in enumerate(runners):
            if rounds > 1:
                loaded.run(1, timed=False)
            loaded.run(share)
            if alone:
                loaded.release()
            if step:
                step(i)
    while True:
        again = [r for r in runners if len(r.times) + runs <= max_runs
                 and not _timing(r.times, threads).stable()]
        if not again:
            break
        if alone:
            for loaded in again:
                loaded.run(runs)
                loaded.release()
        else:
            for _ in range(runs):
                for loaded in again:
                    loaded.run(1)
    return [_timing(loaded.times, threads) for loaded in runners]


def machine() -> str:
    """The CPU model, as ``lscpu`` names it."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def runtime_text(runtime: str, threads: int, dtype: str) -> str:
    """The runtime, its version, threads and number type, for the provenance line."""
    plural = "s" if threads > 1 else ""
    if runtime == "litert":
        from importlib.metadata import version

        return (f"LiteRT (ai-edge-litert {version('ai-edge-litert')}) with XNNPACK, "
                f"{threads} thread{plural}, TFLite export in {dtype}")
    ort = require("onnxruntime", "measure")
    return (f"onnxruntime {ort.__version__} CPUExecutionProvider, {threads} intra-op "
            f"thread{plural}")


def layout_block() -> int:
    """Channels a block of onnxruntime's blocked conv layout on this machine: MLAS holds
    16 where the CPU has AVX-512 (``avx512f`` among Linux's CPU flags), else 8."""
    import re

    from macscalc.analysis.kernels import AVX2_BLOCK, BLOCK

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = f.read(1 << 20)
    except OSError:
        return AVX2_BLOCK
    return BLOCK if re.search(r"\bavx512f\b", flags) else AVX2_BLOCK


def layout_line(block: int) -> str:
    """The comment that tells ``calibrate`` the measuring runtime's layout block."""
    from macscalc.analysis.kernels import BLOCK, NHWC

    if block == NHWC:
        return "# layout: LiteRT keeps one channels-last layout, 0 channels a block (none)"
    return (f"# layout: onnxruntime's blocked conv layout holds {block} channels a block "
            f"({'AVX-512' if block == BLOCK else 'no AVX-512'})")


def provenance(threads: int, runs: int, warmup: int, rounds: int,
               max_runs: int | None = None, cpu: int | None = None,
               runtime: str = "onnxruntime", dtype: str = "fp32") -> list[str]:
    """Comment lines saying what measured a CSV; ``calibrate`` takes the device from the
    ``machine:`` line and the layout block from the ``layout:`` line, and keeps them all in
    the profile."""
    import os

    from macscalc.analysis.kernels import NHWC

    load = f"; load average (1 min) when timing began: {os.getloadavg()[0]:.2f}" \
        if hasattr(os, "getloadavg") else ""
    more = (f"; up to {max_runs} where the interquartile range exceeds "
            f"{100 * STABLE_IQR:.0f} % of the median" if max_runs and max_runs > runs else "")
    return [f"# macscalc measure: median of {runs} runs after {warmup} warm-up"
            + (f", in {rounds} interleaved rounds" if rounds > 1 else "") + more,
            f"# machine: {machine()} ({os.cpu_count()} CPUs), "
            f"{runtime_text(runtime, threads, dtype)}"
            + (f", pinned to CPU {cpu}" if cpu is not None else ""),
            f"# system: {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}{load}",
            layout_line(layout_block() if runtime == "onnxruntime" else NHWC)]


def csv_row(network: Network, ref: str, t: Timing) -> str:
    s = network.settings
    cells = [ref, fmt_alpha(s.alpha), size_text(s.size), str(s.classes),
             *(f"{v:.4f}" for v in (t.ms, t.q1, t.q3, t.min, t.max)), str(t.threads),
             str(t.runs)]
    return ",".join(cells)


def csv_header() -> str:
    return ",".join((*CSV_COLUMNS, *EXTRA_COLUMNS))


def grid_points(text: str) -> list[Measurement]:
    """``--grid``: a CSV file (spec,alpha,res,classes[,ms]), or a comma list of family
    names (their published grid points) and specs (at their defaults)."""

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
            out.append(Measurement(item, None, None, None, None))
    if len(out) > MAX_CSV_ROWS:
        raise MacscalcError(f"--grid names {len(out):,} points, more than {MAX_CSV_ROWS:,}")
    if not out:
        raise MacscalcError(f"--grid {show(text)} names no specs (a CSV file, or families such as "
                            f"{', '.join(known)}, or specs, comma-separated)")
    return out


def measure_csv(points: list[Measurement], threads: int, runs: int, warmup: int,
                rounds: int = 1, base: Path | None = None, progress: bool = False,
                max_runs: int | None = None, cpu: int | None = None,
                runtime: str = "onnxruntime", dtype: str = "fp32") -> tuple[str, list[str]]:
    """Time every point; returns the CSV (comments, header, a row each) and one line per
    point for people. Every spec is built first, so a bad one fails before any timing."""
    networks = [p.network(base) for p in points]
    effective = effective_rounds(len(networks), rounds, runs)
    pin(cpu)
    head = [*provenance(threads, runs, warmup, effective, max_runs, cpu, runtime, dtype),
            csv_header()]
    labels = [f"{p.spec} α{fmt_alpha(n.settings.alpha)} {size_text(n.settings.size, '×')}"
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

            timings = time_networks(networks, threads, runs, warmup, rounds, step, max_runs,
                                    runtime, dtype)
    else:
        timings = time_networks(networks, threads, runs, warmup, rounds, None, max_runs,
                                runtime, dtype)
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


def kernel_times(network: Network, threads: int, runs: int, warmup: int) -> dict[str, float]:
    """onnxruntime's own profile: the median µs of each kernel it ran over ``runs`` runs
    after ``warmup`` (profiled too, then dropped), by node name as the runtime renamed it
    (``conv1/conv.relu_nchwc``, ``ReorderOutput_token_12``)."""
    import json

    if runs < 1 or warmup < 0 or threads < 1:
        raise MacscalcError("--runs and --threads must be at least 1, --warmup at least 0")
    with tempfile.TemporaryDirectory(prefix="macscalc-prof-") as tmp:
        runner = Runner(network, threads, tmp)
        runner.run(warmup + runs, timed=False)
        events = json.loads(Path(runner.session.end_profiling()).read_text(encoding="utf-8"))
    durations: dict[str, list[float]] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") == "Node" and name.endswith("_kernel_time"):
            durations.setdefault(name.removesuffix("_kernel_time"), []).append(
                float(e.get("dur", 0)))
    return {k: statistics.median(v[warmup:] or v) for k, v in durations.items()}
