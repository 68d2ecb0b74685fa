"""Internal event -> Kochava ``install`` / ``event`` / ``identityLink`` payload (spec section 3), as pure functions.

:func:`to_kochava` is the hot path: it reads the validated event as plain data (``events.EventValues``: the values
of a ``NativeEvent`` and its parts, what ``events.parse_body_values`` gives; a model is read through
``contract.values_of``) and builds plain dicts.
It never raises for a valid event: a problem becomes an :class:`Outcome` with ``status="rejected"`` and a
machine-readable ``reason``; a deliberately dropped event (``heartbeat``) becomes ``status="filtered"``.

Example:
    >>> from functions.pipeline.settings import Settings
    >>> from functions.pipeline.events import parse_event
    >>> event = parse_event({"uuid": "u1", "type": "track", "event": "Order Completed",
    ...     "timestamp": 1700000000, "properties": {"revenue": "9.99", "currency": "USD", "cart": {"items": 2}},
    ...     "device": {"platform": "android", "id": "a-1", "advertising_id": "ABCD-EF"}})
    >>> out = to_kochava(event, Settings(kochava_app_id_android="ko-guid"), now=1700000100.0)
    >>> out.payload["data"]["event_name"], out.payload["data"]["event_data"]
    ('Purchase', {'revenue': '9.99', 'currency': 'USD', 'cart_items': 2, 'sum': 9.99})
"""

from __future__ import annotations

import math
import re

# The C library's address parser (pure parsing, no lookup), from CPython's C module: ``socket`` costs 3 ms of
# import, and its enum constants an int conversion per call.
from _socket import AF_INET, AF_INET6, inet_pton
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import lru_cache
from typing import Any, Final, Literal
from urllib.parse import quote

import orjson

from functions.pipeline import adservices, reasons
from functions.pipeline.contract import Consent, NativeEvent, values_of
from functions.pipeline.envelope import Kind
from functions.pipeline.jsontext import compact_json
from functions.pipeline.settings import Settings

Status = Literal["ok", "rejected", "filtered"]

# Kochava's standard event names (input compared case-insensitively); other names are kept exactly as sent.
STANDARD_EVENT_NAMES: Final[Mapping[str, str]] = {
    "order completed": "Purchase",
    "purchase": "Purchase",
    "monetization_web2": "Purchase",
    "monetization_web3": "Purchase",
    "product added": "Add to Cart",
    "product added to wishlist": "Add to Wish List",
    "checkout started": "Checkout Start",
    "product reviewed": "Rating",
    "products searched": "Search",
}
PURCHASE = "Purchase"
SCREEN_VIEW = "Screen View"

# event_data keys Kochava reserves for its own attribution data: never sent under these names.
RESERVED_EVENT_DATA_KEYS: Final = frozenset(
    {
        "network",
        "source",
        "fb_campaign",
        "campaign",
        "site",
        "creative",
        "attribution_type",
        "integration_type",
        "integration_version",
        "cracked",
        "jailbroken",
    }
)
RESERVED_KEY_PREFIX = "custom_"

# Where a Purchase's ``sum`` comes from, in this order, the first that is a number winning (the caller's own ``sum``,
# the Segment ecommerce spec, seed 003 monetization); then ``products[].price x quantity`` (docs/kochava.md).
SUM_SOURCES: Final = ("sum", "revenue", "total", "value", "price", "amount", "bundle_paid_amount")
CURRENCY_SOURCES: Final = ("currency", "bundle_paid_currency")
NAME_SOURCES: Final = ("product_name", "bundle_id", "name", "product_id", "sku")

_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_UA_SAFE = "!~*'()"  # what encodeURIComponent leaves alone

# The plausible window for ``usertime`` (a device clock can be set anywhere): no app event predates the App Store
# (July 2008), and none happens more than a day after the pipeline's own clock. Outside it: ``now``, with a warning.
MIN_USERTIME_S: Final = 1_199_145_600.0  # 2008-01-01T00:00:00Z
USERTIME_MAX_AHEAD_S: Final = 86_400.0
# Segment calls that carry attribution *from* a provider into Segment (Segment's mobile spec "Install Attributed",
# sent by Kochava's own postback among others): echoing them to Kochava would report its attribution back to it as
# an app event. Filtered, counted, never sent (compared case-insensitively, after control characters are removed).
ATTRIBUTION_ECHO_EVENTS: Final = frozenset({"install attributed"})
ATTRIBUTION_ECHO_MESSAGE: Final = "attribution reported by a provider (Install Attributed) is not sent back to Kochava"
# Control characters (C0, DEL, C1) are removed from event names: Kochava shows names in its dashboard and matches
# them against its standard names; an event name of control characters only is rejected.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# att_detail sent for an iOS 14+ payload without an ATT status but with limit-ad-tracking on.
LIMIT_AD_TRACKING_ATT_DETAIL: Final = "denied"
# device_ver's model when the event names none (Kochava's own S2S example: "iPhone-iOS-14.0.0").
GENERIC_MODEL: Final[Mapping[str, str]] = {"ios": "iPhone", "android": "Android"}


