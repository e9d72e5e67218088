"""The ONNX graph an export writes, and the registry of its rules: one per primitive kind
(``export`` for image kinds, ``export_tokens`` for token and attention kinds).

A rule emits the nodes computing its primitive from its inputs and returns its output.
Layouts: an h×w×c image is [1, c, h, w]; g × n × c tokens are [1, g, n, c], channels
last as torch holds them, which is what macscalc's ONNX reader reads as tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from macscalc.lang.tokens import Tokens

if TYPE_CHECKING:
    from macscalc.lang.graph import Node
    from macscalc.lang.layers import Shape


class Graph:
    """The ONNX graph being written: its nodes, initializers and a seeded generator."""

    def __init__(self, seed: int) -> None:
        import numpy as np
        from onnx import helper, numpy_helper

        self.np, self.helper, self.numpy_helper = np, helper, numpy_helper
        self.rng = np.random.default_rng(seed)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def const(self, name: str, array: Any) -> str:
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def ints(self, name: str, values: list[int]) -> str:
        return self.const(name, self.np.array(values, dtype=self.np.int64))

    def scalar(self, name: str, value: float) -> str:
        return self.const(name, self.np.array(value, dtype=self.np.float32))

    def weight(self, name: str, shape: tuple[int, ...], fan_in: int) -> str:
        """He-normal weights: activations keep their scale through deep stacks, so a timed
        run sees ordinary numbers (no overflow, no denormals)."""
        w = self.rng.standard_normal(shape, dtype=self.np.float32)
        return self.const(name, w * self.np.float32((2.0 / fan_in) ** 0.5))

    def small(self, name: str, n: int, centre: float = 0.0,
              shape: Sequence[int] | None = None) -> str:
        """``n`` values near ``centre`` (biases, BN statistics, learned tables), a vector
        unless ``shape`` is given."""
        v = centre + 0.1 * self.rng.standard_normal(n, dtype=self.np.float32)
        return self.const(name, v.astype(self.np.float32).reshape(shape or (n,)))

    def op(self, op_type: str, inputs: list[str], out: str, **attrs: Any) -> str:
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


Rule = Callable[[Graph, "Node", list[str]], str]  # emits a primitive; returns its output
RULES: dict[str, Rule] = {}


def rule(kind: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[kind] = fn
        return fn

    return register


def dims(s: Shape) -> list[int]:
    """ONNX dims of a tensor: an image [1, c, h, w], tokens [1, g, n, c]."""
    return [1, s.h, s.w, s.c] if isinstance(s, Tokens) else [1, s.c, s.h, s.w]


def channel_axis(s: Shape) -> int:
    return 3 if isinstance(s, Tokens) else 1


