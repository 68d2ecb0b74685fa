"""How many tries a delivery gets, and what happens to a record that is not delivered, on in-memory ports.

The rules (``functions/deliverer/core.py``, docs/deliverer.md): ``DELIVERER_MAX_ATTEMPTS`` real POST attempts
per message, then ``retries_exhausted``; with the breaker those attempts are counted by the breaker store, so the
receives a record collected while it was held never use them up; a held record goes back to the queue invisible
for a hold (not the transient back-off); whatever would outlive the queue's retention or reach its
maxReceiveCount before its next receive is dead-lettered now, with a reason, instead of being lost without one.

Each test here failed on a mutant of ``functions/deliverer`` that the rest of the suite, moto and outage included,
let live (issue 26: "tests that catch mutants").
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from functions.deliverer.core import BatchReport, Deliverer
from functions.deliverer.outage import KochavaBreaker
from functions.messages import DeliveryRecord
from functions.names import ATTR_ERROR, ATTR_REASON
from functions.pipeline import reasons
from functions.pipeline.breaker import HOLD_JITTER, BreakerPolicy
from tests.fakes import TRANSIENT, FakeBreakerStore, FakeDeliveryQueue, FakeKochava, FakeOnceSender
from tests.samples.deliverer import NOW, device_event_body, event_body

DEADLINE = 1e12
POLICY = BreakerPolicy(min_events=5, min_sources=3, window_s=60.0, probe_interval_s=20.0, hold_s=600.0)


@dataclass
class Core:
    deliverer: Deliverer
    kochava: FakeKochava
    queue: FakeDeliveryQueue
    store: FakeBreakerStore | None
    sender: FakeOnceSender | None = None

    def run(self, *records: DeliveryRecord) -> BatchReport:
        return self.deliverer.process_batch(records, deadline=DEADLINE)

    def reasons(self) -> dict[str, str]:
        return {m.attributes["uuid"]: m.attributes[ATTR_REASON] for m in self.queue.dead_letters}


def build(*, max_attempts: int, breaker: bool) -> Core:
    kochava, queue = FakeKochava(), FakeDeliveryQueue()
    sender = FakeOnceSender(kochava)
    store = FakeBreakerStore() if breaker else None
    kochava_breaker = KochavaBreaker(store, POLICY, rng=random.Random(7)) if store is not None else None
    deliverer = Deliverer(
        sender,
        queue,
        max_workers=2,
        max_attempts=max_attempts,
        clock=lambda: NOW,
        breaker=kochava_breaker,
    )
    return Core(deliverer, kochava, queue, store, sender)


@pytest.fixture
def plain() -> Iterator[Core]:
    """No breaker: the SQS receive count stands for the attempts; three attempts, not the default five."""
    core = build(max_attempts=3, breaker=False)
    yield core
    core.deliverer.close()


@pytest.fixture
def guarded() -> Iterator[Core]:
    """The breaker on a fake store; three attempts."""
    core = build(max_attempts=3, breaker=True)
    yield core
    core.deliverer.close()


def record(uuid: str, *, receive_count: int = 1, sent_at_ms: int | None = None, device: str = "") -> DeliveryRecord:
    body = device_event_body(uuid, device) if device else event_body(uuid)
    return DeliveryRecord(f"msg-{uuid}", f"rh-{uuid}", body, receive_count=receive_count, sent_at_ms=sent_at_ms)


def test_the_configured_number_of_attempts_is_the_one_used(plain: Core) -> None:
    """Given DELIVERER_MAX_ATTEMPTS=3 (not the default 5) and Kochava failing transiently
    Then the second receive is retried and the third is dead-lettered as retries_exhausted, naming 3 of 3."""
    plain.kochava.default = TRANSIENT

    second = plain.run(record("u-2", receive_count=2))
    third = plain.run(record("u-3", receive_count=3))

    assert [o.verdict for o in second.outcomes] == ["retry"]
    assert [o.verdict for o in third.outcomes] == ["dead_letter"]
    assert plain.reasons() == {"u-3": reasons.RETRIES_EXHAUSTED}
    assert plain.queue.dead_letters[0].attributes[ATTR_ERROR].startswith("attempt 3 of 3: ")


def test_receives_spent_held_do_not_use_up_a_message_s_attempts(guarded: Core) -> None:
    """Given a record received 40 times (held while Kochava was down), never POSTed
    When the breaker is closed and its first real POST fails transiently
    Then it is retried: the breaker store counts 1 attempt of 3, whatever SQS's receive count says."""
    guarded.kochava.default = TRANSIENT

    report = guarded.run(record("u-held", receive_count=40))

    assert [o.verdict for o in report.outcomes] == ["retry"]
    assert guarded.store is not None and guarded.store.attempts == {"msg-u-held": 1}
    assert guarded.queue.dead_letters == []


def test_the_attempts_the_store_counts_exhaust_a_message(guarded: Core) -> None:
    """Given a record whose real POSTs failed twice before (the store counted them) on only its third receive
    When the third attempt fails transiently
    Then it is dead-lettered as retries_exhausted: attempt 3 of 3."""
    guarded.kochava.default = TRANSIENT
    assert guarded.store is not None
    guarded.store.attempts["msg-u-1"] = 2

    report = guarded.run(record("u-1", receive_count=3))

    assert [o.verdict for o in report.outcomes] == ["dead_letter"]
    assert guarded.reasons() == {"u-1": reasons.RETRIES_EXHAUSTED}


