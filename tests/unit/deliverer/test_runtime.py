"""The deliverer's container wiring (``functions/deliverer/runtime.py`` ``build_runtime``), on the fast tier.

``build_runtime`` turns the Lambda's environment into the clients the core uses. What an operator would notice if
it were wired wrong: records POSTed to another Kochava URL, the once-only record written to another table, dead
letters sent to another queue, the breaker reading another table, a setting of the environment ignored, the
DynamoDB calls without their timeouts and retries. Here the boto3 session is a recording fake (every client call
kept with its arguments; real boto3 on moto is ``tests/integration/deliverer``) and Kochava is the local sink over
real HTTP, or an in-memory fake where the test is about the core's settings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from functions.deliverer import handler
from functions.deliverer.runtime import Runtime, build_runtime
from functions.names import (
    ATTR_FAILED_AT_MS,
    ATTR_REASON,
    ENV_BREAKER_MIN_DEVICES,
    ENV_BREAKER_THRESHOLD,
    ENV_DELIVERER_MAX_ATTEMPTS,
    ENV_DELIVERER_MAX_WORKERS,
    ENV_DELIVERER_RETRY_BASE_S,
    ENV_DELIVERY_DLQ_URL,
    ENV_DELIVERY_QUEUE_URL,
    ENV_DELIVERY_STATE_TABLE,
    ENV_IDEMPOTENCY_TABLE,
    ENV_KOCHAVA_IDENTITYLINK_URL,
    ENV_KOCHAVA_URL,
    IDEMPOTENCY_TABLE,
)
from functions.pipeline import envelope, reasons
from functions.pipeline.envelope import Kind
from functions.ports import KochavaResult
from tests.fakes import TRANSIENT, FakeKochava
from tests.lambda_fakes import FakeContext
from tests.samples.deliverer import NOW, event_body
from tools.local.kochava_sink import IDENTITYLINK_PATH, TRACK_PATH, KochavaSink

DLQ_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/deliveries-dlq"
QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/deliveries"
QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:deliveries-from-arn"
TABLE = "kochava-idempotency-prod"
STATE_TABLE = "kochava-delivery-state-prod"


@dataclass
class RecordingClient:
    """A boto3 client of one service that keeps each call (operation, arguments) and answers it successfully."""

    service: str
    config: Any
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def _call(self, operation: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((operation, kwargs))

    def tables(self) -> list[str]:
        return [kwargs["TableName"] for _, kwargs in self.calls if "TableName" in kwargs]

    # DynamoDB (Powertools' idempotency layer, the breaker store)
    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self._call("put_item", kwargs)
        return {}

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        self._call("get_item", kwargs)
        return {}

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        self._call("update_item", kwargs)
        return {"Attributes": {"attempts": {"N": "1"}}}

    def delete_item(self, **kwargs: Any) -> dict[str, Any]:
        self._call("delete_item", kwargs)
        return {}

    # SQS (the delivery queue's dead letters and back-offs)
    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        self._call("send_message_batch", kwargs)
        return {"Successful": [{"Id": e["Id"], "MessageId": f"dlq-{e['Id']}"} for e in kwargs["Entries"]]}

    def change_message_visibility_batch(self, **kwargs: Any) -> dict[str, Any]:
        self._call("change_message_visibility_batch", kwargs)
        return {"Successful": [{"Id": e["Id"]} for e in kwargs["Entries"]]}


@dataclass
class RecordingSession:
    """A ``boto3.session.Session`` that hands out :class:`RecordingClient` s and keeps them, in creation order."""

    clients: list[RecordingClient] = field(default_factory=list)

    def client(self, service_name: str, config: Any = None, **_: Any) -> RecordingClient:
        made = RecordingClient(service_name, config)
        self.clients.append(made)
        return made

    def of(self, service: str) -> list[RecordingClient]:
        return [c for c in self.clients if c.service == service]


def environment(**extra: str) -> dict[str, str]:
    return {ENV_DELIVERY_DLQ_URL: DLQ_URL, ENV_IDEMPOTENCY_TABLE: TABLE, **extra}


def sqs_event(*bodies: str, receive_count: int = 1) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"rh-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "eventSourceARN": QUEUE_ARN,
            }
            for i, body in enumerate(bodies)
        ]
    }


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    built: list[Runtime] = []
    yield built
    for runtime in built:
        runtime.close()
    handler.metrics.clear_metrics()


def context() -> Any:
    """A Lambda context with 30 s left (what ``handle`` reads of it)."""
    return FakeContext()


def build(runtimes: list[Runtime], env: Mapping[str, str], session: RecordingSession, **kwargs: Any) -> Runtime:
    runtime = build_runtime(env, boto3_session=session, **kwargs)
    runtimes.append(runtime)
    return runtime


def identity_link_body(uuid: str) -> str:
    payload = {"kochava_app_id": "koios-test-guid", "device_id": {"idfv": "X-1"}, "data": {"user_id": "user-9"}}
    return envelope.build_body(
        uuid=uuid, kind="identityLink", event_name="identify", payload=payload, adservices_generated_at=None
    )


def test_records_go_to_the_configured_kochava_urls_and_are_remembered_in_the_configured_table(
    runtimes: list[Runtime],
) -> None:
    # Given the environment of a deployed deliverer, and Kochava answering 200
    session = RecordingSession()
    with KochavaSink() as sink:
        env = environment(**{ENV_KOCHAVA_URL: sink.track_url, ENV_KOCHAVA_IDENTITYLINK_URL: sink.identitylink_url})
        runtime = build(runtimes, env, session)

        # When a batch of an event and an IdentityLink is handled
        response = handler.handle(runtime, sqs_event(event_body("u-1"), identity_link_body("u-2")), context())

        # Then each went to its own Kochava endpoint, once
        assert response == {"batchItemFailures": []}
        assert sorted(r.path for r in sink.requests) == sorted([TRACK_PATH, IDENTITYLINK_PATH])
        assert sink.violations == []
    # and each delivery was remembered in the idempotency table the environment names, under its key attribute
    [dynamodb] = session.of("dynamodb")
    puts = [kwargs for operation, kwargs in dynamodb.calls if operation == "put_item"]
    assert len(puts) == 2
    assert {kwargs["TableName"] for kwargs in puts} == {TABLE}
    assert all(IDEMPOTENCY_TABLE.partition_key in kwargs["Item"] for kwargs in puts)
    assert all(IDEMPOTENCY_TABLE.ttl_attribute in kwargs["Item"] for kwargs in puts)
    completed = [kwargs for operation, kwargs in dynamodb.calls if operation == "update_item"]
    assert {kwargs["TableName"] for kwargs in completed} == {TABLE}
    assert len(completed) == 2
    # and a batch where everything was delivered never created an SQS client (the cold start does not pay for it)
    assert session.of("sqs") == []


def test_a_rejected_record_is_dead_lettered_to_the_configured_dlq_at_the_runtime_s_clock(
    runtimes: list[Runtime],
) -> None:
    # Given Kochava rejecting every POST, and the container's clock
    session = RecordingSession()
    with KochavaSink() as sink:
        sink.add_rule(lambda request: True, [400])
        env = environment(**{ENV_KOCHAVA_URL: sink.track_url, ENV_KOCHAVA_IDENTITYLINK_URL: sink.identitylink_url})
        runtime = build(runtimes, env, session, clock=lambda: NOW)

        # When a record is handled
        response = handler.handle(runtime, sqs_event(event_body("u-bad")), context())

    # Then it is acknowledged: it is in the DLQ the environment names, with its reason and the time it failed
    assert response == {"batchItemFailures": []}
    [sqs] = session.of("sqs")
    [(operation, kwargs)] = sqs.calls
    assert operation == "send_message_batch"
    assert kwargs["QueueUrl"] == DLQ_URL
    [entry] = kwargs["Entries"]
    attributes = entry["MessageAttributes"]
    assert attributes[ATTR_REASON]["StringValue"] == reasons.KOCHAVA_REJECTED
    assert attributes[ATTR_FAILED_AT_MS]["StringValue"] == str(int(NOW * 1000))


class InFlight(FakeKochava):
    """A Kochava that takes a moment to answer and counts the POSTs it holds at once."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def send(self, kind: Kind, payload: Mapping[str, Any], *, deadline: float, retry: bool = True) -> KochavaResult:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.02)
        with self.lock:
            self.now -= 1
        return super().send(kind, payload, deadline=deadline, retry=retry)


