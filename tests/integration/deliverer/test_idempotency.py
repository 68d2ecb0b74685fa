"""At most one successful POST per event uuid + kind, whatever SQS redelivers or on-call replays."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import pytest

from functions.names import ATTR_REASON, IDEMPOTENCY_TTL_S
from functions.pipeline import envelope, reasons
from functions.pipeline.envelope import Kind
from functions.ports import KochavaResult
from tests.integration.deliverer.support import FakeContext, Stack
from tests.samples.deliverer import DEVICE_IP, IDFA, IDFV, IOS_APP, event_body, event_payload


def test_the_same_message_delivered_twice_is_posted_once(stack: Stack) -> None:
    body = event_body("dup-1")
    stack.send(body)
    assert stack.run_once() == {"batchItemFailures": []}

    stack.send(body)  # SQS delivers it again (at-least-once), or on-call replays it
    assert stack.run_once() == {"batchItemFailures": []}  # acknowledged

    assert len(stack.sink.requests) == 1
    assert stack.queue_depth() == (0, 0)
    verdicts = [line.get("verdict") for line in stack.log_lines() if "verdict" in line]
    assert verdicts == ["delivered", "duplicate"]


def test_two_copies_in_one_batch_are_posted_once(stack: Stack) -> None:
    stack.sink.latency_s = 0.2  # both copies are in flight together
    body = event_body("dup-2")
    stack.send(body, body)
    event = stack.receive()
    assert len(event["Records"]) == 2

    stack.invoke(event)  # one delivers; the other is a duplicate, or "in progress" and retried later
    stack.make_visible(event)
    stack.run_once()

    assert len(stack.sink.requests) == 1
    assert stack.queue_depth() == (0, 0)


def test_a_reused_uuid_with_different_content_is_dead_lettered_as_uuid_conflict(stack: Stack) -> None:
    """Given an event delivered under a uuid (issue 14, item 6)
    When another event with the same uuid, kind and app but different content arrives (a backend bug)
    Then it is not posted and not dropped: it is in the delivery DLQ with reason uuid_conflict, unchanged."""
    stack.send(event_body("reused-1", "Purchase"))
    assert stack.run_once() == {"batchItemFailures": []}
    other = event_body("reused-1", "Level Up")
    stack.send(other)
    assert stack.run_once() == {"batchItemFailures": []}

    assert len(stack.sink.requests) == 1
    [dead] = stack.dlq_messages()
    assert dead["attributes"][ATTR_REASON] == reasons.UUID_CONFLICT
    assert "different content" in dead["attributes"]["error"]
    assert dead["body"] == other
    assert not reasons.is_replayable(reasons.UUID_CONFLICT)


def test_the_same_uuid_and_content_from_another_device_is_a_uuid_conflict_not_a_duplicate(stack: Stack) -> None:
    """Issue 22: one uuid sent for two devices with the same content (a backend that reuses uuids). The second
    was acknowledged as a duplicate and never sent (device ids are left out of the content). It is a conflict now:
    in the delivery DLQ with reason uuid_conflict, never silent."""
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

    assert len(stack.sink.requests) == 1
    [dead] = stack.dlq_messages()
    assert dead["attributes"][ATTR_REASON] == reasons.UUID_CONFLICT
    assert dead["body"] == second


def test_a_true_duplicate_differing_only_in_what_enrichment_fills_is_skipped(stack: Stack) -> None:
    """The same event processed twice by the enricher (its message redelivered) may get another IP from the device
    profile or a stale token stripped: still the same event, so a duplicate, not a conflict."""
    stack.send(event_body("same-1"))
    stack.run_once()
    stack.send(event_body("same-1", origination_ip="198.51.100.77", device_ver="iPhone-iOS-17.1"))
    assert stack.run_once() == {"batchItemFailures": []}
    assert len(stack.sink.requests) == 1 and stack.dlq_messages() == []
    verdicts = [line.get("verdict") for line in stack.log_lines() if "verdict" in line]
    assert verdicts == ["delivered", "duplicate"]


def test_the_same_uuid_for_two_apps_is_two_deliveries(stack: Stack) -> None:
    """Two apps whose uuids collide: the key includes the app (kochava_app_id), so neither is lost."""
    other_app = {**event_payload("two-apps"), "kochava_app_id": "ko-other-app"}
    stack.send(event_body("two-apps"))
    assert stack.run_once() == {"batchItemFailures": []}
    stack.send(
        envelope.build_body(
            uuid="two-apps", kind="event", event_name="Purchase", payload=other_app, adservices_generated_at=None
        )
    )
    assert stack.run_once() == {"batchItemFailures": []}
    assert sorted(r.json["kochava_app_id"] for r in stack.sink.requests) == sorted([IOS_APP, "ko-other-app"])


def test_the_key_is_uuid_and_kind(stack: Stack) -> None:
    identity = envelope.build_body(
        uuid="same-uuid",
        kind="identityLink",
        event_name="identify",
        payload={"kochava_app_id": "g", "device_id": {"idfv": "X"}, "data": {"user_id": "u"}},
        adservices_generated_at=None,
    )
    stack.send(event_body("same-uuid"), identity)
    assert stack.run_once() == {"batchItemFailures": []}
    assert len(stack.sink.delivered) == 2


def test_the_idempotency_record_outlives_the_dlq_retention(stack: Stack) -> None:
    stack.send(event_body("ttl-1"))
    stack.run_once()
    [item] = stack.idempotency_items()
    expires_in = int(item["expiration"]["N"]) - time.time()
    assert IDEMPOTENCY_TTL_S - 60 < expires_in <= IDEMPOTENCY_TTL_S


def test_the_record_keeps_what_trace_shows_and_no_personal_data(stack: Stack) -> None:
    stack.sink.script([503, 200])  # delivered on the second HTTP attempt
    before_ms = int(time.time() * 1000)
    stack.send(event_body("kept-1"))
    assert stack.run_once() == {"batchItemFailures": []}
    after_ms = int(time.time() * 1000)

    [item] = stack.idempotency_items()
    data = json.loads(item["data"]["S"])
    assert before_ms <= data.pop("delivered_at_ms") <= after_ms
    assert data == {"http_status": 200, "attempts": 2, "kind": "event", "app": IOS_APP}
    raw = json.dumps(item)
    for personal in (IDFA, IDFV, DEVICE_IP):
        assert personal not in raw


def test_a_rejected_payload_can_be_replayed_after_the_fix(stack: Stack) -> None:
    stack.sink.script([400])
    body = event_body("fix-1")
    stack.send(body)
    stack.run_once()
    [dead] = stack.dlq_messages()
    assert dead["attributes"][ATTR_REASON] == reasons.KOCHAVA_REJECTED

    stack.send(dead["body"])  # on-call replays once Kochava's config is fixed
    assert stack.run_once() == {"batchItemFailures": []}
    assert [r.reply_status for r in stack.sink.requests] == [400, 200]


class SimulatedCrash(BaseException):
    """The invocation dies mid-send (timeout, out of memory): no ``except Exception`` runs."""


class CrashingClient:
    def __init__(self) -> None:
        self.calls = 0

    def send(self, kind: Kind, payload: Mapping[str, Any], *, deadline: float, retry: bool = True) -> KochavaResult:
        self.calls += 1
        raise SimulatedCrash


@pytest.mark.filterwarnings("ignore:No application metrics")  # the crashed invocation counts nothing
def test_a_crash_mid_send_does_not_block_the_event_for_ever(stack: Stack) -> None:
    crashing = CrashingClient()
    stack.use_runtime(kochava=crashing)
    stack.send(event_body("crash-1"))
    event = stack.receive()
    # It would have timed out 2 s from now: long enough that a loaded CI machine redelivers within the window.
    crashed_invocation = FakeContext(remaining_ms=2000)

    with pytest.raises(SimulatedCrash):
        stack.invoke(event, crashed_invocation)
    assert crashing.calls == 1
    [item] = stack.idempotency_items()
    assert item["status"]["S"] == "INPROGRESS"
    assert "in_progress_expiration" in item

    # SQS redelivers it to a new container before the dead invocation's timeout: it must not be sent twice
    # concurrently, so it is retried later.
    stack.use_runtime()
    stack.make_visible(event)
    event = stack.receive()
    response = stack.invoke(event)
    assert len(response["batchItemFailures"]) == 1
    assert stack.sink.requests == []

    # After the dead invocation's timeout the record has expired: the event is delivered, once.
    stack.wait_in_progress_expiry(crashed_invocation)
    stack.make_visible(event)
    assert stack.run_once() == {"batchItemFailures": []}
    assert len(stack.sink.delivered) == 1
    [item] = stack.idempotency_items()
    assert item["status"]["S"] == "COMPLETED"


def test_idempotency_store_down_reports_the_record_failed_and_posts_nothing(stack: Stack) -> None:
    stack.dynamodb.delete_table(TableName=stack.table)
    stack.send(event_body("ddb-1"))
    event = stack.receive()

    response = stack.invoke(event)

    assert response["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert stack.sink.requests == []  # never POST without the idempotency record
    assert stack.dlq_messages() == []  # not our call: SQS redrives it after maxReceiveCount
    [line] = [line for line in stack.log_lines() if line.get("verdict") == "failed"]
    assert line["correlation_id"] == "ddb-1"


def test_payload_is_posted_exactly_as_enveloped(stack: Stack) -> None:
    stack.send(event_body("exact-1"))
    stack.run_once()
    assert stack.sink.requests[0].json == event_payload("exact-1")


def test_trace_finds_the_record_the_deliverer_wrote(stack: Stack) -> None:
    """tools.trace computes the deliverer's idempotency key from a uuid: if the key changes, this fails until
    tools/trace/core.py key_data mirrors it."""
    from tools.trace.sources import IdempotencyTable

    stack.send(event_body("traced-1"))
    assert stack.run_once() == {"batchItemFailures": []}

    [record] = IdempotencyTable(stack.dynamodb, stack.table).find("traced-1", [IOS_APP])
    assert (record.kind, record.status, record.data["app"]) == ("event", "COMPLETED", IOS_APP)
    assert IdempotencyTable(stack.dynamodb, stack.table).find("never-sent", [IOS_APP]) == []
