"""The shape of src/: files a reader can hold in mind, functions that fit on a screen, no factory
of closures standing in for a module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "stockday"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_NESTED_FUNCTIONS = 3

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def source_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def functions(tree: ast.AST) -> Iterator[FunctionNode]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def nested_functions(function: FunctionNode) -> int:
    return sum(1 for node in functions(function) if node is not function)


def where(path: Path, function: FunctionNode) -> str:
    return f"{path.relative_to(SRC.parent)}:{function.lineno} {function.name}"


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_file_is_short_enough_to_read(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_FILE_LINES, f"{path.relative_to(SRC.parent)} has {lines} lines"


def test_no_function_is_longer_than_a_screen() -> None:
    long = [
        f"{where(path, f)} ({f.end_lineno - f.lineno + 1} lines)"  # type: ignore[operator]
        for path in source_files()
        for f in functions(ast.parse(path.read_text()))
        if f.end_lineno is not None and f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_no_function_is_a_factory_of_closures() -> None:
    factories = [
        f"{where(path, f)} ({nested_functions(f)} nested definitions)"
        for path in source_files()
        for f in functions(ast.parse(path.read_text()))
        if nested_functions(f) > MAX_NESTED_FUNCTIONS
    ]
    assert factories == []


def test_the_checks_see_every_function() -> None:
    """The walk finds nested and async definitions: the checks above cannot pass vacuously."""
    tree = ast.parse(
        "async def outer():\n    def a(): pass\n    async def b():\n        def c(): pass\n"
    )
    (outer,) = [f for f in functions(tree) if f.name == "outer"]
    assert nested_functions(outer) == 3
    assert len(source_files()) > 50
