"""The tensor arena a TFLite Micro interpreter plans for a ``.tflite`` subgraph.

A microcontroller runs a model out of one static arena, and the figure that decides
whether a model fits its SRAM is what TFLite Micro's ``GreedyMemoryPlanner`` makes of
it. Its rules, as in ``micro_allocation_info.cc`` and ``greedy_memory_planner.cc``:
every tensor without data in the file (and not a variable) is a buffer, its size
rounded up to 16 bytes; it lives from the operator that writes it (0 for a graph input)
to the last that reads it (the last operator for a graph output); an offset the file
plans itself (``OfflineMemoryAllocation`` metadata) is kept; the others are placed
largest first (ties in tensor order) at the lowest offset where they overlap no buffer
alive at the same time. The arena's planned part is the highest end. What the
interpreter adds on top (its tensor and node structures, each kernel's persistent data
and scratch buffers) depends on the kernels built in and is not modelled here.
"""

from __future__ import annotations

from typing import NamedTuple

from macscalc.core.errors import MacscalcError
from macscalc.models.tflite.model import WIDTHS, Model, Tensor

ALIGN = 16  # TFLM's kBufferAlignment
MAX_PLANNED = 5_000  # tensors: placement is quadratic in them (EfficientNet-B7 has ~2,000)


class Buffer(NamedTuple):
    tensor: Tensor
    size: int  # bytes, aligned
    first: int  # operator that writes it (0 for a graph input)
    last: int  # operator that last reads it
    offset: int


class Arena(NamedTuple):
    buffers: tuple[Buffer, ...]  # in tensor order
    bytes: int  # the planned (non-persistent) arena: the highest buffer end
    operators: int

    def peak_at(self) -> int:
        """The operator during which the buffers alive reach the arena's top."""
        top = max(self.buffers, key=lambda b: (b.offset + b.size, -b.first))
        return top.first


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _nbytes(t: Tensor, model: Model) -> int:
    if t.dtype == "int4":
        return _aligned(-(-_numel(t) // 2))
    if t.dtype not in WIDTHS:
        raise MacscalcError(f"tensor {t.name!r} has type {t.dtype}, which TFLite Micro does "
                            "not plan", model.file)
    return _aligned(_numel(t) * WIDTHS[t.dtype])


def _numel(t: Tensor) -> int:
    n = 1
    for d in t.shape:
        n *= max(d, 1)
    return n


def _lifetimes(model: Model, graph: int) -> dict[int, list[int]]:
    g = model.graphs[graph]
    last_op = max(len(g.operators) - 1, 0)
    life: dict[int, list[int]] = {}
    for i in g.inputs:
        life[i] = [0, 0]
    for op in g.operators:
        for i in op.inputs:
            if i >= 0 and i in life:
                life[i][1] = op.index
        for o in op.outputs:
            life.setdefault(o, [op.index, op.index])
            life[o][1] = max(life[o][1], op.index)
    for o in g.outputs:
        life.setdefault(o, [0, last_op])[1] = last_op
    return {i: span for i, span in life.items() if not model.stored(g.tensors[i])}


def offline_offsets(model: Model, graph: int) -> dict[int, int]:
    """Offsets the file plans itself: ``OfflineMemoryAllocation`` metadata, int32 values
    [version, subgraph, tensors, one offset per tensor (-1: planned online)]."""
    buffer = model.metadata.get("OfflineMemoryAllocation")
    if buffer is None:
        return {}
    head = model.int32s(buffer, 3)
    n = len(model.graphs[graph].tensors)
    if len(head) < 3 or head[1] != graph or head[2] != n:
        raise MacscalcError("the OfflineMemoryAllocation metadata does not describe subgraph "
                            f"{graph}'s {n} tensors", model.file)
    values = model.int32s(buffer, 3 + n)[3:]
    if len(values) != n or any(v < -1 for v in values):
        raise MacscalcError("the OfflineMemoryAllocation metadata is malformed", model.file)
    return {i: v for i, v in enumerate(values) if v >= 0}


def plan(model: Model, graph: int = 0) -> Arena:
    """Greedy placement of every planned tensor of ``graph`` around the offsets the file
    fixes."""
    g = model.graphs[graph]
    life = _lifetimes(model, graph)
    if len(life) > MAX_PLANNED:
        raise MacscalcError(f"{len(life):,} tensors to plan, more than the {MAX_PLANNED:,} "
                            "TFLite Micro planning is bounded to here", model.file)
    offline = offline_offsets(model, graph)
    placed: list[Buffer] = [Buffer(g.tensors[i], _nbytes(g.tensors[i], model), *life[i], off)
                            for i, off in offline.items() if i in life]
    fixed = {b.tensor.index for b in placed}
    # TFLM fills its sort array from the tail, then bubble-sorts it (stable): ties in
    # size go in reverse tensor order
    order = sorted((i for i in life if i not in fixed),
                   key=lambda i: (-_nbytes(g.tensors[i], model), -i))
    for i in order:
        t = g.tensors[i]
        size, (first, last) = _nbytes(t, model), life[i]
        offset = 0
        for b in sorted((b for b in placed if b.first <= last and first <= b.last),
                        key=lambda b: b.offset):
            if offset + size <= b.offset:
                break
            offset = max(offset, b.offset + b.size)
        placed.append(Buffer(t, size, first, last, offset))
    buffers = tuple(sorted(placed, key=lambda b: b.tensor.index))
    top = max((b.offset + b.size for b in buffers), default=0)
    return Arena(buffers, top, len(g.operators))
