"""SQS adapter: send messages in batches (10 per call, split by size), retry partial failures, dead-letter.

The only code of the enricher that calls ``SendMessageBatch``. Handlers build :class:`OutgoingMessage` values
(body + typed attributes) and call :meth:`SqsSender.send`. Nothing is ever dropped silently; every message ends:

* accepted by SQS;
* **refused for good** (:class:`Refused`, returned to the caller): SQS can never accept it as it is, so retrying
  would only fail until SQS redrives the input without a reason. That is a message over
  :data:`~infra.resources.SQS_MAX_MESSAGE_BYTES` (checked before sending: SQS would fail the whole call with
  ``BatchRequestTooLong``) or a ``Failed`` entry with ``SenderFault: true`` (too long, invalid characters...).
  The caller dead-letters what it stands for, with a reason;
* or still failing transiently (``SenderFault: false``, a raising call) after the retries with backoff:
  :class:`SendError` is raised, so the caller reports its SQS record failed and SQS redelivers it.

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

from functions.names import (
    ATTR_FAILED_AT_MS,
    ATTR_REASON,
    ATTR_STAGE,
    ATTR_TRUNCATED,
    SQS_MAX_MESSAGE_ATTRIBUTES,
    SQS_MAX_MESSAGE_BYTES,
    sqs_message_bytes,
)

# AWS service limits (not project settings): entries per SendMessageBatch call, and the total payload of one
# call (bodies + attribute names, types and values). The queue's own MaximumMessageSize caps single messages.
SQS_BATCH_MAX_ENTRIES = 10
SQS_BATCH_MAX_BYTES = 1024 * 1024
# Error codes of a message SQS refuses because of its size (the entry's Code, or our own pre-flight check).
TOO_LONG_CODES = frozenset({"MessageTooLong", "BatchRequestTooLong", "InvalidParameterValue"})
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


@dataclass(frozen=True)
class Refused:
    """A message SQS will never accept as it is (a sender fault): ``index`` is its position in ``send()``'s input."""

    index: int
    message: OutgoingMessage
    code: str
    error: str

    @property
    def too_large(self) -> bool:
        return self.code in TOO_LONG_CODES


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
        """Bytes this message counts for against SQS's limits (body + attribute names, types, values)."""
        typed = (self._typed(name, value) for name, value in self.attributes.items() if value != "")
        return sqs_message_bytes(self.body, typed)

    @staticmethod
    def _typed(name: str, value: AttributeValue) -> tuple[str, str, str]:
        attr = _attribute(value)
        return name, attr["DataType"], attr["StringValue"]


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


def fit(
    msg: OutgoingMessage,
    *,
    max_bytes: int = SQS_MAX_MESSAGE_BYTES,
    droppable: Sequence[str] = (),
) -> OutgoingMessage:
    """``msg`` unchanged when SQS can take it (at most 10 attributes and ``max_bytes``). Over 10 attributes, the
    first of ``droppable`` present are left out until it has 10. Over the size, its body is cut (at a character
    boundary) so it fits, with the attribute ``truncated``=``true``, and more of ``droppable`` are left out to make
    room for that one. For DLQ messages: a cut body or a missing minor attribute beats losing the message.

    >>> cut = fit(OutgoingMessage("x" * 100, {"uuid": "u1"}), max_bytes=60)
    >>> cut.size() <= 60, cut.attributes["truncated"], cut.attributes["uuid"]
    (True, True, 'u1')
    """
    attrs = msg.attributes
    if _count(attrs) > SQS_MAX_MESSAGE_ATTRIBUTES:
        attrs = _drop(dict(attrs), droppable)
        msg = OutgoingMessage(msg.body, attrs, msg.delay_seconds)
    if msg.size() <= max_bytes:
        return msg
    attrs = _drop({**attrs, ATTR_TRUNCATED: True}, droppable)
    overhead = OutgoingMessage("", attrs).size()
    room = max(1, max_bytes - overhead)
    body = msg.body.encode()[:room].decode(errors="ignore") or msg.body[:1]
    return OutgoingMessage(body, attrs, msg.delay_seconds)