def test_the_worker_count_bounds_the_posts_in_flight_and_sizes_the_pools(runtimes: list[Runtime]) -> None:
    # Given DELIVERER_MAX_WORKERS=2
    kochava = InFlight()
    session = RecordingSession()
    runtime = build(runtimes, environment(**{ENV_DELIVERER_MAX_WORKERS: "2"}), session, kochava=kochava)

    # When a batch of eight records is handled
    bodies = [event_body(f"w-{i}") for i in range(8)]
    assert handler.handle(runtime, sqs_event(*bodies), context()) == {"batchItemFailures": []}

    # Then never more than two POSTs were in flight at once, and every record was sent
    assert kochava.most <= 2
    assert sorted(p.payload["data"]["event_data"]["uuid"] for p in kochava.posts) == sorted(f"w-{i}" for i in range(8))


def test_the_http_pool_holds_a_connection_per_worker() -> None:
    # The HTTP pool keeps as many connections per host as there are workers (none waits for a connection)
    session = RecordingSession()
    runtime = build_runtime(environment(**{ENV_DELIVERER_MAX_WORKERS: "25"}), boto3_session=session)
    try:
        assert runtime.kochava.policy.pool_size == 25  # type: ignore[attr-defined]
        assert runtime.kochava.url_for("event") == "https://control.kochava.com/track/json"  # type: ignore[attr-defined]
    finally:
        runtime.close()


