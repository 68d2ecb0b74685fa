"""The deliverer Lambda on the in-memory ports (``stack.py``), for the tests that drive its entry point."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.deliverer.stack import FakeStack, fake_stack


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStack]:
    yield from fake_stack(monkeypatch)
