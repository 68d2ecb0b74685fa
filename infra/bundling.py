"""Lambda assets built without Docker: the ``functions`` package plus its runtime dependencies for linux/arm64.

``cdk synth`` must work on a machine with no Docker engine, so nothing here uses CDK's container bundling. Instead:

1. ``requirements.txt``, the hashed lock of every runtime dependency compiled for the Lambda platform
   (infra/lock.py), minus what the Lambda Python runtime already provides (boto3, botocore, s3transfer), is
   installed with ``pip install --require-hashes --no-deps --platform manylinux... --only-binary=:all: --target``
   for the Lambda runtime's Python version and architecture: exactly the locked files, nothing resolved anew.
   The result is cached under ``.build/deps-<hash>``, the hash covering the locked requirements, the Python
   version and the platforms, so a synth only runs pip when one of those changed.
2. Per function, an asset folder is assembled from those dependencies (hard links, so it is cheap) and the
   function's code: the shared modules (``SHARED_CODE``: ``functions/__init__.py``, ``batch.py``, ``coldstart.py``,
   ``envconfig.py``, ``messages.py``, ``names.py`` (the names shared with the stack), ``ports.py``, ``version.py``,
   ``pipeline/``, ``adapters/``) and the function's own folder; nothing of ``infra/`` (Lambda code never imports
   it). The API key authorizer uses the standard library only: its asset is ``functions/__init__.py``,
   ``envconfig.py`` and its folder, no dependencies. It lives in ``.build/assets/<function>-<hash>`` where the
   hash also covers the code, so unchanged code is never copied twice and the CDK asset hash only changes when the
   content does.
3. The asset folder is precompiled to bytecode (``python -m compileall --invalidation-mode unchecked-hash``) by an
   interpreter of the runtime's Python version: ``$LAMBDA_BYTECODE_PYTHON``, else ``python3.14`` on the PATH, else
   the interpreter running the synth if its version matches. Why: ``/var/task`` is read-only on Lambda, so Python
   cannot cache the bytecode it compiles there; without ``.pyc`` files every cold start compiles every module of
   pydantic, Powertools, requests... again (0.26-0.45 s more for the enricher, measured: docs/deploy.md).
   Unchecked-hash pycs are used as they are: the default timestamp pycs would be checked against the sources'
   mtimes, which the asset zip does not keep. The pycs record
   ``/var/task/...`` as their file names, not the temporary build folder's, so an interpreter compiles the same
   code to the same bytes anywhere and the CDK asset hash stays stable. The ``.py`` files stay (hard links to the
   shared dependency cache are safe: compileall only writes new files, into new ``__pycache__`` folders of the asset),
   and the dependency cache itself stays source-only. With no such interpreter the asset ships sources only and the
   synth prints one warning. The asset hash covers the bytecode version (or its absence).

Nothing from ``requirements-dev.txt`` (pytest, moto, CDK...) can end up in an asset: only ``requirements.txt`` is
installed. Both folders are built under a temporary name and renamed into place, so concurrent synths are safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from infra.lock import LockError, normalized, parse_lock

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_PACKAGE = "functions"
# Code every function needs besides its own folder ``functions/<name>`` (see docs/DESIGN.md), relative to the repo
# root. ``functions/names.py`` holds the names the stack was built with, so the deployed code reads the same ones.
SHARED_CODE = (
    "functions/__init__.py",
    "functions/batch.py",
    "functions/coldstart.py",
    "functions/envconfig.py",
    "functions/messages.py",
    "functions/names.py",
    "functions/ports.py",
    "functions/version.py",
    "functions/pipeline",
    "functions/adapters",
)
# Functions that need only the standard library: their asset is this code plus their own folder, no dependencies
# (a smaller asset and a cold start of a few milliseconds of imports).
STDLIB_ONLY_CODE = {"authorizer": ("functions/__init__.py", "functions/envconfig.py")}
# pip platform tags for Lambda on arm64 (Graviton): glibc 2.17+ wheels and the newer 2.28 ones.
ARM64_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# Provided by the Lambda Python runtime; bundling them would only add ~25 MB. Distribution names, normalized.
PROVIDED_BY_RUNTIME = frozenset({"boto3", "botocore", "s3transfer"})
# Bump when the way folders are built changes, so old caches are not reused.
_LAYOUT_VERSION = "1"
_IGNORED_NAMES = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store")
# The interpreter that precompiles the assets (its major.minor must be the runtime's); see step 3 above.
BYTECODE_PYTHON_ENV = "LAMBDA_BYTECODE_PYTHON"
# Where Lambda unpacks the code: the file names the pycs record, so tracebacks show the deployed paths.
LAMBDA_TASK_ROOT = "/var/task"
# Superseded asset folders of a function are deleted once they are this old (a concurrent synth may still use a
# recent one).
STALE_ASSET_AGE_S = 3600


class BundlingError(RuntimeError):
    """Building a Lambda asset failed (e.g. pip could not find a wheel for the target platform)."""


_PROBE = (
    "import importlib.util, json, sys; print(json.dumps({'implementation': sys.implementation.name, "
    "'version': '%d.%d' % sys.version_info[:2], 'cache_tag': sys.implementation.cache_tag, "
    "'magic': importlib.util.MAGIC_NUMBER.hex()}))"
)
# Python versions for which this process already warned that the assets ship without bytecode.
_warned_without_bytecode: set[str] = set()


@dataclass(frozen=True)
class BytecodeCompiler:
    """An interpreter that writes the bytecode the Lambda runtime loads (same implementation and major.minor)."""

    executable: str
    implementation: str  # ``cpython``
    version: str  # ``3.14``
    cache_tag: str  # ``cpython-314``: the pycs it writes are ``__pycache__/<module>.cpython-314.pyc``
    magic: str  # the bytecode format (hex): fixed for a final x.y release, it may differ in its pre-releases

    @classmethod
    def probe(cls, executable: str) -> BytecodeCompiler | None:
        """What ``executable`` is, or None when it cannot be run (e.g. a pyenv shim of a version not selected)."""
        try:
            result = subprocess.run(  # noqa: S603
                [executable, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
            )
            if result.returncode != 0:
                return None
            return cls(executable=executable, **json.loads(result.stdout))
        except (OSError, subprocess.TimeoutExpired, ValueError, TypeError):
            return None

    def can_compile_for(self, python_version: str) -> bool:
        return self.implementation == "cpython" and self.version == python_version

    def compile_tree(self, root: Path) -> None:
        """Write unchecked-hash pycs for every ``.py`` under ``root``, recording ``/var/task/...`` as file names."""
        command = [
            self.executable, "-I", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
            "-s", str(root), "-p", LAMBDA_TASK_ROOT, str(root),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            output = (result.stdout + result.stderr).replace(f"{root}{os.sep}", "")  # paths inside the asset
            raise BundlingError(f"{self.executable} -m compileall failed on the Lambda asset:\n{output[-4000:]}")


def find_bytecode_compiler(python_version: str) -> BytecodeCompiler | None:
    """The interpreter that precompiles the assets for the runtime's ``python_version`` (e.g. ``3.14``), if any.

    ``$LAMBDA_BYTECODE_PYTHON`` when set (an error if it is not that version), else ``python<version>`` on the
    PATH, else the interpreter running this code if its version matches, else None.
    """
    configured = os.environ.get(BYTECODE_PYTHON_ENV)
    if configured:
        compiler = BytecodeCompiler.probe(configured)
        if compiler is None:
            raise BundlingError(f"{BYTECODE_PYTHON_ENV}={configured}: cannot run it as a Python interpreter")
        if not compiler.can_compile_for(python_version):
            raise BundlingError(
                f"{BYTECODE_PYTHON_ENV}={configured} is {compiler.implementation} {compiler.version}, but the Lambda "
                f"runtime is CPython {python_version}: its bytecode would never be loaded. Point it at a CPython "
                f"{python_version} interpreter, or unset it to ship the assets without bytecode."
            )
        return compiler
    for candidate in (shutil.which(f"python{python_version}"), sys.executable):
        compiler = BytecodeCompiler.probe(candidate) if candidate else None
        if compiler is not None and compiler.can_compile_for(python_version):
            return compiler
    return None


def _warn_without_bytecode(python_version: str) -> None:
    """Say once per process that the assets ship sources only (a slower cold start, not an error)."""
    if python_version in _warned_without_bytecode:
        return
    _warned_without_bytecode.add(python_version)
    print(
        f"note: no python{python_version} found: the Lambda assets ship without bytecode, so each cold start "
        f"compiles every module it imports (0.26-0.45 s more for the enricher, measured: docs/deploy.md#bytecode). "
        f"Install Python {python_version} or set {BYTECODE_PYTHON_ENV} to precompile.",
        file=sys.stderr,
    )


def runtime_requirements(lock: Path) -> list[str]:
    """The entries of the runtime lock to bundle, each ``name==version --hash=...``: every one but what the Lambda
    runtime provides. The lock holds the whole dependency tree (infra/lock.py), so pip installs exactly these with
    ``--no-deps --require-hashes``.
    """
    try:
        entries = parse_lock(lock.read_text(encoding="utf-8"))
    except LockError as error:
        raise BundlingError(f"{lock.name}: {error}") from None
    kept = []
    for entry in entries:
        if entry.marker:
            raise BundlingError(f"{lock.name}: {entry.name} has a marker; compile the lock for Lambda: make lock")
        if entry.name not in PROVIDED_BY_RUNTIME:
            kept.append(" ".join((f"{entry.name}=={entry.version}", *(f"--hash={h}" for h in entry.hashes))))
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

    The assets are precompiled when an interpreter of ``python_version`` is found (see ``find_bytecode_compiler``).

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
        self._compiler: BytecodeCompiler | None = None
        self._compiler_found = False

    def bytecode_compiler(self) -> BytecodeCompiler | None:
        """The interpreter precompiling this builder's assets (looked up once), or None: sources only."""
        if not self._compiler_found:
            self._compiler = find_bytecode_compiler(self.python_version)
            self._compiler_found = True
            if self._compiler is None:
                _warn_without_bytecode(self.python_version)
        return self._compiler

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
            "--require-hashes", "--no-deps", *platform_args,
            "--implementation", "cp", "--python-version", self.python_version,
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
            if normalized(name) in PROVIDED_BY_RUNTIME or path.name in ("bin", "__pycache__"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def _code_paths(self, function: str) -> list[Path]:
        shared = STDLIB_ONLY_CODE.get(function, SHARED_CODE)
        paths = [self.repo_root / name for name in (*shared, f"{FUNCTIONS_PACKAGE}/{function}")]
        for path in paths:
            if not path.exists():
                raise BundlingError(f"missing Lambda code: {path.relative_to(self.repo_root)}")
        return paths

    def asset_dir(self, function: str) -> Path:
        """The folder to deploy for ``function`` (``enricher`` / ``deliverer`` / ``authorizer``): dependencies + code.

        A function of :data:`STDLIB_ONLY_CODE` gets no dependencies, only its code.
        """
        dependencies = None if function in STDLIB_ONLY_CODE else self.dependencies_dir()
        code_paths = self._code_paths(function)
        compiler = self.bytecode_compiler()
        bytecode = f"{compiler.cache_tag}:{compiler.magic}" if compiler else "none"
        parts = [(dependencies.name if dependencies else "stdlib-only").encode(), f"bytecode:{bytecode}".encode()]
        for path in code_paths:
            for file in _files(path):
                parts += [str(file.relative_to(self.repo_root)).encode(), file.read_bytes()]
        final = self.build_root / "assets" / f"{function}-{_digest(*parts)}"
        if final.is_dir():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f".{function}-", dir=final.parent))
        try:
            if dependencies is not None:
                shutil.copytree(dependencies, build, dirs_exist_ok=True, copy_function=_link_or_copy)
            for path in code_paths:
                destination = build / path.relative_to(self.repo_root)
                if path.is_dir():
                    shutil.copytree(path, destination, ignore=shutil.ignore_patterns(*_IGNORED_NAMES))
                else:
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, destination)
            if compiler is not None:
                compiler.compile_tree(build)
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
