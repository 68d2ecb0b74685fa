"""Segment calls before the mapping: which ones are filtered on purpose, and the batch envelope (pure).

The Segment routes take what Segment's and RudderStack's server libraries send: one call, or
``{"batch": [call, ...], "sentAt": ..., "context": {...}, "integrations": {...}}``. Each call is judged on its own:

* Call types the pipeline does not map (``page``, ``group``, ``alias``) are **filtered**: accepted, counted by
  type, never validated further, never sent, never dead-lettered.
* Segment's own destination switch is honoured: a call with ``integrations.Kochava: false``, or with
  ``integrations.All: false`` and no ``Kochava`` entry, would not reach Kochava through Segment either, so it is
  filtered too. ``integrations.Kochava`` as an object carries the native fields Segment lacks
  (``functions.pipeline.contract.KochavaIntegration``).
* The batch-level ``context`` and ``integrations`` apply to every call of the batch (as on Segment's HTTP API):
  they are merged into each call, the call's own values winning, one level deep (``context.device`` of the batch
  and of the call are merged key by key). The merged call is what is validated and what a DLQ message carries,
  so a dead-lettered call replays alone with everything it was sent with.
* ``messageId`` and ``timestamp`` are optional, as on Segment's HTTP Tracking API (:func:`complete_call`): a call
  without ``messageId`` gets ``<request id>#<position>`` (the API's request id and the call's position in the body:
  an SQS redelivery of the body gives the same ids); a call without ``timestamp`` gets Segment's: ``originalTimestamp``
  corrected for the client's clock skew, ``receivedAt - (sentAt - originalTimestamp)``, when ``sentAt`` (the call's,
  else the batch's) is there; else ``originalTimestamp``; else ``receivedAt``, the time the API received the request.
  The id and time are written into the call (so a dead-lettered or re-queued call carries them and replays to the
  same id and time), and a warning says which rule gave them. The received time is an input, never the clock.

Example:
    >>> filtered_because({"type": "page", "name": "Home"})
    'page calls are not mapped to Kochava'
    >>> filtered_because({"type": "track", "integrations": {"All": False}}) is not None
    True
    >>> merge_shared({"context": {"device": {"type": "ios"}, "locale": "en-US"}},
    ...              {"type": "track", "context": {"device": {"id": "V"}}})["context"]
    {'device': {'type': 'ios', 'id': 'V'}, 'locale': 'en-US'}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from functions.pipeline.contract import parse_timestamp

UNMAPPED_TYPES: Final = frozenset({"page", "group", "alias"})
CALL_TYPES_TEXT: Final = "track, screen, identify, page, group or alias"  # every call type a route accepts
# Batch-level keys that apply to every call of the batch.
SHARED_KEYS: Final = ("context", "integrations")
KOCHAVA: Final = "Kochava"


def filtered_because(call: dict[str, Any]) -> str | None:
    """Why a raw Segment call is deliberately not sent to Kochava, or None when it is to be mapped."""
    call_type = call.get("type")
    if type(call_type) is str and call_type in UNMAPPED_TYPES:
        return f"{call_type} calls are not mapped to Kochava"
    integrations = call.get("integrations")
    if type(integrations) is dict:
        switch = integrations.get(KOCHAVA)
        if switch is False:
            return "integrations.Kochava is false: the call is not for Kochava"
        if switch is None and integrations.get("All") is False:
            return "integrations.All is false and integrations.Kochava is not set: the call is not for Kochava"
    return None


def shared_fields(document: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The batch-level keys that apply to every call, and an error naming the field when one is not an object."""
    shared: dict[str, Any] = {}
    for key in SHARED_KEYS:
        value = document.get(key)
        if value is None:
            continue
        if type(value) is not dict:
            return {}, key
        if value:
            shared[key] = value
    return shared, None


