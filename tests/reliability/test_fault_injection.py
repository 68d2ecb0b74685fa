"""Fault injection with nothing lost, and log hygiene, on one run of the local stack (see ``conftest.fault_run``).

1,000 events (10 % invalid, 5 % sent twice) against a Kochava that fails 20 % of requests with 500, 5 % with 429,
2 % by not answering and 3 % with 400. Then Kochava heals, on-call replays the DLQs with ``python -m tools.dlq``,
and the pipeline drains again.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from functions.pipeline.masking import fingerprint
from tests.reliability.fault_run import (
    DELIVERED,
    IPV4,
    FaultRun,
    accepted_events,
    allowed_fates,
    dlq_by_uuid,
    fates,
    figures,
    sink_statuses,
)
from tests.reliability.traffic import API_400, DELIVER, DUPLICATED, ECHOED_IDFA, ECHOED_IP, INGEST_DLQ

# 600 s: the first test also pays the module fixture's fault run (about a minute idle, several on a loaded machine,
# whose drains are waited for while they progress: fault_run.STALL_S); the limit only stops a run that hangs.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# --- The API --------------------------------------------------------------------------------------------------------


def test_the_api_accepts_valid_requests_and_names_the_field_of_invalid_ones(fault_run: FaultRun) -> None:
    """Given the run's requests (batches and single events, native and Segment, schema-invalid ones sent alone)
    When they were posted to the local API
    Then every request holding only schema-valid events was answered 202, and every schema-invalid event 400 with
    an error naming its field (so nothing of it was accepted)."""
    wrong = []
    for request, response in fault_run.answers:
        event = request.events[0]
        if event.expect == API_400:
            errors = response.json().get("errors", []) if response.status_code == 400 else []
            if not any(error.startswith(str(event.field)) for error in errors):
                wrong.append((event.uuid, f"400 naming {event.field}", response.status_code, response.text[:200]))
        elif response.status_code != 202:
            wrong.append((event.uuid, "202", response.status_code, response.text[:200]))
    assert wrong == []
    accepted = sum(len(request.events) for request, response in fault_run.answers if response.status_code == 202)
    assert accepted == len(accepted_events(fault_run)) + DUPLICATED


# --- Nothing lost, nothing twice --------------------------------------------------------------------------------


def test_every_accepted_event_is_delivered_once_filtered_or_dead_lettered_with_a_reason(fault_run: FaultRun) -> None:
    """Given the run against the faulty Kochava (500 / 429 / no answer / 400)
    When the pipeline drained
    Then every distinct accepted event was delivered exactly once, filtered, or is in a DLQ with a reason that fits
    it (invalid events: the enricher's reason; deliverable ones: Kochava's rejection or exhausted retries), the
    fates add up to the accepted events, and every kind of fault did happen."""
    phase = fault_run.faulty
    assert phase.drained, f"the pipeline did not drain within the limit: {figures(fault_run, phase)}"
    observed = fates(fault_run, phase)
    misplaced = [
        (event.uuid, event.expect, observed[event.uuid])
        for event in accepted_events(fault_run)
        if observed[event.uuid] not in allowed_fates(event)
    ]
    assert misplaced == [], f"{len(misplaced)} events with a wrong fate; figures: {figures(fault_run, phase)}"
    counts = Counter(observed.values())
    assert sum(counts.values()) == len(accepted_events(fault_run)) == len(observed)
    assert counts[DELIVERED] > 0.8 * len(fault_run.traffic.by_expectation(DELIVER)), figures(fault_run, phase)
    assert counts["delivery DLQ: kochava_rejected"] > 0, "a 3 % share of 400s must dead-letter some events"
    answered = sink_statuses(phase)
    assert all(answered[status] > 0 for status in ("500", "429", "400", "timeout")), f"faults not injected: {answered}"
    assert phase.report.lost == [], phase.report.text(payloads=False)
    assert phase.report.redriven == 0, "a handler crashed on a message until SQS redrove it"


def test_invalid_events_are_dead_lettered_with_the_field_that_is_wrong(fault_run: FaultRun) -> None:
    """Given the model-invalid events (they pass the schema: bad timestamp, missing event name or user id, no
    usable device id)
    When the enricher handled them
    Then each is in the ingest DLQ with its reason and the offending field, ready for on-call to tell the sender."""
    dead = dlq_by_uuid(fault_run.faulty)
    wrong = []
    for event in fault_run.traffic.by_expectation(INGEST_DLQ):
        found = [(m.reason, m.attributes.get("field")) for m in dead[event.uuid] if m.queue_key == "ingest"]
        if (event.reason, event.field) not in found:
            wrong.append((event.uuid, (event.reason, event.field), found))
    assert wrong == []


def test_no_payload_reached_kochava_successfully_twice(fault_run: FaultRun) -> None:
    """Given 50 events sent twice, Kochava timing out after receiving some payloads, and a replay of everything
    When both drains are over
    Then Kochava answered success at most once per (kind, event) that the deliverer read: a second success is
    allowed only after successes whose answer never reached the deliverer (the sink wrote it after the deliverer's
    read timeout had fired and it had hung up, as on a starved machine; the sink sees that on the connection),
    which the delivery guarantee allows ("exactly once unless Kochava's answer is lost", README). Every payload
    Kochava got belongs to an event we sent (so the count above covers everything), and duplicates did reach the
    deliverer, which skipped them."""
    known = {event.sink_key for event in fault_run.traffic.events if event.sink_key}
    for phase in (fault_run.faulty, fault_run.healed):
        assert phase.successes_after_a_read_one == {}
        strangers = {sink_key for sink_key in phase.sink_successes if sink_key not in known}
        assert strangers == set()
    assert "already delivered: duplicate skipped" in fault_run.logs, "no duplicate ever reached the deliverer"


def test_kochava_received_only_well_formed_payloads(fault_run: FaultRun) -> None:
    """Given every request the sink received in the whole run
    When it checked each payload against the shape Kochava expects
    Then it found no problem."""
    assert fault_run.sink_violations == []


# --- Heal, replay, deliver --------------------------------------------------------------------------------------


def test_the_replay_moves_what_can_succeed_and_refuses_invalid_events(fault_run: FaultRun) -> None:
    """Given the DLQs after the faulty phase, and Kochava healed
    When on-call runs `python -m tools.dlq --endpoint-url ... replay`
    Then it moves every delivery-DLQ message back, refuses every invalid event (exit code 3: they need --force and
    would fail again), and fails on none."""
    faulty_dlq = fault_run.faulty.dlq
    by_queue = {queue["dlq"]: queue for queue in fault_run.replay.get("queues", [])}
    assert fault_run.replay_exit == 3, fault_run.replay_output[-2000:]
    delivery = next(queue for name, queue in by_queue.items() if "delivery" in name)
    ingest = next(queue for name, queue in by_queue.items() if "ingest" in name)
    assert delivery["moved"] == len(faulty_dlq["delivery"])
    assert (delivery["failed"], ingest["failed"], ingest["moved"]) == ([], [], 0)
    assert len(ingest["refused"]) == len(faulty_dlq["ingest"])


def test_after_the_replay_every_deliverable_event_is_delivered_exactly_once(fault_run: FaultRun) -> None:
    """Given the replay into a healthy Kochava
    When the pipeline drained again
    Then every deliverable event was delivered exactly once, the delivery DLQ is empty, and only the invalid events
    are left in the ingest DLQ."""
    phase = fault_run.healed
    assert phase.drained, f"the pipeline did not drain after the replay: {figures(fault_run, phase)}"
    observed = fates(fault_run, phase)
    undelivered = [e.uuid for e in fault_run.traffic.by_expectation(DELIVER) if observed[e.uuid] != DELIVERED]
    assert undelivered == [], figures(fault_run, phase)
    assert phase.dlq["delivery"] == []
    left = Counter(message.uuid for message in phase.dlq["ingest"])
    assert left == Counter(message.uuid for message in fault_run.faulty.dlq["ingest"])
    assert set(left) == {event.uuid for event in fault_run.traffic.by_expectation(INGEST_DLQ)}


# --- Log hygiene ------------------------------------------------------------------------------------------------


def test_the_lambda_logs_cover_the_run(fault_run: FaultRun) -> None:
    """Given the Lambdas' logs of the whole run (what CloudWatch would hold)
    When their JSON lines are read by message and correlation id (the event uuid)
    Then every deliverable event has a `delivered to Kochava` line and every invalid event an `event dead-lettered`
    line: the hygiene checks below read a real log, not an empty one."""
    seen: set[tuple[str, str]] = set()
    for line in fault_run.logs.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            seen.add((str(record.get("message")), str(record.get("correlation_id"))))
    expected = [("delivered to Kochava", e.uuid) for e in fault_run.traffic.by_expectation(DELIVER)]
    expected += [("event dead-lettered", e.uuid) for e in fault_run.traffic.by_expectation(INGEST_DLQ)]
    missing = [line for line in expected if line not in seen]
    assert missing == []


def test_the_lambda_logs_hold_no_advertising_id_device_id_ip_or_adservices_token(fault_run: FaultRun) -> None:
    """Given the Lambdas' logs of the whole run
    When they are searched for the run's raw IDFAs / ADIDs, device ids, IP addresses and AdServices tokens
    (including those Kochava's 400 answers echoed back)
    Then none is there, and no IPv4 address at all but loopback (the local stack's own endpoints, which on AWS are
    host names)."""
    logs = fault_run.logs
    lowered = logs.lower()
    events = fault_run.traffic.events
    leaked = {
        "advertising ids": [
            idfa for idfa in {e.idfa for e in events if e.idfa} | {ECHOED_IDFA} if idfa.lower() in lowered
        ],
        "device ids": [d for d in {e.device_id for e in events if e.device_id} if d.lower() in lowered],
        "tokens (or their first 40 characters)": [t for t in {e.token for e in events if e.token} if t[:40] in logs],
        "IPv4 addresses": sorted({ip for ip in IPV4.findall(logs) if not ip.startswith("127.")}),
    }
    assert {what: values[:5] for what, values in leaked.items() if values} == {}


# Keys under which the run's events carry the other personal data (native and Segment spellings).
PERSONAL_KEYS = frozenset({"user_agent", "userAgent", "user_id", "userId", "tc_string", "referrer"})


def _personal_values(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in PERSONAL_KEYS and isinstance(item, str) and len(item) >= 8:
                yield item
            else:
                yield from _personal_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _personal_values(item)


def test_the_lambda_logs_hold_no_user_agent_user_id_consent_string_or_referrer(fault_run: FaultRun) -> None:
    """Given the Lambdas' logs of the whole run
    When they are searched for every user agent, user id, consent string (tc_string) and install referrer the run's
    events carried
    Then none is there."""
    values = {value for event in fault_run.traffic.events for value in _personal_values(event.body)}
    assert len(values) > 100, "the run's events carry too few personal values for this check to mean anything"
    leaked = sorted(value for value in values if value in fault_run.logs)
    assert [value[:16] for value in leaked[:5]] == []


def test_the_lambda_logs_show_the_masked_forms(fault_run: FaultRun) -> None:
    """Given the Lambdas' logs of the whole run
    When they are searched for the masked forms the code promises
    Then every fresh AdServices token appears as its `sha256:<12 hex>` fingerprint (the enricher's `adservices`
    line), and Kochava's echoed IDFA and IP as `<id:...>` and `<ip>` (the deliverer's `dead-lettered` line)."""
    logs = fault_run.logs
    tokens = {event.token for event in fault_run.traffic.events if event.token and event.expect == DELIVER}
    unseen = [t[:12] for t in tokens if "sha256:" + hashlib.sha256(t.encode()).hexdigest()[:12] not in logs]
    assert tokens and unseen == []
    assert f"<id:{fingerprint(ECHOED_IDFA.upper())}>" in logs
    assert "<ip>" in logs
    assert ECHOED_IP not in logs
