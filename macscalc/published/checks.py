"""A count held against what a paper or a model zoo published about the same model: the
per-layer-type split (V1 Table 2) and the size of the published weight files.

Computed here, below rendering, so that a view only lays out what it is handed.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

from macscalc.analysis.counting import PARAM_CONVENTIONS, Convention, Report, count
from macscalc.analysis.memory import kb_cut, largest_per_resolution
from macscalc.core.units import pct
from macscalc.lang.graph import Network, build
from macscalc.published.tables import (
    MemoryTable,
    Split,
    WeightFile,
    families,
    load_family,
    load_split,
    weight_files,
)


class SplitCheck(NamedTuple):
    """The paper's per-type shares beside those computed at the paper's own settings."""

    split: Split
    rows: list[dict[str, Any]]  # type, kind, computed and paper % of MACs and params, agreement
    paper_macs_sum: Decimal
    paper_params_sum: Decimal


class FileCheck(NamedTuple):
    """Published weight files beside the numbers a file must store: every parameter part
    (BN running statistics too) at fp32. The rest of a file is serialization."""

    files: list[WeightFile]
    rows: list[dict[str, Any]]
    stored_numbers: int
    stored_bytes: int


class Checks(NamedTuple):
    """What was published about the counted model, checked; ``None`` where nothing applies."""

    split: SplitCheck | None
    files: FileCheck | None


def check(report: Report) -> Checks:
    return Checks(check_split(report), check_files(report))


def check_split(report: Report) -> SplitCheck | None:
    """The paper's split, when the report's α and size are the paper's (it is recounted
    with the paper's classes and parameter convention)."""
    spec = report.network.spec
    split = load_split(spec.name)
    s = report.network.settings
    if split is None or (s.alpha, s.size) != (split.alpha, (split.res, split.res)):
        return None
    ref = count(build(spec, split.alpha, (split.res, split.res), split.classes),
                Convention(split.params))
    shares = {k.label: k for k in ref.by_kind()}
    rows = []
    for r in split.rows:
        k = shares.get(r.label)
        m = pct(k.macs if k else 0, ref.macs)
        p = pct(k.params if k else 0, ref.params)
        rows.append({"type": r.type, "kind": r.label, "macs_pct": m, "paper_macs_pct": r.macs,
                     "macs_agrees": m == Decimal(r.macs), "params_pct": p,
                     "paper_params_pct": r.params, "params_agrees": p == Decimal(r.params)})
    return SplitCheck(split, rows, sum(Decimal(r.macs) for r in split.rows),
                      sum(Decimal(r.params) for r in split.rows))


def check_files(report: Report) -> FileCheck | None:
    """The published weight files of exactly the counted model (α 1, the spec's size and
    1000 classes, the same torch parameter count), if any."""
    net = report.network
    s = net.settings
    parts = report.param_parts
    torch = parts.total(PARAM_CONVENTIONS["torch"].parts)
    files = [f for f in weight_files(net.spec.name) if f.params == torch and s.alpha == 1
             and s.classes == 1000 and s.size == net.spec.size]
    if not files:
        return None
    stored = sum(parts) * 4
    rows = [{"weights": f.weights, "published_size": f.size, "unit": f.unit,
             "bytes": int(f.nbytes.to_integral_value(ROUND_HALF_UP)),
             "stored_numbers": sum(parts), "stored_bytes": stored, "source": f.source}
            for f in files]
    return FileCheck(files, rows, sum(parts), stored)


class MemoryCheck(NamedTuple):
    """The V2 paper's Table 3 (largest tensor per resolution, 16-bit) beside the count."""

    table: MemoryTable
    rows: list[dict[str, Any]]


def check_memory(network: Network) -> MemoryCheck | None:
    """The family's published memory table, at its own setting (α 1, 224), if any."""
    fam = network.spec.family
    s = network.settings
    if fam not in families() or (s.alpha, s.size) != (1, (224, 224)):
        return None
    ref = load_family(fam).memory
    if ref is None:
        return None
    found = {x.h: x.tensor for x in largest_per_resolution(network, ref.streaming) if x.h == x.w}
    rows = []
    for r in ref.rows:
        t = found.get(int(r.res)) if r.res != "max" else max(
            found.values(), key=lambda t: t.elements(ref.streaming))
        if t is None:
            continue
        nbytes = 2 * t.elements(ref.streaming)
        rows.append({"resolution": "max" if r.res == "max" else f"{r.res}×{r.res}",
                     "channels": t.shape.c if r.res != "max" else None,
                     "paper_channels": r.channels,
                     "channels_agree": None if r.channels is None else
                     t.shape.c == int(r.channels),
                     "kb": kb_cut(nbytes), "paper_kb": r.kb,
                     "kb_agree": kb_cut(nbytes) == Decimal(r.kb), "bytes": nbytes})
    return MemoryCheck(ref, rows)
