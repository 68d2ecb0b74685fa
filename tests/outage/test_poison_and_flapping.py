"""One bad event never stops the others (issue 23), through the local stack: its real deliverer, the shared
breaker on moto's DynamoDB, the Kochava sink.

* **Poison**: 3 events Kochava answers 503 every time, among a steady stream of good ones. The breaker never
  opens, every good event is delivered once and promptly, and the 3 end in the delivery DLQ as
  ``retries_exhausted`` (after their own 5 attempts).
* **50 % flapping**: Kochava fails half of all requests at random. The breaker never opens, every event is
  delivered once.

Both phases share one stack (time scale 1440: the SQS backoff is 1 s per retry, a hold 1 s). The deliverer's
in-process retry pauses (urllib3's backoff) are divided by the same scale, like every other duration of the local
stack: the deployed ones (about 3.5 s per attempt of a failing record) would make a poison record's five attempts
take half a minute of real time for what is 5 s of SQS backoff here. The rules are the deployed ones (which answers
are retried, how often). The outage test (``test_kochava_outage.py``) covers Kochava fully down then healed (the
breaker opens once, the backlog drains).
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Iterator

import pytest

from functions.adapters.kochava_http import HttpPolicy
from functions.names import DELIVERY_QUEUE
from functions.pipeline import reasons
from tools.local.outage import MixResult, run_mix
from tools.local.stack import LocalConfig, LocalStack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TIME_SCALE = 1440
POISON = {"poison-outage-00003", "poison-outage-00025", "poison-outage-00047"}
BODIES, PER_BODY = 8, 10  # 80 events posted 0.5 s apart
# Real seconds: a good event is delivered by then. A batch waits for its slowest record (a poison record's
# in-process retries) before the next batch is read; with the deployed backoff (about 3.5 s a record) that made
# 12 s on 2 shared cores. A breaker that opened would hold them on top (and the openings counter says so exactly).
GOOD_LATENCY_S = 20.0


def scaled_backoff(policy: HttpPolicy, time_scale: float) -> HttpPolicy:
    """``policy`` with urllib3's retry pauses divided by ``time_scale`` (timeouts and retry counts unchanged)."""
    return dataclasses.replace(
        policy,
        backoff_factor_s=policy.backoff_factor_s / time_scale,
        backoff_jitter_s=policy.backoff_jitter_s / time_scale,
        backoff_max_s=policy.backoff_max_s / time_scale,
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    from functions.deliverer import handler
    from functions.deliverer.runtime import build_runtime

    runtime = None
    try:
        with LocalStack(LocalConfig(time_scale=TIME_SCALE, concurrency={DELIVERY_QUEUE.key: 2})) as running:
            runtime = build_runtime(os.environ, http_policy=scaled_backoff(HttpPolicy(), TIME_SCALE))
            handler.set_runtime(runtime)  # the handler module the stack (re)loaded: its invocations use it
            yield running
    finally:
        if runtime is not None:
            runtime.close()


@pytest.fixture(scope="module")
def poison(stack: LocalStack) -> MixResult:
    return run_mix(stack, prefix="poison", bodies=BODIES, per_body=PER_BODY, gap_s=0.5, fails=lambda s: s in POISON)


@pytest.fixture(scope="module")
def flapping(stack: LocalStack, poison: MixResult) -> MixResult:
    rng = random.Random(23)
    return run_mix(
        stack, prefix="flap", bodies=BODIES, per_body=PER_BODY, gap_s=0.2, fails=lambda s: rng.random() < 0.5
    )


def test_poison_events_never_open_the_breaker(poison: MixResult) -> None:
    assert poison.accepted == BODIES * PER_BODY and poison.drained
    assert poison.failed_requests >= 3 * 5, "each poison event was tried (5 attempts, with in-process retries)"
    assert poison.openings == 0


def test_the_good_events_are_delivered_once_and_on_time(poison: MixResult) -> None:
    good = {f"poison-outage-{i:05d}" for i in range(BODIES * PER_BODY)} - POISON
    assert set(poison.delivered_per_seq) == good
    assert [seq for seq, count in poison.delivered_per_seq.items() if count != 1] == []
    assert poison.failed_requests_of(good) == 0, "no good event was failed, so none was retried"
    slow = {seq: round(s, 1) for seq, s in poison.latency_s.items() if s > GOOD_LATENCY_S}
    assert slow == {}, slow


def test_the_poison_events_are_dead_lettered_with_their_reason(poison: MixResult) -> None:
    assert poison.dead_letter_reasons == dict.fromkeys(POISON, reasons.RETRIES_EXHAUSTED)


def test_half_of_kochava_failing_never_opens_it_and_everything_is_delivered_once(flapping: MixResult) -> None:
    assert flapping.drained and flapping.failed_requests > 0
    assert flapping.openings == 0
    assert set(flapping.delivered_per_seq) == {f"flap-outage-{i:05d}" for i in range(BODIES * PER_BODY)}
    assert set(flapping.delivered_per_seq.values()) == {1}
    assert flapping.dead_letter_reasons == {}
