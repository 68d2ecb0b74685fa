"""The Kochava HTTP client against a real local server (tools.local.kochava_sink): no mock of requests."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator

import pytest

from functions.adapters.kochava_http import (
    NO_DEVICE_UA_USER_AGENT,
    PROJECT_USER_AGENT,
    HttpPolicy,
    RequestsKochavaClient,
    classify_answer,
    is_success_body,
)
from functions.ports import KochavaResult
from functions.version import __version__
from tests.samples.deliverer import IDFV, IOS_APP, event_payload
from tools.local.kochava_sink import IDENTITYLINK_PATH, TRACK_PATH, KochavaSink
from tools.local.stub_http import Reply

POLICY = HttpPolicy(
    connect_timeout_s=0.5,
    read_timeout_s=0.4,
    max_retries=3,
    backoff_factor_s=0.02,
    backoff_jitter_s=0.02,
    backoff_max_s=0.2,
    retry_after_max_s=5,
    pool_size=4,
)
# A payload that obeys Kochava's rules (the sink refuses any other with a 400).
PAYLOAD = event_payload("u-1")
IDENTITY_PAYLOAD = {"kochava_app_id": IOS_APP, "device_id": {"idfv": IDFV}, "data": {"user_id": "user-1"}}


@pytest.fixture
def sink() -> Iterator[KochavaSink]:
    with KochavaSink() as server:
        yield server


@pytest.fixture
def client(sink: KochavaSink) -> Iterator[RequestsKochavaClient]:
    with RequestsKochavaClient(sink.track_url, sink.identitylink_url, POLICY) as c:
        yield c


def soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


def test_delivered(client: RequestsKochavaClient, sink: KochavaSink) -> None:
    result = client.send("event", PAYLOAD, deadline=soon())
    assert result.outcome == "delivered"
    assert (result.http_status, result.attempts) == (200, 1)
    assert sink.requests[0].json == PAYLOAD
    assert sink.requests[0].headers["content-type"] == "application/json"


def test_kinds_go_to_their_endpoints(client: RequestsKochavaClient, sink: KochavaSink) -> None:
    for kind, payload in (("install", PAYLOAD), ("event", PAYLOAD), ("identityLink", IDENTITY_PAYLOAD)):
        assert client.send(kind, payload, deadline=soon()).delivered
    assert [r.path for r in sink.requests] == [TRACK_PATH, TRACK_PATH, IDENTITYLINK_PATH]


def test_no_device_ua_means_the_user_agent_unknown(client: RequestsKochavaClient, sink: KochavaSink) -> None:
    """Kochava's "S2S without Device UA": the header it needs to build the agent from device_ver."""
    assert "device_ua" not in PAYLOAD["data"]
    assert client.send("event", PAYLOAD, deadline=soon()).delivered
    assert client.send("identityLink", IDENTITY_PAYLOAD, deadline=soon()).delivered
    assert [r.headers["user-agent"] for r in sink.requests] == [NO_DEVICE_UA_USER_AGENT] * 2


def test_with_a_device_ua_the_user_agent_names_this_project(client: RequestsKochavaClient, sink: KochavaSink) -> None:
    with_ua = event_payload("u-2", device_ua="Mozilla%2F5.0%20(iPhone%3B%20CPU%20iPhone%20OS%2017_1)")
    empty_ua = event_payload("u-3", device_ua="")
    assert client.send("event", with_ua, deadline=soon()).delivered
    assert client.send("event", empty_ua, deadline=soon()).delivered
    agents = [r.headers["user-agent"] for r in sink.requests]
    assert agents == [PROJECT_USER_AGENT, NO_DEVICE_UA_USER_AGENT]
    assert agents[0] == f"kochava-pipeline/{__version__}" and "python-requests" not in agents[0]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_retryable_status_then_success(client: RequestsKochavaClient, sink: KochavaSink, status: int) -> None:
    sink.script([status, status, 200])
    result = client.send("event", PAYLOAD, deadline=soon())
    assert result.outcome == "delivered"
    assert result.attempts == 3


def test_retryable_status_for_ever_is_transient_with_the_last_answer(
    client: RequestsKochavaClient, sink: KochavaSink
) -> None:
    sink.add_rule(lambda r: True, [Reply.json(503, {"error": "maintenance"})])
    result = client.send("event", PAYLOAD, deadline=soon())
    assert result.outcome == "transient"
    assert result.http_status == 503
    assert "maintenance" in result.response_body
    assert result.attempts == POLICY.max_retries + 1
    assert len(sink.requests) == POLICY.max_retries + 1


def test_a_single_attempt_probe_is_never_retried(client: RequestsKochavaClient, sink: KochavaSink) -> None:
    sink.add_rule(lambda r: True, [503])
    result = client.send("event", PAYLOAD, deadline=soon(), retry=False)
    assert (result.outcome, result.http_status, result.attempts) == ("transient", 503, 1)
    assert len(sink.requests) == 1
    sink.clear_behaviour()
    sink.script([503, 200])  # the next plain send retries as before
    assert client.send("event", PAYLOAD, deadline=soon()).attempts == 2


def test_a_single_attempt_probe_of_an_unreachable_kochava_makes_one_connection_try() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/track/json"
    with RequestsKochavaClient(url, url, POLICY) as client:
        result = client.send("event", PAYLOAD, deadline=soon(), retry=False)
    assert result.outcome == "transient" and result.attempts == 1


