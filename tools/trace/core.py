"""The pure part of trace: what the Lambdas' log lines say about an event, and the one status of each uuid.

No boto3, no clock reads, no printing: :func:`decide` is a function of what the sources found (idempotency records,
DLQ messages, log lines), so every rule is tested without AWS. The sources live in :mod:`tools.trace.sources`.

Statuses, first match wins:

==============  ================================================================================================
status          when
==============  ================================================================================================
delivered       a COMPLETED idempotency record (when, kind, app, Kochava's HTTP status, attempts), or, after the
                record expired (15 days), a deliverer log line "delivered to Kochava" / "duplicate skipped"
dead_lettered   a message with this uuid is in a DLQ now (which DLQ, reason, field, error, when)
pending         an INPROGRESS idempotency record (being sent now), or the newest log line says it is on its way:
                forwarded to the delivery queue, re-queued for Apple AdServices, or a transient failure retried
filtered        the newest log line: the enricher dropped it on purpose (an event in FILTERED_EVENTS, e.g.
                heartbeat; a Segment page / group / alias call, by call type; a call for another integration)
rejected        the newest log line: dead-lettered (reason, field, error), but no longer in the DLQ (purged, or
                replayed and not seen since)
not_found       none of the above: says what was searched, over which time range
==============  ================================================================================================

Example:
    >>> line = {"message": "event dead-lettered", "service": "enricher", "correlation_id": "u-1",
    ...         "timestamp": "2026-11-30 09:00:00,123+0000", "reason": "invalid_event", "field": "event"}
    >>> fact = fact_of(line, "u-1")
    >>> fact.what, fact.at_ms, fact.details["reason"]
    ('dead_lettered', 1796029200123, 'invalid_event')
    >>> decide("u-1", facts=[fact]).status
    'rejected'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from functions.names import (
    ATTR_ERROR,
    ATTR_FIELD,
    ATTR_KIND,
    ATTR_RESPONSE_BODY,
    ATTR_STATUS,
    ATTR_UUID,
)
from functions.pipeline.segment import UNMAPPED_TYPES
from tools import robust
from tools.dlq.core import REASON_ADVICE, DlqMessage, mask_text

Status = Literal["delivered", "dead_lettered", "pending", "filtered", "rejected", "not_found"]
STATUSES: Final = ("delivered", "dead_lettered", "pending", "filtered", "rejected", "not_found")

# The kinds of Kochava payload an event can become; the deliverer's idempotency key includes the kind.
KINDS: Final = ("install", "event", "identityLink")


# The deliverer's idempotency key (functions/deliverer/idempotency.py, ``IdempotentSender.send_once``): Powertools
# hashes this data under the key prefix, so trace can compute the key of a uuid for each kind and look it up.
def key_data(uuid: str, kind: str, app: str | None = None) -> dict[str, str | None]:
    """The data the deliverer hashes into the idempotency key of ``uuid`` + ``kind`` + ``app`` (a Kochava app GUID;
    ``functions.pipeline.delivery_key.KEY_JMESPATH``). tests/integration/deliverer checks this function against the
    deliverer's own records, so a change of the key fails a test until it is mirrored here."""
    return {"uuid": uuid, "kind": kind, "app": app}


def key_candidates(uuid: str, apps: Sequence[str] = ()) -> list[tuple[str, dict[str, str | None]]]:
    """(kind, key data) for every kind and app, without repeats (a key without the app needs no app).

    >>> [(kind, data["app"]) for kind, data in key_candidates("u-1", ["guid-a", "guid-b"])][:3]
    [('install', 'guid-a'), ('install', 'guid-b'), ('event', 'guid-a')]
    """
    out: list[tuple[str, dict[str, str | None]]] = []
    seen: set[str] = set()
    for kind in KINDS:
        candidates: list[str | None] = [*apps] or [None]
        for app in candidates:
            data = key_data(uuid, kind, app)
            token = json.dumps(data, sort_keys=True)
            if token not in seen:
                seen.add(token)
                out.append((kind, data))
    return out


