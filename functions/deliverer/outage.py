"""The deliverer's side of the shared Kochava circuit breaker: reads and writes it through the
:class:`~functions.ports.BreakerStore` port, applies the pure rules of :mod:`functions.pipeline.breaker`.

The store is never allowed to stop deliveries: when it cannot be read the batch is sent as if the breaker were
closed (the idempotency store, on the same DynamoDB, decides whether a send is possible at all), and a failed
write is reported in :attr:`Observation.error` for the handler to log.

Every change is computed by a pure rule of :mod:`functions.pipeline.breaker` from the state as read, and written
with a condition on the version read (:meth:`~functions.ports.BreakerStore.write`); when another invocation wrote
first, the state is read again (consistently) and the rule applied again, a few times at most. So among concurrent
invocations exactly one opens the breaker, claims a probe or closes it.

Example (with the in-memory store of the tests, ``tests/fakes.py``, here a tiny one):
    >>> from functions.pipeline.breaker import BreakerPolicy, BreakerState, Failure
    >>> class Memory:
    ...     state = BreakerState()
    ...     def read(self, *, consistent=False): return self.state
    ...     def write(self, state, *, expected_version, now):
    ...         if self.state.version != expected_version: return False
    ...         self.state = dataclasses.replace(state, version=expected_version + 1); return True
    ...     def count_attempt(self, message_id, *, now): return 1
    >>> import dataclasses
    >>> breaker = KochavaBreaker(Memory(), BreakerPolicy(min_events=3, min_sources=3))
    >>> bad = [Failure(f"e{i}", f"d{i}") for i in range(3)]
    >>> breaker.after_send(delivered=0, failures=bad, seen=breaker.look(now=10.0)[1], now=10.0).opened
    True
    >>> breaker.look(now=11.0)[0], breaker.look(now=30.0)[0]
    ('hold', 'probe')
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from functions.pipeline import breaker as rules
from functions.pipeline.breaker import CLOSED, BreakerPolicy, BreakerState, Failure, Mode

if TYPE_CHECKING:
    from functions.ports import BreakerStore

# Conditional writes tried per change before giving up (another invocation kept writing first; the next batch
# tries again).
WRITE_TRIES: Final = 4


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
        return rules.mode(state, now=now), state

    def claim_probe(self, seen: BreakerState, *, now: float) -> BreakerState | None:
        """The breaker with the probe slot due now taken by this invocation, or None when another took it (one
        winner per interval, fleet-wide) or the store failed (hold: the next invocation tries again)."""
        if rules.mode(seen, now=now) != "probe":
            return None
        claimed = rules.probe_claimed(seen, now=now, policy=self.policy)
        try:
            won = self.store.write(claimed, expected_version=seen.version, now=now)
        except Exception:
            return None
        return _written(claimed, seen) if won else None

    def probe_answered(self, seen: BreakerState, *, now: float) -> Observation:
        """Kochava answered the probe healthily: close the breaker (the backlog drains)."""

        def close(state: BreakerState) -> BreakerState:
            return rules.closed(state, now=now) if state.is_open else state

        return self._change(seen, close, now=now, what="closing the breaker")

    def probe_failed(self, seen: BreakerState, probed: Failure, *, now: float) -> Observation:
        """The probe was not healthy: remember what was probed, so the next probe tries another event."""

        def remember(state: BreakerState) -> BreakerState:
            return rules.probe_failed(state, probed=probed) if state.is_open else state

        return self._change(seen, remember, now=now, what="noting the probe")

    def after_send(self, *, delivered: int, failures: Sequence[Failure], seen: BreakerState, now: float) -> Observation:
        """Count a closed batch's results (:func:`functions.pipeline.breaker.record`) and open the breaker when
        they make the evidence (:func:`functions.pipeline.breaker.trips`)."""

        def count(state: BreakerState) -> BreakerState:
            counted = rules.record(state, failures=failures, delivered=delivered, now=now, policy=self.policy)
            if rules.trips(counted, now=now, policy=self.policy):
                return rules.opened(counted, now=now, policy=self.policy)
            return counted

        return self._change(seen, count, now=now, what="updating the breaker")

    def _change(
        self, seen: BreakerState, change: Callable[[BreakerState], BreakerState], *, now: float, what: str
    ) -> Observation:
        """Apply ``change`` to the state and write it on the version read; on a lost race read again and retry."""
        state = seen
        try:
            for _ in range(WRITE_TRIES):
                new = change(state)
                if new is state:
                    return Observation()
                if self.store.write(new, expected_version=state.version, now=now):
                    return Observation(
                        opened=new.is_open and not state.is_open, closed=state.is_open and not new.is_open
                    )
                state = self.store.read(consistent=True)
        except Exception as exc:
            return Observation(error=f"{what}: {type(exc).__name__}: {exc}")
        return Observation(error=f"{what}: other invocations kept writing first ({WRITE_TRIES} tries)")

    def count_attempt(self, message_id: str, *, now: float) -> int:
        """Real POST attempts of this message so far (raises when the store fails: the record is then retried)."""
        return self.store.count_attempt(message_id, now=now)

    def hold_visibility_s(self) -> int:
        """The visibility of a held record, with jitter."""
        return rules.hold_visibility_s(self.policy, jitter=self._rng.random())


def _written(state: BreakerState, seen: BreakerState) -> BreakerState:
    """``state`` as stored after a write on ``seen``'s version."""
    return replace(state, version=seen.version + 1)
