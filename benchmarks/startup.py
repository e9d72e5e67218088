"""Startup benchmark: `macscalc count mobilenet_v2` against importing its own dependencies.

Both commands run in fresh processes, interleaved, in the same run; the report gives
the median wall time of each and the ratio (target: at most 1.25). Children run with
bytecode caching on, as after any pip install (PYTHONDONTWRITEBYTECODE is dropped for
them, or every run would recompile macscalc from source while its dependencies load
installed bytecode).

    python benchmarks/startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

BASELINE = [sys.executable, "-c", "import typer, rich.table, yaml"]


def _command() -> list[str]:
    exe = shutil.which("macscalc")
    head = [exe] if exe else [sys.executable, "-m", "macscalc"]
    return [*head, "count", "mobilenet_v2"]


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env=ENV)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    cmd = _command()
    _time(cmd), _time(BASELINE)  # warm the file cache
    ours, base = [], []
    for _ in range(runs):
        ours.append(_time(cmd))
        base.append(_time(BASELINE))
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    print(f"baseline  {' '.join(BASELINE[1:])!s:40} median {m_base * 1000:7.1f} ms")
    print(f"macscalc  {' '.join(cmd[-3:])!s:40} median {m_ours * 1000:7.1f} ms")
    print(f"ratio     {m_ours / m_base:.2f} (target ≤ 1.25; {runs} runs each, interleaved)")


if __name__ == "__main__":
    main()
