"""SQS adapter: send messages in batches (10 per call, split by size), retry partial failures, dead-letter.

The only code of the enricher that calls ``SendMessageBatch``. Handlers build :class:`OutgoingMessage` values
(body + typed attributes) and call :meth:`SqsSender.send`; it either hands *every* message to SQS or raises
:class:`SendError`, so the caller can report its SQS record failed and let SQS redeliver it. Nothing is ever
dropped silently: a ``Failed`` entry is retried with backoff, then raised.

Example:
    >>> msg = dead_letter_message("{}", stage="enricher", reason="invalid_event", failed_at_ms=1, field="uuid")
    >>> sorted(msg.attributes)
    ['failed_at_ms', 'field', 'reason', 'stage']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from infra.resources import ATTR_FAILED_AT_MS, ATTR_REASON, ATTR_STAGE

# AWS service limits (not project settings): entries per SendMessageBatch call, and the total payload of one
# call (bodies + attribute names, types and values). The queue's own MaximumMessageSize caps single messages.
SQS_BATCH_MAX_ENTRIES = 10
SQS_BATCH_MAX_BYTES = 1024 * 1024
SQS_MAX_DELAY_S = 900
# Human-readable attribute values (error text, response bodies) are cut to this many characters.
MAX_TEXT_ATTRIBUTE_CHARS = 1024

AttributeValue = str | int | float


class SendError(Exception):
    """Some messages could not be handed to SQS after every retry; the caller must not acknowledge its input."""

    def __init__(self, queue_url: str, failed: Sequence[Mapping[str, Any]]) -> None:
        self.queue_url = queue_url
        self.failed = list(failed)
        codes = sorted({str(f.get("Code", "?")) for f in self.failed})
        super().__init__(f"{len(self.failed)} message(s) not accepted by SQS ({', '.join(codes)})")


class SqsClient(Protocol):
    """The slice of the boto3 SQS client this adapter uses (a fake implements it in unit tests)."""

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to send: a string body, typed attributes (str -> String, int/float -> Number), a delay."""

    body: str
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    delay_seconds: int = 0

    def entry(self, entry_id: str) -> dict[str, Any]:
        """The ``SendMessageBatch`` entry; empty string attributes are left out (SQS rejects them)."""
        out: dict[str, Any] = {"Id": entry_id, "MessageBody": self.body}
        attrs = {name: _attribute(value) for name, value in self.attributes.items() if value != ""}
        if attrs:
            out["MessageAttributes"] = attrs
        if self.delay_seconds:
            out["DelaySeconds"] = max(0, min(SQS_MAX_DELAY_S, int(self.delay_seconds)))
        return out

    def size(self) -> int:
        """Bytes this message counts for in a batch's total size (body + attribute names, types, values)."""
        n = len(self.body.encode())
        for name, value in self.attributes.items():
            n += len(name.encode()) + len(str(value).encode()) + 6  # "String" / "Number"
        return n


def _attribute(value: AttributeValue) -> dict[str, str]:
    if isinstance(value, bool):  # a bool is an int: keep it readable
        return {"DataType": "String", "StringValue": "true" if value else "false"}
    if isinstance(value, int | float):
        return {"DataType": "Number", "StringValue": repr(value) if isinstance(value, float) else str(value)}
    return {"DataType": "String", "StringValue": value}


def dead_letter_message(
    body: str,
    *,
    stage: str,
    reason: str,
    failed_at_ms: int,
    **attributes: AttributeValue | None,
) -> OutgoingMessage:
    """A DLQ message: ``stage``, ``reason``, ``failed_at_ms`` plus any other attributes (``None``/empty skipped).

    Text values are cut to :data:`MAX_TEXT_ATTRIBUTE_CHARS` so a huge error never pushes a message over the limit.
    """
    attrs: dict[str, AttributeValue] = {ATTR_STAGE: stage, ATTR_REASON: reason, ATTR_FAILED_AT_MS: failed_at_ms}
    for name, value in attributes.items():
        if value is None or value == "":
            continue
        attrs[name] = value[:MAX_TEXT_ATTRIBUTE_CHARS] if isinstance(value, str) else value
    return OutgoingMessage(body=body, attributes=attrs)


def chunks(
    messages: Sequence[OutgoingMessage],
    max_entries: int = SQS_BATCH_MAX_ENTRIES,
    max_bytes: int = SQS_BATCH_MAX_BYTES,
) -> Iterator[list[OutgoingMessage]]:
    """Split ``messages`` (order kept) into batches of at most ``max_entries`` and ``max_bytes`` in total.

    A message larger than ``max_bytes`` on its own still goes alone (SQS will answer with a clear error).
    """
    batch: list[OutgoingMessage] = []
    size = 0
    for msg in messages:
        n = msg.size()
        if batch and (len(batch) >= max_entries or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(msg)
        size += n
    if batch:
        yield batch


class SqsSender:
    """Sends messages with ``SendMessageBatch``; retries ``Failed`` entries and raising calls with backoff.

    ``max_attempts`` counts calls per batch (the first one included); the delay before retry ``k`` is
    ``base_delay_s * 2**(k-1)``. boto3's own retry mode already retries throttling of the whole call.
    """

    def __init__(
        self,
        client: SqsClient,
        *,
        max_attempts: int = 4,
        base_delay_s: float = 0.05,
        max_batch_bytes: int = SQS_BATCH_MAX_BYTES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._max_attempts = max_attempts
        self._base_delay_s = base_delay_s
        self._max_batch_bytes = max_batch_bytes
        self._sleep = sleep
        self.retried_entries = 0  # how many entries needed another call (for metrics)

    def send(self, queue_url: str, messages: Sequence[OutgoingMessage]) -> None:
        """Hand every message to SQS, or raise :class:`SendError` (some may then have been sent: callers rely
        on the consumer being idempotent)."""
        for batch in chunks(messages, max_bytes=self._max_batch_bytes):
            self._send_batch(queue_url, batch)

    def _send_batch(self, queue_url: str, batch: list[OutgoingMessage]) -> None:
        # Entry ids are positions in the batch: unique, short and valid ([A-Za-z0-9_-], <= 80 chars).
        pending = {f"m{i}": msg for i, msg in enumerate(batch)}
        failed: list[Mapping[str, Any]] = []
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1:
                self.retried_entries += len(pending)
                self._sleep(self._base_delay_s * 2 ** (attempt - 2))
            entries = [msg.entry(entry_id) for entry_id, msg in pending.items()]
            try:
                response = self._client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except Exception as exc:  # the whole call failed (network, throttling after boto3's retries)
                if attempt == self._max_attempts:
                    raise SendError(queue_url, [{"Id": i, "Code": type(exc).__name__} for i in pending]) from exc
                continue
            failed = list(response.get("Failed") or [])
            ok_ids = {str(s["Id"]) for s in response.get("Successful") or []}
            failed_ids = {str(f["Id"]) for f in failed}
            # An id neither successful nor failed (should not happen) is treated as failed: never assume success.
            pending = {i: m for i, m in pending.items() if i in failed_ids or i not in ok_ids}
            if not pending:
                return
        raise SendError(queue_url, failed or [{"Id": i, "Code": "unknown"} for i in pending])
