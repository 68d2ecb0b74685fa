"""What an enricher invocation counts: the records SQS must redeliver and the events' fates, emitted as EMF
metrics (names in :mod:`functions.enricher.metrics`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from functions.enricher import metrics as m

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

    from functions.enricher.core import Result


@dataclass
class Invocation:
    """What one invocation did: the records SQS must redeliver and the counts its metrics report."""

    failed: list[dict[str, str]] = field(default_factory=list)
    tally: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    filtered_by_type: Counter[str] = field(default_factory=Counter)

    def add(self, result: Result) -> None:
        self.tally.update(result.tally)
        self.rejected_by_reason.update(result.rejected_by_reason)
        self.filtered_by_type.update(result.filtered_by_type)


_ALWAYS_EMITTED = (m.EVENTS_RECEIVED, m.EVENTS_FORWARDED, m.EVENTS_REJECTED, m.EVENTS_FILTERED)


def emit_metrics(metrics: Metrics, invocation: Invocation, *, namespace: str, service: str) -> None:
    """The invocation's EMF metrics: the four event counts always, the others when not zero, and EventsRejected
    per reason and EventsFiltered per call type with their own dimension."""
    tally = invocation.tally
    for name in _ALWAYS_EMITTED:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=tally.get(name, 0))
    for name, value in sorted(tally.items()):
        if value and name not in _ALWAYS_EMITTED:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    # EventsRejected per reason and EventsFiltered per call type, each with its own dimension.
    for name, dimension, counts in (
        (m.EVENTS_REJECTED, m.REJECTED_REASON_DIMENSION, invocation.rejected_by_reason),
        (m.EVENTS_FILTERED, m.FILTERED_TYPE_DIMENSION, invocation.filtered_by_type),
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
