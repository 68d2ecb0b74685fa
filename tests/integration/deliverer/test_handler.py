"""The deliverer Lambda end to end: SQS (moto) -> handler -> real HTTP to the local Kochava sink -> DLQ / backoff.

What the core decides for a record (partial batch answer, retries_exhausted, invalid_body, the DLQ attributes) is
tested on in-memory ports in ``tests/unit/deliverer`` (through the entry point: ``test_lambda_*.py``, among them
the EMF metrics and the back-off base from the environment, moved from here); how Kochava's answers are classified in
``tests/unit/adapters/test_kochava_http.py``. These tests are the wiring: real SQS receives, real HTTP, the real
DLQ and visibility changes, the environment read by the runtime."""

from __future__ import annotations

import dataclasses
import time

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
from tests.integration.deliverer.support import FAST_POLICY, FakeContext, Stack
from tests.samples.deliverer import event_body
from tools.local.kochava_sink import IDENTITYLINK_PATH, TRACK_PATH
from tools.local.stub_http import Reply


def test_success_posts_the_payload_once_and_acknowledges(stack: Stack) -> None:
    stack.send(event_body("u-1"))
    response = stack.run_once()

    assert response == {"batchItemFailures": []}
    assert len(stack.sink.delivered) == 1
    posted = stack.sink.requests[0]
    assert posted.path == TRACK_PATH
    assert posted.json["data"]["event_name"] == "Purchase"
    assert posted.headers["content-type"] == "application/json"
    assert stack.sink.violations == []
    assert stack.queue_depth() == (0, 0)
    assert stack.dlq_messages() == []
    assert len(stack.idempotency_items()) == 1  # the delivery is remembered
    assert stack.idempotency_items()[0]["status"]["S"] == "COMPLETED"


def test_identity_link_goes_to_the_identitylink_endpoint(stack: Stack) -> None:
    from functions.pipeline import envelope

    payload = {"kochava_app_id": "koios-test-guid", "device_id": {"idfv": "X-1"}, "data": {"user_id": "user-9"}}
    stack.send(
        envelope.build_body(
            uuid="u-id", kind="identityLink", event_name="identify", payload=payload, adservices_generated_at=None
        )
    )
    assert stack.run_once() == {"batchItemFailures": []}
    assert [r.path for r in stack.sink.requests] == [IDENTITYLINK_PATH]
    assert stack.sink.requests[0].json == payload
    assert stack.sink.violations == []


def test_500_then_200_is_retried_inside_the_invocation(stack: Stack) -> None:
    stack.sink.script([500, 200])
    stack.send(event_body("u-2"))

    assert stack.run_once() == {"batchItemFailures": []}
    assert [r.reply_status for r in stack.sink.requests] == [500, 200]
    assert stack.dlq_messages() == []
    assert any(line.get("attempts") == 2 for line in stack.log_lines())


def test_429_waits_for_retry_after_then_delivers(stack: Stack) -> None:
    stack.sink.script([Reply.json(429, {"error": "slow down"}, {"Retry-After": "1"}), 200])
    stack.send(event_body("u-3"))

    started = time.monotonic()
    assert stack.run_once() == {"batchItemFailures": []}
    elapsed = time.monotonic() - started

    first, second = stack.sink.requests
    assert (first.reply_status, second.reply_status) == (429, 200)
    assert second.received_at - first.received_at >= 0.95  # Retry-After honoured, not the tiny test backoff
    assert elapsed < 5


