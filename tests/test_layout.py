"""The package's shape: no import cycle, small modules, no assert guarding data, public names."""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from pathlib import Path

import pytest

import xray_scale

PACKAGE = Path(xray_scale.__file__).parent
MAX_LINES = 600
ONE_PIECE = "one piece:"
"""What the docstring of a module over MAX_LINES says, at the start of a line, and why."""


def modules() -> dict[str, Path]:
    """``{dotted name: file}`` of every module of the package (a package by its __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts).removesuffix(".__init__")] = path
    return found


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The package module that ``name`` (a module, or a name inside one) belongs to."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imported_names(module: str, path: Path) -> set[str]:
    """Every module or name this module imports: top level, inside functions, and importlib.

    ``import`` and ``from ... import`` statements anywhere in the file count,
    and so does a string constant that is exactly the dotted name of one of
    the package's modules (how ``importlib.import_module`` is given one).
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.startswith("xray_scale."):
                names.add(node.value)
    return names


def import_graph() -> dict[str, set[str]]:
    """Edges between the package's modules; a module's own packages and the root excluded.

    Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first, which is
    not an edge of ``a.b.c`` that could close a cycle through itself.
    """
    known = modules()
    graph = {}
    for module, path in known.items():
        edges = set()
        for name in imported_names(module, path):
            target = _owner(name, known)
            if target and target != module and target != "xray_scale":
                if not module.startswith(target + "."):
                    edges.add(target)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


LAYERS: dict[str, set[str]] = {
    "errors": set(),
    "filters": {"errors"},
    "config": {"errors", "filters"},
    "io": {"errors", "config", "filters"},
    "engines": {"errors", "config", "filters", "io"},
    "analysis": {"errors", "config", "filters", "io", "engines"},
    "store": {"errors", "config", "filters", "io"},
    "read": {"errors", "config", "filters", "io", "store"},
}
"""Which parts of the package each part below the top may import (itself always).

``errors``, ``filters``, ``config`` and ``io`` are at the bottom; ``engines``
supply backends and never call back into ``analysis``; ``analysis`` computes
from pixels; ``store`` reads and writes arrays; ``read`` serves a store without
any of the processing. :data:`LEAVES` may be imported by any part, :data:`TOP`
by none of these.
"""
LEAVES = {"records"}
"""Modules of shared types that any part imports; they import only :data:`BOTTOM`."""
TOP = {"runner", "render", "bench", "cli", "cli_help", "console", "demo"}
"""What orchestrates and presents: it imports anything, and nothing in :data:`LAYERS` imports it."""
BOTTOM = {"errors", "config", "filters", "io"}


def _part(name: str) -> str | None:
    """The part of the package (``store``, ``records``, ``cli``...) a dotted name is in."""
    bits = name.split(".")
    return bits[1] if len(bits) > 1 and bits[0] == "xray_scale" else None


def wrong_way_imports() -> list[str]:
    """``"module -> imported"`` for each import (function-local ones too) that breaks the layers."""
    wrong = []
    for module, path in modules().items():
        here = _part(module)
        for name in imported_names(module, path):
            there = _part(name)
            if here is None or there is None or there == here:
                continue
            if here in LAYERS:
                allowed = LAYERS[here] | LEAVES
            elif here in LEAVES:
                allowed = BOTTOM
            else:
                continue  # the top imports anything; the package's __init__ names the API
            if there not in allowed and (there in LAYERS or there in LEAVES or there in TOP):
                wrong.append(f"{module} -> {name}")
    return sorted(wrong)


def test_every_import_points_down_the_layers():
    assert wrong_way_imports() == []


def test_analysis_and_engines_open_no_zarr():
    found = {
        module: sorted(
            name
            for name in imported_names(module, path)
            if name.split(".")[0] == "zarr" or _part(name) == "store"
        )
        for module, path in modules().items()
        if _part(module) in ("analysis", "engines")
    }
    assert {module: names for module, names in found.items() if names} == {}


