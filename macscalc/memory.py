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
from typing import Any, NamedTuple

from macscalc.graph import Network
from macscalc.layers import Shape
from macscalc.output import Column, Doc, Table
from macscalc.report import envelope
from macscalc.units import fmt_alpha, fmt_int

# In place or views: no new tensor. A slice (a split's part) is a view of its input; a
# concat writes a new tensor.
IN_PLACE = frozenset({"batchnorm", "act", "dropout", "flatten", "shuffle", "slice"})


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


def memory_doc(network: Network, dtype: str, nbytes: int) -> Doc:
    """Largest tensor per resolution (plain and streamed), the peaks, and the paper's Table 3."""
    plain = largest_per_resolution(network)
    streamed = {(x.h, x.w): x.tensor for x in largest_per_resolution(network, True)}
    rows = []
    for x in plain:
        s = streamed[(x.h, x.w)]
        rows.append({"resolution": f"{x.h}×{x.w}", "channels": x.tensor.shape.c,
                     "elements": x.tensor.shape.numel, "bytes": x.tensor.shape.numel * nbytes,
                     "layer": x.tensor.name, "streamed_channels": s.shape.c,
                     "streamed_elements": s.streamed, "streamed_bytes": s.streamed * nbytes,
                     "streamed_layer": s.name})
    cols = [Column("resolution", "resolution"), Column("channels", "channels"),
            Column("elements", "elements", fmt_int), Column(f"bytes ({dtype})", "bytes", fmt_int),
            Column("layer", "layer", left=True), Column("streamed", "streamed_elements", fmt_int),
            Column("bytes", "streamed_bytes", fmt_int), Column("layer", "streamed_layer",
                                                               left=True)]
    tables = [Table("Largest tensor at each resolution (streamed: V2 §5 slices)", cols, rows)]
    peaks = {"plain": peak(network), "streamed": peak(network, True)}
    peak_rows = [{"model": name, "elements": p.elements, "bytes": p.elements * nbytes,
                  "at": p.at, "alive": ", ".join(p.alive)} for name, p in peaks.items()]
    tables.append(Table("Peak of live tensors over the whole graph", [
        Column("model", "model", left=True), Column("elements", "elements", fmt_int),
        Column(f"bytes ({dtype})", "bytes", fmt_int), Column("while running", "at", left=True),
        Column("live tensors", "alive", left=True)], peak_rows))
    data: dict[str, Any] = {"spec": network.spec.name, "dtype": dtype,
                            "resolutions": rows, "peaks": peak_rows}
    paper = _paper_table(network)
    if paper is not None:
        tables.append(paper[0])
        data["paper"] = paper[1]
    notes = ["Tensors: every layer's output except batch norm, activations, dropout, flatten "
             "and shuffle (in place). Live: from the layer that writes it to the last that "
             "reads it; outputs to the end.",
             "Streamed: each inverted residual computed in slices of its input width, so its "
             "expanded and depthwise tensors exist one slice at a time (arXiv:1801.04381 §5)."]
    s = network.settings
    return Doc(f"{network.spec.title}: activation memory (α {fmt_alpha(s.alpha)}, "
               f"{s.size[0]}×{s.size[1]}, {dtype})", tables, notes, envelope("memory", **data))


def _paper_table(network: Network) -> tuple[Table, list[dict[str, Any]]] | None:
    """The V2 paper's Table 3 column for this spec, at its own setting (α 1, 224, 16-bit)."""
    from macscalc.published import families, load_family

    fam = network.spec.family
    s = network.settings
    if fam not in families() or (s.alpha, s.size) != (1, (224, 224)):
        return None
    ref = load_family(fam).memory
    if ref is None:
        return None
    found = {x.h: x.tensor for x in largest_per_resolution(network, ref.streaming) if x.h == x.w}
    rows = []
    for r in ref.rows:
        t = found.get(int(r.res)) if r.res != "max" else max(
            found.values(), key=lambda t: t.elements(ref.streaming))
        if t is None:
            continue
        nbytes = 2 * t.elements(ref.streaming)
        rows.append({"resolution": "max" if r.res == "max" else f"{r.res}×{r.res}",
                     "channels": t.shape.c if r.res != "max" else None,
                     "paper_channels": r.channels,
                     "channels_agree": None if r.channels is None else
                     t.shape.c == int(r.channels),
                     "kb": kb_cut(nbytes), "paper_kb": r.kb,
                     "kb_agree": kb_cut(nbytes) == Decimal(r.kb), "bytes": nbytes})
    mark = {True: "✓", False: "✗", None: ""}.get
    cols = [Column("resolution", "resolution"), Column("channels", "channels"),
            Column("paper", "paper_channels"), Column("", "channels_agree", mark),
            Column("Kb", "kb"), Column("paper", "paper_kb"), Column("", "kb_agree", mark)]
    model = "streamed" if ref.streaming else "plain"
    return Table(f"Check against {ref.source} ({model} model, 16-bit)", cols, rows,
                 [ref.notes] if ref.notes else []), rows
