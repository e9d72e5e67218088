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
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from macscalc.errors import MacscalcError, ShapeError
from macscalc.graph import Network, Node, Settings
from macscalc.layers import (
    Activation,
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    ConvTranspose2d,
    Depthwise,
    Flatten,
    GlobalPool,
    Layer,
    LayerNorm,
    LayerScale,
    Linear,
    Mul,
    Pool,
    Shape,
    Shuffle,
    Slice,
    Upsample,
)
from macscalc.onnx_file import SMALL, load, short, values
from macscalc.rounding import RULES as ROUNDING
from macscalc.schema import POS_INT, ArgType, arg
from macscalc.spec import Spec

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto


class Unknown(Layer):
    """An ONNX operator with no counting rule (``--allow-unknown``): its output shape is
    the file's, its costs are unknown, and the report says ``partial``. Not a spec row."""

    kind: ClassVar[str] = "unknown"
    arity: ClassVar[int | None] = None
    op = arg(ArgType("an operator name", str), doc="the ONNX op type")
    h = arg(POS_INT, doc="output height")
    w = arg(POS_INT, doc="output width")
    c = arg(POS_INT, doc="output channels")

    def out_shape(self, ins: Any) -> Shape:
        return Shape(self.h, self.w, self.c)

    def label(self, ins: Any) -> str:
        return f"unknown {self.op}"

    def detail(self) -> str:
        return f"{self.op}: not counted"


class Act(NamedTuple):
    """An activation tensor: the network node holding it, its ONNX dims (batch 1) and
    the axis of its channels."""

    ref: str
    dims: tuple[int, ...]
    ch: int

    @property
    def shape(self) -> Shape:
        sp = [self.dims[i] for i in range(1, len(self.dims)) if i != self.ch]
        if len(sp) > 2:
            raise ShapeError(f"a tensor of rank {len(self.dims)} is not an image")
        sp += [1] * (2 - len(sp))
        return Shape(sp[0], sp[1], self.dims[self.ch])

    def like(self, ref: str, s: Shape) -> Act:
        """A tensor laid out as this one, with shape ``s``."""
        dims = list(self.dims)
        dims[self.ch] = s.c
        spatial = [i for i in range(1, len(dims)) if i != self.ch]
        fill = [s.h, s.w]
        if len(spatial) < 2 and (s.w != 1 or (not spatial and s.h != 1)):
            raise ShapeError(f"{s} does not fit a tensor of rank {len(dims)}")
        for i, v in zip(spatial, fill, strict=False):
            dims[i] = v
        return Act(ref, tuple(dims), self.ch)


class Const(NamedTuple):
    """A constant: an initializer, a Constant, or shape arithmetic on them. ``value`` is
    None for a weight whose values were not read."""

    dims: tuple[int, ...]
    value: Any
    proto: Any = None  # the TensorProto to read the value from, when it is needed


class Padded(NamedTuple):
    """A ``Pad`` node's output, folded into the conv or pool that reads it."""

    act: Act
    pads: tuple[int, int, int, int]  # top, left, bottom, right


class Grouped(NamedTuple):
    """The channels split into (groups, channels / groups) by a Reshape: the first step of
    a channel shuffle; ``swapped`` after its Transpose."""

    act: Act
    groups: int
    swapped: bool


class Broadcast(NamedTuple):
    """A 1×1×C tensor expanded to h×w×C (``y.expand_as(x)``): read by a Mul as its gate."""

    act: Act
    dims: tuple[int, ...]


class Dead(NamedTuple):
    """The output of an operator that could not be mapped (reported, not counted)."""


Value = Act | Const | Padded | Grouped | Broadcast | Dead


class Fused(NamedTuple):
    """A pattern of several nodes counted as one primitive, placed at its last node."""

    kind: str  # swish, hswish, gelu, layernorm, linear
    x: str  # the input tensor
    out: str  # the output tensor
    nodes: tuple[int, ...]  # indices of its nodes
    last: int
    extra: tuple[str, ...] = ()  # other tensors it reads (linear: weight, bias)


