"""The circuit breaker in front of Kochava: its state, its policy and the pure rules (no boto3, no clock reads:
every rule takes ``now``).

Every deliverer invocation shares one breaker, stored in DynamoDB (port :class:`functions.ports.BreakerStore`,
adapter ``functions/adapters/breaker_dynamodb.py``, read once per batch). What a batch does depends on the
breaker's :func:`mode`:

==========  ==========================================================================================
``send``    closed: POST every record as usual (urllib3 retries in-process, SQS backoff, idempotency)
``probe``   open, and the probe interval has passed: the invocation that wins the probe claim (a
            conditional write) POSTs **one** record with a single attempt, chosen by :func:`probe_order`
            (an event, and a device, not probed lately first); Kochava's success answer or a 4xx closes
            the breaker and the rest of the batch is sent; a 429 / 5xx / timeout, or a 2xx without
            Kochava's success body (:func:`is_kochava_healthy`), holds the batch
``hold``    open: no POST, no idempotency write; every record goes back to the queue, invisible for
            :attr:`BreakerPolicy.hold_s` (a hold does not count as a delivery attempt)
==========  ==========================================================================================

**When it opens** (:func:`trips`): the breaker is for Kochava being down, not for one event being bad. It opens
only on *evidence*: within the last :attr:`BreakerPolicy.window_s`, transient failures (429 / 5xx / timeout /
connection error after the in-process retries) of at least :attr:`BreakerPolicy.min_events` **distinct events**
from at least :attr:`BreakerPolicy.min_sources` **distinct devices** (app + device id; an event without one counts
as its own), and **no delivery** in that window. A few events that always fail among good ones never open it
(the good ones are deliveries); each such event fails on its own schedule (SQS backoff, its own attempts) and is
dead-lettered ``retries_exhausted``. Failures are remembered by a short hash only (:func:`short_hash`): no device
id is stored.

Holding a record still costs it one SQS receive per hold, so the delivery queue's ``maxReceiveCount`` is high
and a held record is dead-lettered by the deliverer itself (:func:`give_up`, reason ``retries_exhausted``)
before SQS could expire it (retention) or redrive it without a reason. The arithmetic is in docs/deliverer.md.

Example:
    >>> policy = BreakerPolicy()
    >>> mode(CLOSED, now=100.0), mode(BreakerState(is_open=True, probe_after=130.0), now=100.0)
    ('send', 'hold')
    >>> mode(BreakerState(is_open=True, probe_after=130.0), now=130.0)
    'probe'
    >>> five = [Failure(f"e{i}", f"d{i}") for i in range(5)]
    >>> trips(record(CLOSED, failures=five, delivered=0, now=100.0, policy=policy), now=100.0, policy=policy)
    True
    >>> same_event = [Failure("e0", "d0")] * 9  # one bad event retried: not evidence
    >>> trips(record(CLOSED, failures=same_event, delivered=0, now=100.0, policy=policy), now=100.0, policy=policy)
    False
    >>> hold_visibility_s(policy, jitter=0.0), hold_visibility_s(policy, jitter=0.999)
    (600, 660)
    >>> round(policy.held_receives_per_day)
    144
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

from functions.names import DELIVERY_QUEUE

Mode = Literal["send", "probe", "hold"]

# A hold lasts hold_s plus up to this share of it, so the records of one batch do not all come back together.
HOLD_JITTER: Final = 0.1
SQS_MAX_VISIBILITY_S: Final = 12 * 3600
DAY_S: Final = 24 * 3600
MAX_FAILURES_KEPT: Final = 50  # the most recent failures the state keeps (the DynamoDB item stays small)
MAX_PROBED_KEPT: Final = 20  # the events (and devices) probed lately, so the next probe picks another


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """How the breaker behaves. Defaults are the deployed ones; ``tools.local`` divides the durations by its
    time scale."""

    min_events: int = 5  # distinct events failing transiently within the window (with no delivery) open it
    min_sources: int = 3  # ... coming from at least this many distinct devices (app + device id)
    window_s: float = 60.0  # the evidence window
    probe_interval_s: float = 20.0  # at most one probe per interval while open: 3 requests a minute in total
    hold_s: float = 600.0  # how long a held record stays invisible (plus up to HOLD_JITTER of it)
    retention_s: float = float(DELIVERY_QUEUE.retention_s)  # the delivery queue's MessageRetentionPeriod
    max_receive_count: int = DELIVERY_QUEUE.max_receive_count  # the delivery queue's maxReceiveCount

    def __post_init__(self) -> None:
        if self.min_events < 1 or self.min_sources < 1:
            raise ValueError(f"min_events, min_sources: must be >= 1, got {self.min_events}, {self.min_sources}")
        for name in ("window_s", "probe_interval_s", "hold_s", "retention_s"):
            value = getattr(self, name)
            if not 0 < value < math.inf:
                raise ValueError(f"{name}: must be a positive number of seconds, got {value!r}")
        if self.max_receive_count < 3:
            raise ValueError(f"max_receive_count: must be >= 3, got {self.max_receive_count}")

    @property
    def longest_hold_s(self) -> int:
        """The longest visibility a hold gives (``hold_s`` plus its jitter, whole seconds)."""
        return hold_visibility_s(self, jitter=1.0)

    @property
    def give_up_age_s(self) -> float:
        """A record this old (since it was sent) that is not delivered yet is dead-lettered instead of being held
        again: one more hold could outlive the queue's retention. Two holds of margin."""
        return max(0.0, self.retention_s - 2 * self.longest_hold_s)

    @property
    def held_receives_per_day(self) -> float:
        """SQS receives a record held for 24 hours collects (one per hold)."""
        return DAY_S / self.hold_s

    @property
    def probes_per_minute(self) -> float:
        """The most requests Kochava sees per minute while the breaker is open (one attempt per probe)."""
        return 60.0 / self.probe_interval_s


