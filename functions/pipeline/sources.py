"""Sources bound to apps: may an event that came in with an API key go to its Kochava app? (pure)

``SOURCE_APPS`` (``Settings.source_apps``) binds API keys, by their id (API Gateway's
``$context.identity.apiKeyId``, carried by the ingest message as the ``api_key_id`` attribute), to the apps they
may send to, each named by a bundle id or a Kochava app GUID. The decision is made on the **Kochava app GUID the
event would be sent to** (``Settings.app_id_for``: per bundle id, else per platform), never on the bundle id the
event claims: a bound bundle id stands for its GUID in ``KOCHAVA_APP_IDS_BY_BUNDLE`` (:func:`reachable_apps`), so
an event that names the key's bundle but would go to another app (another platform's GUID) is refused. A bound
bundle id with no GUID there reaches nothing; the stack's synth and ``tools.local`` refuse such a binding
(:func:`unresolved_bindings`). The rule, checked by the enricher before anything else is done with a valid event
(no device profile is read or written for an event its key may not send):

* no key id on the message (IAM auth, or a message written before the binding existed): allowed;
* no binding at all (``SOURCE_APPS`` empty): every key may send to any app, as before bindings existed;
* a key that is not bound while others are: refused when ``REQUIRE_BOUND_KEYS`` is on (the default, the context
  key ``requireBoundKeys``), else allowed to send to any app;
* a bound key: allowed when the GUID the event would be sent to is one the key reaches;
* otherwise the event is dead-lettered with ``reason=app_not_allowed`` and never sent.

This module is also the one parser of the setting (:func:`parse_source_apps`): the Lambdas' ``SOURCE_APPS``, the
stack's ``sourceApps`` context key and ``tools.local --source-apps`` all read it here.

Example:
    >>> apps = {"key-a": frozenset({"com.example.game"})}
    >>> by_bundle = {"com.example.game": "ko-game"}
    >>> check_source(apps, "key-a", bundle_id="com.example.game", app_id="ko-game", app_ids_by_bundle=by_bundle)
    >>> check_source(apps, "key-a", bundle_id="com.example.game", app_id="ko-android",
    ...              app_ids_by_bundle=by_bundle).field  # the key's bundle, but another app's GUID
    'app.bundle_id'
    >>> check_source(apps, "key-b", bundle_id="com.other", app_id="ko-other", require_bound=False) is None
    True
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from functions.pipeline import reasons

if TYPE_CHECKING:
    from functions.pipeline.contract import NativeEvent


class Bindings(Protocol):
    """What :func:`check_event` reads of the settings (:class:`functions.pipeline.settings.Settings` is one; this
    module imports nothing of settings.py, which parses ``SOURCE_APPS`` with :func:`parse_source_apps`)."""

    @property
    def source_apps(self) -> Mapping[str, frozenset[str]]: ...
    @property
    def require_bound_keys(self) -> bool: ...
    @property
    def kochava_app_ids_by_bundle(self) -> Mapping[str, str]: ...
    def app_id_for(self, platform: str, bundle_id: str | None) -> str | None: ...


# Where the app of an event is named, per route (the field a DLQ message points at).
APP_FIELD: Final[Mapping[str, str]] = {"native": "app.bundle_id", "segment": "context.app.namespace"}
_MAX_LISTED = 5  # allowed apps quoted in the error text
SHAPE: Final = '{"<api key>": ["<bundle id or Kochava app GUID>", ...]}'


class SourceAppsError(ValueError):
    """The setting is malformed or a binding resolves to no app; the message names the setting."""


def parse_source_apps(value: Any, label: str = "SOURCE_APPS") -> dict[str, tuple[str, ...]]:
    """The setting (a JSON object, or its text) -> API key -> the apps it names, stripped, in order.

    ``label`` names the setting in errors (``SOURCE_APPS``, ``context 'sourceApps'``, ``--source-apps``).

    >>> parse_source_apps('{"k1abc": ["com.example.game", " kogame-ios-guid "]}')
    {'k1abc': ('com.example.game', 'kogame-ios-guid')}
    >>> parse_source_apps(None), parse_source_apps("  ")
    ({}, {})
    >>> parse_source_apps('{"k1abc": "com.example.game"}')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    functions.pipeline.sources.SourceAppsError: SOURCE_APPS: key 'k1abc': must be a list of bundle ids or Kochava...
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise SourceAppsError(f"{label}: not valid JSON ({exc}); expected {SHAPE}") from None
    if not isinstance(value, dict):
        raise SourceAppsError(f"{label}: must be a JSON object {SHAPE}")
    out: dict[str, tuple[str, ...]] = {}
    for key, apps in value.items():
        if not isinstance(key, str) or not key.strip():
            raise SourceAppsError(f"{label}: an API key is empty")
        if not isinstance(apps, list) or not all(isinstance(app, str) and app.strip() for app in apps):
            raise SourceAppsError(
                f"{label}: key {key!r}: must be a list of bundle ids or Kochava app GUIDs (non-empty strings)"
            )
        if not apps:
            raise SourceAppsError(
                f"{label}: key {key!r}: lists no app (remove the key to unbind it, or disable the key)"
            )
        out[key.strip()] = tuple(dict.fromkeys(app.strip() for app in apps))
    return out