def test_held_records_go_back_invisible_for_a_hold(guarded: Core) -> None:
    """Given Kochava down, so the breaker opens on a first batch from ten devices
    When the next batch arrives while it is open
    Then nothing is POSTed, and every held record is made invisible for hold_s plus at most its jitter."""
    guarded.kochava.default = TRANSIENT
    first = guarded.run(*(record(f"o-{i}", device=f"dev-{i}") for i in range(10)))
    assert first.breaker is not None and first.breaker.opened
    posts, backed_off = len(guarded.kochava.posts), len(guarded.queue.back_offs)

    held = guarded.run(record("h-1", device="dev-h1"), record("h-2", device="dev-h2"))

    assert [o.verdict for o in held.outcomes] == ["held", "held"]
    assert len(guarded.kochava.posts) == posts
    holds = guarded.queue.back_offs[backed_off:]
    assert [message_id for message_id, _ in holds] == ["msg-h-1", "msg-h-2"]
    for _, visibility in holds:
        assert POLICY.hold_s <= visibility <= POLICY.hold_s * (1 + HOLD_JITTER) + 1
    assert held.response() == {"batchItemFailures": [{"itemIdentifier": "msg-h-1"}, {"itemIdentifier": "msg-h-2"}]}


def test_a_record_about_to_outlive_the_queue_is_dead_lettered_with_a_reason(guarded: Core) -> None:
    """Given a record sent so long ago that one more back-off could outlive the queue's retention
    When its POST fails transiently (its first attempt)
    Then it is dead-lettered now as retries_exhausted, the error saying how long it waited, not returned to SQS
    to expire there without a reason."""
    guarded.kochava.default = TRANSIENT
    sent_at_ms = int((NOW - POLICY.give_up_age_s - 60) * 1000)

    report = guarded.run(record("u-old", sent_at_ms=sent_at_ms))

    assert [o.verdict for o in report.outcomes] == ["dead_letter"]
    assert guarded.reasons() == {"u-old": reasons.RETRIES_EXHAUSTED}
    assert guarded.queue.dead_letters[0].attributes[ATTR_ERROR].startswith("waited ")
    assert report.response() == {"batchItemFailures": []}


def test_a_record_about_to_be_redriven_is_dead_lettered_with_a_reason(guarded: Core) -> None:
    """Given a record received maxReceiveCount - 1 times (SQS would redrive it, without a reason, on the next)
    When its POST fails transiently and the store has counted only this attempt
    Then it is dead-lettered now as retries_exhausted, the error naming the receive count."""
    guarded.kochava.default = TRANSIENT

    report = guarded.run(record("u-many", receive_count=POLICY.max_receive_count - 1))

    assert [o.verdict for o in report.outcomes] == ["dead_letter"]
    error = guarded.queue.dead_letters[0].attributes[ATTR_ERROR]
    assert error.startswith(f"received {POLICY.max_receive_count - 1} times")


def test_a_young_record_is_not_given_up(guarded: Core) -> None:
    """The guard's other side: a record sent a minute ago, received twice, is retried (backed off), not given up."""
    guarded.kochava.default = TRANSIENT

    report = guarded.run(record("u-young", receive_count=2, sent_at_ms=int((NOW - 60) * 1000)))

    assert [o.verdict for o in report.outcomes] == ["retry"]
    assert guarded.queue.dead_letters == []
    assert [message_id for message_id, _ in guarded.queue.back_offs] == ["msg-u-young"]


def test_a_held_record_about_to_outlive_the_queue_is_dead_lettered_not_held_again(guarded: Core) -> None:
    """Given Kochava down and the breaker open
    When a record sent long ago (one more hold could outlive the queue's retention) comes in
    Then it is dead-lettered now as retries_exhausted, saying how long it waited and that the breaker was open,
    while a young record of the same batch is held."""
    guarded.kochava.default = TRANSIENT
    first = guarded.run(*(record(f"o-{i}", device=f"dev-{i}") for i in range(10)))
    assert first.breaker is not None and first.breaker.opened
    old_ms = int((NOW - POLICY.give_up_age_s - 60) * 1000)

    report = guarded.run(record("h-old", sent_at_ms=old_ms, device="dev-x"), record("h-young", device="dev-y"))

    assert [o.verdict for o in report.outcomes] == ["dead_letter", "held"]
    [dead] = guarded.queue.dead_letters  # held unparsed: the body names the event
    assert '"h-old"' in dead.body and dead.attributes[ATTR_REASON] == reasons.RETRIES_EXHAUSTED
    error = dead.attributes[ATTR_ERROR]
    assert error.startswith("waited ") and error.endswith(": Kochava breaker open")
    assert report.outcomes[1].error == "Kochava breaker open"


def test_a_record_that_failed_unexpectedly_and_is_about_to_outlive_the_queue_is_dead_lettered(guarded: Core) -> None:
    """Given the idempotency store down (the record fails, SQS would redeliver it) and a record sent long ago
    Then it is dead-lettered as retries_exhausted with the failure in its error, not returned to SQS to expire."""
    assert guarded.sender is not None
    guarded.sender.error = ConnectionError("DynamoDB unreachable")
    old_ms = int((NOW - POLICY.give_up_age_s - 60) * 1000)

    report = guarded.run(record("u-old", sent_at_ms=old_ms))

    assert [o.verdict for o in report.outcomes] == ["dead_letter"]
    error = guarded.queue.dead_letters[0].attributes[ATTR_ERROR]
    assert error.startswith("waited ") and "ConnectionError: DynamoDB unreachable" in error
