"""Measured latencies in, a device profile out: ``macscalc calibrate``.

The CSV has the header ``spec,alpha,res,classes,ms`` (further columns, such as the
spread ``measure`` writes, are kept but not used); ``spec`` is a built-in name or a
spec path (relative to the CSV's folder or the working directory); res is R (an R×R
input) or HxW (LR-ASPP's 1024x2048); empty alpha, res or classes mean the spec's
defaults. Lines starting with ``#`` are comments and say
what measured the data; the profile keeps them. Every mistake is ``file:line:column``.
"""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from macscalc.analysis.kernels import AVX2_BLOCK, BLOCK, MAX_BLOCK
from macscalc.core.errors import MacscalcError, show
from macscalc.core.limits import MAX_CHANNELS, MAX_CSV_ROWS, MAX_SIZE

if TYPE_CHECKING:
    from macscalc.analysis.latency import Profile
    from macscalc.lang.graph import Network

CSV_COLUMNS = ("spec", "alpha", "res", "classes", "ms")


class Measurement(NamedTuple):
    """One CSV row: a spec with its settings and, unless it is a grid to measure, its ms."""

    spec: str
    alpha: Fraction | None  # None: the spec's own (its ``alpha:``, else 1)
    res: int | tuple[int, int] | None  # R (square) or (H, W); None: the spec's own
    classes: int | None
    ms: float | None
    file: str | None = None
    line: int | None = None

    def label(self) -> str:
        from macscalc.core.units import fmt_alpha

        alpha = f" α{fmt_alpha(self.alpha)}" if self.alpha is not None else ""
        return f"{Path(self.spec).stem}{alpha}" + (
            f" {size_text(self.size, '×')}" if self.size else "")

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.res, self.res) if isinstance(self.res, int) else self.res

    def network(self, base: Path | None = None) -> Network:
        """The network this row names; a spec that fails is located at the row."""
        from macscalc.core.files import inside
        from macscalc.lang.graph import build
        from macscalc.lang.spec import is_file, load_spec

        ref = self.spec
        if base is not None and is_file(base / ref):
            ref = str(base / ref)
        try:
            if self.file is not None and is_file(Path(ref)):  # a file a CSV names, as base:
                if not ref.endswith((".yaml", ".yml")):
                    raise MacscalcError("a spec file named in a CSV ends in .yaml or .yml")
                inside(Path(ref), (base or Path.cwd(), Path.cwd()), "the CSV's folder and the "
                       "current folder", None, "the spec file")
            return build(load_spec(ref), self.alpha, self.size, self.classes)
        except MacscalcError as e:
            if self.file is None:
                raise
            raise MacscalcError(f"spec {show(self.spec)}: {e}", self.file, self.line,
                                1) from None


def _starts(line: str) -> list[int]:
    """1-based column where each comma-separated field starts (quotes respected)."""
    starts, quoted = [1], False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            starts.append(i + 2)
    return starts


def size_text(size: tuple[int, int], by: str = "x") -> str:
    """An input size as the CSV's res cell writes it: R when square, else HxW (so that a
    non-square input, LR-ASPP's 1024×2048, reads back as itself)."""
    return str(size[0]) if size[0] == size[1] else f"{size[0]}{by}{size[1]}"


def _square(network: Network) -> int | None:
    """A network's res as reports give it: R for an R×R input, else None (its label says
    H×W)."""
    h, w = network.settings.size
    return h if h == w else None


def _size(text: str) -> int | tuple[int, int]:
    h, x, w = text.partition("x")
    if not x:
        return _positive_int(text, "res", MAX_SIZE)
    try:
        return (_positive_int(h, "res", MAX_SIZE), _positive_int(w, "res", MAX_SIZE))
    except ValueError:
        raise ValueError(f"res must be R or HxW, each a positive integer up to "
                         f"{MAX_SIZE:,}, got {show(text)}") from None


def _positive_int(text: str, what: str, most: int) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= most:
        raise ValueError(f"{what} must be a positive integer up to {most:,}, got {show(text)}")
    return int(text)


def _lines(path: Path) -> list[str]:
    """The CSV's lines: a regular UTF-8 file of at most 1 MiB, in its folder or the current
    one once links are followed (a link cannot make a run print some other file)."""
    from macscalc.core.files import inside
    from macscalc.core.yamlload import read_text

    file = str(path)
    inside(path, (path.parent, Path.cwd()), "its folder and the current folder", file,
           f"measurements {show(file)}")
    return read_text(path, file, "measurements").splitlines()


FIGURES = {"median": "ms", "min": "min_ms"}  # calibrate --figure: the column it fits