def reachable_apps(entries: Iterable[str], app_ids_by_bundle: Mapping[str, str]) -> frozenset[str]:
    """The Kochava app GUIDs a key's entries reach: a bundle id its GUID, anything else taken as a GUID.

    >>> sorted(reachable_apps(["com.a", "ko-b"], {"com.a": "ko-a"}))
    ['ko-a', 'ko-b']
    """
    return frozenset(app_ids_by_bundle.get(entry, entry) for entry in entries)


def unresolved_bindings(
    source_apps: Mapping[str, Iterable[str]],
    *,
    app_ids_by_bundle: Mapping[str, str],
    platform_app_ids: Iterable[str],
    label: str,
    bundles_label: str,
) -> list[str]:
    """One message per bound entry that names no configured app: neither a bundle id with a GUID in
    ``app_ids_by_bundle`` nor a configured GUID (per platform or per bundle). Empty: every binding resolves.

    >>> unresolved_bindings({"k": ["com.x", "ko-ios"]}, app_ids_by_bundle={}, platform_app_ids=["ko-ios"],
    ...     label="sourceApps", bundles_label="kochavaAppIdsByBundle")  # doctest: +ELLIPSIS
    ["sourceApps: key 'k': 'com.x' is neither a bundle id of kochavaAppIdsByBundle nor a configured Kochava...]
    """
    guids = {g for g in platform_app_ids if g} | set(app_ids_by_bundle.values())
    known = ", ".join(sorted(guids)) or "none configured"
    problems = []
    for key, entries in source_apps.items():
        for entry in entries:
            if entry not in app_ids_by_bundle and entry not in guids:
                problems.append(
                    f"{label}: key {key!r}: {entry!r} is neither a bundle id of {bundles_label} nor a configured "
                    f"Kochava app GUID ({known}). A key may send only to the GUID an event would be sent to: "
                    f"map the bundle to its GUID in {bundles_label}, or bind the key to the GUID itself"
                )
    return problems


@dataclass(frozen=True, slots=True)
class NotAllowed:
    """Why an event may not be sent with its key: the DLQ message's ``reason``, ``field`` and ``error``."""

    field: str
    message: str
    reason: str = reasons.APP_NOT_ALLOWED


def applies(source_apps: Mapping[str, Iterable[str]], api_key_id: str | None, *, require_bound: bool) -> bool:
    """Whether events of this key are checked at all (False: any app, as before bindings existed)."""
    if not api_key_id or not source_apps:
        return False
    return require_bound or api_key_id in source_apps


def check_source(
    source_apps: Mapping[str, Iterable[str]],
    api_key_id: str | None,
    *,
    bundle_id: str | None,
    app_id: str | None,
    route: str = "native",
    app_ids_by_bundle: Mapping[str, str] | None = None,
    require_bound: bool = True,
) -> NotAllowed | None:
    """None when the key may send an event that would go to Kochava app ``app_id`` (module docstring), else why
    not. ``bundle_id`` only words the error."""
    if not applies(source_apps, api_key_id, require_bound=require_bound):
        return None
    field = APP_FIELD.get(route, APP_FIELD["native"])
    entries = source_apps.get(str(api_key_id))
    if entries is None:
        return NotAllowed(
            field,
            f"{field}: API key {api_key_id} is bound to no app while other keys are, and every key must be "
            "(REQUIRE_BOUND_KEYS, the context key requireBoundKeys): bind it in sourceApps",
        )
    allowed = reachable_apps(entries, app_ids_by_bundle or {})
    if app_id and app_id in allowed:
        return None
    names = sorted(set(entries))
    listed = ", ".join(names[:_MAX_LISTED]) + (", ..." if len(names) > _MAX_LISTED else "")
    app = f"bundle {bundle_id!r}" if bundle_id else "no bundle id"
    target = f"Kochava app {app_id!r}" if app_id else "no Kochava app"
    return NotAllowed(
        field,
        f"{field}: API key {api_key_id} may send only to {listed} (SOURCE_APPS, by the Kochava app GUID an event "
        f"goes to); this event has {app}, so {target}",
    )


def check_event(
    settings: Bindings, api_key_id: str | None, event: NativeEvent | dict[str, Any], route: str = "native"
) -> NotAllowed | None:
    """:func:`check_source` for a parsed event (the model or its values, ``events.EventValues``), with the
    settings' bindings and app GUIDs."""
    if not applies(settings.source_apps, api_key_id, require_bound=settings.require_bound_keys):
        return None
    if isinstance(event, dict):
        app, platform = event["app"], event["device"]["platform"]
        bundle_id = app["bundle_id"] if app else None
    else:
        platform, bundle_id = event.device.platform, (event.app.bundle_id if event.app else None)
    return check_source(
        settings.source_apps,
        api_key_id,
        bundle_id=bundle_id,
        app_id=settings.app_id_for(platform, bundle_id),
        route=route,
        app_ids_by_bundle=settings.kochava_app_ids_by_bundle,
        require_bound=settings.require_bound_keys,
    )
