"""What becomes of one event of an ingest message: a typed decision, from explicit inputs, without I/O.

:func:`decide` takes one parsed item of the message, whether its API key may send it (``SOURCE_APPS``), its device
profile as the message has it so far, the settings and the clock, and answers with one of:

==================  ==============================================================================================
:class:`Forward`    on its way to the delivery queue (its Kochava payload in ``outcome``)
:class:`DeadLetter` to the ingest DLQ, with a reason: invalid, ``app_not_allowed``, rejected by the mapping
                    (``missing_app_id``, ``no_device_identifier``); later also ``payload_too_large``
:class:`Filter`     dropped on purpose and counted by type (Segment ``page`` / ``group`` / ``alias``,
                    ``FILTERED_EVENTS`` such as heartbeat, a Segment call that switched Kochava off)
:class:`Requeue`    an install re-queued alone to ask Apple again later (only the AdServices step turns a
                    :class:`Forward` into one: :func:`after_adservices`)
==================  ==============================================================================================

wrapped in :class:`Decided` with what the event changes of its device profile: the fields filled from it, and the
profile after it (an accepted event's own fields update it, in message order). The core
(:mod:`functions.enricher.core`) does the I/O around these decisions: the profile reads before, Apple, the hand-off
to SQS and the profile writes after.

Example:
    >>> from functions.pipeline.events import parse_body
    >>> from functions.pipeline.settings import Settings
    >>> [item] = parse_body('{"uuid": "u-1", "type": "track", "name": "heartbeat", "timestamp": 1700000000,'
    ...                     ' "device": {"platform": "ios", "id": "D-1"}}', route="native")
    >>> decided = decide(0, item, not_allowed=None, key=None, profile=None,
    ...                  settings=Settings(kochava_app_id_ios="g"), now=1700000000.0, body_of=lambda i: "")
    >>> decided.decision
    Filter(call_type='track', name='heartbeat', uuid='u-1')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.messages import OutgoingMessage
from functions.pipeline import profiles
from functions.pipeline.contract import values_of
from functions.pipeline.events import EventValues, FilteredCall, Parsed, ParsedValues, Rejection, parse_warnings
from functions.pipeline.jsontext import compact_json
from functions.pipeline.kochava import Outcome, to_kochava

if TYPE_CHECKING:
    from functions.pipeline.settings import Settings
    from functions.pipeline.sources import NotAllowed


@dataclass(slots=True)
class Forward:
    """On its way to the delivery queue."""

    index: int  # its position in the message
    event: EventValues  # after profile fill (the internal event as plain data)
    original: EventValues  # as received (what a re-queue or a DLQ message carries)
    outcome: Outcome  # status "ok": the Kochava payload


@dataclass(slots=True)
class DeadLetter:
    """To the ingest DLQ, with why (the message itself is built by the core: ``Enricher.dead_letter``)."""

    body: str  # the event as received
    reason: str
    field: str | None
    error: str | None
    uuid: str | None
    event_name: str | None


@dataclass(slots=True)
class Filter:
    """Dropped on purpose, counted: ``call_type`` is the metric's dimension, ``name`` the log's key of the uuid."""

    call_type: str
    name: str
    uuid: str | None


@dataclass(slots=True)
class Requeue:
    """An install re-queued alone to the ingest queue, to ask Apple again after a delay."""

    index: int
    message: OutgoingMessage


Decision = Forward | DeadLetter | Filter | Requeue


@dataclass(slots=True)
class Decided:
    """One event's decision, and what it changes of its device profile."""

    decision: Decision
    filled: bool = False  # at least one field came from its device profile
    profile: profiles.Profile | None = None  # its device profile after it; None: unchanged


def decide(
    index: int,
    item: ParsedValues | Parsed,
    *,
    not_allowed: NotAllowed | None,
    key: str | None,
    profile: profiles.Profile | None,
    settings: Settings,
    now: float,
    body_of: Callable[[int], str],
) -> Decided:
    """The decision for the ``index``-th item of a message. ``not_allowed``: why its API key may not send it (None:
    it may); ``key`` / ``profile``: its device-profile key (None: no profile for it) and that profile as the
    message has it so far; ``body_of``: the raw JSON of an event of the message, by position (a dead letter
    carries the event as it was received). The event is plain data (``events.parse_body_values``); a model
    (``parse_body``) is read through its values."""
    if isinstance(item, Rejection):
        return Decided(rejection_letter(item))
    if isinstance(item, FilteredCall):  # Segment page / group / alias: counted by type, never sent
        return Decided(Filter(item.call_type, item.call_type, item.uuid or None))
    original = item if isinstance(item, dict) else values_of(item)
    uuid, name = original["uuid"], original["name"] or original["type"]
    if not_allowed is not None:  # its API key may not send to its app: nothing else is done with it
        letter = DeadLetter(body_of(index), not_allowed.reason, not_allowed.field, not_allowed.message, uuid, name)
        return Decided(letter)
    event, filled = profiles.fill_from_profile(original, profile)
    outcome = to_kochava(event, settings, now=now)
    outcome.warnings[:0] = parse_warnings(original)  # a Segment call's derived messageId / timestamp, say so
    if outcome.status == "rejected":
        reason = outcome.reason or "rejected"
        letter = DeadLetter(body_of(index), reason, outcome.field, outcome.message, uuid, name)
        return Decided(letter, bool(filled))
    # Accepted (ok or filtered): its own fields feed the profile, in message order.
    updated = profiles.updated_profile(original, profile, now) if key else None
    if outcome.status == "filtered":
        return Decided(Filter(original["type"], name, uuid), bool(filled), updated)
    return Decided(Forward(index, event, original, outcome), bool(filled), updated)


def rejection_letter(item: Rejection) -> DeadLetter:
    """The dead letter of an event the parser rejected (it keeps the raw event, or the body when not JSON)."""
    body = item.raw if isinstance(item.raw, str) else compact_json(item.raw)
    return DeadLetter(body, item.reason, item.field, item.message, item.uuid, item.event_name)
