"""Imports point down the layering the README draws; nothing below knows anything above it.

Annotation-only imports (under ``if TYPE_CHECKING:``) are exempt: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mmunlearn"

#: top first; a module may import from its own layer and any layer after it
LAYERS: list[set[str]] = [
    {"__main__"}, {"cli"}, {"bench"}, {"stream"}, {"workflow"}, {"unlearn"}, {"pipeline"}, {"checkpoint"}, {"train"},
    {"evaluate"}, {"models"}, {"data"}, {"config", "errors", "io", "progress", "runtime", "mmunlearn"},
]
RANK = {name: k for k, layer in enumerate(LAYERS) for name in layer}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mmunlearn"


def _runtime_imports(tree: ast.AST):
    """mmunlearn imports outside ``if TYPE_CHECKING:`` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmunlearn"):
            yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mmunlearn"):
                    yield alias.name, node.lineno


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        yield path, _layer(".".join(rel.parts).removesuffix(".__init__"))


def test_every_module_belongs_to_a_layer():
    unknown = {layer for _, layer in _modules()} - set(RANK)
    assert not unknown, f"add these to LAYERS: {sorted(unknown)}"


@pytest.mark.parametrize("path,layer", list(_modules()), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_imports_point_down(path: Path, layer: str):
    upward = [f"{path.relative_to(PACKAGE)}:{line} imports {module}"
              for module, line in _runtime_imports(ast.parse(path.read_text(encoding="utf-8")))
              if RANK.get(_layer(module), -1) < RANK[layer]]
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)
