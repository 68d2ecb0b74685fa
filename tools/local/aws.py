"""The emulated AWS endpoint: moto in server mode, and the pipeline's resources created from infra/resources.py.

Every queue, dead-letter queue, redrive policy and table comes from the specs in ``infra/resources.py`` with the
stage ``local`` (``ResourceNames("local")``), so ``python -m tools.dlq --endpoint-url ...`` and the AWS CLI find
them under the same names as on a deployed stage. The one deliberate difference is time: see
:func:`local_visibility_timeout_s`.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from functions.names import MAX_BODY_BYTES, QUEUES, TABLES, QueueSpec, TableSpec
from infra.resources import ResourceNames

STAGE = "local"
REGION = "us-east-1"
# moto accepts any credentials; these are fixed so that the AWS CLI and tools.dlq can use the same ones.
ACCESS_KEY_ID = "local"
SECRET_ACCESS_KEY = "local"  # noqa: S105 - a dummy for the local emulator, never a real secret

# Local time scale (the default of ``python -m tools.local --time-scale``): SQS visibility timeouts are 6x the
# consumer's Lambda timeout (180 s / 360 s), which would make a retried message reappear only after minutes.
# Locally they are divided by this factor (180 s -> 3 s, 360 s -> 6 s), and so are the deliverer's backoff, the
# Kochava breaker's probe interval and hold, and the delivery queue's retention as the deliverer sees it; the
# pollers keep in-flight messages invisible for as long as the handler runs, so the AWS invariant "a message never
# reappears while its consumer still works on it" still holds. SQS counts visibility in whole seconds, so at a
# high scale a wait is at least 1 s (a 10-minute hold at 720x is 1 s, i.e. 12 scaled minutes).
TIME_SCALE = 60
MIN_VISIBILITY_TIMEOUT_S = 2


def local_visibility_timeout_s(spec: QueueSpec, time_scale: float = TIME_SCALE) -> int:
    """The visibility timeout used locally: the spec's (6x the consumer timeout) divided by ``time_scale``."""
    return max(MIN_VISIBILITY_TIMEOUT_S, int(spec.visibility_timeout_s // time_scale))


def client(service: str, endpoint_url: str) -> Any:
    """A boto3 client for the emulated endpoint (dummy credentials, no retries hiding failures)."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=50),
    )


@dataclass(frozen=True)
class QueueUrls:
    queue: str
    dlq: str
    queue_arn: str
    dlq_arn: str


@dataclass(frozen=True)
class Resources:
    """What :func:`create_resources` created: URLs by queue key and table names by table key."""

    names: ResourceNames
    queues: dict[str, QueueUrls]
    tables: dict[str, str]


def speed_up_moto_sqs() -> bool:
    """Make moto's SQS receive O(n) instead of O(n^2) in the queue's depth; same behaviour. Once per process.

    moto 5.x checks each received message's retention by computing *all* queue attributes (counting every message
    in the queue, several clock reads each), and reads the clock through ``datetime``. With 2,000 messages queued a
    receive took ~0.3 s. This reads the retention period directly and the clock with ``time.time()``. Returns
    False (and changes nothing) when moto's internals are not the ones this was written against.
    """
    import moto.sqs.models

    models: Any = moto.sqs.models  # patched by name: typed as Any on purpose
    backend: Any = models.SQSBackend
    if getattr(backend, "_kochava_local_fast", False):
        return True
    original = getattr(backend, "is_message_valid_based_on_retention_period", None)
    if original is None or not hasattr(models, "unix_time") or not hasattr(models, "unix_time_millis"):
        return False
    slow_time, slow_millis = models.unix_time, models.unix_time_millis

    def fast_unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else float(slow_time(dt))

    def fast_unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else float(slow_millis(dt))

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        period = getattr(queue, "message_retention_period", None)
        if period is None:
            return bool(original(self, queue_name, message))
        retain_until: float = int(period) + message.sent_timestamp / 1000
        return retain_until > time.time()

    models.unix_time = fast_unix_time
    models.unix_time_millis = fast_unix_time_millis
    backend.is_message_valid_based_on_retention_period = retained
    backend._kochava_local_fast = True
    return True


def speed_up_moto_dispatch() -> bool:
    """Remember which moto backend serves a host instead of finding it again on every request. Once per process.

    moto's server finds the backend of each request under one lock by listing moto's package folder (an
    ``isdir`` per service, ~150) and then trying every URL pattern of every service, although the answer only
    depends on the host (``sqs.us-east-1.amazonaws.com``). Profiled (py-spy) on the local stack, that lookup was the
    busiest code of the moto server, serialising every thread behind it. Returns False (and changes nothing) when
    moto's internals are not the ones this was written against.
    """
    from moto.moto_server import werkzeug_app

    dispatcher: Any = getattr(werkzeug_app, "DomainDispatcherApplication", None)
    original = getattr(dispatcher, "get_backend_for_host", None)
    if dispatcher is None or original is None:
        return False
    if getattr(dispatcher, "_kochava_local_fast", False):
        return True
    known: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        try:
            return known[host]
        except KeyError:
            backend = known[host] = original(self, host)
            return backend

    dispatcher.get_backend_for_host = get_backend_for_host
    dispatcher._kochava_local_fast = True
    return True


class MotoServer:
    """moto in server mode on 127.0.0.1 (``port=0``: an ephemeral port)."""

    def __init__(self, port: int = 0) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per AWS call otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint_url = ""

    def start(self) -> str:
        if not speed_up_moto_sqs():
            logging.getLogger("tools.local").warning("moto internals changed: SQS receives stay O(n^2) locally")
        if not speed_up_moto_dispatch():
            logging.getLogger("tools.local").warning("moto internals changed: its per-request backend lookup stays")
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self.endpoint_url

    def reset(self) -> None:
        """Forget every resource: moto keeps its state per process, shared by all servers of that process."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310 - local
        with urllib.request.urlopen(req, timeout=10):  # noqa: S310 - http://127.0.0.1 only
            pass

    def stop(self) -> None:
        self._server.stop()


def create_queue(
    sqs: Any,
    names: ResourceNames,
    spec: QueueSpec,
    time_scale: float = TIME_SCALE,
    *,
    visibility_timeout_s: int | None = None,
) -> QueueUrls:
    """The DLQ, then the queue redriving into it after ``spec.max_receive_count`` receives.

    ``visibility_timeout_s`` defaults to :func:`local_visibility_timeout_s` at ``time_scale``; tests that drive the
    Lambdas on moto's in-process ``mock_aws`` (no pollers) pass the deployed ``spec.visibility_timeout_s``.
    """
    dlq_url = sqs.create_queue(
        QueueName=names.dlq(spec),
        Attributes={"MessageRetentionPeriod": str(spec.dlq_retention_s), "MaximumMessageSize": str(MAX_BODY_BYTES)},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receive_count}
    url = sqs.create_queue(
        QueueName=names.queue(spec),
        Attributes={
            "VisibilityTimeout": str(visibility_timeout_s or local_visibility_timeout_s(spec, time_scale)),
            "MessageRetentionPeriod": str(spec.retention_s),
            "MaximumMessageSize": str(MAX_BODY_BYTES),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return QueueUrls(queue=url, dlq=dlq_url, queue_arn=arn, dlq_arn=dlq_arn)


def create_table(dynamodb: Any, names: ResourceNames, spec: TableSpec) -> str:
    """An on-demand table with a string partition key and, when the spec has one, TTL on its attribute."""
    name = names.table(spec)
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": spec.partition_key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": spec.partition_key, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    if spec.ttl_attribute:
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute}
        )
    return name


def create_resources(endpoint_url: str, stage: str = STAGE, time_scale: float = TIME_SCALE) -> Resources:
    """Every queue (with its DLQ and redrive) and every table of ``infra/resources.py``, for ``stage``."""
    names = ResourceNames(stage)
    sqs = client("sqs", endpoint_url)
    dynamodb = client("dynamodb", endpoint_url)
    queues = {spec.key: create_queue(sqs, names, spec, time_scale) for spec in QUEUES}
    tables = {spec.key: create_table(dynamodb, names, spec) for spec in TABLES}
    return Resources(names=names, queues=queues, tables=tables)
