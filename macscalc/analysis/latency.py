"""Latency estimates from the kernels a network runs, with a device profile.

Why per kernel: a model of whole-network totals fits the family it was calibrated on and
misses others (AlexNet's 61 M FC weights streamed once, channel shuffles and splits,
5×5 depthwise convs that do more MACs per second than 3×3). Here each kernel the runtime
runs (``kernels.py``: fusions, layouts and layout conversions as onnxruntime applies
them) costs::

    t = Σ_class MACs_class / R_class + depthwise planes / R_plane
        + other channel planes / R_planes + exp elements / R_exp
        + resized elements / R_resize + strided im2col elements / R_strided
        + conv and FC activation bytes / B
        + bytes of memory-bound kernels / B_pass + weight bytes / B_w
        + bytes from memory / B_mem + τ_kernel

with MACs by class (1×1 and FC, dense k×k, grouped k×k, depthwise, and a 1×1 conv that
reads a plain input narrower than a layout block directly, onnxruntime's slowest conv
kernel; whole blocks of channels where the layout holds them, less the kernel rows a
blocked conv skips in the padding), depthwise channel planes (a depthwise conv pays per
plane as well as per MAC: a 5×5 does more MACs per second than a 3×3, a 7×7 map with
many channels fewer), the channel planes a plain kernel steps through one by one (a
shuffle's transpose, a gather, a product by a per-channel gate), elements through an
exponential (swish, sigmoid, GELU), elements a resize writes, the elements a plain conv
strided along the width copies one by one into its im2col columns, the activation bytes
a conv or FC reads and writes (in cache, beside its compute; a fused activation other
than ReLU reads and writes the conv's output once more), the bytes a memory-bound kernel
streams (a layout conversion, an unfused element-wise op, a copy, a pool, a plain conv's
packing of its input: they move bytes and little else, at a rate of their own), weight
bytes (float32) and a fixed launch cost. Weights have their own rate: a network's
weights are read once per inference from beyond the core's caches, while activations
pass between consecutive kernels through them. Bytes from memory, at a third rate: the
weights a network streams past its first 8 MiB (about what the caches keep between
inferences: of 4, 6, 8, 12 and 16 MiB, 8 predicts best in ``benchmarks/latency.py``'s
(a), (b) and (c)), and, once more beside their cached cost, the bytes of every tensor
past 8 MiB a kernel or a layout conversion reads or writes (LR-ASPP's at 1024×2048). The
terms add (a fitted blend, not a roofline maximum: chosen by held-out error across
families in ``benchmarks/latency.py``), so the fit is linear: non-negative least squares
on relative error (each row weighted by 1/t, so a 1 ms model counts as much as a 100 ms
one). A profile is a small YAML file of these constants in physical units and the
runtime's layout block, with what it was fitted on and its own held-out error, which
gives every estimate its band. A rate that no calibration row exercises is tied to a
related one (``Term.tie``), never zero.

numpy is imported only by the fit; estimating from a profile needs none.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from macscalc.analysis.kernels import (
    BLOCK,
    FREE,
    MAX_BLOCK,
    Clip,
    Kernel,
    Spill,
    is_depthwise,
    kernels,
)
from macscalc.core.errors import MacscalcError, show
from macscalc.core.limits import MAX_PROFILE_CONSTANT

if TYPE_CHECKING:
    from macscalc.lang.graph import Network, Node

PROFILE_DIR = Path(__file__).resolve().parents[1] / "data" / "profiles"
FORMULA = ("t = Σ MACs_class / R_class + depthwise planes / R_plane + other channel planes / "
           "R_planes + exp elements / R_exp + resized elements / R_resize + strided im2col "
           "elements / R_strided + conv and FC activation bytes / B + bytes of memory-bound "
           "kernels / B_pass + weight bytes / B_w + bytes from memory (weights past the first "
           "8 MiB, tensors past 8 MiB) / B_mem + τ_kernel")


class Counted(Protocol):
    """Anything that carries its placed network (a counting report)."""

    network: Network


class Term(NamedTuple):
    """One term of the model: a feature of a kernel and its constant in the profile."""

    name: str
    key: str  # the constant's key in a profile
    what: str
    unit: str
    scale: float  # the constant's unit in feature units per ms (rates), or ms per µs
    part: str = "compute"  # the kernel's time it adds to: compute, memory or launch
    tie: str | None = None  # the term whose constant stands in when no row exercises this

    @property
    def rate(self) -> bool:
        return self.part != "launch"

    def constant(self, coef: float) -> float:
        """A fitted cost in ms per unit as the profile's physical constant."""
        if self.rate:
            return math.inf if coef == 0 else self.scale / coef
        return coef * 1e3

    def coef(self, constant: float) -> float:
        if self.rate:
            return 0.0 if math.isinf(constant) else self.scale / constant
        return constant / 1e3


