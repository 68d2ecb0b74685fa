"""Both request shapes -> one internal :data:`Event`, one item per event, never an exception.

``parse_body`` takes an HTTP body exactly as API Gateway put it on the ingest queue and returns, in order, an
:data:`Event` or a :class:`Rejection` for every event in it. A rejection names the field and the problem in
words a mobile developer understands (``device.platform: must be ios or android``) and keeps the raw event so
it can be dead-lettered as it was received.

Example:
    >>> items = parse_body(b'{"batch": [{"uuid": "a", "type": "track", "event": "x", "timestamp": 1700000000,'
    ...                    b' "device": {"platform": "ios", "id": "V"}}, {"uuid": "b"}]}')
    >>> [type(i).__name__ for i in items]
    ['NativeEvent', 'Rejection']
    >>> items[1].field, items[1].message
    ('type', 'type: is required')

The hot path (the enricher, ``tools.transform``) parses with :func:`parse_body_values` instead: the same items, but
each event as plain data (:data:`EventValues`: the values of the ``NativeEvent`` it stands for, its parts as dicts),
validated by pydantic-core straight into dicts with no model instance built per event (issue 27). The models stay
the one source: the plain validators are derived from their core schemas (``contract.validate_native_values``,
``contract.validate_segment_call``), and :func:`event_model` / ``contract.values_of`` go from one form to the other.

    >>> body = b'{"uuid": "a", "type": "track", "event": "x", "timestamp": 1700000000, "device": {"platform": "ios"}}'
    >>> [event] = parse_body_values(body)
    >>> event["name"], event["device"]["platform"], event_model(NativeEvent, event) == parse_body(body)[0]
    ('x', 'ios', True)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar, get_args

import orjson
from pydantic import BaseModel, ValidationError

from functions.pipeline import reasons, segment
from functions.pipeline.contract import (
    MAX_BATCH_EVENTS,
    PLAIN_SEGMENT_MODELS,
    EventType,
    KochavaIntegration,
    NativeBatch,
    NativeEvent,
    SegmentDevice,
    SegmentEvent,
    SegmentOS,
    segment_platform,
    validate_native_values,
    validate_segment_call,
)
from functions.pipeline.jsontext import compact_json, escape_surrogates

Event = NativeEvent
"""The internal event: a validated, normalised native event (Segment calls are converted into it)."""
EventValues = dict[str, Any]
"""The internal event as plain data, what the hot path carries: the values of the :data:`Event` it stands for (every
field, by name), its device, ATT answer, app, AdServices, consent and install referrer as dicts of theirs; a Segment
call's parse warnings under ``notes`` when it has any (see :class:`NotedEvent`)."""

Route = Literal["native", "segment"]
AttStatusName = Literal["authorized", "denied", "restricted", "not_determined"]

_ATT_BY_SEGMENT_STATUS: dict[int, AttStatusName] = {
    0: "not_determined",
    1: "restricted",
    2: "denied",
    3: "authorized",
}
_SEGMENT_INSTALL_EVENT = "application installed"


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event (or a whole body) that cannot be processed; it goes to the ingest DLQ with this reason."""

    reason: str  # see functions.pipeline.reasons
    message: str  # "device.platform: must be ios or android"
    field: str | None  # "device.platform"; None when the body as a whole is wrong
    raw: Any  # the event as received (or the whole body when it is not JSON)
    uuid: str | None = None
    event_name: str | None = None


@dataclass(frozen=True, slots=True)
class FilteredCall:
    """A Segment call accepted but deliberately not mapped (``page``, ``group``, ``alias``, or a call whose
    ``integrations`` switch Kochava off): counted by ``call_type``, never sent, never dead-lettered."""

    uuid: str | None  # the call's messageId
    call_type: str  # "page", "group", "alias" (or the type of a call not for Kochava)
    message: str  # why, e.g. "page calls are not mapped to Kochava"
    reason: str = reasons.FILTERED_EVENT


Parsed = NativeEvent | Rejection | FilteredCall
ParsedValues = EventValues | Rejection | FilteredCall
"""What :func:`parse_body_values` gives per event: its events as :data:`EventValues`."""


class NotedEvent(NativeEvent):
    """An event with warnings from parsing: a Segment call whose ``messageId`` or ``timestamp`` was derived
    (``segment.complete_call``). The mapping's outcome carries them first (:func:`parse_warnings`)."""

    notes: tuple[str, ...] = ()


