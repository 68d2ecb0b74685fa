"""Enricher failures that are not the event's fault (issue 16): a failed device-profile read does not fail the
message (the events go on without their profiles, counted), and a record SQS would not take is retried later with
a growing backoff instead of every visibility timeout towards the DLQ."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.enricher import handler
from functions.enricher import metrics as m
from tests.integration.enricher.support import Stack
from tests.samples.enricher import IDFA, IDFV, IP, native_event


def _throttled(**_: Any) -> dict[str, Any]:
    error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"}}
    raise ClientError(error, "BatchGetItem")


def _emf(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = blob[metric["Name"]]
            totals[metric["Name"]] = totals.get(metric["Name"], 0.0) + sum(
                value if isinstance(value, list) else [value]
            )
    return totals


def _install() -> dict[str, Any]:
    return native_event(
        "install", device={"platform": "ios", "id": IDFV, "advertising_id": IDFA, "ip": IP, "model": "iPhone14,2"}
    )


def _purchase() -> dict[str, Any]:
    return native_event("track", event="Purchase", properties={"price": 1.0}, device={"platform": "ios", "id": IDFV})


def test_a_failed_profile_read_enriches_without_the_profile_and_keeps_the_stored_one(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.invoke(stack.record(_install()))  # stores the device's profile (IDFA, IP, model)
    stack.deliveries()
    stored = boto3.client("dynamodb", region_name="eu-west-1").scan(TableName=stack.table)["Items"]
    capsys.readouterr()

    store = handler.get_runtime().core.profile_store
    assert store is not None
    monkeypatch.setattr(store._client, "batch_get_item", _throttled)  # DynamoDB throttles every read
    purchase = _purchase()
    response = stack.invoke(stack.record(purchase))

    assert response == {"batchItemFailures": []}, "the message is not failed"
    [delivery] = stack.deliveries()
    assert delivery["uuid"] == purchase["uuid"]
    assert delivery["payload"]["data"]["device_ids"] == {"idfv": IDFV}  # its own fields only, no profile fill
    assert "origination_ip" not in delivery["payload"]["data"]
    assert _emf(capsys).get(m.PROFILE_READ_FAILED) == 1
    assert any(line.get("message", "").startswith("profile read failed") for line in stack.log_lines())
    after = boto3.client("dynamodb", region_name="eu-west-1").scan(TableName=stack.table)["Items"]
    assert after == stored, "a profile that could not be read is not overwritten"


def test_a_record_sqs_will_not_take_is_retried_with_a_growing_backoff(stack: Stack) -> None:
    backoffs: list[tuple[str, int]] = []
    runtime = handler.get_runtime()
    runtime.back_off = _RecordingBackOff(backoffs)
    runtime.core.sender._client = _RefusingSqs()
    runtime.core.sender._sleep = lambda _s: None
    good_for_nothing = [stack.record(native_event()) for _ in range(2)]
    good_for_nothing[1]["attributes"]["ApproximateReceiveCount"] = "3"

    with pytest.raises(Exception, match="All records failed"):  # every record failed: the invocation fails
        stack.invoke(*good_for_nothing)

    assert backoffs == [(good_for_nothing[0]["receiptHandle"], 60), (good_for_nothing[1]["receiptHandle"], 1500)]


class _RecordingBackOff:
    """The RecordBackOff port, recording what the batch template asks."""

    def __init__(self, calls: list[tuple[str, int]]) -> None:
        self.calls = calls

    def back_off(self, receipt_handle: str, visibility_timeout_s: int) -> bool:
        self.calls.append((receipt_handle, visibility_timeout_s))
        return True


class _RefusingSqs:
    """SQS down: every SendMessageBatch raises after the SDK's own retries."""

    def send_message_batch(self, **_: Any) -> dict[str, Any]:
        raise ConnectionError("injected: SQS unreachable")
