"""At most one successful POST per event uuid + kind, whatever SQS redelivers or on-call replays: the deliverer's
entry point on the in-memory ports, Powertools' idempotency itself on :class:`~tests.fakes.MemoryPersistence`
(moved from the moto tier, ``tests/integration/deliverer/test_idempotency.py``, which keeps what only the DynamoDB
table shows: the record's TTL and content, ``tools.trace`` reading it, the table gone; the persistence fake and
Powertools' DynamoDB layer agree in ``tests/integration/contracts/test_idempotency_persistence.py``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest

from functions.names import ATTR_REASON
from functions.pipeline import envelope, reasons
from functions.pipeline.envelope import Kind
from functions.ports import KochavaResult
from tests.fakes import DELIVERED, REJECTED
from tests.samples.deliverer import IDFA, IOS_APP, event_body, event_payload
from tests.unit.deliverer.stack import FakeStack, context


def verdicts(stack: FakeStack) -> list[str]:
    return [line["verdict"] for line in stack.log_lines() if "verdict" in line]


def test_the_same_message_delivered_twice_is_posted_once(stack: FakeStack) -> None:
    """Given an event delivered When SQS delivers it again (or on-call replays it)
    Then it is acknowledged as a duplicate without a second POST."""
    body = event_body("dup-1")
    stack.send(body)
    assert stack.run_once() == {"batchItemFailures": []}

    stack.send(body)
    assert stack.run_once() == {"batchItemFailures": []}

    assert len(stack.kochava.posts) == 1
    assert stack.queue_depth() == (0, 0)
    assert verdicts(stack) == ["delivered", "duplicate"]


def test_two_copies_in_one_batch_are_posted_once(stack: FakeStack) -> None:
    """Given two copies of one event in one batch, both in flight together
    When the batch is handled and whatever was left is received again
    Then one POST was made and the queue is empty."""
    stack.kochava.latency_s = 0.05  # both copies are in flight together
    body = event_body("dup-2")
    stack.send(body, body)
    event = stack.receive()
    assert len(event["Records"]) == 2

    stack.invoke(event)  # one delivers; the other is a duplicate, or "in progress" and retried later
    stack.make_visible(event)
    stack.run_once()

    assert len(stack.kochava.posts) == 1
    assert stack.queue_depth() == (0, 0)


def test_a_reused_uuid_with_different_content_is_dead_lettered_as_uuid_conflict(stack: FakeStack) -> None:
    """Given an event delivered under a uuid (issue 14, item 6)
    When another event with the same uuid, kind and app but different content arrives (a backend bug)
    Then it is not posted and not dropped: it is in the delivery DLQ with reason uuid_conflict, unchanged."""
    stack.send(event_body("reused-1", "Purchase"))
    assert stack.run_once() == {"batchItemFailures": []}
    other = event_body("reused-1", "Level Up")
    stack.send(other)
    assert stack.run_once() == {"batchItemFailures": []}

    assert len(stack.kochava.posts) == 1
    [dead] = stack.dlq_messages()
    assert dead["attributes"][ATTR_REASON] == reasons.UUID_CONFLICT
    assert "different content" in dead["attributes"]["error"]
    assert dead["body"] == other
    assert not reasons.is_replayable(reasons.UUID_CONFLICT)


def test_the_same_uuid_and_content_from_another_device_is_a_uuid_conflict_not_a_duplicate(stack: FakeStack) -> None:
    """Given an event delivered (issue 22: a backend that reuses uuids)
    When the same uuid and content comes for another device
    Then it is a conflict: in the delivery DLQ with reason uuid_conflict, never silent."""
    stack.send(event_body("shared-uuid"))
    assert stack.run_once() == {"batchItemFailures": []}
    other_device = "5F1C2D3E-0000-4000-8000-00000000BEEF"
    payload = event_payload("shared-uuid", device_ids={"idfa": IDFA, "idfv": other_device})
    payload["kochava_device_id"] = other_device
    second = envelope.build_body(
        uuid="shared-uuid", kind="event", event_name="Purchase", payload=payload, adservices_generated_at=None
    )
    stack.send(second)
    assert stack.run_once() == {"batchItemFailures": []}

    assert len(stack.kochava.posts) == 1
    [dead] = stack.dlq_messages()
    assert dead["attributes"][ATTR_REASON] == reasons.UUID_CONFLICT
    assert dead["body"] == second


def test_a_true_duplicate_differing_only_in_what_enrichment_fills_is_skipped(stack: FakeStack) -> None:
    """Given an event delivered When the enricher's redelivered message sends it again with another IP and device
    version from the profile Then it is still the same event: a duplicate, not a conflict."""
    stack.send(event_body("same-1"))
    stack.run_once()
    stack.send(event_body("same-1", origination_ip="198.51.100.77", device_ver="iPhone-iOS-17.1"))
    assert stack.run_once() == {"batchItemFailures": []}
    assert len(stack.kochava.posts) == 1 and stack.dlq_messages() == []
    assert verdicts(stack) == ["delivered", "duplicate"]


def test_the_same_uuid_for_two_apps_is_two_deliveries(stack: FakeStack) -> None:
    """Given two apps whose uuids collide When both events come Then both are posted (the key includes the app)."""
    other_app = {**event_payload("two-apps"), "kochava_app_id": "ko-other-app"}
    stack.send(event_body("two-apps"))
    assert stack.run_once() == {"batchItemFailures": []}
    stack.send(
        envelope.build_body(
            uuid="two-apps", kind="event", event_name="Purchase", payload=other_app, adservices_generated_at=None
        )
    )
    assert stack.run_once() == {"batchItemFailures": []}
    assert sorted(p.payload["kochava_app_id"] for p in stack.kochava.posts) == sorted([IOS_APP, "ko-other-app"])


def test_the_key_is_uuid_and_kind(stack: FakeStack) -> None:
    """Given an event and an identity link with one uuid When both come Then both are delivered."""
    identity = envelope.build_body(
        uuid="same-uuid",
        kind="identityLink",
        event_name="identify",
        payload={"kochava_app_id": "g", "device_id": {"idfv": "X"}, "data": {"user_id": "u"}},
        adservices_generated_at=None,
    )
    stack.send(event_body("same-uuid"), identity)
    assert stack.run_once() == {"batchItemFailures": []}
    assert len(stack.kochava.delivered) == 2


def test_a_rejected_payload_can_be_replayed_after_the_fix(stack: FakeStack) -> None:
    """Given an event Kochava refused (dead-lettered kochava_rejected)
    When on-call replays it once Kochava's config is fixed Then it is posted again and delivered."""
    stack.kochava.script(None, REJECTED, DELIVERED)
    body = event_body("fix-1")
    stack.send(body)
    stack.run_once()
    [dead] = stack.dlq_messages()
    assert dead["attributes"][ATTR_REASON] == reasons.KOCHAVA_REJECTED

    stack.send(dead["body"])
    assert stack.run_once() == {"batchItemFailures": []}
    assert [p.answer.http_status for p in stack.kochava.posts] == [400, 200]


