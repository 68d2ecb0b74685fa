"""The profile store's fake (``tests.fakes.FakeProfileStore``) and its DynamoDB adapter
(``functions.adapters.profiles_dynamodb``, the table as ``tools/local/aws.py`` creates it) store and answer the same
way. The enricher's profile tests run on the fake (``tests/unit/enricher``): a write replaces the whole profile (a
field left out is gone: what a consent refusal relies on), keys are read once each, missing keys are absent, and
each profile keeps the expiry it was last written with."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from functions.adapters.profiles_dynamodb import PK, TTL_ATTRIBUTE, DynamoDbProfileStore
from functions.names import PROFILE_TABLE
from functions.pipeline.profiles import Profile
from functions.ports import ProfileStore
from infra.resources import ResourceNames
from tests.fakes import FakeProfileStore
from tests.integration.contracts.conftest import REGION
from tools.local.aws import create_table


@pytest.fixture(params=["fake", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[ProfileStore]:
    if request.param == "fake":
        yield FakeProfileStore()
        return
    request.getfixturevalue("aws")
    client = boto3.client("dynamodb", region_name=REGION)
    yield DynamoDbProfileStore(client, create_table(client, ResourceNames(stage="test"), PROFILE_TABLE))


def expires_at(store: ProfileStore, key: str) -> int:
    if isinstance(store, FakeProfileStore):
        return store.expires_at[key]
    client = boto3.client("dynamodb", region_name=REGION)
    table = ResourceNames(stage="test").table(PROFILE_TABLE)
    return int(client.get_item(TableName=table, Key={PK: {"S": key}})["Item"][TTL_ATTRIBUTE]["N"])


PROFILE: Profile = {
    "advertising_id": "6D92078A-8246-4BA4-AE5B-76104861E7DC",
    "ip": "203.0.113.7",
    "limit_ad_tracking": False,
    "att_time": 1_700_000_000,
    "revenue": 4.99,
}


def test_a_profile_round_trips_with_its_types(store: ProfileStore) -> None:
    store.put_many({"app#ios#D1": PROFILE}, expires_at=1_800_000_000)
    assert store.get_many(["app#ios#D1"]) == {"app#ios#D1": PROFILE}


def test_missing_keys_are_absent_and_repeated_keys_read_once(store: ProfileStore) -> None:
    store.put_many({f"k{i}": {"ip": f"10.0.0.{i}"} for i in range(3)}, expires_at=1_800_000_000)
    assert store.get_many(["k1", "k1", "missing", "k2"]) == {"k1": {"ip": "10.0.0.1"}, "k2": {"ip": "10.0.0.2"}}
    assert store.get_many([]) == {}


def test_a_write_replaces_the_whole_profile_and_its_expiry(store: ProfileStore) -> None:
    store.put_many({"k": PROFILE}, expires_at=1_800_000_000)
    store.put_many({"k": {"gdpr_applies": True, "ad_user_data": False}}, expires_at=1_900_000_000)
    assert store.get_many(["k"]) == {"k": {"gdpr_applies": True, "ad_user_data": False}}
    assert expires_at(store, "k") == 1_900_000_000
