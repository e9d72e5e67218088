"""ONNX graphs as macscalc networks: count the model you ship.

Every ONNX node is mapped onto macscalc's own primitives (``layers.py``), so a network
read from a file is counted, tabulated, budgeted and compared exactly like one built
from a spec. Tensors are tracked with their ONNX dims (batch taken as 1) and which axis
holds the channels, so channels-last stretches (ConvNeXt's permute, layer norm, linear,
permute) map too. Constants are evaluated (shape arithmetic counts nothing); weights are
known by their dims only (``onnx_file``).

Exporters write one layer several ways, and each is recognized: BN kept or folded into
the conv's bias; Linear as ``Gemm`` or ``MatMul`` + ``Add``; SiLU as ``x·Sigmoid(x)``,
hard-swish as ``HardSwish`` or ``x·HardSigmoid(x)``; GELU as ``Gelu`` or its ``Erf``
formula; layer norm as ``LayerNormalization`` or its ReduceMean/Sub/Pow/Sqrt/Div
formula; channel shuffle as Reshape-Transpose-Reshape; TF "same" padding as ``Pad`` +
``Conv``. An operator with no rule is never counted as zero: it is an error naming each
unknown op type and its nodes, or with ``allow_unknown`` an ``unknown`` primitive that
makes the report ``partial``.
"""

from __future__ import annotations

import heapq
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from macscalc.core.errors import MacscalcError, ShapeError, show
from macscalc.core.limits import (
    MAX_CHANNELS,
    MAX_COUNT,
    MAX_LAYERS,
    MAX_ONNX_NODES,
    MAX_RANK,
    MAX_SIZE,
)
from macscalc.core.rounding import RULES as ROUNDING
from macscalc.lang.graph import Network, Node, Settings, unique_name
from macscalc.lang.layers import Layer, Shape
from macscalc.lang.spec import Spec
from macscalc.models.onnx.file import inferred, opened, short, values
from macscalc.models.onnx.ops import CONST_OPS
from macscalc.models.onnx.patterns import FUSED, Patterns
from macscalc.models.onnx.proto import DATA_TYPES, EXTERNAL
from macscalc.models.onnx.tokens_ops import RULES
from macscalc.models.onnx.values import (
    Act,
    Const,
    Dead,
    Fused,
    Unknown,
    Unsupported,
    Value,
    attrs,
    node_name,
    readable,
    role,
    show_dims,
    unknown_error,
)

if TYPE_CHECKING:
    from macscalc.models.onnx.proto import ModelProto, NodeProto, ValueInfoProto


