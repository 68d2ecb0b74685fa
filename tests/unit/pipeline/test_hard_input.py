"""Conformance and hard input (issue 14): what a peer's test suite and hostile bodies found, one rule per test.

Each test names the input that used to go wrong and what Kochava (or the DLQ) must get instead.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from functions.pipeline import profiles, reasons
from functions.pipeline.events import Event, Rejection, load_document, parse_body, parse_event, raw_events
from functions.pipeline.jsontext import compact_json
from functions.pipeline.kochava import MIN_USERTIME_S, USERTIME_MAX_AHEAD_S, flatten, is_zero_id
from tests.unit.pipeline.test_kochava_mapping import ATT_ASKED, IDFA, NOW, ZERO, data_of, event, mapped

ZERO_ANDROID_ID = "0000000000000000"
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)"


# --- 1. Segment's snake-case advertising id ----------------------------------------------------------------------


def segment_call(**device: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Level Up",
        "messageId": "m-1",
        "timestamp": NOW - 60,
        "context": {"device": {"type": "ios", "id": "v-1", **device}},
    }


def test_segment_snake_case_advertising_id_is_read_as_the_idfa() -> None:
    # Given the spelling of Segment's own Kochava page and its Ruby example
    item = parse_event(segment_call(advertising_id=IDFA), "segment")
    assert not isinstance(item, Rejection)
    # Then it is the event's advertising id, sent as the IDFA
    assert item.device.advertising_id == IDFA
    assert data_of(_map(item))["device_ids"] == {"idfa": IDFA.upper(), "idfv": "V-1"}


def test_segment_camel_case_advertising_id_wins_when_both_are_sent() -> None:
    item = parse_event(segment_call(advertisingId="CAMEL", advertising_id="snake"), "segment")
    assert not isinstance(item, Rejection) and item.device.advertising_id == "CAMEL"


# --- 2. an all-zero device id never stands for a device ---------------------------------------------------------


@pytest.mark.parametrize(("platform", "zero"), [("ios", ZERO), ("android", ZERO_ANDROID_ID)])
def test_zero_device_id_is_not_sent_as_kochava_device_id(platform: str, zero: str) -> None:
    out = mapped(device={"platform": platform, "id": zero, "advertising_id": IDFA})
    assert out.payload is not None
    # Then the next usable id stands for the device (the advertising id, as sent in device_ids)
    assert out.payload["kochava_device_id"] == next(iter(data_of(out)["device_ids"].values()))
    assert not is_zero_id(out.payload["kochava_device_id"])


def test_zero_kochava_device_id_is_replaced_by_the_next_usable_id_with_a_warning() -> None:
    out = mapped(device={"kochava_device_id": ZERO, "id": "idfv-1"})
    assert out.payload is not None and out.payload["kochava_device_id"] == "idfv-1"
    assert any("device.kochava_device_id is all zeros" in w for w in out.warnings)


def test_zero_device_id_does_not_key_a_device_profile() -> None:
    # Every device in that state would share one profile, and fill each other's advertising id
    assert profiles.device_key_id(event(device={"id": ZERO, "kochava_device_id": "K"})) == "K"
    assert profiles.device_key_id(event(device={"id": ZERO, "advertising_id": IDFA})) is None


# --- 3. ATT is never inferred as authorized against an explicit opt-out ------------------------------------------


@pytest.mark.parametrize("route", ["native", "segment"])
def test_limit_ad_tracking_means_att_not_authorized_even_with_a_non_zero_idfa(route: str) -> None:
    if route == "native":
        item: Any = event(type="install", device={"advertising_id": IDFA, "limit_ad_tracking": True})
    else:
        call = {**segment_call(advertisingId=IDFA, adTrackingEnabled=False), "event": "Application Installed"}
        item = parse_event(call, "segment")
    out = _map(item)
    data = data_of(out)
    assert data["device_limit_tracking"] == 1
    assert data["app_tracking_transparency"] == {"att": False, "att_detail": "denied"}
    assert any("denied inferred from device.limit_ad_tracking" in w for w in out.warnings)


def test_an_explicit_att_status_is_kept_as_sent() -> None:
    att = {"status": "authorized"}
    data = data_of(mapped(type="install", device={"advertising_id": IDFA, "limit_ad_tracking": True, "att": att}))
    assert data["app_tracking_transparency"] == {"att": True, "att_detail": "authorized"}


# --- 4. no caller value is lost in event_data ------------------------------------------------------------------


def test_reserved_key_renamed_onto_a_name_the_caller_also_sent_takes_a_free_name() -> None:
    out = mapped(properties={"campaign": "c1", "custom_campaign": "c2"})
    event_data = data_of(out)["event_data"]
    assert {"custom_campaign": "c2", "custom_campaign_2": "c1"}.items() <= event_data.items()
    assert "campaign" not in event_data
    assert any("sent as custom_campaign_2" in w for w in out.warnings)


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"a_b": 1, "a": {"b": 2}}, {"a_b": 1, "a_b_2": 2}),
        ({"a": {"b": 2}, "a_b": 1}, {"a_b": 2, "a_b_2": 1}),
        ({"a_b": 1, "a": {"b": 2}, "a_b_2": 3}, {"a_b": 1, "a_b_2": 2, "a_b_2_2": 3}),
        ({"a": {"b_c": 1, "b": {"c": 2}}}, {"a_b_c": 1, "a_b_c_2": 2}),
        ({"x": {}, "x_": 1}, {"x": "{}", "x_": 1}),
    ],
)
def test_flattening_collisions_keep_every_value_under_a_free_name(
    properties: dict[str, Any], expected: dict[str, Any]
) -> None:
    collisions: list[str] = []
    assert flatten(properties, collisions) == expected
    assert len(collisions) == len(expected) - len({k for k in expected if not k.endswith("_2")})


def test_a_flattening_collision_is_warned_about_in_the_outcome() -> None:
    out = mapped(properties={"a_b": 1, "a": {"b": 2}}, device=ATT_ASKED)
    assert data_of(out)["event_data"] == {"a_b": 1, "a_b_2": 2}
    assert out.warnings == ["properties.a.b: flattens onto a_b, which is taken: sent as a_b_2"]


def test_screen_name_property_is_kept_when_the_event_names_the_screen() -> None:
    out = mapped(type="screen", event="Shop", properties={"screen_name": "shop_v2"})
    event_data = data_of(out)["event_data"]
    assert (event_data["screen_name"], event_data["screen_name_2"]) == ("Shop", "shop_v2")
    assert any("screen_name" in w for w in out.warnings)


# --- 5. one bad event never sinks its batch (the pure parts) ------------------------------------------------------

GOOD = {"uuid": "good", "type": "track", "event": "x", "timestamp": NOW - 60, "device": {"platform": "ios", "id": "V"}}


@pytest.mark.parametrize(
    "bad",
    [
        b'{"uuid":"bad","type":"track","event":"x","timestamp":1795175000,"properties":{"k\\ud800":1},'
        b'"device":{"platform":"ios","id":"V"}}',
        b'{"uuid":"bad","type":"track","event":"x","timestamp":1795175000,"\\udc00":1,'
        b'"device":{"platform":"ios","id":"V"}}',
        b'{"uuid":"bad","type":"track","event":"x","timestamp":1795175000,"properties":{"k":"v\\ud800"},'
        b'"device":{"platform":"ios","id":"V"}}',
        b'{"uuid":"bad","type":"track","event":"x","timestamp":1795175000,"properties":{"tags":["ok","v\\ud800"]},'
        b'"device":{"platform":"ios","id":"V"}}',
    ],
    ids=["property-key", "event-key", "property-value", "list-item"],
)
def test_a_lone_surrogate_rejects_only_its_event_with_text_that_can_be_written(bad: bytes) -> None:
    body = b'{"batch":[' + orjson.dumps(GOOD) + b"," + bad + b"]}"
    good, rejection = parse_body(body)
    assert isinstance(good, Event) and good.uuid == "good"
    assert isinstance(rejection, Rejection) and rejection.reason == reasons.INVALID_EVENT
    assert rejection.uuid == "bad"
    # Every text that goes into a DLQ message (body and attributes) is valid UTF-8, and names the field
    for text in (rejection.field, rejection.message, compact_json(rejection.raw)):
        assert text is not None
        text.encode()
    assert rejection.field in ("properties.k\\ud800", "\\udc00", "properties.k", "properties.tags.1")


def test_raw_events_of_a_body_with_a_lone_surrogate_can_be_written_as_sent() -> None:
    body = '{"batch":[{"uuid":"a","k":"v\\ud800"},{"uuid":"b"}]}'
    first, second = raw_events(load_document(body))
    assert compact_json(first) == '{"uuid":"a","k":"v\\ud800"}'  # the escape as received, valid UTF-8
    assert compact_json(second) == '{"uuid":"b"}'
    assert raw_events(load_document('{"uuid":"solo"}')) == [{"uuid": "solo"}]


def test_compact_json_writes_a_lone_surrogate_as_its_escape() -> None:
    assert compact_json({"k\udc00": ["\ud800x"]}) == '{"k\\udc00":["\\ud800x"]}'
    assert json.loads(compact_json({"k": "\ud800"})) == {"k": "\ud800"}  # read back to the same value


# --- 7. duplicate keys ------------------------------------------------------------------------------------------


def test_a_body_with_two_batch_keys_is_rejected_naming_the_key() -> None:
    good = orjson.dumps(GOOD).decode()
    body = '{"batch": [' + good + '], "batch": [' + good.replace('"good"', '"second"') + "]}"
    [item] = parse_body(body)
    assert isinstance(item, Rejection)
    assert (item.reason, item.field) == (reasons.INVALID_BODY, "batch")
    assert "more than once" in item.message
    assert '"good"' in item.raw and '"second"' in item.raw  # both batches are in the DLQ body: nothing lost


def test_batch_text_inside_an_event_is_not_a_duplicate_key() -> None:
    event_text = orjson.dumps({**GOOD, "properties": {"note": '"batch"', "batch": 3}}).decode()
    items = parse_body('{"batch": [' + event_text + "]}")
    assert [type(i) for i in items] == [Event]


# --- 8. device.ip -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ip", ["203.0.113.9", "2001:db8::1", "::ffff:192.0.2.1"])
def test_ipv4_and_ipv6_are_sent_as_origination_ip(ip: str) -> None:
    out = mapped(device={"ip": ip, **ATT_ASKED})
    assert data_of(out)["origination_ip"] == ip and out.warnings == []


@pytest.mark.parametrize("ip", ["not-an-ip; DROP TABLE", "256.1.1.1", "1.2.3", "1.2.3.4:80", "::g"])
def test_anything_else_is_dropped_with_a_warning_and_the_event_still_goes(ip: str) -> None:
    out = mapped(device={"ip": ip, **ATT_ASKED})
    assert "origination_ip" not in data_of(out)
    assert out.warnings == ["device.ip is not an IPv4 or IPv6 address: not sent"]


# --- 9. timestamps outside the plausible window -----------------------------------------------------------------


def test_a_timestamp_more_than_a_day_ahead_is_clamped_to_now_with_a_warning() -> None:
    out = mapped(timestamp="2099-01-01T00:00:00Z")
    assert data_of(out)["usertime"] == int(NOW)
    assert any(w.startswith("timestamp: more than 1 day ahead") for w in out.warnings)


def test_a_timestamp_before_2008_is_clamped_to_now_with_a_warning() -> None:
    out = mapped(timestamp="2003-05-01T00:00:00Z")
    assert data_of(out)["usertime"] == int(NOW)
    assert any(w.startswith("timestamp: before 2008") for w in out.warnings)


def test_timestamps_inside_the_window_are_sent_as_they_are() -> None:
    for timestamp in (NOW + USERTIME_MAX_AHEAD_S, MIN_USERTIME_S, NOW - 30 * 86400):
        out = mapped(timestamp=timestamp, device=ATT_ASKED)
        assert (data_of(out)["usertime"], out.warnings) == (int(timestamp), [])


# --- 10. Kochava can always read the OS -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ({"os_version": "17.1"}, "iPhone-iOS-17.1"),
        ({"platform": "android", "id": "a", "os_version": "14"}, "Android-Android-14"),
    ],
)
def test_install_without_a_user_agent_gets_device_ver_from_what_is_known(device: dict[str, Any], expected: str) -> None:
    out = mapped(type="install", device=device)
    assert data_of(out)["device_ver"] == expected
    assert any("device.model missing" in w for w in out.warnings)


def test_install_without_user_agent_or_os_version_says_kochava_cannot_read_the_os() -> None:
    out = mapped(type="install", device={"model": "iPhone15,2"})
    assert data_of(out)["device_ver"] == ""
    assert any("Kochava cannot read the OS version" in w for w in out.warnings)


def test_with_a_user_agent_device_ver_stays_empty_when_incomplete() -> None:
    with_ua = mapped(type="install", device={"os_version": "17.1", "user_agent": UA, "att": {"status": "denied"}})
    assert data_of(with_ua)["device_ver"] == "" and with_ua.warnings == []


def test_an_event_without_a_user_agent_gets_device_ver_from_what_is_known_too() -> None:
    """Kochava's "S2S without Device UA" covers install *and* event payloads (issue 24): the OS it reads from
    device_ver also tells it whether the iOS 14+ ATT rule applies."""
    event_without_ua = mapped(device={"os_version": "17.1", **ATT_ASKED})
    assert data_of(event_without_ua)["device_ver"] == "iPhone-iOS-17.1" and event_without_ua.warnings == []
    assert data_of(mapped(device=ATT_ASKED))["device_ver"] == ""  # nothing known: Kochava's own "" example


def _map(item: Any) -> Any:
    from functions.pipeline.kochava import to_kochava
    from tests.unit.pipeline.test_kochava_mapping import SETTINGS

    return to_kochava(item, SETTINGS, NOW)


@pytest.mark.parametrize("body", [b"1", b"[1]", b'"an event"', b"null"])
def test_a_body_that_is_no_object_is_one_invalid_event_saying_so(body: bytes) -> None:
    """Given a body that is JSON but not an object (nor a batch), on either route, then it is one invalid event
    whose message says what an event must be, kept as it came."""
    for route in ("native", "segment"):
        [item] = parse_body(body, route)  # type: ignore[arg-type]
        assert isinstance(item, Rejection)
        assert (item.reason, item.message, item.raw) == (
            reasons.INVALID_EVENT,
            "event: must be a JSON object",
            orjson.loads(body),
        )


def test_an_empty_batch_is_refused_saying_how_many_events_it_needs() -> None:
    [item] = parse_body(b'{"batch": []}')
    assert isinstance(item, Rejection)
    assert (item.reason, item.field, item.message) == (
        reasons.INVALID_BODY,
        "batch",
        "batch: must have at least 1 item(s)",
    )


def test_a_body_that_is_not_json_is_kept_as_its_text() -> None:
    """The ingest DLQ keeps such a body as the text that came (not the repr of its bytes)."""
    [item] = parse_body(b"not json {")
    assert isinstance(item, Rejection)
    assert (item.reason, item.raw) == (reasons.INVALID_JSON, "not json {")


def test_a_rejected_event_keeps_its_event_name_for_the_dead_letter() -> None:
    item = parse_event({**GOOD, "event": "Level Up", "timestamp": "yesterday"})
    assert isinstance(item, Rejection)
    assert (item.field, item.event_name) == ("timestamp", "Level Up")


def test_control_characters_removed_from_an_event_name_are_warned_about() -> None:
    out = mapped(event="level\x07up")
    assert "event: control characters removed from the event name" in out.warnings
