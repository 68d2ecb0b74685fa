"""Helpers of the deliverer integration tests (envelopes: ``tests/samples/deliverer.py``): the emulated Lambda
SQS event source, reading the DLQ."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

from functions.adapters.kochava_http import HttpPolicy
from functions.deliverer import handler as deliverer_handler
from functions.names import IDEMPOTENCY_TABLE
from tests.lambda_fakes import Clock as _Clock
from tests.lambda_fakes import FakeContext as _FakeContext
from tests.samples.deliverer import NOW
from tools.local.kochava_sink import KochavaSink

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


IDEMPOTENCY_KEY_ATTRIBUTE = IDEMPOTENCY_TABLE.partition_key
