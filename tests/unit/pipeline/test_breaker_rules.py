"""The Kochava breaker's pure rules (``functions/pipeline/breaker.py``), at their edges.

The breaker is for Kochava being down, not for one event being bad (docs/deliverer.md#kochava-outages): it opens
on transient failures of at least ``min_events`` distinct events from at least ``min_sources`` distinct devices
within ``window_s``, with no delivery in that window. Each test here failed on a mutant of ``breaker.py`` that the
doctests and the deliverer's tests let live (issue 26: "tests that catch mutants").
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from functions.pipeline.breaker import (
    CLOSED,
    MAX_FAILURES_KEPT,
    MAX_PROBED_KEPT,
    SQS_MAX_VISIBILITY_S,
    BreakerPolicy,
    BreakerState,
    Failure,
    evidence,
    failure_of,
    give_up,
    hold_visibility_s,
    mode,
    opened,
    probe_failed,
    probe_order,
    record,
    trips,
)
from functions.pipeline.breaker import closed as closed_at

POLICY = BreakerPolicy(min_events=3, min_sources=2, window_s=60.0, probe_interval_s=20.0, hold_s=600.0)
NOW = 10_000.0


def failing(n: int, *, devices: int | None = None) -> list[Failure]:
    """``n`` distinct events from ``devices`` distinct devices (one each by default)."""
    return [Failure(f"e{i}", f"d{i % (devices or n)}") for i in range(n)]


def counted(failures: list[Failure], *, at: float, state: BreakerState = CLOSED) -> BreakerState:
    return record(state, failures=failures, delivered=0, now=at, policy=POLICY)


# --- What a failure is: one event, one device ---------------------------------------------------------------


def test_one_event_failing_on_two_devices_is_one_event_from_two_devices() -> None:
    a = failure_of(uuid="u-1", kind="event", app="app", device="dev-a")
    b = failure_of(uuid="u-1", kind="event", app="app", device="dev-b")
    assert a.event == b.event and a.source != b.source


def test_the_kind_and_the_app_are_part_of_the_event() -> None:
    event = failure_of(uuid="u-1", kind="event", app="app", device="d").event
    assert failure_of(uuid="u-1", kind="install", app="app", device="d").event != event
    assert failure_of(uuid="u-1", kind="event", app="other-app", device="d").event != event


def test_one_device_id_in_two_apps_is_two_devices() -> None:
    a = failure_of(uuid="u-1", kind="event", app="app-1", device="dev")
    b = failure_of(uuid="u-2", kind="event", app="app-2", device="dev")
    assert a.source != b.source


def test_events_without_a_device_each_count_as_their_own_device() -> None:
    unknown = [failure_of(uuid=f"u-{i}", kind="event", app="app", device=None) for i in range(3)]
    assert [f.source for f in unknown] == [f.event for f in unknown]
    assert trips(counted(unknown, at=NOW), now=NOW, policy=POLICY)


def test_the_breaker_keeps_no_device_id() -> None:
    failure = failure_of(uuid="u-1", kind="event", app="app", device="IDFV-1234")
    assert "IDFV-1234" not in failure.source and len(failure.source) == 12


# --- When it opens -----------------------------------------------------------------------------------------


def test_exactly_the_threshold_of_events_and_devices_opens_it() -> None:
    assert trips(counted(failing(3, devices=2), at=NOW), now=NOW, policy=POLICY)


def test_one_event_fewer_or_one_device_fewer_does_not() -> None:
    assert not trips(counted(failing(2, devices=2), at=NOW), now=NOW, policy=POLICY)
    assert not trips(counted(failing(9, devices=1), at=NOW), now=NOW, policy=POLICY)


def test_the_breaker_stays_closed_when_many_failures_come_from_one_event() -> None:
    retried = [Failure("e0", f"d{i}") for i in range(9)]  # one event, seen from nine devices (retried, re-sent)
    assert not trips(counted(retried, at=NOW), now=NOW, policy=POLICY)


def test_an_open_breaker_is_not_opened_again() -> None:
    state = counted(failing(5), at=NOW)
    assert not trips(opened(state, now=NOW, policy=POLICY), now=NOW, policy=POLICY)


def test_the_evidence_window_expires() -> None:
    """A failure exactly ``window_s`` old still counts; one a moment older does not."""
    early = counted(failing(2), at=NOW)
    edge = counted([Failure("e9", "d9")], at=NOW + POLICY.window_s, state=early)
    assert trips(edge, now=NOW + POLICY.window_s, policy=POLICY)
    assert not trips(edge, now=NOW + POLICY.window_s + 0.5, policy=POLICY)


def test_failures_older_than_the_window_are_forgotten_when_new_ones_come() -> None:
    early = counted(failing(2), at=NOW)
    later = counted([Failure("e9", "d9")], at=NOW + POLICY.window_s + 1, state=early)
    assert [f.event for f in later.failures] == ["e9"]
    assert later.failures[0].at == NOW + POLICY.window_s + 1


def test_failures_at_the_window_edge_are_kept_when_new_ones_come() -> None:
    early = counted(failing(2), at=NOW)
    later = counted([Failure("e9", "d9")], at=NOW + POLICY.window_s, state=early)
    assert [f.event for f in later.failures] == ["e0", "e1", "e9"]


def test_only_the_most_recent_failures_are_kept() -> None:
    many = [Failure(f"e{i}", f"d{i}") for i in range(MAX_FAILURES_KEPT + 7)]
    kept = counted(many, at=NOW).failures
    assert len(kept) == MAX_FAILURES_KEPT and kept[-1].event == many[-1].event and kept[0].event == "e7"


def test_a_delivery_within_the_window_keeps_it_closed() -> None:
    delivered = record(CLOSED, failures=[], delivered=1, now=NOW, policy=POLICY)
    later = NOW + POLICY.window_s - 1
    assert not trips(counted(failing(5), at=later, state=delivered), now=later, policy=POLICY)


def test_a_delivery_exactly_one_window_old_no_longer_keeps_it_closed() -> None:
    delivered = record(CLOSED, failures=[], delivered=1, now=NOW, policy=POLICY)
    later = NOW + POLICY.window_s
    assert trips(counted(failing(5), at=later, state=delivered), now=later, policy=POLICY)


def test_the_evidence_counts_failures_since_the_last_delivery_within_the_window() -> None:
    """What ``evidence`` reports (distinct events, distinct devices): failures at or after the last delivery on
    record and at most ``window_s`` old."""
    state = BreakerState(
        failures=(Failure("e0", "d0", NOW - 2), Failure("e1", "d0", NOW - 1), Failure("e2", "d2", NOW)),
        last_delivery_at=NOW - 1,
    )
    assert evidence(state, now=NOW, policy=POLICY) == (2, 2)  # e1, e2 from d0, d2
    assert evidence(state, now=NOW - 1 + POLICY.window_s + 0.5, policy=POLICY) == (1, 1)  # e2 only
    assert evidence(replace(state, last_delivery_at=None), now=NOW, policy=POLICY) == (3, 2)


def test_a_delivery_forgets_the_failures_before_it() -> None:
    state = counted(failing(2), at=NOW)
    after = record(state, failures=[], delivered=1, now=NOW + 1, policy=POLICY)
    assert after.failures == () and after.last_delivery_at == NOW + 1
    assert not trips(counted([Failure("e9", "d9")], at=NOW + 2, state=after), now=NOW + 2, policy=POLICY)


def test_a_batch_with_deliveries_and_failures_counts_as_a_delivery() -> None:
    state = record(CLOSED, failures=failing(5), delivered=1, now=NOW, policy=POLICY)
    assert state.failures == () and state.last_delivery_at == NOW


def test_deliveries_write_the_breaker_only_about_once_per_half_window() -> None:
    """A delivery with nothing on record is written only when the last one on record is at least half a window
    old (so "a delivery within the window" is known fleet-wide without a write per batch)."""
    first = record(CLOSED, failures=[], delivered=1, now=NOW, policy=POLICY)
    assert first != CLOSED and first.last_delivery_at == NOW
    half = NOW + POLICY.window_s / 2
    assert record(first, failures=[], delivered=3, now=half, policy=POLICY) is first
    assert record(first, failures=[], delivered=3, now=half + 0.5, policy=POLICY).last_delivery_at == half + 0.5


def test_a_batch_with_nothing_to_report_writes_nothing() -> None:
    assert record(CLOSED, failures=[], delivered=0, now=NOW, policy=POLICY) is CLOSED


def test_an_open_breaker_counts_nothing() -> None:
    state = opened(CLOSED, now=NOW, policy=POLICY)
    assert record(state, failures=failing(5), delivered=0, now=NOW, policy=POLICY) is state
    assert record(state, failures=[], delivered=4, now=NOW, policy=POLICY) is state


# --- Open, probing, closed ---------------------------------------------------------------------------------


def test_opening_holds_until_the_first_probe_one_interval_later() -> None:
    state = opened(counted(failing(5), at=NOW), now=NOW, policy=POLICY)
    assert state.is_open and state.opened_at == NOW and state.openings == 1
    assert state.failures == () and state.probed == ()
    assert mode(state, now=NOW + POLICY.probe_interval_s - 0.5) == "hold"
    assert mode(state, now=NOW + POLICY.probe_interval_s) == "probe"
    assert opened(closed_at(state, now=NOW + 30), now=NOW + 40, policy=POLICY).openings == 2


def test_closing_counts_as_a_delivery_and_forgets_what_was_probed() -> None:
    state = probe_failed(opened(CLOSED, now=NOW, policy=POLICY), probed=Failure("e0", "d0"))
    after = closed_at(state, now=NOW + 25)
    assert mode(after, now=NOW + 25) == "send"
    assert after.closed_at == NOW + 25 and after.last_delivery_at == NOW + 25 and after.probed == ()
    assert not trips(counted(failing(5), at=NOW + 26, state=after), now=NOW + 26, policy=POLICY)


def test_a_failed_probe_remembers_its_event_and_its_device_once() -> None:
    state = BreakerState(is_open=True, probed=("e0", "d0", "e1", "d1"))
    after = probe_failed(state, probed=Failure("e0", "d0"))
    assert after.probed == ("e1", "d1", "e0", "d0")


def test_only_the_events_probed_latest_are_remembered() -> None:
    state = BreakerState(is_open=True)
    for i in range(MAX_PROBED_KEPT):
        state = probe_failed(state, probed=Failure(f"e{i}", f"d{i}"))
    assert len(state.probed) == MAX_PROBED_KEPT
    assert state.probed[-2:] == (f"e{MAX_PROBED_KEPT - 1}", f"d{MAX_PROBED_KEPT - 1}")
    assert "e0" not in state.probed


def test_a_probe_rotates_to_an_event_not_probed_lately() -> None:
    candidates = [Failure("e0", "d0"), Failure("e1", "d0"), Failure("e2", "d1")]
    assert probe_order(candidates, probed=[]) == [0, 1, 2]  # nothing probed: batch order
    assert probe_order(candidates, probed=["e0"]) == [1, 2, 0]
    # an event probed lately comes after an unprobed event of a device probed lately
    assert probe_order(candidates, probed=["e2", "d0"]) == [0, 1, 2]
    assert probe_order([Failure("e0", "d0"), Failure("e1", "d1")], probed=["e0", "d1"]) == [1, 0]


# --- The policy and the holds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_events", 0),
        ("min_sources", 0),
        ("window_s", 0.0),
        ("window_s", math.inf),
        ("probe_interval_s", 0.0),
        ("hold_s", -1.0),
        ("retention_s", math.inf),
        ("max_receive_count", 2),
    ],
)
def test_a_policy_out_of_bounds_is_refused_naming_the_setting(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        BreakerPolicy(**{field: value})  # type: ignore[arg-type]


def test_the_smallest_policy_is_accepted() -> None:
    policy = BreakerPolicy(
        min_events=1, min_sources=1, window_s=0.1, probe_interval_s=0.1, hold_s=0.1, retention_s=1, max_receive_count=3
    )
    assert trips(record(CLOSED, failures=failing(1), delivered=0, now=NOW, policy=policy), now=NOW, policy=policy)


def test_the_default_policy_probes_three_times_a_minute() -> None:
    assert BreakerPolicy().probes_per_minute == 3.0


def test_a_hold_lasts_at_least_a_second_and_at_most_sqs_s_twelve_hours() -> None:
    assert hold_visibility_s(BreakerPolicy(hold_s=0.01), jitter=0.0) == 1
    assert hold_visibility_s(BreakerPolicy(hold_s=86_400.0), jitter=0.0) == SQS_MAX_VISIBILITY_S
    assert hold_visibility_s(POLICY, jitter=-5.0) == 600
    assert hold_visibility_s(POLICY, jitter=5.0) == 660


def test_a_record_gives_up_exactly_at_its_give_up_age_and_the_receive_before_the_redrive() -> None:
    policy = BreakerPolicy(hold_s=600, retention_s=4 * 86_400, max_receive_count=900)
    age = policy.give_up_age_s
    assert age == 4 * 86_400 - 2 * 660
    assert give_up(age_s=age - 1, receive_count=898, policy=policy) is None
    assert give_up(age_s=age, receive_count=1, policy=policy) is not None
    assert give_up(age_s=0, receive_count=899, policy=policy) is not None


def test_a_retention_shorter_than_two_holds_gives_up_at_once() -> None:
    policy = BreakerPolicy(hold_s=600, retention_s=60)
    assert policy.give_up_age_s == 0.0
    assert give_up(age_s=0.0, receive_count=1, policy=policy) is not None


def test_a_dead_lettered_record_says_how_long_it_waited_and_how_long_the_queue_keeps_it() -> None:
    policy = BreakerPolicy(hold_s=600, retention_s=180)
    assert give_up(age_s=180, receive_count=1, policy=policy) == (
        "waited 0.1 h, the delivery queue keeps a message 0.1 h"
    )
