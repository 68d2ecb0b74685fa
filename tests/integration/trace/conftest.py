"""Fixtures for trace's tests: the same moto setup as tools.dlq's (test credentials, the stage-``local`` queues),
plus the idempotency table and the two Lambdas' log groups."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from functions.names import FUNCTION_DELIVERER, FUNCTION_ENRICHER, IDEMPOTENCY_TABLE, IDEMPOTENCY_TTL_S
from functions.pipeline.envelope import Envelope, Kind
from functions.ports import KochavaResult
from infra.resources import ResourceNames
from tests.integration.dlq.conftest import aws, queues  # noqa: F401  (fixtures: moto, the project's queues)
from tests.integration.dlq.helpers import REGION, STAGE, Queues
from tests.lambda_fakes import FakeContext
from tools.local.aws import create_table

NAMES = ResourceNames(STAGE)
APP = "koapp-trace-guid"
LOG_GROUPS = {name: f"/aws/lambda/{NAMES.function(name)}" for name in (FUNCTION_ENRICHER, FUNCTION_DELIVERER)}


class DeliveringKochava:
    """Kochava answering success: the deliverer's sender then writes a COMPLETED record."""

    def send(self, kind: Kind, payload: Mapping[str, Any], *, deadline: float) -> KochavaResult:
        return KochavaResult(outcome="delivered", http_status=200, attempts=1)


@dataclass
class Aws:
    queues: Queues
    dynamodb: Any
    logs: Any
    table: str

    def deliver(self, uuid: str, kind: str = "event") -> None:
        """What the deliverer does on a delivery: its real idempotent sender writes the record."""
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        from functions.deliverer.idempotency import IdempotentSender

        persistence = DynamoDBPersistenceLayer(
            table_name=self.table, key_attr=IDEMPOTENCY_TABLE.partition_key, boto3_client=self.dynamodb
        )
        sender = IdempotentSender(DeliveringKochava(), persistence, expires_after_s=IDEMPOTENCY_TTL_S)
        sender.register_lambda_context(FakeContext())
        env = Envelope(uuid=uuid, kind=kind, event_name="Purchase", payload={}, adservices_generated_at=None)
        answer = sender.send_once(env, {"kochava_app_id": APP}, deadline=time.monotonic() + 10)
        assert answer.status == "delivered"

    def log(self, function: str, *lines: dict[str, Any], at_ms: int | None = None) -> None:
        """JSON log lines as the Lambda writes them to its log group."""
        when = at_ms or int(time.time() * 1000)
        self.logs.put_log_events(
            logGroupName=LOG_GROUPS[function],
            logStreamName="stream",
            logEvents=[{"timestamp": when + i, "message": json.dumps(line)} for i, line in enumerate(lines)],
        )


@pytest.fixture
def stack(queues: Queues) -> Aws:  # noqa: F811
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    table = create_table(dynamodb, NAMES, IDEMPOTENCY_TABLE)  # as the local stack creates it
    logs = boto3.client("logs", region_name=REGION)
    for group in LOG_GROUPS.values():
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="stream")
    return Aws(queues, dynamodb, logs, table)
