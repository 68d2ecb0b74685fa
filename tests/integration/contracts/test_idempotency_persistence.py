"""The idempotency persistence fake (``tests.fakes.MemoryPersistence``) and Powertools' DynamoDB layer (real boto3
on moto, the table from ``tools/local/aws.py`` as the local stack makes it) store and refuse records the same way:
every case here runs against both. The deliverer's once-only tests run Powertools on the fake
(``tests/unit/deliverer``), so what they prove holds for DynamoDB only as far as these agree.

Powertools writes a record only when there is none, it has expired, or it is in progress past its in-progress
expiry (the invocation that wrote it would have timed out); otherwise the write is refused and Powertools reads
the record back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from moto import mock_aws

from functions.deliverer.idempotency import IdempotentSender
from functions.names import IDEMPOTENCY_TABLE, IDEMPOTENCY_TTL_S
from infra.resources import ResourceNames
from tests.fakes import FakeKochava, MemoryPersistence
from tools.local.aws import create_table

REGION = "eu-west-1"
KEY = "kochava-delivery#0123456789abcdef"


@pytest.fixture(params=["fake", "dynamodb"])
def layer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[BasePersistenceLayer]:
    if request.param == "fake":
        yield configured(MemoryPersistence())
        return
    for name, value in {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        table = create_table(client, ResourceNames(stage="test"), IDEMPOTENCY_TABLE)
        layer = DynamoDBPersistenceLayer(
            table_name=table,
            key_attr=IDEMPOTENCY_TABLE.partition_key,
            expiry_attr=IDEMPOTENCY_TABLE.ttl_attribute or "expiration",
            boto3_client=client,
        )
        yield configured(layer)


def configured(layer: BasePersistenceLayer) -> BasePersistenceLayer:
    """Configured as the deliverer's once-only sender configures it (payload validation on: the stored hash)."""
    sender = IdempotentSender(FakeKochava(), layer, expires_after_s=IDEMPOTENCY_TTL_S)
    layer.configure(sender.config, function_name="kochava-test-deliverer")
    return layer


def in_progress(*, expires_in_s: int = 3600, in_progress_for_ms: int | None = 60_000) -> DataRecord:
    now = time.time()
    return DataRecord(
        idempotency_key=KEY,
        status="INPROGRESS",
        expiry_timestamp=int(now) + expires_in_s,
        in_progress_expiry_timestamp=None if in_progress_for_ms is None else int(now * 1000) + in_progress_for_ms,
        payload_hash="hash-1",
    )


def test_a_record_is_written_once_and_read_back(layer: BasePersistenceLayer) -> None:
    record = in_progress()
    layer._put_record(record)
    with pytest.raises(IdempotencyItemAlreadyExistsError):
        layer._put_record(in_progress())
    stored = layer._get_record(KEY)
    assert (stored.status, stored.expiry_timestamp, stored.payload_hash) == (
        "INPROGRESS",
        record.expiry_timestamp,
        "hash-1",
    )


def test_a_record_in_progress_past_its_in_progress_expiry_is_overwritten(layer: BasePersistenceLayer) -> None:
    layer._put_record(in_progress(in_progress_for_ms=-1_000))  # the invocation that wrote it has timed out
    layer._put_record(in_progress())
    assert layer._get_record(KEY).status == "INPROGRESS"


def test_an_expired_record_is_overwritten(layer: BasePersistenceLayer) -> None:
    layer._put_record(in_progress(expires_in_s=-10, in_progress_for_ms=None))
    layer._put_record(in_progress())


def test_a_completed_record_is_kept_and_a_deleted_one_is_gone(layer: BasePersistenceLayer) -> None:
    layer._put_record(in_progress())
    completed = DataRecord(
        KEY, "COMPLETED", int(time.time()) + 3600, response_data='{"http_status":200}', payload_hash="hash-1"
    )
    layer._update_record(completed)
    with pytest.raises(IdempotencyItemAlreadyExistsError):
        layer._put_record(in_progress(in_progress_for_ms=-1_000))  # in-progress expiry applies to INPROGRESS only
    stored = layer._get_record(KEY)
    assert (stored.status, stored.response_data) == ("COMPLETED", '{"http_status":200}')
    layer._delete_record(stored)
    with pytest.raises(IdempotencyItemNotFoundError):
        layer._get_record(KEY)
