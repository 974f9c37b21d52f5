"""The package's shape: layers that import only downwards, small modules, short functions."""

from __future__ import annotations

import ast

from helpers import ROOT

PACKAGE = ROOT / "importer"
# Lower number = lower layer; a module may import only from its own layer or lower ones.
LAYERS = {
    "errors": 0, "model": 0, "outcome": 0, "logs": 0, "aio": 0, "data": 0,
    "input": 1, "send": 1, "emulator": 1,
    "config": 2,
    "reports": 3,
    "run": 4,
    "cli": 5, "__main__": 6, "__init__": 0,
}  # fmt: skip
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def modules() -> list[tuple[str, ast.Module, int]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        found.append((path.relative_to(PACKAGE).as_posix(), ast.parse(text), text.count("\n")))
    return found


def layer_of(name: str) -> str:
    return name.split("/")[0].removesuffix(".py")


def imported(tree: ast.Module) -> list[str]:
    """The top-level parts of ``importer`` a module imports (``input`` for importer.input.x)."""
    parts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "importer":
                parts += [alias.name for alias in node.names]
            elif node.module.startswith("importer."):
                parts.append(node.module.split(".")[1])
    return parts


def test_every_import_goes_to_the_same_layer_or_a_lower_one():
    upward = [
        f"{name} imports importer.{part}"
        for name, tree, _ in modules()
        for part in imported(tree)
        if LAYERS.get(part, 0) > LAYERS[layer_of(name)]
    ]
    assert upward == []


def test_the_emulator_imports_nothing_of_the_client_it_tests():
    for name, tree, _ in modules():
        if layer_of(name) == "emulator":
            assert set(imported(tree)) <= {"emulator", "aio"}, name


def test_no_module_over_600_lines_and_no_function_over_80():
    long = []
    for name, tree, lines in modules():
        if lines > MAX_MODULE_LINES:
            long.append(f"{name}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}: {node.name} is {length} lines")
    assert long == []
