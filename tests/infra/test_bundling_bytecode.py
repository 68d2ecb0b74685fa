"""Lambda assets ship precompiled, unchecked-hash bytecode of the runtime's Python version, or warn once without it.

Offline and fast: a tiny fake repo, a fake ``pip install`` (one small package) and, as the "runtime", the Python
running the tests, so its interpreter is the one that compiles.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aws_cdk import App, AssetStaging, Stack

from infra import bundling
from infra.bundling import BYTECODE_PYTHON_ENV, SHARED_CODE, BundlingError, LambdaAssetBuilder

CURRENT_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
CACHE_TAG = sys.implementation.cache_tag  # e.g. cpython-311
UNKNOWN_VERSION = "3.99"  # no interpreter of this version exists anywhere
HASH_BASED_UNCHECKED = 0b01  # PEP 552 flags: bit 0 hash-based, bit 1 check_source

FAKE_REPO = {
    "requirements.txt": "fakedep==1.0\nboto3==1.0  # provided by the runtime\n",
    "functions/__init__.py": "",
    **{name: "" for name in SHARED_CODE if name.endswith(".py")},  # the shared modules every asset holds
    "functions/names.py": 'QUEUE = "ingest"\n',
    "functions/pipeline/__init__.py": "",
    "functions/pipeline/greeting.py": 'WORDS = ("compiled", "code")\n',
    "functions/adapters/__init__.py": "",
    "functions/enricher/__init__.py": "",
    "functions/enricher/handler.py": (
        "import fakedep\nfrom functions.pipeline.greeting import WORDS\n\n\n"
        "def handler(event, context):\n    return ' '.join((*WORDS, fakedep.NAME))\n"
    ),
    "functions/deliverer/__init__.py": "",
    "functions/deliverer/handler.py": "def handler(event, context):\n    return None\n",
}

BuilderFactory = Callable[[str], LambdaAssetBuilder]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


@pytest.fixture
def fake_dependencies(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What the (fake, offline) pip install writes into the dependency folder; a test may add files first."""
    files = {"fakedep/__init__.py": 'NAME = "fakedep"\n', "fakedep-1.0.dist-info/METADATA": "Name: fakedep\n"}

    def pip_install(_builder: LambdaAssetBuilder, requirements: list[str], target: Path) -> None:
        assert requirements == ["fakedep==1.0"]
        _write(target, files)

    monkeypatch.setattr(LambdaAssetBuilder, "_pip_install", pip_install)
    return files


