"""Spec section 4: the AdServices token and its 24-hour window, given a clock."""

from __future__ import annotations

from typing import Any

from functions.pipeline import adservices
from functions.pipeline.events import Rejection, parse_event
from functions.pipeline.kochava import Outcome, to_kochava
from functions.pipeline.settings import Settings

GENERATED = 1_795_000_000.0
DAY = 24 * 3600
SETTINGS = Settings(kochava_app_id_ios="ko-ios")
DEV_MODE = {
    "attribution": True,
    "orgId": 1234567890,
    "campaignId": 1234567890,
    "adGroupId": 1234567890,
    "keywordId": 123222,
    "adId": 542317136,
    "clickDate": "2020-04-08T17:17Z",
}
REAL = {"attribution": True, "orgId": 40669820, "campaignId": 542370539, "adGroupId": 542317095, "keywordId": 87675}


def install(now: float, resolved: dict[str, Any] | None = None, **adservices_fields: Any) -> Outcome:
    raw = {
        "uuid": "i-1",
        "type": "install",
        "timestamp": GENERATED + 30,
        "device": {"platform": "ios", "id": "v", "advertising_id": "6D92078A-8246-4BA4-AE5B-76104861E7DC"},
        "adservices": {"token": "tok-123", "generated_at": GENERATED} | adservices_fields,
    }
    event = parse_event(raw)
    assert not isinstance(event, Rejection)
    return to_kochava(event, SETTINGS, now, attribution=resolved)


def data_of(outcome: Outcome) -> dict[str, Any]:
    assert outcome.payload is not None
    data: dict[str, Any] = outcome.payload["data"]
    return data


def test_token_is_sent_at_23h59m59s() -> None:
    out = install(now=GENERATED + DAY - 1)
    assert data_of(out)["ad_services_token"] == "tok-123"
    assert out.adservices_generated_at == GENERATED
    assert not out.adservices_expired


def test_token_is_not_sent_at_exactly_24h_and_expiry_is_flagged() -> None:
    out = install(now=GENERATED + DAY)
    assert "ad_services_token" not in data_of(out)
    assert out.adservices_expired
    assert out.adservices_generated_at is None


def test_expired_token_with_client_attribution_forwards_the_attribution() -> None:
    out = install(now=GENERATED + 2 * DAY, attribution=REAL)
    data = data_of(out)
    assert "ad_services_token" not in data
    assert data["adservices_attribution_details"] == REAL


def test_fresh_token_and_resolved_attribution_are_both_sent() -> None:
    data = data_of(install(now=GENERATED + 60, resolved=REAL))
    assert data["ad_services_token"] == "tok-123"
    assert data["adservices_attribution_details"] == REAL


def test_developer_mode_payload_is_never_forwarded() -> None:
    from_apple = install(now=GENERATED + 60, resolved=DEV_MODE)
    client = install(now=GENERATED + 2 * DAY, attribution={**DEV_MODE, "orgId": "1234567890"})
    assert "adservices_attribution_details" not in data_of(from_apple)
    assert "adservices_attribution_details" not in data_of(client)
    assert any("developer-mode" in w for w in from_apple.warnings)
    assert any("developer-mode" in w for w in client.warnings)


def test_age_falls_back_to_the_event_timestamp_without_generated_at() -> None:
    fresh = install(now=GENERATED + 30 + DAY - 1, generated_at=None)
    stale = install(now=GENERATED + 30 + DAY, generated_at=None)
    assert "ad_services_token" in data_of(fresh)
    assert fresh.adservices_generated_at == GENERATED + 30
    assert "ad_services_token" not in data_of(stale)
    assert any("generated_at missing" in w for w in fresh.warnings)


def test_window_reapplied_at_send_strips_a_stale_token_but_keeps_attribution() -> None:
    payload = {"action": "install", "data": {"ad_services_token": "t", "adservices_attribution_details": REAL}}
    kept, stripped = adservices.apply_window_at_send(payload, GENERATED, now=GENERATED + DAY - 1)
    assert (kept, stripped) == (payload, False)
    late, stripped = adservices.apply_window_at_send(payload, GENERATED, now=GENERATED + 3 * DAY)
    assert stripped
    assert late["data"] == {"adservices_attribution_details": REAL}
    assert payload["data"]["ad_services_token"] == "t", "the original payload is not mutated"


def test_window_at_send_ignores_payloads_without_a_token() -> None:
    payload = {"action": "event", "data": {"event_name": "x"}}
    assert adservices.apply_window_at_send(payload, None, now=GENERATED) == (payload, False)


def test_a_real_attribution_of_any_spelling_is_forwarded_whole() -> None:
    """Apple's fields are numbers, but a client may send them as text, leave one out, or send nulls: none of that
    makes the record a developer-mode one (nor an error)."""
    for attribution in (
        REAL,
        {**REAL, "orgId": "40669820", "campaignId": " 542370539 "},
        {"attribution": True, "campaignId": 1234567890},  # no orgId
        {**DEV_MODE, "orgId": None},
        {**DEV_MODE, "orgId": "n/a"},
        {**DEV_MODE, "orgId": 1234567890.0},
        {**DEV_MODE, "orgId": True},
    ):
        assert adservices.usable_attribution(attribution) == attribution
    assert adservices.usable_attribution({**DEV_MODE, "orgId": " 1234567890 "}) is None


def test_an_attribution_that_is_not_a_record_is_not_forwarded() -> None:
    for attribution in (None, {}, "true", ["orgId"], 1):
        assert adservices.usable_attribution(attribution) is None
