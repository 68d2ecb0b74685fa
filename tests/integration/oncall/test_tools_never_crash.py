"""The on-call tools never crash on what the pipeline can store (issue 23), property-tested on moto.

Invariant: whatever message body and attributes a DLQ holds (any body the enricher can dead-letter: not JSON,
nested 10,000 deep, up to SQS's 256 KiB, bytes that are not UTF-8 as the API decodes them) and whatever an
idempotency record holds (DynamoDB numbers come back as ``Decimal``), ``tools.dlq list`` / ``show``,
``tools.privacy erase --dry-run`` and ``tools.trace`` answer with an exit code and text: never a traceback.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from functions.names import (
    ATTR_ERROR,
    ATTR_EVENT_NAME,
    ATTR_FAILED_AT_MS,
    ATTR_REASON,
    ATTR_STAGE,
    ATTR_UUID,
    IDEMPOTENCY_TABLE,
    IDEMPOTENCY_TTL_S,
    PROFILE_TABLE,
)
from infra.resources import ResourceNames
from tests.fakes import FakeKochava
from tests.integration.dlq.helpers import REGION, STAGE, Queues, create_queues
from tests.lambda_fakes import FakeContext
from tools.dlq.cli import main as dlq_main
from tools.local.aws import create_table
from tools.privacy.cli import main as privacy_main
from tools.trace.cli import main as trace_main

DEVICE = "A1B2C3D4-1111-2222-3333-444455556666"
SQS_MAX_BYTES = 256 * 1024
# No shrinking: every example runs three tools on moto (a failure prints its example as found).
FAST = (Phase.explicit, Phase.reuse, Phase.generate)
# trace reads the Lambdas' log lines from a file (as with the local stack), not Logs Insights (polled each second).
LAMBDA_LOG = Path(tempfile.gettempdir()) / f"never-crash-{os.getpid()}.log"
DEEP = "[" * 10_000 + "]" * 10_000  # the enricher dead-letters it as invalid_json (issue 23: RecursionError)
# What SQS accepts in a body (#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF).
SQS_TEXT = st.characters(
    codec="utf-8", exclude_categories=("Cs",), exclude_characters="".join(map(chr, [*range(9), 11, 12, *range(14, 32)]))
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(SQS_TEXT, max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(SQS_TEXT, max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + f'"{DEVICE}"' + "}" * depth


bodies = st.one_of(
    json_values.map(json.dumps),
    st.text(SQS_TEXT, min_size=1, max_size=200),
    st.builds(_nested, st.integers(1, 10_000), st.sampled_from(["list", "dict"])),
    st.integers(1, SQS_MAX_BYTES - 1024).map(lambda n: '{"uuid":"u","big":"' + "x" * n + '"}'),
    st.binary(min_size=1, max_size=64).map(lambda b: b.decode("utf-8", errors="replace")),  # bytes, as decoded
    st.just('{"s":"\\ud800 lone surrogate", "device": {"id": "' + DEVICE + '"}}'),
    st.just('{"batch":' + "[" * 5000 + "]" * 5000 + "}"),
)
attribute_text = st.one_of(
    st.text(SQS_TEXT, min_size=1, max_size=40), st.sampled_from(["1e400", "-1", "NaN", "9" * 40])
)
numbers = st.one_of(st.integers(-(10**20), 10**20), st.sampled_from(["1.5", "1e30", "-0", "0"])).map(str)


@pytest.fixture(scope="module")
def stack() -> Iterator[Queues]:
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        with mock_aws():
            dynamodb = boto3.client("dynamodb", region_name=REGION)
            for spec in (IDEMPOTENCY_TABLE, PROFILE_TABLE):
                create_table(dynamodb, ResourceNames(STAGE), spec)
            logs = boto3.client("logs", region_name=REGION)
            for function in ("enricher", "deliverer"):
                logs.create_log_group(logGroupName=f"/aws/lambda/{ResourceNames(STAGE).function(function)}")
            LAMBDA_LOG.write_text("", encoding="utf-8")
            _deliver(dynamodb, ResourceNames(STAGE).table(IDEMPOTENCY_TABLE), "u-fuzz")
            yield create_queues(boto3.client("sqs", region_name=REGION))


def _deliver(dynamodb: Any, table: str, uuid: str) -> None:
    """What the deliverer writes on a delivery: its real idempotent sender (Kochava answering success)."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from functions.deliverer.idempotency import IdempotentSender
    from functions.pipeline.envelope import Envelope

    layer = DynamoDBPersistenceLayer(table_name=table, key_attr=IDEMPOTENCY_TABLE.partition_key, boto3_client=dynamodb)
    sender = IdempotentSender(FakeKochava(), layer, expires_after_s=IDEMPOTENCY_TTL_S)
    sender.register_lambda_context(FakeContext())
    payload = {"kochava_app_id": "ko-app"}
    env = Envelope(uuid=uuid, kind="event", event_name="Purchase", payload=payload, adservices_generated_at=None)
    assert sender.send_once(env, payload, deadline=time.monotonic() + 10).status == "delivered"


