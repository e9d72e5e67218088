"""The house's layers, read from the imports: the language (from YAML text to placed
primitives) stands below the analyses (counting, memory), which stand below the published
tables, rendering and the commands; nothing imports in a loop. Type-only imports (under
``if TYPE_CHECKING:``) are exempt: a block may name the builder's type."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "macscalc"

LAYERS = [  # lowest first; a module may import only from its own layer or those below
    {"core.limits", "core.errors", "lang.schema", "core.expr", "core.rounding", "core.units",
     "core.files", "core.yamlload", "lang.layers", "lang.blocks", "lang.spec", "lang.graph"},
    {"analysis.counting", "analysis.memory", "analysis.latency", "analysis.sweeps"},
    {"published.tables", "published.grid"},
    {"render.report", "render.output", "render.views", "render.plot", "render.sweep_view"},
]


def _imports(path: Path) -> set[str]:
    """The macscalc modules ``path`` imports, at any depth but type-only blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and getattr(node.test, "id", "") == "TYPE_CHECKING"
                 for stmt in node.body for n in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only or not isinstance(node, ast.ImportFrom) or not node.module:
            continue
        parts = node.module.split(".")
        if parts[0] != "macscalc":
            continue
        found |= ({".".join(parts[1:])} if len(parts) > 1 else {a.name for a in node.names})
        found |= {f"{'.'.join(parts[1:])}.{a.name}" for a in node.names}
    return found - {_name(path)}


def _name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _graph() -> dict[str, set[str]]:
    modules = {_name(p) for p in PACKAGE.rglob("*.py")}
    return {_name(p): _imports(p) & modules for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> int:
    return next((i for i, mods in enumerate(LAYERS) if module in mods), len(LAYERS))


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
