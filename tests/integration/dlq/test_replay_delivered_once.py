"""End to end on moto: an interrupted replay duplicates a message, and the real deliverer delivers it once.

The replay is cut between SendMessageBatch and DeleteMessageBatch (the worst moment), the operator replays again,
so the delivery queue holds the same envelope twice. Both copies go through the deliverer Lambda's handler
(idempotency on DynamoDB, per uuid + kind) in separate invocations; the local Kochava sink must see one POST.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from functions.names import (
    ENV_DELIVERY_DLQ_URL,
    ENV_DELIVERY_QUEUE_URL,
    ENV_IDEMPOTENCY_TABLE,
    ENV_KOCHAVA_APP_ID_ANDROID,
    ENV_KOCHAVA_APP_ID_IOS,
    ENV_KOCHAVA_IDENTITYLINK_URL,
    ENV_KOCHAVA_URL,
    IDEMPOTENCY_TABLE,
)
from infra.resources import ResourceNames
from tests.integration.dlq.helpers import REGION, STAGE, Queues, counts, put_delivery_dead, run_tool
from tools.dlq.sqs import DlqClient
from tools.local.aws import create_table

deliverer = pytest.importorskip("functions.deliverer.handler")
kochava_http = pytest.importorskip("functions.adapters.kochava_http")
sink_module = pytest.importorskip("tools.local.kochava_sink")
pollers = pytest.importorskip("tools.local.pollers")


def create_idempotency_table() -> str:
    return create_table(boto3.client("dynamodb", region_name=REGION), ResourceNames(STAGE), IDEMPOTENCY_TABLE)


def receive_one(q: Queues) -> dict[str, Any] | None:
    got = q.sqs.receive_message(
        QueueUrl=q.delivery,
        MaxNumberOfMessages=1,
        VisibilityTimeout=60,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    ).get("Messages", [])
    return got[0] if got else None


def test_the_duplicate_of_an_interrupted_replay_is_delivered_once(
    queues: Queues, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = create_idempotency_table()
    put_delivery_dead(queues, "dup-1", "retries_exhausted", kind="event")

    # 1. Replay, interrupted after the send and before the delete: the envelope is now in both queues.
    with monkeypatch.context() as patch:

        def ctrl_c(self: DlqClient, url: str, messages: Any) -> Any:
            raise KeyboardInterrupt

        patch.setattr(DlqClient, "delete_batch", ctrl_c)
        assert run_tool("replay", "--reason", "retries_exhausted").code == 130
    assert counts(queues.sqs, queues.delivery) == (1, 0)
    assert counts(queues.sqs, queues.delivery_dlq) == (1, 0)

    # 2. The operator replays again: a duplicate on the delivery queue, the DLQ empty.
    assert run_tool("replay", "--reason", "retries_exhausted").code == 0
    assert counts(queues.sqs, queues.delivery) == (2, 0)
    assert counts(queues.sqs, queues.delivery_dlq) == (0, 0)

    # 3. The real deliverer handler takes each copy in its own invocation.
    arn = queues.sqs.get_queue_attributes(QueueUrl=queues.delivery, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    with sink_module.KochavaSink() as sink:
        env = {
            ENV_KOCHAVA_URL: sink.track_url,
            ENV_KOCHAVA_IDENTITYLINK_URL: sink.identitylink_url,
            ENV_KOCHAVA_APP_ID_IOS: "koapp-guid",
            ENV_KOCHAVA_APP_ID_ANDROID: "koapp-guid-android",
            ENV_DELIVERY_DLQ_URL: queues.delivery_dlq,
            ENV_DELIVERY_QUEUE_URL: queues.delivery,
            ENV_IDEMPOTENCY_TABLE: table,
        }
        policy = kochava_http.HttpPolicy(connect_timeout_s=1, read_timeout_s=2, max_retries=0)
        runtime = deliverer.build_runtime(env, http_policy=policy)
        try:
            answers = []
            while (message := receive_one(queues)) is not None:
                event = {"Records": [pollers.lambda_record(message, arn, REGION)]}
                answers.append(deliverer.handle(runtime, event, pollers.LambdaContext("deliverer", 60, REGION)))
                queues.sqs.delete_message(QueueUrl=queues.delivery, ReceiptHandle=message["ReceiptHandle"])
        finally:
            runtime.close()
        posts = [r for r in sink.requests if r.method == "POST"]

    assert answers == [{"batchItemFailures": []}, {"batchItemFailures": []}]
    assert len(posts) == 1, [r.json for r in posts]
    assert posts[0].json["data"]["event_name"] == "Purchase"
    assert counts(queues.sqs, queues.delivery_dlq) == (0, 0)  # the duplicate was skipped, not dead-lettered
