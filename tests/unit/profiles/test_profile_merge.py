"""Device profiles at their edges (``functions/pipeline/profiles.py``): what an event's ATT answer and consent leave
in the profile, what a late event may still add, empty values, ids that merely start like an all-zero id, and what
an install or an opted-out profile fills."""

from __future__ import annotations

from functions.pipeline.profiles import (
    LAST_EVENT_AT,
    UPDATED_AT,
    device_key_id,
    fill_from_profile,
    merge_context,
    updated_profile,
)
from tests.unit.profiles.test_profiles import FULL_PROFILE, NOW, event

ATT = {"status": "authorized", "time": 1_699_000_000, "duration": 7}
OLD = {"model": "iPhone14,2", LAST_EVENT_AT: NOW, UPDATED_AT: NOW}  # a profile with no ATT answer and no consent


def test_an_att_answer_is_remembered_with_its_time_and_duration() -> None:
    new = updated_profile(event(device={"att": ATT}, timestamp=NOW), None, NOW)
    assert new is not None
    assert (new["att_status"], new["att_time"], new["att_duration"]) == ("authorized", 1_699_000_000, 7)
    filled_event, _ = fill_from_profile(event(), new)
    assert filled_event.device.att is not None
    assert (filled_event.device.att.time, filled_event.device.att.duration) == (1_699_000_000.0, 7.0)


def test_a_late_event_s_att_answer_and_consent_fill_a_profile_that_has_none() -> None:
    late = event(device={"att": ATT}, consent={"gdpr_applies": True, "ad_user_data": True}, timestamp=NOW - 500)
    new = updated_profile(late, OLD, NOW)
    assert new is not None
    assert {k: new.get(k) for k in ("att_status", "att_time", "att_duration")} == {
        "att_status": "authorized",
        "att_time": 1_699_000_000,
        "att_duration": 7,
    }
    assert (new["gdpr_applies"], new["ad_user_data"]) == (True, True)
    assert new[LAST_EVENT_AT] == NOW  # still the newest event's time


def test_a_late_event_never_mixes_its_answer_into_the_profile_s() -> None:
    """A profile's ATT answer (or consent) is a group: a late event's time or flags are not added to it."""
    profile = {"att_status": "denied", "gdpr_applies": False, LAST_EVENT_AT: NOW, UPDATED_AT: NOW}
    late = event(
        device={"att": ATT},
        consent={"gdpr_applies": True, "ad_user_data": True, "ad_personalization": True},
        timestamp=NOW - 500,
    )
    assert updated_profile(late, profile, NOW) is None  # nothing changed: nothing written


def test_an_empty_value_neither_erases_nor_is_stored() -> None:
    profile = {"ip": "203.0.113.7", "user_id": "user-42", LAST_EVENT_AT: NOW - 100, UPDATED_AT: NOW - 100}
    newer = event(device={"ip": "", "user_agent": "", "model": "Pixel 8"}, user_id="", timestamp=NOW)
    new = updated_profile(newer, profile, NOW)
    assert new is not None
    assert (new["ip"], new["user_id"], new["model"]) == ("203.0.113.7", "user-42", "Pixel 8")
    assert "user_agent" not in new


def test_an_id_that_starts_like_a_zero_id_is_still_the_device_s_key() -> None:
    assert device_key_id(event(device={"id": "0A1B2C3D-1111-2222-3333-444455556666"})) == (
        "0A1B2C3D-1111-2222-3333-444455556666"
    )
    assert device_key_id(event(device={"id": "-x-1", "kochava_device_id": "KD"})) == "-x-1"
    zero = event(device={"id": "00000000-0000-0000-0000-000000000000", "kochava_device_id": "KD-2"})
    assert device_key_id(zero) == "KD-2"


def test_an_install_gets_every_remembered_field_but_its_network_context() -> None:
    filled_event, filled = fill_from_profile(event("install"), FULL_PROFILE)
    assert set(filled) >= {"kochava_device_id", "model", "os_version", "app_version", "user_id", "limit_ad_tracking"}
    assert (filled_event.device.model, filled_event.device.os_version, filled_event.user_id) == (
        "iPhone14,2",
        "17.1",
        "user-42",
    )


def test_a_remembered_limit_ad_tracking_is_filled_as_it_is() -> None:
    profile = {**FULL_PROFILE, "limit_ad_tracking": True}
    filled_event, filled = fill_from_profile(event(), profile)
    assert filled_event.device.limit_ad_tracking is True and "limit_ad_tracking" in filled
    assert filled_event.device.advertising_id is None  # and, opted out, no advertising id


def test_an_unknown_stored_att_status_is_not_sent_on() -> None:
    filled_event, _ = fill_from_profile(event(), {**FULL_PROFILE, "att_status": "granted-ish"})
    assert filled_event.device.att is not None and filled_event.device.att.status is None


def test_the_event_s_own_consent_decides_over_a_legacy_profile_s() -> None:
    """GDPR applies and the event does not say ad_user_data: refused, whatever an old profile (written before
    consent was kept) says, so its personal data is not filled."""
    legacy = {**FULL_PROFILE, "gdpr_applies": True, "ad_user_data": True}
    filled_event, filled = fill_from_profile(event(consent={"gdpr_applies": True}), legacy)
    assert filled_event.device.ip is None and filled_event.user_id is None
    assert not {"advertising_id", "ip", "user_agent", "user_id", "kochava_device_id"} & set(filled)


def test_only_the_advertising_id_is_forgotten_when_it_is_all_zeros() -> None:
    # Given an event whose user id is "0" and whose Kochava device id is all zeros, with an all-zero IDFA
    ctx = {"user_id": "0", "kochava_device_id": "0000", "advertising_id": "00000000-0000-0000-0000-000000000000"}
    # When it is merged into a new profile
    profile, changed = merge_context(ctx, None)
    # Then the ids are remembered as sent; only the all-zero advertising id (limit ad tracking) is not kept
    assert (profile, changed) == ({"user_id": "0", "kochava_device_id": "0000"}, True)
