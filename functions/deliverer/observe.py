"""What a delivered batch logs and counts: one JSON log line per record (the event uuid as ``correlation_id``),
one per breaker transition, and the invocation's EMF metrics (names in :mod:`functions.deliverer.metrics`).

Logs never contain a payload; Kochava's answers and error texts are passed through
:func:`~functions.pipeline.masking.redact` (device ids, IPs, tokens, user agents, user ids masked).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from functions.deliverer import metrics as m
from functions.pipeline.masking import redact

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

    from functions.deliverer.core import BatchReport, RecordOutcome


def log_breaker(logger: Logger, report: BatchReport) -> None:
    """One line per breaker transition (held records get none each: the "batch done" line counts them)."""
    observed = report.breaker
    if observed is not None and observed.opened:
        logger.warning("Kochava breaker opened: deliveries held, probing", breaker_mode=report.breaker_mode)
    if observed is not None and observed.closed:
        logger.info("Kochava breaker closed: a probe got an answer, the backlog drains", probes=report.probes)
    if observed is not None and observed.error:
        logger.warning("Kochava breaker store failed; batch handled regardless", error=redact(observed.error))


def log_outcome(logger: Logger, outcome: RecordOutcome) -> None:
    if outcome.verdict == "held":
        return
    env, result, record = outcome.envelope, outcome.result, outcome.record
    fields: dict[str, Any] = {
        "correlation_id": env.uuid if env is not None else None,
        "message_id": record.message_id,
        "receive_count": record.receive_count,
        "kind": env.kind if env is not None else None,
        "event_name": env.event_name if env is not None else None,
        "verdict": outcome.verdict,
    }
    if result is not None:
        fields.update(http_status=result.http_status, attempts=result.attempts, elapsed_ms=int(result.elapsed_s * 1000))
    if outcome.token_stripped:
        fields["adservices_token_stripped"] = True
    if outcome.verdict == "delivered":
        logger.info("delivered to Kochava", extra=fields)
    elif outcome.verdict == "duplicate":
        logger.info("already delivered: duplicate skipped", extra=fields)
    elif outcome.verdict == "retry":
        fields.update(error=redact(outcome.error), visibility_timeout_s=outcome.visibility_timeout_s)
        fields["back_off_applied"] = outcome.back_off_applied
        logger.warning("transient failure: SQS will retry", extra=fields)
    elif outcome.verdict == "dead_letter":
        fields.update(reason=outcome.reason, error=redact(outcome.error), dead_letter_sent=outcome.dead_letter_sent)
        if result is not None and result.response_body:
            fields["response_body"] = redact(result.response_body, limit=256)
        logger.error("dead-lettered", extra=fields)
    else:
        fields["error"] = redact(outcome.error)
        logger.error("unexpected error: SQS will redeliver", extra=fields)


def count(metrics: Metrics, report: BatchReport, *, namespace: str, service: str) -> None:
    verdicts = Counter(o.verdict for o in report.outcomes)
    metrics.add_metric(name=m.DELIVERED, unit=MetricUnit.Count, value=verdicts["delivered"])
    metrics.add_metric(name=m.DUPLICATES_SKIPPED, unit=MetricUnit.Count, value=verdicts["duplicate"])
    metrics.add_metric(name=m.TRANSIENT_FAILURES, unit=MetricUnit.Count, value=verdicts["retry"])
    metrics.add_metric(name=m.DELIVERY_ERRORS, unit=MetricUnit.Count, value=verdicts["failed"])
    stripped = sum(1 for o in report.outcomes if o.token_stripped and o.verdict in ("delivered", "dead_letter"))
    metrics.add_metric(name=m.TOKEN_STRIPPED_AT_SEND, unit=MetricUnit.Count, value=stripped)
    retries = sum(max(0, o.result.attempts - 1) for o in report.outcomes if o.result is not None)
    metrics.add_metric(name=m.KOCHAVA_HTTP_RETRIES, unit=MetricUnit.Count, value=retries)
    metrics.add_metric(name=m.DELIVERIES_HELD, unit=MetricUnit.Count, value=verdicts["held"])
    metrics.add_metric(name=m.BREAKER_OPEN, unit=MetricUnit.Count, value=int(report.breaker_mode != "send"))
    metrics.add_metric(name=m.KOCHAVA_PROBES, unit=MetricUnit.Count, value=report.probes)
    observed = report.breaker
    metrics.add_metric(name=m.BREAKER_OPENED, unit=MetricUnit.Count, value=int(bool(observed and observed.opened)))
    metrics.add_metric(name=m.BREAKER_CLOSED, unit=MetricUnit.Count, value=int(bool(observed and observed.closed)))
    by_reason = Counter(o.reason for o in report.outcomes if o.verdict == "dead_letter" and o.dead_letter_sent)
    for reason, count in sorted(by_reason.items(), key=lambda item: str(item[0])):
        with single_metric(
            name=m.DEAD_LETTERED,
            unit=MetricUnit.Count,
            value=count,
            namespace=namespace,
            default_dimensions={"service": service},
        ) as metric:
            metric.add_dimension(name=m.DEAD_LETTERED_REASON_DIMENSION, value=str(reason))
