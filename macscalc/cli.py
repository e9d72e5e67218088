"""The ``macscalc`` command line: a thin layer over the library.

Each command parses its options, calls the library and hands a document to the output
sink. User mistakes (:class:`MacscalcError`) print one located line on stderr and exit
2. Only typer is imported at start; everything else is imported by the command that
needs it, so ``--help`` and ``count`` start fast.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from macscalc.errors import MacscalcError, show
from macscalc.limits import (
    MAX_CHANNELS,
    MAX_EXPLAIN_CHANNELS,
    MAX_RATIO,
    MAX_SIZE,
    MAX_WINDOW,
)

if TYPE_CHECKING:
    from macscalc.counting import Convention
    from macscalc.graph import Network

app = typer.Typer(
    name="macscalc",
    help="MACs, parameters and activation memory of efficient CNNs (MobileNet V1/V2 and "
    "kin) from YAML architecture specs, in pure Python. MACs count one multiply-add each; "
    "FLOPs = 2 × MACs.",
    epilog="Examples: macscalc table v1 --alpha 0.5 --res 160 · macscalc count mobilenet_v2 "
    "--alpha 0.35 --res 96 · macscalc count my_net.yaml --count bn,act --flops --format json",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    add_completion=False,
)

FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        help="table (terminal), json (schema_version 1, exact "
        "integers), csv (the main table) or markdown.",
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Write to this file instead of stdout; written whole or not at all.",
        dir_okay=False,
    ),
]
AlphaOpt = Annotated[
    str | None,
    typer.Option(
        "--alpha",
        "-a",
        metavar="A",
        help="Width multiplier α, e.g. 0.75; "
        "channels are rounded by the spec's named rule. Default 1.0.",
    ),
]
ResOpt = Annotated[
    int | None,
    typer.Option(
        "--res",
        "-r",
        metavar="R",
        min=1,
        max=MAX_SIZE,
        help="Input resolution R×R in pixels "
        "(the resolution multiplier ρ = R/224). Default: the spec's input size.",
    ),
]
OpsOpt = Annotated[
    str,
    typer.Option(
        "--count",
        metavar="OPS",
        help="Extra operations to count beside MACs, each in its own counter and added to "
        "FLOPs, never to MACs: any of bn, act, pool, add, mul, shiftmax (comma-separated), all "
        "or none.",
    ),
]
ParamsOpt = Annotated[
    str,
    typer.Option(
        "--params",
        metavar="CONVENTION",
        help="Which parameters to count: torch (weights, biases, BN γ/β), weights, "
        "weights+biases, slim_v1 (weights, biases, BN β and moving statistics) or all.",
    ),
]
DtypeOpt = Annotated[
    str, typer.Option("--dtype", help="Activation type for memory in bytes: fp32, fp16 or int8.")
]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user mistake into one line on stderr and exit status 2, no traceback."""
    try:
        yield
    except MacscalcError as e:
        typer.echo(f"error: {e.located()}", err=True)
        raise typer.Exit(2) from None


def _convention(params: str, ops: str, dtype: str) -> Convention:
    """The counting convention the --params, --count and --dtype options name."""
    from macscalc.counting import Convention, param_convention, parse_ops
    from macscalc.units import dtype_name

    return Convention(param_convention(params), parse_ops(ops), dtype_name(dtype))


def _network(ref: str, alpha: str | None, res: int | None, classes: int | None = None) -> Network:
    """The spec ``ref`` (a path or a built-in name) under the --alpha, --res, --classes
    options."""
    from fractions import Fraction

    from macscalc.graph import build
    from macscalc.spec import load_spec
    from macscalc.units import parse_alpha

    a = parse_alpha(alpha) if alpha is not None else Fraction(1)
    return build(load_spec(ref), a, (res, res) if res else None, classes)


