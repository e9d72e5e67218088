"""Patterns: several ONNX nodes that are one macscalc primitive.

Found before the walk from the graph's structure and its literal constants; each is
placed at its last node: x·Sigmoid(x) (swish), x·HardSigmoid(x) and relu6(x + 3)/6
forms (hard-swish, hard-sigmoid), the Erf formula of GELU, the ReduceMean/Sub/Pow/Sqrt/
Div formula of layer norm, MatMul + Add of a bias (one linear layer), ConvNeXt-V2's
global response norm (ReduceL2 or Sqrt(ReduceSum(x²)), its channel mean, x·n, γ, β, + x),
group norm as the torch exporters write it below opset 21 (InstanceNormalization of the
channels regrouped, then γ, β), an attention-bias table gathered by a constant index and
added to the scores.
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod
from typing import TYPE_CHECKING, Any

from macscalc.core.errors import MacscalcError
from macscalc.core.limits import MAX_RANK
from macscalc.lang.layers import Activation, LayerNorm, Linear
from macscalc.lang.norms import GlobalResponseNorm, GroupNorm
from macscalc.lang.tokens import BiasTable
from macscalc.models.onnx.file import array, values
from macscalc.models.onnx.ops import CONST_OPS, matmul_out, per_channel, reshape_target
from macscalc.models.onnx.proto import EXTERNAL
from macscalc.models.onnx.tokens_ops import place_tokens
from macscalc.models.onnx.values import Act, Const, Fused, Unsupported, attrs, sanitize

if TYPE_CHECKING:
    from macscalc.models.onnx.context import Importer
    from macscalc.models.onnx.proto import NodeProto


class Patterns:
    """Finds the multi-node patterns before the walk, from the graph's structure and its
    literal constants (initializers and Constant nodes)."""

    def __init__(self, imp: Importer) -> None:
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
        out: dict[str, float] = {}
        for name, v in self.imp.values.items():
            if isinstance(v, Const) and v.proto is not None and prod(v.dims) == 1:
                try:
                    out[name] = float(values(v.proto, self.imp.base, self.imp.file).reshape(-1)[0])
                except MacscalcError:
                    continue
        for node in self.order:
            if node.op_type == "Constant" and node.output:
                a = node.attribute[0] if node.attribute else None
                if a is None:
                    continue
                if a.name == "value" and a.t and _literal(a.t):
                    try:
                        out[node.output[0]] = float(array(a.t).reshape(-1)[0])
                    except (ValueError, TypeError):  # an unreadable literal matches nothing
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
                     "Clip": self._hard, "ReduceL2": self._grn, "Sqrt": self._grn,
                     "InstanceNormalization": self._groupnorm,
                     "Gather": self._bias_table}.get(node.op_type)
            try:
                f = match(i) if match else None
            except (IndexError, KeyError, ValueError, TypeError):
                f = None  # a malformed node is no pattern; the walk reports it
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
        a_clip = attrs(clip)
        lo = clip.input[1] if len(clip.input) > 1 else ""
        hi = clip.input[2] if len(clip.input) > 2 else ""
        if not ((self.lit(lo, 0.0) and self.lit(hi, 6.0))
                or (a_clip.get("min") == 0.0 and a_clip.get("max") == 6.0)):
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

    def _l2(self, i: int) -> tuple[str, list[int]] | None:
        """The L2 norm ending at node ``i``: its input and nodes. ``ReduceL2(x)`` as torch
        exports ``x.norm(p=2)``, or ``Sqrt`` of ``ReduceSum`` of x², the square written as
        ``Pow(x, 2)`` or ``x·x``, or of ``ReduceSumSquare(x)`` (a norm spelled out)."""
        node = self.order[i]
        if node.op_type == "ReduceL2":
            return node.input[0], [i]
        total = self.imp.producer.get(node.input[0])
        if total is None or total in self.taken \
                or self.only(node.input[0], "Sqrt") != i:
            return None
        if self.order[total].op_type == "ReduceSumSquare":
            return self.order[total].input[0], [total, i]
        square = self.imp.producer.get(self.order[total].input[0])
        if self.order[total].op_type != "ReduceSum" or square is None or square in self.taken \
                or self.only(self.order[total].input[0], "ReduceSum") != total:
            return None
        sq = self.order[square]
        if (sq.op_type == "Pow" and self.lit(sq.input[1], 2.0)) \
                or (sq.op_type == "Mul" and sq.input[0] == sq.input[1]):
            return sq.input[0], [square, total, i]
        return None

    def _grn(self, i: int) -> Fused | None:
        """ConvNeXt-V2's global response norm (timm ``GlobalResponseNorm``): g = ‖x‖₂ over
        the positions, n = g / (mean of g over channels + ε), then x + (β + γ·(x·n))."""
        l2 = self._l2(i)
        if l2 is None:
            return None
        x, norm = l2
        g = self.order[i].output[0]
        users = self.imp.consumers.get(g, [])
        mean = next((u for u in users if u >= 0 and self.order[u].op_type == "ReduceMean"),
                    None)
        div = next((u for u in users if u >= 0 and self.order[u].op_type == "Div"), None)
        if len(users) != 2 or mean is None or div is None or self.order[div].input[0] != g:
            return None
        eps = self.only(self.order[mean].output[0], "Add")
        if eps is None or self.only(self.order[eps].output[0], "Div") != div:
            return None
        nodes, cur = [mean, eps, div], self.order[div].output[0]
        for op, want in (("Mul", x), ("Mul", "const"), ("Add", "const"), ("Add", x)):
            j = self.only(cur, op)
            o = self.other(j, cur) if j is not None else None
            if j is None or o is None or (o != want if want == x else not self.is_const(o)):
                return None
            nodes.append(j)
            cur = self.order[j].output[0]
        extra = tuple(self.other(j, self.order[k].output[0]) or ""
                      for j, k in ((nodes[4], nodes[3]), (nodes[5], nodes[4])))
        return self._fused("grn", x, [*norm, *nodes], extra)

    def _groupnorm(self, i: int) -> Fused | None:
        """torch's GroupNorm below opset 21, as both exporters write it: Reshape to
        (N, G, -1), InstanceNormalization (scale 1, shift 0 per group), Reshape back,
        Mul by γ, Add β. The extras: the instance norm's scale and shift, then γ and β."""
        norm = self.order[i]
        r1 = self.imp.producer.get(norm.input[0])
        if r1 is None or r1 in self.taken or self.order[r1].op_type != "Reshape" \
                or self.only(norm.input[0], "InstanceNormalization") != i \
                or not all(map(self.is_const, norm.input[1:3])):
            return None
        r2 = self.only(norm.output[0], "Reshape")
        mul = self.only(self.order[r2].output[0], "Mul") if r2 is not None else None
        add = self.only(self.order[mul].output[0], "Add") if mul is not None else None
        if add is None:
            return None
        gamma = self.other(mul, self.order[r2].output[0]) or ""
        beta = self.other(add, self.order[mul].output[0]) or ""
        if not (self.is_const(gamma) and self.is_const(beta)):
            return None
        return self._fused("groupnorm", self.order[r1].input[0], [r1, i, r2, mul, add],
                           (*norm.input[1:3], gamma, beta))

    def _bias_table(self, i: int) -> Fused | None:
        """timm's ``attention_biases[:, attention_bias_idxs]`` (LeViT, EfficientFormer,
        TinyViT, EfficientViT-M): Gather along axis 1 of a constant (heads, entries) table
        by a constant index, added to the scores. Evaluated as constants, the table would
        read as a positional table of the scores' size."""
        gather = self.order[i]
        if len(gather.input) != 2 or not all(map(self.is_const, gather.input)) \
                or int(attrs(gather).get("axis", 0)) != 1:
            return None
        add = self.only(gather.output[0], "Add")
        x = self.other(add, gather.output[0]) if add is not None else None
        if add is None or x is None or self.is_const(x):
            return None
        return self._fused("bias_table", x, [i, add], tuple(gather.input))

    def _weight(self, name: str) -> bool:
        """A constant, possibly through a Transpose (the dynamo exporter's linear)."""
        if self.is_const(name):
            return True
        p = self.imp.producer.get(name)
        return p is not None and self.order[p].op_type == "Transpose" \
            and self.is_const(self.order[p].input[0])


