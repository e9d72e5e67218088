"""What an operator rule may read and do while a TFLite graph is walked.

``ops`` works through this interface; ``reader.Importer`` implements it and dispatches
to the rules. Keeping it here lets the rules stand below the reader without an import
loop (as ``models/onnx/context.py`` does for ONNX).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from macscalc.core.errors import MacscalcError
    from macscalc.lang.layers import Layer, Shape
    from macscalc.models.tflite.model import Graph, Model, Operator, Tensor
    from macscalc.models.tflite.quant import Stored
    from macscalc.models.tflite.values import Act, Value


class Importer(Protocol):
    """The walk's state (values by tensor index, the graph, the stored weights, which
    LOGISTIC makes a swish) and the operations a rule needs: read inputs and constants,
    place a primitive, alias a tensor, apply a fused activation."""

    model: Model
    graph: Graph
    values: dict[int, Value]
    stored: Stored
    swish: dict[int, int]  # LOGISTIC operator → the MUL that makes it swish

    def fail(self, message: str, op: Operator | None = None) -> MacscalcError: ...

    def tensor(self, op: Operator, k: int) -> Tensor: ...

    def act(self, op: Operator, k: int = 0) -> Act: ...

    def const(self, op: Operator, k: int) -> Tensor | None: ...

    def ints(self, op: Operator, k: int) -> list[int]: ...

    def out(self, op: Operator, k: int = 0) -> Tensor: ...

    def name(self, op: Operator) -> str: ...

    def place(self, op: Operator, layer: Layer, ins: list[Act], name: str | None = None,
              check: bool = True) -> Act: ...

    def declared(self, op: Operator, k: int = 0) -> Shape | None: ...

    def finish(self, op: Operator, a: Act, fused: int = 0) -> None: ...

    def alias(self, op: Operator, a: Act) -> None: ...
