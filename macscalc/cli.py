"""The ``macscalc`` command line: a thin layer over the library.

Each command parses its options, calls the library and hands a document to the output
sink. User mistakes (:class:`MacscalcError`) print one located line on stderr and exit
2. Only typer is imported at start; everything else is imported by the command that
needs it, so ``--help`` and ``count`` start fast. For the same reason annotations are
objects, not strings (typer would evaluate every string twice per run), and help is
click's plain text: typer's rich help imports markdown and syntax highlighting, which
cost more than all of the rest of ``--help``.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from macscalc.commands import inputs
from macscalc.core.errors import MacscalcError, printable, show
from macscalc.core.limits import (
    MAX_CHANNELS,
    MAX_EXPLAIN_CHANNELS,
    MAX_RATIO,
    MAX_RUNS,
    MAX_SIZE,
    MAX_THREADS,
    MAX_WINDOW,
)

if TYPE_CHECKING:
    pass

app = typer.Typer(
    name="macscalc",
    help="MACs, parameters and activation memory of efficient CNNs (MobileNet V1/V2 and "
    "kin) from YAML architecture specs, in pure Python. MACs count one multiply-add each; "
    "FLOPs = 2 × MACs.",
    epilog="Examples: macscalc table v1 --alpha 0.5 --res 160 · macscalc count mobilenet_v2 "
    "--alpha 0.35 --res 96 · macscalc count my_net.yaml --count bn,act --flops --format json",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=True,
)
# The published families are the data files (as macscalc.published.tables.families() reads them),
# listed without importing the counter.
FAMILIES = sorted(p.stem for p in (Path(__file__).parent / "data").glob("*.yaml"))

FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        help="table (fitted to the terminal), wide (every column, no width limit), json "
        "(schema_version 1, exact integers), csv (the main table) or markdown.",
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
OutputStrideOpt = Annotated[
    int | None,
    typer.Option(
        "--output-stride",
        metavar="OS",
        min=1,
        max=MAX_SIZE,
        help="Run the backbone at output stride OS (8, 16, 32): past it, strides become "
        "dilations, as DeepLab does. Default: the spec's output_stride, else as written.",
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
    str, typer.Option("--dtype", help="Number type for sizes in bytes (weights and "
                      "activations): fp32, fp16 or int8.")
]
UnknownOpt = Annotated[
    bool, typer.Option("--allow-unknown", help="For an .onnx or .tflite file: count operators "
                       "macscalc has no rule for as unknown (report status partial) instead of "
                       "failing.")
]

PlotOpt = Annotated[Path | None, typer.Option(
    "--plot", dir_okay=False, metavar="FILE", help="Also draw a figure to FILE.png or FILE.svg "
    "(needs the plot extra: pip install 'macscalc[plot]').")]


def _version(value: bool) -> None:
    if value:
        from macscalc import __version__

        typer.echo(f"macscalc {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    pass

DeviceOpt = Annotated[str | None, typer.Option(
    "--device", metavar="PROFILE", help="A device profile (built-in: pixel1, cpu_epyc_1t; or a "
    "file from macscalc calibrate): adds the estimated latency, marked as such, with its "
    "error band from the profile's leave-one-out error.")]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user mistake into one line on stderr and exit status 2, no traceback."""
    try:
        yield
    except MacscalcError as e:
        typer.echo(f"error: {printable(e.located())}", err=True)
        raise typer.Exit(2) from None


