"""Deliverer Lambda: delivery-queue batch -> Kochava, idempotent, partial batch failures, DLQ with reasons.

Wiring only, the same shape as the enricher's handler: Powertools (Logger, Metrics, Tracer), the container's
:class:`~functions.deliverer.runtime.Runtime` built once on the first invocation
(:func:`~functions.deliverer.runtime.build_runtime`, typed config in ``config.py``), and :func:`handle`
``(runtime, event, context)``: the batch's records (:mod:`functions.batch`) go to the core
(:class:`~functions.deliverer.core.Deliverer`, which sends them concurrently and acts on the batch as a whole),
whose :class:`~functions.deliverer.core.BatchReport` becomes logs and metrics (``observe.py``) and the
partial batch response. What happens to a record is decided in ``core.py``; the once-only send is
``idempotency.py``; HTTP is ``functions/adapters/kochava_http.py``. See docs/deliverer.md.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from functions.coldstart import collector_paused

# Everything imported and built here lives as long as the container: keep the garbage collector from walking
# it during init and afterwards (functions/coldstart.py).
with collector_paused(freeze=True):
    from aws_lambda_powertools import Logger, Metrics, Tracer

    from functions import batch
    from functions.deliverer import observe
    from functions.deliverer.runtime import Runtime, build_runtime
    from functions.messages import DeliveryRecord
    from functions.names import (
        ENV_POWERTOOLS_METRICS_NAMESPACE,
        ENV_POWERTOOLS_SERVICE_NAME,
        FUNCTION_DELIVERER,
        METRICS_NAMESPACE,
    )
    from functions.pipeline.masking import redact

    if TYPE_CHECKING:
        from aws_lambda_powertools.utilities.typing import LambdaContext

    SERVICE: Final = os.environ.get(ENV_POWERTOOLS_SERVICE_NAME) or FUNCTION_DELIVERER
    NAMESPACE: Final = os.environ.get(ENV_POWERTOOLS_METRICS_NAMESPACE) or METRICS_NAMESPACE
    # Time kept back from the Lambda timeout for the batch's DLQ / visibility calls and idempotency writes.
    FINISH_RESERVE_S: Final = 5.0

    logger = Logger(service=SERVICE)
    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    # Patch only what the deliverer calls: patching every library X-Ray supports costs ~60 ms of cold start.
    tracer = Tracer(service=SERVICE, patch_modules=("botocore", "requests"))


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The container's runtime, built on the first invocation (nothing is created at import time)."""
    global _runtime
    if _runtime is None:
        with collector_paused():  # boto3 clients, the HTTP session: no collections while they are built
            _runtime = build_runtime(os.environ)
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install (or forget, with None) the container's runtime: tests and the local stack."""
    global _runtime
    _runtime = runtime


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: Mapping[str, Any], context: LambdaContext) -> batch.BatchResponse:
    """SQS event source entry point (``ReportBatchItemFailures`` enabled on the mapping)."""
    return handle(get_runtime(), event, context)


def handle(runtime: Runtime, event: Mapping[str, Any], context: LambdaContext) -> batch.BatchResponse:
    """Deliver one batch; log and count every record; answer with the records SQS must redeliver."""
    runtime.sender.register_lambda_context(context)
    records = [DeliveryRecord.from_sqs(record) for record in batch.records_of(event)]
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - FINISH_RESERVE_S
    report = runtime.core.process_batch(records, deadline=deadline)
    for outcome in report.outcomes:
        observe.log_outcome(logger, outcome)
    if report.dead_letter_error:
        logger.error("delivery DLQ send failed; records left for SQS", error=redact(report.dead_letter_error))
    observe.log_breaker(logger, report)
    observe.count(metrics, report, namespace=NAMESPACE, service=SERVICE)
    response = report.response()
    logger.info(
        "batch done",
        records=len(records),
        reported_failed=len(response["batchItemFailures"]),
        verdicts=dict(Counter(o.verdict for o in report.outcomes)),
    )
    return response
