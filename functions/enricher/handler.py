"""Enricher Lambda: ingest queue -> validate, enrich, map -> delivery queue (or the ingest DLQ with a reason).

Thin on purpose: Powertools wiring (JSON ``Logger`` with the event uuid as correlation id, EMF ``Metrics``,
``Tracer``) around :class:`functions.enricher.core.Enricher`, and the SQS partial batch response: the records
are handled one after the other, and a record is reported failed (``batchItemFailures``) only when one of its
events could not be handed off to SQS; the others are deleted by SQS.

The partial batch response is built here, as in the deliverer, not with Powertools' ``BatchProcessor``: that
one is a loop and a ``try`` per record, but importing ``utilities.batch`` also imports asyncio, every Powertools
event data class and the Powertools parser's pydantic models for Kinesis, DynamoDB, Kafka..., 60 ms of this
function's cold start (``python -X importtime``) for nothing the enricher uses.

Cold start: only what every path needs is imported at module load. boto3 clients are created on the first
invocation and reused; the Apple client (and ``requests``) only when an install with a fresh token shows up.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from functions.coldstart import collector_paused

# Everything imported and built here lives as long as the container: keep the garbage collector from walking
# it during init and afterwards (functions/coldstart.py).
with collector_paused(freeze=True):
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    from functions.enricher import metrics as m
    from functions.enricher.core import Enricher, MessageInfo, Queues, segment_route
    from functions.names import (
        ATTR_ADSERVICES_ATTEMPT,
        ATTR_API_KEY_ID,
        ATTR_RECEIVED_AT_MS,
        ATTR_REQUEST_ID,
        ATTR_ROUTE,
        ENV_DELIVERY_QUEUE_URL,
        ENV_INGEST_DLQ_URL,
        ENV_INGEST_QUEUE_URL,
        ENV_POWERTOOLS_METRICS_NAMESPACE,
        ENV_POWERTOOLS_SERVICE_NAME,
        ENV_PROFILE_TABLE,
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
    # Only botocore is patched at start-up: patching every supported library would import requests, sqlite3... on
    # every cold start. requests is patched when the Apple client is first built.
    tracer = Tracer(service=SERVICE, patch_modules=("botocore",))

# The clock of the AdServices window and of DLQ timestamps; tests replace it.
clock: Callable[[], float] = time.time

_enricher: Enricher | None = None
_context: LambdaContext | None = None
_tally: Counter[str] = Counter()
_rejected: Counter[str] = Counter()
_filtered: Counter[str] = Counter()


def build_enricher(env: os._Environ[str] | dict[str, str] | None = None) -> Enricher:
    """Wire the real adapters from the environment (called once per container, on the first invocation)."""
    import boto3
    from botocore.config import Config

    from functions.adapters.profiles_dynamodb import DynamoDbProfileStore
    from functions.adapters.sqs import SqsSender
    from functions.pipeline.settings import Settings

    env = os.environ if env is None else env
    settings = Settings.from_env(env)
    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)
    sqs = boto3.client("sqs", config=config)
    table = env.get(ENV_PROFILE_TABLE, "").strip()
    store = DynamoDbProfileStore(boto3.client("dynamodb", config=config), table) if table else None
    return Enricher(
        settings=settings,
        sender=SqsSender(sqs),
        queues=Queues(
            ingest=env[ENV_INGEST_QUEUE_URL], ingest_dlq=env[ENV_INGEST_DLQ_URL], delivery=env[ENV_DELIVERY_QUEUE_URL]
        ),
        profile_store=store,
        adservices=(lambda: _adservices_flow(settings)) if settings.adservices_resolve else None,
        log=logger,
    )


def _adservices_flow(settings: Settings) -> AdServicesFlow:
    from functions.adapters import apple
    from functions.enricher.adservices_flow import AdServicesFlow

    tracer.patch(["requests"])
    client = apple.RequestsAdServicesClient(settings.adservices_url)
    budget = apple.DEFAULT_CONNECT_TIMEOUT_S + apple.DEFAULT_READ_TIMEOUT_S + 1.0
    return AdServicesFlow(settings, client, call_budget_s=budget)


def enricher() -> Enricher:
    global _enricher
    if _enricher is None:
        with collector_paused():  # boto3 clients and their service models: ~40 ms of collections otherwise
            _enricher = build_enricher()
    return _enricher


def reset() -> None:
    """Forget the wired enricher (tests change the environment between cases)."""
    global _enricher
    _enricher = None


def _remaining_s() -> float:
    return _context.get_remaining_time_in_millis() / 1000.0 if _context is not None else float("inf")


class AllRecordsFailedError(RuntimeError):
    """Every record of the batch failed: the invocation fails (SQS redelivers them all after their visibility)."""


SqsRecord = Mapping[str, Any]
"""One record of the SQS event, as Lambda passes it (``messageId``, ``body``, ``messageAttributes``...)."""


def _message_info(record: SqsRecord) -> MessageInfo:
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


@tracer.capture_method
def record_handler(record: SqsRecord) -> None:
    """One ingest message; raising marks it failed (SQS redelivers it, the rest of the batch is unaffected)."""
    info = _message_info(record)
    logger.append_keys(request_id=info.request_id, message_id=record.get("messageId"))
    try:
        result = enricher().process(record.get("body") or "", info, now=clock(), remaining_s=_remaining_s)
    except Exception:
        logger.exception("message not fully handed off: reported failed for redelivery")
        raise
    finally:
        logger.remove_keys(["request_id", "message_id"])
    _tally.update(result.tally)
    _rejected.update(result.rejected_by_reason)
    _filtered.update(result.filtered_by_type)
    logger.info("message processed", extra={"counts": dict(result.tally)})


def _emit_metrics() -> None:
    for name in (m.EVENTS_RECEIVED, m.EVENTS_FORWARDED, m.EVENTS_REJECTED, m.EVENTS_FILTERED):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=_tally.get(name, 0))
    for name, value in sorted(_tally.items()):
        if value and name not in (m.EVENTS_RECEIVED, m.EVENTS_FORWARDED, m.EVENTS_REJECTED, m.EVENTS_FILTERED):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for name, dimension, counts in (
        (m.EVENTS_REJECTED, m.REJECTED_REASON_DIMENSION, _rejected),
        (m.EVENTS_FILTERED, m.FILTERED_TYPE_DIMENSION, _filtered),
    ):
        for value_name, value in sorted(counts.items()):
            with single_metric(
                name=name,
                unit=MetricUnit.Count,
                value=value,
                namespace=NAMESPACE,
                default_dimensions={"service": SERVICE},
            ) as metric:
                metric.add_dimension(name=dimension, value=value_name)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    """SQS event source entry point (``ReportBatchItemFailures`` enabled on the mapping)."""
    global _context
    _context = context
    _tally.clear()
    _rejected.clear()
    _filtered.clear()
    records = event.get("Records") or []
    failed: list[dict[str, str]] = []
    try:
        for record in records:
            try:
                record_handler(record)
            except Exception:  # logged by record_handler; SQS redelivers this record only
                failed.append({"itemIdentifier": str(record.get("messageId"))})
        if records and len(failed) == len(records):
            # As Powertools' BatchProcessor does: a failed invocation, not a reply, when nothing went through, so
            # the function's Errors metric shows it and the event source mapping backs off (SQS redelivers all).
            raise AllRecordsFailedError(f"All records failed processing: {len(records)} of {len(records)}")
        return {"batchItemFailures": failed}
    finally:
        _emit_metrics()
        _context = None
