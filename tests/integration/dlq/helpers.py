"""Helpers for the DLQ tool's tests (sample bodies: ``tests/samples/dlq.py``): the project's queues (stage
``local``) on moto, DLQ messages seeded the way the enricher / deliverer / SQS redrive write them,
queues read back, and the tool run in-process."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from typing import Any

from functions.names import (
    ATTR_ERROR,
    ATTR_EVENT_NAME,
    ATTR_FAILED_AT_MS,
    ATTR_FIELD,
    ATTR_KIND,
    ATTR_REASON,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_RESPONSE_BODY,
    ATTR_ROUTE,
    ATTR_STAGE,
    ATTR_STATUS,
    ATTR_UUID,
    DELIVERY_QUEUE,
    INGEST_QUEUE,
)
from infra.resources import ResourceNames
from tests.samples.dlq import IDFA, IP, envelope, native_event, typed
from tools.dlq.cli import main
from tools.local.aws import create_queue

REGION = "us-east-1"
STAGE = "local"
NOW_MS = int(time.time() * 1000)  # "now" for ages, close to the SQS timestamps moto writes
HOUR_MS = 3_600_000


@dataclass
class Queues:
    sqs: Any
    ingest: str
    ingest_dlq: str
    delivery: str
    delivery_dlq: str


def create_queues(sqs: Any, stage: str = STAGE) -> Queues:
    """The ingest and delivery queues with their DLQs, as ``tools/local/aws.py`` creates them for the local stack
    (the deployed visibility timeouts: no poller here)."""
    names = ResourceNames(stage)
    ingest, delivery = (
        create_queue(sqs, names, spec, visibility_timeout_s=spec.visibility_timeout_s)
        for spec in (INGEST_QUEUE, DELIVERY_QUEUE)
    )
    return Queues(sqs, ingest.queue, ingest.dlq, delivery.queue, delivery.dlq)


def put(sqs: Any, url: str, body: Any, **attrs: Any) -> str:
    """Send one message (a dict body is JSON-encoded); returns its MessageId."""
    text = body if isinstance(body, str) else json.dumps(body)
    kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": text}
    if attrs:
        kwargs["MessageAttributes"] = typed(attrs)
    return str(sqs.send_message(**kwargs)["MessageId"])


def put_ingest_dead(
    q: Queues, uuid: str, reason: str | None, *, name: str = "Purchase", age_h: float = 1.0, route: str = "native"
) -> str:
    """An ingest DLQ message as the enricher writes it (reason None: as SQS redrive leaves it)."""
    dlq_attrs: dict[str, Any] = {}
    if reason is not None:
        dlq_attrs = {
            ATTR_STAGE: "enricher",
            ATTR_REASON: reason,
            ATTR_FIELD: "device.platform" if reason == "invalid_event" else None,
            ATTR_ERROR: f"{reason}: device {IDFA} from {IP}",
            ATTR_UUID: uuid,
            ATTR_EVENT_NAME: name,
            ATTR_FAILED_AT_MS: int(NOW_MS - age_h * HOUR_MS),
        }
    return put(
        q.sqs,
        q.ingest_dlq,
        native_event(uuid, name),
        **dlq_attrs,
        **{ATTR_ROUTE: route, ATTR_REQUEST_ID: f"req-{uuid}", ATTR_RECEIVED_AT_MS: int(NOW_MS - age_h * HOUR_MS - 5)},
    )


def put_delivery_dead(
    q: Queues, uuid: str, reason: str | None, *, name: str = "Purchase", age_h: float = 1.0, kind: str = "event"
) -> str:
    """A delivery DLQ message as the deliverer writes it."""
    attrs: dict[str, Any] = {ATTR_UUID: uuid, ATTR_KIND: kind, ATTR_EVENT_NAME: name}
    if reason is not None:
        attrs |= {
            ATTR_STAGE: "deliverer",
            ATTR_REASON: reason,
            ATTR_STATUS: 400 if reason == "kochava_rejected" else None,
            ATTR_RESPONSE_BODY: '{"success":"0","error":"bad"}' if reason == "kochava_rejected" else None,
            ATTR_ERROR: reason,
            ATTR_FAILED_AT_MS: int(NOW_MS - age_h * HOUR_MS),
        }
    return put(q.sqs, q.delivery_dlq, envelope(uuid, name, kind), **attrs)


@dataclass(frozen=True)
class Snapshot:
    """What a queue holds: (MessageId, body, attributes) of every message, and the visible / hidden counts."""

    messages: frozenset[tuple[str, str, str]]
    visible: int
    hidden: int


def counts(sqs: Any, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def snapshot(sqs: Any, url: str) -> Snapshot:
    """Read every message (then make them visible again) without the tool under test."""
    visible, hidden = counts(sqs, url)
    seen: dict[str, tuple[str, str, str]] = {}
    handles = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            break
        for m in got:
            attrs = json.dumps(m.get("MessageAttributes", {}), sort_keys=True)
            seen[m["MessageId"]] = (m["MessageId"], m["Body"], attrs)
            handles.append(m["ReceiptHandle"])
    for i in range(0, len(handles), 10):
        entries = [
            {"Id": str(j), "ReceiptHandle": h, "VisibilityTimeout": 0} for j, h in enumerate(handles[i : i + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    return Snapshot(frozenset(seen.values()), visible, hidden)


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Consume every message of a queue (bodies parsed, attributes flattened to values)."""
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return out
        for m in got:
            attrs = {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}
            out.append({"id": m["MessageId"], "body": json.loads(m["Body"]), "attributes": attrs})
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class FakeTty(io.StringIO):
    """stdin / stderr standing in for a terminal."""

    def isatty(self) -> bool:
        return True


def run_tool(*argv: str, stdin: io.StringIO | None = None, tty: bool = False) -> Run:
    """``python -m tools.dlq --stage local --region us-east-1 ARGV`` in-process (on moto), output captured."""
    out = io.StringIO()
    err: io.StringIO = FakeTty() if tty else io.StringIO()
    code = main(
        ["--stage", STAGE, "--region", REGION, "--wait-time-seconds", "0", *argv],
        stdout=out,
        stderr=err,
        stdin=stdin or io.StringIO(),
        now_ms=NOW_MS,
    )
    return Run(code, out.getvalue(), err.getvalue())