def _run(main: Any, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--stage", STAGE, "--region", REGION, "--wait-time-seconds", "0", *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _put(q: Queues, url: str, body: str, attributes: dict[str, str]) -> str:
    typed = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
    return str(q.sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=typed)["MessageId"])


def _fits(body: str, attributes: dict[str, str]) -> bool:
    size = len(body.encode()) + sum(len(k.encode()) + len(v.encode()) + len("String") for k, v in attributes.items())
    return size <= SQS_MAX_BYTES


@settings(max_examples=5, deadline=None, phases=FAST, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(body=DEEP, reason="invalid_json", failed_at="1e400", uuid="u-1", delivery=False)
@example(body=json.dumps({"a": [DEVICE]}), reason="invalid_event", failed_at="1", uuid="u-4", delivery=False)
@example(body='{"a":' * 10_000 + "1" + "}" * 10_000, reason="x", failed_at="NaN", uuid="u-2", delivery=True)
@example(body='{"big":"' + "x" * 250_000 + '"}', reason="invalid_event", failed_at="-1", uuid="u-3", delivery=False)
@given(
    body=bodies,
    reason=attribute_text,
    failed_at=attribute_text,
    uuid=attribute_text,
    delivery=st.booleans(),
)
def test_dlq_and_privacy_answer_whatever_a_dlq_holds(
    stack: Queues, body: str, reason: str, failed_at: str, uuid: str, delivery: bool
) -> None:
    attributes = {ATTR_STAGE: "enricher", ATTR_REASON: reason, ATTR_FAILED_AT_MS: failed_at, ATTR_UUID: uuid}
    attributes[ATTR_ERROR] = f"error with {DEVICE}"
    attributes[ATTR_EVENT_NAME] = reason
    if not _fits(body, attributes):
        return
    message_id = _put(stack, stack.delivery_dlq if delivery else stack.ingest_dlq, body, attributes)
    for argv in (["list"], ["show", message_id]):
        code, out, err = _run(dlq_main, *argv)
        assert code in (0, 1), (argv, code, err)
    if argv[-1] == message_id:
        assert DEVICE not in out, "a device id in a body is masked, however the body is nested"
    code, _, err = _run(
        privacy_main, "erase", "--platform", "ios", "--device-id", DEVICE, "--app-id", "ko-app", "--dry-run"
    )
    assert code in (0, 1), err
    code, _, err = _run(trace_main, "--lambda-log", str(LAMBDA_LOG), "--app", "ko-app", uuid)
    assert code in (0, 1), err


@settings(max_examples=8, deadline=None, phases=FAST, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    expiration=numbers,
    in_progress=numbers,
    status=st.sampled_from(["INPROGRESS", "COMPLETED", "EXPIRED", "odd"]),
    data=st.one_of(json_values.map(json.dumps), st.text(SQS_TEXT, max_size=30)),
)
def test_trace_answers_whatever_an_idempotency_record_holds(
    stack: Queues, expiration: str, in_progress: str, status: str, data: str
) -> None:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    table = ResourceNames(STAGE).table(IDEMPOTENCY_TABLE)
    [item] = dynamodb.scan(TableName=table)["Items"]  # the record the real sender wrote (fixture)
    item |= {
        "expiration": {"N": expiration},
        "in_progress_expiration": {"N": in_progress},
        "status": {"S": status},
        "data": {"S": data},
    }
    dynamodb.put_item(TableName=table, Item=item)
    for argv in (["--app", "ko-app", "u-fuzz"], ["--json", "--app", "ko-app", "u-fuzz"]):
        argv = ["--lambda-log", str(LAMBDA_LOG), *argv]
        code, out, err = _run(trace_main, *argv)
        assert code in (0, 1), (code, err)
        assert "u-fuzz" in out


def test_a_closed_pipe_ends_a_tool_quietly() -> None:
    """``python -m tools.X ... | head``: the tools' entry points run ``main`` through ``tools.robust.run``."""
    script = (
        "import sys\n"
        "from tools.robust import run\n"
        "def main():\n"
        "    for i in range(200_000):\n"
        "        print('line', i)\n"
        "    return 0\n"
        "sys.exit(run(main))\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert writer.stdout is not None
    writer.stdout.readline()
    writer.stdout.close()  # the reader goes away, as `head -1` does
    _, err = writer.communicate(timeout=60)
    assert writer.returncode == 141
    assert b"Traceback" not in err and b"BrokenPipeError" not in err
    for tool in ("dlq", "trace", "privacy"):
        with open(f"tools/{tool}/__main__.py", encoding="utf-8") as entry:
            assert "run(main)" in entry.read()
