"""The mapping rules of spec section 3, one behaviour per test (Given / When / Then in the names)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from functions.pipeline import reasons
from functions.pipeline.events import Event, Rejection, parse_event
from functions.pipeline.jsontext import TOO_DEEP_TEXT
from functions.pipeline.kochava import Outcome, encode_user_agent, flatten, to_kochava
from functions.pipeline.settings import Settings
from tests.shapes import nested_list

NOW = 1_795_176_000.0  # 2026-11-20T12:00:00Z
SETTINGS = Settings(kochava_app_id_ios="ko-ios", kochava_app_id_android="ko-android")
IDFA = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
ZERO = "00000000-0000-0000-0000-000000000000"
# An iOS device whose ATT answer is known: no inference (and no warning about one) in tests about other rules.
ATT_ASKED: dict[str, Any] = {"att": {"status": "not_determined"}}


def event(**fields: Any) -> Event:
    raw: dict[str, Any] = {"uuid": "u-1", "type": "track", "event": "level_up", "timestamp": NOW - 60}
    device = {"platform": "ios", "id": "idfv-1"} | fields.pop("device", {})
    raw.update(fields)
    raw["device"] = device
    parsed = parse_event(raw)
    assert not isinstance(parsed, Rejection), parsed
    return parsed


def mapped(settings: Settings = SETTINGS, now: float = NOW, **fields: Any) -> Outcome:
    return to_kochava(event(**fields), settings, now)


def data_of(outcome: Outcome) -> dict[str, Any]:
    assert outcome.status == "ok", outcome
    assert outcome.payload is not None
    data: dict[str, Any] = outcome.payload["data"]
    return data


# --- device ids -----------------------------------------------------------------------------------------------


def test_ios_ids_are_upper_case_idfa_and_idfv() -> None:
    data = data_of(mapped(device={"advertising_id": IDFA, "id": "abc-def"}))
    assert data["device_ids"] == {"idfa": IDFA.upper(), "idfv": "ABC-DEF"}


def test_android_adid_is_lower_case_and_android_id_kept_as_sent() -> None:
    out = mapped(device={"platform": "android", "advertising_id": IDFA.upper(), "id": "AbC123"})
    assert data_of(out)["device_ids"] == {"adid": IDFA, "android_id": "AbC123"}
    assert out.payload is not None and out.payload["kochava_app_id"] == "ko-android"


def test_zero_idfa_is_dropped_and_means_limited_ad_tracking() -> None:
    out = mapped(device={"advertising_id": ZERO})
    data = data_of(out)
    assert data["device_ids"] == {"idfv": "IDFV-1"}
    assert data["device_limit_tracking"] == 1
    assert any("all zeros" in warning for warning in out.warnings)


def test_an_all_zero_device_id_is_not_sent_and_the_warning_says_so() -> None:
    out = mapped(device={"id": ZERO, "advertising_id": IDFA})
    assert data_of(out)["device_ids"] == {"idfa": IDFA.upper()}
    assert "device.id is all zeros: not sent" in out.warnings


def test_zero_idfa_as_the_only_identifier_is_rejected() -> None:
    out = mapped(device={"id": None, "advertising_id": ZERO})
    assert (out.status, out.reason, out.field) == ("rejected", reasons.NO_DEVICE_IDENTIFIER, "device.id")


def test_android_limit_ad_tracking_is_sent_as_0_or_1() -> None:
    on = data_of(mapped(device={"platform": "android", "advertising_id": IDFA, "limit_ad_tracking": True}))
    off = data_of(mapped(device={"platform": "android", "advertising_id": IDFA, "limit_ad_tracking": False}))
    unknown = data_of(mapped(device={"platform": "android", "advertising_id": IDFA}))
    assert (on["device_limit_tracking"], off["device_limit_tracking"]) == (1, 0)
    assert "device_limit_tracking" not in unknown


def test_kochava_device_id_prefers_the_explicit_one_then_device_id() -> None:
    explicit = mapped(device={"kochava_device_id": "KO-1"})
    fallback = mapped()
    assert explicit.payload is not None and explicit.payload["kochava_device_id"] == "KO-1"
    assert fallback.payload is not None and fallback.payload["kochava_device_id"] == "idfv-1"


def test_an_all_zero_kochava_device_id_is_replaced_with_a_warning_naming_the_field() -> None:
    out = mapped(device={"kochava_device_id": ZERO})
    assert out.payload is not None and out.payload["kochava_device_id"] == "idfv-1"
    assert "device.kochava_device_id is all zeros: the next usable id is sent instead" in out.warnings


# --- settings ---------------------------------------------------------------------------------------------------


def test_missing_guid_for_the_platform_rejects_with_that_reason() -> None:
    out = mapped(settings=Settings(kochava_app_id_ios="ko-ios"), device={"platform": "android", "id": "a"})
    assert (out.status, out.reason, out.field) == ("rejected", reasons.MISSING_APP_ID, "device.platform")
    assert "android" in (out.message or "")


def test_per_bundle_guid_wins_over_the_platform_guid() -> None:
    settings = Settings(kochava_app_id_ios="ko-ios", kochava_app_ids_by_bundle={"com.b": "ko-b"})
    out = mapped(settings=settings, app={"bundle_id": "com.b"})
    assert out.payload is not None and out.payload["kochava_app_id"] == "ko-b"


def test_heartbeat_is_filtered_by_default_and_the_list_is_configurable() -> None:
    assert mapped(event="Heartbeat").status == "filtered"
    custom = Settings.from_env({"KOCHAVA_APP_ID_IOS": "g", "FILTERED_EVENTS": "ping"})
    assert mapped(settings=custom, event="heartbeat").status == "ok"
    assert mapped(settings=custom, event="ping").status == "filtered"


def test_event_name_map_overrides_standard_names() -> None:
    settings = Settings.from_env({"KOCHAVA_APP_ID_IOS": "g", "EVENT_NAME_MAP": '{"Level_Up": "Level Complete"}'})
    assert data_of(mapped(settings=settings))["event_name"] == "Level Complete"


# --- common data fields ---------------------------------------------------------------------------------------


def test_usertime_is_integer_epoch_seconds_from_milliseconds() -> None:
    data = data_of(mapped(timestamp=1_795_175_910_987))
    assert data["usertime"] == 1_795_175_910
    assert isinstance(data["usertime"], int)


@pytest.mark.parametrize(
    "timestamp",
    ["2026-11-20T11:58:30Z", "2026-11-20 11:58:30", "2026-11-20T12:58:30+01:00", 1795175910, "1795175910000"],
)
def test_every_timestamp_form_gives_the_same_usertime(timestamp: object) -> None:
    assert data_of(mapped(timestamp=timestamp))["usertime"] == 1_795_175_910


def test_user_agent_is_percent_encoded_once() -> None:
    ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)"
    once = data_of(mapped(device={"user_agent": ua}))["device_ua"]
    assert " " not in once and "%20" in once
    assert data_of(mapped(device={"user_agent": once}))["device_ua"] == once  # not encoded twice
    assert encode_user_agent(encode_user_agent(ua)) == encode_user_agent(ua)


def test_device_ver_from_model_and_os_and_empty_when_unknown() -> None:
    assert data_of(mapped(device={"model": "iPhone15,2", "os_version": "17.1"}))["device_ver"] == "iPhone15,2-iOS-17.1"
    ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)"
    assert data_of(mapped(device={"os_version": "17.1", "user_agent": ua}))["device_ver"] == ""
    assert data_of(mapped(device={"model": "iPhone15,2"}))["device_ver"] == ""


def test_origination_ip_is_the_device_ip() -> None:
    assert data_of(mapped(device={"ip": "203.0.113.9"}))["origination_ip"] == "203.0.113.9"


# --- events -----------------------------------------------------------------------------------------------------


def test_event_data_is_flattened_to_one_level_and_lists_json_encoded() -> None:
    data = data_of(mapped(properties={"a": {"b": {"c": 1}}, "tags": ["x", {"y": 2}], "n": None}))
    assert data["event_data"] == {"a_b_c": 1, "tags": '["x",{"y":2}]'}  # a null is not sent (issue 24)


def test_properties_after_a_nested_object_are_kept_at_every_level() -> None:
    # Given an object in the middle of the properties, and one in the middle of a nested object
    properties = {"first": 1, "cart": {"item": {"sku": "s-1"}, "count": 2}, "last": "x"}
    # Then every value after them is still sent (a loop that stopped at the first object would drop them)
    assert data_of(mapped(properties=properties))["event_data"] == {
        "first": 1,
        "cart_item_sku": "s-1",
        "cart_count": 2,
        "last": "x",
    }
    assert flatten({"a": {}, "b": 1}) == {"a": "{}", "b": 1}
    assert flatten({"o": {"a": {}, "b": 1}}) == {"o_a": "{}", "o_b": 1}


def test_unusable_values_deep_in_objects_are_left_out_with_a_warning_naming_their_path() -> None:
    # Given properties whose objects hold a null and an infinite number, each followed by a usable value
    props = {"cart": {"coupon": None, "items": 2, "meta": {"ratio": float("inf"), "src": "ad"}}, "after": 1}
    out = mapped(properties=props)
    # Then both are left out, every other value is sent, and each warning names the value's own path and kind
    event_data = data_of(out)["event_data"]
    assert {k: event_data[k] for k in ("cart_items", "cart_meta_src", "after")} == {
        "cart_items": 2,
        "cart_meta_src": "ad",
        "after": 1,
    }
    assert "cart_coupon" not in event_data and "cart_meta_ratio" not in event_data
    assert "properties.cart.coupon: null: not sent (Kochava cannot use it)" in out.warnings
    assert "properties.cart.meta.ratio: inf, not a finite number: not sent (Kochava cannot use it)" in out.warnings


def test_nested_lists_inside_objects_are_json_encoded_under_the_joined_key() -> None:
    assert flatten({"cart": {"items": [[1, 2], [3]]}}) == {"cart_items": "[[1,2],[3]]"}


def test_a_list_nested_deeper_than_orjson_writes_still_maps() -> None:
    # Given a list 300 levels deep (orjson writes 254, its parser reads 1024): it used to raise in the mapping,
    # failing the event's whole message on every retry
    deep = nested_list(300)
    # When mapped, Then it is sent as its compact JSON text, and the payload can be written
    out = mapped(properties={"d": deep, "e": [1]})
    assert out.status == "ok" and out.payload is not None
    assert data_of(out)["event_data"] == {"d": "[" * 301 + "]" * 301, "e": "[1]"}
    assert orjson.dumps(out.to_line())


def test_a_list_too_deep_for_any_json_writer_is_replaced_by_a_marker() -> None:
    assert flatten({"d": nested_list(5000)}) == {"d": TOO_DEEP_TEXT}


def test_reserved_kochava_keys_are_renamed_not_sent() -> None:
    out = mapped(properties={"campaign": "c", "Network": "n", "site_id": "s"})
    event_data = data_of(out)["event_data"]
    assert {"custom_campaign": "c", "custom_Network": "n", "site_id": "s"}.items() <= event_data.items()
    assert "campaign" not in event_data and "Network" not in event_data
    assert len([w for w in out.warnings if "reserved" in w]) == 2


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Order Completed", "Purchase"),
        ("purchase", "Purchase"),
        ("MONETIZATION_WEB2", "Purchase"),
        ("monetization_web3", "Purchase"),
        ("Product Added", "Add to Cart"),
        ("product added to wishlist", "Add to Wish List"),
        ("Checkout Started", "Checkout Start"),
        ("Product Reviewed", "Rating"),
        ("Products Searched", "Search"),
        ("Level Up!", "Level Up!"),
    ],
)
def test_standard_event_names(name: str, expected: str) -> None:
    assert data_of(mapped(event=name))["event_name"] == expected


def test_purchase_gets_sum_currency_and_name_from_web2_price_fields() -> None:
    props = {"bundle_id": "runes", "bundle_paid_amount": "99", "bundle_paid_currency": "USD"}
    event_data = data_of(mapped(event="monetization_web2", properties=props))["event_data"]
    assert (event_data["sum"], event_data["currency"], event_data["name"]) == (99, "USD", "runes")


def test_purchase_with_a_non_numeric_amount_keeps_the_event_and_warns() -> None:
    out = mapped(event="purchase", properties={"price": "free"})
    assert "sum" not in data_of(out)["event_data"]
    assert any("not a number" in w for w in out.warnings)


def test_a_non_numeric_sum_is_dropped_with_a_warning_quoting_at_most_40_characters_of_it() -> None:
    # Given an event whose own sum is text that is not a number, longer than a warning should quote
    given = "about twelve euros, give or take, " + "x" * 30
    out = mapped(event="tip", properties={"sum": given})
    # Then the event is sent without a sum, and the warning quotes the value's first 40 characters only
    assert "sum" not in data_of(out)["event_data"]
    assert f"properties.sum {given[:40]!r} is not a number: not sent as sum" in out.warnings


def test_a_purchase_whose_price_is_not_a_number_takes_its_sum_from_the_products_and_says_so() -> None:
    out = mapped(event="purchase", properties={"price": "free", "products": [{"price": 2, "quantity": 3}]})
    assert data_of(out)["event_data"]["sum"] == 6
    assert "properties.price 'free' is not a number: sum taken from properties.products" in out.warnings


def test_screen_becomes_screen_view_with_screen_name() -> None:
    data = data_of(mapped(type="screen", event="Shop"))
    assert (data["event_name"], data["event_data"]["screen_name"]) == ("Screen View", "Shop")
    from_props = data_of(mapped(type="screen", event=None, properties={"name": "Bag"}))
    assert from_props["event_data"]["screen_name"] == "Bag"


def test_user_id_is_added_to_event_data_when_known() -> None:
    assert data_of(mapped(user_id="u-9"))["event_data"]["user_id"] == "u-9"


# --- identify ---------------------------------------------------------------------------------------------------


def test_identify_becomes_an_identity_link_with_flat_string_traits() -> None:
    out = mapped(type="identify", user_id="u-9", properties={"plan": "pro", "level": 3, "vip": True, "a": {"b": 1}})
    assert out.kind == "identityLink"
    assert out.payload == {
        "kochava_app_id": "ko-ios",
        "device_id": {"idfv": "IDFV-1"},
        "data": {"user_id": "u-9", "plan": "pro", "level": "3", "vip": "true", "a_b": "1"},
    }


def test_identity_link_traits_that_are_false_lists_or_empty_objects_arrive_as_their_json_text() -> None:
    # Given an identify whose traits hold a false flag, a list, an empty object and a number
    out = mapped(
        type="identify", user_id="u-9", properties={"beta": False, "tags": ["a", 1], "prefs": {}, "score": 2.5}
    )
    # Then IdentityLink gets each as the text JSON would write it (Kochava takes text traits only)
    assert out.payload is not None
    assert out.payload["data"] == {"user_id": "u-9", "beta": "false", "tags": '["a",1]', "prefs": "{}", "score": "2.5"}


def test_a_user_id_among_the_traits_never_replaces_the_identified_user() -> None:
    # Given an identify whose traits carry another user_id (Segment's traits often repeat it, sometimes stale)
    out = mapped(type="identify", user_id="u-9", properties={"user_id": "u-old", "plan": "pro"})
    # Then IdentityLink links the device to the identified user, and the trait is not sent twice
    assert out.payload is not None
    assert out.payload["data"] == {"user_id": "u-9", "plan": "pro"}


def test_identify_without_user_id_is_invalid() -> None:
    rejection = parse_event(
        {"uuid": "u", "type": "identify", "timestamp": NOW, "device": {"platform": "ios", "id": "v"}}
    )
    assert isinstance(rejection, Rejection)
    assert (rejection.field, rejection.message) == ("user_id", "user_id: is required for identify events")


# --- installs ---------------------------------------------------------------------------------------------------


def test_ios14_install_carries_the_att_block() -> None:
    att = {"status": "authorized", "time": NOW - 100, "duration": 3.7}
    data = data_of(mapped(type="install", device={"os_version": "14.0", "advertising_id": IDFA, "att": att}))
    assert data["app_tracking_transparency"] == {
        "att": True,
        "att_time": int(NOW - 100),
        "att_duration": 4,  # 3.7 s rounded, not truncated
        "att_detail": "authorized",
    }


def test_att_status_is_inferred_authorized_from_a_non_zero_idfa() -> None:
    out = mapped(type="install", device={"advertising_id": IDFA})
    assert data_of(out)["app_tracking_transparency"] == {"att": True, "att_detail": "authorized"}
    assert any("inferred" in w for w in out.warnings)


def test_att_without_status_or_idfa_is_not_authorized() -> None:
    data = data_of(mapped(type="install", device={"advertising_id": ZERO}))
    assert data["app_tracking_transparency"] == {"att": False, "att_detail": "not_determined"}


@pytest.mark.parametrize("kind", ["install", "track", "screen"])
def test_no_att_block_before_ios14_or_on_android(kind: str) -> None:
    assert "app_tracking_transparency" not in data_of(mapped(type=kind, device={"os_version": "13.7"}))
    android = mapped(type=kind, device={"platform": "android", "id": "a", "att": {"status": "authorized"}})
    assert "app_tracking_transparency" not in data_of(android)


def test_install_passes_consent_iad_and_referrer_through() -> None:
    data = data_of(
        mapped(
            type="install",
            consent={"gdpr_applies": True, "tc_string": "tc", "ad_user_data": False},
            iad_attribution_details={"Version3.1": {"iad-attribution": "true"}},
            install_referrer={"referrer": "utm_source=x", "click_time": "2026-11-20T11:00:00Z"},
        )
    )
    assert data["gdpr_privacy_consent"] == {"gdpr_applies": 1, "tc_string": "tc", "ad_user_data": 0}
    # Kochava reads the consent flags as numbers: 1 / 0 on the wire, never true / false (True == 1 in Python).
    assert orjson.dumps(data["gdpr_privacy_consent"]) == b'{"gdpr_applies":1,"tc_string":"tc","ad_user_data":0}'
    assert data["iad_attribution_details"] == {"Version3.1": {"iad-attribution": "true"}}
    assert data["install_referrer"] == {"referrer": "utm_source=x", "referrer_click_time": 1_795_172_400}


@pytest.mark.parametrize("kind", ["track", "screen"])
def test_consent_and_att_are_sent_on_post_install_events_too(kind: str) -> None:
    """Kochava's post-install doc as it reads today (issue 24): ATT on every iOS 14+ event, DMA consent on events."""
    data = data_of(mapped(type=kind, consent={"gdpr_applies": True}, device={"advertising_id": IDFA}))
    assert data["gdpr_privacy_consent"] == {"gdpr_applies": 1}
    assert data["app_tracking_transparency"] == {"att": True, "att_detail": "authorized"}
