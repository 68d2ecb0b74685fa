"""Enricher Lambda: ingest queue -> validate, enrich, map -> delivery queue (or the ingest DLQ with a reason).

Thin on purpose, and the same shape as the deliverer's handler: a typed config read once
(:class:`~functions.enricher.config.EnricherConfig` + :class:`~functions.pipeline.settings.Settings`), a
:class:`~functions.enricher.runtime.Runtime` built once per container on the first invocation
(:func:`~functions.enricher.runtime.build_runtime`), metrics counted in ``observe.py``, and
:func:`handle` ``(runtime, event, context)``, which runs :class:`~functions.enricher.core.Enricher` on each record
and answers with the SQS partial batch response: a record is reported failed (``batchItemFailures``) only when one
of its events could not be handed off to SQS; the others are deleted by SQS. Logs are JSON with the event uuid as
correlation id; metrics are EMF, counted per invocation.

The partial batch response is built here, not with Powertools' ``BatchProcessor``: importing ``utilities.batch``
also imports asyncio, every Powertools event data class and the parser's pydantic models, 60 ms of cold start.
Only what every path needs is imported at module load; the Apple client (and ``requests``) only when an install
with a fresh token shows up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from functions.coldstart import collector_paused

# Everything imported and built here lives as long as the container: keep the garbage collector from walking
# it during init and afterwards (functions/coldstart.py).
with collector_paused(freeze=True):
    from aws_lambda_powertools import Logger, Metrics, Tracer

    from functions.enricher import metrics as m
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
    from functions.pipeline.masking import exception_fields

    if TYPE_CHECKING:
        from aws_lambda_powertools.utilities.typing import LambdaContext

    SERVICE = os.environ.get(ENV_POWERTOOLS_SERVICE_NAME) or FUNCTION_ENRICHER
    NAMESPACE = os.environ.get(ENV_POWERTOOLS_METRICS_NAMESPACE) or METRICS_NAMESPACE
    logger = Logger(service=SERVICE)
    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    # Only botocore is patched at start-up; requests is patched when the Apple client is first built.
    tracer = Tracer(service=SERVICE, patch_modules=("botocore",))

SqsRecord = Mapping[str, Any]
"""One record of the SQS event, as Lambda passes it (``messageId``, ``body``, ``messageAttributes``...)."""


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


class AllRecordsFailedError(RuntimeError):
    """Every record of the batch failed: the invocation fails (SQS redelivers them all after their visibility)."""


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    """SQS event source entry point (``ReportBatchItemFailures`` enabled on the mapping)."""
    return handle(get_runtime(), event, context)


def handle(runtime: Runtime, event: Mapping[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    """Enrich one batch of ingest messages; answer with the records SQS must redeliver."""
    records = event.get("Records") or []
    invocation = observe.Invocation()
    try:
        for record in records:
            try:
                invocation.add(process_record(runtime, record, context))
            except Exception:  # logged by process_record; SQS redelivers this record only, after a backoff
                invocation.failed.append({"itemIdentifier": str(record.get("messageId"))})
                _back_off(runtime, record, invocation)
        if records and len(invocation.failed) == len(records):
            # As Powertools' BatchProcessor does: a failed invocation, not a reply, when nothing went through, so
            # the function's Errors metric shows it and the event source mapping backs off (SQS redelivers all).
            raise AllRecordsFailedError(f"All records failed processing: {len(records)} of {len(records)}")
        return {"batchItemFailures": invocation.failed}
    finally:
        observe.emit_metrics(metrics, invocation, namespace=NAMESPACE, service=SERVICE)


def _back_off(runtime: Runtime, record: SqsRecord, invocation: observe.Invocation) -> None:
    """Not the event's fault (SQS or DynamoDB trouble, mostly): try again later, not every visibility timeout
    (functions/enricher/retry.py)."""
    if runtime.back_off is None:
        return
    system = record.get("attributes") or {}
    receive_count = int(system.get("ApproximateReceiveCount", 1) or 1)
    seconds = handoff_retry_visibility_s(receive_count)
    applied = runtime.back_off(str(record.get("receiptHandle", "")), seconds)
    invocation.tally[m.HANDOFF_BACKOFFS] += 1
    logger.warning(
        "record backed off",
        extra={
            "message_id": record.get("messageId"),
            "visibility_timeout_s": seconds,
            "receive_count": receive_count,
            "applied": applied,
        },
    )


@tracer.capture_method
def process_record(runtime: Runtime, record: SqsRecord, context: LambdaContext) -> Result:
    """One ingest message; raising marks it failed (SQS redelivers it, the rest of the batch is unaffected)."""
    info = MessageInfo.from_sqs(record)
    logger.append_keys(request_id=info.request_id, message_id=record.get("messageId"))

    def remaining_s() -> float:
        return context.get_remaining_time_in_millis() / 1000.0

    try:
        result = runtime.enricher.process(record.get("body") or "", info, runtime.clock(), remaining_s)
    except Exception as exc:
        # Never logger.exception: a traceback repeats the exception's message raw, and that can hold event data.
        logger.error("message not fully handed off: reported failed for redelivery", extra=exception_fields(exc))
        raise
    else:  # still with the request and message ids: every line of a message carries them
        # The uuids by outcome: how tools.trace finds an event that was forwarded or filtered (not personal data).
        outcomes = {k: v for k, v in (("forwarded", result.forwarded), ("filtered", result.filtered)) if v}
        logger.info("message processed", extra={"counts": dict(result.tally), **outcomes})
    finally:
        logger.remove_keys(["request_id", "message_id"])
    return result
