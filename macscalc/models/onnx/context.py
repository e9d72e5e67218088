"""What an op rule or a fusion pattern may read and do while a graph is walked.

``ops`` and ``patterns`` work through this interface; ``reader.Importer`` implements it
and dispatches to them. Keeping it here lets the rules stand below the reader without an
import loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from macscalc.core.errors import MacscalcError
    from macscalc.lang.layers import Layer
    from macscalc.models.onnx.proto import NodeProto
    from macscalc.models.onnx.values import Act, Value


class Importer(Protocol):
    """The walk's state (values by tensor name, node order, producers and consumers) and
    the few operations a rule needs: read inputs, place a primitive, alias a tensor."""

    file: str  # the model's path as given, for messages
    base: Path  # the model's folder: external data must stay inside it
    opset: int
    values: dict[str, Value]
    order: list[NodeProto]
    consumers: dict[str, list[int]]
    producer: dict[str, int]
    bn_nodes: int

    def fail(self, message: str, node: NodeProto | None = None) -> MacscalcError: ...

    def const_value(self, name: str, node: NodeProto) -> Any: ...

    def ints(self, node: NodeProto, index: int, attr: str | None = None,
             default: list[int] | None = None) -> list[int] | None: ...

    def act(self, node: NodeProto, index: int = 0) -> Act: ...

    def place(self, node: NodeProto, layer: Layer, ins: list[Act], like: Act | None = None,
              name: str | None = None, out: str | None = None) -> Act: ...

    def alias(self, node: NodeProto, a: Act, dims: tuple[int, ...] | None = None,
              ch: int | None = None, out: str | None = None) -> None: ...
