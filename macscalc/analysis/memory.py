"""Activation memory: the largest tensor at each resolution, and the liveness peak.

Model: every primitive's output is a tensor, except batch norm, activations, dropout,
flatten, channel shuffle and slices (a split's parts), which work in place or are views and
allocate nothing. A concatenation writes a new tensor.
A tensor lives from the layer that writes it to the last layer that reads it; tensors no
layer reads are the network's outputs and live to the end. The peak is the largest sum
of live tensors while any layer runs (its inputs, its output, and everything still
needed later: residual inputs, detection taps).

With streaming (MobileNet V2 §5, "memory efficient inference"), an inverted residual is
computed in slices of its input width, so its expanded and depthwise tensors only ever
exist as one slice: cin / hidden of their size. Everything else is unchanged.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import NamedTuple

from macscalc.lang.graph import Network
from macscalc.lang.layers import Shape
from macscalc.lang.tokens import VIEW_KINDS

# In place or views: no new tensor. A slice (a split's part) is a view of its input; a
# concat writes a new tensor.
IN_PLACE = frozenset({"batchnorm", "act", "dropout", "flatten", "shuffle", "slice"}) | VIEW_KINDS


class Tensor(NamedTuple):
    name: str  # the layer that writes it ("input" for the image)
    shape: Shape
    streamed: int  # elements that must exist at once when streamed (== numel otherwise)
    first: int  # index of the writing layer (-1: the input)
    last: int  # index of the last reader (len(nodes): a network output)

    def elements(self, streaming: bool) -> int:
        return self.streamed if streaming else self.shape.numel


class Peak(NamedTuple):
    elements: int
    at: str  # the layer running at the peak
    alive: tuple[str, ...]  # the tensors live then


def tensors(network: Network) -> list[Tensor]:
    """Every materialized tensor with its lifetime."""
    root: dict[str, str] = {"input": "input"}
    first = {"input": -1}
    shapes = {"input": network.input}
    streamed = {"input": network.input.numel}
    last: dict[str, int] = {}
    for i, n in enumerate(network.nodes):
        for name in n.inputs:
            r = root[name]
            last[r] = max(last.get(r, -1), i)
        if n.layer.kind in IN_PLACE:
            root[n.name] = root[n.inputs[0]]
            continue
        root[n.name] = n.name
        first[n.name] = i
        shapes[n.name] = n.out
        streamed[n.name] = int(n.out.numel * n.stream) if n.stream is not None else n.out.numel
    end = len(network.nodes)
    return [Tensor(name, shapes[name], streamed[name], first[name], last.get(name, end))
            for name in first]


def peak(network: Network, streaming: bool = False) -> Peak:
    """The largest sum of live tensors while a layer runs."""
    ts = tensors(network)
    change = [0] * (len(network.nodes) + 2)  # running sum: +size at first, −size after last
    live = sum(t.elements(streaming) for t in ts if t.first < 0)
    for t in ts:
        if t.first >= 0:
            change[t.first] += t.elements(streaming)
        change[t.last + 1] -= t.elements(streaming)
    best_total, best_i = 0, -1
    for i, n in enumerate(network.nodes):
        live += change[i]
        if n.layer.kind not in IN_PLACE and live > best_total:
            best_total, best_i = live, i
    if best_i < 0:
        return Peak(0, "", ())
    alive = tuple(t.name for t in ts if t.first <= best_i <= t.last)
    return Peak(best_total, network.nodes[best_i].name, alive)


class Largest(NamedTuple):
    h: int
    w: int
    tensor: Tensor


def largest_per_resolution(network: Network, streaming: bool = False) -> list[Largest]:
    """For each spatial size, the largest tensor that must be materialized, largest size
    first."""
    best: dict[tuple[int, int], Tensor] = {}
    for t in tensors(network):
        key = (t.shape.h, t.shape.w)
        if key not in best or t.elements(streaming) > best[key].elements(streaming):
            best[key] = t
    return [Largest(h, w, t) for (h, w), t in sorted(best.items(), key=lambda kv: -kv[0][0])]


def kb_cut(nbytes: int) -> Decimal:
    """Bytes / 1000, cut to two significant digits (how the V2 paper's Table 3 reads)."""
    value = Decimal(nbytes) / 1000
    quantum = Decimal(10) ** (value.adjusted() - 1)
    return (value / quantum).to_integral_value(rounding=ROUND_DOWN) * quantum


class Activations(NamedTuple):
    """What ``memory`` reports of one network: the largest tensor at each resolution, plain
    and streamed, and the two liveness peaks."""

    network: Network
    largest: list[Largest]
    streamed: list[Largest]
    peaks: dict[str, Peak]  # "plain" and "streamed"


def activations(network: Network) -> Activations:
    return Activations(network, largest_per_resolution(network),
                       largest_per_resolution(network, True),
                       {"plain": peak(network), "streamed": peak(network, True)})