@dataclass(slots=True)
class Outcome:
    """What becomes of one event: a payload to POST, a rejection with a reason, or a deliberate filter."""

    uuid: str | None
    status: Status
    kind: Kind | None = None
    payload: dict[str, Any] | None = None
    reason: str | None = None
    field: str | None = None
    message: str | None = None
    warnings: list[str] = dataclass_field(default_factory=list)
    event_name: str | None = None  # the Kochava event name (or the action for installs / identityLink)
    adservices_generated_at: float | None = None  # set when the payload carries ad_services_token
    adservices_expired: bool = False  # a token was present but past the 24 h window (counted by the enricher)

    def to_line(self) -> dict[str, Any]:
        """The ``tools.transform`` output line for this outcome."""
        line: dict[str, Any] = {
            "uuid": self.uuid,
            "status": self.status,
            "kind": self.kind,
            "payload": self.payload,
            "reason": self.reason,
            "warnings": self.warnings,
        }
        if self.status == "rejected":
            line["field"] = self.field
            line["error"] = self.message
        return line


_KIND_BY_TYPE: Final[Mapping[str, Kind]] = {"install": "install", "identify": "identityLink"}
Values = dict[str, Any]
"""A validated model's values (every field, by name; its models as their values too): what the hot path reads
(``events.EventValues``, ``contract.values_of``; see :func:`to_kochava`)."""


def event_name_for(
    event: NativeEvent | Values, settings: Settings, name_key: str | None = None, name: str | None = None
) -> str:
    """The Kochava event name: configured overrides, then the standard names, else the name as sent.
    ``name_key`` is ``(name or "").strip().lower()`` when the caller has it already (the filter check); ``name`` is
    the event's name with control characters removed (:func:`clean_event_name`), when the caller cleaned it."""
    fields = event if type(event) is dict else event.__dict__
    if fields["type"] == "screen":
        return settings.event_name_map.get("screen", SCREEN_VIEW)
    if name is None:
        name = fields["name"] or ""
    key = name.strip().lower() if name_key is None else name_key
    return settings.event_name_map.get(key) or STANDARD_EVENT_NAMES.get(key) or name


def clean_event_name(name: str, warnings: list[str]) -> str:
    """``name`` without control characters (C0, DEL, C1), with a warning when any were removed; ``""`` when
    nothing else is left (the caller rejects the event).

    >>> clean_event_name("level\\x00_up\\n", []), clean_event_name("Café 🎉", [])
    ('level_up', 'Café 🎉')
    """
    if name.isprintable():  # the C fast path: nearly every name (a ZWJ emoji is not printable: the regex decides)
        return name
    cleaned = _CONTROL.sub("", name)
    if cleaned == name:  # not printable for another reason (a no-break space, a format character): kept as sent
        return name
    warnings.append("event: control characters removed from the event name")
    return cleaned.strip()


