"""One output sink: a document of tables and notes, rendered as a text table, Markdown,
CSV or JSON, to stdout or atomically to a file.

Commands build a :class:`Doc` (tables for people, a ``data`` dict for JSON) and hand it
here. JSON carries ``schema_version`` and exact integers. CSV holds the document's
first table only, the one a spreadsheet wants, with plain values and units in the header.

Terminal tables are drawn here, not by rich: rich took 0.7–2.4 s to lay out a 397-row
per-layer table, against 25 ms here for the whole document (``benchmarks/render.py``).
They fit the terminal's width (``COLUMNS``, else the terminal; no limit for pipes and
files, or with ``--format wide``): free-text columns move into numbered notes,
low-priority columns drop with a note, then cells that may shrink are cut with '…'; a
cell is never wrapped. Notes wrap at word boundaries. Colour only on a terminal, and
never with ``NO_COLOR``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from macscalc.core.errors import MacscalcError, printable
from macscalc.core.files import write_atomic

SCHEMA_VERSION = 1
FORMATS = ("table", "wide", "json", "csv", "markdown")
GAP = 2  # spaces between columns
CUT = "…"


class Column(NamedTuple):
    """A table column. When the table is wider than the terminal: a ``text`` column moves
    into numbered notes under the table; columns with ``drop`` set are dropped, 1 first;
    a column with ``cut`` set may have its cells cut to that many characters."""

    header: str
    key: str
    fmt: Callable[[Any], str] = str
    left: bool = False
    drop: int = 0
    text: bool = False
    cut: int = 0
    unit: str = ""  # the unit of the raw value, named in the CSV header


class Table(NamedTuple):
    """Rows are dicts; a row's ``_warn`` key set true highlights it on a terminal."""

    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    notes: list[str] = []

    def cells(self, row: dict[str, Any]) -> list[str]:
        return ["" if row.get(c.key) is None else printable(c.fmt(row[c.key]))
                for c in self.columns]


class Doc(NamedTuple):
    title: str
    tables: list[Table]
    notes: list[str]
    data: dict[str, Any]
    intro: list[str] = []  # lines before the tables (formulas, explanations)


def _markdown(doc: Doc) -> str:
    out = [f"## {printable(doc.title)}", ""]
    if doc.intro:
        out += ["```text", *map(printable, doc.intro), "```", ""]
    for t in doc.tables:
        out += [f"### {printable(t.title)}", ""]
        out.append("| " + " | ".join(c.header for c in t.columns) + " |")
        out.append("|" + "|".join(":---" if c.left else "---:" for c in t.columns) + "|")
        out += ["| " + " | ".join(s.replace("|", "\\|") for s in t.cells(r)) + " |" for r in t.rows]
        out.append("")
        out += [f"- {printable(n)}" for n in t.notes] + ([""] if t.notes else [])
    out += [f"- {printable(n)}" for n in doc.notes]
    return "\n".join(out).rstrip() + "\n"


def _csv(doc: Doc) -> str:
    import csv
    import io

    if not doc.tables:
        raise MacscalcError("this report has no table to write as CSV")
    t = doc.tables[0]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([f"{c.key} ({c.unit})" if c.unit else c.key for c in t.columns])
    for r in t.rows:
        w.writerow(["" if r.get(c.key) is None else _plain(r[c.key]) for c in t.columns])
    return buf.getvalue()


