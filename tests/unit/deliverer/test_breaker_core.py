"""The Kochava breaker's core behaviour on in-memory ports: the deliverer with a :class:`FakeBreakerStore`, a
scripted Kochava and a controllable clock (through the Lambda's entry point: ``test_breaker_lambda.py``; the store's
fake and DynamoDB adapter agree in ``tests/integration/contracts/test_breaker_store.py``).

The breaker is for Kochava being down, not for one event being bad: it opens only when several distinct events
from several devices failed within the window with no delivery in it; probes rotate through the held events; a
2xx without Kochava's success body is not healthy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from functions.deliverer.core import BatchReport, Deliverer
from functions.deliverer.outage import KochavaBreaker
from functions.messages import DeliveryRecord
from functions.names import ATTR_REASON
from functions.pipeline import reasons
from functions.pipeline.breaker import BreakerPolicy
from functions.ports import KochavaResult
from tests.fakes import (
    BAD_RESPONSE,
    TRANSIENT,
    FakeBreakerStore,
    FakeDeliveryQueue,
    FakeKochava,
    FakeOnceSender,
)
from tests.lambda_fakes import Clock
from tests.samples.deliverer import NOW, device_event_body

POLICY = BreakerPolicy(min_events=5, min_sources=3, window_s=60.0, probe_interval_s=20.0, hold_s=600.0)
MAX_ATTEMPTS = 5
DEADLINE = 1e12


@dataclass
class Core:
    deliverer: Deliverer
    kochava: FakeKochava
    sender: FakeOnceSender
    queue: FakeDeliveryQueue
    store: FakeBreakerStore
    clock: Clock
    receives: dict[str, int] = field(default_factory=dict)

    def run(self, *uuids: str) -> BatchReport:
        """One batch of these events (event ``u`` comes from device ``dev-u``), each received once more."""
        records = []
        for uuid in uuids:
            self.receives[uuid] = self.receives.get(uuid, 0) + 1
            body = device_event_body(uuid, f"dev-{uuid}")
            records.append(DeliveryRecord(f"msg-{uuid}", f"rh-{uuid}", body, receive_count=self.receives[uuid]))
        return self.deliverer.process_batch(records, deadline=DEADLINE)

    @property
    def openings(self) -> int:
        return self.store.state.openings

    def dead_lettered(self) -> dict[str, str]:
        return {m.attributes["uuid"]: m.attributes[ATTR_REASON] for m in self.queue.dead_letters}


@pytest.fixture
def core() -> Iterator[Core]:
    kochava, queue, store, clock = FakeKochava(), FakeDeliveryQueue(), FakeBreakerStore(), Clock(NOW)
    sender = FakeOnceSender(kochava)
    breaker = KochavaBreaker(store, POLICY)
    deliverer = Deliverer(sender, queue, max_workers=4, max_attempts=MAX_ATTEMPTS, clock=clock, breaker=breaker)
    yield Core(deliverer, kochava, sender, queue, store, clock)
    deliverer.close()


def poison(core: Core, *uuids: str) -> None:
    for uuid in uuids:
        core.kochava.script(uuid, TRANSIENT)


def test_poison_events_among_good_ones_never_open_it_and_end_retries_exhausted(core: Core) -> None:
    poison(core, "bad-1", "bad-2", "bad-3")
    good = 0
    for tick in range(MAX_ATTEMPTS):
        batch = [f"good-{good + i}" for i in range(7)]
        good += 7
        report = core.run("bad-1", "bad-2", "bad-3", *batch)
        assert report.breaker_mode == "send"
        core.clock.now += 30.0 * 2**tick  # past each backoff
    assert core.openings == 0
    assert core.dead_lettered() == dict.fromkeys(("bad-1", "bad-2", "bad-3"), reasons.RETRIES_EXHAUSTED)
    assert len(core.sender.delivered) == good
    assert [len(core.kochava.posted(u)) for u in ("bad-1", "bad-2", "bad-3")] == [MAX_ATTEMPTS] * 3


def test_a_few_poison_events_alone_never_open_it(core: Core) -> None:
    poison(core, "bad-1", "bad-2", "bad-3")
    for _ in range(MAX_ATTEMPTS):
        assert core.run("bad-1", "bad-2", "bad-3").breaker_mode == "send"
        core.clock.now += 1.0
    assert core.openings == 0
    assert set(core.dead_lettered()) == {"bad-1", "bad-2", "bad-3"}


def test_many_events_of_one_device_failing_do_not_open_it(core: Core) -> None:
    core.kochava.default = TRANSIENT
    records = [DeliveryRecord(f"m-{i}", f"rh-{i}", device_event_body(f"e-{i}", "one-device"), 1) for i in range(10)]
    core.deliverer.process_batch(records, deadline=DEADLINE)
    assert core.openings == 0 and not core.store.state.is_open


def test_kochava_down_opens_it_once_then_batches_are_held_without_a_post(core: Core) -> None:
    core.kochava.default = TRANSIENT
    uuids = [f"o-{i}" for i in range(10)]
    first = core.run(*uuids)
    assert first.breaker is not None and first.breaker.opened
    posts = len(core.kochava.posts)
    for _ in range(3):
        core.clock.now += 1.0
        held = core.run(*uuids)
        assert {o.verdict for o in held.outcomes} == {"held"}
    assert len(core.kochava.posts) == posts
    assert core.openings == 1 and core.queue.dead_letters == []


def test_failures_are_evidence_only_within_the_window_and_after_the_last_delivery(core: Core) -> None:
    poison(core, *[f"w-{i}" for i in range(6)])
    core.run("w-0", "w-1", "w-2")
    core.clock.now += POLICY.window_s + 1  # the first three are too old to count with the next three
    core.run("w-3", "w-4", "w-5")
    assert core.openings == 0
    core.clock.now += 1
    core.run("ok-1")  # a delivery: the failures before it are forgotten
    core.clock.now += POLICY.window_s + 1
    core.run("w-0", "w-1")
    assert core.openings == 0


def test_a_delivery_within_the_window_keeps_it_closed_under_flapping(core: Core) -> None:
    core.kochava.default = KochavaResult("delivered", 200, response_body='{"success":"1"}')
    for i in range(20):  # every other batch fails entirely, the others deliver
        uuids = [f"f-{i}-{j}" for j in range(5)]
        if i % 2 == 1:
            poison(core, *uuids)
        core.run(*uuids)
        core.clock.now += 5.0
    assert core.openings == 0


def test_probes_rotate_so_one_bad_event_cannot_keep_it_open(core: Core) -> None:
    core.kochava.default = TRANSIENT
    uuids = [f"r-{i}" for i in range(6)]
    core.run(*uuids)  # Kochava down: opens
    assert core.store.state.is_open
    core.kochava.default = KochavaResult("delivered", 200, response_body='{"success":"1"}')
    poison(core, "r-0")  # Kochava is back, but r-0 still fails every time
    core.clock.now += POLICY.probe_interval_s
    first = core.run(*uuids)  # probes r-0 first (batch order): fails, all held
    assert first.probes == 1 and {o.verdict for o in first.outcomes} == {"held"}
    core.clock.now += POLICY.probe_interval_s
    second = core.run(*uuids)  # r-0 was probed lately: another event is probed, Kochava answers, it closes
    assert second.breaker is not None and second.breaker.closed
    probes = [p.uuid for p in core.kochava.posts if not p.retry]
    assert probes[-2:] == ["r-0", "r-1"]
    assert {o.verdict for o in second.outcomes if o.record.message_id != "msg-r-0"} == {"delivered"}


def test_a_2xx_without_the_success_body_does_not_close_it(core: Core) -> None:
    core.kochava.default = TRANSIENT
    core.run(*[f"b-{i}" for i in range(6)])
    core.kochava.default = BAD_RESPONSE  # a captive page answering 200
    core.clock.now += POLICY.probe_interval_s
    report = core.run("b-0", "b-1")
    assert report.probes == 1
    assert core.store.state.is_open
    assert [o.verdict for o in report.outcomes] == ["held", "held"]
    assert core.queue.dead_letters == []  # the probed event is held, not blamed


def test_a_lost_race_is_read_again_and_it_opens_exactly_once(core: Core) -> None:
    core.kochava.default = TRANSIENT
    core.store.lose_next_writes = 2
    report = core.run(*[f"c-{i}" for i in range(6)])
    assert report.breaker is not None and report.breaker.opened
    assert core.openings == 1


def test_a_healthy_stream_writes_the_breaker_about_once_per_half_window(core: Core) -> None:
    for i in range(60):
        core.run(f"h-{i}")
        core.clock.now += 1.0
    assert 2 <= len(core.store.writes) <= 60 / (POLICY.window_s / 2) + 1


def test_the_store_down_never_stops_deliveries(core: Core) -> None:
    core.store.error = RuntimeError("DynamoDB unavailable")
    report = core.run("d-1", "d-2")
    assert [o.verdict for o in report.outcomes] == ["delivered", "delivered"]


def test_a_held_batch_is_pushed_back_in_one_call(core: Core) -> None:
    core.kochava.default = TRANSIENT
    uuids = [f"v-{i}" for i in range(10)]
    core.run(*uuids)  # opens
    calls = core.queue.back_off_calls
    core.clock.now += 1.0
    held = core.run(*uuids)
    assert {o.verdict for o in held.outcomes} == {"held"} and all(o.back_off_applied for o in held.outcomes)
    assert core.queue.back_off_calls == calls + 1  # ChangeMessageVisibilityBatch: 10 records, one call