class Unsupported(Exception):
    """Raised inside an op rule: this node has no counting rule in this form."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


# Ops a torch.nn module exports as itself: its name's last part is the op type, which
# is dropped (``/layer1/layer1.0/conv1/Conv``); a functional op (``/layer1/layer1.0/Add``)
# keeps it, lower-cased, so it is not taken for its parent module.
_MODULE_OPS = frozenset({
    "Conv", "Gemm", "MatMul", "BatchNormalization", "LayerNormalization", "Relu", "Clip",
    "HardSwish", "HardSigmoid", "Sigmoid", "Gelu", "Softmax", "MaxPool", "AveragePool",
    "GlobalAveragePool", "Flatten", "Dropout", "Resize"})


def _sanitize(name: str, op: str = "", module: bool = False) -> str:
    """A readable network name from an exporter's node name: torch's scope path
    ``/features/features.1/conv/conv.0/conv.0.0/Conv`` becomes ``features.1.conv.0.0`` (a
    part that starts with the one before it plus a dot is that part's child)."""
    parts = [p for p in name.split("/") if p]
    last = parts[-1] if parts else ""
    tail = last.split("_")[0]
    if len(parts) > 1 and tail == op:
        parts = parts[:-1] if module or op in _MODULE_OPS else [*parts[:-1], last.lower()]
    path: list[str] = []
    for p in parts:
        if path and p.startswith(path[-1] + "."):
            path[-1] = p
        else:
            path.append(p)
    return short(".".join(path), 64)


def _node_name(node: NodeProto) -> str:
    """The node's name; for the dynamo exporter's generated ones (``node_Conv_12``), the
    module path its weight is named after (``layer1.0.conv1.weight``), when it has one."""
    if (not node.name or node.name.startswith("node_")) and len(node.input) > 1 \
            and node.input[1].endswith(".weight"):
        return short(node.input[1][: -len(".weight")], 64)
    return _sanitize(node.name, node.op_type)


_ATTR_TYPES = {1: "f", 2: "i", 3: "s", 4: "t", 6: "floats", 7: "ints", 8: "strings"}


def _attrs(node: NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        field = _ATTR_TYPES.get(a.type)
        if field is None:
            continue
        v = getattr(a, field)
        out[a.name] = list(v) if field in ("floats", "ints", "strings") else (
            v.decode("utf-8", "replace") if field == "s" else v)
    return out


def _scalar(v: Any) -> float | None:
    import numpy as np

    if v is None:
        return None
    a = np.asarray(v)
    return float(a.reshape(-1)[0]) if a.size == 1 else None


class _Importer:
    """One walk over one graph, in topological order."""

    def __init__(self, model: ModelProto, file: str, allow_unknown: bool) -> None:
        import onnx

        self.onnx = onnx
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

    # -- errors and names ------------------------------------------------------------
    def fail(self, message: str, node: NodeProto | None = None) -> MacscalcError:
        where = f"node {short(node.name or '?')!r} ({short(node.op_type)}): " if node else ""
        return MacscalcError(where + message, self.file)

    def unique(self, name: str) -> str:
        base = name or "node"
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    # -- reading the graph ------------------------------------------------------------
    def read(self) -> Network:
        onnx = self.onnx
        g = self.graph
        known_types = set(onnx.TensorProto.DataType.values()) - {0}
        for t in g.initializer:
            if t.data_type not in known_types:
                raise self.fail(f"initializer {short(t.name)!r} has unknown data type "
                                f"{t.data_type}")
            self.values[t.name] = Const(tuple(t.dims), None, t)
        for vi in [*g.value_info, *g.output]:
            dims = self._type_dims(vi)
            if dims is not None:
                self.declared[vi.name] = dims
        inputs = [i for i in g.input if i.name not in self.values]
        if len(inputs) != 1:
            raise self.fail(f"the graph has {len(inputs)} data inputs; macscalc reads "
                            "networks with one image input")
        x = self._input(inputs[0], known_types)
        self.values[inputs[0].name] = x
        self._sort()
        fused = _Patterns(self).find()
        members = {i: f for f in fused for i in f.nodes}
        for i, node in enumerate(self.order):
            f = members.get(i)
            if f is None:
                self._node(node)
            elif f.last == i:
                self._fused(f, node)
        if self.unknown and not self.allow_unknown:
            listed = "; ".join(f"{op} ({len(names)}: {', '.join(names[:5])}"
                               f"{', …' if len(names) > 5 else ''})"
                               for op, names in self.unknown.items())
            raise MacscalcError(f"no counting rule for these ONNX operators: {listed}. "
                                "Nothing is counted as zero; --allow-unknown counts them as "
                                "unknown (report status partial)", self.file)
        return self._network(x)

    def _type_dims(self, vi: Any) -> tuple[int | None, ...] | None:
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            return None
        return tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)

    def _input(self, vi: Any, known_types: set[int]) -> Act:
        name = short(vi.name)
        t = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or t.elem_type not in known_types:
            raise self.fail(f"input {name!r} is not a tensor of a known data type")
        dims = self._type_dims(vi)
        if dims is None or len(dims) not in (2, 4):
            raise self.fail(f"input {name!r} must be N×C×H×W (or N×C); got rank "
                            f"{'unknown' if dims is None else len(dims)}")
        if any(d is None or d <= 0 for d in dims[1:]):
            raise self.fail(f"input {name!r} has a symbolic or zero size {_show(dims)}: export "
                            "with a fixed image size (a symbolic batch is taken as 1)")
        return Act("input", (1, *dims[1:]), 1)  # type: ignore[arg-type]

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
        classes = last.shape.c if last is not None else self.nodes[-1].out.c
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
            raise Unsupported(f"{node.op_type} with a computed {_role(node, name)}")
        if v.value is not None:
            return v.value
        if not readable(v):
            raise self.fail(f"needs the values of the large tensor {short(name)!r}", node)
        value = np.asarray(values(v.proto, self.base, self.file))
        self.values[name] = v._replace(value=value)
        return value

    def ints(self, node: NodeProto, index: int, attr: str | None = None,
             default: list[int] | None = None) -> list[int] | None:
        """An int list given as input ``index`` (newer opsets) or attribute ``attr`` (older
        ones): whichever the node has."""
        if len(node.input) > index and node.input[index]:
            return [int(v) for v in self.const_value(node.input[index], node).reshape(-1)]
        if attr is not None:
            a = _attrs(node)
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
        shapes = tuple(a.shape for a in ins)
        label = self.unique(name or _node_name(node) or node.op_type.lower())
        try:
            layer = layer.resolve(shapes)
            s = layer.out_shape(shapes)
            result = (like or ins[0]).like(label, s)
        except ShapeError as e:
            raise self.fail(str(e), node) from None
        self.nodes.append(Node(name=label, layer=layer, inputs=tuple(a.ref for a in ins),
                               in_shapes=shapes, out=s, block=label, block_kind=node.op_type,
                               role=None))
        target = out if out is not None else node.output[0]
        self._check_declared(node, target, result.dims)
        self.values[target] = result
        return result

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
            raise self.fail(f"the file declares output {_show(want)}, macscalc computes "
                            f"{_show(dims)}", node)

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

    def _kill(self, node: NodeProto) -> None:
        for o in node.output:
            self.values[o] = Dead()

    def _unknown(self, node: NodeProto, label: str, record_only: bool = False) -> None:
        self.unknown.setdefault(label, []).append(short(node.name or node.op_type))
        if record_only or not self.allow_unknown:
            self._kill(node)
            return
        acts = [v for n in node.input if n and isinstance(v := self.values.get(n), Act)]
        dims = self._declared_dims(node.output[0]) if node.output else None
        if not acts or dims is None:
            raise self.fail(f"{label} cannot be counted as unknown: "
                            + ("it reads no image tensor" if not acts else
                               "the file does not say its output shape"), node)
        like = acts[0] if len(acts[0].dims) == len(dims) else Act("", dims, 1)
        probe = Act("", dims, like.ch)
        try:
            s = probe.shape
        except ShapeError as e:
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
        try:
            inferred = self.onnx.shape_inference.infer_shapes(self.model)
        except Exception:  # noqa: BLE001 - inference failing leaves the shape unknown
            return
        for vi in [*inferred.graph.value_info, *inferred.graph.output]:
            dims = self._type_dims(vi)
            if dims is not None:
                self.declared.setdefault(vi.name, dims)

    def _const(self, node: NodeProto, op: str) -> None:
        """Shape arithmetic on constants: evaluated, counted as nothing."""
        outs = CONST_OPS[op](self, node)
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


def _show(dims: tuple[int | None, ...]) -> str:
    return "×".join("?" if d is None else str(d) for d in dims)


def _role(node: NodeProto, name: str) -> str:
    idx = list(node.input).index(name)
    return {0: "input", 1: "weight", 2: "bias"}.get(idx, f"input {idx}") \
        if node.op_type in ("Conv", "Gemm", "MatMul") else f"input {idx}"


# -- patterns: several nodes, one primitive -------------------------------------------------

class _Patterns:
    """Finds the multi-node patterns before the walk, from the graph's structure and its
    literal constants (initializers and Constant nodes)."""

    def __init__(self, imp: _Importer) -> None:
        self.imp = imp
        self.order = imp.order
        self.taken: set[int] = set()
        self.consts = self._consts()
        self.literals = self._literals()

    def _consts(self) -> set[str]:
        """Tensors computed from constants alone (an exporter shares equal initializers
        through Identity nodes)."""
        out = {n for n, v in self.imp.values.items() if isinstance(v, Const)}
        for node in self.order:
            if node.op_type in ("Constant", "Shape") or (
                    node.op_type in CONST_OPS and all(i in out for i in node.input if i)):
                out.update(node.output)
        return out

    def _literals(self) -> dict[str, float]:
        """Scalar literal constants by tensor name."""
        import numpy as np

        out: dict[str, float] = {}
        for name, v in self.imp.values.items():
            if isinstance(v, Const) and v.proto is not None and int(np.prod(v.dims or (1,))) == 1:
                try:
                    out[name] = float(values(v.proto, self.imp.base, self.imp.file).reshape(-1)[0])
                except MacscalcError:
                    continue
        for node in self.order:
            if node.op_type == "Constant" and node.output:
                a = node.attribute[0] if node.attribute else None
                if a is None:
                    continue
                if a.name == "value" and a.t and int(np.prod(a.t.dims or [1])) == 1:
                    from onnx import numpy_helper

                    try:
                        out[node.output[0]] = float(numpy_helper.to_array(a.t).reshape(-1)[0])
                    except Exception:  # noqa: BLE001 - an unreadable literal matches nothing
                        continue
                elif a.name in ("value_float", "value_int"):
                    out[node.output[0]] = float(a.f if a.name == "value_float" else a.i)
            elif node.op_type in ("Identity", "Cast") and node.input[0] in out:
                out[node.output[0]] = out[node.input[0]]
        return out

    def is_const(self, name: str) -> bool:
        return name in self.consts

    def lit(self, name: str, want: float, tol: float = 1e-3) -> bool:
        v = self.literals.get(name)
        return v is not None and abs(v - want) <= tol * max(1.0, abs(want))

    def only(self, tensor: str, op: str | tuple[str, ...]) -> int | None:
        """The single consumer of ``tensor``, when it is of type ``op``."""
        c = self.imp.consumers.get(tensor, [])
        ops = (op,) if isinstance(op, str) else op
        if len(c) == 1 and c[0] >= 0 and self.order[c[0]].op_type in ops \
                and c[0] not in self.taken:
            return c[0]
        return None

    def other(self, i: int, tensor: str) -> str | None:
        ins = list(self.order[i].input)
        if len(ins) != 2 or tensor not in ins:
            return None
        return ins[1] if ins[0] == tensor else ins[0]

    def find(self) -> list[Fused]:
        found = []
        for i, node in enumerate(self.order):
            if i in self.taken or node.domain not in ("", "ai.onnx"):
                continue
            match = {"Sigmoid": self._gate, "HardSigmoid": self._gate, "Erf": self._gelu,
                     "ReduceMean": self._layernorm, "MatMul": self._linear,
                     "Clip": self._hard}.get(node.op_type)
            f = match(i) if match else None
            if f is not None:
                self.taken.update(f.nodes)
                found.append(f)
        return found

    def _fused(self, kind: str, x: str, nodes: list[int], extra: tuple[str, ...] = ()) -> Fused:
        last = max(nodes)
        return Fused(kind, x, self.order[last].output[0], tuple(sorted(nodes)), last, extra)

    def _gate(self, i: int) -> Fused | None:
        """x·Sigmoid(x) = swish; x·HardSigmoid(x) = hard-swish."""
        node = self.order[i]
        x = node.input[0]
        m = self.only(node.output[0], "Mul")
        if m is None or self.other(m, node.output[0]) != x:
            return None
        return self._fused("swish" if node.op_type == "Sigmoid" else "hswish", x, [i, m])

    def _hard(self, i: int) -> Fused | None:
        """relu6(x + 3) / 6 = hard-sigmoid; times x (before or after the 6) = hard-swish."""
        clip = self.order[i]
        attrs = _attrs(clip)
        lo = clip.input[1] if len(clip.input) > 1 else ""
        hi = clip.input[2] if len(clip.input) > 2 else ""
        if not ((self.lit(lo, 0.0) and self.lit(hi, 6.0))
                or (attrs.get("min") == 0.0 and attrs.get("max") == 6.0)):
            return None
        add = self.imp.producer.get(clip.input[0])
        if add is None or add in self.taken or self.order[add].op_type != "Add" \
                or len(self.imp.consumers.get(clip.input[0], [])) != 1:
            return None
        a = self.order[add]
        three = next((n for n in a.input if self.lit(n, 3.0)), None)
        x = self.other(add, three) if three else None
        if x is None:
            return None
        nodes, cur, scaled, gated = [add, i], clip.output[0], False, False
        while True:
            m = self.only(cur, ("Div", "Mul"))
            if m is None:
                break
            o = self.other(m, cur)
            n = self.order[m]
            if not scaled and ((n.op_type == "Div" and n.input[1] == o and self.lit(o, 6.0))
                               or (n.op_type == "Mul" and self.lit(o or "", 1 / 6))):
                scaled = True
            elif not gated and n.op_type == "Mul" and o == x:
                gated = True
            else:
                break
            nodes.append(m)
            cur = n.output[0]
        if not scaled:
            return None
        return self._fused("hswish" if gated else "hsigmoid", x, nodes)

    def _gelu(self, i: int) -> Fused | None:
        """x·0.5·(1 + erf(x/√2)), in any of the orders exporters write it."""
        erf = self.order[i]
        scale = self.imp.producer.get(erf.input[0])
        if scale is None or scale in self.taken:
            return None
        s = self.order[scale]
        if len(self.imp.consumers.get(erf.input[0], [])) != 1 or len(s.input) != 2:
            return None
        x = s.input[0]
        if not ((s.op_type == "Div" and self.lit(s.input[1], 2 ** 0.5))
                or (s.op_type == "Mul" and (self.lit(s.input[1], 2 ** -0.5)
                                            or (self.lit(s.input[0], 2 ** -0.5)
                                                and (x := s.input[1]))))):
            return None
        add = self.only(erf.output[0], "Add")
        if add is None or not self.lit(self.other(add, erf.output[0]) or "", 1.0):
            return None
        nodes, cur, has_x, half = [scale, i, add], self.order[add].output[0], False, False
        while not (has_x and half):
            m = self.only(cur, "Mul")
            if m is None:
                return None
            o = self.other(m, cur)
            if o == x:
                has_x = True
            elif o is not None and self.lit(o, 0.5):
                half = True
            else:
                p = self.imp.producer.get(o or "")
                pn = self.order[p] if p is not None else None
                if (pn is None or pn.op_type != "Mul" or x not in pn.input or p in self.taken
                        or not self.lit(self.other(p, x) or "", 0.5)
                        or len(self.imp.consumers.get(o or "", [])) != 1):
                    return None
                nodes.append(p)
                has_x = half = True
            nodes.append(m)
            cur = self.order[m].output[0]
        return self._fused("gelu", x, nodes)

    def _layernorm(self, i: int) -> Fused | None:
        """(x − mean)/√(var + ε)·γ + β over one axis, as ReduceMean/Sub/Pow/Sqrt/Div."""
        mean = self.order[i]
        x = mean.input[0]
        sub = self.only(mean.output[0], "Sub")
        if sub is None or self.order[sub].input[0] != x:
            return None
        d = self.order[sub].output[0]
        users = self.imp.consumers.get(d, [])
        pw = next((u for u in users if u >= 0 and self.order[u].op_type == "Pow"), None)
        div = next((u for u in users if u >= 0 and self.order[u].op_type == "Div"), None)
        if len(users) != 2 or pw is None or div is None or self.order[div].input[0] != d:
            return None
        var = self.only(self.order[pw].output[0], "ReduceMean")
        eps = self.only(self.order[var].output[0], "Add") if var is not None else None
        sq = self.only(self.order[eps].output[0], "Sqrt") if eps is not None else None
        if sq is None or self.only(self.order[sq].output[0], "Div") != div:
            return None
        nodes = [i, sub, pw, var, eps, sq, div]
        mul = self.only(self.order[div].output[0], "Mul")
        if mul is None or not self.is_const(self.other(mul, self.order[div].output[0]) or ""):
            return None
        add = self.only(self.order[mul].output[0], "Add")
        if add is None or not self.is_const(self.other(add, self.order[mul].output[0]) or ""):
            return None
        gamma = self.other(mul, self.order[div].output[0]) or ""
        beta = self.other(add, self.order[mul].output[0]) or ""
        return self._fused("layernorm", x, [*nodes, mul, add], (gamma, beta))

    def _linear(self, i: int) -> Fused | None:
        """MatMul by a constant weight, then Add of a constant bias: one linear layer."""
        mm = self.order[i]
        if len(mm.input) != 2 or not self._weight(mm.input[1]):
            return None
        add = self.only(mm.output[0], "Add")
        bias = self.other(add, mm.output[0]) if add is not None else None
        if add is None or bias is None or not self.is_const(bias):
            return None
        return self._fused("linear", mm.input[0], [i, add], (mm.input[1], bias))

    def _weight(self, name: str) -> bool:
        """A constant, possibly through a Transpose (the dynamo exporter's linear)."""
        if self.is_const(name):
            return True
        p = self.imp.producer.get(name)
        return p is not None and self.order[p].op_type == "Transpose" \
            and self.is_const(self.order[p].input[0])


def _fuse_act(fn: str) -> Callable[[_Importer, Fused, NodeProto, Act], None]:
    def place(imp: _Importer, f: Fused, node: NodeProto, x: Act) -> None:
        name = _sanitize(node.name, node.op_type, module=True) or None
        imp.place(node, Activation(fn=fn), [x], name=name, out=f.out)

    return place


def _fuse_layernorm(imp: _Importer, f: Fused, node: NodeProto, x: Act) -> None:
    import numpy as np

    first = imp.order[f.nodes[0]]
    axes = imp.ints(first, 1, "axes") or []
    rank = len(x.dims)
    if [a % rank for a in axes] != [x.ch]:
        raise Unsupported("ReduceMean over a non-channel axis")
    for e in f.extra:
        v = imp.values.get(e)
        if not isinstance(v, Const) or int(np.prod(v.dims or (1,))) != x.shape.c:
            raise Unsupported("layer norm with a scale or shift not of one per channel")
    imp.place(node, LayerNorm(), [x], name=_sanitize(node.name, "", module=True) or None,
              out=f.out)


def _fuse_linear(imp: _Importer, f: Fused, node: NodeProto, x: Act) -> None:
    import numpy as np

    mm = imp.order[f.nodes[0]]
    w = imp.values.get(f.extra[0])
    b = imp.values.get(f.extra[1])
    if not isinstance(w, Const) or not isinstance(b, Const):
        raise Unsupported("MatMul by a computed tensor")
    out = _matmul_out(x, w)
    if int(np.prod(b.dims or (1,))) != out:
        raise Unsupported("Add after MatMul of a tensor that is not a bias")
    name = _sanitize(mm.name, mm.op_type) or None
    imp.place(node, Linear(c=out, bias=True), [x], name=name, out=f.out)


FUSED: dict[str, Callable[[_Importer, Fused, NodeProto, Act], None]] = {
    "swish": _fuse_act("swish"),
    "hswish": _fuse_act("hswish"),
    "hsigmoid": _fuse_act("hsigmoid"),
    "gelu": _fuse_act("gelu"),
    "layernorm": _fuse_layernorm,
    "linear": _fuse_linear,
}


# -- rules: one ONNX operator each ----------------------------------------------------------

def _window(imp: _Importer, node: NodeProto) -> tuple[Act, tuple[int, int, int, int], dict]:
    """The image input of a conv or pool, with a preceding Pad folded into its pads."""
    a = _attrs(node)
    v = imp.values[node.input[0]]
    extra = (0, 0, 0, 0)
    if isinstance(v, Padded):
        v, extra = v.act, v.pads
    if not isinstance(v, Act) or len(v.dims) != 4 or v.ch != 1:
        raise Unsupported(f"{node.op_type} of a tensor that is not N×C×H×W")
    pads = a.get("pads", [0, 0, 0, 0])
    if len(pads) != 4:
        raise Unsupported(f"{node.op_type} with pads {pads}")
    total = tuple(p + e for p, e in zip(pads, extra, strict=True))
    return v, total, a  # type: ignore[return-value]


def _onnx_len(n: int, k: int, s: int, d: int, begin: int, end: int, ceil: bool) -> int:
    """ONNX's (and PyTorch's) output length of one axis."""
    span = d * (k - 1) + 1
    room = n + begin + end - span
    out = (-(-room // s) if ceil else room // s) + 1
    if ceil and (out - 1) * s >= n + begin:
        out -= 1  # the last window must start inside the input or the leading pad
    return out


def _paddings(k: tuple[int, int], d: tuple[int, int], pads: tuple[int, int, int, int],
              ceil: bool) -> Iterator[str | tuple[int, int]]:
    """macscalc paddings to try for ONNX pads (top, left, bottom, right), best first:
    ``same`` when the pads are the half-kernel PyTorch writes (equal at every size)."""
    t, left, b, r = pads
    if (t, left) == (b, r):
        half = all(2 * p == di * (ki - 1) for p, ki, di in zip((t, left), k, d, strict=True))
        if half and not ceil:
            yield "same"
        yield (t, left)
        return
    yield "same"
    yield ((t + b) // 2, (left + r) // 2)
    yield ((t + b + 1) // 2, (left + r + 1) // 2)


def _placed_window(imp: _Importer, node: NodeProto, x: Act, make: Callable[[Any], Layer],
                   k: tuple[int, int], s: tuple[int, int], d: tuple[int, int],
                   pads: tuple[int, int, int, int], auto: str, ceil: bool) -> None:
    h, w = x.shape.h, x.shape.w
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        choices: list[Any] = ["same"]
    elif auto == "VALID":
        choices = ["valid"]
    else:
        choices = list(_paddings(k, d, pads, ceil))
    want = ((-(-h // s[0]), -(-w // s[1])) if auto.startswith("SAME") else
            (_onnx_len(h, k[0], s[0], d[0], pads[0], pads[2], ceil),
             _onnx_len(w, k[1], s[1], d[1], pads[1], pads[3], ceil)) if auto != "VALID" else
            (_onnx_len(h, k[0], s[0], d[0], 0, 0, ceil), _onnx_len(w, k[1], s[1], d[1], 0, 0,
                                                                   ceil)))
    if min(want) <= 0:
        raise imp.fail(f"a {k[0]}×{k[1]} window with stride {s[0]} collapses a {h}×{w} input")
    for padding in choices:
        try:
            layer = make(padding)
            out = layer.out_shape((x.shape,))
        except (ValueError, ShapeError):
            continue
        if (out.h, out.w) == want:
            imp.place(node, layer, [x])
            return
    raise Unsupported(f"{node.op_type} with pads {list(pads)}")


def _conv(imp: _Importer, node: NodeProto) -> None:
    x, pads, a = _window(imp, node)
    w = imp.values.get(node.input[1])
    if not isinstance(w, Const) or len(w.dims) != 4:
        raise Unsupported("Conv with a computed or non-2D weight")
    cout, per_group, kh, kw = w.dims
    group = int(a.get("group", 1))
    cin = x.dims[1]
    if per_group * group != cin:
        raise imp.fail(f"weight {_show(w.dims)} with group {group} does not fit {cin} input "
                       "channels", node)
    k = tuple(a.get("kernel_shape", [kh, kw]))
    s = tuple(a.get("strides", [1, 1]))
    d = tuple(a.get("dilations", [1, 1]))
    bias = len(node.input) > 2 and bool(node.input[2])
    if group > 1 and group == cin and cout % cin == 0:
        def make(p: Any) -> Layer:
            return Depthwise(k=k, s=s, m=cout // cin, padding=p, d=d, bias=bias)
    else:
        def make(p: Any) -> Layer:
            return Conv2d(c=cout, k=k, s=s, padding=p, d=d, groups=group, bias=bias)
    _placed_window(imp, node, x, make, k, s, d, pads, a.get("auto_pad", "NOTSET"), False)


def _conv_transpose(imp: _Importer, node: NodeProto) -> None:
    x, pads, a = _window(imp, node)
    w = imp.values.get(node.input[1])
    if not isinstance(w, Const) or len(w.dims) != 4:
        raise Unsupported("ConvTranspose with a computed or non-2D weight")
    cin, per_group, kh, kw = w.dims
    group = int(a.get("group", 1))
    if cin != x.dims[1] or a.get("auto_pad", "NOTSET") != "NOTSET" or "output_shape" in a \
            or pads[:2] != pads[2:]:
        raise Unsupported("ConvTranspose with auto_pad, output_shape or uneven pads")
    layer = ConvTranspose2d(c=per_group * group, k=tuple(a.get("kernel_shape", [kh, kw])),
                            s=tuple(a.get("strides", [1, 1])), padding=tuple(pads[:2]),
                            output_padding=tuple(a.get("output_padding", [0, 0])),
                            d=tuple(a.get("dilations", [1, 1])), groups=group,
                            bias=len(node.input) > 2 and bool(node.input[2]))
    imp.place(node, layer, [x])


def _pool(op: str) -> Callable[[_Importer, NodeProto], None]:
    def rule(imp: _Importer, node: NodeProto) -> None:
        x, pads, a = _window(imp, node)
        if any(v != 1 for v in a.get("dilations", [1, 1])):
            raise Unsupported(f"{node.op_type} with dilations")
        k = tuple(a["kernel_shape"])
        s = tuple(a.get("strides", [1, 1]))
        ceil = bool(a.get("ceil_mode", 0))

        def make(p: Any) -> Layer:
            return Pool(op=op, k=k, s=s, padding=p, ceil=ceil)

        _placed_window(imp, node, x, make, k, s, (1, 1), pads, a.get("auto_pad", "NOTSET"),
                       ceil)
    return rule


def _global_pool(op: str) -> Callable[[_Importer, NodeProto], None]:
    def rule(imp: _Importer, node: NodeProto) -> None:
        x = imp.act(node)
        if len(x.dims) != 4:
            raise Unsupported(f"{node.op_type} of a tensor of rank {len(x.dims)}")
        imp.place(node, GlobalPool(op=op), [x])
    return rule


def _reduce(op: str) -> Callable[[_Importer, NodeProto], None]:
    """ReduceMean/ReduceMax over all spatial axes: a global pool."""
    def rule(imp: _Importer, node: NodeProto) -> None:
        x = imp.act(node)
        rank = len(x.dims)
        axes = imp.ints(node, 1, "axes")
        spatial = {i for i in range(1, rank) if i != x.ch}
        if axes is None or {a % rank for a in axes} != spatial or not spatial:
            raise Unsupported(f"{node.op_type} over axes other than the spatial ones")
        keep = bool(_attrs(node).get("keepdims", 1))
        like = x if keep else Act("", (1, x.dims[x.ch]), 1)
        imp.place(node, GlobalPool(op=op), [x], like=like)
    return rule


def _act(fn: str) -> Callable[[_Importer, NodeProto], None]:
    def rule(imp: _Importer, node: NodeProto) -> None:
        imp.place(node, Activation(fn=fn), [imp.act(node)])
    return rule


def _clip(imp: _Importer, node: NodeProto) -> None:
    a = _attrs(node)
    if imp.opset >= 11:
        lo = _scalar(imp.const_value(node.input[1], node)) if len(node.input) > 1 and \
            node.input[1] else None
        hi = _scalar(imp.const_value(node.input[2], node)) if len(node.input) > 2 and \
            node.input[2] else None
    else:
        lo, hi = a.get("min"), a.get("max")
    if lo == 0 and hi == 6:
        fn = "relu6"
    elif lo == 0 and (hi is None or hi == float("inf")):
        fn = "relu"
    else:
        raise Unsupported(f"Clip({lo}, {hi})")
    imp.place(node, Activation(fn=fn), [imp.act(node)])


def _batchnorm(imp: _Importer, node: NodeProto) -> None:
    x = imp.act(node)
    scale = imp.values.get(node.input[1])
    if x.ch != 1 or not isinstance(scale, Const) or scale.dims != (x.dims[1],):
        raise Unsupported("BatchNormalization not over the channels")
    imp.bn_nodes += 1
    imp.place(node, BatchNorm(), [x])


def _layernorm(imp: _Importer, node: NodeProto) -> None:
    x = imp.act(node)
    axis = int(_attrs(node).get("axis", -1)) % len(x.dims)
    if axis != x.ch or axis != len(x.dims) - 1 or len(node.input) < 3 or not node.input[2]:
        raise Unsupported("LayerNormalization not over the channels, or without a shift")
    imp.place(node, LayerNorm(), [x])


def _gemm(imp: _Importer, node: NodeProto) -> None:
    x = imp.act(node)
    a = _attrs(node)
    w = imp.values.get(node.input[1])
    if a.get("transA", 0) or not isinstance(w, Const) or len(w.dims) != 2 or len(x.dims) != 2:
        raise Unsupported("Gemm of a transposed, computed or non-2D operand")
    k, out = (w.dims[1], w.dims[0]) if a.get("transB", 0) else w.dims
    if k != x.dims[1]:
        raise imp.fail(f"weight {_show(w.dims)} does not fit {x.dims[1]} inputs", node)
    bias = len(node.input) > 2 and bool(node.input[2])
    imp.place(node, Linear(c=out, bias=bias), [x])


def _matmul_out(x: Act, w: Const) -> int:
    if len(w.dims) != 2 or x.ch != len(x.dims) - 1 or w.dims[0] != x.dims[-1]:
        raise Unsupported("MatMul not of the channels by a 2-D weight")
    return w.dims[1]


def _matmul(imp: _Importer, node: NodeProto) -> None:
    x = imp.act(node)
    w = imp.values.get(node.input[1])
    if not isinstance(w, Const):
        raise Unsupported("MatMul of two computed tensors")
    imp.place(node, Linear(c=_matmul_out(x, w), bias=False), [x])


def _acts_and_consts(imp: _Importer, node: NodeProto) -> tuple[list[Act], list[Const]]:
    ins = [imp.values[n] for n in node.input if n]
    acts = [v for v in ins if isinstance(v, Act)]
    consts = [v for v in ins if isinstance(v, Const)]
    if len(acts) + len(consts) != len(ins):
        raise Unsupported(f"{node.op_type} of a padded or regrouped tensor")
    return acts, consts


def _add(imp: _Importer, node: NodeProto) -> None:
    acts, consts = _acts_and_consts(imp, node)
    if consts or len(acts) < 2:
        raise Unsupported(f"{node.op_type} of a constant")
    if any(a.dims != acts[0].dims for a in acts):
        raise Unsupported(f"{node.op_type} with broadcasting")
    imp.place(node, Add(), acts)


def _expand(imp: _Importer, node: NodeProto) -> None:
    x = imp.act(node)
    dims = tuple(int(v) for v in imp.const_value(node.input[1], node).reshape(-1))
    full = tuple(max(a, b) for a, b in zip(x.dims, dims, strict=False))
    if len(dims) != len(x.dims) or full == x.dims:
        if full == x.dims and len(dims) == len(x.dims):
            imp.alias(node, x)
            return
        raise Unsupported("Expand of an image")
    if x.shape != Shape(1, 1, x.dims[x.ch]) or full[x.ch] != x.dims[x.ch]:
        raise Unsupported("Expand of an image")
    imp.values[node.output[0]] = Broadcast(x, (1, *full[1:]))


def _mul(imp: _Importer, node: NodeProto) -> None:
    import numpy as np

    ins = [imp.values[n] for n in node.input]
    if len(ins) == 2 and any(isinstance(v, Broadcast) for v in ins):
        gate, x = ins if isinstance(ins[0], Broadcast) else ins[::-1]
        if not isinstance(x, Act) or not isinstance(gate, Broadcast) or x.dims != gate.dims:
            raise Unsupported("Mul of an expanded tensor")
        imp.place(node, Mul(), [x, gate.act])
        return
    acts, consts = _acts_and_consts(imp, node)
    if len(acts) == 2:
        a, b = acts
        if b.shape.numel > a.shape.numel:
            a, b = b, a
        if b.shape != a.shape and b.shape != Shape(1, 1, a.shape.c):
            raise Unsupported("Mul with broadcasting")
        imp.place(node, Mul(), [a, b])
        return
    x, c = acts[0], consts[0]
    per_channel = int(np.prod(c.dims or (1,))) == x.shape.c and len(c.dims) <= len(x.dims) and \
        all(d == 1 for i, d in enumerate(reversed(c.dims)) if len(x.dims) - 1 - i != x.ch)
    if not per_channel or x.shape.c == 1:
        raise Unsupported("Mul by a constant")
    imp.place(node, LayerScale(), [x])


def _concat(imp: _Importer, node: NodeProto) -> None:
    acts, consts = _acts_and_consts(imp, node)
    if consts or not acts:
        raise Unsupported("Concat of images and constants")
    axis = int(_attrs(node).get("axis", 1)) % len(acts[0].dims)
    if axis != acts[0].ch or any(a.ch != axis or len(a.dims) != len(acts[0].dims)
                                 for a in acts):
        raise Unsupported("Concat along a non-channel axis")
    if len(acts) == 1:
        imp.alias(node, acts[0])
        return
    imp.place(node, Concat(), acts)


def _channel_axis(imp: _Importer, node: NodeProto, x: Act, axis: int) -> None:
    if axis % len(x.dims) != x.ch:
        raise Unsupported(f"{node.op_type} along a non-channel axis")


def _split(imp: _Importer, node: NodeProto) -> None:
    x = imp.act(node)
    a = _attrs(node)
    _channel_axis(imp, node, x, int(a.get("axis", 0)))
    c = x.dims[x.ch]
    n = len(node.output)
    sizes = imp.ints(node, 1, "split")
    if sizes is None:
        parts = int(a.get("num_outputs", n))
        step = -(-c // parts)
        sizes = [min(step, c - i * step) for i in range(parts)]
    if len(sizes) != n or sum(sizes) != c or min(sizes) <= 0:
        raise imp.fail(f"split sizes {sizes} do not divide {c} channels into {n}", node)
    base = _sanitize(node.name, node.op_type) or "split"
    start = 0
    for i, (o, size) in enumerate(zip(node.output, sizes, strict=True)):
        imp.place(node, Slice(c=size, start=start), [x], name=f"{base}.{i}", out=o)
        start += size


def _slice(imp: _Importer, node: NodeProto) -> None:
    x = imp.act(node)
    if imp.opset >= 10:
        starts, ends = imp.ints(node, 1), imp.ints(node, 2)
        axes = imp.ints(node, 3, default=list(range(len(starts or []))))
        steps = imp.ints(node, 4, default=[1] * len(starts or []))
    else:
        a = _attrs(node)
        starts, ends = a.get("starts"), a.get("ends")
        axes = a.get("axes", list(range(len(starts or []))))
        steps = [1] * len(starts or [])
    assert starts is not None and ends is not None and axes is not None and steps is not None
    rank = len(x.dims)
    keep = (0, x.dims[x.ch])
    for st, en, ax, sp in zip(starts, ends, axes, steps, strict=True):
        n = x.dims[ax % rank]
        lo = max(0, min(n, st + n if st < 0 else st))
        hi = max(0, min(n, en + n if en < 0 else en))
        if (lo, hi, sp) == (0, n, 1):
            continue
        if ax % rank != x.ch or sp != 1 or hi <= lo:
            raise Unsupported("Slice of a non-channel axis")
        keep = (lo, hi)
    if keep == (0, x.dims[x.ch]):
        imp.alias(node, x)
        return
    imp.place(node, Slice(c=keep[1] - keep[0], start=keep[0]), [x])


def _target(imp: _Importer, node: NodeProto, x: Act) -> tuple[int, ...]:
    import numpy as np

    shape = [int(v) for v in imp.const_value(node.input[1], node).reshape(-1)]
    allow_zero = _attrs(node).get("allowzero", 0)
    dims = [x.dims[i] if v == 0 and not allow_zero and i < len(x.dims) else v
            for i, v in enumerate(shape)]
    if len(dims) >= 2 and dims[0] > 1:
        dims[0] = 1  # the batch: counts are per image
    known = int(np.prod([d for d in dims if d != -1] or [1]))
    total = int(np.prod(x.dims))
    if dims.count(-1) == 1 and known and total % known == 0:
        dims[dims.index(-1)] = total // known
    if any(d < 0 for d in dims) or int(np.prod(dims or [1])) != total:
        raise imp.fail(f"cannot reshape {_show(x.dims)} to {shape}", node)
    return tuple(dims)


def _reshape(imp: _Importer, node: NodeProto) -> None:
    v = imp.values[node.input[0]]
    if isinstance(v, Grouped):
        dims = _target(imp, node, v.act)
        if not v.swapped or dims != v.act.dims:
            raise Unsupported("Reshape of regrouped channels")
        imp.place(node, Shuffle(groups=v.groups), [v.act])
        return
    x = imp.act(node)
    dims = _target(imp, node, x)
    if len(x.dims) == 4 and x.ch == 1 and len(dims) == 5 and dims[3:] == x.dims[2:] \
            and dims[1] * dims[2] == x.dims[1]:
        imp.values[node.output[0]] = Grouped(x, dims[1], False)
        return
    if len(dims) == 1 and x.shape == Shape(1, 1, dims[0]):
        imp.alias(node, x, dims, 0)  # a flat vector of the channels (no batch axis)
        return
    if len(dims) == 2:
        if x.shape == Shape(1, 1, dims[1]):
            imp.alias(node, x, dims, 1)
        else:
            imp.place(node, Flatten(), [x], like=Act("", dims, 1))
        return
    if len(dims) == 4 and x.shape.h == x.shape.w == 1 and dims[1] == x.shape.c and \
            dims[2] == dims[3] == 1:
        imp.alias(node, x, dims, 1)
        return
    if dims == x.dims:
        imp.alias(node, x)
        return
    raise Unsupported("Reshape of an image to another layout")


def _transpose(imp: _Importer, node: NodeProto) -> None:
    v = imp.values[node.input[0]]
    perm = [int(p) for p in _attrs(node).get("perm", [])]
    if isinstance(v, Grouped):
        if perm != [0, 2, 1, 3, 4] or v.swapped:
            raise Unsupported("Transpose of regrouped channels")
        imp.values[node.output[0]] = Grouped(v.act, v.groups, True)
        return
    x = imp.act(node)
    rank = len(x.dims)
    perm = perm or list(reversed(range(rank)))
    spatial = [p for p in perm if p not in (0, x.ch)]
    if perm[0] != 0 or spatial != sorted(spatial):
        raise Unsupported("Transpose of the spatial or batch axes")
    imp.alias(node, x, tuple(x.dims[p] for p in perm), perm.index(x.ch))


def _flatten(imp: _Importer, node: NodeProto) -> None:
    x = imp.act(node)
    if int(_attrs(node).get("axis", 1)) % max(len(x.dims), 1) != 1:
        raise Unsupported("Flatten at an axis other than 1")
    imp.place(node, Flatten(), [x], like=Act("", (1, x.shape.numel), 1))


def _squeeze(imp: _Importer, node: NodeProto) -> None:
    x = imp.act(node)
    rank = len(x.dims)
    axes = imp.ints(node, 1, "axes")
    drop = {a % rank for a in axes} if axes else {i for i, d in enumerate(x.dims) if d == 1}
    drop.discard(0)
    if x.ch in drop or any(x.dims[a] != 1 for a in drop):
        raise Unsupported("Squeeze of the channel axis")
    keep = [i for i in range(rank) if i not in drop]
    imp.alias(node, x, tuple(x.dims[i] for i in keep), keep.index(x.ch))


def _unsqueeze(imp: _Importer, node: NodeProto) -> None:
    x = imp.act(node)
    axes = imp.ints(node, 1, "axes")
    rank = len(x.dims) + len(axes or [])
    new = sorted(a % rank for a in axes or [])
    dims, ch, j = [], 0, 0
    for i in range(rank):
        if i in new:
            dims.append(1)
        else:
            if j == x.ch:
                ch = i
            dims.append(x.dims[j])
            j += 1
    if 0 in new:
        raise Unsupported("Unsqueeze before the batch axis")
    result = Act(x.ref, tuple(dims), ch)
    try:
        same = result.shape == x.shape
    except ShapeError:
        same = False
    if not same:
        raise Unsupported("Unsqueeze that changes the image layout")
    imp.alias(node, x, result.dims, ch)


def _gather(imp: _Importer, node: NodeProto) -> None:
    """Gathering every channel once (the dynamo exporter's as_strided of a 1×1×C vector):
    a permutation, free; any other gather of an image has no rule."""
    import numpy as np

    x = imp.act(node)
    axis = int(_attrs(node).get("axis", 0)) % len(x.dims)
    idx = np.asarray(imp.const_value(node.input[1], node))
    n = x.dims[axis]
    if axis != x.ch or sorted(idx.reshape(-1) % n) != list(range(n)):
        raise Unsupported("Gather of an image's elements")
    dims = (*x.dims[:axis], *idx.shape, *x.dims[axis + 1:])
    big = [i for i, d in enumerate(idx.shape) if d == n]
    if n > 1 and len(big) != 1:
        raise Unsupported("Gather of an image's elements")
    ch = axis + (big[0] if big else 0)
    result = Act(x.ref, dims, ch)
    if result.shape != x.shape:
        raise Unsupported("Gather of an image's elements")
    imp.alias(node, x, dims, ch)


def _identity(imp: _Importer, node: NodeProto) -> None:
    v = imp.values[node.input[0]]
    if isinstance(v, Act):
        imp.alias(node, v)
    else:
        imp.values[node.output[0]] = v
    for o in node.output[1:]:  # Dropout's mask
        imp.values[o] = Dead()


def _pad(imp: _Importer, node: NodeProto) -> None:
    x = imp.act(node)
    pads = imp.ints(node, 1, "pads")
    if imp.opset >= 18 and len(node.input) > 3 and node.input[3]:
        raise Unsupported("Pad with axes")
    if pads is None or len(pads) != 8 or len(x.dims) != 4 or x.ch != 1:
        raise Unsupported("Pad of a tensor that is not N×C×H×W")
    if any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
        raise Unsupported("Pad of the batch or channel axis")
    if not any(pads):
        imp.alias(node, x)
        return
    users = [imp.order[i].op_type for i in imp.consumers.get(node.output[0], []) if i >= 0]
    if not users or any(u not in ("Conv", "AveragePool", "MaxPool") for u in users):
        raise Unsupported("Pad not followed by a conv or pool")
    imp.values[node.output[0]] = Padded(x, (pads[2], pads[3], pads[6], pads[7]))


def _resize(imp: _Importer, node: NodeProto) -> None:
    x = imp.act(node)
    a = _attrs(node)
    mode = a.get("mode", "nearest")
    if mode not in ("nearest", "linear") or len(x.dims) != 4 or x.ch != 1:
        raise Unsupported(f"Resize ({short(mode, 16)})")
    scale_at = 1 if node.op_type == "Upsample" or imp.opset < 11 else 2
    scales = (imp.const_value(node.input[scale_at], node).reshape(-1).tolist()
              if len(node.input) > scale_at and node.input[scale_at] else [])
    sizes = imp.ints(node, 3) if scale_at == 2 else None
    if sizes:
        h, w = sizes[2], sizes[3]
    elif len(scales) == 4:
        h, w = int(x.dims[2] * scales[2]), int(x.dims[3] * scales[3])
    else:
        raise Unsupported("Resize without scales or sizes")
    fn = "bilinear" if mode == "linear" else "nearest"
    if h == x.dims[2] * (h // x.dims[2]) and h // x.dims[2] == w // x.dims[3] and \
            w == x.dims[3] * (w // x.dims[3]) and h >= x.dims[2]:
        layer = Upsample(scale=h // x.dims[2], mode=fn)
    else:
        layer = Upsample(size=(h, w), mode=fn)
    imp.place(node, layer, [x])


RULES: dict[str, Callable[[_Importer, NodeProto], None]] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "Relu": _act("relu"),
    "Clip": _clip,
    "HardSwish": _act("hswish"),
    "HardSigmoid": _act("hsigmoid"),
    "Sigmoid": _act("sigmoid"),
    "Gelu": _act("gelu"),
    "Tanh": _act("tanh"),
    "LeakyRelu": _act("leaky_relu"),
    "Mish": _act("mish"),
    "Softmax": _act("softmax"),
    "LogSoftmax": _act("softmax"),
    "Add": _add,
    "Sum": _add,
    "Mul": _mul,
    "Concat": _concat,
    "Split": _split,
    "Slice": _slice,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Flatten": _flatten,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "GlobalAveragePool": _global_pool("avg"),
    "GlobalMaxPool": _global_pool("max"),
    "ReduceMean": _reduce("avg"),
    "ReduceMax": _reduce("max"),
    "AveragePool": _pool("avg"),
    "MaxPool": _pool("max"),
    "Identity": _identity,
    "Gather": _gather,
    "Expand": _expand,
    "Dropout": _identity,
    "Cast": _identity,
    "Pad": _pad,
    "Resize": _resize,
    "Upsample": _resize,
}


# -- constants: evaluated, never counted ----------------------------------------------------

def readable(v: Const) -> bool:
    """Whether a constant's values are known or can be read (small tensors only)."""
    import numpy as np

    return v.value is not None or (v.proto is not None and int(np.prod(v.dims)) <= SMALL)


def _const_eval(fn: Callable[..., Any]) -> Callable[[_Importer, NodeProto], list[Value]]:
    """A rule computing an op's outputs from its constant inputs' values with numpy."""
    def rule(imp: _Importer, node: NodeProto) -> list[Value]:
        import numpy as np

        args = [imp.const_value(n, node) if n else None for n in node.input]
        try:
            out = fn(np, _attrs(node), imp.opset, *args)
        except (ValueError, TypeError, IndexError, ZeroDivisionError, MemoryError) as e:
            raise imp.fail(f"cannot evaluate on constants: {type(e).__name__}", node) \
                from None
        outs = out if isinstance(out, list) else [out]
        results: list[Value] = []
        for o in outs:
            arr = np.asarray(o)
            if arr.size > 1 << 20:
                raise imp.fail("constant arithmetic makes a tensor over 2^20 elements", node)
            results.append(Const(tuple(arr.shape), arr))
        return results
    return rule


def _shape(imp: _Importer, node: NodeProto) -> list[Value]:
    import numpy as np

    v = imp.values[node.input[0]]
    dims = v.act.dims if isinstance(v, Padded) else getattr(v, "dims", None)
    if dims is None or isinstance(v, Grouped):
        raise Unsupported("Shape of a regrouped tensor")
    a = _attrs(node)
    dims = dims[a.get("start", 0): a.get("end", len(dims))]
    return [Const((len(dims),), np.array(dims, dtype=np.int64))]


def _moved(fn: Callable[..., Any]) -> Callable[[_Importer, NodeProto], list[Value]]:
    """Identity, Cast or Transpose: evaluated on a small constant; on a weight whose
    values are not read (the dynamo exporter's transposed linear weights), dims only."""
    evaluate = _const_eval(fn)

    def rule(imp: _Importer, node: NodeProto) -> list[Value]:
        v = imp.values[node.input[0]]
        assert isinstance(v, Const)
        if readable(v):
            return evaluate(imp, node)
        perm = _attrs(node).get("perm") or list(reversed(range(len(v.dims))))
        dims = tuple(v.dims[p] for p in perm) if node.op_type == "Transpose" else v.dims
        return [Const(dims, None)]
    return rule


def _axes(a: dict, op: int, given: Any, key: str = "axes") -> list[int]:
    if given is not None:
        return [int(v) for v in given.reshape(-1)]
    return list(a.get(key, []))


def _slice_eval(np: Any, a: dict, op: int, x: Any, starts: Any = None, ends: Any = None,
                axes: Any = None, steps: Any = None) -> Any:
    if op < 10:
        starts, ends = np.array(a["starts"]), np.array(a["ends"])
        axes = np.array(a.get("axes", range(len(starts))))
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
        index[int(ax)] = slice(int(s), int(e), int(st))
    return x[tuple(index)]


def _div(np: Any, a: dict, op: int, x: Any, y: Any) -> Any:
    if np.issubdtype(np.asarray(x).dtype, np.integer):
        return (np.trunc(np.asarray(x) / np.asarray(y))).astype(np.asarray(x).dtype)
    return np.asarray(x) / y


_CAST: dict[int, str] = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64",
                         9: "bool", 10: "float16", 11: "float64"}

CONST_OPS: dict[str, Callable[[_Importer, NodeProto], list[Value]]] = {
    "Shape": _shape,
    "Identity": _moved(lambda np, a, op, x: x),
    "Cast": _moved(lambda np, a, op, x: np.asarray(x).astype(_CAST.get(a.get("to"), "float32"))),
    "Constant": _const_eval(lambda np, a, op: _constant(np, a)),
    "ConstantOfShape": _const_eval(lambda np, a, op, s: np.full(
        [int(v) for v in s.reshape(-1)], _constant(np, a) if a else 0.0)),
    "Gather": _const_eval(lambda np, a, op, x, i: np.take(x, i, axis=a.get("axis", 0))),
    "Unsqueeze": _const_eval(lambda np, a, op, x, ax=None: np.expand_dims(
        x, tuple(_axes(a, op, ax)))),
    "Squeeze": _const_eval(lambda np, a, op, x, ax=None: np.squeeze(
        x, tuple(_axes(a, op, ax))) if _axes(a, op, ax) else np.squeeze(x)),
    "Concat": _const_eval(lambda np, a, op, *xs: np.concatenate(
        [np.atleast_1d(x) for x in xs], axis=a.get("axis", 0))),
    "Slice": _const_eval(_slice_eval),
    "Reshape": _const_eval(lambda np, a, op, x, s: np.reshape(
        x, [x.shape[i] if v == 0 else int(v) for i, v in enumerate(s.reshape(-1))])),
    "Add": _const_eval(lambda np, a, op, x, y: np.asarray(x) + y),
    "Sub": _const_eval(lambda np, a, op, x, y: np.asarray(x) - y),
    "Mul": _const_eval(lambda np, a, op, x, y: np.asarray(x) * y),
    "Div": _const_eval(_div),
    "Neg": _const_eval(lambda np, a, op, x: -np.asarray(x)),
    "Floor": _const_eval(lambda np, a, op, x: np.floor(x)),
    "Ceil": _const_eval(lambda np, a, op, x: np.ceil(x)),
    "Sqrt": _const_eval(lambda np, a, op, x: np.sqrt(x)),
    "Min": _const_eval(lambda np, a, op, *xs: np.minimum.reduce(xs)),
    "Max": _const_eval(lambda np, a, op, *xs: np.maximum.reduce(xs)),
    "Equal": _const_eval(lambda np, a, op, x, y: np.equal(x, y)),
    "Where": _const_eval(lambda np, a, op, c, x, y: np.where(c, x, y)),
    "Range": _const_eval(lambda np, a, op, s, e, d: np.arange(s, e, d)),
    "Expand": _const_eval(lambda np, a, op, x, s: np.asarray(x) * np.ones(
        [int(v) for v in s.reshape(-1)], dtype=np.asarray(x).dtype)),
    "Transpose": _moved(lambda np, a, op, x: np.transpose(x, a.get("perm"))),
    "ReduceProd": _const_eval(lambda np, a, op, x, *r: np.prod(x)),
}


def _constant(np: Any, a: dict) -> Any:
    from onnx import numpy_helper

    if "value" in a:
        return numpy_helper.to_array(a["value"])
    for key in ("value_float", "value_int"):
        if key in a:
            return np.array(a[key])
    for key in ("value_floats", "value_ints"):
        if key in a:
            return np.array(a[key])
    raise ValueError("unsupported Constant")


def refuse_transforms(ref: str, **given: Any) -> None:
    """α, ρ and classes are transforms of a spec; a file's widths and size are as exported."""
    named = [f"--{k}" for k, v in given.items() if v is not None]
    if named:
        raise MacscalcError(f"{' and '.join(named)} cannot apply to an ONNX file: its widths "
                            f"and input size are as exported. Write a spec with 'macscalc import "
                            f"{short(ref, 64)} -o spec.yaml' and scale that", ref)


def read_network(path: str, allow_unknown: bool = False) -> Network:
    """The network in the ONNX file at ``path``, mapped onto macscalc's primitives."""
    model = load(path)
    return _Importer(model, path, allow_unknown).read()
