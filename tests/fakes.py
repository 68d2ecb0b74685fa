"""In-memory fakes of the ports (``functions/ports.py``) and of the enricher's ``Log``, for fast core tests.

Each fake is a small real implementation, not a mock: it keeps what it was given, answers the way its adapter
answers, and can be told to fail the ways that adapter fails (see the adapters' module docs):

===========================  ==================================================================================
fake                         mirrors
===========================  ==================================================================================
:class:`FakeSender`          ``adapters.sqs.SqsSender``: a message over SQS's size limit, or one the test marks,
                             is refused for good (:class:`~functions.messages.Refused`, in input order); a
                             transient failure raises :class:`~functions.messages.SendError`
:class:`FakeRecordBackOff`   ``adapters.sqs.SqsBackOff``: the visibility asked per receipt handle kept, or refused
                             (False, as when SQS refuses the change)
:class:`FakeProfileStore`    ``adapters.profiles_dynamodb``: profiles by key, each written with its expiry;
                             a read or a write can raise :class:`ProfileStoreError`
:class:`FakeAdServices`      ``adapters.apple``: scripted answers per token (the last one repeats); never raises
                             unless told to (a client bug)
:class:`FakeKochava`         ``adapters.kochava_http``: scripted :class:`~functions.ports.KochavaResult` per event
                             uuid (the last one repeats), delivered by default
:class:`FakeOnceSender`      ``deliverer.idempotency.IdempotentSender``: a key (uuid + kind) delivered once is a
                             ``duplicate`` after (``conflict`` when its content differs: a reused uuid); a failure
                             is never remembered; a key in flight elsewhere is
                             ``in_progress``; the store can be down (raises)
:class:`FakeDeliveryQueue`   ``adapters.sqs.SqsDeliveryQueue``: dead letters kept, or :class:`SendError`; back-offs
                             kept, or refused (False)
:class:`FakeBreakerStore`    ``adapters.breaker_dynamodb``: one versioned breaker record, written only on the
                             version read (else False); attempts counted per message id; reads and writes can
                             raise (the table down)
:class:`FakeLog`             the slice of Powertools' ``Logger`` the enricher uses
:class:`MemoryPersistence`   Powertools' ``DynamoDBPersistenceLayer`` (under ``deliverer.idempotency``): records
                             by hashed key, written only when absent, expired or in progress past its expiry
===========================  ==================================================================================

The deliverer calls its ports from a thread pool: the deliverer-side fakes lock their state.

Example:
    >>> sender = FakeSender()
    >>> sender.send("q", [OutgoingMessage("a"), OutgoingMessage("x" * (SQS_MAX_MESSAGE_BYTES + 1))])[0].code
    'MessageTooLong'
    >>> [m.body for m in sender.sent["q"]]
    ['a']
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from functions.adapters.apple import classify_apple_answer
from functions.adapters.breaker_dynamodb import ITEM_TTL_S
from functions.adapters.kochava_http import classify_answer
from functions.adapters.profiles_dynamodb import ProfileStoreError
from functions.messages import DeliveryRecord, OutgoingMessage, Refused, SendError
from functions.names import SQS_MAX_MESSAGE_BYTES
from functions.pipeline.breaker import CLOSED, BreakerState
from functions.pipeline.delivery_key import delivery_key
from functions.pipeline.envelope import Envelope, Kind
from functions.pipeline.profiles import Profile
from functions.ports import AdServicesResult, KochavaResult, SendAnswer

T = TypeVar("T")

# --- Messages --------------------------------------------------------------------------------------------------


@dataclass
class FakeSender:
    """A :class:`~functions.ports.MessageSender` that keeps what it accepted per queue URL."""

    sent: dict[str, list[OutgoingMessage]] = field(default_factory=dict)
    retried_entries: int = 0
    calls: list[str] = field(default_factory=list)  # the queue URL of each send
    _refusals: list[tuple[Callable[[str, OutgoingMessage], bool], str, str]] = field(default_factory=list)
    _transient: dict[str | None, int] = field(default_factory=dict)  # queue URL (None: any) -> calls left to fail
    _failing: list[Callable[[str, OutgoingMessage], bool]] = field(default_factory=list)
    _retries_next: int = 0

    def refuse(
        self, when: Callable[[str, OutgoingMessage], bool], code: str = "InvalidMessageContents", error: str = ""
    ) -> None:
        """Refuse for good every message ``when(queue_url, message)`` holds for (a ``SenderFault`` entry)."""
        self._refusals.append((when, code, error or f"{code}: refused by the test"))

    def fail(self, queue_url: str | None = None, times: int = 1) -> None:
        """The next ``times`` sends to ``queue_url`` (None: to any queue) still fail after the retries."""
        self._transient[queue_url] = self._transient.get(queue_url, 0) + times

    def fail_messages(self, when: Callable[[str, OutgoingMessage], bool]) -> None:
        """Every message ``when(queue_url, message)`` holds for still fails after the retries (not a sender fault):
        the others of the call are sent, then :class:`SendError` names the failed ones, as the real sender does."""
        self._failing.append(when)

    def retry_next(self, entries: int) -> None:
        """The next send needs another call for ``entries`` of its entries, then succeeds (the metric)."""
        self._retries_next += entries

    def send(self, queue_url: str, messages: Sequence[OutgoingMessage]) -> list[Refused]:
        self.calls.append(queue_url)
        for key in (queue_url, None):
            if self._transient.get(key, 0) > 0:
                self._transient[key] -= 1
                raise SendError(
                    queue_url, [{"Id": f"m{i}", "Code": "ServiceUnavailable"} for i in range(len(messages))]
                )
        refused: list[Refused] = []
        failed: list[dict[str, str]] = []
        accepted = self.sent.setdefault(queue_url, [])
        for index, message in enumerate(messages):
            refusal = self._refusal(queue_url, index, message)
            if refusal is not None:
                refused.append(refusal)
            elif any(when(queue_url, message) for when in self._failing):
                failed.append({"Id": f"m{index}", "Code": "InternalError"})
            else:
                accepted.append(message)
        self.retried_entries += self._retries_next
        self._retries_next = 0
        if failed:
            raise SendError(queue_url, failed)
        return refused

    def _refusal(self, queue_url: str, index: int, message: OutgoingMessage) -> Refused | None:
        size = message.size()
        if size > SQS_MAX_MESSAGE_BYTES:  # the real sender's pre-flight check
            error = f"message of {size} bytes (body + attributes) is over SQS's limit of {SQS_MAX_MESSAGE_BYTES}"
            return Refused(index, message, "MessageTooLong", error)
        for when, code, error in self._refusals:
            if when(queue_url, message):
                return Refused(index, message, code, error)
        return None

    def messages(self, queue_url: str) -> list[OutgoingMessage]:
        """What ``queue_url`` accepted, in order."""
        return list(self.sent.get(queue_url, []))


@dataclass
class FakeRecordBackOff:
    """A :class:`~functions.ports.RecordBackOff` that keeps each visibility asked, by receipt handle."""

    back_offs: list[tuple[str, int]] = field(default_factory=list)  # (receipt handle, visibility timeout s)
    refuse: bool = False  # SQS refuses the change: False, never raises

    def back_off(self, receipt_handle: str, visibility_timeout_s: int) -> bool:
        if self.refuse:
            return False
        self.back_offs.append((receipt_handle, visibility_timeout_s))
        return True


# --- Device profiles -------------------------------------------------------------------------------------------


@dataclass
class FakeProfileStore:
    """A :class:`~functions.ports.ProfileStore` in a dict; ``expires_at`` keeps each key's last expiry."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    expires_at: dict[str, int] = field(default_factory=dict)
    reads: list[list[str]] = field(default_factory=list)  # the keys of each get_many, de-duplicated
    writes: list[tuple[dict[str, Profile], int]] = field(default_factory=list)  # each put_many that succeeded
    read_error: Exception | None = None
    write_error: Exception | None = None

    def fail_reads(self, error: Exception | None = None) -> None:
        self.read_error = error or ProfileStoreError("BatchGetItem left keys unprocessed after 4 attempts")

    def fail_writes(self, error: Exception | None = None) -> None:
        self.write_error = error or ProfileStoreError("BatchWriteItem left items unprocessed after 4 attempts")

    def get_many(self, keys: Iterable[str]) -> dict[str, Profile]:
        unique = list(dict.fromkeys(k for k in keys if k))
        self.reads.append(unique)
        if self.read_error is not None:
            raise self.read_error
        return {k: dict(self.profiles[k]) for k in unique if k in self.profiles}  # copies, as read from a table

    def put_many(self, profiles: Mapping[str, Profile], expires_at: int) -> None:
        if self.write_error is not None:
            raise self.write_error
        written = {k: dict(p) for k, p in profiles.items()}
        self.writes.append((written, expires_at))
        self.profiles.update(written)
        self.expires_at.update(dict.fromkeys(written, expires_at))