# Log lines of the Lambdas (their ``message``) -> what they say about the event they name.
LOG_MESSAGES: Final[Mapping[str, str]] = {
    "event dead-lettered": "dead_lettered",  # enricher: reason, field, error
    "adservices": "adservices",  # enricher: action requeue -> pending, else informational
    "delivered to Kochava": "delivered",  # deliverer: kind, http_status, attempts
    "already delivered: duplicate skipped": "delivered",
    "transient failure: SQS will retry": "retrying",  # deliverer: error, http_status
    "dead-lettered": "dead_lettered",  # deliverer: reason, error, http_status, response_body
    "unexpected error: SQS will redeliver": "retrying",
}
# The enricher's one line per SQS message names its events by outcome: {"forwarded": {kind: [uuid, ...]},
# "filtered": {event name: [uuid, ...]}} (functions/enricher).
MESSAGE_PROCESSED: Final = "message processed"
# Fields of a log line worth showing (never a payload: the Lambdas do not log one).
_SHOWN_FIELDS: Final = ("kind", "event_name", "reason", "field", "error", "http_status", "attempts", "action")
_FREE_TEXT: Final = frozenset({"error", "response_body"})


@dataclass(frozen=True)
class Fact:
    """One log line about one event: when, which Lambda, what it says (``LOG_MESSAGES`` values, ``forwarded``,
    ``filtered``, ``requeued``), and the fields worth showing."""

    at_ms: int | None
    service: str
    what: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": iso(self.at_ms),
            "service": self.service,
            "what": self.what,
            "message": self.message,
            **self.details,
        }


@dataclass(frozen=True)
class Record:
    """An idempotency record found for the uuid: the kind whose key matched, its status, its data."""

    kind: str
    status: str  # Powertools: COMPLETED | INPROGRESS | EXPIRED
    data: Mapping[str, Any] = field(default_factory=dict)
    in_progress_until_ms: int | None = None


@dataclass(frozen=True)
class DlqHit:
    """A DLQ message carrying the uuid."""

    dlq: str
    message: DlqMessage


@dataclass
class Trace:
    """The answer for one uuid."""

    uuid: str
    status: Status
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    facts: list[Fact] = field(default_factory=list)
    searched: dict[str, Any] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.status != "not_found"

    def to_json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "status": self.status,
            "summary": self.summary,
            "details": self.details,
            "log": [f.to_json() for f in self.facts],
            "searched": self.searched,
        }


# ---------------------------------------------------------------------------------------------------- log lines

_POWERTOOLS_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:[,.](\d{1,6}))?\s*(Z|[+-]\d{2}:?\d{2})?$")


