"""The deliverer's side of the shared breaker (``functions/deliverer/outage.py``) on the in-memory store, as several
invocations see it: one store, one :class:`KochavaBreaker` per invocation.

What an operator relies on: among invocations racing on one state, exactly one claims a probe; a change that comes
after another invocation already made it changes nothing (so what was counted since is kept); a lost race is read
again consistently (an eventually consistent replica may still show the old version); and when the store fails
or other invocations keep writing first, the batch goes on and the log line says what could not be written and why.
"""

from __future__ import annotations

import random

from functions.adapters.breaker_dynamodb import ITEM_TTL_S
from functions.deliverer.outage import WRITE_TRIES, KochavaBreaker, Observation
from functions.pipeline.breaker import BreakerPolicy, BreakerState, Failure
from tests.fakes import FakeBreakerStore

POLICY = BreakerPolicy(min_events=3, min_sources=2, window_s=60.0, probe_interval_s=20.0, hold_s=600.0)
NOW = 1_763_900_000.0
BAD = [Failure(f"e{i}", f"d{i}") for i in range(3)]  # enough to open it
ONE_BAD = [Failure("e9", "d9")]  # not enough


def invocation(store: FakeBreakerStore) -> KochavaBreaker:
    return KochavaBreaker(store, POLICY, rng=random.Random(1))


def opened_store() -> FakeBreakerStore:
    store = FakeBreakerStore()
    breaker = invocation(store)
    assert breaker.after_send(delivered=0, failures=BAD, seen=store.read(), now=NOW).opened
    return store


def test_of_two_invocations_claiming_one_probe_slot_only_one_probes() -> None:
    store = opened_store()
    first, second = invocation(store), invocation(store)
    due = NOW + POLICY.probe_interval_s
    seen = store.read()  # both read the same state before either writes
    claimed = first.claim_probe(seen, now=due)
    assert claimed is not None and claimed == store.state  # what it returns is what is stored, version included
    assert second.claim_probe(seen, now=due) is None
    assert second.claim_probe(store.read(), now=due) is None  # the slot is taken until the next interval


def test_a_counted_batch_that_opens_nothing_reports_no_transition() -> None:
    store = FakeBreakerStore()
    observed = invocation(store).after_send(delivered=0, failures=ONE_BAD, seen=store.read(), now=NOW)
    assert observed == Observation()
    assert len(store.writes) == 1 and not store.state.is_open  # the failure was counted


def test_opening_and_closing_are_each_reported_once() -> None:
    store = FakeBreakerStore()
    opened = invocation(store).after_send(delivered=0, failures=BAD, seen=store.read(), now=NOW)
    assert opened == Observation(opened=True)
    claimed = invocation(store).claim_probe(store.read(), now=NOW + POLICY.probe_interval_s)
    assert claimed is not None
    closed = invocation(store).probe_answered(claimed, now=NOW + 21)
    assert closed == Observation(closed=True)
    assert not store.state.is_open


def test_an_answer_or_a_failed_probe_after_another_invocation_closed_it_changes_nothing() -> None:
    store = opened_store()
    stale_view = store.read()  # open, as one invocation saw it
    claimed = invocation(store).claim_probe(stale_view, now=NOW + POLICY.probe_interval_s)
    assert claimed is not None
    assert invocation(store).probe_answered(claimed, now=NOW + 21).closed
    # Since the close, a batch counted a failure; the late invocations must keep it.
    invocation(store).after_send(delivered=0, failures=ONE_BAD, seen=store.read(), now=NOW + 22)
    counted = store.state
    assert counted.failures and not counted.is_open
    assert invocation(store).probe_answered(stale_view, now=NOW + 23) == Observation()
    assert invocation(store).probe_failed(stale_view, Failure("e5", "d5"), now=NOW + 23) == Observation()
    assert store.state == counted  # nothing written: not closed again, nothing marked probed


def test_a_lost_race_is_read_again_consistently() -> None:
    store = opened_store()
    seen = store.read()
    claimed = invocation(store).claim_probe(seen, now=NOW + POLICY.probe_interval_s)
    assert claimed is not None
    store.lose_next_writes = 1  # another invocation writes first ...
    store.stale = seen  # ... and the replicas still show the state before the claim
    assert invocation(store).probe_answered(claimed, now=NOW + 21) == Observation(closed=True)
    assert not store.state.is_open


def test_a_store_that_fails_is_named_in_the_observation_and_stops_nothing() -> None:
    store = opened_store()
    seen = store.read()
    store.error = RuntimeError("table unavailable")
    breaker = invocation(store)
    assert breaker.probe_answered(seen, now=NOW).error == "closing the breaker: RuntimeError: table unavailable"
    assert breaker.probe_failed(seen, BAD[0], now=NOW).error == "noting the probe: RuntimeError: table unavailable"
    assert breaker.after_send(delivered=0, failures=BAD, seen=BreakerState(), now=NOW).error == (
        "updating the breaker: RuntimeError: table unavailable"
    )
    assert breaker.claim_probe(seen, now=NOW + POLICY.probe_interval_s) is None  # hold: the next one tries again
    assert breaker.look(now=NOW) == ("send", BreakerState())  # unreadable: sent as if closed


def test_other_invocations_writing_first_every_time_is_reported_with_the_tries() -> None:
    store = FakeBreakerStore()
    store.lose_next_writes = WRITE_TRIES
    observed = invocation(store).after_send(delivered=0, failures=BAD, seen=store.read(), now=NOW)
    assert observed == Observation(
        error=f"updating the breaker: other invocations kept writing first ({WRITE_TRIES} tries)"
    )
    assert not store.writes


def test_every_write_and_attempt_count_renews_the_item_s_expiry() -> None:
    store = opened_store()
    assert store.expires_at[""] == int(NOW) + ITEM_TTL_S
    later = NOW + POLICY.probe_interval_s
    claimed = invocation(store).claim_probe(store.read(), now=later)
    assert claimed is not None and store.expires_at[""] == int(later) + ITEM_TTL_S
    invocation(store).probe_failed(claimed, BAD[0], now=later + 1)
    assert store.expires_at[""] == int(later + 1) + ITEM_TTL_S
    assert invocation(store).count_attempt("msg-1", now=later + 2) == 1
    assert store.expires_at["msg-1"] == int(later + 2) + ITEM_TTL_S
