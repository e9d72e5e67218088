"""Counting a placed network under a stated convention.

MACs are conv and fully connected multiply-accumulates, always, and nothing else.
Batch norm, activations, pooling, element-wise adds and products are extra operations,
counted only when switched on, and kept in their own counters. FLOPs = 2 × MACs plus
the switched-on extra operations. Parameters are summed from the parts a named
convention includes.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

from macscalc.core.errors import MacscalcError
from macscalc.core.units import DTYPE_BYTES, fmt_alpha
from macscalc.lang.graph import Network, Node
from macscalc.lang.layers import OP_CATEGORIES, OP_FLOPS, PARAM_PARTS, Params

if TYPE_CHECKING:
    from macscalc.analysis.latency import Estimate
    from macscalc.analysis.memory import Peak


class ParamConvention(NamedTuple):
    name: str
    parts: tuple[str, ...]
    description: str


PARAM_CONVENTIONS: dict[str, ParamConvention] = {
    c.name: c
    for c in (
        ParamConvention(
            "torch",
            ("weights", "biases", "bn_scale", "bn_shift", "ln_scale", "ln_shift",
             "layer_scale", "tables"),
            "weights, biases, BN and layer-norm γ/β, layer scales and learned tables "
            "(class tokens, positional embeddings, attention biases), as PyTorch's "
            "sum(p.numel()); BN moving statistics excluded",
        ),
        ParamConvention("weights", ("weights",), "conv and FC weights only"),
        ParamConvention(
            "weights+biases",
            ("weights", "biases"),
            "conv and FC weights and biases; BN not counted",
        ),
        ParamConvention(
            "slim_v1",
            ("weights", "biases", "bn_shift", "bn_stats"),
            "weights, biases, BN β and moving mean/variance, no γ",
        ),
        ParamConvention(
            "all", PARAM_PARTS, "every stored number: weights, biases, BN γ/β and moving statistics"
        ),
    )
}


def param_convention(name: str) -> ParamConvention:
    if name not in PARAM_CONVENTIONS:
        raise MacscalcError(
            f"unknown parameter convention {name!r} (known: {', '.join(PARAM_CONVENTIONS)})"
        )
    return PARAM_CONVENTIONS[name]


def parse_ops(text: str) -> tuple[str, ...]:
    """``bn,act`` → ('bn', 'act'); ``all`` → every category; ``none`` or '' → ()."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if items == ["all"]:
        return OP_CATEGORIES
    if items in ([], ["none"]):
        return ()
    for item in items:
        if item not in OP_CATEGORIES:
            raise MacscalcError(
                f"unknown operation switch {item!r} (known: {', '.join(OP_CATEGORIES)}, all, none)"
            )
    return tuple(c for c in OP_CATEGORIES if c in items)


class Convention(NamedTuple):
    """What a report counted; printed with every report."""

    params: ParamConvention
    ops: tuple[str, ...] = ()
    dtype: str = "fp32"  # number type of activations and weights, for sizes in bytes

    def describe(self, network: Network) -> str:
        return f"{self.rules()}; {settings_text(network)}"

    def rules(self) -> str:
        """The convention without the network's settings: the same for every spec."""
        extra = ", ".join(self.ops) if self.ops else "none"
        return (
            f"MACs = conv + FC + matmul multiply-accumulates (attention's q·kᵀ and attn·v "
            f"included; softmax, scaling and norms are extra ops); extra ops counted: {extra}; "
            f"FLOPs = 2 × MACs + extra ops (a shiftmax multiply-add is 2); "
            f"params = {self.params.name} ({self.params.description}); "
            f"weights and activations {self.dtype}"
        )


def settings_text(network: Network) -> str:
    """Classes, α with its rounding rule, input size: what a report was counted at."""
    s = network.settings
    scaling = (network.origin if network.origin is not None else
               f"α = {fmt_alpha(s.alpha)} with {network.spec.rounding.name} rounding")
    if network.spec.depth != 1:
        rule = ("n·depth rounded half to even, at least 1"
                if network.spec.depth_rounding == "round" else "⌈n·depth⌉")
        scaling += f"; depth {fmt_alpha(network.spec.depth)} (each written n → {rule})"
    return (f"{s.classes} classes; {scaling}; input {s.size[0]}×{s.size[1]}×"
            f"{network.spec.channels}; batch 1")


