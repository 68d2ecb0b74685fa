"""The breaker store on DynamoDB (moto, real boto3 calls): conditional writes decide one winner per transition.

The callers come one after the other: moto's in-process DynamoDB does not apply a conditional write atomically
between threads (DynamoDB does), so what is checked is the condition each write carries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest
from moto import mock_aws

from functions.adapters.breaker_dynamodb import ATTEMPTS_PREFIX, BREAKER_KEY, PK, DynamoDbBreakerStore
from functions.names import DELIVERY_STATE_TABLE
from functions.pipeline.breaker import (
    CLOSED,
    BreakerPolicy,
    Failure,
    closed,
    mode,
    opened,
    probe_claimed,
    record,
    trips,
)

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


def test_a_state_round_trips_and_every_write_moves_the_version(store: DynamoDbBreakerStore) -> None:
    policy = BreakerPolicy()
    failures = [Failure(f"e{i}", f"d{i}") for i in range(5)]
    counted = record(CLOSED, failures=failures, delivered=0, now=100.0, policy=policy)
    assert store.write(counted, expected_version=0, now=100.0) is True
    stored = store.read(consistent=True)
    assert stored == replace(counted, version=1)
    assert trips(stored, now=100.0, policy=policy)
    assert store.write(opened(stored, now=100.0, policy=policy), expected_version=1, now=100.0) is True
    state = store.read()
    assert state.is_open and state.opened_at == 100.0 and state.failures == () and state.openings == 1
    assert (mode(state, now=110.0), mode(state, now=120.0)) == ("hold", "probe")
    assert store.write(closed(state, now=130.0), expected_version=2, now=130.0) is True
    assert store.read().opened_at == 100.0 and store.read().closed_at == 130.0


def test_exactly_one_writer_per_version_wins(store: DynamoDbBreakerStore) -> None:
    policy = BreakerPolicy(probe_interval_s=20)
    state = opened(CLOSED, now=100.0, policy=policy)
    assert [store.write(state, expected_version=0, now=100.0) for _ in range(5)] == [True] + [False] * 4
    seen = store.read()
    claim = probe_claimed(seen, now=121.0, policy=policy)
    claims = [store.write(claim, expected_version=seen.version, now=121.0) for _ in range(8)]
    assert claims.count(True) == 1
    assert store.read().probe_after == 141.0


def test_an_item_of_the_older_shape_reads_without_failures_and_is_overwritten(store: DynamoDbBreakerStore) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    client.put_item(TableName=TABLE, Item={PK: {"S": BREAKER_KEY}, "state": {"S": "closed"}, "failures": {"N": "4"}})
    assert store.read() == CLOSED
    assert store.write(opened(CLOSED, now=5.0, policy=BreakerPolicy()), expected_version=0, now=5.0) is True
    assert store.read().is_open


def test_attempts_are_counted_per_message_and_expire(store: DynamoDbBreakerStore) -> None:
    assert [store.count_attempt("m-1", now=100.0) for _ in range(3)] == [1, 2, 3]
    assert store.count_attempt("m-2", now=100.0) == 1
    client = boto3.client("dynamodb", region_name=REGION)
    item = client.get_item(TableName=TABLE, Key={PK: {"S": ATTEMPTS_PREFIX + "m-1"}})["Item"]
    assert int(item["expires_at"]["N"]) > 100 + 4 * 86400
    breaker = client.get_item(TableName=TABLE, Key={PK: {"S": BREAKER_KEY}})
    assert "Item" not in breaker  # counting attempts never touches the breaker
