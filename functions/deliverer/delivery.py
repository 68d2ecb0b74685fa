"""What the deliverer does with one SQS batch of delivery envelopes, without Powertools wiring or boto3.

For each record, concurrently (a thread pool; the POSTs are I/O bound):

1. parse the envelope (``pipeline.envelope``); a malformed one is dead-lettered at once (``invalid_body``);
2. re-apply the AdServices 24-hour window at send time (``pipeline.adservices.apply_window_at_send``);
3. send it **once** through the :class:`OnceSender` (idempotent on ``uuid`` + ``kind``): delivered, or already
   delivered earlier (a duplicate, skipped), or still in flight elsewhere, or failed with a Kochava result;
4. decide a :class:`Verdict` from the result and the SQS receive count (:func:`decide`).

Then, once per batch and in the calling thread: dead-letter what must go to the delivery DLQ (one
``SendMessageBatch`` per 10), extend the visibility of what will be retried (``ChangeMessageVisibilityBatch``)
and build the partial-batch answer. A record is reported failed to SQS only when SQS must redeliver it.

=====================================  ==============  ==========================  =============================
case                                   verdict         reported to SQS             DLQ reason
=====================================  ==============  ==========================  =============================
2xx + ``{"success":"1"}``              delivered       success                     -
already delivered (idempotency)        duplicate       success                     -
429 / 5xx / timeout / network          retry           failed, visibility backoff  -
  ... on receive >= MAX_RECEIVE_COUNT  dead_letter     success                     ``retries_exhausted``
4xx (not 429), 3xx                     dead_letter     success                     ``kochava_rejected``
2xx without the success answer         dead_letter     success                     ``kochava_bad_response``
in flight in another invocation        retry           failed, visibility backoff  -
malformed envelope                     dead_letter     success                     ``invalid_body``
unexpected error (e.g. DynamoDB down)  failed          failed (SQS redrive later)  (``redriven`` by SQS)
=====================================  ==============  ==========================  =============================
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Literal

from functions.messages import DeliveryRecord, OutgoingMessage, dead_letter_message, fit
from functions.names import (
    ATTR_ERROR,
    ATTR_EVENT_NAME,
    ATTR_KIND,
    ATTR_RESPONSE_BODY,
    ATTR_STATUS,
    ATTR_UUID,
    FUNCTION_DELIVERER,
)
from functions.pipeline import adservices, envelope, reasons
from functions.pipeline.envelope import Envelope, EnvelopeError
from functions.ports import DeliveryQueue, KochavaResult, OnceSender, SendAnswer

Verdict = Literal["delivered", "duplicate", "retry", "dead_letter", "failed"]

# SQS backoff for a transient failure: visibility = BASE * 2**(receive_count - 1), capped. With the queue's
# maxReceiveCount of 5 the waits are 30 s, 60 s, 120 s, 240 s before the last try (Kochava's own SDK retries
# after 7 s, 30 s, 300 s, 1800 s). A longer Retry-After from Kochava wins, up to the cap. BASE is the default of
# DELIVERER_RETRY_BASE_S (tools/local scales it down).
RETRY_VISIBILITY_BASE_S: Final = 30
RETRY_VISIBILITY_CAP_S: Final = 900
SQS_MAX_VISIBILITY_S: Final = 12 * 3600
STAGE: Final = FUNCTION_DELIVERER  # the DLQ ``stage`` attribute


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """The decision for one record, with everything the handler logs and counts."""

    record: DeliveryRecord
    verdict: Verdict
    envelope: Envelope | None = None
    result: KochavaResult | None = None
    reason: str | None = None  # the DLQ reason when dead-lettered
    error: str = ""
    token_stripped: bool = False
    visibility_timeout_s: int | None = None
    dead_letter_sent: bool = False  # set after the DLQ send succeeded
    back_off_applied: bool = False

    @property
    def reported_failed(self) -> bool:
        """Whether SQS must redeliver the record (it appears in ``batchItemFailures``)."""
        if self.verdict == "dead_letter":
            return not self.dead_letter_sent
        return self.verdict in ("retry", "failed")


def retry_visibility_s(
    receive_count: int, retry_after_s: float | None = None, *, base_s: float = RETRY_VISIBILITY_BASE_S
) -> int:
    """The visibility timeout before the next try: ``base_s * 2**(n-1)`` (whole seconds, at least 1) capped at
    15 min, at least Retry-After (also capped).

    >>> [retry_visibility_s(n) for n in (1, 2, 3, 4, 5, 10)]
    [30, 60, 120, 240, 480, 900]
    >>> retry_visibility_s(1, retry_after_s=90.5)
    91
    >>> [retry_visibility_s(n, base_s=0.5) for n in (1, 2, 3, 4)]
    [1, 1, 2, 4]
    """
    exponent = max(0, min(receive_count - 1, 20))
    backoff: int = max(1, min(RETRY_VISIBILITY_CAP_S, math.ceil(base_s * 2**exponent)))
    if retry_after_s is not None:
        backoff = max(backoff, min(RETRY_VISIBILITY_CAP_S, math.ceil(retry_after_s)))
    return min(SQS_MAX_VISIBILITY_S, backoff)


def decide(
    record: DeliveryRecord,
    env: Envelope,
    answer: SendAnswer,
    *,
    max_receive_count: int,
    token_stripped: bool = False,
    retry_base_s: float = RETRY_VISIBILITY_BASE_S,
) -> RecordOutcome:
    """The verdict for a record whose envelope was sent (or skipped) by the once-only sender."""
    common: dict[str, Any] = {
        "record": record,
        "envelope": env,
        "result": answer.result,
        "token_stripped": token_stripped,
    }
    if answer.status == "delivered":
        return RecordOutcome(verdict="delivered", **common)
    if answer.status == "duplicate":
        return RecordOutcome(verdict="duplicate", **common)
    result = answer.result
    if answer.status == "failed" and result is not None:
        if result.outcome == "permanent":
            return RecordOutcome(verdict="dead_letter", reason=reasons.KOCHAVA_REJECTED, error=result.error, **common)
        if result.outcome == "bad_response":
            return RecordOutcome(
                verdict="dead_letter", reason=reasons.KOCHAVA_BAD_RESPONSE, error=result.error, **common
            )
    # Transient (429 / 5xx / timeout / network) or in flight elsewhere: SQS tries again later, or gives up here.
    error = result.error if result is not None else "a delivery of this uuid and kind is in progress elsewhere"
    if record.receive_count >= max_receive_count:
        return RecordOutcome(
            verdict="dead_letter",
            reason=reasons.RETRIES_EXHAUSTED,
            error=f"receive {record.receive_count} of {max_receive_count}: {error}",
            **common,
        )
    retry_after_s = result.retry_after_s if result is not None else None
    visibility = retry_visibility_s(record.receive_count, retry_after_s, base_s=retry_base_s)
    return RecordOutcome(verdict="retry", error=error, visibility_timeout_s=visibility, **common)


def dead_letter_for(outcome: RecordOutcome, failed_at_ms: int) -> OutgoingMessage:
    """The delivery-DLQ message: the envelope unchanged plus the attributes of docs/DESIGN.md (the envelope is cut,
    with ``truncated``=true, only when both would not fit in one SQS message)."""
    env, result, record = outcome.envelope, outcome.result, outcome.record
    message = dead_letter_message(
        record.body,
        stage=STAGE,
        reason=outcome.reason or reasons.RETRIES_EXHAUSTED,
        failed_at_ms=failed_at_ms,
        **{
            ATTR_STATUS: result.http_status if result is not None else None,
            ATTR_RESPONSE_BODY: result.response_body if result is not None else None,
            ATTR_ERROR: outcome.error,
            ATTR_UUID: env.uuid if env is not None else record.attributes.get(ATTR_UUID),
            ATTR_KIND: env.kind if env is not None else record.attributes.get(ATTR_KIND),
            ATTR_EVENT_NAME: env.event_name if env is not None else record.attributes.get(ATTR_EVENT_NAME),
        },
    )
    # An envelope near SQS's limit plus these attributes may not fit: cut the body (``truncated``), keep the reason.
    return fit(message)


@dataclass
class BatchReport:
    """The outcomes of a batch and the Lambda answer for SQS."""

    outcomes: list[RecordOutcome]
    dead_letter_error: str = ""  # set when the DLQ send failed (those records are then reported failed)

    @property
    def batch_item_failures(self) -> list[dict[str, str]]:
        return [{"itemIdentifier": o.record.message_id} for o in self.outcomes if o.reported_failed]

    def response(self) -> dict[str, list[dict[str, str]]]:
        """The ``ReportBatchItemFailures`` answer."""
        return {"batchItemFailures": self.batch_item_failures}


class Deliverer:
    """Processes batches: concurrent sends, then the batch's DLQ and backoff actions."""

    def __init__(
        self,
        sender: OnceSender,
        queue: DeliveryQueue,
        *,
        max_receive_count: int,
        max_workers: int,
        clock: Callable[[], float] = time.time,
        retry_base_s: float = RETRY_VISIBILITY_BASE_S,
    ) -> None:
        self._sender = sender
        self._queue = queue
        self._max_receive_count = max_receive_count
        self._retry_base_s = retry_base_s
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="deliver")

    def process_record(self, record: DeliveryRecord, *, deadline: float) -> RecordOutcome:
        """Parse, re-apply the AdServices window, send once, decide. Never raises."""
        try:
            env = envelope.parse(record.body)
        except EnvelopeError as exc:
            return RecordOutcome(
                record=record, verdict="dead_letter", reason=reasons.INVALID_BODY, error=f"not an envelope: {exc}"
            )
        try:
            payload, stripped = adservices.apply_window_at_send(
                env.payload, env.adservices_generated_at, now=self._clock()
            )
            answer = self._sender.send_once(env, payload, deadline=deadline)
        except Exception as exc:  # DynamoDB trouble, a bug: SQS redelivers, and redrives after maxReceiveCount
            return RecordOutcome(record=record, verdict="failed", envelope=env, error=f"{type(exc).__name__}: {exc}")
        return decide(
            record,
            env,
            answer,
            max_receive_count=self._max_receive_count,
            token_stripped=stripped,
            retry_base_s=self._retry_base_s,
        )

    def process_batch(self, records: Sequence[DeliveryRecord], *, deadline: float) -> BatchReport:
        """Send the records concurrently, then dead-letter and back off in one pass."""
        outcomes = list(self._executor.map(lambda r: self.process_record(r, deadline=deadline), records))
        report = BatchReport(outcomes)
        to_dead_letter = [i for i, o in enumerate(outcomes) if o.verdict == "dead_letter"]
        if to_dead_letter:
            failed_at_ms = int(self._clock() * 1000)
            try:
                self._queue.dead_letter([dead_letter_for(outcomes[i], failed_at_ms) for i in to_dead_letter])
            except Exception as exc:  # not in the DLQ: let SQS redeliver them rather than lose them
                report.dead_letter_error = f"{type(exc).__name__}: {exc}"
            else:
                for i in to_dead_letter:
                    outcomes[i] = _replace(outcomes[i], dead_letter_sent=True)
        for i, outcome in enumerate(outcomes):
            if outcome.verdict == "retry" and outcome.visibility_timeout_s is not None:
                applied = self._queue.back_off(outcome.record, outcome.visibility_timeout_s)
                outcomes[i] = _replace(outcome, back_off_applied=applied)
        return report

    def close(self) -> None:
        """Stop the worker threads (tests; a Lambda container just freezes)."""
        self._executor.shutdown(wait=True)


def _replace(outcome: RecordOutcome, **changes: Any) -> RecordOutcome:
    return dataclasses.replace(outcome, **changes)