def parse_warnings(item: Parsed | ParsedValues) -> list[str]:
    """The warnings parsing left on an item (which rule gave a Segment call its ``timestamp``...), else ``[]``."""
    if type(item) is dict:
        return list(item.get("notes", ()))
    return list(item.notes) if isinstance(item, NotedEvent) else []


def parse_body(body: bytes | str, route: Route = "native", received: segment.Received | None = None) -> list[Parsed]:
    """Parse an ingest body (one event or ``{"batch": [...]}``) into one item per event, in order.

    ``received``: the request the body came in (Segment route: what derives a missing ``messageId`` / ``timestamp``,
    see ``segment.complete_call``)."""
    return _parse_body(body, route, received, parse_event)


def parse_body_values(
    body: bytes | str, route: Route = "native", received: segment.Received | None = None
) -> list[ParsedValues]:
    """:func:`parse_body` with each event as plain data (:data:`EventValues`): the hot path's parser."""
    return _parse_body(body, route, received, parse_event_values)


_Item = TypeVar("_Item", Parsed, ParsedValues)


def _parse_body(
    body: bytes | str, route: Route, received: segment.Received | None, parse: Callable[[Any, Route], _Item]
) -> list[_Item]:
    lenient = False
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson refuses an escaped unpaired surrogate ("\ud800"), which is valid JSON text that API Gateway
        # accepts. Parse such a body leniently so only the events that carry one are rejected, not their batch.
        document = _lenient_loads(body)
        if document is _NOT_JSON:
            raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            return [Rejection(reasons.INVALID_JSON, f"body: not valid JSON ({exc})", None, raw)]
        parse = partial(_parse_event_with_surrogates, parse=parse)
        lenient = True
    if isinstance(document, dict) and "batch" in document:
        batch = document["batch"]
        if not plain_batch(batch):
            try:
                NativeBatch.model_validate(_scrub_surrogates(document) if lenient else document)
            except ValidationError as exc:
                field, message = describe_error(exc)
                return [Rejection(reasons.INVALID_BODY, message, field, _dead_letter_body(document))]
        duplicated = _duplicate_batch_body(body)
        if duplicated is not None:
            return [Rejection(reasons.INVALID_BODY, DUPLICATE_BATCH_MESSAGE, "batch", duplicated)]
        if route == "segment":
            shared, bad = segment.shared_fields(document)
            if bad is not None:
                message = f"{bad}: must be an object (it applies to every call of the batch)"
                return [Rejection(reasons.INVALID_BODY, message, bad, _dead_letter_body(document))]
            if shared:
                batch = [segment.merge_shared(shared, call) for call in batch]
            return _parse_calls(batch, parse, received or _UNKNOWN, document.get("sentAt"))
        return [parse(raw_event, route) for raw_event in batch]
    if route == "segment":
        return _parse_calls([document], parse, received or _UNKNOWN, None)
    return [parse(document, route)]


_UNKNOWN = segment.Received()


def _parse_calls(
    calls: list[Any], parse: Callable[[Any, Route], _Item], received: segment.Received, sent_at: Any
) -> list[_Item]:
    """Segment calls, each completed (``messageId``, ``timestamp``) then parsed; warnings kept on the event."""
    items: list[_Item] = []
    for position, call in enumerate(calls):
        if type(call) is not dict:
            items.append(parse(call, "segment"))
            continue
        completed = segment.complete_call(call, position, received, sent_at)
        if isinstance(completed, segment.Incomplete):
            uuid = _call_id(completed.call.get("messageId"))
            raw = completed.call
            items.append(Rejection(reasons.INVALID_EVENT, completed.message, completed.field, raw, uuid=uuid))
            continue
        call, notes = completed
        item = parse(call, "segment")
        if notes:
            item = _noted(item, tuple(notes))
        items.append(item)
    return items


