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
