"""What the deliverer does with one SQS batch of delivery envelopes, without Powertools wiring or boto3.

For each record, concurrently (a thread pool; the POSTs are I/O bound):

1. parse the envelope (``pipeline.envelope``); a malformed one is dead-lettered at once (``invalid_body``);
2. re-apply the AdServices 24-hour window at send time (``pipeline.adservices.apply_window_at_send``);
3. send it **once** through the :class:`OnceSender` (idempotent on ``uuid`` + ``kind`` + app): delivered, or already
   delivered earlier (a duplicate, skipped), or another event under that key (a conflict), or still in flight
   elsewhere, or failed with a Kochava result;
4. decide a :class:`Verdict` from the result and the attempts so far (:func:`decide`).

Then, once per batch and in the calling thread: dead-letter what must go to the delivery DLQ (one
``SendMessageBatch`` per 10), extend the visibility of what will be retried (``ChangeMessageVisibilityBatch``)
and build the partial-batch answer. A record is reported failed to SQS only when SQS must redeliver it.

=====================================  ==============  ==========================  =============================
case                                   verdict         reported to SQS             DLQ reason
=====================================  ==============  ==========================  =============================
2xx + ``{"success":"1"}``              delivered       success                     -
already delivered (idempotency)        duplicate       success                     -
same key, other content (reused uuid)  dead_letter     success                     ``uuid_conflict``
429 / 5xx / timeout / network          retry           failed, visibility backoff  -
  ... on attempt >= MAX_ATTEMPTS       dead_letter     success                     ``retries_exhausted``
4xx (not 429), 3xx                     dead_letter     success                     ``kochava_rejected``
2xx without the success answer         dead_letter     success                     ``kochava_bad_response``
in flight in another invocation        retry           failed, visibility backoff  -
malformed envelope                     dead_letter     success                     ``invalid_body``
unexpected error (e.g. DynamoDB down)  failed          failed (SQS redrive later)  (``redriven`` by SQS)
Kochava breaker open (no POST)         held            failed, visibility = hold   -
  ... too old / received too often     dead_letter     success                     ``retries_exhausted``
=====================================  ==============  ==========================  =============================

With the shared Kochava breaker (:class:`~functions.deliverer.outage.KochavaBreaker`, docs/deliverer.md#kochava-
outages) a batch first reads it: open, the batch is **held** (no POST, no idempotency write); open and a probe
due, the invocation that claims it POSTs one record (an event not probed lately first) with a single attempt,
closes the breaker on Kochava's success answer or a 4xx and sends the rest, or holds them all; closed, the batch
is sent and its transient failures counted as evidence (:func:`functions.pipeline.breaker.trips`: several
distinct events from several devices within a window with no delivery open it). ``MAX_ATTEMPTS`` counts real
POST attempts per message (the store keeps them), not SQS receives: holds and probes do not use up a message's
attempts. Whatever is not delivered and would outlive the queue's retention or reach its ``maxReceiveCount``
before the next receive is dead-lettered here, with a reason (:func:`functions.pipeline.breaker.give_up`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from functions.batch import BatchResponse, partial_response
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
from functions.pipeline.breaker import BreakerState, Failure, failure_of, give_up, is_kochava_healthy, probe_order
from functions.pipeline.envelope import Envelope, EnvelopeError
from functions.ports import DeliveryQueue, KochavaResult, OnceSender, SendAnswer

if TYPE_CHECKING:
    from functions.deliverer.outage import KochavaBreaker, Observation

Verdict = Literal["delivered", "duplicate", "retry", "held", "dead_letter", "failed"]
# Real POST attempts of a message before a transient failure dead-letters it (DELIVERER_MAX_ATTEMPTS).
DEFAULT_MAX_ATTEMPTS: Final = 5

# SQS backoff for a transient failure: visibility = BASE * 2**(attempt - 1), capped. With DEFAULT_MAX_ATTEMPTS of
# 5 the waits are 30 s, 60 s, 120 s, 240 s before the last try (Kochava's own SDK retries after 7 s, 30 s, 300 s,
# 1800 s); the delivery queue's maxReceiveCount (names.DELIVERY_QUEUE, 900) is far higher, so that holds through a
# Kochava outage do not use up a message's attempts. A longer Retry-After from Kochava wins, up to the cap. BASE is
# the default of DELIVERER_RETRY_BASE_S (tools/local scales it down).
RETRY_VISIBILITY_BASE_S: Final = 30
RETRY_VISIBILITY_CAP_S: Final = 900
SQS_MAX_VISIBILITY_S: Final = 12 * 3600
STAGE: Final = FUNCTION_DELIVERER  # the DLQ ``stage`` attribute
UUID_CONFLICT_ERROR: Final = (
    "another event with this uuid, kind and app was delivered with different content: not sent; "
    "the sender reuses uuids: resend this event with a fresh uuid"
)


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
        return self.verdict in ("retry", "held", "failed")


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
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    attempts: int | None = None,
    token_stripped: bool = False,
    retry_base_s: float = RETRY_VISIBILITY_BASE_S,
) -> RecordOutcome:
    """The verdict for a record whose envelope was sent (or skipped) by the once-only sender.

    ``attempts``: the message's real POST attempts so far, this one included (the breaker store counts them);
    None: its SQS receive count stands in (no breaker).
    """
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
    if answer.status == "conflict":
        return RecordOutcome(verdict="dead_letter", reason=reasons.UUID_CONFLICT, error=UUID_CONFLICT_ERROR, **common)
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
    tries = record.receive_count if attempts is None else attempts
    if tries >= max_attempts:
        return RecordOutcome(
            verdict="dead_letter",
            reason=reasons.RETRIES_EXHAUSTED,
            error=f"attempt {tries} of {max_attempts}: {error}",
            **common,
        )
    retry_after_s = result.retry_after_s if result is not None else None
    visibility = retry_visibility_s(tries, retry_after_s, base_s=retry_base_s)
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
    breaker_mode: str = "send"  # what the Kochava breaker said at the start: send | probe | hold
    probes: int = 0  # single-attempt probe POSTs made by this batch
    breaker: Observation | None = None  # what this batch changed in the breaker

    @property
    def failed_ids(self) -> list[str]:
        """The message ids SQS must redeliver."""
        return [o.record.message_id for o in self.outcomes if o.reported_failed]

    def response(self) -> BatchResponse:
        """The ``ReportBatchItemFailures`` answer (:func:`functions.batch.partial_response`)."""
        return partial_response(self.failed_ids)


class Deliverer:
    """Processes batches: the breaker's mode, concurrent sends, then the batch's DLQ and backoff actions."""

    def __init__(
        self,
        sender: OnceSender,
        queue: DeliveryQueue,
        *,
        max_workers: int,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        clock: Callable[[], float] = time.time,
        retry_base_s: float = RETRY_VISIBILITY_BASE_S,
        breaker: KochavaBreaker | None = None,
    ) -> None:
        self._sender = sender
        self._queue = queue
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._clock = clock
        self._breaker = breaker
        self._executor = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="deliver")

    def process_record(self, record: DeliveryRecord, *, deadline: float, probe: bool = False) -> RecordOutcome:
        """Parse, re-apply the AdServices window, send once, decide. Never raises. A ``probe`` failing transiently
        is not counted as one of the message's attempts (it is the breaker's)."""
        try:
            env = envelope.parse(record.body)
        except EnvelopeError as exc:
            return RecordOutcome(
                record=record, verdict="dead_letter", reason=reasons.INVALID_BODY, error=f"not an envelope: {exc}"
            )
        attempts: int | None = None
        try:
            payload, stripped = adservices.apply_window_at_send(
                env.payload, env.adservices_generated_at, now=self._clock()
            )
            answer = self._sender.send_once(env, payload, deadline=deadline, retry=not probe)
            transient = answer.result is not None and answer.result.outcome == "transient"
            if self._breaker is not None and answer.status == "failed" and transient and not probe:
                attempts = self._breaker.count_attempt(record.message_id, now=self._clock())
            elif self._breaker is not None and (answer.status == "in_progress" or probe):
                attempts = 1  # not a POST of ours that failed: never exhausts the message's attempts
        except Exception as exc:  # DynamoDB trouble, a bug: SQS redelivers, and redrives after maxReceiveCount
            return RecordOutcome(record=record, verdict="failed", envelope=env, error=f"{type(exc).__name__}: {exc}")
        return decide(
            record,
            env,
            answer,
            max_attempts=self._max_attempts,
            attempts=attempts,
            token_stripped=stripped,
            retry_base_s=self._retry_base_s,
        )

    def process_batch(self, records: Sequence[DeliveryRecord], *, deadline: float) -> BatchReport:
        """Ask the breaker, send (or hold) the records, then dead-letter and back off in one pass."""
        report = self._send_or_hold(records, deadline=deadline)
        outcomes = report.outcomes
        if self._breaker is not None:
            now = self._clock()
            for i, outcome in enumerate(outcomes):
                outcomes[i] = self._guard(outcome, now)
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
        self._back_off(outcomes)
        return report

    def _back_off(self, outcomes: list[RecordOutcome]) -> None:
        """Push back what will be retried or is held, in one SQS call per 10 records."""
        later = [i for i, o in enumerate(outcomes) if o.verdict in ("retry", "held") and o.visibility_timeout_s]
        if not later:
            return
        holds = [(outcomes[i].record, outcomes[i].visibility_timeout_s or 0) for i in later]
        for i, applied in zip(later, self._queue.back_off(holds), strict=True):
            outcomes[i] = _replace(outcomes[i], back_off_applied=applied)

    def _send_all(self, records: Sequence[DeliveryRecord], *, deadline: float) -> list[RecordOutcome]:
        return list(self._executor.map(lambda r: self.process_record(r, deadline=deadline), records))

    def _send_or_hold(self, records: Sequence[DeliveryRecord], *, deadline: float) -> BatchReport:
        breaker = self._breaker
        if breaker is None or not records:
            return BatchReport(self._send_all(records, deadline=deadline))
        now = self._clock()
        mode, seen = breaker.look(now=now)
        if mode == "send":
            outcomes = self._send_all(records, deadline=deadline)
            delivered = sum(1 for o in outcomes if o.verdict == "delivered")
            failures = [_failure(o.record, o.envelope) for o in outcomes if _transient(o)]
            observed = breaker.after_send(delivered=delivered, failures=failures, seen=seen, now=self._clock())
            return BatchReport(outcomes, breaker_mode=mode, breaker=observed)
        claimed = breaker.claim_probe(seen, now=now) if mode == "probe" else None
        if claimed is None:
            return BatchReport([self._hold(r) for r in records], breaker_mode="hold")
        return self._probe(records, claimed, deadline=deadline)

    def _probe(self, records: Sequence[DeliveryRecord], seen: BreakerState, *, deadline: float) -> BatchReport:
        """Send records one at a time, each with a single attempt (no in-process retry), events not probed lately
        first, until one gets an answer: a healthy one (:func:`~functions.pipeline.breaker.is_kochava_healthy`)
        closes the breaker and the rest is sent; otherwise the probe and the rest are held and the probed event
        remembered, so the next probe tries another."""
        assert self._breaker is not None
        candidates = [_failure(r, _envelope_or_none(r)) for r in records]
        order = probe_order(candidates, seen.probed)
        outcomes: dict[int, RecordOutcome] = {}
        probes = 0
        for position, index in enumerate(order):
            outcome = self.process_record(records[index], deadline=deadline, probe=True)
            if outcome.result is None:  # no POST (a duplicate, not an envelope...): not a probe, try the next one
                outcomes[index] = outcome
                continue
            probes += 1
            rest = order[position + 1 :]
            if is_kochava_healthy(outcome.result.outcome):
                observed = self._breaker.probe_answered(seen, now=self._clock())
                sent = self._send_all([records[i] for i in rest], deadline=deadline)
                outcomes.update({index: outcome, **dict(zip(rest, sent, strict=True))})
            else:  # 429 / 5xx / timeout, or a 2xx without Kochava's success body: still down
                observed = self._breaker.probe_failed(seen, candidates[index], now=self._clock())
                outcomes[index] = self._hold(records[index], outcome)
                outcomes.update({i: self._hold(records[i]) for i in rest})
            return BatchReport(_in_order(outcomes), breaker_mode="probe", probes=probes, breaker=observed)
        return BatchReport(_in_order(outcomes), breaker_mode="probe", probes=probes)

    def _hold(self, record: DeliveryRecord, probed: RecordOutcome | None = None) -> RecordOutcome:
        """Back to the queue unsent (or after a failed probe), invisible for a hold."""
        assert self._breaker is not None
        return RecordOutcome(
            record=record,
            verdict="held",
            envelope=probed.envelope if probed is not None else None,
            result=probed.result if probed is not None else None,
            error=probed.error if probed is not None else "Kochava breaker open",
            visibility_timeout_s=self._breaker.hold_visibility_s(),
        )

    def _guard(self, outcome: RecordOutcome, now: float) -> RecordOutcome:
        """Dead-letter, with a reason, what is not delivered and could expire or be redriven before it comes back."""
        if outcome.verdict not in ("retry", "held", "failed") or self._breaker is None:
            return outcome
        record = outcome.record
        age_s = now - record.sent_at_ms / 1000 if record.sent_at_ms is not None else 0.0
        why = give_up(age_s=age_s, receive_count=record.receive_count, policy=self._breaker.policy)
        if why is None:
            return outcome
        error = f"{why}: {outcome.error}" if outcome.error else why
        return _replace(
            outcome, verdict="dead_letter", reason=reasons.RETRIES_EXHAUSTED, error=error, visibility_timeout_s=None
        )

    def close(self) -> None:
        """Stop the worker threads (tests; a Lambda container just freezes)."""
        self._executor.shutdown(wait=True)


def _replace(outcome: RecordOutcome, **changes: Any) -> RecordOutcome:
    return dataclasses.replace(outcome, **changes)


def _in_order(outcomes: dict[int, RecordOutcome]) -> list[RecordOutcome]:
    return [outcomes[i] for i in sorted(outcomes)]


def _transient(outcome: RecordOutcome) -> bool:
    """Whether Kochava failed this record transiently (429 / 5xx / timeout / network): breaker evidence."""
    return outcome.result is not None and outcome.result.outcome == "transient"


def _envelope_or_none(record: DeliveryRecord) -> Envelope | None:
    try:
        return envelope.parse(record.body)
    except EnvelopeError:
        return None


def _failure(record: DeliveryRecord, env: Envelope | None) -> Failure:
    """The breaker's view of a record: its event (uuid, kind, app) and device, hashed
    (:func:`functions.pipeline.breaker.failure_of`); the SQS message id when it is not an envelope."""
    if env is None:
        return failure_of(uuid=record.message_id, kind="", app=None, device=None)
    app, device = env.payload.get("kochava_app_id"), env.payload.get("kochava_device_id")
    ids = env.payload.get("device_id")  # an identityLink payload: its device ids
    if not device and isinstance(ids, dict):
        device = next((v for v in ids.values() if isinstance(v, str) and v), None)
    return failure_of(
        uuid=env.uuid,
        kind=env.kind,
        app=app if isinstance(app, str) else None,
        device=device if isinstance(device, str) and device else None,
    )
