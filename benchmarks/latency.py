"""Latency model benchmark: held-out accuracy per family (issue 21).

Reports, per family, the share of networks predicted within ±10 % and the mean absolute
percentage error (MAPE), for:

(a) leave-one-out on the published Pixel-1 rows (slim V2 grid, 22 rows; slim V3 table,
    6 rows: macscalc/data/v2.yaml, v3.yaml);
(b) the profile ``calibrate --auto`` fits to layers and blocks timed on this machine,
    alone and in chains of three (benchmarks/data/auto_epyc_1t_pinned.csv), predicting
    every measured built-in and MobileNet (benchmarks/data/*_epyc_1t_pinned.csv, minimum
    of each row's runs);
(c) the 8 whole models ``calibrate --suggest 8`` picks from those, fitted, predicting
    all the others;
(d) leave-one-out over all of them (the built-in cpu_epyc_1t profile's band), beside
    simpler model forms;
(e) the same forms on the older 1- and 2-thread MobileNet grids of another host.

    python benchmarks/latency.py [--write-profiles] [--measure-auto]

``--measure-auto`` re-times the auto graphs (pinned to CPU 1, the minimum of 3 passes)
into the CSV above;
``--write-profiles`` regenerates macscalc/data/profiles/ (pixel1 from the published rows,
cpu_epyc_1t from every measured whole model here).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from macscalc.analysis.calibrate import (  # noqa: E402
    Measurement,
    calibrate,
    calibrate_networks,
    comments,
    fit_split,
    read_measurements,
)
from macscalc.analysis.design import suggest  # noqa: E402
from macscalc.analysis.latency import (  # noqa: E402
    PROFILE_DIR,
    TERMS,
    Errors,
    features,
    leave_one_out,
    load_profile,
    profile_yaml,
    term_ties,
)
from macscalc.lang.graph import Network  # noqa: E402
from macscalc.models.autocal import designs  # noqa: E402
from macscalc.published.tables import load_family  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
MEASURED = ("builtins_epyc_1t_pinned.csv", "mobilenets_epyc_1t_pinned.csv")
AUTO = DATA / "auto_epyc_1t_pinned.csv"
SUGGESTED = 8
FAMILIES = (("mobilenet", "MobileNet V1–V4"), ("ssd", "SSD/SSDLite"), ("resnet", "ResNet"),
            ("shufflenet", "ShuffleNet V2"), ("micronet", "MicroNet"),
            ("squeezenet", "SqueezeNet"), ("efficientnet", "NAS (IR blocks)"),
            ("mnasnet", "NAS (IR blocks)"), ("fbnet", "NAS (IR blocks)"),
            ("spnasnet", "NAS (IR blocks)"), ("lcnet", "NAS (IR blocks)"),
            ("ghostnet", "GhostNet"), ("regnet", "RegNet"), ("alexnet", "classic"),
            ("vgg", "classic"), ("googlenet", "classic"), ("convnext", "ConvNeXt"))
FORMS = {
    "MACs": ("macs",),
    "MACs + kernels": ("macs", "kernels"),
    "MACs by class + kernels": ("macs_conv1x1", "macs_conv", "macs_group", "macs_dw",
                                "kernels"),
    "per kernel, one byte rate for activations and weights": (
        "macs_conv1x1", "macs_conv", "macs_group", "macs_dw", "dw_planes", "exp", "all_bytes",
        "kernels"),
    "per kernel, weights at their own rate (chosen)": tuple(t.name for t in TERMS),
}


def family(spec: str) -> str:
    return next((f for prefix, f in FAMILIES if Path(spec).stem.startswith(prefix)), spec)


def pixel1() -> tuple[list[Measurement], list[str]]:
    """The 28 published Pixel-1 latencies, as measurements, with their sources."""
    rows, sources = [], []
    for fam in ("v2", "v3"):
        table = load_family(fam).primary
        sources.append(f"{table.source} ({table.title}; {table.devices['pixel1']})")
        rows += [Measurement(r.spec, r.alpha, r.res, table.classes, float(r.latency["pixel1"]))
                 for r in table.rows if "pixel1" in r.latency]
    return rows, sources


def measured(figure: str = "min") -> list[Measurement]:
    return [m for name in MEASURED for m in read_measurements(DATA / name, figure=figure)]


def columns(nets: list[Network]) -> list[dict[str, float]]:
    out = []
    for n in nets:
        f = features(n)
        out.append({**f, "macs": sum(v for k, v in f.items() if k.startswith("macs_")),
                    "all_bytes": f["bytes"] + f["wbytes"]})
    return out


def per_family(label: str, specs: list[str], pred: list[float], ms: list[float]) -> None:
    """One line for all, then one per family, naming every miss."""
    e = Errors.of(pred, ms)
    print(f"  {label}: {len(ms)} networks, {e.within_10:.0f} % within ±10 %, MAPE "
          f"{e.mape:.1f} %")
    groups: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for s, p, t in zip(specs, pred, ms, strict=True):
        groups[family(s)].append((s, p, t))
    for fam, rows in sorted(groups.items()):
        ef = Errors.of([p for _, p, _ in rows], [t for *_, t in rows])
        misses = [f"{Path(s).stem} {100 * (p / t - 1):+.0f} %" for s, p, t in rows
                  if abs(p / t - 1) > 0.1 + 1e-12]
        print(f"    {fam:18} {len(rows):3}  {ef.within_10:5.0f} %  MAPE {ef.mape:5.1f} %"
              + (f"   misses: {', '.join(misses)}" if misses else ""))


def labels(ms: list[Measurement], nets: list[Network]) -> list[str]:
    return [f"{m.spec}@{n.settings.size[0]}" for m, n in zip(ms, nets, strict=True)]


def report_pixel1() -> None:
    rows, _ = pixel1()
    nets = [m.network() for m in rows]
    x = [[features(n)[t.name] for t in TERMS] for n in nets]
    ms = [m.ms for m in rows]
    print("\n(a) Pixel 1, published (slim V2 grid + V3 table), leave-one-out")
    per_family("per-kernel model", [m.spec for m in rows], leave_one_out(x, ms, term_ties()),
               ms)


def auto_rows() -> tuple[list[Network], list[float], list[str], list[bool]]:
    """The auto graphs' timings as committed, rebuilt by label."""
    by_label = {d.label: d for d in designs()}
    nets, ms, names, held = [], [], [], []
    for line in AUTO.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip() or line == "graph,ms":
            continue
        label, value = line.rsplit(",", 1)
        nets.append(by_label[label].network())
        ms.append(float(value))
        names.append(label)
        held.append(by_label[label].held)
    return nets, ms, names, held


