"""What a kernel really computes: the measurements behind ``kernels.IN_REGISTERS`` and
``kernels.padded_rows`` (issue 21).

Each experiment is timed interleaved on one pinned core (1 thread) so that load on the
machine touches every graph alike:

1. one 1×1 conv and its activation, then a 1×1 conv back (so the layout stays blocked),
   at two shapes: each activation's extra time over none, per element of the conv's
   output (the model once took every fused activation as free);
2. whole MobileNets against the same spec with ReLU in place of ReLU6 or h-swish: what the
   activation costs a network, measured and as the model with ``cpu_epyc_1t`` estimates it;
3. a 3×3 conv over a 65×65 map of 256 channels, dilated 1, 6, 12 and 18 (DeepLabV3's
   ASPP): its time against the undilated one, beside the share of its (output row,
   kernel row) pairs that read the input rather than padding, and the share of its taps.

    python benchmarks/kernel_costs.py [--sessions N]

On this machine (2-core EPYC, onnxruntime 1.32) every activation but ReLU costs about
0.2–0.4 ns an element, a pass of its own over the output; ReLU6 is 14 % of MobileNet
V2's time and h-swish 7 % of V3-Large's. Dilated 18, the conv takes 0.83 of its
undilated time: its share of kernel rows inside the input (0.82), not of taps (0.66):
the blocked conv skips kernel rows that fall in the padding, not columns.
"""

from __future__ import annotations

import argparse
import re
import sys
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from macscalc.analysis.kernels import padded_rows  # noqa: E402
from macscalc.analysis.latency import load_profile  # noqa: E402
from macscalc.lang.graph import Network, build  # noqa: E402
from macscalc.lang.spec import load_spec, parse  # noqa: E402
from macscalc.models.measure import pin, time_networks  # noqa: E402

ACTS = ("none", "relu", "relu6", "hswish", "hsigmoid", "leaky_relu", "sigmoid", "tanh")
SHAPES = ((56, 32, 192), (7, 160, 960))  # (feature map, channels in, channels out)
SWAPS = (("mobilenet_v1", "relu6"), ("mobilenet_v2", "relu6"), ("mobilenet_v3_large", "hswish"))


def conv_graph(size: int, cin: int, cout: int, act: str) -> Network:
    text = "\n".join([f"name: act_{act}", "source: benchmarks/kernel_costs.py", "classes: 1",
                      f"input: {{size: {size}, channels: {cin}}}",
                      "defaults: {bn: false, act: none}", "layers:",
                      f"  - pw: {{c: {cout}, act: {act}}}", f"  - pw: {{c: {cin}}}"])
    return build(parse(text, f"<{act}>"), Fraction(1), None, None)


def relu_instead(spec: str, act: str) -> Network:
    """The built-in spec with ReLU wherever it has ``act``."""
    path = ROOT / "specs" / f"{spec}.yaml"
    text = re.sub(rf"\bact: {act}\b", "act: relu", path.read_text(encoding="utf-8"))
    return build(parse(text, f"<{spec} with relu>"), Fraction(1), None, None)


def medians(nets: list[Network], sessions: int, runs: int = 60) -> list[float]:
    """Each graph's median ms, the lowest over the sessions."""
    best = [float("inf")] * len(nets)
    for _ in range(sessions):
        for i, t in enumerate(time_networks(nets, 1, runs=runs, warmup=5, rounds=10)):
            best[i] = min(best[i], t.ms)
    return best


def dilated(rate: int | None) -> Network:
    """A 3×3 conv dilated ``rate`` between two 1×1 convs (None: the 1×1 convs alone)."""
    rows = ["pw: {c: 256}", *([f"conv: {{c: 256, k: 3, d: {rate}}}"] if rate else []),
            "pw: {c: 256}"]
    text = "\n".join(["name: dilated", "source: benchmarks/kernel_costs.py", "classes: 1",
                      "input: {size: 65, channels: 256}", "defaults: {bn: false, act: none}",
                      "layers:", *(f"  - {r}" for r in rows)])
    return build(parse(text, "<dilated>"), Fraction(1), None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=3)
    args = parser.parse_args()
    pin(1)
    print("1. a 1×1 conv with each activation fused: extra time over none, per output element")
    for size, cin, cout in SHAPES:
        ms = medians([conv_graph(size, cin, cout, a) for a in ACTS], args.sessions)
        elements = size * size * cout
        print(f"  {size}×{size}, {cin} → {cout} channels (none: {1e3 * ms[0]:.1f} µs)")
        for act, t in zip(ACTS[1:], ms[1:], strict=True):
            print(f"    {act:11} {1e6 * (t - ms[0]) / elements:+6.3f} ns an element")
    print("\n2. whole networks, against ReLU in place of the activation (ms, median)")
    profile = load_profile("cpu_epyc_1t")
    for spec, act in SWAPS:
        nets = [build(load_spec(spec), Fraction(1), None, None), relu_instead(spec, act)]
        ms = medians(nets, args.sessions)
        measured = ms[0] - ms[1]
        est = [profile.predict(n) for n in nets]
        print(f"  {spec}: {act} {ms[0]:.3f}, relu {ms[1]:.3f}: {act} costs {measured:.3f} ms "
              f"({100 * measured / ms[0]:.0f} %); cpu_epyc_1t estimates "
              f"{est[0] - est[1]:.3f} ms")
    print("\n3. a 3×3 conv over 65×65×256, dilated: its time against the undilated one")
    rates = (1, 6, 12, 18)
    ms = medians([dilated(None), *(dilated(r) for r in rates)], args.sessions, runs=20)
    for rate, t in zip(rates, ms[1:], strict=True):
        conv = dilated(rate).nodes[1]
        rows = 1 - padded_rows(conv.layer, 65, 65) / (65 * 3)
        taps = sum(0 <= y + (i - 1) * rate < 65 for y in range(65) for i in range(3)) / 195
        print(f"  rate {rate:2}: {(t - ms[0]) / (ms[1] - ms[0]):.2f} of the undilated time; "
              f"kernel rows inside the input {rows:.2f}, taps {taps ** 2:.2f}")


if __name__ == "__main__":
    main()
