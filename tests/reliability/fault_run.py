"""The fault-injection run: 1,000 events through the local stack against a misbehaving Kochava, then a replay.

:func:`run_faults` posts the traffic of ``traffic.py`` over real HTTP, lets the pipeline drain against the faulty
sink, records what happened, heals the sink, replays the DLQs with ``python -m tools.dlq`` as on-call would, drains
again and records again. The stack is stopped before it returns, so tests only read the snapshots.

The accounting below (:func:`fates`) is built from observations only: the sink's answers and the DLQ contents.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from functions import names as r
from tests.reliability.lambda_logs import LambdaLogCapture
from tests.reliability.traffic import (
    API_400,
    DELIVER,
    FILTER,
    PlannedEvent,
    Request,
    Traffic,
    build_traffic,
    fault_script,
    sink_key,
)
from tools.local import aws
from tools.local.report import DlqMessage, Report
from tools.local.stack import LocalConfig, LocalStack
from tools.local.stub_http import RecordedRequest

REPO = Path(__file__).resolve().parents[2]
# Draining is waited for as long as the pipeline moves (a loaded machine is slow, not stuck): the run gives up on a
# phase after STALL_S without a new Kochava request or a change in the queues, or after DRAIN_LIMIT_S in all.
STALL_S = 30.0
DRAIN_LIMIT_S = 200.0
# The deliverer's HTTP timings divided like the rest of the local stack's time (tools.local.aws.TIME_SCALE): a
# 10 s read timeout would make the 2 % of hanging Kochava requests cost minutes. The rules are the deployed ones.
READ_TIMEOUT_S = 1.0
DELIVERY_CONCURRENCY = 2


@dataclass
class Phase:
    """What the pipeline had done when it drained (or gave up draining)."""

    drained: bool
    seconds: float
    report: Report
    dlq: dict[str, list[DlqMessage]]  # queue key -> messages
    sink_requests: list[RecordedRequest]

    @property
    def sink_successes(self) -> Counter[tuple[str, str] | None]:
        """How many times Kochava answered success, per (kind, usertime | user id) of the payload (answers the
        deliverer never read included)."""
        return Counter({key: len(answers) for key, answers in self.successes_by_key.items()})

    @property
    def successes_by_key(self) -> dict[tuple[str, str] | None, list[RecordedRequest]]:
        """Kochava's success answers per (kind, usertime | user id) of the payload, in arrival order."""
        out: dict[tuple[str, str] | None, list[RecordedRequest]] = defaultdict(list)
        for request in self.sink_requests:
            if request.reply_status == 200 and request.json:
                out[sink_key(request)].append(request)
        return out

    @property
    def successes_after_a_read_one(self) -> dict[tuple[str, str] | None, list[str]]:
        """The payloads Kochava answered success for again after the deliverer had read a success for them.

        The delivery guarantee is exactly once "unless Kochava's answer is lost" (README): a success written after
        the deliverer's read timeout fired (a starved machine) never reaches it, so it tries again and Kochava says
        success twice. The sink records such answers (``RecordedRequest.answer_lost``); a success that follows a
        success the deliverer did read is a duplicate the pipeline made. Per payload: its answers, each ``200``
        or ``200 lost`` with the seconds between receipt and answer.
        """
        out: dict[tuple[str, str] | None, list[str]] = {}
        for key, answers in self.successes_by_key.items():
            if any(not answer.answer_lost for answer in answers[:-1]):
                out[key] = [_answer_figure(answer) for answer in answers]
        return out

    @property
    def lost_answers(self) -> list[RecordedRequest]:
        """The answers (any status) the sink wrote after the deliverer had given up on the request."""
        return [request for request in self.sink_requests if request.answer_lost]


def _answer_figure(answer: RecordedRequest) -> str:
    lost = " lost" if answer.answer_lost else ""
    return f"{answer.reply_status}{lost} after {(answer.replied_at or answer.received_at) - answer.received_at:.2f} s"


