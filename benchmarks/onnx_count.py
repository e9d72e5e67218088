"""ONNX benchmark: counting a ResNet-50-sized file (about 100 MB of weights).

Writes torchvision's ResNet-50 layer for layer (BN kept, 25.6 M parameters) with random
weights, once with the weights inside the .onnx file and once in an external-data file,
in a temporary folder. For each it times ``macscalc count FILE`` in fresh processes
(fastest and median wall time, and the child's peak resident memory) and, in this
process, the read and count alone with tracemalloc's peak of Python allocations. A
one-block network is measured the same way: memory that does not grow with the weights
is the point. A built-in spec's count gives the startup cost for scale, and
``import onnx`` what reading would cost if it imported onnx (it does not: models/onnx/
proto.py decodes the protobuf).

    taskset -c 0 python benchmarks/onnx_count.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def resnet50(blocks: tuple[int, ...] = (3, 4, 6, 3)) -> onnx.ModelProto:
    """torchvision resnet50 as ONNX: conv/BN/ReLU, bottlenecks, global pool, Gemm."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def w(*dims: int) -> str:
        name = f"w{len(inits)}"
        inits.append(numpy_helper.from_array(rng.standard_normal(dims, np.float32), name))
        return name

    def node(op: str, ins: list[str], **attrs: object) -> str:
        out = f"t{len(nodes)}"
        nodes.append(helper.make_node(op, ins, [out], name=f"n{len(nodes)}", **attrs))
        return out

    def cbr(x: str, cin: int, cout: int, k: int, s: int, relu: bool = True) -> str:
        x = node("Conv", [x, w(cout, cin, k, k)], kernel_shape=[k, k], strides=[s, s],
                 pads=[k // 2] * 4)
        x = node("BatchNormalization", [x, w(cout), w(cout), w(cout), w(cout)])
        return node("Relu", [x]) if relu else x

    x = cbr("x", 3, 64, 7, 2)
    x = node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, n in enumerate(blocks):
        width = 64 * 2 ** stage
        for b in range(n):
            s = 2 if b == 0 and stage > 0 else 1
            y = cbr(x, cin, width, 1, 1)
            y = cbr(y, width, width, 3, s)
            y = cbr(y, width, width * 4, 1, 1, relu=False)
            short = cbr(x, cin, width * 4, 1, s, relu=False) if b == 0 else x
            x = node("Relu", [node("Add", [y, short])])
            cin = width * 4
    x = node("Flatten", [node("GlobalAveragePool", [x])], axis=1)
    x = node("Gemm", [x, w(1000, cin), w(1000)], transB=1)
    graph = helper.make_graph(nodes, "resnet50", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 3, 224, 224])], [helper.make_tensor_value_info(
            x, TensorProto.FLOAT, ["N", 1000])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# Runs ``macscalc count FILE`` and reports the process's own peak resident memory
# (VmHWM, which starts afresh at exec: a parent's pages inherited through fork are not
# counted, as getrusage's children maximum would count them).
_CHILD = """
import re, runpy, sys
sys.argv = ["macscalc", "count", sys.argv[1]]
try:
    runpy.run_module("macscalc", run_name="__main__")
except SystemExit:
    pass
hwm = re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())
sys.stderr.write(f"{int(hwm.group(1)) if hwm else 0}\\n")
"""


def _cli(path: Path, runs: int) -> tuple[float, float, float]:
    """Fastest and median wall seconds and the largest peak RSS (MB) of ``macscalc count``."""
    times, peak = [], 0.0
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], check=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - start)
        peak = max(peak, int(done.stderr.split()[-1]) / 1024)
    return min(times), statistics.median(times), peak


def _import_onnx(runs: int) -> float:
    """Fastest wall seconds of a process that only imports onnx."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import onnx"], check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def _in_process(path: Path) -> tuple[float, float, int]:
    """Seconds and tracemalloc peak (MB) of reading and counting; the MACs."""
    from macscalc import PARAM_CONVENTIONS, Convention, count
    from macscalc.models.onnx.reader import read_network

    read_network(str(path))  # imports and caches warm
    tracemalloc.start()
    start = time.perf_counter()
    report = count(read_network(str(path)), Convention(PARAM_CONVENTIONS["torch"]))
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, report.macs


def write(folder: Path) -> dict[str, Path]:
    """The three files (run in a child process, so the measuring one stays small)."""
    files = {"resnet50 embedded": folder / "embedded.onnx",
             "resnet50 external": folder / "ext.onnx", "one block": folder / "small.onnx"}
    big = resnet50()
    onnx.save_model(big, str(files["resnet50 embedded"]))
    onnx.save_model(big, str(files["resnet50 external"]), save_as_external_data=True,
                    location="ext.onnx.data")
    onnx.save_model(resnet50((1,)), str(files["one block"]))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write(args.write)
        return
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        subprocess.run([sys.executable, __file__, "--write", tmp], check=True)
        files = {"resnet50 embedded": d / "embedded.onnx", "resnet50 external": d / "ext.onnx",
                 "one block": d / "small.onnx"}
        rows = []
        for label, path in files.items():
            size = sum(p.stat().st_size for p in d.glob(path.name + "*")) / 1e6
            rows.append((label, size, *_cli(path, args.runs)))
        fast, wall, rss = _cli(Path("mobilenet_v2"), args.runs)
        print(f"{'spec mobilenet_v2':18} {'':9}  count (CLI) min {fast * 1000:5.0f} ms, median "
              f"{wall * 1000:5.0f} ms, peak RSS {rss:5.1f} MB (a spec's count, for scale)")
        print(f"{'import onnx':18} {'':9}  process min {_import_onnx(args.runs) * 1000:5.0f} ms "
              "(not paid: for scale)")
        for (label, size, fast, wall, rss), path in zip(rows, files.values(), strict=True):
            seconds, traced, macs = _in_process(path)
            print(f"{label:18} {size:6.1f} MB  count (CLI) min {fast * 1000:5.0f} ms, median "
                  f"{wall * 1000:5.0f} ms, peak RSS {rss:5.1f} MB | read+count "
                  f"{seconds * 1000:4.0f} ms, tracemalloc peak {traced:4.1f} MB | MACs {macs:,}")


if __name__ == "__main__":
    main()
