"""What on-call sees of a deliverer batch (``functions/deliverer/handler.py`` ``handle`` and ``observe.py``): one JSON
log line per record with its verdict and facts, the metrics per invocation, and the partial batch response. On the
in-memory ports and Powertools idempotency on an in-memory layer; the whole entry point on the fakes is
``test_lambda_*.py``, the Lambda wired to real boto3 on moto ``tests/integration/deliverer``.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from functions.deliverer import handler, observe
from functions.deliverer import metrics as m
from functions.deliverer.core import BatchReport, Deliverer
from functions.deliverer.idempotency import IdempotentSender
from functions.deliverer.outage import Observation
from functions.deliverer.runtime import Runtime
from tests.fakes import DELIVERED, REJECTED, TRANSIENT, FakeDeliveryQueue, FakeKochava, MemoryPersistence
from tests.lambda_fakes import FakeContext
from tests.samples.deliverer import NOW, event_body, install_body

ERROR_503 = "HTTP 503 after 4 attempt(s)"


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(handler.logger.registered_handler.formatter)
    handler.logger.addHandler(capture)
    yield stream
    handler.logger.removeHandler(capture)


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    kochava = FakeKochava()
    sender = IdempotentSender(kochava, MemoryPersistence(), expires_after_s=3600)
    sender.register_lambda_context(FakeContext())  # type: ignore[arg-type]
    core = Deliverer(sender, FakeDeliveryQueue(), max_workers=1, max_attempts=3, clock=lambda: NOW)
    built = Runtime(core=core, sender=sender, kochava=kochava)
    yield built
    built.close()
    handler.metrics.clear_metrics()


def sqs(uuid: str, body: str, receive_count: int = 1) -> dict[str, Any]:
    return {
        "messageId": f"msg-{uuid}",
        "receiptHandle": f"rh-{uuid}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receive_count)},
    }


def lines(logs: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]


def test_each_record_is_logged_with_its_verdict_and_the_batch_is_counted(runtime: Runtime, logs: io.StringIO) -> None:
    kochava = runtime.kochava
    assert isinstance(kochava, FakeKochava)
    kochava.script(None, TRANSIENT, REJECTED, TRANSIENT, DELIVERED)  # the port carries no uuid: in POST order
    batch = {
        "Records": [
            sqs("u-retry", event_body("u-retry"), receive_count=1),
            sqs("u-bad", event_body("u-bad", event_name="Rejected")),
            sqs("u-last", event_body("u-last"), receive_count=3),
            sqs("u-ok", event_body("u-ok")),
            sqs("u-junk", "not an envelope"),
        ]
    }
    response = handler.handle(runtime, batch, FakeContext())  # type: ignore[arg-type]

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-u-retry"}]}
    per_record = {line["message_id"]: line for line in lines(logs) if "verdict" in line}
    retry, bad, last, ok, junk = (per_record[f"msg-{u}"] for u in ("u-retry", "u-bad", "u-last", "u-ok", "u-junk"))
    assert (ok["message"], ok["verdict"], ok["correlation_id"], ok["kind"], ok["event_name"]) == (
        "delivered to Kochava",
        "delivered",
        "u-ok",
        "event",
        "Purchase",
    )
    assert (ok["http_status"], ok["attempts"], ok["receive_count"], ok["level"]) == (200, 1, 1, "INFO")
    assert (retry["message"], retry["level"], retry["verdict"]) == (
        "transient failure: SQS will retry",
        "WARNING",
        "retry",
    )
    assert (retry["error"], retry["visibility_timeout_s"], retry["back_off_applied"]) == (ERROR_503, 30, True)
    assert (bad["message"], bad["level"], bad["reason"], bad["dead_letter_sent"]) == (
        "dead-lettered",
        "ERROR",
        "kochava_rejected",
        True,
    )
    assert bad["response_body"] == '{"success":"0","error":"bad app id"}'
    assert (last["reason"], last["error"]) == ("retries_exhausted", f"attempt 3 of 3: {ERROR_503}")
    assert junk["reason"] == "invalid_body" and not {"correlation_id", "kind", "http_status"} & set(junk)
    [done] = [line for line in lines(logs) if line["message"] == "batch done"]
    assert (done["records"], done["reported_failed"]) == (5, 1)
    assert done["verdicts"] == {"retry": 1, "dead_letter": 3, "delivered": 1}


def test_the_metrics_count_each_verdict_and_the_dead_letters_per_reason(runtime: Runtime) -> None:
    kochava = runtime.kochava
    assert isinstance(kochava, FakeKochava)
    kochava.script(None, TRANSIENT, REJECTED, DELIVERED)
    batch = {
        "Records": [
            sqs("u-retry", event_body("u-retry")),
            sqs("u-bad", event_body("u-bad")),
            sqs("u-ok", event_body("u-ok")),
            sqs("u-junk", "{}"),
        ]
    }
    report = runtime.core.process_batch([handler.DeliveryRecord.from_sqs(r) for r in batch["Records"]], deadline=1e12)
    handler.metrics.clear_metrics()
    observe.count(handler.metrics, report, namespace="ns", service="deliverer")
    counted = {name: sum(v["Value"]) for name, v in handler.metrics.metric_set.items()}
    assert counted == {
        m.DELIVERED: 1,
        m.DUPLICATES_SKIPPED: 0,
        m.TRANSIENT_FAILURES: 1,
        m.DELIVERY_ERRORS: 0,
        m.TOKEN_STRIPPED_AT_SEND: 0,
        m.KOCHAVA_HTTP_RETRIES: 3,  # the 503's four HTTP attempts; the 400 and the delivery took one each
        m.DELIVERIES_HELD: 0,
        m.BREAKER_OPEN: 0,
        m.KOCHAVA_PROBES: 0,
        m.BREAKER_OPENED: 0,
        m.BREAKER_CLOSED: 0,
    }
    # Each is a count in CloudWatch (a metric without its unit cannot be graphed with the others)
    assert {name: v["Unit"] for name, v in handler.metrics.metric_set.items()} == dict.fromkeys(counted, "Count")


def test_dead_letters_are_counted_per_reason_in_their_own_metric(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a batch with two records Kochava rejects, one retried, one malformed and one delivered
    kochava = runtime.kochava
    assert isinstance(kochava, FakeKochava)
    kochava.script(None, REJECTED, TRANSIENT, REJECTED, DELIVERED)
    batch = [sqs(u, event_body(u)) for u in ("u-1", "u-2", "u-3", "u-4")] + [sqs("u-junk", "{}")]
    report = runtime.core.process_batch([handler.DeliveryRecord.from_sqs(r) for r in batch], deadline=1e12)
    capsys.readouterr()
    # When the invocation's metrics are written
    observe.count(handler.metrics, report, namespace="ns", service="deliverer")
    handler.metrics.clear_metrics()
    # Then one DeadLettered count per reason is printed (EMF), with its reason and service dimensions
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if m.DEAD_LETTERED in line]
    counts = {(e["reason"], e["service"]): e[m.DEAD_LETTERED] for e in emitted}
    assert counts == {("invalid_body", "deliverer"): [1.0], ("kochava_rejected", "deliverer"): [2.0]}
    assert all(e["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ns" for e in emitted)


def test_the_deadline_leaves_the_finish_reserve_of_the_lambda_s_time(runtime: Runtime) -> None:
    before = time.monotonic()
    handler.handle(runtime, {"Records": [sqs("u-1", event_body("u-1"))]}, FakeContext(remaining_ms=30_000))  # type: ignore[arg-type]
    after = time.monotonic()
    assert isinstance(runtime.kochava, FakeKochava)
    [post] = runtime.kochava.posts
    assert before + 30 - handler.FINISH_RESERVE_S <= post.deadline <= after + 30 - handler.FINISH_RESERVE_S


def test_a_duplicate_and_a_stripped_token_are_logged_as_such(runtime: Runtime, logs: io.StringIO) -> None:
    stale = install_body("i-1", generated_at=NOW - 2 * 24 * 3600)
    handler.handle(runtime, {"Records": [sqs("i-1", stale)]}, FakeContext())  # type: ignore[arg-type]
    handler.handle(runtime, {"Records": [sqs("i-1", stale)]}, FakeContext())  # type: ignore[arg-type]
    first, again = (line for line in lines(logs) if "verdict" in line)
    assert (first["verdict"], first["adservices_token_stripped"]) == ("delivered", True)
    assert (again["message"], again["verdict"]) == ("already delivered: duplicate skipped", "duplicate")


def test_each_breaker_transition_gets_its_line(logs: io.StringIO) -> None:
    seen = Observation(opened=True, closed=True, error="closing the breaker: RuntimeError: from 203.0.113.7")
    observe.log_breaker(handler.logger, BatchReport([], breaker_mode="probe", probes=2, breaker=seen))
    opened, closed, failed = lines(logs)
    assert (opened["message"], opened["level"], opened["breaker_mode"]) == (
        "Kochava breaker opened: deliveries held, probing",
        "WARNING",
        "probe",
    )
    assert (closed["message"], closed["level"], closed["probes"]) == (
        "Kochava breaker closed: a probe got an answer, the backlog drains",
        "INFO",
        2,
    )
    assert (failed["message"], failed["error"]) == (
        "Kochava breaker store failed; batch handled regardless",
        "closing the breaker: RuntimeError: from <ip>",
    )


def test_the_container_keeps_the_runtime_it_was_given(runtime: Runtime) -> None:
    handler.set_runtime(runtime)
    try:
        assert handler.get_runtime() is runtime
    finally:
        handler.set_runtime(None)


def test_a_dlq_that_cannot_be_written_is_logged_and_its_records_left_for_sqs(logs: io.StringIO) -> None:
    kochava, queue = FakeKochava(default=REJECTED), FakeDeliveryQueue()
    queue.fail_dead_letters()
    sender = IdempotentSender(kochava, MemoryPersistence(), expires_after_s=3600)
    runtime = Runtime(Deliverer(sender, queue, max_workers=1, clock=lambda: NOW), sender, kochava)
    try:
        response = handler.handle(runtime, {"Records": [sqs("u-1", event_body("u-1"))]}, FakeContext())  # type: ignore[arg-type]
    finally:
        runtime.close()
        handler.metrics.clear_metrics()
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-u-1"}]}
    [failed] = [line for line in lines(logs) if line["message"] == "delivery DLQ send failed; records left for SQS"]
    assert failed["level"] == "ERROR" and failed["error"].startswith("SendError")


class _StoreDown(MemoryPersistence):
    """The idempotency table unreachable (every write fails, as DynamoDB down after boto3's retries)."""

    def _put_record(self, data_record: Any) -> None:
        raise RuntimeError("DynamoDB unreachable from 203.0.113.7")


def test_an_unexpected_error_is_logged_as_such_and_the_record_left_for_sqs(logs: io.StringIO) -> None:
    # Given an idempotency store that cannot be written
    kochava = FakeKochava()
    sender = IdempotentSender(kochava, _StoreDown(), expires_after_s=3600)
    runtime = Runtime(Deliverer(sender, FakeDeliveryQueue(), max_workers=1, clock=lambda: NOW), sender, kochava)
    # When a record is handled
    try:
        response = handler.handle(runtime, {"Records": [sqs("u-1", event_body("u-1"))]}, FakeContext())  # type: ignore[arg-type]
        errors = sum(handler.metrics.metric_set[m.DELIVERY_ERRORS]["Value"])
    finally:
        runtime.close()
        handler.metrics.clear_metrics()
    # Then it is counted as a delivery error
    assert errors == 1
    # and nothing is posted, SQS keeps the record, and its line says so with the event's facts, the IP masked
    assert kochava.posts == []
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-u-1"}]}
    [line] = [line for line in lines(logs) if "verdict" in line]
    assert (line["message"], line["level"], line["verdict"]) == (
        "unexpected error: SQS will redeliver",
        "ERROR",
        "failed",
    )
    assert (line["correlation_id"], line["kind"], line["event_name"], line["receive_count"]) == (
        "u-1",
        "event",
        "Purchase",
        1,
    )
    assert "DynamoDB unreachable from <ip>" in line["error"]


def test_the_container_builds_its_runtime_from_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a container whose environment names Kochava's URL (and the required DLQ and table)
    monkeypatch.setenv("DELIVERY_DLQ_URL", "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq")
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", "idempotency")
    monkeypatch.setenv("KOCHAVA_URL", "https://kochava.test/track/json")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    handler.set_runtime(None)
    try:
        # When the first invocation asks for the runtime, and the next one
        first = handler.get_runtime()
        again = handler.get_runtime()
        # Then it was built once, from that environment
        assert again is first
        assert first.kochava.url_for("event") == "https://kochava.test/track/json"  # type: ignore[attr-defined]
    finally:
        handler.get_runtime().close()
        handler.set_runtime(None)


def test_the_breaker_s_transitions_and_probes_are_counted() -> None:
    # Given an invocation that probed twice while the breaker was open, and saw it open and close
    report = BatchReport([], breaker_mode="probe", probes=2, breaker=Observation(opened=True, closed=True))
    # When its metrics are written
    handler.metrics.clear_metrics()
    observe.count(handler.metrics, report, namespace="ns", service="deliverer")
    counted = {name: sum(v["Value"]) for name, v in handler.metrics.metric_set.items()}
    handler.metrics.clear_metrics()
    # Then the alarms on the breaker see each transition, the open mode and the probes
    assert (counted[m.BREAKER_OPENED], counted[m.BREAKER_CLOSED]) == (1, 1)
    assert (counted[m.BREAKER_OPEN], counted[m.KOCHAVA_PROBES]) == (1, 2)
