"""What onnxruntime runs: its optimised graph beside ``kernels.py``'s rules.

For every built-in spec that exports, onnxruntime (CPU, all optimisations, this
machine's layout block) writes its optimised graph; its layout conversions
(``ReorderInput`` and ``ReorderOutput`` nodes of its NchwcTransformer) and all its nodes
are counted beside the conversions ``kernels()`` places with the same block and the
kernels it launches. The two agree where the rules follow onnxruntime: which layers it
runs blocked, which plain, which input a conv reads plain directly, which outputs leave
converted; what it fuses, and how many nodes a shuffle, an FC or Dynamic Shift-Max is.

    python benchmarks/ort_layout.py [SPEC ...]

Needs the onnx extra. On this machine (EPYC with AVX-512: blocks of 16 channels,
onnxruntime 1.32) 68 of the 70 built-ins agree exactly (MicroNet-M1: 10, ShuffleNet V2
1.0×: 32, ConvNeXt-T: 40); TinyViT-11M (35 against 25) and MobileNetV4-Hybrid-L (33
against 103) do not: onnxruntime fuses their attention and layer norms in ways the
rules leave out. The kernels launched equal its nodes for 52 of them (MicroNet-M3 386,
MobileNet V2 57, AlexNet 21); the token models differ most (their reshapes and
transposes).
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


def ort_nodes(network: object) -> tuple[int, int]:
    """ReorderInput and ReorderOutput nodes, and all nodes, in the graph onnxruntime
    optimises."""
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
    return (sum(n.op_type in ("ReorderInput", "ReorderOutput") for n in graph.node),
            len(graph.node))


def main() -> None:
    block = layout_block()
    names = sys.argv[1:] or builtin_names()
    same = same_nodes = 0
    print(f"layout block {block}: onnxruntime's conversions and nodes beside the rules'")
    for name in names:
        try:
            network = build(load_spec(name), Fraction(1), None, None)
            theirs, nodes = ort_nodes(network)
        except MacscalcError as e:
            print(f"  {name:34} skipped: {e}")
            continue
        placed = kernels(network, block=block)
        ours = sum(k.what == "reorder" for k in placed)
        launched = sum(k.features.get("launches", 1) for k in placed)
        same += theirs == ours
        same_nodes += nodes == launched
        print(f"  {name:34} conversions {theirs:4} {ours:4}   nodes {nodes:4} {launched:4}"
              + ("" if theirs == ours else "   conversions differ")
              + ("" if nodes == launched else "   nodes differ"))
    print(f"conversions: {same} of {len(names)} agree; nodes: {same_nodes} of {len(names)}")


if __name__ == "__main__":
    main()
