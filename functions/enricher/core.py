"""The enricher's work on one ingest message: each event decided on its own, the I/O done once per message (no
Powertools, no boto3 here).

One SQS message is one HTTP body: one event or a batch of up to 100. :meth:`Enricher.process` runs these steps:

1. :func:`parse` - the body into one item per event, in order (an event, a rejection, or a Segment call filtered
   on purpose: ``page``, ``group``, ``alias``);
2. :meth:`Enricher.check_sources` - the events the message's API key may not send (``SOURCE_APPS``), before
   anything else is done with them: no device profile is read or written for them;
3. :meth:`Enricher.load_profiles` (I/O) - the device profiles of the message's devices, in one read (a failed read
   is counted and the events go on without their profiles: the message does not fail);
4. :meth:`Enricher.decide_all` - per event, in order, a typed decision from explicit inputs
   (:func:`functions.enricher.decisions.decide`: fill from its device profile, map to Kochava):
   :class:`~functions.enricher.decisions.DeadLetter` (invalid, ``app_not_allowed``, ``missing_app_id``,
   ``no_device_identifier``), :class:`~functions.enricher.decisions.Filter` (``heartbeat``, Segment ``page`` /
   ``group`` / ``alias``: counted by type) or :class:`~functions.enricher.decisions.Forward` (and its fields
   update the profile for the events after it);
   :meth:`Enricher.resolve_adservices` (I/O) - fresh install tokens asked of Apple: the answer attached, or the
   install re-queued alone with a delay (:class:`~functions.enricher.decisions.Requeue`);
5. :func:`route` - one delivery-queue message per event on its way; one that cannot fit in one SQS message
   (1 MiB with its attributes) goes to the ingest DLQ instead (``payload_too_large``);
6. :meth:`Enricher.hand_off` (I/O) - send the deliveries, then the dead letters and re-queues; a delivery SQS
   refuses for good is dead-lettered with its reason;
7. :meth:`Enricher.save_profiles` (I/O) - the updated profiles, best effort (a failed write is counted, never
   fatal).

Every event is handed off (at least once). ``process`` returns only when everything was handed to SQS; otherwise it
raises and the caller reports the SQS record failed (SQS redelivers it; the deliverer is idempotent per uuid + kind,
so a second copy is harmless).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from functions.enricher import metrics as m
from functions.enricher.adservices_flow import AdServicesFlow, Candidate, wants_resolution
from functions.enricher.decisions import DeadLetter, Decided, Decision, Filter, Forward, Requeue, decide
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
    ParsedValues,
    Route,
    load_document,
    parse_body_values,
    raw_events,
)
from functions.pipeline.jsontext import compact_json
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
class Message:
    """One ingest message: what came in, and what it became so far (the decisions are made per event)."""

    info: MessageInfo
    now: float
    items: list[ParsedValues]  # each event as plain data (events.EventValues)
    raws: RawEvents
    result: Result = field(default_factory=Result)

    @property
    def tally(self) -> Counter[str]:
        return self.result.tally

    @property
    def failed_at_ms(self) -> int:
        return int(self.now * 1000)


@dataclass
class Profiles:
    """The device profiles of one message's events: each event's key (by position), the profiles as read, then
    as its events updated them, in message order."""

    keys: list[str | None]
    stored: dict[str, profiles.Profile] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)

    def update(self, key: str | None, profile: profiles.Profile | None) -> None:
        if key and profile is not None:
            self.stored[key] = profile
            self.changed.add(key)


def parse(body: str, info: MessageInfo, now: float) -> Message:
    """Step 1: the body as one item per event, counted as received (a re-queued install was counted already)."""
    items = parse_body_values(body, route=info.route, received=info.received)
    raws = RawEvents(body, len(items), info.route, info.received)
    message = Message(info=info, now=now, items=items, raws=raws)
    if not info.requeued:
        message.tally[m.EVENTS_RECEIVED] += len(items)
    return message


def delivery_message(forward: Forward, info: MessageInfo) -> OutgoingMessage:
    """The delivery-queue message of an event on its way: the envelope and its attributes."""
    outcome = forward.outcome
    attributes: dict[str, str | int | float] = {
        ATTR_UUID: forward.original["uuid"],
        ATTR_KIND: outcome.kind or "",
        ATTR_EVENT_NAME: outcome.event_name or "",
        ATTR_REQUEST_ID: info.request_id or "",
    }
    if info.received_at_ms is not None:
        attributes[ATTR_RECEIVED_AT_MS] = info.received_at_ms
    return OutgoingMessage(envelope.build(outcome), attributes)


def route(
    message: Message, decisions: Sequence[Decision]
) -> tuple[list[Forward], list[OutgoingMessage], list[DeadLetter]]:
    """Step 5: the delivery message of each event on its way, with the decisions they stand for (same order); one
    over SQS's size limit is dead-lettered now, as it would fail on every retry."""
    forwards: list[Forward] = []
    deliveries: list[OutgoingMessage] = []
    too_large: list[DeadLetter] = []
    for forward in decisions:
        if not isinstance(forward, Forward):
            continue
        delivery = delivery_message(forward, message.info)
        size = delivery.size()
        if size > SQS_MAX_MESSAGE_BYTES:
            refusal = Refused(len(deliveries), delivery, "MessageTooLong", too_large_error(size))
            too_large.append(refused_letter(message, forward, refusal))
            continue
        forwards.append(forward)
        deliveries.append(delivery)
    return forwards, deliveries, too_large


