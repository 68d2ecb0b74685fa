"""What on-call sees of the deliverer, through its entry point on the in-memory ports (moved from the moto tier,
``tests/integration/deliverer/test_logs.py``, ``test_log_hygiene.py`` and two of ``test_handler.py``): JSON logs
with the event uuid as correlation id that never hold a raw IDFA, IP, token, user agent, user id, consent string,
referrer or e-mail address, even when Kochava's answer echoes the payload back; the EMF metrics; the back-off base
read from the environment. Kochava's answers are what the HTTP adapter makes of them
(:func:`tests.fakes.kochava_answer`, its own ``classify_answer``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import pytest

from functions.names import ENV_DELIVERER_RETRY_BASE_S
from functions.pipeline import reasons
from functions.pipeline.envelope import Kind
from tests.fakes import TRANSIENT, kochava_answer
from tests.samples.deliverer import ADSERVICES_TOKEN, DEVICE_IP, IDFA, IDFV, NOW, event_body, install_body
from tests.unit.deliverer.stack import FakeStack

ECHO = {"success": "0", "error": f"device {IDFA} / {IDFV} from {DEVICE_IP} token {ADSERVICES_TOKEN} rejected"}

UA = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240105.004)"
USER_ID = "user-private-7731"
TC_STRING = "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"
REFERRER = "utm_source=friend&gclid=EAIaIQobChMIprivate"
EMAIL = "jo.doe@example.com"
ECHO_JSON = {
    "success": "0",
    "error": "invalid payload",
    "payload": {"device_ua": UA, "user_id": USER_ID, "tc_string": TC_STRING, "referrer": REFERRER, "email": EMAIL},
}
ECHO_TEXT = f"bad device_ua={UA} for {EMAIL}"


def named(event_name: str) -> Callable[[Kind, Mapping[str, Any]], bool]:
    """Kochava's payloads of events named ``event_name``."""
    return lambda kind, payload: payload["data"].get("event_name") == event_name


def test_a_whole_run_logs_no_raw_idfa_ip_or_token(stack: FakeStack, capfd: pytest.CaptureFixture[str]) -> None:
    """Given every path that logs: delivered, duplicate, a 4xx echoing the payload, a bad 200 echoing it, a
    transient 5xx echoing it, a stripped token, retries exhausted
    When the batches run until nothing is left
    Then no raw IDFA, IDFV, IP or token is in the logs, each record line has its uuid, the echo is masked."""
    echo = json.dumps(ECHO)
    stack.kochava.rule(named("Rejected"), kochava_answer(400, echo))
    stack.kochava.rule(named("Odd"), kochava_answer(200, echo))
    stack.kochava.rule(named("Down"), kochava_answer(503, echo, attempts=4))
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


def test_kochava_echoes_of_personal_data_are_masked_in_the_logs(
    stack: FakeStack, capfd: pytest.CaptureFixture[str]
) -> None:
    """Given Kochava refusing two events with an echo of personal data, JSON-shaped and plain text
    When the batch runs Then both refusals are logged with the echo masked, and no personal value is in the logs."""
    stack.kochava.rule(named("EchoJson"), kochava_answer(400, json.dumps(ECHO_JSON)))
    stack.kochava.rule(named("EchoText"), kochava_answer(400, ECHO_TEXT))
    stack.send(event_body("echo-json", event_name="EchoJson"), event_body("echo-text", event_name="EchoText"))
    event = stack.receive()
    stack.invoke(event)

    logged = stack.logs.getvalue() + capfd.readouterr().out

    rejected = [line for line in stack.log_lines() if line.get("reason") == "kochava_rejected"]
    assert {line["correlation_id"] for line in rejected} == {"echo-json", "echo-text"}
    assert all("<redacted>" in line["response_body"] or "<email>" in line["response_body"] for line in rejected)
    leaked = [value[:16] for value in (UA, USER_ID, TC_STRING, REFERRER, EMAIL) if value in logged]
    assert leaked == []


def test_retry_backoff_base_comes_from_the_environment(stack: FakeStack) -> None:
    """Given DELIVERER_RETRY_BASE_S=2 (tools/local scales it down) and Kochava down
    When an event fails on two receives Then it is backed off 2 s, then 4 s (doubling, cap and Retry-After stay)."""
    stack.env[ENV_DELIVERER_RETRY_BASE_S] = "2"
    stack.use_runtime()
    stack.kochava.rule(lambda kind, payload: True, TRANSIENT)
    stack.send(event_body("u-base"))
    event = stack.receive()
    stack.invoke(event)
    stack.make_visible(event)
    stack.invoke(stack.receive())
    assert [line["visibility_timeout_s"] for line in stack.log_lines() if line.get("verdict") == "retry"] == [2, 4]
    assert [seconds for _, seconds in stack.dlq.back_offs] == [2, 4]


def test_emf_metrics_are_emitted(stack: FakeStack, capsys: pytest.CaptureFixture[str]) -> None:
    """Given one event delivered and one refused When the batch runs
    Then the EMF documents count one delivery and one dead letter with its reason."""
    stack.kochava.rule(named("Rejected"), kochava_answer(400))
    stack.send(event_body("m-1"), event_body("m-2", event_name="Rejected"))
    stack.run_once()
    documents = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    values: dict[str, object] = {}
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                values[f"{metric['Name']}|{document.get('reason', '')}"] = document[metric["Name"]]
    assert values["Delivered|"] == [1.0] or values["Delivered|"] == 1.0
    assert values[f"DeadLettered|{reasons.KOCHAVA_REJECTED}"] in (1.0, [1.0])