# --- Apple AdServices ------------------------------------------------------------------------------------------


class FakeAdServices:
    """An :class:`~functions.ports.AdServicesClient` answering scripted results per token.

    A token's answers are given in order, the last one repeating; a token without a script gets ``default``
    (``not_ready``, as Apple answers 404 before the attribution exists). ``calls`` lists the tokens asked.
    """

    def __init__(self, default: AdServicesResult | None = None) -> None:
        self.default = default or classify_apple_answer(404, b"")
        self.calls: list[str] = []
        self.error: Exception | None = None  # raised by resolve (a client bug; the real one never raises)
        self.on_call: Callable[[str], None] | None = None  # run on each call, outside the lock (a wait, a barrier)
        self._scripts: dict[str, list[AdServicesResult]] = {}
        self._lock = threading.Lock()

    def script(self, token: str, *answers: AdServicesResult) -> None:
        self._scripts[token] = list(answers)

    def resolve(self, token: str) -> AdServicesResult:
        with self._lock:
            self.calls.append(token)
            if self.error is not None:
                raise self.error
            answer = _next(self._scripts.get(token), self.default)
        if self.on_call is not None:
            self.on_call(token)
        return answer

    def calls_for(self, token: str) -> int:
        return self.calls.count(token)


def apple_answer(reply: int | Mapping[str, Any]) -> AdServicesResult:
    """What the Apple adapter makes of Apple's answer, given as the local stub takes it (a status with an empty body,
    or a 200 with this JSON): its own ``classify_apple_answer``, so the fake cannot drift from the real client."""
    if isinstance(reply, int):
        return classify_apple_answer(reply, b"")
    return classify_apple_answer(200, json.dumps(reply).encode())


