"""``python -m tools.local --once`` as a user runs it, and ``tools.dlq`` pointed at the local stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.shared import Run

ROOT = Path(__file__).resolve().parents[2]


def clean_env() -> dict[str, str]:
    """The caller's environment without AWS settings (the local stack sets what it needs itself)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KOCHAVA_", "POWERTOOLS_"))}


def test_make_local_once_exits_0_and_prints_the_report(tmp_path: Path) -> None:
    lambda_log = tmp_path / "lambdas.log"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.local",
            "--once",
            "--port",
            "0",
            "--aws-port",
            "0",
            "--lambda-log",
            str(lambda_log),
        ],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "AWS endpoint (moto)  http://127.0.0.1:" in out
    assert "=== local pipeline report ===" in out
    assert "lost         0" in out
    assert "in DLQ kochava-local-ingest-dlq: 4" in out
    for action in ("install", "event", "identityLink"):
        assert f"  {action}: {{" in out
    assert "result: OK" in out
    assert '"level":' in lambda_log.read_text()  # the Lambdas' JSON logs went to the file, not the terminal


def run_module(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` from the repo root, as a user runs it (without the caller's AWS settings)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60
    )


def test_the_dlq_tool_lists_the_local_dlqs(run: Run) -> None:
    done = run_module("tools.dlq", "--endpoint-url", run.stack.endpoint_url, "list")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kochava-local-ingest-dlq" in done.stdout
    assert "invalid_event" in done.stdout
    assert "no_device_identifier" in done.stdout


def test_the_serving_counters_count_queued_in_flight_and_parked_and_looking_does_not_change_them(run: Run) -> None:
    before = run.stack.summary()
    assert "ingest 0 queued / 0 in flight" in before and "delivery 0 queued / 0 in flight" in before
    parked = before.split("parked: ")[1]
    assert parked.startswith("ingest DLQ ") and int(parked.split()[2].rstrip(",")) > 0
    from tools.local import aws

    sqs = aws.client("sqs", run.stack.endpoint_url)
    dlq = sqs.get_queue_url(QueueName=f"{run.stack.names.prefix}-ingest-dlq")["QueueUrl"]
    looked = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
    try:  # a tool is looking at the DLQ: its messages are hidden while it reads them
        assert looked and run.stack.summary() == before
    finally:
        sqs.change_message_visibility_batch(
            QueueUrl=dlq,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(looked)
            ],
        )


def test_serving_hints_carry_their_flags_and_each_stack_has_its_own_logs(tmp_path: Path) -> None:
    """``make local`` while serving: the trace hint has --lambda-log, the log and the sink's record are per stack
    (named by the AWS port), the counters show queued / in flight / parked, and the sink's record holds what
    Kochava got."""
    from tools.local import default_lambda_log, default_sink_log

    serving = subprocess.Popen(
        [sys.executable, "-m", "tools.local", "--port", "0", "--aws-port", "0"],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert serving.stdout is not None
        for line in serving.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C to stop."):
                break
        endpoint = next(ln.split()[3] for ln in lines if ln.startswith("AWS endpoint (moto)"))
        text = "".join(lines)
        assert f"--lambda-log {default_lambda_log(endpoint)}" in text
        assert f"Kochava sink got     {default_sink_log(endpoint)}" in text
        assert ":4566-" not in str(default_lambda_log(endpoint)) or endpoint.endswith(":4566")
        records = [ln for ln in default_sink_log(endpoint).read_text().splitlines() if ln]
        assert records and all('"status": ' in r for r in records)
        trace_hint = next(ln.strip() for ln in lines if "python -m tools.trace" in ln)
        argv = trace_hint.replace("<uuid>", "no-such-uuid").split()[3:]
        traced = run_module("tools.trace", *argv)
        assert traced.returncode == 1 and "no-such-uuid" in traced.stdout, traced.stdout + traced.stderr
        assert "could not search" not in traced.stderr  # the log file was found and read
    finally:
        serving.terminate()
        serving.wait(timeout=30)
