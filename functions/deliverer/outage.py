"""The deliverer's side of the shared Kochava circuit breaker: reads and writes it through the
:class:`~functions.ports.BreakerStore` port, applies the pure rules of :mod:`functions.pipeline.breaker`.

The store is never allowed to stop deliveries: when it cannot be read the batch is sent as if the breaker were
closed (the idempotency store, on the same DynamoDB, decides whether a send is possible at all), and a failed
write is reported in :attr:`Observation.error` for the handler to log.

Example (with an in-memory store):
    >>> from functions.pipeline.breaker import BreakerPolicy, BreakerState
    >>> class Memory:
    ...     state, attempts = BreakerState(), {}
    ...     def read(self): return self.state
    ...     def add_failures(self, count, *, now):
    ...         self.state = BreakerState(failures=self.state.failures + count); return self.state.failures
    ...     def reset_failures(self): self.state = BreakerState()
    ...     def open(self, *, now, probe_after):
    ...         self.state = BreakerState(is_open=True, opened_at=now, probe_after=probe_after); return True
    ...     def claim_probe(self, *, now, next_probe_after): return False
    ...     def close(self, *, now): self.state = BreakerState(closed_at=now); return True
    ...     def count_attempt(self, message_id, *, now): return 1
    >>> breaker = KochavaBreaker(Memory(), BreakerPolicy(failure_threshold=3))
    >>> breaker.after_send(delivered=0, transient=3, seen=breaker.look(now=10.0)[1], now=10.0).opened
    True
    >>> breaker.look(now=11.0)[0], breaker.look(now=30.0)[0]
    ('hold', 'probe')
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.pipeline.breaker import (
    CLOSED,
    BreakerPolicy,
    BreakerState,
    Mode,
    hold_visibility_s,
    mode,
    next_probe_after,
    trips,
)

if TYPE_CHECKING:
    from functions.ports import BreakerStore


@dataclass(frozen=True, slots=True)
class Observation:
    """What a batch changed in the breaker (for logs and metrics)."""

    opened: bool = False  # this invocation opened it (one per outage)
    closed: bool = False  # this invocation's probe closed it
    error: str = ""  # the store failed (the batch went on regardless)


class KochavaBreaker:
    """See the module docstring. One per container, shared by the worker threads (the store is thread-safe)."""

    def __init__(self, store: BreakerStore, policy: BreakerPolicy, *, rng: random.Random | None = None) -> None:
        self.store = store
        self.policy = policy
        self._rng = rng or random.Random()

    def look(self, *, now: float) -> tuple[Mode, BreakerState]:
        """The breaker's mode for a batch starting at ``now`` (``send`` when the store cannot be read)."""
        try:
            state = self.store.read()
        except Exception:
            return "send", CLOSED
        return mode(state, now=now), state

    def claim_probe(self, *, now: float) -> bool:
        """Whether this invocation may send the probe due now (one winner per interval, fleet-wide)."""
        try:
            return self.store.claim_probe(now=now, next_probe_after=next_probe_after(now, self.policy))
        except Exception:
            return False  # hold: the next invocation tries again

    def probe_answered(self, *, now: float) -> Observation:
        """Kochava answered the probe: close the breaker (the backlog drains)."""
        try:
            return Observation(closed=self.store.close(now=now))
        except Exception as exc:
            return Observation(error=f"closing the breaker: {type(exc).__name__}: {exc}")

    def after_send(self, *, delivered: int, transient: int, seen: BreakerState, now: float) -> Observation:
        """Count a closed batch's results: a delivery resets the failures in a row, transient failures add up and
        open the breaker at the threshold."""
        try:
            if delivered:
                if seen.failures:
                    self.store.reset_failures()
                return Observation()
            if not transient:
                return Observation()
            failures = self.store.add_failures(transient, now=now)
            if not trips(failures, self.policy):
                return Observation()
            return Observation(opened=self.store.open(now=now, probe_after=next_probe_after(now, self.policy)))
        except Exception as exc:
            return Observation(error=f"updating the breaker: {type(exc).__name__}: {exc}")

    def count_attempt(self, message_id: str, *, now: float) -> int:
        """Real POST attempts of this message so far (raises when the store fails: the record is then retried)."""
        return self.store.count_attempt(message_id, now=now)

    def hold_visibility_s(self) -> int:
        """The visibility of a held record, with jitter."""
        return hold_visibility_s(self.policy, jitter=self._rng.random())
