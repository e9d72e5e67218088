"""TFLite subgraphs as macscalc networks: count the ``.tflite`` file you ship.

Each operator of the counted subgraph is mapped onto macscalc's own primitives
(``lang/layers.py``), as the ONNX reader maps nodes, so a ``.tflite`` file is counted,
tabulated, budgeted, compared and imported like a spec. TFLite is NHWC and every tensor
declares its shape, so each placed primitive's output is checked against the file. A
fused activation is its own primitive after the conv; a ``PAD`` folds into the conv or
pool that reads it; ``QUANTIZE``/``DEQUANTIZE`` and reshapes that keep the image are free;
``x · LOGISTIC(x)`` is swish. An operator with no rule is never counted as zero: it is an
error naming each unknown operator and its tensors, or with ``allow_unknown`` an
``unknown`` primitive that makes the report ``partial``.

Quantization is a fact of the file: the weights of every conv and FC are counted at their
stored type (int8, float16 behind a ``DEQUANTIZE``, float32), with their bytes from the
buffers, and the convention line says what the file held (:mod:`quant`).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from macscalc.core.errors import MacscalcError, ShapeError
from macscalc.core.limits import MAX_CHANNELS, MAX_SIZE
from macscalc.core.rounding import RULES as ROUNDING
from macscalc.lang.graph import Network, Node, Settings, unique_name
from macscalc.lang.layers import Activation, Layer, LayerNorm, Shape
from macscalc.lang.spec import Spec
from macscalc.models.onnx.file import short
from macscalc.models.onnx.values import Unknown, Unsupported, unknown_error
from macscalc.models.tflite.model import Graph, Model, Operator, Tensor, load
from macscalc.models.tflite.ops import RULES
from macscalc.models.tflite.quant import Stored
from macscalc.models.tflite.values import FUSED_ACT, Act, Const, Dead, Known, Value, image_shape


class Importer:
    """One walk over one subgraph, in the file's order (TFLite stores operators in
    execution order; a tensor read before it is written is an error)."""

    def __init__(self, model: Model, allow_unknown: bool, res: int | None = None) -> None:
        self.model = model
        self.res = res
        self.file = model.file
        self.allow_unknown = allow_unknown
        self.index = self._counted()
        self.graph: Graph = model.graphs[self.index]
        self.values: dict[int, Value] = {}
        self.nodes: list[Node] = []
        self.used: set[str] = {"input"}
        self.unknown: dict[str, list[str]] = {}
        self.stored = Stored(model, self.index)
        self.consumers: dict[int, list[int]] = {}
        self.swish: dict[int, int] = {}  # LOGISTIC operator → the MUL that makes it swish
        self.norms: dict[int, tuple[int, int]] = {}  # layer-norm operator → (input, output)

    def _counted(self) -> int:
        """The subgraph a runtime invokes: the first signature's, else subgraph 0."""
        return self.model.signatures[0].graph if self.model.signatures else 0

    def fail(self, message: str, op: Operator | None = None) -> MacscalcError:
        where = f"operator {op.index} ({op.op}): " if op else ""
        return MacscalcError(where + message, self.file)

    def unique(self, name: str) -> str:
        return unique_name(self.used, name or "op")

    # -- the walk ----------------------------------------------------------------------
    def read(self) -> Network:
        g = self.graph
        tensors = g.tensors
        for t in tensors:
            if self.model.stored(t):
                self.values[t.index] = Const(t)
        if len(g.inputs) != 1:
            raise self.fail(f"subgraph {self.index} has {len(g.inputs)} inputs; macscalc reads "
                            "networks with one image input")
        x = tensors[g.inputs[0]]
        if len(x.shape) != 4:
            raise self.fail(f"input {x.name!r} must be 1×H×W×C; got shape {list(x.shape)}")
        try:
            shape = image_shape(x)
        except ShapeError as e:
            raise self.fail(str(e)) from None
        if x.dynamic != (self.res is not None):
            raise self.fail(f"input {x.name!r} has a symbolic height and width: give the image "
                            "size with --res R" if x.dynamic else "--res applies only to a "
                            "model whose input size is symbolic; this one's is "
                            f"{shape.h}×{shape.w}. Write a spec with 'macscalc import' to "
                            "change it")
        if self.res is not None:
            shape = Shape(self.res, self.res, shape.c)
        if max(shape.h, shape.w) > MAX_SIZE or shape.c > MAX_CHANNELS:
            raise self.fail(f"input {x.name!r} of {shape} is past the limits ({MAX_SIZE:,} "
                            f"pixels, {MAX_CHANNELS:,} channels)")
        self.values[x.index] = Act("input", shape)
        for op in g.operators:
            for i in op.inputs:
                self.consumers.setdefault(i, []).append(op.index)
        self._find_swish()
        self._find_layernorms()
        for op in g.operators:
            self._operator(op)
        if self.unknown and not self.allow_unknown:
            raise unknown_error("TFLite", self.unknown, self.file)
        return self._network(shape)

    def _find_swish(self) -> None:
        ops = self.graph.operators
        for op in ops:
            if op.op != "LOGISTIC" or len(op.outputs) != 1:
                continue
            readers = self.consumers.get(op.outputs[0], [])
            if len(readers) == 1 and ops[readers[0]].op == "MUL" \
                    and set(ops[readers[0]].inputs) == {op.inputs[0], op.outputs[0]}:
                self.swish[op.index] = readers[0]

    def _find_layernorms(self) -> None:
        """Layer norm as the converter decomposes it: from a ``MEAN`` of x over its
        channels, the element-wise ops (``NEG``, ``SQUARED_DIFFERENCE``, ``MEAN``, ``ADD``
        ε, ``RSQRT``, products with γ, + β) that read only it, x and constants, up to the
        one tensor of x's shape that the rest of the graph reads."""
        ops, tensors = self.graph.operators, self.graph.tensors
        readers = self.consumers
        for op in ops:
            if op.op != "MEAN" or op.index in self.norms or not op.outputs:
                continue
            x = op.inputs[0]
            axes = self.model.ints(tensors[op.inputs[1]]) if len(op.inputs) > 1 else None
            rank = len(tensors[x].shape)
            if axes is None or rank not in (2, 4) or {a % rank for a in axes} != {rank - 1}:
                continue
            members, derived = [op.index], set(op.outputs)
            for later in ops[op.index + 1:]:
                if not derived & set(later.inputs):
                    continue
                if later.op not in NORM_OPS or not all(
                        i in derived or i == x or isinstance(self.values.get(i), Const)
                        for i in later.inputs if i >= 0):
                    break
                members.append(later.index)
                derived.update(later.outputs)
            member_set = set(members)
            exits = [t for t in derived if any(r not in member_set for r in readers.get(t, []))
                     or t in self.graph.outputs]
            if len(exits) == 1 and tensors[exits[0]].shape == tensors[x].shape and \
                    "RSQRT" in {ops[i].op for i in members}:
                for i in members:
                    self.norms[i] = (x, exits[0])

    def _network(self, x: Shape) -> Network:
        if not self.nodes:
            raise MacscalcError("the subgraph has no layer macscalc can count", self.file)
        out = self.graph.tensors[self.graph.outputs[0]] if self.graph.outputs else None
        try:
            classes = image_shape(out).c if out is not None else self.nodes[-1].out.c
        except ShapeError:
            classes = self.nodes[-1].out.c
        stem = short(Path(self.file).stem, 64)
        m = self.model
        extra = [f"{short(g.name or str(k))!r} ({len(g.operators)} operators)"
                 for k, g in enumerate(m.graphs) if k != self.index]
        sigs = ", ".join(f"{s.key!r} → subgraph {s.graph}" for s in m.signatures) or "none"
        held = (f"subgraph {self.index} of {len(m.graphs)} counted"
                + (f" (not counted: {', '.join(extra[:5])})" if extra else "")
                + f"; signatures: {sigs}")
        source = f"TFLite file {Path(self.file).name} (schema {m.version}" \
                 f"{', ' + m.description if m.description else ''})"
        spec = Spec(name=stem, title=f"{stem} (TFLite)", source=source, file=self.file,
                    size=(x.h, x.w), channels=x.c, classes=classes,
                    rounding=ROUNDING["make_divisible_8"], rows=(),
                    notes=f"TFLite file: {held}")
        origin = (f"read from TFLite as stored (widths, sizes, parameters); {held}; "
                  f"{self.stored.text()}; BN, if the model had any, was folded into the conv "
                  "biases by the converter; α and ρ do not apply to a file (macscalc import "
                  "writes a spec they apply to)")
        settings = Settings(Fraction(1), spec.size, classes)
        return Network(spec, settings, x, tuple(self.nodes), origin, self.stored.data())

    # -- values ------------------------------------------------------------------------
    def tensor(self, op: Operator, k: int) -> Tensor:
        if k >= len(op.inputs) or op.inputs[k] < 0:
            raise Unsupported(f"{op.op} without input {k}")
        return self.graph.tensors[op.inputs[k]]

    def act(self, op: Operator, k: int = 0) -> Act:
        v = self.values.get(op.inputs[k]) if k < len(op.inputs) else None
        if isinstance(v, Act):
            return v
        raise Unsupported(f"{op.op} of a {'constant' if isinstance(v, Const) else 'padded'} "
                          "input" if v is not None else f"{op.op} without input {k}")

    def const(self, op: Operator, k: int) -> Tensor | None:
        """The stored tensor behind input ``k`` when it is a constant, else None."""
        v = self.values.get(op.inputs[k]) if k < len(op.inputs) and op.inputs[k] >= 0 else None
        return v.tensor if isinstance(v, Const) else None

    def ints(self, op: Operator, k: int) -> list[int]:
        t = self.const(op, k)
        values = self.model.ints(t) if t is not None else None
        if values is None:
            raise Unsupported(f"{op.op} with a computed or non-integer input {k}")
        return values

    def out(self, op: Operator, k: int = 0) -> Tensor:
        return self.graph.tensors[op.outputs[k]]

    # -- placing primitives --------------------------------------------------------------
    def name(self, op: Operator) -> str:
        """A readable name from the output tensor's: the converter's first path
        (``model/block_1_expand/Relu6;model/...`` → ``block_1_expand``)."""
        text = self.out(op).name.removeprefix("serving_default_").split(":")[0]
        parts = [p for p in text.split("/") if p]
        if len(parts) > 2:
            parts = parts[1:-1]
        return short("/".join(parts) or op.op.lower(), 64)

    def place(self, op: Operator, layer: Layer, ins: list[Act], name: str | None = None,
              check: bool = True) -> Act:
        shapes = tuple(a.shape for a in ins)
        label = self.unique(name or self.name(op))
        try:
            layer = layer.resolve(shapes)
            s = layer.out_shape(shapes)
        except ShapeError as e:
            raise self.fail(str(e), op) from None
        if min(s) <= 0:
            raise self.fail(f"makes an empty tensor {s}", op)
        if check:
            self._check(op, s)
        self.nodes.append(Node(name=label, layer=layer, inputs=tuple(a.ref for a in ins),
                               in_shapes=shapes, out=s, block=label, block_kind=op.op,
                               role=None))
        return Act(label, s)

    def declared(self, op: Operator, k: int = 0) -> Shape | None:
        """The image shape the file declares for output ``k``; None where it is symbolic
        (the size then comes from --res through the layers)."""
        t = self.out(op, k)
        if t.dynamic:
            return None
        try:
            return image_shape(t)
        except ShapeError as e:
            raise self.fail(str(e), op) from None

    def _check(self, op: Operator, s: Shape) -> None:
        t = self.out(op)
        want = self.declared(op)
        if want is not None and want != s:
            raise self.fail(f"the file declares output {list(t.shape)}, macscalc computes "
                            f"{s}", op)

    def finish(self, op: Operator, a: Act, fused: int = 0) -> None:
        """Set the operator's output, after its fused activation (a primitive of its own)."""
        if fused not in FUSED_ACT:
            raise Unsupported(f"{op.op} with fused activation {fused}")
        fn = FUSED_ACT[fused]
        if fn is not None:
            a = self.place(op, Activation(fn=fn), [a], name=f"{a.ref}/{fn}")
        self.values[op.outputs[0]] = a

    def alias(self, op: Operator, a: Act) -> None:
        """An output that is its input under another name or type: counts nothing."""
        self._check(op, a.shape)
        self.values[op.outputs[0]] = a

    # -- one operator ----------------------------------------------------------------------
    def _operator(self, op: Operator) -> None:
        if not op.outputs:
            raise self.fail("the operator writes no tensor", op)
        if op.index in self.norms:
            self._layernorm(op)
            return
        ins = [self.values.get(i) for i in op.inputs if i >= 0]
        if any(isinstance(v, Dead) for v in ins):
            if op.op not in RULES:
                self._unknown(op, op.op, record_only=True)
            self._kill(op)
            return
        if any(i >= 0 and i not in self.values for i in op.inputs):
            raise self.fail("reads a tensor no earlier operator writes and the file holds no "
                            "data for", op)
        if op.op == "SHAPE" or (op.op in SHAPE_OPS and all(isinstance(v, Const | Known)
                                                               for v in ins)):
            for o in op.outputs:
                self.values[o] = Known()
            return
        try:
            if op.op not in RULES:
                raise Unsupported(op.op)
            RULES[op.op](self, op)
        except Unsupported as e:
            self._unknown(op, e.label)
        except ShapeError as e:
            raise self.fail(str(e), op) from None
        except MALFORMED as e:
            raise self.fail(f"the operator does not fit {op.op} (its inputs, options or "
                            f"weight shapes are malformed: {type(e).__name__})", op) from None

    def _layernorm(self, op: Operator) -> None:
        """A member of a decomposed layer norm: the one that writes its output places a
        ``layernorm`` on its input; the others count nothing."""
        x, out = self.norms[op.index]
        if out not in op.outputs:
            return
        v = self.values.get(x)
        if not isinstance(v, Act):
            self._unknown(op, "layer norm of a non-image input")
            return
        a = self.place(op, LayerNorm(), [v])
        self.values[out] = a

    def _kill(self, op: Operator) -> None:
        for o in op.outputs:
            self.values[o] = Dead()

    def _unknown(self, op: Operator, label: str, record_only: bool = False) -> None:
        self.unknown.setdefault(label, []).append(self.name(op))
        if record_only or not self.allow_unknown:
            self._kill(op)
            return
        acts = [v for i in op.inputs if i >= 0 and isinstance(v := self.values.get(i), Act)]
        if not acts:
            raise self.fail(f"{label} cannot be counted as unknown: it reads no image tensor",
                            op)
        s = self.declared(op)
        if s is None:
            raise self.fail(f"{label} cannot be counted as unknown: its output size is "
                            "symbolic", op)
        a = self.place(op, Unknown(op=label, h=s.h, w=s.w, c=s.c), acts)
        self.values[op.outputs[0]] = a
        for o in op.outputs[1:]:
            self.values[o] = Dead()


# Operators that only compute shapes when every input is a constant or a shape
SHAPE_OPS = frozenset({"STRIDED_SLICE", "SLICE", "PACK", "UNPACK", "CONCATENATION", "GATHER",
                       "CAST", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "ADD", "SUB", "MUL", "DIV",
                       "FLOOR_DIV", "FILL", "RANGE", "REDUCE_PROD"})

# Operators of a layer norm as the converter decomposes it
NORM_OPS = frozenset({"MEAN", "NEG", "SQUARED_DIFFERENCE", "ADD", "SUB", "MUL", "DIV", "RSQRT",
                      "SQRT"})

# What a rule raises on an operator that does not fit its definition (a short input
# list, a zero stride, missing options).
MALFORMED = (IndexError, KeyError, ValueError, TypeError, ZeroDivisionError, OverflowError,
             AttributeError)


def read_network(path: str, allow_unknown: bool = False, res: int | None = None) -> Network:
    """The network in the ``.tflite`` file at ``path``, mapped onto macscalc's primitives;
    ``res`` sizes an input whose height and width are symbolic in the file."""
    return Importer(load(path), allow_unknown, res).read()
