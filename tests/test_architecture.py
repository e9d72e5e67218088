"""The house's layers, read from the folders: a module belongs to the layer of the folder it
lives in, and imports only from its own folder or the folders below it. Type-only imports
(under ``if TYPE_CHECKING:``) count too, both for layering and for loops: a type a lower
layer needs is a protocol in that layer (``lang.placing``, ``models.onnx.context``).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "macscalc"
# Lowest first, as the README's "Design" section draws them; the top-level modules
# (cli, __main__) stand above them all.
FOLDERS = ("core", "lang", "analysis", "published", "models", "render", "commands")
TOP = len(FOLDERS)


def _name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _imports(path: Path) -> set[str]:
    """The macscalc modules ``path`` imports, at any depth, type-only imports included.
    The package root is left out: it only names the public API, loaded lazily."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "macscalc" and len(parts) > 1:
                found.add(".".join(parts[1:]))
                found |= {f"{'.'.join(parts[1:])}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = {m for m in paths if m.rsplit(".", 1)[-1] != "__init__"}
    return {m: {d for d in _imports(paths[m]) if d in modules and d != m} for m in modules}


def _layer(module: str) -> int:
    top = module.split(".")[0]
    return FOLDERS.index(top) if top in FOLDERS else TOP


def test_every_module_lives_in_a_layer_folder():
    loose = sorted(p.name for p in PACKAGE.glob("*.py")
                   if p.stem not in ("__init__", "__main__", "cli"))
    strays = sorted(p.name for p in PACKAGE.iterdir()
                    if p.is_dir() and (p / "__init__.py").exists() and p.name not in FOLDERS)
    assert (loose, strays) == ([], [])


def test_the_graph_is_read():  # the two tests below see real edges
    graph = _graph()
    assert "lang.graph" in graph["analysis.counting"]
    assert "models.onnx.context" in graph["models.onnx.ops"]  # a type-only import


def test_no_module_imports_a_layer_above_its_own():
    upward = sorted(f"{m} → {d}" for m, deps in _graph().items() for d in deps
                    if _layer(d) > _layer(m))
    assert upward == []


def test_no_import_loops():
    graph = _graph()
    loops, done = [], set()

    def visit(module: str, path: list[str]) -> None:  # depth first; a back edge is a loop
        for dep in sorted(graph[module]):
            if dep in path:
                loops.append(" → ".join(path[path.index(dep):] + [dep]))
            elif dep not in done:
                visit(dep, [*path, dep])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert loops == []