TERMS = (
    Term("macs_conv1x1", "conv1x1_gmacs_per_s", "1×1 conv and FC MACs", "G MACs/s", 1e-6),
    Term("macs_conv", "conv_gmacs_per_s", "dense k×k conv MACs", "G MACs/s", 1e-6,
         tie="macs_conv1x1"),
    Term("macs_group", "group_gmacs_per_s", "grouped conv MACs", "G MACs/s", 1e-6,
         tie="macs_conv1x1"),
    Term("macs_dw", "dw_gmacs_per_s", "depthwise MACs", "G MACs/s", 1e-6,
         tie="macs_conv1x1"),
    Term("macs_direct", "direct_gmacs_per_s", "MACs of a 1×1 conv that reads an input "
         "narrower than a layout block plain", "G MACs/s", 1e-6, tie="macs_conv1x1"),
    Term("dw_planes", "dw_mplanes_per_s", "depthwise channel planes", "M planes/s", 1e-3),
    Term("planes", "plane_mplanes_per_s", "channel planes a gather, product by a gate or "
         "shuffle loops over", "M planes/s", 1e-3, tie="dw_planes"),
    Term("exp", "exp_gelems_per_s", "elements through exp (swish, sigmoid, GELU)",
         "G elements/s", 1e-6),
    Term("resize", "resize_gelems_per_s", "elements a resize writes", "G elements/s",
         1e-6, tie="exp"),
    Term("strided", "strided_gelems_per_s", "elements a plain conv strided along the width "
         "copies one at a time into its im2col columns", "G elements/s", 1e-6, tie="resize"),
    Term("pbytes", "pass_gbytes_per_s", "bytes a memory-bound kernel reads and writes "
         "(layout conversions, unfused elementwise ops, copies, pools)", "GB/s", 1e-6,
         "memory", "bytes"),
    Term("bytes", "gbytes_per_s", "activation bytes a conv or FC reads and writes (float32)",
         "GB/s", 1e-6, "memory"),
    Term("wbytes", "weight_gbytes_per_s", "weight bytes, streamed once per inference (float32)",
         "GB/s", 1e-6, "memory"),
    Term("dram", "dram_gbytes_per_s", "bytes from memory (float32): weights past a "
         "network's first 8 MiB, tensors past 8 MiB", "GB/s", 1e-6, "memory", "wbytes"),
    Term("kernels", "us_per_kernel", "kernels launched (after fusion)", "µs each", 1e-3,
         "launch"),
)
TERM_NAMES = tuple(t.name for t in TERMS)


RATES = frozenset(t.key for t in TERMS if t.rate)
LAUNCH = frozenset(t.name for t in TERMS if t.part == "launch")


def kernel_features(k: Kernel) -> dict[str, Any]:
    """A kernel's features by term name (every kernel launches once; FC MACs are 1×1
    conv MACs at one position)."""
    f: dict[str, Any] = dict.fromkeys(TERM_NAMES, 0.0)
    for name, v in k.features.items():
        if name != "launches":
            f["macs_conv1x1" if name == "macs_fc" else name] += v
    f["kernels"] = float(k.features.get("launches", 1))
    return f


def network_ms(coefs: list[float], network: Network, area: Any = None, one: Any = 1,
               spill: Spill | None = None, clip: Clip | None = None,
               block: int = BLOCK) -> Any:
    """The estimate in ms (``kernels``' area, one, spill and clip: as coefficients of the
    areas)."""
    coef = dict(zip(TERM_NAMES, coefs, strict=True))
    total: Any = 0.0
    for k in kernels(network, area, one, spill, clip, block):
        for name, v in kernel_features(k).items():
            total = total + coef[name] * (one * v if name in LAUNCH else v)
    return total


