"""The deliverer's core on in-memory ports (tests/fakes.py): what a batch of delivery records becomes.

:meth:`Deliverer.process_batch` with a fake once-only sender (an in-memory idempotency store in front of a
scripted Kochava) and a fake delivery queue; the Lambda's entry point on the fakes is ``test_lambda_*.py``, the
end-to-end wiring on moto and a real HTTP sink ``tests/integration/deliverer``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest

from functions.deliverer.core import BatchReport, Deliverer
from functions.messages import DeliveryRecord
from functions.names import (
    ATTR_ERROR,
    ATTR_EVENT_NAME,
    ATTR_FAILED_AT_MS,
    ATTR_KIND,
    ATTR_REASON,
    ATTR_RESPONSE_BODY,
    ATTR_STAGE,
    ATTR_STATUS,
    ATTR_UUID,
)
from functions.pipeline import reasons
from functions.pipeline.adservices import TOKEN_KEY, TOKEN_VALIDITY_S
from functions.ports import KochavaResult
from tests.fakes import BAD_RESPONSE, REJECTED, TRANSIENT, FakeDeliveryQueue, FakeKochava, FakeOnceSender
from tests.samples.deliverer import NOW, event_body, event_payload, install_body

MAX_RECEIVE_COUNT = 5
DEADLINE = 1_000.0


@dataclass
class Core:
    deliverer: Deliverer
    kochava: FakeKochava
    sender: FakeOnceSender
    queue: FakeDeliveryQueue

    def run(self, *records: DeliveryRecord) -> BatchReport:
        return self.deliverer.process_batch(records, deadline=DEADLINE)


@pytest.fixture
def core() -> Iterator[Core]:
    kochava = FakeKochava()
    sender = FakeOnceSender(kochava)
    queue = FakeDeliveryQueue()
    deliverer = Deliverer(sender, queue, max_attempts=MAX_RECEIVE_COUNT, max_workers=4, clock=lambda: NOW)
    yield Core(deliverer, kochava, sender, queue)
    deliverer.close()


def record(
    uuid: str, *, receive_count: int = 1, body: str | None = None, attributes: Mapping[str, str] | None = None
) -> DeliveryRecord:
    return DeliveryRecord(
        message_id=f"msg-{uuid}",
        receipt_handle=f"rh-{uuid}",
        body=event_body(uuid) if body is None else body,
        receive_count=receive_count,
        attributes=attributes or {},
    )


def failed_ids(report: BatchReport) -> list[str]:
    return [item["itemIdentifier"] for item in report.response()["batchItemFailures"]]


def test_a_delivered_record_is_posted_once_and_acknowledged(core: Core) -> None:
    """Given one envelope and Kochava answering success
    When the batch is processed
    Then its payload is posted once to the event endpoint, and SQS is told nothing failed."""
    report = core.run(record("u-1"))

    assert report.response() == {"batchItemFailures": []}
    [post] = core.kochava.posts
    assert (post.uuid, post.kind, post.payload) == ("u-1", "event", event_payload("u-1"))
    assert post.deadline == DEADLINE
    [outcome] = report.outcomes
    assert outcome.verdict == "delivered"
    assert core.queue.dead_letters == [] and core.queue.back_offs == []


def test_an_event_already_delivered_is_skipped_as_a_duplicate(core: Core) -> None:
    """Given an event delivered by an earlier batch
    When the same envelope arrives again (an SQS redelivery or a replay)
    Then it is acknowledged as a duplicate without a second POST."""
    core.run(record("u-1"))

    report = core.run(record("u-1"))

    assert [o.verdict for o in report.outcomes] == ["duplicate"]
    assert failed_ids(report) == []
    assert len(core.kochava.posts) == 1


def test_a_transient_failure_is_retried_later_with_backoff(core: Core) -> None:
    """Given Kochava answering 503 (after the client's own retries) on the second receive of a record
    When the batch is processed
    Then the record is reported failed so SQS redelivers it, its visibility pushed back 60 s (30 s * 2**1), and a
    later success is not taken for a duplicate: a failure is never remembered."""
    core.kochava.script("u-1", TRANSIENT, KochavaResult("delivered", 200))

    report = core.run(record("u-1", receive_count=2))

    assert failed_ids(report) == ["msg-u-1"]
    assert core.queue.back_offs == [("msg-u-1", 60)]
    [outcome] = report.outcomes
    assert (outcome.verdict, outcome.back_off_applied) == ("retry", True)
    assert core.queue.dead_letters == []
    assert [o.verdict for o in core.run(record("u-1", receive_count=3)).outcomes] == ["delivered"]


def test_kochavas_retry_after_sets_a_longer_backoff(core: Core) -> None:
    """Given Kochava answering 429 with Retry-After: 200 s on the first receive
    When the batch is processed
    Then the record comes back no sooner than Kochava asked (200 s rather than 30 s)."""
    core.kochava.script("u-1", KochavaResult("transient", 429, error="HTTP 429", retry_after_s=200))

    core.run(record("u-1"))

    assert core.queue.back_offs == [("msg-u-1", 200)]


def test_a_backoff_sqs_refuses_still_leaves_the_record_failed(core: Core) -> None:
    """Given SQS refusing the visibility change
    When a transient failure is to be retried
    Then the record is still reported failed (it comes back after the queue's own timeout: later, not lost)."""
    core.kochava.script("u-1", TRANSIENT)
    core.queue.refuse_back_off = True

    report = core.run(record("u-1"))

    assert failed_ids(report) == ["msg-u-1"]
    assert report.outcomes[0].back_off_applied is False


@pytest.mark.parametrize(
    ("answer", "reason"),
    [(REJECTED, reasons.KOCHAVA_REJECTED), (BAD_RESPONSE, reasons.KOCHAVA_BAD_RESPONSE)],
)
def test_a_kochava_refusal_is_dead_lettered_with_the_design_attributes(
    core: Core, answer: KochavaResult, reason: str
) -> None:
    """Given Kochava refusing an event (HTTP 400), or answering 200 without its success body
    When the batch is processed
    Then the envelope goes unchanged to the delivery DLQ with stage, reason, Kochava's status and body, the error,
    the event's uuid, kind and name and the failure time, and the record is acknowledged (not retried)."""
    core.kochava.script("u-1", answer)
    body = event_body("u-1")

    report = core.run(record("u-1", body=body))

    assert failed_ids(report) == []
    [dead] = core.queue.dead_letters
    assert dead.body == body
    assert dead.attributes == {
        ATTR_STAGE: "deliverer",
        ATTR_REASON: reason,
        ATTR_FAILED_AT_MS: int(NOW * 1000),
        ATTR_STATUS: answer.http_status,
        ATTR_RESPONSE_BODY: answer.response_body,
        ATTR_ERROR: answer.error,
        ATTR_UUID: "u-1",
        ATTR_KIND: "event",
        ATTR_EVENT_NAME: "Purchase",
    }
    assert core.queue.back_offs == []


def test_a_transient_failure_on_the_last_receive_is_dead_lettered_as_retries_exhausted(core: Core) -> None:
    """Given Kochava still unavailable on the record's last allowed receive
    When the batch is processed
    Then the record goes to the DLQ as retries_exhausted with the attempt count in the error, and is acknowledged
    rather than left for a reasonless SQS redrive."""
    core.kochava.script("u-1", TRANSIENT)

    report = core.run(record("u-1", receive_count=MAX_RECEIVE_COUNT))

    assert failed_ids(report) == []
    [dead] = core.queue.dead_letters
    assert dead.attributes[ATTR_REASON] == reasons.RETRIES_EXHAUSTED
    assert str(dead.attributes[ATTR_ERROR]).startswith(f"attempt {MAX_RECEIVE_COUNT} of {MAX_RECEIVE_COUNT}:")
    assert core.queue.back_offs == []


def test_a_malformed_envelope_is_dead_lettered_as_invalid_body_without_a_post(core: Core) -> None:
    """Given a delivery record whose body is not an envelope (its attributes still name the event)
    When the batch is processed
    Then it goes to the DLQ at once as invalid_body, keeping the uuid and kind from its attributes, and Kochava is
    never called."""
    names = {ATTR_UUID: "u-1", ATTR_KIND: "event", ATTR_EVENT_NAME: "Purchase"}
    bad = record("u-1", body='{"v": 1, "kind": "event"}', attributes=names)

    report = core.run(bad)

    assert failed_ids(report) == []
    [dead] = core.queue.dead_letters
    assert dead.body == bad.body
    assert dead.attributes[ATTR_REASON] == reasons.INVALID_BODY
    assert (dead.attributes[ATTR_UUID], dead.attributes[ATTR_KIND]) == ("u-1", "event")
    assert "not an envelope" in str(dead.attributes[ATTR_ERROR])
    assert core.kochava.posts == []


def test_when_the_dlq_send_fails_the_dead_letters_are_reported_failed_not_acknowledged(core: Core) -> None:
    """Given a delivery DLQ that cannot be written
    When a batch holds a refused event and a delivered one
    Then the refused one is reported failed (SQS keeps it: nothing is acknowledged unrecorded), the delivered one
    is acknowledged, and the report says why."""
    core.kochava.script("u-bad", REJECTED)
    core.queue.fail_dead_letters()

    report = core.run(record("u-ok"), record("u-bad"))

    assert failed_ids(report) == ["msg-u-bad"]
    assert report.dead_letter_error.startswith("SendError")
    assert core.queue.dead_letters == []


def test_an_idempotency_store_failure_fails_the_record_for_redelivery(core: Core) -> None:
    """Given the idempotency store down
    When a record is processed
    Then it is reported failed (SQS redelivers it, then redrives it) and neither posted nor dead-lettered."""
    core.sender.error = ConnectionError("DynamoDB unreachable")

    report = core.run(record("u-1"))

    assert failed_ids(report) == ["msg-u-1"]
    assert report.outcomes[0].verdict == "failed"
    assert "ConnectionError" in report.outcomes[0].error
    assert core.kochava.posts == [] and core.queue.dead_letters == []


def test_an_event_in_flight_elsewhere_is_retried_later(core: Core) -> None:
    """Given another invocation sending the same uuid and kind right now
    When a copy of it is processed
    Then the copy is retried later with backoff, not posted a second time."""
    core.sender.in_flight.add(("u-1", "event"))

    report = core.run(record("u-1"))

    assert failed_ids(report) == ["msg-u-1"]
    assert core.queue.back_offs == [("msg-u-1", 30)]
    assert core.kochava.posts == []


def test_an_expired_adservices_token_is_stripped_at_send_time(core: Core) -> None:
    """Given an install envelope whose AdServices token is older than Apple's 24 h window by send time
    When it is delivered
    Then Kochava receives the install without the token."""
    report = core.run(record("u-1", body=install_body("u-1", generated_at=NOW - TOKEN_VALIDITY_S - 1)))

    [post] = core.kochava.posts
    assert post.kind == "install"
    assert TOKEN_KEY not in post.payload["data"]
    assert report.outcomes[0].token_stripped is True


def test_the_partial_batch_response_names_only_the_records_sqs_must_redeliver(core: Core) -> None:
    """Given a batch with a delivered event, one Kochava refuses, one it cannot take now and a malformed body
    When the batch is processed
    Then only the transient one is reported failed; the others are acknowledged (delivered or in the DLQ), in
    one DLQ send."""
    core.kochava.script("u-400", REJECTED)
    core.kochava.script("u-503", TRANSIENT)
    records = [record("u-ok"), record("u-400"), record("u-503"), record("u-bad", body="not json")]

    report = core.run(*records)

    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "msg-u-503"}]}
    assert [o.verdict for o in report.outcomes] == ["delivered", "dead_letter", "retry", "dead_letter"]
    reasons_sent = sorted(str(d.attributes[ATTR_REASON]) for d in core.queue.dead_letters)
    assert reasons_sent == [reasons.INVALID_BODY, reasons.KOCHAVA_REJECTED]
    assert json.loads(core.queue.dead_letters[0].body)["uuid"] == "u-400"


