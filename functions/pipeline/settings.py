"""Typed settings shared by the Lambdas and the tools, built from environment variables.

The pipeline never reads ``os.environ`` itself: handlers and tools call :meth:`Settings.from_env` with the
environment and pass the result in. Variable names are the ``ENV_*`` constants of :mod:`functions.names`.

Example:
    >>> s = Settings.from_env({"KOCHAVA_APP_ID_IOS": "koios-guid", "FILTERED_EVENTS": "heartbeat, ping"})
    >>> s.app_id_for("ios", bundle_id=None), s.app_id_for("android", bundle_id=None)
    ('koios-guid', None)
    >>> sorted(s.filtered_events)
    ['heartbeat', 'ping']
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
from functions.pipeline import sources

DEFAULT_KOCHAVA_URL = "https://control.kochava.com/track/json"
DEFAULT_KOCHAVA_IDENTITYLINK_URL = "https://control.kochava.com/v1/cpi/identityLink.php"
DEFAULT_ADSERVICES_URL = "https://api-adservices.apple.com/api/v1/"
DEFAULT_FILTERED_EVENTS = frozenset({"heartbeat"})


SettingsError = ConfigError
"""The one configuration error (:class:`functions.envconfig.ConfigError`), by the name this module gave it first."""


@dataclass(frozen=True)
class Settings:
    """What the mapping and the adapters need to know about the deployment.

    A plain frozen dataclass, not a pydantic model: :meth:`from_env` checks every value itself, and the deliverer,
    which needs no other pydantic model, saves pydantic's import on its cold start.
    """

    kochava_app_id_ios: str | None = None
    kochava_app_id_android: str | None = None
    # {"com.example.app": "<guid>"}: wins over the per-platform GUID for that bundle id.
    kochava_app_ids_by_bundle: dict[str, str] = field(default_factory=dict)
    kochava_url: str = DEFAULT_KOCHAVA_URL
    kochava_identitylink_url: str = DEFAULT_KOCHAVA_IDENTITYLINK_URL
    # Lower-cased event names dropped on purpose (and counted), e.g. the seed-003 heartbeat.
    filtered_events: frozenset[str] = DEFAULT_FILTERED_EVENTS
    # Lower-cased input name -> Kochava event name; extends and overrides the standard names.
    event_name_map: dict[str, str] = field(default_factory=dict)
    adservices_url: str = DEFAULT_ADSERVICES_URL
    adservices_resolve: bool = True
    # API key id -> the bundle ids and Kochava app GUIDs it may send to (SOURCE_APPS), decided on the GUID an event
    # goes to (functions/pipeline/sources.py).
    source_apps: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Once any key is bound: a key that is not may send nothing (True) or to any app (False). REQUIRE_BOUND_KEYS.
    require_bound_keys: bool = True

    def app_id_for(self, platform: str, bundle_id: str | None) -> str | None:
        """The Kochava app GUID for an event: per bundle id first, else per platform, else None."""
        if bundle_id and bundle_id in self.kochava_app_ids_by_bundle:
            return self.kochava_app_ids_by_bundle[bundle_id]
        return self.kochava_app_id_ios if platform == "ios" else self.kochava_app_id_android

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build from environment variables; raise :class:`SettingsError` naming the bad variable."""
        values: dict[str, Any] = {}
        plain = {
            ENV_KOCHAVA_APP_ID_IOS: "kochava_app_id_ios",
            ENV_KOCHAVA_APP_ID_ANDROID: "kochava_app_id_android",
            ENV_KOCHAVA_URL: "kochava_url",
            ENV_KOCHAVA_IDENTITYLINK_URL: "kochava_identitylink_url",
            ENV_ADSERVICES_URL: "adservices_url",
        }
        for var, attribute in plain.items():
            value = env.get(var, "").strip()
            if value:
                values[attribute] = value
        bundles = _json_object(env, ENV_KOCHAVA_APP_IDS_BY_BUNDLE)
        if bundles is not None:
            values["kochava_app_ids_by_bundle"] = bundles
        names = _json_object(env, ENV_EVENT_NAME_MAP)
        if names is not None:
            values["event_name_map"] = {key.strip().lower(): name for key, name in names.items()}
        if ENV_FILTERED_EVENTS in env:
            values["filtered_events"] = frozenset(
                name.strip().lower() for name in env[ENV_FILTERED_EVENTS].split(",") if name.strip()
            )
        values["adservices_resolve"] = _flag(env, ENV_ADSERVICES_RESOLVE, default=True)
        if env.get(ENV_SOURCE_APPS, "").strip():
            values["source_apps"] = parse_source_apps(env[ENV_SOURCE_APPS])
        values["require_bound_keys"] = _flag(env, ENV_REQUIRE_BOUND_KEYS, default=True)
        return cls(**values)


SOURCE_APPS = ENV_SOURCE_APPS  # kept for callers of the old name


def parse_source_apps(text: str) -> dict[str, frozenset[str]]:
    """``SOURCE_APPS`` (JSON) -> API key id -> the apps it names (:func:`functions.pipeline.sources.parse_source_apps`,
    the one parser of the setting); :class:`SettingsError` names what is wrong.

    >>> parse_source_apps('{"k1abc": ["com.example.game", "kogame-ios-guid"]}') == {
    ...     "k1abc": frozenset({"com.example.game", "kogame-ios-guid"})}
    True
    """
    try:
        parsed = sources.parse_source_apps(text, ENV_SOURCE_APPS)
    except sources.SourceAppsError as exc:
        raise SettingsError(str(exc)) from None
    return {key: frozenset(apps) for key, apps in parsed.items()}


def _flag(env: Mapping[str, str], var: str, *, default: bool) -> bool:
    flag = env.get(var, "").strip().lower()
    if not flag:
        return default
    if flag not in {"true", "false", "1", "0", "yes", "no", "on", "off"}:
        raise SettingsError(f"{var}: must be true or false, got {flag!r}")
    return flag in {"true", "1", "yes", "on"}


def _json_object(env: Mapping[str, str], var: str) -> dict[str, str] | None:
    raw = env.get(var, "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise SettingsError(f"{var}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise SettingsError(f'{var}: must be a JSON object of strings, e.g. {{"com.example.app": "kochava-guid"}}')
    return value
