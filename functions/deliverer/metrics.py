"""Metric names the deliverer emits (CloudWatch EMF through Powertools, namespace ``resources.METRICS_NAMESPACE``,
dimension ``service``). The dashboard (``infra/constructs/monitoring.py``) graphs these very names.

All are counts per invocation. ``DeadLettered`` is emitted per reason only, with the extra dimension ``reason``
(``kochava_rejected``, ``retries_exhausted``...). Powertools adds its own ``ColdStart`` (dimension ``function_name``).
"""

from __future__ import annotations

from typing import Final

DELIVERED: Final = "Delivered"  # Kochava answered success
DUPLICATES_SKIPPED: Final = "DuplicatesSkipped"  # already delivered (idempotency): no POST
TRANSIENT_FAILURES: Final = "DeliveryTransientFailures"  # handed back to SQS with a visibility backoff
DEAD_LETTERED: Final = "DeadLettered"  # sent to the delivery DLQ (per reason)
TOKEN_STRIPPED_AT_SEND: Final = "AdServicesTokenStrippedAtSend"  # noqa: S105 - a metric name: token >= 24 h old
DELIVERY_ERRORS: Final = "DeliveryErrors"  # unexpected errors: SQS redelivers (give-up rule: core.py)
KOCHAVA_HTTP_RETRIES: Final = "KochavaHttpRetries"  # in-process HTTP retries (urllib3 Retry)

DEAD_LETTERED_REASON_DIMENSION: Final = "reason"

# The Kochava circuit breaker (functions/pipeline/breaker.py, docs/deliverer.md#kochava-outages).
BREAKER_OPEN: Final = "KochavaBreakerOpen"  # 1 per invocation that found the breaker open (the outage alarm)
BREAKER_OPENED: Final = "KochavaBreakerOpened"  # the breaker opened (once per outage, by one invocation)
BREAKER_CLOSED: Final = "KochavaBreakerClosed"  # a probe got an answer: the breaker closed, the backlog drains
DELIVERIES_HELD: Final = "DeliveriesHeld"  # records returned to the queue unsent while the breaker was open
KOCHAVA_PROBES: Final = "KochavaProbes"  # single-attempt probe POSTs while the breaker was open
