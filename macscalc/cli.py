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
from typing import Annotated

import typer

from macscalc.errors import MacscalcError

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
        help="Input resolution R×R in pixels "
        "(the resolution multiplier ρ = R/224). Default: the spec's input size.",
    ),
]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user mistake into one line on stderr and exit status 2, no traceback."""
    try:
        yield
    except MacscalcError as e:
        typer.echo(f"error: {e.located()}", err=True)
        raise typer.Exit(2) from None


@app.command()
def specs(fmt: FormatOpt = "table", output: OutputOpt = None) -> None:
    """List the built-in specs with their sources."""
    with user_errors():
        from macscalc.output import Column, Doc, Table, render
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
            Doc("macscalc built-in specs", [table], notes, {"kind": "specs", "specs": rows}),
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
            min=1, help="Number of classes (1001 for the TF-slim checkpoints). Default: the spec's."
        ),
    ] = None,
    ops: Annotated[
        str,
        typer.Option(
            "--count",
            metavar="OPS",
            help="Extra operations to count, beside MACs: any of "
            "bn, act, pool, add, mul (comma-separated), all, or none. Reported in their own "
            "column and added to FLOPs, never to MACs.",
        ),
    ] = "none",
    flops: Annotated[
        bool, typer.Option("--flops", help="Also show FLOPs = 2 × MACs + counted extra ops.")
    ] = False,
    params: Annotated[
        str,
        typer.Option(
            "--params",
            metavar="CONVENTION",
            help="Which parameters to count: torch (weights, "
            "biases, BN γ/β), weights, weights+biases, slim_v1 (weights, biases, BN β and "
            "moving statistics) or all.",
        ),
    ] = "torch",
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
        from fractions import Fraction

        from macscalc.counting import Convention, param_convention, parse_ops
        from macscalc.counting import count as count_network
        from macscalc.graph import build
        from macscalc.output import render
        from macscalc.spec import load_spec
        from macscalc.units import parse_alpha
        from macscalc.views import count_doc

        convention = Convention(param_convention(params), parse_ops(ops))
        s = load_spec(spec)
        a = parse_alpha(alpha) if alpha is not None else Fraction(1)
        network = build(s, a, (res, res) if res else None, classes)
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
        grid = Grid(load_family(family))
        render(table_doc(grid, grid.rows(a, res, limit), limit), fmt, output)


def main() -> None:
    """Console entry point."""
    sys.exit(app())
