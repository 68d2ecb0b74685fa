"""The pure part of the privacy tool: whose data an erase removes, which profile keys and DLQ messages are theirs.

No boto3, no clock, no printing: everything is a function of its arguments (tested without AWS in
``tests/unit/privacy``). The AWS side is :mod:`tools.privacy.aws`, the order of the work :mod:`tools.privacy.ops`.

Matching is on identifiers, compared case-insensitively (an IDFA arrives upper case from one SDK and lower case
from another): a device id (IDFV / Android ID), an advertising id (IDFA / ADID) or a Kochava device id, under any
of the keys the three message shapes use (native ``device.id``, Segment ``context.device.id`` /
``advertisingId``, a Kochava payload's ``kochava_device_id`` / ``device_ids`` / IdentityLink ``device_id``), and,
when erasing by user id, ``user_id`` / ``userId``. All-zero advertising ids identify nobody and never match.

Example:
    >>> judge_body('{"uuid": "u-1", "device": {"platform": "ios", "id": "idfv-1"}}', Wanted.of(["IDFV-1"])).action
    'delete'
    >>> profile_keys(["app-guid"], "ios", "Ab-1")
    ['app-guid#ios#ab-1', 'app-guid#ios#Ab-1', 'app-guid#ios#AB-1']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from functions.pipeline.kochava import is_zero_id
from functions.pipeline.profiles import legacy_profile_key, profile_key
from tools import robust

# Keys whose value identifies a device, compared after lower-casing and dropping everything but letters and digits.
DEVICE_KEYS: Final = frozenset({"deviceid", "advertisingid", "kochavadeviceid", "idfa", "idfv", "adid", "androidid"})
# `id` is a device id only inside a `device` object (native `device.id`, Segment `context.device.id`).
DEVICE_ID_PARENTS: Final = frozenset({"device"})
USER_KEYS: Final = frozenset({"userid"})
# Profile attributes that name the same device under another identifier.
PROFILE_ID_FIELDS: Final = ("advertising_id", "kochava_device_id")

Action = Literal["keep", "delete", "rewrite"]


def _norm_key(key: str) -> str:
    return "".join(c for c in key.lower() if c.isalnum())


def _norm(value: str) -> str:
    return value.strip().casefold()


@dataclass(frozen=True)
class Wanted:
    """The identifiers (case-folded) whose data is erased: device-level ids and user ids."""

    identifiers: frozenset[str] = frozenset()
    user_ids: frozenset[str] = frozenset()

    @classmethod
    def of(cls, identifiers: Iterable[str] = (), user_ids: Iterable[str] = ()) -> Wanted:
        """Empty and all-zero values are dropped: they identify nobody.

        >>> sorted(Wanted.of(["ABC", "", "00000000-0000-0000-0000-000000000000"], ["U-1"]).identifiers)
        ['abc']
        """
        ids = frozenset(_norm(v) for v in identifiers if v and v.strip() and not is_zero_id(v.strip()))
        return cls(ids, frozenset(_norm(v) for v in user_ids if v and v.strip()))

    def __bool__(self) -> bool:
        return bool(self.identifiers or self.user_ids)

    def union(self, other: Wanted) -> Wanted:
        return Wanted(self.identifiers | other.identifiers, self.user_ids | other.user_ids)

    def match_key(self, key: str, value: Any, parent: str | None) -> bool:
        """True when ``value`` under ``key`` (in an object under ``parent``) is one of the wanted ids."""
        if not isinstance(value, str | int) or isinstance(value, bool):
            return False
        norm_key, text = _norm_key(key), _norm(str(value))
        if norm_key in DEVICE_KEYS or (
            norm_key == "id" and parent is not None and _norm_key(parent) in DEVICE_ID_PARENTS
        ):
            return text in self.identifiers
        return norm_key in USER_KEYS and text in self.user_ids

    def match_text(self, text: str) -> list[str]:
        """The wanted values found in text that is not JSON (whole tokens only, any case)."""
        found = []
        for value in sorted(self.identifiers | self.user_ids):
            if re.search(rf"(?<![0-9a-z]){re.escape(value)}(?![0-9a-z])", text, flags=re.IGNORECASE):
                found.append(value)
        return found


def matches(value: Any, wanted: Wanted, path: str = "", parent: str | None = None) -> list[str]:
    """The dotted paths in a parsed JSON value where a wanted identifier or user id sits.

    >>> matches({"payload": {"data": {"device_ids": {"idfa": "A-1"}}}}, Wanted.of(["a-1"]))
    ['payload.data.device_ids.idfa']
    """
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(item, dict | list):
                found.extend(matches(item, wanted, where, parent=str(key)))
            elif wanted.match_key(str(key), item, parent):
                found.append(where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(matches(item, wanted, f"{path}[{index}]", parent=parent))
    return found


@dataclass(frozen=True)
class Verdict:
    """What to do with one DLQ message: keep it, delete it, or rewrite it without the erased events (a batch that
    also holds other devices' events: those must not be lost)."""

    action: Action
    matched: tuple[str, ...] = ()  # where the wanted ids were found (paths; values for text bodies)
    new_body: str | None = None  # for "rewrite"
    removed_events: int = 0
    kept_events: int = 0


def judge_body(body: str, wanted: Wanted) -> Verdict:
    """The verdict for a DLQ message body: a raw native or Segment event, a whole request body (``{"batch": [...]}``
    or an array, as SQS redrive or an invalid body leave it), a delivery envelope, or text that is not JSON."""
    if not wanted:
        return Verdict("keep")
    parsed, is_json = robust.loads(body)
    if not is_json:  # not JSON, or nested too deep to walk: matched as text
        return Verdict("delete", ("(body text)",)) if wanted.match_text(body) else Verdict("keep")
    events = _batch_of(parsed)
    if events is None:
        found = matches(parsed, wanted)
        return Verdict("delete", tuple(found), removed_events=1) if found else Verdict("keep")
    return _judge_batch(parsed, events, wanted)


def _batch_of(parsed: Any) -> list[Any] | None:
    if isinstance(parsed, list):
        return parsed
    if isinstance(parsed, dict) and isinstance(parsed.get("batch"), list):
        return list(parsed["batch"])
    return None


def _judge_batch(parsed: Any, events: Sequence[Any], wanted: Wanted) -> Verdict:
    found: list[str] = []
    kept: list[Any] = []
    for index, event in enumerate(events):
        paths = matches(event, wanted, f"batch[{index}]")
        if paths:
            found.extend(paths)
        else:
            kept.append(event)
    removed = len(events) - len(kept)
    if not removed:
        return Verdict("keep")
    if not kept:
        return Verdict("delete", tuple(found), removed_events=removed)
    rest: Any = kept if isinstance(parsed, list) else {**parsed, "batch": kept}
    new_body = json.dumps(rest, ensure_ascii=False, separators=(",", ":"))
    return Verdict("rewrite", tuple(found), new_body, removed_events=removed, kept_events=len(kept))


# -------------------------------------------------------------------------------------------------- profiles


def profile_keys(app_ids: Iterable[str], platform: str, device_id: str) -> list[str]:
    """The keys a device's profile has under these apps: the enricher's (the id normalised), then the keys of
    profiles stored before ids were normalised (the id as sent) in the spellings that can be guessed: as given,
    upper and lower case. Any other spelling is found only by a scan of the table (``tools.privacy.ops``)."""
    variants = dict.fromkeys((device_id.strip(), device_id.strip().upper(), device_id.strip().lower()))
    keys = [profile_key(app, platform, device_id) for app in app_ids]
    keys += [legacy_profile_key(app, platform, v) for app in app_ids for v in variants if v]
    return list(dict.fromkeys(keys))


@dataclass(frozen=True)
class KeyParts:
    app_id: str
    platform: str
    device_id: str


def split_key(key: str) -> KeyParts | None:
    """``app#platform#device`` -> its parts (None for a key of another shape).

    >>> split_key("guid-1#android#9774d56d682e549c")
    KeyParts(app_id='guid-1', platform='android', device_id='9774d56d682e549c')
    """
    parts = key.split("#", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return KeyParts(*parts)


def profile_matches(key: str, profile: Mapping[str, Any], wanted: Wanted, platforms: frozenset[str]) -> bool:
    """True when a stored profile belongs to a wanted device (by its key's device id, when its platform is one of
    ``platforms``, or by a stored advertising / Kochava device id) or to a wanted user id."""
    parts = split_key(key)
    if parts is not None and parts.platform in platforms and _norm(parts.device_id) in wanted.identifiers:
        return True
    for name in PROFILE_ID_FIELDS:
        value = profile.get(name)
        if isinstance(value, str) and _norm(value) in wanted.identifiers:
            return True
    user_id = profile.get("user_id")
    return isinstance(user_id, str) and _norm(user_id) in wanted.user_ids


def identifiers_of(profile: Mapping[str, Any]) -> list[str]:
    """The other identifiers a stored profile knows for its device (to find its DLQ messages too)."""
    return [str(profile[name]) for name in PROFILE_ID_FIELDS if isinstance(profile.get(name), str)]


@dataclass
class Found:
    """One profile item that was (or, in a dry run, would be) deleted."""

    key: str
    fields: list[str] = field(default_factory=list)  # the attribute names it held (never the values)

    @property
    def parts(self) -> KeyParts | None:
        return split_key(self.key)