def features(network: Network, block: int = BLOCK) -> dict[str, float]:
    """The model's features of one network (its kernels summed), by term name, on a
    runtime whose blocked layout holds ``block`` channels a block."""
    out = dict.fromkeys(TERM_NAMES, 0.0)
    for k in kernels(network, block=block):
        for name, v in kernel_features(k).items():
            out[name] += v
    return out


def kind_key(node: Node) -> str:
    """The kind of work a node is, as a calibration covers it (activations by function)."""
    layer = node.layer
    if layer.kind == "act":
        return layer.fn
    if is_depthwise(node):
        return "depthwise"
    if layer.kind == "conv2d" and layer.groups > 1:
        return "group conv2d"
    return layer.kind


def kinds(network: Network) -> set[str]:
    return {kind_key(n) for n in network.nodes if n.layer.kind not in FREE}


class Errors(NamedTuple):
    """Relative errors of predictions: mean absolute (%), share within ±10 % (%), and the
    90th percentile of the absolute error (%), nearest rank."""

    mape: float
    within_10: float
    p90: float

    @classmethod
    def of(cls, predicted: list[float], measured: list[float]) -> Errors:
        errs = sorted(abs(p / t - 1) for p, t in zip(predicted, measured, strict=True))
        n = len(errs)
        return cls(100 * sum(errs) / n, 100 * sum(e <= 0.1 + 1e-12 for e in errs) / n,
                   100 * errs[math.ceil(0.9 * n) - 1])

    def data(self) -> dict[str, float]:
        return {"mape_pct": round(self.mape, 2), "within_10_pct": round(self.within_10, 1),
                "p90_pct": round(self.p90, 2)}


def nnls(a: Any, b: Any) -> Any:
    """min ‖a·x − b‖ with x ≥ 0, exactly: Lawson and Hanson's active-set method (columns
    scaled to unit norm), which ends at the optimum in finitely many steps."""
    import numpy as np

    cols = a.shape[1]
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0] = 1.0
    scaled = a / norms
    x = np.zeros(cols)
    free = np.zeros(cols, dtype=bool)  # the passive set: columns allowed above zero
    for _ in range(3 * cols + 10):
        grad = scaled.T @ (b - scaled @ x)
        grad[free] = -np.inf
        j = int(np.argmax(grad))
        if grad[j] <= 1e-12 * (1 + float(np.abs(b).max(initial=0.0))):
            break
        free[j] = True
        while True:
            z = np.zeros(cols)
            z[free], *_ = np.linalg.lstsq(scaled[:, free], b, rcond=None)
            if (z[free] > 0).all():
                x = z
                break
            # step back towards x until a free column reaches zero, and fix it there
            neg = free & (z <= 0)
            gap = x[neg] - z[neg]
            step = float(np.min(np.where(gap > 0, x[neg] / np.where(gap > 0, gap, 1.0), 0.0)))
            x = x + step * (z - x)
            free &= x > 1e-15
            x[~free] = 0.0
            if not free.any():
                break
    return x / norms


def fit(x: list[list[float]], ms: list[float], ties: dict[int, int] | None = None,
        prior: list[float] | None = None, strength: float | None = None) -> list[float]:
    """Costs in ms per unit of each feature column, ≥ 0, minimising relative error; a
    column the rows leave at zero cost (none exercises it, or too little to pin it) takes
    the cost of the column ``ties`` names for it: a conv is never free.

    With a ``prior`` (another device's costs, as ``Profile.coefs``), the fit starts from
    it, scaled to these rows (one factor for the rates, one for the launch cost), and
    pays ``strength`` · Σ (c / start − 1)² for moving away from it (by default the
    strength leave-one-out over the rows finds best, ``prior_strength``): a few whole
    models (``--suggest``'s eight) then correct the constants they pin and leave the rest
    at the prior's proportions, instead of fitting themselves exactly with constants that
    predict nothing else."""
    import numpy as np

    a = np.asarray(x, dtype=float)
    t = np.asarray(ms, dtype=float)
    if prior is None:
        coefs = nnls(a / t[:, None], np.ones(len(t)))
    else:
        lam = prior_strength(x, ms, prior) if strength is None else strength
        coefs = _pulled(a, t, np.asarray(prior, dtype=float), lam)
    out = [float(c) for c in coefs]
    for j, k in (ties or {}).items():
        if out[j] == 0:
            out[j] = out[k]
    return out


