"""What on-call sees: JSON logs with the event uuid as correlation id, and never a raw IDFA, IP or token."""

from __future__ import annotations

import pytest

from tests.integration.deliverer.support import Stack
from tests.samples.deliverer import ADSERVICES_TOKEN, DEVICE_IP, IDFA, IDFV, NOW, event_body, install_body
from tools.local.stub_http import Reply

ECHO = {"success": "0", "error": f"device {IDFA} / {IDFV} from {DEVICE_IP} token {ADSERVICES_TOKEN} rejected"}


def test_a_whole_run_logs_no_raw_idfa_ip_or_token(stack: Stack, capfd: pytest.CaptureFixture[str]) -> None:
    # Every path that logs: delivered, duplicate, 4xx echoing the payload, bad 200 echoing it, transient 5xx
    # echoing it, a stripped token, retries exhausted.
    stack.sink.add_rule(lambda r: r.json["data"].get("event_name") == "Rejected", [Reply.json(400, ECHO)])
    stack.sink.add_rule(lambda r: r.json["data"].get("event_name") == "Odd", [Reply.json(200, ECHO)])
    stack.sink.add_rule(lambda r: r.json["data"].get("event_name") == "Down", [Reply.json(503, ECHO)])
    stack.send(
        event_body("log-ok"),
        event_body("log-ok"),
        event_body("log-400", event_name="Rejected"),
        event_body("log-odd", event_name="Odd"),
        event_body("log-503", event_name="Down"),
        install_body("log-install", generated_at=NOW - 2 * 24 * 3600),
    )
    for _ in range(6):
        event = stack.receive()
        if not event["Records"]:
            break
        stack.invoke(event)
        stack.make_visible(event)

    logged = stack.logs.getvalue() + capfd.readouterr().out
    assert logged  # the run did log
    for secret in (IDFA, IDFA.lower(), IDFV, DEVICE_IP, ADSERVICES_TOKEN, ADSERVICES_TOKEN[:40]):
        assert secret not in logged, f"{secret[:12]}... leaked into the logs"

    lines = stack.log_lines()
    per_record = [line for line in lines if "verdict" in line]
    assert {line["verdict"] for line in per_record} >= {"delivered", "duplicate", "dead_letter", "retry"}
    assert all(line["correlation_id"].startswith("log-") for line in per_record)
    rejected = next(line for line in per_record if line["correlation_id"] == "log-400")
    assert rejected["reason"] == "kochava_rejected"
    assert "<ip>" in rejected["response_body"]  # masked, still readable
