"""Device-profile store on DynamoDB (table ``resources.PROFILE_TABLE``: partition key ``pk``, TTL ``expires_at``).

A profile is a flat dict of scalars (see ``functions/pipeline/profiles.py`` for which fields and why); it is
stored as one item whose attributes are the profile's keys plus ``pk`` and ``expires_at``. The enricher reads
every profile a message needs with one ``BatchGetItem`` (keys de-duplicated, ``UnprocessedKeys`` retried) and
writes the changed ones with ``BatchWriteItem`` (25 per call, ``UnprocessedItems`` retried).

Example:
    >>> _to_item("app#ios#D1", {"ip": "1.2.3.4", "limit_ad_tracking": False, "att_time": 5}, expires_at=9)
    {'ip': {'S': '1.2.3.4'}, 'limit_ad_tracking': {'BOOL': False}, 'att_time': {'N': '5'}, 'pk': {'S': 'app#ios#D1'}, \
'expires_at': {'N': '9'}}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from functions.names import PROFILE_TABLE
from functions.pipeline.profiles import Profile, ProfileValue

# AWS limits: keys per BatchGetItem, items per BatchWriteItem.
BATCH_GET_MAX_KEYS = 100
BATCH_WRITE_MAX_ITEMS = 25

PK = PROFILE_TABLE.partition_key
TTL_ATTRIBUTE = PROFILE_TABLE.ttl_attribute or "expires_at"


class ProfileStoreError(Exception):
    """DynamoDB did not answer for some keys / items after every retry."""


class DynamoDbClient(Protocol):
    def batch_get_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]: ...

    def batch_write_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]: ...


def _to_attr(value: ProfileValue) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    return {"S": value}


def _from_attr(attr: Mapping[str, Any]) -> ProfileValue | None:
    if "S" in attr:
        return str(attr["S"])
    if "BOOL" in attr:
        return bool(attr["BOOL"])
    if "N" in attr:
        text = str(attr["N"])
        try:
            return int(text)
        except ValueError:
            return float(text)
    return None  # a type this code never writes: ignore it


def _to_item(key: str, profile: Mapping[str, ProfileValue], expires_at: int) -> dict[str, Any]:
    item = {name: _to_attr(value) for name, value in profile.items() if name not in (PK, TTL_ATTRIBUTE)}
    item[PK] = {"S": key}
    item[TTL_ATTRIBUTE] = {"N": str(int(expires_at))}
    return item


def from_item(item: Mapping[str, Any]) -> tuple[str, Profile]:
    """A stored item as ``(key, profile)`` (the key and TTL attributes left out); also read by tools.privacy."""
    key = str(item[PK]["S"])
    profile: Profile = {}
    for name, attr in item.items():
        if name in (PK, TTL_ATTRIBUTE):
            continue
        value = _from_attr(attr)
        if value is not None:
            profile[name] = value
    return key, profile


class DynamoDbProfileStore:
    """:class:`ProfileStore` on a DynamoDB table, through the low-level boto3 client (no resource layer)."""

    def __init__(
        self,
        client: DynamoDbClient,
        table_name: str,
        *,
        max_attempts: int = 4,
        base_delay_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table_name
        self._max_attempts = max_attempts
        self._base_delay_s = base_delay_s
        self._sleep = sleep

    def get_many(self, keys: Iterable[str]) -> dict[str, Profile]:
        unique = list(dict.fromkeys(k for k in keys if k))
        found: dict[str, Profile] = {}
        for start in range(0, len(unique), BATCH_GET_MAX_KEYS):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [{PK: {"S": k}} for k in unique[start : start + BATCH_GET_MAX_KEYS]],
                    # An install and the server-side event that needs its profile can be milliseconds apart.
                    "ConsistentRead": True,
                }
            }
            for attempt in range(1, self._max_attempts + 1):
                if attempt > 1:
                    self._sleep(self._base_delay_s * 2 ** (attempt - 2))
                response = self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    key, profile = from_item(item)
                    found[key] = profile
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise ProfileStoreError(f"BatchGetItem left keys unprocessed after {self._max_attempts} attempts")
        return found

    def put_many(self, profiles: Mapping[str, Profile], expires_at: int) -> None:
        items = [{"PutRequest": {"Item": _to_item(k, p, expires_at)}} for k, p in profiles.items()]
        for start in range(0, len(items), BATCH_WRITE_MAX_ITEMS):
            request: dict[str, Any] = {self._table: items[start : start + BATCH_WRITE_MAX_ITEMS]}
            for attempt in range(1, self._max_attempts + 1):
                if attempt > 1:
                    self._sleep(self._base_delay_s * 2 ** (attempt - 2))
                response = self._client.batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems") or {}
                if not request:
                    break
            else:
                raise ProfileStoreError(f"BatchWriteItem left items unprocessed after {self._max_attempts} attempts")
