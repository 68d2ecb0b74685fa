"""SQS adapter: the only code of the Lambdas that calls SQS.

:class:`SqsSender` implements :class:`~functions.ports.MessageSender`: ``SendMessageBatch`` in batches (10 per call,
split by size), partial failures retried with backoff. Nothing is ever dropped silently; every message ends:

* accepted by SQS;
* **refused for good** (:class:`~functions.messages.Refused`, returned to the caller): SQS can never accept it as
  it is, so retrying would only fail until SQS redrives the input without a reason. That is a message over
  :data:`~functions.names.SQS_MAX_MESSAGE_BYTES` (checked before sending: SQS would fail the whole call with
  ``BatchRequestTooLong``) or a ``Failed`` entry with ``SenderFault: true`` (too long, invalid characters...).
  The caller dead-letters what it stands for, with a reason;
* or still failing transiently (``SenderFault: false``, a raising call) after the retries with backoff:
  :class:`~functions.messages.SendError` is raised, so the caller reports its SQS record failed and SQS
  redelivers it.

:class:`SqsDeliveryQueue` implements :class:`~functions.ports.DeliveryQueue` for the deliverer: dead-letter to the
delivery DLQ through the same sender, and push a failed or held record's next try back
(``ChangeMessageVisibilityBatch``, 10 per call).
:class:`SqsBackOff` implements :class:`~functions.ports.RecordBackOff` for the enricher's batch
(:class:`functions.batch.PartialBatch`): a record that could not be handed off is hidden for a while.

Example:
    >>> queue_url_from_arn("arn:aws:sqs:eu-west-1:123456789012:kochava-dev-delivery")
    'https://sqs.eu-west-1.amazonaws.com/123456789012/kochava-dev-delivery'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from functions.messages import DeliveryRecord, OutgoingMessage, Refused, SendError
from functions.names import SQS_MAX_MESSAGE_BYTES

# AWS service limits (not project settings): entries per SendMessageBatch call, and the total payload of one
# call (bodies + attribute names, types and values). The queue's own MaximumMessageSize caps single messages.
SQS_BATCH_MAX_ENTRIES = 10
SQS_BATCH_MAX_BYTES = 1024 * 1024


class SqsClient(Protocol):
    """The slice of the boto3 SQS client this adapter uses (a fake implements it in unit tests)."""

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]: ...


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


def queue_url_from_arn(arn: str) -> str:
    """The queue URL of an SQS queue ARN (``arn:aws:sqs:REGION:ACCOUNT:NAME``)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    _, partition, _, region, account, name = parts
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"


class SqsBackOff:
    """The :class:`~functions.ports.RecordBackOff` of one queue: a record's visibility, set by receipt handle."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def back_off(self, receipt_handle: str, visibility_timeout_s: int) -> bool:
        """Hide the record for ``visibility_timeout_s``; False if SQS refused (it then comes back sooner)."""
        try:
            self._client.change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=visibility_timeout_s
            )
        except Exception:  # the record then comes back after the queue's visibility timeout: sooner, not lost
            return False
        return True


class SqsDeliveryQueue:
    """Dead-letter and back-off actions of one deliverer container.

    ``client`` is a boto3 SQS client or a zero-argument factory of one: the happy path (every record delivered)
    never touches SQS itself, so the factory keeps a cold start from paying for an SQS client it does not use.
    The client is then created once and reused.
    """

    def __init__(self, client: Any, dlq_url: str, queue_url: str | None = None) -> None:
        self._client_or_factory = client
        self._resolved: Any = None
        self._dlq_url = dlq_url
        self._queue_url = queue_url  # None: taken from each record's eventSourceARN

    @property
    def _client(self) -> Any:
        if self._resolved is None:
            candidate = self._client_or_factory
            self._resolved = candidate() if callable(candidate) else candidate  # a boto3 client is not callable
        return self._resolved

    def dead_letter(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send every message to the delivery DLQ, or raise :class:`functions.messages.SendError` (also for a
        message SQS refuses for good: the records stay with SQS rather than being acknowledged unrecorded)."""
        refused = SqsSender(self._client).send(self._dlq_url, messages)
        if refused:
            raise SendError(self._dlq_url, [{"Id": f"m{r.index}", "Code": r.code, "Message": r.error} for r in refused])

    def back_off(self, holds: Sequence[tuple[DeliveryRecord, int]]) -> list[bool]:
        """Hide each record for its visibility timeout so SQS redelivers it later: one
        ``ChangeMessageVisibilityBatch`` per 10 records of a queue (a batch of held records costs one SQS request,
        not ten). Per record, in order: False if SQS refused it (or the call failed)."""
        applied = [False] * len(holds)
        by_queue: dict[str, list[int]] = {}
        for index, (record, _) in enumerate(holds):
            try:
                queue_url = self._queue_url or queue_url_from_arn(record.event_source_arn)
            except ValueError:
                continue
            by_queue.setdefault(queue_url, []).append(index)
        for queue_url, indexes in by_queue.items():
            for start in range(0, len(indexes), SQS_BATCH_MAX_ENTRIES):
                part = indexes[start : start + SQS_BATCH_MAX_ENTRIES]
                for index in self._change_visibility(queue_url, [(i, *holds[i]) for i in part]):
                    applied[index] = True
        return applied

    def _change_visibility(self, queue_url: str, entries: list[tuple[int, DeliveryRecord, int]]) -> list[int]:
        """One ``ChangeMessageVisibilityBatch``; the indexes SQS applied."""
        try:
            answer = self._client.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": record.receipt_handle, "VisibilityTimeout": seconds}
                    for i, record, seconds in entries
                ],
            )
        except Exception:  # those records come back after the queue's visibility timeout: later, not lost
            return []
        return [int(entry["Id"]) for entry in answer.get("Successful", [])]