def to_kochava(
    event: NativeEvent | Values, settings: Settings, now: float, attribution: dict[str, Any] | None = None
) -> Outcome:
    """Map one validated event (its values, :data:`Values`, or the model). ``now`` is the clock for the AdServices
    window; ``attribution`` is what Apple answered for the event's token (resolved by the enricher), if anything."""
    # The event as plain data (:data:`Values`): a pydantic model's attribute read is a slow, unspecialised one
    # (BaseModel defines __getattr__), about 5x a plain object's and 2.5x a dict item's (timeit), and building the
    # models per event cost more than the mapping saved (issue 27). A model is read through its values.
    fields: Values = event if isinstance(event, dict) else values_of(event)
    event_type = fields["type"]
    kind = _KIND_BY_TYPE.get(event_type, "event")
    device: Values = fields["device"]
    warnings: list[str] = []
    name_key = None  # track events: the name as the filter and the standard names compare it
    name = fields["name"]
    if event_type == "track":
        name = clean_event_name(name or "", warnings)
        if not name:
            return _reject(fields, reasons.INVALID_EVENT, "event", CONTROL_ONLY_NAME_ERROR)
        name_key = name.strip().lower()
        not_sent = _filtered(fields, name, name_key, settings, warnings)
        if not_sent is not None:
            return not_sent
    app = fields["app"]
    platform = device["platform"]
    bundle_id = app["bundle_id"] if app else None
    app_id = settings.app_id_for(platform, bundle_id)
    if not app_id:
        return _missing_app_id(fields, platform, bundle_id)
    device_ids, zero_ad_id = _device_ids(device, warnings)
    if not device_ids:
        return _reject(fields, reasons.NO_DEVICE_IDENTIFIER, "device.id", NO_DEVICE_IDENTIFIER_ERROR)
    if kind == "identityLink":
        payload = _identity_link(fields, app_id, device_ids, warnings)
        return Outcome(fields["uuid"], "ok", kind, payload=payload, warnings=warnings, event_name="identityLink")

    data = _common_data(device_ids, device, app["version"] if app else None, kind, fields["timestamp"], now, warnings)
    _consent_signals(device, fields["consent"], data, zero_ad_id, warnings)

    outcome = Outcome(fields["uuid"], "ok", kind, warnings=warnings)
    if kind == "install":
        _install_fields(fields, data, now, attribution, outcome)
        outcome.event_name = "install"
    else:
        kochava_name = event_name_for(fields, settings, name_key, name)
        data["event_name"] = kochava_name
        data["event_data"] = _event_data(fields, kochava_name, warnings)
        outcome.event_name = kochava_name
    kochava_device_id = device["kochava_device_id"] or device["id"]
    if not kochava_device_id or kochava_device_id[0] in "0-":  # an all-zero id starts so: the rare slow path
        kochava_device_id = _usable_kochava_device_id(device["kochava_device_id"], device["id"], device_ids, warnings)
    outcome.payload = {
        "action": kind,
        "kochava_app_id": app_id,
        "kochava_device_id": kochava_device_id,
        "data": data,
    }
    return outcome


CONTROL_ONLY_NAME_ERROR: Final = "event: the event name is made of control characters only"


def _filtered(event: Values, name: str, name_key: str, settings: Settings, warnings: list[str]) -> Outcome | None:
    """The outcome of a track event deliberately not sent (``FILTERED_EVENTS``, attribution echoed back), or None."""
    if name_key in settings.filtered_events:
        return Outcome(event["uuid"], "filtered", "event", reason=reasons.FILTERED_EVENT, event_name=name)
    if name_key in ATTRIBUTION_ECHO_EVENTS:
        return Outcome(
            event["uuid"],
            "filtered",
            "event",
            reason=reasons.FILTERED_EVENT,
            event_name=name,
            message=ATTRIBUTION_ECHO_MESSAGE,
            warnings=[*warnings, ATTRIBUTION_ECHO_MESSAGE],  # so tools.transform says why
        )
    return None


def _consent_signals(
    device: Values, consent: Values | None, data: dict[str, Any], zero_ad_id: bool, warnings: list[str]
) -> None:
    """``device_limit_tracking``; then, as Kochava's install and post-install docs read today, the ATT block on
    every iOS 14+ payload (without it Kochava drops the IDFA) and the Google DMA consent object on every payload."""
    limit_tracking = device["limit_ad_tracking"]
    if limit_tracking is None and zero_ad_id:
        limit_tracking = True
    if limit_tracking is not None:
        data["device_limit_tracking"] = 1 if limit_tracking else 0
    if device["platform"] == "ios" and att_applies(device["os_version"], device["user_agent"]):
        data["app_tracking_transparency"] = _att_block(device, "idfa" in data["device_ids"], warnings)
    signals = consent_fields(consent)
    if signals:
        data["gdpr_privacy_consent"] = signals


def _common_data(
    device_ids: dict[str, str],
    device: Values,
    app_version: str | None,
    kind: Kind,
    timestamp: float,
    now: float,
    warnings: list[str],
) -> dict[str, Any]:
    """``data`` of an install or event up to ``usertime``: device ids, IP, user agent, device_ver, app version."""
    data: dict[str, Any] = {"device_ids": device_ids}
    ip = device["ip"]
    if ip:
        try:  # an IPv4 (dotted quad) or IPv6 address, as the C library parses them (ipaddress takes 10x as long)
            inet_pton(AF_INET6 if ":" in ip else AF_INET, ip)
        except (OSError, ValueError):
            warnings.append("device.ip is not an IPv4 or IPv6 address: not sent")
        else:
            data["origination_ip"] = ip
    user_agent = device["user_agent"]
    model, platform, os_version = device["model"], device["platform"], device["os_version"]
    if user_agent:
        data["device_ua"] = encode_user_agent(user_agent)
    if user_agent and ua_os_major(user_agent) is not None:  # Kochava reads the OS from the agent
        data["device_ver"] = device_ver(model, platform, os_version)
    elif user_agent:  # an agent that names no OS version (an app's own): device_ver is what Kochava can read it from
        data["device_ver"] = _no_ua_device_ver(model, platform, os_version, None)
    else:  # "S2S without Device UA" (installs and events): Kochava builds the agent, and reads the OS, from it
        noted = warnings if kind == "install" else None  # an install's attribution depends on it: say so
        data["device_ver"] = _no_ua_device_ver(model, platform, os_version, noted)
    if app_version:
        data["app_version"] = app_version
    if not MIN_USERTIME_S <= timestamp <= now + USERTIME_MAX_AHEAD_S:
        timestamp = _clamped_usertime(timestamp, now, warnings)
    data["usertime"] = int(timestamp)
    return data