def test_429_with_a_retry_after_beyond_the_deadline_backs_off_through_sqs(stack: Stack) -> None:
    stack.sink.script([Reply.json(429, {"error": "slow down"}, {"Retry-After": "120"})])
    stack.send(event_body("u-4"))
    event = stack.receive()

    started = time.monotonic()
    response = stack.invoke(event, FakeContext(remaining_ms=8_000))
    assert time.monotonic() - started < 2  # did not sleep 120 s, nor until the deadline

    assert response["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert len(stack.sink.requests) == 1
    retry_line = next(line for line in stack.log_lines() if line.get("verdict") == "retry")
    assert retry_line["visibility_timeout_s"] == 120  # Kochava's Retry-After beats the 30 s first backoff
    assert stack.queue_depth() == (0, 1)  # hidden by ChangeMessageVisibility, not visible again at once
    assert stack.idempotency_items() == []  # a failure leaves no record


def test_read_timeout_is_transient_and_backs_off_with_the_receive_count(stack: Stack) -> None:
    stack.sink.script([Reply.hanging(3)])
    stack.send(event_body("u-5"))
    event = stack.receive()

    started = time.monotonic()
    response = stack.invoke(event)
    assert time.monotonic() - started < 5  # one read timeout (0.5 s), no retry wait (loose: a busy machine)

    assert len(response["batchItemFailures"]) == 1
    assert len(stack.sink.requests) == 1  # a read timeout is never re-POSTed at once
    retry_line = next(line for line in stack.log_lines() if line.get("verdict") == "retry")
    assert retry_line["visibility_timeout_s"] == 30
    assert retry_line["back_off_applied"] is True
    assert "timeout" in retry_line["error"].lower()
    assert stack.idempotency_items() == []

    # Time passes; Kochava is down (503 on every retry) and the second receive backs off twice as long.
    stack.make_visible(event)
    stack.sink.add_rule(lambda r: True, [503])
    event = stack.receive()
    assert event["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    stack.invoke(event)
    retry_lines = [line for line in stack.log_lines() if line.get("verdict") == "retry"]
    assert retry_lines[-1]["visibility_timeout_s"] == 60


def test_400_goes_to_the_dlq_at_once_with_reason_status_and_body(stack: Stack) -> None:
    stack.sink.script([Reply.json(400, {"success": "0", "error": "invalid kochava_app_id"})])
    body = event_body("u-6", event_name="Signup")
    stack.send(body)

    assert stack.run_once() == {"batchItemFailures": []}  # acknowledged: it is in the DLQ with its reason

    assert len(stack.sink.requests) == 1  # a 4xx is not retried
    [dead] = stack.dlq_messages()
    assert dead["body"] == body  # the envelope unchanged, replayable
    attrs = dead["attributes"]
    assert attrs[ATTR_STAGE] == "deliverer"
    assert attrs[ATTR_REASON] == reasons.KOCHAVA_REJECTED
    assert attrs[ATTR_STATUS] == 400
    assert "invalid kochava_app_id" in attrs[ATTR_RESPONSE_BODY]
    assert attrs[ATTR_UUID] == "u-6"
    assert attrs[ATTR_KIND] == "event"
    assert attrs[ATTR_EVENT_NAME] == "Signup"
    assert attrs[ATTR_FAILED_AT_MS] > 0
    assert attrs[ATTR_ERROR]
    assert stack.queue_depth() == (0, 0)
    assert stack.idempotency_items() == []  # a replay after the fix can still send it


def test_records_are_sent_concurrently_over_kept_alive_connections(stack: Stack) -> None:
    # Kochava takes 2 s to answer: sent one after the other, the last POST would arrive 18 s after the first. Sent
    # concurrently, every POST arrives before the first answer (what is asserted: not a wall-clock bound on the
    # whole invocation, which a busy machine, e.g. another pytest-xdist worker, would stretch).
    stack.use_runtime(http_policy=dataclasses.replace(FAST_POLICY, read_timeout_s=5.0))
    stack.sink.latency_s = 2.0
    stack.send(*[event_body(f"c-{i}") for i in range(10)])
    event = stack.receive()
    assert len(event["Records"]) == 10

    assert stack.invoke(event) == {"batchItemFailures": []}
    arrivals = sorted(r.received_at for r in stack.sink.requests)
    assert len(arrivals) == 10
    assert arrivals[-1] - arrivals[0] < stack.sink.latency_s, f"POSTs spread over {arrivals[-1] - arrivals[0]:.2f} s"
    first_connections = stack.sink.connections_opened
    assert first_connections <= 10

    stack.sink.latency_s = 0.0
    stack.send(*[event_body(f"d-{i}") for i in range(10)])
    assert stack.run_once() == {"batchItemFailures": []}
    assert stack.sink.connections_opened == first_connections  # the second batch reused the pool
    assert len(stack.sink.delivered) == 20
