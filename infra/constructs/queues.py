"""The pipeline's SQS queues: ingest and delivery, each with its dead-letter queue.

Names, timeouts and retention come from :mod:`infra.resources` (shared with the local stack and tools.dlq).
Every queue is encrypted with SQS-managed keys (SSE-SQS) and refuses non-TLS requests. SSE-SQS rather than a
customer-managed KMS key: it satisfies cdk-nag's SQS2, costs nothing, cannot be throttled by KMS, and API Gateway
and the Lambdas need no ``kms:*`` permission (a KMS key would add grants to three roles for no extra control: the
queue policy and IAM already decide who may read or write).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.names import DELIVERY_QUEUE, INGEST_QUEUE, MAX_BODY_BYTES, QueueSpec
from infra.resources import ResourceNames


@dataclass(frozen=True)
class QueueWithDlq:
    """A work queue, the dead-letter queue SQS redrives to, and the settings they were built from."""

    spec: QueueSpec
    queue: sqs.Queue
    dlq: sqs.Queue
    max_receive_count: int


class PipelineQueues(Construct):
    """The ingest queue (API Gateway -> enricher) and the delivery queue (enricher -> deliverer)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        max_receive_count: int,
        delivery_max_receive_count: int = DELIVERY_QUEUE.max_receive_count,
    ) -> None:
        super().__init__(scope, construct_id)
        self._names = names
        self.ingest = self._queue_with_dlq("Ingest", INGEST_QUEUE, max_receive_count)
        # High: a record held through a Kochava outage is received once per hold (functions/pipeline/breaker.py).
        self.delivery = self._queue_with_dlq("Delivery", DELIVERY_QUEUE, delivery_max_receive_count)

    @property
    def all(self) -> tuple[QueueWithDlq, ...]:
        """Both pairs, ingest first."""
        return (self.ingest, self.delivery)

    def _queue_with_dlq(self, label: str, spec: QueueSpec, max_receive_count: int) -> QueueWithDlq:
        dlq = sqs.Queue(
            self,
            f"{label}Dlq",
            queue_name=self._names.dlq(spec),
            retention_period=Duration.seconds(spec.dlq_retention_s),
            max_message_size_bytes=MAX_BODY_BYTES,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        queue = sqs.Queue(
            self,
            f"{label}Queue",
            queue_name=self._names.queue(spec),
            visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
            retention_period=Duration.seconds(spec.retention_s),
            # An API body of up to 1 MiB must fit (the SQS maximum; the API answers 413 above it).
            max_message_size_bytes=MAX_BODY_BYTES,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=max_receive_count),
        )
        return QueueWithDlq(spec=spec, queue=queue, dlq=dlq, max_receive_count=max_receive_count)
