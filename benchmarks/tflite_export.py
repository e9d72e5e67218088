"""Every built-in spec exported to ``.tflite`` (fp32, fp16, int8), run once in LiteRT and
counted back: the issue-24 check that LiteRT runs each export with the output shape the
spec predicts and that the file counts as the spec (MACs and weights), with the weights'
bytes as stored. Needs the tflite extra.

    python benchmarks/tflite_export.py [fp32|fp16|int8 ...] [--specs a,b]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from macscalc import PARAM_CONVENTIONS, Convention, build, count, load_spec  # noqa: E402
from macscalc.lang.spec import builtin_names  # noqa: E402
from macscalc.models.tflite.export import export  # noqa: E402
from macscalc.models.tflite.reader import read_network  # noqa: E402
from macscalc.render.report import unknown_ops  # noqa: E402


def check(name: str, dtype: str, folder: Path) -> str:
    net = build(load_spec(name), Fraction(1), None, None)
    path = folder / f"{name}.{dtype}.tflite"
    path.write_bytes(export(net, 0, dtype))
    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.ones(d["shape"], np.float32))
    start = time.perf_counter()
    it.invoke()
    ms = (time.perf_counter() - start) * 1e3
    shapes = {tuple(int(v) for v in it.get_tensor(o["index"]).shape)
              for o in it.get_output_details()}
    want = {(1, n.out.h, n.out.w, n.out.c) for n in net.nodes
            if not any(n.name in m.inputs for m in net.nodes)}
    conv = Convention(PARAM_CONVENTIONS["weights"])
    spec, file = count(net, conv), count(read_network(str(path), allow_unknown=True), conv)
    unknown = unknown_ops(file.network)
    return (f"{name:28} {dtype:5} shapes {'ok' if shapes == want else 'DIFFER'}  MACs "
            f"{'=' if spec.macs == file.macs else '≠'}  weights "
            f"{'=' if spec.params == file.params else '≠'}  stored weights "
            f"{file.network.stored['weight_bytes']:>11,} B  file {path.stat().st_size:>11,} B"
            f"  first run {ms:7.1f} ms"
            + (f"  not counted: {', '.join(unknown)}" if unknown else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dtypes", nargs="*", default=["fp32", "int8"])
    parser.add_argument("--specs", default=None)
    args = parser.parse_args()
    names = args.specs.split(",") if args.specs else builtin_names()
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in args.dtypes:
            for name in names:
                print(check(name, dtype, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
