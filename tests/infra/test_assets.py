"""The Lambda assets: runtime deps built for linux/arm64, the function's code, nothing from the dev requirements."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from infra.bundling import runtime_requirements
from infra.constructs.functions import LAMBDA_RUNTIME, runtime_python_version
from tests.infra.support import REPO_ROOT, Synthesized

DEV_ONLY = ("pytest", "_pytest", "moto", "aws_cdk", "cdk_nag", "jsii", "hypothesis", "mypy", "ruff", "jsonschema")
PROVIDED_BY_RUNTIME = ("boto3", "botocore", "s3transfer")


def _assets(synth: Synthesized) -> dict[str, Path]:
    return {function.node.id: function.asset_path for function in synth.stack.functions.all}


def test_requirements_to_bundle_leave_out_what_the_runtime_provides() -> None:
    names = [line.split("==")[0].split("[")[0].lower() for line in runtime_requirements(REPO_ROOT / "requirements.txt")]
    assert {"aws-lambda-powertools", "pydantic", "requests", "orjson"} <= set(names)
    assert not set(names) & set(PROVIDED_BY_RUNTIME)


@pytest.mark.parametrize("function", ["Enricher", "Deliverer"])
def test_asset_holds_runtime_deps_for_arm64_and_no_dev_packages(default_stack: Synthesized, function: str) -> None:
    asset = _assets(default_stack)[function]
    top_level = {path.name for path in asset.iterdir()}
    for package in ("pydantic", "pydantic_core", "aws_lambda_powertools", "requests", "orjson", "functions"):
        assert package in top_level, f"{package} missing from {asset}"
    version = runtime_python_version(LAMBDA_RUNTIME).replace(".", "")
    native = list((asset / "pydantic_core").glob("_pydantic_core.*.so"))
    assert [path.name for path in native] == [f"_pydantic_core.cpython-{version}-aarch64-linux-gnu.so"]
    for package in (*DEV_ONLY, *PROVIDED_BY_RUNTIME):
        assert package not in top_level, f"{package} must not be bundled"
    # Bytecode is optional (only when a Python of the runtime's version is at hand: infra/bundling.py), but any
    # that ships must be the runtime's, never the build machine's.
    foreign = [p for p in asset.rglob("*.pyc") if f".cpython-{version}." not in p.name]
    assert not foreign, f"byte code for another Python than the runtime's: {foreign[:3]}"


def test_each_asset_holds_the_shared_code_and_only_its_own_handler_folder(default_stack: Synthesized) -> None:
    assets = _assets(default_stack)
    for function, other in (("Enricher", "deliverer"), ("Deliverer", "enricher")):
        package = assets[function] / "functions"
        assert (package / "__init__.py").is_file()
        assert (package / "pipeline").is_dir() and (package / "adapters").is_dir()
        assert (package / function.lower()).is_dir()
        assert not (package / other).exists()
        assert (package / "names.py").is_file(), "the handlers and adapters import functions.names"
        assert not (assets[function] / "infra").exists(), "Lambda code never imports infra/"


def test_asset_size_stays_small(default_stack: Synthesized) -> None:
    for asset in _assets(default_stack).values():
        size = sum(path.stat().st_size for path in asset.rglob("*") if path.is_file())
        assert size < 50 * 1024 * 1024, f"{asset}: {size} bytes unzipped"


def _repo_modules_imported_by(module: str) -> set[str]:
    """Every repo module (``functions.*``, ``infra.*``) that importing ``module`` loads, following the imports
    of each module found (``if TYPE_CHECKING:`` blocks included, which only over-approximates)."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = REPO_ROOT.joinpath(*name.split("."))
        source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        if not source.is_file():
            continue  # a name imported from a module ("from functions.enricher import metrics" is a module)
        seen.add(name)
        parts = name.split(".")
        for index in range(1, len(parts)):  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            pending.append(".".join(parts[:index]))
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            pending += [n for n in names if n.split(".")[0] in ("functions", "infra")]
    return seen


@pytest.mark.parametrize("function", ["Enricher", "Deliverer"])
def test_asset_holds_every_repo_module_its_handler_imports(default_stack: Synthesized, function: str) -> None:
    """A module left out of the asset (infra/bundling.py SHARED_CODE) would fail every cold start in AWS only:
    the tests here import from the repo, where it is always present."""
    asset = _assets(default_stack)[function]
    handler = f"functions.{function.lower()}.handler"
    modules = _repo_modules_imported_by(handler)
    assert {handler, "functions.coldstart", "functions.pipeline.contract", "functions.names"} <= modules
    assert not [name for name in modules if name.split(".")[0] in ("infra", "tools")], "functions/ imports only down"
    missing = [
        name
        for name in sorted(modules)
        if not (
            asset.joinpath(*name.split("."), "__init__.py").is_file()
            or asset.joinpath(*name.split(".")).with_suffix(".py").is_file()
        )
    ]
    assert not missing, f"{function} asset lacks {missing}"
