"""Enricher Lambda: ingest queue -> validate, enrich, map -> delivery queue (or the ingest DLQ with a reason).

Wiring only, the deliverer's shape: Powertools, the container's :class:`~functions.enricher.runtime.Runtime` built
once (typed config in ``config.py``), and :func:`handle` ``(runtime, event, context)``: the batch template
(:class:`functions.batch.PartialBatch`) runs the core on each record; a record is reported failed only when one of
its events could not be handed off to SQS, and is backed off (``retry.py``). Logs and metrics: ``observe.py``. The
Apple client (and ``requests``) is imported only when an install with a fresh token shows up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from functions.coldstart import collector_paused

# Everything imported and built here lives as long as the container: keep the garbage collector from walking
# it during init and afterwards (functions/coldstart.py).
with collector_paused(freeze=True):
    from aws_lambda_powertools import Logger, Metrics, Tracer

    from functions import batch
    from functions.enricher import observe
    from functions.enricher.core import MessageInfo, Result
    from functions.enricher.retry import handoff_retry_visibility_s
    from functions.enricher.runtime import Runtime, build_runtime
    from functions.names import (
        ENV_POWERTOOLS_METRICS_NAMESPACE,
        ENV_POWERTOOLS_SERVICE_NAME,
        FUNCTION_ENRICHER,
        METRICS_NAMESPACE,
    )

    if TYPE_CHECKING:
        from aws_lambda_powertools.utilities.typing import LambdaContext

    SERVICE = os.environ.get(ENV_POWERTOOLS_SERVICE_NAME) or FUNCTION_ENRICHER
    NAMESPACE = os.environ.get(ENV_POWERTOOLS_METRICS_NAMESPACE) or METRICS_NAMESPACE
    logger = Logger(service=SERVICE)
    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    # Only botocore is patched at start-up; requests is patched when the Apple client is first built.
    tracer = Tracer(service=SERVICE, patch_modules=("botocore",))


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The container's runtime, built on the first invocation (nothing is created at import time)."""
    global _runtime
    if _runtime is None:
        with collector_paused():  # boto3 clients and their service models: ~40 ms of collections otherwise
            _runtime = build_runtime(os.environ, log=logger, instrument_http=lambda: tracer.patch(["requests"]))
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install (or forget, with None) the container's runtime: tests and the local stack."""
    global _runtime
    _runtime = runtime


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: LambdaContext) -> batch.BatchResponse:
    """SQS event source entry point (``ReportBatchItemFailures`` enabled on the mapping)."""
    return handle(get_runtime(), event, context)


def handle(runtime: Runtime, event: Mapping[str, Any], context: LambdaContext) -> batch.BatchResponse:
    """Enrich one batch of ingest messages; count what happened; answer with the records SQS must redeliver."""
    records = batch.PartialBatch(
        lambda record: process_record(runtime, record, context),
        back_off=runtime.back_off,
        visibility_s=handoff_retry_visibility_s,
        on_back_off=lambda backed_off: observe.log_back_off(logger, backed_off),
    )
    results = records.process(batch.records_of(event))  # a record that raises is reported failed, not raised
    report = observe.Report.of(results, backed_off=len(records.backed_off))
    observe.count(metrics, report, namespace=NAMESPACE, service=SERVICE)
    return records.response()


@tracer.capture_method
def process_record(runtime: Runtime, record: batch.SqsRecord, context: LambdaContext) -> Result:
    """One ingest message; raising marks it failed (SQS redelivers it, the rest of the batch is unaffected)."""

    def remaining_s() -> float:
        return context.get_remaining_time_in_millis() / 1000.0

    info = MessageInfo.from_sqs(record)
    process = partial(runtime.core.process, record.get("body") or "", info, runtime.clock(), remaining_s)
    return observe.logged(logger, info.request_id, record.get("messageId"), process)