def refused_letter(message: Message, forward: Forward, refusal: Refused) -> DeadLetter:
    """The dead letter of an event whose delivery message SQS cannot take (too large, bad characters)."""
    raw_body = message.raws.body_of(forward.index)
    if refusal.too_large:
        field_name, field_bytes = largest_field(orjson.loads(raw_body))
        detail = f"; largest field {field_name}: {field_bytes} bytes" if field_name else ""
        reason, error = reasons.PAYLOAD_TOO_LARGE, refusal.error + detail
    else:
        reason, field_name = reasons.INVALID_EVENT, None
        error = f"SQS refused the delivery message: {refusal.error}"
    original = forward.original
    return DeadLetter(raw_body, reason, field_name, error, original["uuid"], original["name"] or original["type"])


def count(result: Result, decided: Decided) -> None:
    """What one event's decision adds to the message's counts (the hand-off counts the rest)."""
    decision = decided.decision
    if decided.filled:
        result.tally[m.PROFILE_FILLED] += 1
    if isinstance(decision, Filter):
        result.tally[m.EVENTS_FILTERED] += 1
        result.filtered_by_type[decision.call_type] += 1
        if decision.uuid:
            result.filtered.setdefault(decision.name, []).append(decision.uuid)
    elif isinstance(decision, Forward) and decision.outcome.adservices_expired:
        result.tally[m.ADSERVICES_TOKEN_EXPIRED] += 1


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
        not_allowed = self.check_sources(message)
        stored = self.load_profiles(message, not_allowed)
        decisions = self.decide_all(message, not_allowed, stored)
        decisions = self.resolve_adservices(message, decisions, remaining_s)
        self.hand_off(message, decisions)
        self.save_profiles(message, stored)
        return message.result

    def check_sources(self, message: Message) -> list[NotAllowed | None]:
        """Step 2: for each item, why the message's API key may not send it (``SOURCE_APPS``), or None."""
        key_id, route = message.info.api_key_id, message.info.route
        allowed: list[NotAllowed | None] = [None] * len(message.items)
        if not sources.applies(self.settings.source_apps, key_id, require_bound=self.settings.require_bound_keys):
            return allowed  # no binding applies to this key: any app, as before bindings existed
        for index, item in enumerate(message.items):
            if isinstance(item, dict):
                allowed[index] = check_event(self.settings, key_id, item, route)
        return allowed

    def load_profiles(self, message: Message, not_allowed: Sequence[NotAllowed | None]) -> Profiles:
        """Step 3: the profile key of each valid event that has one (a configured app GUID and a device id), and
        the stored profiles of those keys, in one read."""
        keys: list[str | None] = [None] * len(message.items)
        if self.profile_store is None:
            return Profiles(keys)
        legacy: dict[str, str] = {}  # key -> the key of the same device before ids were normalised (issue 22)
        for index, item in enumerate(message.items):
            if not isinstance(item, dict) or not_allowed[index] is not None:
                continue
            device_id = profiles.device_key_id(item)
            platform, app = item["device"]["platform"], item["app"]
            app_id = self.settings.app_id_for(platform, app["bundle_id"] if app else None)
            if device_id and app_id:
                key = profiles.profile_key(app_id, platform, device_id)
                keys[index] = key
                old = profiles.legacy_profile_key(app_id, platform, device_id)
                if old != key:
                    legacy[key] = old
        wanted = {key for key in keys if key}
        if not wanted:
            return Profiles(keys)
        try:
            found = dict(self.profile_store.get_many(wanted | set(legacy.values())))
            for key, old in legacy.items():  # stored before the normalisation: used, then written under `key`
                if key not in found and old in found:
                    found[key] = found[old]
            return Profiles(keys, found)
        except Exception as exc:  # throttling, DynamoDB down: enrich without profiles rather than fail the message
            read = sum(1 for key in keys if key)
            message.tally[m.PROFILE_READ_FAILED] += read
            self.log.warning(
                "profile read failed: events enriched without their profile",
                extra={"events": read, "error": type(exc).__name__},
            )
            # neither filled nor written back: a stored profile is never overwritten
            return Profiles([None] * len(message.items))

    def decide_all(
        self, message: Message, not_allowed: Sequence[NotAllowed | None], stored: Profiles
    ) -> list[Decision]:
        """Step 4: each event decided in message order (:func:`~functions.enricher.decisions.decide`); an accepted
        event's fields update its profile for the events after it."""
        decisions: list[Decision] = []
        for index, item in enumerate(message.items):
            key = stored.keys[index]
            decided = decide(
                index,
                item,
                not_allowed=not_allowed[index],
                key=key,
                profile=stored.stored.get(key) if key else None,
                settings=self.settings,
                now=message.now,
                body_of=message.raws.body_of,
            )
            stored.update(key, decided.profile)
            count(message.result, decided)
            decisions.append(decided.decision)
        return decisions

    def resolve_adservices(
        self, message: Message, decisions: list[Decision], remaining_s: Callable[[], float] | None
    ) -> list[Decision]:
        """Apple asked for the installs with a fresh token: each answer attached (a new :class:`Forward`), or the
        install re-queued alone with a delay (:class:`Requeue`)."""
        if self._adservices_factory is None:
            return decisions
        wanted = {
            i: d
            for i, d in enumerate(decisions)
            if isinstance(d, Forward) and wants_resolution(self.settings, d.event, d.outcome)
        }
        flow = self.adservices if wanted else None
        if flow is None:
            return decisions
        candidates = [Candidate(key=i, event=d.event, outcome=d.outcome) for i, d in wanted.items()]
        info = message.info
        decided = list(decisions)
        for answer in flow.resolve_all(candidates, message.now, info.adservices_attempt, remaining_s):
            message.tally.update(answer.counts)
            self._log_decision(answer)
            forward = wanted[answer.key]
            if answer.action == "requeue":
                attributes = {**info.attributes(), ATTR_ADSERVICES_ATTEMPT: answer.attempt}
                body = message.raws.body_of(forward.index)
                requeue = OutgoingMessage(body, attributes, delay_seconds=answer.delay_s)
                decided[answer.key] = Requeue(forward.index, requeue)
            elif answer.outcome is not None:
                decided[answer.key] = replace(forward, outcome=answer.outcome)
        return decided

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

    def hand_off(self, message: Message, decisions: Sequence[Decision]) -> None:
        """Steps 5 and 6: deliveries first (one SQS refuses for good is dead-lettered with its reason), then the dead
        letters and re-queues, which have no other place to go. A transient failure raises: the record is reported
        failed and redelivered as a whole."""
        forwards, deliveries, too_large = route(message, decisions)
        dead = [d for d in decisions if isinstance(d, DeadLetter)] + too_large
        retried_before = self.sender.retried_entries
        refused = self.sender.send(self.queues.delivery, deliveries) if deliveries else []
        for refusal in refused:
            dead.append(refused_letter(message, forwards[refusal.index], refusal))
        refused_at = {refusal.index for refusal in refused}
        for index, forward in enumerate(forwards):
            if index not in refused_at:
                message.result.forwarded.setdefault(forward.outcome.kind or "?", []).append(forward.original["uuid"])
        if dead:
            self._send_for_good(self.queues.ingest_dlq, [self.dead_letter(message, d) for d in dead])
        requeues = [d.message for d in decisions if isinstance(d, Requeue)]
        if requeues:
            self._send_for_good(self.queues.ingest, requeues)
        tally = message.tally
        tally[m.SEND_RETRIES] += self.sender.retried_entries - retried_before
        tally[m.EVENTS_REJECTED] += len(dead)
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

    def save_profiles(self, message: Message, stored: Profiles) -> None:
        """Step 7: profiles are an optimisation for later events: a failed write is counted and logged, never
        fatal."""
        store = self.profile_store
        if store is None or not stored.changed:
            return
        changed = {key: stored.stored[key] for key in stored.changed}
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
