"""Kochava's S2S rules as its docs read today (issue 24; docs/kochava.md holds the conformance table): ATT and DMA
consent on every payload that needs them, on both routes; a ``sum`` that is a number; attribution not echoed back;
no value Kochava cannot use. One rule per test."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.pipeline import profiles, reasons
from functions.pipeline.contract import Consent
from functions.pipeline.events import Event, parse_body, parse_event
from functions.pipeline.kochava import Outcome, consent_fields, to_kochava
from tests.unit.pipeline.test_kochava_mapping import IDFA, NOW, SETTINGS, ZERO, data_of, mapped

IDFV = "A1B2C3D4-1111-2222-3333-444455556666"
ATT = {"status": "denied", "time": NOW - 3600, "duration": 0.6}
CONSENT = {"gdpr_applies": True, "tc_string": "CPXx", "ad_user_data": False, "ad_personalization": True}


def native(kind: str, **device: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "uuid": "m-1",
        "type": kind,
        "timestamp": NOW - 60,
        "device": {"platform": "ios", "id": IDFV, "advertising_id": IDFA, "os_version": "17.1", **device},
    }
    if kind == "track":
        raw["event"] = "Level Up"
    if kind == "screen":
        raw["event"] = "Shop"
    return raw


def segment(kind: str, kochava: dict[str, Any] | None = None, **device: Any) -> dict[str, Any]:
    """The Segment call equivalent to :func:`native` (``install`` is a track ``Application Installed``)."""
    raw: dict[str, Any] = {
        "type": "track" if kind == "install" else kind,
        "messageId": "m-1",
        "timestamp": NOW - 60,
        "context": {
            "device": {"type": "ios", "id": IDFV, "advertisingId": IDFA, **device},
            "os": {"name": "iOS", "version": "17.1"},
        },
    }
    if kind == "install":
        raw["event"] = "Application Installed"
    elif kind == "track":
        raw["event"] = "Level Up"
    else:
        raw["name"] = "Shop"
    if kochava is not None:
        raw["integrations"] = {"Kochava": kochava}
    return raw


def outcome_of(raw: dict[str, Any], route: str = "native") -> Outcome:
    event = parse_event(raw, route)  # type: ignore[arg-type]
    assert isinstance(event, Event), event
    return to_kochava(event, SETTINGS, NOW)


# --- 1. ATT on every iOS 14+ payload, both routes ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["install", "track", "screen"])
def test_att_is_on_every_ios14_payload_and_both_routes_agree(kind: str) -> None:
    expected = {"att": False, "att_time": int(NOW - 3600), "att_duration": 1, "att_detail": "denied"}
    native_data = data_of(outcome_of(native(kind, att=ATT)))
    segment_data = data_of(outcome_of(segment(kind, {"att": ATT}), "segment"))
    assert native_data["app_tracking_transparency"] == segment_data["app_tracking_transparency"] == expected


@pytest.mark.parametrize("kind", ["install", "track", "screen"])
def test_segment_att_tracking_status_alone_gives_the_block_on_events_too(kind: str) -> None:
    data = data_of(outcome_of(segment(kind, attTrackingStatus=3), "segment"))
    assert data["app_tracking_transparency"] == {"att": True, "att_detail": "authorized"}


@pytest.mark.parametrize("kind", ["install", "track"])
@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ({"limit_ad_tracking": True}, {"att": False, "att_detail": "denied"}),
        ({}, {"att": True, "att_detail": "authorized"}),
        ({"advertising_id": ZERO}, {"att": False, "att_detail": "not_determined"}),
        ({"advertising_id": None}, {"att": False, "att_detail": "not_determined"}),
        ({"att": {"status": "restricted"}}, {"att": False, "att_detail": "restricted"}),
    ],
    ids=["limit-ad-tracking", "idfa", "zero-idfa", "no-idfa", "explicit"],
)
def test_events_infer_att_exactly_as_installs_do(kind: str, device: dict[str, Any], expected: dict[str, Any]) -> None:
    data = data_of(outcome_of(native(kind, **device)))
    assert data["app_tracking_transparency"] == expected


@pytest.mark.parametrize("kind", ["install", "track", "screen"])
def test_never_on_android_ios_before_14_or_identity_link(kind: str) -> None:
    assert "app_tracking_transparency" not in data_of(outcome_of(native(kind, os_version="13.7", att=ATT)))
    android = native(kind, platform="android", att=ATT)
    assert "app_tracking_transparency" not in data_of(outcome_of(android))
    identify = {**native("track", att=ATT), "type": "identify", "user_id": "u-1"}
    payload = outcome_of(identify).payload
    assert payload is not None and "app_tracking_transparency" not in str(payload)


@pytest.mark.parametrize(("duration", "sent"), [(0.6, 1), (0.2, 1), (0, 0), (6.49, 6), (6.5, 7)])
def test_att_duration_is_rounded_and_a_real_answer_never_reads_as_zero(duration: float, sent: int) -> None:
    data = data_of(outcome_of(native("track", att={"status": "authorized", "duration": duration})))
    assert data["app_tracking_transparency"]["att_duration"] == sent


# --- 2. DMA consent on every payload --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["install", "track", "screen"])
def test_consent_is_on_installs_and_events_on_both_routes(kind: str) -> None:
    expected = {"gdpr_applies": 1, "tc_string": "CPXx", "ad_user_data": 0, "ad_personalization": 1}
    native_data = data_of(outcome_of({**native(kind), "consent": CONSENT}))
    segment_data = data_of(outcome_of(segment(kind, {"consent": CONSENT}), "segment"))
    assert native_data["gdpr_privacy_consent"] == segment_data["gdpr_privacy_consent"] == expected


def test_an_event_without_consent_gets_the_remembered_one_and_its_own_wins() -> None:
    install = parse_event({**native("install"), "consent": CONSENT})
    assert isinstance(install, Event)
    profile = profiles.updated_profile(install, None, NOW)
    assert profile is not None and "tc_string" not in profile  # a consent string is personal data: not kept
    later = parse_event(native("track"))
    assert isinstance(later, Event)
    filled, names = profiles.fill_from_profile(later, profile)
    assert {"gdpr_applies", "ad_user_data", "ad_personalization"} <= set(names)
    data = data_of(to_kochava(filled, SETTINGS, NOW))
    assert data["gdpr_privacy_consent"] == {"gdpr_applies": 1, "ad_user_data": 0, "ad_personalization": 1}
    # a refusal remembered: nothing personal filled either
    assert "idfa" in data["device_ids"]  # the event's own IDFA is its own, not filled
    own = parse_event({**native("track"), "consent": {"tc_string": "other"}})
    assert isinstance(own, Event)
    kept, _ = profiles.fill_from_profile(own, profile)
    assert data_of(to_kochava(kept, SETTINGS, NOW))["gdpr_privacy_consent"] == {"tc_string": "other"}


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "gdpr_applies": st.booleans() | st.none(),
            "tc_string": st.text(max_size=8) | st.none(),
            "ad_user_data": st.booleans() | st.none(),
            "ad_personalization": st.booleans() | st.none(),
        },
    )
)
def test_the_consent_fast_path_equals_the_models_own_dump(fields: dict[str, Any]) -> None:
    """consent_fields reads the model's __dict__ (no serializer): it must give what model_dump gives, for every
    field the model has, so a field added to Consent can never be silently left out."""
    consent = Consent.model_validate(fields)
    dumped = {k: int(v) if isinstance(v, bool) else v for k, v in consent.model_dump(exclude_none=True).items()}
    assert consent_fields(consent) == (dumped or None)
    assert set(consent.__dict__) == set(Consent.model_fields)


# --- 4. revenue that arrives ---------------------------------------------------------------------------------


def event_data(name: str, properties: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    out = mapped(event=name, properties=properties, device={"att": {"status": "authorized"}})
    return data_of(out)["event_data"], out.warnings


@pytest.mark.parametrize(
    ("properties", "expected_sum"),
    [
        ({"sum": "9.99"}, 9.99),
        ({"sum": "", "revenue": "4.99"}, 4.99),
        ({"sum": "n/a", "revenue": "", "total": 12}, 12),
        ({"revenue": "abc", "value": "3.5"}, 3.5),
        ({"products": [{"price": 9.99, "quantity": 2}, {"price": "0.02"}]}, 20.0),
        ({"revenue": 5, "products": [{"price": 9.99, "quantity": 2}]}, 5),
        ({"bundle_paid_amount": "20"}, 20),
    ],
)
def test_a_purchase_sum_is_always_a_number_from_the_first_usable_price_field(
    properties: dict[str, Any], expected_sum: float
) -> None:
    data, _ = event_data("Order Completed", properties)
    assert data["sum"] == expected_sum and not isinstance(data["sum"], str)


@pytest.mark.parametrize(
    "properties",
    [
        {"sum": "", "revenue": "free"},
        {"products": [{"price": 9.99}, {"name": "no price"}]},
        {"products": [{"price": 9.99, "quantity": "many"}]},
        {"sum": float("inf")},
    ],
)
def test_no_usable_price_means_no_sum_and_a_warning(properties: dict[str, Any]) -> None:
    data, warnings = event_data("Order Completed", properties)
    assert "sum" not in data
    assert any("sum not sent" in w or "not sent" in w for w in warnings)


def test_any_events_own_sum_is_sent_as_a_number_or_not_at_all() -> None:
    data, _ = event_data("Subscription Charge", {"sum": "9.99"})
    assert data["sum"] == 9.99
    data, warnings = event_data("Subscription Charge", {"sum": "lots", "revenue": 3})
    assert "sum" not in data and data["revenue"] == 3  # a custom event's other fields are its own
    assert any("properties.sum" in w for w in warnings)


@pytest.mark.parametrize("route", ["native", "segment"])
@pytest.mark.parametrize("name", ["Install Attributed", "install attributed", "Install\u0000 Attributed"])
def test_attribution_from_a_provider_is_filtered_not_sent(route: str, name: str) -> None:
    raw = native("track") if route == "native" else segment("track")
    raw["event"] = name
    raw["properties"] = {"provider": "Kochava", "campaign": {"source": "Network", "name": "Campaign"}}
    out = outcome_of(raw, route)
    assert (out.status, out.reason, out.payload) == ("filtered", reasons.FILTERED_EVENT, None)
    assert out.message is not None and "Install Attributed" in out.message


# --- 5. values Kochava cannot use ----------------------------------------------------------------------------


def test_nulls_and_non_finite_numbers_are_dropped_with_a_warning() -> None:
    body = (
        '{"uuid": "u-1", "type": "track", "event": "x", "timestamp": 1795175940,'
        ' "device": {"platform": "android", "id": "a-1"},'
        ' "properties": {"a": NaN, "b": Infinity, "c": 1e400, "coupon": null, "n": {"d": -Infinity}, "ok": 1.5}}'
    )
    [event] = parse_body(body)
    assert isinstance(event, Event), event
    out = to_kochava(event, SETTINGS, NOW)
    assert data_of(out)["event_data"] == {"ok": 1.5}
    dropped = [w for w in out.warnings if "not sent (Kochava cannot use it)" in w]
    assert len(dropped) == 5 and any("properties.n.d" in w for w in dropped)


def test_identity_link_data_drops_them_too() -> None:
    body = (
        '{"uuid": "u-1", "type": "identify", "user_id": "u", "timestamp": 1795175940,'
        ' "device": {"platform": "android", "id": "a-1"}, "properties": {"email_hash": "h", "score": NaN, "x": null}}'
    )
    [event] = parse_body(body)
    assert isinstance(event, Event), event
    out = to_kochava(event, SETTINGS, NOW)
    assert out.payload is not None and out.payload["data"] == {"user_id": "u", "email_hash": "h"}
    assert len(out.warnings) == 2


def test_control_characters_leave_event_names_with_a_warning() -> None:
    out = mapped(event="level\u0000_up\n", device={"att": {"status": "authorized"}})
    assert data_of(out)["event_name"] == "level_up"
    assert any("control characters" in w for w in out.warnings)
    emoji = mapped(event="Win \U0001f468\u200d\U0001f469", device={"att": {"status": "authorized"}})
    assert data_of(emoji)["event_name"] == "Win \U0001f468\u200d\U0001f469" and emoji.warnings == []
    nbsp = mapped(event="Level\u00a0Up", device={"att": {"status": "authorized"}})
    assert data_of(nbsp)["event_name"] == "Level\u00a0Up" and nbsp.warnings == []


def test_a_name_of_control_characters_only_is_rejected_naming_the_field() -> None:
    out = mapped(event="\u0000\u0007\u009f")
    assert (out.status, out.reason, out.field) == ("rejected", reasons.INVALID_EVENT, "event")
    assert out.message is not None and "control characters" in out.message


def test_mapping_does_not_change_the_event() -> None:
    raw = {**native("track"), "properties": {"sum": "", "revenue": "4.99", "coupon": None}, "consent": CONSENT}
    before = copy.deepcopy(raw)
    outcome_of(raw)
    assert raw == before
