"""The docs name only what exists: every file, module, function and environment variable that README.md or a page
of docs/ writes in backticks is checked against the repository.

What is checked, in inline code (``\\`...\\```) of README.md and docs/*.md:

* a path under one of the repository's folders (``functions/enricher/core.py``, ``docs/runbook.md#kochava-outage``,
  ``tests/unit/dlq/test_core.py::test_x``, ``events/*.json``): the file or folder exists (a glob matches);
* a bare file name (``core.py``, ``requirements.txt``): some file of the repository has that name;
* a dotted name of this repository (``functions.names.INGEST_PATHS``, ``tools.dlq``): the module exists and
  defines the name at its top level (read from the source, nothing is imported);
* a call (``to_kochava()``, ``Settings.from_env(env)``, ``gc.freeze()``): the function or class is defined in
  the repository, or is a builtin or the attribute of a standard-library module, or is listed in
  :data:`OUTSIDE` with what it is;
* an environment-variable-like name (``KOCHAVA_APP_ID_IOS``, ``DELIVERER_MAX_ATTEMPTS``): the code, the Makefile
  or the project files use it.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import os
import re
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE_FOLDERS = ("functions", "tools", "infra", "tests", "bench")
PATH_FOLDERS = (*CODE_FOLDERS, "docs", "events", ".ci")
PROJECT_FILES = ("Makefile", "pyproject.toml", "package.json", "cdk.json", "requirements.txt", "requirements-dev.txt")
SKIPPED_PARTS = frozenset({".venv", "node_modules", "cdk.out", ".build", "__pycache__", ".git"})

# Calls the docs name that live outside this repository and outside Python's standard library.
OUTSIDE = {
    "AAAttribution.attributionToken": "Apple's AdServices framework (iOS), what the app calls for the token",
    "mallopt": "glibc's allocator tuning (docs/benchmarks.md)",
    "NativeEvent.model_validate_json": "pydantic's BaseModel.model_validate_json on a contract model",
}

INLINE_CODE = re.compile(r"`([^`\n]+)`")
REPO_PATH = re.compile(
    rf"((?:{'|'.join(re.escape(f) for f in PATH_FOLDERS)})/[\w./*<>-]*)(?:::[\w\[\]-]+)?(?:#[\w-]+)?(?::\d+)?"
)
FILE_NAME = re.compile(r"[\w-]+\.(?:py|md|json|jsonl|txt|toml|cjs|js|yaml|yml|sh)")
DOTTED = re.compile(r"(?:functions|tools|infra)(?:\.\w+)+")
CALL = re.compile(r"([A-Za-z_][\w.]*)\([^()]*\)")
ENV_LIKE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def references() -> list[tuple[str, int, str]]:
    """``(doc, line, text)`` of every inline code span of the docs."""
    found = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            found += [(doc.relative_to(ROOT).as_posix(), number, text.strip()) for text in INLINE_CODE.findall(line)]
    return found


@cache
def code_files() -> list[Path]:
    files = []
    for folder in CODE_FOLDERS:
        files += [p for p in (ROOT / folder).rglob("*.py") if not SKIPPED_PARTS.intersection(p.parts)]
    return [p for p in files if p != Path(__file__).resolve()]  # its own examples of what does not exist


@cache
def code_names() -> tuple[frozenset[str], frozenset[str]]:
    """The functions and classes defined in the repository; every name, attribute and string it uses."""
    defined: set[str] = set()
    used: set[str] = set()
    for path in code_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                used.add(node.value)
            elif isinstance(node, ast.Name):
                used.add(node.id)
            elif isinstance(node, ast.Attribute):
                used.add(node.attr)
    return frozenset(defined), frozenset(used)


@cache
def file_names() -> frozenset[str]:
    """Every file and folder name of the repository, without descending into the skipped folders (``.venv`` and
    ``node_modules`` alone hold ~40,000 entries)."""
    names = set()
    for _folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in SKIPPED_PARTS]
        names.update(subfolders, (name for name in files if name not in SKIPPED_PARTS))
    return frozenset(names)


@cache
def project_text() -> str:
    return "\n".join((ROOT / name).read_text(encoding="utf-8") for name in PROJECT_FILES if (ROOT / name).exists())


def module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def top_level_names(path: Path) -> frozenset[str]:
    """What a module defines at its top level: functions, classes, assignments, imports, submodules."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.With):  # the handlers import and build inside collector_paused()
            names.update(top_level_names_of(node.body))
    if path.name == "__init__.py":
        names.update(p.stem for p in path.parent.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists())
    return frozenset(names)


