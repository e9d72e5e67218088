"""Output that fits the terminal: widths, priorities, cuts, notes and colour."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from macscalc.cli import app
from macscalc.render import output
from macscalc.render.output import Column, Doc, Table, text

runner = CliRunner()

COMMANDS = [
    ["table", "v1"], ["table", "v2"], ["table", "v3"], ["table", "micronet"],
    ["table", "detection"], ["table", "v1", "--alpha", "0.5", "--res", "160"],
    ["count", "mobilenet_v2"], ["count", "micronet_m2", "--count", "all", "--flops"],
    ["count", "mobilenet_v1"], ["pick"], ["pick", "--device", "pixel1"], ["specs"],
    ["check", "mobilenet_v2", "ssd_mobilenet_v1", "mobilenet_v1", "--max-macs", "300M"],
    ["compare", "mobilenet_v2 --alpha 0.75", "mobilenet_v2 --res 160", "mobilenet_v3_large"],
    ["memory", "mobilenet_v2"], ["memory", "mobilenet_v1"],
    ["explain", "dwsep"], ["explain", "bottleneck"], ["explain", "micro"],
    ["explain", "scaling", "mobilenet_v2"], ["explain", "mobilenet_v2", "--layer", "ir2_2"],
]


def lines(args: list[str], **env: str) -> list[str]:
    result = runner.invoke(app, args, env=env)
    assert result.exit_code in (0, 1), result.output
    return result.stdout.splitlines()


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_line_fits_80_columns(args):
    assert max(map(len, lines(args, COLUMNS="80"))) <= 80


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_piped_without_columns_nothing_is_cut(args):
    """No COLUMNS and not a terminal: no limit, the same as --format wide."""
    piped = lines(args)
    assert piped == lines([*args, "--format", "wide"])
    assert not any("…" in line for line in piped)


def test_piped_table_keeps_whole_rows():
    text_ = "\n".join(lines(["table", "v1"]))
    # the V1 paper's Tables 6, 7, 10 and 12 and timm's measured counts for v1_1.0_224, on
    # its row
    assert ("paper Tables 6, 7: 569 M ✓, 4.2 M params ✓; paper_t10 Table 10: 569 M ✗, 3.3 M "
            "params ✓; paper_t12 Table 12: 568 M ✓, 3.2 M params ✓; timm: 568.740352 M ✓, "
            "4.231976 M params ✓") in text_
    assert max(len(line) for line in text_.splitlines()) > 300  # notes unwrapped


def test_narrow_table_moves_text_drops_columns_and_says_how_to_see_them():
    got = lines(["table", "v3"], COLUMNS="80")
    assert got[3].split() == ["model", "MACs", "(M)", "pub.", "params", "(M)", "pub.", "top-1",
                              "notes"]
    assert got[5].endswith("[1]")
    assert got[11].startswith("  [1] other sources: paper Table 3: 219 M ✗, 5.4 M params ✓;")
    assert ("At 80 columns, not shown: Pixel 3 ms, Pixel 2 ms, Pixel 1 ms. See everything "
            "with --format wide, csv, json or markdown.") in " ".join(x.strip() for x in got)


def _doc(rows: list[dict], notes: list[str] | None = None) -> Doc:
    cols = [Column("name", "name", left=True, cut=6), Column("value", "value"),
            Column("extra", "extra", drop=1), Column("source", "source", left=True, text=True)]
    return Doc("Title", [Table("T", cols, rows, notes or [])], [], {})


ROWS = [{"name": "a_very_long_name", "value": 1, "extra": "xx", "source": "the same source"},
        {"name": "b", "value": 22, "extra": "yy", "source": "the same source"},
        {"name": "c", "value": 333, "extra": "zz", "source": "another"}]


def test_text_columns_become_numbered_notes_each_text_once():
    # natural width 67; without the source column and with a notes column, 43: extra drops
    assert text(_doc(ROWS), 36).splitlines()[2:] == [
        "T",
        "name              value  notes",
        "────────────────  ─────  ─────",
        "a_very_long_name      1  [1]",
        "b                    22  [1]",
        "c                   333  [2]",
        "  [1] source: the same source",
        "  [2] source: another",
        "  At 36 columns, not shown: extra.",
        "  See everything with --format wide,",
        "  csv, json or markdown.",
    ]


def test_cells_are_cut_with_an_ellipsis_never_wrapped():
    got = text(_doc(ROWS), 24).splitlines()
    assert got[3:6] == ["name        value  notes", "──────────  ─────  ─────",
                        "a_very_lo…      1  [1]"]
    assert "… marks cut cells." in " ".join(x.strip() for x in got)
    assert max(map(len, got)) <= 24
    # below the cut width every column gives way, down to three characters
    assert max(map(len, text(_doc(ROWS), 16).splitlines())) <= 16


def test_notes_wrap_at_word_boundaries():
    doc = Doc("Title", [], ["alpha beta gamma delta epsilon zeta eta theta"], {})
    assert text(doc, 20).splitlines()[2:] == ["alpha beta gamma", "  delta epsilon zeta",
                                              "  eta theta"]


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    doc = _doc(ROWS[:1])
    assert "\033[1m" in text(doc, None, color=True)
    written: list[str] = []

    class Tty:
        def isatty(self) -> bool:
            return True

        def fileno(self) -> int:
            raise OSError

        def write(self, s: str) -> None:
            written.append(s)

    monkeypatch.setattr(output.sys, "stdout", Tty())
    monkeypatch.setenv("COLUMNS", "100")
    output.render(doc, "table")
    assert "\033[1m" in written.pop()
    monkeypatch.setenv("NO_COLOR", "1")
    output.render(doc, "table")
    assert "\033[" not in written.pop()


def test_width_from_columns_else_none_for_a_pipe(monkeypatch):
    monkeypatch.setenv("COLUMNS", "91")
    assert output.terminal_width() == 91
    monkeypatch.delenv("COLUMNS")
    assert output.terminal_width() is None  # pytest's stdout is not a terminal


def test_json_rows_sit_one_a_line_and_parse_as_plain_json():
    from decimal import Decimal

    data = {"kind": "t", "settings": {"res": [96, 160], "name": "ñ"},
            "points": [{"alpha": "0.5", "rho": Decimal("0.357143"), "_warn": True},
                       {"alpha": "1.0", "rho": Decimal("1.000000"), "shape": [1, 2]}],
            "empty": [], "none": None}
    text = output._json(Doc("t", [], [], data))
    assert text == """{
  "schema_version": 1,
  "kind": "t",
  "settings": {
    "res": [96, 160],
    "name": "ñ"
  },
  "points": [
    {"alpha": "0.5", "rho": "0.357143"},
    {
      "alpha": "1.0",
      "rho": "1.000000",
      "shape": [1, 2]
    }
  ],
  "empty": [],
  "none": null
}
"""
    with pytest.raises(TypeError, match="Fraction is not JSON"):
        from fractions import Fraction

        output._json(Doc("t", [], [], {"x": [Fraction(1, 3)]}))