def _noted(item: _Item, notes: tuple[str, ...]) -> _Item:
    """``item`` carrying ``notes`` (an event as values, or a :class:`NotedEvent`); a rejection as it is."""
    if type(item) is dict:
        return {**item, "notes": notes}
    if isinstance(item, NativeEvent):
        return _trusted(NotedEvent, {**item.__dict__, "notes": notes})  # type: ignore[return-value]
    return item


DUPLICATE_BATCH_MESSAGE = (
    "batch: appears more than once in the body; JSON parsers keep only the last one, so the other events would be "
    "lost: send one batch per body"
)


def _duplicate_batch_body(body: bytes | str) -> str | None:
    r"""The body to dead-letter when its top-level object has two ``batch`` keys (orjson silently keeps the last
    one): every top-level key in order, duplicates kept, credentials left out; else None.

    Cheap first: the text ``"batch"`` twice in the body (a search at memory speed); only then are the top-level
    keys listed by the standard library. A key spelled with an escape (``"b\u0061tch"``) is not looked for.

    >>> _duplicate_batch_body('{"batch": [{"a": 1}], "writeKey": "k", "batch": [{"b": 2}]}')
    '{"batch":[{"a":1}],"batch":[{"b":2}]}'
    """
    if (body.count(b'"batch"') if isinstance(body, bytes) else body.count('"batch"')) < 2:
        return None
    try:
        pairs = json.loads(body, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return None
    if not isinstance(pairs, _Pairs) or sum(1 for key, _ in pairs if key == "batch") < 2:
        return None
    kept = [f"{compact_json(k)}:{compact_json(_objects(v))}" for k, v in pairs if k not in _SECRET_BODY_KEYS]
    return "{" + ",".join(kept) + "}"


class _Pairs(list[tuple[str, Any]]):
    """An object's members in order, duplicates kept (``object_pairs_hook``)."""


def _objects(value: Any) -> Any:
    """``value`` with every :class:`_Pairs` back as a dict (the last of duplicate keys wins, as orjson does)."""
    if isinstance(value, _Pairs):
        return {key: _objects(item) for key, item in value}
    if isinstance(value, list):
        return [_objects(item) for item in value]
    return value


def load_document(body: bytes | str) -> Any:
    r"""A body parsed as :func:`parse_body` parses it: orjson, else the lenient parser that keeps unpaired
    surrogates (so one event's ``"\ud800"`` never makes its siblings unreadable); ``None`` when it is not JSON.
    For :func:`raw_events` of a body whose events must travel as received (write them with
    ``jsontext.compact_json``).

    >>> load_document('{"k": "\\ud800"}') == {"k": "\ud800"}, load_document("{not json")
    (True, None)
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        document = _lenient_loads(body)
        return None if document is _NOT_JSON else document


def raw_events(document: Any, route: Route = "native", received: segment.Received | None = None) -> list[Any]:
    """The raw events of a parsed body, exactly as :func:`parse_body` validated them, by position: a batch's
    members (Segment calls with the batch-level ``context`` / ``integrations`` merged in and a derived ``messageId``
    / ``timestamp`` written in), or the body itself. What a DLQ message or a re-queued event carries, so it can be
    replayed alone (to the same id and time)."""
    if isinstance(document, dict) and isinstance(document.get("batch"), list):
        batch: list[Any] = document["batch"]
        if route == "segment":
            shared, bad = segment.shared_fields(document)
            if shared and bad is None:
                batch = [segment.merge_shared(shared, call) if type(call) is dict else call for call in batch]
            return _completed(batch, received or _UNKNOWN, document.get("sentAt"))
        return batch
    if route == "segment":
        return _completed([document], received or _UNKNOWN, None)
    return [document]


def _completed(calls: list[Any], received: segment.Received, sent_at: Any) -> list[Any]:
    out = []
    for position, call in enumerate(calls):
        completed = segment.complete_call(call, position, received, sent_at) if type(call) is dict else call
        out.append(completed[0] if isinstance(completed, tuple) else getattr(completed, "call", call))
    return out


def plain_batch(batch: Any) -> bool:
    """True when ``NativeBatch`` is sure to accept ``{"batch": batch}`` parsed by orjson: a list of 1 to 100 objects.

    (The lenient parser's object keys may hold a surrogate, which NativeBatch refuses: such a batch passes here
    too, and each of its events is judged on its own, so one bad key never sinks its siblings.) The model copies
    every event dict to check it: 7,800 instructions per Segment event in callgrind (5% of its parsing), for a
    check that nearly every body passes.
    """
    return (
        type(batch) is list
        and 0 < len(batch) <= MAX_BATCH_EVENTS
        and all(type(raw_event) is dict for raw_event in batch)
    )


_NOT_JSON = object()
_SURROGATE = re.compile("[\ud800-\udfff]")


# The integers orjson reads as integers (and can write back): signed 64-bit up to unsigned 64-bit.
_MIN_INT, _MAX_INT = -(2**63), 2**64 - 1


def _int_as_orjson_reads_it(literal: str) -> int | float:
    """An integer literal as ``orjson.loads`` turns it: beyond 64 bits it becomes a float, as orjson does, so
    both parsers give the mapping the same values (an int beyond 64 bits could not be written to Kochava)."""
    value = int(literal)
    return value if _MIN_INT <= value <= _MAX_INT else float(value)


def _lenient_loads(body: bytes | str) -> Any:
    """The standard library's parser, which keeps unpaired surrogates; ``_NOT_JSON`` when it fails too."""
    try:
        return json.loads(body, parse_int=_int_as_orjson_reads_it)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _surrogate_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (value or key) holding an unpaired surrogate, or None."""
    if isinstance(value, str):
        return (path or "event") if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if _SURROGATE.search(str(key)):
                return where
            found = _surrogate_path(item, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _surrogate_path(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


# Keys of a whole body that are credentials, not data: Segment's Python and Node libraries repeat the write key (the
# API key) in every batch body. A whole body that is dead-lettered (invalid_body) leaves them out.
_SECRET_BODY_KEYS = ("writeKey", "write_key")


def _dead_letter_body(document: Any) -> Any:
    """A whole body as its DLQ message keeps it: without credentials, unpaired surrogates replaced.

    >>> _dead_letter_body({"batch": [], "writeKey": "k-123"})
    {'batch': []}
    """
    if isinstance(document, dict) and any(key in document for key in _SECRET_BODY_KEYS):
        document = {key: value for key, value in document.items() if key not in _SECRET_BODY_KEYS}
    return _scrub_surrogates(document)


def _scrub_surrogates(value: Any) -> Any:
    """A copy with unpaired surrogates replaced by U+FFFD, so it can be written as UTF-8 (e.g. to a DLQ)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_scrub_surrogates(key): _scrub_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub_surrogates(item) for item in value]
    return value


