"""A Kochava outage of 6 hours through the local stack: nothing dead-lettered, everything delivered once, and
Kochava sees a few probes a minute, not a retry storm.

Kochava (the local sink) answers 503 to every request from before the first post until 6 scaled hours have
passed, while 500 events are posted; then it heals. The local stack runs at 1440x (``--time-scale``), so the outage
lasts 15 real seconds; the probe interval and holds are scaled with it (SQS counts visibility in whole seconds, so
a hold is 1 s = 24 scaled minutes). Without the breaker, each event made about 20 requests and every one of them
was in the delivery DLQ after 8 minutes (issue 16).
"""

from __future__ import annotations

import pytest

from functions.adapters.kochava_http import HttpPolicy
from functions.names import DELIVERY_QUEUE
from functions.pipeline.breaker import BreakerPolicy
from tools.local.outage import OutageResult, run_outage

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

EVENTS = 500
OUTAGE_S = 6 * 3600
TIME_SCALE = 1440


@pytest.fixture(scope="module")
def outage() -> OutageResult:
    result = run_outage(events=EVENTS, outage_s=OUTAGE_S, time_scale=TIME_SCALE)
    print(  # shown with a failing test's output
        f"outage: {result.requests_during_outage} requests during {result.outage_minutes:.0f} scaled min "
        f"({result.outage_real_s:.1f} s real), drained={result.drained} in {result.drain_real_s:.1f} s real, "
        f"DLQ {result.dead_lettered}, delivered {sum(result.delivered_per_uuid.values())}"
    )
    return result


def test_every_event_was_accepted_and_the_outage_lasted_six_hours(outage: OutageResult) -> None:
    assert outage.accepted == EVENTS
    assert outage.outage_real_s * TIME_SCALE >= OUTAGE_S


def test_the_breaker_opened_once(outage: OutageResult) -> None:
    assert outage.openings == 1


def test_nothing_is_dead_lettered_and_nothing_lost(outage: OutageResult) -> None:
    assert outage.drained, "the pipeline did not drain after Kochava healed"
    assert outage.dead_lettered == {"ingest": 0, "delivery": 0}
    assert outage.lost == 0


def test_every_event_is_delivered_exactly_once(outage: OutageResult) -> None:
    expected = {f"outage-{i:05d}" for i in range(EVENTS)}
    assert set(outage.delivered_per_uuid) == expected
    assert [uuid for uuid, count in outage.delivered_per_uuid.items() if count != 1] == []


def test_kochava_saw_a_few_probes_a_minute_not_a_retry_storm(outage: OutageResult) -> None:
    policy = BreakerPolicy()
    attempts = 1 + HttpPolicy().max_retries
    bound = outage.request_bound(policy, batch_size=DELIVERY_QUEUE.batch_size, attempts_per_send=attempts)
    # 6 hours at 3 probes a minute (1,080) plus the batches in flight when it failed; the old design: ~20 per event.
    assert outage.requests_during_outage <= bound, (outage.requests_during_outage, bound)
    assert outage.requests_during_outage < EVENTS * 20 / 4
