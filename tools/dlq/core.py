"""The pure part of the DLQ tool: message model, selection, grouping, masking, replay attributes.

No boto3, no clock reads, no printing: everything here is a function of its arguments, so it is tested without
AWS (``tests/integration/dlq/test_core.py``). The SQS side lives in :mod:`tools.dlq.sqs`.

Example:
    >>> mask_value("6D92078A-8246-4BA4-AE5B-76104861E7DC")
    '6D92…(36)'
    >>> age_bucket(2 * 3600.0)
    '1h-6h'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from functions.names import (
    ATTR_ERROR,
    ATTR_EVENT_NAME,
    ATTR_FAILED_AT_MS,
    ATTR_FIELD,
    ATTR_REASON,
    ATTR_RESPONSE_BODY,
    ATTR_STAGE,
    ATTR_STATUS,
    ATTR_TRUNCATED,
)
from functions.pipeline import reasons
from functions.pipeline.jsontext import escape_surrogates
from functions.pipeline.masking import is_personal_key, looks_like_email, mask_ipv6
from tools import robust

# Message attributes only a DLQ message carries: written by the stage that dead-lettered it, meaningless (and
# misleading if the message dies again) on the source queue. Everything else is copied back on replay.
DLQ_ONLY_ATTRIBUTES: Final = frozenset(
    {
        ATTR_STAGE,
        ATTR_REASON,
        ATTR_FIELD,
        ATTR_ERROR,
        ATTR_FAILED_AT_MS,
        ATTR_STATUS,
        ATTR_RESPONSE_BODY,
        ATTR_TRUNCATED,
    }
)

# Why the tool refuses to replay a non-replayable reason without --force (printed as is).
REFUSAL_WHY: Final = (
    "the event itself is invalid, so the enricher would dead-letter it again with the same reason; "
    "fix the sender, then purge these (or replay with --force if you know better)"
)
# ... and a redriven message that was replayed already: the consumer crashed on it again, so the fix did not help.
REFUSAL_WHY_REDRIVEN_AGAIN: Final = (
    "the consumer crashed on it again after a replay (attribute `replayed`), so replaying it again would loop; "
    "read the Lambda's logs and deploy a fix, then replay with --force"
)
# Written by `replay` on every message it sends back (the count of its replays). Not a DLQ-only attribute: it
# rides along on the source queue and comes back with a message SQS redrives again.
ATTR_REPLAYED: Final = "replayed"

# What on-call should do before replaying each reason (shown by `list`, documented in docs/runbook.md).
REASON_ADVICE: Final[Mapping[str, str]] = {
    reasons.INVALID_JSON: "not replayable: the sender posts a body that is not JSON",
    reasons.INVALID_BODY: "not replayable: JSON but not an event or a batch of 1..100",
    reasons.INVALID_EVENT: "not replayable: an event failed validation (see `field`)",
    reasons.NO_DEVICE_IDENTIFIER: "not replayable: no usable device id in the event",
    reasons.PAYLOAD_TOO_LARGE: "not replayable: the event is too big for one SQS message (see `field`, `error`)",
    reasons.MISSING_APP_ID: "replay after deploying the missing Kochava app GUID",
    reasons.APP_NOT_ALLOWED: (
        "the API key (api_key_id) is bound to other apps in SOURCE_APPS: tell the sender to use its own key; replay "
        "only after binding the key to this app (a replay is checked against the binding again)"
    ),
    reasons.KOCHAVA_REJECTED: "replay after fixing what Kochava rejected (see http_status / response_body)",
    reasons.KOCHAVA_BAD_RESPONSE: "replayable: Kochava answered 200 without success",
    reasons.RETRIES_EXHAUSTED: "replayable once Kochava is healthy again",
    reasons.UUID_CONFLICT: "not replayable: another event was delivered under this uuid; resend with a fresh uuid",
    reasons.REDRIVEN: (
        "replayable once the consumer no longer crashes (deploy the fix first); "
        "one that crashed again after a replay is refused without --force"
    ),
}

# DLQ kind (the QueueSpec key) -> the value of the `stage` attribute a message of that DLQ would carry.
STAGE_BY_QUEUE_KEY: Final[Mapping[str, str]] = {"ingest": "enricher", "delivery": "deliverer"}

# Age buckets, youngest first: (upper bound in seconds, label). Ages are measured from the first failure.
_HOUR = 3600.0
_DAY = 24 * _HOUR
AGE_BUCKETS: Final[Sequence[tuple[float, str]]] = (
    (_HOUR, "<1h"),
    (6 * _HOUR, "1h-6h"),
    (_DAY, "6h-24h"),
    (3 * _DAY, "1d-3d"),
    (7 * _DAY, "3d-7d"),
    (14 * _DAY, "7d-14d"),
    (float("inf"), ">=14d"),
)


@dataclass(frozen=True)
class DlqMessage:
    """One message received from a DLQ, as SQS gave it (attributes in SQS's typed form)."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # MessageAttributes
    system: Mapping[str, str] = field(default_factory=dict)  # Attributes: SentTimestamp, ApproximateReceiveCount...
    default_stage: str | None = None  # the stage of the DLQ it came from, for messages without a `stage`

    @classmethod
    def from_sqs(cls, raw: Mapping[str, Any], default_stage: str | None = None) -> DlqMessage:
        """Build from one element of ``ReceiveMessage``'s ``Messages``."""
        return cls(
            message_id=str(raw["MessageId"]),
            receipt_handle=str(raw["ReceiptHandle"]),
            body=str(raw.get("Body", "")),
            attributes={str(k): dict(v) for k, v in (raw.get("MessageAttributes") or {}).items()},
            system={str(k): str(v) for k, v in (raw.get("Attributes") or {}).items()},
            default_stage=default_stage,
        )

    def attr(self, name: str) -> str | None:
        """A message attribute's value as a string (String and Number alike), or None when absent."""
        value = self.attributes.get(name)
        if value is None:
            return None
        text = value.get("StringValue")
        return text if text is not None else None

    @property
    def reason(self) -> str:
        """The dead-letter reason; ``redriven`` when SQS moved it (no reason attribute)."""
        return self.attr(ATTR_REASON) or reasons.REDRIVEN

    @property
    def stage(self) -> str:
        return self.attr(ATTR_STAGE) or self.default_stage or "?"

    @property
    def replayable(self) -> bool:
        """Replaying can succeed: the reason allows it, the body was not cut to fit the DLQ (``truncated``), and it
        is not a redriven message that crashed its consumer again after a replay (that would loop)."""
        return (
            reasons.is_replayable(self.reason)
            and self.attr(ATTR_TRUNCATED) != "true"
            and not self.redriven_after_replay
        )

    @property
    def replayed(self) -> int:
        """How many times ``replay`` sent this message back (0 when never)."""
        return _int(self.attr(ATTR_REPLAYED)) or 0

    @property
    def redriven_after_replay(self) -> bool:
        """SQS redrove it (no reason) although it had been replayed: the consumer crashed on it again."""
        return self.reason == reasons.REDRIVEN and self.replayed > 0

    @property
    def event_name(self) -> str:
        """The ``event_name`` attribute, else what the body says (envelope, native or Segment event), else ``-``."""
        return self.attr(ATTR_EVENT_NAME) or event_name_from_body(self.body) or "-"

    @property
    def receive_count(self) -> int:
        return _int(self.system.get("ApproximateReceiveCount")) or 0

    @property
    def sent_ms(self) -> int | None:
        """When SQS accepted this message into the DLQ (epoch ms; SentTimestamp)."""
        return _int(self.system.get("SentTimestamp"))

    def arrived_since(self, since_ms: int) -> bool:
        """True when the message reached the DLQ at or after ``since_ms`` (e.g. during the current replay)."""
        sent = self.sent_ms
        return sent is not None and sent >= since_ms

    @property
    def first_failure_ms(self) -> int | None:
        """When it first failed: ``failed_at_ms``, else SQS's first receive, else its send time (epoch ms)."""
        for value in (
            self.attr(ATTR_FAILED_AT_MS),
            self.system.get("ApproximateFirstReceiveTimestamp"),
            self.system.get("SentTimestamp"),
        ):
            ms = _int(value)
            if ms is not None:
                return ms
        return None

    def age_s(self, now_ms: int) -> float:
        """Seconds since the first failure (0 when unknown)."""
        first = self.first_failure_ms
        return max(0.0, (now_ms - first) / 1000.0) if first is not None else 0.0


def _int(value: str | None) -> int | None:
    """A whole number from an attribute as stored; None for anything else ("1e400", "NaN", text)."""
    return robust.epoch_ms(value)


def event_name_from_body(body: str) -> str | None:
    """The event name a body carries: a delivery envelope's ``event_name``, a raw event's ``event`` / ``action``
    (or its ``type``), ``batch of N`` for a whole batch; None when it is not a JSON object."""
    raw, is_json = robust.loads(body)
    if not is_json or not isinstance(raw, dict):
        return None
    if isinstance(raw.get("batch"), list):
        return f"batch of {len(raw['batch'])}"
    for key in ("event_name", "event", "action", "type"):
        value = raw.get(key)
        if isinstance(value, str) and value:
            return value
    return None


# ---------------------------------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """Which messages a command acts on. Values of one selector are OR-ed, different selectors AND-ed;
    an empty selection matches everything."""

    reasons: frozenset[str] = frozenset()
    event_names: frozenset[str] = frozenset()  # compared case-insensitively
    ids: frozenset[str] = frozenset()
    older_than_s: float | None = None

    @classmethod
    def of(
        cls,
        reasons: Iterable[str] = (),
        event_names: Iterable[str] = (),
        ids: Iterable[str] = (),
        older_than_s: float | None = None,
    ) -> Selection:
        return cls(
            reasons=frozenset(reasons),
            event_names=frozenset(n.casefold() for n in event_names),
            ids=frozenset(ids),
            older_than_s=older_than_s,
        )

    @property
    def is_everything(self) -> bool:
        return not (self.reasons or self.event_names or self.ids) and self.older_than_s is None

    def matches(self, msg: DlqMessage, now_ms: int) -> bool:
        if self.reasons and msg.reason not in self.reasons:
            return False
        if self.event_names and msg.event_name.casefold() not in self.event_names:
            return False
        if self.ids and msg.message_id not in self.ids:
            return False
        return self.older_than_s is None or msg.age_s(now_ms) >= self.older_than_s

    def describe(self) -> str:
        parts = []
        if self.reasons:
            parts.append("reason in " + ",".join(sorted(self.reasons)))
        if self.event_names:
            parts.append("event name in " + ",".join(sorted(self.event_names)))
        if self.ids:
            parts.append(f"{len(self.ids)} message id(s)")
        if self.older_than_s is not None:
            parts.append(f"older than {format_age(self.older_than_s)}")
        return " and ".join(parts) or "everything"


def refusal_why(reason: str) -> str:
    """Why messages with this reason were refused (``redriven``: only ones redriven again after a replay are)."""
    return REFUSAL_WHY_REDRIVEN_AGAIN if reason == reasons.REDRIVEN else REFUSAL_WHY


def refused(msg: DlqMessage, *, force: bool) -> bool:
    """True when replaying ``msg`` must be refused: its reason is not replayable and --force was not given."""
    return not force and not msg.replayable


# ----------------------------------------------------------------------------------------------------- grouping


def age_bucket(age_s: float) -> str:
    for bound, label in AGE_BUCKETS:
        if age_s < bound:
            return label
    return AGE_BUCKETS[-1][1]


def format_age(age_s: float) -> str:
    """A short human age: ``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    s = int(age_s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


@dataclass(frozen=True)
class Group:
    """Messages of one DLQ sharing stage, reason, event name and age bucket."""

    stage: str
    reason: str
    event_name: str
    age: str
    count: int
    oldest_age_s: float
    replayable: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "reason": self.reason,
            "event_name": self.event_name,
            "age": self.age,
            "count": self.count,
            "oldest_age_s": round(self.oldest_age_s, 3),
            "replayable": self.replayable,
        }


def group(messages: Iterable[DlqMessage], now_ms: int) -> list[Group]:
    """Counts by (stage, reason, event name, age bucket), oldest group first (ties: by count, then name)."""
    counts: dict[tuple[str, str, str, str], list[float]] = {}
    for msg in messages:
        age = msg.age_s(now_ms)
        counts.setdefault((msg.stage, msg.reason, msg.event_name, age_bucket(age)), []).append(age)
    groups = [
        Group(stage, reason, name, bucket, len(ages), max(ages), reasons.is_replayable(reason))
        for (stage, reason, name, bucket), ages in counts.items()
    ]
    return sorted(groups, key=lambda g: (-g.oldest_age_s, -g.count, g.stage, g.reason, g.event_name))


# ------------------------------------------------------------------------------------------------------ masking

# Which keys hold personal data (device and advertising ids, IPs, user agents, user ids, consent strings,
# referrers, tokens, e-mail) is decided in one place, shared with the Lambdas' log masking.
KEEP_CHARS: Final = 4
_MIN_LEN_TO_KEEP: Final = 12  # shorter values (a short IP, a test id) are masked entirely


def is_sensitive_key(key: str, parent: str | None = None) -> bool:
    return is_personal_key(key, parent)


def mask_value(value: str) -> str:
    """``6D92078A-8246-…`` -> ``6D92…(36)``: the first 4 characters (none for short values) and the length."""
    if not value:
        return value
    keep = value[:KEEP_CHARS] if len(value) >= _MIN_LEN_TO_KEEP else ""
    return f"{keep}…({len(value)})"


# Keys whose values are the pipeline's own identifiers (an event's ``uuid``, a Segment ``messageId``, a request
# id): shown as they are, so on-call can trace them. Any other string is masked where it holds something shaped like
# a device id, an IP or an e-mail address (:func:`mask_text`), whatever its key: a body can carry a device id under
# any name (``{"a": "<IDFV>"}``), and private by default means the key is no excuse.
TRACE_KEYS: Final = frozenset({"uuid", "messageid", "requestid", "eventid"})


def _is_trace_key(key: str) -> bool:
    return "".join(c for c in key.lower() if c.isalnum()) in TRACE_KEYS


def mask_json(value: Any, parent: str | None = None) -> Any:
    """A copy of a parsed JSON value with every sensitive key's scalar value masked, every string that holds an
    e-mail address masked whole, and device-id, IP and UUID shapes masked in every other string but the event ids of
    :data:`TRACE_KEYS` (objects and lists are walked).

    >>> mask_json({"device": {"id": "IDFV-0000-1111"}, "user_id": "u-1", "properties": {"note": "me@example.com"}})
    {'device': {'id': 'IDFV…(14)'}, 'user_id': '…(3)', 'properties': {'note': '…(14)'}}
    >>> idfv = "A1B2C3D4-1111-2222-3333-444455556666"
    >>> mask_json({"uuid": idfv, "a": [idfv, "from 203.0.113.7"], "n": 7})
    {'uuid': 'A1B2C3D4-1111-2222-3333-444455556666', 'a': ['A1B2…(36)', 'from …(11)'], 'n': 7}
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, dict | list):
                out[key] = mask_json(item, parent=key)
            elif is_sensitive_key(key, parent) and item is not None and item != "":
                out[key] = f"…({len(str(item))})" if looks_like_email(str(item)) else mask_value(str(item))
            elif isinstance(item, str) and _is_trace_key(key) and not looks_like_email(item):
                out[key] = item
            else:
                out[key] = mask_json(item, parent=parent)
        return out
    if isinstance(value, list):
        return [mask_json(item, parent=parent) for item in value]
    if isinstance(value, str):
        return f"…({len(value)})" if looks_like_email(value) else mask_text(value)  # not even an address's start
    return value


_KEYED_VALUE = re.compile(r'("(?P<key>[A-Za-z_\-]+)"\s*:\s*")(?P<value>[^"]*)(")')
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_UUID = re.compile(r"\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


def mask_text(text: str) -> str:
    """Best effort for text that is not JSON (a broken body, an error message, Kochava's answer): mask
    ``"sensitive_key": "value"`` pairs, then anything shaped like an e-mail address, a UUID (IDFA/IDFV) or an IP
    address."""

    def keyed(m: re.Match[str]) -> str:
        if not is_sensitive_key(m.group("key")) or not m.group("value"):
            return m.group(0)
        return f"{m.group(1)}{mask_value(m.group('value'))}{m.group(4)}"

    def plain(m: re.Match[str]) -> str:
        return mask_value(m.group(0))

    out = _KEYED_VALUE.sub(keyed, text)
    out = _EMAIL.sub(lambda m: f"…({len(m.group(0))})", out)
    out = _UUID.sub(plain, out)
    out = mask_ipv6(out, mask_value)  # compressed forms too (2001:db8::7)
    return _IPV4.sub(plain, out)


def render_body(body: str, *, reveal: bool) -> tuple[str, bool]:
    """The body for display: pretty JSON when it parses (masked unless ``reveal``), else the text itself
    (masked best effort). Returns (text, is_json)."""
    parsed, is_json = robust.loads(body)
    if not is_json:  # not JSON, or nested too deep to walk: text
        return (body if reveal else mask_text(body)), False
    shown = parsed if reveal else mask_json(parsed)
    # A lone surrogate (read from an escaped "\ud800") cannot be printed: it is shown as the escape received.
    return escape_surrogates(json.dumps(shown, indent=2, ensure_ascii=False, sort_keys=False)), True


def body_for_json(body: str, *, reveal: bool) -> Any:
    """The body as a JSON value for ``--json`` output (the text itself when it is not JSON)."""
    parsed, is_json = robust.loads(body)
    if not is_json:
        return body if reveal else mask_text(body)
    return parsed if reveal else mask_json(parsed)


_TEXT_ATTRIBUTES: Final = frozenset({ATTR_ERROR, ATTR_RESPONSE_BODY})


def shown_attributes(msg: DlqMessage, *, reveal: bool) -> dict[str, str]:
    """The message attributes as name -> value, free-text ones masked unless ``reveal``."""
    out: dict[str, str] = {}
    for name in sorted(msg.attributes):
        value = msg.attr(name) or ""
        if not reveal and (name in _TEXT_ATTRIBUTES or is_sensitive_key(name)):
            value = mask_value(value) if is_sensitive_key(name) else mask_text(value)
        out[name] = value
    return out


# ------------------------------------------------------------------------------------------------------- replay


def replay_attributes(msg: DlqMessage) -> dict[str, dict[str, str]]:
    """The message attributes to send back to the source queue: the original ones (``route``, ``request_id``,
    ``received_at_ms``, ``uuid``, ``kind``, ``event_name``, ``adservices_attempt``...), without the DLQ-only ones."""
    out: dict[str, dict[str, str]] = {}
    for name, value in msg.attributes.items():
        if name in DLQ_ONLY_ATTRIBUTES:
            continue
        data_type = value.get("DataType", "String")
        if "StringValue" in value:
            out[name] = {"DataType": data_type, "StringValue": value["StringValue"]}
        elif "BinaryValue" in value:
            out[name] = {"DataType": data_type, "BinaryValue": value["BinaryValue"]}
    out[ATTR_REPLAYED] = {"DataType": "Number", "StringValue": str(msg.replayed + 1)}
    return out


# SendMessageBatch caps the sum of the messages' sizes (bodies + attribute names, types and values): an AWS limit.
SQS_BATCH_MAX_BYTES: Final = 1024 * 1024


def replay_size(msg: DlqMessage) -> int:
    """Bytes the message counts for in a SendMessageBatch once its DLQ-only attributes are dropped."""
    n = len(msg.body.encode())
    for name, value in replay_attributes(msg).items():
        n += len(name.encode()) + len(value.get("DataType", "").encode()) + len(str(value.get("StringValue", "")))
    return n


def size_batches(
    messages: Sequence[DlqMessage], max_entries: int, max_bytes: int = SQS_BATCH_MAX_BYTES
) -> list[list[DlqMessage]]:
    """Split into SendMessageBatch-sized groups: at most ``max_entries`` messages and ``max_bytes`` in total each
    (a message bigger than ``max_bytes`` alone goes in a group of its own; SQS then says why it refuses it)."""
    out: list[list[DlqMessage]] = []
    current: list[DlqMessage] = []
    size = 0
    for msg in messages:
        n = replay_size(msg)
        if current and (len(current) >= max_entries or size + n > max_bytes):
            out.append(current)
            current, size = [], 0
        current.append(msg)
        size += n
    if current:
        out.append(current)
    return out


def message_summary(msg: DlqMessage, now_ms: int) -> dict[str, Any]:
    """The one-line facts about a message used in replay / purge listings (no personal data)."""
    return {
        "id": msg.message_id,
        "stage": msg.stage,
        "reason": msg.reason,
        "event_name": msg.event_name,
        "age_s": round(msg.age_s(now_ms), 3),
        "replayable": msg.replayable,
    }