class LayerCount(NamedTuple):
    node: Node
    macs: int
    params: Params
    ops: dict[str, int]  # extra ops by category, before the switches


class KindShare(NamedTuple):
    label: str
    count: int
    macs: int
    params: int
    ops: int  # counted extra ops
    shiftmax: int  # Dynamic Shift-Max fusion multiply-adds, when counted


class Report:
    """Counts of every primitive of a network, read under one convention."""

    def __init__(
        self, network: Network, convention: Convention, layers: tuple[LayerCount, ...]
    ) -> None:
        self.network = network
        self.convention = convention
        self.layers = layers
        self.latency: Estimate | None = None  # set when a device profile is given

    def counted_ops(self, lc: LayerCount) -> int:
        """The layer's extra ops in the switched-on categories."""
        return sum(lc.ops.get(c, 0) for c in self.convention.ops)

    def flops_of(self, lc: LayerCount) -> int:
        return 2 * lc.macs + sum(lc.ops.get(c, 0) * OP_FLOPS.get(c, 1) for c in self.convention.ops)

    def params_of(self, lc: LayerCount) -> int:
        return lc.params.total(self.convention.params.parts)

    @cached_property
    def macs(self) -> int:
        return sum(lc.macs for lc in self.layers)

    @cached_property
    def param_parts(self) -> Params:
        total = Params()
        for lc in self.layers:
            total = total + lc.params
        return total

    @property
    def params(self) -> int:
        return self.param_parts.total(self.convention.params.parts)

    @cached_property
    def ops_by_category(self) -> dict[str, int]:
        """Extra ops per category, whether or not switched on (the report says which are)."""
        out = dict.fromkeys(OP_CATEGORIES, 0)
        for lc in self.layers:
            for category, n in lc.ops.items():
                out[category] += n
        return out

    @property
    def shiftmax(self) -> int:
        """Dynamic Shift-Max fusion multiply-adds when counted (MicroNet's MAdds add them)."""
        return self.ops_by_category["shiftmax"] if "shiftmax" in self.convention.ops else 0

    @property
    def extra_ops(self) -> int:
        return sum(self.ops_by_category[c] for c in self.convention.ops)

    @property
    def flops(self) -> int:
        return 2 * self.macs + sum(
            self.ops_by_category[c] * OP_FLOPS.get(c, 1) for c in self.convention.ops
        )

    @cached_property
    def memory(self) -> tuple[Peak, Peak]:
        """Peak live activations: plain, and with V2 §5 streaming (see ``memory.py``)."""
        from macscalc.analysis.memory import peak

        return peak(self.network), peak(self.network, streaming=True)

    @property
    def peak_bytes(self) -> int:
        return self.memory[0].elements * DTYPE_BYTES[self.convention.dtype]

    @property
    def weight_bytes(self) -> int:
        """The counted parameters stored at the convention's number type."""
        return self.params * DTYPE_BYTES[self.convention.dtype]

    @property
    def activations(self) -> int:
        """Elements of every primitive's output, summed (not a peak)."""
        return sum(lc.node.out.numel for lc in self.layers)

    def by_kind(self, parts: tuple[str, ...] | None = None) -> list[KindShare]:
        """Per-kind totals in order of first use: the block role (``se``, ``micro pw``,
        ...) where a block gives one, else the layer's own label (``conv 3×3``, ``fc``)."""
        parts = parts or self.convention.params.parts
        groups: dict[str, list[int]] = {}
        for lc in self.layers:
            n = lc.node
            g = groups.setdefault(n.role or n.layer.label(n.in_shapes), [0, 0, 0, 0, 0])
            g[0] += 1
            g[1] += lc.macs
            g[2] += lc.params.total(parts)
            g[3] += self.counted_ops(lc)
            g[4] += lc.ops.get("shiftmax", 0) if "shiftmax" in self.convention.ops else 0
        return [KindShare(label, *v) for label, v in groups.items() if any(v[1:])]


def count(network: Network, convention: Convention) -> Report:
    """Count every primitive of ``network``."""
    layers = tuple(
        LayerCount(
            n,
            n.layer.macs(n.in_shapes, n.out),
            n.layer.params(n.in_shapes),
            n.layer.ops(n.in_shapes, n.out),
        )
        for n in network.nodes
    )
    return Report(network, convention, layers)
