"""The shared Kochava breaker through the real deliverer handler: moto (SQS, DynamoDB) and the Kochava sink.

Kochava failing opens the breaker after the threshold; then batches are held without a POST, one probe per interval
goes out with a single attempt, an answer closes the breaker and the batch is sent. Held records keep their attempts.
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.adapters.breaker_dynamodb import DynamoDbBreakerStore
from functions.names import (
    ATTR_REASON,
    DELIVERY_STATE_TABLE,
    ENV_BREAKER_HOLD_S,
    ENV_BREAKER_PROBE_INTERVAL_S,
    ENV_BREAKER_THRESHOLD,
    ENV_DELIVERY_STATE_TABLE,
)
from functions.pipeline import reasons
from tests.integration.deliverer.support import Stack
from tests.samples.deliverer import device_event_body, event_body

PROBE_INTERVAL_S = 20.0
HOLD_S = 600.0


@pytest.fixture
def breaker_stack(stack: Stack) -> Stack:
    table = "kochava-test-delivery-state"
    stack.dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": DELIVERY_STATE_TABLE.partition_key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": DELIVERY_STATE_TABLE.partition_key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    stack.env.update(
        {
            ENV_DELIVERY_STATE_TABLE: table,
            ENV_BREAKER_THRESHOLD: "5",
            ENV_BREAKER_PROBE_INTERVAL_S: str(PROBE_INTERVAL_S),
            ENV_BREAKER_HOLD_S: str(HOLD_S),
        }
    )
    stack.use_runtime()
    return stack


def _store(stack: Stack) -> DynamoDbBreakerStore:
    return DynamoDbBreakerStore(stack.dynamodb, stack.env[ENV_DELIVERY_STATE_TABLE])


def cycle(stack: Stack) -> dict[str, Any]:
    """One invocation on what is visible; then time passes past every backoff and hold (all visible again)."""
    event = stack.receive()
    response = stack.invoke(event)
    stack.make_visible(event)
    return response


def test_an_outage_opens_the_breaker_then_batches_are_held_without_a_post(breaker_stack: Stack) -> None:
    stack = breaker_stack
    stack.sink.add_rule(lambda r: True, [503])
    stack.send(*[device_event_body(f"o-{i}", f"device-{i}") for i in range(10)])

    first = cycle(stack)  # closed: every record POSTed (with in-process retries), all transient
    assert len(first["batchItemFailures"]) == 10
    assert _store(stack).read().is_open
    requests_when_opened = len(stack.sink.requests)
    assert requests_when_opened >= 10

    held = cycle(stack)  # open, no probe due: held, no request at all
    assert len(held["batchItemFailures"]) == 10
    assert len(stack.sink.requests) == requests_when_opened
    assert stack.dlq_messages() == []
    assert '"verdicts":{"held":10}' in stack.logs.getvalue()
    assert "Kochava breaker opened" in stack.logs.getvalue()


def test_one_single_attempt_probe_per_interval_then_recovery_sends_the_rest(breaker_stack: Stack) -> None:
    stack = breaker_stack
    stack.sink.add_rule(lambda r: True, [503])
    stack.send(*[device_event_body(f"p-{i}", f"device-{i}") for i in range(10)])
    cycle(stack)  # opens it
    assert _store(stack).read().is_open
    before = len(stack.sink.requests)

    stack.clock.now += PROBE_INTERVAL_S  # a probe is due
    cycle(stack)
    assert len(stack.sink.requests) == before + 1, "one probe, one attempt (no in-process retries)"
    cycle(stack)  # the next probe slot is PROBE_INTERVAL_S later: held, nothing sent
    assert len(stack.sink.requests) == before + 1

    stack.sink.clear_behaviour()  # Kochava is back
    stack.clock.now += PROBE_INTERVAL_S
    response = cycle(stack)
    assert response == {"batchItemFailures": []}
    assert not _store(stack).read().is_open
    assert sorted(r.json["data"]["event_data"]["uuid"] for r in stack.sink.delivered) == sorted(
        f"p-{i}" for i in range(10)
    )
    assert stack.dlq_messages() == []
    assert "Kochava breaker closed" in stack.logs.getvalue()


def test_held_records_keep_their_attempts_and_4xx_still_dead_letters_at_once(breaker_stack: Stack) -> None:
    stack = breaker_stack
    stack.sink.add_rule(lambda r: True, [503])
    stack.send(*[device_event_body(f"h-{i}", f"device-{i}") for i in range(6)])
    cycle(stack)  # one real attempt each; the breaker opens
    for _ in range(12):  # held twelve times: far more receives than the 5 attempts
        cycle(stack)
    assert stack.dlq_messages() == []

    stack.sink.clear_behaviour()
    stack.sink.add_rule(lambda r: r.json["data"]["event_data"]["uuid"] == "h-0", [400])
    stack.clock.now += PROBE_INTERVAL_S
    cycle(stack)
    delivered = {r.json["data"]["event_data"]["uuid"] for r in stack.sink.delivered}
    assert delivered == {f"h-{i}" for i in range(1, 6)}
    [rejected] = stack.dlq_messages()
    assert rejected["attributes"][ATTR_REASON] == reasons.KOCHAVA_REJECTED


def test_one_device_failing_many_events_is_not_an_outage(breaker_stack: Stack) -> None:
    stack = breaker_stack
    stack.sink.add_rule(lambda r: True, [503])
    stack.send(*[event_body(f"s-{i}") for i in range(10)])  # one device, ten events
    cycle(stack)
    assert not _store(stack).read().is_open
