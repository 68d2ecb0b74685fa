"""The breaker store on DynamoDB (moto, real boto3 calls): conditional writes decide one winner per transition.

The callers come one after the other: moto's in-process DynamoDB does not apply a conditional write atomically
between threads (DynamoDB does), so what is checked is the condition each write carries."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from functions.adapters.breaker_dynamodb import ATTEMPTS_PREFIX, BREAKER_KEY, PK, DynamoDbBreakerStore
from functions.names import DELIVERY_STATE_TABLE
from functions.pipeline.breaker import CLOSED, BreakerPolicy, mode

REGION = "eu-west-1"
TABLE = "kochava-test-delivery-state"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoDbBreakerStore]:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": DELIVERY_STATE_TABLE.partition_key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": DELIVERY_STATE_TABLE.partition_key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoDbBreakerStore(lambda: client, TABLE)


def test_an_absent_breaker_reads_closed(store: DynamoDbBreakerStore) -> None:
    assert store.read() == CLOSED
    assert mode(store.read(), now=0.0) == "send"


def test_failures_add_up_and_a_delivery_resets_them(store: DynamoDbBreakerStore) -> None:
    assert store.add_failures(3, now=100.0) == 3
    assert store.add_failures(2, now=101.0) == 5
    assert store.read().failures == 5
    store.reset_failures()
    assert store.read().failures == 0
    store.reset_failures()  # nothing to reset: a no-op, no error
    assert store.add_failures(1, now=102.0) == 1


def test_exactly_one_of_many_invocations_opens_the_breaker(store: DynamoDbBreakerStore) -> None:
    store.add_failures(5, now=100.0)
    won = [store.open(now=100.0, probe_after=120.0) for _ in range(8)]
    assert won.count(True) == 1
    state = store.read()
    assert state.is_open and state.opened_at == 100.0 and state.probe_after == 120.0 and state.failures == 0
    assert mode(state, now=110.0) == "hold"
    assert mode(state, now=120.0) == "probe"
    assert store.open(now=130.0, probe_after=150.0) is False  # already open: opened_at unchanged
    assert store.read().opened_at == 100.0


def test_one_probe_per_interval_whoever_asks(store: DynamoDbBreakerStore) -> None:
    policy = BreakerPolicy(probe_interval_s=20)
    store.open(now=100.0, probe_after=120.0)
    assert store.claim_probe(now=110.0, next_probe_after=130.0) is False  # not due yet
    claims = [store.claim_probe(now=121.0, next_probe_after=141.0) for _ in range(8)]
    assert claims.count(True) == 1
    assert store.read().probe_after == 141.0
    assert store.claim_probe(now=130.0, next_probe_after=150.0) is False
    assert store.claim_probe(now=141.5, next_probe_after=141.5 + policy.probe_interval_s) is True


def test_close_once_then_a_closed_breaker_cannot_be_probed_or_closed_again(store: DynamoDbBreakerStore) -> None:
    store.add_failures(9, now=90.0)
    store.open(now=100.0, probe_after=120.0)
    store.reset_failures()  # a stale "delivered" from an invocation that read closed: no effect while open
    assert store.read().is_open
    closed = [store.close(now=125.0) for _ in range(4)]
    assert closed.count(True) == 1
    state = store.read()
    assert not state.is_open and state.closed_at == 125.0 and state.failures == 0
    assert store.claim_probe(now=200.0, next_probe_after=220.0) is False
    assert store.close(now=201.0) is False


def test_attempts_are_counted_per_message_and_expire(store: DynamoDbBreakerStore) -> None:
    assert [store.count_attempt("m-1", now=100.0) for _ in range(3)] == [1, 2, 3]
    assert store.count_attempt("m-2", now=100.0) == 1
    client = boto3.client("dynamodb", region_name=REGION)
    item = client.get_item(TableName=TABLE, Key={PK: {"S": ATTEMPTS_PREFIX + "m-1"}})["Item"]
    assert int(item["expires_at"]["N"]) > 100 + 4 * 86400
    breaker = client.get_item(TableName=TABLE, Key={PK: {"S": BREAKER_KEY}})
    assert "Item" not in breaker  # counting attempts never touches the breaker
