"""functions/coldstart.py: the garbage collector is off only inside the block, and always comes back."""

from __future__ import annotations

import functools
import gc
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.coldstart import collector_paused

# Not from tests.infra.support: that module imports the CDK app (aws_cdk starts jsii's Node.js), ~3 s of every
# xdist worker's collection.
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    if was_enabled:
        gc.enable()


def test_given_collector_on_when_block_runs_then_it_is_off_inside_and_on_after() -> None:
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_given_collector_off_when_block_ends_then_it_stays_off() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_given_a_failing_block_then_the_collector_is_still_restored() -> None:
    gc.enable()
    with pytest.raises(ImportError), collector_paused(freeze=True):
        importlib.import_module("functions.no_such_module")
    assert gc.isenabled()


def test_given_freeze_then_what_the_block_built_is_out_of_the_collectors_sight() -> None:
    before = gc.get_freeze_count()
    with collector_paused(freeze=True):
        kept = [[n] for n in range(1000)]  # lists are always tracked by the collector
    assert gc.get_freeze_count() >= before + len(kept)


def test_without_freeze_nothing_is_frozen() -> None:
    before = gc.get_freeze_count()
    with collector_paused():
        [[n] for n in range(1000)]
    # Not "==": a frozen object freed meanwhile (another test's thread winding down on the same xdist worker) makes
    # the count drop, as seen in a unit-tier run; a freeze would raise it by every object the collector tracks.
    assert gc.get_freeze_count() <= before


@pytest.mark.parametrize("handler", ["functions.enricher.handler", "functions.deliverer.handler"])
def test_importing_a_handler_leaves_the_collector_on_and_its_modules_frozen(handler: str) -> None:
    """In a fresh interpreter, as Lambda imports it: a handler that left the collector off would leak cycles
    for the container's whole life."""
    probe = f"import gc, {handler}; print(gc.isenabled(), gc.get_freeze_count())"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out[0] == "True"
    assert int(out[1]) > 10_000  # the imported modules' objects (pydantic models, botocore, Powertools)


# What a handler's cold start (import + the first invocation's wiring, in the deployed environment) must not
# import: each is a cost measured in bench/coldstart.py and docs/benchmarks.md, or code that has no place in an asset.
_NEVER_IMPORTED = {"tools", "infra", "bench", "tests", "hypothesis", "jsonschema", "moto", "pytest", "aws_cdk"}
_NOT_IMPORTED_BY = {
    # botocore's session makes the clients: boto3 would import s3transfer and multiprocessing (~45 ms); the Apple
    # client (requests) is built only when an install with a fresh AdServices token shows up.
    "functions.enricher.handler": _NEVER_IMPORTED | {"boto3", "s3transfer", "multiprocessing", "requests"},
    # The deliverer validates nothing with pydantic (it reads envelopes the enricher wrote).
    "functions.deliverer.handler": _NEVER_IMPORTED | {"pydantic", "pydantic_core"},
}
_PROBE = """\
import sys
import {handler} as handler
imported = set(sys.modules)
handler.get_runtime()
initialised = {{name.split(".")[0] for name in sys.modules}}
import botocore.client, requests, wrapt  # X-Ray patches with wrapt: a patched method is a wrapt proxy
calls = (botocore.client.BaseClient.__dict__["_make_api_call"], requests.Session.__dict__["request"])
traced = [isinstance(call, wrapt.ObjectProxy) for call in calls]
print(" ".join(sorted(imported)))
print(" ".join(sorted(initialised)))
print(*traced)
"""


@functools.cache
def _cold_start(handler: str) -> tuple[set[str], set[str], list[str]]:
    """A fresh interpreter in the Lambda's environment (Tracer on, the stack's variables, as bench/coldstart.py
    measures it) imports the handler and wires it as its first invocation does: what the import imported, what
    the whole init imported, and whether X-Ray wraps botocore's and requests' calls. Once per handler and test
    process: the two tests below read the same cold start."""
    from bench.coldstart import lambda_env

    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(handler=handler)],
        cwd=REPO_ROOT,
        env=lambda_env(handler),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported, initialised, traced = done.stdout.splitlines()
    return set(imported.split()), set(initialised.split()), traced.split()


@pytest.mark.parametrize("handler", sorted(_NOT_IMPORTED_BY))
def test_a_cold_start_imports_none_of_what_the_lambda_does_not_use(handler: str) -> None:
    imported, initialised, _ = _cold_start(handler)
    assert "botocore" in initialised  # the probe did wire the clients
    assert initialised & _NOT_IMPORTED_BY[handler] == set()
    assert imported & _NOT_IMPORTED_BY[handler] == set()


@pytest.mark.parametrize(
    ("handler", "traced"),
    [("functions.enricher.handler", ["True", "False"]), ("functions.deliverer.handler", ["True", "True"])],
)
def test_once_wired_xray_traces_the_aws_calls_and_the_deliverers_http(handler: str, traced: list[str]) -> None:
    """Tracing as the stack configures it (Tracing.ACTIVE): AWS calls traced by both functions, Kochava's HTTP by
    the deliverer; the enricher's requests are patched only when its Apple client is built. (Patching botocore
    at import costs ~280 M instructions of the enricher's import; deferring it to the wiring was tried and
    dropped: docs/benchmarks.md, cold start.)"""
    assert _cold_start(handler)[2] == traced


@pytest.mark.parametrize("handler", sorted(_NOT_IMPORTED_BY))
def test_the_pieces_the_bench_splits_an_import_into_are_what_the_import_loads(handler: str) -> None:
    """``python -m bench.coldstart --pieces`` (the profile in docs/benchmarks.md) counts these modules one after the
    other: each must be one the handler's import really loads, or the profile would count what no cold start pays."""
    from bench.coldstart import PIECES

    imported, _, _ = _cold_start(handler)
    assert set(PIECES[handler]) <= imported
