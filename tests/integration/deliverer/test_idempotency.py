"""The once-only record as the DynamoDB table holds it (real boto3 on moto): its TTL, what it keeps (and does not),
``tools.trace`` finding it, the table gone.

What the once-only rule decides (duplicates, conflicts, a crash mid-send, replays) runs on the fast tier through
the Lambda's entry point, Powertools' idempotency on an in-memory layer:
``tests/unit/deliverer/test_lambda_idempotency.py``; that layer and Powertools' DynamoDB layer agree in
``tests/integration/contracts/test_idempotency_persistence.py``."""

from __future__ import annotations

import json
import time

from functions.names import IDEMPOTENCY_TTL_S
from tests.integration.deliverer.support import Stack
from tests.samples.deliverer import DEVICE_IP, IDFA, IDFV, IOS_APP, event_body


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


def test_trace_finds_the_record_the_deliverer_wrote(stack: Stack) -> None:
    """tools.trace computes the deliverer's idempotency key from a uuid: if the key changes, this fails until
    tools/trace/core.py key_data mirrors it."""
    from tools.trace.sources import IdempotencyTable

    stack.send(event_body("traced-1"))
    assert stack.run_once() == {"batchItemFailures": []}

    [record] = IdempotencyTable(stack.dynamodb, stack.table).find("traced-1", [IOS_APP])
    assert (record.kind, record.status, record.data["app"]) == ("event", "COMPLETED", IOS_APP)
    assert IdempotencyTable(stack.dynamodb, stack.table).find("never-sent", [IOS_APP]) == []
