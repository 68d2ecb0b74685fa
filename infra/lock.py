"""The hashed dependency locks: ``requirements.txt`` (what each Lambda ships) and ``requirements-dev.txt``.

Each lock is compiled by uv (``uv pip compile --generate-hashes``) from its source, the short list of direct,
pinned dependencies with the reason for each: ``requirements.in`` and ``requirements-dev.in``. ``make lock`` runs
:func:`compile_locks`; ``python -m infra.lock --check`` (and ``tests/infra/test_locks.py``) runs :func:`check_locks`.

- ``requirements.txt`` is resolved for the Lambda platform, not this machine's: CPython of the stack's runtime
  (``LAMBDA_RUNTIME``) on linux arm64 (:data:`LAMBDA_UV_PLATFORM`), so no environment marker is left in it that
  pip, installing with ``--platform``/``--target``, would evaluate against the build machine instead. Its header
  names that target, so a runtime bump without a new lock is caught. infra/bundling.py installs it with
  ``--require-hashes``.
- ``requirements-dev.txt`` is universal (any OS, CPython >= 3.11, markers kept) and takes the runtime packages at
  exactly the Lambda lock's versions (``-c requirements.txt`` in its source): the tests run the code that ships.

Upgrading one package: change its pin in the ``.in`` file and run ``make lock``; for a package pulled in by
another, ``make lock ARGS="--upgrade-package urllib3"``. uv keeps every other pin as it is.

Example:
    >>> [(e.name, e.version, e.via) for e in parse_lock('''a==1.0 \\\\
    ...     --hash=sha256:00
    ...     # via -r requirements.in
    ... b==2.0 ; python_full_version < '3.12' \\\\
    ...     --hash=sha256:11
    ...     # via
    ...     #   -c requirements.txt
    ...     #   a
    ... ''')]
    [('a', '1.0', ('-r requirements.in',)), ('b', '2.0', ('-c requirements.txt', 'a'))]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNTIME_SOURCE, RUNTIME_LOCK = "requirements.in", "requirements.txt"
DEV_SOURCE, DEV_LOCK = "requirements-dev.in", "requirements-dev.txt"
# uv alone, as the dev lock pins and hashes it: ``make install`` installs it with pip, then the dev lock with uv.
BOOTSTRAP_LOCK, BOOTSTRAP_PACKAGE = "requirements-uv.txt", "uv"
# The Lambda architecture (arm64, infra/constructs/functions.py) as uv names a platform: the newest manylinux tag
# the bundler installs (infra/bundling.py ARM64_PLATFORMS); the Lambda Python runtimes run glibc 2.34.
LAMBDA_UV_PLATFORM = "aarch64-manylinux_2_28"
DEV_PYTHON = "3.11"  # the oldest Python the project supports (pyproject.toml requires-python)
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;\\]+)\s*(;[^\\]*)?")


class LockError(RuntimeError):
    """A lock could not be compiled."""


@dataclass(frozen=True)
class LockEntry:
    """One pinned package of a lock: ``name==version`` (normalized name), its marker, hashes and requirers."""

    name: str
    version: str
    marker: str
    hashes: tuple[str, ...]
    via: tuple[str, ...]


def normalized(name: str) -> str:
    """PEP 503 name: ``Typing_Extensions`` -> ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _blocks(text: str) -> Iterator[list[str]]:
    """The lines of each entry of a lock: a requirement line, its continuation lines and its ``# via`` comment."""
    block: list[str] = []
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            if block:
                yield block
            block = [line]
        elif block:
            block.append(line)
    if block:
        yield block


def parse_lock(text: str) -> list[LockEntry]:
    """The entries of a uv (or pip-compile) lock with hashes and ``# via`` annotations."""
    entries = []
    for block in _blocks(text):
        match = _REQUIREMENT.match(block[0])
        if match is None:
            raise LockError(f"not a pinned requirement: {block[0]!r}")
        hashes = tuple(h for line in block for h in re.findall(r"--hash=(\S+)", line))
        comments = [line.strip().lstrip("#").strip() for line in block[1:] if line.strip().startswith("#")]
        via: list[str] = []
        for comment in comments:
            if comment.startswith("via"):
                comment = comment.removeprefix("via").strip()
            if comment:
                via.append(comment)
        marker = (match.group(4) or "").lstrip(";").strip()
        entries.append(LockEntry(normalized(match.group(1)), match.group(3), marker, hashes, tuple(via)))
    return entries