@pytest.mark.parametrize(("workers", "pool"), [("3", 10), ("25", 25)])
def test_dynamodb_calls_have_timeouts_retries_and_a_connection_per_worker(
    runtimes: list[Runtime], workers: str, pool: int
) -> None:
    # Given a deliverer with this many workers
    session = RecordingSession()
    build(runtimes, environment(**{ENV_DELIVERER_MAX_WORKERS: workers}), session, kochava=FakeKochava())

    # Then its one DynamoDB client waits 2 s to connect and 5 s to read, retries 3 times in standard mode,
    # and pools a connection per worker (at least 10)
    [dynamodb] = session.of("dynamodb")
    config = dynamodb.config
    assert (config.connect_timeout, config.read_timeout) == (2, 5)
    assert config.retries == {"mode": "standard", "max_attempts": 3}
    assert config.max_pool_connections == pool


def test_transient_failures_back_off_on_the_configured_queue_from_the_configured_base(
    runtimes: list[Runtime],
) -> None:
    # Given DELIVERY_QUEUE_URL, DELIVERER_RETRY_BASE_S=7, and Kochava failing for a while
    kochava = FakeKochava(default=TRANSIENT)
    session = RecordingSession()
    env = environment(**{ENV_DELIVERY_QUEUE_URL: QUEUE_URL, ENV_DELIVERER_RETRY_BASE_S: "7"})
    runtime = build(runtimes, env, session, kochava=kochava)

    # When a record fails on its first receive
    response = handler.handle(runtime, sqs_event(event_body("u-later")), context())

    # Then SQS redelivers it, after the configured base, from the configured queue (not the record's ARN)
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    [sqs] = session.of("sqs")
    [(operation, kwargs)] = sqs.calls
    assert operation == "change_message_visibility_batch"
    assert kwargs["QueueUrl"] == QUEUE_URL
    assert [e["VisibilityTimeout"] for e in kwargs["Entries"]] == [7]
    # and the SQS client has the same timeouts and retries as the DynamoDB one
    assert sqs.config is session.of("dynamodb")[0].config


def test_the_configured_number_of_attempts_gives_up(runtimes: list[Runtime]) -> None:
    # Given DELIVERER_MAX_ATTEMPTS=2 (no breaker: the attempts are SQS receives), Kochava failing
    session = RecordingSession()
    env = environment(**{ENV_DELIVERER_MAX_ATTEMPTS: "2"})
    runtime = build(runtimes, env, session, kochava=FakeKochava(default=TRANSIENT))

    # When the record fails on its second receive
    response = handler.handle(runtime, sqs_event(event_body("u-tired"), receive_count=2), context())

    # Then it is dead-lettered as retries_exhausted, not returned to the queue
    assert response == {"batchItemFailures": []}
    [sqs] = session.of("sqs")
    [(operation, kwargs)] = sqs.calls
    assert (operation, kwargs["QueueUrl"]) == ("send_message_batch", DLQ_URL)
    assert kwargs["Entries"][0]["MessageAttributes"][ATTR_REASON]["StringValue"] == reasons.RETRIES_EXHAUSTED


def test_the_breaker_keeps_its_state_in_the_configured_table_with_the_configured_policy(
    runtimes: list[Runtime],
) -> None:
    # Given DELIVERY_STATE_TABLE_NAME, a breaker that opens on 2 failing events from 1 device (the defaults are
    # 5 events from 3 devices), and Kochava failing
    session = RecordingSession()
    env = environment(
        **{ENV_DELIVERY_STATE_TABLE: STATE_TABLE, ENV_BREAKER_THRESHOLD: "2", ENV_BREAKER_MIN_DEVICES: "1"}
    )
    runtime = build(runtimes, env, session, kochava=FakeKochava(default=TRANSIENT))

    # When two events of one device fail in a batch
    handler.handle(runtime, sqs_event(event_body("u-b1"), event_body("u-b2")), context())

    # Then the breaker read its state, counted each message's attempt and wrote itself open in the state table;
    # the idempotency records went to their own table, through the same client
    [dynamodb] = session.of("dynamodb")
    assert set(dynamodb.tables()) == {STATE_TABLE, TABLE}
    assert any(op == "get_item" and kw["TableName"] == STATE_TABLE for op, kw in dynamodb.calls)
    states = [
        kw["ExpressionAttributeValues"]
        for op, kw in dynamodb.calls
        if op == "update_item" and kw["TableName"] == STATE_TABLE and "ConditionExpression" in kw
    ]
    assert [value for values in states for value in values.values() if value == {"S": "open"}] == [{"S": "open"}]


def test_without_a_state_table_there_is_no_breaker(runtimes: list[Runtime]) -> None:
    session = RecordingSession()
    runtime = build(runtimes, environment(), session, kochava=FakeKochava())
    assert handler.handle(runtime, sqs_event(event_body("u-nb")), context()) == {"batchItemFailures": []}
    [dynamodb] = session.of("dynamodb")
    assert set(dynamodb.tables()) == {TABLE}


class ClosingKochava(FakeKochava):
    closed = False

    def close(self) -> None:
        self.closed = True


def test_closing_the_runtime_closes_the_kochava_pool() -> None:
    kochava = ClosingKochava()
    runtime = build_runtime(environment(), boto3_session=RecordingSession(), kochava=kochava)
    runtime.close()
    assert kochava.closed