class Importer:
    """One walk over one graph, in topological order."""

    def __init__(self, model: ModelProto, file: str, allow_unknown: bool,
                 res: int | None = None) -> None:
        self.res = res
        self.model = model
        self.graph = model.graph
        self.file = file
        self.base = Path(file).resolve().parent
        self.allow_unknown = allow_unknown
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          0)
        self.values: dict[str, Value] = {}
        self.nodes: list[Node] = []
        self.used: set[str] = {"input"}
        self.unknown: dict[str, list[str]] = {}
        self.declared: dict[str, tuple[int | None, ...]] = {}
        self.order: list[NodeProto] = []
        self.consumers: dict[str, list[int]] = {}
        self.producer: dict[str, int] = {}
        self.bn_nodes = 0
        self.inferred = False
        self.external: set[str] = set()  # tensors whose values come from external data

    # -- errors and names ------------------------------------------------------------
    def fail(self, message: str, node: NodeProto | None = None) -> MacscalcError:
        where = f"node {short(node.name or '?')!r} ({short(node.op_type)}): " if node else ""
        return MacscalcError(where + message, self.file)

    def from_external(self, node: NodeProto) -> bool:
        """Whether a node reads values that came from an external-data file."""
        return any(n in self.external for n in node.input)

    def quote(self, value: Any, node: NodeProto) -> str:
        """A value a node computed from constants, as a message may show it: an excerpt, or
        only where it came from when that is an external-data file (never its bytes)."""
        return "values from external data" if self.from_external(node) else show(value)

    def unique(self, name: str) -> str:
        return unique_name(self.used, name or "node")

    # -- reading the graph ------------------------------------------------------------
    def read(self) -> Network:
        g = self.graph
        if len(g.node) > MAX_ONNX_NODES:
            raise self.fail(f"the graph has {len(g.node):,} nodes, more than macscalc reads "
                            f"({MAX_ONNX_NODES:,})")
        for t in g.initializer:
            if t.data_type not in DATA_TYPES:
                raise self.fail(f"initializer {short(t.name)!r} has unknown data type "
                                f"{t.data_type}")
            self._check_dims(f"initializer {short(t.name)!r}", tuple(t.dims))
            self.values[t.name] = Const(tuple(t.dims), None, t)
        for vi in [*g.value_info, *g.output]:
            dims = self._type_dims(vi)
            if dims is not None:
                self.declared[vi.name] = dims
        inputs = [i for i in g.input if i.name not in self.values]
        if len(inputs) != 1:
            raise self.fail(f"the graph has {len(inputs)} data inputs; macscalc reads "
                            "networks with one image input")
        x = self._input(inputs[0])
        self.values[inputs[0].name] = x
        self._sort()
        fused = Patterns(self).find()
        members = {i: f for f in fused for i in f.nodes}
        for i, node in enumerate(self.order):
            f = members.get(i)
            if f is None:
                self._node(node)
            elif f.last == i:
                self._fused(f, node)
        if self.unknown and not self.allow_unknown:
            raise unknown_error("ONNX", self.unknown, self.file)
        return self._network(x)

    def _type_dims(self, vi: ValueInfoProto) -> tuple[int | None, ...] | None:
        t = vi.type.tensor_type if vi.type else None
        if t is None or t.shape is None:
            return None
        dims = tuple(d.dim_value for d in t.shape.dim)
        self._check_dims(f"tensor {short(vi.name)!r}", dims)
        return dims

    def _check_dims(self, what: str, dims: tuple[int | None, ...]) -> None:
        """Dims within the limits, checked before anything is sized from them."""
        if len(dims) > MAX_RANK:
            raise self.fail(f"{what} has {len(dims):,} dims; macscalc reads tensors of at "
                            f"most {MAX_RANK}")
        numel = 1
        for d in dims:
            if d is not None and d < 0:
                raise self.fail(f"{what} has a negative dim {d}")
            numel *= d or 1
        if numel > MAX_COUNT:
            raise self.fail(f"{what} has more than 1e18 elements")

    def _input(self, vi: ValueInfoProto) -> Act:
        name = short(vi.name)
        t = vi.type.tensor_type if vi.type else None
        if t is None or t.elem_type not in DATA_TYPES:
            raise self.fail(f"input {name!r} is not a tensor of a known data type")
        dims = self._type_dims(vi)
        if dims is None or len(dims) not in (2, 4):
            raise self.fail(f"input {name!r} must be N×C×H×W (or N×C); got rank "
                            f"{'unknown' if dims is None else len(dims)}")
        spatial = dims[2:]
        if self.res is not None:
            if len(dims) != 4 or all(d is not None for d in spatial):
                raise self.fail(f"--res applies only to a model whose input size is symbolic; "
                                f"input {name!r} is {show_dims(dims)}. Write a spec with "
                                "'macscalc import' to change its resolution")
            spatial = tuple(self.res if d is None else d for d in spatial)
        if any(d is not None and d > MAX_SIZE for d in spatial) or (dims[1] or 0) > MAX_CHANNELS:
            raise self.fail(f"input {name!r} is {show_dims(dims)}, past macscalc's limits "
                            f"({MAX_SIZE:,} pixels a side, {MAX_CHANNELS:,} channels)")
        if any(d is None or d <= 0 for d in (dims[1], *spatial)):
            raise self.fail(f"input {name!r} has a symbolic or zero size {show_dims(dims)}: "
                            "give the image size with --res R, or export with a fixed one (a "
                            "symbolic batch is taken as 1)")
        return Act("input", (1, dims[1], *spatial), 1)  # type: ignore[arg-type]

    def _sort(self) -> None:
        """Nodes in topological order; a missing input or a cycle is an error."""
        nodes = list(self.graph.node)
        made = set(self.values)
        for i, n in enumerate(nodes):
            for o in n.output:
                if o in self.producer or o in made:
                    raise self.fail(f"tensor {short(o)!r} is written twice", n)
                if o:
                    self.producer[o] = i
        waiting: dict[int, int] = {}
        ready: list[int] = []
        for i, n in enumerate(nodes):
            need = 0
            for name in dict.fromkeys(x for x in n.input if x):
                if name in made:
                    continue
                if name not in self.producer:
                    raise self.fail(f"input {short(name)!r} is made by no node, initializer "
                                    "or graph input", n)
                self.consumers.setdefault(name, []).append(i)
                need += 1
            waiting[i] = need
            if need == 0:
                ready.append(i)
        order = []
        heapq.heapify(ready)  # the file's order where it is already topological
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for o in nodes[i].output:
                for j in self.consumers.get(o, []):
                    waiting[j] -= 1
                    if waiting[j] == 0:
                        heapq.heappush(ready, j)
        if len(order) != len(nodes):
            stuck = [short(nodes[i].name or nodes[i].op_type) for i in waiting
                     if i not in set(order)]
            raise MacscalcError(f"the graph has a cycle: nodes {', '.join(stuck[:5])}"
                                f"{', …' if len(stuck) > 5 else ''} wait on each other",
                                self.file)
        self.order = [nodes[i] for i in order]
        rank = {i: k for k, i in enumerate(order)}
        self.producer = {o: rank[i] for o, i in self.producer.items()}
        self.consumers = {t: sorted(rank[i] for i in c) for t, c in self.consumers.items()}
        # graph outputs are read by the caller: never internal to a fused pattern
        for o in self.graph.output:
            self.consumers.setdefault(o.name, []).append(-1)

    def _network(self, x: Act) -> Network:
        if not self.nodes:
            raise MacscalcError("the graph has no layer macscalc can count", self.file)
        outs = [self.values.get(o.name) for o in self.graph.output]
        last = next((v for v in outs if isinstance(v, Act)), None)
        try:
            classes = last.shape.c if last is not None else self.nodes[-1].out.c
        except ShapeError:
            classes = self.nodes[-1].out.c
        stem = Path(self.file).stem
        producer = " ".join(p for p in (self.model.producer_name,
                                        self.model.producer_version) if p)
        source = (f"ONNX file {Path(self.file).name} (opset {self.opset}"
                  f"{', ' + short(producer) if producer else ''})")
        bn = (f"batch norm kept ({self.bn_nodes} BatchNormalization nodes)" if self.bn_nodes
              else "no BatchNormalization nodes: BN, if the model had any, was folded into the "
              "conv biases by the exporter, so its γ, β and statistics are not in the file")
        spec = Spec(name=short(stem, 64), title=f"{short(stem, 64)} (ONNX)", source=source,
                    file=self.file, size=(x.shape.h, x.shape.w), channels=x.shape.c,
                    classes=classes, rounding=ROUNDING["make_divisible_8"], rows=(),
                    notes=f"ONNX export: {bn}")
        origin = (f"read from ONNX as stored (widths, sizes, parameters); {bn}; α and ρ do "
                  "not apply to a file (macscalc import writes a spec they apply to)")
        settings = Settings(Fraction(1), spec.size, classes)
        return Network(spec, settings, x.shape, tuple(self.nodes), origin)

    # -- values -----------------------------------------------------------------------
    def get(self, name: str) -> Value:
        return self.values[name]

    def const_value(self, name: str, node: NodeProto) -> Any:
        """The values of a constant input (a small initializer, a Constant, arithmetic)."""
        import numpy as np

        v = self.values.get(name)
        if not isinstance(v, Const):
            raise Unsupported(f"{node.op_type} with a computed {role(node, name)}")
        if v.value is not None:
            return v.value
        if not readable(v):
            raise self.fail(f"needs the values of the large tensor {short(name)!r}", node)
        value = np.asarray(values(v.proto, self.base, self.file))
        if v.proto.data_location == EXTERNAL:
            self.external.add(name)
        self.values[name] = v._replace(value=value)
        return value

    def ints(self, node: NodeProto, index: int, attr: str | None = None,
             default: list[int] | None = None) -> list[int] | None:
        """An int list given as input ``index`` (newer opsets) or attribute ``attr`` (older
        ones): whichever the node has."""
        if len(node.input) > index and node.input[index]:
            return [int(v) for v in self.const_value(node.input[index], node).reshape(-1)]
        if attr is not None:
            a = attrs(node)
            if attr in a:
                return [int(v) for v in (a[attr] if isinstance(a[attr], list) else [a[attr]])]
        return default

    def act(self, node: NodeProto, index: int = 0) -> Act:
        v = self.values[node.input[index]]
        if isinstance(v, Act):
            return v
        raise Unsupported(f"{node.op_type} of a {type(v).__name__.lower()} input")

    # -- placing primitives -------------------------------------------------------------
    def place(self, node: NodeProto, layer: Layer, ins: list[Act], like: Act | None = None,
              name: str | None = None, out: str | None = None) -> Act:
        """Place ``layer`` on ``ins``; its output is laid out like ``like`` (default: the
        first input) and checked against the dims the file declares."""
        if len(self.nodes) >= MAX_LAYERS:
            raise self.fail(f"more than {MAX_LAYERS:,} layers in one network")
        shapes = tuple(a.shape for a in ins)
        label = self.unique(name or node_name(node) or node.op_type.lower())
        try:
            layer = layer.resolve(shapes)
            s = layer.out_shape(shapes)
            result = (like or ins[0]).like(label, s)
        except ShapeError as e:
            raise self.fail(str(e), node) from None
        if min(s) <= 0:
            raise self.fail(f"makes an empty tensor {s}", node)
        self._check_limits(node, layer, s)
        self.nodes.append(Node(name=label, layer=layer, inputs=tuple(a.ref for a in ins),
                               in_shapes=shapes, out=s, block=label, block_kind=node.op_type,
                               role=None))
        target = out if out is not None else node.output[0]
        self._check_declared(node, target, result.dims)
        self.values[target] = result
        return result

    def _check_limits(self, node: NodeProto, layer: Layer, s: Shape) -> None:
        """A layer a spec could hold: every argument and the output within the spec
        language's limits, so ``import`` never writes a spec that ``count`` refuses."""
        for key, a in layer.args.items():
            v = getattr(layer, key)
            if v == a.default or not isinstance(v, (int, tuple)) or isinstance(v, bool):
                continue
            try:
                a.type(list(v) if isinstance(v, tuple) else v)
            except (ValueError, TypeError):
                raise self.fail(f"{key} {show(v)} of {layer.kind} is past macscalc's limits "
                                f"({a.type.expected})", node) from None
        if max(s.h, s.w) > MAX_SIZE or s.c > MAX_CHANNELS:
            raise self.fail(f"makes a {s} tensor, past macscalc's limits ({MAX_SIZE:,} pixels "
                            f"a side, {MAX_CHANNELS:,} channels)", node)

    def alias(self, node: NodeProto, a: Act, dims: tuple[int, ...] | None = None,
              ch: int | None = None, out: str | None = None) -> None:
        """An output that is its input under another name or layout: counts nothing."""
        result = Act(a.ref, dims if dims is not None else a.dims, a.ch if ch is None else ch)
        target = out if out is not None else node.output[0]
        self._check_declared(node, target, result.dims)
        self.values[target] = result

    def _check_declared(self, node: NodeProto, name: str, dims: tuple[int, ...]) -> None:
        want = self.declared.get(name)
        if want is None:
            return
        ok = len(want) == len(dims) and all(w is None or w == d or (i == 0 and d == 1)
                                            for i, (w, d) in enumerate(zip(want, dims,
                                                                           strict=True)))
        if not ok:
            raise self.fail(f"the file declares output {show_dims(want)}, macscalc computes "
                            f"{show_dims(dims)}", node)

    # -- one node -----------------------------------------------------------------------
    def _node(self, node: NodeProto) -> None:
        ins = [self.values.get(n) for n in node.input if n]
        op = short(node.op_type if node.domain in ("", "ai.onnx")
                   else f"{node.domain}.{node.op_type}", 40)
        if any(isinstance(v, Dead) for v in ins):
            if op not in RULES and op not in CONST_OPS:
                self._unknown(node, op, record_only=True)
            self._kill(node)
            return
        try:
            if op == "Shape" or (op in CONST_OPS and all(isinstance(v, Const) for v in ins)):
                self._const(node, op)
            elif op in RULES:
                RULES[op](self, node)
            else:
                raise Unsupported(op)
        except Unsupported as e:
            self._unknown(node, e.label)
        except MALFORMED as e:
            raise self.malformed(node, op, e) from None

    def malformed(self, node: NodeProto, op: str, e: Exception) -> MacscalcError:
        """A node whose inputs, attributes or weight dims do not fit its operator: a rule
        failing on it is the file's fault, reported at the node."""
        return self.fail(f"the node does not fit the {op} operator (its inputs, attributes "
                         f"or weight dims are malformed: {type(e).__name__})", node)

    def _kill(self, node: NodeProto) -> None:
        for o in node.output:
            self.values[o] = Dead()

    def _unknown(self, node: NodeProto, label: str, record_only: bool = False) -> None:
        self.unknown.setdefault(label, []).append(short(node.name or node.op_type))
        if record_only:
            self._kill(node)
            return
        # Without --allow-unknown the walk still goes on through an unknown placeholder
        # where it can, so that the first error lists every unknown operator, not only the
        # first one met (whatever it feeds would otherwise be dead and go unreported).
        acts = [v for n in node.input if n and isinstance(v := self.values.get(n), Act)]
        dims = self._declared_dims(node.output[0]) if node.output else None
        if not acts or dims is None:
            if not self.allow_unknown:
                self._kill(node)
                return
            raise self.fail(f"{label} cannot be counted as unknown: "
                            + ("it reads no image tensor" if not acts else
                               "the file does not say its output shape"), node)
        like = acts[0] if len(acts[0].dims) == len(dims) else Act("", dims, 1)
        probe = Act("", dims, like.ch)
        try:
            s = probe.shape
        except ShapeError as e:
            if not self.allow_unknown:
                self._kill(node)
                return
            raise self.fail(str(e), node) from None
        self.place(node, Unknown(op=label, h=s.h, w=s.w, c=s.c), acts, like=probe)
        for o in node.output[1:]:
            self.values[o] = Dead()

    def _declared_dims(self, name: str) -> tuple[int, ...] | None:
        if name not in self.declared and not self.inferred:
            self._infer()
        dims = self.declared.get(name)
        if dims is None or any(d is None for d in dims[1:]):
            return None
        return (1, *dims[1:])  # type: ignore[arg-type]

    def _infer(self) -> None:
        """ONNX shape inference, run once and only for an unknown operator's output."""
        self.inferred = True
        model = inferred(self.file)
        if model is None:
            return
        for vi in [*model.graph.value_info, *model.graph.output]:
            dims = self._type_dims(vi)
            if dims is not None:
                self.declared.setdefault(vi.name, dims)

    def _const(self, node: NodeProto, op: str) -> None:
        """Shape arithmetic on constants: evaluated, counted as nothing."""
        outs = CONST_OPS[op](self, node)
        if self.from_external(node):
            self.external.update(node.output)
        for o, v in zip(node.output, outs, strict=False):
            self.values[o] = v

    def _fused(self, f: Fused, node: NodeProto) -> None:
        try:
            x = self.values[f.x]
            if isinstance(x, Dead) or any(isinstance(self.values.get(e), Dead) for e in f.extra):
                self._kill(node)
                return
            if not isinstance(x, Act):
                raise Unsupported(f"{f.kind} of a constant")
            FUSED[f.kind](self, f, node, x)
        except Unsupported as e:
            self._unknown(node, e.label)
        except MALFORMED as e:
            raise self.malformed(node, f.kind, e) from None


# What a rule raises on a node that does not fit its operator's definition (a missing
# input, a short attribute list, a zero group).
MALFORMED = (IndexError, KeyError, ValueError, TypeError, ZeroDivisionError, OverflowError,
             AssertionError, AttributeError)


def read_network(path: str, allow_unknown: bool = False, res: int | None = None) -> Network:
    """The network in the ONNX file at ``path``, mapped onto macscalc's primitives; ``res``
    sizes an input exported with a symbolic height and width."""
    with opened(path) as model:
        return Importer(model, path, allow_unknown, res).read()