def parse_source(path: Path) -> dict[str, str]:
    """The pinned direct requirements of a ``.in`` file, name -> version, following its ``-r`` includes."""
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-c"):
            continue
        if line.startswith("-r"):
            pins.update(parse_source(path.parent / line.removeprefix("-r").strip()))
            continue
        match = _REQUIREMENT.match(line)
        if match is None:
            raise LockError(f"{path.name}: pin every direct dependency with ==: {raw!r}")
        pins[normalized(match.group(1))] = match.group(3)
    return pins


def bootstrap_lock(dev_text: str) -> str:
    """The bootstrap lock: the dev lock's own entry for uv (same version, same hashes), so the two cannot drift.

    >>> bootstrap_lock("a==1\\n    --hash=sha256:00\\nuv==0.1\\n    --hash=sha256:11\\n").splitlines()[2:]
    ['uv==0.1', '    --hash=sha256:11']
    """
    for block in _blocks(dev_text):
        match = _REQUIREMENT.match(block[0])
        if match and normalized(match.group(1)) == BOOTSTRAP_PACKAGE:
            header = [
                f"# The dev lock's entry for uv (make lock writes it from {DEV_LOCK}): make install installs uv with",
                f"# pip from here, then {DEV_LOCK} with uv. Both with --require-hashes.",
            ]
            return "\n".join([*header, *block]) + "\n"
    raise LockError(f"{DEV_LOCK}: no {BOOTSTRAP_PACKAGE} entry to bootstrap the install with")


def lambda_target() -> tuple[str, str]:
    """(Python version, uv platform) the runtime lock is resolved for: the stack's Lambda runtime on arm64."""
    from infra.constructs.functions import LAMBDA_RUNTIME, runtime_python_version  # here: it starts jsii

    return runtime_python_version(LAMBDA_RUNTIME), LAMBDA_UV_PLATFORM


def runtime_header(python_version: str, platform: str) -> str:
    """What the runtime lock's header says it was compiled for (uv's ``--custom-compile-command``)."""
    return f"make lock  (requirements.txt: CPython {python_version} on {platform}, the Lambda runtime)"


def _reaches_source(entry: LockEntry, by_name: dict[str, list[LockEntry]], direct: set[str]) -> bool:
    """Whether ``entry`` is required by a source, directly (its name is pinned there: a ``-r`` annotation alone may
    be stale) or through other entries; a constraint (``-c``) requires nothing."""
    seen: set[str] = set()
    pending = [entry]
    while pending:
        current = pending.pop()
        if current.name in direct:
            return True
        for requirer in current.via:
            name = normalized(requirer)
            if not requirer.startswith("-") and name not in seen:
                seen.add(name)
                pending += by_name.get(name, [])
    return False


def check_lock(lock_text: str, source: Path) -> list[str]:
    """What is wrong with a lock compared with its source: pins that differ, packages missing, left over or unhashed.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     source = Path(folder, "requirements.in")
    ...     _ = source.write_text("a==1.1\\n")
    ...     check_lock("a==1.0 \\\\\\n    --hash=sha256:00\\n    # via -r requirements.in\\n", source)
    ["a: the lock has 1.0, requirements.in pins 1.1: run 'make lock'"]
    """
    entries = parse_lock(lock_text)
    by_name: dict[str, list[LockEntry]] = {}
    for entry in entries:
        by_name.setdefault(entry.name, []).append(entry)
    problems = []
    pins = parse_source(source)
    for name, version in pins.items():
        locked = {entry.version for entry in by_name.get(name, [])}
        if not locked:
            problems.append(f"{name}: pinned in {source.name}, missing from the lock: run 'make lock'")
        elif locked != {version}:
            problems.append(
                f"{name}: the lock has {', '.join(sorted(locked))}, {source.name} pins {version}: run 'make lock'"
            )
    for entry in entries:
        if not entry.hashes:
            problems.append(f"{entry.name}: no --hash in the lock: run 'make lock'")
        if not _reaches_source(entry, by_name, set(pins)):
            problems.append(f"{entry.name}: in the lock, but nothing in {source.name} needs it: run 'make lock'")
    return problems


