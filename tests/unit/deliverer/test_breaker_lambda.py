"""The shared Kochava breaker through the deliverer's entry point, on the in-memory ports (moved from the moto tier,
``tests/integration/deliverer/test_breaker.py``; the breaker store's DynamoDB adapter is
``tests/integration/breaker/test_breaker_store.py``, its fake and adapter agree in ``tests/integration/contracts``).

Kochava failing opens the breaker after the threshold; then batches are held without a POST, one probe per interval
goes out with a single attempt, an answer closes the breaker and the batch is sent. Held records keep their attempts.
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.names import (
    ATTR_REASON,
    ENV_BREAKER_HOLD_S,
    ENV_BREAKER_PROBE_INTERVAL_S,
    ENV_BREAKER_THRESHOLD,
    ENV_DELIVERY_STATE_TABLE,
)
from functions.pipeline import reasons
from tests.fakes import REJECTED, TRANSIENT
from tests.samples.deliverer import device_event_body, event_body
from tests.unit.deliverer.stack import FakeStack

PROBE_INTERVAL_S = 20.0
HOLD_S = 600.0


@pytest.fixture
def breaker_stack(stack: FakeStack) -> FakeStack:
    stack.env.update(
        {
            ENV_DELIVERY_STATE_TABLE: "kochava-test-delivery-state",
            ENV_BREAKER_THRESHOLD: "5",
            ENV_BREAKER_PROBE_INTERVAL_S: str(PROBE_INTERVAL_S),
            ENV_BREAKER_HOLD_S: str(HOLD_S),
        }
    )
    stack.use_runtime()
    return stack


def cycle(stack: FakeStack) -> dict[str, Any]:
    """One invocation on what is visible; then time passes past every backoff and hold (all visible again)."""
    event = stack.receive()
    response = stack.invoke(event)
    stack.make_visible(event)
    return response


def kochava_down(stack: FakeStack) -> None:
    stack.kochava.rule(lambda kind, payload: True, TRANSIENT)  # 503 on every attempt


def test_an_outage_opens_the_breaker_then_batches_are_held_without_a_post(breaker_stack: FakeStack) -> None:
    """Given Kochava answering 503 to everything and ten events of ten devices
    When one batch fails, then the next batch comes
    Then the breaker is open after the first, and the second is held: no POST, nothing dead-lettered, logged."""
    stack = breaker_stack
    kochava_down(stack)
    stack.send(*[device_event_body(f"o-{i}", f"device-{i}") for i in range(10)])

    first = cycle(stack)  # closed: every record POSTed (with in-process retries), all transient
    assert len(first["batchItemFailures"]) == 10
    assert stack.breaker_store.read().is_open
    requests_when_opened = len(stack.kochava.posts)
    assert requests_when_opened >= 10

    held = cycle(stack)  # open, no probe due: held, no request at all
    assert len(held["batchItemFailures"]) == 10
    assert len(stack.kochava.posts) == requests_when_opened
    assert stack.dlq_messages() == []
    assert '"verdicts":{"held":10}' in stack.logs.getvalue()
    assert "Kochava breaker opened" in stack.logs.getvalue()


def test_one_single_attempt_probe_per_interval_then_recovery_sends_the_rest(breaker_stack: FakeStack) -> None:
    """Given an open breaker
    When a probe interval passes (twice, Kochava back before the second)
    Then one probe goes out per interval with a single attempt, and the answer closes it and sends the rest."""
    stack = breaker_stack
    kochava_down(stack)
    stack.send(*[device_event_body(f"p-{i}", f"device-{i}") for i in range(10)])
    cycle(stack)  # opens it
    assert stack.breaker_store.read().is_open
    before = len(stack.kochava.posts)

    stack.clock.now += PROBE_INTERVAL_S  # a probe is due
    cycle(stack)
    assert len(stack.kochava.posts) == before + 1, "one probe"
    assert stack.kochava.posts[-1].retry is False, "one attempt (no in-process retries)"
    cycle(stack)  # the next probe slot is PROBE_INTERVAL_S later: held, nothing sent
    assert len(stack.kochava.posts) == before + 1

    stack.kochava.clear_rules()  # Kochava is back
    stack.clock.now += PROBE_INTERVAL_S
    response = cycle(stack)
    assert response == {"batchItemFailures": []}
    assert not stack.breaker_store.read().is_open
    assert sorted(p.payload["data"]["event_data"]["uuid"] for p in stack.kochava.delivered) == sorted(
        f"p-{i}" for i in range(10)
    )
    assert stack.dlq_messages() == []
    assert "Kochava breaker closed" in stack.logs.getvalue()


def test_held_records_keep_their_attempts_and_4xx_still_dead_letters_at_once(breaker_stack: FakeStack) -> None:
    """Given six events that failed once and opened the breaker
    When they are held twelve times (far more receives than the 5 attempts), then Kochava is back but refuses one
    Then none was given up while held; five are delivered and the refused one is dead-lettered kochava_rejected."""
    stack = breaker_stack
    kochava_down(stack)
    stack.send(*[device_event_body(f"h-{i}", f"device-{i}") for i in range(6)])
    cycle(stack)  # one real attempt each; the breaker opens
    for _ in range(12):  # held twelve times: far more receives than the 5 attempts
        cycle(stack)
    assert stack.dlq_messages() == []

    stack.kochava.clear_rules()
    stack.kochava.rule(lambda kind, payload: payload["data"]["event_data"]["uuid"] == "h-0", REJECTED)
    stack.clock.now += PROBE_INTERVAL_S
    cycle(stack)
    delivered = {p.payload["data"]["event_data"]["uuid"] for p in stack.kochava.delivered}
    assert delivered == {f"h-{i}" for i in range(1, 6)}
    [rejected] = stack.dlq_messages()
    assert rejected["attributes"][ATTR_REASON] == reasons.KOCHAVA_REJECTED


def test_one_device_failing_many_events_is_not_an_outage(breaker_stack: FakeStack) -> None:
    """Given Kochava answering 503 When ten events of one device fail Then the breaker stays closed."""
    stack = breaker_stack
    kochava_down(stack)
    stack.send(*[event_body(f"s-{i}") for i in range(10)])  # one device, ten events
    cycle(stack)
    assert not stack.breaker_store.read().is_open
