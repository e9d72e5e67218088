"""Published tables, and whether a computed count agrees with them.

Each family's figures live in ``macscalc/data/<family>.yaml``, one table per source,
each with the convention under which its figures are reproduced (classes, parameter
convention, extra operations the source counts as multiply-adds, how it rounds). A
figure agrees when the computed count, rounded the table's way to the published number
of decimals, equals it. Loaded only by the commands that show published numbers.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

from macscalc.analysis.counting import PARAM_CONVENTIONS, ParamConvention
from macscalc.core.errors import MacscalcError, show
from macscalc.core.units import fmt_alpha
from macscalc.core.yamlload import LocDict, load
from macscalc.lang.graph import Network
from macscalc.lang.spec import Spec

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
ROUNDING = {"nearest": ROUND_HALF_UP, "truncate": ROUND_DOWN}


class PubRow(NamedTuple):
    spec: str
    alpha: Fraction
    res: int
    model: str
    macs: str | None = None  # millions, as published
    params: str | None = None  # millions, as published
    top1: str | None = None
    top5: str | None = None
    latency: dict[str, str] = {}  # device id → ms, as published
    ref: str | None = None  # which of the source's tables
    output_stride: int | None = None  # the backbone's output stride (segmentation)
    mf: bool = False  # multi-scale + flip: the count summed over the table's mf_sizes, × 2
    width: int | None = None  # the input's width when it is not square (res is its height)

    @property
    def point(self) -> tuple[str, Fraction, int]:
        return (self.spec, self.alpha, self.res)


class PubTable(NamedTuple):
    id: str
    title: str
    source: str
    classes: int
    params: ParamConvention
    rounding: str
    rows: tuple[PubRow, ...]
    devices: dict[str, str] = {}  # device id → what the latency was measured on
    macs_include: tuple[str, ...] = ()  # extra-op categories the source counts as MAdds
    notes: str = ""
    macs_unit: str = "M"  # M or G: the unit of the published MACs
    metric: str = "top-1"  # the accuracy column (mAP for detection)
    scope: str = "all"  # all, or head: only what the spec adds to its base
    atrous: str = "dense"  # dense, or space_to_batch: dilated convs as TF computes them
    mf_sizes: tuple[int, ...] = ()  # input sides of a multi-scale (MF) evaluation

    @property
    def unit(self) -> int:
        return 10**9 if self.macs_unit == "G" else 10**6

    def convention(self) -> str:
        extra = (f"MAdds = MACs + {' + '.join(self.macs_include)} multiply-adds; "
                 if self.macs_include else "")
        scope = "the head only (no backbone); " if self.scope == "head" else ""
        if self.atrous == "space_to_batch":
            scope += ("dilated convs counted as TF runs them (space-to-batch: every position "
                      "of the padded, rate-aligned blocks); ")
        if self.mf_sizes:
            scope += (f"MF rows: 2 × (flip) the sum over inputs "
                      f"{', '.join(map(str, self.mf_sizes))}; ")
        return (f"{extra}{scope}{self.classes} classes; params = {self.params.name}; figures "
                f"{'cut' if self.rounding == 'truncate' else 'rounded'} to the published digits")

    def find(self, point: tuple[str, Fraction, int]) -> PubRow | None:
        return next((r for r in self.rows if r.point == point), None)


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


class MemoryRow(NamedTuple):
    res: str  # a side in pixels, or "max"
    kb: str
    channels: str | None = None


class MemoryTable(NamedTuple):
    """A paper's largest tensor per resolution (the V2 paper's Table 3)."""

    title: str
    source: str
    streaming: bool
    rows: tuple[MemoryRow, ...]
    notes: str = ""


class WeightFile(NamedTuple):
    """A published file of pretrained weights for a built-in spec (α 1, its input size)."""

    spec: str
    weights: str
    params: int  # under the torch convention, with the source's classes
    size: str  # as published, in ``unit``
    unit: str
    source: str

    @property
    def nbytes(self) -> Decimal:
        return Decimal(self.size) * (2**20 if self.unit == "MiB" else 10**6)


class Family(NamedTuple):
    family: str
    spec: str
    title: str
    tables: tuple[PubTable, ...]
    compare: str | None = None  # a table of other models to set beside the primary rows
    memory: MemoryTable | None = None
    sections: bool = False  # show every table on its own (sources about different models)

    @property
    def primary(self) -> PubTable:
        return self.tables[0]

    @property
    def sources(self) -> tuple[PubTable, ...]:
        """Tables that speak about the primary rows' models (all but the comparison)."""
        return tuple(t for t in self.tables[1:] if t.id != self.compare)

    @property
    def comparison(self) -> PubTable | None:
        return next((t for t in self.tables if t.id == self.compare), None)


def agrees(published: str, computed: int, rounding: str, unit: int = 10**6) -> bool:
    """Does ``computed`` (an exact count) round to ``published`` (in ``unit``s)?"""
    target = Decimal(published)
    value = (Decimal(computed) / unit).quantize(target, rounding=ROUNDING[rounding])
    return value == target


def families() -> list[str]:
    return sorted(p.stem for p in DATA_DIR.glob("*.yaml"))


