"""The SQS ports' fakes and their adapters (``functions.adapters.sqs`` with real boto3 on moto) take and refuse the
same messages: the message sender (enricher: delivery queue, ingest DLQ, re-queue; deliverer: its DLQ through the
delivery queue), the delivery queue's dead letters and back-offs, and the record back-off. The cores' tests run on
the fakes (``tests/unit``); these say the fakes answer as the adapters do."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from functions.adapters.sqs import SqsBackOff, SqsDeliveryQueue, SqsSender
from functions.messages import DeliveryRecord, OutgoingMessage, SendError
from functions.names import SQS_MAX_MESSAGE_BYTES
from tests.fakes import FakeDeliveryQueue, FakeRecordBackOff, FakeSender
from tests.integration.contracts.conftest import REGION

JUST_FITS = OutgoingMessage("y" * (SQS_MAX_MESSAGE_BYTES - len("uuid") - len("String") - 3), {"uuid": "u-2"})
TOO_BIG = OutgoingMessage("x" * (SQS_MAX_MESSAGE_BYTES - 10), {"uuid": "u-1"})
TYPED = OutgoingMessage("typed", {"uuid": "u-3", "received_at_ms": 1_700_000_000_123, "empty": ""})


def queue(name: str) -> tuple[Any, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=name, Attributes={"MaximumMessageSize": str(SQS_MAX_MESSAGE_BYTES)})["QueueUrl"]
    return sqs, url


def received(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message of the queue: (body, {attribute: (type, text)})."""
    out = []
    while got := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=300
    ).get("Messages", []):
        for m in got:
            attrs = {k: (v["DataType"], v["StringValue"]) for k, v in m.get("MessageAttributes", {}).items()}
            out.append({"body": m["Body"], "attributes": attrs})
    return out


def by_body(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return sorted((m["body"][:20], m["attributes"]) for m in messages)


def as_sent(messages: list[OutgoingMessage]) -> list[dict[str, Any]]:
    """What SQS keeps of each message the fake accepted: its SendMessageBatch entry's body and typed attributes."""
    out = []
    for m in messages:
        entry = m.entry("m")
        attrs = {k: (v["DataType"], v["StringValue"]) for k, v in entry.get("MessageAttributes", {}).items()}
        out.append({"body": entry["MessageBody"], "attributes": attrs})
    return out


@pytest.mark.usefixtures("aws")
def test_both_senders_take_and_refuse_the_same_messages() -> None:
    messages = [TOO_BIG, JUST_FITS, TYPED]
    fake = FakeSender()
    fake_refused = fake.send("q", messages)
    sqs, url = queue("q")
    real_refused = SqsSender(sqs, sleep=lambda _s: None).send(url, messages)

    shape = [(r.index, r.message, r.code, r.error) for r in real_refused]
    assert [(r.index, r.message, r.code, r.error) for r in fake_refused] == shape
    assert shape[0][:3] == (0, TOO_BIG, "MessageTooLong")
    assert by_body(as_sent(fake.messages("q"))) == by_body(received(sqs, url))


@pytest.mark.usefixtures("aws")
def test_both_delivery_queues_keep_dead_letters_and_refuse_one_over_the_limit() -> None:
    fake = FakeDeliveryQueue()
    sqs, dlq = queue("dlq")
    real = SqsDeliveryQueue(lambda: sqs, dlq)
    for port in (fake, real):
        port.dead_letter([JUST_FITS, TYPED])
        with pytest.raises(SendError, match="MessageTooLong"):
            port.dead_letter([TOO_BIG])
    assert by_body(as_sent(fake.dead_letters)) == by_body(received(sqs, dlq))


@pytest.mark.usefixtures("aws")
def test_both_back_offs_hide_received_records() -> None:
    sqs, url = queue("delivery")
    for i in range(12):
        sqs.send_message(QueueUrl=url, MessageBody=f"b{i}")
    handles: list[str] = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        handles.extend(m["ReceiptHandle"] for m in got)
    holds = [(DeliveryRecord(f"m{i}", handle, "{}", 1), 600) for i, handle in enumerate(handles)]

    assert FakeDeliveryQueue().back_off(holds) == SqsDeliveryQueue(sqs, "dlq", url).back_off(holds) == [True] * 12
    fake_record, real_record = FakeRecordBackOff(), SqsBackOff(sqs, url)
    assert fake_record.back_off(handles[0], 60) is real_record.back_off(handles[0], 60) is True
    assert fake_record.back_offs == [(handles[0], 60)]