def _parse_event_with_surrogates(raw: Any, route: Route, parse: Callable[[Any, Route], _Item]) -> _Item | Rejection:
    where = _surrogate_path(raw)
    if where is None:
        return parse(raw, route)
    where = escape_surrogates(where)  # the field name is a DLQ attribute: valid UTF-8, showing the escape received
    scrubbed = _scrub_surrogates(raw)
    uuid = scrubbed.get("messageId" if route == "segment" else "uuid") if isinstance(scrubbed, dict) else None
    return Rejection(
        reasons.INVALID_EVENT,
        f"{where}: contains an unpaired UTF-16 surrogate escape (such as \\ud800), which is not valid Unicode",
        where,
        scrubbed,
        uuid=uuid if isinstance(uuid, str) and uuid else None,
    )


def parse_event(raw: Any, route: Route = "native") -> Parsed:
    """Validate and normalise one event of either shape; never raises."""
    if route == "segment":
        return _parse_one(raw, route, _segment_event_model)
    return _parse_one(raw, route, _validate_native)


def parse_event_values(raw: Any, route: Route = "native") -> ParsedValues:
    """:func:`parse_event` with the event as plain data (:data:`EventValues`); never raises."""
    if route == "segment":
        return _parse_one(raw, route, _segment_event_values)
    return _parse_one(raw, route, _validate_native_values)


_Out = TypeVar("_Out")


