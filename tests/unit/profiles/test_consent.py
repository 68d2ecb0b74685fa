"""Profiles respect consent (functions/pipeline/profiles.py): nothing personal is kept or filled while the device's
newest consent signals refuse it (GDPR without ad_user_data, ATT denied / restricted, limit-ad-tracking)."""

from __future__ import annotations

from typing import Any

import pytest

from functions.pipeline.profiles import (
    LAST_EVENT_AT,
    PERSONAL_FIELDS,
    UPDATED_AT,
    fill_from_profile,
    refuses_personal_data,
    updated_profile,
)
from tests.unit.profiles.test_profiles import FULL_PROFILE, NOW, event

GDPR_REFUSED = {"gdpr_applies": True, "ad_user_data": False}
GDPR_GRANTED = {"gdpr_applies": True, "ad_user_data": True}
RICH_DEVICE = {
    "advertising_id": "6D92078A-8246-4BA4-AE5B-76104861E7DC",
    "kochava_device_id": "KD-9",
    "ip": "198.51.100.9",
    "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1)",
    "model": "iPhone15,3",
    "os_version": "17.1",
}
# Each way an event refuses: (device fields, consent).
REFUSALS: list[tuple[dict[str, Any], dict[str, Any] | None]] = [
    ({}, GDPR_REFUSED),
    ({}, {"gdpr_applies": True}),  # GDPR applies and no consent given: refused
    ({"att": {"status": "denied"}}, None),
    ({"att": {"status": "restricted"}}, None),
    ({"limit_ad_tracking": True}, None),
]
REFUSAL_IDS = ["gdpr-refused", "gdpr-no-answer", "att-denied", "att-restricted", "lat-on"]


def _event(device: dict[str, Any], consent: dict[str, Any] | None, *, timestamp: float = NOW, **fields: Any) -> Any:
    extra = {"consent": consent} if consent is not None else {}
    return event(device=device, timestamp=timestamp, **extra, **fields)


@pytest.mark.parametrize(("device", "consent"), REFUSALS, ids=REFUSAL_IDS)
def test_a_refusing_event_stores_nothing_personal_on_a_new_device(
    device: dict[str, Any], consent: dict[str, Any] | None
) -> None:
    new = updated_profile(_event({**RICH_DEVICE, **device}, consent, user_id="user-7"), None, NOW)
    assert new is not None  # the refusal itself and the device facts are remembered...
    assert not set(PERSONAL_FIELDS) & set(new)  # ...never the personal data
    assert new["model"] == "iPhone15,3" and new["os_version"] == "17.1"


@pytest.mark.parametrize(("device", "consent"), REFUSALS, ids=REFUSAL_IDS)
def test_a_refusal_removes_what_was_stored_at_that_moment(
    device: dict[str, Any], consent: dict[str, Any] | None
) -> None:
    new = updated_profile(_event(device, consent), FULL_PROFILE, NOW)
    assert new is not None, "the stored personal data must be overwritten now"
    assert not set(PERSONAL_FIELDS) & set(new)
    assert new["model"] == FULL_PROFILE["model"]


def test_granted_or_absent_consent_keeps_personal_data() -> None:
    for consent in (GDPR_GRANTED, {"gdpr_applies": False}, None):
        new = updated_profile(_event(RICH_DEVICE, consent, user_id="user-7"), None, NOW)
        assert new is not None and new["ip"] == "198.51.100.9" and new["user_id"] == "user-7", consent


def test_an_all_zero_advertising_id_alone_is_not_a_refusal_of_ip_and_user_agent() -> None:
    zeros = {**RICH_DEVICE, "advertising_id": "00000000-0000-0000-0000-000000000000"}
    new = updated_profile(_event(zeros, None), None, NOW)
    assert new is not None and "advertising_id" not in new and new["ip"] == "198.51.100.9"


