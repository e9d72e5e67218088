"""Reading an ONNX file without its weights, and a small constant's values when needed.

A network's counts need every tensor's dims but the values of only a few small
constants (reshape targets, clip bounds, split sizes). So the file is decoded by
``proto`` (no ``onnx`` import), reading field headers a block at a time: each tensor
keeps its dims, type and name and where its values are, and they are read here only when
a constant is needed. A 100 MB file of embedded weights then costs about as much memory
as its graph, and weights in external-data files are never opened (their sizes come from
the dims).

The file is untrusted: every failure is a :class:`MacscalcError` naming the file and
the byte offset, never a traceback, and nothing from it is echoed but short names.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from macscalc.core.errors import MacscalcError
from macscalc.core.files import inside
from macscalc.models.onnx.proto import (
    EXTERNAL,
    RAW,
    VALUE_FIELDS,
    ModelProto,
    Source,
    TensorProto,
    Wire,
    decode,
    signed,
    varints,
)

if TYPE_CHECKING:
    import numpy as np

SMALL = 4096  # elements: a tensor this small may have its values read (shape arithmetic)
_INITIALIZERS = ((7, 0), (5, 1))  # (field, depth): ModelProto.graph, GraphProto.initializer
_DIMS = 1  # TensorProto.dims
# TensorProto.DataType → the numpy dtype of its values (BFLOAT16 as its bits, read as
# float32) and the field holding them when not raw_data (onnx.helper.tensor_dtype_to_field)
_DTYPES = {1: "<f4", 2: "u1", 3: "i1", 4: "<u2", 5: "<i2", 6: "<i4", 7: "<i8", 9: "?",
           10: "<f2", 11: "<f8", 12: "<u4", 13: "<u8", 16: "<u2"}
_FLOAT_DATA, _INT32_DATA, _INT64_DATA, _DOUBLE_DATA, _UINT64_DATA = 4, 5, 7, 10, 11
_STORAGE = {1: _FLOAT_DATA, 7: _INT64_DATA, 11: _DOUBLE_DATA, 12: _UINT64_DATA,
            13: _UINT64_DATA}
_BFLOAT16 = 16


def short(name: str, limit: int = 48) -> str:
    """A name from the file made safe to print: odd characters replaced, cut short."""
    clean = re.sub(r"[^A-Za-z0-9_.:/\-]", "_", name)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


@contextmanager
def opened(path: str) -> Iterator[ModelProto]:
    """The model at ``path``, open while the caller reads it: its tensors' values stay in
    the file until ``values`` reads a small one (see the module)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - held open for the caller's block
    except OSError as e:
        raise MacscalcError(f"cannot read ONNX file: {e.strerror}", path) from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise MacscalcError("not an ONNX model: the file is empty", path)
        try:
            yield decode(Source(f.fileno(), size), path)
        except OSError as e:  # a read of the open file failing midway
            raise MacscalcError(f"cannot read ONNX file: {e.strerror}", path) from None


def inferred(path: str) -> ModelProto | None:
    """The model with ONNX shape inference's value_info, for an unknown operator's output
    shape: onnx (the extra) is given the file without its large weights. None without
    the extra or when inference fails."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        with open(path, "rb") as f:
            data = _stripped(Source(f.fileno(), os.fstat(f.fileno()).st_size), path)
        model = onnx.shape_inference.infer_shapes(onnx.ModelProto.FromString(data))
    except Exception:  # noqa: BLE001 - inference failing leaves the shape unknown
        return None
    return decode(model.SerializeToString(), path)


def _stripped(buf: Any, file: str, start: int = 0, end: int | None = None,
              depth: int = 0) -> bytes:
    """``buf[start:end]`` serialized again with every large initializer's values left out
    (depth 0 the model, 1 its graph, 2 an initializer)."""
    end = len(buf) if end is None else end
    big = depth == 2 and _numel(buf, start, end, file) > SMALL
    w, parts = Wire(buf, start, end, file), []
    while w.pos < w.end:
        number, wire, at, payload, stop = w.field()
        if wire == 2 and (number, depth) in _INITIALIZERS:
            inner = _stripped(buf, file, payload, stop, depth + 1)
            parts += [_varint_bytes(number << 3 | 2), _varint_bytes(len(inner)), inner]
        elif not (big and number in VALUE_FIELDS):
            parts.append(bytes(buf[at:stop]))
    return b"".join(parts)


def _numel(buf: Any, start: int, end: int, file: str) -> int:
    """Elements of a serialized TensorProto from its dims (packed or not), counted only up
    to ``SMALL + 1``: a tensor of a million dims costs no big-number arithmetic."""
    w, n = Wire(buf, start, end, file), 1
    while w.pos < w.end:
        number, wire, _, payload, stop = w.field()
        if number == _DIMS:
            for d in [payload] if wire == 0 else varints(buf, payload, stop, file):
                n = min(n * d, SMALL + 1)
    return n


def _varint_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def values(t: TensorProto, base: Path, file: str) -> np.ndarray:
    """A small tensor's values; external data is read only here, when needed."""
    if t.data_location == EXTERNAL:
        return _external(t, base, file)
    try:
        return array(t)
    except (ValueError, TypeError) as e:
        raise MacscalcError(f"tensor {short(t.name)!r}: cannot read its values "
                            f"({type(e).__name__})", file) from None


