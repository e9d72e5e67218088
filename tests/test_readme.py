"""The README's examples run as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_python_api_example_prints_what_the_readme_shows():
    section = _section("Python API")
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    # torchvision mobilenet_v2(width_mult=0.5) at 160: 50,184,000 MACs, 1,968,680 params
    assert out.getvalue() == shown
    assert shown.startswith("50184000 1968680 ")


def test_ci_snippet_installs_from_the_repository():
    snippet = re.search(r"```yaml\n(- run: python -m pip install .*?)```",
                        _section("Compute budgets in CI"), re.S).group(1)
    assert 'pip install "git+https://github.com/OWNER/macscalc@TAG"' in snippet
    assert "pip install macscalc\n" not in README
