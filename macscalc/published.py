"""Published tables, and whether a computed count agrees with them.

Each family's figures live in ``macscalc/data/<family>.yaml``, one table per source,
each with the convention under which its figures are reproduced (classes, parameter
convention, how the table rounds). A figure agrees when the computed count, rounded
the table's way to the published number of decimals, equals it. Loaded only by the
commands that show published numbers.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

from macscalc.counting import PARAM_CONVENTIONS, ParamConvention
from macscalc.errors import MacscalcError
from macscalc.yamlload import LocDict, load

DATA_DIR = Path(__file__).resolve().parent / "data"
ROUNDING = {"nearest": ROUND_HALF_UP, "truncate": ROUND_DOWN}


class PubRow(NamedTuple):
    alpha: Fraction
    res: int
    macs: str | None = None  # millions, as published
    params: str | None = None  # millions, as published
    top1: str | None = None
    top5: str | None = None
    latency: str | None = None  # ms on the table's device
    ref: str | None = None  # which of the source's tables


class PubTable(NamedTuple):
    id: str
    title: str
    source: str
    classes: int
    params: ParamConvention
    rounding: str
    rows: tuple[PubRow, ...]
    latency: str | None = None
    notes: str = ""

    def convention(self) -> str:
        return (
            f"{self.classes} classes; params = {self.params.name}; "
            f"figures {'cut' if self.rounding == 'truncate' else 'rounded'} "
            f"to the published digits"
        )

    def find(self, alpha: Fraction, res: int) -> PubRow | None:
        return next((r for r in self.rows if r.alpha == alpha and r.res == res), None)


class SplitRow(NamedTuple):
    type: str
    label: str
    macs: str
    params: str


class Split(NamedTuple):
    """A paper's per-layer-type share of MACs and params (V1 Table 2)."""

    title: str
    source: str
    alpha: Fraction
    res: int
    classes: int
    params: ParamConvention
    rows: tuple[SplitRow, ...]
    notes: str = ""


class Family(NamedTuple):
    family: str
    spec: str
    title: str
    tables: tuple[PubTable, ...]
    split: Split | None = None

    @property
    def primary(self) -> PubTable:
        return self.tables[0]


def agrees(published: str, computed: int, rounding: str, unit: int = 10**6) -> bool:
    """Does ``computed`` (an exact count) round to ``published`` (in ``unit``s)?"""
    target = Decimal(published)
    value = (Decimal(computed) / unit).quantize(target, rounding=ROUNDING[rounding])
    return value == target


def families() -> list[str]:
    return sorted(p.stem for p in DATA_DIR.glob("*.yaml"))


def load_family(name: str) -> Family:
    path = DATA_DIR / f"{name}.yaml"
    if not path.is_file():
        raise MacscalcError(f"no published tables for {name!r} (known: {', '.join(families())})")
    file = f"macscalc/data/{path.name}"
    doc = load(path.read_text(encoding="utf-8"), file)
    try:
        return Family(
            family=doc["family"],
            spec=doc["spec"],
            title=doc["title"],
            tables=tuple(_table(t) for t in doc["tables"]),
            split=_split(doc["split"]) if "split" in doc else None,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise MacscalcError(f"malformed published data: {e!r}", file) from None


def _row(cls: type, d: LocDict, **fixed: Any) -> Any:
    values = {k: (str(v) if isinstance(v, (int, float)) else v) for k, v in d.items()}
    values.update(fixed)
    return cls(**values)


def _table(d: LocDict) -> PubTable:
    if d["rounding"] not in ROUNDING:
        raise ValueError(f"rounding {d['rounding']!r}")
    rows = tuple(
        _row(PubRow, r, alpha=Fraction(str(r["alpha"])), res=int(r["res"])) for r in d["rows"]
    )
    return PubTable(
        id=d["id"],
        title=d["title"],
        source=d["source"],
        classes=d["classes"],
        params=PARAM_CONVENTIONS[d["params"]],
        rounding=d["rounding"],
        rows=rows,
        latency=d.get("latency"),
        notes=d.get("notes", ""),
    )


def _split(d: LocDict) -> Split:
    return Split(
        title=d["title"],
        source=d["source"],
        alpha=Fraction(str(d["alpha"])),
        res=d["res"],
        classes=d["classes"],
        params=PARAM_CONVENTIONS[d["params"]],
        rows=tuple(_row(SplitRow, r) for r in d["rows"]),
        notes=d.get("notes", ""),
    )
