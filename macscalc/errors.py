"""The one error type for user mistakes.

Every mistake in a spec, a data file or a command-line value is raised as
:class:`MacscalcError`. The CLI renders it once as ``file:line:col: error: ...``
and exits 2; anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class MacscalcError(Exception):
    """A user-facing error with an optional source location (1-based line and column)."""

    def __init__(
        self, message: str, file: str | None = None, line: int | None = None, col: int | None = None
    ) -> None:
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
