"""The AdServices client against a real local server (tools.local.apple_stub): one attempt per call, typed result."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from functions.adapters.apple import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_READ_TIMEOUT_S,
    RequestsAdServicesClient,
    classify_apple_answer,
)
from functions.pipeline.settings import DEFAULT_ADSERVICES_URL
from tools.local.apple_stub import DEVELOPER_MODE_PAYLOAD, AppleStub, attribution_payload
from tools.local.stub_http import Reply

TOKEN = "a0B1c2D3e4F5g6H7i8J9k0L1m2N3o4P5q6R7s8T9u0V1w2X3y4Z5==" * 3


@pytest.fixture
def apple() -> Iterator[AppleStub]:
    with AppleStub() as stub:
        yield stub


@pytest.fixture
def client(apple: AppleStub) -> Iterator[RequestsAdServicesClient]:
    c = RequestsAdServicesClient(apple.api_url, connect_timeout_s=0.5, read_timeout_s=0.4)
    yield c
    c.close()


def test_defaults_follow_apple_guidance() -> None:
    assert DEFAULT_ADSERVICES_URL == "https://api-adservices.apple.com/api/v1/"
    assert DEFAULT_READ_TIMEOUT_S > 1  # Apple may hold a 404 open for about a second
    assert DEFAULT_CONNECT_TIMEOUT_S >= 1
    assert RequestsAdServicesClient().url == DEFAULT_ADSERVICES_URL


def test_200_resolves_and_posts_the_raw_token_as_text(client: RequestsAdServicesClient, apple: AppleStub) -> None:
    apple.script(TOKEN, [attribution_payload(campaign_id=77)])
    result = client.resolve(TOKEN)

    assert result.status == "resolved" and result.resolved
    assert result.attribution is not None and result.attribution["campaignId"] == 77
    assert not result.developer_mode
    [request] = apple.requests
    assert request.method == "POST"
    assert request.headers["content-type"].startswith("text/plain")
    assert request.body == TOKEN.encode()
    assert request.violations == []


def test_organic_answer_is_resolved_too(client: RequestsAdServicesClient, apple: AppleStub) -> None:
    apple.script(TOKEN, [attribution_payload(attributed=False)])
    result = client.resolve(TOKEN)
    assert result.resolved
    assert result.attribution == {"attribution": False}


def test_developer_mode_payload_is_flagged(client: RequestsAdServicesClient, apple: AppleStub) -> None:
    apple.script(TOKEN, [DEVELOPER_MODE_PAYLOAD])
    result = client.resolve(TOKEN)
    assert result.resolved
    assert result.developer_mode


@pytest.mark.parametrize(
    ("status", "expected", "retryable"),
    [(400, "invalid", False), (404, "not_ready", True), (500, "unavailable", True), (503, "unavailable", True)],
)
def test_status_classification(
    client: RequestsAdServicesClient, apple: AppleStub, status: int, expected: str, retryable: bool
) -> None:
    apple.script(TOKEN, [status])
    result = client.resolve(TOKEN)
    assert result.status == expected
    assert result.http_status == status
    assert result.retryable is retryable
    assert result.attribution is None
    assert TOKEN not in result.error


def test_no_retry_inside_the_client(client: RequestsAdServicesClient, apple: AppleStub) -> None:
    apple.script(TOKEN, [404, 404, attribution_payload()])
    assert [client.resolve(TOKEN).status for _ in range(3)] == ["not_ready", "not_ready", "resolved"]
    assert apple.calls_for(TOKEN) == 3  # one request per call: the caller schedules the 5 s retries


def test_timeout_is_unavailable(client: RequestsAdServicesClient, apple: AppleStub) -> None:
    apple.script(TOKEN, [Reply.hanging(2)])
    started = time.monotonic()
    result = client.resolve(TOKEN)
    assert time.monotonic() - started < 1.0
    assert result.status == "unavailable"
    assert result.http_status is None
    assert "timeout" in result.error


def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = RequestsAdServicesClient(f"http://127.0.0.1:{port}/api/v1/", connect_timeout_s=0.3).resolve(TOKEN)
    assert result.status == "unavailable"
    assert TOKEN not in result.error


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]"])
def test_a_200_that_is_not_an_object_is_unavailable(body: bytes) -> None:
    assert classify_apple_answer(200, body).status == "unavailable"


def test_the_stub_answers_unknown_tokens_with_its_default(apple: AppleStub, client: RequestsAdServicesClient) -> None:
    assert client.resolve("never-scripted").status == "not_ready"