def _parse_one(raw: Any, route: Route, validate: Callable[[Any], _Out]) -> _Out | Rejection | FilteredCall:
    if not isinstance(raw, dict):
        return Rejection(reasons.INVALID_EVENT, "event: must be a JSON object", None, raw)
    try:
        if route == "segment":
            why = segment.filtered_because(raw)
            if why is not None:
                return FilteredCall(_call_id(raw.get("messageId")), str(raw.get("type")), why)
        return validate(raw)
    except ValidationError as exc:
        field, message = describe_error(exc)
        if route == "segment" and field == "type":  # page / group / alias are accepted too (and filtered)
            message = f"type: must be {segment.CALL_TYPES_TEXT}"
        uuid = raw.get("messageId" if route == "segment" else "uuid")
        name = raw.get("event") or raw.get("action") or raw.get("type")
        return Rejection(
            reasons.INVALID_EVENT,
            message,
            field,
            raw,
            uuid=uuid if isinstance(uuid, str) and uuid else None,
            event_name=name if isinstance(name, str) else None,
        )


# What Model.model_validate(raw) calls, without its Python wrapper: 3,600 instructions per native event in
# callgrind (2% of its whole cost). A Segment call is validated into plain data (contract.validate_segment_call:
# the same schema, dicts instead of the Segment models, about half the cost) and converted from it.
_validate_native: Callable[[Any], NativeEvent] = NativeEvent.__pydantic_validator__.validate_python
_validate_native_values: Callable[[Any], EventValues] = validate_native_values
_validate_segment: Callable[[Any], dict[str, Any]] = validate_segment_call


def _segment_event_values(raw: Any) -> EventValues:
    return plain_segment_to_event(_validate_segment(raw))


def _segment_event_model(raw: Any) -> NativeEvent:
    return event_model(NativeEvent, plain_segment_to_event(_validate_segment(raw)))


def segment_to_event(call: SegmentEvent) -> NativeEvent:
    """Convert a validated Segment call into the internal event (no second validation).

    Segment's ``context`` gives the device, OS, app, IP and user agent; ``integrations.Kochava`` (native field
    names, already validated with the native models) gives what Segment lacks. README "Segment calls" lists every
    field and where it goes. ``parse_event`` converts the same call validated into plain data
    (:func:`plain_segment_to_event`); this is that conversion of the models' values.
    """
    return event_model(NativeEvent, plain_segment_to_event(_plain_call(call)))


def _plain_call(model: BaseModel) -> dict[str, Any]:
    """A Segment model's values as ``contract.validate_segment_call`` gives them: the Segment models as dicts."""
    values = dict(model.__dict__)
    for key, value in values.items():
        if isinstance(value, PLAIN_SEGMENT_MODELS):
            values[key] = _plain_call(value)
    return values


def plain_segment_to_event(call: dict[str, Any]) -> EventValues:
    """:func:`segment_to_event` of a call validated into plain data (``contract.validate_segment_call``), as plain
    data (:data:`EventValues`)."""
    context = call["context"]
    call_type: EventType = call["type"]
    event_type = call_type
    name = call["event"]
    properties = call["properties"] or {}
    if call_type == "track" and name and name.strip().lower() == _SEGMENT_INSTALL_EVENT:
        event_type = "install"
    elif call_type == "screen":
        name = call["name"] or _str_or_none(properties.get("name"))
    elif call_type == "identify":
        properties = {**(context["traits"] or {}), **(call["traits"] or {})}
    integrations = call["integrations"]
    kochava = (integrations["Kochava"] if integrations is not None else None) or _NO_KOCHAVA
    seg_app = context["app"]
    app = None
    if seg_app is not None:
        app = {"bundle_id": seg_app["namespace"], "version": seg_app["version"], "build": seg_app["build"]}
    adservices = kochava["adservices"]
    if adservices is None and event_type == "install":
        adservices = _segment_adservices(properties)
    return {
        "uuid": call["messageId"],
        "type": event_type,
        "name": name,
        "timestamp": call["timestamp"],
        "properties": properties,
        "user_id": call["userId"],
        "session_id": None,
        "ref": None,
        "offset": None,
        "app": app,
        "device": _segment_device(context, kochava),
        "adservices": adservices,
        "iad_attribution_details": kochava["iad_attribution_details"],
        "consent": kochava["consent"],
        "install_referrer": kochava["install_referrer"],
    }


# A call without context.device / context.os / integrations.Kochava reads as one whose fields are all null.
_NO_DEVICE: dict[str, Any] = dict.fromkeys(SegmentDevice.model_fields)
_NO_OS: dict[str, Any] = dict.fromkeys(SegmentOS.model_fields)
_NO_KOCHAVA: dict[str, Any] = dict.fromkeys(KochavaIntegration.model_fields)


