"""The enricher's work on one ingest message, with every dependency injected (no Powertools, no boto3 here).

One SQS message is one HTTP body: one event or a batch of up to 100. :meth:`Enricher.process` handles every
event of it **in order** and hands each one off exactly once:

* invalid (a :class:`~functions.pipeline.events.Rejection`) or rejected by the mapping (``missing_app_id``,
  ``no_device_identifier``) -> the ingest DLQ, as its own message with the reason attributes, at once;
* filtered (``heartbeat``) -> counted, dropped on purpose;
* ok -> device-profile enrichment, AdServices resolution for fresh install tokens, one delivery-queue message;
* ok, but its delivery message cannot fit in one SQS message (1 MiB with its attributes), or SQS refuses it for
  good (a sender fault) -> the ingest DLQ at once (``payload_too_large``), never retried until SQS redrives it;
* an install whose token Apple cannot answer yet -> re-queued alone to the ingest queue with a delay.

It returns only when everything was handed to SQS; otherwise it raises and the caller reports the SQS record
failed (SQS redelivers it; the deliverer is idempotent per uuid + kind, so a second copy is harmless).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from functions.adapters.profiles_dynamodb import ProfileStore
from functions.adapters.sqs import OutgoingMessage, Refused, SendError, SqsSender, dead_letter_message, fit
from functions.enricher import metrics as m
from functions.enricher.adservices_flow import AdServicesFlow, Candidate, wants_resolution
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
    PROFILE_TTL_S,
    ROUTE_SEGMENT,
    SQS_MAX_MESSAGE_BYTES,
)
from functions.pipeline import envelope, profiles, reasons
from functions.pipeline.events import Event, FilteredCall, Parsed, Rejection, Route, parse_body, raw_events
from functions.pipeline.jsontext import compact_json
from functions.pipeline.kochava import Outcome, to_kochava
from functions.pipeline.settings import Settings
from functions.pipeline.sources import NotAllowed, check_event

STAGE = "enricher"


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

    def attributes(self) -> dict[str, str | int | float]:
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
    """What one message became (the tally feeds the metrics)."""

    tally: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    filtered_by_type: Counter[str] = field(default_factory=Counter)  # "page", "group", "alias", "track"...


@dataclass
class _Work:
    """One valid event on its way through the message."""

    index: int
    event: Event  # after profile fill
    original: Event  # as received (what a re-queue or a DLQ message carries)
    outcome: Outcome


class Enricher:
    """Everything the enricher does with one message; built once per container, reused across invocations."""

    def __init__(
        self,
        *,
        settings: Settings,
        sender: SqsSender,
        queues: Queues,
        profile_store: ProfileStore | None,
        adservices: Callable[[], AdServicesFlow] | None,
        log: Log,
    ) -> None:
        self.settings = settings
        self.sender = sender
        self.queues = queues
        self.profile_store = profile_store
        self._adservices_factory = adservices  # built on first use: the HTTP client is imported only then
        self._adservices: AdServicesFlow | None = None
        self.log = log

    @property
    def adservices(self) -> AdServicesFlow | None:
        if self._adservices is None and self._adservices_factory is not None:
            self._adservices = self._adservices_factory()
        return self._adservices

    def process(
        self,
        body: str,
        info: MessageInfo,
        now: float,
        remaining_s: Callable[[], float] | None = None,
    ) -> Result:
        """Handle every event of ``body``; raise when something could not be handed off (see module doc)."""
        result = Result()
        tally = result.tally
        items = parse_body(body, route=info.route)
        raws = _RawEvents(body, items, info.route)
        if not info.requeued:  # a re-queued install was already counted when it first arrived
            tally[m.EVENTS_RECEIVED] += len(items)
        failed_at_ms = int(now * 1000)

        dead: list[OutgoingMessage] = []
        deliveries: list[OutgoingMessage] = []
        requeues: list[OutgoingMessage] = []

        denied = self._denied(items, info)
        keys = self._profile_keys(items, denied)
        store = self.profile_store
        stored = store.get_many(set(keys.values())) if store is not None and keys else {}
        current: dict[str, profiles.Profile] = dict(stored)
        dirty: set[str] = set()

        candidates: list[Candidate] = []
        works: list[_Work] = []
        for index, item in enumerate(items):
            if isinstance(item, Rejection):
                dead.append(
                    self._dead_letter(
                        _as_body(item.raw),
                        reason=item.reason,
                        field_name=item.field,
                        message=item.message,
                        uuid=item.uuid,
                        event_name=item.event_name,
                        info=info,
                        failed_at_ms=failed_at_ms,
                        result=result,
                    )
                )
                continue
            if isinstance(item, FilteredCall):  # Segment page / group / alias: counted by type, never sent
                tally[m.EVENTS_FILTERED] += 1
                result.filtered_by_type[item.call_type] += 1
                continue
            not_allowed = denied.get(index)
            if not_allowed is not None:  # the source (API key) may not send to this app: nothing else is done
                dead.append(
                    self._dead_letter(
                        raws.body_of(index),
                        reason=not_allowed.reason,
                        field_name=not_allowed.field,
                        message=not_allowed.message,
                        uuid=item.uuid,
                        event_name=item.name or item.type,
                        info=info,
                        failed_at_ms=failed_at_ms,
                        result=result,
                    )
                )
                continue
            key = keys.get(index)
            event, filled = profiles.fill_from_profile(item, current.get(key) if key else None)
            if filled:
                tally[m.PROFILE_FILLED] += 1
            outcome = to_kochava(event, self.settings, now=now)
            if outcome.status == "rejected":
                dead.append(
                    self._dead_letter(
                        raws.body_of(index),
                        reason=outcome.reason or "rejected",
                        field_name=outcome.field,
                        message=outcome.message,
                        uuid=item.uuid,
                        event_name=item.name or item.type,
                        info=info,
                        failed_at_ms=failed_at_ms,
                        result=result,
                    )
                )
                continue
            if key:  # accepted (ok or filtered): its own fields feed the profile, in batch order
                new = profiles.updated_profile(item, current.get(key), now)
                if new is not None:
                    current[key] = new
                    dirty.add(key)
            if outcome.status == "filtered":
                tally[m.EVENTS_FILTERED] += 1
                result.filtered_by_type[item.type] += 1
                continue
            if outcome.adservices_expired:
                tally[m.ADSERVICES_TOKEN_EXPIRED] += 1
            work = _Work(index, event, item, outcome)
            works.append(work)
            if self._adservices_factory is not None and wants_resolution(self.settings, event, outcome):
                candidates.append(Candidate(key=index, event=event, outcome=outcome))

        replaced: dict[int, Outcome] = {}
        requeued: set[int] = set()
        flow = self.adservices if candidates else None
        if flow is not None:
            decisions = flow.resolve_all(candidates, now, info.adservices_attempt, remaining_s)
            for decision in decisions:
                tally.update(decision.counts)
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
                if decision.action == "requeue":
                    requeued.add(decision.key)
                    attrs = {**info.attributes(), ATTR_ADSERVICES_ATTEMPT: decision.attempt}
                    requeues.append(OutgoingMessage(raws.body_of(decision.key), attrs, delay_seconds=decision.delay_s))
                elif decision.outcome is not None:
                    replaced[decision.key] = decision.outcome
            self.log.set_correlation_id(None)

        delivered_works: list[_Work] = []
        for work in works:
            if work.index in requeued:
                continue
            outcome = replaced.get(work.index, work.outcome)
            message = OutgoingMessage(
                envelope.build(outcome),
                {
                    ATTR_UUID: work.original.uuid,
                    ATTR_KIND: outcome.kind or "",
                    ATTR_EVENT_NAME: outcome.event_name or "",
                    ATTR_REQUEST_ID: info.request_id or "",
                    **({ATTR_RECEIVED_AT_MS: info.received_at_ms} if info.received_at_ms is not None else {}),
                },
            )
            size = message.size()
            if size > SQS_MAX_MESSAGE_BYTES:  # would fail on every retry: dead-letter it now, with the reason
                refusal = Refused(len(deliveries), message, "MessageTooLong", _too_large_error(size))
                dead.append(self._refused_delivery(work, refusal, raws, info, failed_at_ms, result))
                continue
            deliveries.append(message)
            delivered_works.append(work)

        # Hand-offs: a transient failure raises (the record is reported failed and redelivered as a whole); a
        # delivery message SQS refuses for good is dead-lettered with its reason instead.
        retried_before = self.sender.retried_entries
        refused: list[Refused] = []
        if deliveries:
            refused = self.sender.send(self.queues.delivery, deliveries)
            for refusal in refused:
                work = delivered_works[refusal.index]
                dead.append(self._refused_delivery(work, refusal, raws, info, failed_at_ms, result))
        if dead:
            self._send_for_good(self.queues.ingest_dlq, dead)
        if requeues:
            self._send_for_good(self.queues.ingest, requeues)
        tally[m.SEND_RETRIES] += self.sender.retried_entries - retried_before
        tally[m.EVENTS_REJECTED] += len(dead)
        tally[m.EVENTS_FORWARDED] += len(deliveries) - len(refused)
        tally[m.ADSERVICES_REQUEUED] += len(requeues)

        if dirty and store is not None:
            self._write_profiles(store, {key: current[key] for key in dirty}, now, tally)
        return result

    def _send_for_good(self, queue_url: str, messages: Sequence[OutgoingMessage]) -> None:
        """Send messages that have no other place to go: one SQS refuses for good fails the record too."""
        refused = self.sender.send(queue_url, messages)
        if refused:
            raise SendError(queue_url, [{"Id": f"m{r.index}", "Code": r.code, "Message": r.error} for r in refused])

    def _refused_delivery(
        self, work: _Work, refusal: Refused, raws: _RawEvents, info: MessageInfo, failed_at_ms: int, result: Result
    ) -> OutgoingMessage:
        """The ingest-DLQ message of an event whose delivery message SQS cannot take (too large, bad characters)."""
        raw_body = raws.body_of(work.index)
        if refusal.too_large:
            reason = reasons.PAYLOAD_TOO_LARGE
            field_name, field_bytes = largest_field(orjson.loads(raw_body))
            detail = f"; largest field {field_name}: {field_bytes} bytes" if field_name else ""
            message = refusal.error + detail
        else:
            reason, field_name = reasons.INVALID_EVENT, None
            message = f"SQS refused the delivery message: {refusal.error}"
        return self._dead_letter(
            raw_body,
            reason=reason,
            field_name=field_name,
            message=message,
            uuid=work.original.uuid,
            event_name=work.original.name or work.original.type,
            info=info,
            failed_at_ms=failed_at_ms,
            result=result,
        )

    def _denied(self, items: Sequence[Parsed], info: MessageInfo) -> dict[int, NotAllowed]:
        """The valid events the message's API key may not send (SOURCE_APPS), by position."""
        if not info.api_key_id or info.api_key_id not in self.settings.source_apps:
            return {}
        out: dict[int, NotAllowed] = {}
        for index, item in enumerate(items):
            if isinstance(item, Event):
                not_allowed = check_event(self.settings, info.api_key_id, item, info.route)
                if not_allowed is not None:
                    out[index] = not_allowed
        return out

    def _profile_keys(self, items: Sequence[Parsed], denied: Mapping[int, NotAllowed]) -> dict[int, str]:
        """The profile key of each valid event that has one (needs a configured app GUID and a device id)."""
        if self.profile_store is None:
            return {}
        keys: dict[int, str] = {}
        for index, item in enumerate(items):
            if not isinstance(item, Event) or index in denied:
                continue
            device_id = profiles.device_key_id(item)
            app_id = self.settings.app_id_for(item.device.platform, item.app.bundle_id if item.app else None)
            if device_id and app_id:
                keys[index] = profiles.profile_key(app_id, item.device.platform, device_id)
        return keys

    def _write_profiles(
        self, store: ProfileStore, changed: Mapping[str, profiles.Profile], now: float, tally: Counter[str]
    ) -> None:
        """Profiles are an optimisation for later events: a failed write is counted and logged, never fatal."""
        try:
            store.put_many(changed, expires_at=int(now) + PROFILE_TTL_S)
        except Exception as exc:  # ProfileStoreError, botocore errors...
            tally[m.PROFILE_WRITE_FAILED] += len(changed)
            self.log.warning("profile write failed", extra={"profiles": len(changed), "error": type(exc).__name__})
            return
        tally[m.PROFILE_UPDATED] += len(changed)

    def _dead_letter(
        self,
        body: str,
        *,
        reason: str,
        field_name: str | None,
        message: str | None,
        uuid: str | None,
        event_name: str | None,
        info: MessageInfo,
        failed_at_ms: int,
        result: Result,
    ) -> OutgoingMessage:
        """The ingest-DLQ message for one event (logged and counted by reason here)."""
        self.log.set_correlation_id(uuid)
        self.log.warning("event dead-lettered", extra={"reason": reason, "field": field_name, "error": message})
        self.log.set_correlation_id(None)
        result.rejected_by_reason[reason] += 1
        dead = dead_letter_message(
            body,
            stage=STAGE,
            reason=reason,
            failed_at_ms=failed_at_ms,
            **{ATTR_FIELD: field_name, ATTR_ERROR: message, ATTR_UUID: uuid, ATTR_EVENT_NAME: event_name},
            **info.attributes(),
        )
        # SQS allows 10 attributes: with api_key_id (kept so a replay is checked against the key's binding again)
        # received_at_ms makes room when all others are present. The event as received may itself be ~1 MiB: cut
        # the body (``truncated``) rather than lose the message; api_key_id then goes too (a cut body is never
        # replayed). failed_at_ms and request_id still date and identify it.
        return fit(dead, droppable=(ATTR_RECEIVED_AT_MS, ATTR_API_KEY_ID))


