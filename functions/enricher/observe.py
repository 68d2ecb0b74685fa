"""What an enricher invocation logs (one line per message, one per record backed off) and counts (the events'
fates, emitted as EMF metrics, names in :mod:`functions.enricher.metrics`): the same roles, and names, as the
deliverer's ``observe.py`` (``log_outcome``, ``count``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from functions.enricher import metrics as m
from functions.pipeline.masking import exception_fields

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

    from functions.batch import BackedOff
    from functions.enricher.core import Result


@dataclass
class Report:
    """What one invocation did: the counts its metrics report."""

    tally: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    filtered_by_type: Counter[str] = field(default_factory=Counter)
    backed_off: int = 0  # records that could not be handed off, hidden for a while (functions.batch)

    def add(self, result: Result) -> None:
        self.tally.update(result.tally)
        self.rejected_by_reason.update(result.rejected_by_reason)
        self.filtered_by_type.update(result.filtered_by_type)

    @classmethod
    def of(cls, results: Iterable[Result], *, backed_off: int = 0) -> Report:
        """The report of the messages that went through and of the records backed off."""
        report = cls(backed_off=backed_off)
        for result in results:
            report.add(result)
        return report


_ALWAYS_EMITTED = (m.EVENTS_RECEIVED, m.EVENTS_FORWARDED, m.EVENTS_REJECTED, m.EVENTS_FILTERED)


def logged(logger: Logger, request_id: str | None, message_id: str | None, process: Callable[[], Result]) -> Result:
    """Run one message's ``process`` with its request and message ids on every line it logs, then log its outcome
    (:func:`log_outcome`) or, re-raising, its failure (:func:`log_failure`), still with those ids."""
    logger.append_keys(request_id=request_id, message_id=message_id)
    try:
        result = process()
    except Exception as exc:
        log_failure(logger, exc)
        raise
    else:
        log_outcome(logger, result)
    finally:
        logger.remove_keys(["request_id", "message_id"])
    return result


def log_outcome(logger: Logger, result: Result) -> None:
    """One line per message: its counts, and the uuids by outcome (how tools.trace finds an event that was
    forwarded or filtered; not personal data)."""
    outcomes = {k: v for k, v in (("forwarded", result.forwarded), ("filtered", result.filtered)) if v}
    logger.info("message processed", extra={"counts": dict(result.tally), **outcomes})


def log_failure(logger: Logger, exc: Exception) -> None:
    """A message not fully handed off. Never ``logger.exception``: a traceback repeats the exception's message raw,
    and that can hold event data (:func:`~functions.pipeline.masking.exception_fields`)."""
    logger.error("message not fully handed off: reported failed for redelivery", extra=exception_fields(exc))


def log_back_off(logger: Logger, backed_off: BackedOff) -> None:
    """A record that could not be handed off, hidden for a while (functions/enricher/retry.py)."""
    logger.warning(
        "record backed off",
        extra={
            "message_id": backed_off.message_id,
            "visibility_timeout_s": backed_off.visibility_timeout_s,
            "receive_count": backed_off.receive_count,
            "applied": backed_off.applied,
        },
    )


def count(metrics: Metrics, report: Report, *, namespace: str, service: str) -> None:
    """The invocation's EMF metrics: the four event counts always, the others when not zero, and EventsRejected
    per reason and EventsFiltered per call type with their own dimension."""
    tally = Counter(report.tally)
    tally[m.HANDOFF_BACKOFFS] += report.backed_off
    for name in _ALWAYS_EMITTED:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=tally.get(name, 0))
    for name, value in sorted(tally.items()):
        if value and name not in _ALWAYS_EMITTED:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    # EventsRejected per reason and EventsFiltered per call type, each with its own dimension.
    for name, dimension, counts in (
        (m.EVENTS_REJECTED, m.REJECTED_REASON_DIMENSION, report.rejected_by_reason),
        (m.EVENTS_FILTERED, m.FILTERED_TYPE_DIMENSION, report.filtered_by_type),
    ):
        for dimension_value, value in sorted(counts.items()):
            with single_metric(
                name=name,
                unit=MetricUnit.Count,
                value=value,
                namespace=namespace,
                default_dimensions={"service": service},
            ) as metric:
                metric.add_dimension(name=dimension, value=dimension_value)
