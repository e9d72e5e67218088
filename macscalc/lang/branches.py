"""A block written as parallel branches: ``branches:`` instead of ``layers:``.

Inception modules are a handful of short paths from one input, concatenated; torchvision
holds each as a ``branch…`` attribute. Written one branch a line, as a flow list of rows,
a module reads like the paper's figure. The branches are rewritten here into the rows
the same block takes written out (each branch's first row ``from: input``, its last
named, then one ``concat``), so counts, names and exports see nothing new.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from macscalc.core.errors import MacscalcError
from macscalc.core.yamlload import Loc, LocDict, LocList

Fail = Callable[[str, Loc], MacscalcError]


def branch_rows(branches: Any, loc: Loc, what: str, fail: Fail) -> LocList:
    """The rows of a block written as ``branches``: every branch reads the block's input
    (unless its first row says ``from:``), and the branches' outputs are concatenated in
    the order written. An ``if:`` on a branch's first row leaves out the whole branch,
    which the concat then skips; anywhere else in a branch it is refused, as is ``n`` on
    the first of several rows: the rows after a dropped one would read another branch."""
    if not isinstance(branches, LocList) or len(branches) < 2:
        raise fail(f"'branches' of {what} must be a list of two or more branches, each a "
                   "list of rows such as [conv: {c: 48, k: 1}, conv: {c: 64, k: 5}]", loc)
    out = LocList()
    out.loc = branches.loc
    ends = LocList()
    ends.loc = branches.loc
    for j, (branch, at) in enumerate(zip(branches, branches.item_locs, strict=True), 1):
        if not isinstance(branch, LocList) or not branch:
            raise fail(f"branch {j} of {what} must be a non-empty list of rows, e.g. "
                       "[conv: {c: 64, k: 1}]", at)
        rows = [_body(row, row_loc) for row, row_loc in zip(branch, branch.item_locs,
                                                            strict=True)]
        first = rows[0][1]
        if first is not None and "n" in first and len(rows) > 1:
            raise fail(f"'n' on the first row of branch {j} of {what}: at 0 the next row "
                       "would read another branch; give the repeats a later row, or a "
                       "block of their own", first.key_locs["n"])
        for _, body in rows[1:]:
            if body is not None and "if" in body:
                raise fail(f"'if' in branch {j} of {what} may be written only on its first "
                           "row, where it leaves out the whole branch", body.key_locs["if"])
        if first is not None:
            _set(first, "from", "input", at, keep=True)
            if "if" in first:
                for _, body in rows[1:]:
                    if body is not None:
                        _set(body, "if", first["if"], first.value_locs["if"], keep=False)
        last = rows[-1][1]
        name = f"branch{j}"
        if last is not None:
            _set(last, "name", name, at, keep=True)
            name = last["name"]
        for (row, _), row_loc in zip(rows, branch.item_locs, strict=True):
            out.append(row)
            out.item_locs.append(row_loc)
        ends.append(name)
        ends.item_locs.append(at)
    concat = LocDict()
    concat.loc = loc
    _set(concat, "from", ends, loc, keep=False)
    out.append(_mapping({"concat": concat}, loc))
    out.item_locs.append(loc)
    return out


def _body(row: Any, loc: Loc) -> tuple[Any, LocDict | None]:
    """A row and its arguments, to amend; a bare kind (``flatten``) becomes ``{flatten: {}}``.
    A row of another shape is left as written, for the row reader's error."""
    if isinstance(row, str):
        body = _mapping({}, loc)
        return _mapping({row: body}, loc), body
    if isinstance(row, LocDict) and len(row) == 1:
        kind = next(iter(row))
        if row[kind] is None:
            row[kind] = _mapping({}, row.value_locs[kind])
        if isinstance(row[kind], LocDict):
            return row, row[kind]
    return row, None


def _set(m: LocDict, key: str, value: Any, loc: Loc, keep: bool) -> None:
    """``m[key] = value``, located at ``loc``; unless ``keep`` and the row writes its own."""
    if keep and key in m:
        return
    m[key] = value
    m.key_locs[key] = m.value_locs[key] = loc


def _mapping(items: dict[str, Any], loc: Loc) -> LocDict:
    out = LocDict()
    out.loc = loc
    for k, v in items.items():
        _set(out, k, v, loc, keep=False)
    return out
