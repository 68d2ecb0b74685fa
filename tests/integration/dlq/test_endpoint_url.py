"""``python -m tools.dlq --endpoint-url URL`` against a moto server in its own process, as on-call runs it against
the local stack: no AWS credentials or config in the environment, queues found by the project's names."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.dlq.helpers import REGION, Queues, counts, create_queues, put_delivery_dead, put_ingest_dead

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server() -> Iterator[str]:
    port = free_port()
    moto_server = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("moto server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def clean_env(tmp_path: Path) -> dict[str, str]:
    """No AWS_* variables and a HOME without ~/.aws: the tool must bring its own dummy credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)
    return env


def tool(endpoint: str, env: dict[str, str], *argv: str) -> tuple[int, Any, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.dlq", "--endpoint-url", endpoint, "--json", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None, proc.stderr


def test_endpoint_url_alone_just_works(server: str, tmp_path: Path) -> None:
    sqs = boto3.client("sqs", endpoint_url=server, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    q: Queues = create_queues(sqs)
    put_delivery_dead(q, "d-1", "retries_exhausted")
    put_delivery_dead(q, "d-2", "kochava_bad_response")
    put_ingest_dead(q, "e-1", "invalid_event")
    env = clean_env(tmp_path)

    code, doc, err = tool(server, env, "list")
    assert code == 0, err
    assert {x["dlq"]: x["scanned"] for x in doc["queues"]} == {
        "kochava-local-ingest-dlq": 1,
        "kochava-local-delivery-dlq": 2,
    }
    assert counts(sqs, q.delivery_dlq) == (2, 0)

    # The whole delivery DLQ: the server answers StartMessageMoveTask with an error; the tool falls back.
    code, doc, err = tool(server, env, "--dlq", "delivery", "replay")
    assert code == 0, err
    [report] = doc["queues"]
    assert report["moved"] == 2 and any("fell back" in n for n in report["notes"])
    assert counts(sqs, q.delivery) == (2, 0) and counts(sqs, q.delivery_dlq) == (0, 0)