@dataclass(frozen=True, slots=True)
class Failure:
    """One transient failure of one event: ``event`` and ``source`` (its device) are short hashes
    (:func:`failure_of`); ``at`` is set by :func:`record`."""

    event: str
    source: str
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class BreakerState:
    """The shared breaker as last read. ``probe_after`` (epoch s) matters only while open; ``version`` counts the
    writes (every write is conditional on the version read)."""

    is_open: bool = False
    opened_at: float | None = None
    closed_at: float | None = None
    probe_after: float = 0.0
    failures: tuple[Failure, ...] = ()  # recent transient failures since the last delivery (while closed)
    last_delivery_at: float | None = None  # the last delivery noticed while failures were being counted
    probed: tuple[str, ...] = ()  # events and devices probed lately (hashes, oldest first)
    openings: int = 0  # times it opened (a counter for on-call and tests)
    version: int = 0


CLOSED: Final = BreakerState()


def short_hash(*parts: str) -> str:
    """A short, stable hash of ``parts`` (12 hex of SHA-256): what the breaker stores instead of ids.

    >>> short_hash("u-1", "event", "ko-app")
    '32ac1c8286f8'
    """
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]


def failure_of(*, uuid: str, kind: str, app: str | None, device: str | None) -> Failure:
    """The failure of one event: keyed by its uuid, kind and app; its source is its app and device, or the event
    itself when the device is not known (then it cannot look like several devices).

    >>> failure_of(uuid="u", kind="event", app="a", device=None).source == failure_of(
    ...     uuid="u", kind="event", app="a", device=None).event
    True
    """
    event = short_hash(uuid, kind, app or "")
    return Failure(event, short_hash(app or "", device) if device else event)


def mode(state: BreakerState, *, now: float) -> Mode:
    """What a batch does, given the breaker as read at ``now``."""
    if not state.is_open:
        return "send"
    return "probe" if now >= state.probe_after else "hold"


def evidence(state: BreakerState, *, now: float, policy: BreakerPolicy) -> tuple[int, int]:
    """(distinct events, distinct devices) that failed within the window and after the last delivery."""
    since = now - policy.window_s
    if state.last_delivery_at is not None:
        since = max(since, state.last_delivery_at)
    recent = [f for f in state.failures if f.at >= since]
    return len({f.event for f in recent}), len({f.source for f in recent})


def trips(state: BreakerState, *, now: float, policy: BreakerPolicy) -> bool:
    """Whether the evidence opens the (closed) breaker: enough distinct events from enough devices failed within
    the window, and nothing was delivered in it."""
    if state.is_open:
        return False
    if state.last_delivery_at is not None and state.last_delivery_at > now - policy.window_s:
        return False
    events, sources = evidence(state, now=now, policy=policy)
    return events >= policy.min_events and sources >= policy.min_sources


def record(
    state: BreakerState, *, failures: Sequence[Failure], delivered: int, now: float, policy: BreakerPolicy
) -> BreakerState:
    """The closed breaker after a batch at ``now``: ``delivered`` records delivered, ``failures`` failed
    transiently. A delivery forgets the failures before it; failures older than the window are dropped.

    Returns ``state`` itself when nothing needs writing: a batch of deliveries with no failure on record writes
    only when the last delivery on record is older than half the window (so "a delivery within the window" is
    known fleet-wide at the cost of about one write per half window, not one per batch).
    """
    if state.is_open:
        return state
    if delivered:
        fresh = state.last_delivery_at is not None and state.last_delivery_at >= now - policy.window_s / 2
        if not state.failures and fresh:
            return state
        return replace(state, failures=(), last_delivery_at=now)
    if not failures:
        return state
    since = now - policy.window_s
    kept = [f for f in state.failures if f.at >= since]
    kept += [Failure(f.event, f.source, now) for f in failures]
    return replace(state, failures=tuple(kept[-MAX_FAILURES_KEPT:]))