def report_auto(ms_rows: list[Measurement], nets: list[Network]) -> None:
    print(f"\n(b) calibrate --auto on this machine ({AUTO.name}), predicting every measured "
          "whole model")
    cal = fit_split(*auto_rows(), fitted_on=AUTO.name)
    p = cal.profile
    print(f"  auto fit: {p.rows} graphs fitted, in sample {p.in_sample.within_10:.0f} % within "
          f"±10 %; held-out graphs {p.loo.within_10:.0f} % within ±10 %, MAPE "
          f"{p.loo.mape:.1f} %")
    print("  constants: " + ", ".join(f"{t.key} {p.constants[t.key]:.4g}" for t in TERMS))
    per_family("auto profile", [m.spec for m in ms_rows], [p.predict(n) for n in nets],
               [m.ms for m in ms_rows])


def report_suggest(ms_rows: list[Measurement], nets: list[Network]) -> None:
    s = suggest(nets, SUGGESTED, load_profile("cpu_epyc_1t"))
    names = labels(ms_rows, nets)
    print(f"\n(c) calibrate --suggest {SUGGESTED} over the {len(nets)} measured models picks "
          f"{', '.join(names[i] for i in s.picks)} (rank {s.rank} of {len(s.terms)}); fitted "
          "on them, predicting the others")
    cal = calibrate_networks([nets[i] for i in s.picks], [ms_rows[i].ms for i in s.picks],
                             "suggested", "this machine", "suggested", [names[i] for i in s.picks],
                             [None] * len(s.picks))
    rest = [i for i in range(len(nets)) if i not in s.picks]
    per_family("8 suggested models", [ms_rows[i].spec for i in rest],
               [cal.profile.predict(nets[i]) for i in rest], [ms_rows[i].ms for i in rest])