def test_retry_after_is_honoured(client: RequestsKochavaClient, sink: KochavaSink) -> None:
    sink.script([Reply.json(429, {}, {"Retry-After": "1"}), 200])
    started = time.monotonic()
    assert client.send("event", PAYLOAD, deadline=soon()).delivered
    assert time.monotonic() - started >= 0.95


def test_a_retry_after_past_the_deadline_is_not_waited_for(client: RequestsKochavaClient, sink: KochavaSink) -> None:
    sink.script([Reply.json(429, {}, {"Retry-After": "4"}), 200])
    started = time.monotonic()
    result = client.send("event", PAYLOAD, deadline=soon(3))
    assert time.monotonic() - started < 1
    assert result.outcome == "transient"
    assert (result.http_status, result.retry_after_s, result.attempts) == (429, 4.0, 1)


def test_retries_stop_before_the_deadline(sink: KochavaSink) -> None:
    slow_backoff = HttpPolicy(
        connect_timeout_s=0.2, read_timeout_s=0.2, max_retries=10, backoff_factor_s=0.5, backoff_jitter_s=0.0
    )
    sink.add_rule(lambda r: True, [500])
    with RequestsKochavaClient(sink.track_url, sink.identitylink_url, slow_backoff) as client:
        started = time.monotonic()
        result = client.send("event", PAYLOAD, deadline=started + 2.0)
    assert time.monotonic() - started < 2.0
    assert result.outcome == "transient"
    assert 2 <= result.attempts < 11


def test_no_time_left_sends_nothing(client: RequestsKochavaClient, sink: KochavaSink) -> None:
    result = client.send("event", PAYLOAD, deadline=time.monotonic() + 0.1)
    assert result.outcome == "transient"
    assert result.attempts == 0
    assert sink.requests == []


def test_read_timeout_is_transient_and_not_re_posted(client: RequestsKochavaClient, sink: KochavaSink) -> None:
    sink.script([Reply.hanging(2)])
    started = time.monotonic()
    result = client.send("event", PAYLOAD, deadline=soon())
    assert time.monotonic() - started < 1.0
    assert result.outcome == "transient"
    assert result.http_status is None
    assert "timeout" in result.error.lower()
    assert len(sink.requests) == 1


def test_connection_refused_is_retried_then_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}{TRACK_PATH}"
    with RequestsKochavaClient(url, url, POLICY) as client:
        result = client.send("event", PAYLOAD, deadline=soon())
    assert result.outcome == "transient"
    assert result.http_status is None
    assert result.attempts == POLICY.max_retries + 1
    assert "ConnectionError" in result.error


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_4xx_is_permanent_and_not_retried(client: RequestsKochavaClient, sink: KochavaSink, status: int) -> None:
    sink.script([Reply.json(status, {"error": "nope"})])
    result = client.send("event", PAYLOAD, deadline=soon())
    assert result.outcome == "permanent"
    assert result.http_status == status
    assert "nope" in result.response_body
    assert len(sink.requests) == 1


def test_a_redirect_is_not_followed(client: RequestsKochavaClient, sink: KochavaSink) -> None:
    sink.script([Reply(status=301, headers={"Location": "http://example.invalid/"})])
    result = client.send("event", PAYLOAD, deadline=soon())
    assert result.outcome == "permanent"
    assert len(sink.requests) == 1


@pytest.mark.parametrize(
    "body", [b'{"success":"0"}', b"<html>OK</html>", b"", b"[]", b'{"success":"1 "', b'{"status":"ok"}']
)
def test_200_without_the_success_answer_is_a_bad_response(
    client: RequestsKochavaClient, sink: KochavaSink, body: bytes
) -> None:
    sink.script([Reply(status=200, body=body)])
    result = client.send("event", PAYLOAD, deadline=soon())
    assert result.outcome == "bad_response"
    assert result.response_body == body.decode()


@pytest.mark.parametrize(
    "body", [b'{"success":"1"}', b'{"success":1}', b'{"success": " 1 "}', b'{"success":"1","x":2}']
)
def test_success_answer_tolerance(body: bytes) -> None:
    assert is_success_body(body)
    assert classify_answer(200, body).delivered


def test_the_pool_keeps_connections_alive(client: RequestsKochavaClient, sink: KochavaSink) -> None:
    for _ in range(20):
        assert client.send("event", PAYLOAD, deadline=soon()).delivered
    assert sink.connections_opened == 1


def test_concurrent_sends_share_a_pool_sized_to_the_workers(sink: KochavaSink) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sink.latency_s = 0.1
    # A read timeout far above the sink's latency: with POLICY's 0.4 s, a loaded machine (load 11 in a full run)
    # timed sends out, and a retry opens a new connection; what is tested here is the pool, not the timeout.
    policy = dataclasses.replace(POLICY, read_timeout_s=5.0)
    with (
        RequestsKochavaClient(sink.track_url, sink.identitylink_url, policy) as client,
        ThreadPoolExecutor(POLICY.pool_size) as pool,
    ):
        for _ in range(3):
            results = list(pool.map(lambda _: client.send("event", PAYLOAD, deadline=soon()), range(8)))
            assert all(r.delivered for r in results)
    assert sink.connections_opened <= POLICY.pool_size
    assert len(sink.requests) == 24


def test_result_is_small_and_typed() -> None:
    result = KochavaResult("transient", error="x")
    assert not result.delivered
    assert classify_answer(500, b"x" * 10_000).response_body == "x" * 4096
