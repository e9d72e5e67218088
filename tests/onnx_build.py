"""Small ONNX graphs for the tests, written with onnx.helper (no torch).

``G`` builds a graph node by node; weights are zero-filled initializers of the given
dims (their values never matter to a count), small integer constants keep their values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class G:
    def __init__(self, shape: tuple[Any, ...] = ("N", 3, 8, 8), opset: int = 17) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.value_info: list[onnx.ValueInfoProto] = []
        self.input = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
        self.n = 0

    def init(self, dims: tuple[int, ...] | list[int], value: Any = None,
             dtype: Any = np.float32, name: str | None = None) -> str:
        self.n += 1
        name = name or f"w{self.n}"
        arr = np.zeros(dims, dtype) if value is None else np.asarray(value, dtype).reshape(dims)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def ints(self, values: list[int]) -> str:
        return self.init((len(values),), values, np.int64)

    def scalar(self, v: float) -> str:
        return self.init((), v)

    def node(self, op: str, inputs: list[str], name: str | None = None, outputs: int = 1,
             **attrs: Any) -> Any:
        self.n += 1
        name = name or f"{op.lower()}{self.n}"
        outs = [f"{name}_out{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if outputs == 1 else outs

    def conv(self, x: str, cin: int, cout: int, k: int = 3, s: int = 1, p: int | None = None,
             g: int = 1, bias: bool = False, name: str | None = None) -> str:
        p = k // 2 if p is None else p
        ins = [x, self.init((cout, cin // g, k, k))]
        if bias:
            ins.append(self.init((cout,)))
        return self.node("Conv", ins, name, kernel_shape=[k, k], strides=[s, s],
                         pads=[p, p, p, p], group=g)

    def bn(self, x: str, c: int, name: str | None = None) -> str:
        return self.node("BatchNormalization", [x, *(self.init((c,)) for _ in range(4))], name)

    def model(self, *outputs: str, out_shapes: list[Any] | None = None) -> onnx.ModelProto:
        outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT,
                                              out_shapes[i] if out_shapes else None)
                for i, o in enumerate(outputs)]
        graph = helper.make_graph(self.nodes, "g", [self.input], outs, self.inits,
                                  value_info=self.value_info)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = 8 if self.opset < 21 else 10
        return m

    def save(self, path: Path, *outputs: str, external: bool = False) -> Path:
        m = self.model(*outputs)
        if external:
            onnx.save_model(m, str(path), save_as_external_data=True,
                            all_tensors_to_one_file=True, location=path.name + ".data",
                            size_threshold=1024)
        else:
            onnx.save_model(m, str(path))
        return path
