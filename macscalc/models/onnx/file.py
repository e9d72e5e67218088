"""Reading an ONNX file without its weights.

A network's counts need every tensor's dims but the values of only a few small
constants (reshape targets, clip bounds, split sizes). So the file's protobuf wire
format is walked, reading only field headers: each initializer keeps its dims, type and name, and
its data is dropped unless it is small; only what is left is parsed by ``onnx``. A
100 MB file of embedded weights then costs about as much memory as its graph, and
weights in external-data files are never opened (their sizes come from the dims).

The file is untrusted: every failure is a :class:`MacscalcError` naming the file and
the byte offset, never a traceback, and nothing from it is echoed but short names.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from macscalc.core.errors import MacscalcError
from macscalc.core.files import inside

if TYPE_CHECKING:
    import numpy as np
    from onnx import ModelProto, TensorProto

INSTALL_HINT = "reading ONNX needs the onnx extra: pip install 'macscalc[onnx]'"
SMALL = 4096  # elements: an initializer this small keeps its values (shape arithmetic)
_GRAPH = 7  # ModelProto.graph
_INITIALIZER = 5  # GraphProto.initializer
_DIMS = 1  # TensorProto.dims
_DATA_FIELDS = frozenset({4, 5, 6, 7, 9, 10, 11})  # TensorProto's value fields


def short(name: str, limit: int = 48) -> str:
    """A name from the file made safe to print: odd characters replaced, cut short."""
    clean = re.sub(r"[^A-Za-z0-9_.:/\-]", "_", name)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def require_onnx() -> Any:
    """The ``onnx`` module, or the install hint as a user error."""
    try:
        import onnx
    except ImportError:
        raise MacscalcError(INSTALL_HINT) from None
    return onnx


class _Reader:
    """Bytes of a file by index or slice, read with ``pread`` a block at a time: only the
    blocks holding protobuf headers are ever read (a memory map would count the pages
    around every header as resident)."""

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


class _Wire:
    """A cursor over protobuf wire format in ``buf[start:end]``."""

    def __init__(self, buf: Any, start: int, end: int, file: str) -> None:
        self.buf, self.pos, self.end, self.file = buf, start, end, file

    def fail(self, what: str) -> MacscalcError:
        return MacscalcError(f"not a readable ONNX model: {what} at byte {self.pos}", self.file)

    def varint(self) -> int:
        value = shift = 0
        while True:
            if self.pos >= self.end or shift > 63:
                raise self.fail("truncated or malformed varint")
            b = self.buf[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value

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


def _numel(buf: Any, start: int, end: int, file: str) -> int:
    """Elements of a serialized TensorProto from its dims (packed or not), counted only up
    to ``SMALL + 1``: a tensor of a million dims costs no big-number arithmetic."""
    w = _Wire(buf, start, end, file)
    n = 1
    while w.pos < w.end:
        number, wire, _, payload, stop = w.field()
        if number != _DIMS:
            continue
        if wire == 0:
            n = min(n * payload, SMALL + 1)
        else:
            inner = _Wire(buf, payload, stop, file)
            while inner.pos < inner.end:
                n = min(n * inner.varint(), SMALL + 1)
    return n


def _stripped_tensor(buf: Any, start: int, end: int, file: str) -> bytes:
    """A TensorProto without its values when it has more than ``SMALL`` elements."""
    if _numel(buf, start, end, file) <= SMALL:
        return bytes(buf[start:end])
    w = _Wire(buf, start, end, file)
    parts = []
    while w.pos < w.end:
        number, _, field_start, _, stop = w.field()
        if number not in _DATA_FIELDS:
            parts.append(buf[field_start:stop])
    return b"".join(parts)


def _varint_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _stripped_graph(buf: Any, start: int, end: int, file: str) -> bytes:
    w = _Wire(buf, start, end, file)
    parts = []
    while w.pos < w.end:
        number, wire, field_start, payload, stop = w.field()
        if number == _INITIALIZER and wire == 2:
            tensor = _stripped_tensor(buf, payload, stop, file)
            parts += [bytes([(_INITIALIZER << 3) | 2]), _varint_bytes(len(tensor)), tensor]
        else:
            parts.append(buf[field_start:stop])
    return b"".join(parts)


def strip_weights(buf: Any, file: str) -> bytes:
    """The serialized model with every large initializer's values left out."""
    w = _Wire(buf, 0, len(buf), file)
    parts = []
    while w.pos < w.end:
        number, wire, field_start, payload, stop = w.field()
        if number == _GRAPH and wire == 2:
            graph = _stripped_graph(buf, payload, stop, file)
            parts += [bytes([(_GRAPH << 3) | 2]), _varint_bytes(len(graph)), graph]
        else:
            parts.append(buf[field_start:stop])
    return b"".join(parts)