def array(t: TensorProto) -> np.ndarray:
    """The values a tensor holds in the file, as ``onnx.numpy_helper.to_array`` reads them
    (BFLOAT16 as float32); ValueError or TypeError when they cannot be read. Work is
    bounded by the dims: at most 10 bytes an element are read (a varint's most)."""
    import numpy as np

    if t.segment or t.data_type not in _DTYPES:
        raise TypeError(f"data type {t.data_type} or a segmented tensor")
    numel = 1
    for d in t.dims:
        numel = min(numel * max(d, 0), SMALL + 1)
    raw = [f for f in t.data if f[0] == RAW][-1:]
    fields = raw or [f for f in t.data if f[0] == _STORAGE.get(t.data_type, _INT32_DATA)]
    if sum(end - start if wire else 1 for _, wire, start, end in fields) > 10 * max(numel, 1):
        raise ValueError("more values than its dims hold")
    dtype = np.dtype(_DTYPES[t.data_type])
    if raw or fields and fields[0][0] in (_FLOAT_DATA, _DOUBLE_DATA):
        data = b"".join(bytes(t.source[start:end]) for _, _, start, end in fields)
        a = np.frombuffer(data, dtype if raw else "<f4" if fields[0][0] == _FLOAT_DATA
                          else "<f8").astype(dtype)
    else:
        try:
            ints = [v for _, wire, start, end in fields
                    for v in ([start] if wire == 0 else varints(t.source, start, end, ""))]
        except MacscalcError:
            raise ValueError("a malformed varint") from None
        a = _from_ints(np, ints, t.data_type, dtype)
    return _widened(a, t.data_type).reshape(tuple(t.dims))


def _widened(a: np.ndarray, code: int) -> np.ndarray:
    """BFLOAT16's bits as the float32 they are the top half of (numpy has no bfloat16)."""
    return (a.astype("<u4") << 16).view("<f4") if code == _BFLOAT16 else a


def _from_ints(np: Any, ints: list[int], code: int, dtype: Any) -> np.ndarray:
    """int32_data, int64_data or uint64_data as ``to_array`` reads them: int32_data holds
    the bits of every smaller type."""
    if code == 7:
        return np.array([signed(v) for v in ints], np.int64)
    if code in (12, 13):
        return np.array(ints, np.uint64).astype(dtype)
    bits = np.array([v & 0xFFFF_FFFF for v in ints], np.uint32)
    return bits.astype(f"u{dtype.itemsize}").view(dtype)


def _external(t: TensorProto, base: Path, file: str) -> np.ndarray:
    """A small tensor's values from its external-data file: a regular file inside the
    model's folder (links followed, none leading out), exactly the declared bytes read."""
    import numpy as np

    name = short(t.name)
    info = {e.key: e.value for e in t.external_data}
    loc = info.get("location", "")

    def fail(what: str) -> MacscalcError:
        return MacscalcError(f"tensor {name!r}: external data {short(loc)!r}: {what}", file)

    if not loc or "\0" in loc or Path(loc).is_absolute():
        raise fail("not a file beside the model")
    offset, length = (_decimal(info.get(k), fail, k) for k in ("offset", "length"))
    if t.data_type not in _DTYPES:
        raise fail(f"data type {t.data_type} cannot be read from a file")
    dtype = np.dtype(_DTYPES[t.data_type])
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
    return _widened(np.frombuffer(data, dtype), t.data_type).reshape(tuple(t.dims)).copy()


def _decimal(text: str | None, fail: Any, key: str) -> int | None:
    """An external-data offset or length: ASCII digits only, at most 18 of them."""
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise fail(f"its {key} must be a whole number of bytes")
    return int(text)