def prior_strength(x: list[list[float]], ms: list[float], prior: list[float]) -> float:
    """The pull toward ``prior`` (of ``RIDGE``) whose fits predict each row, left out,
    best (mean squared relative error)."""
    import numpy as np

    a, t, p = (np.asarray(v, dtype=float) for v in (x, ms, prior))
    return min(RIDGE, key=lambda lam: _held_out_error(a, t, p, lam))


# Strengths of the pull to a prior, all weak: a pull should settle only what the rows leave
# loose. Leave-one-out over ``--suggest``'s picks always favours the strongest pull on
# offer (each pick pins a direction no other pick does, so leaving it out leaves that
# direction to the prior), which carries the prior device's proportions into what the
# rows do pin: on nine transfer cases (benchmarks/latency.py's (c) and (e), a
# MobileNet-heavy set like the issue's, and Pixel 1, each with a near and a far prior), 8
# suggested rows predicted the rest 87 % within ±10 % on average with strengths up to 10,
# 94–96 % with any fixed strength from 0.001 to 0.01, 90 % at 0.1 (under today's kernel
# rules: 91 % as chosen from these, 91 % at a fixed 0.001 or 0.01, 80 % at 10). Scaled
# group by group (``_scaled``), the prior starts nearer the rows, and pulls up to 0.1 help
# where it was timed at fewer threads: 8 suggested rows of this machine at 2 threads with
# the 1-thread profile as the prior predict the other 91 88 % within ±10 % (85 % with
# pulls up to 0.01), the set like the 96 % (92 %), from medians 71 % (53 %); at 1
# thread and on the other host's grids as before. Exact or many rows still choose 0.
RIDGE = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1)


# The groups of constants that a prior's scale moves together, finest last. Another
# device, or more threads, moves them apart: at 2 threads here MAC rates doubled, while
# memory-bound passes kept their 1-thread rate and each kernel's cost grew by half.
SCALE_LEVELS = (tuple("all" for t in TERMS),
                tuple("launch" if t.part == "launch" else "rate" for t in TERMS),
                tuple("macs" if t.unit == "G MACs/s" else t.part for t in TERMS))


def _factors(a: Any, t: Any, prior: Any, groups: tuple[str, ...]) -> Any:
    """Each term's factor: its group's share of the rows' time, fitted; all 0 where the
    rows cannot tell the exercised groups apart (fewer rows than groups, or groups in
    step), and 0 for a group no row exercises."""
    import numpy as np

    g = np.array(groups)
    names = sorted(set(groups))
    parts = np.stack([a[:, g == n] @ prior[g == n] for n in names], axis=1) / t[:, None]
    used = parts.any(axis=0)
    if len(t) < used.sum() or np.linalg.matrix_rank(parts[:, used]) < used.sum():
        return np.zeros(len(groups))
    f = nnls(parts, np.ones(len(t)))
    return np.array([f[names.index(n)] for n in groups])


def _scaled(a: Any, t: Any, prior: Any, levels: tuple[tuple[str, ...], ...] | None = None
            ) -> Any:
    """The prior scaled to the rows: one factor for each group of terms (MAC rates, other
    compute rates, memory rates, launches) where the rows settle it, else one for all
    rates and one for launches, else one for all. With one factor for all rates, 8
    suggested models timed at 2 threads here (benchmarks/data/whole_epyc_2t.csv), fitted
    with the 1-thread profile as the prior, predict the other 91 84 % within ±10 % (the
    set like the issue's 83 %); with the groups, 88 % (96 %); at 1 thread, 98 % either
    way."""
    import numpy as np

    f = np.ones(len(prior))
    for groups in SCALE_LEVELS if levels is None else levels:
        level = _factors(a, t, prior, groups)
        f = np.where(level > 0, level, f)
    return f * prior


def prior_misfit(x: list[list[float]], ms: list[float], prior: list[float]) -> float:
    """Mean absolute relative error (%) of ``prior`` on the rows, scaled to them by one
    factor for the rates and one for launches, nothing fitted: how well its proportions
    explain the rows. With a near prior it tells the layout block of a file that names
    none, where leave-one-out over a few rows cannot (benchmarks/latency.py: right for
    all 10 sets of 8 suggested rows there, against 4 of 10 by leave-one-out)."""
    import numpy as np

    a, t = np.asarray(x, dtype=float), np.asarray(ms, dtype=float)
    pred = a @ _scaled(a, t, np.asarray(prior, dtype=float), SCALE_LEVELS[:2])
    return float(100 * np.mean(np.abs(pred / t - 1)))


