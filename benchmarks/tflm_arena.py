"""``memory --planner tflm`` against TFLite Micro itself: every built-in spec exported to
``.tflite``, planned by macscalc, then allocated by tflite-micro's interpreter (its
RecordingMicroAllocator's "Arena allocation head" is the planned, non-persistent part;
"tail" is the interpreter's own structures and kernel data, not modelled). Needs the
tflite extra and ``pip install tflite-micro``.

    python benchmarks/tflm_arena.py [--dtype int8] [--alpha 0.5] [--res 96] [--specs a,b]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from macscalc import build, load_spec  # noqa: E402
from macscalc.core.errors import MacscalcError  # noqa: E402
from macscalc.lang.spec import builtin_names  # noqa: E402
from macscalc.models.tflite.arena import plan  # noqa: E402
from macscalc.models.tflite.export import export  # noqa: E402
from macscalc.models.tflite.model import load  # noqa: E402

# tflite-micro prints its allocation record from C: run it in a child and flush C stdio
PROBE = ("from tflite_micro.python.tflite_micro import runtime; import ctypes; "
         "runtime.Interpreter.from_file({path!r}, arena_size=512 << 20).print_allocations(); "
         "ctypes.CDLL(None).fflush(None)")


def tflm(path: Path) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(path=str(path))],
                         capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    found = [re.search(rf"Arena allocation {part} (\d+)", text) for part in ("head", "tail")]
    if not all(found):
        raise RuntimeError(text.strip().splitlines()[-1] if text.strip() else "no output")
    return int(found[0].group(1)), int(found[1].group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", default="int8", choices=["int8", "fp32"])
    parser.add_argument("--alpha", default="1")
    parser.add_argument("--res", type=int, default=None)
    parser.add_argument("--specs", default=None)
    args = parser.parse_args()
    names = args.specs.split(",") if args.specs else builtin_names()
    agree = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                net = build(load_spec(name), Fraction(args.alpha),
                            (args.res, args.res) if args.res else None, None)
                path = Path(tmp) / f"{name}.tflite"
                path.write_bytes(export(net, 0, args.dtype))
            except MacscalcError as e:
                print(f"{name:28} skipped: {e.message}", flush=True)
                continue
            mine = plan(load(str(path))).bytes
            try:
                head, tail = tflm(path)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"{name:28} macscalc {mine:>11,} B  tflite-micro failed: {e}", flush=True)
                continue
            total += 1
            agree += mine == head
            print(f"{name:28} macscalc {mine:>11,} B  tflite-micro head {head:>11,} B "
                  f"{'=' if mine == head else '≠'}  tail {tail:>9,} B "
                  f"({100 * tail / head:.0f} % of head)", flush=True)
    print(f"{agree} of {total} agree exactly")


if __name__ == "__main__":
    main()