NO_DEVICE_IDENTIFIER_ERROR: Final = (
    "device.id: no usable device identifier (device.id or a non-zero device.advertising_id is required)"
)


def _missing_app_id(event: Values, platform: str, bundle_id: str | None) -> Outcome:
    where = f"bundle {bundle_id!r} / " if bundle_id else ""
    message = f"device.platform: no Kochava app GUID configured for {where}platform {platform!r}"
    return _reject(event, reasons.MISSING_APP_ID, "device.platform", message)


def _reject(event: Values, reason: str, field_name: str, message: str) -> Outcome:
    name = event["name"]
    return Outcome(event["uuid"], "rejected", reason=reason, field=field_name, message=message, event_name=name)


def _usable_kochava_device_id(
    explicit: str | None, device_id: str | None, device_ids: dict[str, str], warnings: list[str]
) -> str:
    """``device.kochava_device_id``, else ``device.id``, else the first of ``device_ids``; never an all-zero id
    (every device in that state shares it, so Kochava would merge them)."""
    if explicit:
        if not is_zero_id(explicit):
            return explicit
        warnings.append("device.kochava_device_id is all zeros: the next usable id is sent instead")
    if device_id and not is_zero_id(device_id):
        return device_id
    return next(iter(device_ids.values()))


def _clamped_usertime(timestamp: float, now: float, warnings: list[str]) -> float:
    """``now`` for a timestamp outside the plausible window (a device clock set wrong: the event itself is real,
    so it is sent, not rejected), with a warning naming the field."""
    if timestamp > now:
        warnings.append(
            "timestamp: more than 1 day ahead of the pipeline's clock (device clock?): usertime sent as now"
        )
    else:
        warnings.append("timestamp: before 2008, earlier than any app event (device clock?): usertime sent as now")
    return now


def is_zero_id(value: str) -> bool:
    """An all-zero advertising id (``00000000-0000-...``) means limited ad tracking: it identifies nobody.

    >>> is_zero_id("00000000-0000-0000-0000-000000000000"), is_zero_id("6D92078A-8246"), is_zero_id("")
    (True, False, True)
    """
    if value[:1] not in "0-":  # nearly every id: its first character already says no (2 calls per event)
        return False
    stripped = value.replace("-", "")
    return not stripped.strip("0")


def _device_ids(device: Values, warnings: list[str]) -> tuple[dict[str, str], bool]:
    """iOS ``{idfa, idfv}`` upper case; Android ``{adid, android_id}`` with ``adid`` lower case. Empty keys are
    omitted; an all-zero advertising id or device id is dropped. Returns the ids and whether a zero advertising id
    was dropped."""
    ids: dict[str, str] = {}
    zero = False
    ad_id = device["advertising_id"]
    if ad_id and is_zero_id(ad_id):
        zero = True
        warnings.append("device.advertising_id is all zeros (limited ad tracking): not sent")
        ad_id = None
    device_id = device["id"]
    if device_id and is_zero_id(device_id):
        # iOS answers an all-zero identifierForVendor in some states (e.g. before the first unlock after a
        # restart): like a zero advertising id, it identifies nobody.
        warnings.append("device.id is all zeros: not sent")
        device_id = None
    if device["platform"] == "ios":
        if ad_id:
            ids["idfa"] = ad_id.upper()
        if device_id:
            ids["idfv"] = device_id.upper()
    else:
        if ad_id:
            ids["adid"] = ad_id.lower()
        if device_id:
            ids["android_id"] = device_id
    return ids, zero