def load_family(name: str) -> Family:
    path = DATA_DIR / f"{name}.yaml"
    if name not in families():
        raise MacscalcError(f"no published tables for {show(name)} (known: "
                            f"{', '.join(families())})")
    file = f"macscalc/data/{path.name}"
    doc = load(path.read_text(encoding="utf-8"), file)
    try:
        return Family(
            family=doc["family"], spec=doc["spec"], title=doc["title"],
            tables=tuple(_table(t, doc["family"], doc["spec"]) for t in doc["tables"]),
            compare=doc.get("compare"),
            memory=_memory(doc["memory"]) if "memory" in doc else None,
            sections=bool(doc.get("sections", False)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise MacscalcError(f"malformed published data: {e!r}", file) from None


def _text(v: Any) -> Any:
    return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def _pub_row(d: LocDict, family: str, spec: str) -> PubRow:
    alpha = Fraction(str(d["alpha"]))
    values = {k: _text(v) for k, v in d.items()}
    values["latency"] = {k: _text(v) for k, v in d.get("latency", {}).items()}
    for key in ("output_stride", "width"):
        if key in d:
            values[key] = int(d[key])
    values.update(spec=d.get("spec", spec), alpha=alpha, res=int(d["res"]),
                  model=d.get("model", f"{family}_{fmt_alpha(alpha)}_{d['res']}"))
    return PubRow(**values)


def _table(d: LocDict, family: str, spec: str) -> PubTable:
    if d["rounding"] not in ROUNDING:
        raise ValueError(f"rounding {d['rounding']!r}")
    return PubTable(
        id=d["id"], title=d["title"], source=d["source"], classes=d["classes"],
        params=PARAM_CONVENTIONS[d["params"]], rounding=d["rounding"],
        rows=tuple(_pub_row(r, family, spec) for r in d["rows"]),
        devices=dict(d.get("devices", {})), macs_include=tuple(d.get("macs_include", ())),
        notes=d.get("notes", ""), macs_unit=d.get("macs_unit", "M"),
        metric=d.get("metric", "top-1"), scope=d.get("scope", "all"),
        atrous=d.get("atrous", "dense"), mf_sizes=tuple(d.get("mf_sizes", ())))


def _memory(d: LocDict) -> MemoryTable:
    return MemoryTable(title=d["title"], source=d["source"], streaming=d["streaming"],
                       rows=tuple(MemoryRow(**{k: _text(v) for k, v in r.items()})
                                  for r in d["rows"]), notes=d.get("notes", ""))


def load_split(spec_name: str) -> Split | None:
    """A paper's per-layer-type split for a spec (``data/splits/<spec>.yaml``), if any. A
    spec's name is looked up among the files there, never used as a path: it comes from
    the spec, which may be hostile."""
    path = DATA_DIR / "splits" / f"{spec_name}.yaml"
    if spec_name not in {p.stem for p in path.parent.glob("*.yaml")}:
        return None
    file = f"macscalc/data/splits/{path.name}"
    try:
        return _split(load(path.read_text(encoding="utf-8"), file))
    except (KeyError, TypeError, ValueError) as e:
        raise MacscalcError(f"malformed split data: {e!r}", file) from None


def _split(d: LocDict) -> Split:
    return Split(title=d["title"], source=d["source"], alpha=Fraction(str(d["alpha"])),
                 res=d["res"], classes=d["classes"], params=PARAM_CONVENTIONS[d["params"]],
                 rows=tuple(SplitRow(**{k: _text(v) for k, v in r.items()}) for r in d["rows"]),
                 notes=d.get("notes", ""))


def weight_files(spec_name: str) -> list[WeightFile]:
    """Published weight files of a spec (``data/files/*.yaml``)."""
    out = []
    for path in sorted((DATA_DIR / "files").glob("*.yaml")):
        file = f"macscalc/data/files/{path.name}"
        doc = load(path.read_text(encoding="utf-8"), file)
        try:
            out += [WeightFile(f["spec"], f["weights"], int(f["params"]), _text(f["size"]),
                               doc["unit"], doc["source"])
                    for f in doc["files"] if f["spec"] == spec_name]
        except (KeyError, TypeError, ValueError) as e:
            raise MacscalcError(f"malformed weight file data: {e!r}", file) from None
    return out


def published_latency(network: Network, device: str) -> tuple[str, str] | None:
    """The published latency of this model on ``device`` (ms as printed, source)."""
    spec, s = network.spec, network.settings
    if spec.family not in families() or s.size[0] != s.size[1]:
        return None
    point = (spec.name, s.alpha, s.size[0])
    for table in load_family(spec.family).tables:
        row = table.find(point)
        if row is not None and device in row.latency:
            return row.latency[device], table.source
    return None


class Accuracy(NamedTuple):
    values: dict[tuple[Fraction, int], str]  # (α, R) → published accuracy, as printed
    metric: str  # top-1 (mAP for detection)
    source: str


def published_accuracy(spec: Spec) -> Accuracy | None:
    """The published accuracy of the spec's name by (α, R): from its family's primary
    table, or for a spec without a family, from the first family that lists it (the zoo)."""
    known = families()
    for name in [spec.family] if spec.family in known else known:
        table = load_family(name).primary
        values = {(r.alpha, r.res): r.top1 for r in table.rows
                  if r.spec == spec.name and r.top1}
        if values:
            return Accuracy(values, table.metric, table.source)
    return None
