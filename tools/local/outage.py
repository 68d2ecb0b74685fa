"""A Kochava outage on the local stack: Kochava answers 503 to everything for a while, events keep coming, it heals.

Used by the end-to-end test (``tests/outage``) and by ``make bench`` (``bench/outage.py``)::

    result = run_outage(events=500, outage_s=6 * 3600, time_scale=1440)  # 6 scaled hours = 15 real seconds
    result.requests_during_outage, result.drain_s, result.dead_lettered

The local stack runs ``time_scale`` times faster than AWS (visibility timeouts, backoff, the breaker's probe
interval and hold, see ``tools.local.aws.TIME_SCALE``), so ``outage_s`` (scaled seconds) lasts
``outage_s / time_scale`` real seconds. The sink fails every request from before the first post until the outage
ends; then it answers success again and the run waits for the pipeline to drain.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from functions.names import DELIVERY_QUEUE
from functions.pipeline.breaker import BreakerPolicy
from tools.local.stack import LocalConfig, LocalStack

EVENTS_PER_BODY = 50
DELIVERY_POLLERS = 1  # concurrent deliverer invocations (make local: 1; on 2 shared cores more do not drain faster)
OUTAGE_STATUS = 503


def outage_event(index: int) -> dict[str, object]:
    """A valid native track event with a unique uuid (an Android device)."""
    return {
        "uuid": f"outage-{index:05d}",
        "type": "track",
        "event": "level_up",
        "timestamp": 1795175990 + index,
        "properties": {"level": index % 50, "seq": f"outage-{index:05d}"},  # Kochava gets it as event_data.seq
        "device": {"platform": "android", "id": f"9774d56d682e{index:04x}"},
    }


@dataclass
class OutageResult:
    """What Kochava saw and what became of the events."""

    events: int
    time_scale: float
    outage_s: float  # scaled seconds Kochava was down
    outage_real_s: float
    pollers: int  # concurrent deliverer invocations
    accepted: int  # events the API answered 202 for
    requests_during_outage: int  # requests the sink got (and failed) while down
    drain_real_s: float  # real seconds from healing to a drained pipeline
    drained: bool
    delivered_per_uuid: Counter[str] = field(default_factory=Counter)  # successful POSTs per event uuid (its seq)
    dead_lettered: dict[str, int] = field(default_factory=dict)  # DLQ key -> messages
    lost: int = 0

    @property
    def outage_minutes(self) -> float:
        return self.outage_s / 60

    @property
    def requests_per_event(self) -> float:
        """Requests Kochava saw during the outage, per event posted."""
        return self.requests_during_outage / self.events if self.events else 0.0

    @property
    def drain_s(self) -> float:
        """Time to drain after recovery, in scaled (AWS) seconds."""
        return self.drain_real_s * self.time_scale

    def request_bound(self, policy: BreakerPolicy, *, batch_size: int, attempts_per_send: int) -> int:
        """The most requests Kochava may see during the outage: the batches in flight when it started (each
        record with its in-process retries, until the breaker opens on ``min_events`` distinct failing events, i.e.
        within the first batch of each poller, plus one more batch each that read the breaker before it opened),
        then one single-attempt probe per probe interval."""
        onset = 2 * self.pollers * batch_size * attempts_per_send
        probes = int(self.outage_s / policy.probe_interval_s) + 1
        return onset + probes


def run_outage(
    *,
    events: int = 500,
    outage_s: float = 6 * 3600,
    time_scale: float = 1440,
    pollers: int = DELIVERY_POLLERS,
    drain_timeout_s: float = 120.0,
) -> OutageResult:
    """Post ``events`` while the sink answers 503 for ``outage_s`` scaled seconds, heal it, wait for the drain.
    ``pollers``: concurrent deliverer invocations (the deployed default maximum concurrency is 5)."""
    bodies = [
        {"batch": [outage_event(i) for i in range(start, min(events, start + EVENTS_PER_BODY))]}
        for start in range(0, events, EVENTS_PER_BODY)
    ]
    with LocalStack(LocalConfig(time_scale=time_scale, concurrency={DELIVERY_QUEUE.key: pollers})) as stack:
        sink = stack.sink
        assert sink is not None, "run_outage needs the local Kochava sink"
        sink.add_rule(lambda request: True, [OUTAGE_STATUS])
        started = time.monotonic()
        accepted = sum(len(body["batch"]) for body in bodies if stack.post("native", body).status_code == 202)
        outage_real_s = outage_s / time_scale
        time.sleep(max(0.0, started + outage_real_s - time.monotonic()))
        sink.clear_behaviour()  # Kochava is back
        requests_during_outage = sum(1 for r in sink.requests if r.reply_status == OUTAGE_STATUS)
        healed = time.monotonic()
        drained = stack.wait_drained(timeout_s=drain_timeout_s, settle_s=0.5)
        drain_real_s = time.monotonic() - healed
        report = stack.report()
        delivered = Counter(
            str(r.json["data"]["event_data"].get("seq", "")) if isinstance(r.json, dict) else "" for r in sink.delivered
        )
        return OutageResult(
            events=events,
            time_scale=time_scale,
            outage_s=outage_s,
            outage_real_s=healed - started,
            pollers=pollers,
            accepted=accepted,
            requests_during_outage=requests_during_outage,
            drain_real_s=drain_real_s,
            drained=drained,
            delivered_per_uuid=delivered,
            dead_lettered={key: len(messages) for key, messages in report.dlq.items()},
            lost=len(report.lost),
        )