def read_measurements(path: Path, need_ms: bool = True, figure: str = "median"
                      ) -> list[Measurement]:
    """The rows of a measurement CSV (``need_ms=False``: a grid to measure, ms optional),
    at most ``MAX_CSV_ROWS``, each value within the limits a spec's options have;
    ``figure`` names the column taken as the latency (``FIGURES``)."""
    from macscalc.core.units import parse_alpha, parse_ms

    file = str(path)
    lines = _lines(path)
    rows = [(i, line) for i, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")]
    if len(rows) > MAX_CSV_ROWS + 1:
        raise MacscalcError(f"more than {MAX_CSV_ROWS:,} rows of measurements", file,
                            rows[MAX_CSV_ROWS + 1][0], 1)
    if not rows:
        raise MacscalcError(f"no header: expected {','.join(CSV_COLUMNS)}", file, 1, 1)
    head_line, head_text = rows[0]
    header = [h.strip() for h in next(csv.reader([head_text]))]
    required = CSV_COLUMNS if need_ms else CSV_COLUMNS[:4]
    for j, name in enumerate(required):
        if j >= len(header) or header[j] != name:
            col = _starts(head_text)[j] if j < len(header) else len(head_text) + 1
            raise MacscalcError(f"the header must start {','.join(required)}; column {j + 1} "
                                f"is {show(header[j]) if j < len(header) else 'missing'}",
                                file, head_line, col)
    has_ms = len(header) > 4 and header[4] == "ms"
    ms_col = 4
    if figure != "median":
        if FIGURES[figure] not in header:
            raise MacscalcError(f"--figure {figure} needs a {FIGURES[figure]!r} column (as "
                                "measure writes)", file, head_line, len(head_text) + 1)
        ms_col = header.index(FIGURES[figure])
    out = []
    for line_no, text in rows[1:]:
        cells = [c.strip() for c in next(csv.reader([text]))]
        starts = _starts(text)
        if len(cells) != len(header):
            col = starts[min(len(cells), len(header))] if len(cells) > len(header) else \
                len(text) + 1
            raise MacscalcError(f"{len(cells)} fields where the header has {len(header)}",
                                file, line_no, col)
        try:
            column = 0
            if not cells[0]:
                raise ValueError("spec must name a built-in spec or a spec file")
            column = 1
            alpha = parse_alpha(cells[1]) if cells[1] else None
            column = 2
            res = _size(cells[2]) if cells[2] else None
            column = 3
            classes = _positive_int(cells[3], "classes", MAX_CHANNELS) if cells[3] else None
            column = ms_col
            ms = parse_ms(cells[ms_col], "ms") if has_ms and (need_ms or cells[ms_col]) else None
        except (ValueError, MacscalcError) as e:
            message = e.message if isinstance(e, MacscalcError) else str(e)
            raise MacscalcError(message, file, line_no, starts[column]) from None
        out.append(Measurement(cells[0], alpha, res, classes, ms, file, line_no))
    if not out:
        raise MacscalcError("no measurements after the header", file, head_line, 1)
    return out


def comments(path: Path) -> list[str]:
    """The CSV's comment lines (what measured it), without the ``#``."""
    return [line.lstrip()[1:].strip() for line in _lines(path) if line.lstrip().startswith("#")]


DW_HEAVY = 0.10  # a model whose depthwise MACs are at least this share of its MACs


class Calibration(NamedTuple):
    profile: Profile
    rows: list[dict[str, Any]]  # each measurement with its fitted and held-out prediction
    warnings: list[str]


def _identifiability(x: list[list[float]], ms: list[float], prior: str | None = None
                     ) -> list[str]:
    """Terms the rows cannot pin down: absent from every row, or moving in step with the
    others (one column nearly a combination of the rest, on the relative-error scale)."""
    import numpy as np

    from macscalc.analysis.latency import TERMS

    a = np.asarray(x, dtype=float) / np.asarray(ms, dtype=float)[:, None]
    out = []
    for j, term in enumerate(TERMS):
        col = a[:, j]
        if not col.any():
            tied = next((t for t in TERMS if t.name == term.tie), None)
            out.append(f"no row has {term.what}: {term.key} is not fitted ("
                       + (f"kept at the {prior} profile's proportion)" if prior else
                          f"taken as {tied.key})" if tied else "0 cost)"))
            continue
        others = np.delete(a, j, axis=1)
        fitted = others @ np.linalg.lstsq(others, col, rcond=None)[0]
        if np.linalg.norm(col - fitted) < 0.02 * np.linalg.norm(col):
            out.append(f"{term.what} move in step with the other terms in these rows: the fit "
                       f"cannot tell {term.key} apart from them")
    return out


def dw_share(f: dict[str, float]) -> float:
    """The depthwise share of a network's MACs, in %."""
    macs = sum(v for k, v in f.items() if k.startswith("macs_"))
    return 100 * f["macs_dw"] / max(macs, 1)


def calibrate(measured: list[Measurement], name: str, device: str, fitted_on: str,
              base: Path | None = None, prior: Profile | None = None,
              block: int = BLOCK) -> Calibration:
    """Fit a profile to measurements, with in-sample and leave-one-out errors; spec paths
    are looked up in ``base`` first; ``prior``: see ``latency.fit``; ``block``: the
    measuring runtime's layout block."""
    networks = [m.network(base) for m in measured]
    if len(measured) < 2:
        raise MacscalcError(f"calibrate needs at least 2 measured rows (each is predicted "
                            f"from the others), got {len(measured)}",
                            measured[0].file if measured else None)
    return calibrate_networks(networks, [m.ms for m in measured], name, device, fitted_on,
                              [m.spec for m in measured], [m.line for m in measured], prior,
                              block)


def calibrate_networks(networks: list[Network], ms: list[float], name: str, device: str,
                       fitted_on: str, labels: list[str], lines: list[int | None],
                       prior: Profile | None = None, block: int = BLOCK) -> Calibration:
    """The fit itself, on placed networks (whole models, or ``auto``'s single layers),
    pulled toward ``prior``'s proportions where the rows leave a constant loose."""
    from macscalc.analysis.latency import (
        TERMS,
        Errors,
        Profile,
        features,
        fit,
        kinds,
        leave_one_out,
        predict,
        prior_strength,
        term_ties,
    )

    feats = [features(n, block) for n in networks]
    x = [[f[t.name] for t in TERMS] for f in feats]
    ties = term_ties()
    start = prior.coefs() if prior is not None else None
    strength = prior_strength(x, ms, start) if start is not None else None
    coefs = fit(x, ms, ties, start, strength)
    fitted = [predict(coefs, row) for row in x]
    held_out = leave_one_out(x, ms, ties, start, strength)
    if prior is not None:
        fitted_on += (f"; pulled toward the {prior.name} profile's proportions with strength "
                      f"{strength:g}, chosen by leave-one-out (--prior)")
    profile = Profile(
        name=name, device=device,
        constants={t.key: t.constant(c) for t, c in zip(TERMS, coefs, strict=True)},
        kinds=tuple(sorted(set().union(*(kinds(n) for n in networks)))),
        rows=len(ms), in_sample=Errors.of(fitted, ms), loo=Errors.of(held_out, ms),
        fitted_on=fitted_on, block=block)
    rows = [{"spec": label, "alpha": n.settings.alpha, "res": _square(n),
             "line": line, "ms": t, "fitted_ms": f, "error_pct": 100 * (f / t - 1),
             "loo_ms": h, "loo_error_pct": 100 * (h / t - 1), "dw_share_pct": dw_share(feat),
             "_warn": abs(h / t - 1) > 0.1}
            for label, line, n, feat, t, f, h in zip(labels, lines, networks, feats, ms, fitted,
                                                     held_out, strict=True)]
    warnings = []
    if len(ms) < 2 * len(TERMS):
        loose = (f"the constants they leave loose keep the {prior.name} profile's proportions"
                 if prior is not None else "too few to fit them")
        warnings.append(f"only {len(ms)} rows for {len(TERMS)} constants: {loose}, and too "
                        f"few to judge the fit; measure at least {2 * len(TERMS)} (macscalc "
                        "calibrate --suggest picks the models that pin them best)")
    if not any(row["dw_share_pct"] >= 100 * DW_HEAVY for row in rows):
        warnings.append(f"no depthwise-heavy model (depthwise ≥ {100 * DW_HEAVY:.0f} % of "
                        "MACs): the depthwise rate rests on small differences; add one, such "
                        "as mobilenet_v2 at α 0.35 or mobilenet_v3_small")
    warnings += _identifiability(x, ms, prior.name if prior is not None else None)
    return Calibration(profile, rows, warnings)


def fit_split(networks: list[Network], ms: list[float], labels: list[str], held: list[bool],
              fitted_on: str, name: str = "auto", device: str | None = None,
              block: int = BLOCK) -> Calibration:
    """Fit on the rows not ``held`` out and predict those (``calibrate --auto``). Each row
    is a graph of its own; its fixed cost per run is left to the per-kernel term, not
    fitted apart: a graph of 3–35 kernels cannot tell the two apart, and kernels inside a
    whole network cost more than alone (a separate per-graph term took the per-kernel cost
    to 0.2 µs here and put MicroNet 23–37 % low; without it 0.9 µs)."""
    from macscalc.analysis.latency import (
        TERMS,
        Errors,
        Profile,
        features,
        fit,
        kinds,
        predict,
        term_ties,
    )

    feats = [features(n, block) for n in networks]
    x = [[f[t.name] for t in TERMS] for f in feats]
    fit_rows = [i for i, h in enumerate(held) if not h]
    coefs = fit([x[i] for i in fit_rows], [ms[i] for i in fit_rows], term_ties())
    pred = [predict(coefs, row) for row in x]
    test = [i for i, h in enumerate(held) if h]
    profile = Profile(
        name=name, device=device or "this machine (calibrate --auto)",
        constants={t.key: t.constant(c) for t, c in zip(TERMS, coefs, strict=True)},
        kinds=tuple(sorted(set().union(*(kinds(networks[i]) for i in fit_rows)))),
        rows=len(fit_rows), in_sample=Errors.of([pred[i] for i in fit_rows],
                                                [ms[i] for i in fit_rows]),
        loo=Errors.of([pred[i] for i in test], [ms[i] for i in test]), fitted_on=fitted_on,
        block=block)
    rows = [{"spec": label, "alpha": n.settings.alpha, "res": _square(n), "line": i + 1,
             "ms": t, "fitted_ms": p, "error_pct": 100 * (p / t - 1), "loo_ms": p,
             "loo_error_pct": 100 * (p / t - 1), "dw_share_pct": dw_share(f),
             "set": "held out" if h else "fit", "_warn": h and abs(p / t - 1) > 0.1}
            for i, (label, n, f, t, p, h) in enumerate(zip(labels, networks, feats, ms, pred,
                                                            held, strict=True))]
    return Calibration(profile, rows, _identifiability([x[i] for i in fit_rows],
                                                       [ms[i] for i in fit_rows]))


def layout_block_of(notes: list[str]) -> int | None:
    """The layout block a CSV's ``layout:`` comment gives (``measure`` writes it)."""
    import re

    for n in notes:
        m = re.match(r"layout: .*? (\d{1,3}) channels a block", n)
        if m and 0 <= int(m.group(1)) <= MAX_BLOCK:
            return int(m.group(1))
    return None


def block_misfits(networks: list[Network], ms: list[float], prior: Profile
                  ) -> dict[int, float]:
    """For each of MLAS's layout blocks, how badly the prior's proportions explain the
    rows under it (``latency.prior_misfit``, MAPE %)."""
    from macscalc.analysis.latency import TERMS, features, prior_misfit

    return {b: prior_misfit([[features(n, b)[t.name] for t in TERMS] for n in networks], ms,
                            prior.coefs()) for b in (AVX2_BLOCK, BLOCK)}


def calibrate_file(path: Path, name: str | None = None, figure: str = "median",
                   prior: Profile | None = None) -> Calibration:
    """``macscalc calibrate``: the CSV's rows; its comments say what measured them, and
    the layout block. Where they name none (a file from elsewhere, or ``--suggest``'s
    picks with their times filled in), the block is MLAS's 8 or 16: with no more rows
    than constants, whichever lets the prior's proportions explain the rows better
    (``latency.prior_misfit``; such rows fit themselves with either block, and their
    leave-one-out error judges the pull more than the block), else whichever gives the
    lower leave-one-out error."""
    from macscalc.analysis.latency import TERMS

    notes = comments(path)
    machine = next((n.split(":", 1)[1].strip() for n in notes if n.startswith("machine:")), None)
    measured = read_measurements(path, figure=figure)
    what = "" if figure == "median" else f", the {figure} of each row's runs"
    fitted_on = f"{path.name}, {len(measured)} rows{what}" + (f" ({'; '.join(notes)})"
                                                            if notes else "")

    def fitted(block: int) -> Calibration:
        return calibrate(measured, name or path.stem, machine or f"measured in {path.name}",
                         fitted_on, path.parent, prior, block)

    block = layout_block_of(notes)
    if block is not None:
        return fitted(block)
    fits = {b: fitted(b) for b in (AVX2_BLOCK, BLOCK)}
    if prior is not None and len(measured) <= len(TERMS):
        misfit = block_misfits([m.network(path.parent) for m in measured],
                               [m.ms for m in measured], prior)
        why = f"the {prior.name} profile's proportions explain the rows better"
    else:
        misfit = {b: fits[b].profile.loo.mape for b in fits}
        why = "the rows' leave-one-out error is lower"
    best = min(fits, key=lambda b: misfit[b])
    other = AVX2_BLOCK if best == BLOCK else BLOCK
    cal = fits[best]
    how = (f"; layout block {best}: the file names none, and {why} with {best} channels a "
           f"block than with {other} (MAPE {misfit[best]:.1f} % against {misfit[other]:.1f} %)")
    return cal._replace(profile=cal.profile._replace(fitted_on=cal.profile.fitted_on + how),
                        warnings=[*cal.warnings, how.removeprefix("; ")])