def apple_resolved(attribution: Mapping[str, Any]) -> AdServicesResult:
    """Apple's 200 with an attribution record."""
    return AdServicesResult("resolved", 200, attribution=dict(attribution))


# Apple's answers as the adapter classifies them (its own classifier: the fake's answers cannot drift from it).
APPLE_NOT_READY = classify_apple_answer(404, b"")
APPLE_INVALID = classify_apple_answer(400, b"")
APPLE_UNAVAILABLE = classify_apple_answer(503, b"")


# --- Kochava ---------------------------------------------------------------------------------------------------


def kochava_answer(status: int, body: str | bytes = b'{"success":"1"}', *, attempts: int = 1) -> KochavaResult:
    """What the HTTP adapter makes of Kochava's (last) answer: its own ``classify_answer``, so the fake's answers
    cannot drift from the real client's (outcome, error text, the body kept)."""
    return classify_answer(status, body.encode() if isinstance(body, str) else body, attempts=attempts)


# Kochava's answers as the HTTP adapter classifies them (a 503 after its in-process retries).
DELIVERED = kochava_answer(200)
TRANSIENT = kochava_answer(503, "busy", attempts=4)
REJECTED = kochava_answer(400, '{"success":"0","error":"bad app id"}')
BAD_RESPONSE = kochava_answer(200, "<html>")


@dataclass(frozen=True)
class Post:
    """One payload Kochava was sent (``uuid`` is None when it came through the port, which does not carry it)."""

    uuid: str | None
    kind: Kind
    payload: Mapping[str, Any]
    deadline: float
    retry: bool = True  # False: a breaker probe, one HTTP attempt
    answer: KochavaResult = DELIVERED  # what the fake answered


