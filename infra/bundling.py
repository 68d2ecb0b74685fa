"""Lambda assets built without Docker: the ``functions`` package plus its runtime dependencies for linux/arm64.

``cdk synth`` must work on a machine with no Docker engine, so nothing here uses CDK's container bundling. Instead:

1. ``requirements.txt`` (minus what the Lambda Python runtime already provides: boto3, botocore, s3transfer) is
   installed with ``pip install --platform manylinux... --only-binary=:all: --target`` for the Lambda runtime's
   Python version and architecture. The result is cached under ``.build/deps-<hash>``, the hash covering the
   requirements, the Python version and the platforms, so a synth only runs pip when one of those changed.
2. Per function, an asset folder is assembled from those dependencies (hard links, so it is cheap) and the
   function's code: ``functions/__init__.py``, ``functions/pipeline/``, ``functions/adapters/``, the function's
   own folder, and ``infra/resources.py`` (the names the adapters import). It lives in
   ``.build/assets/<function>-<hash>`` where the hash also covers the code, so unchanged code is never copied
   twice and the CDK asset hash only changes when the content does.

Nothing from ``requirements-dev.txt`` (pytest, moto, CDK...) can end up in an asset: only ``requirements.txt`` is
installed. Both folders are built under a temporary name and renamed into place, so concurrent synths are safe.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_PACKAGE = "functions"
# Code every function needs besides its own folder ``functions/<name>`` (see docs/DESIGN.md), relative to the repo
# root. The adapters import the attribute and table names from ``infra/resources.py`` (plain Python, no CDK), so
# that module ships too: the deployed code reads the same names the stack was built with.
SHARED_CODE = (
    "functions/__init__.py",
    "functions/pipeline",
    "functions/adapters",
    "infra/__init__.py",
    "infra/resources.py",
)
# pip platform tags for Lambda on arm64 (Graviton): glibc 2.17+ wheels and the newer 2.28 ones.
ARM64_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# Provided by the Lambda Python runtime; bundling them would only add ~25 MB. Distribution names, normalized.
PROVIDED_BY_RUNTIME = frozenset({"boto3", "botocore", "s3transfer"})
# Bump when the way folders are built changes, so old caches are not reused.
_LAYOUT_VERSION = "1"
_IGNORED_NAMES = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store")
# Superseded asset folders of a function are deleted once they are this old (a concurrent synth may still use a
# recent one).
STALE_ASSET_AGE_S = 3600


class BundlingError(RuntimeError):
    """Building a Lambda asset failed (e.g. pip could not find a wheel for the target platform)."""


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _requirement_name(line: str) -> str | None:
    """The distribution name of a requirements line, or None for blank lines and comments."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", text)
    if match is None or text.startswith("-"):
        raise BundlingError(f"unsupported requirements line (only pinned names are bundled): {line!r}")
    return _normalized(match.group(0))


def runtime_requirements(requirements: Path) -> list[str]:
    """The lines of ``requirements`` to bundle: everything except what the Lambda runtime provides."""
    kept = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        name = _requirement_name(line)
        if name is not None and name not in PROVIDED_BY_RUNTIME:
            kept.append(line.split("#", 1)[0].strip())
    return kept


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:16]


