"""The deliverer Lambda against moto (real boto3 calls to emulated SQS and DynamoDB) and a real local HTTP server
standing in for Kochava (tools.local.kochava_sink). No mock of requests: the HTTP client, its pool, its timeouts
and its urllib3 retries run for real over loopback."""

from __future__ import annotations

import functools
import io
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from functions.deliverer import handler as deliverer_handler
from functions.names import (
    DELIVERY_QUEUE,
    ENV_DELIVERER_MAX_WORKERS,
    ENV_DELIVERY_DLQ_URL,
    ENV_IDEMPOTENCY_TABLE,
    ENV_KOCHAVA_IDENTITYLINK_URL,
    ENV_KOCHAVA_URL,
    ENV_MAX_RECEIVE_COUNT,
    IDEMPOTENCY_TABLE,
)
from infra.resources import ResourceNames
from tests.integration.deliverer.support import Clock, Stack
from tools.local.aws import create_queue, create_table
from tools.local.kochava_sink import KochavaSink

REGION = "eu-west-1"


_ITEM_WRITES = ("put_item", "update_item", "delete_item")


@pytest.fixture(autouse=True)
def atomic_dynamodb_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies a conditional write atomically; in-process moto does not lock across threads, so two of
    the deliverer's workers could both pass ``attribute_not_exists`` for the same key and both POST. Serialize
    moto's item writes, as the real service behaves, so the concurrency tests test the deliverer, not moto."""
    lock = threading.Lock()

    def locked(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def write(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)

        return write

    for name in _ITEM_WRITES:
        monkeypatch.setattr(DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name)))


@pytest.fixture
def sink() -> Iterator[KochavaSink]:
    with KochavaSink() as server:
        yield server


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, sink: KochavaSink) -> Iterator[Stack]:
    """Queues (with the real redrive settings, from ``tools/local/aws.py``), the idempotency table, the sink, and a
    fresh deliverer runtime."""
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_NAME": "kochava-test-deliverer",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    with mock_aws():
        names = ResourceNames(stage="test")
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        queues = create_queue(sqs, names, DELIVERY_QUEUE, visibility_timeout_s=DELIVERY_QUEUE.visibility_timeout_s)
        table = create_table(dynamodb, names, IDEMPOTENCY_TABLE)
        env = {
            ENV_KOCHAVA_URL: sink.track_url,
            ENV_KOCHAVA_IDENTITYLINK_URL: sink.identitylink_url,
            ENV_DELIVERY_DLQ_URL: queues.dlq,
            ENV_IDEMPOTENCY_TABLE: table,
            ENV_MAX_RECEIVE_COUNT: str(DELIVERY_QUEUE.max_receive_count),
            ENV_DELIVERER_MAX_WORKERS: "10",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        logs = io.StringIO()
        capture = logging.StreamHandler(logs)
        capture.setFormatter(deliverer_handler.logger.registered_handler.formatter)
        deliverer_handler.logger.addHandler(capture)
        built = Stack(sqs, dynamodb, queues.queue, queues.queue_arn, queues.dlq, table, sink, Clock(), logs, env)
        built.use_runtime()
        try:
            yield built
        finally:
            deliverer_handler.logger.removeHandler(capture)  # type: ignore[attr-defined]
            deliverer_handler.set_runtime(None)
            for runtime in built.runtimes:
                runtime.close()
