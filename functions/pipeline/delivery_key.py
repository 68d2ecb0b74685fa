"""When two delivery envelopes are the same event: the deliverer's idempotency key and content check (spec 7).

The key is the event ``uuid`` + ``kind`` + ``app`` (the payload's ``kochava_app_id``): two apps whose uuids collide
are two events. Under one key, the *content* is compared (Powertools' ``payload_validation_jmespath`` on
:data:`CONTENT_JMESPATH`): the same content is a true duplicate (skipped, counted); a different one is a reused
uuid, dead-lettered ``uuid_conflict`` instead of silently lost.

The content is the payload's ``data`` without what the enricher may fill differently when it processes the same
event twice (its message redelivered, or replayed from a DLQ): device ids, IP, user agent, ``device_ver``, app
version, limit tracking and ATT (device profile), and the AdServices token and attribution (Apple's answer, the
24-hour window). What is left is what the event itself says: for an event its name, ``event_data`` and
``usertime``; for an install its ``usertime``, consent, iAd details and referrer; for an IdentityLink the user id and
traits. Two known limits: a ``user_id`` filled from the device profile, or a ``usertime`` clamped to the clock,
can differ between two processings of one event if the profile changed (another message) or the timestamp was
implausible; such a duplicate is then dead-lettered ``uuid_conflict`` (visible, never lost).

Example:
    >>> from functions.pipeline.envelope import Envelope
    >>> payload = {"kochava_app_id": "ko-guid", "data": {"device_ids": {"idfv": "V"}, "origination_ip": "192.0.2.1",
    ...     "usertime": 1700000000, "event_name": "Purchase", "event_data": {"sum": 1}}}
    >>> key = delivery_key(Envelope("u-1", "event", "Purchase", payload, None))
    >>> key["uuid"], key["kind"], key["app"]
    ('u-1', 'event', 'ko-guid')
    >>> key["content"]
    {'usertime': 1700000000, 'event_name': 'Purchase', 'event_data': {'sum': 1}}
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


def delivery_key(env: Envelope) -> dict[str, Any]:
    """``{"uuid", "kind", "app", "content"}`` of an envelope (from its payload as enveloped, before the send-time
    AdServices check)."""
    payload = env.payload
    app = payload.get("kochava_app_id")
    data = payload.get("data")
    content = {k: v for k, v in data.items() if k not in ENRICHED_FIELDS} if isinstance(data, dict) else data
    return {"uuid": env.uuid, "kind": env.kind, "app": app if isinstance(app, str) else None, "content": content}