@app.command()
def specs(fmt: FormatOpt = "table", output: OutputOpt = None) -> None:
    """List the built-in specs with their sources."""
    with user_errors():
        from macscalc.lang.spec import builtin_names, load_spec
        from macscalc.render.output import Column, Doc, Table, render
        from macscalc.render.report import envelope

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
            Column("name", "name", left=True),
            Column("title", "title", left=True, drop=2, cut=16),
            Column("published", "family", left=True),
            Column("input", "input", left=True),
            Column("classes", "classes"),
            Column("rounding", "rounding", left=True, drop=1),
            Column("source", "source", left=True, text=True),
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
            metavar="SPEC", help="A spec file (.yaml), a built-in name (see 'macscalc specs') "
            "or an ONNX (.onnx) or TFLite (.tflite) model."
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
    allow_unknown: UnknownOpt = False,
    device: DeviceOpt = None,
    output_stride: OutputStrideOpt = None,
    depth: Annotated[str | None, typer.Option(
        "--depth", "-d", metavar="D", help="Depth multiplier: every row's written repeats n "
        "become ⌈n·D⌉ (EfficientNet B0 → B3: --alpha 1.2 --depth 1.4 --res 300). Default: "
        "the spec's own depth, else 1.0.")] = None,
    by: Annotated[str | None, typer.Option(
        "--by", metavar="GROUP", help="Also sum MACs, params (and, with --device, estimated "
        "ms) per block (each row of the spec as placed, one per repeat) or per stage "
        "(output stride).")] = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Count MACs, parameters and extra ops of a spec (or an .onnx/.tflite file), layer by layer.

    Shows every layer (batch norm and activation on the row of the conv they follow)
    with its input and output shape, then a summary by layer kind, the totals and the
    convention used; JSON lists every primitive. For MobileNet V1
    at α 1.0 and 224 it also checks the paper's Table 2 split.
    """
    with user_errors():
        from macscalc.analysis.counting import count as count_network
        from macscalc.published.checks import check as check_published
        from macscalc.render.output import render
        from macscalc.render.views import count_doc

        convention = inputs.convention(params, ops, dtype)
        if by is not None and by not in ("block", "stage"):
            raise MacscalcError(f"--by must be block or stage, got {show(by)}")
        network = inputs.network(spec, alpha, res, classes, allow_unknown, depth, output_stride)
        profile = inputs.profile(device)
        report = inputs.with_latency(count_network(network, convention), profile)
        doc = count_doc(report, flops, check_published(report))
        if by is not None:
            from macscalc.commands.groups import with_groups

            doc = with_groups(doc, report, by)
        render(doc, fmt, output)


@app.command()
def table(
    family: Annotated[str, typer.Argument(metavar="FAMILY", help="Published family: "
                                          f"{', '.join(FAMILIES)}.")],
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
    plot: PlotOpt = None,
    device: DeviceOpt = None,
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
        from macscalc.core.units import parse_alpha, parse_count
        from macscalc.published.grid import Grid, shown
        from macscalc.published.tables import load_family
        from macscalc.render.output import render
        from macscalc.render.views import table_doc

        if plot is not None:
            from macscalc.render.plot import check_target, table_plot

            check_target(plot)
        a = parse_alpha(alpha) if alpha is not None else None
        limit = parse_count(max_macs, "--max-macs") if max_macs is not None else None
        grid = shown(Grid(load_family(family)), a, res, limit, inputs.profile(device))
        doc = table_doc(grid, limit)
        render(doc, fmt, output)
        if plot is not None:
            table_plot(doc.data, plot)


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
    max_size: Annotated[str | None, typer.Option(
        "--max-size", metavar="BYTES", help="Largest weights allowed: the parameters "
        "(--params) at --dtype, e.g. 5MB or 4MiB.")] = None,
    max_latency: Annotated[float | None, typer.Option(
        "--max-latency", metavar="MS", min=0, help="Most estimated latency in ms on --device "
        "(compared in µs).")] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "fp32",
    budget: Annotated[Path | None, typer.Option(
        "--budget", dir_okay=False, help="A YAML budget file: top-level defaults (macs, "
        "flops, params, memory, size) for every spec, and 'specs:' entries by spec name or "
        "path. The most specific limit wins: flags, the file's entry for the spec, the "
        "spec's own 'budget:', the file's defaults.")] = None,
    alpha: AlphaOpt = None,
    res: ResOpt = None,
    ops: OpsOpt = "none",
    params: ParamsOpt = "torch",
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", dir_okay=False, help="A saved JSON report (count/check --format json); "
        "each counter may grow by at most --max-growth over it.")] = None,
    max_growth: Annotated[str, typer.Option(
        "--max-growth", metavar="PCT", help="Growth allowed over --baseline, e.g. 2%.")] = "0%",
    require_limits: Annotated[bool, typer.Option(
        "--require-limits", help="A spec without any limit is an error (status 2), not only "
        "reported.")] = False,
    notices: Annotated[bool, typer.Option(
        "--notices", help="With --format github: also a ::notice for every limit met.")
    ] = False,
    against: Annotated[str | None, typer.Option(
        "--against", metavar="MODEL", help="An ONNX model (or another spec) each SPEC must "
        "match layer by layer: shapes, MACs and parameters of every conv and linear layer, "
        "BN folding allowed for. Drift exits 1.")] = None,
    allow_unknown: UnknownOpt = False,
    fmt: Annotated[str, typer.Option(
        "--format", "-f", help="text (fitted to the terminal), wide, json (each report with "
        "its checks and the verdict), github (workflow annotations on the spec's lines), csv "
        "or markdown.")] = "text",
    output: OutputOpt = None,
) -> None:
    """Check specs against compute budgets or a shipped model; the exit status is the verdict.

    Every spec is checked and reported. Exit status: the worst of the specs': 0 when every
    limit is met (a spec without limits is only reported), 1 when any is exceeded, 2 for a
    spec that cannot be read or counted, or bad input (a budget file or an option). Each
    limit is printed with its value, margin or overshoot (absolute and %) and where it was
    set.
    """
    with user_errors():
        from macscalc.commands.check import limit_flags, run_check

        flags = limit_flags({"macs": max_macs, "flops": max_flops, "params": max_params},
                            {"memory": max_memory, "size": max_size}, max_latency, device)
        status = run_check(specs, flags, device=device, budget=budget, baseline=baseline,
                           max_growth=max_growth, require_limits=require_limits,
                           against=against, notices=notices, fmt=fmt, output=output,
                           params=params, ops=ops, dtype=dtype, alpha=alpha, res=res,
                           allow_unknown=allow_unknown)
    if status:
        raise typer.Exit(status)


@app.command()
def memory(
    spec: Annotated[str, typer.Argument(metavar="SPEC", help="A spec file or built-in name.")],
    alpha: AlphaOpt = None,
    res: ResOpt = None,
    dtype: DtypeOpt = "fp16",
    allow_unknown: UnknownOpt = False,
    planner: Annotated[str | None, typer.Option(
        "--planner", metavar="tflm", help="tflm: the tensor arena TFLite Micro's greedy "
        "planner lays out for a .tflite file, or for the spec exported at --dtype int8 or "
        "fp32.")] = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Activation memory: the largest tensor at each resolution and the peak of live tensors.

    Both with and without MobileNet V2's streaming of inverted residuals (§5). For V1 and
    V2 at α 1.0 and 224 it checks the V2 paper's Table 3 (16-bit). With --planner tflm:
    the tensor arena a TFLite Micro interpreter plans, tensor by tensor.
    """
    with user_errors():
        from macscalc.analysis.memory import activations
        from macscalc.core.units import DTYPE_BYTES, dtype_name
        from macscalc.published.checks import check_memory
        from macscalc.render.output import render
        from macscalc.render.views import memory_doc

        name = dtype_name(dtype)
        if planner is not None:
            from macscalc.commands.arena import arena_doc, tflm_model
            from macscalc.models.files import model_format

            if planner != "tflm":
                raise MacscalcError(f"--planner is tflm, not {show(planner)}")
            network = None if model_format(spec) else inputs.network(spec, alpha, res)
            model, what = tflm_model(spec, alpha, res, name, network)
            label = network.spec.name if network is not None else Path(spec).name
            render(arena_doc(model, label, what), fmt, output)
            return
        network = inputs.network(spec, alpha, res, None, allow_unknown)
        doc = memory_doc(activations(network), check_memory(network), name, DTYPE_BYTES[name])
        render(doc, fmt, output)