def _files(root: Path) -> Iterator[Path]:
    """Files under ``root`` (or ``root`` itself), sorted, without caches."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            yield path


def _publish(build: Path, final: Path) -> None:
    """Move a finished build folder into place; if another process won the race, keep theirs."""
    try:
        build.rename(final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(build, ignore_errors=True)


class LambdaAssetBuilder:
    """Builds (and caches) the asset folder of each Lambda function for one Python version on arm64.

    Example:
        >>> builder = LambdaAssetBuilder(python_version="3.14")
        >>> builder.asset_dir("enricher")  # doctest: +SKIP
        PosixPath('.../.build/assets/enricher-1f0c...')
    """

    def __init__(
        self,
        python_version: str,
        *,
        repo_root: Path = REPO_ROOT,
        build_root: Path | None = None,
        platforms: tuple[str, ...] = ARM64_PLATFORMS,
    ) -> None:
        self.python_version = python_version
        self.repo_root = repo_root
        self.build_root = build_root or repo_root / ".build"
        self.platforms = platforms
        self.requirements = repo_root / "requirements.txt"
        self._dependencies: Path | None = None

    def dependencies_dir(self) -> Path:
        """The installed runtime dependencies, built by pip on first use and cached by content hash."""
        if self._dependencies is not None:
            return self._dependencies
        requirements = runtime_requirements(self.requirements)
        key = _digest(
            _LAYOUT_VERSION.encode(),
            "\n".join(requirements).encode(),
            self.python_version.encode(),
            " ".join(self.platforms).encode(),
        )
        final = self.build_root / f"deps-{key}"
        if not final.is_dir():
            self.build_root.mkdir(parents=True, exist_ok=True)
            build = Path(tempfile.mkdtemp(prefix=f".deps-{key}-", dir=self.build_root))
            try:
                self._pip_install(requirements, build)
                _publish(build, final)
            finally:
                shutil.rmtree(build, ignore_errors=True)
        self._dependencies = final
        return final

    def _pip_install(self, requirements: list[str], target: Path) -> None:
        requirements_file = target.parent / f"{target.name}.requirements.txt"
        requirements_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        platform_args = [arg for platform in self.platforms for arg in ("--platform", platform)]
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            *platform_args, "--implementation", "cp", "--python-version", self.python_version,
            "--only-binary=:all:", "--target", str(target), "-r", str(requirements_file),
        ]  # fmt: skip
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        finally:
            requirements_file.unlink(missing_ok=True)
        if result.returncode != 0:
            raise BundlingError(f"pip could not build the Lambda dependencies:\n{result.stderr[-4000:]}")
        self._remove_provided_by_runtime(target)

    @staticmethod
    def _remove_provided_by_runtime(target: Path) -> None:
        """Drop what pip pulled in transitively but the runtime provides (aws-xray-sdk depends on botocore)."""
        for path in list(target.iterdir()):
            name = path.name.split("-", 1)[0] if path.name.endswith(".dist-info") else path.name
            if _normalized(name) in PROVIDED_BY_RUNTIME or path.name in ("bin", "__pycache__"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def _code_paths(self, function: str) -> list[Path]:
        paths = [self.repo_root / name for name in (*SHARED_CODE, f"{FUNCTIONS_PACKAGE}/{function}")]
        for path in paths:
            if not path.exists():
                raise BundlingError(f"missing Lambda code: {path.relative_to(self.repo_root)}")
        return paths

    def asset_dir(self, function: str) -> Path:
        """The folder to deploy for ``function`` (``enricher`` / ``deliverer``): dependencies + code."""
        dependencies = self.dependencies_dir()
        code_paths = self._code_paths(function)
        parts = [dependencies.name.encode()]
        for path in code_paths:
            for file in _files(path):
                parts += [str(file.relative_to(self.repo_root)).encode(), file.read_bytes()]
        final = self.build_root / "assets" / f"{function}-{_digest(*parts)}"
        if final.is_dir():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f".{function}-", dir=final.parent))
        try:
            shutil.copytree(dependencies, build, dirs_exist_ok=True, copy_function=_link_or_copy)
            for path in code_paths:
                destination = build / path.relative_to(self.repo_root)
                if path.is_dir():
                    shutil.copytree(path, destination, ignore=shutil.ignore_patterns(*_IGNORED_NAMES))
                else:
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, destination)
            _publish(build, final)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        self._remove_stale_assets(function, keep=final)
        return final

    @staticmethod
    def _remove_stale_assets(function: str, keep: Path) -> None:
        """Delete this function's older asset folders (code edits leave one behind per synth)."""
        cutoff = time.time() - STALE_ASSET_AGE_S
        for folder in keep.parent.glob(f"{function}-*"):
            try:
                if folder != keep and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                continue  # removed by a concurrent synth


def _link_or_copy(source: str, destination: str) -> None:
    """Hard-link a cached dependency file into an asset folder; copy when linking is not possible."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
