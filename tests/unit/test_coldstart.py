"""functions/coldstart.py: the garbage collector is off only inside the block, and always comes back."""

from __future__ import annotations

import gc
import importlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from functions.coldstart import collector_paused
from tests.infra.support import REPO_ROOT


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
    assert gc.get_freeze_count() == before


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