def test_the_layer_check_finds_an_import_pointing_up(tmp_path, monkeypatch):
    package = tmp_path / "xray_scale"
    for folder in ("store", "analysis", "runner"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("", encoding="utf-8")
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "records.py").write_text("from .config import Config\n", encoding="utf-8")
    (package / "store" / "qc.py").write_text(
        "def finish():\n    from ..analysis.qc_groups import group_duplicates\n", encoding="utf-8"
    )
    (package / "analysis" / "batch.py").write_text(
        "from ..records import BatchSpec\nfrom ..runner import task\n", encoding="utf-8"
    )
    (package / "runner" / "task.py").write_text(
        "from ..analysis.batch import x\nfrom ..store.qc import y\n", encoding="utf-8"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert wrong_way_imports() == [
        "xray_scale.analysis.batch -> xray_scale.runner",
        "xray_scale.analysis.batch -> xray_scale.runner.task",
        "xray_scale.store.qc -> xray_scale.analysis.qc_groups",
        "xray_scale.store.qc -> xray_scale.analysis.qc_groups.group_duplicates",
    ]


def test_the_package_has_no_import_cycle_counting_function_local_and_importlib_imports():
    graph = import_graph()
    assert "xray_scale.engines.cupy" in graph["xray_scale.engines.registry"]  # importlib counted
    assert cycles(graph) == []


def test_function_local_and_importlib_imports_are_edges(tmp_path):
    path = tmp_path / "batch.py"
    path.write_text(
        "def f():\n    from .stack import analyse_stack\n\n"
        "MODULES = {'cupy': 'xray_scale.engines.cupy'}\n",
        encoding="utf-8",
    )
    names = imported_names("xray_scale.analysis.batch", path)
    assert {"xray_scale.analysis.stack", "xray_scale.engines.cupy"} <= names


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_module_is_over_600_lines_without_saying_why():
    too_long = []
    for module, path in modules().items():
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        head = [line.strip().lower() for line in docstring.splitlines()[:12]]
        if not any(line.startswith(ONE_PIECE) for line in head):
            too_long.append(f"{module} ({lines} lines)")
    assert too_long == [], f"split these, or say '{ONE_PIECE} why' in their docstring"


def test_no_assert_statement_in_the_package():
    found = [
        f"{module}:{node.lineno}"
        for module, path in modules().items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert found == [], "an assert vanishes under python -O: raise an error instead"


def test_no_docstring_points_outside_the_repository():
    found = [
        module
        for module, path in modules().items()
        if "design.md" in path.read_text(encoding="utf-8")
    ]
    assert found == []


@pytest.mark.parametrize("name", xray_scale.__all__)
def test_public_names_stay_importable(name):
    assert getattr(xray_scale, name) is not None


def test_run_is_the_function_of_the_runner():
    assert inspect.isfunction(xray_scale.run)
    pipeline = importlib.import_module("xray_scale.runner.pipeline")
    assert pipeline.run is xray_scale.run


def test_every_error_has_the_one_root_and_keeps_its_builtin():
    errors = importlib.import_module("xray_scale.errors")
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.XrayScaleError), name
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.InputError, ValueError)
    assert issubclass(errors.EngineError, ValueError)
    assert issubclass(errors.SelectionError, ValueError)
    assert issubclass(errors.StoreError, RuntimeError)
    assert xray_scale.StoreError is errors.StoreError
    assert xray_scale.XrayScaleError is errors.XrayScaleError


def test_the_command_line_catches_the_one_root():
    source = (PACKAGE / "cli.py").read_text(encoding="utf-8")
    caught = {
        ast.unparse(handler.type)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef) and node.name == "main"
        for handler in ast.walk(node)
        if isinstance(handler, ast.ExceptHandler) and handler.type is not None
    }
    assert caught == {"typer.TyperException", "XrayScaleError", "OSError"}


def test_the_readers_need_none_of_the_processing():
    processing = ("analysis", "runner", "render", "engines", "filters", "bench", "cli")
    found = {
        module: sorted(
            name
            for name in imported_names(module, path)
            if name.startswith(tuple(f"xray_scale.{part}" for part in processing))
        )
        for module, path in modules().items()
        if module.startswith("xray_scale.read")
    }
    assert set(found) >= {"xray_scale.read.tree", "xray_scale.read.images"}
    assert {module: names for module, names in found.items() if names} == {}