@app.command()
def specs(fmt: FormatOpt = "table", output: OutputOpt = None) -> None:
    """List the built-in specs with their sources."""
    with user_errors():
        from macscalc.output import Column, Doc, Table, render
        from macscalc.report import envelope
        from macscalc.spec import builtin_names, load_spec

        rows = []
        for name in builtin_names():
            s = load_spec(name)
            rows.append(
                {
                    "name": name,
                    "title": s.title,
                    "family": s.family,
                    "input": f"{s.size[0]}×{s.size[1]}×{s.channels}",
                    "classes": s.classes,
                    "rounding": s.rounding.name,
                    "source": s.source,
                }
            )
        cols = [
            Column(h, k, left=True)
            for h, k in (
                ("name", "name"),
                ("title", "title"),
                ("published", "family"),
                ("input", "input"),
                ("classes", "classes"),
                ("rounding", "rounding"),
                ("source", "source"),
            )
        ]
        table = Table("Built-in specs", cols, rows)
        notes = [
            "Count one with: macscalc count NAME; see its published grid with: "
            "macscalc table FAMILY."
        ]
        render(
            Doc("macscalc built-in specs", [table], notes, envelope("specs", specs=rows)),
            fmt,
            output,
        )


@app.command()
def count(
    spec: Annotated[
        str,
        typer.Argument(
            metavar="SPEC", help="A spec file (.yaml) or a built-in name (see 'macscalc specs')."
        ),
    ],
    alpha: AlphaOpt = None,
    res: ResOpt = None,
    classes: Annotated[
        int | None,
        typer.Option(
            min=1, max=MAX_CHANNELS,
            help="Number of classes (1001 for the TF-slim checkpoints). Default: the spec's."
        ),
    ] = None,
    ops: OpsOpt = "none",
    flops: Annotated[
        bool, typer.Option("--flops", help="Also show FLOPs = 2 × MACs + counted extra ops.")
    ] = False,
    params: ParamsOpt = "torch",
    dtype: DtypeOpt = "fp32",
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Count MACs, parameters and extra ops of a spec, layer by layer.

    Shows every layer (batch norm and activation on the row of the conv they follow)
    with its input and output shape, then a summary by layer kind, the totals and the
    convention used; JSON lists every primitive. For MobileNet V1
    at α 1.0 and 224 it also checks the paper's Table 2 split.
    """
    with user_errors():
        from macscalc.counting import count as count_network
        from macscalc.output import render
        from macscalc.views import count_doc

        convention = _convention(params, ops, dtype)
        network = _network(spec, alpha, res, classes)
        render(count_doc(count_network(network, convention), flops=flops), fmt, output)


@app.command()
def table(
    family: Annotated[str, typer.Argument(metavar="FAMILY", help="Published family: v1 or v2.")],
    alpha: AlphaOpt = None,
    res: ResOpt = None,
    max_macs: Annotated[
        str | None,
        typer.Option(
            "--max-macs",
            metavar="M",
            help="Keep rows with computed MACs ≤ M (300M, 0.3G, 3.5e8), most accurate first.",
        ),
    ] = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Show a published α/ρ grid, each row computed beside its published figures.

    Every row shows computed MACs and parameters beside the published ones with ✓ or ✗
    at the published precision, top-1/top-5 and latency where published, and what the
    other sources for the same model say. --alpha/--res select rows; a point off the
    published grid is computed and marked *.
    """
    with user_errors():
        from macscalc.grid import Grid
        from macscalc.output import render
        from macscalc.published import load_family
        from macscalc.units import parse_alpha, parse_count
        from macscalc.views import table_doc

        a = parse_alpha(alpha) if alpha is not None else None
        limit = parse_count(max_macs, "--max-macs") if max_macs is not None else None
        render(table_doc(Grid(load_family(family)), a, res, limit), fmt, output)


@app.command()
def check(
    specs: Annotated[list[str], typer.Argument(metavar="SPEC...", help="Spec files or "
                                               "built-in names to check.")],
    max_macs: Annotated[str | None, typer.Option(
        "--max-macs", metavar="N", help="Most MACs allowed: 300M, 0.3G, 3.5e8, 1_000_000.")
    ] = None,
    max_flops: Annotated[str | None, typer.Option(
        "--max-flops", metavar="N", help="Most FLOPs allowed, compared with 2 × MACs + the "
        "extra ops switched on by --count (never with MACs).")] = None,
    max_params: Annotated[str | None, typer.Option(
        "--max-params", metavar="N", help="Most parameters allowed (convention: --params).")
    ] = None,
    max_memory: Annotated[str | None, typer.Option(
        "--max-memory", metavar="BYTES", help="Largest peak of live activations allowed, "
        "e.g. 2MB or 1.5MiB (type: --dtype; see macscalc memory).")] = None,
    dtype: DtypeOpt = "fp32",
    budget: Annotated[Path | None, typer.Option(
        "--budget", dir_okay=False, help="A YAML budget file: top-level limits (macs, flops, "
        "params) for every spec, and 'specs:' entries by spec name or path. Flags override "
        "it; it overrides a spec's own 'budget:' section.")] = None,
    alpha: AlphaOpt = None,
    res: ResOpt = None,
    ops: OpsOpt = "none",
    params: ParamsOpt = "torch",
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", dir_okay=False, help="A saved JSON report (count/check --format json); "
        "each counter may grow by at most --max-growth over it.")] = None,
    max_growth: Annotated[str, typer.Option(
        "--max-growth", metavar="PCT", help="Growth allowed over --baseline, e.g. 2%.")] = "0%",
    fmt: Annotated[str, typer.Option(
        "--format", "-f", help="text, json (each report with its checks and the verdict), "
        "github (workflow annotations on the spec's lines), csv or markdown.")] = "text",
    output: OutputOpt = None,
) -> None:
    """Check specs against compute budgets; the exit status is the verdict.

    Exit status: 0 when every limit is met, 1 when any is exceeded, 2 for bad input (a spec,
    a budget file or an option). Each limit is printed with its value, margin or overshoot
    (absolute and %) and where it was set.
    """
    failed = False
    with user_errors():
        from macscalc.budget import (
            check_doc,
            github_annotations,
            growth_outcomes,
            limits_for,
            load_baseline,
            load_budget_file,
            outcomes,
            parse_growth,
        )
        from macscalc.counting import count as count_network
        from macscalc.output import render, write_atomic
        from macscalc.units import parse_bytes, parse_count

        given = {"macs": max_macs, "flops": max_flops, "params": max_params}
        flags = {k: parse_count(v, f"--max-{k}") for k, v in given.items() if v is not None}
        if max_memory is not None:
            flags["memory"] = parse_bytes(max_memory, "--max-memory")
        convention = _convention(params, ops, dtype)
        budget_file = load_budget_file(budget) if budget else None
        growth = parse_growth(max_growth)
        base = load_baseline(baseline) if baseline else None
        checked = []
        for ref in specs:
            report = count_network(_network(ref, alpha, res), convention)
            results = outcomes(report, limits_for(report.network.spec, ref, flags, budget_file))
            if base is not None:
                results += growth_outcomes(report, base, str(baseline), growth)
            if not results:
                raise MacscalcError(f"no limits for {show(ref)}: give --max-macs, --max-flops or "
                                    "--max-params, a 'budget:' section in the spec, --budget "
                                    "FILE or --baseline")
            checked.append((report, results))
        failed = any(not o.ok for _, results in checked for o in results)
        if fmt == "github":
            text = github_annotations(checked)
            if output is None:
                typer.echo(text, nl=False)
            else:
                write_atomic(output, text)
        else:
            render(check_doc(checked), "table" if fmt == "text" else fmt, output)
    if failed:
        raise typer.Exit(1)


