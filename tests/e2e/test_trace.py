"""On-call against the local stack, as a user runs it: ``python -m tools.trace`` answers "where is event X?", and
``tools.dlq`` refuses a replay into the wrong queue (the issue's repro: delivery envelopes into the ingest queue)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pytest

from functions.names import DELIVERY_QUEUE, INGEST_QUEUE
from tests.e2e.shared import NATIVE_EVENT, Run
from tests.e2e.test_local_cli import ROOT, clean_env
from tests.integration.dlq.helpers import counts, snapshot
from tools.dlq.cli import main as dlq_main
from tools.local import aws

HEARTBEAT_UUID = "bd36eb67-0009-4350-a6dc-876bf69fb4af"  # events/heartbeat.json: filtered by default
INVALID_UUID = "bad-0018-no-event"  # events/invalid_*.json: a track event without its name
REJECTED_UUID = "e2e-trace-rejected-0001"  # Kochava answers 400: in the delivery DLQ


@pytest.fixture(scope="module")
def rejected(run: Run) -> Run:
    """One more event, which Kochava rejects: it ends in the delivery DLQ (with a replayable reason)."""
    run.sink.add_rule(
        lambda r: isinstance(r.json, dict) and r.json["data"].get("event_name") == "e2e_trace_reject", [400]
    )
    posted = run.stack.post("native", {**NATIVE_EVENT, "uuid": REJECTED_UUID, "event": "e2e_trace_reject"})
    assert posted.status_code == 202
    assert run.stack.wait_drained(timeout_s=40), run.stack.queue_depths()
    return run


def tool(module: str, run: Run, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, "--endpoint-url", run.stack.endpoint_url, *argv],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_trace_gives_each_event_its_status(rejected: Run) -> None:
    uuids = [NATIVE_EVENT["uuid"], INVALID_UUID, HEARTBEAT_UUID, REJECTED_UUID, "e2e-never-sent"]
    done = tool("tools.trace", rejected, "--lambda-log", str(rejected.lambda_log), "--json", *uuids)

    assert done.returncode == 1, done.stderr  # one uuid was not found
    by_uuid: dict[str, Any] = {d["uuid"]: d for d in map(json.loads, done.stdout.splitlines())}
    assert {u: by_uuid[u]["status"] for u in uuids} == {
        NATIVE_EVENT["uuid"]: "delivered",
        INVALID_UUID: "dead_lettered",
        HEARTBEAT_UUID: "filtered",
        REJECTED_UUID: "dead_lettered",
        "e2e-never-sent": "not_found",
    }
    delivered = by_uuid[NATIVE_EVENT["uuid"]]["details"]
    assert (delivered["kind"], delivered["http_status"], delivered["source"]) == ("event", 200, "idempotency record")
    invalid = by_uuid[INVALID_UUID]["details"]
    assert (invalid["dlq"], invalid["reason"], invalid["field"]) == (
        "kochava-local-ingest-dlq",
        "invalid_event",
        "event",
    )
    kochava_said_no = by_uuid[REJECTED_UUID]["details"]
    assert (kochava_said_no["dlq"], kochava_said_no["reason"], kochava_said_no["http_status"]) == (
        "kochava-local-delivery-dlq",
        "kochava_rejected",
        "400",
    )
    assert by_uuid[HEARTBEAT_UUID]["details"]["event_name"] == "heartbeat"
    searched = by_uuid["e2e-never-sent"]["searched"]
    assert str(rejected.lambda_log) in searched["logs"]["text"]
    assert "kochava-local-idempotency" in searched["idempotency"]["text"]


def test_a_replay_into_the_wrong_queue_is_refused_and_moves_nothing(rejected: Run) -> None:
    sqs = aws.client("sqs", rejected.stack.endpoint_url)
    names = rejected.stack.names
    delivery_dlq = sqs.get_queue_url(QueueName=names.dlq(DELIVERY_QUEUE))["QueueUrl"]
    ingest = sqs.get_queue_url(QueueName=names.queue(INGEST_QUEUE))["QueueUrl"]
    ingest_dlq = sqs.get_queue_url(QueueName=names.dlq(INGEST_QUEUE))["QueueUrl"]
    before = snapshot(sqs, delivery_dlq)
    assert any(REJECTED_UUID in body for _, body, _ in before.messages)
    ingest_dlq_before = counts(sqs, ingest_dlq)

    out, err = io.StringIO(), io.StringIO()  # in-process (the CLI as a user runs it is covered above)
    argv = ["--endpoint-url", rejected.stack.endpoint_url, "--queue-url", delivery_dlq, "--source-url", ingest]
    code = dlq_main([*argv, "replay"], stdout=out, stderr=err)

    assert code == 3, out.getvalue() + err.getvalue()
    assert "refusing to replay kochava-local-delivery-dlq into kochava-local-ingest" in out.getvalue()
    assert snapshot(sqs, delivery_dlq) == before  # still there, visible
    assert rejected.stack.wait_drained(timeout_s=20)
    assert counts(sqs, ingest_dlq) == ingest_dlq_before  # nothing reached the enricher to be dead-lettered
