"""The enricher Lambda against moto (real boto3 calls to emulated SQS and DynamoDB; the queues and table created
from the specs by ``tools/local/aws.py``, as for the local stack), with a controllable clock
and the Powertools logger's output captured, so tests can check what a whole run logged."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterator

import boto3
import pytest
from moto import mock_aws

from functions.names import (
    DELIVERY_QUEUE,
    ENV_ADSERVICES_RESOLVE,
    ENV_ADSERVICES_URL,
    ENV_DELIVERY_QUEUE_URL,
    ENV_INGEST_DLQ_URL,
    ENV_INGEST_QUEUE_URL,
    ENV_KOCHAVA_APP_ID_ANDROID,
    ENV_KOCHAVA_APP_ID_IOS,
    ENV_PROFILE_TABLE,
    INGEST_QUEUE,
    PROFILE_TABLE,
)
from infra.resources import ResourceNames
from tests.integration.enricher.support import Clock, Stack
from tests.samples.enricher import ANDROID_APP, IOS_APP
from tools.local.aws import create_queue, create_table


@pytest.fixture
def env_vars(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
        ENV_KOCHAVA_APP_ID_IOS: IOS_APP,
        ENV_KOCHAVA_APP_ID_ANDROID: ANDROID_APP,
        ENV_ADSERVICES_RESOLVE: "false",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv(ENV_ADSERVICES_URL, raising=False)
    return values


@pytest.fixture
def make_stack(env_vars: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Stack]]:
    """Start moto, create the resources, point the handler at them; call it with extra env vars."""
    with mock_aws():
        names = ResourceNames(stage="test")
        sqs = boto3.client("sqs", region_name="eu-west-1")
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        ingest, delivery = (
            create_queue(sqs, names, spec, visibility_timeout_s=spec.visibility_timeout_s)
            for spec in (INGEST_QUEUE, DELIVERY_QUEUE)
        )
        urls = {"ingest": ingest.queue, "ingest_dlq": ingest.dlq, "delivery": delivery.queue}
        table = create_table(dynamodb, names, PROFILE_TABLE)
        from functions.enricher import handler

        logs = io.StringIO()
        capture = logging.StreamHandler(logs)
        capture.setFormatter(handler.logger.registered_handler.formatter)
        handler.logger.addHandler(capture)
        clock = Clock()

        def make(**extra_env: str) -> Stack:
            monkeypatch.setenv(ENV_INGEST_QUEUE_URL, urls["ingest"])
            monkeypatch.setenv(ENV_INGEST_DLQ_URL, urls["ingest_dlq"])
            monkeypatch.setenv(ENV_DELIVERY_QUEUE_URL, urls["delivery"])
            monkeypatch.setenv(ENV_PROFILE_TABLE, table)
            for name, value in extra_env.items():
                monkeypatch.setenv(name, value)
            handler.set_runtime(handler.build_runtime(os.environ, log=handler.logger, clock=clock))
            return Stack(sqs, dynamodb, urls, table, clock, logs, handler)

        try:
            yield make
        finally:
            handler.logger.removeHandler(capture)
            handler.set_runtime(None)


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()
