"""Device profiles and failures that are not the event's fault, through the enricher's entry point on the in-memory
ports (moved from the moto tier: ``tests/integration/enricher/test_profile_privacy.py`` and
``test_not_the_events_fault.py``; the fake profile store and the DynamoDB one agree in
``tests/integration/contracts/test_profile_store.py``).

The TTL comes from ``PROFILE_TTL_DAYS``; a refusal of consent removes what was stored at once, so a later bare
server-side purchase is sent with nothing personal learned before (issue 16: a failed profile read does not fail
the message, and a record SQS would not take is retried later with a growing backoff)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from functions.enricher import metrics as m
from functions.names import ENV_PROFILE_TTL_DAYS
from functions.pipeline.profiles import Profile
from tests.samples.enricher import IDFA, IDFV, IP, UA, native_event
from tests.unit.enricher.stack import FakeStack

DAY = 24 * 3600


def _items(stack: FakeStack) -> list[Profile]:
    return list(stack.profiles.profiles.values())


def _bare_purchase() -> dict[str, Any]:
    return native_event(event="Purchase", properties={"revenue": 1.0}, device={"platform": "ios", "id": IDFV})


def test_profiles_expire_profile_ttl_days_after_the_device_was_last_seen(make_stack: Callable[..., FakeStack]) -> None:
    """Given PROFILE_TTL_DAYS=90 When an install is handled Then its profile expires 90 days from now."""
    stack = make_stack(**{ENV_PROFILE_TTL_DAYS: "90"})
    stack.invoke(stack.record(native_event("install")))
    [expires_at] = stack.profiles.expires_at.values()
    assert expires_at == int(stack.clock.now) + 90 * DAY


def test_the_default_ttl_is_180_days(stack: FakeStack) -> None:
    """Given no PROFILE_TTL_DAYS When an install is handled Then its profile expires 180 days from now."""
    stack.invoke(stack.record(native_event("install")))
    [expires_at] = stack.profiles.expires_at.values()
    assert expires_at == int(stack.clock.now) + 180 * DAY


def test_a_gdpr_refusal_removes_the_stored_personal_data_at_once(stack: FakeStack) -> None:
    """Given a device profile with its ids, IP, user agent and user id
    When the device refuses consent under GDPR, then a bare server-side purchase comes
    Then the profile keeps only the refusal, and the purchase is sent without anything learned before."""
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
    assert item["gdpr_applies"] is True and item["ad_user_data"] is False

    stack.deliveries()
    stack.invoke(stack.record(_bare_purchase()))
    [delivery] = stack.deliveries()
    data = delivery["payload"]["data"]
    assert data["device_ids"] == {"idfv": IDFV}
    assert "origination_ip" not in data and "device_ua" not in data
    assert IDFA not in str(delivery) and "user-9" not in str(delivery)


def _emf(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = blob[metric["Name"]]
            totals[metric["Name"]] = totals.get(metric["Name"], 0.0) + sum(
                value if isinstance(value, list) else [value]
            )
    return totals


def test_a_failed_profile_read_enriches_without_the_profile_and_keeps_the_stored_one(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a device's stored profile and DynamoDB throttling every read
    When a purchase of that device comes Then it is delivered with its own fields only, the failed read counted
    and logged, the message not failed, and the stored profile not overwritten."""
    install = native_event(
        "install", device={"platform": "ios", "id": IDFV, "advertising_id": IDFA, "ip": IP, "model": "iPhone14,2"}
    )
    stack.invoke(stack.record(install))  # stores the device's profile (IDFA, IP, model)
    stack.deliveries()
    stored = {key: dict(profile) for key, profile in stack.profiles.profiles.items()}
    capsys.readouterr()
    error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"}}
    stack.profiles.fail_reads(ClientError(error, "BatchGetItem"))  # what boto3 raises after its retries

    purchase = native_event(
        "track", event="Purchase", properties={"price": 1.0}, device={"platform": "ios", "id": IDFV}
    )
    response = stack.invoke(stack.record(purchase))

    assert response == {"batchItemFailures": []}, "the message is not failed"
    [delivery] = stack.deliveries()
    assert delivery["uuid"] == purchase["uuid"]
    assert delivery["payload"]["data"]["device_ids"] == {"idfv": IDFV}  # its own fields only, no profile fill
    assert "origination_ip" not in delivery["payload"]["data"]
    assert _emf(capsys).get(m.PROFILE_READ_FAILED) == 1
    assert any(line.get("message", "").startswith("profile read failed") for line in stack.log_lines())
    assert stack.profiles.profiles == stored, "a profile that could not be read is not overwritten"


def test_a_record_sqs_will_not_take_is_retried_with_a_growing_backoff(stack: FakeStack) -> None:
    """Given SQS unreachable When two records (first and third receive) are handled
    Then the invocation fails, and each record is backed off for longer the more it was received (60 s, 1500 s)."""
    stack.sender.fail(None, times=100)
    good_for_nothing = [stack.record(native_event()) for _ in range(2)]
    good_for_nothing[1]["attributes"]["ApproximateReceiveCount"] = "3"
    with pytest.raises(Exception, match="All records failed"):  # every record failed: the invocation fails
        stack.invoke(*good_for_nothing)
    assert stack.back_off.back_offs == [
        (good_for_nothing[0]["receiptHandle"], 60),
        (good_for_nothing[1]["receiptHandle"], 1500),
    ]
