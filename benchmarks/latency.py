"""Latency model benchmark: held-out accuracy of the profile fit, and the forms it beat.

Protocol (the one issue 12 judges by): sort a data set's models by MACs, calibrate on 8
spread evenly over that order, predict the rest; report the share within ±10 % and the
mean absolute percentage error (MAPE). Leave-one-out over all rows is shown beside.
Data: the published Pixel-1 latencies (slim MobileNet V2 grid, 22 rows, and the slim
V3 table, 6 rows; macscalc/data/v2.yaml, v3.yaml) and every CSV that ``macscalc
measure --grid`` wrote under benchmarks/data/ (each names its machine and runtime).

    python benchmarks/latency.py [--write-profiles]

``--write-profiles`` regenerates the built-in profiles in macscalc/data/profiles/ from
the same data (pixel1 from the published rows, cpu_epyc_2t from the 2-thread CSV).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from macscalc.analysis.calibrate import (  # noqa: E402
    Measurement,
    calibrate,
    calibrate_file,
    comments,
    read_measurements,
)
from macscalc.analysis.counting import PARAM_CONVENTIONS, Convention, count  # noqa: E402
from macscalc.analysis.latency import (  # noqa: E402
    PROFILE_DIR,
    TERMS,
    Errors,
    features,
    fit,
    leave_one_out,
    predict,
    profile_yaml,
)
from macscalc.published.tables import load_family  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
CPU_PROFILE = ("cpu_epyc_2t", "mobilenets_epyc_2t.csv")
CALIBRATION_ROWS = 8

# Model forms compared; the chosen one is TERMS (dense, dw, layers, ops).
FORMS = {
    "MACs": ("macs",),
    "MACs + constant": ("macs", "one"),
    "dense + dw": ("dense", "dw"),
    "dense + dw + layers": ("dense", "dw", "layers"),
    "dense + dw + layers + ops (chosen)": tuple(t.name for t in TERMS),
    "chosen + constant": (*(t.name for t in TERMS), "one"),
}


def pixel1() -> tuple[list[Measurement], list[str]]:
    """The 28 published Pixel-1 latencies, as measurements, with their sources."""
    rows, sources = [], []
    for family in ("v2", "v3"):
        table = load_family(family).primary
        sources.append(f"{table.source} ({table.title}; {table.devices['pixel1']})")
        rows += [Measurement(r.spec, r.alpha, r.res, table.classes, float(r.latency["pixel1"]))
                 for r in table.rows if "pixel1" in r.latency]
    return rows, sources


def columns(measured: list[Measurement]) -> list[dict[str, float]]:
    convention = Convention(PARAM_CONVENTIONS["torch"])
    out = []
    for m in measured:
        f = features(count(m.network(DATA), convention))
        out.append({**f, "macs": f["dense"] + f["dw"], "one": 1.0})
    return out


def calibration_rows(feats: list[dict[str, float]]) -> list[int]:
    """8 rows spread evenly over the models sorted by MACs."""
    order = sorted(range(len(feats)), key=lambda i: feats[i]["macs"])
    n = len(order)
    return sorted({order[round(i * (n - 1) / (CALIBRATION_ROWS - 1))]
                   for i in range(CALIBRATION_ROWS)})


def random_rows(n: int, draws: int = 20) -> list[list[int]]:
    """Seeded random calibration sets of 8 rows: how much the choice of rows matters."""
    import numpy as np

    rng = np.random.default_rng(0)
    return [sorted(rng.choice(n, CALIBRATION_ROWS, replace=False).tolist())
            for _ in range(draws)]


def held_out(feats: list[dict[str, float]], ms: list[float], form: tuple[str, ...],
             cal: list[int] | None = None) -> Errors:
    cal = calibration_rows(feats) if cal is None else cal
    x = [[f[k] for k in form] for f in feats]
    coefs = fit([x[i] for i in cal], [ms[i] for i in cal])
    rest = [i for i in range(len(ms)) if i not in cal]
    return Errors.of([predict(coefs, x[i]) for i in rest], [ms[i] for i in rest])


def report(name: str, measured: list[Measurement]) -> None:
    feats = columns(measured)
    ms = [m.ms for m in measured]
    print(f"\n{name}: {len(ms)} models; calibrate on {CALIBRATION_ROWS} spread evenly in MACs, "
          f"predict the other {len(ms) - CALIBRATION_ROWS}")
    print(f"  {'model form':38} {'held-out ±10 %':>15} {'MAPE':>7}   {'LOO ±10 %':>10} "
          f"{'MAPE':>7}   {'20 random 8-row sets: mean, worst ±10 %':>40}")
    draws = random_rows(len(ms))
    for label, form in FORMS.items():
        h = held_out(feats, ms, form)
        loo = Errors.of(leave_one_out([[f[k] for k in form] for f in feats], ms), ms)
        rand = [held_out(feats, ms, form, cal).within_10 for cal in draws]
        print(f"  {label:38} {h.within_10:14.0f}% {h.mape:6.1f}%   {loo.within_10:9.0f}% "
              f"{loo.mape:6.1f}%   {sum(rand) / len(rand):33.0f}%, {min(rand):3.0f}%")


def write_profiles() -> None:
    rows, sources = pixel1()
    cal = calibrate(rows, "pixel1", "Google Pixel 1, one big CPU core, TFLite float (published "
                    "figures)", "the published Pixel-1 latencies: slim MobileNet V2 grid (22 "
                    "rows) and slim MobileNet V3 table (6 rows)")
    profile = cal.profile._replace(published="pixel1", sources=tuple(sources))
    (PROFILE_DIR / "pixel1.yaml").write_text(profile_yaml(profile), encoding="utf-8")
    name, csv = CPU_PROFILE
    cal = calibrate_file(DATA / csv, name)
    (PROFILE_DIR / f"{name}.yaml").write_text(profile_yaml(cal.profile), encoding="utf-8")
    print(f"wrote {PROFILE_DIR / 'pixel1.yaml'} and {PROFILE_DIR / (name + '.yaml')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-profiles", action="store_true")
    args = parser.parse_args()
    report("Pixel 1 (published, slim V2 grid + V3 table)", pixel1()[0])
    for path in sorted(DATA.glob("*.csv")):
        if path.name.endswith(".grid.csv"):
            continue
        machine = "; ".join(comments(path))
        report(f"{path.name} ({machine})", read_measurements(path))
    if args.write_profiles:
        write_profiles()


if __name__ == "__main__":
    main()