def opened(state: BreakerState, *, now: float, policy: BreakerPolicy) -> BreakerState:
    """``state`` opened at ``now`` (the first probe is due one interval later)."""
    return replace(
        state,
        is_open=True,
        opened_at=now,
        probe_after=next_probe_after(now, policy),
        failures=(),
        probed=(),
        openings=state.openings + 1,
    )


def closed(state: BreakerState, *, now: float) -> BreakerState:
    """``state`` closed at ``now`` by a healthy probe answer."""
    return replace(state, is_open=False, closed_at=now, failures=(), last_delivery_at=now, probed=())


def probe_claimed(state: BreakerState, *, now: float, policy: BreakerPolicy) -> BreakerState:
    """``state`` after an invocation took the probe slot due at ``now``."""
    return replace(state, probe_after=next_probe_after(now, policy))


def probe_failed(state: BreakerState, *, probed: Failure) -> BreakerState:
    """``state`` after a probe of ``probed`` was not healthy: remember its event and device, so the next probes
    pick others."""
    kept = [p for p in state.probed if p not in (probed.event, probed.source)]
    kept += [probed.event, probed.source]
    return replace(state, probed=tuple(kept[-MAX_PROBED_KEPT:]))


def probe_order(candidates: Sequence[Failure], probed: Sequence[str]) -> list[int]:
    """The order in which a probing batch tries its records: events not probed lately from devices not probed
    lately first, then events not probed lately, then the rest; in batch order within each group.

    >>> probe_order([Failure("a", "d1"), Failure("b", "d1"), Failure("c", "d2")], probed=["a", "d1"])
    [2, 1, 0]
    """
    seen = set(probed)

    def rank(index: int) -> tuple[int, int]:
        item = candidates[index]
        return (item.event in seen) * 2 + (item.source in seen), index

    return sorted(range(len(candidates)), key=rank)


def next_probe_after(now: float, policy: BreakerPolicy) -> float:
    """When the next probe may be claimed, after opening or after a failed probe at ``now``."""
    return now + policy.probe_interval_s


def hold_visibility_s(policy: BreakerPolicy, *, jitter: float) -> int:
    """The visibility timeout of a held record: ``hold_s * (1 + HOLD_JITTER * jitter)``, ``jitter`` in [0, 1],
    whole seconds (SQS), at least 1, at most SQS's 12 hours."""
    seconds = math.ceil(policy.hold_s * (1 + HOLD_JITTER * min(1.0, max(0.0, jitter))))
    return max(1, min(SQS_MAX_VISIBILITY_S, seconds))


def give_up(*, age_s: float, receive_count: int, policy: BreakerPolicy) -> str | None:
    """Why a record that is not delivered now must be dead-lettered rather than returned to the queue, or None.

    Returned to the queue, it could expire (``retention_s``) or be redriven by SQS without a reason
    (``max_receive_count``) before the next receive.

    >>> policy = BreakerPolicy(hold_s=600, retention_s=4 * 86400, max_receive_count=900)
    >>> give_up(age_s=3600, receive_count=7, policy=policy) is None
    True
    >>> give_up(age_s=4 * 86400 - 1000, receive_count=7, policy=policy)
    'waited 95.7 h, the delivery queue keeps a message 96.0 h'
    >>> give_up(age_s=60, receive_count=899, policy=policy)
    'received 899 times, the delivery queue redrives at 900'
    """
    if age_s >= policy.give_up_age_s:
        return f"waited {age_s / 3600:.1f} h, the delivery queue keeps a message {policy.retention_s / 3600:.1f} h"
    if receive_count >= policy.max_receive_count - 1:
        return f"received {receive_count} times, the delivery queue redrives at {policy.max_receive_count}"
    return None


def is_kochava_healthy(outcome: str) -> bool:
    """Whether a probe's outcome shows Kochava is back: its success answer, or a 4xx (Kochava rejecting one
    payload is Kochava answering). A 429 / 5xx / timeout (``transient``) is not, and neither is a 2xx without
    Kochava's success body (``bad_response``: a proxy or an error page may answer 200).

    >>> [is_kochava_healthy(o) for o in ("delivered", "permanent", "transient", "bad_response")]
    [True, True, False, False]
    """
    return outcome in ("delivered", "permanent")
