"""Hard input through the whole local stack (issue 14, items 5 and 6): one bad event never sinks its batch, and a
reused uuid with other content ends in the delivery DLQ as ``uuid_conflict``, never silently lost.

Runs after ``test_local_pipeline.py`` on the same session stack (its events are uuids of their own)."""

from __future__ import annotations

import json
from typing import Any

from functions.names import ATTR_FIELD
from functions.pipeline import reasons
from tests.e2e.shared import NATIVE_EVENT, Run
from tools.local.report import DELIVERED

ZERO_IDFA = "00000000-0000-0000-0000-000000000000"


def _event(uuid: str, **fields: Any) -> dict[str, Any]:
    return {**NATIVE_EVENT, "uuid": uuid, **fields}


def test_one_bad_event_does_not_sink_its_batch_and_a_reused_uuid_is_a_uuid_conflict(run: Run) -> None:
    stack = run.stack
    first = _event("e2e-reused-0001", event="level_up")
    batch = [
        _event("e2e-hard-good-0001"),
        _event("e2e-hard-key-0001", properties={"k\ud800": 1}),  # a lone surrogate in a property key
        _event("e2e-hard-value-0001", properties={"k": "v\udc00"}),  # ... and in a value
        _event("e2e-hard-no-id-0001", device={"platform": "ios", "advertising_id": ZERO_IDFA}),  # mapping rejects
        first,
    ]
    body = json.dumps({"batch": batch})  # ensure_ascii: the surrogates travel as escapes, valid JSON text
    assert stack.post("native", body).status_code == 202
    assert stack.wait_drained(timeout_s=40), stack.queue_depths()
    # The same uuid again, for another event (a backend bug), after the first was delivered
    reused = _event("e2e-reused-0001", event="level_down", properties={"level": 1})
    assert stack.post("native", reused).status_code == 202
    assert stack.wait_drained(timeout_s=40), stack.queue_depths()

    report = stack.report()
    assert report.fates["e2e-hard-good-0001"] == DELIVERED  # the valid sibling went through
    assert report.fates["e2e-hard-key-0001"] == f"dlq:ingest:{reasons.INVALID_EVENT}"
    assert report.fates["e2e-hard-value-0001"] == f"dlq:ingest:{reasons.INVALID_EVENT}"
    assert report.fates["e2e-hard-no-id-0001"] == f"dlq:ingest:{reasons.NO_DEVICE_IDENTIFIER}"
    assert report.redriven == 0 and report.lost == []  # nothing crashed the enricher
    fields = {m.uuid: m.attributes.get(ATTR_FIELD) for m in report.dlq["ingest"]}
    assert fields["e2e-hard-key-0001"] == "properties.k\\ud800"

    [conflict] = [m for m in report.dlq["delivery"] if m.uuid == "e2e-reused-0001"]
    assert conflict.reason == reasons.UUID_CONFLICT
    assert json.loads(conflict.body)["payload"]["data"]["event_name"] == "level_down"
    names = [p["data"].get("event_name") for p in run.sink.payloads()]
    assert "level_up" in names and "level_down" not in names  # the second event was never posted to Kochava
