"""Startup benchmark: `macscalc count mobilenet_v2` and `macscalc --help` against
importing the dependencies they are built on.

Baseline: `python -c "import typer, rich.table, rich.console, yaml"`. Each command runs
in a fresh process, paired with a baseline run right after it; the report gives the
median wall time of each and the median of the paired ratios (target: at most 1.25),
and the same ratio of CPU time (user + system), which a busy machine disturbs less.
Children run with bytecode caching on, as after any pip install (PYTHONDONTWRITEBYTECODE
is dropped for them, or every run would recompile macscalc from source while its
dependencies load installed bytecode).

    python benchmarks/startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BASELINE = [sys.executable, "-c", "import typer, rich.table, rich.console, yaml"]
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _macscalc() -> list[str]:
    """The console script installed beside this Python (not a shim such as pyenv's, which
    would time the shim), else ``python -m macscalc``."""
    exe = Path(sys.executable).parent / "macscalc"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "macscalc"]


def _time(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env=ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def measure(cmd: list[str], runs: int) -> dict[str, float]:
    """Medians over ``runs`` pairs: wall ms of ``cmd`` and of the baseline, and the
    paired ratios of wall and CPU time."""
    _time(cmd), _time(BASELINE)  # warm the file cache
    pairs = [(_time(cmd), _time(BASELINE)) for _ in range(runs)]
    med = statistics.median
    return {"ms": med(a[0] for a, _ in pairs) * 1000, "base_ms": med(b[0] for _, b in pairs) * 1000,
            "wall": med(a[0] / b[0] for a, b in pairs), "cpu": med(a[1] / b[1] for a, b in pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    runs = parser.parse_args().runs
    head = _macscalc()
    print(f"baseline: {' '.join(BASELINE[1:])}")
    for args in (["count", "mobilenet_v2"], ["--help"]):
        m = measure([*head, *args], runs)
        print(f"macscalc {' '.join(args):18} {m['ms']:6.1f} ms (baseline {m['base_ms']:6.1f}); "
              f"ratio wall {m['wall']:.2f}, CPU {m['cpu']:.2f} (target ≤ 1.25; {runs} pairs)")


if __name__ == "__main__":
    main()