class FakeKochava:
    """A :class:`~functions.ports.KochavaClient` answering scripted results per event uuid (delivered by default).

    Kochava's payload does not carry the event's uuid: :meth:`send` (the port) answers from the script of ``None``;
    :class:`FakeOnceSender` calls :meth:`answer` with the envelope's uuid. A :meth:`rule` answers the payloads it
    matches (as the local sink's ``add_rule``), before any script; ``latency_s`` is how long each answer takes.
    """

    def __init__(self, default: KochavaResult = DELIVERED) -> None:
        self.default = default
        self.posts: list[Post] = []
        self.latency_s = 0.0
        self._scripts: dict[str | None, list[KochavaResult]] = {}
        self._rules: list[tuple[Callable[[Kind, Mapping[str, Any]], bool], list[KochavaResult]]] = []
        self._lock = threading.Lock()

    def script(self, uuid: str | None, *results: KochavaResult) -> None:
        """``uuid``'s answers in order, the last one repeating (``None``: payloads sent through :meth:`send`)."""
        self._scripts[uuid] = list(results)

    def rule(self, when: Callable[[Kind, Mapping[str, Any]], bool], *results: KochavaResult) -> None:
        """Answer every payload ``when(kind, payload)`` holds for with ``results`` in order, the last repeating (the
        first matching rule answers)."""
        self._rules.append((when, list(results)))

    def clear_rules(self) -> None:
        """Kochava is back: no rule, no script; every payload gets ``default``."""
        with self._lock:
            self._rules.clear()
            self._scripts.clear()

    def send(self, kind: Kind, payload: Mapping[str, Any], *, deadline: float, retry: bool = True) -> KochavaResult:
        return self.answer(None, kind, payload, deadline=deadline, retry=retry)

    def answer(
        self, uuid: str | None, kind: Kind, payload: Mapping[str, Any], *, deadline: float, retry: bool = True
    ) -> KochavaResult:
        with self._lock:
            matching = next((results for when, results in self._rules if when(kind, payload)), None)
            result = _next(matching, self.default) if matching else _next(self._scripts.get(uuid), self.default)
            self.posts.append(Post(uuid, kind, payload, deadline, retry, result))
        if self.latency_s:
            time.sleep(self.latency_s)  # outside the lock: concurrent posts overlap, as over HTTP
        return result

    def posted(self, uuid: str) -> list[Post]:
        return [p for p in self.posts if p.uuid == uuid]

    @property
    def delivered(self) -> list[Post]:
        """The posts answered with a delivery."""
        return [p for p in self.posts if p.answer.delivered]


class FakeOnceSender:
    """A :class:`~functions.ports.OnceSender` with its idempotency store in memory (keys: uuid + kind)."""

    def __init__(self, kochava: FakeKochava | None = None) -> None:
        self.kochava = kochava or FakeKochava()
        self.delivered: set[tuple[str, str]] = set()
        self.contents: dict[tuple[str, str], Any] = {}  # the content delivered under each key (delivery_key)
        self.in_flight: set[tuple[str, str]] = set()  # an invocation elsewhere is sending these
        self.error: Exception | None = None  # raised by send_once: the idempotency store is down
        self._lock = threading.Lock()

    def send_once(
        self, env: Envelope, payload: Mapping[str, Any], *, deadline: float, retry: bool = True
    ) -> SendAnswer:
        key = (env.uuid, env.kind)
        content = delivery_key(env)["content"]
        with self._lock:
            if self.error is not None:
                raise self.error
            if key in self.delivered:
                # Powertools' payload validation: the same key with another content is a reused uuid.
                return SendAnswer("duplicate" if self.contents.get(key, content) == content else "conflict")
            if key in self.in_flight:
                return SendAnswer("in_progress")
            self.in_flight.add(key)
        try:
            result = self.kochava.answer(env.uuid, env.kind, payload, deadline=deadline, retry=retry)
        finally:
            with self._lock:
                self.in_flight.discard(key)
        if not result.delivered:
            return SendAnswer("failed", result)  # nothing remembered: a retry sends again
        with self._lock:
            self.delivered.add(key)
            self.contents[key] = content
        return SendAnswer("delivered", result)


@dataclass
class FakeDeliveryQueue:
    """A :class:`~functions.ports.DeliveryQueue` that keeps dead letters and back-offs."""

    dlq_url: str = "https://sqs.test/delivery-dlq"
    dead_letters: list[OutgoingMessage] = field(default_factory=list)
    back_offs: list[tuple[str, int]] = field(default_factory=list)  # (message id, visibility timeout s)
    dead_letter_error: Exception | None = None
    refuse_back_off: bool = False
    back_off_calls: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def fail_dead_letters(self) -> None:
        """The DLQ send fails after the retries (the real queue raises :class:`SendError`)."""
        self.dead_letter_error = SendError(self.dlq_url, [{"Id": "m0", "Code": "ServiceUnavailable"}])

    def dead_letter(self, messages: Sequence[OutgoingMessage]) -> None:
        with self._lock:
            if self.dead_letter_error is not None:
                raise self.dead_letter_error
            too_large = [i for i, m in enumerate(messages) if m.size() > SQS_MAX_MESSAGE_BYTES]
            if too_large:  # refused for good: the real queue raises rather than acknowledge it unrecorded
                raise SendError(self.dlq_url, [{"Id": f"m{i}", "Code": "MessageTooLong"} for i in too_large])
            self.dead_letters.extend(messages)

    def back_off(self, holds: Sequence[tuple[DeliveryRecord, int]]) -> list[bool]:
        with self._lock:
            self.back_off_calls += 1
            if self.refuse_back_off:
                return [False] * len(holds)
            self.back_offs.extend((record.message_id, seconds) for record, seconds in holds)
            return [True] * len(holds)


