"""The once-only sender's fake (``tests.fakes.FakeOnceSender``, behind the breaker and delivery core tests) answers
as the Lambda's own (``deliverer.idempotency.IdempotentSender``: Powertools idempotency, here on the in-memory
layer whose DynamoDB agreement is ``tests/integration/contracts/test_idempotency_persistence.py``). Every case runs
against both: a delivery is remembered and a copy is a duplicate without a POST; the same uuid with other content is
a conflict, never posted; a failure is not remembered; a copy sent while the first is in flight waits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from functions.deliverer.idempotency import IdempotentSender
from functions.pipeline import envelope
from functions.pipeline.envelope import Envelope, Kind
from functions.ports import KochavaResult, OnceSender
from tests.fakes import DELIVERED, TRANSIENT, FakeKochava, FakeOnceSender, MemoryPersistence
from tests.lambda_fakes import FakeContext
from tests.samples.deliverer import event_body

DEADLINE = 1e12


def fake(kochava: FakeKochava) -> OnceSender:
    return FakeOnceSender(kochava)


def real(kochava: FakeKochava) -> OnceSender:
    sender = IdempotentSender(kochava, MemoryPersistence(), expires_after_s=3600)
    sender.register_lambda_context(FakeContext())  # type: ignore[arg-type]
    return sender


SENDERS = pytest.mark.parametrize("make", [fake, real], ids=["fake", "idempotent_sender"])


def env_of(uuid: str, event_name: str = "Purchase") -> Envelope:
    return envelope.parse(event_body(uuid, event_name))


def send(sender: OnceSender, env: Envelope) -> str:
    return sender.send_once(env, env.payload, deadline=DEADLINE).status


@SENDERS
def test_a_delivery_is_remembered_and_a_copy_is_a_duplicate_without_a_post(
    make: Callable[[FakeKochava], OnceSender],
) -> None:
    kochava = FakeKochava()
    sender = make(kochava)
    assert [send(sender, env_of("u-1")), send(sender, env_of("u-1"))] == ["delivered", "duplicate"]
    assert len(kochava.posts) == 1


@SENDERS
def test_the_same_uuid_with_other_content_is_a_conflict_never_posted(make: Callable[[FakeKochava], OnceSender]) -> None:
    kochava = FakeKochava()
    sender = make(kochava)
    assert [send(sender, env_of("u-1")), send(sender, env_of("u-1", "Level Up"))] == ["delivered", "conflict"]
    assert len(kochava.posts) == 1


@SENDERS
def test_a_failure_is_not_remembered(make: Callable[[FakeKochava], OnceSender]) -> None:
    kochava = FakeKochava()
    kochava.script(None, TRANSIENT, DELIVERED)
    kochava.script("u-1", TRANSIENT, DELIVERED)  # the fake asks by uuid, the real sender through the port
    sender = make(kochava)
    assert [send(sender, env_of("u-1")), send(sender, env_of("u-1"))] == ["failed", "delivered"]
    assert len(kochava.posts) == 2


class Reentrant(FakeKochava):
    """While the first POST is in flight, another invocation sends the same event (recorded in ``nested``)."""

    def __init__(self) -> None:
        super().__init__()
        self.sender: OnceSender | None = None
        self.nested: list[str] = []

    def answer(
        self, uuid: str | None, kind: Kind, payload: Mapping[str, Any], *, deadline: float, retry: bool = True
    ) -> KochavaResult:
        if self.sender is not None and not self.nested:
            self.nested.append(send(self.sender, env_of("u-1")))
        return super().answer(uuid, kind, payload, deadline=deadline, retry=retry)


@SENDERS
def test_a_copy_sent_while_the_first_is_in_flight_waits(make: Callable[[FakeKochava], OnceSender]) -> None:
    kochava = Reentrant()
    sender = make(kochava)
    kochava.sender = sender
    assert send(sender, env_of("u-1")) == "delivered"
    assert kochava.nested == ["in_progress"]
    assert len(kochava.posts) == 1
