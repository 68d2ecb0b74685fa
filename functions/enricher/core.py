"""The enricher's work on one ingest message, as a short sequence of named steps (no Powertools, no boto3 here).

One SQS message is one HTTP body: one event or a batch of up to 100. :meth:`Enricher.process` runs these steps,
each a function of the per-message state (:class:`Message`) and the enricher's ports:

1. :func:`parse` - the body into one item per event, in order (an event, a rejection, or a Segment call filtered
   on purpose: ``page``, ``group``, ``alias``);
2. :meth:`Enricher.check_sources` - the events the message's API key may not send (``SOURCE_APPS``), before
   anything else is done with them: no device profile is read or written for them;
3. :meth:`Enricher.load_profiles` - the device profiles of the message's devices, in one read (a failed read is
   counted and the events go on without their profiles: the message does not fail);
4. :meth:`Enricher.map_event` - per event: fill from its device profile, map to Kochava, and decide:
   invalid, not allowed for its key (``app_not_allowed``) or rejected by the mapping (``missing_app_id``,
   ``no_device_identifier``) -> the ingest DLQ; filtered (``heartbeat``, Segment ``page`` / ``group`` /
   ``alias``) -> counted by type, dropped on purpose; ok -> on its way (and its fields update the profile);
5. :meth:`Enricher.resolve_adservices` - fresh install tokens asked of Apple; an install Apple cannot answer yet
   is re-queued alone to the ingest queue with a delay;
6. :func:`route` - one delivery-queue message per event on its way; one that cannot fit in one SQS message
   (1 MiB with its attributes) goes to the ingest DLQ instead (``payload_too_large``);
7. :meth:`Enricher.hand_off` - send the deliveries, then the dead letters and re-queues; a delivery SQS refuses for
   good is dead-lettered with its reason;
8. :meth:`Enricher.save_profiles` - the updated profiles, best effort (a failed write is counted, never fatal).

Every event is handed off (at least once). ``process`` returns only when everything was handed to SQS; otherwise it
raises and the caller reports the SQS record failed (SQS redelivers it; the deliverer is idempotent per uuid + kind,
so a second copy is harmless).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from functions.enricher import metrics as m
from functions.enricher.adservices_flow import AdServicesFlow, Candidate, wants_resolution
from functions.messages import OutgoingMessage, Refused, SendError, dead_letter_message, fit
from functions.names import (
    ATTR_ADSERVICES_ATTEMPT,
    ATTR_API_KEY_ID,
    ATTR_ERROR,
    ATTR_EVENT_NAME,
    ATTR_FIELD,
    ATTR_KIND,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_ROUTE,
    ATTR_UUID,
    FUNCTION_ENRICHER,
    PROFILE_TTL_S,
    ROUTE_SEGMENT,
    SQS_MAX_MESSAGE_BYTES,
)
from functions.pipeline import envelope, profiles, reasons, sources
from functions.pipeline.events import (
    Event,
    FilteredCall,
    Parsed,
    Rejection,
    Route,
    load_document,
    parse_body,
    parse_warnings,
    raw_events,
)
from functions.pipeline.jsontext import compact_json
from functions.pipeline.kochava import Outcome, to_kochava
from functions.pipeline.masking import redact
from functions.pipeline.segment import Received
from functions.pipeline.settings import Settings
from functions.pipeline.sources import NotAllowed, check_event

if TYPE_CHECKING:
    from functions.ports import MessageSender, ProfileStore

STAGE = FUNCTION_ENRICHER  # the DLQ ``stage`` attribute


class Log(Protocol):
    """The slice of the Powertools ``Logger`` the enricher uses."""

    def info(self, msg: object, *args: object, **kwargs: Any) -> None: ...
    def warning(self, msg: object, *args: object, **kwargs: Any) -> None: ...
    def set_correlation_id(self, value: str | None) -> None: ...


@dataclass(frozen=True)
class Queues:
    ingest: str
    ingest_dlq: str
    delivery: str


@dataclass(frozen=True)
class MessageInfo:
    """The ingest message attributes written by API Gateway (and by the enricher when it re-queues)."""

    request_id: str | None = None
    received_at_ms: int | None = None
    route: Route = "native"
    adservices_attempt: int = 0  # Apple calls already made for this (re-queued) install
    requeued: bool = False  # the enricher re-queued this install itself (it carries adservices_attempt)
    api_key_id: str | None = None  # the API key (source) the request came with; SOURCE_APPS may bind it

    @classmethod
    def from_sqs(cls, record: Mapping[str, Any]) -> MessageInfo:
        """From one record of a Lambda SQS event: the attributes API Gateway (or a re-queue) wrote."""
        attrs = record.get("messageAttributes") or {}

        def text(name: str) -> str | None:
            attr = attrs.get(name)
            value = attr.get("stringValue") if isinstance(attr, Mapping) else None
            return value if isinstance(value, str) else None

        def number(name: str) -> int | None:
            value = text(name)
            try:
                return int(float(value)) if value else None
            except ValueError:
                return None

        attempt = number(ATTR_ADSERVICES_ATTEMPT)
        return cls(
            request_id=text(ATTR_REQUEST_ID),
            received_at_ms=number(ATTR_RECEIVED_AT_MS),
            route=segment_route(text(ATTR_ROUTE)),
            adservices_attempt=attempt or 0,
            requeued=attempt is not None,
            api_key_id=text(ATTR_API_KEY_ID),
        )

    @property
    def received(self) -> Received:
        """The request the body came in, as the parser derives a Segment call's missing messageId / timestamp."""
        return Received(self.request_id, self.received_at_ms)

    def attributes(self) -> dict[str, str | int | float]:
        """What a re-queued or dead-lettered event carries on (``api_key_id`` too: a replay is checked again)."""
        out: dict[str, str | int | float] = {ATTR_ROUTE: self.route}
        if self.request_id:
            out[ATTR_REQUEST_ID] = self.request_id
        if self.received_at_ms is not None:
            out[ATTR_RECEIVED_AT_MS] = self.received_at_ms
        if self.api_key_id:
            out[ATTR_API_KEY_ID] = self.api_key_id
        return out


