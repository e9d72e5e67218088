"""The one error type for user mistakes.

Every mistake in a spec, a data file or a command-line value is raised as
:class:`MacscalcError`. The CLI renders it once as ``file:line:col: error: ...``
and exits 2; anything else that escapes is a bug and keeps its traceback. Messages quote
values through :func:`show`, so no message repeats more than an excerpt of what it was
given (an input may be hostile, and the message may land in a public CI log).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from macscalc.core.limits import EXCERPT_CHARS, MAX_MESSAGE_CHARS


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class MacscalcError(Exception):
    """A user-facing error with an optional source location (1-based line and column)."""

    def __init__(
        self, message: str, file: str | None = None, line: int | None = None, col: int | None = None
    ) -> None:
        message = _cut(message, MAX_MESSAGE_CHARS)  # the last line of defence; see show()
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.col = col

    def located(self) -> str:
        """``file:line:col: message``, with whatever part of the location is known."""
        where = [str(p) for p in (self.file, self.line, self.col) if p is not None]
        return f"{':'.join(where)}: {self.message}" if where else self.message

    def __str__(self) -> str:
        return self.located()


class ShapeError(ValueError):
    """An impossible shape; the builder re-raises it as a located MacscalcError."""


def show(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """``value`` as an error message quotes it: strings in quotes, nothing for null, and
    at most ``limit`` characters of it, then '…'. Lists and mappings are only walked as
    far as the excerpt reaches, so a huge or deeply nested value costs nothing."""
    if value is None:
        return "nothing"
    text = ""
    for part in _parts(value, limit):
        text += part
        if len(text) > limit:
            break
    return _cut(text, limit)


# C0 and C1 controls (a terminal's escape sequences start with ESC or CSI), and the
# invisible format characters that reorder or hide text (bidi controls, zero widths)
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
                          "\u2060-\u2069\ufeff]")


def printable(text: str) -> str:
    """``text`` as every printer shows it: control and invisible format characters
    escaped (``\\x1b``, ``\\u202e``), so a name from a file cannot move the cursor, colour
    the terminal or break a line; and no line starts a GitHub workflow command (``::``)."""
    out = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100
                           else f"\\u{ord(m[0]):04x}", text)
    if out.lstrip(" ").startswith("::"):
        at = out.index(":")
        out = out[:at] + "\\x3a" + out[at + 1:]
    return out


def kind(value: Any) -> str:
    """What ``value`` is, for a message that must not quote it (a whole document, which
    may be any file a link points to)."""
    if isinstance(value, bool):
        return "true or false"
    kinds = ((str, "text"), (int, "a number"), (float, "a number"), (list, "a list"),
             (dict, "a mapping"))
    return next((name for t, name in kinds if isinstance(value, t)), type(value).__name__)


def _parts(value: Any, limit: int) -> Iterator[str]:
    if isinstance(value, dict):
        yield "{"
        for i, (k, v) in enumerate(value.items()):
            yield ", " if i else ""
            yield from _parts(k, limit)
            yield ": "
            yield from _parts(v, limit)
        yield "}"
    elif isinstance(value, (list, tuple, set, frozenset)):
        yield "["
        for i, v in enumerate(value):
            yield ", " if i else ""
            yield from _parts(v, limit)
        yield "]"
    elif isinstance(value, (str, bytes)):
        yield repr(value[: limit + 1])
    elif isinstance(value, int) and value.bit_length() > 4 * limit:
        yield "a very large number"  # str() of a 5,000-digit integer raises
    else:
        yield str(value)[: limit + 1]