def top_level_names_of(body: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def dotted_exists(dotted: str) -> bool:
    """A module of the repository, or a name its module defines at the top level (a class's members: anywhere)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        path = module_file(".".join(parts[:cut]))
        if path is None:
            continue
        rest = parts[cut:]
        if not rest:
            return True
        defined, _ = code_names()
        return rest[0] in top_level_names(path) and all(name in defined or name.isupper() for name in rest[1:])
    return False


def call_exists(name: str) -> bool:
    if name in OUTSIDE:
        return True
    first, *rest = name.split(".")
    defined, _ = code_names()
    if not rest:
        return name in defined or hasattr(builtins, name)
    if first in sys.stdlib_module_names:
        found: object = importlib.import_module(first)
        for part in rest:
            if not hasattr(found, part):
                return False
            found = getattr(found, part)
        return True
    if first in ("functions", "tools", "infra"):
        return dotted_exists(name)
    return rest[-1] in defined


def problem(text: str) -> str | None:
    """What is wrong with one inline code span, or None."""
    if match := REPO_PATH.fullmatch(text):
        path = match.group(1).rstrip("/")
        if "<" in path:  # a placeholder: functions/<name>/handler.py
            return None
        exists = any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()
        return None if exists else f"no file or folder {path}"
    if FILE_NAME.fullmatch(text):
        return None if text in file_names() else f"no file named {text}"
    if DOTTED.fullmatch(text):
        return None if dotted_exists(text) else f"no {text} in the code"
    if match := CALL.fullmatch(text):
        return None if call_exists(match.group(1)) else f"no function {match.group(1)}"
    if ENV_LIKE.fullmatch(text):
        _, used = code_names()
        return None if text in used or text in project_text() else f"the code never uses {text}"
    return None


def test_the_docs_are_read() -> None:
    found = references()
    assert len(DOCS) > 5
    assert ("README.md", 1, "make local") not in found  # sanity of the parsing: spans, not lines
    assert any(text == "functions/names.py" for _, _, text in found)


def test_every_file_function_and_variable_the_docs_name_exists() -> None:
    wrong = [f"{doc}:{line}: `{text}`: {why}" for doc, line, text in references() if (why := problem(text))]
    assert wrong == [], "the docs name what does not exist (fix the doc or the code):\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    "text",
    [
        "functions/enricher/nowhere.py",
        "docs/nowhere.md#a-section",
        "nowhere_at_all.py",
        "functions.names.NO_SUCH_NAME",
        "tools.nowhere",
        "no_such_function()",
        "Settings.no_such_method(env)",
        "KOCHAVA_NO_SUCH_VARIABLE",
    ],
)
def test_the_check_fails_on_what_does_not_exist(text: str) -> None:
    assert problem(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "functions/enricher/core.py",
        "docs/runbook.md#kochava-outage",
        "functions/<name>/handler.py",
        "events/*.json",
        "core.py",
        "functions.names.INGEST_PATHS",
        "functions.enricher.handler.lambda_handler",
        "tools.dlq",
        "to_kochava()",
        "Settings.from_env(env)",
        "gc.freeze()",
        "float()",
        "DELIVERER_MAX_ATTEMPTS",
        "make local",
    ],
)
def test_the_check_passes_what_exists(text: str) -> None:
    assert problem(text) is None