@dataclass
class Result:
    """What one message became (the tally feeds the metrics; the uuids, its log line, read by tools.trace)."""

    tally: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    filtered_by_type: Counter[str] = field(default_factory=Counter)  # "page", "group", "alias", "track"...
    forwarded: dict[str, list[str]] = field(default_factory=dict)  # kind -> uuids handed to the delivery queue
    filtered: dict[str, list[str]] = field(default_factory=dict)  # event name -> uuids dropped on purpose


@dataclass
class Work:
    """One valid event on its way through the message."""

    index: int  # its position in the message
    event: Event  # after profile fill
    original: Event  # as received (what a re-queue or a DLQ message carries)
    outcome: Outcome
    requeue: OutgoingMessage | None = None  # set when Apple is to be asked again later


@dataclass(frozen=True)
class DeadLetter:
    """Why one event goes to the ingest DLQ (the message itself is built by :meth:`Message.dead_letter`)."""

    body: str  # the event as received
    reason: str
    field: str | None
    error: str | None
    uuid: str | None
    event_name: str | None


@dataclass
class Message:
    """The state of one ingest message while its steps run."""

    info: MessageInfo
    now: float
    items: list[Parsed]
    raws: RawEvents
    result: Result = field(default_factory=Result)
    not_allowed: dict[int, NotAllowed] = field(default_factory=dict)  # event position -> why its key may not send
    profile_keys: dict[int, str] = field(default_factory=dict)  # event position -> its device-profile key
    profiles: dict[str, profiles.Profile] = field(default_factory=dict)  # as stored, then updated in batch order
    changed_profiles: set[str] = field(default_factory=set)
    works: list[Work] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)

    @property
    def tally(self) -> Counter[str]:
        return self.result.tally

    @property
    def failed_at_ms(self) -> int:
        return int(self.now * 1000)


