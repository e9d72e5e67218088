"""Latency estimates from counts, with a device profile fitted on a few measurements.

Why a model and not MACs: on a real device a depthwise MAC costs several dense ones (it
reuses nothing across output channels), and every layer and every small element-wise op
has a fixed cost (a kernel launch, a thread barrier). The model, chosen by held-out
error in ``benchmarks/latency.py``::

    t = dense MACs / R_dense + depthwise MACs / R_dw + τ_layer · conv/FC layers
        + τ_op · other ops

fitted by non-negative least squares on relative error (each row weighted by 1/t, so a
1 ms model counts as much as a 100 ms one). "Other ops" are the primitives a runtime
runs as kernels of their own: residual adds, squeeze-excite's pool, gate and product,
pooling, and activations that do not fold into the conv before them (batch norm always
folds; relu and relu6 fold; hard-swish does not). A profile is a small YAML file of
these constants in physical units, with what it was fitted on and its own
leave-one-out error, which gives every estimate its band.

numpy is imported only by the fit; estimating from a profile needs none.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from macscalc.core.errors import MacscalcError, show
from macscalc.core.limits import MAX_PROFILE_CONSTANT

if TYPE_CHECKING:
    from macscalc.analysis.counting import Report
    from macscalc.lang.graph import Network, Node

PROFILE_DIR = Path(__file__).resolve().parents[1] / "data" / "profiles"
FOLDED_ACTS = frozenset({"relu", "relu6"})  # fold into the conv before them
FREE = frozenset({"dropout", "flatten"})  # no work at inference


class Term(NamedTuple):
    """One term of the model: a feature of the network and its constant in the profile."""

    name: str
    key: str  # the constant's key in a profile
    what: str
    rate: bool  # stored as G per second (1 / cost) rather than µs each

    def constant(self, coef: float) -> float:
        """A fitted cost in ms per unit as the profile's physical constant (a rate's cost is
        never zero: calibrate refuses to write an infinite rate)."""
        return 1e-6 / coef if self.rate else coef * 1e3

    def coef(self, constant: float) -> float:
        return 1e-6 / constant if self.rate else constant / 1e3


TERMS = (
    Term("dense", "dense_gmacs_per_s", "dense conv and FC MACs", True),
    Term("dw", "depthwise_gmacs_per_s", "depthwise MACs", True),
    Term("layers", "us_per_layer", "conv and FC layers", False),
    Term("ops", "us_per_op", "element-wise, pooling and SE ops outside convolutions", False),
)


RATES = frozenset(t.key for t in TERMS if t.rate)


def is_depthwise(node: Node) -> bool:
    layer = node.layer
    if layer.kind == "depthwise":
        return True
    return layer.kind == "conv2d" and 1 < layer.groups == node.in_shapes[0].c


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


def node_features(report: Report) -> list[dict[str, float]]:
    """What each layer adds to the model's features (empty: folded or free)."""
    out: list[dict[str, float]] = []
    tails: set[str] = set()  # outputs a following batch norm or relu folds into
    for lc in report.layers:
        n = lc.node
        kind = n.layer.kind
        if kind in ("conv2d", "depthwise", "linear"):
            out.append({"dw" if is_depthwise(n) else "dense": lc.macs, "layers": 1})
            tails.add(n.name)
        elif kind == "batchnorm" and n.inputs[0] in tails:
            out.append({})
            tails.add(n.name)
        elif (kind == "act" and n.layer.fn in FOLDED_ACTS and n.inputs[0] in tails) or \
                kind in FREE:
            out.append({})
        else:
            out.append({"ops": 1})
    return out


def features(report: Report) -> dict[str, float]:
    """The model's features of one counted network, by term name."""
    out = dict.fromkeys((t.name for t in TERMS), 0.0)
    for f in node_features(report):
        for name, v in f.items():
            out[name] += v
    return out


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
    """min ‖a·x − b‖ with x ≥ 0, exactly, by trying every support (a few columns only):
    the optimum is the least-squares solution on its own support, and it is feasible."""
    import numpy as np

    cols = a.shape[1]
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0] = 1.0
    scaled = a / norms
    best_x, best_r = np.zeros(cols), float(b @ b)
    for mask in range(1, 2**cols):
        support = [j for j in range(cols) if mask >> j & 1]
        x, *_ = np.linalg.lstsq(scaled[:, support], b, rcond=None)
        if (x < 0).any():
            continue
        r = scaled[:, support] @ x - b
        if float(r @ r) < best_r - 1e-12:
            best_r = float(r @ r)
            best_x = np.zeros(cols)
            best_x[support] = x
    return best_x / norms


def fit(x: list[list[float]], ms: list[float]) -> list[float]:
    """Costs in ms per unit of each feature column, ≥ 0, minimising relative error."""
    import numpy as np

    t = np.asarray(ms, dtype=float)
    return [float(c) for c in nnls(np.asarray(x, dtype=float) / t[:, None], np.ones(len(t)))]


def predict(coefs: list[float], row: list[float]) -> float:
    return sum(c * f for c, f in zip(coefs, row, strict=True))


def leave_one_out(x: list[list[float]], ms: list[float]) -> list[float]:
    """Each row predicted by a fit on all the other rows (never on itself)."""
    return [predict(fit(x[:i] + x[i + 1:], ms[:i] + ms[i + 1:]), x[i]) for i in range(len(x))]


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

    def coefs(self) -> list[float]:
        return [t.coef(self.constants[t.key]) for t in TERMS]

    def predict(self, report: Report) -> float:
        f = features(report)
        return predict(self.coefs(), [f[t.name] for t in TERMS])


def _num(v: float) -> float:
    return float(f"{v:.4g}")


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
    lines.append("constants:")
    for t in TERMS:
        unit = "G per second" if t.rate else "µs each"
        lines.append(f"  {t.key}: {_num(p.constants[t.key])}  # {t.what}, {unit}")
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
        bad_number = kind is float and not (  # NaN fails every comparison
            number and (value > 0 if rate else value >= 0) and value <= MAX_PROFILE_CONSTANT)
        if bad_number or (kind is not float and not isinstance(value, kind)):
            expected = (f"a {'positive' if rate else 'non-negative'} number up to "
                        f"{MAX_PROFILE_CONSTANT:,.0f}") if kind is float else {
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
    consts = need(doc, "constants", LocDict, top)
    constants = {t.key: float(need(consts, t.key, float, "constants")) for t in TERMS}
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
        published=published, sources=tuple(str(s) for s in cal.get("sources", [])))


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
                "published_source": self.published_source}


def estimate(report: Report, profile: Profile,
             published: tuple[str, str] | None = None) -> Estimate:
    """The profile's estimate, with the published latency (ms as printed, source) beside it
    when the caller found one (``published.published_latency``)."""
    ms = profile.predict(report)
    p = profile.loo.p90 / 100
    return Estimate(ms, ms / (1 + p), ms / (1 - p) if p < 1 else math.inf, profile.name,
                    profile.loo.p90, tuple(sorted(kinds(report.network) - set(profile.kinds))),
                    *(published or (None, None)))
