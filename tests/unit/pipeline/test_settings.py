"""What an operator sets in the environment is what the pipeline uses (``functions/pipeline/settings.py``), and a
malformed value is refused with a message naming the variable."""

from __future__ import annotations

import pytest

from functions.envconfig import ConfigError
from functions.names import (
    ENV_ADSERVICES_RESOLVE,
    ENV_ADSERVICES_URL,
    ENV_EVENT_NAME_MAP,
    ENV_FILTERED_EVENTS,
    ENV_KOCHAVA_APP_ID_ANDROID,
    ENV_KOCHAVA_APP_ID_IOS,
    ENV_KOCHAVA_APP_IDS_BY_BUNDLE,
    ENV_KOCHAVA_IDENTITYLINK_URL,
    ENV_KOCHAVA_URL,
    ENV_REQUIRE_BOUND_KEYS,
    ENV_SOURCE_APPS,
)
from functions.pipeline.settings import Settings

FLAGS = (ENV_ADSERVICES_RESOLVE, ENV_REQUIRE_BOUND_KEYS)


def test_every_setting_is_read_from_its_own_variable() -> None:
    settings = Settings.from_env(
        {
            ENV_KOCHAVA_APP_ID_IOS: " ko-ios ",
            ENV_KOCHAVA_APP_ID_ANDROID: "ko-android",
            ENV_KOCHAVA_APP_IDS_BY_BUNDLE: '{"com.example.game": "ko-game"}',
            ENV_KOCHAVA_URL: "https://kochava.test/track/json",
            ENV_KOCHAVA_IDENTITYLINK_URL: "https://kochava.test/identityLink.php",
            ENV_FILTERED_EVENTS: "Heartbeat, ,Ping",
            ENV_EVENT_NAME_MAP: '{" Order Completed ": "Purchase"}',
            ENV_ADSERVICES_URL: "https://apple.test/api/v1/",
            ENV_ADSERVICES_RESOLVE: "false",
            ENV_SOURCE_APPS: '{"key-1": ["com.example.game"]}',
            ENV_REQUIRE_BOUND_KEYS: "off",
        }
    )
    assert settings == Settings(
        kochava_app_id_ios="ko-ios",
        kochava_app_id_android="ko-android",
        kochava_app_ids_by_bundle={"com.example.game": "ko-game"},
        kochava_url="https://kochava.test/track/json",
        kochava_identitylink_url="https://kochava.test/identityLink.php",
        filtered_events=frozenset({"heartbeat", "ping"}),
        event_name_map={"order completed": "Purchase"},
        adservices_url="https://apple.test/api/v1/",
        adservices_resolve=False,
        source_apps={"key-1": frozenset({"com.example.game"})},
        require_bound_keys=False,
    )


def test_what_is_not_set_or_blank_takes_the_defaults() -> None:
    blank = dict.fromkeys((ENV_KOCHAVA_URL, ENV_SOURCE_APPS, ENV_EVENT_NAME_MAP, *FLAGS), "  ")
    for env in ({}, blank):
        settings = Settings.from_env(env)
        assert settings == Settings()
        assert settings.adservices_resolve is True and settings.require_bound_keys is True
        assert settings.kochava_url == "https://control.kochava.com/track/json"


@pytest.mark.parametrize("var", FLAGS)
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[("true", True), ("TRUE", True), (" 1 ", True), ("Yes", True), ("on", True), ("ON", True)],
        *[("false", False), ("False", False), ("0", False), ("no", False), ("NO", False), ("off", False)],
    ],
)
def test_a_flag_is_read_in_every_spelling_it_accepts(var: str, raw: str, expected: bool) -> None:
    settings = Settings.from_env({var: raw})
    assert (settings.adservices_resolve, settings.require_bound_keys) == (
        expected if var == ENV_ADSERVICES_RESOLVE else True,
        expected if var == ENV_REQUIRE_BOUND_KEYS else True,
    )


@pytest.mark.parametrize("var", FLAGS)
def test_a_flag_that_is_neither_is_refused_by_name(var: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({var: "Maybe"})
    assert str(raised.value) == f"{var}: must be true or false, got 'maybe'"


@pytest.mark.parametrize("var", [ENV_KOCHAVA_APP_IDS_BY_BUNDLE, ENV_EVENT_NAME_MAP])
@pytest.mark.parametrize("raw", ['["com.example.game"]', '{"com.example.game": 1}', '{"a": "b", "c": null}'])
def test_a_json_setting_that_is_not_an_object_of_strings_is_refused_by_name(var: str, raw: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({var: raw})
    assert str(raised.value) == (f'{var}: must be a JSON object of strings, e.g. {{"com.example.app": "kochava-guid"}}')


@pytest.mark.parametrize("var", [ENV_KOCHAVA_APP_IDS_BY_BUNDLE, ENV_EVENT_NAME_MAP])
def test_a_json_setting_that_is_not_json_is_refused_by_name(var: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{var}: not valid JSON \(Expecting"):
        Settings.from_env({var: "{com.example.game: ko}"})


def test_a_malformed_source_apps_names_source_apps() -> None:
    with pytest.raises(ConfigError, match=r"^SOURCE_APPS: key 'k': must be a list"):
        Settings.from_env({ENV_SOURCE_APPS: '{"k": "com.example.game"}'})
