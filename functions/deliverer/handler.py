"""Deliverer Lambda: delivery-queue batch -> Kochava, idempotent, partial batch failures, DLQ with reasons.

Thin on purpose: Powertools wiring (Logger, Metrics, Tracer), building the long-lived pieces once per container
(:func:`build_runtime`), and turning a :class:`~functions.deliverer.delivery.BatchReport` into logs, metrics and
the ``batchItemFailures`` answer. What happens to a record is decided in ``delivery.py``; the once-only send is
``idempotency.py``; HTTP is ``functions/adapters/kochava_http.py``. See docs/deliverer.md.

Logs are JSON, one line per record, with the event ``uuid`` as ``correlation_id``. They never contain a payload;
Kochava's answers and error texts are passed through :func:`~functions.pipeline.masking.redact` (device ids, IPs
and tokens masked).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from functions.coldstart import collector_paused

# Everything imported and built here lives as long as the container: keep the garbage collector from walking
# it during init and afterwards (functions/coldstart.py).
with collector_paused(freeze=True):
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    from functions.adapters.kochava_http import HttpPolicy, RequestsKochavaClient
    from functions.deliverer import metrics as m
    from functions.deliverer.config import DelivererConfig
    from functions.deliverer.delivery import BatchReport, Deliverer, RecordOutcome
    from functions.messages import DeliveryRecord
    from functions.names import (
        ENV_POWERTOOLS_METRICS_NAMESPACE,
        ENV_POWERTOOLS_SERVICE_NAME,
        FUNCTION_DELIVERER,
        IDEMPOTENCY_TABLE,
        IDEMPOTENCY_TTL_S,
        METRICS_NAMESPACE,
    )
    from functions.pipeline.masking import redact
    from functions.pipeline.settings import Settings

    if TYPE_CHECKING:
        from aws_lambda_powertools.utilities.typing import LambdaContext

        from functions.deliverer.idempotency import IdempotentSender
        from functions.ports import KochavaClient

    SERVICE: Final = os.environ.get(ENV_POWERTOOLS_SERVICE_NAME) or FUNCTION_DELIVERER
    NAMESPACE: Final = os.environ.get(ENV_POWERTOOLS_METRICS_NAMESPACE) or METRICS_NAMESPACE
    # Time kept back from the Lambda timeout for the batch's DLQ / visibility calls and idempotency writes.
    FINISH_RESERVE_S: Final = 5.0

    logger = Logger(service=SERVICE)
    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    # Patch only what the deliverer calls: patching every library X-Ray supports costs ~60 ms of cold start.
    tracer = Tracer(service=SERVICE, patch_modules=("botocore", "requests"))


@dataclass
class Runtime:
    """What lives as long as the container: HTTP pool, boto3 clients, idempotency, the thread pool."""

    deliverer: Deliverer
    sender: IdempotentSender
    kochava: KochavaClient

    def close(self) -> None:
        """Stop the worker threads and close pooled connections (tests; a container just freezes)."""
        self.deliverer.close()
        close = getattr(self.kochava, "close", None)
        if callable(close):
            close()


def build_runtime(
    env: Mapping[str, str],
    *,
    http_policy: HttpPolicy | None = None,
    kochava: KochavaClient | None = None,
    boto3_session: Any = None,
    clock: Callable[[], float] = time.time,
) -> Runtime:
    """Build the container's long-lived pieces from the environment.

    Tests pass a fast ``http_policy``, a controllable ``clock`` (the AdServices window), or their own ``kochava``
    client (e.g. one that simulates a crash mid-send).
    """
    import boto3
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
    from botocore.config import Config

    from functions.adapters.sqs import SqsDeliveryQueue
    from functions.deliverer.idempotency import IdempotentSender

    settings = Settings.from_env(env)
    config = DelivererConfig.from_env(env)
    policy = http_policy or HttpPolicy(pool_size=config.max_workers)
    session = boto3_session or boto3.session.Session()
    boto_config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=2,
        read_timeout=5,
        max_pool_connections=max(10, config.max_workers),  # the workers share the DynamoDB client
    )
    if kochava is None:
        kochava = RequestsKochavaClient(settings.kochava_url, settings.kochava_identitylink_url, policy)
    persistence = DynamoDBPersistenceLayer(
        table_name=config.idempotency_table,
        key_attr=IDEMPOTENCY_TABLE.partition_key,
        expiry_attr=IDEMPOTENCY_TABLE.ttl_attribute or "expiration",
        boto3_client=session.client("dynamodb", config=boto_config),
    )
    sender = IdempotentSender(kochava, persistence, expires_after_s=IDEMPOTENCY_TTL_S)
    # Created on first use: a batch where everything is delivered never calls SQS from here.
    queue = SqsDeliveryQueue(lambda: session.client("sqs", config=boto_config), config.dlq_url, config.queue_url)
    breaker = None
    if config.state_table is not None:
        from functions.adapters.breaker_dynamodb import DynamoDbBreakerStore
        from functions.deliverer.outage import KochavaBreaker

        store = DynamoDbBreakerStore(session.client("dynamodb", config=boto_config), config.state_table)
        breaker = KochavaBreaker(store, config.breaker_policy())
    deliverer = Deliverer(
        sender,
        queue,
        max_workers=config.max_workers,
        max_attempts=config.max_attempts,
        clock=clock,
        retry_base_s=config.retry_base_s,
        breaker=breaker,
    )
    return Runtime(deliverer=deliverer, sender=sender, kochava=kochava)


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
def lambda_handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    """SQS event source entry point (``ReportBatchItemFailures`` enabled on the mapping)."""
    return handle(get_runtime(), event, context)


def handle(runtime: Runtime, event: Mapping[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    """Deliver one batch; log and count every record; answer with the records SQS must redeliver."""
    runtime.sender.register_lambda_context(context)
    records = [DeliveryRecord.from_sqs(record) for record in event.get("Records") or []]
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - FINISH_RESERVE_S
    report = runtime.deliverer.process_batch(records, deadline=deadline)
    for outcome in report.outcomes:
        _log_outcome(outcome)
    if report.dead_letter_error:
        logger.error("delivery DLQ send failed; records left for SQS", error=redact(report.dead_letter_error))
    _log_breaker(report)
    _count(report)
    response = report.response()
    logger.info(
        "batch done",
        records=len(records),
        reported_failed=len(response["batchItemFailures"]),
        verdicts=dict(Counter(o.verdict for o in report.outcomes)),
    )
    return response


def _log_breaker(report: BatchReport) -> None:
    """One line per breaker transition (held records get none each: the "batch done" line counts them)."""
    observed = report.breaker
    if observed is not None and observed.opened:
        logger.warning("Kochava breaker opened: deliveries held, probing", breaker_mode=report.breaker_mode)
    if observed is not None and observed.closed:
        logger.info("Kochava breaker closed: a probe got an answer, the backlog drains", probes=report.probes)
    if observed is not None and observed.error:
        logger.warning("Kochava breaker store failed; batch handled regardless", error=redact(observed.error))


def _log_outcome(outcome: RecordOutcome) -> None:
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


def _count(report: BatchReport) -> None:
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
            namespace=NAMESPACE,
            default_dimensions={"service": SERVICE},
        ) as metric:
            metric.add_dimension(name=m.DEAD_LETTERED_REASON_DIMENSION, value=str(reason))
