"""Enricher Lambda: ingest queue -> validate, enrich, map -> delivery queue (or the ingest DLQ with a reason).

Thin on purpose, and the same shape as the deliverer's handler: a typed config read once
(:class:`~functions.enricher.config.EnricherConfig` + :class:`~functions.pipeline.settings.Settings`), a
:class:`Runtime` built once per container on the first invocation (:func:`build_runtime`), and
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
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from functions.coldstart import collector_paused

# Everything imported and built here lives as long as the container: keep the garbage collector from walking
# it during init and afterwards (functions/coldstart.py).
with collector_paused(freeze=True):
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    from functions.enricher import metrics as m
    from functions.enricher.core import Enricher, MessageInfo, Queues, Result, segment_route
    from functions.enricher.retry import handoff_retry_visibility_s
    from functions.names import (
        ATTR_ADSERVICES_ATTEMPT,
        ATTR_API_KEY_ID,
        ATTR_RECEIVED_AT_MS,
        ATTR_REQUEST_ID,
        ATTR_ROUTE,
        ENV_POWERTOOLS_METRICS_NAMESPACE,
        ENV_POWERTOOLS_SERVICE_NAME,
        FUNCTION_ENRICHER,
        METRICS_NAMESPACE,
    )

    if TYPE_CHECKING:
        from aws_lambda_powertools.utilities.typing import LambdaContext

        from functions.enricher.adservices_flow import AdServicesFlow
        from functions.pipeline.settings import Settings

    SERVICE = os.environ.get(ENV_POWERTOOLS_SERVICE_NAME) or FUNCTION_ENRICHER
    NAMESPACE = os.environ.get(ENV_POWERTOOLS_METRICS_NAMESPACE) or METRICS_NAMESPACE
    logger = Logger(service=SERVICE)
    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    # Only botocore is patched at start-up; requests is patched when the Apple client is first built.
    tracer = Tracer(service=SERVICE, patch_modules=("botocore",))

SqsRecord = Mapping[str, Any]
"""One record of the SQS event, as Lambda passes it (``messageId``, ``body``, ``messageAttributes``...)."""


@dataclass
class Runtime:
    """What lives as long as the container: the wired enricher and the clock of the AdServices window."""

    enricher: Enricher
    clock: Callable[[], float] = time.time
    # Hides a failed record for a while (receipt handle, seconds) -> whether SQS took it; None: SQS's timeout.
    back_off: Callable[[str, int], bool] | None = None


def build_runtime(env: Mapping[str, str], *, clock: Callable[[], float] = time.time) -> Runtime:
    """Wire the real adapters from the environment (once per container, on the first invocation)."""
    import boto3
    from botocore.config import Config

    from functions.adapters.profiles_dynamodb import DynamoDbProfileStore
    from functions.adapters.sqs import SqsSender
    from functions.enricher.config import EnricherConfig
    from functions.pipeline.settings import Settings

    settings, config = Settings.from_env(env), EnricherConfig.from_env(env)
    boto_config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)
    sqs = boto3.client("sqs", config=boto_config)
    table = config.profile_table
    store = DynamoDbProfileStore(boto3.client("dynamodb", config=boto_config), table) if table else None
    enricher = Enricher(
        settings=settings,
        sender=SqsSender(sqs),
        queues=Queues(config.ingest_queue_url, config.ingest_dlq_url, config.delivery_queue_url),
        profile_store=store,
        adservices=(lambda: _adservices_flow(settings)) if settings.adservices_resolve else None,
        log=logger,
        profile_ttl_s=config.profile_ttl_s,
    )

    def back_off(receipt_handle: str, seconds: int) -> bool:
        try:
            sqs.change_message_visibility(
                QueueUrl=config.ingest_queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except Exception:  # the record then comes back after the queue's visibility timeout: sooner, not lost
            return False
        return True

    return Runtime(enricher=enricher, clock=clock, back_off=back_off)


def _adservices_flow(settings: Settings) -> AdServicesFlow:
    from functions.adapters import apple
    from functions.enricher.adservices_flow import AdServicesFlow

    tracer.patch(["requests"])
    client = apple.RequestsAdServicesClient(settings.adservices_url)
    budget = apple.DEFAULT_CONNECT_TIMEOUT_S + apple.DEFAULT_READ_TIMEOUT_S + 1.0
    return AdServicesFlow(settings, client, call_budget_s=budget)


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The container's runtime, built on the first invocation (nothing is created at import time)."""
    global _runtime
    if _runtime is None:
        with collector_paused():  # boto3 clients and their service models: ~40 ms of collections otherwise
            _runtime = build_runtime(os.environ)
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install (or forget, with None) the container's runtime: tests and the local stack."""
    global _runtime
    _runtime = runtime


class AllRecordsFailedError(RuntimeError):
    """Every record of the batch failed: the invocation fails (SQS redelivers them all after their visibility)."""


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


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    """SQS event source entry point (``ReportBatchItemFailures`` enabled on the mapping)."""
    return handle(get_runtime(), event, context)


def handle(runtime: Runtime, event: Mapping[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    """Enrich one batch of ingest messages; answer with the records SQS must redeliver."""
    records = event.get("Records") or []
    invocation = Invocation()
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
        _emit_metrics(invocation)


def _back_off(runtime: Runtime, record: SqsRecord, invocation: Invocation) -> None:
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
    info = message_info(record)
    logger.append_keys(request_id=info.request_id, message_id=record.get("messageId"))

    def remaining_s() -> float:
        return context.get_remaining_time_in_millis() / 1000.0

    try:
        result = runtime.enricher.process(record.get("body") or "", info, runtime.clock(), remaining_s)
    except Exception:
        logger.exception("message not fully handed off: reported failed for redelivery")
        raise
    finally:
        logger.remove_keys(["request_id", "message_id"])
    # The uuids by outcome: how tools.trace finds an event that was forwarded or filtered (not personal data).
    outcomes = {"forwarded": result.forwarded, "filtered": result.filtered}
    logger.info("message processed", extra={"counts": dict(result.tally), **{k: v for k, v in outcomes.items() if v}})
    return result


def message_info(record: SqsRecord) -> MessageInfo:
    """The message attributes API Gateway (or a re-queue) wrote on an ingest message."""
    attrs = record.get("messageAttributes") or {}

    def text(name: str) -> str | None:
        attr = attrs.get(name)
        value = attr.get("stringValue") if isinstance(attr, Mapping) else None
        return value if isinstance(value, str) else None

    def number(name: str) -> int | None:
        value = text(name)
        try:
            return int(float(value)) if value else None
        except ValueError:
            return None

    attempt = number(ATTR_ADSERVICES_ATTEMPT)
    return MessageInfo(
        request_id=text(ATTR_REQUEST_ID),
        received_at_ms=number(ATTR_RECEIVED_AT_MS),
        route=segment_route(text(ATTR_ROUTE)),
        adservices_attempt=attempt or 0,
        requeued=attempt is not None,
        api_key_id=text(ATTR_API_KEY_ID),
    )


_ALWAYS_EMITTED = (m.EVENTS_RECEIVED, m.EVENTS_FORWARDED, m.EVENTS_REJECTED, m.EVENTS_FILTERED)


def _emit_metrics(invocation: Invocation) -> None:
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
                namespace=NAMESPACE,
                default_dimensions={"service": SERVICE},
            ) as metric:
                metric.add_dimension(name=dimension, value=dimension_value)