@pytest.fixture
def builder_for(tmp_path: Path, fake_dependencies: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> BuilderFactory:
    """Builders over the fake repo, for a runtime Python version; no LAMBDA_BYTECODE_PYTHON, nothing warned yet."""
    monkeypatch.delenv(BYTECODE_PYTHON_ENV, raising=False)
    monkeypatch.setattr(bundling, "_warned_without_bytecode", set())
    repo = tmp_path / "repo"
    _write(repo, FAKE_REPO)

    def builder(python_version: str) -> LambdaAssetBuilder:
        return LambdaAssetBuilder(python_version, repo_root=repo, build_root=tmp_path / "build")

    return builder


def _pycs(root: Path) -> list[Path]:
    return sorted(root.rglob("*.pyc"))


def _flags(pyc: Path) -> int:
    return int.from_bytes(pyc.read_bytes()[4:8], "little")


def test_asset_holds_bytecode_of_the_runtime_version_for_our_code_and_the_dependencies(
    builder_for: BuilderFactory,
) -> None:
    # Given an interpreter of the runtime's version (the one running the tests)
    builder = builder_for(CURRENT_VERSION)

    # When the enricher's asset is built
    asset = builder.asset_dir("enricher")

    # Then every module has its pyc, named for that version, next to its source
    for module in ("functions/enricher/handler", "functions/pipeline/greeting", "functions/names", "fakedep/__init__"):
        source = asset / f"{module}.py"
        assert source.is_file()
        assert (source.parent / "__pycache__" / f"{source.stem}.{CACHE_TAG}.pyc").is_file(), module
    assert len(_pycs(asset)) == len(list(asset.rglob("*.py")))


def test_pycs_are_unchecked_hash_so_lambda_uses_them_without_the_source_mtimes(builder_for: BuilderFactory) -> None:
    # Given a built asset
    asset = builder_for(CURRENT_VERSION).asset_dir("enricher")

    # When the PEP 552 header of its pycs is read
    flags = {pyc.relative_to(asset).as_posix(): _flags(pyc) for pyc in _pycs(asset)}

    # Then each is hash-based with the source check off
    assert flags
    assert set(flags.values()) == {HASH_BASED_UNCHECKED}, flags


def test_python_imports_the_asset_from_its_pycs_without_compiling_the_sources(
    builder_for: BuilderFactory, tmp_path: Path
) -> None:
    # Given a copy of the asset whose sources now fail when run (the pycs still hold the original code)
    asset = builder_for(CURRENT_VERSION).asset_dir("enricher")
    task = tmp_path / "task"
    shutil.copytree(asset, task)
    for source in ("functions/enricher/handler.py", "functions/pipeline/greeting.py", "fakedep/__init__.py"):
        (task / source).unlink()  # a new file: the asset's (hard-linked) one stays as it is
        (task / source).write_text("raise SystemExit('the source was compiled, not the pyc')\n", encoding="utf-8")

    # When the handler is imported from it, like Lambda does (read-only: no bytecode written)
    result = subprocess.run(
        [sys.executable, "-c", "from functions.enricher.handler import handler; print(handler({}, None))"],
        cwd=task,
        env={**os.environ, "PYTHONPATH": str(task), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )

    # Then the original code ran, from the pycs
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "compiled code fakedep"


def test_the_same_code_compiles_to_the_same_bytes_in_any_build_folder(
    builder_for: BuilderFactory, tmp_path: Path
) -> None:
    # Given the same asset built in two build folders (a pyc records the path it was compiled from)
    first = builder_for(CURRENT_VERSION).asset_dir("enricher")
    other = LambdaAssetBuilder(CURRENT_VERSION, repo_root=tmp_path / "repo", build_root=tmp_path / "other-build")
    second = other.asset_dir("enricher")

    # When their pycs are compared
    def contents(asset: Path) -> dict[str, bytes]:
        return {pyc.relative_to(asset).as_posix(): pyc.read_bytes() for pyc in _pycs(asset)}

    # Then they are identical (so the CDK asset hash does not change), recording the Lambda paths
    assert first != second
    assert contents(first) == contents(second)
    handler_pyc = first / "functions" / "enricher" / "__pycache__" / f"handler.{CACHE_TAG}.pyc"
    assert b"/var/task/functions/enricher/handler.py" in handler_pyc.read_bytes()


def test_the_shared_dependency_cache_stays_source_only(builder_for: BuilderFactory) -> None:
    # Given the dependency cache the assets hard-link from
    builder = builder_for(CURRENT_VERSION)
    dependencies = builder.dependencies_dir()
    cached_source = dependencies / "fakedep" / "__init__.py"

    # When both assets are built and compiled
    assets = [builder.asset_dir("enricher"), builder.asset_dir("deliverer")]

    # Then the cache got no bytecode and its sources are unchanged, though the assets share them
    assert not list(dependencies.rglob("__pycache__")) and not _pycs(dependencies)
    assert cached_source.read_text(encoding="utf-8") == 'NAME = "fakedep"\n'
    for asset in assets:
        assert (asset / "fakedep" / "__init__.py").samefile(cached_source)
        assert (asset / "fakedep" / "__pycache__" / f"__init__.{CACHE_TAG}.pyc").is_file()


def test_without_an_interpreter_of_the_runtime_version_assets_ship_sources_and_one_warning(
    builder_for: BuilderFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no Python of the runtime's version on this machine
    builder = builder_for(UNKNOWN_VERSION)

    # When a synth builds both assets (and another builder of the same process builds one again)
    assets = [builder.asset_dir("enricher"), builder.asset_dir("deliverer")]
    builder_for(UNKNOWN_VERSION).asset_dir("enricher")

    # Then the assets hold sources only, and one line said so and how to fix it
    for asset in assets:
        assert (asset / "functions" / "pipeline" / "greeting.py").is_file()
        assert not _pycs(asset)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "without bytecode" in line]
    assert len(warnings) == 1
    assert f"python{UNKNOWN_VERSION}" in warnings[0] and BYTECODE_PYTHON_ENV in warnings[0]


def test_compiled_and_uncompiled_assets_never_share_a_folder(
    builder_for: BuilderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the same code built once with and once without an interpreter of the runtime's version
    compiled = builder_for(CURRENT_VERSION).asset_dir("enricher")
    monkeypatch.setattr(bundling, "find_bytecode_compiler", lambda _version: None)
    sources_only = builder_for(CURRENT_VERSION).asset_dir("enricher")

    # Then they are two folders, each as built
    assert compiled != sources_only
    assert _pycs(compiled) and not _pycs(sources_only)


def test_lambda_bytecode_python_of_the_runtime_version_compiles(
    builder_for: BuilderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given LAMBDA_BYTECODE_PYTHON pointing at an interpreter of the runtime's version
    monkeypatch.setenv(BYTECODE_PYTHON_ENV, sys.executable)

    # When the builder looks for its compiler
    compiler = builder_for(CURRENT_VERSION).bytecode_compiler()

    # Then it is that interpreter
    assert compiler is not None
    assert (compiler.executable, compiler.version, compiler.cache_tag) == (sys.executable, CURRENT_VERSION, CACHE_TAG)


def test_lambda_bytecode_python_of_another_version_fails_the_build_naming_both_versions(
    builder_for: BuilderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given LAMBDA_BYTECODE_PYTHON pointing at an interpreter that is not the runtime's version
    monkeypatch.setenv(BYTECODE_PYTHON_ENV, sys.executable)
    builder = builder_for(UNKNOWN_VERSION)

    # When an asset is built, then the build stops and says why
    with pytest.raises(BundlingError, match=BYTECODE_PYTHON_ENV) as raised:
        builder.asset_dir("enricher")
    assert f"cpython {CURRENT_VERSION}" in str(raised.value) and f"CPython {UNKNOWN_VERSION}" in str(raised.value)


def test_lambda_bytecode_python_that_cannot_run_fails_the_build(
    builder_for: BuilderFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given LAMBDA_BYTECODE_PYTHON pointing at nothing
    monkeypatch.setenv(BYTECODE_PYTHON_ENV, str(tmp_path / "no-such-python"))

    # When an asset is built, then the build stops and says why
    with pytest.raises(BundlingError, match="cannot run it"):
        builder_for(CURRENT_VERSION).asset_dir("enricher")


def test_a_module_that_does_not_compile_fails_the_build_naming_it(
    builder_for: BuilderFactory, fake_dependencies: dict[str, str]
) -> None:
    # Given a dependency with a file that is not valid Python (real wheels have none: checked on the pinned ones)
    fake_dependencies["fakedep/broken.py"] = "def broken(:\n"
    builder = builder_for(CURRENT_VERSION)

    # When its asset is built, then the build stops, naming the file; no half-compiled asset is left
    with pytest.raises(BundlingError, match=r"fakedep/broken\.py"):
        builder.asset_dir("enricher")
    assert not list((builder.build_root / "assets").iterdir())


def test_cdk_stages_the_pycs_with_the_asset(builder_for: BuilderFactory, tmp_path: Path) -> None:
    # Given a compiled asset
    asset = builder_for(CURRENT_VERSION).asset_dir("enricher")

    # When CDK stages it as a Lambda asset (what `cdk synth` zips and uploads)
    stack = Stack(App(outdir=str(tmp_path / "cdk.out")), "Stack")
    staged = Path(AssetStaging(stack, "Asset", source_path=str(asset)).absolute_staged_path)

    # Then the pycs are part of it
    assert staged != asset
    assert [p.relative_to(staged) for p in _pycs(staged)] == [p.relative_to(asset) for p in _pycs(asset)]
