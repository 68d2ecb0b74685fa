"""More of what a batch of delivery records becomes (``functions/deliverer/core.py``), on the in-memory ports: a
reused uuid, a copy in flight elsewhere with and without the breaker, a fresh AdServices token, the configured
back-off, what a failed record's log line and a malformed record's dead letter still say."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from functions.deliverer.core import UUID_CONFLICT_ERROR, Deliverer
from functions.deliverer.outage import KochavaBreaker
from functions.messages import DeliveryRecord
from functions.names import ATTR_ERROR, ATTR_EVENT_NAME, ATTR_KIND, ATTR_REASON, ATTR_UUID
from functions.pipeline import reasons
from functions.pipeline.adservices import TOKEN_KEY
from functions.pipeline.breaker import BreakerPolicy
from tests.fakes import TRANSIENT, FakeBreakerStore, FakeDeliveryQueue, FakeKochava, FakeOnceSender
from tests.samples.deliverer import NOW, event_body, install_body

DEADLINE = 1e12


def record(
    uuid: str, body: str | None = None, *, receive_count: int = 1, attributes: dict[str, str] | None = None
) -> DeliveryRecord:
    body = event_body(uuid) if body is None else body
    return DeliveryRecord(f"msg-{uuid}", f"rh-{uuid}", body, receive_count=receive_count, attributes=attributes or {})


class Core:
    def __init__(self, *, breaker: bool = False, max_attempts: int = 3, retry_base_s: float = 30) -> None:
        self.kochava, self.queue = FakeKochava(), FakeDeliveryQueue()
        self.sender = FakeOnceSender(self.kochava)
        self.store = FakeBreakerStore() if breaker else None
        self.deliverer = Deliverer(
            self.sender,
            self.queue,
            max_workers=2,
            max_attempts=max_attempts,
            clock=lambda: NOW,
            retry_base_s=retry_base_s,
            breaker=KochavaBreaker(self.store, BreakerPolicy(), rng=random.Random(3)) if self.store else None,
        )

    def run(self, *records: DeliveryRecord) -> list[tuple[str, str | None, str]]:
        report = self.deliverer.process_batch(records, deadline=DEADLINE)
        return [(o.verdict, o.reason, o.error) for o in report.outcomes]


@pytest.fixture
def core() -> Iterator[Core]:
    built = Core()
    yield built
    built.deliverer.close()


@pytest.fixture
def guarded() -> Iterator[Core]:
    built = Core(breaker=True)
    yield built
    built.deliverer.close()


def test_a_reused_uuid_is_dead_lettered_as_a_conflict_and_never_posted(core: Core) -> None:
    assert core.run(record("u-1")) == [("delivered", None, "")]
    other = record("u-1", event_body("u-1", event_name="Refund"))  # same uuid, other event
    assert core.run(other) == [("dead_letter", reasons.UUID_CONFLICT, UUID_CONFLICT_ERROR)]
    [dead] = core.queue.dead_letters
    assert (dead.body, dead.attributes[ATTR_REASON], dead.attributes[ATTR_ERROR]) == (
        other.body,
        "uuid_conflict",
        UUID_CONFLICT_ERROR,
    )
    assert len(core.kochava.posts) == 1
    assert core.run(record("u-1")) == [("duplicate", None, "")]  # the true copy is still a duplicate


def test_a_copy_in_flight_elsewhere_gives_up_on_the_last_receive_without_the_breaker(core: Core) -> None:
    core.sender.in_flight.add(("u-1", "event"))
    elsewhere = "a delivery of this uuid and kind is in progress elsewhere"
    assert core.run(record("u-1", receive_count=3)) == [
        ("dead_letter", reasons.RETRIES_EXHAUSTED, f"attempt 3 of 3: {elsewhere}")
    ]


def test_with_the_breaker_a_copy_in_flight_elsewhere_never_uses_up_attempts(guarded: Core) -> None:
    guarded.sender.in_flight.add(("u-1", "event"))
    [(verdict, _, error)] = guarded.run(record("u-1", receive_count=40))
    assert (verdict, error) == ("retry", "a delivery of this uuid and kind is in progress elsewhere")
    assert guarded.queue.back_offs == [("msg-u-1", 30)]  # the first back-off: no attempt of this message counted
    assert guarded.store is not None and guarded.store.attempts == {}


def test_a_fresh_adservices_token_is_sent(core: Core) -> None:
    core.run(record("i-1", install_body("i-1", generated_at=NOW - 3600)))
    [post] = core.kochava.posts
    assert TOKEN_KEY in post.payload["data"]


def test_the_configured_back_off_base_is_the_one_used() -> None:
    fast = Core(retry_base_s=2)
    fast.kochava.script("u-1", TRANSIENT)
    try:
        fast.run(record("u-1", receive_count=2))
    finally:
        fast.deliverer.close()
    assert fast.queue.back_offs == [("msg-u-1", 4)]


def test_a_record_that_fails_unexpectedly_still_names_its_event(core: Core) -> None:
    core.sender.error = ConnectionError("DynamoDB unreachable")
    report = core.deliverer.process_batch([record("u-7")], deadline=DEADLINE)
    [outcome] = report.outcomes
    assert outcome.verdict == "failed" and outcome.envelope is not None and outcome.envelope.uuid == "u-7"


def test_a_malformed_record_s_dead_letter_keeps_the_event_name_of_its_attributes(core: Core) -> None:
    names = {ATTR_UUID: "u-1", ATTR_KIND: "event", ATTR_EVENT_NAME: "Purchase"}
    core.run(record("u-1", "not an envelope", attributes=names))
    [dead] = core.queue.dead_letters
    assert {k: dead.attributes[k] for k in names} == names
