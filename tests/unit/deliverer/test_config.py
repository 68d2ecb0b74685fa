"""What an operator sets in the deliverer's environment is what the deliverer uses (``functions/deliverer/config.py``).

Each variable is given a value unlike every other one and unlike its default, so a setting read from the wrong
variable, dropped, or not passed on to the breaker's policy shows.
"""

from __future__ import annotations

import pytest

from functions.deliverer.config import DelivererConfig
from functions.envconfig import ConfigError
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

REQUIRED = {ENV_DELIVERY_DLQ_URL: " https://sqs.test/delivery-dlq ", ENV_IDEMPOTENCY_TABLE: "idem-table"}
EVERYTHING = {
    **REQUIRED,
    ENV_DELIVERY_QUEUE_URL: "https://sqs.test/delivery",
    ENV_MAX_RECEIVE_COUNT: "77",
    ENV_DELIVERER_MAX_WORKERS: "4",
    ENV_DELIVERER_RETRY_BASE_S: "2.5",
    ENV_DELIVERER_MAX_ATTEMPTS: "9",
    ENV_DELIVERY_STATE_TABLE: "breaker-table",
    ENV_BREAKER_THRESHOLD: "11",
    ENV_BREAKER_MIN_DEVICES: "6",
    ENV_BREAKER_WINDOW_S: "45.5",
    ENV_BREAKER_PROBE_INTERVAL_S: "7.5",
    ENV_BREAKER_HOLD_S: "123.0",
    ENV_DELIVERY_RETENTION_S: "86400.0",
}


def test_every_setting_is_read_from_its_own_variable() -> None:
    config = DelivererConfig.from_env(EVERYTHING)
    assert config == DelivererConfig(
        dlq_url="https://sqs.test/delivery-dlq",
        idempotency_table="idem-table",
        queue_url="https://sqs.test/delivery",
        max_receive_count=77,
        max_workers=4,
        retry_base_s=2.5,
        max_attempts=9,
        state_table="breaker-table",
        breaker_threshold=11,
        breaker_min_devices=6,
        breaker_window_s=45.5,
        probe_interval_s=7.5,
        hold_s=123.0,
        retention_s=86400.0,
    )


def test_the_breaker_runs_on_the_policy_the_environment_sets() -> None:
    assert DelivererConfig.from_env(EVERYTHING).breaker_policy() == BreakerPolicy(
        min_events=11,
        min_sources=6,
        window_s=45.5,
        probe_interval_s=7.5,
        hold_s=123.0,
        retention_s=86400.0,
        max_receive_count=77,
    )


def test_what_is_not_set_takes_the_deployed_defaults() -> None:
    config = DelivererConfig.from_env(REQUIRED)
    assert config == DelivererConfig(dlq_url="https://sqs.test/delivery-dlq", idempotency_table="idem-table")
    assert (config.queue_url, config.state_table) == (None, None)  # no breaker without its table
    assert (config.max_receive_count, config.max_workers, config.max_attempts, config.retry_base_s) == (
        DELIVERY_QUEUE.max_receive_count,
        DELIVERY_QUEUE.batch_size,
        5,
        30,
    )
    assert config.breaker_policy() == BreakerPolicy()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, f"{ENV_DELIVERY_DLQ_URL}, {ENV_IDEMPOTENCY_TABLE}"),
        ({ENV_IDEMPOTENCY_TABLE: "t"}, ENV_DELIVERY_DLQ_URL),
        ({ENV_DELIVERY_DLQ_URL: "https://q", ENV_IDEMPOTENCY_TABLE: "  "}, ENV_IDEMPOTENCY_TABLE),
    ],
)
def test_a_missing_required_variable_is_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        DelivererConfig.from_env(env)
    assert str(raised.value) == f"missing environment variable(s): {named}"
