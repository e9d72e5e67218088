"""ONNX's protobuf read without the ``onnx`` package: the messages the reader uses.

``import onnx`` costs about 0.8 s (its ``ml_dtypes`` dependency), four times the rest of a
count, for a graph the reader only walks. So the wire format is decoded here, into light
objects with the field names of ``onnx.proto`` (``node.op_type``, ``tensor.dims``,
``model.graph.initializer``), and only the fields the reader uses; the rest is skipped.

A tensor's values are never decoded here: each value field is kept as its byte range in
the file, read by ``file.values`` only when a small constant is needed, so a 100 MB file
of weights costs its graph's bytes. The file is untrusted: every varint, length and wire
type is checked against the message it is in, every failure is a :class:`MacscalcError`
naming the file and the byte, and nothing recurses (control-flow subgraphs are skipped,
so nesting stops at model → graph → node → attribute → tensor → entry).
"""

from __future__ import annotations

import os
import struct
from typing import Any, ClassVar

from macscalc.core.errors import MacscalcError
from macscalc.core.limits import MAX_ONNX_ITEMS

EXTERNAL = 1  # TensorProto.DataLocation: the values are in an external-data file
DATA_TYPES = range(1, 29)  # TensorProto.DataType FLOAT (1) ... FLOAT6E3M2 (28), onnx 1.23
RAW, VALUE_FIELDS = 9, frozenset({4, 5, 6, 7, 9, 10, 11})  # TensorProto's value fields


class Source:
    """A file's bytes by index or slice, read with ``pread`` a block at a time: only the
    blocks holding protobuf headers and names are read (a memory map would also count
    the pages around every header as resident)."""

    BLOCK = 4096

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.block, self.data = -1, b""

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return os.pread(self.fd, key.stop - key.start, key.start)
        block = key // self.BLOCK
        if block != self.block:
            self.block, self.data = block, os.pread(self.fd, self.BLOCK, block * self.BLOCK)
        return self.data[key - block * self.BLOCK]


