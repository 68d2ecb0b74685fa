"""The circuit breaker in front of Kochava: its state, its policy and the pure rules (no boto3, no clock reads).

Every deliverer invocation shares one breaker, stored in DynamoDB (port :class:`functions.ports.BreakerStore`,
adapter ``functions/adapters/breaker_dynamodb.py``, read once per batch). What a batch does depends on the
breaker's :func:`mode`:

==========  ==========================================================================================
``send``    closed: POST every record as usual (urllib3 retries in-process, SQS backoff, idempotency)
``probe``   open, and the probe interval has passed: the invocation that wins the probe claim (a
            conditional write) POSTs **one** record with a single attempt; any answer from Kochava other
            than 429 / 5xx / timeout closes the breaker and the rest of the batch is sent; otherwise the
            batch is held
``hold``    open: no POST, no idempotency write; every record goes back to the queue, invisible for
            :attr:`BreakerPolicy.hold_s` (a hold does not count as a delivery attempt)
==========  ==========================================================================================

The breaker opens when :attr:`BreakerPolicy.failure_threshold` records in a row, across all invocations, failed
transiently (429 / 5xx / timeout / connection error after the in-process retries); a delivered record resets
the count. While it is open Kochava sees at most one probe per :attr:`BreakerPolicy.probe_interval_s` in total.

Holding a record still costs it one SQS receive per hold, so the delivery queue's ``maxReceiveCount`` is high
and a held record is dead-lettered by the deliverer itself (:func:`give_up`, reason ``retries_exhausted``)
before SQS could expire it (retention) or redrive it without a reason. The arithmetic is in docs/deliverer.md.

Example:
    >>> policy = BreakerPolicy()
    >>> mode(CLOSED, now=100.0), mode(BreakerState(is_open=True, probe_after=130.0), now=100.0)
    ('send', 'hold')
    >>> mode(BreakerState(is_open=True, probe_after=130.0), now=130.0)
    'probe'
    >>> trips(5, policy), trips(4, policy)
    (True, False)
    >>> hold_visibility_s(policy, jitter=0.0), hold_visibility_s(policy, jitter=0.999)
    (600, 660)
    >>> round(policy.held_receives_per_day)
    144
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from functions.names import DELIVERY_QUEUE

Mode = Literal["send", "probe", "hold"]

# A hold lasts hold_s plus up to this share of it, so the records of one batch do not all come back together.
HOLD_JITTER: Final = 0.1
SQS_MAX_VISIBILITY_S: Final = 12 * 3600
DAY_S: Final = 24 * 3600


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """How the breaker behaves. Defaults are the deployed ones; ``tools.local`` divides the durations by its
    time scale."""

    failure_threshold: int = 5  # transient failures in a row (fleet-wide) that open the breaker
    probe_interval_s: float = 20.0  # at most one probe per interval while open: 3 requests a minute in total
    hold_s: float = 600.0  # how long a held record stays invisible (plus up to HOLD_JITTER of it)
    retention_s: float = float(DELIVERY_QUEUE.retention_s)  # the delivery queue's MessageRetentionPeriod
    max_receive_count: int = DELIVERY_QUEUE.max_receive_count  # the delivery queue's maxReceiveCount

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"failure_threshold: must be >= 1, got {self.failure_threshold}")
        for name in ("probe_interval_s", "hold_s", "retention_s"):
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
class BreakerState:
    """The shared breaker as last read. ``probe_after`` (epoch s) matters only while open."""

    is_open: bool = False
    failures: int = 0  # transient failures in a row since the last delivery (while closed)
    opened_at: float | None = None
    closed_at: float | None = None
    probe_after: float = 0.0


CLOSED: Final = BreakerState()


def mode(state: BreakerState, *, now: float) -> Mode:
    """What a batch does, given the breaker as read at ``now``."""
    if not state.is_open:
        return "send"
    return "probe" if now >= state.probe_after else "hold"


def trips(failures: int, policy: BreakerPolicy) -> bool:
    """Whether ``failures`` transient failures in a row open the breaker."""
    return failures >= policy.failure_threshold


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


def is_kochava_answer(outcome: str) -> bool:
    """Whether a probe's outcome shows Kochava is back: anything but ``transient`` (a 4xx is an answer too)."""
    return outcome != "transient"
