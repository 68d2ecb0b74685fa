"""The 24-hour AdServices window re-applied when the payload is POSTed (spec section 4), through the deliverer's
entry point on the in-memory ports (moved from the moto tier, ``tests/integration/deliverer``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from functions.names import ATTR_REASON
from functions.pipeline.adservices import ATTRIBUTION_KEY, TOKEN_KEY, TOKEN_VALIDITY_S
from tests.fakes import DELIVERED, REJECTED
from tests.samples.deliverer import ADSERVICES_TOKEN, NOW, install_body
from tests.unit.deliverer.stack import FakeStack
from tools.local.kochava_sink import track_payload_violations

RESOLVED = {"attribution": True, "orgId": 40669820, "campaignId": 542370539, "adGroupId": 542317095}


def _posted_data(stack: FakeStack) -> dict[str, Any]:
    [post] = stack.kochava.posts
    data: dict[str, Any] = post.payload["data"]
    return data


@pytest.mark.parametrize(
    ("age_s", "token_sent"),
    [
        (TOKEN_VALIDITY_S - 1, True),  # 23 h 59 m 59 s: still fresh
        (TOKEN_VALIDITY_S, False),  # exactly 24 h: stale
        (TOKEN_VALIDITY_S + 3600, False),
    ],
)
def test_the_window_is_checked_at_send_time(stack: FakeStack, age_s: int, token_sent: bool) -> None:
    """Given an install whose token was generated ``age_s`` before the send When it is delivered
    Then the token goes only while fresh (its stripping logged), the resolved attribution always."""
    stack.send(install_body("ads-1", generated_at=NOW - age_s, attribution=RESOLVED))
    assert stack.run_once() == {"batchItemFailures": []}

    data = _posted_data(stack)
    assert (TOKEN_KEY in data) is token_sent
    if token_sent:
        assert data[TOKEN_KEY] == ADSERVICES_TOKEN
    assert data[ATTRIBUTION_KEY] == RESOLVED  # resolved attribution always travels
    assert track_payload_violations(stack.kochava.posts[0].payload) == []  # the local sink's Kochava rules
    stripped_lines = [line for line in stack.log_lines() if line.get("adservices_token_stripped")]
    assert len(stripped_lines) == (0 if token_sent else 1)


def test_a_payload_replayed_from_the_dlq_after_the_window_loses_its_token(stack: FakeStack) -> None:
    """Given an install dead-lettered while its token was fresh When on-call replays it three days later
    Then it is sent without the token, with the attribution, and the DLQ body was left unchanged."""
    stack.clock.now = NOW
    stack.kochava.script(None, REJECTED, DELIVERED)  # a config problem at Kochava, then fixed
    body = install_body("ads-replay", generated_at=NOW - 3600, attribution=RESOLVED)
    stack.send(body)
    stack.run_once()
    [dead] = stack.dlq_messages()
    assert dead["attributes"][ATTR_REASON] == "kochava_rejected"
    assert stack.kochava.posts[0].payload["data"][TOKEN_KEY] == ADSERVICES_TOKEN

    stack.clock.now = NOW + 3 * 24 * 3600
    stack.send(dead["body"])
    assert stack.run_once() == {"batchItemFailures": []}

    replayed = stack.kochava.posts[-1].payload["data"]
    assert TOKEN_KEY not in replayed
    assert replayed[ATTRIBUTION_KEY] == RESOLVED
    assert orjson.loads(dead["body"])["payload"]["data"][TOKEN_KEY] == ADSERVICES_TOKEN  # the DLQ body unchanged


def test_a_stripped_token_is_counted(stack: FakeStack, capsys: pytest.CaptureFixture[str]) -> None:
    """Given an install with a two-day-old token When it is delivered Then the stripped token is counted."""
    stack.send(install_body("ads-count", generated_at=NOW - 2 * TOKEN_VALIDITY_S))
    stack.run_once()
    emf = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(doc.get("AdServicesTokenStrippedAtSend") in (1.0, [1.0]) for doc in emf)
