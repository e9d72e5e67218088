"""One output sink: a document of tables and notes, rendered as a text table, Markdown,
CSV or JSON, to stdout or atomically to a file.

Commands build a :class:`Doc` (tables for people, a ``data`` dict for JSON) and hand it
here. JSON carries ``schema_version`` and exact integers. CSV holds the document's
first table only, the one a spreadsheet wants. Terminal tables are drawn here with
box-drawing characters: rich took 100 ms to lay out MobileNet V2's per-layer table,
more than the whole startup budget, and these tables need no wrapping or markup.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from macscalc.errors import MacscalcError, show

SCHEMA_VERSION = 1
FORMATS = ("table", "json", "csv", "markdown")


class Column(NamedTuple):
    header: str
    key: str
    fmt: Callable[[Any], str] = str
    left: bool = False


class Table(NamedTuple):
    """Rows are dicts; a row's ``_warn`` key set true highlights it on a terminal."""

    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    notes: list[str] = []

    def cells(self, row: dict[str, Any]) -> list[str]:
        return ["" if row.get(c.key) is None else c.fmt(row[c.key]) for c in self.columns]


class Doc(NamedTuple):
    title: str
    tables: list[Table]
    notes: list[str]
    data: dict[str, Any]
    intro: list[str] = []  # lines before the tables (formulas, explanations)


def _markdown(doc: Doc) -> str:
    out = [f"## {doc.title}", ""]
    if doc.intro:
        out += ["```text", *doc.intro, "```", ""]
    for t in doc.tables:
        out += [f"### {t.title}", ""]
        out.append("| " + " | ".join(c.header for c in t.columns) + " |")
        out.append("|" + "|".join(":---" if c.left else "---:" for c in t.columns) + "|")
        out += ["| " + " | ".join(s.replace("|", "\\|") for s in t.cells(r)) + " |" for r in t.rows]
        out.append("")
        out += [f"- {n}" for n in t.notes] + ([""] if t.notes else [])
    out += [f"- {n}" for n in doc.notes]
    return "\n".join(out).rstrip() + "\n"


def _csv(doc: Doc) -> str:
    import csv
    import io

    if not doc.tables:
        raise MacscalcError("this report has no table to write as CSV")
    t = doc.tables[0]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c.key for c in t.columns])
    for r in t.rows:
        w.writerow(["" if r.get(c.key) is None else _plain(r[c.key]) for c in t.columns])
    return buf.getvalue()


def _plain(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return "×".join(map(str, v))
    return v


def _json(doc: Doc) -> str:
    import json

    from macscalc.report import json_safe

    data = {"schema_version": SCHEMA_VERSION, **json_safe(doc.data)}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _box(t: Table, bold: str, warn: str, off: str) -> list[str]:
    """One table in box-drawing characters; columns as wide as their widest cell."""
    header = [c.header for c in t.columns]
    body = [t.cells(r) for r in t.rows]
    widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]
    lefts = [c.left for c in t.columns]

    def line(cells: list[str]) -> str:
        padded = (
            x.ljust(w) if left else x.rjust(w)
            for x, w, left in zip(cells, widths, lefts, strict=True)
        )
        return "│ " + " │ ".join(padded) + " │"

    def rule(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    out = [
        f"{bold}{t.title}{off}",
        rule("┌", "┬", "┐"),
        f"{bold}{line(header)}{off}",
        rule("├", "┼", "┤"),
    ]
    out += [
        f"{warn}{line(cells)}{off}" if r.get("_warn") else line(cells)
        for cells, r in zip(body, t.rows, strict=True)
    ]
    out.append(rule("└", "┴", "┘"))
    return out + [f"  {n}" for n in t.notes]


def _text(doc: Doc, color: bool) -> str:
    bold, warn, off = ("\033[1m", "\033[33m", "\033[0m") if color else ("", "", "")
    out = [f"{bold}{doc.title}{off}"]
    if doc.intro:
        out += ["", *doc.intro]
    for t in doc.tables:
        out += ["", *_box(t, bold, warn, off)]
    if doc.notes:
        out.append("")
    out += doc.notes
    return "\n".join(out) + "\n"


def render(doc: Doc, fmt: str, output: Path | None = None) -> None:
    """Write ``doc`` as ``fmt`` to stdout, or to ``output`` (all or nothing)."""
    if fmt not in FORMATS:
        raise MacscalcError(f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    if fmt == "table":
        text = _text(doc, color=output is None and _wants_color(sys.stdout))
    else:
        text = {"json": _json, "csv": _csv, "markdown": _markdown}[fmt](doc)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text)


def _wants_color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a failure leaves no partial file.

    The file keeps the mode of the one it replaces; a new one gets the umask's default.
    SIGTERM or SIGINT during the write removes the temporary file, then goes to the
    handler it would have gone to; SIGKILL cannot be caught and may leave the hidden
    ``.NAME.*.tmp`` behind."""
    if path.name in ("", ".", ".."):
        raise MacscalcError(f"cannot write {show(str(path))}: not a file name")
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    try:
        with _signals_raise():
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            with contextlib.suppress(FileNotFoundError):
                os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
            os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, _Interrupted):
            signal.raise_signal(e.signum)  # its own handler, restored: the default ends us
            raise MacscalcError(f"{path} not written: interrupted") from None
        if isinstance(e, (OSError, ValueError)):
            reason = getattr(e, "strerror", None) or e
            raise MacscalcError(f"cannot write {show(str(path))}: {reason}") from None
        raise


class _Interrupted(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """While the body runs, SIGTERM and SIGINT raise :class:`_Interrupted` (after putting
    every handler back), so the caller can clean up first. Signals set to be ignored, and
    threads other than the main one (which may not set handlers), are left alone."""
    saved = {}
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGTERM, signal.SIGINT):
            handler = signal.getsignal(s)
            if handler not in (signal.SIG_IGN, None):
                saved[s] = handler

    def restore() -> None:
        for s, handler in saved.items():
            signal.signal(s, handler)

    def interrupted(signum: int, frame: Any) -> None:
        restore()
        raise _Interrupted(signum)

    try:
        for s in saved:
            signal.signal(s, interrupted)
        yield
    finally:
        restore()
