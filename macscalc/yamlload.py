"""YAML loading that remembers where every value came from.

Mappings load as :class:`LocDict` and sequences as :class:`LocList`; each keeps the
1-based (line, column) of its items, so any later error can point at the exact spot.
Duplicate keys are errors (plain YAML keeps the last one silently).
"""

from __future__ import annotations

from typing import Any

import yaml

from macscalc.errors import MacscalcError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Loc = tuple[int, int]


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


class _Loader(_Base):  # type: ignore[misc, valid-type]
    file = "<spec>"


def _map(loader: _Loader, node: yaml.MappingNode) -> LocDict:
    loader.flatten_mapping(node)
    out = LocDict()
    out.loc = _loc(node.start_mark)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            line, col = _loc(key_node.start_mark)
            raise MacscalcError(f"duplicate key {key!r}", loader.file, line, col)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_locs[key] = _loc(key_node.start_mark)
        out.value_locs[key] = _loc(value_node.start_mark)
    return out


def _seq(loader: _Loader, node: yaml.SequenceNode) -> LocList:
    out = LocList()
    out.loc = _loc(node.start_mark)
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.item_locs.append(_loc(item.start_mark))
    return out


_Loader.add_constructor("tag:yaml.org,2002:map", _map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _seq)


def load(text: str, file: str) -> Any:
    """Parse YAML text; syntax errors become located :class:`MacscalcError`."""
    loader = _Loader(text)
    loader.file = file
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = _loc(mark) if mark else (None, None)
        raise MacscalcError(f"invalid YAML: {e.problem or e.context}", file, line, col) from None
    except yaml.YAMLError as e:
        raise MacscalcError(f"invalid YAML: {e}", file) from None
    finally:
        loader.dispose()