@dataclass
class FaultRun:
    traffic: Traffic
    answers: list[tuple[Request, requests.Response]]
    post_seconds: float
    faulty: Phase
    replay_exit: int
    replay: dict[str, Any]  # tools.dlq --json document
    replay_output: str
    healed: Phase
    logs: str
    sink_violations: list[tuple[str, str]]


def _wait_drained(stack: LocalStack) -> bool:
    """Wait for the drain while the pipeline makes progress (see :data:`STALL_S`)."""
    assert stack.sink is not None
    deadline = time.monotonic() + DRAIN_LIMIT_S
    seen: tuple[int, dict[str, int]] | None = None
    while time.monotonic() < deadline:
        if stack.wait_drained(timeout_s=min(STALL_S, max(0.0, deadline - time.monotonic()))):
            return True
        now = (len(stack.sink.requests), stack.queue_depths())
        if now == seen:
            return False
        seen = now
    return False


def _snapshot(stack: LocalStack, started: float) -> Phase:
    drained = _wait_drained(stack)
    seconds = time.monotonic() - started
    assert stack.sink is not None
    report = stack.report()
    return Phase(drained, seconds, report, report.dlq, list(stack.sink.requests))


def _install_scaled_deliverer() -> Any:
    """Give the (freshly imported) deliverer a runtime whose Kochava timeouts follow the local time scale."""
    from functions.adapters.kochava_http import HttpPolicy
    from functions.deliverer import handler

    policy = HttpPolicy(
        connect_timeout_s=1.0,
        read_timeout_s=READ_TIMEOUT_S,
        backoff_factor_s=0.5 / aws.TIME_SCALE,
        backoff_jitter_s=0.5 / aws.TIME_SCALE,
        backoff_max_s=8.0 / aws.TIME_SCALE,
        retry_after_max_s=1,
    )
    runtime = handler.build_runtime(os.environ, http_policy=policy)
    handler.set_runtime(runtime)
    return runtime


