"""Helpers of the deliverer tests: envelopes, the emulated Lambda SQS event source, reading the DLQ."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from typing import Any

from functions.adapters.kochava_http import HttpPolicy
from functions.deliverer import handler as deliverer_handler
from functions.names import IDEMPOTENCY_TABLE
from functions.pipeline import envelope
from tests.lambda_fakes import Clock as _Clock
from tests.lambda_fakes import FakeContext as _FakeContext
from tools.local.kochava_sink import KochavaSink

NOW = 1_763_900_000.0  # 2025-11-23, the tests' clock
IOS_APP = "koios-test-guid"
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
IDFV = "A1B2C3D4-1111-2222-3333-444455556666"
DEVICE_IP = "203.0.113.77"
ADSERVICES_TOKEN = "Tk9UX0FfUkVBTF9UT0tFTl9idXRfbG9uZ19lbm91Z2hfdG9fbG9va19saWtlX29uZQ==" * 2

# Small timeouts and backoffs so the suite stays fast; the real defaults are in HttpPolicy.
FAST_POLICY = HttpPolicy(
    connect_timeout_s=0.5,
    read_timeout_s=0.5,
    max_retries=3,
    backoff_factor_s=0.02,
    backoff_jitter_s=0.02,
    backoff_max_s=0.2,
    retry_after_max_s=5,
    pool_size=10,
)


def event_payload(uuid: str, event_name: str = "Purchase", **data: Any) -> dict[str, Any]:
    """A Kochava event payload of the spec's shape (the sink checks it)."""
    return {
        "action": "event",
        "kochava_app_id": IOS_APP,
        "kochava_device_id": IDFV,
        "data": {
            "device_ids": {"idfa": IDFA, "idfv": IDFV},
            "origination_ip": DEVICE_IP,
            "usertime": int(NOW) - 60,
            "event_name": event_name,
            "event_data": {"sum": 9.99, "currency": "USD", "uuid": uuid},
            **data,
        },
    }


def install_payload(with_token: bool = True, attribution: dict[str, Any] | None = None) -> dict[str, Any]:
    """An iOS install payload, optionally with an AdServices token and resolved attribution."""
    data: dict[str, Any] = {
        "device_ids": {"idfa": IDFA, "idfv": IDFV},
        "origination_ip": DEVICE_IP,
        "usertime": int(NOW) - 3600,
        "device_ver": "iPhone15,2-iOS-17.4",
    }
    if with_token:
        data["ad_services_token"] = ADSERVICES_TOKEN
    if attribution is not None:
        data["adservices_attribution_details"] = attribution
    return {"action": "install", "kochava_app_id": IOS_APP, "kochava_device_id": IDFV, "data": data}


def event_body(uuid: str, event_name: str = "Purchase", **data: Any) -> str:
    return envelope.build_body(
        uuid=uuid,
        kind="event",
        event_name=event_name,
        payload=event_payload(uuid, event_name, **data),
        adservices_generated_at=None,
    )


def install_body(uuid: str, generated_at: float | None, attribution: dict[str, Any] | None = None) -> str:
    return envelope.build_body(
        uuid=uuid,
        kind="install",
        event_name="install",
        payload=install_payload(True, attribution),
        adservices_generated_at=generated_at,
    )


class FakeContext(_FakeContext):
    """A context for the deliverer function."""

    def __init__(self, remaining_ms: int = 30_000) -> None:
        super().__init__(remaining_ms=remaining_ms, function_name="kochava-test-deliverer")


class Clock(_Clock):
    """The tests' controllable clock, starting at ``NOW``."""

    def __init__(self, now: float = NOW) -> None:
        super().__init__(now)


@dataclass
class Stack:
    """moto SQS + DynamoDB, the Kochava sink and the deliverer's runtime, plus helpers to drive them."""

    sqs: Any
    dynamodb: Any
    queue_url: str
    queue_arn: str
    dlq_url: str
    table: str
    sink: KochavaSink
    clock: Clock
    logs: io.StringIO
    env: dict[str, str]
    runtimes: list[deliverer_handler.Runtime] = field(default_factory=list)

    def use_runtime(self, **overrides: Any) -> deliverer_handler.Runtime:
        """Build and install a runtime like the Lambda's first invocation does (fast HTTP policy by default)."""
        overrides.setdefault("http_policy", FAST_POLICY)
        runtime = deliverer_handler.build_runtime(self.env, clock=self.clock, **overrides)
        deliverer_handler.set_runtime(runtime)
        self.runtimes.append(runtime)
        return runtime

    def send(self, *bodies: str) -> None:
        """Put envelopes on the delivery queue, as the enricher does."""
        for body in bodies:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)

    def receive(self, max_messages: int = 10) -> dict[str, Any]:
        """Receive like Lambda's event source and build the SQS event it would pass to the handler."""
        messages: list[dict[str, Any]] = []
        while len(messages) < max_messages:
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, max_messages - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            messages.extend(got)
        return {"Records": [self._record(m) for m in messages]}

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                name: {"stringValue": value.get("StringValue"), "dataType": value["DataType"]}
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "eu-west-1",
        }

    def invoke(self, event: dict[str, Any], context: FakeContext | None = None) -> dict[str, Any]:
        """Call the real Lambda entry point, then delete what it did not report failed (as the event source)."""
        response: dict[str, Any] = deliverer_handler.lambda_handler(event, context or FakeContext())
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        for record in event["Records"]:
            if record["messageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"])
        return response

    def run_once(self, context: FakeContext | None = None) -> dict[str, Any]:
        """Receive one batch and invoke the handler on it."""
        return self.invoke(self.receive(), context)

    def make_visible(self, event: dict[str, Any]) -> None:
        """Time passes: the backed-off records of ``event`` become visible again at once (deleted ones are skipped)."""
        for record in event["Records"]:
            try:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
                )
            except self.sqs.exceptions.ReceiptHandleIsInvalid:
                continue

    def queue_depth(self) -> tuple[int, int]:
        """(visible, in flight) messages of the delivery queue."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def dlq_messages(self) -> list[dict[str, Any]]:
        """Everything in the delivery DLQ: ``{"body": ..., "attributes": {name: python value}}``."""
        out: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=300
            ).get("Messages", [])
            if not got:
                return out
            for message in got:
                attributes = {
                    name: int(value["StringValue"]) if value["DataType"] == "Number" else value["StringValue"]
                    for name, value in message.get("MessageAttributes", {}).items()
                }
                out.append({"body": message["Body"], "attributes": attributes})

    def idempotency_items(self) -> list[dict[str, Any]]:
        """The idempotency table's items (raw DynamoDB format)."""
        items: list[dict[str, Any]] = self.dynamodb.scan(TableName=self.table)["Items"]
        return items

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON lines the Powertools logger wrote so far."""
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line.strip()]

    def wait_in_progress_expiry(self, context: FakeContext) -> None:
        """Sleep past an in-progress record's expiry (the crashed invocation's remaining time)."""
        time.sleep(context.remaining_ms / 1000 + 0.05)


IDEMPOTENCY_KEY_ATTRIBUTE = IDEMPOTENCY_TABLE.partition_key
