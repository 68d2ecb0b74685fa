"""The warnings the mapping gives (``functions/pipeline/kochava.py``), word for word: the enricher logs them with the
event's uuid and ``tools.transform`` prints them, so they are what on-call reads to learn why a field was not sent.
Each test here failed on a mutant that the rest of the fast tests let live (issue 26, "tests that catch mutants";
docs/reliability.md lists which): the other tests match a word of a warning, or none.
"""

from __future__ import annotations

from typing import Any

from functions.pipeline.events import Rejection, parse_event
from functions.pipeline.kochava import Outcome, encode_user_agent, to_kochava
from functions.pipeline.settings import Settings

GENERATED = 1_795_000_000.0
DAY = 24 * 3600
SETTINGS = Settings(kochava_app_id_ios="ko-ios")
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
# Apple's documented developer-mode answer (the test payload it returns outside production)
DEV_MODE = {"attribution": True, "orgId": 1234567890, "campaignId": 1234567890, "adGroupId": 1234567890}

AUTHORIZED = {"status": "authorized", "time": GENERATED - 60}

# a device with nothing else to warn about: its OS version, model and ATT answer known
DEVICE = {
    "platform": "ios",
    "id": "v",
    "advertising_id": IDFA,
    "os_version": "17.1",
    "model": "iPhone15,2",
    "att": AUTHORIZED,
}

DEVELOPER_MODE_SENT = "adservices.attribution is Apple's developer-mode test payload: not forwarded"
DEVELOPER_MODE_RESOLVED = "Apple answered with the developer-mode test payload: not forwarded"
NO_GENERATED_AT = "adservices.generated_at missing: token age taken from the event timestamp"
TOKEN_TOO_OLD = "adservices.token is older than 24 h: not sent (Kochava could not use it)"


def install(now: float, resolved: dict[str, Any] | None = None, **adservices_fields: Any) -> Outcome:
    raw = {
        "uuid": "i-1",
        "type": "install",
        "timestamp": GENERATED + 30,
        "device": DEVICE,
        "adservices": {"token": "tok-123", "generated_at": GENERATED} | adservices_fields,
    }
    event = parse_event(raw)
    assert not isinstance(event, Rejection)
    return to_kochava(event, SETTINGS, now, attribution=resolved)


def test_a_token_too_old_to_send_says_so() -> None:
    # Given an install whose AdServices token was made two days before it is mapped
    outcome = install(now=GENERATED + 2 * DAY)
    # Then the token is not sent, and the one warning says why
    assert outcome.payload is not None and "ad_services_token" not in outcome.payload["data"]
    assert outcome.warnings == [TOKEN_TOO_OLD]


def test_a_token_without_its_time_says_the_event_s_time_was_used() -> None:
    outcome = install(now=GENERATED + 60, generated_at=None)
    assert outcome.warnings == [NO_GENERATED_AT]


def test_apple_s_developer_mode_payload_is_named_as_such_from_the_client_and_from_apple() -> None:
    # Given the developer-mode payload sent by the app itself, and once as what Apple answered the enricher
    from_client = install(now=GENERATED + 60, attribution=DEV_MODE)
    from_apple = install(now=GENERATED + 60, resolved=DEV_MODE)
    # Then each warning says where the test payload came from
    assert from_client.warnings == [DEVELOPER_MODE_SENT]
    assert from_apple.warnings == [DEVELOPER_MODE_RESOLVED]


def test_an_app_s_own_user_agent_keeps_the_device_s_model_in_device_ver() -> None:
    # Given an event whose user agent is the app's own (it names no OS version) and whose device names its model
    raw = {
        "uuid": "u-1",
        "type": "track",
        "event": "level_up",
        "timestamp": GENERATED,
        "device": {**DEVICE, "user_agent": "MyGame/2.3 CFNetwork/1410.0.3 Darwin/22.6.0"},
    }
    event = parse_event(raw)
    assert not isinstance(event, Rejection)
    outcome = to_kochava(event, SETTINGS, GENERATED + 60)
    # Then Kochava reads the OS from device_ver built with that model (not the generic one), with no warning
    assert outcome.payload is not None
    assert outcome.payload["data"]["device_ver"] == "iPhone15,2-iOS-17.1"
    assert outcome.warnings == []


def screen(properties: dict[str, Any]) -> dict[str, Any]:
    raw = {"uuid": "s-1", "type": "screen", "timestamp": GENERATED, "device": DEVICE, "properties": properties}
    event = parse_event(raw)
    assert not isinstance(event, Rejection)
    outcome = to_kochava(event, SETTINGS, GENERATED + 60)
    assert outcome.payload is not None and outcome.warnings == []
    data: dict[str, Any] = outcome.payload["data"]["event_data"]
    return data


def test_a_screen_named_only_in_its_properties_keeps_that_name_and_one_without_any_sends_it_empty() -> None:
    # A screen call whose name is only in properties.screen_name (Segment's mobile libraries put it there)
    assert screen({"screen_name": "Settings"}) == {"screen_name": "Settings"}
    # One without any name anywhere: Kochava gets an empty screen name, not a made-up one
    assert screen({}) == {"screen_name": ""}


def test_a_raw_user_agent_with_a_percent_sign_is_encoded_once() -> None:
    # An agent with spaces is raw, whatever percent signs it holds: "%AB" is text here, not an escape
    assert encode_user_agent("Game 100%AB off") == "Game%20100%25AB%20off"
