"""The deliverer's own configuration, read once per container from its environment.

The shared settings (Kochava URLs...) are :class:`functions.pipeline.settings.Settings`; this is what only the
deliverer needs: its DLQ and queue, the idempotency table, the receive limit, its worker count and first backoff.

Example:
    >>> config = DelivererConfig.from_env({"DELIVERY_DLQ_URL": "q-dlq", "IDEMPOTENCY_TABLE_NAME": "t"})
    >>> config.max_receive_count, config.max_workers, config.retry_base_s
    (5, 10, 30)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from functions import envconfig
from functions.deliverer.delivery import RETRY_VISIBILITY_BASE_S
from functions.names import (
    DELIVERY_QUEUE,
    ENV_DELIVERER_MAX_WORKERS,
    ENV_DELIVERER_RETRY_BASE_S,
    ENV_DELIVERY_DLQ_URL,
    ENV_DELIVERY_QUEUE_URL,
    ENV_IDEMPOTENCY_TABLE,
    ENV_MAX_RECEIVE_COUNT,
)


@dataclass(frozen=True)
class DelivererConfig:
    """The deliverer's own environment (queue URLs, table, limits); shared settings come from ``Settings``."""

    dlq_url: str
    idempotency_table: str
    queue_url: str | None = None
    max_receive_count: int = DELIVERY_QUEUE.max_receive_count
    max_workers: int = DELIVERY_QUEUE.batch_size
    retry_base_s: float = RETRY_VISIBILITY_BASE_S  # first SQS backoff of a transient failure, doubled per receive

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DelivererConfig:
        """Read ``DELIVERY_DLQ_URL``, ``IDEMPOTENCY_TABLE_NAME`` (required), ``DELIVERY_QUEUE_URL``,
        ``MAX_RECEIVE_COUNT``, ``DELIVERER_MAX_WORKERS``, ``DELIVERER_RETRY_BASE_S`` (optional); raise ``ValueError``
        naming what is wrong."""
        absent = envconfig.missing(env, ENV_DELIVERY_DLQ_URL, ENV_IDEMPOTENCY_TABLE)
        if absent:
            raise ValueError(f"missing environment variable(s): {', '.join(absent)}")
        return cls(
            dlq_url=envconfig.required(env, ENV_DELIVERY_DLQ_URL),
            idempotency_table=envconfig.required(env, ENV_IDEMPOTENCY_TABLE),
            queue_url=envconfig.optional(env, ENV_DELIVERY_QUEUE_URL),
            max_receive_count=envconfig.positive_int(env, ENV_MAX_RECEIVE_COUNT, DELIVERY_QUEUE.max_receive_count),
            max_workers=envconfig.positive_int(env, ENV_DELIVERER_MAX_WORKERS, DELIVERY_QUEUE.batch_size),
            retry_base_s=envconfig.positive_float(env, ENV_DELIVERER_RETRY_BASE_S, RETRY_VISIBILITY_BASE_S),
        )
