"""Token sequences and the layout operations between images and tokens.

A token tensor is ``Tokens(g, n, c)``: ``g`` independent sequences (1 for a plain ViT;
windows, patch positions or attention heads otherwise) of ``n`` tokens of ``c``
channels each. It is a ``Shape`` whose three axes are read as g × n × c, so every
count written for H×W×C stays exact (a ``linear`` or ``layernorm`` works per position
and per channel in both), while the type records the layout: spatial kinds (convs,
pools, resizes) refuse tokens with a located error, and ``to_image``/``window_merge``
say how the sequence maps back onto the image.

Layout changes here are free views (no MACs, no extra ops, no new tensor in the memory
model). Learnable tables (class tokens, positional embeddings, attention-bias tables)
cost parameters (the ``tables`` part) and their additions, never MACs.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import isqrt
from typing import ClassVar

from macscalc.core.errors import ShapeError
from macscalc.lang.layers import Formula, Layer, Params, Shape, primitive
from macscalc.lang.schema import CHOICE, NONNEG_INT, POS_INT, SIZE, ArgType, arg


class Tokens(Shape):
    """g sequences × n tokens × c channels (``Shape`` fields h, w, c hold g, n, c)."""

    __slots__ = ()

    @property
    def groups(self) -> int:
        return self.h

    @property
    def tokens(self) -> int:
        return self.w

    def __str__(self) -> str:
        return f"{self.w}×{self.c} tokens" if self.h == 1 else f"{self.h}×{self.w}×{self.c} tokens"


# Kinds that read an image's two spatial axes: given tokens they are an error.
SPATIAL_KINDS = frozenset({"conv2d", "depthwise", "pool", "adaptive_pool", "upsample",
                           "conv_transpose"})
# Layout changes: views, no new tensor (``analysis.memory``).
VIEW_KINDS = frozenset({"to_tokens", "to_image", "window_partition", "window_merge", "heads",
                        "merge_heads", "take_tokens", "reshape"})
# (``pad_channels`` writes a new tensor: it is not a view)


def layout_error(kind: str, ins: Sequence[Shape]) -> str | None:
    """Why ``kind`` cannot read ``ins`` (a spatial kind given tokens), or None."""
    if kind in SPATIAL_KINDS and any(isinstance(s, Tokens) for s in ins):
        return (f"{kind} needs an image (H×W×C), got {', '.join(map(str, ins))}; "
                "turn tokens back into an image first (to_image or window_merge)")
    return None


def _image(x: Shape, kind: str) -> Shape:
    if isinstance(x, Tokens):
        raise ShapeError(f"{kind} needs an image (H×W×C), got {x}")
    return x


def _tokens(x: Shape, kind: str) -> Tokens:
    if not isinstance(x, Tokens):
        raise ShapeError(f"{kind} needs tokens, got the image {x}; use to_tokens first")
    return x


def _square(n: int, what: str) -> int:
    side = isqrt(n)
    if side * side != n:
        raise ShapeError(f"{what}: {n} tokens are not a square grid; give size: [h, w]")
    return side


@primitive
class ToTokens(Layer):
    """An H×W×C image as one sequence of H·W tokens of C channels (``flatten(2)
    .transpose(1, 2)``); free."""

    kind: ClassVar[str] = "to_tokens"

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        x = _image(ins[0], self.kind)
        return Tokens(1, x.h * x.w, x.c)


@primitive
class ToImage(Layer):
    """One sequence of N tokens as an h×w×C image, h·w = N (square unless ``size``); free."""

    kind: ClassVar[str] = "to_image"
    size = arg(SIZE, None, doc="[h, w] of the image (default: a square)")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        x = _tokens(ins[0], self.kind)
        if x.groups != 1:
            raise ShapeError(f"to_image needs one sequence, got {x}; use window_merge for "
                             "windows")
        if self.size is None:
            side = _square(x.tokens, self.kind)
            return Shape(side, side, x.c)
        h, w = self.size
        if h * w != x.tokens:
            raise ShapeError(f"to_image size {h}×{w} holds {h * w} tokens, not {x.tokens}")
        return Shape(h, w, x.c)

    def detail(self) -> str:
        return f"→{self.size[0]}×{self.size[1]}" if self.size else ""


PARTITION = ArgType("'window' or 'grid'", CHOICE("window", "grid"))


@primitive
class WindowPartition(Layer):
    """An H×W×C image cut into (H/p)·(W/p) windows of p×p tokens (Swin, TinyViT,
    EfficientViT: ``mode: window``), or into p·p interleaved grids of (H/p)·(W/p) tokens
    (MobileViT's unfold, MaxViT's grid: ``mode: grid``); p must divide H and W. Free."""

    kind: ClassVar[str] = "window_partition"
    size = arg(POS_INT, doc="window (or patch) side p")
    mode = arg(PARTITION, "window", doc="window: p×p neighbours per sequence; grid: "
               "stride-p tokens per sequence")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        x = _image(ins[0], self.kind)
        p = self.size
        if x.h % p or x.w % p:
            raise ShapeError(f"a {p}×{p} {self.mode} does not tile the {x.h}×{x.w} image")
        cells, area = (x.h // p) * (x.w // p), p * p
        return Tokens(cells, area, x.c) if self.mode == "window" else Tokens(area, cells, x.c)

    def detail(self) -> str:
        return f"{self.mode} {self.size}×{self.size}"


@primitive
class WindowMerge(Layer):
    """The inverse of ``window_partition``: windows (or grids) of p×p back into the image
    (square unless ``size``); free."""

    kind: ClassVar[str] = "window_merge"
    size = arg(SIZE, None, doc="[h, w] of the image (default: a square)")
    mode = arg(PARTITION, "window", doc="how the image was partitioned")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        x = _tokens(ins[0], self.kind)
        total = x.groups * x.tokens
        area = x.tokens if self.mode == "window" else x.groups
        p = _square(area, f"{self.kind} ({self.mode} of {area} tokens)")
        if self.size is None:
            side = _square(total, self.kind)
            h, w = side, side
        else:
            h, w = self.size
        if h * w != total or h % p or w % p:
            raise ShapeError(f"{x} do not merge into a {h}×{w} image of {p}×{p} {self.mode}s")
        return Shape(h, w, x.c)


@primitive
class Heads(Layer):
    """Channels split into ``heads`` sequences each (g × n × h·d → g·h × n × d); free."""

    kind: ClassVar[str] = "heads"
    heads = arg(POS_INT, doc="number of heads")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        x = _tokens(ins[0], self.kind)
        if x.c % self.heads:
            raise ShapeError(f"{self.heads} heads do not divide the {x.c} channels")
        return Tokens(x.groups * self.heads, x.tokens, x.c // self.heads)

    def detail(self) -> str:
        return f"h{self.heads}"


@primitive
class MergeHeads(Layer):
    """The inverse of ``heads``: g·h × n × d → g × n × h·d; free."""

    kind: ClassVar[str] = "merge_heads"
    heads = arg(POS_INT, doc="number of heads")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        x = _tokens(ins[0], self.kind)
        if x.groups % self.heads:
            raise ShapeError(f"{self.heads} heads do not divide the {x.groups} sequences")
        return Tokens(x.groups // self.heads, x.tokens, x.c * self.heads)

    def detail(self) -> str:
        return f"h{self.heads}"


@primitive
class TakeTokens(Layer):
    """``tokens`` consecutive tokens of each sequence from token ``start``: the first
    (ViT's class-token head), the second (DeiT's distillation token), or every token
    after the class token (``x[:, 1:]``, a dense head's input); free."""

    kind: ClassVar[str] = "take_tokens"
    tokens = arg(POS_INT, 1, doc="tokens kept")
    start = arg(NONNEG_INT, 0, doc="the first token kept (0: from the first)")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        x = _tokens(ins[0], self.kind)
        if self.start + self.tokens > x.tokens:
            raise ShapeError(f"cannot take {self.tokens} tokens from token {self.start} of "
                             f"{x}")
        return Tokens(x.groups, self.tokens, x.c)

    def detail(self) -> str:
        return f"[{self.start}:{self.start + self.tokens}]"


LAYOUT = ArgType("'tokens' or 'image'", CHOICE("tokens", "image"))


@primitive
class Reshape(Layer):
    """Any reshape to ``shape`` [a, b, c] that keeps the element count (read as g × n × c
    tokens or h × w × c image, ``layout``); free. A count that differs is an error."""

    kind: ClassVar[str] = "reshape"
    shape = arg(ArgType("a list [a, b, c] of three positive integers",
                        lambda v: _three(v)), doc="the new shape")
    layout = arg(LAYOUT, "tokens", doc="tokens (g × n × c) or image (h × w × c)")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        out = (Tokens if self.layout == "tokens" else Shape)(*self.shape)
        if out.numel != ins[0].numel:
            raise ShapeError(f"cannot reshape {ins[0]} ({ins[0].numel:,} elements) to "
                             f"{'×'.join(map(str, self.shape))} ({out.numel:,} elements)")
        return out

    def detail(self) -> str:
        return "→" + "×".join(map(str, self.shape))


def _three(v: object) -> tuple[int, int, int]:
    if not isinstance(v, list) or len(v) != 3:
        raise ValueError
    return tuple(POS_INT(i) for i in v)  # type: ignore[return-value]


@primitive
class PadChannels(Layer):
    """``channels`` constant channels appended (linear attention's v padded with ones, so
    one product also gives the normalizer); free, a new tensor."""

    kind: ClassVar[str] = "pad_channels"
    channels = arg(POS_INT, 1, doc="constant channels appended")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        return ins[0]._replace(c=ins[0].c + self.channels)

    def detail(self) -> str:
        return f"+{self.channels}"


@primitive
class ClassToken(Layer):
    """Learnable tokens prepended to each sequence (ViT's class token, DeiT's distillation
    token): ``tokens``·c parameters, free to apply."""

    kind: ClassVar[str] = "class_token"
    tokens = arg(POS_INT, 1, doc="tokens prepended")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        x = _tokens(ins[0], self.kind)
        return Tokens(x.groups, x.tokens + self.tokens, x.c)

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params(tables=self.tokens * ins[0].c)

    def label(self, ins: Sequence[Shape]) -> str:
        return "learned table"

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        return {"params": ("tokens·c", f"{self.tokens}·{ins[0].c}")}


@primitive
class PosEmbed(Layer):
    """A learnable positional embedding of the input's own shape, added: one parameter and
    one add per element. Its size follows the input, as when a table is resized to a new
    resolution (timm interpolates it)."""

    kind: ClassVar[str] = "pos_embed"

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params(tables=ins[0].numel)

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {"add": out.numel}

    def label(self, ins: Sequence[Shape]) -> str:
        return "learned table"

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        n = "·".join(map(str, ins[0]))
        return {"params": ("numel", n), "add": ("numel", n)}


@primitive
class BiasTable(Layer):
    """A learnable table of ``entries`` values per sequence group of ``per`` (attention
    biases: one per head and relative offset, gathered and added to the scores): params
    ``entries``·g/``per``, one add per element."""

    kind: ClassVar[str] = "bias_table"
    entries = arg(POS_INT, doc="table entries per head")
    per = arg(POS_INT, 1, doc="sequences sharing one head's table (windows)")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        x = _tokens(ins[0], self.kind)
        if x.groups % self.per:
            raise ShapeError(f"per={self.per} does not divide the {x.groups} sequences")
        return x

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params(tables=self.entries * (ins[0].h // self.per))

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {"add": out.numel}

    def label(self, ins: Sequence[Shape]) -> str:
        return "learned table"

    def detail(self) -> str:
        return f"{self.entries}/head"
