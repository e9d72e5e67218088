"""YAML loading that remembers where every value came from, and bounds what a document costs.

Mappings load as :class:`LocDict` and sequences as :class:`LocList`; each keeps the
1-based (line, column) of its items, so any later error can point at the exact spot.
Duplicate keys are errors (plain YAML keeps the last one silently); a key set by a merge
(``<<: *a``) may be overridden, as YAML allows.

Documents are untrusted (``macscalc/core/limits.py``): the file size, the nesting depth, the
number of values (aliases counted as what they expand to, so a "billion laughs" fails
at once) and the length of numbers are bounded, and bytes that are not UTF-8 or not
allowed in YAML are reported at their line and column. libyaml scans and parses; the
document is composed in Python, because libyaml's composer recurses in C and crashes
the interpreter on deep nesting.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from macscalc.core.errors import MacscalcError, show
from macscalc.core.limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, MAX_NUMBER_CHARS

Loc = tuple[int, int]

if yaml.__with_libyaml__:
    from yaml.cyaml import CParser as _Parsing
else:  # pragma: no cover - PyYAML built without libyaml

    class _Parsing(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


def _loc(mark: Any) -> Loc:
    return (mark.line + 1, mark.column + 1)


class LocDict(dict):
    """A mapping with the location of itself, of each key and of each value."""

    loc: Loc = (0, 0)

    def __init__(self) -> None:
        super().__init__()
        self.key_locs: dict[Any, Loc] = {}
        self.value_locs: dict[Any, Loc] = {}


class LocList(list):
    """A sequence with the location of itself and of each item."""

    loc: Loc = (0, 0)

    def __init__(self) -> None:
        super().__init__()
        self.item_locs: list[Loc] = []


class _Loader(Composer, _Parsing, SafeConstructor, Resolver):  # type: ignore[misc, valid-type]
    """Safe loading (plain data only) that counts what it composes and constructs."""

    def __init__(self, text: str, file: str) -> None:
        _Parsing.__init__(self, text)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self.file = file
        self.depth = 0
        self.composed = 0
        self.sizes: dict[yaml.Node, int] = {}  # values under a node, aliases expanded

    def fail(self, message: str, mark: Any) -> MacscalcError:
        return MacscalcError(message, self.file, *_loc(mark))

    def compose_node(self, parent: Any, index: Any) -> yaml.Node:
        mark = self.peek_event().start_mark
        self.composed += 1
        if self.composed > MAX_NODES:
            raise self.fail(f"more than {MAX_NODES:,} values in one document", mark)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"lists and mappings nested more than {MAX_DEPTH} deep", mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=True)
        except (ValueError, TypeError, OverflowError):  # a tagged scalar such as !!int x
            raise self.fail(f"cannot read this {node.tag.rsplit(':', 1)[-1]} value",
                            node.start_mark) from None

    def size(self, node: yaml.Node) -> int:
        return self.sizes.get(node, 1)

    def count(self, node: yaml.Node, total: int) -> None:
        """Record ``total`` values under ``node``; too many is an error at the node."""
        if total > MAX_NODES:
            raise self.fail(f"more than {MAX_NODES:,} values once aliases are expanded",
                            node.start_mark)
        self.sizes[node] = total

    def number(self, node: yaml.ScalarNode) -> Any:
        """An int or float; thousands of digits would cost seconds to convert (or raise)."""
        if len(node.value) > MAX_NUMBER_CHARS:
            raise self.fail(f"a number longer than {MAX_NUMBER_CHARS} characters",
                            node.start_mark)
        return (SafeConstructor.construct_yaml_int if node.tag.endswith(":int")
                else SafeConstructor.construct_yaml_float)(self, node)


def _map(loader: _Loader, node: yaml.MappingNode) -> LocDict:
    explicit = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
    try:
        loader.flatten_mapping(node)  # merged pairs first, so the mapping's own keys win
    except RecursionError:
        raise loader.fail("a merge (<<) that includes its own mapping", node.start_mark) from None
    out = LocDict()
    out.loc = _loc(node.start_mark)
    own: set[Any] = set()
    total = 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        try:
            hash(key)
        except TypeError:
            raise loader.fail("a key must be a single value, not a list or mapping",
                              key_node.start_mark) from None
        if key in own and id(key_node) in explicit:
            raise loader.fail(f"duplicate key {show(key)}", key_node.start_mark)
        if id(key_node) in explicit:
            own.add(key)
        out[key] = loader.construct_object(value_node)
        out.key_locs[key] = _loc(key_node.start_mark)
        out.value_locs[key] = _loc(value_node.start_mark)
        total += loader.size(key_node) + loader.size(value_node)
    loader.count(node, total)
    return out


def _seq(loader: _Loader, node: yaml.SequenceNode) -> LocList:
    out = LocList()
    out.loc = _loc(node.start_mark)
    total = 1
    for item in node.value:
        out.append(loader.construct_object(item))
        out.item_locs.append(_loc(item.start_mark))
        total += loader.size(item)
    loader.count(node, total)
    return out


_Loader.add_constructor("tag:yaml.org,2002:map", _map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _seq)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.number)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.number)
# A date is text here: no spec needs one, and datetime rejects some that YAML accepts.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str)

# What YAML allows in a stream: tab, line breaks and printable characters (YAML 1.1 §5.1).
_NOT_YAML = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _position(text: str, index: int) -> Loc:
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def load(text: str, file: str) -> Any:
    """Parse YAML text; syntax errors and documents past the limits are located
    :class:`MacscalcError`."""
    if len(text) > MAX_FILE_BYTES:
        raise MacscalcError(f"larger than {MAX_FILE_BYTES:,} bytes", file)
    bad = _NOT_YAML.search(text)
    if bad:
        char = bad.group()
        hint = " (a NUL: is the file UTF-16?)" if char == "\0" else ""
        raise MacscalcError(f"character U+{ord(char):04X} is not allowed in YAML{hint}", file,
                            *_position(text, bad.start()))
    loader = _Loader(text, file)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = _loc(mark) if mark else (None, None)
        problem = e.problem or e.context
        if "nesting depth" in str(problem):  # PyYAML ≥ 6.0.4 stops at its own, deeper, limit
            problem = f"lists and mappings nested more than {MAX_DEPTH} deep"
        else:
            problem = f"invalid YAML: {problem}"
        raise MacscalcError(problem, file, line, col) from None
    except yaml.YAMLError as e:
        raise MacscalcError(f"invalid YAML: {e}", file) from None
    finally:
        loader.dispose()


def read_text(path: Path, file: str, what: str, limit: int = MAX_FILE_BYTES) -> str:
    """A regular file of at most ``limit`` bytes as UTF-8 text; a byte that is not UTF-8
    is an error at its line and column. Opened without blocking, so a FIFO is refused
    rather than waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as e:
        raise MacscalcError(f"cannot read {what}: {getattr(e, 'strerror', None) or e}",
                            file) from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise MacscalcError(f"cannot read {what}: not a regular file", file)
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise MacscalcError(f"cannot read {what}: {e.strerror}", file) from None
    if len(data) > limit:
        raise MacscalcError(f"{what} is larger than {limit:,} bytes", file)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise MacscalcError(f"{what} is UTF-16; save it as UTF-8", file, 1, 1)
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, e.start) + 1
        col = len(data[start:e.start].decode("utf-8", "replace")) + 1
        raise MacscalcError(f"byte 0x{data[e.start]:02X} is not UTF-8; save {what} as UTF-8",
                            file, line, col) from None
