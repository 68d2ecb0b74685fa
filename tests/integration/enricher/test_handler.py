"""The enricher Lambda end to end on moto (real boto3 to SQS and DynamoDB): the delivery message and its attributes
as SQS hands them to the deliverer, the SQS sender's retries through the handler, and the profile table written by
one invocation and read by the next.

What the enricher decides (partial batches, DLQ reasons, filtering, hand-offs refused, logs free of raw
identifiers, hard input) runs through the same entry point on the in-memory ports:
``tests/unit/enricher/test_lambda_handler.py`` (moved from here)."""

from __future__ import annotations

from typing import Any

from functions.enricher import handler
from functions.names import (
    ATTR_EVENT_NAME,
    ATTR_KIND,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_UUID,
)
from tests.integration.enricher.support import Stack
from tests.samples.enricher import IDFA, IDFV, IOS_APP, IP, NOW, UA, native_event


def test_delivery_message_carries_the_envelope_and_its_attributes(stack: Stack) -> None:
    event = native_event("track", event="Purchase", properties={"price": 9.99, "currency": "EUR"})
    stack.invoke(stack.record(event))
    [delivery] = stack.deliveries()
    assert delivery["v"] == 1
    assert delivery["kind"] == "event"
    assert delivery["payload"]["kochava_app_id"] == IOS_APP
    assert delivery["payload"]["data"]["event_name"] == "Purchase"
    attrs = delivery["_attributes"]
    assert attrs[ATTR_UUID] == event["uuid"]
    assert attrs[ATTR_KIND] == "event"
    assert attrs[ATTR_EVENT_NAME] == "Purchase"
    assert attrs[ATTR_REQUEST_ID] == "api-req-1"
    assert int(attrs[ATTR_RECEIVED_AT_MS]) == int(NOW * 1000)


class FlakySqs:
    """Wraps the real boto3 client: the first ``failures`` SendMessageBatch calls report their last entry Failed
    (the other entries really are sent), as SQS does under partial failure."""

    def __init__(self, real: Any, failures: int, *, raise_instead: bool = False) -> None:
        self.real = real
        self.failures = failures
        self.raise_instead = raise_instead
        self.calls: list[list[str]] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append([e["Id"] for e in Entries])
        if self.failures <= 0:
            return dict(self.real.send_message_batch(QueueUrl=QueueUrl, Entries=Entries))
        self.failures -= 1
        if self.raise_instead:
            raise ConnectionError("injected")
        *ok, failed = Entries
        response = dict(self.real.send_message_batch(QueueUrl=QueueUrl, Entries=ok)) if ok else {"Successful": []}
        response["Failed"] = [
            {"Id": failed["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"}
        ]
        return response


def _wrap_sqs(stack: Stack, flaky: FlakySqs) -> None:
    enricher = handler.get_runtime().core
    enricher.sender._client = flaky
    enricher.sender._sleep = lambda _s: None


def test_send_message_batch_partial_failure_is_retried_and_nothing_is_dropped(stack: Stack) -> None:
    flaky = FlakySqs(stack.sqs, failures=3)
    _wrap_sqs(stack, flaky)
    events = [native_event() for _ in range(25)]
    response = stack.invoke(stack.record({"batch": events}))
    assert response == {"batchItemFailures": []}
    assert sorted(d["uuid"] for d in stack.deliveries()) == sorted(e["uuid"] for e in events)
    assert len(flaky.calls) > 3  # 3 chunks + the retries of the failed entries
    for ids in flaky.calls:
        assert len(ids) <= 10 and len(set(ids)) == len(ids)


def _server_side_purchase() -> dict[str, Any]:
    return native_event(
        "track",
        event="Purchase",
        properties={"price": 4.99, "currency": "USD"},
        device={"platform": "ios", "id": IDFV},
    )


def test_server_side_event_with_only_platform_and_id_gets_ids_ip_and_ua_from_the_profile(stack: Stack) -> None:
    # The wiring of the profile path (DynamoDB written by one invocation, read by the next); the profile rules
    # themselves are tested on the fakes (tests/unit/enricher/test_core.py, tests/unit/profiles).
    install = native_event(
        "install",
        user_id="user-42",
        app={"version": "3.1.0"},
        device={
            "platform": "ios",
            "id": IDFV,
            "advertising_id": IDFA,
            "ip": IP,
            "user_agent": UA,
            "model": "iPhone14,2",
            "os_version": "17.1",
            "att": {"status": "authorized", "time": NOW - 3600, "duration": 4},
        },
    )
    stack.invoke(stack.record(install))
    stack.deliveries()

    stack.clock.now += 3600
    purchase = _server_side_purchase()
    stack.invoke(stack.record(purchase))
    [delivery] = stack.deliveries()
    data = delivery["payload"]["data"]
    assert data["device_ids"] == {"idfa": IDFA, "idfv": IDFV}
    assert data["origination_ip"] == IP
    assert data["device_ua"].startswith("Mozilla%2F5.0")
    assert data["device_ver"] == "iPhone14,2-iOS-17.1"
    assert data["app_version"] == "3.1.0"
    assert data["event_data"]["user_id"] == "user-42"