def _count(attrs: Mapping[str, AttributeValue]) -> int:
    return len([value for value in attrs.values() if value != ""])


def _drop(attrs: dict[str, AttributeValue], droppable: Sequence[str]) -> dict[str, AttributeValue]:
    """``attrs`` without the first of ``droppable`` present, until at most SQS's 10 attributes are left."""
    for name in droppable:
        if _count(attrs) <= SQS_MAX_MESSAGE_ATTRIBUTES:
            break
        attrs.pop(name, None)
    return attrs


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

    def send(self, queue_url: str, messages: Sequence[OutgoingMessage]) -> list[Refused]:
        """Hand every message to SQS; return those SQS refuses for good (sender faults, not retried), in input
        order. Raise :class:`SendError` when some still fail transiently after every retry (some others may then
        have been sent: callers rely on the consumer being idempotent)."""
        refused: list[Refused] = []
        sendable: list[tuple[int, OutgoingMessage]] = []
        for index, msg in enumerate(messages):
            size = msg.size()
            if size > SQS_MAX_MESSAGE_BYTES:
                error = f"message of {size} bytes (body + attributes) is over SQS's limit of {SQS_MAX_MESSAGE_BYTES}"
                refused.append(Refused(index, msg, "MessageTooLong", error))
            else:
                sendable.append((index, msg))
        position = 0
        for batch in chunks([msg for _, msg in sendable], max_bytes=self._max_batch_bytes):
            indexed = sendable[position : position + len(batch)]
            position += len(batch)
            refused.extend(self._send_batch(queue_url, indexed))
        return sorted(refused, key=lambda r: r.index)

    def _send_batch(self, queue_url: str, batch: list[tuple[int, OutgoingMessage]]) -> list[Refused]:
        # Entry ids are input positions: unique, short and valid ([A-Za-z0-9_-], <= 80 chars).
        pending = {f"m{index}": (index, msg) for index, msg in batch}
        refused: list[Refused] = []
        failed: list[Mapping[str, Any]] = []
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1:
                self.retried_entries += len(pending)
                self._sleep(self._base_delay_s * 2 ** (attempt - 2))
            entries = [msg.entry(entry_id) for entry_id, (_, msg) in pending.items()]
            try:
                response = self._client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except Exception as exc:  # the whole call failed (network, throttling after boto3's retries)
                if _error_code(exc) == "BatchRequestTooLong" and len(pending) > 1:
                    # Our size estimate was short: one call per message, each then fits or is refused alone.
                    for item in pending.values():
                        refused.extend(self._send_batch(queue_url, [item]))
                    return refused
                if _error_code(exc) == "BatchRequestTooLong":
                    [(index, msg)] = pending.values()
                    return [*refused, Refused(index, msg, "BatchRequestTooLong", str(exc))]
                if attempt == self._max_attempts:
                    raise SendError(queue_url, [{"Id": i, "Code": type(exc).__name__} for i in pending]) from exc
                continue
            failed = []
            for entry in response.get("Failed") or []:
                entry_id = str(entry.get("Id"))
                if entry.get("SenderFault") is True and entry_id in pending:
                    index, msg = pending.pop(entry_id)
                    code = str(entry.get("Code", "?"))
                    refused.append(Refused(index, msg, code, f"{code}: {entry.get('Message', '')}".rstrip(": ")))
                else:
                    failed.append(entry)
            ok_ids = {str(s["Id"]) for s in response.get("Successful") or []}
            failed_ids = {str(f["Id"]) for f in failed}
            # An id neither successful nor failed (should not happen) is treated as failed: never assume success.
            pending = {i: m for i, m in pending.items() if i in failed_ids or i not in ok_ids}
            if not pending:
                return refused
        raise SendError(queue_url, failed or [{"Id": i, "Code": "unknown"} for i in pending])


def _error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ``ClientError`` (without importing botocore), else ``""``."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, Mapping) else None
    return str(error.get("Code", "")) if isinstance(error, Mapping) else ""