class SimulatedCrash(BaseException):
    """The invocation dies mid-send (timeout, out of memory): no ``except Exception`` runs."""


class CrashingClient:
    def __init__(self) -> None:
        self.calls = 0

    def send(self, kind: Kind, payload: Mapping[str, Any], *, deadline: float, retry: bool = True) -> KochavaResult:
        self.calls += 1
        raise SimulatedCrash


@pytest.mark.filterwarnings("ignore:No application metrics")  # the crashed invocation counts nothing
def test_a_crash_mid_send_does_not_block_the_event_for_ever(stack: FakeStack) -> None:
    """Given an invocation that died mid-send, its in-progress record left behind
    When SQS redelivers the event before that invocation's timeout, then after it
    Then it is retried later (never sent twice concurrently), then delivered once."""
    crashing = CrashingClient()
    stack.use_runtime(kochava=crashing)
    stack.send(event_body("crash-1"))
    event = stack.receive()
    crashed_invocation = context(remaining_ms=2000)

    with pytest.raises(SimulatedCrash):
        stack.invoke(event, crashed_invocation)
    assert crashing.calls == 1
    [item] = stack.persistence.records.values()
    assert item.status == "INPROGRESS"
    assert item.in_progress_expiry_timestamp is not None

    stack.use_runtime()  # a new container
    stack.make_visible(event)
    event = stack.receive()
    response = stack.invoke(event)
    assert len(response["batchItemFailures"]) == 1
    assert stack.kochava.posts == []

    # The dead invocation's timeout passes (the store's clock; Powertools' own check runs on the real one, earlier).
    stack.persistence.clock = lambda: time.time() + crashed_invocation.remaining_ms / 1000 + 0.05
    stack.make_visible(event)
    assert stack.run_once() == {"batchItemFailures": []}
    assert len(stack.kochava.delivered) == 1
    [item] = stack.persistence.records.values()
    assert item.status == "COMPLETED"


def test_payload_is_posted_exactly_as_enveloped(stack: FakeStack) -> None:
    """Given an envelope When it is delivered Then Kochava gets its payload unchanged."""
    stack.send(event_body("exact-1"))
    stack.run_once()
    assert stack.kochava.posts[0].payload == event_payload("exact-1")
