"""Where the cost goes and why: the papers' formulas, with the user's numbers.

Each explanation computes its numbers with the same primitives that ``count`` uses,
shows the formula in symbols and in numbers, and gives ratios as exact fractions and as
decimals. Sources: MobileNet V1 §3.1 (arXiv:1704.04861), V2 §3.3 (arXiv:1801.04381),
MicroNet §3 (arXiv:2108.05894).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from macscalc.analysis.counting import PARAM_CONVENTIONS, Convention, count
from macscalc.core.errors import MacscalcError, show
from macscalc.core.limits import MAX_EXPLAIN_CHANNELS
from macscalc.core.units import fmt_alpha, fmt_int
from macscalc.lang.graph import Network, build
from macscalc.lang.layers import Conv2d, Depthwise, Layer, Shape
from macscalc.lang.spec import Spec, suggest
from macscalc.render.output import Column, Doc, Table
from macscalc.render.report import envelope

if TYPE_CHECKING:
    from macscalc.analysis.latency import Profile

KS = (1, 3, 5, 7)
NS = (16, 64, 256, 1024)


def frac(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def dec(f: Fraction, digits: int = 6) -> str:
    return f"{float(f):.{digits}f}"


def _cost(layer: Layer, x: Shape) -> tuple[Shape, int, int]:
    out = layer.out_shape([x])
    return out, layer.macs([x], out), layer.params([x]).weights


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise MacscalcError(message)


def dwsep_doc(m: int, n: int, k: int, size: int, stride: int = 1) -> Doc:
    """Standard k×k conv against depthwise k×k + pointwise 1×1 (V1 §3.1, Table 3)."""
    x = Shape(size, size, m)
    std_out, std_macs, std_params = _cost(Conv2d(c=n, k=(k, k), s=(stride, stride)), x)
    dw_out, dw_macs, dw_params = _cost(Depthwise(k=(k, k), s=(stride, stride)), x)
    _, pw_macs, pw_params = _cost(Conv2d(c=n), dw_out)
    df = std_out.h
    sep_macs, sep_params = dw_macs + pw_macs, dw_params + pw_params
    ratio = Fraction(sep_macs, std_macs)
    paper = Fraction(1, n) + Fraction(1, k * k)
    intro = [
        f"M = {m} input channels, N = {n} output channels, Dk = {k}, input {size}×{size}, "
        f"stride {stride}: Df = {df}",
        "",
        f"standard      Dk·Dk·M·N·Df·Df = {k}·{k}·{m}·{n}·{df}·{df} = {fmt_int(std_macs)} MACs",
        f"              params Dk·Dk·M·N = {fmt_int(std_params)}",
        f"depthwise     Dk·Dk·M·Df·Df   = {k}·{k}·{m}·{df}·{df} = {fmt_int(dw_macs)} MACs",
        f"pointwise     M·N·Df·Df       = {m}·{n}·{df}·{df} = {fmt_int(pw_macs)} MACs",
        f"separable     {fmt_int(sep_macs)} MACs, params Dk·Dk·M + M·N = {fmt_int(sep_params)}",
        "",
        f"ratio         {fmt_int(sep_macs)} / {fmt_int(std_macs)} = {frac(ratio)} = {dec(ratio)}",
        f"1/N + 1/Dk²   1/{n} + 1/{k * k} = {frac(paper)} = {dec(paper)}",
        "equal" if ratio == paper else "NOT equal",
        "",
        "(Dk²·M·Df² + M·N·Df²) / (Dk²·M·N·Df²) = 1/N + 1/Dk²: the spatial size and M "
        "cancel, so the ratio is exact, the same for parameters, and tends to 1/Dk² as N grows.",
    ]
    rows = []
    for kk in KS:
        row: dict[str, Any] = {"k": kk, "inv_k2": dec(Fraction(1, kk * kk), 4)}
        for nn in NS:
            row[f"n{nn}"] = dec(Fraction(1, nn) + Fraction(1, kk * kk), 4)
        rows.append(row)
    cols = [Column("k", "k"), Column("1/k²", "inv_k2")]
    cols += [Column(f"N={nn}", f"n{nn}") for nn in NS]
    table = Table("Separable / standard cost, 1/N + 1/k², as N grows", cols, rows,
                  ["At k = 1 the 'depthwise' step is a per-channel scale and separable costs "
                   "more than the plain 1×1 conv (ratio above 1)."])
    data = envelope("explain", topic="dwsep", inputs={"M": m, "N": n, "k": k, "size": size,
                                                      "stride": stride, "Df": df},
                    standard={"macs": std_macs, "params": std_params},
                    depthwise={"macs": dw_macs, "params": dw_params},
                    pointwise={"macs": pw_macs, "params": pw_params},
                    ratio=frac(ratio), ratio_decimal=dec(ratio), one_over_n_plus_one_over_k2=frac(
                        paper), grid=rows)
    return Doc("Standard vs depthwise-separable convolution (arXiv:1704.04861 §3.1)", [table],
               [], data, intro)


def bottleneck_doc(d1: int, d2: int, t: Fraction, k: int, size: int, stride: int = 1,
                   dtype_bytes: int = 2) -> Doc:
    """V2's inverted residual against a V1 block of the same widths (V2 §3.3, Table 1)."""
    hidden = d1 * t
    _require(hidden.denominator == 1, f"t·cin must be a whole number of channels, got {hidden}")
    e = int(hidden)
    x = Shape(size, size, d1)
    exp_out, exp_macs, _ = _cost(Conv2d(c=e), x)
    dw_out, dw_macs, _ = _cost(Depthwise(k=(k, k), s=(stride, stride)), exp_out)
    out, proj_macs, _ = _cost(Conv2d(c=d2), dw_out)
    v2 = exp_macs + dw_macs + proj_macs
    v1_dw_out, v1_dw, _ = _cost(Depthwise(k=(k, k), s=(stride, stride)), x)
    _, v1_pw, _ = _cost(Conv2d(c=d2), v1_dw_out)
    v1 = v1_dw + v1_pw
    h2 = out.h
    paper = size * size * d1 * t * (d1 + k * k + d2)
    intro = [
        f"d' = {d1} in, d'' = {d2} out, t = {frac(t)} (expanded {e}), k = {k}, "
        f"input {size}×{size}, stride {stride} (output {h2}×{h2})",
        "",
        f"expand 1×1    h·w·d'·(t·d')       = {size}·{size}·{d1}·{e} = {fmt_int(exp_macs)}",
        f"depthwise     h'·w'·(t·d')·k²     = {h2}·{h2}·{e}·{k * k} = {fmt_int(dw_macs)}",
        f"project 1×1   h'·w'·(t·d')·d''    = {h2}·{h2}·{e}·{d2} = {fmt_int(proj_macs)}",
        f"bottleneck    {fmt_int(v2)} MACs",
    ]
    if stride == 1:
        intro.append(f"paper         h·w·d'·t·(d' + k² + d'') = {fmt_int(int(paper))}"
                     f"{' (equal)' if paper == v2 else ' (NOT equal)'}")
    intro += [
        "",
        f"V1 block      h'·w'·d'·(k² + d'')  = {h2}·{h2}·{d1}·({k * k} + {d2}) = {fmt_int(v1)}",
        f"V2 / V1       {frac(Fraction(v2, v1))} = {dec(Fraction(v2, v1), 3)}",
    ]
    tensors = [("input (bottleneck)", Shape(size, size, d1)), ("expanded", exp_out),
               ("after depthwise", dw_out), ("output (bottleneck)", out)]
    rows = [{"tensor": name, "shape": str(s), "elements": s.numel,
             "bytes": s.numel * dtype_bytes} for name, s in tensors]
    cols = [Column("tensor", "tensor", left=True), Column("shape", "shape"),
            Column("elements", "elements", fmt_int), Column(f"bytes ({dtype_bytes} B)", "bytes",
                                                            fmt_int)]
    ratio = Fraction(exp_out.numel, x.numel)
    notes = [f"The expanded tensor is {frac(ratio)}× the input. V2 §5: computed channel group "
             "by channel group, it never needs to exist in full; only the thin bottleneck "
             "tensors do, which is why V2's peak memory is lower than V1's."]
    data = envelope("explain", topic="bottleneck",
                    inputs={"cin": d1, "cout": d2, "t": frac(t), "k": k, "size": size,
                            "stride": stride},
                    macs={"expand": exp_macs, "depthwise": dw_macs, "project": proj_macs,
                          "total": v2, "v1_block": v1}, tensors=rows)
    return Doc("MobileNet V2 bottleneck (arXiv:1801.04381 §3.3)",
               [Table("Tensors", cols, rows, notes)], [], data, intro)


