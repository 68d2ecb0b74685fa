"""The deliverer's own configuration, read once per container from its environment.

The shared settings (Kochava URLs...) are :class:`functions.pipeline.settings.Settings`; this is what only the
deliverer needs: its DLQ and queue, the idempotency table, the receive and attempt limits, its worker count and
first backoff, and the Kochava breaker (its table and policy; without a table there is no breaker).

Example:
    >>> config = DelivererConfig.from_env({"DELIVERY_DLQ_URL": "q-dlq", "IDEMPOTENCY_TABLE_NAME": "t"})
    >>> config.max_receive_count, config.max_attempts, config.max_workers, config.retry_base_s
    (900, 5, 10, 30)
    >>> config.state_table is None, config.breaker_policy().probes_per_minute
    (True, 3.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from functions import envconfig
from functions.deliverer.core import DEFAULT_MAX_ATTEMPTS, RETRY_VISIBILITY_BASE_S
from functions.names import (
    DELIVERY_QUEUE,
    ENV_BREAKER_HOLD_S,
    ENV_BREAKER_MIN_DEVICES,
    ENV_BREAKER_PROBE_INTERVAL_S,
    ENV_BREAKER_THRESHOLD,
    ENV_BREAKER_WINDOW_S,
    ENV_DELIVERER_MAX_ATTEMPTS,
    ENV_DELIVERER_MAX_WORKERS,
    ENV_DELIVERER_RETRY_BASE_S,
    ENV_DELIVERY_DLQ_URL,
    ENV_DELIVERY_QUEUE_URL,
    ENV_DELIVERY_RETENTION_S,
    ENV_DELIVERY_STATE_TABLE,
    ENV_IDEMPOTENCY_TABLE,
    ENV_MAX_RECEIVE_COUNT,
)
from functions.pipeline.breaker import BreakerPolicy

_BREAKER = BreakerPolicy()  # the defaults


@dataclass(frozen=True)
class DelivererConfig:
    """The deliverer's own environment (queue URLs, table, limits); shared settings come from ``Settings``."""

    dlq_url: str
    idempotency_table: str
    queue_url: str | None = None
    max_receive_count: int = DELIVERY_QUEUE.max_receive_count
    max_workers: int = DELIVERY_QUEUE.batch_size
    retry_base_s: float = RETRY_VISIBILITY_BASE_S  # first SQS backoff of a transient failure, doubled per attempt
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # real POST attempts before retries_exhausted
    state_table: str | None = None  # the Kochava breaker's table; None: no breaker (attempts = SQS receives)
    breaker_threshold: int = _BREAKER.min_events  # distinct failing events that open the breaker
    breaker_min_devices: int = _BREAKER.min_sources
    breaker_window_s: float = _BREAKER.window_s
    probe_interval_s: float = _BREAKER.probe_interval_s
    hold_s: float = _BREAKER.hold_s
    retention_s: float = _BREAKER.retention_s

    def breaker_policy(self) -> BreakerPolicy:
        """The breaker's policy from these settings."""
        return BreakerPolicy(
            min_events=self.breaker_threshold,
            min_sources=self.breaker_min_devices,
            window_s=self.breaker_window_s,
            probe_interval_s=self.probe_interval_s,
            hold_s=self.hold_s,
            retention_s=self.retention_s,
            max_receive_count=self.max_receive_count,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DelivererConfig:
        """Read ``DELIVERY_DLQ_URL``, ``IDEMPOTENCY_TABLE_NAME`` (required), ``DELIVERY_QUEUE_URL``,
        ``MAX_RECEIVE_COUNT``, ``DELIVERER_MAX_WORKERS``, ``DELIVERER_RETRY_BASE_S``, ``DELIVERER_MAX_ATTEMPTS``,
        ``DELIVERY_STATE_TABLE_NAME`` and the ``KOCHAVA_BREAKER_*`` / ``DELIVERY_QUEUE_RETENTION_S`` durations
        (optional); raise :class:`~functions.envconfig.ConfigError` naming what is wrong."""
        envconfig.require(env, ENV_DELIVERY_DLQ_URL, ENV_IDEMPOTENCY_TABLE)
        return cls(
            dlq_url=envconfig.required(env, ENV_DELIVERY_DLQ_URL),
            idempotency_table=envconfig.required(env, ENV_IDEMPOTENCY_TABLE),
            queue_url=envconfig.optional(env, ENV_DELIVERY_QUEUE_URL),
            max_receive_count=envconfig.positive_int(env, ENV_MAX_RECEIVE_COUNT, DELIVERY_QUEUE.max_receive_count),
            max_workers=envconfig.positive_int(env, ENV_DELIVERER_MAX_WORKERS, DELIVERY_QUEUE.batch_size),
            retry_base_s=envconfig.positive_float(env, ENV_DELIVERER_RETRY_BASE_S, RETRY_VISIBILITY_BASE_S),
            max_attempts=envconfig.positive_int(env, ENV_DELIVERER_MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS),
            state_table=envconfig.optional(env, ENV_DELIVERY_STATE_TABLE),
            breaker_threshold=envconfig.positive_int(env, ENV_BREAKER_THRESHOLD, _BREAKER.min_events),
            breaker_min_devices=envconfig.positive_int(env, ENV_BREAKER_MIN_DEVICES, _BREAKER.min_sources),
            breaker_window_s=envconfig.positive_float(env, ENV_BREAKER_WINDOW_S, _BREAKER.window_s),
            probe_interval_s=envconfig.positive_float(env, ENV_BREAKER_PROBE_INTERVAL_S, _BREAKER.probe_interval_s),
            hold_s=envconfig.positive_float(env, ENV_BREAKER_HOLD_S, _BREAKER.hold_s),
            retention_s=envconfig.positive_float(env, ENV_DELIVERY_RETENTION_S, _BREAKER.retention_s),
        )
