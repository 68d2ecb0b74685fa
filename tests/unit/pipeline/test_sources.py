"""Sources bound to apps: SOURCE_APPS parsing (clear errors) and the pure app_not_allowed rule."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from functions.names import ENV_SOURCE_APPS
from functions.pipeline import reasons
from functions.pipeline.events import Event, parse_event
from functions.pipeline.settings import SOURCE_APPS, Settings, SettingsError, parse_source_apps
from functions.pipeline.sources import check_event, check_source, unresolved_bindings

APPS = {"key-game": frozenset({"com.example.game", "ko-game-android"}), "key-tools": frozenset({"ko-tools-ios"})}
BY_BUNDLE = {"com.example.game": "ko-game-ios", "com.example.tools": "ko-tools-ios"}
SETTINGS = Settings(
    kochava_app_id_ios="ko-default-ios",
    kochava_app_id_android="ko-default-android",
    kochava_app_ids_by_bundle=BY_BUNDLE,
    source_apps=APPS,
)


def event(platform: str = "ios", bundle_id: str | None = "com.example.game") -> Event:
    raw: dict[str, Any] = {
        "uuid": "u-1",
        "type": "track",
        "event": "x",
        "timestamp": 1_795_176_000,
        "device": {"platform": platform, "id": "V"},
    }
    if bundle_id is not None:
        raw["app"] = {"bundle_id": bundle_id}
    item = parse_event(raw)
    assert isinstance(item, Event)
    return item


def test_the_variable_name_is_the_shared_one() -> None:
    assert SOURCE_APPS == ENV_SOURCE_APPS


def test_source_apps_are_read_from_the_environment() -> None:
    env = {ENV_SOURCE_APPS: json.dumps({" key-a ": [" com.example.game ", "ko-guid"], "key-b": ["ko-b"]})}
    assert Settings.from_env(env).source_apps == {
        "key-a": frozenset({"com.example.game", "ko-guid"}),
        "key-b": frozenset({"ko-b"}),
    }
    assert Settings.from_env({}).source_apps == {}
    assert Settings.from_env({ENV_SOURCE_APPS: "  "}).source_apps == {}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{key: [1]}", "SOURCE_APPS: not valid JSON"),
        ('["com.example.game"]', "SOURCE_APPS: must be a JSON object"),
        ('{"key-a": "com.example.game"}', "SOURCE_APPS: key 'key-a': must be a list of bundle ids or Kochava app"),
        ('{"key-a": ["ok", 3]}', "SOURCE_APPS: key 'key-a': must be a list"),
        ('{"key-a": ["ok", " "]}', "SOURCE_APPS: key 'key-a': must be a list"),
        ('{"key-a": []}', "SOURCE_APPS: key 'key-a': lists no app"),
        ('{" ": ["com.example.game"]}', "SOURCE_APPS: an API key is empty"),
    ],
)
def test_malformed_source_apps_name_the_variable_and_the_key(text: str, says: str) -> None:
    with pytest.raises(SettingsError, match="^" + says.replace("(", r"\(")):
        parse_source_apps(text)
    with pytest.raises(SettingsError, match="SOURCE_APPS"):
        Settings.from_env({ENV_SOURCE_APPS: text})


def test_a_key_without_a_binding_sends_to_any_app_only_when_keys_need_not_be_bound() -> None:
    assert check_source(APPS, None, bundle_id="com.other", app_id="ko-other") is None
    assert check_source(APPS, "", bundle_id="com.other", app_id="ko-other") is None
    assert check_source({}, "key-game", bundle_id="com.other", app_id=None) is None  # no binding at all
    assert check_source(APPS, "key-unbound", bundle_id="com.other", app_id="ko-other", require_bound=False) is None
    denied = check_source(APPS, "key-unbound", bundle_id="com.other", app_id="ko-other")  # the default
    assert denied is not None and denied.reason == reasons.APP_NOT_ALLOWED
    assert "key-unbound is bound to no app" in denied.message and "requireBoundKeys" in denied.message


@pytest.mark.parametrize(
    ("key", "bundle_id", "app_id"),
    [
        ("key-game", "com.example.game", "ko-game-ios"),  # its bundle, whose GUID is the one it goes to
        ("key-game", None, "ko-game-android"),  # the GUID it goes to, listed as such
        ("key-tools", "com.example.tools", "ko-tools-ios"),
        ("key-tools", "com.other", "ko-tools-ios"),  # whatever the bundle claims: the GUID decides
    ],
)
def test_a_bound_key_sends_to_the_guids_of_its_apps(key: str, bundle_id: str | None, app_id: str) -> None:
    assert check_source(APPS, key, bundle_id=bundle_id, app_id=app_id, app_ids_by_bundle=BY_BUNDLE) is None


@pytest.mark.parametrize(
    ("key", "bundle_id", "app_id", "route", "field"),
    [
        ("key-game", "com.example.tools", "ko-tools-ios", "native", "app.bundle_id"),
        ("key-tools", "com.example.game", "ko-game-ios", "segment", "context.app.namespace"),
        ("key-game", None, None, "native", "app.bundle_id"),  # no app at all: the key cannot prove it is its own
        ("key-game", "com.example.game", "ko-default-android", "native", "app.bundle_id"),  # its bundle, not its app
    ],
)
def test_a_bound_key_may_not_send_to_other_apps(
    key: str, bundle_id: str | None, app_id: str | None, route: str, field: str
) -> None:
    denied = check_source(APPS, key, bundle_id=bundle_id, app_id=app_id, route=route, app_ids_by_bundle=BY_BUNDLE)
    assert denied is not None
    assert (denied.reason, denied.field) == (reasons.APP_NOT_ALLOWED, field)
    assert denied.message.startswith(f"{field}: API key {key} may send only to ")
    for app in sorted(APPS[key]):
        assert app in denied.message
    assert "SOURCE_APPS" in denied.message


def test_the_event_rule_uses_the_guid_the_event_would_be_sent_to() -> None:
    # key-game lists com.example.game (-> ko-game-ios) and the Android GUID ko-game-android.
    assert check_event(SETTINGS, "key-game", event("ios", "com.example.game")) is None
    assert check_event(SETTINGS, "key-game", event("android", None)) is not None  # ko-default-android
    assert check_event(SETTINGS, "key-tools", event("ios", "com.example.tools")) is None  # via its GUID
    assert check_event(SETTINGS, "key-tools", event("ios", "com.example.game")) is not None
    assert check_event(SETTINGS, "key-unbound", event("ios", "com.example.game")) is not None  # every key bound
    assert check_event(replace(SETTINGS, require_bound_keys=False), "key-unbound", event("ios", "x")) is None
    assert check_event(SETTINGS, None, event("android", "com.whatever")) is None


def test_the_event_rule_takes_the_platform_guid_of_the_event_s_platform() -> None:
    # Given keys bound to one platform's default GUID only, and events without a bundle id
    settings = Settings(
        kochava_app_id_ios="ko-default-ios",
        kochava_app_id_android="ko-default-android",
        source_apps={"key-ios": frozenset({"ko-default-ios"}), "key-android": frozenset({"ko-default-android"})},
    )
    # Then each key may send its platform's events, and only those
    assert check_event(settings, "key-ios", event("ios", None)) is None
    assert check_event(settings, "key-android", event("android", None)) is None
    assert check_event(settings, "key-ios", event("android", None)) is not None
    denied = check_event(settings, "key-android", event("ios", None), route="segment")
    assert denied is not None and denied.field == "context.app.namespace"
    assert "Kochava app 'ko-default-ios'" in denied.message


def test_a_bundle_bound_key_does_not_reach_another_platforms_app() -> None:
    """Issue 22, HIGH: the README's binding {"ios-backend": ["com.example.ios"]} with per-platform GUIDs; an event
    naming com.example.ios from an Android device would go to the Android app. It used to be allowed (the bundle
    id matched); it is refused now, on both routes."""
    settings = Settings(
        kochava_app_id_ios="ko-ios",
        kochava_app_id_android="ko-android",
        source_apps={"ios-backend": frozenset({"com.example.ios"})},
    )
    for route in ("native", "segment"):
        denied = check_event(settings, "ios-backend", event("android", "com.example.ios"), route)
        assert denied is not None and "Kochava app 'ko-android'" in denied.message
    # Not even to the iOS app: the bundle maps to no GUID (synth and tools.local refuse such a binding).
    assert check_event(settings, "ios-backend", event("ios", "com.example.ios")) is not None


def test_unresolved_bindings_name_the_key_and_the_app() -> None:
    problems = unresolved_bindings(
        {"k": ["com.example.game", "com.nowhere", "ko-default-ios"]},
        app_ids_by_bundle=BY_BUNDLE,
        platform_app_ids=["ko-default-ios", "ko-default-android"],
        label="--source-apps",
        bundles_label="KOCHAVA_APP_IDS_BY_BUNDLE",
    )
    assert len(problems) == 1
    assert problems[0].startswith("--source-apps: key 'k': 'com.nowhere' is neither a bundle id of ")


def test_a_long_list_of_apps_is_cut_in_the_message() -> None:
    many = {"k": frozenset(f"com.example.app{n:02d}" for n in range(20))}
    denied = check_source(many, "k", bundle_id="com.other", app_id=None)
    assert denied is not None and denied.message.count("com.example.app") == 5 and ", ..." in denied.message


def test_an_unresolved_binding_names_the_configured_guids_or_says_there_are_none() -> None:
    # The error says which GUIDs a key could be bound to, so the operator can fix the binding without a lookup.
    kwargs = {"label": "sourceApps", "bundles_label": "kochavaAppIdsByBundle"}
    [some] = unresolved_bindings(
        {"k": ["com.nowhere"]}, app_ids_by_bundle={"com.a": "ko-b"}, platform_app_ids=["ko-a", ""], **kwargs
    )
    assert "nor a configured Kochava app GUID (ko-a, ko-b). " in some
    [none] = unresolved_bindings({"k": ["com.nowhere"]}, app_ids_by_bundle={}, platform_app_ids=[""], **kwargs)
    assert "nor a configured Kochava app GUID (none configured). " in none


def test_the_refusal_texts_name_the_field_the_key_and_what_the_event_had() -> None:
    # An unbound key while others are bound: refused on the native route's field by default, saying how to fix it.
    unbound = check_source(APPS, "key-new", bundle_id=None, app_id=None)
    assert unbound is not None and unbound.field == "app.bundle_id"
    assert unbound.message.endswith("(REQUIRE_BOUND_KEYS, the context key requireBoundKeys): bind it in sourceApps")
    # A bound key and an event with neither a bundle id nor a GUID: the text says so.
    denied = check_source(APPS, "key-tools", bundle_id=None, app_id=None)
    assert denied is not None and denied.message.endswith("this event has no bundle id, so no Kochava app")
    # Exactly five apps are all listed, without the ", ..." of a cut list.
    five = {"k": frozenset(f"ko-{n}" for n in range(5))}
    listed = check_source(five, "k", bundle_id="com.x", app_id="ko-other")
    assert listed is not None
    assert "may send only to ko-0, ko-1, ko-2, ko-3, ko-4 (SOURCE_APPS" in listed.message
    assert "this event has bundle 'com.x', so Kochava app 'ko-other'" in listed.message