def _connectivity(c: int, mid: int, g1: int, g2: int) -> list[int]:
    """Inputs each output reaches through group conv (g1), shuffle(g1), group conv (g2)."""
    in_per, mid_per1 = c // g1, mid // g1
    reach_mid = [((1 << in_per) - 1) << (in_per * (j // mid_per1)) for j in range(mid)]
    shuffled = [0] * mid
    per = mid // g1  # ChannelShuffle(g1): new j·g1 + g ← old g·per + j
    for g in range(g1):
        for j in range(per):
            shuffled[j * g1 + g] = reach_mid[g * per + j]
    out_per, mid_per2 = c // g2, mid // g2
    result = []
    for h in range(g2):  # the outputs of one group reach the same inputs
        mask = 0
        for j in range(h * mid_per2, (h + 1) * mid_per2):
            mask |= shuffled[j]
        result += [bin(mask).count("1")] * out_per
    return result


def micro_doc(c: int, r: int, g1: int, g2: int, k: int, size: int = 1) -> Doc:
    """Dense pointwise against MicroNet's micro-factorized pointwise; k×k against k×1 + 1×k."""
    _require(0 < c <= MAX_EXPLAIN_CHANNELS, f"C must be from 1 to {MAX_EXPLAIN_CHANNELS:,}: the "
             "connectivity traces every input of every output")
    _require(c % r == 0, f"the ratio R = {r} must divide C = {c}")
    mid = c // r
    for g, what in ((g1, "G1"), (g2, "G2")):
        _require(mid % g == 0 and c % g == 0, f"{what} = {g} must divide both C = {c} and "
                                              f"C/R = {mid}")
    hw = size * size
    dense = c * c
    q, p = c * mid // g1, mid * c // g2
    reach = _connectivity(c, mid, g1, g2)
    ratio = Fraction(q + p, dense)
    intro = [
        f"C = {c} channels, R = {r} (C/R = {mid}), G1 = {g1}, G2 = {g2}, "
        f"{size}×{size} positions",
        "",
        f"dense 1×1       C·C = {c}·{c} = {fmt_int(dense)} weights, "
        f"{fmt_int(dense * hw)} MACs",
        f"Q (C→C/R, G1)   C·(C/R)/G1 = {c}·{mid}/{g1} = {fmt_int(q)}",
        "Φ (shuffle)     a permutation: free",
        f"P (C/R→C, G2)   (C/R)·C/G2 = {mid}·{c}/{g2} = {fmt_int(p)}",
        f"factorized      {fmt_int(q + p)} weights, {fmt_int((q + p) * hw)} MACs",
        f"ratio           (1/G1 + 1/G2)/R = {frac(ratio)} = {dec(ratio, 4)}",
        "",
        f"connectivity    each output reaches {min(reach)}–{max(reach)} of {c} inputs "
        f"({'all' if min(reach) == c else 'not all'}); all are reached when G1·G2 ≤ C/R "
        f"({g1 * g2} {'≤' if g1 * g2 <= mid else '>'} {mid}).",
        "",
        f"depthwise k×k   k² = {k * k} MACs per channel and position",
        f"k×1 then 1×k    2k = {2 * k}: ratio 2/k = {frac(Fraction(2, k))} = "
        f"{dec(Fraction(2, k), 4)}",
    ]
    rows = []
    for gg in sorted({g for g in range(1, mid + 1) if mid % g == 0 and c % g == 0}):
        rr = _connectivity(c, mid, gg, gg)
        rows.append({"g": gg, "weights": c * mid // gg * 2, "ratio": dec(Fraction(2, gg * r), 4),
                     "reach": f"{min(rr)}–{max(rr)}", "full": min(rr) == c})
    cols = [Column("G1 = G2", "g"), Column("weights", "weights", fmt_int),
            Column("vs dense", "ratio"), Column("inputs reached", "reach"),
            Column("all", "full", lambda v: "✓" if v else "")]
    notes = ["MicroNet (arXiv:2108.05894 §3.1) picks G = √(C/R): the fewest weights that still "
             "connect every output to every input."]
    data = envelope("explain", topic="micro", inputs={"C": c, "R": r, "G1": g1, "G2": g2,
                                                      "k": k, "size": size},
                    dense_weights=dense, factorized_weights=q + p, ratio=frac(ratio),
                    reach_min=min(reach), reach_max=max(reach), groups=rows)
    return Doc("Micro-factorized convolution (MicroNet, arXiv:2108.05894 §3)",
               [Table("Equal groups G1 = G2", cols, rows, notes)], [], data, intro)


def _scaled_dims(layer: Layer, base_in: Shape, base_out: Shape, classes: int,
                 image: int) -> list[tuple[str, int, int]]:
    """The widths the ideal law scales by α: (name, base width, position: 0 in, 1 out)."""
    if layer.kind == "depthwise":
        return [("c", base_out.c, 1)]
    dims = []
    if not (layer.kind == "conv2d" and base_in.c == image):
        dims.append(("cin", base_in.c, 0))
    if base_out.c != classes:
        dims.append(("cout", base_out.c, 1))
    return dims


def _num(f: Fraction) -> str:
    return frac(f) if f.denominator == 1 else f"{float(f):.1f}"


def _percent(v: Decimal) -> str:
    return f"{'+' if v >= 0 else ''}{v} %"


def _law(dims: int, spatial: bool) -> str:
    return ("α²" if dims == 2 else "α" if dims == 1 else "1") + ("·ρ²" if spatial else "")


def scaling_doc(spec: Spec, alpha: Fraction, res: int) -> Doc:
    """How α and ρ scale each layer, and where rounding moves the real cost off α²·ρ²."""
    conv = Convention(PARAM_CONVENTIONS["torch"])
    base = count(build(spec, Fraction(1)), conv)  # the paper widths, whatever the spec fixes
    if not base.macs:  # every ratio below is to the base's MACs
        raise MacscalcError(f"explain scaling needs conv or FC layers: {show(spec.name)} has "
                            "no MACs to scale", spec.file)
    scaled = count(build(spec, alpha, (res, res)), conv)
    rho = Fraction(res, spec.size[0])
    by_name = {lc.node.name: lc for lc in scaled.layers}
    rows = []
    classes, image = scaled.network.settings.classes, spec.channels
    for lc in base.layers:
        if not lc.macs or lc.node.name not in by_name:
            continue
        n, sc = lc.node, by_name[lc.node.name]
        dims = _scaled_dims(n.layer, n.in_shapes[0], n.out, classes, image)
        spatial = n.out.h > 1
        ideal = alpha ** len(dims) * (rho * rho if spatial else 1)
        actual = Fraction(sc.macs, lc.macs)
        now = (sc.node.in_shapes[0].c, sc.node.out.c)
        why = []
        for name, width, pos in dims:
            if now[pos] == width and alpha != 1:
                why.append(f"{name} kept at {width}")
            elif Fraction(now[pos], width) != alpha:
                why.append(f"{name} {width}→{now[pos]} not {_num(alpha * width)}")
        if spatial and Fraction(sc.node.out.h, n.out.h) != rho:
            why.append(f"{n.out.h}→{sc.node.out.h} px not {_num(rho * n.out.h)}")
        rows.append({"layer": n.name, "kind": n.layer.label(n.in_shapes),
                     "law": _law(len(dims), spatial), "macs": lc.macs, "scaled": sc.macs,
                     "actual": dec(actual, 4), "ideal": dec(ideal, 4),
                     "off_pct": Decimal(f"{float(actual / ideal - 1) * 100:.1f}"),
                     "why": "; ".join(why),
                     "_warn": actual != ideal})
    total = Fraction(scaled.macs, base.macs)
    a2r2 = alpha * alpha * rho * rho
    intro = [
        f"{spec.title}: α {fmt_alpha(alpha)}, resolution {res} (ρ = {res}/{spec.size[0]} = "
        f"{frac(rho)}), rounding {spec.rounding.name}",
        "",
        "Pointwise and full convs scale as α² (both widths), depthwise as α (one width), "
        "every spatial layer as ρ², the first conv as α (3 input channels), the classifier "
        "as α and not at all with ρ (it sees a 1×1 input).",
        "",
        f"total MACs    {fmt_int(base.macs)} → {fmt_int(scaled.macs)}: ×{dec(total, 4)}",
        f"α²·ρ²         {frac(a2r2)} = {dec(a2r2, 4)}",
    ]
    cols = [Column("layer", "layer", left=True), Column("law", "law", left=True),
            Column("MACs", "macs", fmt_int, drop=2), Column("×", "actual"),
            Column("ideal", "ideal", drop=1), Column("off", "off_pct", _percent),
            Column("why", "why", left=True, cut=16)]
    notes = ["off: the real ratio against the ideal law; why: the widths rounded by the spec's "
             "rule (or kept by a width: rule in the spec) and the sides rounded by strides."]
    data = envelope("explain", topic="scaling", spec=spec.name, alpha=fmt_alpha(alpha),
                    resolution=res, rho=frac(rho), macs=base.macs, scaled_macs=scaled.macs,
                    total_ratio=frac(total),
                    alpha2_rho2=frac(a2r2), layers=rows)
    return Doc(f"How α and ρ scale {spec.title}", [Table("Layers with MACs", cols, rows, notes)],
               [], data, intro)


def layer_doc(network: Network, name: str) -> Doc:
    """One layer (or every primitive of one block, built-in or the spec's own) with its
    formulas and numbers."""
    nodes = [n for n in network.nodes if n.name == name] or \
            [n for n in network.nodes if n.block == name or n.name.startswith(f"{name}/")]
    if not nodes:
        names = list(dict.fromkeys([n.block for n in network.nodes] +
                                   [n.name for n in network.nodes]))
        raise MacscalcError(f"no layer or block named {show(name)} in {network.spec.name}"
                            f"{suggest(name, names)}")
    report = count(network, Convention(PARAM_CONVENTIONS["all"],
                                       ("bn", "act", "pool", "add", "mul", "shiftmax")))
    counts = {lc.node.name: lc for lc in report.layers}
    intro: list[str] = []
    rows = []
    for n in nodes:
        lc = counts[n.name]
        kind = f"{n.layer.kind} {n.layer.detail()}".strip()
        intro += [f"{n.name} ({kind}): "
                  f"{' + '.join(map(str, n.in_shapes))} → {n.out}".rstrip()]
        formulas = n.layer.formulas(n.in_shapes, n.out)
        values = {"macs": lc.macs, "params": sum(lc.params), **lc.ops}
        if not formulas:
            intro.append("  free: no MACs, no parameters, no extra operations")
        for key, (symbols, numbers) in formulas.items():
            label = {"macs": "MACs", "params": "params"}.get(key, f"{key} ops")
            intro.append(f"  {label:<11} {symbols} = {numbers} = {fmt_int(values[key])}")
            rows.append({"layer": n.name, "counter": label, "formula": symbols,
                         "numbers": numbers, "value": values[key]})
        intro.append("")
    s = network.settings
    data = envelope("explain", topic="layer", spec=network.spec.name,
                    settings={"alpha": fmt_alpha(s.alpha), "resolution": list(s.size),
                              "classes": s.classes}, formulas=rows)
    return Doc(f"{network.spec.title}: {name} (α {fmt_alpha(s.alpha)}, {s.size[0]}×{s.size[1]})",
               [], ["params counts every stored number (weights, biases, BN γ/β and moving "
                    "statistics); extra ops are elementary operations."], data, intro[:-1])


def latency_doc(network: Network, profile: Profile) -> Doc:
    """Where the estimated time goes on a device: by term, by layer kind, and per kernel
    whether compute, memory traffic or the launch dominates, and why."""
    from macscalc.analysis.latency import FORMULA, TERMS, estimate, kernel_features
    from macscalc.published.tables import published_latency

    report = count(network, Convention(PARAM_CONVENTIONS["torch"]))
    est = estimate(report, profile, published_latency(network, profile.published)
                   if profile.published else None)
    coefs = dict(zip((t.name for t in TERMS), profile.coefs(), strict=True))
    times = profile.kernel_times(network)
    total = est.ms or 1.0
    terms = {t.name: [0.0, 0.0] for t in TERMS}  # amount, ms
    node_of = {n.name: n for n in network.nodes}
    kinds: dict[str, list[float]] = {}  # label → [kernels, ms]
    kernel_rows = []
    for kt in times:
        for name, v in kernel_features(kt.kernel).items():
            terms[name][0] += v
            terms[name][1] += coefs[name] * v
        head = node_of.get(kt.kernel.nodes[0])
        label = "layout conversion" if kt.kernel.what == "reorder" or head is None else (
            head.role or head.layer.label(head.in_shapes))
        row = kinds.setdefault(label, [0, 0.0])
        row[0] += 1
        row[1] += kt.ms
        kernel_rows.append({"kernel": " + ".join(kt.kernel.nodes), "what": kt.kernel.what,
                            "us": 1e3 * kt.ms, "compute_us": 1e3 * kt.compute,
                            "memory_us": 1e3 * kt.memory, "launch_us": 1e3 * kt.launch,
                            "bound": kt.bound, "share_pct": 100 * kt.ms / total})
    term_rows = [{"term": t.what, "amount": amount,
                  "constant": f"{profile.constants[t.key]:.4g} {t.unit}",
                  "ms": ms, "share_pct": 100 * ms / total}
                 for t, (amount, ms) in zip(TERMS, terms.values(), strict=True)]
    kind_rows = sorted(({"kind": label, "kernels": int(n), "ms": ms,
                         "share_pct": 100 * ms / total} for label, (n, ms) in kinds.items()),
                       key=lambda r: -r["ms"])
    bound = {b: sum(1 for r in kernel_rows if r["bound"] == b)
             for b in ("compute", "memory", "launch")}
    c = profile.constants
    intro = [f"Estimated on {profile.name} ({profile.device}): {est.ms:.2f} ms, "
             f"{est.low:.2f}–{est.high:.2f} ms for 9 in 10 held-out rows of its calibration.",
             "Model, per kernel the runtime runs (BN, most activations and a residual add "
             "fused into the conv before them; layout conversions where a plain-layout "
             "layer meets the blocked conv layout): " + FORMULA,
             "  " + ", ".join(f"{t.key} = {c[t.key]:.4g} {t.unit}" for t in TERMS),
             f"  fitted on {profile.fitted_on}",
             f"{len(kernel_rows)} kernels: {bound['compute']} compute-bound (their MACs, "
             f"depthwise planes or exponentials take the most time), {bound['memory']} "
             f"memory-bound (the bytes they move take the most: a conversion, element-wise "
             f"op, copy or pool streams its tensors at {c['pass_gbytes_per_s']:.4g} GB/s, a "
             f"conv reads and writes its activations at {c['gbytes_per_s']:.4g} GB/s and "
             f"streams its weights at {c['weight_gbytes_per_s']:.4g} GB/s), "
             f"{bound['launch']} launch-bound (the fixed "
             f"{c['us_per_kernel']:.4g} µs per kernel is the largest part).", ""]
    dense, dw = c["conv1x1_gmacs_per_s"], c["dw_gmacs_per_s"]
    if 0 < dw < float("inf") and dense > 0:
        intro.append(f"A depthwise MAC costs R_1×1 / R_dw = {dense:.4g} / {dw:.4g} = "
                     f"{dense / dw:.1f} 1×1-conv MACs here, plus its per-plane cost.")
        intro.append(
            "Why: a 1×1 or dense conv is a matrix product; each input is reused by every "
            "output channel and each weight at every position, so it runs near the "
            "arithmetic peak. A depthwise k×k conv does only k² MACs per output and reuses "
            "nothing across channels; it also pays per channel plane, so a 5×5 does more "
            "MACs per second than a 3×3." if dense > dw else
            "Here its arithmetic is not the cost: a depthwise conv's time is mostly the "
            "activation bytes it reads and writes (see the memory-bound kernels).")
    if est.unseen:
        intro.append(f"WARNING: the calibration never saw {', '.join(est.unseen)}.")
    ms = lambda v: f"{v:.3f}"  # noqa: E731
    us = lambda v: f"{v:.1f}"  # noqa: E731
    pct = lambda v: f"{v:.1f}"  # noqa: E731
    tables = [Table("By term of the model", [
        Column("term", "term", left=True), Column("amount", "amount", lambda v: fmt_int(int(v))),
        Column("cost", "constant"), Column("ms", "ms", ms), Column("% time", "share_pct", pct)],
        term_rows),
        Table("By layer kind (the kernel's first layer)", [
            Column("kind", "kind", left=True), Column("kernels", "kernels"),
            Column("ms", "ms", ms), Column("% time", "share_pct", pct)], kind_rows),
        Table("Each kernel: what bounds it", [
            Column("kernel (fused layers)", "kernel", left=True, cut=40),
            Column("est. µs", "us", us), Column("compute µs", "compute_us", us),
            Column("memory µs", "memory_us", us), Column("launch µs", "launch_us", us),
            Column("bound", "bound", left=True), Column("% time", "share_pct", pct)],
            kernel_rows)]
    s = network.settings
    data = envelope("explain", topic="latency", spec=network.spec.name,
                    settings={"alpha": fmt_alpha(s.alpha), "resolution": list(s.size),
                              "classes": s.classes}, latency_ms=est.data(), terms=term_rows,
                    kinds=kind_rows, kernels=kernel_rows)
    return Doc(f"Where the time goes: {network.spec.title} (α {fmt_alpha(s.alpha)}, "
               f"{s.size[0]}×{s.size[1]}) on {profile.name}", tables,
               ["Estimated, not measured: the profile's constants times this network's counts."],
               data, intro)