def load(path: str) -> ModelProto:
    """The model at ``path`` with large initializers' values left out (see the module)."""
    onnx = require_onnx()
    from google.protobuf.message import DecodeError

    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise MacscalcError("not an ONNX model: the file is empty", path)
            data = strip_weights(_Reader(f.fileno(), size), path)
    except OSError as e:
        raise MacscalcError(f"cannot read ONNX file: {e.strerror}", path) from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError):
        raise MacscalcError("not an ONNX model: its protobuf does not parse", path) from None
    if not model.HasField("graph") or not model.opset_import or model.ir_version <= 0:
        raise MacscalcError("not an ONNX model: no graph, opset or IR version", path)
    return model


def has_values(t: TensorProto) -> bool:
    """Whether a tensor kept its values (small, or stored in an external file)."""
    from onnx import TensorProto

    return (t.data_location == TensorProto.EXTERNAL or bool(t.raw_data) or any(
        len(getattr(t, f)) for f in ("float_data", "int32_data", "int64_data", "double_data",
                                     "uint64_data", "string_data"))
            or 0 in t.dims)


def values(t: TensorProto, base: Path, file: str) -> np.ndarray:
    """A small tensor's values; external data is read only here, when needed."""
    from onnx import TensorProto, numpy_helper

    name = short(t.name)
    if t.data_location == TensorProto.EXTERNAL:
        return _external(t, base, file)
    try:
        return numpy_helper.to_array(t)
    except Exception as e:  # noqa: BLE001 - any failure of untrusted data is a user error
        raise MacscalcError(f"tensor {name!r}: cannot read its values "
                            f"({type(e).__name__})", file) from None


def _external(t: TensorProto, base: Path, file: str) -> np.ndarray:
    """A small tensor's values from its external-data file: a regular file inside the
    model's folder (links followed, none leading out), exactly the declared bytes read."""
    import numpy as np
    from onnx.helper import tensor_dtype_to_np_dtype

    name = short(t.name)
    info = {e.key: e.value for e in t.external_data}
    loc = info.get("location", "")

    def fail(what: str) -> MacscalcError:
        return MacscalcError(f"tensor {name!r}: external data {short(loc)!r}: {what}", file)

    if not loc or "\0" in loc or Path(loc).is_absolute():
        raise fail("not a file beside the model")
    offset, length = (_decimal(info.get(k), fail, k) for k in ("offset", "length"))
    try:
        dtype = np.dtype(tensor_dtype_to_np_dtype(t.data_type))
    except (KeyError, TypeError, ValueError):
        raise fail(f"data type {t.data_type} cannot be read from a file") from None
    if dtype.kind not in "biuf":
        raise fail(f"data type {dtype.name} cannot be read from a file")
    numel = 1
    for d in t.dims:
        numel *= d
    need = numel * dtype.itemsize
    if numel < 0 or (length is not None and length != need):
        raise fail(f"declares {length} bytes where its dims need {need}")
    real = inside(base / loc, (base,), "the model's folder", file,
                  f"tensor {name!r}: external data {short(loc)!r}")
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise fail("the file is missing (its values are needed here)") from None
    except (OSError, ValueError) as e:
        raise fail(f"cannot read it ({getattr(e, 'strerror', None) or 'not a usable path'})"
                   ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise fail("not a regular file")
        if (offset or 0) + need > st.st_size:
            raise fail("the file is shorter than the range it declares")
        data = os.pread(fd, need, offset or 0)
    except OSError as e:
        raise fail(f"cannot read it ({e.strerror})") from None
    finally:
        os.close(fd)
    if len(data) != need:
        raise fail("the file is shorter than the range it declares")
    return np.frombuffer(data, dtype.newbyteorder("<")).reshape(tuple(t.dims)).copy()


def _decimal(text: str | None, fail: Any, key: str) -> int | None:
    """An external-data offset or length: ASCII digits only, at most 18 of them."""
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise fail(f"its {key} must be a whole number of bytes")
    return int(text)
