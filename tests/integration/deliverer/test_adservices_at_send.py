"""The 24-hour AdServices window re-applied when the payload is POSTed (spec section 4)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from functions.names import ATTR_REASON
from functions.pipeline.adservices import ATTRIBUTION_KEY, TOKEN_KEY, TOKEN_VALIDITY_S
from tests.integration.deliverer.support import Stack
from tests.samples.deliverer import ADSERVICES_TOKEN, NOW, install_body

RESOLVED = {"attribution": True, "orgId": 40669820, "campaignId": 542370539, "adGroupId": 542317095}


def _posted_data(stack: Stack) -> dict[str, Any]:
    [request] = stack.sink.requests
    data: dict[str, Any] = request.json["data"]
    return data


@pytest.mark.parametrize(
    ("age_s", "token_sent"),
    [
        (TOKEN_VALIDITY_S - 1, True),  # 23 h 59 m 59 s: still fresh
        (TOKEN_VALIDITY_S, False),  # exactly 24 h: stale
        (TOKEN_VALIDITY_S + 3600, False),
    ],
)
def test_the_window_is_checked_at_send_time(stack: Stack, age_s: int, token_sent: bool) -> None:
    stack.send(install_body("ads-1", generated_at=NOW - age_s, attribution=RESOLVED))
    assert stack.run_once() == {"batchItemFailures": []}

    data = _posted_data(stack)
    assert (TOKEN_KEY in data) is token_sent
    if token_sent:
        assert data[TOKEN_KEY] == ADSERVICES_TOKEN
    assert data[ATTRIBUTION_KEY] == RESOLVED  # resolved attribution always travels
    assert stack.sink.violations == []
    stripped_lines = [line for line in stack.log_lines() if line.get("adservices_token_stripped")]
    assert len(stripped_lines) == (0 if token_sent else 1)


def test_a_payload_replayed_from_the_dlq_after_the_window_loses_its_token(stack: Stack) -> None:
    stack.clock.now = NOW
    stack.sink.script([400])  # a config problem at Kochava: dead-lettered while the token was fresh
    body = install_body("ads-replay", generated_at=NOW - 3600, attribution=RESOLVED)
    stack.send(body)
    stack.run_once()
    [dead] = stack.dlq_messages()
    assert dead["attributes"][ATTR_REASON] == "kochava_rejected"
    assert stack.sink.requests[0].json["data"][TOKEN_KEY] == ADSERVICES_TOKEN

    stack.clock.now = NOW + 3 * 24 * 3600  # on-call replays it three days later
    stack.send(dead["body"])
    assert stack.run_once() == {"batchItemFailures": []}

    replayed = stack.sink.requests[-1].json["data"]
    assert TOKEN_KEY not in replayed
    assert replayed[ATTRIBUTION_KEY] == RESOLVED
    assert orjson.loads(dead["body"])["payload"]["data"][TOKEN_KEY] == ADSERVICES_TOKEN  # the DLQ body unchanged


def test_a_stripped_token_is_counted(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    stack.send(install_body("ads-count", generated_at=NOW - 2 * TOKEN_VALIDITY_S))
    stack.run_once()
    emf = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(doc.get("AdServicesTokenStrippedAtSend") in (1.0, [1.0]) for doc in emf)
