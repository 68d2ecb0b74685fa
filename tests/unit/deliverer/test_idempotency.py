"""The once-only send (``functions/deliverer/idempotency.py``): Powertools idempotency itself, on an in-memory
persistence layer with its DynamoDB layer's conditions (``tests.fakes.MemoryPersistence``); the Lambda's entry
point on it is ``test_lambda_idempotency.py``; that layer and Powertools' DynamoDB layer agree in
``tests/integration/contracts/test_idempotency_persistence.py``.

At most one successful POST per uuid + kind + app; a failure is never remembered; a reused uuid is a conflict; a
copy in flight elsewhere waits; the stored record holds the facts of the POST and nothing personal, under the key
``tools.trace`` looks up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

from functions.deliverer.idempotency import KEY_PREFIX, IdempotentSender, delivery_record
from functions.pipeline import envelope
from functions.pipeline.envelope import Envelope, Kind
from functions.ports import KochavaResult, SendAnswer
from tests.fakes import DELIVERED, TRANSIENT, FakeKochava, MemoryPersistence
from tests.samples.deliverer import IOS_APP, event_body

TTL_S = 7 * 24 * 3600  # not Powertools' default (1 hour)


class Context:
    """The slice of a Lambda context Powertools reads."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def env_of(uuid: str, event_name: str = "Purchase") -> Envelope:
    return envelope.parse(event_body(uuid, event_name))


@pytest.fixture
def store() -> MemoryPersistence:
    return MemoryPersistence()


def sender(store: MemoryPersistence, kochava: Any) -> IdempotentSender:
    built = IdempotentSender(kochava, store, expires_after_s=TTL_S)
    built.register_lambda_context(Context(30_000))
    return built


def send(once: IdempotentSender, env: Envelope, **kwargs: Any) -> SendAnswer:
    return once.send_once(env, env.payload, deadline=kwargs.pop("deadline", 123.0), **kwargs)


def test_delivered_once_then_a_duplicate_without_a_post(store: MemoryPersistence) -> None:
    kochava = FakeKochava()
    once = sender(store, kochava)
    env = env_of("u-1")
    assert send(once, env) == SendAnswer("delivered", DELIVERED)
    assert send(once, env) == SendAnswer("duplicate")
    assert len(kochava.posts) == 1
    [post] = kochava.posts
    assert (post.kind, post.payload, post.deadline, post.retry) == ("event", env.payload, 123.0, True)


def test_a_probe_is_sent_with_a_single_attempt(store: MemoryPersistence) -> None:
    kochava = FakeKochava()
    send(sender(store, kochava), env_of("u-1"), retry=False, deadline=9.5)
    [post] = kochava.posts
    assert (post.retry, post.deadline) == (False, 9.5)


def test_a_failure_is_never_remembered(store: MemoryPersistence) -> None:
    kochava = FakeKochava(default=TRANSIENT)
    once = sender(store, kochava)
    env = env_of("u-1")
    assert send(once, env) == SendAnswer("failed", TRANSIENT)
    assert store.records == {}
    kochava.default = DELIVERED
    assert send(once, env).status == "delivered"
    assert len(kochava.posts) == 2


def test_a_reused_uuid_with_other_content_is_a_conflict_and_not_posted(store: MemoryPersistence) -> None:
    kochava = FakeKochava()
    once = sender(store, kochava)
    assert send(once, env_of("u-1")).status == "delivered"
    assert send(once, env_of("u-1", event_name="Refund")) == SendAnswer("conflict")
    assert len(kochava.posts) == 1


class Reentrant:
    """A Kochava client that, while the first POST is in flight, lets another copy of the event be sent."""

    def __init__(self) -> None:
        self.inner: SendAnswer | None = None
        self.once: IdempotentSender | None = None
        self.records: list[Any] = []

    def send(self, kind: Kind, payload: Mapping[str, Any], *, deadline: float, retry: bool = True) -> KochavaResult:
        assert self.once is not None
        self.inner = self.once.send_once(env_of("u-1"), payload, deadline=deadline)
        self.records = list(self.store.records.values())
        return DELIVERED

    store: MemoryPersistence


def test_a_copy_sent_while_the_first_is_in_flight_waits(store: MemoryPersistence) -> None:
    client = Reentrant()
    client.store = store
    once = sender(store, client)
    client.once = once
    assert send(once, env_of("u-1")).status == "delivered"
    assert client.inner == SendAnswer("in_progress")
    [in_flight] = client.records
    assert in_flight.status == "INPROGRESS"
    # It expires when this invocation would time out (30 s of the Lambda's time left), not after the record's TTL.
    assert in_flight.in_progress_expiry_timestamp is not None
    assert in_flight.in_progress_expiry_timestamp - in_flight.expiry_timestamp * 1000 < -(TTL_S - 60) * 1000


def test_the_record_keeps_the_facts_of_the_post_under_the_key_trace_looks_up(store: MemoryPersistence) -> None:
    result = KochavaResult("delivered", 200, response_body='{"success":"1"}', attempts=2)
    kochava = FakeKochava(default=result)
    env = env_of("u-1")
    before_ms = int(time.time() * 1000)
    send(sender(store, kochava), env)
    after_ms = int(time.time() * 1000)
    trace = MemoryPersistence()  # configured as tools.trace configures its view of the table
    trace.configure(IdempotencyConfig(), key_prefix=KEY_PREFIX)
    trace.records = store.records
    found = trace.get_record({"uuid": "u-1", "kind": "event", "app": IOS_APP})
    assert found.status == "COMPLETED"
    data = found.response_json_as_dict()
    assert data is not None
    assert {k: v for k, v in data.items() if k != "delivered_at_ms"} == {
        "http_status": 200,
        "attempts": 2,
        "kind": "event",
        "app": IOS_APP,
    }
    assert before_ms <= data["delivered_at_ms"] <= after_ms  # when it was delivered, in ms (tools.trace shows it)
    assert found.expiry_timestamp is not None and abs(found.expiry_timestamp - (time.time() + TTL_S)) < 60


def test_an_app_id_that_is_not_text_is_recorded_as_none() -> None:
    env = env_of("u-1")
    result = KochavaResult("delivered", 200)
    assert delivery_record(env, {"kochava_app_id": 42}, result, delivered_at_ms=1)["app"] is None
