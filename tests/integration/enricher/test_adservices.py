"""AdServices tokens in the enricher (issue 5), end to end: a real local HTTP server stands in for Apple
(tools/local/apple_stub.py), moto for SQS / DynamoDB, and the handler's clock is controlled by the test.

One path stays here: the Apple client over real HTTP, and the delayed re-queue on SQS. What the enricher decides
for a token (the 24-hour window, Apple's answers, back-off, developer mode, the Lambda's time left, the logs and
metrics) runs through the same entry point on the in-memory ports: ``tests/unit/enricher/test_lambda_adservices.py``
(moved from here); the Apple client alone is ``tests/unit/adapters/test_apple.py``.

A re-queued install is fed back to the handler from what the enricher really sent to the ingest queue
(recorded on the way to moto), so the 5 s ``DelaySeconds`` does not make the tests wait."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from functions.enricher import handler
from functions.names import (
    ATTR_ADSERVICES_ATTEMPT,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_ROUTE,
    ENV_ADSERVICES_RESOLVE,
    ENV_ADSERVICES_URL,
)
from functions.pipeline.adservices import ATTRIBUTION_KEY, TOKEN_KEY
from tests.integration.enricher.support import Stack
from tests.samples.enricher import TOKEN, native_event
from tools.local.apple_stub import AppleStub, attribution_payload


class RecordingSqs:
    """Passes every SendMessageBatch to the real (moto) client and keeps the entries sent to each queue."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.sent: dict[str, list[dict[str, Any]]] = {}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.sent.setdefault(QueueUrl, []).extend(Entries)
        return dict(self.real.send_message_batch(QueueUrl=QueueUrl, Entries=Entries))


class AdStack:
    def __init__(self, stack: Stack, apple: AppleStub, recorder: RecordingSqs) -> None:
        self.stack, self.apple, self.recorder = stack, apple, recorder

    def requeued(self) -> list[dict[str, Any]]:
        """Entries the enricher sent back to the ingest queue since the last call (then forgotten)."""
        return self.recorder.sent.pop(self.stack.urls["ingest"], [])

    def as_record(self, entry: dict[str, Any]) -> dict[str, Any]:
        """An ingest-queue entry the enricher sent, as Lambda would deliver it once its delay has passed."""
        attrs = {name: value["StringValue"] for name, value in entry["MessageAttributes"].items()}
        record = self.stack.record(entry["MessageBody"], route=attrs[ATTR_ROUTE])
        record["messageAttributes"] = {
            name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
            for name, value in entry["MessageAttributes"].items()
        }
        return record

    def install(self, token: str = TOKEN, *, age_s: float = 60.0, **fields: Any) -> dict[str, Any]:
        return native_event(
            "install", adservices={"token": token, "generated_at": self.stack.clock.now - age_s, **fields}
        )


@pytest.fixture
def apple() -> Iterator[AppleStub]:
    with AppleStub() as stub:
        yield stub


@pytest.fixture
def ads(make_stack: Callable[..., Stack], apple: AppleStub) -> AdStack:
    stack = make_stack(**{ENV_ADSERVICES_RESOLVE: "true", ENV_ADSERVICES_URL: apple.api_url})
    recorder = RecordingSqs(stack.sqs)
    handler.get_runtime().core.sender._client = recorder
    return AdStack(stack, apple, recorder)


def _data(delivery: dict[str, Any]) -> dict[str, Any]:
    return dict(delivery["payload"]["data"])


def test_404_404_200_attached_after_requeues_and_the_rest_of_the_batch_is_not_delayed(ads: AdStack) -> None:
    ads.apple.script(TOKEN, [404, 404, attribution_payload(campaign_id=7)])
    install = ads.install()
    others = [native_event(), native_event("install"), native_event(event="Purchase")]
    ads.stack.invoke(ads.stack.record({"batch": [others[0], install, *others[1:]]}))

    assert sorted(d["uuid"] for d in ads.stack.deliveries()) == sorted(e["uuid"] for e in others)
    for attempt in (1, 2):
        [entry] = ads.requeued()
        assert entry["DelaySeconds"] == 5
        attrs = {k: v["StringValue"] for k, v in entry["MessageAttributes"].items()}
        assert attrs[ATTR_ADSERVICES_ATTEMPT] == str(attempt)
        assert attrs[ATTR_REQUEST_ID] == "api-req-1" and attrs[ATTR_ROUTE] == "native"
        assert ATTR_RECEIVED_AT_MS in attrs
        assert json.loads(entry["MessageBody"]) == install  # the raw event, alone
        assert ads.stack.deliveries() == []
        ads.stack.clock.now += 5
        ads.stack.invoke(ads.as_record(entry))

    [delivery] = ads.stack.deliveries()
    assert delivery["uuid"] == install["uuid"]
    assert _data(delivery)[ATTRIBUTION_KEY]["campaignId"] == 7
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert ads.requeued() == []
    assert ads.apple.calls_for(TOKEN) == 3
    first = ads.apple.requests[0]  # the raw token, as text
    assert first.text == TOKEN and first.headers["content-type"].startswith("text/plain")
    # The delayed message really is on the ingest queue too (moto keeps it invisible for its delay).
    assert ads.stack.sqs.get_queue_attributes(
        QueueUrl=ads.stack.urls["ingest"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]["ApproximateNumberOfMessagesDelayed"] in ("1", "2")