def encode_user_agent(user_agent: str) -> str:
    """Percent-encode once, like ``encodeURIComponent``; a value that is already encoded is kept as is.

    Cached: user agents repeat heavily (one per app version x device model x OS version), and ``quote`` cost a
    third of the mapping (profiled), while a cache hit costs 0.1 us. Only user agents up to
    :data:`UA_CACHE_MAX_LENGTH` characters are cached, so the cache stays under ~10 MB whatever clients send.

    >>> encode_user_agent("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)")
    'Mozilla%2F5.0%20(iPhone%3B%20CPU%20iPhone%20OS%2017_1%20like%20Mac%20OS%20X)'
    >>> encode_user_agent("Mozilla%2F5.0%20(iPhone)")
    'Mozilla%2F5.0%20(iPhone)'
    """
    if len(user_agent) <= UA_CACHE_MAX_LENGTH:
        return _encode_user_agent_cached(user_agent)
    return _encode_user_agent(user_agent)


def _encode_user_agent(user_agent: str) -> str:
    if " " not in user_agent and _PERCENT_ESCAPE.search(user_agent):
        return user_agent
    return quote(user_agent, safe=_UA_SAFE)


UA_CACHE_MAX_LENGTH = 512  # real user agents are 100-300 characters; the contract allows up to 8,192
_encode_user_agent_cached = lru_cache(maxsize=4096)(_encode_user_agent)


def device_ver(model: str | None, platform: str, os_version: str | None) -> str:
    """``{model}-{iOS|Android}-{os_version}`` as Kochava parses it, ``""`` when model or OS version is unknown.

    >>> device_ver("iPhone14,2", "ios", "17.1"), device_ver(None, "android", "14")
    ('iPhone14,2-iOS-17.1', '')
    """
    if not model or not os_version:
        return ""
    return f"{model}-{'iOS' if platform == 'ios' else 'Android'}-{os_version}"


def _no_ua_device_ver(model: str | None, platform: str, os_version: str | None, warnings: list[str] | None) -> str:
    """A payload without a user agent: ``device_ver`` is all Kochava has to read the OS version (and, for an iOS
    14+ device, to know the ATT rule applies), so it is built from what is known, the platform's generic model
    standing in for a missing one; on installs (``warnings`` given) with a warning either way."""
    if not os_version:
        if warnings is not None:
            warnings.append("Kochava cannot read the OS version: no device.user_agent and no device.os_version")
        return ""
    if not model:
        model = GENERIC_MODEL.get(platform, "Android")
        if warnings is not None:
            warnings.append(f"device.model missing (and no device.user_agent): device_ver sent with model {model!r}")
    return device_ver(model, platform, os_version)


def _os_major(os_version: str | None) -> int | None:
    if not os_version:
        return None
    head = os_version.strip().split(".", 1)[0]
    return int(head) if head.isdigit() else None


def att_applies(os_version: str | None, user_agent: str | None = None) -> bool:
    """An iOS payload carries the ATT block unless every OS version it names is before 14 (Kochava drops the IDFA
    of an iOS 14+ payload without it; an unknown OS may be 14+). Both sources count: Kochava reads the OS from the
    user agent or from ``device_ver`` (the event's ``os_version``), so when they disagree the block goes.

    >>> att_applies("17.1"), att_applies(None), att_applies("13.6.1")
    (True, True, False)
    >>> att_applies("13.1", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)"), att_applies("13.1", "App/2")
    (True, False)
    """
    os_major, ua_major = _os_major(os_version), ua_os_major(user_agent)
    if os_major is None and ua_major is None:
        return True
    return (os_major or 0) >= 14 or (ua_major or 0) >= 14  # the larger one named is 14+ (no list per event)


_UA_OS_VERSION = re.compile(r"(?:\bOS |\biOS[- ])(\d+)[_.]\d|\bAndroid[ /](\d+)")


def ua_os_major(user_agent: str | None) -> int | None:
    """The OS major version a user agent names (``iPhone OS 17_1``, ``iOS 17.1``, ``Android 14``), or None.

    >>> ua_os_major("Mozilla/5.0 (Linux; Android 14; Pixel 8)"), ua_os_major("CFNetwork/1.0 Darwin/23")
    (14, None)

    Cached like :func:`encode_user_agent` (same bound): the regex search ran twice per event with a user agent,
    8% of a Segment event's instructions (callgrind, issue 27), for agents that repeat heavily.
    """
    if not user_agent:
        return None
    if len(user_agent) <= UA_CACHE_MAX_LENGTH:
        return _ua_os_major_cached(user_agent)
    return _ua_os_major(user_agent)


def _ua_os_major(user_agent: str) -> int | None:
    found = _UA_OS_VERSION.search(user_agent)
    return int(found.group(1) or found.group(2)) if found else None


_ua_os_major_cached = lru_cache(maxsize=4096)(_ua_os_major)