@app.command()
def memory(
    spec: Annotated[str, typer.Argument(metavar="SPEC", help="A spec file or built-in name.")],
    alpha: AlphaOpt = None,
    res: ResOpt = None,
    dtype: DtypeOpt = "fp16",
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Activation memory: the largest tensor at each resolution and the peak of live tensors.

    Both with and without MobileNet V2's streaming of inverted residuals (§5). For V1 and
    V2 at α 1.0 and 224 it checks the V2 paper's Table 3 (16-bit).
    """
    with user_errors():
        from macscalc.memory import memory_doc
        from macscalc.output import render
        from macscalc.units import DTYPE_BYTES, dtype_name

        name = dtype_name(dtype)
        render(memory_doc(_network(spec, alpha, res), name, DTYPE_BYTES[name]), fmt, output)


@app.command()
def pick(
    max_macs: Annotated[str | None, typer.Option(
        "--max-macs", metavar="N", help="Most MACs (MicroNet: MAdds), e.g. 100M.")] = None,
    max_params: Annotated[str | None, typer.Option(
        "--max-params", metavar="N", help="Most parameters, e.g. 2M.")] = None,
    max_latency: Annotated[float | None, typer.Option(
        "--max-latency", metavar="MS", help="Most published latency in ms on --device.")
    ] = None,
    device: Annotated[str | None, typer.Option(
        "--device", help="Device of the published latencies: pixel1, pixel2 or pixel3.")
    ] = None,
    family: Annotated[str | None, typer.Option(
        "--family", metavar="F,F", help="Families to pick from (v1, v2, v3, micronet); "
        "default all.")] = None,
    res: ResOpt = None,
    unpublished: Annotated[bool, typer.Option(
        "--unpublished", help="Also list grid points with no published accuracy, marked "
        "and unranked.")] = False,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """The most accurate published models that fit a budget, best first.

    Ranks published models by top-1 among those within every limit, marks the
    accuracy/MACs Pareto frontier, and names where each accuracy and latency was
    published. No latency is ever estimated.
    """
    with user_errors():
        from macscalc.output import render
        from macscalc.pick import candidates, devices, family_names, pick_doc
        from macscalc.pick import pick as choose
        from macscalc.units import parse_count

        known = devices(family_names(family))
        if max_latency is not None and not 0 < max_latency < float("inf"):
            raise MacscalcError(f"--max-latency must be a positive number of ms, got "
                                f"{max_latency}")
        if max_latency is not None and device is None:
            raise MacscalcError(f"--max-latency needs --device (one of: {', '.join(known)})")
        if device is not None and device not in known:
            raise MacscalcError(f"no published latencies for device {show(device)} in these "
                                f"families (known: {', '.join(known) or 'none'})")
        limit_macs = parse_count(max_macs, "--max-macs") if max_macs else None
        limit_params = parse_count(max_params, "--max-params") if max_params else None
        fits, no_latency = choose(candidates(family, res, device, unpublished), limit_macs,
                                  limit_params, max_latency)
        limits = {"MACs": max_macs, "params": max_params,
                  f"{device} latency (ms)": max_latency if device else None}
        render(pick_doc(fits, no_latency, device, known.get(device) if device else None,
                        limits), fmt, output)


@app.command()
def compare(
    variants: Annotated[list[str], typer.Argument(
        metavar="VARIANT...", help="Two or more specs or variants, each one argument: a spec "
        "with optional --alpha, --res and --classes, e.g. 'mobilenet_v2 --alpha 0.75'.")],
    ops: OpsOpt = "none",
    params: ParamsOpt = "torch",
    dtype: DtypeOpt = "fp32",
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Compare specs or variants: totals side by side and MACs per stage, with deltas.

    Example: macscalc compare 'mobilenet_v2 --alpha 0.75' 'mobilenet_v2 --res 160'
    """
    with user_errors():
        from macscalc.compare import compare_doc, variant_report
        from macscalc.output import render

        if len(variants) < 2:
            raise MacscalcError("compare needs two or more variants")
        convention = _convention(params, ops, dtype)
        render(compare_doc([variant_report(v, convention) for v in variants]), fmt, output)


class _ExplainGroup(TyperGroup):
    """``explain SPEC --layer NAME``: a first word that is no topic names a spec."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["layer", *args]
        return super().resolve_command(ctx, args)


explain_app = typer.Typer(
    cls=_ExplainGroup,
    help="Where the cost goes and why: the papers' formulas with your numbers. Topics: "
    "dwsep, bottleneck, micro, scaling SPEC; or SPEC --layer NAME for one layer.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(explain_app, name="explain")

DocFormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="table (terminal), markdown (course notes), "
                      "json or csv.")
]


@explain_app.command()
def dwsep(
    cin: Annotated[int, typer.Option("--cin", min=1, max=MAX_CHANNELS,
                                     help="M, input channels.")] = 512,
    cout: Annotated[int, typer.Option("--cout", min=1, max=MAX_CHANNELS,
                                      help="N, output channels.")] = 512,
    k: Annotated[int, typer.Option("--k", min=1, max=MAX_WINDOW, help="Dk, kernel size.")] = 3,
    size: Annotated[int, typer.Option("--size", min=1, max=MAX_SIZE,
                                      help="Input side in pixels.")] = 14,
    stride: Annotated[int, typer.Option("--stride", min=1, max=MAX_WINDOW, help="Stride.")] = 1,
    fmt: DocFormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Standard conv vs depthwise + pointwise: formulas, numbers, and 1/N + 1/Dk².

    The defaults are the V1 paper's Table 3 example (Dk 3, M = N = 512, 14×14).
    """
    with user_errors():
        from macscalc.explain import dwsep_doc
        from macscalc.output import render

        render(dwsep_doc(cin, cout, k, size, stride), fmt, output)


@explain_app.command()
def bottleneck(
    cin: Annotated[int, typer.Option("--cin", min=1, max=MAX_CHANNELS,
                                     help="d', input channels.")] = 24,
    cout: Annotated[int, typer.Option("--cout", min=1, max=MAX_CHANNELS,
                                      help="d'', output channels.")] = 24,
    t: Annotated[str, typer.Option("--t", help="Expansion ratio t.")] = "6",
    k: Annotated[int, typer.Option("--k", min=1, max=MAX_WINDOW,
                                   help="Depthwise kernel size.")] = 3,
    size: Annotated[int, typer.Option("--size", min=1, max=MAX_SIZE,
                                      help="Input side h = w.")] = 56,
    stride: Annotated[int, typer.Option("--stride", min=1, max=MAX_WINDOW,
                                        help="Depthwise stride.")] = 1,
    dtype: DtypeOpt = "fp16",
    fmt: DocFormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """V2's h·w·d'·t·(d' + k² + d'') against a V1 block of the same widths, and memory."""
    with user_errors():
        from macscalc.explain import bottleneck_doc
        from macscalc.output import render
        from macscalc.units import dtype_bytes, parse_ratio

        ratio = parse_ratio(t, "--t", MAX_RATIO)
        render(bottleneck_doc(cin, cout, ratio, k, size, stride, dtype_bytes(dtype)), fmt, output)


@explain_app.command()
def micro(
    channels: Annotated[int, typer.Option("--channels", min=1, max=MAX_EXPLAIN_CHANNELS,
                                          help="C, channels.")] = 64,
    ratio: Annotated[int, typer.Option("--ratio", min=1, max=MAX_EXPLAIN_CHANNELS,
                                       help="R: the middle width is C/R.")] = 4,
    groups: Annotated[str, typer.Option("--groups", help="G1,G2 group counts.")] = "4,4",
    k: Annotated[int, typer.Option("--k", min=1, max=MAX_WINDOW,
                                   help="Depthwise kernel size.")] = 3,
    size: Annotated[int, typer.Option("--size", min=1, max=MAX_SIZE, help="Side in pixels for "
                                      "MACs; 1 gives costs per position.")] = 1,
    fmt: DocFormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Dense pointwise vs micro-factorized (cost, connectivity); k×k vs k×1 + 1×k."""
    with user_errors():
        from macscalc.explain import micro_doc
        from macscalc.output import render
        from macscalc.units import parse_int

        parts = groups.split(",")
        if len(parts) != 2:
            raise MacscalcError(f"--groups must be G1,G2 (two positive integers), got "
                                f"{show(groups)}")
        g1, g2 = (parse_int(p, "each of --groups", MAX_EXPLAIN_CHANNELS) for p in parts)
        render(micro_doc(channels, ratio, g1, g2, k, size), fmt, output)


@explain_app.command()
def scaling(
    spec: Annotated[str, typer.Argument(metavar="SPEC", help="A spec file or built-in name.")],
    alpha: Annotated[str, typer.Option("--alpha", "-a", help="Width multiplier α.")] = "0.5",
    res: Annotated[int, typer.Option("--res", "-r", min=1, max=MAX_SIZE,
                                     help="Input resolution.")] = 160,
    fmt: DocFormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """How α and ρ scale each layer's MACs, and where rounding deviates from α²·ρ²."""
    with user_errors():
        from macscalc.explain import scaling_doc
        from macscalc.output import render
        from macscalc.spec import load_spec
        from macscalc.units import parse_alpha

        render(scaling_doc(load_spec(spec), parse_alpha(alpha), res), fmt, output)


@explain_app.command(hidden=True)
def layer(
    spec: Annotated[str, typer.Argument(metavar="SPEC")],
    name: Annotated[str, typer.Option("--layer", help="A layer or block name (see count).")],
    alpha: AlphaOpt = None,
    res: ResOpt = None,
    fmt: DocFormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """One layer of a spec with its formulas and numbers."""
    with user_errors():
        from macscalc.explain import layer_doc
        from macscalc.output import render

        render(layer_doc(_network(spec, alpha, res), name), fmt, output)


def main() -> None:
    """Console entry point."""
    sys.exit(app())
