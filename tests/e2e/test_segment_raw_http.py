"""Every call shape Segment's HTTP Tracking API documents, posted as raw HTTP to the local stack; what Kochava got.

Segment's docs (HTTP API source; Spec: Common fields) make ``messageId`` and ``timestamp`` optional, give
``originalTimestamp`` / ``sentAt`` for clock-skew correction (``timestamp = receivedAt - (sentAt -
originalTimestamp)``), and let a batch carry ``context`` for all its calls. Each shape is posted once (one stack,
the session's), the pipeline is drained, and each call's fate and the Kochava payload are checked: none is refused
for a field Segment treats as optional.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import requests

from tests.e2e.shared import Run
from tools.local.report import DELIVERED, FILTERED

IDFV = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
DEVICE_TYPE_IOS = {"device": {"type": "ios", "id": IDFV}}


def idfa(n: int) -> str:
    return f"7D92078A-8246-4BA4-AE5B-76104861E{n:03d}"


def ctx(n: int) -> dict[str, Any]:
    return {"device": {"type": "ios", "id": IDFV, "advertisingId": idfa(n)}, "os": {"name": "iOS", "version": "17.1"}}


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@dataclass
class Posted:
    response: requests.Response
    received_s: float  # when the local API received it (the received_at_ms attribute)

    def derived_id(self, position: int) -> str:
        return f"{self.response.json()['request_id']}#{position}"


SHAPES: dict[str, tuple[str, Any]] = {
    # Segment's own /v1/track example: no messageId, no timestamp, no type (the path gives it).
    "track_minimal": ("/v1/track", {"userId": "u-raw", "event": "Order Completed", "properties": {"revenue": 39.95},
                                    "context": ctx(1)}),
    "track_full": ("/v1/track", {"userId": "u-raw", "event": "Level Up", "messageId": "raw-track-full",
                                 "timestamp": "2026-11-20T10:00:00.000Z", "context": ctx(2)}),
    "screen_original": ("/v1/screen", {"userId": "u-raw", "name": "Home", "messageId": "raw-screen",
                                       "originalTimestamp": "2026-11-20T09:00:00.000Z", "context": ctx(3)}),
    # The device clock is an hour behind: recorded "08:00", sent "08:00:30" by its clock; received now.
    "track_skewed": ("/v1/track", {"userId": "u-raw", "event": "Skewed", "messageId": "raw-skewed",
                                   "originalTimestamp": "2026-11-20T08:00:00.000Z",
                                   "sentAt": "2026-11-20T08:00:30.000Z", "context": ctx(4)}),
    "identify": ("/v1/identify", {"userId": "u-raw-identify", "traits": {"plan": "pro"}, "context": ctx(5)}),
    "page": ("/v1/page", {"userId": "u-raw", "name": "Pricing", "context": ctx(6)}),
    "group": ("/v1/group", {"userId": "u-raw", "groupId": "g-1", "context": ctx(6)}),
    "alias": ("/v1/alias", {"userId": "u-raw", "previousId": "anon-1", "context": ctx(6)}),
    # A batch: context at batch level, sentAt at batch level, calls with and without messageId / times.
    "batch": ("/v1/batch", {
        "batch": [
            {"type": "track", "userId": "u-raw", "event": "Batch A", "messageId": "raw-batch-a",
             "timestamp": "2026-11-20T07:00:00.000Z", "context": {"device": {"advertisingId": idfa(7)}}},
            {"type": "track", "userId": "u-raw", "event": "Batch B", "originalTimestamp": "2026-11-20T06:59:00.000Z",
             "context": {"device": {"advertisingId": idfa(8)}}},
            {"type": "screen", "userId": "u-raw", "name": "Batch C", "context": {"device": {"advertisingId": idfa(9)}}},
            {"type": "page", "userId": "u-raw", "name": "Batch D"},
        ],
        "sentAt": "2026-11-20T07:00:00.000Z",
        "context": {**DEVICE_TYPE_IOS, "os": {"name": "iOS", "version": "17.1"}},
    }),
}  # fmt: skip


@pytest.fixture(scope="module")
def posted(run: Run) -> dict[str, Posted]:
    out = {}
    for name, (path, body) in SHAPES.items():
        headers = {"content-encoding": "gzip"} if name == "batch" else None  # the batch as RudderStack sends it
        data = gzip.compress(json.dumps(body).encode()) if name == "batch" else body
        response = run.stack.post(path, data, headers=headers)
        assert response.status_code == 200, (name, response.text)
        (accepted,) = [a for a in run.stack.requests if a.request_id == response.json()["request_id"]]
        out[name] = Posted(response, accepted.received_at_ms / 1000)
    assert run.stack.wait_drained(timeout_s=60), run.stack.queue_depths()
    return out


def sent_to_kochava(run: Run, ad_id: str) -> list[dict[str, Any]]:
    return [r.json for r in run.sink.delivered if isinstance(r.json, dict) and ad_id in json.dumps(r.json)]


def the_event(run: Run, n: int) -> dict[str, Any]:
    (payload,) = sent_to_kochava(run, idfa(n))
    data: dict[str, Any] = payload["data"]
    return data


def test_every_documented_shape_is_answered_200_success(posted: dict[str, Posted]) -> None:
    assert all(p.response.json()["success"] is True for p in posted.values())


def test_a_call_without_message_id_or_timestamp_is_delivered_with_the_received_time(
    run: Run, posted: dict[str, Posted]
) -> None:
    shape = posted["track_minimal"]
    assert run.stack.report().fates[shape.derived_id(0)] == DELIVERED
    event = the_event(run, 1)
    assert event["event_name"] == "Purchase" and event["event_data"]["sum"] == 39.95
    assert event["usertime"] == int(shape.received_s)


def test_timestamp_wins_original_timestamp_alone_is_used_as_is(run: Run, posted: dict[str, Posted]) -> None:
    fates = run.stack.report().fates
    assert fates["raw-track-full"] == fates["raw-screen"] == DELIVERED
    assert the_event(run, 2)["usertime"] == epoch("2026-11-20T10:00:00+00:00")
    screen = the_event(run, 3)
    assert (screen["event_name"], screen["usertime"]) == ("Screen View", epoch("2026-11-20T09:00:00+00:00"))


def test_original_timestamp_is_corrected_by_sent_at_against_the_received_time(
    run: Run, posted: dict[str, Posted]
) -> None:
    assert run.stack.report().fates["raw-skewed"] == DELIVERED
    expected = posted["track_skewed"].received_s - 30  # recorded 30 s before it was sent, by the device's clock
    assert abs(the_event(run, 4)["usertime"] - expected) <= 1


def test_identify_without_message_id_is_an_identity_link(run: Run, posted: dict[str, Posted]) -> None:
    assert run.stack.report().fates[posted["identify"].derived_id(0)] == DELIVERED
    links = [r.json for r in run.sink.delivered if isinstance(r.json, dict) and "u-raw-identify" in json.dumps(r.json)]
    assert len(links) == 1 and "action" not in links[0]


@pytest.mark.parametrize("call_type", ["page", "group", "alias"])
def test_page_group_alias_without_message_id_are_filtered_under_their_derived_id(
    run: Run, posted: dict[str, Posted], call_type: str
) -> None:
    assert run.stack.report().fates[posted[call_type].derived_id(0)] == FILTERED


def test_a_gzipped_batch_with_batch_level_context_and_sent_at(run: Run, posted: dict[str, Posted]) -> None:
    batch = posted["batch"]
    fates = run.stack.report().fates
    assert fates["raw-batch-a"] == DELIVERED
    assert [fates[batch.derived_id(i)] for i in (1, 2, 3)] == [DELIVERED, DELIVERED, FILTERED]
    a, b, c = the_event(run, 7), the_event(run, 8), the_event(run, 9)
    assert a["device_ids"] == {"idfa": idfa(7), "idfv": IDFV}, "the batch-level context.device applies to each call"
    assert a["usertime"] == epoch("2026-11-20T07:00:00+00:00")
    assert abs(b["usertime"] - (batch.received_s - 60)) <= 1, "originalTimestamp 60 s before the batch's sentAt"
    assert (c["event_name"], c["usertime"]) == ("Screen View", int(batch.received_s))


def test_tools_trace_finds_a_call_sent_without_message_id_by_request_id_and_position(
    run: Run, posted: dict[str, Posted]
) -> None:
    """What README tells a sender: take request_id from the 200 answer, trace '<request_id>#<position>'."""
    from tests.e2e.test_trace import tool

    ids = [posted["track_minimal"].derived_id(0), posted["page"].derived_id(0), posted["batch"].derived_id(2)]
    done = tool("tools.trace", run, "--lambda-log", str(run.lambda_log), "--json", *ids)
    assert done.returncode == 0, done.stdout + done.stderr
    statuses = {d["uuid"]: d["status"] for d in map(json.loads, done.stdout.splitlines())}
    assert statuses == {ids[0]: "delivered", ids[1]: "filtered", ids[2]: "delivered"}
