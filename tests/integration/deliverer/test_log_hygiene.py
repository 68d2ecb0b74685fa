"""The deliverer's logs never hold user agents, user ids, consent strings, referrers or e-mail addresses, even when
Kochava's answer echoes the payload back (JSON-shaped or plain text)."""

from __future__ import annotations

import pytest

from tests.integration.deliverer.support import Stack, event_body
from tools.local.stub_http import Reply

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


def test_kochava_echoes_of_personal_data_are_masked_in_the_logs(
    stack: Stack, capfd: pytest.CaptureFixture[str]
) -> None:
    stack.sink.add_rule(lambda r: r.json["data"].get("event_name") == "EchoJson", [Reply.json(400, ECHO_JSON)])
    stack.sink.add_rule(lambda r: r.json["data"].get("event_name") == "EchoText", [Reply(400, ECHO_TEXT.encode())])
    stack.send(event_body("echo-json", event_name="EchoJson"), event_body("echo-text", event_name="EchoText"))
    event = stack.receive()
    stack.invoke(event)

    logged = stack.logs.getvalue() + capfd.readouterr().out

    rejected = [line for line in stack.log_lines() if line.get("reason") == "kochava_rejected"]
    assert {line["correlation_id"] for line in rejected} == {"echo-json", "echo-text"}
    assert all("<redacted>" in line["response_body"] or "<email>" in line["response_body"] for line in rejected)
    leaked = [value[:16] for value in (UA, USER_ID, TC_STRING, REFERRER, EMAIL) if value in logged]
    assert leaked == []
