"""The deliverer's pure rules: verdicts, backoff, DLQ attributes, log redaction (no AWS, no HTTP)."""

from __future__ import annotations

import pytest

from functions.adapters.sqs import queue_url_from_arn
from functions.deliverer.config import DelivererConfig
from functions.deliverer.core import RETRY_VISIBILITY_CAP_S, dead_letter_for, decide, retry_visibility_s
from functions.messages import DeliveryRecord
from functions.names import ENV_DELIVERER_RETRY_BASE_S, ENV_DELIVERY_DLQ_URL, ENV_IDEMPOTENCY_TABLE
from functions.pipeline import envelope, reasons
from functions.pipeline.masking import redact
from functions.ports import KochavaResult, SendAnswer
from tests.samples.deliverer import ADSERVICES_TOKEN, DEVICE_IP, IDFA, event_body

BODY = event_body("r-1")
ENV = envelope.parse(BODY)


def record(receive_count: int = 1) -> DeliveryRecord:
    return DeliveryRecord(message_id="m-1", receipt_handle="rh", body=BODY, receive_count=receive_count)


@pytest.mark.parametrize(
    ("answer", "receive_count", "verdict", "reason"),
    [
        (SendAnswer("delivered", KochavaResult("delivered", 200)), 1, "delivered", None),
        (SendAnswer("duplicate"), 3, "duplicate", None),
        (SendAnswer("failed", KochavaResult("transient", 503)), 1, "retry", None),
        (SendAnswer("failed", KochavaResult("transient", 503)), 5, "dead_letter", reasons.RETRIES_EXHAUSTED),
        (SendAnswer("failed", KochavaResult("permanent", 400)), 1, "dead_letter", reasons.KOCHAVA_REJECTED),
        (SendAnswer("failed", KochavaResult("bad_response", 200)), 1, "dead_letter", reasons.KOCHAVA_BAD_RESPONSE),
        (SendAnswer("in_progress"), 1, "retry", None),
        (SendAnswer("in_progress"), 5, "dead_letter", reasons.RETRIES_EXHAUSTED),
    ],
)
def test_verdicts(answer: SendAnswer, receive_count: int, verdict: str, reason: str | None) -> None:
    outcome = decide(record(receive_count), ENV, answer, max_attempts=5)
    assert (outcome.verdict, outcome.reason) == (verdict, reason)
    # A dead-letter is reported failed until the DLQ accepted it (process_batch marks it sent).
    assert outcome.reported_failed is (verdict in ("retry", "dead_letter"))


def test_backoff_grows_with_the_receive_count_and_is_capped() -> None:
    assert [retry_visibility_s(n) for n in range(1, 7)] == [30, 60, 120, 240, 480, 900]
    assert retry_visibility_s(1000) == RETRY_VISIBILITY_CAP_S
    assert retry_visibility_s(1, retry_after_s=45.2) == 46
    assert retry_visibility_s(4, retry_after_s=5) == 240
    assert retry_visibility_s(1, retry_after_s=10**6) == RETRY_VISIBILITY_CAP_S


def test_backoff_base_is_configurable_with_cap_and_retry_after_kept() -> None:
    assert [retry_visibility_s(n, base_s=0.5) for n in range(1, 5)] == [1, 1, 2, 4]  # whole seconds, at least 1
    assert retry_visibility_s(30, base_s=0.5) == RETRY_VISIBILITY_CAP_S
    assert retry_visibility_s(1, retry_after_s=45.2, base_s=0.5) == 46
    transient = SendAnswer("failed", KochavaResult("transient", 503))
    assert decide(record(3), ENV, transient, max_attempts=5, retry_base_s=2).visibility_timeout_s == 8


@pytest.mark.parametrize(("raw", "expected"), [(None, 30.0), ("", 30.0), ("0.5", 0.5), ("45", 45.0)])
def test_retry_base_is_read_from_the_environment(raw: str | None, expected: float) -> None:
    env = {ENV_DELIVERY_DLQ_URL: "https://dlq", ENV_IDEMPOTENCY_TABLE: "t"}
    if raw is not None:
        env[ENV_DELIVERER_RETRY_BASE_S] = raw
    assert DelivererConfig.from_env(env).retry_base_s == expected


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_retry_base_is_refused_by_name(raw: str) -> None:
    env = {ENV_DELIVERY_DLQ_URL: "https://dlq", ENV_IDEMPOTENCY_TABLE: "t", ENV_DELIVERER_RETRY_BASE_S: raw}
    with pytest.raises(ValueError, match=ENV_DELIVERER_RETRY_BASE_S):
        DelivererConfig.from_env(env)


def test_dead_letter_message_has_the_design_attributes() -> None:
    result = KochavaResult("permanent", 400, response_body="y" * 3000, error="HTTP 400")
    outcome = decide(record(), ENV, SendAnswer("failed", result), max_attempts=5)
    message = dead_letter_for(outcome, failed_at_ms=123)
    assert message.body == BODY
    assert set(message.attributes) == {
        "stage", "reason", "failed_at_ms", "http_status", "response_body", "error", "uuid", "kind", "event_name"
    }  # fmt: skip
    assert message.attributes["stage"] == "deliverer"
    assert len(str(message.attributes["response_body"])) == 1024
    assert len(message.attributes) <= 10  # the SQS limit


def test_queue_url_from_arn() -> None:
    assert queue_url_from_arn("arn:aws:sqs:us-east-1:1:q") == "https://sqs.us-east-1.amazonaws.com/1/q"
    with pytest.raises(ValueError, match="not an SQS queue ARN"):
        queue_url_from_arn("arn:aws:sns:us-east-1:1:t")


@pytest.mark.parametrize(
    "secret", [IDFA, IDFA.lower(), DEVICE_IP, ADSERVICES_TOKEN, "9774d56d682e549c", "2001:db8::1", "::ffff:10.0.0.1"]
)
def test_redact_masks_identifiers_ips_and_tokens(secret: str) -> None:
    text = f'{{"error": "bad value {secret} here"}}'
    masked = redact(text)
    assert secret not in masked
    assert masked.startswith('{"error": "bad value <')


def test_redact_keeps_ordinary_text_and_is_stable() -> None:
    assert redact("HTTP 503 after 4 attempt(s) at 12:30:45") == "HTTP 503 after 4 attempt(s) at 12:30:45"
    assert redact(IDFA) == redact(IDFA.lower())  # same device, same fingerprint
    assert redact("word " * 200, limit=10) == "word word " + "..."