@app.command()
def pick(
    max_macs: Annotated[str | None, typer.Option(
        "--max-macs", metavar="N", help="Most MACs (MicroNet: MAdds), e.g. 100M.")] = None,
    max_params: Annotated[str | None, typer.Option(
        "--max-params", metavar="N", help="Most parameters, e.g. 2M.")] = None,
    max_size: Annotated[str | None, typer.Option(
        "--max-size", metavar="BYTES", help="Largest weights allowed (params × --dtype), "
        "e.g. 5MB or 4MiB.")] = None,
    dtype: DtypeOpt = "fp32",
    max_latency: Annotated[float | None, typer.Option(
        "--max-latency", metavar="MS", help="Most latency in ms on --device: published where "
        "it is, else estimated by the device's profile.")] = None,
    device: Annotated[str | None, typer.Option(
        "--device", help="A device with published latencies (pixel1, pixel2, pixel3) or a "
        "profile (built-in pixel1, or a file from calibrate) to estimate the rest.")] = None,
    family: Annotated[str | None, typer.Option(
        "--family", metavar="F,F", help=f"Families to pick from ({', '.join(FAMILIES)}); "
        "default all.")] = None,
    res: ResOpt = None,
    unpublished: Annotated[bool, typer.Option(
        "--unpublished", help="Also list grid points with no published accuracy, marked "
        "and unranked.")] = False,
    plot: PlotOpt = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """The most accurate published models that fit a budget, best first.

    Ranks published models by top-1 (detectors by mAP, apart) among those within every
    limit, marks the accuracy/MACs Pareto frontier, and names where each accuracy and
    latency was published. With a device profile, models without a published latency get
    an estimate, marked est.
    """
    with user_errors():
        from macscalc.analysis.latency import profile_names
        from macscalc.commands.pick import (
            Limits,
            candidates,
            devices,
            family_names,
            pick_doc,
            with_estimates,
        )
        from macscalc.commands.pick import pick as choose
        from macscalc.core.units import dtype_name, parse_bytes, parse_count
        from macscalc.render.output import render

        if plot is not None:
            from macscalc.render.plot import check_target, pick_plot

            check_target(plot)
        known = devices(family_names(family))
        if max_latency is not None:
            from macscalc.core.units import parse_ms

            parse_ms(max_latency, "--max-latency")
        choices = (f"published: {', '.join(known) or 'none'}; profiles: "
                   f"{', '.join(profile_names())} or a file from macscalc calibrate")
        if max_latency is not None and device is None:
            raise MacscalcError(f"--max-latency needs --device ({choices})")
        profile, published = None, device
        if device is not None and (device in profile_names() or device not in known):
            from macscalc.lang.spec import is_file

            if device not in profile_names() and not is_file(Path(device)):
                raise MacscalcError(f"no published latencies or profile for device {show(device)} "
                                    f"({choices})")
            profile = inputs.profile(device)
            published = profile.published if profile.published in known else None
        limits = Limits(parse_count(max_macs, "--max-macs") if max_macs else None,
                        parse_count(max_params, "--max-params") if max_params else None,
                        max_latency, parse_bytes(max_size, "--max-size") if max_size else None,
                        dtype_name(dtype))
        cands = candidates(family, res, published, unpublished)
        if profile is not None:
            cands = with_estimates(cands, profile)
        fits, no_latency = choose(cands, limits)
        given = {"MACs": max_macs, "params": max_params, f"{dtype} weights": max_size,
                 f"{device} latency (ms)": max_latency if device else None}
        doc = pick_doc(fits, no_latency, published, known.get(published) if published else None,
                       limits, given, profile)
        render(doc, fmt, output)
        if plot is not None:
            pick_plot(doc.data, plot)


@app.command()
def compare(
    variants: Annotated[list[str], typer.Argument(
        metavar="VARIANT...", help="Two or more specs or variants, each one argument: a spec "
        "with optional --alpha, --res and --classes, e.g. 'mobilenet_v2 --alpha 0.75'.")],
    ops: OpsOpt = "none",
    params: ParamsOpt = "torch",
    dtype: DtypeOpt = "fp32",
    allow_unknown: UnknownOpt = False,
    device: DeviceOpt = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Compare specs or variants: totals side by side and MACs per stage, with deltas.

    Example: macscalc compare 'mobilenet_v2 --alpha 0.75' 'mobilenet_v2 --res 160'
    """
    with user_errors():
        from macscalc.commands.compare import compare_doc, variant_report
        from macscalc.render.output import render

        if len(variants) < 2:
            raise MacscalcError("compare needs two or more variants")
        convention = inputs.convention(params, ops, dtype)
        profile = inputs.profile(device)
        reports = [variant_report(v, convention, allow_unknown) for v in variants]
        render(compare_doc([(label, inputs.with_latency(r, profile)) for label, r in reports]), fmt,
               output)


@app.command("import")
def import_(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="An ONNX (.onnx) or TFLite "
                                         "(.tflite) model.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", dir_okay=False, help="Write the spec here (whole or not at all) "
        "instead of stdout.")] = None,
    rounding: Annotated[str, typer.Option(
        "--rounding", help="The channel rounding rule the spec names, which α then applies: "
        "make_divisible_8 or slim_v1.")] = "make_divisible_8",
    name: Annotated[str | None, typer.Option(
        "--name", help="The spec's name. Default: the file's stem.")] = None,
    res: Annotated[int | None, typer.Option(
        "--res", "-r", metavar="R", min=1, help="The input size, for a model exported with a "
        "symbolic height and width.")] = None,
) -> None:
    """Write an ONNX model as a spec: conv + BN + activation rows, names from the graph.

    Counting the spec gives the model's counts; --alpha and --res then apply to it. Check
    it stays the shipped model with: macscalc check spec.yaml --against MODEL.
    """
    with user_errors():
        from macscalc.core.files import write_atomic
        from macscalc.lang.spec_writer import spec_text
        from macscalc.models.files import model_format, read_model

        if not model_format(model):
            raise MacscalcError(f"import reads an ONNX (.onnx) or TFLite (.tflite) model, got "
                                f"{show(model)}")
        text = spec_text(read_model(model, res=res), rounding, name)
        if output is None:
            typer.echo(text, nl=False)
        else:
            write_atomic(output, text)
        typer.echo(f"{'wrote ' + str(output) + ': ' if output else ''}a spec with {rounding} "
                   "rounding (how --alpha rounds its widths; --rounding to change)", err=True)


@app.command()
def sweep(
    spec: Annotated[str, typer.Argument(metavar="SPEC", help="A spec file or built-in name.")],
    alpha: Annotated[str, typer.Option(
        "--alpha", "-a", metavar="RANGE", help="Width multipliers: START:STOP:STEP (inclusive, "
        "exact decimals) or a comma list, e.g. 0.25:1.5:0.05 or 0.35,0.5,0.75.")] = "1.0",
    res: Annotated[str | None, typer.Option(
        "--res", "-r", metavar="RANGE", help="Input resolutions R (R×R) as START:STOP:STEP or "
        "a comma list, e.g. 96:224:32. Default: the spec's.")] = None,
    classes: Annotated[int | None, typer.Option(min=1, help="Number of classes. Default: the "
                                                "spec's.")] = None,
    params: ParamsOpt = "torch",
    dtype: DtypeOpt = "fp32",
    max_macs: Annotated[str | None, typer.Option(
        "--max-macs", metavar="N", help="Keep points with at most N MACs, e.g. 300M.")] = None,
    max_params: Annotated[str | None, typer.Option(
        "--max-params", metavar="N", help="Keep points with at most N parameters.")] = None,
    max_memory: Annotated[str | None, typer.Option(
        "--max-memory", metavar="BYTES", help="Keep points whose peak activation memory is "
        "at most BYTES, e.g. 2MB (type: --dtype).")] = None,
    max_latency: Annotated[float | None, typer.Option(
        "--max-latency", metavar="MS", help="Keep points whose latency estimated on --device "
        "is at most MS.")] = None,
    device: DeviceOpt = None,
    frontier: Annotated[bool, typer.Option(
        "--frontier", help="Keep only Pareto-optimal points: for MACs (and params, memory "
        "when limited), none cheaper gives as much α·ρ or published accuracy.")] = False,
    plot: PlotOpt = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """MACs, parameters and peak activation memory over α × resolution, vectorized.

    Every value equals what count gives at that point. Example: macscalc sweep mobilenet_v2
    --alpha 0.25:1.4:0.05 --res 96:320:16 --max-macs 300M --frontier
    """
    with user_errors():
        from macscalc.commands.sweep import run_sweep

        run_sweep(spec, alpha, res, classes, params, dtype,
                  {"macs": max_macs, "params": max_params}, max_memory, max_latency, device,
                  frontier, plot, fmt, output)


SpecArg = Annotated[str, typer.Argument(metavar="SPEC", help="A spec file or built-in name.")]
ClassesOpt = Annotated[int | None, typer.Option(
    min=1, max=MAX_CHANNELS, help="Number of classes. Default: the spec's.")]


@app.command()
def export(
    spec: SpecArg,
    output: Annotated[Path, typer.Option(
        "--output", "-o", dir_okay=False, help="The .onnx or .tflite file to write (whole or "
        "not at all).")],
    alpha: AlphaOpt = None,
    res: ResOpt = None,
    classes: ClassesOpt = None,
    seed: Annotated[int, typer.Option(min=0, max=2**63 - 1, help="Seed of the random "
                                      "weights; the same seed writes the same file.")] = 0,
    model_format: Annotated[str | None, typer.Option(
        "--format", metavar="onnx|tflite", help="The file format. Default: from the -o "
        "suffix (.tflite: tflite, else onnx).")] = None,
    dtype: Annotated[str, typer.Option(
        "--dtype", help="TFLite only: fp32, fp16 (float16 weights) or int8 (full integer, "
        "per-channel weight scales).")] = "fp32",
) -> None:
    """Write a runnable ONNX graph or TFLite model of a spec, batch 1, seeded weights.

    ONNX: opset 17, NCHW; batch norm is BatchNormalization, relu6 Clip, h-swish HardSwish;
    onnx.checker passes and onnxruntime runs it with the output shape the spec predicts
    (needs pip install 'macscalc[onnx]'). TFLite: NHWC, BN folded into the conv bias and
    relu/relu6 fused as the converter writes them; LiteRT runs it (needs pip install
    'macscalc[tflite]').
    """
    with user_errors():
        fmt = model_format or ("tflite" if output.suffix.lower() == ".tflite" else "onnx")
        if fmt not in ("onnx", "tflite"):
            raise MacscalcError(f"--format is onnx or tflite, not {show(fmt)}")
        network = inputs.network(spec, alpha, res, classes)
        if fmt == "tflite":
            from macscalc.core.files import write_atomic
            from macscalc.models.tflite.export import export as to_tflite

            data = to_tflite(network, seed, dtype)
            write_atomic(output, data)
            dims = lambda s: f"1×{s.h}×{s.w}×{s.c}"  # noqa: E731
            typer.echo(f"wrote {output}: TFLite, {dtype}, {len(data):,} bytes, input "
                       f"{dims(network.input)}, NHWC")
            return
        if dtype != "fp32":
            raise MacscalcError("--dtype applies to a TFLite export; ONNX is written in fp32")
        from macscalc.models.onnx.export import OPSET, save
        from macscalc.models.onnx.export import export as to_onnx

        model = to_onnx(network, seed)
        save(model, output)
        shape = lambda d: "×".join(str(x.dim_value) for x in d.type.tensor_type.shape.dim)  # noqa: E731
        typer.echo(f"wrote {output}: {len(model.graph.node)} ONNX nodes, opset {OPSET}, input "
                   f"{shape(model.graph.input[0])}, output "
                   f"{', '.join(shape(o) for o in model.graph.output)}")


@app.command()
def measure(
    spec: Annotated[str | None, typer.Argument(
        metavar="[SPEC]", help="A spec file or built-in name (or give --grid).")] = None,
    alpha: AlphaOpt = None,
    res: ResOpt = None,
    classes: ClassesOpt = None,
    threads: Annotated[int, typer.Option(
        "--threads", min=1, max=MAX_THREADS, help="Intra-op threads, pinned (one inter-op "
        "thread, sequential execution).")] = 1,
    runs: Annotated[int, typer.Option(
        "--runs", min=1, max=MAX_RUNS, help="Timed runs: the median is the figure, quartiles, "
        "min and max its spread.")] = 50,
    warmup: Annotated[int, typer.Option("--warmup", min=0, max=MAX_RUNS,
                                        help="Untimed runs first.")] = 10,
    rounds: Annotated[int, typer.Option(
        "--rounds", min=1, max=MAX_RUNS, help="With --grid: spread the runs over this many "
        "interleaved rounds, so a burst of load on the machine touches every model a little "
        "instead of spoiling a few.")] = 5,
    grid: Annotated[str | None, typer.Option(
        "--grid", metavar="GRID", help="Measure many in one go: families (v1, v2, v3, "
        "micronet: their published grid points) and specs, comma-separated, or a CSV file "
        "with the header spec,alpha,res,classes.")] = None,
    max_runs: Annotated[int | None, typer.Option(
        "--max-runs", min=1, help="Where a timing's interquartile range exceeds 5 % of its "
        "median, time it again in batches of --runs, up to this many runs. Default: "
        "4 × --runs.")] = None,
    cpu: Annotated[int | None, typer.Option(
        "--cpu", min=0, help="Pin the process to this CPU (Linux), so the timings do not move "
        "with the scheduler on a shared machine.")] = None,
    layers: Annotated[bool, typer.Option(
        "--layers", help="onnxruntime's own time per kernel beside the estimate on --device "
        "(default cpu_epyc_1t): where the latency model is wrong.")] = False,
    device: DeviceOpt = None,
    runtime: Annotated[str, typer.Option(
        "--runtime", metavar="onnxruntime|litert", help="onnxruntime (an ONNX export) or "
        "litert (a TFLite export run by LiteRT with XNNPACK, as the MobileNet papers time "
        "with TFLite).")] = "onnxruntime",
    dtype: Annotated[str, typer.Option(
        "--dtype", help="With --runtime litert: fp32, fp16 (float16 weights) or int8 (full "
        "integer).")] = "fp32",
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Measure latency on this machine with onnxruntime or LiteRT; prints CSV that calibrate
    reads.

    The spec is exported (ONNX, or TFLite for --runtime litert) and run after warm-up; the
    median of --runs timings is the figure, with its spread. Comment lines name the
    machine, runtime, threads and number type. Example: macscalc measure --grid v1,v2,v3
    --threads 4 -o cpu.csv; macscalc calibrate cpu.csv -o cpu.yaml. Needs the onnx extra
    (pip install 'macscalc[onnx]') or, for LiteRT, the tflite extra.
    """
    with user_errors():
        from macscalc.commands.timing import run_measure

        run_measure(spec, grid, alpha=alpha, res=res, classes=classes, threads=threads,
                    runs=runs, warmup=warmup, rounds=rounds, max_runs=max_runs, cpu=cpu,
                    layers=layers, device=device, runtime=runtime, dtype=dtype, fmt=fmt,
                    output=output)


@app.command()
def calibrate(
    measured: Annotated[Path | None, typer.Argument(
        metavar="[MEASURED.csv | CANDIDATES]", dir_okay=False, help="Measured latencies: the "
        "header spec,alpha,res,classes,ms (as measure writes); empty alpha, res, classes: the "
        "spec's defaults. With --suggest: the candidates (a CSV spec,alpha,res,classes, or "
        "families and specs, comma-separated).")] = None,
    profile: Annotated[Path | None, typer.Option(
        "--output", "-o", dir_okay=False, metavar="PROFILE.yaml", help="The device profile to "
        "write, for --device.")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="The profile's name. Default: the CSV's file name.")] = None,
    figure: Annotated[str, typer.Option(
        "--figure", metavar="median|min", help="The figure to fit: each row's median (the "
        "ms column) or its minimum (min_ms: on a shared machine, the undisturbed time).")
    ] = "median",
    auto: Annotated[bool, typer.Option(
        "--auto", help="Time single layers and small blocks on this machine with onnxruntime "
        "and fit to them: no model zoo needed.")] = False,
    budget: Annotated[float, typer.Option(
        "--budget", metavar="SECONDS", help="With --auto: how long to time: a pass over "
        "every graph (about 25 s on a 2-core EPYC), then more passes while it lasts, each "
        "graph keeping its lowest figure (fewer graphs if it ends within the first).")] = 180.0,
    threads: Annotated[int, typer.Option("--threads", min=1, help="With --auto: intra-op "
                                         "threads.")] = 1,
    cpu: Annotated[int | None, typer.Option("--cpu", min=0, help="With --auto: pin to this "
                                            "CPU.")] = None,
    suggest_n: Annotated[int | None, typer.Option(
        "--suggest", metavar="N", min=1, help="Print the N candidates whose timings best pin "
        "the constants, as the CSV calibrate reads (ms empty).")] = None,
    prior: Annotated[str, typer.Option(
        "--prior", metavar="PROFILE|none", help="Start from this profile's constants, scaled "
        "to the rows, and move each only as far as the rows pin it (how far: chosen by "
        "leave-one-out): with a few models (--suggest's eight) the others keep the prior's "
        "proportions. none: fit the rows alone.")] = "cpu_epyc_1t",
    fmt: FormatOpt = "table",
) -> None:
    """Fit a device profile to measured latencies: MAC rates by kind of conv, per-plane
    rates, exponential, resize and strided-copy rates, memory rates, a cost per kernel.

    Prints the constants, the in-sample and held-out errors (MAPE, share within ±10 %)
    and every row's residual, and warns when the rows cannot pin a constant down; a few
    rows are pulled toward a reference profile's proportions (--prior).
    --auto times single layers on this machine instead; --suggest N CANDIDATES says which
    whole models to time on a device where only whole models run.
    """
    with user_errors():
        from macscalc.commands.calibration import run_calibrate

        text = run_calibrate(measured, profile, auto=auto, suggest_n=suggest_n, name=name,
                             figure=figure, threads=threads, budget=budget, cpu=cpu, fmt=fmt,
                             prior=prior)
        if text is not None:
            typer.echo(text, nl=False)


class _ExplainGroup(TyperGroup):
    """``explain SPEC --layer NAME``: a first word that is no topic names a spec, when
    ``--layer`` follows; otherwise it is a topic misspelt."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            if "--layer" not in args and not any(a.startswith("--layer=") for a in args):
                from macscalc.lang.spec import suggest

                topics = [n for n, c in self.commands.items() if not c.hidden]
                typer.echo(f"error: unknown topic {show(args[0])}{suggest(args[0], topics)} "
                           f"(topics: {', '.join(topics)}; or SPEC --layer NAME)", err=True)
                raise typer.Exit(2)
            args = ["layer", *args]
        return super().resolve_command(ctx, args)


explain_app = typer.Typer(
    cls=_ExplainGroup,
    help="Where the cost goes and why: the papers' formulas with your numbers. Topics: "
    "dwsep, bottleneck, micro, scaling SPEC, latency SPEC --device D; or SPEC --layer NAME "
    "for one layer.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(explain_app, name="explain")

DocFormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="table (fitted to the terminal), wide (no width "
                      "limit), markdown (course notes), json or csv.")
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
        from macscalc.commands.explain import dwsep_doc
        from macscalc.render.output import render

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
        from macscalc.commands.explain import bottleneck_doc
        from macscalc.core.units import dtype_bytes, parse_ratio
        from macscalc.render.output import render

        ratio = parse_ratio(t, "the expansion ratio --t", MAX_RATIO)
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
        from macscalc.commands.explain import micro_doc
        from macscalc.core.units import parse_int
        from macscalc.render.output import render

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
        from macscalc.commands.explain import scaling_doc
        from macscalc.core.units import parse_alpha
        from macscalc.lang.spec import load_spec
        from macscalc.models.files import FORMATS_A, model_format
        from macscalc.render.output import render

        if model_format(spec):
            raise MacscalcError(f"explain scaling needs a spec: α and ρ do not apply to "
                                f"{FORMATS_A[model_format(spec)]} file; write one with "
                                "'macscalc import MODEL -o spec.yaml'")
        render(scaling_doc(load_spec(spec), parse_alpha(alpha), res), fmt, output)


@explain_app.command()
def latency(
    spec: SpecArg,
    device: Annotated[str, typer.Option("--device", metavar="PROFILE", help="A device profile: "
                                        "built-in name or a file from calibrate.")],
    alpha: AlphaOpt = None,
    res: ResOpt = None,
    fmt: DocFormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Where the estimated time goes by layer kind, and why a depthwise MAC costs several
    dense ones on that device."""
    with user_errors():
        from macscalc.analysis.latency import load_profile
        from macscalc.commands.explain import latency_doc
        from macscalc.render.output import render

        render(latency_doc(inputs.network(spec, alpha, res), load_profile(device)), fmt, output)


@explain_app.command(hidden=True)
def layer(
    spec: Annotated[str, typer.Argument(metavar="SPEC")],
    name: Annotated[str, typer.Option("--layer", help="A layer or block name (see count).")],
    alpha: AlphaOpt = None,
    res: ResOpt = None,
    allow_unknown: UnknownOpt = False,
    fmt: DocFormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """One layer of a spec with its formulas and numbers."""
    with user_errors():
        from macscalc.commands.explain import layer_doc
        from macscalc.render.output import render

        render(layer_doc(inputs.network(spec, alpha, res, None, allow_unknown), name), fmt, output)


def main() -> None:
    """Console entry point."""
    sys.exit(app())
