"""Device-profile rules: what the pipeline remembers about a device, what it fills in, and when it updates.

A backend that only knows a device's id (a server-side purchase, a subscription renewal) can send
``device.platform`` + ``device.id`` and nothing else: the enricher fills the advertising id, IP, user agent,
ATT state... from the richest context it has seen for that device, so Kochava can still match and attribute it.

The profile is keyed by app + platform + device id, the id normalised (:func:`profile_key`). Pure functions, no I/O,
no clock read: the store is ``functions/adapters/profiles_dynamodb.py``; the enricher reads the profiles of a whole
message, applies these rules event by event **in order** (an install early in a batch enriches a purchase later in
it) and writes the changed profiles back.

Rules (docs/enricher.md repeats them for mobile teams):

* Remembered fields (:data:`FIELDS`): ``advertising_id`` (IDFA / ADID), ``kochava_device_id``, ``ip``,
  ``user_agent``, ``model``, ``os_version``, ``app_version``, ``user_id``, ``limit_ad_tracking``, and the ATT
  answer ``att_status`` / ``att_time`` / ``att_duration``. The device id itself (IDFV / Android ID, else the
  Kochava device id) is the key.
* **Fill** (:func:`fill_from_profile`): a field the event does not carry is taken from the profile; a field the
  event carries is never touched (the event always wins). Exceptions:

  - the ATT fields are one group: filled only when the event has no ATT status at all, and then together;
  - ``advertising_id`` is never filled into an event that itself opts out (ATT ``denied``/``restricted``,
    ``limit_ad_tracking`` true, or an all-zero advertising id);
  - installs never get ``ip`` / ``user_agent`` from a profile: an install is attributed by the IP and user agent
    *of the install*, and an old one could attribute it to the wrong click.
* **Update** (:func:`updated_profile`): every accepted event (install or not) contributes the fields it carries.
  An event at least as recent as the last one applied overwrites; an older event (arriving late) only fills
  fields the profile lacks. An opt-out in a recent event removes the remembered advertising id, and a profile
  whose consent state says opt-out never keeps one. An all-zero advertising id is never stored. The profile is
  written only when a field changed, or once a day to push its expiry (the ``PROFILE_TTL_DAYS`` setting)
  forward.
* **Consent** (:func:`refuses_personal_data`): the profile also remembers the device's consent signals, the Google
  DMA flags ``gdpr_applies`` / ``ad_user_data`` / ``ad_personalization`` (:data:`CONSENT_FIELDS`, a group like
  ATT; never the ``tc_string``, a consent string being personal data) beside ATT and ``limit_ad_tracking``. An
  event without a ``consent`` object of its own is filled with the remembered group (Kochava's post-install doc
  asks for ``gdpr_privacy_consent`` on every event, so a server-side purchase of an EEA device carries its
  consent, and its refusal). While they refuse (GDPR applies and ``ad_user_data`` is not true, ATT ``denied`` or
  ``restricted``, or ``limit_ad_tracking`` true), the profile keeps none of :data:`PERSONAL_FIELDS`
  (advertising id, Kochava device id, IP, user agent, user id): the event that brings the refusal removes what
  was stored, and later events add nothing personal until a newer event lifts it (the newest signal wins; a late
  event never does). Nothing personal is filled from a profile into an event that refuses either. What stays is
  the refusal itself and non-identifying facts (model, OS and app version), so later server-side events of the
  device are still sent with its opt-out. An all-zero advertising id alone is not a refusal (iOS answers zeros
  while ATT is not determined): only the advertising id is then left out.

Example:
    >>> old = {"advertising_id": "A-1", "ip": "1.2.3.4", "last_event_at": 100.0, "updated_at": 100.0}
    >>> merge_context({"ip": "5.6.7.8"}, old)[0]
    {'advertising_id': 'A-1', 'ip': '5.6.7.8', 'last_event_at': 100.0, 'updated_at': 100.0}

The rules read and fill the internal event as plain data (``events.EventValues``, the enricher's hot path); an
``Event`` model is read through its values, and :func:`fill_from_profile` gives a model back for a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeVar

from functions.pipeline.contract import NativeEvent as Event
from functions.pipeline.contract import values_of
from functions.pipeline.events import EventValues, event_model
from functions.pipeline.kochava import is_zero_id

ProfileValue = str | int | float | bool
Profile = dict[str, ProfileValue]

# What a profile remembers, in the order docs/enricher.md lists them.
ATT_FIELDS: Final = ("att_status", "att_time", "att_duration")
FIELDS: Final = (
    "advertising_id",
    "kochava_device_id",
    "ip",
    "user_agent",
    "model",
    "os_version",
    "app_version",
    "user_id",
    "limit_ad_tracking",
    *ATT_FIELDS,
)
# Bookkeeping fields of a stored profile.
LAST_EVENT_AT: Final = "last_event_at"  # timestamp (epoch s) of the most recent event applied
UPDATED_AT: Final = "updated_at"  # when the profile was last written (epoch s, the enricher's clock)
# An unchanged profile is still rewritten this often, so a device seen every day never expires.
REFRESH_AFTER_S: Final = 24 * 3600
# Never taken from a profile into an install (attribution must use the install's own network context).
NOT_FILLED_ON_INSTALL: Final = frozenset({"ip", "user_agent"})
OPT_OUT_ATT: Final = frozenset({"denied", "restricted"})
# Personal data a profile must not keep (nor fill into an event) while the device's consent signals refuse it.
PERSONAL_FIELDS: Final = ("advertising_id", "kochava_device_id", "ip", "user_agent", "user_id")
# The Google DMA consent flags (``consent.gdpr_applies`` / ``ad_user_data`` / ``ad_personalization``), remembered as
# one group and filled, as a group, into an event that carries no ``consent`` object (sent as gdpr_privacy_consent).
CONSENT_FIELDS: Final = ("gdpr_applies", "ad_user_data", "ad_personalization")
# Everything a stored profile may hold besides its bookkeeping.
REMEMBERED: Final = (*FIELDS, *CONSENT_FIELDS)
ATT_STATUSES: Final = frozenset({"authorized", "denied", "restricted", "not_determined"})


def normalize_device_id(device_id: str) -> str:
    """A device id as profiles are keyed by it: trimmed and case-folded, so every spelling an SDK or a backend sends
    (IDFVs upper case from one, lower case from another) is one profile, and an erase finds it by any spelling.

    >>> normalize_device_id(" Priv-Dev-1 ")
    'priv-dev-1'
    """
    return device_id.strip().casefold()


def profile_key(app_id: str, platform: str, device_id: str) -> str:
    """The table key: ``{app}#{platform}#{device id}``, the id normalised (:func:`normalize_device_id`).

    >>> profile_key("koapp-guid", "ios", "IDFV-1")
    'koapp-guid#ios#idfv-1'
    """
    return f"{app_id}#{platform}#{normalize_device_id(device_id)}"


def legacy_profile_key(app_id: str, platform: str, device_id: str) -> str:
    """The key a profile had before ids were normalised (issue 22): the id exactly as the event carried it. The
    enricher still reads it (a profile found only there is used and written back under :func:`profile_key`) until
    such profiles have expired (``profileTtlDays`` after the upgrade); ``tools.privacy`` scans for every spelling.

    >>> legacy_profile_key("koapp-guid", "ios", "IDFV-1")
    'koapp-guid#ios#IDFV-1'
    """
    return f"{app_id}#{platform}#{device_id}"


def _values(event: Event | EventValues) -> EventValues:
    return event if isinstance(event, dict) else values_of(event)


def device_key_id(event: Event | EventValues) -> str | None:
    """The id a profile is keyed by: ``device.id`` (IDFV / Android ID), else ``device.kochava_device_id``; never an
    all-zero id (every device in that state would share one profile, and be filled with each other's fields)."""
    device: dict[str, str | None] = event["device"] if isinstance(event, dict) else event.device.__dict__
    for candidate in (device["id"], device["kochava_device_id"]):
        if candidate and (candidate[0] not in "0-" or not is_zero_id(candidate)):  # a zero id starts so
            return candidate
    return None


def _opts_out(ctx: Mapping[str, ProfileValue]) -> bool:
    advertising_id = ctx.get("advertising_id")
    return (
        ctx.get("att_status") in OPT_OUT_ATT
        or ctx.get("limit_ad_tracking") is True
        or (isinstance(advertising_id, str) and is_zero_id(advertising_id))
    )


def refuses_personal_data(state: Mapping[str, ProfileValue]) -> bool:
    """True when the consent signals in ``state`` (an event's context or a profile) forbid keeping personal data.

    >>> refuses_personal_data({"gdpr_applies": True, "ad_user_data": False})
    True
    >>> refuses_personal_data({"gdpr_applies": True})  # GDPR applies and no consent was given
    True
    >>> refuses_personal_data({"gdpr_applies": False, "att_status": "authorized"})
    False
    >>> refuses_personal_data({"att_status": "restricted"}), refuses_personal_data({"limit_ad_tracking": True})
    (True, True)
    """
    return (
        state.get("att_status") in OPT_OUT_ATT
        or state.get("limit_ad_tracking") is True
        or (state.get("gdpr_applies") is True and state.get("ad_user_data") is not True)
    )


def context_of(event: Event | EventValues) -> Profile:
    """The profile fields an event carries itself (absent / empty values left out)."""
    fields = _values(event)
    device, app, att, consent = fields["device"], fields["app"], fields["device"]["att"], fields["consent"]
    values: dict[str, ProfileValue | None] = {
        "advertising_id": device["advertising_id"],
        "kochava_device_id": device["kochava_device_id"],
        "ip": device["ip"],
        "user_agent": device["user_agent"],
        "model": device["model"],
        "os_version": device["os_version"],
        "app_version": app["version"] if app else None,
        "user_id": fields["user_id"],
        "limit_ad_tracking": device["limit_ad_tracking"],
    }
    if att is not None and att["status"] is not None:
        values["att_status"] = att["status"]
        values["att_time"] = att["time"]
        values["att_duration"] = att["duration"]
    if consent is not None:
        values["gdpr_applies"] = consent["gdpr_applies"]
        values["ad_user_data"] = consent["ad_user_data"]
        values["ad_personalization"] = consent["ad_personalization"]
    return {name: value for name, value in values.items() if value is not None and value != ""}


def fillable(ctx: Mapping[str, ProfileValue], profile: Mapping[str, ProfileValue], *, install: bool) -> Profile:
    """The fields to take from ``profile`` into an event whose own fields are ``ctx`` (rules in the module doc)."""
    filled: Profile = {}
    if "att_status" not in ctx and "att_status" in profile:
        filled.update({name: profile[name] for name in ATT_FIELDS if name in profile})
    if not any(name in ctx for name in CONSENT_FIELDS):
        filled.update({name: profile[name] for name in CONSENT_FIELDS if name in profile})
    for name in FIELDS:
        if name in ATT_FIELDS or name == "advertising_id" or name in ctx or name not in profile:
            continue
        if install and name in NOT_FILLED_ON_INSTALL:
            continue
        filled[name] = profile[name]
    if "advertising_id" not in ctx and "advertising_id" in profile and not _opts_out({**ctx, **filled}):
        filled["advertising_id"] = profile["advertising_id"]
    if refuses_personal_data({**_consent(ctx, profile), **ctx, **filled}):
        for name in PERSONAL_FIELDS:
            filled.pop(name, None)
    return filled


def _consent(ctx: Mapping[str, ProfileValue], profile: Mapping[str, ProfileValue]) -> Profile:
    """The consent group that applies: the event's own when it carries one, else the profile's."""
    source = ctx if any(name in ctx for name in CONSENT_FIELDS) else profile
    return {name: source[name] for name in CONSENT_FIELDS if name in source}


_Filled = TypeVar("_Filled", Event, EventValues)


def fill_from_profile(event: _Filled, profile: Mapping[str, ProfileValue] | None) -> tuple[_Filled, list[str]]:
    """``(event with the missing fields filled from the profile, names of the fields filled)``: plain data for plain
    data (``events.EventValues``), a model of the same class for a model.

    The event is returned unchanged (same object) when nothing is filled.
    """
    if not profile:
        return event, []
    values = _values(event)
    filled = fillable(context_of(values), profile, install=values["type"] == "install")
    if values["consent"] is not None:  # a consent object of its own (a tc_string alone too): the event wins
        for name in CONSENT_FIELDS:
            filled.pop(name, None)
    if not filled:
        return event, []
    names = [name for name in REMEMBERED if name in filled]
    if isinstance(event, dict):
        return _with_fields(event, filled), names
    return event_model(type(event), _with_fields(values, filled)), names


def _with_fields(event: EventValues, filled: Mapping[str, ProfileValue]) -> EventValues:
    """A copy of ``event`` (plain data) with ``filled`` in it; its parts copied where they change."""
    device_update: dict[str, object] = {
        name: filled[name]
        for name in ("advertising_id", "kochava_device_id", "ip", "user_agent", "model", "os_version")
        if name in filled
    }
    if "limit_ad_tracking" in filled:
        device_update["limit_ad_tracking"] = bool(filled["limit_ad_tracking"])
    if "att_status" in filled:
        att_time, att_duration = filled.get("att_time"), filled.get("att_duration")
        device_update["att"] = {  # an Att's values, in its fields' order
            "status": filled["att_status"] if filled["att_status"] in ATT_STATUSES else None,
            "time": float(att_time) if isinstance(att_time, int | float) else None,
            "duration": float(att_duration) if isinstance(att_duration, int | float) else None,
        }
    update: dict[str, Any] = {}
    if any(name in filled for name in CONSENT_FIELDS):
        flags = {name: _flag(filled.get(name)) for name in CONSENT_FIELDS}
        update["consent"] = {  # a Consent's values, in its fields' order
            "gdpr_applies": flags["gdpr_applies"],
            "tc_string": None,
            "ad_user_data": flags["ad_user_data"],
            "ad_personalization": flags["ad_personalization"],
        }
    if device_update:
        update["device"] = {**event["device"], **device_update}
    if "user_id" in filled:
        update["user_id"] = str(filled["user_id"])
    if "app_version" in filled:
        app = event["app"] or {"bundle_id": None, "version": None, "build": None}
        update["app"] = {**app, "version": str(filled["app_version"])}
    return {**event, **update}


def _flag(value: ProfileValue | None) -> bool | None:
    return value if isinstance(value, bool) else None


def merge_context(
    ctx: Mapping[str, ProfileValue], old: Mapping[str, ProfileValue] | None, *, newer: bool = True
) -> tuple[Profile, bool]:
    """``(profile after applying an event's own fields, whether a remembered field changed)``.

    ``newer``: the event is at least as recent as the last one applied (it overwrites; else it only fills gaps).
    Bookkeeping fields are carried over untouched.
    """
    new: Profile = dict(old or {})
    incoming = {
        name: value
        for name, value in ctx.items()
        if name in REMEMBERED and not (name == "advertising_id" and isinstance(value, str) and is_zero_id(value))
    }
    has_consent = any(name in incoming for name in CONSENT_FIELDS)
    if newer:
        # Groups: an answer without a time must not keep the old answer's time; a consent without ad_user_data
        # must not keep the old one's.
        for group, present in ((ATT_FIELDS, "att_status" in incoming), (CONSENT_FIELDS, has_consent)):
            if present:
                for name in group:
                    new.pop(name, None)
        new.update(incoming)
        if _opts_out(ctx):
            new.pop("advertising_id", None)
    else:
        if "att_status" in incoming and "att_status" not in new:
            new.update({name: incoming[name] for name in ATT_FIELDS if name in incoming})
        if has_consent and not any(name in new for name in CONSENT_FIELDS):
            new.update({name: incoming[name] for name in CONSENT_FIELDS if name in incoming})
        for name, value in incoming.items():
            if name not in ATT_FIELDS and name not in CONSENT_FIELDS:
                new.setdefault(name, value)
    if _opts_out(new):
        new.pop("advertising_id", None)
    if refuses_personal_data(new):
        for name in PERSONAL_FIELDS:
            new.pop(name, None)
    before = {name: old.get(name) for name in REMEMBERED} if old else {}
    after = {name: new.get(name) for name in REMEMBERED}
    changed = {k: v for k, v in before.items() if v is not None} != {k: v for k, v in after.items() if v is not None}
    return new, changed


def updated_profile(event: Event | EventValues, old: Mapping[str, ProfileValue] | None, now: float) -> Profile | None:
    """The profile to store after ``event`` (its *own* fields, before any fill), or None when no write is needed.

    A write is needed when a remembered field changed, or the stored profile was last written more than
    :data:`REFRESH_AFTER_S` ago (its expiry must move forward while the device is active).
    """
    fields = _values(event)
    ctx = context_of(fields)
    event_at = min(float(fields["timestamp"]), now)  # a device clock ahead of ours must not pin the profile
    last = old.get(LAST_EVENT_AT) if old else None
    newer = not isinstance(last, int | float) or event_at >= float(last)
    new, changed = merge_context(ctx, old, newer=newer)
    updated_at = old.get(UPDATED_AT) if old else None
    stale = not isinstance(updated_at, int | float) or now - float(updated_at) >= REFRESH_AFTER_S
    if old is not None and not changed and not stale:
        return None
    if old is None and not any(name in new for name in REMEMBERED):
        return None  # nothing worth remembering (an event with the device id alone)
    new[LAST_EVENT_AT] = max(event_at, float(last)) if isinstance(last, int | float) else event_at
    new[UPDATED_AT] = now
    return new
