"""Names and settings of the pipeline's AWS resources, in plain Python (no CDK import).

This module is the single source of truth read by the CDK constructs (``infra/constructs``) *and* by the local
stack (``tools/local``) and the DLQ tool (``tools/dlq``), so the deployed stack and the local emulation can
never drift apart. Change a name, a timeout or a redrive setting here and both follow.

Example:
    >>> names = ResourceNames(stage="dev")
    >>> names.queue(INGEST_QUEUE)
    'kochava-dev-ingest'
    >>> names.dlq(INGEST_QUEUE)
    'kochava-dev-ingest-dlq'
"""

from __future__ import annotations

from dataclasses import dataclass

PROJECT = "kochava"

# Message attribute names: the contract between API Gateway, the Lambdas, the local stack and tools.dlq.
ATTR_REQUEST_ID = "request_id"  # API Gateway request id (String)
ATTR_RECEIVED_AT_MS = "received_at_ms"  # when API Gateway accepted the request, epoch ms (Number)
ATTR_ROUTE = "route"  # "native" | "segment" (String)
ATTR_ADSERVICES_ATTEMPT = "adservices_attempt"  # re-queued install waiting for Apple (Number)
ATTR_STAGE = "stage"  # DLQ: which stage dead-lettered it: "enricher" | "deliverer" (String)
ATTR_REASON = "reason"  # DLQ: machine-readable reason, see pipeline.reasons (String)
ATTR_FIELD = "field"  # DLQ: the offending field for invalid events, e.g. "device.platform" (String)
ATTR_ERROR = "error"  # DLQ: human-readable message (String)
ATTR_UUID = "uuid"  # event uuid (String)
ATTR_EVENT_NAME = "event_name"  # event name as sent, or the event type (String)
ATTR_KIND = "kind"  # "install" | "event" | "identityLink" (String)
ATTR_STATUS = "http_status"  # DLQ (deliverer): Kochava's HTTP status (Number)
ATTR_RESPONSE_BODY = "response_body"  # DLQ (deliverer): Kochava's answer, truncated (String)
ATTR_FAILED_AT_MS = "failed_at_ms"  # DLQ: when it was dead-lettered, epoch ms (Number)

ROUTE_NATIVE = "native"
ROUTE_SEGMENT = "segment"
ROUTES = (ROUTE_NATIVE, ROUTE_SEGMENT)

MAX_BODY_BYTES = 1024 * 1024  # API Gateway payload limit we enforce (1 MiB); SQS allows 1 MiB messages too
MAX_EVENTS_PER_REQUEST = 100


@dataclass(frozen=True)
class QueueSpec:
    """An SQS queue with its dead-letter queue and the Lambda that consumes it."""

    key: str  # short name: "ingest" | "delivery"
    consumer_timeout_s: int  # the consuming Lambda's timeout
    batch_size: int  # SQS event source batch size
    batching_window_s: int  # SQS event source maximum batching window
    max_receive_count: int = 5  # redrive to the DLQ after this many receives
    retention_s: int = 4 * 24 * 3600
    dlq_retention_s: int = 14 * 24 * 3600  # the SQS maximum: on-call has two weeks to replay

    @property
    def visibility_timeout_s(self) -> int:
        """AWS recommends at least 6x the consumer's timeout for SQS event sources."""
        return 6 * self.consumer_timeout_s


INGEST_QUEUE = QueueSpec(key="ingest", consumer_timeout_s=30, batch_size=10, batching_window_s=1)
DELIVERY_QUEUE = QueueSpec(key="delivery", consumer_timeout_s=60, batch_size=10, batching_window_s=1)
QUEUES = (INGEST_QUEUE, DELIVERY_QUEUE)


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table (on-demand) with a string partition key and an optional TTL attribute."""

    key: str
    partition_key: str
    ttl_attribute: str | None


# Powertools idempotency defaults: partition key "id", TTL attribute "expiration".
IDEMPOTENCY_TABLE = TableSpec(key="idempotency", partition_key="id", ttl_attribute="expiration")
PROFILE_TABLE = TableSpec(key="device-profiles", partition_key="pk", ttl_attribute="expires_at")
TABLES = (IDEMPOTENCY_TABLE, PROFILE_TABLE)

# How long a delivered event's idempotency record lives: longer than a DLQ keeps a message (14 days), so a
# replay of anything still in a DLQ can never reach Kochava twice.
IDEMPOTENCY_TTL_S = 15 * 24 * 3600
# Device profiles expire when a device has not been seen for this long.
PROFILE_TTL_S = 180 * 24 * 3600


@dataclass(frozen=True)
class ResourceNames:
    """Physical names derived from the stage (``dev``, ``prod``, ``local``...)."""

    stage: str

    @property
    def prefix(self) -> str:
        return f"{PROJECT}-{self.stage}"

    def queue(self, spec: QueueSpec) -> str:
        return f"{self.prefix}-{spec.key}"

    def dlq(self, spec: QueueSpec) -> str:
        return f"{self.prefix}-{spec.key}-dlq"

    def table(self, spec: TableSpec) -> str:
        return f"{self.prefix}-{spec.key}"

    def function(self, name: str) -> str:
        return f"{self.prefix}-{name}"


# Environment variable names read by the Lambdas (see functions/*/handler.py and pipeline/settings.py).
ENV_KOCHAVA_APP_ID_IOS = "KOCHAVA_APP_ID_IOS"
ENV_KOCHAVA_APP_ID_ANDROID = "KOCHAVA_APP_ID_ANDROID"
ENV_KOCHAVA_APP_IDS_BY_BUNDLE = "KOCHAVA_APP_IDS_BY_BUNDLE"  # JSON object {"bundle.id": "guid"}
ENV_KOCHAVA_URL = "KOCHAVA_URL"
ENV_KOCHAVA_IDENTITYLINK_URL = "KOCHAVA_IDENTITYLINK_URL"
ENV_FILTERED_EVENTS = "FILTERED_EVENTS"  # comma-separated, case-insensitive; default "heartbeat"
ENV_EVENT_NAME_MAP = "EVENT_NAME_MAP"  # JSON object {"input name": "Kochava name"}
ENV_ADSERVICES_URL = "ADSERVICES_URL"
ENV_ADSERVICES_RESOLVE = "ADSERVICES_RESOLVE"  # "true" | "false"
ENV_INGEST_QUEUE_URL = "INGEST_QUEUE_URL"
ENV_INGEST_DLQ_URL = "INGEST_DLQ_URL"
ENV_DELIVERY_QUEUE_URL = "DELIVERY_QUEUE_URL"
ENV_DELIVERY_DLQ_URL = "DELIVERY_DLQ_URL"
ENV_PROFILE_TABLE = "PROFILE_TABLE_NAME"
ENV_IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE_NAME"
ENV_MAX_RECEIVE_COUNT = "MAX_RECEIVE_COUNT"
ENV_DELIVERER_MAX_WORKERS = "DELIVERER_MAX_WORKERS"

# CloudFormation output keys of the stack (tools.dlq reads them with --stack).
OUTPUT_API_URL = "ApiUrl"
OUTPUT_API_KEY_ID = "ApiKeyId"
OUTPUT_INGEST_QUEUE_URL = "IngestQueueUrl"
OUTPUT_INGEST_DLQ_URL = "IngestDlqUrl"
OUTPUT_DELIVERY_QUEUE_URL = "DeliveryQueueUrl"
OUTPUT_DELIVERY_DLQ_URL = "DeliveryDlqUrl"