def test_the_refusal_is_remembered_until_a_newer_event_lifts_it() -> None:
    refused = updated_profile(_event({}, GDPR_REFUSED), FULL_PROFILE, NOW)
    assert refused is not None
    # A later event that says nothing about consent adds nothing personal.
    silent = updated_profile(_event(RICH_DEVICE, None, timestamp=NOW + 10), refused, NOW + 20)
    assert silent is not None and not set(PERSONAL_FIELDS) & set(silent)
    # A newer grant is the newest signal: personal data is kept again.
    granted = updated_profile(_event(RICH_DEVICE, GDPR_GRANTED, timestamp=NOW + 30), silent, NOW + 40)
    assert granted is not None and granted["ip"] == "198.51.100.9"
    assert (granted["gdpr_applies"], granted["ad_user_data"]) == (True, True)


def test_att_authorized_after_a_denial_lifts_it_but_a_late_authorization_does_not() -> None:
    denied = {"att_status": "denied", "model": "iPhone15,3", LAST_EVENT_AT: NOW, UPDATED_AT: NOW}
    late = _event({**RICH_DEVICE, "att": {"status": "authorized"}}, None, timestamp=NOW - 600)
    after_late = updated_profile(late, denied, NOW)
    assert after_late is None or not set(PERSONAL_FIELDS) & set(after_late)
    newer = _event({**RICH_DEVICE, "att": {"status": "authorized"}}, None, timestamp=NOW + 5)
    after_newer = updated_profile(newer, denied, NOW + 10)
    assert after_newer is not None and after_newer["ip"] == RICH_DEVICE["ip"]
    assert after_newer["advertising_id"] == RICH_DEVICE["advertising_id"]


def test_a_late_event_cannot_undo_a_newer_gdpr_refusal() -> None:
    refused = {"gdpr_applies": True, "ad_user_data": False, LAST_EVENT_AT: NOW, UPDATED_AT: NOW}
    late = _event(RICH_DEVICE, GDPR_GRANTED, timestamp=NOW - 600)
    after = updated_profile(late, refused, NOW)
    assert after is None or (not set(PERSONAL_FIELDS) & set(after) and after["ad_user_data"] is False)


def test_a_new_consent_answer_replaces_the_whole_group() -> None:
    old = {**FULL_PROFILE, **GDPR_GRANTED}
    new = updated_profile(_event({}, {"gdpr_applies": False}), old, NOW)
    assert new is not None and new["gdpr_applies"] is False and "ad_user_data" not in new
    assert new["ip"] == FULL_PROFILE["ip"]


@pytest.mark.parametrize(("device", "consent"), REFUSALS, ids=REFUSAL_IDS)
def test_nothing_personal_is_filled_into_a_refusing_event(
    device: dict[str, Any], consent: dict[str, Any] | None
) -> None:
    filled_event, filled = fill_from_profile(_event(device, consent), FULL_PROFILE)
    assert not set(PERSONAL_FIELDS) & set(filled)
    d = filled_event.device
    assert (d.advertising_id, d.ip, d.user_agent, d.kochava_device_id, filled_event.user_id) == (None,) * 5
    assert d.model == FULL_PROFILE["model"]  # non-identifying facts are still filled


def test_a_remembered_refusal_withholds_legacy_personal_data_from_a_bare_event() -> None:
    legacy = {**FULL_PROFILE, **GDPR_REFUSED}  # written before these rules: still holds personal data
    filled_event, filled = fill_from_profile(event(), legacy)
    assert not set(PERSONAL_FIELDS) & set(filled)
    assert filled_event.device.ip is None and filled_event.user_id is None


def test_refusal_rule_table() -> None:
    assert refuses_personal_data(GDPR_REFUSED)
    assert refuses_personal_data({"gdpr_applies": True, "ad_user_data": None})
    assert not refuses_personal_data(GDPR_GRANTED)
    assert not refuses_personal_data({"ad_user_data": False})  # GDPR does not apply (unknown): not a refusal
    assert not refuses_personal_data({"att_status": "not_determined", "limit_ad_tracking": False})
    assert not refuses_personal_data({})