def parse(body: str, info: MessageInfo, now: float) -> Message:
    """Step 1: the body as one item per event, counted as received (a re-queued install was counted already)."""
    items = parse_body(body, route=info.route, received=info.received)
    raws = RawEvents(body, len(items), info.route, info.received)
    message = Message(info=info, now=now, items=items, raws=raws)
    if not info.requeued:
        message.tally[m.EVENTS_RECEIVED] += len(items)
    return message


def rejection_letter(item: Rejection) -> DeadLetter:
    """The dead letter of an event the parser rejected (it keeps the raw event, or the body when not JSON)."""
    body = item.raw if isinstance(item.raw, str) else compact_json(item.raw)
    return DeadLetter(body, item.reason, item.field, item.message, item.uuid, item.event_name)


def delivery_message(work: Work, info: MessageInfo) -> OutgoingMessage:
    """The delivery-queue message of an event on its way: the envelope and its attributes."""
    outcome = work.outcome
    attributes: dict[str, str | int | float] = {
        ATTR_UUID: work.original.uuid,
        ATTR_KIND: outcome.kind or "",
        ATTR_EVENT_NAME: outcome.event_name or "",
        ATTR_REQUEST_ID: info.request_id or "",
    }
    if info.received_at_ms is not None:
        attributes[ATTR_RECEIVED_AT_MS] = info.received_at_ms
    return OutgoingMessage(envelope.build(outcome), attributes)


def route(message: Message) -> tuple[list[Work], list[OutgoingMessage]]:
    """Step 6: the delivery message of each event still on its way, with the works they stand for (same order);
    one over SQS's size limit is dead-lettered now, as it would fail on every retry."""
    works: list[Work] = []
    deliveries: list[OutgoingMessage] = []
    for work in message.works:
        if work.requeue is not None:
            continue
        delivery = delivery_message(work, message.info)
        size = delivery.size()
        if size > SQS_MAX_MESSAGE_BYTES:
            refusal = Refused(len(deliveries), delivery, "MessageTooLong", too_large_error(size))
            message.dead.append(refused_letter(message, work, refusal))
            continue
        works.append(work)
        deliveries.append(delivery)
    return works, deliveries


def not_allowed_letter(message: Message, index: int, event: Event, not_allowed: NotAllowed) -> DeadLetter:
    """The dead letter of an event its API key may not send (``app_not_allowed``), as it was received."""
    body, name = message.raws.body_of(index), event.name or event.type
    return DeadLetter(body, not_allowed.reason, not_allowed.field, not_allowed.message, event.uuid, name)


def refused_letter(message: Message, work: Work, refusal: Refused) -> DeadLetter:
    """The dead letter of an event whose delivery message SQS cannot take (too large, bad characters)."""
    raw_body = message.raws.body_of(work.index)
    if refusal.too_large:
        field_name, field_bytes = largest_field(orjson.loads(raw_body))
        detail = f"; largest field {field_name}: {field_bytes} bytes" if field_name else ""
        reason, error = reasons.PAYLOAD_TOO_LARGE, refusal.error + detail
    else:
        reason, field_name = reasons.INVALID_EVENT, None
        error = f"SQS refused the delivery message: {refusal.error}"
    original = work.original
    return DeadLetter(raw_body, reason, field_name, error, original.uuid, original.name or original.type)


