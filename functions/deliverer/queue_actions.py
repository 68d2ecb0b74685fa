"""The deliverer's SQS side effects: dead-letter to the delivery DLQ, push a failed record's next try back.

Implements :class:`functions.deliverer.delivery.DeliveryQueue` on a boto3 SQS client. Dead-lettering goes through
the shared :class:`functions.adapters.sqs.SqsSender` (``SendMessageBatch``, 10 per call, partial failures
retried, raises rather than drops). Backing off is ``ChangeMessageVisibility`` on the record's receipt handle.

Example:
    >>> queue_url_from_arn("arn:aws:sqs:eu-west-1:123456789012:kochava-dev-delivery")
    'https://sqs.eu-west-1.amazonaws.com/123456789012/kochava-dev-delivery'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from functions.adapters.sqs import OutgoingMessage, SendError, SqsSender
from functions.deliverer.delivery import DeliveryRecord


def queue_url_from_arn(arn: str) -> str:
    """The queue URL of an SQS queue ARN (``arn:aws:sqs:REGION:ACCOUNT:NAME``)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    _, partition, _, region, account, name = parts
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"


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
        """Send every message to the delivery DLQ, or raise :class:`functions.adapters.sqs.SendError` (also for a
        message SQS refuses for good: the records stay with SQS rather than being acknowledged unrecorded)."""
        refused = SqsSender(self._client).send(self._dlq_url, messages)
        if refused:
            raise SendError(self._dlq_url, [{"Id": f"m{r.index}", "Code": r.code, "Message": r.error} for r in refused])

    def back_off(self, record: DeliveryRecord, visibility_timeout_s: int) -> bool:
        """Hide ``record`` for ``visibility_timeout_s`` so SQS redelivers it later; False if SQS refused."""
        try:
            queue_url = self._queue_url or queue_url_from_arn(record.event_source_arn)
            self._client.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=visibility_timeout_s
            )
        except Exception:  # the record then comes back after the queue's visibility timeout: later, not lost
            return False
        return True