def check_locks(repo: Path = REPO_ROOT, target: tuple[str, str] | None = None) -> list[str]:
    """Every problem of both locks, plus the runtime lock's target and its agreement with the dev lock."""
    python_version, platform = target or lambda_target()
    runtime_text = (repo / RUNTIME_LOCK).read_text(encoding="utf-8")
    dev_text = (repo / DEV_LOCK).read_text(encoding="utf-8")
    problems = [f"{RUNTIME_LOCK}: {p}" for p in check_lock(runtime_text, repo / RUNTIME_SOURCE)]
    problems += [f"{DEV_LOCK}: {p}" for p in check_lock(dev_text, repo / DEV_SOURCE)]
    if runtime_header(python_version, platform) not in runtime_text:
        problems.append(
            f"{RUNTIME_LOCK}: not compiled for CPython {python_version} on {platform} (the Lambda runtime): "
            "run 'make lock'"
        )
    bootstrap = repo / BOOTSTRAP_LOCK
    if not bootstrap.exists() or bootstrap.read_text(encoding="utf-8") != bootstrap_lock(dev_text):
        problems.append(f"{BOOTSTRAP_LOCK}: not the entry of {DEV_LOCK} for {BOOTSTRAP_PACKAGE}: run 'make lock'")
    runtime = parse_lock(runtime_text)
    problems += [
        f"{RUNTIME_LOCK}: {e.name} has the marker {e.marker!r}: the Lambda lock must be marker-free"
        for e in runtime
        if e.marker
    ]
    dev_versions: dict[str, set[str]] = {}
    for entry in parse_lock(dev_text):
        dev_versions.setdefault(entry.name, set()).add(entry.version)
    problems += [
        f"{DEV_LOCK}: {e.name} {', '.join(sorted(dev_versions.get(e.name, {'missing'})))}, but the Lambda ships "
        f"{e.version}: run 'make lock'"
        for e in runtime
        if dev_versions.get(e.name) != {e.version}
    ]
    return problems


def _uv(arguments: Sequence[str], repo: Path) -> None:
    command = [sys.executable, "-m", "uv", "pip", "compile", "--quiet", "--generate-hashes", *arguments]
    environment = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}  # resolve for a version, never fetch a Python
    result = subprocess.run(command, cwd=repo, env=environment, check=False)  # noqa: S603
    if result.returncode != 0:
        raise LockError(f"uv pip compile failed ({result.returncode}): {' '.join(command)}")


def compile_locks(upgrade: Sequence[str] = (), repo: Path = REPO_ROOT) -> None:
    """Recompile both locks from their sources, keeping every pin not named in ``upgrade``, and the bootstrap lock
    from the dev lock."""
    python_version, platform = lambda_target()
    upgrades = [arg for name in upgrade for arg in ("--upgrade-package", name)]
    _uv(
        [
            "--python-version", python_version, "--python-platform", platform,
            "--custom-compile-command", runtime_header(python_version, platform),
            *upgrades, RUNTIME_SOURCE, "-o", RUNTIME_LOCK,
        ],
        repo,
    )  # fmt: skip
    _uv(
        [
            "--universal", "--python-version", DEV_PYTHON, "--custom-compile-command", "make lock",
            *upgrades, DEV_SOURCE, "-o", DEV_LOCK,
        ],
        repo,
    )  # fmt: skip
    dev_text = (repo / DEV_LOCK).read_text(encoding="utf-8")
    (repo / BOOTSTRAP_LOCK).write_text(bootstrap_lock(dev_text), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.lock", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the locks against their sources")
    parser.add_argument("--upgrade-package", action="append", default=[], metavar="NAME", help="re-resolve NAME")
    args = parser.parse_args(argv)
    if not args.check:
        compile_locks(args.upgrade_package)
    problems = check_locks()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
