"""End to end on the local stack: HTTP in, the real handlers, SQS (moto), the Kochava sink and the DLQs out."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from functions.names import MISSING_KEY_MESSAGE
from tests.e2e.shared import NATIVE_EVENT, SEGMENT_EVENT, Run
from tools.local.report import DELIVERED, FILTERED
from tools.samples import golden_path, sample_paths

INVALID_AT_THE_API = {"invalid_platform.json"}  # the JSON schema (API Gateway's model) already refuses it


def golden_lines(sample: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in golden_path(sample).read_text().splitlines() if line.strip()]


def test_every_sample_is_answered_like_api_gateway(run: Run) -> None:
    for name, response in run.samples.items():
        if name in INVALID_AT_THE_API:
            assert response.status_code == 400, name
            assert response.json()["message"] == "Invalid request body"
        else:
            assert response.status_code == 202, (name, response.text)
            assert set(response.json()) == {"message_id", "request_id"}


def test_schema_failure_says_what_is_wrong(run: Run) -> None:
    errors = run.samples["invalid_platform.json"].json()["errors"]
    assert any(error.startswith("device.platform:") for error in errors), errors


def test_missing_or_wrong_api_key_is_refused_and_nothing_is_queued(run: Run) -> None:
    assert (run.without_key.status_code, run.wrong_key.status_code) == (401, 403)
    assert run.without_key.json() == {"code": "unauthorized", "message": MISSING_KEY_MESSAGE}
    assert run.wrong_key.json() == {"code": "invalid_api_key", "message": "Forbidden"}
    keys = {event.key for event in run.report.accepted}
    assert "e2e-no-key" not in keys
    assert "e2e-wrong-key" not in keys


def test_malformed_json_too_large_and_unknown_route(run: Run) -> None:
    stack = run.stack
    malformed = stack.post("native", b'{"uuid": ')
    assert malformed.status_code == 400
    assert "not valid JSON" in malformed.json()["errors"][0]
    too_large = stack.post("native", b"{" + b" " * (1024 * 1024) + b"}")
    assert too_large.status_code == 413
    unknown = requests.post(stack.api_url + "/v1/nope", data="{}", headers={"x-api-key": "x"}, timeout=5)
    assert unknown.status_code == 403
    assert unknown.json()["message"] == "Missing Authentication Token"


def test_native_and_segment_posts_are_delivered(run: Run) -> None:
    assert run.native.status_code == 202
    assert run.segment.status_code == 202
    assert run.report.fates[NATIVE_EVENT["uuid"]] == DELIVERED
    assert run.report.fates[SEGMENT_EVENT["messageId"]] == DELIVERED
    names = [p["data"].get("event_name") for p in run.sink.payloads()]
    assert "level_up" in names
    assert "Level Up" in names


@pytest.mark.parametrize("sample", ["purchase_nested.json", "segment_track.json"])
def test_the_sink_received_exactly_the_golden_payload(run: Run, sample: str) -> None:
    path = next(p for p in sample_paths() if p.name == sample)
    received = run.sink.payloads()
    for line in golden_lines(path):
        assert line["status"] == "ok"
        assert line["payload"] in received, f"{sample}: {line['uuid']} not received as in the golden file"


def test_invalid_events_are_in_the_ingest_dlq_with_their_reason(run: Run) -> None:
    in_dlq = {m.uuid: m for m in run.report.dlq["ingest"] if m.uuid}
    expected = 0
    for path in sample_paths():
        if path.name in INVALID_AT_THE_API:
            continue
        for line in golden_lines(path):
            if line["status"] == "rejected":
                expected += 1
                message = in_dlq.get(line["uuid"])
                assert message is not None, f"{path.name}: {line['uuid']} not dead-lettered"
                assert message.reason == line["reason"]
                assert message.attributes["stage"] == "enricher"
                assert message.attributes.get("error")
    assert expected >= 3
    assert len(run.report.dlq["ingest"]) == expected
    assert run.report.dlq["delivery"] == []


def test_nothing_was_lost(run: Run) -> None:
    report = run.report
    assert report.lost == []
    assert report.redriven == 0
    assert report.ok
    fates = Counter(report.fates.values())
    filtered_goldens = sum(1 for path in sample_paths() for line in golden_lines(path) if line["status"] == "filtered")
    assert filtered_goldens >= 4  # heartbeat.json; the page, group and alias of segment_library_batch.json
    assert fates[FILTERED] == filtered_goldens
    filtered_as = Counter(str(e.event_name) for e in report.accepted if report.fates.get(e.key) == FILTERED)
    assert {"heartbeat", "page", "group", "alias"} <= set(filtered_as)  # the report shows them by type
    delivered_goldens = sum(
        1
        for path in sample_paths()
        if path.name not in INVALID_AT_THE_API
        for line in golden_lines(path)
        if line["status"] == "ok"
    )
    assert fates[DELIVERED] == delivered_goldens + 2  # + the native and Segment posts above
    assert report.sink_successes == fates[DELIVERED]
    assert report.sink_violations == []
    assert set(report.sample_payloads) == {"install", "event", "identityLink"}


def test_kochava_failures_end_in_the_delivery_dlq_or_are_retried(run: Run) -> None:
    """A 400 is dead-lettered with Kochava's status; a 503 is retried (SQS backoff, scaled locally) and delivered."""
    stack = run.stack

    def named(name: str) -> Any:
        return lambda request: isinstance(request.json, dict) and request.json["data"].get("event_name") == name

    run.sink.add_rule(named("e2e_reject"), [400])
    run.sink.add_rule(named("e2e_flaky"), [503, 503, 503, 503, 503, 200], repeat_last=True)
    for uuid, name in (("e2e-reject-0001", "e2e_reject"), ("e2e-flaky-0001", "e2e_flaky")):
        assert stack.post("native", {**NATIVE_EVENT, "uuid": uuid, "event": name}).status_code == 202
    assert stack.wait_drained(timeout_s=40), stack.queue_depths()
    report = stack.report()
    assert report.fates["e2e-reject-0001"] == "dlq:delivery:kochava_rejected"
    (rejected,) = [m for m in report.dlq["delivery"] if m.uuid == "e2e-reject-0001"]
    assert rejected.attributes["stage"] == "deliverer"
    assert rejected.attributes["http_status"] == "400"
    assert report.fates["e2e-flaky-0001"] == DELIVERED
    flaky = [r.reply_status for r in run.sink.requests if named("e2e_flaky")(r)]
    assert flaky[0] == 503
    assert flaky[-1] == 200
    assert report.lost == []
