"""The SQS messages the Lambdas build and hand to their ports, as plain values (no boto3 here).

:class:`OutgoingMessage` (body + typed attributes + delay) is what a core asks a
:class:`~functions.ports.MessageSender` to send; :class:`Refused` is a message SQS will never accept as it is;
:class:`SendError` means some messages are still failing transiently, so the caller must not acknowledge its input.
:func:`dead_letter_message` and :func:`fit` build the DLQ messages both stages write (attribute names in
:mod:`functions.names`). :class:`DeliveryRecord` is the deliverer's view of one SQS record it received.

Example:
    >>> msg = dead_letter_message("{}", stage="enricher", reason="invalid_event", failed_at_ms=1, field="uuid")
    >>> sorted(msg.attributes)
    ['failed_at_ms', 'field', 'reason', 'stage']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from functions.names import (
    ATTR_FAILED_AT_MS,
    ATTR_REASON,
    ATTR_STAGE,
    ATTR_TRUNCATED,
    SQS_MAX_MESSAGE_ATTRIBUTES,
    SQS_MAX_MESSAGE_BYTES,
    sqs_message_bytes,
)

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
    if _count(msg.attributes) > SQS_MAX_MESSAGE_ATTRIBUTES:
        msg = OutgoingMessage(msg.body, _drop(dict(msg.attributes), droppable), msg.delay_seconds)
    if msg.size() <= max_bytes:
        return msg
    attrs = _drop({**msg.attributes, ATTR_TRUNCATED: True}, droppable)
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


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """The parts of an SQS record the deliverer uses."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    event_source_arn: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)  # message attributes, string values
    sent_at_ms: int | None = None  # SQS SentTimestamp: when the message entered the queue (its retention starts)

    @classmethod
    def from_sqs(cls, record: Mapping[str, Any]) -> DeliveryRecord:
        """From one entry of a Lambda SQS event's ``Records``."""
        system = record.get("attributes") or {}
        message_attributes = record.get("messageAttributes") or {}
        return cls(
            message_id=str(record["messageId"]),
            receipt_handle=str(record.get("receiptHandle", "")),
            body=str(record.get("body", "")),
            receive_count=int(system.get("ApproximateReceiveCount", 1)),
            event_source_arn=str(record.get("eventSourceARN", "")),
            sent_at_ms=int(system["SentTimestamp"]) if str(system.get("SentTimestamp", "")).isdigit() else None,
            attributes={
                name: str(value.get("stringValue", ""))
                for name, value in message_attributes.items()
                if isinstance(value, Mapping)
            },
        )
