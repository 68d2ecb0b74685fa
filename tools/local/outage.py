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
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from functions.names import DELIVERY_QUEUE
from functions.pipeline.breaker import BreakerPolicy
from tools.local.stack import LocalConfig, LocalStack
from tools.local.stub_http import RecordedRequest

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
    openings: int = 0  # times the breaker opened (the breaker item's counter)

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
        openings = stack.breaker_state().openings
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
            openings=openings,
        )


@dataclass
class MixResult:
    """What became of a stream of events while Kochava failed some of them (:func:`run_mix`)."""

    accepted: int
    drained: bool
    openings: int  # times the breaker opened
    delivered_per_seq: Counter[str]  # successful POSTs per event (its seq)
    latency_s: dict[str, float]  # seq -> real seconds from its post to its successful POST
    dead_letter_reasons: dict[str, str]  # uuid -> reason, in the delivery DLQ
    failed_requests: int  # requests the sink failed
    failed_per_seq: Counter[str] = field(default_factory=Counter)

    def failed_requests_of(self, seqs: set[str]) -> int:
        return sum(count for seq, count in self.failed_per_seq.items() if seq in seqs)


def run_mix(
    stack: LocalStack,
    *,
    prefix: str,
    bodies: int,
    per_body: int,
    gap_s: float,
    fails: Callable[[str], bool],
    drain_timeout_s: float = 90.0,
) -> MixResult:
    """Post ``bodies`` bodies of ``per_body`` events ``gap_s`` apart (a steady stream) on a running stack whose
    sink answers 503 whenever ``fails(seq)`` holds for the payload's event (called once per request), else
    success; wait for the drain."""
    sink = stack.sink
    assert sink is not None, "run_mix needs the local Kochava sink"
    sink.clear_behaviour()
    sink.add_rule(lambda request: fails(_seq(request)), [OUTAGE_STATUS])
    posted: dict[str, float] = {}
    accepted = 0
    for b in range(bodies):
        events = [outage_event(b * per_body + i) for i in range(per_body)]
        for event in events:
            event["uuid"] = event["properties"]["seq"] = f"{prefix}-{event['uuid']}"  # type: ignore[index]
            device = f"{zlib.crc32(prefix.encode()) & 0xFFFF:04x}{len(posted):012x}"  # 16 hex: an Android id
            event["device"] = {"platform": "android", "id": device}
            posted[str(event["uuid"])] = time.time()
        accepted += len(events) if stack.post("native", {"batch": events}).status_code == 202 else 0
        time.sleep(gap_s)
    drained = stack.wait_drained(timeout_s=drain_timeout_s, settle_s=0.5)
    sink.clear_behaviour()
    delivered = Counter(_seq(r) for r in sink.delivered if _seq(r).startswith(prefix))
    latency = {seq: min(r.received_at for r in sink.delivered if _seq(r) == seq) - posted[seq] for seq in delivered}
    reasons = {
        m.uuid or "": m.reason or ""
        for m in stack.dlq_messages().get(DELIVERY_QUEUE.key, [])
        if (m.uuid or "").startswith(prefix)
    }
    failed = Counter(_seq(r) for r in sink.requests if r.reply_status == OUTAGE_STATUS and _seq(r).startswith(prefix))
    openings = stack.breaker_state().openings
    return MixResult(accepted, drained, openings, delivered, latency, reasons, sum(failed.values()), failed)


def _seq(request: RecordedRequest) -> str:
    body = request.json
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        return ""
    data = body["data"].get("event_data")
    return str(data.get("seq", "")) if isinstance(data, dict) else ""