def _fuse_act(fn: str) -> Callable[[Importer, Fused, NodeProto, Act], None]:
    def place(imp: Importer, f: Fused, node: NodeProto, x: Act) -> None:
        name = sanitize(node.name, node.op_type, module=True) or None
        imp.place(node, Activation(fn=fn), [x], name=name, out=f.out)

    return place


def _fuse_layernorm(imp: Importer, f: Fused, node: NodeProto, x: Act) -> None:
    first = imp.order[f.nodes[0]]
    axes = imp.ints(first, 1, "axes") or []
    rank = len(x.dims)
    if [a % rank for a in axes] != [x.ch]:
        raise Unsupported("ReduceMean over a non-channel axis")
    for e in f.extra:
        v = imp.values.get(e)
        if not isinstance(v, Const) or prod(v.dims) != x.shape.c:
            raise Unsupported("layer norm with a scale or shift not of one per channel")
    imp.place(node, LayerNorm(), [x], name=sanitize(node.name, "", module=True) or None,
              out=f.out)


def _fuse_grn(imp: Importer, f: Fused, node: NodeProto, x: Act) -> None:
    first = next(imp.order[i] for i in f.nodes
                 if imp.order[i].op_type in ("ReduceL2", "ReduceSum", "ReduceSumSquare"))
    rank = len(x.dims)
    axes = {a % rank for a in imp.ints(first, 1, "axes") or []}
    if axes != {i for i in range(1, rank) if i != x.ch} or not axes:
        raise Unsupported(f"{first.op_type} over axes other than the positions")
    for e in f.extra:
        v = imp.values.get(e)
        if not isinstance(v, Const) or prod(v.dims) != x.shape.c:
            raise Unsupported("GRN with a scale or shift not of one per channel")
    imp.place(node, GlobalResponseNorm(), [x],
              name=sanitize(first.name, "", module=True) or None, out=f.out)


