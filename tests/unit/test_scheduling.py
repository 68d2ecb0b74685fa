"""The xdist scheduling of ``tests/conftest.py`` stays true to the tree: a file run apart from its package uses none
of the package's shared fixtures (else it would start a second stack or synth on another worker), and every unit
named there exists (else a rename would silently drop it from the longest-first order)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import LONGEST_FIRST, SHARED_FIXTURE_PACKAGES, STANDALONE_FILES, unit_of

REPO_ROOT = Path(__file__).resolve().parents[2]


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "fixture"


def shared_fixtures(package: str) -> set[str]:
    """The fixtures the package's conftest.py defines (every one of them is shared by the package's files)."""
    tree = ast.parse((REPO_ROOT / package / "conftest.py").read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and any(_is_fixture(d) for d in node.decorator_list)
    }


def used_names(path: Path) -> set[str]:
    """Every parameter name of the file's functions, and every string passed to ``getfixturevalue``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names |= {arg.arg for arg in [*node.args.args, *node.args.kwonlyargs]}
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "getfixturevalue":
            names |= {arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)}
    return names


def test_the_shared_fixtures_are_found() -> None:
    assert {"run"} <= shared_fixtures("tests/e2e")
    assert {"default_stack", "iam_stack", "asset_builder"} <= shared_fixtures("tests/infra")
    assert {"default_stack", "run"} & used_names(REPO_ROOT / "tests/infra/test_iam.py") == {"default_stack"}


@pytest.mark.parametrize("path", sorted(STANDALONE_FILES))
def test_a_file_run_apart_from_its_package_uses_none_of_its_shared_fixtures(path: str) -> None:
    package = next(p for p in SHARED_FIXTURE_PACKAGES if path.startswith(p))
    assert (REPO_ROOT / path).is_file()
    assert used_names(REPO_ROOT / path) & shared_fixtures(package) == set()


def test_every_unit_named_for_the_longest_first_order_exists() -> None:
    missing = [unit for unit in LONGEST_FIRST if not (REPO_ROOT / unit).exists()]
    assert missing == []
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)


def test_standalone_files_are_their_own_units_and_the_rest_of_the_package_one() -> None:
    for path in STANDALONE_FILES:
        assert unit_of(f"{path}::test_x") == path
    assert unit_of("tests/infra/test_iam.py::test_x") == "tests/infra/"
    assert unit_of("tests/e2e/test_trace.py::test_x[a]") == "tests/e2e/"