def _segment_device(context: dict[str, Any], kochava: dict[str, Any]) -> dict[str, Any]:
    """The internal device of a Segment call (a ``Device``'s values): ``context.device`` / ``os`` / ``ip`` /
    ``userAgent``, plus ``integrations.Kochava.kochava_device_id`` and ``att``."""
    seg_device, seg_os = context["device"] or _NO_DEVICE, context["os"] or _NO_OS
    ad_tracking = seg_device["adTrackingEnabled"]
    return {
        "platform": segment_platform(seg_device["type"], seg_os["name"]),
        "id": seg_device["id"],
        "advertising_id": seg_device["advertisingId"] or seg_device["advertising_id"],
        "kochava_device_id": kochava["kochava_device_id"],
        "ip": context["ip"],
        "user_agent": context["userAgent"],
        "model": seg_device["model"],
        "os_version": seg_os["version"],
        "limit_ad_tracking": None if ad_tracking is None else not ad_tracking,
        "att": _segment_att(seg_device["attTrackingStatus"], kochava["att"]),
    }


def _segment_att(tracking_status: int | None, att: dict[str, Any] | None) -> dict[str, Any] | None:
    """``integrations.Kochava.att`` as sent (an ``Att``'s values); its status, when absent, from
    ``context.device.attTrackingStatus``."""
    status = _ATT_BY_SEGMENT_STATUS[tracking_status] if tracking_status is not None else None
    if att is None:
        return None if status is None else {"status": status, "time": None, "duration": None}
    if att["status"] is None and status is not None:
        return {"status": status, "time": att["time"], "duration": att["duration"]}
    return att


def _call_id(message_id: Any) -> str | None:
    """A raw call's messageId as the uuid of its outcome (ids may be integers), or None."""
    if isinstance(message_id, int) and not isinstance(message_id, bool):
        return str(message_id)
    if isinstance(message_id, str):
        return message_id.strip() or None
    return None


_Model = TypeVar("_Model", bound=BaseModel)
# BaseModel's four slots (``__dict__`` among them), set through their descriptors: what object.__setattr__ ends up
# calling, without its attribute lookup each time. _trusted was half of segment_to_event in py-spy; this saves 40%
# of it (5,900 instructions per Segment event in callgrind; ``__dict__`` through its descriptor too since issue 27:
# 130 ns less per model built).
_set_dict = vars(BaseModel)["__dict__"].__set__
_set_fields_set = vars(BaseModel)["__pydantic_fields_set__"].__set__
_set_extra = vars(BaseModel)["__pydantic_extra__"].__set__
_set_private = vars(BaseModel)["__pydantic_private__"].__set__