def _too_large_error(size: int) -> str:
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


def _as_body(raw: Any) -> str:
    """A DLQ body: the text as received when it was not JSON, else the JSON of the raw event."""
    if isinstance(raw, str):
        return raw
    return compact_json(raw)


class _RawEvents:
    """The raw JSON of each event of a body, by position, decoded only when a DLQ / re-queue message needs it.

    ``parse_body`` keeps the raw event on rejections only; an event rejected by the mapping or re-queued must
    also travel exactly as it was received, so the body is decoded again (once) for those rare cases.
    """

    def __init__(self, body: str, items: Sequence[object], route: Route) -> None:
        self._body = body
        self._count = len(items)
        self._route = route
        self._events: list[Any] | None = None

    def body_of(self, index: int) -> str:
        if self._events is None:  # as parse_body saw them (Segment: with the batch-level context merged in)
            self._events = raw_events(orjson.loads(self._body), self._route)
            if len(self._events) != self._count:  # cannot happen with parse_body's one-item-per-event promise
                raise RuntimeError("raw events and parsed events are not aligned")
        return compact_json(self._events[index])


def segment_route(route: str | None) -> Route:
    """The route attribute as the parser's literal (anything unknown is the native contract)."""
    return "segment" if route == ROUTE_SEGMENT else "native"