def _replay(stack: LocalStack) -> tuple[int, dict[str, Any], str]:
    """``python -m tools.dlq --endpoint-url ... replay`` (everything), as on-call runs it."""
    command = [sys.executable, "-m", "tools.dlq", "--endpoint-url", stack.endpoint_url, "--region", aws.REGION]
    done = subprocess.run(
        [*command, "--json", "replay"], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    try:
        document = json.loads(done.stdout)
    except ValueError:
        document = {}
    return done.returncode, document, done.stdout + done.stderr


def sink_statuses(phase: Phase) -> Counter[str]:
    """How Kochava (the sink) answered, per status (``timeout`` when it said nothing)."""
    return Counter(str(request.reply_status or "timeout") for request in phase.sink_requests)


def run_faults(log_path: Path) -> FaultRun:
    """The whole run (about a minute); the Lambdas' logs are written to ``log_path``."""
    traffic = build_traffic()
    config = LocalConfig(log_level="INFO", concurrency={r.DELIVERY_QUEUE.key: DELIVERY_CONCURRENCY})
    runtime = None
    try:
        with LocalStack(config) as stack:
            assert stack.sink is not None, "the run needs the local Kochava sink"
            runtime = _install_scaled_deliverer()
            stack.sink.script(fault_script())
            with LambdaLogCapture(log_path) as capture:
                started = time.monotonic()
                answers = [(request, stack.post(request.route, request.text())) for request in traffic.requests]
                post_seconds = time.monotonic() - started
                faulty = _snapshot(stack, started)
                stack.sink.clear_behaviour()  # Kochava is healthy again (and the "fix" for its 400s is deployed)
                started = time.monotonic()
                replay_exit, replay, replay_output = _replay(stack)
                healed = _snapshot(stack, started)
            violations = list(stack.sink.violations)
    finally:
        if runtime is not None:
            runtime.close()
    return FaultRun(
        traffic,
        answers,
        post_seconds,
        faulty,
        replay_exit,
        replay,
        replay_output,
        healed,
        capture.text(),
        violations,
    )


DELIVERED = "delivered"
FILTERED = "filtered"
LOST = "lost"
DELIVERY_FAILURES = ("delivery DLQ: kochava_rejected", "delivery DLQ: retries_exhausted")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")


def accepted_events(run: FaultRun) -> list[PlannedEvent]:
    return [event for event in run.traffic.events if event.expect != API_400]


def dlq_by_uuid(phase: Phase) -> dict[str, list[DlqMessage]]:
    out: dict[str, list[DlqMessage]] = defaultdict(list)
    for messages in phase.dlq.values():
        for message in messages:
            out[message.uuid or "?"].append(message)
    return out


def fates(run: FaultRun, phase: Phase) -> dict[str, str]:
    """The observed fate of every distinct accepted event: from the sink's answers and the DLQ contents.

    ``delivered``: Kochava answered success for its payload, once, or more often where each answer but the last
    never reached the deliverer (:attr:`Phase.successes_after_a_read_one`); ``delivered N times`` is a duplicate;
    ``<queue> DLQ: <reason>``: never delivered and dead-lettered with that reason; ``filtered``: a filtered event
    that reached neither Kochava nor a DLQ; anything else is ``lost``.
    """
    successes = phase.sink_successes
    duplicated = phase.successes_after_a_read_one
    dead = dlq_by_uuid(phase)
    out: dict[str, str] = {}
    for event in accepted_events(run):
        times = successes[event.sink_key] if event.sink_key else 0
        if times >= 1 and event.sink_key not in duplicated:
            out[event.uuid] = DELIVERED
        elif times > 1:
            out[event.uuid] = f"delivered {times} times"
        elif dead[event.uuid]:
            message = dead[event.uuid][0]
            out[event.uuid] = f"{message.queue_key} DLQ: {message.reason}"
        elif event.expect == FILTER:
            out[event.uuid] = FILTERED
        else:
            out[event.uuid] = LOST
    return out


def allowed_fates(event: PlannedEvent) -> tuple[str, ...]:
    if event.expect == DELIVER:
        return (DELIVERED, *DELIVERY_FAILURES)
    if event.expect == FILTER:
        return (FILTERED,)
    return (f"ingest DLQ: {event.reason}",)


def figures(run: FaultRun, phase: Phase) -> str:
    counts = Counter(fates(run, phase).values())
    return ", ".join(f"{fate} {count}" for fate, count in sorted(counts.items()))


def summary(run: FaultRun) -> str:
    """The run's figures, as docs/reliability.md reports them."""
    answers = Counter(response.status_code for _, response in run.answers)
    lines = [
        f"requests {len(run.answers)} ({', '.join(f'{n} x {s}' for s, n in sorted(answers.items()))}), "
        f"posted in {run.post_seconds:.1f} s",
        f"events {len(run.traffic.events)} distinct, {len(accepted_events(run))} accepted, "
        f"{len(run.traffic.duplicated)} sent twice",
    ]
    for name, phase in (("faulty Kochava", run.faulty), ("after heal + replay", run.healed)):
        lost = phase.lost_answers
        lines.append(
            f"{name}: drained={phase.drained} in {phase.seconds:.1f} s; fates: {figures(run, phase)}; "
            f"sink answers: {dict(sorted(sink_statuses(phase).items()))}; "
            f"answers lost (written after the deliverer gave up): {[_answer_figure(answer) for answer in lost]}"
        )
    lines.append(
        f"replay exit {run.replay_exit}: "
        + "; ".join(
            f"{q['dlq']} moved {q['moved']} refused {len(q['refused'])} failed {len(q['failed'])}"
            for q in run.replay.get("queues", [])
        )
    )
    lines.append(f"lambda log: {len(run.logs.splitlines())} lines")
    return "\n".join(lines)
