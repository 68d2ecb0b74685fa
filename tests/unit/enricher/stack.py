"""The enricher Lambda on the in-memory ports: the real entry point (``handler.lambda_handler``, Powertools' logger and
metrics included) over a runtime wired like ``runtime.build_runtime`` wires it from the same environment, with the
fakes of ``tests/fakes.py`` where the adapters would be. It offers what the moto ``Stack`` of
``tests/integration/enricher`` offers (records as Lambda delivers them, the queues drained, the logs), so a core
behaviour reads the same on either tier.

==========================  ====================================================================================
real (moto tier)            here
==========================  ====================================================================================
SQS (delivery, ingest DLQ,  one :class:`~tests.fakes.FakeSender`; :meth:`FakeStack.drain` reads what each queue
re-queue to ingest)         accepted as SQS would hand it out (the ``SendMessageBatch`` entry of the message)
profile table               :class:`~tests.fakes.FakeProfileStore` (when ``PROFILE_TABLE_NAME`` is set)
Apple (local stub)          :class:`~tests.fakes.FakeAdServices`, answers made by the adapter's own classifier
record back-off (SQS)       :class:`~tests.fakes.FakeRecordBackOff`
==========================  ====================================================================================

The wiring copies ``build_runtime``'s (``Settings`` and ``EnricherConfig`` read from the environment, the Apple
call budget of the real client's timeouts); ``tests/unit/enricher`` checks the rest against the core directly.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.adapters.apple import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S
from functions.enricher import handler
from functions.enricher.adservices_flow import AdServicesFlow
from functions.enricher.config import EnricherConfig
from functions.enricher.core import Enricher, Queues
from functions.enricher.runtime import Runtime
from functions.messages import OutgoingMessage
from functions.names import (
    ENV_DELIVERY_QUEUE_URL,
    ENV_INGEST_DLQ_URL,
    ENV_INGEST_QUEUE_URL,
    ENV_PROFILE_TABLE,
)
from functions.pipeline.settings import Settings
from tests.fakes import FakeAdServices, FakeProfileStore, FakeRecordBackOff, FakeSender
from tests.lambda_fakes import Clock, FakeContext, ingest_record
from tests.samples.enricher import NOW

URLS = {
    "ingest": "https://sqs.test/kochava-test-ingest",
    "ingest_dlq": "https://sqs.test/kochava-test-ingest-dlq",
    "delivery": "https://sqs.test/kochava-test-delivery",
}
TABLE = "kochava-test-profiles"
# What build_runtime gives an Apple call: the real client's timeouts and a margin.
APPLE_CALL_BUDGET_S = DEFAULT_CONNECT_TIMEOUT_S + DEFAULT_READ_TIMEOUT_S + 1.0


def received(message: OutgoingMessage, index: int) -> dict[str, Any]:
    """``message`` as ReceiveMessage hands it out: its ``SendMessageBatch`` entry's body and typed attributes."""
    entry = message.entry(f"m{index}")
    return {
        "MessageId": f"sent-{index}",
        "ReceiptHandle": f"rh-sent-{index}",
        "Body": entry["MessageBody"],
        "MessageAttributes": entry.get("MessageAttributes", {}),
        "Attributes": {},
        "DelaySeconds": entry.get("DelaySeconds", 0),
    }


@dataclass
class FakeStack:
    """The in-memory stand-ins, the clock, the captured logs, and ways to feed the handler and read what it did."""

    env: dict[str, str]
    clock: Clock
    logs: io.StringIO
    sender: FakeSender = field(default_factory=FakeSender)
    profiles: FakeProfileStore = field(default_factory=FakeProfileStore)
    apple: FakeAdServices = field(default_factory=FakeAdServices)
    back_off: FakeRecordBackOff = field(default_factory=FakeRecordBackOff)
    urls: dict[str, str] = field(default_factory=lambda: dict(URLS))
    _drained: dict[str, int] = field(default_factory=dict)
    _message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def use_runtime(self, **extra_env: str) -> Runtime:
        """Build and install a runtime from the environment, as the container's first invocation does."""
        env = {**self.env, **extra_env}
        settings, config = Settings.from_env(env), EnricherConfig.from_env(env)
        apple = self.apple
        enricher = Enricher(
            settings=settings,
            sender=self.sender,
            queues=Queues(config.ingest_queue_url, config.ingest_dlq_url, config.delivery_queue_url),
            profile_store=self.profiles if config.profile_table else None,
            adservices=(
                (lambda: AdServicesFlow(settings, apple, call_budget_s=APPLE_CALL_BUDGET_S))
                if settings.adservices_resolve
                else None
            ),
            log=handler.logger,
            profile_ttl_s=config.profile_ttl_s,
        )
        runtime = Runtime(core=enricher, clock=self.clock, back_off=self.back_off)
        handler.set_runtime(runtime)
        return runtime

    def record(self, body: Any, route: str = "native", **attributes: str) -> dict[str, Any]:
        """An SQS event record as Lambda delivers it from the ingest queue."""
        return ingest_record(body, next(self._message_ids), self.clock.now, route, **attributes)

    def as_record(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """A message the enricher sent to the ingest queue (from :meth:`drain`), as Lambda delivers it later."""
        raw = message["raw"]
        record = self.record(raw["Body"])
        record["messageAttributes"] = {
            name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
            for name, value in raw["MessageAttributes"].items()
        }
        return record

    def invoke(self, *records: dict[str, Any], remaining_ms: int = 30_000) -> dict[str, Any]:
        ctx = FakeContext(remaining_ms=remaining_ms, function_name="kochava-test-enricher")
        return dict(handler.lambda_handler({"Records": list(records)}, ctx))

    def drain(self, queue: str) -> list[dict[str, Any]]:
        """What a queue accepted since the last drain, with attributes flattened to their string values (as the moto
        stack's) and the message as SQS hands it out under ``raw``."""
        messages = self.sender.messages(self.urls[queue])
        start = self._drained.get(queue, 0)
        self._drained[queue] = len(messages)
        out = []
        for index, message in enumerate(messages[start:], start):
            raw = received(message, index)
            attrs = {name: value["StringValue"] for name, value in raw["MessageAttributes"].items()}
            out.append({"body": raw["Body"], "attributes": attrs, "raw": raw})
        return out

    def deliveries(self) -> list[dict[str, Any]]:
        """The delivery-queue envelopes (parsed JSON) with their attributes under ``_attributes``."""
        return [{**json.loads(m["body"]), "_attributes": m["attributes"]} for m in self.drain("delivery")]

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line.strip()]


def fake_stack(env: Mapping[str, str]) -> Iterator[FakeStack]:
    """The body of the ``make_stack`` fixture: the Lambda's environment (``env`` plus the queue URLs and the table),
    the logs captured, the runtime forgotten afterwards."""
    logs = io.StringIO()
    capture = logging.StreamHandler(logs)
    capture.setFormatter(handler.logger.registered_handler.formatter)
    handler.logger.addHandler(capture)
    full = {
        **env,
        ENV_INGEST_QUEUE_URL: URLS["ingest"],
        ENV_INGEST_DLQ_URL: URLS["ingest_dlq"],
        ENV_DELIVERY_QUEUE_URL: URLS["delivery"],
        ENV_PROFILE_TABLE: TABLE,
    }
    try:
        yield FakeStack(full, Clock(NOW), logs)
    finally:
        handler.logger.removeHandler(capture)  # type: ignore[attr-defined]
        handler.set_runtime(None)