def _plain(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return printable("×".join(map(str, v)))
    return printable(v) if isinstance(v, str) else v


def _json(doc: Doc) -> str:
    import json

    leaf = json.JSONEncoder(ensure_ascii=False, default=_decimal).encode
    text = _encode({"schema_version": SCHEMA_VERSION, **doc.data}, "", leaf) + "\n"
    # json escapes C0 controls itself; C1 and invisible format characters can only be
    # inside strings, where \uXXXX is the same text
    return _UNESCAPED.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


_UNESCAPED = re.compile("[\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


_CONTAINERS = (dict, list, tuple)


def _encode(v: Any, indent: str, leaf: Callable[[Any], str]) -> str:
    """JSON indented by two spaces, except that a list or object holding no list or object
    sits on one line (a table's row, a list of numbers): rows read one a line, and json's
    C encoder writes each (indenting a 6,575-row sweep frontier in Python took 0.15 s).
    Keys starting with _ are dropped (renderer hints); Decimals become exact strings."""
    if isinstance(v, dict):
        if any(str(k).startswith("_") for k in v):
            v = {k: x for k, x in v.items() if not str(k).startswith("_")}
        items: Any = v.values()
    elif isinstance(v, _CONTAINERS):
        items = v
    else:
        return leaf(v)
    if not any(isinstance(x, _CONTAINERS) for x in items):
        return leaf(v)
    inner = indent + "  "
    if isinstance(v, dict):
        body = [f"{inner}{leaf(k if isinstance(k, str) else leaf(k))}: "
                f"{_encode(x, inner, leaf)}" for k, x in v.items()]
        return "{\n" + ",\n".join(body) + f"\n{indent}}}"
    return "[\n" + ",\n".join(inner + _encode(x, inner, leaf) for x in v) + f"\n{indent}]"


def _decimal(v: Any) -> str:
    from decimal import Decimal

    if isinstance(v, Decimal):
        return str(v)
    raise TypeError(f"{type(v).__name__} is not JSON")


class _Layout(NamedTuple):
    columns: list[int]  # indices of the columns shown
    widths: list[int]  # their widths
    dropped: list[int]  # indices of the columns left out
    notes: dict[str, int]  # moved text ("header: cell") → its note number
    marks: list[str]  # per row, the numbers of its moved cells: "[1][3]"; [] if none moved


def _number(t: Table, body: list[list[str]], moved: list[int]) -> tuple[dict[str, int],
                                                                        list[str]]:
    """Number the moved cells, each distinct text once, in row order."""
    notes: dict[str, int] = {}
    marks = []
    for cells in body:
        mark = ""
        for i in sorted(moved):
            if cells[i]:
                text = f"{t.columns[i].header}: {cells[i]}"
                mark += f"[{notes.setdefault(text, len(notes) + 1)}]"
        marks.append(mark)
    return notes, marks


def _layout(t: Table, body: list[list[str]], width: int | None) -> _Layout:
    """Which columns to show and how wide, so that a line fits ``width``: text columns
    move into notes, then droppable columns go, then cuttable cells are cut, then (only
    when nothing else helps) any cell."""
    natural = [max(len(x) for x in col) for col in zip([c.header for c in t.columns], *body,
                                                       strict=True)]
    shown = list(range(len(t.columns)))
    moved: list[int] = []
    notes: dict[str, int] = {}
    marks: list[str] = []

    def total() -> int:
        mark = max(len("notes"), *map(len, marks)) + GAP if moved else 0
        return sum(natural[i] for i in shown) + GAP * (len(shown) - 1) + mark

    if width is None or total() <= width:
        return _Layout(shown, [natural[i] for i in shown], [], {}, [])
    for i in sorted((i for i in shown if t.columns[i].text), key=lambda i: -natural[i]):
        shown.remove(i)
        moved.append(i)
        notes, marks = _number(t, body, moved)
        if total() <= width:
            break
    dropped = []
    for i in sorted((i for i in shown if t.columns[i].drop), key=lambda i: t.columns[i].drop):
        if total() <= width:
            break
        shown.remove(i)
        dropped.append(i)
    excess = total() - width
    widths = [natural[i] for i in shown]
    for floor in ([t.columns[i].cut for i in shown], [3] * len(shown)):
        while excess > 0:
            cuttable = [j for j in range(len(shown)) if widths[j] > floor[j] > 0]
            if not cuttable:
                break
            j = max(cuttable, key=lambda j: widths[j])
            widths[j] -= 1
            excess -= 1
    return _Layout(shown, widths, dropped, notes, marks)


def _fit(text: str, w: int) -> str:
    return text if len(text) <= w else text[: max(w - 1, 0)] + CUT


def _wrap(text: str, width: int | None, indent: str = "", hang: str = "") -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken between words."""
    if width is None or len(indent) + len(text) <= width:
        return [indent + text]
    import textwrap

    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=hang or indent,
                         break_on_hyphens=False) or [indent]


class _Style(NamedTuple):
    bold: str = ""
    warn: str = ""
    off: str = ""


def _table_lines(t: Table, width: int | None, style: _Style) -> list[str]:
    """One table: title, header, rule, rows; then its moved text as numbered notes, its
    own notes and a word on the columns left out, wrapped to ``width``."""
    body = [t.cells(r) for r in t.rows]
    lay = _layout(t, body, width)
    cols = [t.columns[i] for i in lay.columns]
    widths = list(lay.widths)
    rows = [[cells[i] for i in lay.columns] for cells in body]
    if lay.marks:
        cols.append(Column("notes", "", left=True))
        widths.append(max(len("notes"), *map(len, lay.marks)))
        rows = [[*cells, mark] for cells, mark in zip(rows, lay.marks, strict=True)]

    def line(cells: list[str]) -> str:
        padded = (_fit(x, w).ljust(w) if c.left else _fit(x, w).rjust(w)
                  for x, w, c in zip(cells, widths, cols, strict=True))
        return (" " * GAP).join(padded).rstrip()

    out = [f"{style.bold}{x}{style.off}" for x in _wrap(printable(t.title), width)]
    out.append(f"{style.bold}{line([c.header for c in cols])}{style.off}")
    out.append((" " * GAP).join("─" * w for w in widths))
    for cells, r in zip(rows, t.rows, strict=True):
        out.append(f"{style.warn}{line(cells)}{style.off}" if r.get("_warn") else line(cells))
    for note, number in lay.notes.items():
        out += _wrap(note, width, f"  [{number}] ", " " * (len(str(number)) + 5))
    for note in t.notes:
        out += _wrap(printable(note), width, "  ")
    cut = any(len(x) > w for cells in rows for x, w in zip(cells, widths, strict=True))
    if lay.dropped or cut:
        names = ", ".join(t.columns[i].header for i in lay.dropped)
        what = "; ".join(([f"not shown: {names}"] if names else [])
                         + (["… marks cut cells"] if cut else []))
        out += _wrap(f"At {width} columns, {what}. See everything with --format wide, csv, "
                    "json or markdown.", width, "  ")
    return out


def _intro_lines(line: str, width: int | None) -> list[str]:
    """An intro line wrapped: a formula ("label   value") under its value, prose flush."""
    if width is None or len(line) <= width:
        return [line]
    label = len(line) - len(line.lstrip(" "))
    gap = line.find("  ", label)
    hang = len(line) - len(line[gap:].lstrip(" ")) if 0 < gap < width // 2 else label
    return _wrap(line, width, "", " " * hang)


def text(doc: Doc, width: int | None = None, color: bool = False) -> str:
    """``doc`` for people: every line at most ``width`` characters (None: no limit)."""
    style = _Style("\033[1m", "\033[33m", "\033[0m") if color else _Style()
    out = [f"{style.bold}{x}{style.off}" for x in _wrap(printable(doc.title), width)]
    if doc.intro:
        out.append("")
        for x in doc.intro:
            out += _intro_lines(printable(x), width)
    for t in doc.tables:
        out += ["", *_table_lines(t, width, style)]
    if doc.notes:
        out.append("")
    for note in doc.notes:
        out += _wrap(printable(note), width, "", "  ")
    return "\n".join(out) + "\n"


def terminal_width() -> int | None:
    """``COLUMNS`` when set, else the terminal's width; None (no limit) for a pipe or file."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isascii() and columns.isdigit() and 0 < len(columns) <= 6 and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return os.get_terminal_size(sys.stdout.fileno()).columns
    return None


def render(doc: Doc, fmt: str, output: Path | None = None) -> None:
    """Write ``doc`` as ``fmt`` to stdout, or to ``output`` (all or nothing)."""
    if fmt not in FORMATS:
        raise MacscalcError(f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    if fmt == "table" and output is None:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        result = text(doc, terminal_width(), color)
    elif fmt in ("table", "wide"):
        result = text(doc)
    else:
        result = {"json": _json, "csv": _csv, "markdown": _markdown}[fmt](doc)
    if output is None:
        sys.stdout.write(result)
    else:
        write_atomic(output, result)
