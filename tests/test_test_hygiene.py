"""The test suite's own rules: no test module imports another, one name per fixture, every
marker registered, and every test carrying the markers its fixtures imply (``conftest.py``)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from conftest import IMPLIED_MARKERS, missing_markers, pytest_plugins

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
BUILTIN_MARKERS = {"parametrize", "skip", "skipif", "xfail", "usefixtures", "filterwarnings"}
PLUGIN_MARKERS = {"timeout", "xdist_group"}  # pytest-timeout, pytest-xdist


def modules() -> dict[str, ast.Module]:
    """Every Python module of ``tests/`` (test modules, conftest and helpers), parsed."""
    return {path.stem: ast.parse(path.read_text(encoding="utf-8")) for path in TESTS.glob("*.py")}


def imported_modules(tree: ast.Module) -> set[str]:
    """The top-level names of the modules ``tree`` imports, anywhere in it."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            names.add(parts[0])
            if parts[0] == "tests":  # from tests.test_x import y, from tests import test_x
                names |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
    return names


def fixtures(tree: ast.Module) -> list[str]:
    """The names of the fixtures ``tree`` defines (``name=`` when given)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call else decorator
            if ast.unparse(target) in ("pytest.fixture", "fixture"):
                named = [k.value.value for k in (call.keywords if call else []) if k.arg == "name"]
                found.append(named[0] if named else node.name)
    return found


def used_markers(tree: ast.Module) -> set[str]:
    """The ``X`` of every ``pytest.mark.X`` in ``tree``."""
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "pytest.mark"
    }


def registered_markers() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    lines = config["tool"]["pytest"]["ini_options"]["markers"]
    return {line.split(":")[0].strip() for line in lines}


def test_no_test_module_imports_another():
    parsed = modules()
    test_modules = {name for name in parsed if name.startswith("test_")}
    offenders = {
        name: sorted(imported_modules(tree) & test_modules)
        for name, tree in parsed.items()
        if imported_modules(tree) & test_modules
    }
    assert offenders == {}, "shared code goes into conftest.py or a fixture module"


def test_the_rule_sees_each_form_of_import():
    code = "import test_a\nfrom test_b import x\n"
    code += "from tests.test_c import y\nfrom tests import test_d\n"
    assert {"test_a", "test_b", "test_c", "test_d"} <= imported_modules(ast.parse(code))


def test_every_fixture_has_one_name_in_the_whole_suite():
    owners: dict[str, list[str]] = {}
    for name, tree in sorted(modules().items()):
        for fixture in fixtures(tree):
            owners.setdefault(fixture, []).append(name)
    assert {f: where for f, where in owners.items() if len(where) > 1} == {}
    assert {"s3_fs", "s3_user", "s3_server", "dask_cluster", "labelled_store"} <= set(owners)


def test_fixture_modules_are_registered_as_plugins():
    parsed = modules()
    helpers = {
        name
        for name, tree in parsed.items()
        if fixtures(tree) and not name.startswith("test_") and name != "conftest"
    }
    assert helpers == set(pytest_plugins)


def test_every_marker_used_is_registered_and_every_registered_one_is_used():
    registered = registered_markers()
    used = set().union(*(used_markers(tree) for tree in modules().values()))
    assert used - BUILTIN_MARKERS - PLUGIN_MARKERS <= registered
    assert registered <= used
    assert set(IMPLIED_MARKERS) | {"real_data"} <= registered


def test_a_test_lacking_the_markers_its_fixtures_imply_is_named():
    assert missing_markers({"s3_fs", "tmp_path"}, set(), False) == ["s3"]
    assert missing_markers({"dask_cluster", "s3_user"}, {"s3"}, True) == ["cluster", "real_data"]
    assert missing_markers({"s3_server"}, {"s3", "slow"}, False) == []
    assert missing_markers({"tmp_path"}, set(), False) == []