class Enricher:
    """Everything the enricher does with one message; built once per container, reused across invocations."""

    def __init__(
        self,
        *,
        settings: Settings,
        sender: MessageSender,
        queues: Queues,
        profile_store: ProfileStore | None,
        adservices: Callable[[], AdServicesFlow] | None,
        log: Log,
        profile_ttl_s: int = PROFILE_TTL_S,
    ) -> None:
        self.settings = settings
        self.sender = sender
        self.queues = queues
        self.profile_store = profile_store
        self.profile_ttl_s = profile_ttl_s
        self._adservices_factory = adservices  # built on first use: the HTTP client is imported only then
        self._adservices: AdServicesFlow | None = None
        self.log = log

    @property
    def adservices(self) -> AdServicesFlow | None:
        if self._adservices is None and self._adservices_factory is not None:
            self._adservices = self._adservices_factory()
        return self._adservices

    def process(
        self, body: str, info: MessageInfo, now: float, remaining_s: Callable[[], float] | None = None
    ) -> Result:
        """Handle every event of ``body``; raise when something could not be handed off (see module doc)."""
        message = parse(body, info, now)
        self.check_sources(message)
        self.load_profiles(message)
        for index, item in enumerate(message.items):
            self.map_event(message, index, item)
        self.resolve_adservices(message, remaining_s)
        works, deliveries = route(message)
        self.hand_off(message, works, deliveries)
        self.save_profiles(message)
        return message.result

    def check_sources(self, message: Message) -> None:
        """Step 2: the valid events the message's API key may not send (``SOURCE_APPS``), by position."""
        key_id, route = message.info.api_key_id, message.info.route
        if not sources.applies(self.settings.source_apps, key_id, require_bound=self.settings.require_bound_keys):
            return  # no binding applies to this key: any app, as before bindings existed
        for index, item in enumerate(message.items):
            if isinstance(item, Event):
                not_allowed = check_event(self.settings, key_id, item, route)
                if not_allowed is not None:
                    message.not_allowed[index] = not_allowed

    def load_profiles(self, message: Message) -> None:
        """Step 3: the profile key of each valid event that has one (a configured app GUID and a device id), and
        the stored profiles of those keys, in one read."""
        if self.profile_store is None:
            return
        for index, item in enumerate(message.items):
            if not isinstance(item, Event) or index in message.not_allowed:
                continue
            device_id = profiles.device_key_id(item)
            app_id = self.settings.app_id_for(item.device.platform, item.app.bundle_id if item.app else None)
            if device_id and app_id:
                message.profile_keys[index] = profiles.profile_key(app_id, item.device.platform, device_id)
        if not message.profile_keys:
            return
        try:
            message.profiles.update(self.profile_store.get_many(set(message.profile_keys.values())))
        except Exception as exc:  # throttling, DynamoDB down: enrich without profiles rather than fail the message
            message.tally[m.PROFILE_READ_FAILED] += len(message.profile_keys)
            self.log.warning(
                "profile read failed: events enriched without their profile",
                extra={"events": len(message.profile_keys), "error": type(exc).__name__},
            )
            message.profile_keys.clear()  # neither filled nor written back: a stored profile is never overwritten

    def map_event(self, message: Message, index: int, item: Parsed) -> None:
        """Step 4: one event filled from its profile, mapped, and set on its way, dead-lettered or filtered."""
        if isinstance(item, Rejection):
            message.dead.append(rejection_letter(item))
            return
        if isinstance(item, FilteredCall):  # Segment page / group / alias: counted by type, never sent
            message.tally[m.EVENTS_FILTERED] += 1
            message.result.filtered_by_type[item.call_type] += 1
            if item.uuid:
                message.result.filtered.setdefault(item.call_type, []).append(item.uuid)
            return
        not_allowed = message.not_allowed.get(index)
        if not_allowed is not None:  # its API key may not send to its app: nothing else is done with it
            message.dead.append(not_allowed_letter(message, index, item, not_allowed))
            return
        key = message.profile_keys.get(index)
        event, filled = profiles.fill_from_profile(item, message.profiles.get(key) if key else None)
        if filled:
            message.tally[m.PROFILE_FILLED] += 1
        outcome = to_kochava(event, self.settings, now=message.now)
        outcome.warnings[:0] = parse_warnings(item)  # a Segment call's derived messageId / timestamp, say so
        if outcome.status == "rejected":
            body = message.raws.body_of(index)
            reason = outcome.reason or "rejected"
            error, name = outcome.message, item.name or item.type
            message.dead.append(DeadLetter(body, reason, outcome.field, error, item.uuid, name))
            return
        if key:  # accepted (ok or filtered): its own fields feed the profile, in batch order
            updated = profiles.updated_profile(item, message.profiles.get(key), message.now)
            if updated is not None:
                message.profiles[key] = updated
                message.changed_profiles.add(key)
        if outcome.status == "filtered":
            message.tally[m.EVENTS_FILTERED] += 1
            message.result.filtered_by_type[item.type] += 1
            message.result.filtered.setdefault(item.name or item.type, []).append(item.uuid)
            return
        if outcome.adservices_expired:
            message.tally[m.ADSERVICES_TOKEN_EXPIRED] += 1
        message.works.append(Work(index, event, item, outcome))

    def resolve_adservices(self, message: Message, remaining_s: Callable[[], float] | None) -> None:
        """Step 5: ask Apple for the installs with a fresh token; attach the answer, or mark the install for a
        delayed re-queue."""
        if self._adservices_factory is None:
            return
        wanted = [w for w in message.works if wants_resolution(self.settings, w.event, w.outcome)]
        flow = self.adservices if wanted else None
        if flow is None:
            return
        by_index = {w.index: w for w in wanted}
        candidates = [Candidate(key=w.index, event=w.event, outcome=w.outcome) for w in wanted]
        info = message.info
        for decision in flow.resolve_all(candidates, message.now, info.adservices_attempt, remaining_s):
            message.tally.update(decision.counts)
            self._log_decision(decision)
            work = by_index[decision.key]
            if decision.action == "requeue":
                attributes = {**info.attributes(), ATTR_ADSERVICES_ATTEMPT: decision.attempt}
                body = message.raws.body_of(work.index)
                work.requeue = OutgoingMessage(body, attributes, delay_seconds=decision.delay_s)
            elif decision.outcome is not None:
                work.outcome = decision.outcome

    def _log_decision(self, decision: Any) -> None:
        self.log.set_correlation_id(decision.uuid)
        self.log.info(
            "adservices",
            extra={
                "action": decision.action,
                "apple": decision.apple,
                "apple_http_status": decision.http_status,
                "attempt": decision.attempt,
                "delay_s": decision.delay_s,
                "token": decision.token_fingerprint,
            },
        )
        self.log.set_correlation_id(None)

    def hand_off(self, message: Message, works: Sequence[Work], deliveries: Sequence[OutgoingMessage]) -> None:
        """Step 7: deliveries first (one SQS refuses for good is dead-lettered with its reason), then the dead
        letters and re-queues, which have no other place to go. A transient failure raises: the record is reported
        failed and redelivered as a whole."""
        retried_before = self.sender.retried_entries
        refused = self.sender.send(self.queues.delivery, deliveries) if deliveries else []
        for refusal in refused:
            message.dead.append(refused_letter(message, works[refusal.index], refusal))
        refused_at = {refusal.index for refusal in refused}
        for index, work in enumerate(works):
            if index not in refused_at:
                message.result.forwarded.setdefault(work.outcome.kind or "?", []).append(work.original.uuid)
        if message.dead:
            self._send_for_good(self.queues.ingest_dlq, [self.dead_letter(message, d) for d in message.dead])
        requeues = [w.requeue for w in message.works if w.requeue is not None]
        if requeues:
            self._send_for_good(self.queues.ingest, requeues)
        tally = message.tally
        tally[m.SEND_RETRIES] += self.sender.retried_entries - retried_before
        tally[m.EVENTS_REJECTED] += len(message.dead)
        tally[m.EVENTS_FORWARDED] += len(deliveries) - len(refused)
        tally[m.ADSERVICES_REQUEUED] += len(requeues)

    def dead_letter(self, message: Message, letter: DeadLetter) -> OutgoingMessage:
        """The ingest-DLQ message for one event (logged and counted by reason here)."""
        self.log.set_correlation_id(letter.uuid)
        error = redact(letter.error) if letter.error else letter.error  # may echo the value (a bad timestamp)
        self.log.warning("event dead-lettered", extra={"reason": letter.reason, "field": letter.field, "error": error})
        self.log.set_correlation_id(None)
        message.result.rejected_by_reason[letter.reason] += 1
        dead = dead_letter_message(
            letter.body,
            stage=STAGE,
            reason=letter.reason,
            failed_at_ms=message.failed_at_ms,
            **{ATTR_FIELD: letter.field, ATTR_ERROR: letter.error},
            **{ATTR_UUID: letter.uuid, ATTR_EVENT_NAME: letter.event_name},
            **message.info.attributes(),
        )
        # SQS allows 10 attributes: with api_key_id (kept so that a replay is checked against the key's binding
        # again), received_at_ms makes room when all the others are present. The event as received may itself be
        # ~1 MiB: cut the body (``truncated``) rather than lose the message; api_key_id then goes too (a cut body
        # is never replayed). failed_at_ms and request_id still date and identify it.
        return fit(dead, droppable=(ATTR_RECEIVED_AT_MS, ATTR_API_KEY_ID))

    def _send_for_good(self, queue_url: str, messages: Sequence[OutgoingMessage]) -> None:
        """Send messages that have no other place to go: one SQS refuses for good fails the record too."""
        refused = self.sender.send(queue_url, messages)
        if refused:
            raise SendError(queue_url, [{"Id": f"m{r.index}", "Code": r.code, "Message": r.error} for r in refused])

    def save_profiles(self, message: Message) -> None:
        """Step 8: profiles are an optimisation for later events: a failed write is counted and logged, never
        fatal."""
        store = self.profile_store
        if store is None or not message.changed_profiles:
            return
        changed = {key: message.profiles[key] for key in message.changed_profiles}
        try:
            store.put_many(changed, expires_at=int(message.now) + self.profile_ttl_s)
        except Exception as exc:  # ProfileStoreError, botocore errors...
            message.tally[m.PROFILE_WRITE_FAILED] += len(changed)
            self.log.warning("profile write failed", extra={"profiles": len(changed), "error": type(exc).__name__})
            return
        message.tally[m.PROFILE_UPDATED] += len(changed)


