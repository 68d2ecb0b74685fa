"""Segment calls as the server libraries send them: each call judged on its own, every field of Segment's mobile
``context`` mapped (or documented as unused), and ``integrations.Kochava`` carrying the native fields, with the
native route's rules applied exactly (a Segment call and its equivalent native event give the same payload)."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from functions.pipeline import reasons
from functions.pipeline.contract import MAX_BATCH_EVENTS, body_schema
from functions.pipeline.events import Event, FilteredCall, Parsed, Rejection, parse_body, parse_event, raw_events
from functions.pipeline.kochava import Outcome, to_kochava
from functions.pipeline.settings import Settings

NOW = 1_795_176_000.0  # 2026-11-20T12:00:00Z
HOUR = 3600.0
SETTINGS = Settings(kochava_app_id_ios="ko-ios", kochava_app_id_android="ko-android")
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
IDFV = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)"
TOKEN = "AAAAaAaAtBu0AXztoAUKbX8RxE3DEbTHLxJxqDhz+tEUtWO1TqCJ0wLUHZOS"
ATTRIBUTION = {"attribution": True, "orgId": 40669820, "campaignId": 542370539, "clickDate": "2026-11-20T10:00Z"}


def call(kind: str = "track", **fields: Any) -> dict[str, Any]:
    """A Segment call with the full mobile context of an iOS device."""
    raw: dict[str, Any] = {
        "type": kind,
        "messageId": "m-1",
        "timestamp": NOW - 60,
        "userId": "user-1",
        "context": {
            "device": {
                "type": "ios",
                "id": IDFV,
                "advertisingId": IDFA,
                "adTrackingEnabled": True,
                "model": "iPhone15,2",
                "manufacturer": "Apple",
            },
            "os": {"name": "iOS", "version": "17.1.1"},
            "app": {"name": "Example Game", "version": "3.3.0", "build": "412", "namespace": "com.example.game"},
            "ip": "203.0.113.17",
            "userAgent": UA,
            "locale": "en-US",
            "library": {"name": "analytics-python", "version": "2.4.0"},
        },
    }
    if kind == "track":
        raw["event"] = "Level Up"
    raw.update(fields)
    return raw


def parsed(raw: dict[str, Any]) -> Event:
    item = parse_event(raw, "segment")
    assert isinstance(item, Event), item
    return item


def rejection(raw: dict[str, Any]) -> Rejection:
    item = parse_event(raw, "segment")
    assert isinstance(item, Rejection), item
    return item


def payload_of(raw: dict[str, Any], now: float = NOW) -> dict[str, Any]:
    outcome = to_kochava(parsed(raw), SETTINGS, now)
    assert outcome.status == "ok" and outcome.payload is not None, outcome
    return outcome.payload


# --- each call judged on its own: what is filtered ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["page", "group", "alias"])
def test_unmapped_call_types_are_filtered_not_rejected_even_without_context(kind: str) -> None:
    item = parse_event({"type": kind, "messageId": f"m-{kind}", "userId": "u", "previousId": "p"}, "segment")
    assert item == FilteredCall(f"m-{kind}", kind, f"{kind} calls are not mapped to Kochava")
    assert item.reason == reasons.FILTERED_EVENT


def test_a_batch_with_every_call_type_gives_one_item_per_call_in_order() -> None:
    calls = [call("track"), call("screen", name="Home"), call("identify"), call("page"), call("group"), call("alias")]
    for index, each in enumerate(calls):
        each["messageId"] = f"m-{index}"
    items = parse_body(json.dumps({"batch": calls}), "segment")
    assert [type(item).__name__ for item in items] == ["NativeEvent"] * 3 + ["FilteredCall"] * 3
    assert [item.uuid for item in items] == [f"m-{index}" for index in range(6)]
    assert [item.call_type for item in items if isinstance(item, FilteredCall)] == ["page", "group", "alias"]


@pytest.mark.parametrize(
    ("integrations", "why"),
    [
        ({"Kochava": False}, "integrations.Kochava is false: the call is not for Kochava"),
        (
            {"All": False},
            "integrations.All is false and integrations.Kochava is not set: the call is not for Kochava",
        ),
        ({"All": False, "Kochava": True}, None),
        ({"All": False, "Kochava": {"kochava_device_id": "kd-1"}}, None),
        ({"All": True, "Mixpanel": False}, None),
        ({"Kochava": True}, None),
    ],
)
def test_segment_destination_switches_are_honoured(integrations: dict[str, Any], why: str | None) -> None:
    item = parse_event(call(integrations=integrations), "segment")
    if why is None:
        assert isinstance(item, Event)
    else:
        assert isinstance(item, FilteredCall) and item.call_type == "track"
        assert item.message == why  # the "detail" python -m tools.transform shows for it


def test_an_unknown_call_type_is_an_invalid_event_naming_the_type() -> None:
    item = rejection(call("purchase"))
    assert (item.reason, item.field, item.uuid) == (reasons.INVALID_EVENT, "type", "m-1")
    assert item.message == "type: must be track, screen, identify, page, group or alias"


def test_one_bad_call_does_not_affect_the_others_of_its_batch() -> None:
    bad = call(messageId="m-bad")
    bad["context"]["device"]["type"] = "web"
    del bad["context"]["os"]
    items = parse_body(
        json.dumps({"batch": [call(messageId="m-good"), bad, call("page", messageId="m-page")]}), "segment"
    )
    assert [type(item).__name__ for item in items] == ["NativeEvent", "Rejection", "FilteredCall"]
    assert isinstance(items[1], Rejection) and items[1].field == "context.device.type"


# --- the batch envelope ------------------------------------------------------------------------------------------


def test_the_envelope_of_the_libraries_is_accepted() -> None:
    body = {
        "batch": [call()],
        "sentAt": "2026-11-20T11:59:30.123Z",
        "context": {"library": {"name": "analytics-node", "version": "2.1.0"}},
        "writeKey": "ignored",
    }
    [item] = parse_body(json.dumps(body), "segment")
    assert isinstance(item, Event) and item.uuid == "m-1"


def test_the_batch_context_applies_to_every_call_and_the_calls_own_values_win() -> None:
    first = call(messageId="m-1")
    first["context"] = {"device": {"id": IDFV}}  # the platform and IP come from the batch
    second = call(messageId="m-2")
    second["context"] = {"device": {"type": "android", "id": "aid-2"}, "ip": "198.51.100.2"}
    body = {"batch": [first, second], "context": {"device": {"type": "ios"}, "ip": "203.0.113.1"}}
    items = parse_body(json.dumps(body), "segment")
    assert [(e.device.platform, e.device.id, e.device.ip) for e in items if isinstance(e, Event)] == [
        ("ios", IDFV, "203.0.113.1"),
        ("android", "aid-2", "198.51.100.2"),
    ]
    # What a DLQ message or a re-queue carries is the call as validated: it replays alone.
    assert raw_events(json.loads(json.dumps(body)), "segment")[0]["context"] == {
        "device": {"type": "ios", "id": IDFV},
        "ip": "203.0.113.1",
    }


def test_batch_integrations_apply_to_every_call() -> None:
    calls = [call(messageId="m-1"), call(messageId="m-2", integrations={"Kochava": True})]
    body = {"batch": calls, "integrations": {"All": False}}
    items = parse_body(json.dumps(body), "segment")
    assert [type(item).__name__ for item in items] == ["FilteredCall", "NativeEvent"]


def test_a_batch_context_that_is_not_an_object_rejects_the_body_naming_it() -> None:
    [item] = parse_body(json.dumps({"batch": [call()], "context": "ios"}), "segment")
    assert isinstance(item, Rejection)
    assert (item.reason, item.field) == (reasons.INVALID_BODY, "context")


def test_a_native_batch_ignores_envelope_keys() -> None:
    native = {"uuid": "u", "type": "track", "event": "x", "timestamp": NOW, "device": {"platform": "ios", "id": "V"}}
    [item] = parse_body(json.dumps({"batch": [native], "context": "anything", "sentAt": 1}), "native")
    assert isinstance(item, Event)
    assert raw_events({"batch": [native], "context": {"device": {}}}, "native") == [native]


# --- Segment's mobile context, field by field --------------------------------------------------------------------


def test_every_mobile_context_field_reaches_kochava_where_it_belongs() -> None:
    payload = payload_of(call())
    data = payload["data"]
    assert payload["kochava_app_id"] == "ko-ios"
    assert payload["kochava_device_id"] == IDFV  # device.id (no integrations.Kochava.kochava_device_id)
    assert data["device_ids"] == {"idfa": IDFA, "idfv": IDFV}  # device.advertisingId, device.id
    assert data["device_limit_tracking"] == 0  # device.adTrackingEnabled true
    assert data["device_ver"] == "iPhone15,2-iOS-17.1.1"  # device.model, os.version
    assert data["app_version"] == "3.3.0"  # app.version
    assert data["origination_ip"] == "203.0.113.17"  # ip
    assert data["device_ua"].startswith("Mozilla%2F5.0%20(iPhone%3B")  # userAgent, encoded once
    text = json.dumps(payload)
    for unused in ("Apple", "en-US", "Example Game", "412", "analytics-python"):
        assert unused not in text  # manufacturer, locale, app.name, app.build, library: accepted, not sent


def test_ad_tracking_disabled_is_limit_ad_tracking() -> None:
    raw = call()
    raw["context"]["device"]["adTrackingEnabled"] = False
    assert payload_of(raw)["data"]["device_limit_tracking"] == 1


def test_app_namespace_is_the_bundle_id_that_picks_the_kochava_app() -> None:
    settings = Settings(kochava_app_id_ios="ko-ios", kochava_app_ids_by_bundle={"com.example.game": "ko-game"})
    outcome = to_kochava(parsed(call()), settings, NOW)
    assert outcome.payload is not None and outcome.payload["kochava_app_id"] == "ko-game"


@pytest.mark.parametrize(
    ("device_type", "os_name", "platform"),
    [
        ("ios", None, "ios"),
        ("Android", "Android", "android"),
        (None, "iOS", "ios"),  # Segment's iOS library does not fill device.type
        (None, "iPhone OS", "ios"),
        ("phone", "iPadOS", "ios"),
        (None, "Android", "android"),
    ],
)
def test_the_platform_is_device_type_else_os_name(device_type: str | None, os_name: str | None, platform: str) -> None:
    raw = call()
    raw["context"]["device"]["type"] = device_type
    raw["context"]["os"]["name"] = os_name
    assert parsed(raw).device.platform == platform


@pytest.mark.parametrize(
    "context",
    [{}, {"device": {"id": IDFV}}, {"device": {"type": "phone"}, "os": {"name": "Linux"}}],
)
def test_no_mobile_platform_is_an_error_naming_device_type(context: dict[str, Any]) -> None:
    item = rejection(call(context=context))
    assert item.field == "context.device.type"
    assert "ios or android" in item.message


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("device", "manufacturer"), 7, "context.device.manufacturer"),
        (("device", "adTrackingEnabled"), "sometimes", "context.device.adTrackingEnabled"),
        (("locale",), ["en"], "context.locale"),
        (("app", "name"), {"x": 1}, "context.app.name"),
        (("os", "version"), 17, "context.os.version"),
    ],
)
def test_context_errors_name_the_segment_field(path: tuple[str, ...], value: Any, field: str) -> None:
    raw = call()
    node = raw["context"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert rejection(raw).field == field


# --- integrations.Kochava: the native fields Segment lacks -------------------------------------------------------


def native_install(**fields: Any) -> dict[str, Any]:
    """The native install equivalent to :func:`segment_install` with the same ``integrations.Kochava`` fields."""
    event: dict[str, Any] = {
        "uuid": "m-1",
        "type": "install",
        "timestamp": NOW - 60,
        "user_id": "user-1",
        "app": {"bundle_id": "com.example.game", "version": "3.3.0", "build": "412"},
        "device": {
            "platform": "ios",
            "id": IDFV,
            "advertising_id": IDFA,
            "ip": "203.0.113.17",
            "user_agent": UA,
            "model": "iPhone15,2",
            "os_version": "17.1.1",
            "limit_ad_tracking": False,
        },
    }
    device_fields = {key: fields.pop(key) for key in ("att", "kochava_device_id") if key in fields}
    event["device"].update(device_fields)
    event.update(fields)
    return event


def segment_install(**kochava: Any) -> dict[str, Any]:
    return call("track", event="Application Installed", integrations={"Kochava": kochava})


NATIVE_FIELDS: dict[str, Any] = {
    "att": {"status": "denied", "time": NOW - 3 * HOUR, "duration": 4.5},
    "adservices": {"token": TOKEN, "generated_at": NOW - 2 * HOUR, "attribution": ATTRIBUTION},
    "consent": {
        "gdpr_applies": True,
        "tc_string": "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA",
        "ad_user_data": False,
    },
    "install_referrer": {"referrer": "utm_source=example&utm_campaign=launch", "click_time": NOW - 5 * HOUR},
    "kochava_device_id": "KD-0001",
    "iad_attribution_details": {"Version3.1": {"iad-attribution": "true", "iad-org-name": "OrgName"}},
}


def both_routes(now: float, **fields: Any) -> tuple[Outcome, Outcome]:
    seg = to_kochava(parsed(segment_install(**copy.deepcopy(fields))), SETTINGS, now)
    native = parse_event(native_install(**copy.deepcopy(fields)))
    assert isinstance(native, Event), native
    return seg, to_kochava(native, SETTINGS, now)


@pytest.mark.parametrize("name", sorted(NATIVE_FIELDS))
def test_each_integrations_kochava_field_gives_the_native_payload(name: str) -> None:
    seg, native = both_routes(NOW, **{name: NATIVE_FIELDS[name]})
    assert seg.status == native.status == "ok"
    assert seg.payload == native.payload
    assert seg.warnings == native.warnings


@pytest.mark.parametrize(("age_h", "token_sent"), [(1.0, True), (23.9, True), (24.0, False), (72.0, False)], ids=str)
def test_the_adservices_24_hour_window_applies_exactly_as_on_the_native_route(age_h: float, token_sent: bool) -> None:
    now = NOW + age_h * HOUR - 2 * HOUR  # the token was generated at NOW - 2 h
    seg, native = both_routes(now, **NATIVE_FIELDS)
    assert seg.payload == native.payload
    assert seg.payload is not None
    assert ("ad_services_token" in seg.payload["data"]) is token_sent
    assert seg.adservices_expired is native.adservices_expired is (not token_sent)
    assert seg.adservices_generated_at == native.adservices_generated_at
    assert seg.payload["data"]["adservices_attribution_details"] == ATTRIBUTION


def test_the_native_fields_reach_the_install_payload_by_their_kochava_names() -> None:
    data = payload_of(segment_install(**copy.deepcopy(NATIVE_FIELDS)))["data"]
    assert data["app_tracking_transparency"] == {
        "att": False,
        "att_time": int(NOW - 3 * HOUR),
        "att_duration": 5,  # 4.5 s, rounded half up
        "att_detail": "denied",
    }
    assert data["gdpr_privacy_consent"]["ad_user_data"] == 0
    assert data["install_referrer"] == {
        "referrer": "utm_source=example&utm_campaign=launch",
        "referrer_click_time": int(NOW - 5 * HOUR),
    }
    assert data["iad_attribution_details"] == NATIVE_FIELDS["iad_attribution_details"]
    assert data["ad_services_token"] == TOKEN


def test_kochava_device_id_wins_over_device_id_on_events_too() -> None:
    raw = call(integrations={"Kochava": {"kochava_device_id": "KD-0001"}})
    assert payload_of(raw)["kochava_device_id"] == "KD-0001"


def test_att_status_comes_from_att_tracking_status_when_integrations_gives_only_the_time() -> None:
    raw = segment_install(att={"time": NOW - HOUR})
    raw["context"]["device"]["attTrackingStatus"] = 3
    block = payload_of(raw)["data"]["app_tracking_transparency"]
    assert block == {"att": True, "att_time": int(NOW - HOUR), "att_detail": "authorized"}


def test_integrations_att_status_wins_over_att_tracking_status() -> None:
    raw = segment_install(att={"status": "restricted"})
    raw["context"]["device"]["attTrackingStatus"] = 3
    assert payload_of(raw)["data"]["app_tracking_transparency"]["att_detail"] == "restricted"


def test_a_token_in_the_install_properties_is_still_used_without_integrations() -> None:
    raw = call("track", event="Application Installed", properties={"ad_services_token": TOKEN})
    assert payload_of(raw)["data"]["ad_services_token"] == TOKEN


@pytest.mark.parametrize(
    ("kochava", "field", "problem"),
    [
        ({"att": {"status": "allowed"}}, "integrations.Kochava.att.status", "must be authorized, denied"),
        ({"att": {"duration": -1}}, "integrations.Kochava.att.duration", "greater than or equal to 0"),
        ({"adservices": {"generated_at": "yesterday"}}, "integrations.Kochava.adservices.generated_at", "ISO-8601"),
        ({"adservices": {"token": 5}}, "integrations.Kochava.adservices.token", "must be a string"),
        ({"consent": {"gdpr_applies": "maybe"}}, "integrations.Kochava.consent.gdpr_applies", "true or false"),
        ({"install_referrer": {"click_time": NOW}}, "integrations.Kochava.install_referrer.referrer", "is required"),
        ({"kochava_device_id": ["x"]}, "integrations.Kochava.kochava_device_id", "must be a string"),
        ({"iad_attribution_details": "v3"}, "integrations.Kochava.iad_attribution_details", "must be an object"),
    ],
)
def test_integrations_kochava_errors_name_the_field(kochava: dict[str, Any], field: str, problem: str) -> None:
    item = rejection(segment_install(**kochava))
    assert (item.reason, item.field) == (reasons.INVALID_EVENT, field)
    assert item.message.startswith(f"{field}: ") and problem in item.message, item.message


def test_integrations_kochava_of_another_type_is_an_error() -> None:
    item = rejection(call(integrations={"Kochava": "yes"}))
    assert item.field == "integrations.Kochava"


def test_parsed_items_are_only_these_three_kinds() -> None:
    kinds: list[Parsed] = [parse_event(call(kind), "segment") for kind in ("track", "page", "nonsense")]
    assert [type(item) for item in kinds] == [Event, FilteredCall, Rejection]


def test_the_segment_schema_checks_only_the_envelope() -> None:
    """API Gateway (and the local API) validate Segment bodies with this: bad calls pass, to be judged one by one."""
    validator = jsonschema.Draft4Validator(body_schema("segment"))
    bad_call = {"type": "track", "context": {"device": {"type": "windows"}}}
    assert validator.is_valid(call())
    assert validator.is_valid(call("page"))
    assert validator.is_valid({"batch": [call(), bad_call, {}], "sentAt": "x", "context": {"library": {}}})
    assert validator.is_valid({"batch": [call()] * MAX_BATCH_EVENTS})
    assert not validator.is_valid({"batch": []})
    assert not validator.is_valid({"batch": [call()] * (MAX_BATCH_EVENTS + 1)})
    assert not validator.is_valid({"batch": [call(), "track"]})
    assert not validator.is_valid({"batch": {"0": call()}})
    assert not validator.is_valid([call()])


@pytest.mark.parametrize("kind", ["track", "page", "alias"])
def test_a_single_call_body_as_posted_to_v1_track_or_v1_page_is_one_item(kind: str) -> None:
    """/v1/track, /v1/page... put one call object (no batch) on the Segment route."""
    [item] = parse_body(json.dumps(call(kind, event="Level Up")), "segment")
    assert item.uuid == "m-1"
    assert isinstance(item, Event if kind == "track" else FilteredCall)


def test_a_dead_lettered_whole_body_does_not_keep_the_write_key() -> None:
    """Given a library batch body that repeats the write key (the API key) and fails as a whole
    When it is parsed
    Then its rejection (what the ingest DLQ keeps) has no write key, so the DLQ holds no credential."""
    body = {"batch": [], "writeKey": "secret-write-key", "sentAt": "2026-11-30T00:00:00Z"}

    [rejection] = parse_body(json.dumps(body).encode(), route="segment")

    assert isinstance(rejection, Rejection) and rejection.reason == reasons.INVALID_BODY
    assert "secret-write-key" not in json.dumps(rejection.raw)
    assert rejection.raw["sentAt"] == "2026-11-30T00:00:00Z"


@pytest.mark.parametrize("keys", [("writeKey",), ("write_key",), ("writeKey", "write_key")])
def test_no_spelling_of_the_write_key_is_kept_in_a_dead_lettered_body(keys: tuple[str, ...]) -> None:
    """Given a failing batch body that repeats the write key under one spelling, or both
    When it is parsed
    Then the body the ingest DLQ keeps has none of them, and the rest of the body is kept."""
    body: dict[str, Any] = {"batch": [], "sentAt": "2026-11-30T00:00:00Z"}
    body.update({key: f"secret-{key}" for key in keys})

    [rejection] = parse_body(json.dumps(body).encode(), route="segment")

    assert isinstance(rejection, Rejection) and rejection.reason == reasons.INVALID_BODY
    assert rejection.raw == {"batch": [], "sentAt": "2026-11-30T00:00:00Z"}


def test_a_segment_screen_call_without_a_name_takes_it_from_its_properties() -> None:
    """Given a screen call whose name is only in properties (as some libraries send it), then the screen is named."""
    item = parse_event(call("screen", properties={"name": "Bag"}), "segment")
    assert isinstance(item, Event)
    assert item.name == "Bag"
