"""The deliverer Lambda on the in-memory ports: the real entry point (``handler.lambda_handler``, Powertools' logger,
metrics and idempotency included) over a runtime wired like ``runtime.build_runtime`` wires it, with the fakes of
``tests/fakes.py`` where the adapters would be. It offers what the moto ``Stack`` of ``tests/integration/deliverer``
offers (send, receive, invoke, make visible, the DLQ, the logs), so a core behaviour reads the same on either tier.

=========================  =====================================================================================
real (moto tier)           here
=========================  =====================================================================================
delivery queue (SQS)       :class:`SourceQueue`: messages with a receive count; a reported failure stays in flight
                           until :meth:`FakeStack.make_visible` (time passing); the others are deleted
Kochava over HTTP (sink)   :class:`~tests.fakes.FakeKochava` (rules on the payload, the answer of each post kept)
idempotency table          Powertools' own ``idempotent_function`` on :class:`~tests.fakes.MemoryPersistence`
delivery DLQ, back-offs    :class:`~tests.fakes.FakeDeliveryQueue`
breaker table              :class:`~tests.fakes.FakeBreakerStore` (when ``DELIVERY_STATE_TABLE_NAME`` is set)
=========================  =====================================================================================

The wiring copies ``build_runtime``'s (the configuration read by ``DelivererConfig.from_env``, the same core
arguments); ``tests/unit/deliverer/test_runtime.py`` checks ``build_runtime``'s own wiring.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from functions.deliverer import handler as deliverer_handler
from functions.deliverer.config import DelivererConfig
from functions.deliverer.core import Deliverer
from functions.deliverer.idempotency import IdempotentSender
from functions.deliverer.outage import KochavaBreaker
from functions.deliverer.runtime import Runtime
from functions.names import (
    DELIVERY_QUEUE,
    ENV_DELIVERER_MAX_WORKERS,
    ENV_DELIVERY_DLQ_URL,
    ENV_IDEMPOTENCY_TABLE,
    ENV_MAX_RECEIVE_COUNT,
    IDEMPOTENCY_TTL_S,
)
from functions.ports import KochavaClient
from tests.fakes import FakeBreakerStore, FakeDeliveryQueue, FakeKochava, MemoryPersistence
from tests.lambda_fakes import Clock, FakeContext
from tests.samples.deliverer import NOW


def context(remaining_ms: int = 30_000) -> FakeContext:
    """A context for the deliverer function."""
    return FakeContext(remaining_ms=remaining_ms, function_name="kochava-test-deliverer")


@dataclass
class Message:
    message_id: str
    body: str
    receive_count: int = 0
    visible: bool = True


@dataclass
class SourceQueue:
    """The delivery queue as the Lambda event source sees it (no retention, no redrive: the tests' runs are short)."""

    messages: dict[str, Message] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def send(self, body: str) -> None:
        message_id = f"msg-{next(self._ids)}"
        self.messages[message_id] = Message(message_id, body)

    def receive(self, max_messages: int) -> list[Message]:
        got = [m for m in self.messages.values() if m.visible][:max_messages]
        for message in got:
            message.visible = False
            message.receive_count += 1
        return got


@dataclass
class FakeStack:
    """The in-memory stand-ins, the clock, the captured logs, and ways to drive the deliverer's entry point."""

    env: dict[str, str]
    clock: Clock = field(default_factory=lambda: Clock(NOW))
    kochava: FakeKochava = field(default_factory=FakeKochava)
    persistence: MemoryPersistence = field(default_factory=MemoryPersistence)
    dlq: FakeDeliveryQueue = field(default_factory=FakeDeliveryQueue)
    breaker_store: FakeBreakerStore = field(default_factory=FakeBreakerStore)
    queue: SourceQueue = field(default_factory=SourceQueue)
    logs: io.StringIO = field(default_factory=io.StringIO)
    runtimes: list[Runtime] = field(default_factory=list)

    def use_runtime(self, *, kochava: KochavaClient | None = None) -> Runtime:
        """Build and install a runtime like the Lambda's first invocation does (a new container)."""
        config = DelivererConfig.from_env(self.env)
        client = kochava or self.kochava
        sender = IdempotentSender(client, self.persistence, expires_after_s=IDEMPOTENCY_TTL_S)
        breaker = None
        if config.state_table is not None:
            breaker = KochavaBreaker(self.breaker_store, config.breaker_policy())
        core = Deliverer(
            sender,
            self.dlq,
            max_workers=config.max_workers,
            max_attempts=config.max_attempts,
            clock=self.clock,
            retry_base_s=config.retry_base_s,
            breaker=breaker,
        )
        runtime = Runtime(core=core, sender=sender, kochava=client)
        deliverer_handler.set_runtime(runtime)
        self.runtimes.append(runtime)
        return runtime

    def send(self, *bodies: str) -> None:
        """Put envelopes on the delivery queue, as the enricher does."""
        for body in bodies:
            self.queue.send(body)

    def receive(self, max_messages: int = 10) -> dict[str, Any]:
        """The SQS event Lambda's event source would pass for what is visible now."""
        return {"Records": [self._record(m) for m in self.queue.receive(max_messages)]}

    @staticmethod
    def _record(message: Message) -> dict[str, Any]:
        return {
            "messageId": message.message_id,
            "receiptHandle": f"rh-{message.message_id}-{message.receive_count}",
            "body": message.body,
            "attributes": {"ApproximateReceiveCount": str(message.receive_count)},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
        }

    def invoke(self, event: dict[str, Any], ctx: FakeContext | None = None) -> dict[str, Any]:
        """Call the real Lambda entry point, then delete what it did not report failed (as the event source)."""
        response: dict[str, Any] = deliverer_handler.lambda_handler(event, ctx or context())
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        for record in event["Records"]:
            if record["messageId"] not in failed:
                self.queue.messages.pop(record["messageId"], None)
        return response

    def run_once(self, ctx: FakeContext | None = None) -> dict[str, Any]:
        """Receive one batch and invoke the handler on it."""
        return self.invoke(self.receive(), ctx)

    def make_visible(self, event: dict[str, Any]) -> None:
        """Time passes: the backed-off records of ``event`` become visible again at once (deleted ones are skipped)."""
        for record in event["Records"]:
            message = self.queue.messages.get(record["messageId"])
            if message is not None:
                message.visible = True

    def queue_depth(self) -> tuple[int, int]:
        """(visible, in flight) messages of the delivery queue."""
        visible = sum(m.visible for m in self.queue.messages.values())
        return visible, len(self.queue.messages) - visible

    def dlq_messages(self) -> list[dict[str, Any]]:
        """Everything in the delivery DLQ: ``{"body": ..., "attributes": {name: python value}}``."""
        return [{"body": m.body, "attributes": dict(m.attributes)} for m in self.dlq.dead_letters]

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON lines the Powertools logger wrote so far."""
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line.strip()]


def fake_stack(monkeypatch: Any) -> Iterator[FakeStack]:
    """The body of the ``stack`` fixtures: a fresh stack with the deliverer's required environment, its logs
    captured, the runtime forgotten afterwards."""
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    env = {
        ENV_DELIVERY_DLQ_URL: "https://sqs.test/delivery-dlq",
        ENV_IDEMPOTENCY_TABLE: "kochava-test-idempotency",
        ENV_MAX_RECEIVE_COUNT: str(DELIVERY_QUEUE.max_receive_count),
        ENV_DELIVERER_MAX_WORKERS: "10",
    }
    built = FakeStack(env)
    capture = logging.StreamHandler(built.logs)
    capture.setFormatter(deliverer_handler.logger.registered_handler.formatter)
    deliverer_handler.logger.addHandler(capture)
    built.use_runtime()
    try:
        yield built
    finally:
        deliverer_handler.logger.removeHandler(capture)  # type: ignore[attr-defined]
        deliverer_handler.set_runtime(None)
        for runtime in built.runtimes:
            runtime.close()