class Wire:
    """A cursor over protobuf wire format in ``buf[start:end]`` (bytes or a Source)."""

    __slots__ = ("buf", "pos", "end", "file", "base")

    def __init__(self, buf: Any, start: int, end: int, file: str, base: int = 0) -> None:
        self.buf, self.pos, self.end, self.file, self.base = buf, start, end, file, base

    def fail(self, what: str, at: int | None = None) -> MacscalcError:
        """A located error; ``base`` is where ``buf`` starts in the file."""
        return MacscalcError(f"not a readable ONNX model: {what} at byte "
                             f"{self.base + (self.pos if at is None else at)}", self.file)

    def varint(self) -> int:
        buf, pos, end = self.buf, self.pos, self.end
        value = shift = 0
        while True:
            if pos >= end or shift > 63:
                raise self.fail("truncated or malformed varint")
            b = buf[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                self.pos = pos
                return value & 0xFFFF_FFFF_FFFF_FFFF

    def field(self) -> tuple[int, int, int, int, int]:
        """(field number, wire type, field start, payload start, payload end); the cursor
        moves past the field. A varint field's payload is its value."""
        start = self.pos
        tag = self.varint()
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise self.fail("field number 0")
        if wire == 0:
            return number, wire, start, self.varint(), self.pos
        size = {1: 8, 5: 4}.get(wire)
        if wire == 2:
            size = self.varint()
        if size is None:
            raise self.fail(f"unsupported wire type {wire}")
        payload = self.pos
        self.pos += size
        if self.pos > self.end:
            raise self.fail("a field runs past the end (truncated file?)")
        return number, wire, start, payload, self.pos


def signed(v: int) -> int:
    """A varint as protobuf's int64 (and int32, sign-extended to 64 bits) reads it."""
    return v - (1 << 64) if v >= 1 << 63 else v


def varints(buf: Any, start: int, end: int, file: str, base: int = 0,
            most: int = MAX_ONNX_ITEMS + 1) -> list[int]:
    """The unsigned varints of a packed field, at most ``most`` of them."""
    w, out = Wire(buf, start, end, file, base), []
    while w.pos < w.end and len(out) < most:
        out.append(w.varint())
    return out


class Message:
    """A decoded message: ``FIELDS`` maps a field number to (attribute, kind); a kind is
    int, int32, enum, str, bytes, float, ints, floats, strs or bytes_list, a Message class,
    or a one-element list of one (repeated). Absent fields keep their defaults."""

    __slots__ = ()
    FIELDS: ClassVar[dict[int, tuple[str, Any]]] = {}
    ENUMS: ClassVar[dict[str, range]] = {}  # an unknown enum value reads as 0 (proto2)

    def __init__(self) -> None:
        for name, kind in self.FIELDS.values():
            if kind == "none" or hasattr(self, name):
                continue
            setattr(self, name, [] if isinstance(kind, list) or kind in _LISTS else
                    _DEFAULTS.get(kind))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({fields})"


_LISTS = frozenset({"ints", "floats", "strs", "bytes_list"})
_DEFAULTS = {"int": 0, "int32": 0, "enum": 0, "str": "", "bytes": b"", "float": 0.0}


class StringStringEntryProto(Message):
    """StringStringEntryProto: one key and value of a tensor's external data."""

    __slots__ = ("key", "value")
    FIELDS = {1: ("key", "str"), 2: ("value", "str")}


class TensorProto(Message):
    """TensorProto without its values: ``data`` lists each value field as (field number,
    wire type, payload start, payload end) in ``source``, read by ``file.values``."""

    __slots__ = ("dims", "data_type", "segment", "name", "external_data", "data_location",
                 "data", "source")
    FIELDS = {1: ("dims", "ints"), 2: ("data_type", "int32"), 3: ("segment", "present"),
              8: ("name", "str"), 13: ("external_data", [StringStringEntryProto]),
              14: ("data_location", "enum")}
    ENUMS = {"data_location": range(2)}

    def __init__(self) -> None:
        self.segment, self.data, self.source = False, [], None
        super().__init__()


class Dimension(Message):
    """TensorShapeProto.Dimension: ``dim_value`` None when the dim is symbolic (or unset)."""

    __slots__ = ("dim_value",)
    FIELDS = {1: ("dim_value", "int"), 2: ("dim_value", "none")}  # oneof: dim_param clears

    def __init__(self) -> None:
        self.dim_value = None
        super().__init__()


class TensorShapeProto(Message):
    __slots__ = ("dim",)
    FIELDS = {1: ("dim", [Dimension])}


class TypeTensor(Message):
    """TypeProto.Tensor: ``shape`` None when the file gives none."""

    __slots__ = ("elem_type", "shape")
    FIELDS = {1: ("elem_type", "int32"), 2: ("shape", TensorShapeProto)}


class TypeProto(Message):
    """TypeProto: ``tensor_type`` None for any other type (sequence, map, ...)."""

    __slots__ = ("tensor_type",)
    FIELDS = {1: ("tensor_type", TypeTensor), **{n: ("tensor_type", "none")
                                                  for n in (4, 5, 7, 8, 9)}}


class ValueInfoProto(Message):
    __slots__ = ("name", "type")
    FIELDS = {1: ("name", "str"), 2: ("type", TypeProto)}


class AttributeProto(Message):
    """AttributeProto; a GRAPH attribute's subgraph is skipped (control flow is refused)."""

    __slots__ = ("name", "f", "i", "s", "t", "floats", "ints", "strings", "type")
    FIELDS = {1: ("name", "str"), 2: ("f", "float"), 3: ("i", "int"), 4: ("s", "bytes"),
              5: ("t", TensorProto), 7: ("floats", "floats"), 8: ("ints", "ints"),
              9: ("strings", "bytes_list"), 20: ("type", "enum")}
    ENUMS = {"type": range(15)}


class NodeProto(Message):
    __slots__ = ("input", "output", "name", "op_type", "attribute", "domain")
    FIELDS = {1: ("input", "strs"), 2: ("output", "strs"), 3: ("name", "str"),
              4: ("op_type", "str"), 5: ("attribute", [AttributeProto]), 7: ("domain", "str")}


class GraphProto(Message):
    __slots__ = ("node", "name", "initializer", "input", "output", "value_info")
    FIELDS = {1: ("node", [NodeProto]), 2: ("name", "str"), 5: ("initializer", [TensorProto]),
              11: ("input", [ValueInfoProto]), 12: ("output", [ValueInfoProto]),
              13: ("value_info", [ValueInfoProto])}


class OperatorSetIdProto(Message):
    __slots__ = ("domain", "version")
    FIELDS = {1: ("domain", "str"), 2: ("version", "int")}


class ModelProto(Message):
    __slots__ = ("ir_version", "producer_name", "producer_version", "graph", "opset_import")
    FIELDS = {1: ("ir_version", "int"), 2: ("producer_name", "str"),
              3: ("producer_version", "str"), 7: ("graph", GraphProto),
              8: ("opset_import", [OperatorSetIdProto])}


_WIRES = {"int": (0,), "int32": (0,), "enum": (0,), "float": (5,), "ints": (0, 2),
          "floats": (5, 2), "present": (2,), "none": (0, 1, 2, 5)}
_DATA_WIRES = {4: (5, 2), 5: (0, 2), 6: (2,), 7: (0, 2), 9: (2,), 10: (1, 2), 11: (0, 2)}


class _Decoder:
    """Decoding ``buf`` (a file, or bytes read from it at ``base``), with the file's budget
    of items (messages and repeated values)."""

    CHUNK = 1 << 20  # a message this small is read in one go, not a block at a time...
    TENSOR_CHUNK = 1 << 16  # ...a tensor only if this small (16 bytes for 4,096 values)

    def __init__(self, buf: Any, file: str, base: int = 0, items: list[int] | None = None
                 ) -> None:
        self.buf, self.file, self.base = buf, file, base
        self.items = [0] if items is None else items

    def sub(self, cls: type[Message], w: Wire, at: int, start: int, end: int) -> Any:
        """A submessage: read into memory first when it is small and still in the file (a
        graph or a weight is walked in place, header by header; a node or a small tensor is
        one read)."""
        limit = self.TENSOR_CHUNK if cls is TensorProto else self.CHUNK
        if not isinstance(self.buf, Source) or end - start > limit:
            return self.message(cls, start, end)
        data = self.buf[start:end]
        if len(data) != end - start:
            raise w.fail("the file changed while it was read", at)
        return _Decoder(data, self.file, self.base + start, self.items).message(
            cls, 0, end - start)

    def message(self, cls: type[Message], start: int, end: int) -> Any:
        obj, buf = cls(), self.buf
        w = Wire(buf, start, end, self.file, self.base)
        fields, seen = cls.FIELDS, set()
        while w.pos < w.end:
            number, wire, at, payload, stop = w.field()
            if cls is TensorProto and number in VALUE_FIELDS:
                if wire not in _DATA_WIRES[number]:
                    raise w.fail(f"value field {number} of a tensor has wire type {wire}", at)
                self.count(1, w, at)
                obj.data.append((number, wire, payload, stop))
                obj.source = buf
                continue
            spec = fields.get(number)
            if spec is None:
                continue
            name, kind = spec
            if wire not in (_WIRES.get(kind, (2,)) if isinstance(kind, str) else (2,)):
                raise w.fail(f"field {number} of {cls.__name__} has wire type {wire}", at)
            if isinstance(kind, list):
                self.count(1, w, at)
                getattr(obj, name).append(self.sub(kind[0], w, at, payload, stop))
            elif isinstance(kind, type):
                if number in seen:  # protobuf would merge the two: never seen in an export
                    raise w.fail(f"field {number} of {cls.__name__} appears twice", at)
                seen.add(number)
                self.count(1, w, at)
                setattr(obj, name, self.sub(kind, w, at, payload, stop))
            else:
                self.scalar(obj, name, kind, w, wire, at, payload, stop)
        return obj

    def scalar(self, obj: Message, name: str, kind: str, w: Wire, wire: int, at: int,
               payload: int, stop: int) -> None:
        if kind == "int":
            setattr(obj, name, signed(payload))
        elif kind in ("int32", "enum"):
            v = (payload + (1 << 31)) % (1 << 32) - (1 << 31)  # protobuf keeps 32 bits
            setattr(obj, name, v if kind == "int32" or v in obj.ENUMS[name] else 0)
        elif kind in ("str", "bytes"):
            setattr(obj, name, self.text(w, at, payload, stop) if kind == "str"
                    else bytes(self.buf[payload:stop]))
        elif kind == "float":
            setattr(obj, name, struct.unpack("<f", bytes(self.buf[payload:stop]))[0])
        elif kind == "ints":
            new = [signed(payload)] if wire == 0 else [signed(v) for v in varints(
                self.buf, payload, stop, self.file, self.base, MAX_ONNX_ITEMS + 1 - self.items[0])]
            self.count(len(new), w, at)
            getattr(obj, name).extend(new)
        elif kind == "floats":
            raw = bytes(self.buf[payload:stop])
            if len(raw) % 4:
                raise w.fail(f"packed floats of {len(raw)} bytes", at)
            self.count(len(raw) // 4, w, at)
            getattr(obj, name).extend(struct.unpack(f"<{len(raw) // 4}f", raw))
        elif kind in ("strs", "bytes_list"):
            self.count(1, w, at)
            getattr(obj, name).append(self.text(w, at, payload, stop) if kind == "strs"
                                      else bytes(self.buf[payload:stop]))
        elif kind == "present":
            setattr(obj, name, True)
        else:  # "none": another member of a oneof was set, this one is cleared
            setattr(obj, name, None)

    def text(self, w: Wire, at: int, start: int, stop: int) -> str:
        try:
            return bytes(self.buf[start:stop]).decode("utf-8")
        except UnicodeDecodeError:
            raise w.fail("a name that is not UTF-8 text", at) from None

    def count(self, n: int, w: Wire, at: int) -> None:
        self.items[0] += n
        if self.items[0] > MAX_ONNX_ITEMS:
            raise w.fail(f"over {MAX_ONNX_ITEMS:,} nodes, tensors, attributes, dims and "
                         "other items, more than macscalc reads", at)


def decode(buf: Any, file: str) -> ModelProto:
    """The model in ``buf`` (bytes or a :class:`Source`), checked to be an ONNX model."""
    model = _Decoder(buf, file).message(ModelProto, 0, len(buf))
    if model.graph is None or not model.opset_import or model.ir_version <= 0:
        raise MacscalcError("not an ONNX model: no graph, opset or IR version", file)
    return model
