"""Property tests for the input surfaces of issue 19: ONNX graphs built from random ops and
attributes, device profiles, measurement CSVs, sweep ranges and block chains. Each input
gets a result or one MacscalcError (one line, no control character, at most 1,000
characters), never another exception, and nothing past its limits.

The everyday suite replays the same few examples (derandomized); the long run draws fresh
ones: ``MACSCALC_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz_surfaces.py``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macscalc.analysis.calibrate import read_measurements
from macscalc.analysis.latency import estimate, load_profile
from macscalc.analysis.sweeps import check_points, parse_values, value_count
from macscalc.core.errors import MacscalcError, printable
from macscalc.core.limits import MAX_SWEEP_POINTS
from macscalc.lang.graph import build
from macscalc.lang.spec import parse

LONG_RUN = "MACSCALC_FUZZ_EXAMPLES" in os.environ


def fuzz(examples: int) -> Any:
    return settings(max_examples=int(os.environ.get("MACSCALC_FUZZ_EXAMPLES", examples)),
                    deadline=None, derandomize=not LONG_RUN, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def one_error(e: MacscalcError) -> None:
    """A user error as the CLI prints it: one short line, nothing a terminal would act on."""
    shown = printable(e.located())
    assert len(e.message) <= 1001 and not shown.startswith("::")
    assert not any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f or c == "\u202e" for c in shown)


ODD_NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                        st.integers(-10, 10**20), st.sampled_from(["x", "", "1/0", "١٢"]))
NAMES = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)


# -- device profiles -------------------------------------------------------------------------

PROFILE = (Path(__file__).resolve().parent.parent / "macscalc" / "data" / "profiles"
           / "pixel1.yaml").read_text(encoding="utf-8")
KEYS = ["conv1x1_gmacs_per_s: 5.428", "dw_gmacs_per_s: 1.038", "dw_mplanes_per_s: 1.804",
        "us_per_kernel: 0.0", "p90_pct: 13.48"]


@fuzz(40)
@given(key=st.sampled_from(KEYS), value=ODD_NUMBERS, name=NAMES)
def test_random_profiles(key: str, value: Any, name: str) -> None:
    import json

    from tests.conftest import counted

    text = PROFILE.replace(key, f"{key.split(':')[0]}: {json.dumps(value)}")
    text = text.replace("name: pixel1", f"name: {json.dumps(name)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            profile = load_profile(str(path))
        except MacscalcError as e:
            one_error(e)
            return
    est = estimate(counted("mobilenet_v1", "0.25", 128), profile)
    # a rate is positive (.inf: a term left free, the others keep the estimate above 0)
    assert 0 < est.ms < float("inf") and est.low <= est.ms
    line = printable(est.text())
    assert not line.lstrip().startswith("::") and "\x1b" not in line and "\n" not in line


# -- measurement CSVs ------------------------------------------------------------------------

CELLS = st.one_of(st.sampled_from(["mobilenet_v1", "mobilenet_v2", "", "0.5", "1", "160",
                                   "1001", "12.5", "nan", "1e-300", "١٢٨", "/etc/passwd",
                                   '"a,b"', "x" * 300]), st.text(max_size=8))
ROW = st.lists(CELLS, min_size=0, max_size=7).map(",".join)


@fuzz(60)
@given(rows=st.lists(ROW, max_size=6), encoding=st.sampled_from(["utf-8", "utf-16",
                                                                 "latin-1"]),
       head=st.sampled_from(["spec,alpha,res,classes,ms", "spec,alpha,res,classes",
                             "# by hand\nspec,alpha,res,classes,ms,q1_ms"]))
def test_random_measurement_csvs(rows: list[str], encoding: str, head: str) -> None:
    data = "\n".join([head, *rows]).encode(encoding, "replace")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.csv"
        path.write_bytes(data)
        try:
            measured = read_measurements(path)
        except MacscalcError as e:
            one_error(e)
            return
    for m in measured:
        assert m.ms is not None and 0.001 <= m.ms <= 10_000_000
        assert (m.res is None or 1 <= m.res <= 16_384) and 0 < m.alpha <= 16


# -- sweep ranges ----------------------------------------------------------------------------

NUMBER = st.one_of(st.sampled_from(["0", "1", "0.25", "1e9", "16", "0.000001", "-1", "x", "",
                                    "1/0", "١", "1" + "0" * 50]),
                   st.decimals(0, 20000, places=3, allow_nan=False).map(str))
RANGE = st.lists(NUMBER, min_size=1, max_size=4).map(":".join)
RANGES = st.lists(RANGE, min_size=1, max_size=3).map(",".join)


@fuzz(100)
@given(alpha=RANGES, res=RANGES)
def test_random_sweep_ranges_are_sized_first(alpha: str, res: str) -> None:
    try:
        na, nr = value_count(alpha, "--alpha"), value_count(res, "--res")
        check_points(na, nr)
        values = parse_values(alpha, "--alpha")
    except MacscalcError as e:
        one_error(e)
        return
    assert len(values) == na and na * nr <= MAX_SWEEP_POINTS


# -- block chains ----------------------------------------------------------------------------

@fuzz(40)
@given(uses=st.lists(st.lists(st.integers(0, 40), max_size=3), min_size=1, max_size=41),
       args=st.lists(st.sampled_from(["{}", "{w: 8}", "{w: 0}", "{w: '$w * 2'}", "{w: ١}"]),
                     min_size=41, max_size=41))
def test_random_block_graphs(uses: list[list[int]], args: list[str]) -> None:
    """Blocks using one another at random (cycles, deep chains, conditional rows)."""
    n = len(uses)
    text = "name: t\nsource: s\ninput: {size: 16}\nclasses: 10\nblocks:\n"
    for i, used in enumerate(uses):
        rows = [f"      - b{j % n}: {args[j]}\n" for j in used] or ["      - conv: {c: 8}\n"]
        rows.append("      - conv: {c: \"$w\", if: \"$w > 0\"}\n")
        text += f"  b{i}:\n    args: {{w: 8}}\n    layers:\n" + "".join(rows)
    text += "layers:\n  - b0: {}\n"
    try:
        network = build(parse(text, "t.yaml"))
    except MacscalcError as e:
        one_error(e)
        return
    assert network.nodes and len(network.nodes) <= 20_000
