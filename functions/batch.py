"""One SQS batch, one shape, for both Lambdas: records in, the partial-batch answer out.

In the spirit of Powertools' ``BasePartialProcessor`` (process each record, collect the failures, answer with
``batchItemFailures``, fail the invocation when every record failed), without its import cost: importing
``aws_lambda_powertools.utilities.batch`` also imports asyncio, every event data class and the parser's pydantic
models, about 60 ms of cold start. Both handlers are then wiring only::

    records = batch.records_of(event)          # the SQS event's records, as Lambda passes them
    ... the core processes them (per record, or as a batch) and reports the ids SQS must redeliver ...
    return batch.partial_response(failed_ids)  # {"batchItemFailures": [{"itemIdentifier": id}, ...]}

The enricher processes one record at a time with :class:`PartialBatch`: a record whose processing raises is
reported failed and, as it is not the event's fault (SQS or DynamoDB trouble), hidden for a growing while through
the :class:`~functions.ports.RecordBackOff` port (``adapters.sqs.SqsBackOff``), so it is not retried every
visibility timeout; when every record failed the invocation fails (:class:`AllRecordsFailedError`), as with
Powertools. The deliverer's core (``functions/deliverer/core.py``) sends its records concurrently and acts on the
batch as a whole (the shared Kochava breaker, one DLQ call per 10, back-offs in one pass), so it hands its failed
ids to :func:`partial_response` and answers even when all failed (a batch held through a Kochava outage is not an
error of the function).

Example:
    >>> calls = []
    >>> class Hide:
    ...     def back_off(self, receipt_handle, visibility_timeout_s):
    ...         calls.append((receipt_handle, visibility_timeout_s)); return True
    >>> def work(record):
    ...     if record["body"] == "bad":
    ...         raise ValueError("no")
    ...     return record["body"].upper()
    >>> batch = PartialBatch(work, back_off=Hide(), visibility_s=lambda receive_count: 60 * receive_count)
    >>> second_try = {"ApproximateReceiveCount": "2"}
    >>> records = [{"messageId": "m1", "body": "ok"},
    ...            {"messageId": "m2", "body": "bad", "receiptHandle": "r2", "attributes": second_try}]
    >>> batch.process(records), batch.response(), calls
    (['OK'], {'batchItemFailures': [{'itemIdentifier': 'm2'}]}, [('r2', 120)])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from functions.ports import RecordBackOff

SqsRecord = Mapping[str, Any]
"""One record of the SQS event, as Lambda passes it (``messageId``, ``body``, ``messageAttributes``...)."""
BatchResponse = dict[str, list[dict[str, str]]]
"""The ``ReportBatchItemFailures`` answer: ``{"batchItemFailures": [{"itemIdentifier": message id}, ...]}``."""

R = TypeVar("R")


class AllRecordsFailedError(RuntimeError):
    """Every record of the batch failed: the invocation fails (SQS redelivers them all after their visibility)."""


def records_of(event: Mapping[str, Any]) -> Sequence[SqsRecord]:
    """The records of an SQS event (none when there are none)."""
    records: Sequence[SqsRecord] = event.get("Records") or []
    return records


def receive_count(record: SqsRecord) -> int:
    """SQS's ``ApproximateReceiveCount`` of a record (1 when absent)."""
    system = record.get("attributes") or {}
    return int(system.get("ApproximateReceiveCount", 1) or 1)


def partial_response(failed_ids: Iterable[str]) -> BatchResponse:
    """The answer that makes SQS redeliver these records only (the others are deleted)."""
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed_ids]}


@dataclass(frozen=True)
class BackedOff:
    """A failed record hidden for a while (what the handler logs and counts)."""

    message_id: str
    visibility_timeout_s: int
    receive_count: int
    applied: bool  # whether SQS took it (if not, the record comes back after the queue's visibility timeout)


class PartialBatch(Generic[R]):
    """Processes records one at a time: a record that raises is reported failed and backed off; the others are
    done. :meth:`response` is the answer to SQS (or :class:`AllRecordsFailedError` when nothing went through)."""

    def __init__(
        self,
        process_record: Callable[[SqsRecord], R],
        *,
        back_off: RecordBackOff | None,
        visibility_s: Callable[[int], int],
        on_back_off: Callable[[BackedOff], None] | None = None,
    ) -> None:
        self._process_record = process_record
        self._back_off = back_off
        self._visibility_s = visibility_s  # receive count -> seconds hidden before the next try
        self._on_back_off = on_back_off
        self.records = 0
        self.failed: list[str] = []  # message ids SQS must redeliver
        self.backed_off: list[BackedOff] = []

    def process(self, records: Iterable[SqsRecord]) -> list[R]:
        """Process every record; return the results of those that went through, in order."""
        done: list[R] = []
        for record in records:
            self.records += 1
            try:
                done.append(self._process_record(record))
            except Exception:  # the record's own handler logged it; SQS redelivers this record only, later
                self.failed.append(str(record.get("messageId")))
                self._hide(record)
        return done

    def _hide(self, record: SqsRecord) -> None:
        if self._back_off is None:
            return
        count = receive_count(record)
        seconds = self._visibility_s(count)
        applied = self._back_off.back_off(str(record.get("receiptHandle", "")), seconds)
        backed_off = BackedOff(str(record.get("messageId")), seconds, count, applied)
        self.backed_off.append(backed_off)
        if self._on_back_off is not None:
            self._on_back_off(backed_off)

    def response(self) -> BatchResponse:
        """The partial-batch answer; raise :class:`AllRecordsFailedError` when every record failed (so the
        function's Errors metric shows it and the event source mapping backs off), as Powertools does."""
        if self.records and len(self.failed) == self.records:
            raise AllRecordsFailedError(f"All records failed processing: {self.records} of {self.records}")
        return partial_response(self.failed)