def parse_time_ms(text: Any) -> int | None:
    """A Powertools / Logs Insights timestamp -> epoch ms (UTC when no offset); None when unreadable.

    >>> parse_time_ms("2026-11-30 09:00:00,123+0000"), parse_time_ms("2026-11-30 09:00:00.123")
    (1796029200123, 1796029200123)
    >>> parse_time_ms("2026-11-30T10:00:00.5+01:00"), parse_time_ms("yesterday")
    (1796029200500, None)
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        return int(text)
    m = _POWERTOOLS_TIME.match(str(text).strip())
    if not m:
        return None
    day, clock, frac, zone = m.groups()
    zone = "+0000" if zone in (None, "Z") else zone.replace(":", "")
    parsed = datetime.strptime(f"{day} {clock} {zone}", "%Y-%m-%d %H:%M:%S %z")
    return int(parsed.timestamp() * 1000) + int((frac or "0").ljust(3, "0")[:3])


iso = robust.iso  # epoch ms (int, Decimal, text) -> ISO text, never raising


def parse_line(text: str) -> dict[str, Any] | None:
    """A JSON log line as a dict; None for anything else (EMF blobs are dicts too, and carry no ``message``)."""
    try:
        line = json.loads(text)
    except ValueError:
        return None
    return line if isinstance(line, dict) and isinstance(line.get("message"), str) else None


def fact_of(line: Mapping[str, Any], uuid: str, at_ms: int | None = None) -> Fact | None:
    """What ``line`` says about event ``uuid``; None when the line is not about it (a substring match is not enough:
    the search finds candidates, this decides)."""
    message = str(line.get("message", ""))
    service = str(line.get("service", "?"))
    when = parse_time_ms(line.get("timestamp")) if at_ms is None else at_ms
    if message == MESSAGE_PROCESSED:
        return _processed_fact(line, uuid, when, service)
    what = LOG_MESSAGES.get(message)
    if what is None or line.get("correlation_id") != uuid:
        return None
    details = {k: line[k] for k in _SHOWN_FIELDS if line.get(k) is not None}
    if what == "adservices":
        what = "requeued" if line.get("action") == "requeue" else "adservices"
    return Fact(when, service, what, message, details)


def _processed_fact(line: Mapping[str, Any], uuid: str, when: int | None, service: str) -> Fact | None:
    for outcome, detail_key in (("forwarded", "kind"), ("filtered", "event_name")):
        groups = line.get(outcome)
        if not isinstance(groups, Mapping):
            continue
        for name, uuids in groups.items():
            if isinstance(uuids, list) and uuid in uuids:
                return Fact(when, service, outcome, MESSAGE_PROCESSED, {detail_key: name})
    return None


def facts_for(uuid: str, lines: Iterable[tuple[int | None, Mapping[str, Any]]]) -> list[Fact]:
    """The facts about ``uuid`` among ``(time or None, line)`` pairs, oldest first."""
    facts = [f for at, line in lines if (f := fact_of(line, uuid, at)) is not None]
    return sorted(facts, key=lambda f: f.at_ms or 0)


# ------------------------------------------------------------------------------------------------------ masking


def masked(details: Mapping[str, Any], *, reveal: bool) -> dict[str, Any]:
    """``details`` with free-text values (``error``, ``response_body``) masked unless ``reveal``."""
    return {
        k: (mask_text(str(v)) if k in _FREE_TEXT and v is not None and not reveal else v) for k, v in details.items()
    }


def masked_fact(fact: Fact, *, reveal: bool) -> Fact:
    return Fact(fact.at_ms, fact.service, fact.what, fact.message, masked(fact.details, reveal=reveal))


# ------------------------------------------------------------------------------------------------------- decide


def decide(
    uuid: str,
    *,
    records: Sequence[Record] = (),
    dlq_hits: Sequence[DlqHit] = (),
    facts: Sequence[Fact] = (),
    searched: Mapping[str, Any] | None = None,
    reveal: bool = False,
) -> Trace:
    """The one status of ``uuid`` from what the sources found (see the module docstring for the rules)."""
    facts = [masked_fact(f, reveal=reveal) for f in facts]
    trace = Trace(uuid, "not_found", "", facts=list(facts), searched=dict(searched or {}))
    # EXPIRED: past its 15 days but not yet removed by DynamoDB's TTL; its data still says when it was delivered.
    completed = [r for r in records if r.status == "COMPLETED" or (r.status == "EXPIRED" and r.data)]
    in_progress = [r for r in records if r.status == "INPROGRESS"]
    if completed:
        return _delivered_by_record(trace, completed[0])
    if dlq_hits:
        return _dead_lettered(trace, dlq_hits, reveal=reveal)
    if in_progress:
        record = in_progress[0]
        trace.status = "pending"
        until = iso(record.in_progress_until_ms)
        trace.summary = f"being sent to Kochava now ({record.kind}); this attempt ends by {until}"
        trace.details = {"kind": record.kind, "in_progress_until": until}
        return trace
    if facts:
        return _by_newest_fact(trace, facts[-1])
    trace.summary = "no idempotency record, in no DLQ, no log line about it (searched below)"
    return trace


def _delivered_by_record(trace: Trace, record: Record) -> Trace:
    data = record.data
    at = iso(_int(data.get("delivered_at_ms")))
    kind = data.get("kind") or record.kind
    trace.status = "delivered"
    trace.details = {
        "delivered_at": at,
        "kind": kind,
        "app": data.get("app"),
        "http_status": data.get("http_status"),
        "attempts": data.get("attempts"),
        "source": "idempotency record",
    }
    status = data.get("http_status")
    trace.summary = (
        f"delivered to Kochava as {kind}" + (f" at {at}" if at else "") + (f", HTTP {status}" if status else "")
    )
    return trace


def _dead_lettered(trace: Trace, hits: Sequence[DlqHit], *, reveal: bool) -> Trace:
    newest = max(hits, key=lambda h: h.message.first_failure_ms or 0)
    msg = newest.message
    details: dict[str, Any] = {
        "dlq": newest.dlq,
        "reason": msg.reason,
        "stage": msg.stage,
        "field": msg.attr(ATTR_FIELD),
        "error": msg.attr(ATTR_ERROR),
        "http_status": msg.attr(ATTR_STATUS),
        "response_body": msg.attr(ATTR_RESPONSE_BODY),
        "kind": msg.attr(ATTR_KIND),
        "event_name": msg.event_name,
        "failed_at": iso(msg.first_failure_ms),
        "message_id": msg.message_id,
        "replayable": msg.replayable,
        "what_to_do": REASON_ADVICE.get(msg.reason, "read the message: python -m tools.dlq show ID"),
    }
    if len(hits) > 1:
        details["copies"] = len(hits)
    trace.status = "dead_lettered"
    trace.details = {k: v for k, v in masked(details, reveal=reveal).items() if v is not None}
    where = f" ({details['field']})" if details["field"] else ""
    trace.summary = f"in {newest.dlq} since {details['failed_at'] or '?'}: {msg.reason}{where}"
    return trace


def filtered_rule(name: str) -> str:
    """The rule that filtered an event, from the name the enricher's log files it under: a Segment call type it
    does not map (``page``, ``group``, ``alias``), a Segment call whose ``integrations`` switch Kochava off (filed
    under its type), else an event name in ``FILTERED_EVENTS``.

    >>> filtered_rule("page")
    'a Segment page call: page calls are not mapped to Kochava (filtered by call type)'
    >>> filtered_rule("heartbeat")
    'heartbeat is in FILTERED_EVENTS'
    """
    if name in UNMAPPED_TYPES:
        return f"a Segment {name} call: {name} calls are not mapped to Kochava (filtered by call type)"
    if name in ("track", "screen", "identify"):
        return (
            f"a Segment {name} call whose integrations switch Kochava off (integrations.Kochava false, or All "
            f"false without Kochava), or an event named {name} in FILTERED_EVENTS"
        )
    return f"{name} is in FILTERED_EVENTS"


def _by_newest_fact(trace: Trace, fact: Fact) -> Trace:
    at = iso(fact.at_ms)
    trace.details = {**fact.details, "service": fact.service, "at": at, "source": "logs"}
    if fact.what == "delivered":
        trace.status = "delivered"
        trace.summary = f"delivered to Kochava as {fact.details.get('kind', '?')} at {at} (the {fact.service}'s log)"
    elif fact.what == "filtered":
        trace.status = "filtered"
        rule = filtered_rule(str(fact.details.get("event_name", "?")))
        trace.summary = (
            f"filtered on purpose by the {fact.service} at {at}: {rule} (counted as EventsFiltered, never sent to "
            "Kochava)"
        )
    elif fact.what == "dead_lettered":
        trace.status = "rejected"
        reason = fact.details.get("reason", "?")
        where = f" ({fact.details['field']})" if fact.details.get("field") else ""
        trace.summary = (
            f"rejected by the {fact.service} at {at}: {reason}{where}; no longer in its DLQ (purged, or replayed and "
            "not seen since)"
        )
    else:
        trace.status = "pending"
        trace.summary = f"on its way: {_PENDING_WORDS.get(fact.what, fact.message)} ({fact.service}, {at})"
    return trace


_PENDING_WORDS: Final[Mapping[str, str]] = {
    "forwarded": "on the delivery queue, not delivered yet",
    "requeued": "waiting for Apple AdServices attribution, re-queued to the ingest queue",
    "retrying": "Kochava failed transiently, SQS retries it",
    "adservices": "resolving Apple AdServices attribution",
}


def describe_searched(searched: Mapping[str, Any]) -> list[str]:
    """One line per source: what was searched, over which time range (or why it failed)."""
    lines = []
    for name, what in searched.items():
        text = what.get("text") if isinstance(what, Mapping) else what
        lines.append(f"{name}: {text}")
    return lines


def _int(value: Any) -> int | None:
    return robust.epoch_ms(value)


def uuids_in(msg: DlqMessage, uuids: frozenset[str]) -> list[str]:
    """Which of ``uuids`` a DLQ message carries: its ``uuid`` attribute, else (a whole body SQS redrove, or one that
    could not be parsed) those appearing in its body as JSON strings.

    >>> msg = DlqMessage("m-1", "r", '{"batch": [{"uuid": "a-1"}, {"uuid": "b-2"}]}')
    >>> uuids_in(msg, frozenset({"b-2", "c-3"}))
    ['b-2']
    """
    attr = msg.attr(ATTR_UUID)
    if attr is not None:
        return [attr] if attr in uuids else []
    return sorted(u for u in uuids if json.dumps(u) in msg.body)
