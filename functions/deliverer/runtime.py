"""The deliverer's long-lived pieces, built once per container from its environment: the HTTP pool, the boto3
clients, the once-only sender (Powertools idempotency), the breaker and the worker threads.

:func:`build_runtime` wires the real adapters behind the ports :class:`~functions.deliverer.core.Deliverer`
depends on; the handler calls it on the first invocation, tests call it with a fast HTTP policy, a controllable
clock or their own Kochava client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.adapters.kochava_http import HttpPolicy, RequestsKochavaClient
from functions.deliverer.config import DelivererConfig
from functions.deliverer.core import Deliverer
from functions.names import IDEMPOTENCY_TABLE, IDEMPOTENCY_TTL_S
from functions.pipeline.settings import Settings

if TYPE_CHECKING:
    from functions.deliverer.idempotency import IdempotentSender
    from functions.ports import KochavaClient


@dataclass
class Runtime:
    """What lives as long as the container: HTTP pool, boto3 clients, idempotency, the thread pool."""

    core: Deliverer
    sender: IdempotentSender
    kochava: KochavaClient

    def close(self) -> None:
        """Stop the worker threads and close pooled connections (tests; a container just freezes)."""
        self.core.close()
        close = getattr(self.kochava, "close", None)
        if callable(close):
            close()


def build_runtime(
    env: Mapping[str, str],
    *,
    http_policy: HttpPolicy | None = None,
    kochava: KochavaClient | None = None,
    boto3_session: Any = None,
    clock: Callable[[], float] = time.time,
) -> Runtime:
    """Build the container's long-lived pieces from the environment.

    Tests pass a fast ``http_policy``, a controllable ``clock`` (the AdServices window), or their own ``kochava``
    client (e.g. one that simulates a crash mid-send).
    """
    import boto3
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
    from botocore.config import Config

    from functions.adapters.sqs import SqsDeliveryQueue
    from functions.deliverer.idempotency import IdempotentSender

    settings = Settings.from_env(env)
    config = DelivererConfig.from_env(env)
    policy = http_policy or HttpPolicy(pool_size=config.max_workers)
    session = boto3_session or boto3.session.Session()
    boto_config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=2,
        read_timeout=5,
        max_pool_connections=max(10, config.max_workers),  # the workers share the DynamoDB client
    )
    if kochava is None:
        kochava = RequestsKochavaClient(settings.kochava_url, settings.kochava_identitylink_url, policy)
    dynamodb = session.client("dynamodb", config=boto_config)  # one client (thread-safe) for both tables
    persistence = DynamoDBPersistenceLayer(
        table_name=config.idempotency_table,
        key_attr=IDEMPOTENCY_TABLE.partition_key,
        expiry_attr=IDEMPOTENCY_TABLE.ttl_attribute or "expiration",
        boto3_client=dynamodb,
    )
    sender = IdempotentSender(kochava, persistence, expires_after_s=IDEMPOTENCY_TTL_S)
    # Created on first use: a batch where everything is delivered never calls SQS from here.
    queue = SqsDeliveryQueue(lambda: session.client("sqs", config=boto_config), config.dlq_url, config.queue_url)
    breaker = None
    if config.state_table is not None:
        from functions.adapters.breaker_dynamodb import DynamoDbBreakerStore
        from functions.deliverer.outage import KochavaBreaker

        store = DynamoDbBreakerStore(dynamodb, config.state_table)
        breaker = KochavaBreaker(store, config.breaker_policy())
    deliverer = Deliverer(
        sender,
        queue,
        max_workers=config.max_workers,
        max_attempts=config.max_attempts,
        clock=clock,
        retry_base_s=config.retry_base_s,
        breaker=breaker,
    )
    return Runtime(core=deliverer, sender=sender, kochava=kochava)
