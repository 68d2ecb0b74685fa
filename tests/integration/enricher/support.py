"""Helpers of the enricher integration tests (sample events: ``tests/samples/enricher.py``): the controllable
clock, a Lambda context, and :class:`Stack`
(the moto resources plus ways to feed the handler and read what it produced)."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.lambda_fakes import Clock as _Clock
from tests.lambda_fakes import FakeContext as _FakeContext
from tests.lambda_fakes import ingest_record
from tests.samples.enricher import NOW


class FakeContext(_FakeContext):
    """A context for the enricher function."""

    def __init__(self, remaining_ms: int = 30_000) -> None:
        super().__init__(remaining_ms=remaining_ms, function_name="kochava-test-enricher")


class Clock(_Clock):
    """The tests' controllable clock, starting at ``NOW``."""

    def __init__(self, now: float = NOW) -> None:
        super().__init__(now)


@dataclass
class Stack:
    """The emulated queues and table, plus helpers to feed the handler and read what it produced."""

    sqs: Any
    dynamodb: Any
    urls: dict[str, str]
    table: str
    clock: Clock
    logs: io.StringIO
    handler: Any
    _message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def record(self, body: Any, route: str = "native", **attributes: str) -> dict[str, Any]:
        """An SQS event record as Lambda delivers it from the ingest queue."""
        return ingest_record(body, next(self._message_ids), self.clock.now, route, **attributes)

    def invoke(self, *records: dict[str, Any], remaining_ms: int = 30_000) -> dict[str, Any]:
        return dict(self.handler.lambda_handler({"Records": list(records)}, FakeContext(remaining_ms=remaining_ms)))

    def drain(self, queue: str) -> list[dict[str, Any]]:
        """Every message in a queue (received and deleted), with attributes flattened to plain values."""
        out: list[dict[str, Any]] = []
        while True:
            response = self.sqs.receive_message(
                QueueUrl=self.urls[queue],
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            messages = response.get("Messages", [])
            if not messages:
                return out
            for message in messages:
                attrs = {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}
                out.append({"body": message["Body"], "attributes": attrs, "raw": message})
                self.sqs.delete_message(QueueUrl=self.urls[queue], ReceiptHandle=message["ReceiptHandle"])

    def deliveries(self) -> list[dict[str, Any]]:
        """The delivery-queue envelopes (parsed JSON) with their attributes under ``_attributes``."""
        return [{**json.loads(m["body"]), "_attributes": m["attributes"]} for m in self.drain("delivery")]

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line.strip()]
