"""Device profiles and privacy through the real enricher handler (moto DynamoDB): the TTL comes from
``PROFILE_TTL_DAYS``, and a refusal of consent removes what was stored at once, so a later bare server-side
purchase is sent with nothing personal learned before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from functions.names import ENV_PROFILE_TTL_DAYS
from tests.integration.enricher.support import IDFA, IDFV, IP, UA, Stack, native_event

DAY = 24 * 3600


def _items(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.dynamodb.scan(TableName=stack.table)["Items"])


def _bare_purchase() -> dict[str, Any]:
    return native_event(event="Purchase", properties={"revenue": 1.0}, device={"platform": "ios", "id": IDFV})


def test_profiles_expire_profile_ttl_days_after_the_device_was_last_seen(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(**{ENV_PROFILE_TTL_DAYS: "90"})
    stack.invoke(stack.record(native_event("install")))
    [item] = _items(stack)
    assert int(item["expires_at"]["N"]) == int(stack.clock.now) + 90 * DAY


def test_the_default_ttl_is_180_days(stack: Stack) -> None:
    stack.invoke(stack.record(native_event("install")))
    [item] = _items(stack)
    assert int(item["expires_at"]["N"]) == int(stack.clock.now) + 180 * DAY


def test_a_gdpr_refusal_removes_the_stored_personal_data_at_once(stack: Stack) -> None:
    stack.invoke(stack.record(native_event("install", user_id="user-9")))
    [item] = _items(stack)
    assert {"advertising_id", "ip", "user_agent", "user_id"} <= set(item)
    stack.clock.now += 60

    refusal = native_event(
        timestamp=stack.clock.now,
        consent={"gdpr_applies": True, "ad_user_data": False},
        device={"platform": "ios", "id": IDFV, "ip": IP, "user_agent": UA},
    )
    stack.invoke(stack.record(refusal))
    [item] = _items(stack)
    assert not {"advertising_id", "kochava_device_id", "ip", "user_agent", "user_id"} & set(item)
    assert item["gdpr_applies"] == {"BOOL": True} and item["ad_user_data"] == {"BOOL": False}

    stack.deliveries()
    stack.invoke(stack.record(_bare_purchase()))
    [delivery] = stack.deliveries()
    data = delivery["payload"]["data"]
    assert data["device_ids"] == {"idfv": IDFV}
    assert "origination_ip" not in data and "device_ua" not in data
    assert IDFA not in str(delivery) and "user-9" not in str(delivery)
