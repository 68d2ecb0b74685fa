"""The names the Lambdas share with the stack (``infra/``), the local stack and the tools, in plain Python.

Message attributes, environment variable names, SQS limits, queue and table settings, function and metric names:
the deployed code, the CDK constructs (through ``infra/resources.py``), ``tools/local`` and the on-call tools all
read them from here, so they can never drift apart. Dependencies point down: this module imports nothing of the
repo, ``functions/`` never imports ``infra/`` or ``tools/``, and both of those import this.

Example:
    >>> sqs_message_bytes("{}", [(ATTR_ROUTE, "String", ROUTE_NATIVE)])
    19
    >>> DELIVERY_QUEUE.visibility_timeout_s
    360
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
ATTR_TRUNCATED = "truncated"  # DLQ: "true" when the body was cut to fit one SQS message (String)
ATTR_API_KEY_ID = "api_key_id"  # the API key (source) the request came with: $context.identity.apiKeyId (String)

ROUTE_NATIVE = "native"
ROUTE_SEGMENT = "segment"
ROUTES = (ROUTE_NATIVE, ROUTE_SEGMENT)
# The ingest API's own path per route (the deployed API Gateway and tools/local serve the same).
ROUTE_PATHS = {ROUTE_NATIVE: "/v1/events", ROUTE_SEGMENT: "/v1/segment"}
# The Segment HTTP Tracking API calls a single-call path implies (`/v1/track`...): the first three are mapped, the
# others accepted and deliberately filtered by the enricher.
SEGMENT_CALL_TYPES = ("track", "screen", "identify", "page", "group", "alias")


@dataclass(frozen=True)
class IngestPath:
    """One POST path of the ingest API (deployed and tools/local alike).

    ``route`` is the ``route`` message attribute (how the enricher reads the body); ``body_model`` names the request
    model, ``infra/schemas/<body_model>_body.schema.json``. ``segment_api`` paths are the Segment HTTP Tracking API
    surface the Segment and RudderStack server libraries call: HTTP Basic auth with the write key (API key) as the
    user name, ``200 {"success": true}``, only the envelope checked at the gateway. On a single-call path
    (``call_type``) the gateway sets the body's ``type`` to the path's call type before queueing it.
    """

    path: str
    route: str
    body_model: str
    segment_api: bool = False
    call_type: str | None = None


INGEST_PATHS = (
    IngestPath("/v1/events", ROUTE_NATIVE, "native"),
    IngestPath("/v1/segment", ROUTE_SEGMENT, "segment"),
    IngestPath("/v1/batch", ROUTE_SEGMENT, "segment_batch", segment_api=True),
    IngestPath("/v1/import", ROUTE_SEGMENT, "segment_batch", segment_api=True),  # analytics-java's batch path
    *(IngestPath(f"/v1/{call}", ROUTE_SEGMENT, "segment_call", True, call) for call in SEGMENT_CALL_TYPES),
)
INGEST_PATHS_BY_PATH = {p.path: p for p in INGEST_PATHS}
BODY_MODELS = tuple(dict.fromkeys(p.body_model for p in INGEST_PATHS))
# The request media types the Segment HTTP Tracking API paths (``segment_api``) read as JSON, exactly as listed: the
# deployed integration has one request template (and request model) per entry, tools/local/api.py accepts exactly
# these. The libraries do not all say JSON: @rudderstack/rudder-sdk-node sets no Content-Type, so its HTTP client
# (axios) sends application/x-www-form-urlencoded; curl's -d sends that too. A request without a Content-Type is
# application/json (API Gateway's default). The other paths take application/json only. API Gateway picks a template
# by the header as sent, so the charset spellings clients use are listed one by one (local matching is exact too).
_MEDIA_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain")
_CHARSET_SUFFIXES = ("", "; charset=utf-8", ";charset=utf-8", "; charset=UTF-8", ";charset=UTF-8")
JSON_MEDIA_TYPE = "application/json"
SEGMENT_BODY_MEDIA_TYPES = tuple(media + suffix for media in _MEDIA_TYPES for suffix in _CHARSET_SUFFIXES)
NATIVE_BODY_MEDIA_TYPES = tuple(JSON_MEDIA_TYPE + suffix for suffix in _CHARSET_SUFFIXES)


def body_media_types(spec: IngestPath) -> tuple[str, ...]:
    """The ``Content-Type`` values a path reads its body as JSON under (a missing header is ``application/json``).

    >>> len(body_media_types(INGEST_PATHS_BY_PATH["/v1/batch"])), body_media_types(INGEST_PATHS[0])[0]
    (15, 'application/json')
    """
    return SEGMENT_BODY_MEDIA_TYPES if spec.segment_api else NATIVE_BODY_MEDIA_TYPES


# No API key at all (no x-api-key header on the native paths, no Authorization header on the Segment paths): API
# Gateway answers without calling the authorizer, with this status and message (the UNAUTHORIZED gateway response);
# tools/local answers the same. A ``writeKey`` in the body cannot stand for the key: the authorizer never sees the body
# and the API has no Lambda per request (README "Already using Segment or RudderStack?").
MISSING_KEY_STATUS = 401
MISSING_KEY_MESSAGE = (
    "Unauthorized: no API key. Send the write key as the HTTP Basic user name with an empty password "
    "(Authorization: Basic base64(key + ':')) on the Segment paths (/v1/batch, /v1/track...), or the x-api-key "
    "header on /v1/events and /v1/segment; a writeKey in the body is not read"
)

# The request header carrying the API key: `x-api-key` on the native paths, `Authorization: Basic` on the
# Segment-compatible ones (the deployed API's authorizer reads exactly this one, see functions/authorizer).
API_KEY_HEADER = "x-api-key"
BASIC_AUTH_HEADER = "authorization"

# SQS: one message, body + message attributes (names, data types, values), is at most 1 MiB (the queues'
# MaximumMessageSize; also the total of one SendMessageBatch call), with at most 10 message attributes.
SQS_MAX_MESSAGE_BYTES = 1024 * 1024
SQS_MAX_MESSAGE_ATTRIBUTES = 10
# The queues' MaximumMessageSize and the API's 1 MiB limit. The body the API accepts is a little smaller: SQS counts
# the attributes the API adds (request_id, received_at_ms, route) too, see sqs_message_bytes.
MAX_BODY_BYTES = SQS_MAX_MESSAGE_BYTES
# The message attributes the ingest API adds to every body, (name, SQS data type), in this order: the deployed
# integration template (infra/constructs/ingest_api.py) and tools/local/api.py both send exactly these.
# The API key id (ATTR_API_KEY_ID) comes last: API Gateway has none under IAM auth (authMode=iam), so it is left out
# there (SQS refuses an empty attribute value).
API_MESSAGE_ATTRIBUTES = (
    (ATTR_REQUEST_ID, "String"),
    (ATTR_RECEIVED_AT_MS, "Number"),
    (ATTR_ROUTE, "String"),
    (ATTR_API_KEY_ID, "String"),
)
# The error of the ingest API's 413 (deployed: SQS refused the message as too long; tools/local: sqs_message_bytes).
BODY_TOO_LARGE_ERROR = (
    f"the body and its message attributes are over the queue message size limit of {SQS_MAX_MESSAGE_BYTES} bytes"
)


def sqs_message_bytes(body: str | bytes | int, attributes: Iterable[tuple[str, str, str]] = ()) -> int:
    """What a message counts for against :data:`SQS_MAX_MESSAGE_BYTES`, as SQS counts it: the body's UTF-8 bytes
    plus, per message attribute, the bytes of its name, data type and value.

    ``body`` is the text, its bytes, or its length in bytes; ``attributes`` are ``(name, data type, value)``.

    >>> sqs_message_bytes("{}", [("route", "String", "native")])
    19
    """
    n = body if isinstance(body, int) else len(body.encode() if isinstance(body, str) else body)
    for name, data_type, value in attributes:
        n += len(name.encode()) + len(data_type.encode()) + len(value.encode())
    return n


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


# 7 receives: a record that cannot be handed off (SQS or DynamoDB trouble, never the event's fault: events are judged
# one by one) waits 1 min, 5 min, 25 min, 2 h, 10 h, 12 h between them (functions/enricher/retry.py), so about
# 25 hours of trouble pass before SQS redrives it: the same day-long target as a Kochava outage.
INGEST_QUEUE = QueueSpec(key="ingest", consumer_timeout_s=30, batch_size=10, batching_window_s=1, max_receive_count=7)
# The delivery queue holds events through a Kochava outage (functions/pipeline/breaker.py): each hold costs a
# receive, so its maxReceiveCount is high; 900 receives at the 360 s visibility timeout (a consumer crashing on a
# message every time) take 90 h, less than the 96 h retention, so SQS still redrives such a message before it
# could expire. The arithmetic: docs/deliverer.md#kochava-outages.
DELIVERY_QUEUE = QueueSpec(
    key="delivery", consumer_timeout_s=60, batch_size=10, batching_window_s=1, max_receive_count=900
)
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
# The deliverer's shared state: the Kochava circuit breaker (one item) and per-message delivery attempts.
DELIVERY_STATE_TABLE = TableSpec(key="delivery-state", partition_key="pk", ttl_attribute="expires_at")
TABLES = (IDEMPOTENCY_TABLE, PROFILE_TABLE, DELIVERY_STATE_TABLE)

# How long a delivered event's idempotency record lives: longer than a DLQ keeps a message (14 days), so a
# replay of anything still in a DLQ can never reach Kochava twice.
IDEMPOTENCY_TTL_S = 15 * 24 * 3600
# Device profiles expire when a device has not been seen for this long.
PROFILE_TTL_S = 180 * 24 * 3600


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
# JSON object {"<API key id>": ["<bundle id or Kochava app GUID>", ...]}: the apps each source (API key) may send to,
# decided on the GUID an event goes to (functions/pipeline/sources.py). Built by the stack from the `sourceApps`
# context key (key names -> apps).
ENV_SOURCE_APPS = "SOURCE_APPS"
# "true" | "false": once any key is bound, may a key that is not send anything? (the `requireBoundKeys` context key)
ENV_REQUIRE_BOUND_KEYS = "REQUIRE_BOUND_KEYS"
# Days a device profile is kept after the device was last seen (default PROFILE_TTL_S).
ENV_PROFILE_TTL_DAYS = "PROFILE_TTL_DAYS"
ENV_DELIVERER_MAX_WORKERS = "DELIVERER_MAX_WORKERS"
# Seconds (> 0, may be fractional) of the deliverer's first SQS retry backoff, doubled per receive; default 30.
# tools/local sets it scaled down like its queues' visibility timeouts.
ENV_DELIVERER_RETRY_BASE_S = "DELIVERER_RETRY_BASE_S"
# The deliverer's Kochava circuit breaker (functions/pipeline/breaker.py); tools/local scales the durations.
ENV_DELIVERY_STATE_TABLE = "DELIVERY_STATE_TABLE_NAME"
ENV_DELIVERER_MAX_ATTEMPTS = "DELIVERER_MAX_ATTEMPTS"  # real POST attempts before retries_exhausted (default 5)
# The breaker opens when this many distinct events (default 5) from KOCHAVA_BREAKER_MIN_DEVICES distinct devices
# (default 3) failed transiently within KOCHAVA_BREAKER_WINDOW_S (default 60) with no delivery in it.
ENV_BREAKER_THRESHOLD = "KOCHAVA_BREAKER_THRESHOLD"
ENV_BREAKER_MIN_DEVICES = "KOCHAVA_BREAKER_MIN_DEVICES"
ENV_BREAKER_WINDOW_S = "KOCHAVA_BREAKER_WINDOW_S"
ENV_BREAKER_PROBE_INTERVAL_S = "KOCHAVA_BREAKER_PROBE_INTERVAL_S"  # one probe per interval while open
ENV_BREAKER_HOLD_S = "KOCHAVA_BREAKER_HOLD_S"  # how long a held record stays invisible
ENV_DELIVERY_RETENTION_S = "DELIVERY_QUEUE_RETENTION_S"  # the delivery queue's retention (held records give up)
ENV_POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
ENV_POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
ENV_POWERTOOLS_LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"
# Set on both functions as they are. No pydantic plugin is used, so pydantic need not scan every installed
# package's entry points when it builds the first model (a cold-start cost); bench/coldstart.py uses the same.
FUNCTION_STATIC_ENV = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}

# The Lambda functions: short name (also the Powertools service name) and handler, in the `functions` package.
FUNCTION_ENRICHER = "enricher"
FUNCTION_DELIVERER = "deliverer"
FUNCTION_AUTHORIZER = "authorizer"  # the ingest API's API key authorizer (functions/authorizer, stdlib only)
HANDLER_ENRICHER = "functions.enricher.handler.lambda_handler"
HANDLER_DELIVERER = "functions.deliverer.handler.lambda_handler"
HANDLER_AUTHORIZER = "functions.authorizer.handler.lambda_handler"
# CloudWatch namespace of the Powertools metrics both functions emit.
METRICS_NAMESPACE = "KochavaPipeline"
