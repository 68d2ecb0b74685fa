"""Benchmark 3: the deliverer against a slow Kochava (every answer after 200 ms).

The real entry point ``functions.deliverer.handler.lambda_handler`` runs in-process with its production
configuration (the default ``HttpPolicy``, ``DELIVERER_MAX_WORKERS`` as ``infra/config.py`` deploys it), SQS
and DynamoDB emulated by moto (``mock_aws``: the idempotency writes are real boto3 calls), and the local Kochava
sink (``tools.local.kochava_sink``) answering every POST after 200 ms and counting TCP connections. Payloads are
real: the sample mix mapped by the pipeline and wrapped in delivery envelopes.

Figures: a 10-record batch's wall time divided by one request's latency (the same POST, measured alone on a warm
connection), target at most 2 (the records go out concurrently, not one after the other); and TCP connections
opened for 100 payloads (10 batches from a cold container), target at most one per worker (the pool is reused
across records and invocations).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.common import Result, median, spread
from bench.workload import build_mix

NAME = "slow Kochava"
LATENCY_S = 0.2
BATCH = 10
PAYLOADS = 100
TARGET_RATIO = 2.0
REGION = "us-east-1"


@dataclass
class _Context:
    """What Powertools reads from a Lambda context."""

    function_name: str = "kochava-bench-deliverer"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:kochava-bench-deliverer"
    aws_request_id: str = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def envelopes(count: int) -> list[str]:
    """``count`` delivery-queue bodies with distinct uuids: the sample mix through the real mapping."""
    from functions.pipeline import envelope
    from functions.pipeline.contract import NativeEvent, parse_timestamp
    from functions.pipeline.events import parse_body
    from functions.pipeline.kochava import to_kochava
    from functions.pipeline.settings import Settings
    from tools.samples import DEMO_ENV, GOLDEN_NOW

    settings = Settings.from_env(DEMO_ENV)
    now = parse_timestamp(GOLDEN_NOW)
    bodies: list[str] = []
    mix = build_mix(count * 2)
    for line in mix.native.splitlines():
        for item in parse_body(line):
            if not isinstance(item, NativeEvent):
                continue  # a rejection or a filtered Segment call: nothing to deliver
            outcome = to_kochava(item, settings, now)
            if outcome.status == "ok":
                bodies.append(envelope.build(outcome))
        if len(bodies) >= count:
            break
    return bodies[:count]


@contextlib.contextmanager
def _aws_env(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(echo: bool = True) -> list[Result]:
    import boto3
    import requests
    from moto import mock_aws

    from functions.adapters.kochava_http import user_agent_for
    from functions.names import (
        DELIVERY_QUEUE,
        ENV_DELIVERER_MAX_WORKERS,
        ENV_DELIVERY_DLQ_URL,
        ENV_DELIVERY_QUEUE_URL,
        ENV_IDEMPOTENCY_TABLE,
        ENV_KOCHAVA_IDENTITYLINK_URL,
        ENV_KOCHAVA_URL,
        ENV_MAX_RECEIVE_COUNT,
        IDEMPOTENCY_TABLE,
    )
    from infra.config import PipelineConfig
    from infra.resources import ResourceNames
    from tools.local.aws import create_queue, create_table
    from tools.local.kochava_sink import KochavaSink

    workers = PipelineConfig().deliverer_max_workers
    bodies = envelopes(PAYLOADS)
    fake_aws = {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_NAME": "kochava-bench-deliverer",
    }
    logs = io.StringIO()  # the handler's JSON logs and EMF metrics: not for the terminal
    with KochavaSink(latency_s=LATENCY_S) as sink, _aws_env(fake_aws), mock_aws():
        # One request's latency, alone, on a warm keep-alive connection: the unit of the ratio.
        single: list[float] = []
        with requests.Session() as session:
            payload: dict[str, Any] = __import__("orjson").loads(bodies[0])["payload"]
            # The header the deliverer sends with it (the sink refuses a payload without device_ua otherwise).
            session.headers["User-Agent"] = user_agent_for(payload)
            for _ in range(6):
                started = time.perf_counter()
                session.post(sink.track_url, json=payload, timeout=5).raise_for_status()
                single.append(time.perf_counter() - started)
        one_request = median(single[1:])

        names = ResourceNames(stage="bench")
        sqs = boto3.client("sqs", region_name=REGION)
        # The delivery queue, its DLQ and the idempotency table as `make local` creates them.
        delivery = create_queue(sqs, names, DELIVERY_QUEUE)
        dlq_url, queue_url, queue_arn = delivery.dlq, delivery.queue, delivery.queue_arn
        table = create_table(boto3.client("dynamodb", region_name=REGION), names, IDEMPOTENCY_TABLE)
        env = {
            ENV_KOCHAVA_URL: sink.track_url,
            ENV_KOCHAVA_IDENTITYLINK_URL: sink.identitylink_url,
            ENV_DELIVERY_DLQ_URL: dlq_url,
            ENV_DELIVERY_QUEUE_URL: queue_url,
            ENV_IDEMPOTENCY_TABLE: table,
            ENV_MAX_RECEIVE_COUNT: str(DELIVERY_QUEUE.max_receive_count),
            ENV_DELIVERER_MAX_WORKERS: str(workers),
        }
        with _aws_env(env), contextlib.redirect_stdout(logs):
            from functions.deliverer import handler

            handler.set_runtime(None)  # a cold container: the first invocation builds pool and clients
            sink.reset()
            walls: list[float] = []
            failed = 0
            for start in range(0, PAYLOADS, BATCH):
                records = []
                for index, body in enumerate(bodies[start : start + BATCH]):
                    sent = sqs.send_message(QueueUrl=queue_url, MessageBody=body)
                    records.append(
                        {
                            "messageId": sent["MessageId"],
                            "receiptHandle": f"bench-{start + index}",
                            "body": body,
                            "attributes": {"ApproximateReceiveCount": "1"},
                            "messageAttributes": {},
                            "eventSource": "aws:sqs",
                            "eventSourceARN": queue_arn,
                            "awsRegion": REGION,
                        }
                    )
                started = time.perf_counter()
                response = handler.lambda_handler({"Records": records}, _Context())
                walls.append(time.perf_counter() - started)
                failed += len(response["batchItemFailures"])
            connections = sink.connections_opened
            delivered = len(sink.delivered)
            runtime = handler.get_runtime()
            runtime.close()
            handler.set_runtime(None)
    warm = median(walls[1:])
    ratio = warm / one_request
    if echo:
        print(
            f"  one request {one_request * 1000:.0f} ms; batch walls (ms): "
            + ", ".join(f"{w * 1000:.0f}" for w in walls)
            + f"; {connections} connections, {delivered} delivered, {failed} reported failed",
            flush=True,
        )
    detail = f"{workers} workers; one request {one_request * 1000:.0f} ms (sink delay {LATENCY_S * 1000:.0f} ms)"
    return [
        Result(
            NAME,
            f"{BATCH}-record batch wall / one request's latency (warm container)",
            ratio,
            f"<= {TARGET_RATIO:g}",
            ratio <= TARGET_RATIO,
            "x",
            f"{detail}; batch wall median {warm * 1000:.0f} ms of 9 warm batches, runs "
            f"{spread([w * 1000 for w in walls[1:]])} ms",
        ),
        Result(
            NAME,
            f"{BATCH}-record batch wall / one request's latency (cold container)",
            walls[0] / one_request,
            unit="x",
            detail=f"first batch {walls[0] * 1000:.0f} ms (builds the boto3 clients and the HTTP pool)",
        ),
        Result(
            NAME,
            f"TCP connections opened for {PAYLOADS} payloads (10 batches from cold)",
            connections,
            f"<= {workers} (1 per worker)",
            connections <= workers and delivered == PAYLOADS,
            "connections",
            f"{delivered}/{PAYLOADS} delivered, {failed} reported failed",
        ),
    ]
