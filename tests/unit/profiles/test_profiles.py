"""The device-profile rules (functions/pipeline/profiles.py): what is filled, what is remembered, when to write."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from functions.pipeline import profiles
from functions.pipeline.contract import NativeEvent
from functions.pipeline.profiles import (
    FIELDS,
    LAST_EVENT_AT,
    REFRESH_AFTER_S,
    UPDATED_AT,
    context_of,
    fill_from_profile,
    updated_profile,
)

NOW = 1_700_000_000.0
FULL_PROFILE: dict[str, Any] = {
    "advertising_id": "6D92078A-8246-4BA4-AE5B-76104861E7DC",
    "kochava_device_id": "KD-1",
    "ip": "203.0.113.7",
    "user_agent": "Mozilla/5.0 (iPhone)",
    "model": "iPhone14,2",
    "os_version": "17.1",
    "app_version": "3.1.0",
    "user_id": "user-42",
    "limit_ad_tracking": False,
    "att_status": "authorized",
    "att_time": 1_699_990_000,
    "att_duration": 4,
    LAST_EVENT_AT: NOW - 100,
    UPDATED_AT: NOW - 100,
}


def event(kind: str = "track", device: dict[str, Any] | None = None, **fields: Any) -> NativeEvent:
    raw: dict[str, Any] = {
        "uuid": "u-1",
        "type": kind,
        "timestamp": NOW - 10,
        "device": {"platform": "ios", "id": "IDFV-1", **(device or {})},
        **fields,
    }
    if kind == "track":
        raw.setdefault("event", "Purchase")
    return NativeEvent.model_validate(raw)


def test_bare_server_side_event_gets_every_remembered_field() -> None:
    filled_event, filled = fill_from_profile(event(), FULL_PROFILE)
    assert filled == list(FIELDS)
    device = filled_event.device
    assert device.advertising_id == FULL_PROFILE["advertising_id"]
    assert (device.ip, device.user_agent, device.model, device.os_version) == (
        "203.0.113.7",
        "Mozilla/5.0 (iPhone)",
        "iPhone14,2",
        "17.1",
    )
    assert device.kochava_device_id == "KD-1"
    assert device.limit_ad_tracking is False
    assert device.att is not None
    assert (device.att.status, device.att.time, device.att.duration) == ("authorized", 1_699_990_000.0, 4.0)
    assert filled_event.user_id == "user-42"
    assert filled_event.app is not None and filled_event.app.version == "3.1.0"


def test_event_fields_always_win() -> None:
    own = event(device={"ip": "198.51.100.1", "advertising_id": "AAAA-1"}, user_id="me", app={"version": "9"})
    filled_event, filled = fill_from_profile(own, FULL_PROFILE)
    assert filled_event.device.ip == "198.51.100.1"
    assert filled_event.device.advertising_id == "AAAA-1"
    assert filled_event.user_id == "me"
    assert filled_event.app is not None and filled_event.app.version == "9"
    assert not {"ip", "advertising_id", "user_id", "app_version"} & set(filled)


def test_no_profile_or_nothing_to_fill_returns_the_same_event() -> None:
    bare = event()
    assert fill_from_profile(bare, None) == (bare, [])
    full = event(device={k: FULL_PROFILE[k] for k in ("advertising_id", "ip")})
    same, filled = fill_from_profile(full, {"ip": "1.1.1.1", "advertising_id": "X"})
    assert same is full and filled == []


def test_att_is_filled_as_a_group_only_when_the_event_has_no_status() -> None:
    own = event(device={"att": {"status": "not_determined"}})
    filled_event, filled = fill_from_profile(own, FULL_PROFILE)
    assert filled_event.device.att is not None
    assert filled_event.device.att.status == "not_determined"
    assert filled_event.device.att.time is None  # the profile's time belongs to another answer
    assert not set(profiles.ATT_FIELDS) & set(filled)


def test_advertising_id_is_never_filled_into_an_opted_out_event() -> None:
    for device in (
        {"att": {"status": "denied"}},
        {"att": {"status": "restricted"}},
        {"limit_ad_tracking": True},
        {"advertising_id": "00000000-0000-0000-0000-000000000000"},
    ):
        filled_event, filled = fill_from_profile(event(device=device), FULL_PROFILE)
        assert "advertising_id" not in filled, device
        assert filled_event.device.advertising_id in (None, "00000000-0000-0000-0000-000000000000")


def test_installs_never_get_ip_or_user_agent_from_a_profile() -> None:
    filled_event, filled = fill_from_profile(event("install"), FULL_PROFILE)
    assert filled_event.device.ip is None and filled_event.device.user_agent is None
    assert "ip" not in filled and "user_agent" not in filled
    assert "advertising_id" in filled


def test_first_event_creates_a_profile_with_its_fields() -> None:
    new = updated_profile(event("install", device={"ip": "1.2.3.4", "advertising_id": "A-1"}), None, NOW)
    assert new == {"ip": "1.2.3.4", "advertising_id": "A-1", LAST_EVENT_AT: NOW - 10, UPDATED_AT: NOW}


def test_event_with_nothing_to_remember_writes_nothing() -> None:
    assert updated_profile(event(), None, NOW) is None


def test_unchanged_profile_is_not_rewritten_until_its_expiry_needs_a_push() -> None:
    same = event(device={"ip": FULL_PROFILE["ip"]})
    assert updated_profile(same, FULL_PROFILE, NOW) is None
    later = NOW - 100 + REFRESH_AFTER_S
    refreshed = updated_profile(same, FULL_PROFILE, later)
    assert refreshed is not None and refreshed[UPDATED_AT] == later


def test_newer_event_overwrites_older_event_only_fills_gaps() -> None:
    old = {"ip": "1.1.1.1", LAST_EVENT_AT: NOW, UPDATED_AT: NOW}
    newer = event(device={"ip": "2.2.2.2"}, timestamp=NOW + 5)
    assert updated_profile(newer, old, NOW + 10) == {"ip": "2.2.2.2", LAST_EVENT_AT: NOW + 5, UPDATED_AT: NOW + 10}
    late = event(device={"ip": "3.3.3.3", "model": "Pixel 8"}, timestamp=NOW - 500)
    merged = updated_profile(late, old, NOW + 10)
    assert merged is not None
    assert merged["ip"] == "1.1.1.1" and merged["model"] == "Pixel 8"
    assert merged[LAST_EVENT_AT] == NOW  # a late event never moves the clock back


def test_opt_out_removes_the_remembered_advertising_id() -> None:
    for device in (
        {"att": {"status": "denied"}},
        {"limit_ad_tracking": True},
        {"advertising_id": "00000000-0000-0000-0000-000000000000"},
    ):
        new = updated_profile(event(device=device, timestamp=NOW), FULL_PROFILE, NOW)
        assert new is not None and "advertising_id" not in new, device


def test_all_zero_advertising_id_is_never_stored() -> None:
    new = updated_profile(event(device={"advertising_id": "0000-0000", "ip": "1.2.3.4"}), None, NOW)
    assert new is not None and "advertising_id" not in new


def test_late_event_cannot_bring_back_an_advertising_id_after_an_opt_out() -> None:
    opted_out = {"att_status": "denied", LAST_EVENT_AT: NOW, UPDATED_AT: NOW}
    late = event(device={"advertising_id": "A-1"}, timestamp=NOW - 1000)
    assert updated_profile(late, opted_out, NOW) is None


def test_new_att_answer_replaces_the_whole_group() -> None:
    new = updated_profile(event(device={"att": {"status": "denied"}}, timestamp=NOW), FULL_PROFILE, NOW)
    assert new is not None
    assert new["att_status"] == "denied"
    assert "att_time" not in new and "att_duration" not in new


def test_device_clock_ahead_does_not_pin_the_profile() -> None:
    future = event(device={"ip": "1.2.3.4"}, timestamp=NOW + 86_400)
    new = updated_profile(future, None, NOW)
    assert new is not None and new[LAST_EVENT_AT] == NOW


def test_key_and_key_id() -> None:
    assert profiles.profile_key("app", "ios", " D-1 ") == "app#ios#d-1"  # normalised: one profile for every spelling
    assert profiles.legacy_profile_key("app", "ios", "D-1") == "app#ios#D-1"
    assert profiles.device_key_id(event()) == "IDFV-1"
    kochava_only = NativeEvent.model_validate(
        {"uuid": "u", "type": "screen", "timestamp": NOW, "device": {"platform": "android", "kochava_device_id": "K"}}
    )
    assert profiles.device_key_id(kochava_only) == "K"


_values = st.one_of(st.none(), st.text(alphabet="ABCDEF0123456789.-", min_size=1, max_size=12))


@given(
    own=st.fixed_dictionaries(
        dict.fromkeys(("advertising_id", "ip", "user_agent", "model", "os_version", "kochava_device_id"), _values)
    ),
    stored=st.fixed_dictionaries(
        dict.fromkeys(("advertising_id", "ip", "user_agent", "model", "os_version", "kochava_device_id"), _values)
    ),
    install=st.booleans(),
)
def test_property_fill_never_changes_a_field_the_event_carries(
    own: dict[str, str | None], stored: dict[str, str | None], install: bool
) -> None:
    original = event("install" if install else "track", device={k: v for k, v in own.items() if v is not None})
    profile = {k: v for k, v in stored.items() if v is not None}
    filled_event, filled = fill_from_profile(original, profile)
    before, after = context_of(original), context_of(filled_event)
    for name, value in before.items():
        assert after[name] == value
    assert set(after) - set(before) == set(filled)
    for name in filled:
        assert after[name] == profile[name]