def consent_fields(consent: Consent | Values | None) -> dict[str, Any] | None:
    """``gdpr_privacy_consent``: the consent signals sent (a ``Consent`` or its values), booleans as 1/0 (Kochava's
    documented form); None when there are none. The fields as ``model_dump(exclude_none=True)`` lists them, read
    without its serializer (1% of a run, py-spy); tests/unit/pipeline/test_kochava_rules.py proves both agree for
    every model field.

    >>> consent_fields(Consent(gdpr_applies=True, tc_string="tc", ad_user_data=False))
    {'gdpr_applies': 1, 'tc_string': 'tc', 'ad_user_data': 0}
    """
    if consent is None:
        return None
    fields = {
        key: (int(value) if isinstance(value, bool) else value)
        for key, value in (consent if type(consent) is dict else consent.__dict__).items()
        if value is not None
    }
    return fields or None


def _install_fields(
    event: Values,
    data: dict[str, Any],
    now: float,
    attribution: dict[str, Any] | None,
    outcome: Outcome,
) -> None:
    """What only installs carry: iAd details, the install referrer, the AdServices fields."""
    if event["iad_attribution_details"]:
        data["iad_attribution_details"] = event["iad_attribution_details"]
    install_referrer = event["install_referrer"]
    if install_referrer is not None:
        referrer: dict[str, Any] = {"referrer": install_referrer["referrer"]}
        if install_referrer["click_time"] is not None:
            referrer["referrer_click_time"] = int(install_referrer["click_time"])
        data["install_referrer"] = referrer
    _adservices_fields(event, data, now, attribution, outcome)


def _att_block(device: Values, has_idfa: bool, warnings: list[str]) -> dict[str, Any]:
    att = device["att"]
    status = att["status"] if att else None
    if status is None:
        if device["limit_ad_tracking"]:
            # The user's own opt-out: never authorized, whatever IDFA a backend still holds. ``denied`` is what
            # iOS reports when tracking is refused (also with "Allow Apps to Request to Track" off).
            status = LIMIT_AD_TRACKING_ATT_DETAIL
            warnings.append(f"device.att.status missing: {status} inferred from device.limit_ad_tracking")
        else:
            status = "authorized" if has_idfa else "not_determined"
            absent = "" if has_idfa else "absent "
            warnings.append(f"device.att.status missing: {status} inferred from the {absent}IDFA")
    block: dict[str, Any] = {"att": status == "authorized"}
    if att and att["time"] is not None:
        block["att_time"] = int(att["time"])
    if att and att["duration"] is not None:
        block["att_duration"] = att_duration_seconds(att["duration"])
    block["att_detail"] = status
    return block


def att_duration_seconds(duration: float) -> int:
    """Whole seconds, as Kochava's examples send them: rounded half up, and an answer that took any time at all
    is never sent as 0 (0.6 s is 1, not the 0 a truncation gave).

    >>> att_duration_seconds(0.6), att_duration_seconds(0.2), att_duration_seconds(6.4), att_duration_seconds(0)
    (1, 1, 6, 0)
    """
    if duration <= 0:
        return 0
    return max(1, math.floor(duration + 0.5))


def _adservices_fields(
    event: Values, data: dict[str, Any], now: float, attribution: dict[str, Any] | None, outcome: Outcome
) -> None:
    """Spec section 4: the token only while ``age < 24 h``; attribution never from developer mode."""
    ads = event["adservices"]
    if ads is None:
        return
    client_attribution = adservices.usable_attribution(ads["attribution"])
    resolved = adservices.usable_attribution(attribution)
    if ads["attribution"] and client_attribution is None:
        outcome.warnings.append("adservices.attribution is Apple's developer-mode test payload: not forwarded")
    if attribution and resolved is None:
        outcome.warnings.append("Apple answered with the developer-mode test payload: not forwarded")
    token = ads["token"]
    if token:
        generated_at = ads["generated_at"] if ads["generated_at"] is not None else event["timestamp"]
        if ads["generated_at"] is None:
            outcome.warnings.append("adservices.generated_at missing: token age taken from the event timestamp")
        if adservices.is_fresh(generated_at, now):
            data[adservices.TOKEN_KEY] = token
            outcome.adservices_generated_at = generated_at
        else:
            outcome.adservices_expired = True
            outcome.warnings.append("adservices.token is older than 24 h: not sent (Kochava could not use it)")
    chosen = resolved or client_attribution
    if chosen is not None:
        data[adservices.ATTRIBUTION_KEY] = chosen