@dataclass
class FakeBreakerStore:
    """A :class:`~functions.ports.BreakerStore` in memory: the breaker record and the attempts per message.

    ``writes`` keeps every state written (in order); ``lose_next_writes`` makes the next writes lose the race as if
    another invocation had written first (the stored version moves on, the state is unchanged). ``stale``, when set,
    is what an eventually consistent read answers (a replica behind); a consistent read always sees ``state``. Each
    item expires ``ITEM_TTL_S`` after the ``now`` of its last write, as the adapter's TTL attribute says
    (``expires_at``; the breaker record under ``""``).
    """

    state: BreakerState = CLOSED
    attempts: dict[str, int] = field(default_factory=dict)
    writes: list[BreakerState] = field(default_factory=list)
    error: Exception | None = None  # raised by every call: DynamoDB is down
    lose_next_writes: int = 0
    stale: BreakerState | None = None
    expires_at: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def read(self, *, consistent: bool = False) -> BreakerState:
        with self._lock:
            self._fail()
            return self.state if consistent or self.stale is None else self.stale

    def write(self, state: BreakerState, *, expected_version: int, now: float) -> bool:
        with self._lock:
            self._fail()
            expires_at = int(now) + ITEM_TTL_S
            if self.lose_next_writes:
                self.lose_next_writes -= 1
                self.state = replace(self.state, version=self.state.version + 1)
                return False
            if self.state.version != expected_version:
                return False
            self.state = replace(state, version=expected_version + 1)
            self.writes.append(self.state)
            self.expires_at[""] = expires_at
            return True

    def count_attempt(self, message_id: str, *, now: float) -> int:
        with self._lock:
            self._fail()
            self.attempts[message_id] = self.attempts.get(message_id, 0) + 1
            self.expires_at[message_id] = int(now) + ITEM_TTL_S
            return self.attempts[message_id]

    def _fail(self) -> None:
        if self.error is not None:
            raise self.error


# --- The enricher's log ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    level: str
    message: str
    extra: Mapping[str, Any]
    correlation_id: str | None


@dataclass
class FakeLog:
    """The enricher's :class:`~functions.enricher.core.Log`: lines kept with the correlation id of their time."""

    lines: list[LogLine] = field(default_factory=list)
    correlation_id: str | None = None

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._add("INFO", msg, kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._add("WARNING", msg, kwargs)

    def set_correlation_id(self, value: str | None) -> None:
        self.correlation_id = value

    def _add(self, level: str, msg: object, kwargs: Mapping[str, Any]) -> None:
        self.lines.append(LogLine(level, str(msg), dict(kwargs.get("extra") or {}), self.correlation_id))

    def named(self, message: str) -> list[LogLine]:
        return [line for line in self.lines if line.message == message]


def _next(script: list[T] | None, default: T) -> T:
    """The next scripted answer (the last one repeats), else ``default``."""
    if not script:
        return default
    return script.pop(0) if len(script) > 1 else script[0]


# --- Powertools idempotency ------------------------------------------------------------------------------------


class MemoryPersistence(BasePersistenceLayer):
    """Powertools' idempotency persistence in a dict (``records`` by hashed key), with the conditions of its
    DynamoDB layer: a record is written only when absent, expired, or in progress past its in-progress expiry;
    otherwise Powertools reads it back (and validates the payload hash against it)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.records: dict[str, DataRecord] = {}
        self.clock = clock  # the conditional write's "now" (a test moves it past an in-progress expiry)
        self._lock = threading.Lock()  # DynamoDB applies a conditional write atomically

    def _get_record(self, idempotency_key: str) -> DataRecord:
        try:
            return self.records[idempotency_key]
        except KeyError:
            raise IdempotencyItemNotFoundError from None

    def _put_record(self, data_record: DataRecord) -> None:
        with self._lock:
            old = self.records.get(data_record.idempotency_key)
            now_ms = int(self.clock() * 1000)
            in_progress_over = (
                old is not None
                and old.status == "INPROGRESS"
                and old.in_progress_expiry_timestamp is not None
                and old.in_progress_expiry_timestamp < now_ms
            )
            expires = old.expiry_timestamp if old is not None else None
            expired = expires is not None and 0 < expires < now_ms // 1000
            if old is not None and not expired and not in_progress_over:
                raise IdempotencyItemAlreadyExistsError
            self.records[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        self.records[data_record.idempotency_key] = data_record

    def _delete_record(self, data_record: DataRecord) -> None:
        self.records.pop(data_record.idempotency_key, None)
