"""The README's examples run as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _example(title: str) -> tuple[str, str]:
    """What a section's Python example prints, and what the section shows it printing."""
    section = _section(title)
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    return out.getvalue(), shown


def test_python_api_example_prints_what_the_readme_shows():
    printed, shown = _example("Python API")
    # torchvision mobilenet_v2(width_mult=0.5) at 160: 50,184,000 MACs, 1,968,680 params
    assert printed == shown
    assert shown.startswith("50184000 1968680 ")


def test_sweep_example_prints_what_the_readme_shows():
    printed, shown = _example("Sweeps")
    # torchvision mobilenet_v2(width_mult=1.0) at 96/160/224 and its params at α 0.35 … 1.0
    # (framework-counts.md: FlopCounterMode and sum(p.numel()), torchvision 0.26)
    assert printed == shown
    assert shown.startswith("[56289152, 154083200, 300774272] [1677128, 1968680, 2636424, ")


def test_ci_snippet_installs_from_the_repository():
    snippet = re.search(r"```yaml\n(- run: python -m pip install .*?)```",
                        _section("Compute budgets in CI"), re.S).group(1)
    assert 'pip install "git+https://github.com/OWNER/macscalc@TAG"' in snippet
    assert "pip install macscalc\n" not in README
