"""Where onnxruntime converts layouts: its optimised graph beside ``kernels.py``'s rules.

For every built-in spec that exports, onnxruntime (CPU, all optimisations, this
machine's layout block) writes its optimised graph; the layout conversions in it
(``ReorderInput`` and ``ReorderOutput`` nodes of its NchwcTransformer) are counted beside
the conversions ``kernels()`` places with the same block. The two agree where the rules
follow onnxruntime: which layers it runs blocked, which plain, which input a conv reads
plain directly, which outputs leave converted.

    python benchmarks/ort_layout.py [SPEC ...]

Needs the onnx extra. On this machine (EPYC with AVX-512: blocks of 16 channels,
onnxruntime 1.32) 68 of the 70 built-ins agree exactly (MicroNet-M1: 10, ShuffleNet V2
1.0×: 32, ConvNeXt-T: 40); TinyViT-11M (35 against 25) and MobileNetV4-Hybrid-L (33
against 103) do not: onnxruntime fuses their attention and layer norms in ways the
rules leave out.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fractions import Fraction  # noqa: E402

from macscalc.analysis.kernels import kernels  # noqa: E402
from macscalc.core.errors import MacscalcError  # noqa: E402
from macscalc.lang.graph import build  # noqa: E402
from macscalc.lang.spec import builtin_names, load_spec  # noqa: E402
from macscalc.models.measure import layout_block  # noqa: E402


def ort_conversions(network: object) -> int:
    """ReorderInput and ReorderOutput nodes in the graph onnxruntime optimises."""
    import onnx
    import onnxruntime as ort

    from macscalc.models.onnx.export import export

    with tempfile.TemporaryDirectory() as tmp:
        path, optimised = Path(tmp) / "m.onnx", Path(tmp) / "o.onnx"
        onnx.save(export(network), path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(optimised)
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(str(optimised)).graph
    return sum(n.op_type in ("ReorderInput", "ReorderOutput") for n in graph.node)


def main() -> None:
    block = layout_block()
    names = sys.argv[1:] or builtin_names()
    same = 0
    print(f"layout block {block}: onnxruntime's conversions beside the rules'")
    for name in names:
        try:
            network = build(load_spec(name), Fraction(1), None, None)
            theirs = ort_conversions(network)
        except MacscalcError as e:
            print(f"  {name:34} skipped: {e}")
            continue
        ours = sum(k.what == "reorder" for k in kernels(network, block=block))
        same += theirs == ours
        print(f"  {name:34} onnxruntime {theirs:4}  rules {ours:4}"
              + ("" if theirs == ours else "   differ"))
    print(f"{same} of {len(names)} agree")


if __name__ == "__main__":
    main()
