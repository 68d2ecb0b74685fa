"""No module imports another package's private names (docs/DESIGN.md, "Folders"; the guide's "no import of another
package's private (``_name``) function").

A name starting with one underscore is a module's own business: another package that needs it gets a public name
for it instead (``tools.oncall.ui.fail`` for the DLQ tool's ``_fail``, ``profiles_dynamodb.from_item`` for
``_from_item``). Checked on the source (AST), for ``from x import _y`` and for ``x._y`` where ``x`` is an imported
module of this repository; a module may use its own package's private names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("functions", "tools", "infra", "tests", "bench")
SKIPPED_PARTS = frozenset({".venv", "node_modules", "cdk.out", ".build", "__pycache__"})


def python_files() -> list[Path]:
    files = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if not SKIPPED_PARTS.intersection(path.relative_to(ROOT).parts):
                files.append(path)
    return files


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str, path: Path) -> str:
    """The package a module belongs to (a package's ``__init__`` belongs to itself)."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def is_ours(module: str) -> bool:
    return module.split(".")[0] in PACKAGES


def private_uses(source: str, package: str) -> Iterator[tuple[int, str]]:
    """``(line, "module._name")`` for each private name of another package that ``source`` (a module of
    ``package``) imports or reads."""
    tree = ast.parse(source)
    modules: dict[str, str] = {}  # local name -> the repository module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_ours(alias.name):
                    modules[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            origin = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join([*base, origin] if origin else base)
            if not is_ours(origin):
                continue
            for alias in node.names:
                if is_private(alias.name) and package_of_name(origin) != package:
                    yield node.lineno, f"{origin}.{alias.name}"
                modules[alias.asname or alias.name] = f"{origin}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr) and isinstance(node.value, ast.Name):
            target = modules.get(node.value.id)
            if target is not None and package_of_name(target) != package:
                yield node.lineno, f"{target}.{node.attr}"


def package_of_name(dotted: str) -> str:
    """The package of a repository module (itself when it is a package)."""
    return dotted if (ROOT / dotted.replace(".", "/")).is_dir() else dotted.rpartition(".")[0]


def test_there_are_files_to_check() -> None:
    files = {module_name(p) for p in python_files()}
    assert {"functions.enricher.handler", "tools.privacy.cli", "tests.unit.test_private_imports"} <= files


def test_no_module_imports_another_packages_private_names() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in python_files()
        for line, name in private_uses(path.read_text(encoding="utf-8"), package_of(module_name(path), path))
    ]
    assert found == [], "private names of another package (give them a public name):\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from tools.dlq.cli import _fail\n", ["tools.dlq.cli._fail"]),
        (
            "from functions.adapters import profiles_dynamodb as p\np._from_item({})\n",
            ["functions.adapters.profiles_dynamodb._from_item"],
        ),
        ("import functions.pipeline.events as e\ne._plain_batch([])\n", ["functions.pipeline.events._plain_batch"]),
        ("from ..dlq.cli import _sigterm\n", ["tools.dlq.cli._sigterm"]),
        ("import functions.pipeline.events\n", []),
        ("from functions.pipeline.events import parse_body, __all__\n", []),
        ("from tools.privacy.core import _own\n", []),  # a module of its own package
        ("from . import core\ncore._own()\n", []),
        ("from os import _exit\n", []),  # not this repository's
    ],
)
def test_the_check_sees_what_it_must(source: str, expected: list[str]) -> None:
    """As if in tools/privacy/cli.py."""
    assert [name for _, name in private_uses(source, "tools.privacy")] == expected