def _identity_link(event: Values, app_id: str, device_ids: dict[str, str], warnings: list[str]) -> dict[str, Any]:
    """Kochava IdentityLink S2S body: ``{"kochava_app_id", "device_id": {...}, "data": {"user_id", traits}}``."""
    identity: dict[str, Any] = {"user_id": event["user_id"]}
    for key, value in flatten(event["properties"], warnings).items():
        if key != "user_id":
            identity[key] = _as_text(value)
    return {"kochava_app_id": app_id, "device_id": device_ids, "data": identity}


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode() if isinstance(value, list | dict) else str(value)


def flatten(properties: Mapping[str, Any], collisions: list[str] | None = None) -> dict[str, Any]:
    """One level: nested keys joined with ``_``, lists JSON-encoded. No value is ever lost: when a joined name is
    taken (``{"a_b": 1, "a": {"b": 2}}``), the later value gets the first free ``<name>_2``, ``<name>_3``... and a
    warning is appended to ``collisions``. Values Kochava cannot use are left out, with a warning there too:
    ``null`` (no value to report) and non-finite numbers (``NaN``, ``Infinity``, ``1e400``: JSON has no way to
    write them, they would arrive as ``null``).

    >>> flatten({"a": {"b": {"c": 1}}, "l": [1, {"x": 2}], "s": "t"})
    {'a_b_c': 1, 'l': '[1,{"x":2}]', 's': 't'}
    >>> flatten({"a_b": 1, "a": {"b": 2}})
    {'a_b': 1, 'a_b_2': 2}
    >>> flatten({"coupon": None, "n": float("nan"), "ok": 1})
    {'ok': 1}
    """
    flat: dict[str, Any] = {}
    # The top level is _flatten_into(flat, "", properties) written out: no f"{prefix}{key}" string per key and no
    # extra call, as most properties are flat (flatten was a fifth of the mapping in py-spy).
    for key, value in properties.items():
        if isinstance(value, dict):
            if value:
                _flatten_into(flat, f"{key}_", value, key, collisions)
                continue
            value = "{}"
        elif isinstance(value, list):
            value = compact_json(value)
        elif value is None or (type(value) is float and not math.isfinite(value)):
            _unusable(key, value, collisions)
            continue
        if key in flat:  # only a joined name of an earlier object can hold a top-level key
            key = _free_name(flat, key, key, collisions)
        flat[key] = value
    return flat


def _flatten_into(
    flat: dict[str, Any], prefix: str, node: Mapping[str, Any], path: str, collisions: list[str] | None
) -> None:
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if value:
                _flatten_into(flat, f"{name}_", value, f"{path}.{key}", collisions)
                continue
            value = "{}"
        elif isinstance(value, list):
            value = compact_json(value)
        elif value is None or (type(value) is float and not math.isfinite(value)):
            _unusable(f"{path}.{key}", value, collisions)
            continue
        if name in flat:
            name = _free_name(flat, name, f"{path}.{key}", collisions)
        flat[name] = value


def _unusable(path: str, value: Any, warnings: list[str] | None) -> None:
    if warnings is not None:
        what = "null" if value is None else f"{value!r}, not a finite number"
        warnings.append(f"properties.{path}: {what}: not sent (Kochava cannot use it)")


def _free_name(flat: Mapping[str, Any], name: str, path: str, collisions: list[str] | None) -> str:
    """The first of ``<name>_2``, ``<name>_3``... not in ``flat``, with the warning saying where it came from."""
    free = free_key(flat, name)
    if collisions is not None:
        collisions.append(f"properties.{path}: flattens onto {name}, which is taken: sent as {free}")
    return free


def free_key(taken: Mapping[str, Any], name: str) -> str:
    """``name`` when it is free in ``taken``, else the first free ``<name>_2``, ``<name>_3``...

    >>> free_key({"a": 1, "a_2": 2}, "a"), free_key({}, "a")
    ('a_3', 'a')
    """
    if name not in taken:
        return name
    n = 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