def test_one_failing_record_of_a_full_batch_is_the_only_one_reported(core: Core) -> None:
    """(Moved from tests/integration/deliverer/test_handler.py: core behaviour, on the fakes.)
    Given a batch of ten where Kochava cannot take one event now
    When the batch is processed
    Then the nine others are delivered and acknowledged, and only that one is reported failed and backed off."""
    core.kochava.script("bad-1", TRANSIENT)
    records = [record(f"ok-{i}") for i in range(9)] + [record("bad-1")]

    report = core.run(*records)

    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "msg-bad-1"}]}
    assert sorted(uuid for uuid, _ in core.sender.delivered) == sorted(f"ok-{i}" for i in range(9))
    assert core.queue.back_offs == [("msg-bad-1", 30)]
    assert core.queue.dead_letters == []


def test_a_record_failing_on_every_receive_is_dead_lettered_on_the_last_with_the_last_status(core: Core) -> None:
    """(Moved from tests/integration/deliverer/test_handler.py: core behaviour, on the fakes.)
    Given Kochava answering 500 to every attempt of one event
    When it is received MAX_RECEIVE_COUNT times
    Then each receive but the last is reported failed (SQS tries again), and the last one dead-letters it as
    retries_exhausted with the last status and "attempt 5 of 5", and acknowledges it."""
    core.kochava.script("u-10", KochavaResult("transient", 500, response_body="oops", error="HTTP 500", attempts=4))
    body = event_body("u-10")

    reports = [core.run(record("u-10", body=body, receive_count=n)) for n in range(1, MAX_RECEIVE_COUNT + 1)]

    assert [failed_ids(r) for r in reports[:-1]] == [["msg-u-10"]] * (MAX_RECEIVE_COUNT - 1)
    assert failed_ids(reports[-1]) == []
    [dead] = core.queue.dead_letters
    assert dead.body == body
    assert dead.attributes[ATTR_REASON] == reasons.RETRIES_EXHAUSTED
    assert dead.attributes[ATTR_STATUS] == 500
    assert "attempt 5 of 5" in str(dead.attributes[ATTR_ERROR])
    assert len(core.kochava.posted("u-10")) == MAX_RECEIVE_COUNT
