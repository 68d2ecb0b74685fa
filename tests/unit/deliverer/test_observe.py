"""What on-call sees of a deliverer batch's rarer outcomes (``functions/deliverer/observe.py``): held records during
an outage, a dead letter whose DLQ send failed, the time and answer each POST took, the tokens stripped at send.

Each test failed on a mutant of ``observe.py`` that the rest of the fast tests let live (issue 26, "tests that
catch mutants"; docs/reliability.md lists which). On the in-memory ports, through ``handler.handle`` where the
behaviour is the batch's, on :func:`observe.count` alone where it is one metric's arithmetic.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from functions.deliverer import handler, observe
from functions.deliverer import metrics as m
from functions.deliverer.core import BatchReport, Deliverer, RecordOutcome, Verdict
from functions.deliverer.idempotency import IdempotentSender
from functions.deliverer.outage import KochavaBreaker
from functions.deliverer.runtime import Runtime
from functions.messages import DeliveryRecord
from functions.pipeline import reasons
from functions.pipeline.breaker import BreakerPolicy, BreakerState
from tests.fakes import (
    DELIVERED,
    REJECTED,
    TRANSIENT,
    FakeBreakerStore,
    FakeDeliveryQueue,
    FakeKochava,
    MemoryPersistence,
)
from tests.lambda_fakes import FakeContext
from tests.samples.deliverer import NOW, device_event_body, event_body

# Kochava down for a while: the shared breaker open, its next probe an hour away (no record of this batch probes).
OPEN = BreakerState(is_open=True, opened_at=NOW - 60, probe_after=NOW + 3600, openings=1, version=1)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(handler.logger.registered_handler.formatter)
    handler.logger.addHandler(capture)
    yield stream
    handler.logger.removeHandler(capture)
    handler.metrics.clear_metrics()


def runtime(kochava: FakeKochava, queue: FakeDeliveryQueue, store: FakeBreakerStore | None = None) -> Runtime:
    sender = IdempotentSender(kochava, MemoryPersistence(), expires_after_s=3600)
    breaker = KochavaBreaker(store, BreakerPolicy()) if store is not None else None
    core = Deliverer(sender, queue, max_workers=1, max_attempts=3, clock=lambda: NOW, breaker=breaker)
    return Runtime(core=core, sender=sender, kochava=kochava)


def handle(built: Runtime, *uuids: str, sent_at: float | None = None) -> dict[str, Any]:
    attributes = {} if sent_at is None else {"SentTimestamp": str(int(sent_at * 1000))}
    records = [
        {"messageId": f"msg-{u}", "receiptHandle": f"rh-{u}", "body": event_body(u), "attributes": attributes}
        for u in uuids
    ]
    try:
        return dict(handler.handle(built, {"Records": records}, FakeContext()))  # type: ignore[arg-type]
    finally:
        built.close()


def lines(logs: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]


def counted() -> dict[str, float]:
    return {name: sum(v["Value"]) for name, v in handler.metrics.metric_set.items()}


def test_held_records_get_no_line_each_and_are_counted_in_the_batch_line_and_the_metric(logs: io.StringIO) -> None:
    # Given Kochava down: the shared breaker open and no probe due
    kochava = FakeKochava()
    built = runtime(kochava, FakeDeliveryQueue(), FakeBreakerStore(state=OPEN))
    # When a batch of three arrives
    response = handle(built, "u-1", "u-2", "u-3")
    # Then nothing is posted and SQS gets all three back
    assert kochava.posts == []
    assert len(response["batchItemFailures"]) == 3
    # and during an outage the log is not flooded with a line per held record (the batch line counts them) ...
    assert [line for line in lines(logs) if "verdict" in line] == []
    [done] = [line for line in lines(logs) if line["message"] == "batch done"]
    assert done["verdicts"] == {"held": 3}
    # ... and the DeliveriesHeld metric the outage dashboard graphs counts them
    assert (counted()[m.DELIVERIES_HELD], counted()[m.BREAKER_OPEN]) == (3, 1)


def test_each_post_logs_how_long_it_took_in_milliseconds(logs: io.StringIO) -> None:
    # Given Kochava answering after 1.5 s
    kochava = FakeKochava(default=replace(DELIVERED, elapsed_s=1.5))
    # When a record is delivered
    handle(runtime(kochava, FakeDeliveryQueue()), "u-slow")
    # Then its line says 1500 ms (what on-call compares with the Lambda's timeout)
    [line] = [line for line in lines(logs) if "verdict" in line]
    assert (line["verdict"], line["elapsed_ms"]) == ("delivered", 1500)


def test_a_long_rejection_is_logged_cut_to_256_characters(logs: io.StringIO) -> None:
    # Given Kochava rejecting an event with a long answer (words: nothing in it is masked)
    body = '{"success":"0","error":"' + "the app id is not known here; " * 20 + '"}'
    kochava = FakeKochava(default=replace(REJECTED, response_body=body))
    # When the record is dead-lettered
    handle(runtime(kochava, FakeDeliveryQueue()), "u-bad")
    # Then its line keeps the first 256 characters of the answer, marked as cut
    [line] = [line for line in lines(logs) if "verdict" in line]
    assert line["verdict"] == "dead_letter"
    assert line["response_body"] == body[:256] + "..."


def test_a_dead_letter_the_dlq_refused_is_not_counted_as_dead_lettered(
    logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a DLQ that cannot be written
    queue = FakeDeliveryQueue()
    queue.fail_dead_letters()
    capsys.readouterr()
    # When Kochava rejects a record
    response = handle(runtime(FakeKochava(default=REJECTED), queue), "u-bad")
    # Then SQS keeps it (it is retried, not lost) and no DeadLettered count says it reached the DLQ
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-u-bad"}]}
    assert m.DEAD_LETTERED not in capsys.readouterr().out
    [line] = [line for line in lines(logs) if "verdict" in line]
    assert (line["reason"], line["dead_letter_sent"]) == ("kochava_rejected", False)


def test_the_dead_letters_per_reason_are_counts(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a record dead-lettered as rejected
    queue = FakeDeliveryQueue()
    capsys.readouterr()
    # When its batch is handled
    handle(runtime(FakeKochava(default=REJECTED), queue), "u-bad")
    # Then the DeadLettered metric is emitted with the unit Count (the alarm sums counts)
    [emitted] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if m.DEAD_LETTERED in line]
    assert (emitted["reason"], emitted["service"]) == ("kochava_rejected", handler.SERVICE)
    assert emitted["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": m.DEAD_LETTERED, "Unit": "Count"}]


def outcome(verdict: Verdict, *, token_stripped: bool = False) -> RecordOutcome:
    record = DeliveryRecord(f"msg-{verdict}", "rh", "{}", 1)
    return RecordOutcome(record, verdict, token_stripped=token_stripped)


def test_tokens_stripped_at_send_are_counted_for_what_was_sent_or_dead_lettered_and_duplicates_counted() -> None:
    # Given a batch where a stale AdServices token was stripped from a delivered install, a dead-lettered one and
    # one SQS will retry (counted when it is finally sent), with one duplicate and one fresh delivery
    report = BatchReport(
        [
            outcome("delivered", token_stripped=True),
            outcome("dead_letter", token_stripped=True),
            outcome("retry", token_stripped=True),
            outcome("duplicate"),
            outcome("delivered"),
        ]
    )
    # When its metrics are written
    handler.metrics.clear_metrics()
    observe.count(handler.metrics, report, namespace="ns", service="deliverer")
    seen = counted()
    handler.metrics.clear_metrics()
    # Then two tokens were stripped at send, and one duplicate skipped
    assert (seen[m.TOKEN_STRIPPED_AT_SEND], seen[m.DUPLICATES_SKIPPED], seen[m.DELIVERED]) == (2, 1, 2)


# Sent so long ago that one more back-off could outlive the delivery queue's retention (the breaker's give-up rule)
LONG_AGO = NOW - BreakerPolicy().give_up_age_s - 60


def test_a_record_given_up_before_it_expires_is_logged_and_counted_as_retries_exhausted(
    logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the breaker in use and a record sent long ago, whose POST now fails transiently
    queue = FakeDeliveryQueue()
    capsys.readouterr()
    handle(runtime(FakeKochava(default=TRANSIENT), queue, FakeBreakerStore()), "u-old", sent_at=LONG_AGO)
    # Then it is dead-lettered, and its line and the per-reason metric both say retries_exhausted (the alarm and
    # the runbook go by the reason: a dead letter without one is counted under "None")
    [line] = [line for line in lines(logs) if "verdict" in line]
    assert (line["verdict"], line["reason"], line["dead_letter_sent"]) == (
        "dead_letter",
        reasons.RETRIES_EXHAUSTED,
        True,
    )
    assert line["error"].startswith("waited ")
    [emitted] = [json.loads(out) for out in capsys.readouterr().out.splitlines() if m.DEAD_LETTERED in out]
    assert emitted["reason"] == reasons.RETRIES_EXHAUSTED


def test_an_old_record_kochava_accepts_is_delivered_not_given_up(logs: io.StringIO) -> None:
    # Given the breaker in use and a record sent long ago (after a long outage), which Kochava now accepts
    queue = FakeDeliveryQueue()
    response = handle(runtime(FakeKochava(), queue, FakeBreakerStore()), "u-late", sent_at=LONG_AGO)
    # Then it is delivered, and not also dead-lettered as if it had been given up
    [line] = [line for line in lines(logs) if "verdict" in line]
    assert line["verdict"] == "delivered"
    assert queue.dead_letters == []
    assert response == {"batchItemFailures": []}


def test_the_breaker_opening_in_a_batch_gets_its_warning_line(logs: io.StringIO) -> None:
    # Given Kochava failing for every record of a batch from six devices, the breaker closed
    store = FakeBreakerStore()
    built = runtime(FakeKochava(default=TRANSIENT), FakeDeliveryQueue(), store)
    records = [
        {"messageId": f"msg-{i}", "receiptHandle": f"rh-{i}", "body": device_event_body(f"u-{i}", f"dev-{i}")}
        for i in range(6)
    ]
    # When the batch is handled
    try:
        handler.handle(built, {"Records": records}, FakeContext())  # type: ignore[arg-type]
    finally:
        built.close()
    # Then the breaker opened, and on-call reads it in the log
    assert store.state.is_open
    [opened] = [line for line in lines(logs) if line["message"].startswith("Kochava breaker opened")]
    assert (opened["level"], opened["breaker_mode"]) == ("WARNING", "send")


class _Snapshotting(FakeKochava):
    """Kochava answering, and keeping what the idempotency store held while the POST was in flight."""

    store: MemoryPersistence
    seen: list[Any]

    def send(self, kind: Any, payload: Any, *, deadline: float, retry: bool = True) -> Any:
        self.seen = list(self.store.records.values())
        return super().send(kind, payload, deadline=deadline, retry=retry)


def test_a_delivery_in_flight_expires_when_the_invocation_would_time_out() -> None:
    # Given an invocation with 30 s left
    kochava, store = _Snapshotting(), MemoryPersistence()
    kochava.store = store
    sender = IdempotentSender(kochava, store, expires_after_s=3600)
    built = Runtime(Deliverer(sender, FakeDeliveryQueue(), max_workers=1, clock=lambda: NOW), sender, kochava)
    before_ms = time.time() * 1000
    # When it sends a record
    handle(built, "u-1")
    # Then while the POST was in flight its idempotency record was marked to expire with the invocation (so that
    # a copy of the event is not kept waiting for the record's whole TTL if this Lambda dies mid-POST)
    [in_flight] = kochava.seen
    assert in_flight.status == "INPROGRESS"
    assert in_flight.in_progress_expiry_timestamp is not None
    assert before_ms + 25_000 <= in_flight.in_progress_expiry_timestamp <= time.time() * 1000 + 30_000
