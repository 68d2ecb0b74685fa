"""functions/adapters/sqs.py and profiles_dynamodb.py against moto: batching by count, retries of Failed entries,
sender faults and the size limit as SQS sees them; the profile store round trip. What needs no AWS (split by size,
calls that raise or forget entries, ``fit``, the dead-letter message, a store that stays throttled) is
``tests/unit/adapters/test_sqs.py``."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.adapters.profiles_dynamodb import DynamoDbProfileStore
from functions.adapters.sqs import SqsSender
from functions.messages import OutgoingMessage
from functions.names import PROFILE_TABLE, SQS_MAX_MESSAGE_BYTES
from infra.resources import ResourceNames
from tools.local.aws import create_table


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def _all(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
            "Messages", []
        )
        if not messages:
            return out
        out.extend(messages)
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


class Recorder:
    def __init__(self, real: Any, fail_first: int = 0) -> None:
        self.real, self.fail_first, self.calls = real, fail_first, []  # type: ignore[var-annotated]

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        if self.fail_first > 0:
            self.fail_first -= 1
            return {"Successful": [], "Failed": [{"Id": e["Id"], "Code": "ServiceUnavailable"} for e in Entries]}
        return dict(self.real.send_message_batch(QueueUrl=QueueUrl, Entries=Entries))


def test_batches_of_ten_with_unique_valid_ids_and_typed_attributes(aws: Any) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    recorder = Recorder(sqs)
    messages = [OutgoingMessage(f"body-{i}", {"uuid": f"u{i}", "received_at_ms": i, "empty": ""}) for i in range(23)]
    SqsSender(recorder).send(url, messages)
    assert [len(c) for c in recorder.calls] == [10, 10, 3]
    for call in recorder.calls:
        ids = [e["Id"] for e in call]
        assert len(set(ids)) == len(ids)
        assert all(len(i) <= 80 and i.replace("_", "").replace("-", "").isalnum() for i in ids)
    received = _all(sqs, url)
    assert sorted(m["Body"] for m in received) == sorted(f"body-{i}" for i in range(23))
    attrs = received[0]["MessageAttributes"]
    assert attrs["received_at_ms"]["DataType"] == "Number"
    assert attrs["uuid"]["DataType"] == "String"
    assert "empty" not in attrs  # SQS rejects empty attribute values


def test_failed_entries_are_retried_until_accepted(aws: Any) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    recorder = Recorder(sqs, fail_first=2)
    sleeps: list[float] = []
    sender = SqsSender(recorder, sleep=sleeps.append)
    sender.send(url, [OutgoingMessage(f"b{i}") for i in range(5)])
    assert len(_all(sqs, url)) == 5
    assert sleeps == [0.05, 0.1]  # exponential backoff
    assert sender.retried_entries == 10


def test_sender_fault_entries_are_returned_as_refused_not_retried_until_redrive(aws: Any) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]

    class RefusesBad:
        calls = 0

        def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            RefusesBad.calls += 1
            bad = [e for e in Entries if e["MessageBody"].startswith("bad")]
            good = [e for e in Entries if e not in bad]
            response = dict(sqs.send_message_batch(QueueUrl=QueueUrl, Entries=good)) if good else {"Successful": []}
            response["Failed"] = [
                {"Id": e["Id"], "SenderFault": True, "Code": "InvalidMessageContents", "Message": "no"} for e in bad
            ]
            return response

    sender = SqsSender(RefusesBad(), sleep=lambda _s: None)
    refused = sender.send(url, [OutgoingMessage("good-0"), OutgoingMessage("bad-1"), OutgoingMessage("good-2")])
    assert RefusesBad.calls == 1  # a sender fault is never retried: it would fail the same way every time
    assert [(r.index, r.message.body, r.code, r.too_large) for r in refused] == [
        (1, "bad-1", "InvalidMessageContents", False)
    ]
    assert sorted(m["Body"] for m in _all(sqs, url)) == ["good-0", "good-2"]


def test_message_over_the_limit_with_its_attributes_is_refused_before_sending(aws: Any) -> None:
    # SQS counts attributes towards the 1 MiB (moto does not): the body alone fits, body + attributes does not.
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="q", Attributes={"MaximumMessageSize": str(SQS_MAX_MESSAGE_BYTES)})["QueueUrl"]
    recorder = Recorder(sqs)
    too_big = OutgoingMessage("x" * (SQS_MAX_MESSAGE_BYTES - 10), {"uuid": "u-1"})
    just_fits = OutgoingMessage("y" * (SQS_MAX_MESSAGE_BYTES - len("uuid") - len("String") - 3), {"uuid": "u-2"})
    assert just_fits.size() == SQS_MAX_MESSAGE_BYTES
    refused = SqsSender(recorder, sleep=lambda _s: None).send(url, [too_big, just_fits, OutgoingMessage("small")])
    assert [(r.index, r.code, r.too_large) for r in refused] == [(0, "MessageTooLong", True)]
    assert str(SQS_MAX_MESSAGE_BYTES) in refused[0].error
    assert all("u-1" not in str(call) for call in recorder.calls)  # never sent: SQS would fail the whole call
    uuids = [m.get("MessageAttributes", {}).get("uuid", {}).get("StringValue") for m in _all(sqs, url)]
    assert sorted(map(str, uuids)) == ["None", "u-2"]


def test_profile_store_round_trip_and_dedup(aws: Any) -> None:
    dynamodb = boto3.client("dynamodb")
    table = create_table(dynamodb, ResourceNames("test"), PROFILE_TABLE)
    store = DynamoDbProfileStore(dynamodb, table)
    profiles = {
        f"k{i}": {"ip": f"10.0.0.{i}", "limit_ad_tracking": i % 2 == 0, "att_time": 1700000000 + i} for i in range(130)
    }
    store.put_many(profiles, expires_at=1_800_000_000)
    got = store.get_many([*profiles, "k1", "k1", "missing"])
    assert got == profiles
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": "k3"}})["Item"]
    assert item["expires_at"] == {"N": "1800000000"}