class _Defaults:
    """A model's fields, taken from its own ``model_fields``: how many there are, the static defaults in
    declaration order, and the fields whose default comes from a factory (a fresh value per instance)."""

    __slots__ = ("factories", "names", "new", "size", "static")

    def __init__(self, cls: type[BaseModel]) -> None:
        self.size = len(cls.model_fields)
        # Every field's name: the fields_set of an instance whose values name them all (the common case), copied
        # rather than built from the values' keys (a set copy takes no hashing: ~1,000 instructions less per model).
        self.names = frozenset(cls.model_fields)
        # The class's own __new__ (object.__new__ for pydantic models), looked up once: through the model's
        # metaclass, ``cls.__new__`` costs ~200 ns per instance (timeit), 1% of a Segment call at 3.8 per call.
        self.new: Callable[[type[BaseModel]], Any] = cls.__new__
        self.static: dict[str, Any] = {}
        self.factories: list[tuple[str, Callable[[], Any]]] = []
        for name, info in cls.model_fields.items():
            if info.default_factory is not None:
                self.factories.append((name, info.default_factory))  # type: ignore[arg-type]
            elif not info.is_required():  # a required field must be named by the caller: left out, it fails loudly
                self.static[name] = info.default

    def complete(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with every field it does not name set to that field's default."""
        state = {**self.static, **values}
        for name, factory in self.factories:
            if name not in values:
                state[name] = factory()
        return state


_DEFAULTS: dict[type[BaseModel], _Defaults] = {}


def _trusted(cls: type[_Model], values: dict[str, Any]) -> _Model:
    """What ``cls.model_construct(**values)`` builds, for values that are already valid, without its per-field
    alias and default loop (a third of a Segment event's cost in a profile). The field list and the defaults come
    from the model's own ``model_fields``: a field the caller does not name (one added to a model later) is set to
    its default here, so it reads as its default and ``model_dump()`` sees it
    (tests/unit/pipeline/test_parse_fast_paths.py adds fields to prove it). Callers here name every field, so the
    common case costs one length check. ``values`` names fields only (a key that is not a field would leave a field
    unset, which the first read of it would show)."""
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        defaults = _DEFAULTS.setdefault(cls, _Defaults(cls))
    if len(values) == defaults.size:  # every field named: the names are the fields (``values`` names fields only)
        given = set(defaults.names)
    else:
        given = set(values)  # model_construct's fields_set: the fields named, not the defaulted ones
        values = defaults.complete(values)
    model: _Model = defaults.new(cls)
    _set_dict(model, values)
    _set_fields_set(model, given)
    _set_extra(model, None)
    _set_private(model, None)
    return model


def _segment_adservices(properties: dict[str, Any]) -> dict[str, Any] | None:
    """Segment has no AdServices field; apps that send the token put it in the install's properties (an
    ``AdServices``' values)."""
    token = properties.get("ad_services_token") or properties.get("adservices_token")
    if not isinstance(token, str) or not token:
        return None
    return {"token": token, "generated_at": None, "attribution": None}


def event_model(cls: type[_Model], values: dict[str, Any]) -> _Model:
    """The model ``cls`` (``NativeEvent``, or a model below it) of plain values (:data:`EventValues`), built without
    validation (the values are valid): each field that holds a model gets its model, as ``cls.model_fields``
    declares it. Values with ``notes`` (a Segment call's parse warnings) give a :class:`NotedEvent`. The way back
    from the hot path's plain data to the models (``parse_body``, tests, tools)."""
    if cls is NativeEvent and "notes" in values:
        cls = NotedEvent  # type: ignore[assignment]
    nested = _NESTED.get(cls)
    if nested is None:
        nested = _NESTED.setdefault(cls, _nested_models(cls))
    if nested:
        values = dict(values)
        for name, model in nested.items():
            value = values.get(name)
            if type(value) is dict:
                values[name] = event_model(model, value)
    return _trusted(cls, values)


_NESTED: dict[type[BaseModel], dict[str, type[BaseModel]]] = {}


def _nested_models(cls: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The fields of ``cls`` that hold a model (``Device``, ``App | None``...), with that model."""
    nested = {}
    for name, info in cls.model_fields.items():
        for candidate in (info.annotation, *get_args(info.annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nested[name] = candidate
    return nested


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be an array",
    "string_too_short": "must not be empty",
}


def describe_error(exc: ValidationError) -> tuple[str | None, str]:
    """The first validation error as ``(field, "field: problem")`` in the contract's own field names."""
    error = exc.errors(include_url=False, include_context=True)[0]
    loc = [str(part) for part in error["loc"]]
    field = ".".join(loc) if loc else None
    kind = error["type"]
    if kind == "value_error":
        text = str(error["msg"]).removeprefix("Value error, ")
        if not loc and ": " in text:  # model-level rule that names its field: "event: is required ..."
            field = text.split(": ", 1)[0]
            return field, text
        problem = text
    elif kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", "")).replace("'", "")
        problem = f"must be {expected}"
    elif kind in {"string_too_long", "too_long"}:
        problem = f"is too long (at most {error.get('ctx', {}).get('max_length', '?')})"
    elif kind in {"too_short", "string_too_short"} and isinstance(error.get("input"), str):
        problem = "must not be empty"
    elif kind == "too_short":
        problem = f"must have at least {error.get('ctx', {}).get('min_length', '?')} item(s)"
    elif kind in {"greater_than_equal", "less_than_equal"}:
        problem = str(error["msg"]).lower()
    else:
        problem = _MESSAGES.get(kind, str(error["msg"]).lower())
    return field, f"{field}: {problem}" if field else problem
