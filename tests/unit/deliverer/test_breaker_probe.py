"""The deliverer's side of the Kochava breaker on in-memory ports: which record a probe sends, what happens to the
rest of the batch, and which device a failure is counted against (docs/deliverer.md#kochava-outages).

Each test here failed on a mutant of ``functions/deliverer/core.py`` (``Deliverer._probe`` and ``_failure``) that
the rest of the suite let live (issue 26: "tests that catch mutants").
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from functions.deliverer.core import BatchReport, Deliverer
from functions.deliverer.outage import KochavaBreaker
from functions.messages import DeliveryRecord
from functions.names import ATTR_REASON
from functions.pipeline import envelope, reasons
from functions.pipeline.breaker import BreakerPolicy
from tests.fakes import DELIVERED, REJECTED, TRANSIENT, FakeBreakerStore, FakeDeliveryQueue, FakeKochava, FakeOnceSender
from tests.lambda_fakes import Clock
from tests.samples.deliverer import IOS_APP, NOW, device_event_body, event_payload

POLICY = BreakerPolicy(min_events=5, min_sources=3, window_s=60.0, probe_interval_s=20.0, hold_s=600.0)
DEADLINE = NOW + 300.0


@dataclass
class Core:
    deliverer: Deliverer
    kochava: FakeKochava
    sender: FakeOnceSender
    queue: FakeDeliveryQueue
    store: FakeBreakerStore
    clock: Clock

    def run(self, *records: DeliveryRecord) -> BatchReport:
        return self.deliverer.process_batch(records, deadline=DEADLINE)

    def open_it(self) -> None:
        """Kochava down for a batch of ten devices: the breaker opens; then the first probe is due."""
        self.kochava.default = TRANSIENT
        assert self.run(*(rec(f"down-{i}") for i in range(10))).breaker is not None
        assert self.store.state.is_open
        self.kochava.default = DELIVERED
        self.clock.now += POLICY.probe_interval_s

    def probes(self) -> list[str | None]:
        """The events POSTed with a single attempt (probes), in order."""
        return [p.uuid for p in self.kochava.posts if not p.retry]


@pytest.fixture
def core() -> Iterator[Core]:
    kochava, queue, store, clock = FakeKochava(), FakeDeliveryQueue(), FakeBreakerStore(), Clock(NOW)
    sender = FakeOnceSender(kochava)
    breaker = KochavaBreaker(store, POLICY, rng=random.Random(3))
    deliverer = Deliverer(sender, queue, max_workers=2, max_attempts=5, clock=clock, breaker=breaker)
    yield Core(deliverer, kochava, sender, queue, store, clock)
    deliverer.close()


def rec(uuid: str, device: str | None = None) -> DeliveryRecord:
    """Event ``uuid`` from ``device`` (``dev-<uuid>`` by default)."""
    return DeliveryRecord(f"msg-{uuid}", f"rh-{uuid}", device_event_body(uuid, device or f"dev-{uuid}"), 1)


def link(uuid: str, device_ids: dict[str, Any]) -> DeliveryRecord:
    """An identityLink envelope: its device is the first id of ``device_id`` (no ``kochava_device_id``)."""
    payload = {"action": "identityLink", "kochava_app_id": IOS_APP, "device_id": device_ids, "identity_link": {"u": 1}}
    body = envelope.build_body(
        uuid=uuid, kind="identityLink", event_name=None, payload=payload, adservices_generated_at=None
    )
    return DeliveryRecord(f"msg-{uuid}", f"rh-{uuid}", body, 1)


def verdicts(report: BatchReport) -> dict[str, str]:
    return {o.record.message_id: o.verdict for o in report.outcomes}


# --- The probe ---------------------------------------------------------------------------------------------


def test_a_record_already_delivered_is_skipped_and_the_next_one_probes(core: Core) -> None:
    core.open_it()
    core.sender.delivered.add(("p-0", "event"))  # delivered earlier: no POST, not a probe

    report = core.run(rec("p-0"), rec("p-1"), rec("p-2"))

    assert core.probes() == ["p-1"] and report.probes == 1 and report.breaker_mode == "probe"
    assert verdicts(report) == {"msg-p-0": "duplicate", "msg-p-1": "delivered", "msg-p-2": "delivered"}
    assert report.breaker is not None and report.breaker.closed
    assert not core.store.state.is_open and core.store.state.closed_at == core.clock.now


def test_a_body_that_is_not_an_envelope_is_dead_lettered_and_the_next_one_probes(core: Core) -> None:
    core.open_it()
    broken = DeliveryRecord("msg-broken", "rh-broken", "{not json", 1)

    report = core.run(broken, rec("p-1"))

    assert core.probes() == ["p-1"] and report.probes == 1
    assert verdicts(report) == {"msg-broken": "dead_letter", "msg-p-1": "delivered"}
    assert [m.attributes[ATTR_REASON] for m in core.queue.dead_letters] == [reasons.INVALID_BODY]


def test_a_batch_with_nothing_to_probe_keeps_it_open_and_holds_nothing(core: Core) -> None:
    core.open_it()
    core.sender.delivered.update({("p-0", "event"), ("p-1", "event")})

    report = core.run(rec("p-0"), rec("p-1"))

    assert report.probes == 0 and report.breaker_mode == "probe" and report.breaker is None
    assert verdicts(report) == {"msg-p-0": "duplicate", "msg-p-1": "duplicate"}
    assert core.store.state.is_open and core.probes() == []


def test_after_a_healthy_probe_every_other_record_is_sent_once_with_retries(core: Core) -> None:
    core.open_it()
    core.kochava.script("r-0", TRANSIENT)  # Kochava is back, but r-0 fails every time
    core.run(rec("r-0"), rec("r-9"))  # probes r-0 (batch order): held, r-0 remembered
    core.clock.now += POLICY.probe_interval_s
    posts = len(core.kochava.posts)

    report = core.run(*(rec(f"r-{i}") for i in range(5)))

    assert core.probes()[-1] == "r-1"  # r-0 was probed lately: the next event in the batch probes
    later = core.kochava.posts[posts:]
    assert sorted(p.uuid or "" for p in later) == ["r-0", "r-1", "r-2", "r-3", "r-4"]  # each once
    assert [p.retry for p in later if p.uuid != "r-1"] == [True] * 4  # the rest: the usual in-process retries
    assert all(p.deadline == DEADLINE for p in later)
    assert verdicts(report) == {
        "msg-r-0": "retry",
        "msg-r-1": "delivered",
        "msg-r-2": "delivered",
        "msg-r-3": "delivered",
        "msg-r-4": "delivered",
    }


def test_a_4xx_probe_answer_closes_it_and_dead_letters_that_event(core: Core) -> None:
    core.open_it()
    core.kochava.script("p-0", REJECTED)

    report = core.run(rec("p-0"), rec("p-1"))

    assert report.breaker is not None and report.breaker.closed
    assert verdicts(report) == {"msg-p-0": "dead_letter", "msg-p-1": "delivered"}


def test_a_failed_probe_holds_the_batch_and_says_why_for_the_probed_event(core: Core) -> None:
    core.open_it()
    core.kochava.default = TRANSIENT

    report = core.run(rec("p-0"), rec("p-1"), rec("p-2"))

    assert core.probes() == ["p-0"] and report.probes == 1
    assert [o.verdict for o in report.outcomes] == ["held"] * 3
    probed, *rest = report.outcomes
    assert probed.error == TRANSIENT.error and probed.result == TRANSIENT
    assert probed.envelope is not None and probed.envelope.uuid == "p-0"
    assert [o.error for o in rest] == ["Kochava breaker open"] * 2
    assert all(600 <= (o.visibility_timeout_s or 0) <= 660 for o in report.outcomes)
    assert core.store.state.is_open and core.queue.dead_letters == []


def test_the_next_probe_rotates_to_a_device_not_probed_lately(core: Core) -> None:
    core.open_it()
    core.kochava.default = TRANSIENT
    batch = (rec("x-0", "dev-a"), rec("x-1", "dev-a"), rec("x-2", "dev-b"))
    core.run(*batch)  # probes x-0 of dev-a: fails
    core.clock.now += POLICY.probe_interval_s

    core.run(*batch)

    assert core.probes() == ["x-0", "x-2"]  # not x-1: its device was probed lately


# --- What a failure counts against -------------------------------------------------------------------------


def test_identity_links_of_one_device_failing_do_not_open_it(core: Core) -> None:
    core.kochava.default = TRANSIENT
    core.run(*(link(f"l-{i}", {"idfa": "", "idfv": "same-device", "n": 1}) for i in range(10)))
    assert core.store.state.openings == 0


def test_identity_links_of_many_devices_failing_open_it(core: Core) -> None:
    core.kochava.default = TRANSIENT
    core.run(*(link(f"l-{i}", {"idfa": f"device-{i % 3}"}) for i in range(10)))
    assert core.store.state.openings == 1


def test_the_kochava_device_id_is_the_device_even_with_other_ids(core: Core) -> None:
    core.kochava.default = TRANSIENT
    records = []
    for i in range(10):
        payload = event_payload(f"k-{i}")
        payload["kochava_device_id"] = "one-device"
        payload["device_id"] = {"idfv": f"other-{i}"}
        body = envelope.build_body(
            uuid=f"k-{i}", kind="event", event_name="Purchase", payload=payload, adservices_generated_at=None
        )
        records.append(DeliveryRecord(f"msg-k-{i}", f"rh-k-{i}", body, 1))
    core.run(*records)
    assert core.store.state.openings == 0


def test_rejected_events_are_not_evidence_of_an_outage(core: Core) -> None:
    core.kochava.default = REJECTED  # Kochava answers: it is up
    core.run(*(rec(f"n-{i}") for i in range(10)))
    assert core.store.state.openings == 0 and core.store.writes == []


def test_a_duplicate_skipped_is_not_a_delivery(core: Core) -> None:
    """Only a POST Kochava accepted shows it is up: a batch whose events are all skipped as duplicates besides
    the failures still opens the breaker."""
    core.kochava.default = TRANSIENT
    core.sender.delivered.add(("dup", "event"))
    report = core.run(rec("dup"), *(rec(f"f-{i}") for i in range(6)))
    assert report.breaker is not None and report.breaker.opened


def test_identity_links_with_no_device_id_each_count_as_their_own_device(core: Core) -> None:
    core.kochava.default = TRANSIENT
    core.run(*(link(f"l-{i}", {"idfa": "", "adid": None}) for i in range(6)))
    assert core.store.state.openings == 1


def test_one_probe_per_interval_whatever_the_number_of_batches(core: Core) -> None:
    """Kochava sees at most one request per probe interval while it is down: a batch that comes within the
    interval after a failed probe is held without a POST; the next probe goes one interval after the last."""
    core.open_it()
    core.kochava.default = TRANSIENT
    core.run(rec("p-0"), rec("p-1"))
    posts = len(core.kochava.posts)

    core.clock.now += POLICY.probe_interval_s - 1
    held = core.run(rec("p-0"), rec("p-1"))
    assert held.breaker_mode == "hold" and len(core.kochava.posts) == posts

    core.clock.now += 1
    assert core.run(rec("p-0"), rec("p-1")).probes == 1


def test_one_device_id_in_three_apps_is_three_devices(core: Core) -> None:
    core.kochava.default = TRANSIENT
    records = []
    for i in range(6):
        payload = event_payload(f"a-{i}")
        payload["kochava_app_id"], payload["kochava_device_id"] = f"app-{i % 3}", "shared-id"
        body = envelope.build_body(
            uuid=f"a-{i}", kind="event", event_name="Purchase", payload=payload, adservices_generated_at=None
        )
        records.append(DeliveryRecord(f"msg-a-{i}", f"rh-a-{i}", body, 1))
    report = core.run(*records)
    assert report.breaker_mode == "send" and core.store.state.openings == 1
    assert {p.deadline for p in core.kochava.posts} == {DEADLINE}
