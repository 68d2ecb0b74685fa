"""The version has one home (functions/version.py): pyproject.toml reads it, CHANGELOG.md's newest entry is it,
every changelog version says how to upgrade a deployed stack, and every tool prints it with --version."""

from __future__ import annotations

import importlib
import importlib.util
import re
import runpy
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from functions.version import __version__

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("tools.trace", "tools.dlq", "tools.privacy", "tools.local", "tools.transform", "tools.smoke")


def test_pyproject_reads_the_version_from_functions_version() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"], "no second copy of the version"
    assert project["project"]["dynamic"] == ["version"]
    module, _, name = project["tool"]["setuptools"]["dynamic"]["version"]["attr"].rpartition(".")
    assert getattr(importlib.import_module(module), name) == __version__


def _changelog_versions() -> list[tuple[str, str]]:
    """(version, its section's text) of each ``## [x.y.z] - date`` heading, newest first."""
    text = (REPO_ROOT / "CHANGELOG.md").read_text()
    parts = re.split(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, flags=re.MULTILINE)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def test_the_changelog_starts_at_0_1_0_and_ends_at_the_current_version() -> None:
    versions = [version for version, _ in _changelog_versions()]
    assert versions[0] == __version__
    assert versions[-1] == "0.1.0"
    keys = [tuple(int(part) for part in version.split(".")) for version in versions]
    assert keys == sorted(keys, reverse=True), "newest first"


def test_every_version_says_how_to_upgrade_a_deployed_stack() -> None:
    for version, section in _changelog_versions():
        assert "### Upgrading a deployed stack\n" in section, version


@pytest.mark.parametrize("tool", TOOLS)
def test_each_tool_prints_the_version(
    tool: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m TOOL --version``, run as ``-m`` runs it (runpy, as ``__main__``) in this process: a new
    interpreter per tool cost a few seconds each; the test below starts one, as a user does."""
    monkeypatch.setattr(sys, "argv", [tool, "--version"])
    # What runs as __main__ must not be imported already (runpy warns): the tool module, or a package's __main__.
    is_package = importlib.util.find_spec(tool).submodule_search_locations is not None  # type: ignore[union-attr]
    monkeypatch.delitem(sys.modules, f"{tool}.__main__" if is_package else tool, raising=False)
    with pytest.raises(SystemExit) as exited:
        runpy.run_module(tool, run_name="__main__", alter_sys=True)
    assert exited.value.code in (0, None)
    assert capsys.readouterr().out.strip() == f"python -m {tool} {__version__} (kochava-pipeline)"


def test_a_tool_started_as_a_process_prints_the_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.trace", "--version"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"python -m tools.trace {__version__} (kochava-pipeline)"
