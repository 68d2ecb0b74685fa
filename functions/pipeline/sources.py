"""Sources bound to apps: may an event that came in with an API key go to its Kochava app? (pure)

``SOURCE_APPS`` (``Settings.source_apps``) binds API keys, by their id (API Gateway's
``$context.identity.apiKeyId``, carried by the ingest message as the ``api_key_id`` attribute), to the apps they
may send to: bundle ids and / or Kochava app GUIDs. The rule, checked by the enricher before anything else is done
with a valid event (no device profile is read or written for an event its key may not send):

* no key id on the message (IAM auth, or a message written before the binding existed), or a key that is not
  bound: allowed, as before bindings existed;
* a bound key: allowed when the event's bundle id (``app.bundle_id``; Segment: ``context.app.namespace``) or the
  Kochava app GUID it would be sent to (per bundle, else per platform) is among the key's apps;
* otherwise the event is dead-lettered with ``reason=app_not_allowed`` and never sent.

Example:
    >>> apps = {"key-a": frozenset({"com.example.game"})}
    >>> check_source(apps, "key-a", bundle_id="com.example.game", app_id="ko-guid") is None
    True
    >>> check_source(apps, "key-b", bundle_id="com.other", app_id="ko-other") is None  # not bound
    True
    >>> check_source(apps, "key-a", bundle_id="com.other", app_id="ko-other").field
    'app.bundle_id'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from functions.pipeline import reasons

if TYPE_CHECKING:
    from functions.pipeline.contract import NativeEvent
    from functions.pipeline.settings import Settings

# Where the app of an event is named, per route (the field a DLQ message points at).
APP_FIELD: Final[Mapping[str, str]] = {"native": "app.bundle_id", "segment": "context.app.namespace"}
_MAX_LISTED = 5  # allowed apps quoted in the error text


@dataclass(frozen=True, slots=True)
class NotAllowed:
    """Why an event may not be sent with its key: the DLQ message's ``reason``, ``field`` and ``error``."""

    field: str
    message: str
    reason: str = reasons.APP_NOT_ALLOWED


def check_source(
    source_apps: Mapping[str, frozenset[str]],
    api_key_id: str | None,
    *,
    bundle_id: str | None,
    app_id: str | None,
    route: str = "native",
) -> NotAllowed | None:
    """None when the key may send this event (see the module docstring), else why not."""
    if not api_key_id:
        return None
    allowed = source_apps.get(api_key_id)
    if allowed is None or (bundle_id and bundle_id in allowed) or (app_id and app_id in allowed):
        return None
    field = APP_FIELD.get(route, APP_FIELD["native"])
    listed = ", ".join(sorted(allowed)[:_MAX_LISTED]) + (", ..." if len(allowed) > _MAX_LISTED else "")
    app = f"bundle {bundle_id!r}" if bundle_id else "no bundle id"
    target = f"Kochava app {app_id!r}" if app_id else "no Kochava app"
    return NotAllowed(
        field,
        f"{field}: API key {api_key_id} may send only to {listed} (SOURCE_APPS); this event has {app}, {target}",
    )


def check_event(
    settings: Settings, api_key_id: str | None, event: NativeEvent, route: str = "native"
) -> NotAllowed | None:
    """:func:`check_source` for a parsed event, with the settings' bindings and app GUIDs."""
    if not api_key_id or api_key_id not in settings.source_apps:
        return None
    bundle_id = event.app.bundle_id if event.app else None
    app_id = settings.app_id_for(event.device.platform, bundle_id)
    return check_source(settings.source_apps, api_key_id, bundle_id=bundle_id, app_id=app_id, route=route)
