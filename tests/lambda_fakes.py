"""Test doubles for what the Lambda runtime hands a handler, shared by the handler tests.

``FakeContext`` answers a fixed remaining time (tests choose it, so deadline logic is deterministic);
``tools.local.pollers.LambdaContext`` is the real-clock one the local stack uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from functions.names import ATTR_RECEIVED_AT_MS, ATTR_REQUEST_ID, ATTR_ROUTE


@dataclass
class FakeContext:
    """What Powertools reads from a Lambda context; ``remaining_ms`` is fixed for the call."""

    remaining_ms: int = 30_000
    function_name: str = "kochava-test-function"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "lambda-req-1"
    invoked_function_arn: str = field(init=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:eu-west-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Clock:
    """A controllable clock: handlers call it, tests move ``now``."""

    now: float

    def __call__(self) -> float:
        return self.now


def ingest_record(body: Any, n: int, now: float, route: str = "native", **attributes: str) -> dict[str, Any]:
    """The ``n``-th SQS event record as Lambda delivers it from the ingest queue, received at ``now`` (the API's
    request id and route attributes set; ``attributes`` are extra Number attributes). Shared by the enricher's
    handler tests on the fakes and on moto."""
    text = body if isinstance(body, str) else json.dumps(body)
    attrs = {
        ATTR_REQUEST_ID: {"stringValue": "api-req-1", "dataType": "String"},
        ATTR_RECEIVED_AT_MS: {"stringValue": str(int(now * 1000)), "dataType": "Number"},
        ATTR_ROUTE: {"stringValue": route, "dataType": "String"},
    }
    for name, value in attributes.items():
        attrs[name] = {"stringValue": value, "dataType": "Number"}
    return {
        "messageId": f"msg-{n}",
        "receiptHandle": f"rh-{n}",
        "body": text,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": attrs,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:kochava-test-ingest",
        "awsRegion": "eu-west-1",
    }
