"""The local stack's own parts: the Lambda event shape, partial batch responses, redrive, the API's SQS call."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import pytest

from functions.names import ENV_DELIVERER_RETRY_BASE_S, QueueSpec
from infra.resources import ResourceNames
from tests.e2e.shared import NATIVE_EVENT, Run
from tools.local import aws
from tools.local.api import IngestApi, load_validators
from tools.local.pollers import BatchResult, LambdaContext, QueuePoller, failed_ids, lambda_record

MESSAGE = {
    "MessageId": "m-1",
    "ReceiptHandle": "rh-1",
    "Body": "{}",
    "MD5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
    "Attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1700000000000"},
    "MessageAttributes": {
        "route": {"DataType": "String", "StringValue": "native"},
        "received_at_ms": {"DataType": "Number", "StringValue": "1700000000000"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    },
}


def test_lambda_record_has_the_sqs_event_source_shape() -> None:
    record = lambda_record(MESSAGE, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")
    assert record["messageId"] == "m-1"
    assert record["receiptHandle"] == "rh-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "3"
    assert record["messageAttributes"]["route"] == {
        "stringValue": "native",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["received_at_ms"]["dataType"] == "Number"
    assert base64.b64decode(record["messageAttributes"]["blob"]["binaryValue"]) == b"\x00\x01"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":q")


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "a"}]}, {"a"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, None),  # unknown id: Lambda fails the whole batch
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ("nonsense", None),
    ],
)
def test_partial_batch_response_is_read_as_lambda_does(response: Any, expected: set[str] | None) -> None:
    records = [{"messageId": "a"}, {"messageId": "b"}]
    assert failed_ids(response, records) == expected


def test_context_deadline_counts_down() -> None:
    context = LambdaContext("f", timeout_s=30, region="us-east-1")
    assert 29_000 < context.get_remaining_time_in_millis() <= 30_000
    assert context.invoked_function_arn.endswith(":function:f")


class RecordingSqs:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("SQS is down")
        self.calls.append(kwargs)
        return {"MessageId": "sqs-1"}


def test_api_sends_the_body_as_received_with_the_integration_attributes() -> None:
    sqs = RecordingSqs()
    api = IngestApi(sqs, "http://q", "k", load_validators())
    body = json.dumps(NATIVE_EVENT, indent=1).encode()
    answer = api.handle("POST", "/v1/events", {"x-api-key": "k"}, body, len(body))
    assert answer.status == 202
    assert answer.document["message_id"] == "sqs-1"
    (call,) = sqs.calls
    assert call["MessageBody"] == body.decode()
    attributes = call["MessageAttributes"]
    assert attributes["route"] == {"DataType": "String", "StringValue": "native"}
    assert attributes["request_id"] == {"DataType": "String", "StringValue": answer.document["request_id"]}
    assert attributes["received_at_ms"]["DataType"] == "Number"
    assert abs(int(attributes["received_at_ms"]["StringValue"]) - time.time() * 1000) < 60_000


def test_api_never_answers_202_when_sqs_fails() -> None:
    api = IngestApi(RecordingSqs(fail=True), "http://q", "k", load_validators())
    body = json.dumps(NATIVE_EVENT).encode()
    answer = api.handle("POST", "/v1/events", {"x-api-key": "k"}, body, len(body))
    assert answer.status == 500


# What SQS counts for the four attributes the API adds, worked out by hand: name + data type + value bytes.
# request_id: 10 + 6 + 36 (a UUID); received_at_ms: 14 + 6 + 13 (epoch ms); route: 5 + 6 + 6 ("native");
# api_key_id: 10 + 6 + 13 ("local-default").
API_ATTRIBUTE_BYTES = 52 + 33 + 17 + 29


@pytest.mark.parametrize(("over", "status"), [(0, 202), (1, 413)])
def test_api_answers_413_when_body_and_its_attributes_are_over_the_sqs_limit(over: int, status: int) -> None:
    # moto ignores the attributes; SQS does not: a body that fits alone but not with them is refused by AWS (413).
    sqs = RecordingSqs()
    api = IngestApi(sqs, "http://q", "k", load_validators())
    event = json.dumps(NATIVE_EVENT).encode()
    body = event + b" " * (1024 * 1024 - API_ATTRIBUTE_BYTES - len(event) + over)
    answer = api.handle("POST", "/v1/events", {"x-api-key": "k"}, body, len(body))
    assert answer.status == status, answer.document
    assert len(sqs.calls) == (1 if status == 202 else 0)
    if status == 413:
        assert answer.document["message"] == "Request Entity Too Large"
        assert "message attributes" in answer.document["error"]
        assert "request_id" in answer.document


def test_deliverer_backoff_is_scaled_through_its_environment_not_patched(run: Run) -> None:
    import os

    from functions.deliverer import core as delivery
    from functions.deliverer.config import DelivererConfig

    # The deliverer reads DELIVERER_RETRY_BASE_S like a deployed one would; nothing in it is wrapped at runtime.
    assert run.stack.lambda_environment()[ENV_DELIVERER_RETRY_BASE_S] == str(30 / aws.TIME_SCALE)
    assert os.environ[ENV_DELIVERER_RETRY_BASE_S] == str(30 / aws.TIME_SCALE)
    assert delivery.retry_visibility_s.__module__ == "functions.deliverer.core"
    config = DelivererConfig.from_env(os.environ)
    assert [delivery.retry_visibility_s(n, base_s=config.retry_base_s) for n in (1, 2, 3, 4)] == [1, 1, 2, 4]


def test_failed_records_are_retried_then_redriven_to_the_dlq(run: Run) -> None:
    """Partial batch failure: the good record is deleted, the bad one comes back and SQS redrives it."""
    spec = QueueSpec(key="redrive-test", consumer_timeout_s=1, batch_size=10, batching_window_s=0, max_receive_count=2)
    sqs = aws.client("sqs", run.stack.endpoint_url)
    urls = aws.create_queue(sqs, ResourceNames("e2e"), spec)
    sqs.send_message(QueueUrl=urls.queue, MessageBody="good")
    sqs.send_message(QueueUrl=urls.queue, MessageBody="bad")
    seen: list[tuple[str, str]] = []
    results: list[BatchResult] = []
    done = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.extend((r["body"], r["attributes"]["ApproximateReceiveCount"]) for r in event["Records"])
        return {
            "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"]
        }

    def on_batch(result: BatchResult) -> None:
        results.append(result)

    poller = QueuePoller(
        spec,
        sqs,
        urls.queue,
        urls.queue_arn,
        "test",
        handler,
        region=aws.REGION,
        visibility_timeout_s=aws.local_visibility_timeout_s(spec),
        on_batch=on_batch,
    )
    poller.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not done.is_set():
            dlq = sqs.receive_message(QueueUrl=urls.dlq, WaitTimeSeconds=1, MessageAttributeNames=["All"])
            if dlq.get("Messages"):
                done.set()
                assert dlq["Messages"][0]["Body"] == "bad"
    finally:
        poller.stop()
    assert done.is_set(), f"not redriven; handler saw {seen}"
    assert ("good", "1") in seen
    assert [count for body, count in seen if body == "bad"] == ["1", "2"]
    assert poller.stats.succeeded == 1


def test_a_long_invocation_keeps_its_batch_invisible(run: Run) -> None:
    """The local visibility timeout is short (2 s here); a handler running 3 s must not see its message twice."""
    spec = QueueSpec(key="heartbeat-test", consumer_timeout_s=1, batch_size=1, batching_window_s=0)
    assert aws.local_visibility_timeout_s(spec) == 2
    sqs = aws.client("sqs", run.stack.endpoint_url)
    urls = aws.create_queue(sqs, ResourceNames("e2e"), spec)
    sqs.send_message(QueueUrl=urls.queue, MessageBody="slow")
    calls: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        calls.append(event["Records"][0]["body"])
        time.sleep(3)

    poller = QueuePoller(
        spec,
        sqs,
        urls.queue,
        urls.queue_arn,
        "test",
        handler,
        region=aws.REGION,
        visibility_timeout_s=aws.local_visibility_timeout_s(spec),
        concurrency=2,  # a second poller thread would pick the message up if it became visible
    )
    poller.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and poller.stats.invocations < 1:
            time.sleep(0.2)
        time.sleep(1)
    finally:
        poller.stop()
    assert calls == ["slow"]
    assert poller.stats.succeeded == 1
    assert poller.stats.timed_out_invocations == 1  # counted (ran 3 s > 1 s), not failed: enforce_timeout is off
    left = sqs.get_queue_attributes(QueueUrl=urls.queue, AttributeNames=["All"])["Attributes"]
    assert left["ApproximateNumberOfMessages"] == left["ApproximateNumberOfMessagesNotVisible"] == "0"
