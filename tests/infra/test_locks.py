"""The hashed locks agree with their sources (requirements*.in), and the Lambda lock is compiled for Lambda.

infra/lock.py's check, on the repo's files and on copies with one thing wrong: a pin changed, added or removed in
a source without `make lock`, a hash gone, the Lambda runtime moved on. The bundler installs only hashed entries.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra.bundling import PROVIDED_BY_RUNTIME, runtime_requirements
from infra.lock import (
    BOOTSTRAP_LOCK,
    DEV_LOCK,
    DEV_SOURCE,
    RUNTIME_LOCK,
    RUNTIME_SOURCE,
    check_locks,
    lambda_target,
    parse_lock,
)
from tests.infra.support import REPO_ROOT


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the two sources, the two locks and the bootstrap lock."""
    for name in (RUNTIME_SOURCE, RUNTIME_LOCK, DEV_SOURCE, DEV_LOCK, BOOTSTRAP_LOCK):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def test_the_locks_agree_with_their_sources_and_the_lambda_runtime() -> None:
    assert check_locks(REPO_ROOT) == []


def test_a_pin_bumped_in_the_source_without_make_lock_fails(repo: Path) -> None:
    _edit(repo / RUNTIME_SOURCE, "pydantic==2.14.3", "pydantic==2.14.4")
    problems = check_locks(repo)
    assert f"{RUNTIME_LOCK}: pydantic: the lock has 2.14.3, {RUNTIME_SOURCE} pins 2.14.4: run 'make lock'" in problems
    assert any(p.startswith(f"{DEV_LOCK}: pydantic: the lock has 2.14.3") for p in problems), "-r carries it over"


def test_a_package_added_to_a_source_without_make_lock_fails(repo: Path) -> None:
    (repo / DEV_SOURCE).write_text((repo / DEV_SOURCE).read_text() + "pytest-randomly==3.16.0\n")
    assert check_locks(repo) == [
        f"{DEV_LOCK}: pytest-randomly: pinned in {DEV_SOURCE}, missing from the lock: run 'make lock'"
    ]


def test_a_package_removed_from_a_source_leaves_its_tree_in_the_lock_and_fails(repo: Path) -> None:
    _edit(repo / RUNTIME_SOURCE, "requests==2.34.2", "")
    problems = check_locks(repo)
    left_over = {p.split(": ")[1] for p in problems if p.startswith(RUNTIME_LOCK) and "nothing in" in p}
    assert {"requests", "charset-normalizer", "idna", "certifi"} <= left_over
    assert "urllib3" not in left_over, "botocore still needs urllib3"


def test_an_entry_without_hash_fails(repo: Path) -> None:
    text = (repo / RUNTIME_LOCK).read_text()
    block = text[text.index("orjson==") :]
    block = block[: block.index("# via")]
    (repo / RUNTIME_LOCK).write_text(text.replace(block, "orjson==3.13.0\n    "))
    assert check_locks(repo) == [f"{RUNTIME_LOCK}: orjson: no --hash in the lock: run 'make lock'"]


def test_a_lambda_runtime_the_lock_was_not_compiled_for_fails(repo: Path) -> None:
    python_version, platform = lambda_target()
    assert python_version == "3.14" and platform.startswith("aarch64-manylinux")
    problems = check_locks(repo, target=("3.15", platform))
    assert problems == [
        f"{RUNTIME_LOCK}: not compiled for CPython 3.15 on {platform} (the Lambda runtime): run 'make lock'"
    ]


def test_the_bootstrap_lock_is_the_dev_locks_uv_entry(repo: Path) -> None:
    """make install installs uv from requirements-uv.txt, then the dev lock with that uv: a uv pinned or hashed
    differently there than in the dev lock fails."""
    (entry,) = parse_lock((repo / BOOTSTRAP_LOCK).read_text())
    assert entry in parse_lock((repo / DEV_LOCK).read_text()) and entry.name == "uv" and len(entry.hashes) > 1
    _edit(repo / BOOTSTRAP_LOCK, entry.hashes[0], "sha256:" + "0" * 64)
    assert check_locks(repo) == [f"{BOOTSTRAP_LOCK}: not the entry of {DEV_LOCK} for uv: run 'make lock'"]
    (repo / BOOTSTRAP_LOCK).unlink()
    assert check_locks(repo) == [f"{BOOTSTRAP_LOCK}: not the entry of {DEV_LOCK} for uv: run 'make lock'"]


def test_the_lambda_lock_has_no_marker_and_the_dev_lock_ships_its_versions() -> None:
    runtime = parse_lock((REPO_ROOT / RUNTIME_LOCK).read_text())
    assert [entry.name for entry in runtime if entry.marker] == []
    assert {"pydantic-core", "aws-xray-sdk", "urllib3", "wrapt", "typing-extensions"} <= {e.name for e in runtime}
    dev = {(entry.name, entry.version) for entry in parse_lock((REPO_ROOT / DEV_LOCK).read_text())}
    assert {(entry.name, entry.version) for entry in runtime} <= dev


def test_the_bundler_installs_every_hashed_lock_entry_but_what_the_runtime_provides() -> None:
    lines = runtime_requirements(REPO_ROOT / RUNTIME_LOCK)
    names = {line.split("==")[0] for line in lines}
    assert {"aws-lambda-powertools", "pydantic", "pydantic-core", "requests", "orjson", "wrapt"} <= names
    assert not names & PROVIDED_BY_RUNTIME
    assert all(" --hash=sha256:" in line for line in lines)
