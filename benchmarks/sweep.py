"""Sweep benchmark: configurations per second on MobileNet V2, and a whole ~1M-point
``macscalc sweep`` process against a whole ``macscalc count`` process.

In process, ``macscalc.sweep`` runs over two grids: ~1M points with fine α steps (951 α,
291 distinct channel configurations) and ~1M points with coarser α (101 α × 9,901
resolutions); then ResNet-50 over the first grid, a network outside the MobileNet family
whose strided shortcuts change with the resolution (odd sizes), so each α builds one
network per class of resolutions. Then both MobileNet V2 commands run as fresh processes,
interleaved; the report gives medians of wall time and of CPU time (user + system,
steadier on a shared machine) and their ratio.

    python benchmarks/sweep.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from startup import _macscalc, _time  # beside this file: one process timer

GRIDS = {"fine α": ("0.1:2.0:0.002", "64:1114"), "coarse α": ("0.5:1.5:0.01", "100:10000")}


def _in_process() -> None:
    from macscalc import sweep
    from macscalc.analysis.sweeps import parse_values

    sweep("mobilenet_v2", [1], [224])  # imports and caches warm
    runs = [("mobilenet_v2", label, grid) for label, grid in GRIDS.items()]
    for spec, label, (alphas, res) in [*runs, ("resnet50", "fine α", GRIDS["fine α"])]:
        a, r = parse_values(alphas, "α"), parse_values(res, "R")
        wall, cpu = time.perf_counter(), time.process_time()
        result = sweep(spec, a, r)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        n = result.macs.size
        print(f"{spec:12} {label:9} {len(a)} α × {len(r)} R = {n:,} points "
              f"({int(result.valid.sum()):,} valid), {result.builds:,} builds: "
              f"{wall:.2f} s wall ({n / wall:,.0f}/s), {cpu:.2f} s CPU ({n / cpu:,.0f}/s)")


def _command(*args: str) -> list[str]:
    return [*_macscalc(), *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    _in_process()
    count_cmd = _command("count", "mobilenet_v2")
    _time(count_cmd)  # warm the file cache
    for label, (alphas, res) in GRIDS.items():
        sweep_cmd = _command("sweep", "mobilenet_v2", "--alpha", alphas, "--res", res,
                             "--frontier", "--format", "json")
        ours, base = [], []
        for _ in range(runs):
            ours.append(_time(sweep_cmd))
            base.append(_time(count_cmd))
        for i, what in enumerate(("wall", "CPU")):
            s, c = statistics.median(t[i] for t in ours), statistics.median(t[i] for t in base)
            print(f"{label:9} {what:4} process: sweep --frontier {s:.2f} s, count {c:.2f} s: "
                  f"{s / c:.1f}× ({runs} runs each, interleaved)")


if __name__ == "__main__":
    main()