def _pulled(a: Any, t: Any, prior: Any, strength: float) -> Any:
    """The fit pulled toward the prior scaled to the rows; a column no row exercises
    keeps the prior's (scaled) cost, whatever the strength."""
    import numpy as np

    start = _scaled(a, t, prior)
    return np.where(a.any(axis=0), _toward(a, t, start, strength), start)


def _toward(a: Any, t: Any, start: Any, strength: float) -> Any:
    """NNLS on relative error plus ``strength`` · Σ (c_j / start_j − 1)²."""
    import numpy as np

    pulled = [j for j in range(a.shape[1]) if start[j] > 0] if strength > 0 else []
    pull = np.zeros((len(pulled), a.shape[1]))
    for i, j in enumerate(pulled):
        pull[i, j] = math.sqrt(strength) / start[j]
    return nnls(np.vstack([a / t[:, None], pull]),
                np.concatenate([np.ones(len(t)), np.full(len(pulled), math.sqrt(strength))]))


def _held_out_error(a: Any, t: Any, prior: Any, strength: float) -> float:
    """Mean squared relative error of each row predicted by a fit without it."""
    import numpy as np

    if len(t) < 2:  # one row cannot judge a pull: trust the prior the most
        return 0.0 if strength == RIDGE[-1] else 1.0
    errs = []
    for i in range(len(t)):
        keep = np.arange(len(t)) != i
        c = _pulled(a[keep], t[keep], prior, strength)
        errs.append((float(a[i] @ c) / t[i] - 1) ** 2)
    return float(np.mean(errs))


def term_ties(names: tuple[str, ...] = TERM_NAMES) -> dict[int, int]:
    """``fit``'s ties for these columns (each term's ``tie``, where both are columns)."""
    index = {n: i for i, n in enumerate(names)}
    return {index[t.name]: index[t.tie] for t in TERMS
            if t.tie and t.name in index and t.tie in index}


def predict(coefs: list[float], row: list[float]) -> float:
    return sum(c * f for c, f in zip(coefs, row, strict=True))


def leave_one_out(x: list[list[float]], ms: list[float], ties: dict[int, int] | None = None,
                  prior: list[float] | None = None, strength: float | None = None
                  ) -> list[float]:
    """Each row predicted by a fit on all the other rows (never on itself); with a prior,
    at the ``strength`` chosen on all the rows (choosing it again without each row would
    cost a leave-one-out inside every fit)."""
    return [predict(fit(x[:i] + x[i + 1:], ms[:i] + ms[i + 1:], ties, prior, strength), x[i])
            for i in range(len(x))]


class Profile(NamedTuple):
    """A device's fitted constants, what they were fitted on, and how well they predict."""

    name: str
    device: str
    constants: dict[str, float]  # by Term.key
    kinds: tuple[str, ...]  # kinds of work the calibration rows contained
    rows: int
    in_sample: Errors
    loo: Errors
    fitted_on: str
    published: str | None = None  # device id of published latencies (macscalc table)
    sources: tuple[str, ...] = ()
    block: int = BLOCK  # channels a block of the runtime's blocked layout (layout_block)

    def coefs(self) -> list[float]:
        return [t.coef(self.constants[t.key]) for t in TERMS]

    def predict(self, network: Network) -> float:
        f = features(network, self.block)
        return predict(self.coefs(), [f[t.name] for t in TERMS])

    def kernel_times(self, network: Network) -> list[KernelTime]:
        """Every kernel with its estimated time, split into compute, memory and launch."""
        coef = dict(zip(TERM_NAMES, self.coefs(), strict=True))
        out = []
        for k in kernels(network, block=self.block):
            f = kernel_features(k)
            part = {"compute": 0.0, "memory": 0.0, "launch": 0.0}
            for t in TERMS:
                part[t.part] += coef[t.name] * f[t.name]
            out.append(KernelTime(k, part["compute"], part["memory"], part["launch"]))
        return out


class KernelTime(NamedTuple):
    """One kernel's estimated ms: compute (MACs, depthwise planes, exp), memory (activation
    and weight bytes), launch."""

    kernel: Kernel
    compute: float
    memory: float
    launch: float

    @property
    def ms(self) -> float:
        return self.compute + self.memory + self.launch

    @property
    def bound(self) -> str:
        """Which part dominates: ``compute``, ``memory`` or ``launch``."""
        parts = {"compute": self.compute, "memory": self.memory, "launch": self.launch}
        return max(parts, key=parts.__getitem__)


