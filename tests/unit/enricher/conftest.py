"""The enricher Lambda on the in-memory ports (``stack.py``), for the tests that drive its entry point: the same
fixtures as the moto tier's (``make_stack(**extra_env)``, ``stack``), the same environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from functions.names import ENV_ADSERVICES_RESOLVE, ENV_KOCHAVA_APP_ID_ANDROID, ENV_KOCHAVA_APP_ID_IOS
from tests.samples.enricher import ANDROID_APP, IOS_APP
from tests.unit.enricher.stack import FakeStack, fake_stack

ENV = {
    ENV_KOCHAVA_APP_ID_IOS: IOS_APP,
    ENV_KOCHAVA_APP_ID_ANDROID: ANDROID_APP,
    ENV_ADSERVICES_RESOLVE: "false",
}


@pytest.fixture
def fakes() -> Iterator[FakeStack]:
    """The stack before its runtime is built (tests may change ``env`` first)."""
    yield from fake_stack(ENV)


@pytest.fixture
def make_stack(fakes: FakeStack) -> Callable[..., FakeStack]:
    """Build (again) the enricher's runtime on the same fakes, with extra environment variables."""

    def make(**extra_env: str) -> FakeStack:
        fakes.use_runtime(**extra_env)
        return fakes

    return make


@pytest.fixture
def stack(make_stack: Callable[..., FakeStack]) -> FakeStack:
    return make_stack()