def report_forms(title: str, ms_rows: list[Measurement], nets: list[Network],
                 family_lines: bool) -> None:
    feats = columns(nets)
    ms = [m.ms for m in ms_rows]
    print(f"\n{title}: leave-one-out over {len(ms)} networks, by model form")
    for label, form in FORMS.items():
        x = [[f[k] for k in form] for f in feats]
        held = leave_one_out(x, ms, term_ties(form))
        if family_lines and form == FORMS[list(FORMS)[-1]]:
            per_family(label, [m.spec for m in ms_rows], held, ms)
        else:
            e = Errors.of(held, ms)
            print(f"  {label:56} {e.within_10:4.0f} % within ±10 %, MAPE {e.mape:5.1f} %")


def measure_auto(passes: int = 3) -> None:
    """Time the auto graphs in ``passes`` passes and keep each graph's minimum: on a shared
    machine other work only adds time, and one pass of 10–40 runs per graph still carries
    its bursts (held-out MAPE 9 % from one pass here at a load average of 3)."""
    from macscalc.models.autocal import auto_calibrate

    best: dict[str, float] = {}
    for _ in range(passes):
        cal, notes = auto_calibrate(1, 600, "min", 1)
        for r in cal.rows:
            best[r["spec"]] = min(best.get(r["spec"], r["ms"]), r["ms"])
    lines = [*notes, f"# the minimum of each graph's runs over {passes} passes (calibrate "
             "--auto --figure min); the load average is the last pass's",
             "graph,ms", *(f"{label},{ms:.5f}" for label, ms in best.items())]
    AUTO.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {AUTO}")


def write_profiles(ms_rows: list[Measurement]) -> None:
    rows, sources = pixel1()
    cal = calibrate(rows, "pixel1", "Google Pixel 1, one big CPU core, TFLite float (published "
                    "figures)", "the published Pixel-1 latencies: slim MobileNet V2 grid (22 "
                    "rows) and slim MobileNet V3 table (6 rows)")
    profile = cal.profile._replace(published="pixel1", sources=tuple(sources))
    (PROFILE_DIR / "pixel1.yaml").write_text(profile_yaml(profile), encoding="utf-8")
    notes = "; ".join(comments(DATA / MEASURED[0]))
    machine = next(n.split(":", 1)[1].strip() for n in comments(DATA / MEASURED[0])
                   if n.startswith("machine:"))
    cal = calibrate(ms_rows, "cpu_epyc_1t", machine, f"{' and '.join(MEASURED)}, "
                    f"{len(ms_rows)} rows, the minimum of each row's runs ({notes})", DATA)
    (PROFILE_DIR / "cpu_epyc_1t.yaml").write_text(profile_yaml(cal.profile), encoding="utf-8")
    print(f"wrote {PROFILE_DIR / 'pixel1.yaml'} and {PROFILE_DIR / 'cpu_epyc_1t.yaml'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-profiles", action="store_true")
    parser.add_argument("--measure-auto", action="store_true")
    args = parser.parse_args()
    if args.measure_auto:
        measure_auto()
    ms_rows = measured()
    if args.write_profiles:
        write_profiles(ms_rows)
    nets = [m.network(DATA) for m in ms_rows]
    report_pixel1()
    report_auto(ms_rows, nets)
    report_suggest(ms_rows, nets)
    report_forms("(d) this machine, 1 pinned thread, whole models", ms_rows, nets, True)
    for name in ("mobilenets_epyc_1t.csv", "mobilenets_epyc_2t.csv"):
        rows = read_measurements(DATA / name)
        report_forms(f"(e) {name} (another host: {comments(DATA / name)[0]})", rows,
                     [m.network(DATA) for m in rows], False)


if __name__ == "__main__":
    main()