def _num(v: float) -> float | str:
    return ".inf" if math.isinf(v) else float(f"{v:.4g}")


def profile_yaml(p: Profile) -> str:
    """The profile as a YAML file people can read (``load_profile`` reads it back)."""
    import yaml

    def q(v: Any) -> str:
        return yaml.safe_dump(v, default_flow_style=True, width=10**6, allow_unicode=True
                              ).strip().removesuffix("...").strip()

    lines = ["# macscalc device profile: latency ≈ the sum of each term below times its",
             "# cost (see macscalc explain latency SPEC --device FILE).",
             f"name: {q(p.name)}", f"device: {q(p.device)}"]
    if p.published:
        lines.append(f"published: {q(p.published)}  # its published latencies win where "
                     "they exist")
    lines.append(f"layout_block: {p.block}  # channels a block of the runtime's blocked conv "
                 "layout (onnxruntime: 16 with AVX-512, 8 with AVX2; 0: none, channels-last "
                 "throughout, as TFLite)")
    lines.append("constants:")
    for t in TERMS:
        lines.append(f"  {t.key}: {_num(p.constants[t.key])}  # {t.what}, {t.unit}")
    lines += ["calibration:", f"  fitted_on: {q(p.fitted_on)}", f"  rows: {p.rows}",
              f"  kinds: {q(list(p.kinds))}",
              f"  in_sample: {q(p.in_sample.data())}",
              f"  leave_one_out: {q(p.loo.data())}  # each row predicted without itself"]
    if p.sources:
        lines.append("  sources:")
        lines += [f"    - {q(s)}" for s in p.sources]
    return "\n".join(lines) + "\n"


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(ref: str) -> Profile:
    """A profile by file path or built-in name (``pixel1``); every mistake located."""
    from macscalc.core.yamlload import LocDict, load, read_text

    path = Path(ref)
    if not os.path.lexists(path):  # False, not an error, for a name the system refuses
        if ref not in profile_names():
            raise MacscalcError(f"no profile file or built-in profile named {show(ref)} "
                                f"(built-ins: {', '.join(profile_names())})")
        path = PROFILE_DIR / f"{ref}.yaml"
        file = f"macscalc/data/profiles/{path.name}"
    else:
        file = ref
    doc = load(read_text(path, file, "profile"), file)

    def need(m: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
        if not isinstance(m, LocDict):
            raise MacscalcError(f"{where} must be a mapping", file, *getattr(m, "loc", (1, 1)))
        if key not in m:
            raise MacscalcError(f"{where} needs {key!r}", file, *m.loc)
        value = m[key]
        rate = kind is float and key in RATES
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        free = rate and number and value == math.inf  # a term the calibration left free
        bad_number = kind is float and not free and not (  # NaN fails every comparison
            number and (value > 0 if rate else value >= 0) and value <= MAX_PROFILE_CONSTANT)
        if bad_number or (kind is not float and not isinstance(value, kind)):
            expected = (f"a {'positive' if rate else 'non-negative'} number up to "
                        f"{MAX_PROFILE_CONSTANT:,.0f}"
                        + (" or .inf (no cost: a term the calibration left free)" if rate
                           else "")) if kind is float else {
                str: "text", LocDict: "a mapping", list: "a list"}.get(kind, "a value")
            raise MacscalcError(f"{show(key)} must be {expected}, got {show(value)}", file,
                                *m.value_locs[key])
        return value

    top = "a profile"
    name, device = (str(need(doc, k, str, top)) for k in ("name", "device"))
    published = doc.get("published")
    if published is not None and not isinstance(published, str):
        raise MacscalcError("'published' must be a device id such as pixel1", file,
                            *doc.value_locs["published"])
    block = doc.get("layout_block", BLOCK)
    if isinstance(block, bool) or not isinstance(block, int) or not 0 <= block <= MAX_BLOCK:
        raise MacscalcError(f"'layout_block' must be a whole number of channels from 1 to "
                            f"{MAX_BLOCK}, or 0 for a channels-last runtime, got {show(block)}",
                            file,
                            *doc.value_locs["layout_block"])
    consts = need(doc, "constants", LocDict, top)
    constants = {t.key: float(need(consts, t.key, float, "constants")) for t in TERMS}
    if all(math.isinf(constants[k]) for k in RATES):
        raise MacscalcError("a profile needs at least one finite rate: with every term free, "
                            "every estimate would be 0 ms", file, *consts.loc)
    cal = need(doc, "calibration", LocDict, top)

    def errors(key: str) -> Errors:
        m = need(cal, key, LocDict, "calibration")
        return Errors(*(float(need(m, k, float, key)) for k in ("mape_pct", "within_10_pct",
                                                                 "p90_pct")))

    return Profile(
        name=name, device=device, constants=constants,
        kinds=tuple(str(k) for k in need(cal, "kinds", list, "calibration")),
        rows=need(cal, "rows", int, "calibration"), in_sample=errors("in_sample"),
        loo=errors("leave_one_out"), fitted_on=str(need(cal, "fitted_on", str, "calibration")),
        published=published, sources=tuple(str(s) for s in cal.get("sources", [])),
        block=block)


class Estimate(NamedTuple):
    """An estimated latency with its band: the true value lies in [low, high] for the share
    of held-out rows whose error was within the profile's 90th percentile."""

    ms: float
    low: float
    high: float
    profile: str
    band_pct: float  # the profile's leave-one-out 90th-percentile error
    unseen: tuple[str, ...]  # kinds of work the calibration never saw
    published: str | None = None  # ms as published for this model on the device
    published_source: str | None = None
    layer_us: dict[str, float] = {}  # each kernel's µs, under the layer that launches it
    by_kind: tuple[tuple[str, int, float], ...] = ()  # (layer kind, kernels, ms)

    def text(self) -> str:
        pub = (f"; published {self.published} ms ({self.published_source})"
               if self.published else "")
        warn = (f"; WARNING: the calibration never saw {', '.join(self.unseen)}"
                if self.unseen else "")
        return (f"estimated latency on {self.profile}: {self.ms:.2f} ms "
                f"({self.low:.2f}–{self.high:.2f}, ±{self.band_pct:.0f} %){pub}{warn}")

    def data(self) -> dict[str, Any]:
        return {"ms": round(self.ms, 4), "low": round(self.low, 4),
                "high": round(self.high, 4), "profile": self.profile,
                "band_pct": self.band_pct, "estimated": True,
                "unseen_kinds": list(self.unseen), "published_ms": self.published,
                "published_source": self.published_source,
                "by_kind": [{"kind": k, "kernels": n, "ms": round(ms, 4),
                             "share_pct": round(100 * ms / self.ms, 1) if self.ms else 0.0}
                            for k, n, ms in self.by_kind]}


def estimate(report: Counted, profile: Profile,
             published: tuple[str, str] | None = None) -> Estimate:
    """The profile's estimate, with the published latency (ms as printed, source) beside it
    when the caller found one (``published.published_latency``)."""
    network = report.network
    ms = profile.predict(network)
    p = profile.loo.p90 / 100
    layer_us, by_kind = per_layer(network, profile.kernel_times(network))
    return Estimate(ms, ms / (1 + p), ms / (1 - p) if p < 1 else math.inf, profile.name,
                    profile.loo.p90, tuple(sorted(kinds(network) - set(profile.kinds))),
                    *(published or (None, None)), layer_us, by_kind)


def per_layer(network: Network, times: list[KernelTime]
              ) -> tuple[dict[str, float], tuple[tuple[str, int, float], ...]]:
    """Each kernel's µs under the layer that launches it (a layout conversion under the
    layer whose output it converts), and the time by layer kind, largest first."""
    nodes = {n.name: n for n in network.nodes}
    first = network.nodes[0].name if network.nodes else "input"
    us: dict[str, float] = {}
    kinds_: dict[str, list[float]] = {}
    for t in times:
        head = t.kernel.nodes[0] if t.kernel.nodes[0] in nodes else first
        us[head] = us.get(head, 0.0) + 1e3 * t.ms
        n = nodes.get(head)
        label = "layout conversion" if t.kernel.what == "reorder" or n is None else (
            n.role or n.layer.label(n.in_shapes))
        row = kinds_.setdefault(label, [0, 0.0])
        row[0] += 1
        row[1] += t.ms
    return us, tuple(sorted(((k, int(n), ms) for k, (n, ms) in kinds_.items()),
                            key=lambda r: -r[2]))