def _event_data(event: Values, name: str, warnings: list[str]) -> dict[str, Any]:
    """``event_data``: the event's properties flattened, reserved keys renamed, the screen name, the purchase
    fields, the user id (``event`` is the event's values, :data:`Values`)."""
    props = event["properties"]
    flat = flatten(props, warnings) if props else {}
    # Checked in C first (map + isdisjoint): a reserved key is rare, and the per-key comprehension cost 5% of the
    # mapping (py-spy).
    reserved = [] if RESERVED_EVENT_DATA_KEYS.isdisjoint(map(str.lower, flat)) else _reserved_keys(flat)
    for key in reserved:
        renamed = free_key(flat, f"{RESERVED_KEY_PREFIX}{key}")  # never onto a custom_<key> the caller sent
        warnings.append(f"properties.{key}: reserved by Kochava, sent as {renamed}")
        flat[renamed] = flat.pop(key)
    if event["type"] == "screen":
        screen_name = event["name"] or _first_text(props, ("name", "screen_name")) or ""
        if flat.get("screen_name", screen_name) != screen_name:  # the caller's own screen_name is kept too
            moved = free_key(flat, "screen_name")
            warnings.append(f"properties.screen_name: the screen's name takes screen_name, sent as {moved}")
            flat[moved] = flat["screen_name"]
        flat["screen_name"] = screen_name
    if name == PURCHASE:
        _purchase_fields(props, flat, warnings)
    elif "sum" in flat:
        _event_sum(flat, warnings)
    user_id = event["user_id"]
    if user_id and "user_id" not in flat:
        flat["user_id"] = user_id
    return flat


def _reserved_keys(flat: dict[str, Any]) -> list[str]:
    return [key for key in flat if key.lower() in RESERVED_EVENT_DATA_KEYS]


def _first_text(props: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = props.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    return None


def _purchase_fields(props: Mapping[str, Any], flat: dict[str, Any], warnings: list[str]) -> None:
    """Kochava's standard purchase keys ``sum`` (a number), ``currency`` and ``name`` from the price fields."""
    flat.pop("sum", None)  # only a top-level ``sum`` flattens onto it: purchase_sum reads it first, as a number
    amount = purchase_sum(props, warnings)
    if amount is not None:
        flat["sum"] = amount
    if "currency" not in flat:
        currency = _first_text(props, CURRENCY_SOURCES)
        if currency:
            flat["currency"] = currency
    if "name" not in flat:
        product = _first_text(props, NAME_SOURCES)
        if product:
            flat["name"] = product


def purchase_sum(props: Mapping[str, Any], warnings: list[str]) -> int | float | None:
    """A Purchase's ``sum``: the first of :data:`SUM_SOURCES` that is a number (numeric text converted), else
    ``products[].price x quantity`` when every product has a numeric price (a missing quantity counts 1); else None,
    with a warning naming what was there but is not a number.

    >>> purchase_sum({"sum": "", "revenue": "4.99"}, [])
    4.99
    >>> purchase_sum({"products": [{"price": 9.99, "quantity": 2}, {"price": "0.02"}]}, [])
    20.0
    """
    unusable: list[str] = []
    for key in SUM_SOURCES:  # a loop: a generator cost 2% of the mapping
        value = props.get(key)
        if value is None:
            continue
        amount = as_number(value)
        if amount is not None:
            if unusable:
                warnings.append(f"{'; '.join(unusable)}: sum taken from properties.{key}")
            return amount
        unusable.append(f"properties.{key} {str(value)[:40]!r} is not a number")
    products = props.get("products")
    amount = _products_total(products)
    if amount is not None:
        if unusable:
            warnings.append(f"{'; '.join(unusable)}: sum taken from properties.products")
        return amount
    if products:
        unusable.append("properties.products: not every product has a numeric price (and quantity)")
    if unusable:
        warnings.append(f"{'; '.join(unusable)}: sum not sent")
    return None


def _products_total(products: Any) -> int | float | None:
    """Sum of ``price x quantity`` over Segment's ``products`` (quantity 1 when absent); None unless every item
    is an object with a numeric price (and a numeric quantity when it has one)."""
    if not isinstance(products, list) or not products:
        return None
    total: int | float = 0
    for item in products:
        if not isinstance(item, dict):
            return None
        price = as_number(item.get("price"))
        quantity = as_number(item["quantity"]) if item.get("quantity") is not None else 1
        if price is None or quantity is None:
            return None
        total += price * quantity
    return total if isinstance(total, int) else round(total, 6)


def _event_sum(flat: dict[str, Any], warnings: list[str]) -> None:
    """Any event's own ``sum`` is sent as a number (Kochava's examples): numeric text converted, anything else
    removed with a warning (a Purchase then takes its sum from the other price fields)."""
    given = flat["sum"]
    amount = as_number(given)
    if amount is None:
        del flat["sum"]
        warnings.append(f"properties.sum {str(given)[:40]!r} is not a number: not sent as sum")
    elif amount is not given:
        flat["sum"] = amount


def as_number(value: Any) -> int | float | None:
    """A number as Kochava takes it: an int or finite float, or numeric text converted; None otherwise (booleans
    too).

    >>> as_number("9.99"), as_number(" 10 "), as_number(""), as_number("1e400"), as_number(True)
    (9.99, 10, None, None, None)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
        return int(number) if number.is_integer() and "." not in value else number
    return None
