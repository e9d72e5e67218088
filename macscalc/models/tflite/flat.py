"""A bounded reader of FlatBuffers, the container of a ``.tflite`` file.

A flatbuffer is tables reached by 32-bit offsets: a table starts with a signed offset to
its vtable, which lists where each field sits (0: absent, the schema default applies);
vectors and strings are a 32-bit length and their elements. The file is untrusted, so
every offset and length is checked against the file's size before it is followed, and a
vector's length is capped by the caller: a hostile file can make the reader fail with a
located error, never read out of bounds, loop or allocate more than its own size.
Nothing here depends on the ``tflite`` or ``flatbuffers`` packages.
"""

from __future__ import annotations

import struct
from typing import Any

from macscalc.core.errors import MacscalcError


class Flat:
    """The bytes of one file (a ``bytes`` or a memory map) and the checks on reading them."""

    def __init__(self, data: Any, file: str) -> None:
        self.data = data
        self.size = len(data)
        self.file = file

    def fail(self, what: str, at: int) -> MacscalcError:
        return MacscalcError(f"not a valid TFLite model: {what} (byte {at})", self.file)

    def unpack(self, fmt: str, at: int) -> Any:
        n = struct.calcsize(fmt)
        if at < 0 or at + n > self.size:
            raise self.fail(f"an offset points outside the file's {self.size} bytes", at)
        return struct.unpack_from(fmt, self.data, at)[0]

    def follow(self, at: int) -> int:
        """The position an unsigned 32-bit offset stored at ``at`` points to."""
        return at + self.unpack("<I", at)

    def table(self, at: int) -> Table:
        vt = at - self.unpack("<i", at)
        vt_len = self.unpack("<H", vt)
        if vt_len < 4 or vt_len % 2 or vt + vt_len > self.size:
            raise self.fail("a table's field list is malformed", vt)
        return Table(self, at, vt, vt_len)

    def root(self) -> Table:
        if self.size < 8:
            raise self.fail("the file is shorter than a flatbuffer header", 0)
        return self.table(self.follow(0))


class Table:
    """One table: fields by their index in the schema (field ``i`` is vtable slot ``i``)."""

    def __init__(self, flat: Flat, at: int, vt: int, vt_len: int) -> None:
        self.flat, self.at, self.vt, self.vt_len = flat, at, vt, vt_len

    def _field(self, i: int) -> int | None:
        slot = 4 + 2 * i
        if slot + 2 > self.vt_len:
            return None
        off = self.flat.unpack("<H", self.vt + slot)
        return self.at + off if off else None

    def has(self, i: int) -> bool:
        return self._field(i) is not None

    def scalar(self, i: int, fmt: str, default: Any = 0) -> Any:
        at = self._field(i)
        return default if at is None else self.flat.unpack("<" + fmt, at)

    def table(self, i: int) -> Table | None:
        at = self._field(i)
        return None if at is None else self.flat.table(self.flat.follow(at))

    def _vector(self, i: int, width: int, most: int) -> tuple[int, int]:
        """Start and length of vector field ``i`` (0, 0 when absent), bounds checked."""
        at = self._field(i)
        if at is None:
            return 0, 0
        start = self.flat.follow(at)
        n = self.flat.unpack("<I", start)
        if n > most:
            raise self.flat.fail(f"a list of {n} entries, more than the {most} allowed", start)
        if start + 4 + n * width > self.flat.size:
            raise self.flat.fail("a list runs past the end of the file", start)
        return start + 4, n

    def length(self, i: int, width: int, most: int) -> int:
        """The number of entries of vector field ``i``, bounds checked, none read."""
        return self._vector(i, width, most)[1]

    def span(self, i: int, width: int, most: int) -> tuple[int, int]:
        """Start and length in bytes of vector field ``i`` of ``width``-byte elements."""
        start, n = self._vector(i, width, most)
        return start, n * width

    def scalars(self, i: int, fmt: str, most: int) -> list[Any]:
        width = struct.calcsize(fmt)
        start, n = self._vector(i, width, most)
        return list(struct.unpack_from(f"<{n}{fmt}", self.flat.data, start)) if n else []

    def tables(self, i: int, most: int) -> list[Table]:
        start, n = self._vector(i, 4, most)
        return [self.flat.table(self.flat.follow(start + 4 * k)) for k in range(n)]

    def string(self, i: int, most: int = 4096) -> str:
        start, n = self._vector(i, 1, most)
        try:
            return bytes(self.flat.data[start:start + n]).decode("utf-8")
        except UnicodeDecodeError:
            raise self.flat.fail("a name is not UTF-8 text", start) from None