def _fuse_groupnorm(imp: Importer, f: Fused, node: NodeProto, x: Act) -> None:
    import numpy as np

    regroup, back = imp.order[f.nodes[0]], imp.order[f.nodes[2]]
    if x.ch != 1 or len(x.dims) < 3:
        raise Unsupported("InstanceNormalization of regrouped channels not on axis 1")
    c = x.dims[1]
    grouped = reshape_target(imp, regroup, x)  # (1, G, C/G·H·W)
    groups = grouped[1] if len(grouped) == 3 else 0
    restored = [int(v) for v in imp.const_value(back.input[1], node).reshape(-1)]
    if not 0 < groups <= c or c % groups or tuple(restored[1:]) != x.dims[1:]:
        raise Unsupported("InstanceNormalization of channels not regrouped as GroupNorm's")
    scale, shift = (imp.const_value(e, node) for e in f.extra[:2])
    if np.asarray(scale).size != groups or not np.all(np.asarray(scale) == 1) \
            or not np.all(np.asarray(shift) == 0):
        raise Unsupported("InstanceNormalization of regrouped channels with a learned scale")
    for e in f.extra[2:]:
        v = imp.values.get(e)
        if not isinstance(v, Const) or not per_channel(v, x):
            raise Unsupported("group norm with a scale or shift not of one per channel")
    imp.place(node, GroupNorm(groups=groups), [x],
              name=sanitize(regroup.name, "Reshape", module=True) or None, out=f.out)


def _fuse_linear(imp: Importer, f: Fused, node: NodeProto, x: Act) -> None:
    mm = imp.order[f.nodes[0]]
    w = imp.values.get(f.extra[0])
    b = imp.values.get(f.extra[1])
    if not isinstance(w, Const) or not isinstance(b, Const):
        raise Unsupported("MatMul by a computed tensor")
    out = matmul_out(x, w)
    if prod(b.dims) != out:
        raise Unsupported("Add after MatMul of a tensor that is not a bias")
    name = sanitize(mm.name, mm.op_type) or None
    imp.place(node, Linear(c=out, bias=True), [x], name=name, out=f.out)


def _fuse_bias_table(imp: Importer, f: Fused, node: NodeProto, x: Act) -> None:
    table, index = (imp.values.get(e) for e in f.extra)
    if not isinstance(table, Const) or not isinstance(index, Const) or len(table.dims) != 2 \
            or min(table.dims) < 1 or len(x.dims) < 3 or index.dims != x.dims[-2:] \
            or x.dims[-3] != table.dims[0]:
        raise Unsupported("Gather of a table that is no attention bias of these scores")
    heads, entries = table.dims
    sequences = prod(x.dims[:-2])
    place_tokens(imp, node, BiasTable(entries=entries, per=sequences // heads), [x], x.dims)


FUSED: dict[str, Callable[[Importer, Fused, NodeProto, Act], None]] = {
    "swish": _fuse_act("swish"),
    "hswish": _fuse_act("hswish"),
    "hsigmoid": _fuse_act("hsigmoid"),
    "gelu": _fuse_act("gelu"),
    "layernorm": _fuse_layernorm,
    "linear": _fuse_linear,
    "grn": _fuse_grn,
    "groupnorm": _fuse_groupnorm,
    "bias_table": _fuse_bias_table,
}


def _literal(t: Any) -> bool:
    """Whether a Constant's tensor is one value held in the file itself: external data is
    read only by ``file.values``, from the model's folder."""
    return t.data_location != EXTERNAL and len(t.dims) <= MAX_RANK and all(
        d == 1 for d in t.dims)
