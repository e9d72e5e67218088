"""``macscalc calibrate --auto``: a device profile from timed single layers and small blocks.

Why: a user should not need a model zoo to calibrate. Every constant of the latency
model (``latency.TERMS``) is pinned by layers that exercise it alone: 1×1 and k×k convs,
grouped convs, depthwise 3×3/5×5/7×7 at stride 1 and 2 and with a multiplier (which
onnxruntime runs in plain layout), FC layers from small to weight-streaming, swish,
channel shuffles, splits and concatenations, pooling, bilinear resizing, and
inverted-residual and squeeze-excite blocks (fusions and layout conversions as whole
networks have them), over channel counts and feature-map sizes from compute-bound to
memory-bound. Each graph is a spec of one or two rows, exported and timed with
``measure``'s protocol; every fifth is held out of the fit and predicted, so the profile
carries its error on layers it never saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction
from typing import NamedTuple

from macscalc.analysis.calibrate import Calibration
from macscalc.core.errors import MacscalcError
from macscalc.lang.graph import Network, build
from macscalc.lang.spec import parse

HOLD_OUT = 5  # one graph in five is held out of the fit
# (feature-map size, channels): from large maps with few channels to small maps with many;
# the last two have tensors beyond the core's 1 MB L2, as a network's early layers do
SHAPES = ((56, 32), (14, 256), (28, 64), (7, 512), (112, 16), (28, 128), (14, 128), (7, 256),
          (56, 64), (112, 32), (56, 96), (56, 24), (28, 40))
CHAIN = 3  # each layer under test is timed alone and repeated this many times: a short
# network, whose tensors and weights do not all stay in the core's caches between runs
FC = ((512, 1000), (1280, 1000), (4096, 4096), (1024, 1024), (2048, 1000))
# long chains of tiny kernels (a 1×1 conv and a channel shuffle, repeated): their time is
# mostly each kernel's launch inside a graph of hundreds, as in MicroNet or ShuffleNet,
# which the short graphs above cannot separate from a run's fixed cost
DEEP = ((7, 32), (14, 16), (7, 64))
DEEP_REPEATS = 40
SHUFFLES = 20


class Design(NamedTuple):
    """One graph to time: a label, its input and its rows (spec YAML)."""

    label: str
    size: int
    channels: int
    rows: tuple[str, ...]
    held: bool  # held out of the fit and predicted

    def network(self) -> Network:
        text = "\n".join([f"name: auto_{self.label.replace(' ', '_')}", "source: calibrate --auto",
                          "classes: 1", f"input: {{size: {self.size}, channels: {self.channels}}}",
                          "defaults: {bn: true, act: relu}", "layers:",
                          *(f"  - {r}" for r in self.rows)])
        return build(parse(text, f"<auto {self.label}>"), Fraction(1), None, None)


def designs() -> list[Design]:
    """The designed grid, kinds inner and shapes outer, so that a short budget still
    covers every kind."""
    out = []
    for i, (s, c) in enumerate(SHAPES):
        gw = 16 if c % 16 == 0 else 8
        pw = f"pw: {{c: {c}}}"  # a 1×1 conv first: the layer under test reads a conv's
        # output in the runtime's blocked layout, as inside a network
        kinds = [
            ("pw", [f"pw: {{c: {2 * c}}}"]),
            ("conv3", [f"conv: {{c: {c}, k: 3}}"]),
            (f"group3 w{gw}", [f"conv: {{c: {c}, k: 3, group_width: {gw}}}"]),
            ("dw3", [pw, "dw: {k: 3}"]),
            ("dw5", [pw, "dw: {k: 5}"]),
            ("dw7", [pw, "dw: {k: 7}"]),
            ("dw3 s2", [pw, "dw: {k: 3, s: 2}"]),
            ("swish", [pw, "act: {fn: swish}"]),
            ("shuffle", [pw, "shuffle: {groups: 2}"]),
            ("split concat", [pw, "split: {parts: 2, name: x#}", "concat: {from: [x#.1, x#.0]}"]),
            ("maxpool", [pw, "pool: {op: max, k: 3, s: 2, padding: 1}"]),
            ("ir", [pw, f"ir: {{t: 4, c: {c}, k: {3 if i % 2 else 5}, act: relu6}}"]),
            ("ir se", [pw, f"ir: {{t: 4, c: {c}, k: 3, se: true, act: hswish}}"]),
            ("residual", [f"conv: {{c: {c}, k: 1}}", "residual: {}"]),
            ("bilinear x2", [pw, "upsample: {scale: 2, mode: bilinear}"]),
            ("dw3 m2", [pw, "dw: {k: 3, m: 2}"]),
            ("dw3 m2 s2", [pw, "dw: {k: 3, m: 2, s: 2}"]),
            ("gpw w8", [pw, f"conv: {{c: {c}, k: 1, group_width: 8}}"]),
            ("dyshiftmax", [pw, "dyshiftmax: {k: 2}"]),
            ("narrow", ["pw: {c: 8}", f"pw: {{c: {c}}}"]),
        ]
        # each kind alone and as a chain; held out (both) at one shape in five, so the
        # held-out graphs cover every kind; '#' numbers a name in each repetition
        out += [Design(f"{k} c{c} {s}" + (f" x{n}" if n > 1 else ""), s, c,
                       tuple(r.replace("#", str(m)) for m in range(n) for r in rows),
                       (i + j) % HOLD_OUT == HOLD_OUT - 1)
                for n in (1, CHAIN) for j, (k, rows) in enumerate(kinds)]
        # a network's first conv reads the image's 3 channels in plain layout directly
        out.append(Design(f"stem c{c} {s}", 2 * s, 3, (f"conv: {{c: {c}, k: 3, s: 2}}",),
                          (i + len(kinds)) % HOLD_OUT == HOLD_OUT - 1))
        if i < len(FC):  # one FC layer (a network has one, at its end)
            cin, cout = FC[i]
            out.append(Design(f"fc {cin}-{cout}", 1, cin, (f"fc: {{c: {cout}, bn: false, "
                                                            "act: none}",),
                              (i + len(kinds) + 1) % HOLD_OUT == HOLD_OUT - 1))
    out += [Design(f"deep c{c} {s}", s, c, (f"pw: {{c: {c}}}", "shuffle: {groups: 2}")
                   * DEEP_REPEATS, i == 1) for i, (s, c) in enumerate(DEEP)]
    # channel shuffles alone, in a row: a transpose copies each channel plane as a run of
    # its own, which only a map of many small planes shows (7×7×512: 9 ns a plane here)
    out += [Design(f"shuffles c{c} {s}", s, c, ("shuffle: {groups: 2}",) * SHUFFLES,
                   i % HOLD_OUT == HOLD_OUT - 1) for i, (s, c) in enumerate(SHAPES)]
    return out


def auto_calibrate(threads: int, budget: float, figure: str = "median", cpu: int | None = None,
                   step: Callable[[int, int, str], None] | None = None,
                   limit: int | None = None) -> tuple[Calibration, list[str]]:
    """Time the designed graphs until ``budget`` seconds have passed (at most ``limit``),
    fit on four in five and predict the rest; returns the calibration (its rows: every
    graph, fitted or held out) and the provenance lines. A pass over every graph takes
    about 25 s here; while the budget lasts the graphs are timed again, pass after pass,
    and each keeps its lowest figure: other work on the machine only ever adds time, and
    one pass held out 62 % of the graphs within ±10 % where the lowest over 10 sessions
    held out 87 % (``benchmarks/data/README.md``)."""
    from macscalc.analysis.calibrate import fit_split
    from macscalc.models.measure import layout_block, pin, provenance, time_networks

    if budget <= 0:
        raise MacscalcError("--budget must be a positive number of seconds")
    pin(cpu)
    todo = designs()[:limit]
    nets = [d.network() for d in todo]
    start = time.monotonic()
    best: list[float] = []  # the lowest figure of each graph timed, in design order
    batch = 2 * HOLD_OUT
    passes = 0
    while passes == 0 or time.monotonic() - start <= budget:
        for at in range(0, len(todo), batch):
            if time.monotonic() - start > budget and len(best) >= 2 * HOLD_OUT:
                break
            chunk = nets[at:at + batch]
            timings = time_networks(chunk, threads, runs=10, warmup=3, rounds=2, max_runs=40)
            for i, t in enumerate(timings, at):
                ms = t.min if figure == "min" else t.ms
                if i < len(best):
                    best[i] = min(best[i], ms)
                else:
                    best.append(ms)
            end = at + len(chunk)
            if step:
                step(end, len(todo), f"pass {passes + 1}: {todo[end - 1].label}")
        else:
            passes += 1
            continue
        break
    if len(best) < 2 * HOLD_OUT:
        raise MacscalcError(f"only {len(best)} graphs timed; --auto needs at least "
                            f"{2 * HOLD_OUT}")
    done = todo[:len(best)]
    held = [d.held for d in done]
    notes = provenance(threads, 10, 3, 2, 40, cpu)
    elapsed = time.monotonic() - start
    cal = fit_split(nets[:len(best)], best, [d.label for d in done], held,
                    fitted_on=f"calibrate --auto: {len(done)} single-layer and block graphs "
                    f"({sum(held)} held out), the {figure} of each, the lowest over "
                    f"{max(passes, 1)} pass{'es' if passes > 1 else ''} timed in "
                    f"{elapsed:.0f} s (" + "; ".join(n.lstrip("# ") for n in notes) + ")",
                    block=layout_block())
    return cal, notes
