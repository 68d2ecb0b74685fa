"""The breaker store's fake (``tests.fakes.FakeBreakerStore``) and its DynamoDB adapter
(``functions.adapters.breaker_dynamodb``, real boto3 on moto) answer the same way: every case here runs against
both. The core's breaker tests run on the fake (``tests/unit/deliverer``), so what they prove holds for the adapter
only as far as these agree.

moto's in-process DynamoDB does not apply a conditional write atomically between threads (DynamoDB does), so the
writers come one after the other: what is checked is the condition each write carries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest
from moto import mock_aws

from functions.adapters.breaker_dynamodb import ATTEMPTS_PREFIX, BREAKER_KEY, ITEM_TTL_S, PK, DynamoDbBreakerStore
from functions.names import DELIVERY_STATE_TABLE
from functions.pipeline.breaker import CLOSED, BreakerPolicy, Failure, closed, opened, probe_claimed, record
from functions.ports import BreakerStore
from tests.fakes import FakeBreakerStore

REGION = "eu-west-1"
TABLE = "kochava-test-delivery-state"


@pytest.fixture(params=["fake", "dynamodb"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[BreakerStore]:
    if request.param == "fake":
        yield FakeBreakerStore()
        return
    for name, value in {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}.items():
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
        yield DynamoDbBreakerStore(client, TABLE)


def expiry(store: BreakerStore, message_id: str | None) -> int:
    """When the item of ``message_id`` (None: the breaker record) expires, as each keeps it."""
    if isinstance(store, FakeBreakerStore):
        return store.expires_at["" if message_id is None else message_id]
    assert isinstance(store, DynamoDbBreakerStore)
    key = BREAKER_KEY if message_id is None else ATTEMPTS_PREFIX + message_id
    item = boto3.client("dynamodb", region_name=REGION).get_item(TableName=TABLE, Key={PK: {"S": key}})["Item"]
    return int(item["expires_at"]["N"])


def test_an_absent_breaker_reads_closed_at_version_0(store: BreakerStore) -> None:
    assert store.read() == CLOSED
    assert store.read(consistent=True).version == 0


def test_a_write_on_the_version_read_is_stored_with_the_next_version(store: BreakerStore) -> None:
    policy = BreakerPolicy()
    failures = [Failure(f"e{i}", f"d{i}") for i in range(3)]
    counted = record(CLOSED, failures=failures, delivered=0, now=100.0, policy=policy)
    assert store.write(counted, expected_version=0, now=100.0) is True
    assert store.read(consistent=True) == replace(counted, version=1)
    opening = opened(store.read(consistent=True), now=101.0, policy=policy)
    assert store.write(opening, expected_version=1, now=101.0) is True
    assert store.read(consistent=True) == replace(opening, version=2)
    closing = closed(store.read(consistent=True), now=150.0)
    assert store.write(closing, expected_version=2, now=150.0) is True
    assert store.read(consistent=True) == replace(closing, version=3)


def test_a_write_on_a_stale_version_loses_and_changes_nothing(store: BreakerStore) -> None:
    policy = BreakerPolicy(probe_interval_s=20)
    state = opened(CLOSED, now=100.0, policy=policy)
    assert [store.write(state, expected_version=0, now=100.0) for _ in range(3)] == [True, False, False]
    seen = store.read(consistent=True)
    claim = probe_claimed(seen, now=121.0, policy=policy)
    assert [store.write(claim, expected_version=seen.version, now=121.0) for _ in range(3)] == [True, False, False]
    assert store.write(closed(seen, now=130.0), expected_version=seen.version, now=130.0) is False
    assert store.read(consistent=True) == replace(claim, version=seen.version + 1)


def test_attempts_are_counted_per_message_and_never_touch_the_breaker(store: BreakerStore) -> None:
    assert [store.count_attempt("m-1", now=100.0) for _ in range(3)] == [1, 2, 3]
    assert store.count_attempt("m-2", now=100.0) == 1
    assert store.read(consistent=True) == CLOSED


def test_every_item_expires_item_ttl_after_its_last_change(store: BreakerStore) -> None:
    store.count_attempt("m-1", now=100.0)
    store.count_attempt("m-1", now=500.0)
    assert store.write(opened(CLOSED, now=200.0, policy=BreakerPolicy()), expected_version=0, now=200.0)
    assert expiry(store, "m-1") == 500 + ITEM_TTL_S
    assert expiry(store, None) == 200 + ITEM_TTL_S
