"""Every port of ``functions/ports.py`` has an in-memory fake in ``tests/fakes.py``, and the fake keeps the port's
shape: the same methods with the same parameters (names, kinds, defaults). A port that gains a method or a
parameter, or a new port, fails here until its fake follows, so the core tests never run against a stale copy."""

from __future__ import annotations

import inspect
from typing import Protocol

import pytest

from functions import ports
from tests import fakes

FAKES: dict[str, type] = {
    "MessageSender": fakes.FakeSender,
    "RecordBackOff": fakes.FakeRecordBackOff,
    "ProfileStore": fakes.FakeProfileStore,
    "AdServicesClient": fakes.FakeAdServices,
    "KochavaClient": fakes.FakeKochava,
    "OnceSender": fakes.FakeOnceSender,
    "DeliveryQueue": fakes.FakeDeliveryQueue,
    "BreakerStore": fakes.FakeBreakerStore,
}


def port_classes() -> dict[str, type]:
    return {
        name: value
        for name, value in vars(ports).items()
        if inspect.isclass(value) and Protocol in value.__mro__[1:] and value.__module__ == ports.__name__
    }


def members(port: type) -> list[str]:
    """The methods a port declares (not those of ``Protocol`` / ``object``)."""
    return [name for name, value in vars(port).items() if callable(value) and not name.startswith("_")]


def test_every_port_has_a_fake() -> None:
    assert sorted(port_classes()) == sorted(FAKES)


@pytest.mark.parametrize("name", sorted(FAKES))
def test_each_fake_has_its_port_s_methods_with_the_same_parameters(name: str) -> None:
    port, fake = port_classes()[name], FAKES[name]
    assert members(port), f"{name} declares no method"
    for method in members(port):
        expected = inspect.signature(getattr(port, method)).parameters
        actual = inspect.signature(getattr(fake, method)).parameters
        shape = [(p.name, p.kind, p.default) for p in expected.values()]
        assert [(p.name, p.kind, p.default) for p in actual.values()] == shape, f"{fake.__name__}.{method}"


@pytest.mark.parametrize("name", sorted(FAKES))
def test_each_fake_has_its_port_s_attributes(name: str) -> None:
    port, fake = port_classes()[name], FAKES[name]
    for attribute in getattr(port, "__annotations__", {}):
        assert attribute in getattr(fake, "__dataclass_fields__", {}) or hasattr(fake(), attribute), attribute
