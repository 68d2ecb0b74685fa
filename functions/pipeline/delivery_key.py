"""When two delivery envelopes are the same event: the deliverer's idempotency key and content check (spec 7).

The key is the event ``uuid`` + ``kind`` + ``app`` (the payload's ``kochava_app_id``): two apps whose uuids collide
are two events. Under one key, the *content* is compared (Powertools' ``payload_validation_jmespath`` on
:data:`CONTENT_JMESPATH`): the same content is a true duplicate (skipped, counted); a different one is a reused
uuid, dead-lettered ``uuid_conflict`` instead of silently lost.

The content is the event's **device** (:func:`device_of`) and the payload's ``data`` without what the enricher may
fill differently when it processes the same event twice (its message redelivered, or replayed from a DLQ): device
ids, IP, user agent, ``device_ver``, app version, limit tracking and ATT (device profile), and the AdServices token
and attribution (Apple's answer, the 24-hour window). What is left is what the event itself says: for an event its
name, ``event_data`` and ``usertime``; for an install its ``usertime``, consent, iAd details and referrer; for an
IdentityLink the user id and traits. Two known limits: a ``user_id`` filled from the device profile, or a
``usertime`` clamped to the clock, can differ between two processings of one event if the profile changed (another
message) or the timestamp was implausible; such a duplicate is then dead-lettered ``uuid_conflict`` (visible, never
lost).

The device is part of the content (issue 22): one uuid sent for two devices with the same event data is a reused
uuid, so the second device's event is dead-lettered ``uuid_conflict``, never acknowledged as a duplicate and
dropped. The device is the id the event itself carries and the enricher never fills: ``device.id`` (``idfv`` /
``android_id``), else the payload's ``kochava_device_id`` (the event's own when it has no ``device.id``), compared
case-insensitively. Records written before this (content without the device) answer a redelivered or replayed copy
of an event they delivered with ``uuid_conflict`` instead of ``duplicate`` for as long as they live (15 days):
visible in the delivery DLQ, never posted twice; ``tools.trace`` shows the event delivered.

Example:
    >>> from functions.pipeline.envelope import Envelope
    >>> payload = {"kochava_app_id": "ko-guid", "data": {"device_ids": {"idfv": "V"}, "origination_ip": "192.0.2.1",
    ...     "usertime": 1700000000, "event_name": "Purchase", "event_data": {"sum": 1}}}
    >>> key = delivery_key(Envelope("u-1", "event", "Purchase", payload, None))
    >>> key["uuid"], key["kind"], key["app"]
    ('u-1', 'event', 'ko-guid')
    >>> key["content"]
    {'device': 'v', 'usertime': 1700000000, 'event_name': 'Purchase', 'event_data': {'sum': 1}}
"""

from __future__ import annotations

from typing import Any, Final

from functions.pipeline.envelope import Envelope

# JMESPath of the key and of the content within delivery_key()'s dict (Powertools hashes each, md5 of sorted JSON).
# The key is a dict, so tools.trace can hash {"uuid", "kind", "app"} itself to look a record up.
KEY_JMESPATH: Final = "{uuid: uuid, kind: kind, app: app}"
CONTENT_JMESPATH: Final = "content"

# Payload data fields the enricher derives from a device profile or from Apple, not from the event alone.
ENRICHED_FIELDS: Final = frozenset(
    {
        "device_ids",
        "origination_ip",
        "device_ua",
        "device_ver",
        "app_version",
        "device_limit_tracking",
        "app_tracking_transparency",
        "ad_services_token",
        "adservices_attribution_details",
    }
)


# The ids (in payload device-id objects) the enricher takes from the event's own device.id, never from a profile.
_OWN_DEVICE_IDS: Final = ("idfv", "android_id")


def device_of(payload: Any) -> str | None:
    """The device an enveloped payload is about, case-folded: its ``device.id`` (``idfv`` / ``android_id`` of
    ``data.device_ids``, or of an IdentityLink's ``device_id``), else its ``kochava_device_id``; None when neither.

    >>> device_of({"kochava_device_id": "K", "data": {"device_ids": {"idfa": "A", "idfv": "V-1"}}})
    'v-1'
    >>> device_of({"device_id": {"adid": "a"}, "data": {"user_id": "u"}})  # IdentityLink without a device id
    >>> device_of({"kochava_device_id": "K-2", "data": {"device_ids": {"adid": "a"}}})
    'k-2'
    """
    if not isinstance(payload, dict):
        return None
    data = payload.get("data")
    for ids in (data.get("device_ids") if isinstance(data, dict) else None, payload.get("device_id")):
        if isinstance(ids, dict):
            for name in _OWN_DEVICE_IDS:
                value = ids.get(name)
                if isinstance(value, str) and value:
                    return value.casefold()
    kochava_device_id = payload.get("kochava_device_id")
    return kochava_device_id.casefold() if isinstance(kochava_device_id, str) and kochava_device_id else None


def delivery_key(env: Envelope) -> dict[str, Any]:
    """``{"uuid", "kind", "app", "content"}`` of an envelope (from its payload as enveloped, before the send-time
    AdServices check); the content holds the device (:func:`device_of`)."""
    payload = env.payload
    app = payload.get("kochava_app_id")
    data = payload.get("data")
    content: Any = {k: v for k, v in data.items() if k not in ENRICHED_FIELDS} if isinstance(data, dict) else data
    if isinstance(content, dict):
        content = {"device": device_of(payload), **content}
    else:
        content = {"device": device_of(payload), "data": content}
    return {"uuid": env.uuid, "kind": env.kind, "app": app if isinstance(app, str) else None, "content": content}