def too_large_error(size: int) -> str:
    return (
        f"the Kochava payload as a delivery-queue message is {size} bytes (with its attributes), over SQS's limit "
        f"of {SQS_MAX_MESSAGE_BYTES} bytes (Kochava accepts at most 2 MB per request): send a smaller event"
    )


def largest_field(raw: Any) -> tuple[str | None, int]:
    """The dotted path of the biggest leaf value in a raw event (by its JSON size) and that size, e.g.
    ``("properties.blob", 1048000)``; ``(None, 0)`` for a scalar.

    >>> largest_field({"uuid": "u", "properties": {"a": "x" * 10, "b": [1, "y" * 50]}})
    ('properties.b.1', 52)
    """
    path: list[str] = []
    node = raw
    size = 0
    while isinstance(node, dict | list) and node:
        children = node.items() if isinstance(node, dict) else enumerate(node)
        key, node, size = max(((k, v, len(compact_json(v).encode())) for k, v in children), key=lambda c: c[2])
        path.append(str(key))
    return (".".join(path) or None), size


class RawEvents:
    """The raw JSON of each event of a body, by position, decoded only when a DLQ / re-queue message needs it.

    ``parse_body`` keeps the raw event on rejections only; an event rejected by the mapping or re-queued must
    also travel exactly as it was validated (a Segment call with its batch's ``context`` merged in, so it replays
    alone), so the body is decoded again (once) for those rare cases.
    """

    def __init__(self, body: str, count: int, route: Route = "native", received: Received | None = None) -> None:
        self._body = body
        self._count = count
        self._route = route
        self._received = received
        self._events: list[Any] | None = None

    def body_of(self, index: int) -> str:
        if self._events is None:
            # lenient like parse_body: a sibling's lone surrogate must not make this raise
            self._events = raw_events(load_document(self._body), self._route, self._received)
            if len(self._events) != self._count:  # cannot happen with parse_body's one-item-per-event promise
                raise RuntimeError("raw events and parsed events are not aligned")
        return compact_json(self._events[index])


def segment_route(route: str | None) -> Route:
    """The route attribute as the parser's literal (anything unknown is the native contract).

    >>> segment_route("segment"), segment_route(None)
    ('segment', 'native')
    """
    return "segment" if route == ROUTE_SEGMENT else "native"