def merge_shared(shared: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    """``call`` with the batch-level ``shared`` keys merged in (see the module docstring); ``call`` is not changed."""
    merged = dict(call)
    for key, batch_value in shared.items():
        own = merged.get(key)
        if own is None:
            merged[key] = batch_value
        elif type(own) is dict:
            merged[key] = _merge_one_level(batch_value, own)
    return merged


def _merge_one_level(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in own.items():
        under = out.get(key)
        out[key] = {**under, **value} if type(under) is dict and type(value) is dict else value
    return out


@dataclass(frozen=True, slots=True)
class Received:
    """What the ingest API knows of the request a body came in: its request id and when it received it (epoch ms),
    the ``request_id`` and ``received_at_ms`` message attributes. Either may be unknown (a body not from the API)."""

    request_id: str | None = None
    received_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Incomplete:
    """A call whose missing ``timestamp`` cannot be derived: the field to name, the problem, and the call with what
    could be derived (its ``messageId``), as it is dead-lettered."""

    field: str
    message: str
    call: dict[str, Any]


def derived_message_id(request_id: str, position: int) -> str:
    """The ``messageId`` of a call sent without one: the API's request id and the call's position in the body.

    >>> derived_message_id("c6af9ac6-7b61-11e6-9a41-93e8deadbeef", 3)
    'c6af9ac6-7b61-11e6-9a41-93e8deadbeef#3'
    """
    return f"{request_id}#{position}"


def complete_call(
    call: dict[str, Any], position: int, received: Received, batch_sent_at: Any = None
) -> tuple[dict[str, Any], list[str]] | Incomplete:
    """``call`` with ``messageId`` and ``timestamp`` filled in as Segment's API fills them (module docstring), and
    a warning per filled field; ``call`` itself is not changed. A call that has both is returned as is.

    >>> call, notes = complete_call({"type": "track", "originalTimestamp": "2026-11-20T12:00:00Z",
    ...     "sentAt": "2026-11-20T12:00:10Z"}, 2, Received("req-1", 1795176000000))
    >>> call["messageId"], call["timestamp"]
    ('req-1#2', '2026-11-20T11:59:50.000Z')
    >>> notes[1].split(": ")[-1]
    'receivedAt - (sentAt - originalTimestamp)'
    """
    has_id = _present(call.get("messageId"))
    if has_id and _present(call.get("timestamp")):
        return call, []
    completed, notes = dict(call), []
    if not has_id and received.request_id:
        completed["messageId"] = derived_message_id(received.request_id, position)
        notes.append("messageId: not sent; derived from the API's request id and the call's position")
    if not _present(call.get("timestamp")):
        timing = _segment_timestamp(call, received.received_at_ms, batch_sent_at)
        if isinstance(timing, tuple) and timing[0] is None:
            return Incomplete("originalTimestamp", timing[1], completed)
        if timing is not None:
            completed["timestamp"], note = timing
            notes.append(note)
    return completed, notes


def _segment_timestamp(
    call: dict[str, Any], received_at_ms: int | None, batch_sent_at: Any
) -> tuple[str | None, str] | None:
    """Segment's timestamp of a call without one, with the warning naming the rule; None when nothing gives one;
    ``(None, problem)`` when ``originalTimestamp`` is unreadable."""
    original = call.get("originalTimestamp")
    if not _present(original):
        if received_at_ms is None:
            return None  # the model then says "timestamp: is required"
        return _iso_ms(received_at_ms), "timestamp: not sent, nor originalTimestamp; the time the API received it used"
    try:
        original_ms = _ms(parse_timestamp(original))
    except ValueError as exc:
        return None, f"originalTimestamp: {exc} (read because timestamp is not sent)"
    sent_at = call.get("sentAt") if _present(call.get("sentAt")) else batch_sent_at
    sent_at_s = _timestamp_or_none(sent_at)
    if sent_at_s is None or received_at_ms is None:
        why = "no readable sentAt" if sent_at_s is None else "no received time"
        note = f"timestamp: not sent; originalTimestamp used as is ({why} to correct the clock skew)"
        return _iso_ms(original_ms), note
    # In whole milliseconds (the precision of all three), so float seconds cannot put the result 1 ms off.
    corrected_ms = received_at_ms - (_ms(sent_at_s) - original_ms)
    rule = "receivedAt - (sentAt - originalTimestamp)"
    return _iso_ms(corrected_ms), f"timestamp: not sent; originalTimestamp corrected for the client clock skew: {rule}"


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _timestamp_or_none(value: Any) -> float | None:
    if not _present(value):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _ms(epoch_s: float) -> int:
    return round(epoch_s * 1000)


def _iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds (``...Z``), the form Segment's timestamps have.

    >>> _iso_ms(1795176000123)
    '2026-11-20T12:00:00.123Z'
    """
    seconds, millis = divmod(epoch_ms, 1000)
    moment = datetime.fromtimestamp(seconds, UTC) + timedelta(milliseconds=millis)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
