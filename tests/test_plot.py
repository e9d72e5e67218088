"""Plots (the optional plot extra): files of the right type, drawn from the JSON's points."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from macscalc.cli import app
from macscalc.core.errors import MacscalcError

pytest.importorskip("matplotlib")
np = pytest.importorskip("numpy")

from macscalc.render import plot  # noqa: E402

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def is_svg(path: Path) -> bool:
    return ET.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg"


def capture(monkeypatch, name: str) -> list:
    """Record what the named plot function returned while the CLI ran."""
    seen: list = []
    real = getattr(plot, name)

    def spy(*args):
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(plot, name, spy)
    return seen


def test_sweep_plot_is_a_png_of_the_json_grid_and_frontier(tmp_path, monkeypatch):
    seen = capture(monkeypatch, "sweep_plot")
    out = tmp_path / "grid.png"
    args = ("sweep", "mobilenet_v2", "--alpha", "0.35:1.0:0.05", "--res", "96:224:32",
            "--max-macs", "150M", "--format", "json")
    data = json.loads(invoke(*args, "--plot", str(out)))
    assert out.read_bytes().startswith(PNG)
    (plotted,) = seen
    assert plotted["budget"] == data["limits"]["macs"] == 150_000_000
    on_front = [(p["alpha"], p["res"]) for p in data["points"]
                if p["pareto_macs_alpha_rho"] or p.get("pareto_macs_accuracy")]
    assert plotted["frontier"] == on_front and on_front
    # the heat map is every point: the same numbers as a sweep without limits
    full = json.loads(invoke("sweep", "mobilenet_v2", "--alpha", "0.35:1.0:0.05", "--res",
                             "96:224:32", "--format", "json"))
    grid = {(a, r): m for a, row in zip(plotted["alphas"], plotted["macs"], strict=True)
            for r, m in zip(plotted["resolutions"], row, strict=True)}
    assert grid == {(p["alpha"], p["res"]): p["macs"] for p in full["points"]}


def test_pick_plot_is_an_svg_of_the_json_candidates(tmp_path, monkeypatch):
    seen = capture(monkeypatch, "pick_plot")
    out = tmp_path / "pick.svg"
    data = json.loads(invoke("pick", "--max-macs", "100M", "--format", "json", "--plot",
                             str(out)))
    assert is_svg(out)
    (plotted,) = seen
    published = [c for c in data["candidates"]
                 if c["accuracy"] is not None and c["metric"] == "top-1"]
    assert plotted["points"] == [(c["model"], c["family"], c["macs"], c["accuracy"])
                                 for c in published]
    assert plotted["frontier"] == [c["model"] for c in sorted(published,
                                                              key=lambda c: c["macs"])
                                   if c["frontier"]]
    assert plotted["budget"] == 100_000_000


def test_table_plot_draws_the_published_grid(tmp_path, monkeypatch):
    seen = capture(monkeypatch, "table_plot")
    out = tmp_path / "v2.png"
    data = json.loads(invoke("table", "v2", "--format", "json", "--plot", str(out)))
    assert out.read_bytes().startswith(PNG)
    (plotted,) = seen
    assert plotted["points"] == [(r["model"], r["macs"], r["accuracy"]) for r in data["rows"]]
    # slim README: the V2 grid's five resolutions at α 0.35 … 1.0, and 224 alone for 1.3, 1.4
    assert {a: len(m) for a, m in plotted["lines"].items()} == {
        "1.4": 1, "1.3": 1, "1.0": 5, "0.75": 5, "0.5": 5, "0.35": 5}


def test_table_plot_needs_published_accuracy(tmp_path):
    data = {"family": "x", "rows": [{"accuracy": None}]}
    with pytest.raises(Exception, match="family 'x' has no published accuracy to plot"):
        plot.table_plot(data, tmp_path / "x.png")


def test_missing_extra_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    out = tmp_path / "p.png"
    for args in (["pick", "--plot", str(out)], ["table", "v1", "--plot", str(out)],
                 ["sweep", "mobilenet_v2", "--plot", str(out)]):
        result = runner.invoke(app, args)
        assert (result.exit_code, result.stderr) == (
            2, "error: plotting needs the plot extra: pip install 'macscalc[plot]'\n")
        assert result.stdout == "" and not out.exists()


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    out = tmp_path / "p.png"
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(MacscalcError, match="cannot write .*: disk full"):
        plot.pick_plot({"candidates": [], "limits": {}}, out)
    assert list(tmp_path.iterdir()) == []


def test_figures_name_the_spec_and_convention(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from macscalc.analysis.sweeps import select, sweep
    from macscalc.published.tables import published_accuracy
    from macscalc.render.sweep_view import sweep_doc

    titles: list[str] = []
    real = Figure.suptitle
    monkeypatch.setattr(Figure, "suptitle",
                        lambda self, t, **kw: titles.append(t) or real(self, t, **kw))
    result = sweep("mobilenet_v2", ["0.5", "1.0"], [96, 224])
    accuracy = published_accuracy(result.spec)
    doc = sweep_doc(result, select(result, {}, accuracy.values, False), accuracy, {})
    plot.sweep_plot(result, doc.data, tmp_path / "s.svg")
    assert titles == ["macscalc sweep mobilenet_v2: MACs over α × resolution\nMACs = conv + "
                      "FC multiply-accumulates; 1000 classes; α rounded by make_divisible_8"]
    assert is_svg(tmp_path / "s.svg")
