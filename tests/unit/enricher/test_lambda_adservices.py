"""AdServices tokens in the enricher (issue 5) through its entry point on the in-memory ports: a fake Apple whose
answers are what the Apple adapter makes of Apple's (its own classifier), the queues and profile table in memory,
the handler's clock controlled by the test. Moved from the moto tier (``tests/integration/enricher/
test_adservices.py``, which keeps one end-to-end path: real HTTP to the local Apple stub, the delayed re-queue on
moto's SQS); how the adapter talks to Apple is ``tests/unit/adapters/test_apple.py``.

A re-queued install is fed back to the handler from what the enricher sent to the ingest queue, so the 5 s
``DelaySeconds`` does not make the tests wait."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from functions.names import (
    ATTR_ADSERVICES_ATTEMPT,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_ROUTE,
    ENV_ADSERVICES_RESOLVE,
)
from functions.pipeline.adservices import ATTRIBUTION_KEY, TOKEN_KEY, TOKEN_VALIDITY_S
from tests.fakes import apple_answer
from tests.samples.enricher import NOW, TOKEN, native_event
from tests.unit.enricher.stack import FakeStack
from tools.local.apple_stub import DEVELOPER_MODE_PAYLOAD, attribution_payload


class AdStack:
    def __init__(self, stack: FakeStack) -> None:
        self.stack, self.apple = stack, stack.apple

    def script(self, token: str, replies: list[int | dict[str, Any]]) -> None:
        """Apple's answers for ``token`` as the local stub takes them (a status, or a 200's JSON); the last repeats."""
        self.apple.script(token, *(apple_answer(reply) for reply in replies))

    def requeued(self) -> list[dict[str, Any]]:
        """Messages the enricher sent back to the ingest queue since the last call."""
        return self.stack.drain("ingest")

    def install(self, token: str = TOKEN, *, age_s: float = 60.0, **fields: Any) -> dict[str, Any]:
        return native_event(
            "install", adservices={"token": token, "generated_at": self.stack.clock.now - age_s, **fields}
        )


@pytest.fixture
def ads(make_stack: Callable[..., FakeStack]) -> AdStack:
    return AdStack(make_stack(**{ENV_ADSERVICES_RESOLVE: "true"}))


def _data(delivery: dict[str, Any]) -> dict[str, Any]:
    return dict(delivery["payload"]["data"])


def _metrics(out: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in out.splitlines():
        if '"_aws"' not in line or '"reason"' in line:
            continue
        doc = json.loads(line)
        for name in (m["Name"] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]):
            value = doc[name]
            totals[name] = totals.get(name, 0) + (sum(value) if isinstance(value, list) else value)
    return totals


def test_fresh_token_resolved_attaches_the_details(ads: AdStack, capsys: pytest.CaptureFixture[str]) -> None:
    """Given a fresh token Apple resolves When the install is handled
    Then it is delivered with the token and the attribution, its token's time kept, the resolution counted."""
    ads.script(TOKEN, [attribution_payload(campaign_id=42)])
    ads.stack.invoke(ads.stack.record(ads.install()))
    [delivery] = ads.stack.deliveries()
    data = _data(delivery)
    assert data[TOKEN_KEY] == TOKEN
    assert data[ATTRIBUTION_KEY]["campaignId"] == 42
    assert delivery["adservices_generated_at"] == pytest.approx(NOW - 60)
    assert ads.apple.calls == [TOKEN]
    assert _metrics(capsys.readouterr().out)["AdServicesResolved"] == 1


def test_404_404_200_attached_after_requeues_and_the_rest_of_the_batch_is_not_delayed(ads: AdStack) -> None:
    """Given an install Apple answers 404, 404, then 200, in a batch with three other events
    When it is handled, and its re-queued copies after their delay
    Then the others are delivered at once; the install is re-queued alone twice (delay 5 s, its attempt, the
    message's attributes), then delivered with the attribution."""
    ads.script(TOKEN, [404, 404, attribution_payload(campaign_id=7)])
    install = ads.install()
    others = [native_event(), native_event("install"), native_event(event="Purchase")]
    ads.stack.invoke(ads.stack.record({"batch": [others[0], install, *others[1:]]}))

    assert sorted(d["uuid"] for d in ads.stack.deliveries()) == sorted(e["uuid"] for e in others)
    for attempt in (1, 2):
        [entry] = ads.requeued()
        assert entry["raw"]["DelaySeconds"] == 5
        attrs = entry["attributes"]
        assert attrs[ATTR_ADSERVICES_ATTEMPT] == str(attempt)
        assert attrs[ATTR_REQUEST_ID] == "api-req-1" and attrs[ATTR_ROUTE] == "native"
        assert ATTR_RECEIVED_AT_MS in attrs
        assert json.loads(entry["body"]) == install  # the raw event, alone
        assert ads.stack.deliveries() == []
        ads.stack.clock.now += 5
        ads.stack.invoke(ads.stack.as_record(entry))

    [delivery] = ads.stack.deliveries()
    assert delivery["uuid"] == install["uuid"]
    assert _data(delivery)[ATTRIBUTION_KEY]["campaignId"] == 7
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert ads.requeued() == []
    assert ads.apple.calls_for(TOKEN) == 3


def test_404_three_times_forwards_the_token_alone_and_counts_it(
    ads: AdStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given Apple answering 404 for ever When the install was asked three times
    Then it is delivered with its token alone, counted not ready once, re-queued twice, received once."""
    ads.script(TOKEN, [404])
    ads.stack.invoke(ads.stack.record(ads.install()))
    for _ in range(2):
        [entry] = ads.requeued()
        ads.stack.clock.now += 5
        ads.stack.invoke(ads.stack.as_record(entry))
    assert ads.requeued() == []
    [delivery] = ads.stack.deliveries()
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert ATTRIBUTION_KEY not in _data(delivery)
    assert ads.apple.calls_for(TOKEN) == 3
    metrics = _metrics(capsys.readouterr().out)
    assert metrics["AdServicesNotReady"] == 1
    assert metrics["AdServicesRequeued"] == 2
    assert metrics["EventsReceived"] == 1  # the re-queued install is not counted twice


def test_400_delivers_the_event_without_the_token(ads: AdStack, capsys: pytest.CaptureFixture[str]) -> None:
    """Given Apple refusing the token (400) When the install is handled
    Then it is delivered at once without token or attribution, the invalid token counted."""
    ads.script(TOKEN, [400])
    install = ads.install()
    ads.stack.invoke(ads.stack.record(install))
    [delivery] = ads.stack.deliveries()
    assert delivery["uuid"] == install["uuid"]
    assert TOKEN_KEY not in _data(delivery)
    assert ATTRIBUTION_KEY not in _data(delivery)
    assert delivery["adservices_generated_at"] is None
    assert ads.requeued() == []
    assert _metrics(capsys.readouterr().out)["AdServicesTokenInvalid"] == 1


def test_500_then_200_requeues_then_attaches(ads: AdStack) -> None:
    """Given Apple answering 500 then 200 When the install and its re-queued copy are handled
    Then it is re-queued once (5 s) and then delivered with the attribution."""
    ads.script(TOKEN, [500, attribution_payload(campaign_id=9)])
    ads.stack.invoke(ads.stack.record(ads.install()))
    assert ads.stack.deliveries() == []
    [entry] = ads.requeued()
    assert entry["raw"]["DelaySeconds"] == 5
    ads.stack.clock.now += 5
    ads.stack.invoke(ads.stack.as_record(entry))
    [delivery] = ads.stack.deliveries()
    assert _data(delivery)[ATTRIBUTION_KEY]["campaignId"] == 9


def test_repeated_5xx_backs_off_and_stops_when_the_window_would_close(
    ads: AdStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a token 5 minutes from the end of its window, Apple answering 503
    When it is re-queued and handled again Then the delays double (5, 10, 20 s) until the next one would pass the
    window: then it is delivered with its token."""
    ads.script(TOKEN, [503])
    ads.stack.invoke(ads.stack.record(ads.install(age_s=TOKEN_VALIDITY_S - 300)))
    delays = []
    for wait in (5, 10, 200):
        [entry] = ads.requeued()
        delays.append(entry["raw"]["DelaySeconds"])
        ads.stack.clock.now += wait
        ads.stack.invoke(ads.stack.as_record(entry))
    assert delays == [5, 10, 20]
    # Fourth call at age 24 h - 85 s: the next delay (40 s) plus the 60 s margin would pass the end of the window.
    assert ads.requeued() == []
    [delivery] = ads.stack.deliveries()
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert ads.apple.calls_for(TOKEN) == 4
    assert _metrics(capsys.readouterr().out)["AdServicesUnavailable"] == 1


def test_404_when_the_window_is_about_to_close_forwards_the_token_at_once(ads: AdStack) -> None:
    """Given a token 30 s from the end of its window and Apple answering 404 When the install is handled
    Then it is delivered with its token at once, not re-queued."""
    ads.script(TOKEN, [404])
    ads.stack.invoke(ads.stack.record(ads.install(age_s=TOKEN_VALIDITY_S - 30)))
    assert ads.requeued() == []
    [delivery] = ads.stack.deliveries()
    assert _data(delivery)[TOKEN_KEY] == TOKEN


def test_age_23h59m59s_token_sent(ads: AdStack) -> None:
    """Given a token 23 h 59 m 59 s old When the install is handled Then the token and attribution are sent."""
    ads.script(TOKEN, [attribution_payload()])
    ads.stack.invoke(ads.stack.record(ads.install(age_s=TOKEN_VALIDITY_S - 1)))
    [delivery] = ads.stack.deliveries()
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert ATTRIBUTION_KEY in _data(delivery)


def test_age_exactly_24h_token_not_sent_and_apple_not_asked(ads: AdStack, capsys: pytest.CaptureFixture[str]) -> None:
    """Given a token exactly 24 h old When the install is handled
    Then Apple is not asked, neither token nor attribution is sent, the expired token is counted."""
    ads.script(TOKEN, [attribution_payload()])
    ads.stack.invoke(ads.stack.record(ads.install(age_s=TOKEN_VALIDITY_S)))
    [delivery] = ads.stack.deliveries()
    assert TOKEN_KEY not in _data(delivery)
    assert ATTRIBUTION_KEY not in _data(delivery)
    assert ads.apple.calls_for(TOKEN) == 0
    assert _metrics(capsys.readouterr().out)["AdServicesTokenExpired"] == 1


def test_generated_at_missing_the_event_timestamp_sets_the_age(ads: AdStack) -> None:
    """Given a token without generated_at on an event older than 24 h Then the token is not sent."""
    install = native_event("install", timestamp=NOW - TOKEN_VALIDITY_S - 5, adservices={"token": TOKEN})
    ads.stack.invoke(ads.stack.record(install))
    [delivery] = ads.stack.deliveries()
    assert TOKEN_KEY not in _data(delivery)


def test_expired_token_with_client_attribution_sends_the_attribution(ads: AdStack) -> None:
    """Given an expired token with the client's own attribution Then the attribution is sent, without the token
    and without asking Apple."""
    client = attribution_payload(campaign_id=1234)
    ads.stack.invoke(ads.stack.record(ads.install(age_s=TOKEN_VALIDITY_S + 3600, attribution=client)))
    [delivery] = ads.stack.deliveries()
    assert TOKEN_KEY not in _data(delivery)
    assert _data(delivery)[ATTRIBUTION_KEY] == client
    assert ads.apple.calls_for(TOKEN) == 0


def test_fresh_token_with_client_attribution_is_not_resolved_again(ads: AdStack) -> None:
    """Given a fresh token with the client's attribution Then both are sent and Apple is not asked."""
    client = attribution_payload(campaign_id=55)
    ads.stack.invoke(ads.stack.record(ads.install(attribution=client)))
    [delivery] = ads.stack.deliveries()
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert _data(delivery)[ATTRIBUTION_KEY] == client
    assert ads.apple.calls_for(TOKEN) == 0


def test_developer_mode_payload_from_apple_is_not_forwarded(ads: AdStack, capsys: pytest.CaptureFixture[str]) -> None:
    """Given Apple answering its developer-mode test payload Then only the token is sent, the case counted."""
    ads.script(TOKEN, [DEVELOPER_MODE_PAYLOAD])
    ads.stack.invoke(ads.stack.record(ads.install()))
    [delivery] = ads.stack.deliveries()
    assert ATTRIBUTION_KEY not in _data(delivery)
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert _metrics(capsys.readouterr().out)["AdServicesDeveloperMode"] == 1


def test_developer_mode_payload_from_the_client_is_not_forwarded(ads: AdStack) -> None:
    """Given the client sending Apple's developer-mode payload as its attribution Then it is not sent."""
    ads.stack.invoke(
        ads.stack.record(ads.install(age_s=TOKEN_VALIDITY_S + 1, attribution=dict(DEVELOPER_MODE_PAYLOAD)))
    )
    [delivery] = ads.stack.deliveries()
    assert ATTRIBUTION_KEY not in _data(delivery)


def test_installs_of_a_batch_are_resolved_concurrently(ads: AdStack) -> None:
    """Given six installs in one message When it is handled
    Then Apple is asked for all six at once (each call waits until all six are in flight), each gets its own."""
    tokens = [f"{TOKEN[:40]}-{i}" for i in range(6)]
    for i, token in enumerate(tokens):
        ads.script(token, [attribution_payload(campaign_id=i)])
    all_in_flight = threading.Barrier(len(tokens), timeout=10)  # sequential calls would break it: no attribution

    def wait_for_all(token: str) -> None:
        all_in_flight.wait()

    ads.apple.on_call = wait_for_all
    installs = [ads.install(token) for token in tokens]
    ads.stack.invoke(ads.stack.record({"batch": installs}))
    by_uuid = {d["uuid"]: d for d in ads.stack.deliveries()}
    for i, install in enumerate(installs):
        assert _data(by_uuid[install["uuid"]])[ATTRIBUTION_KEY]["campaignId"] == i
    assert not all_in_flight.broken


def test_little_lambda_time_left_defers_without_asking_apple(ads: AdStack, capsys: pytest.CaptureFixture[str]) -> None:
    """Given 3 s of Lambda time left (less than an Apple call may take) When a fresh install is handled
    Then Apple is not asked; it is re-queued (attempt 0, 5 s) and resolved on its next receive, received once."""
    ads.script(TOKEN, [attribution_payload()])
    ads.stack.invoke(ads.stack.record(ads.install()), remaining_ms=3_000)
    assert ads.apple.calls_for(TOKEN) == 0
    [entry] = ads.requeued()
    assert entry["raw"]["DelaySeconds"] == 5
    assert entry["attributes"][ATTR_ADSERVICES_ATTEMPT] == "0"
    assert ads.stack.deliveries() == []
    ads.stack.invoke(ads.stack.as_record(entry))
    [delivery] = ads.stack.deliveries()
    assert ATTRIBUTION_KEY in _data(delivery)
    metrics = _metrics(capsys.readouterr().out)
    assert metrics["EventsReceived"] == 1
    assert metrics["AdServicesDeferred"] == 1


def test_resolution_switched_off_sends_the_token_alone(make_stack: Callable[..., FakeStack]) -> None:
    """Given ADSERVICES_RESOLVE=false When a fresh install is handled Then the token goes alone, Apple not asked."""
    stack = make_stack(**{ENV_ADSERVICES_RESOLVE: "false"})
    stack.invoke(stack.record(native_event("install", adservices={"token": TOKEN, "generated_at": NOW - 60})))
    [delivery] = stack.deliveries()
    assert _data(delivery)[TOKEN_KEY] == TOKEN
    assert stack.apple.calls == []


def test_logs_never_carry_the_token(ads: AdStack, capsys: pytest.CaptureFixture[str]) -> None:
    """Given Apple answering 404 then 400 When the install is handled twice
    Then each decision is logged with the token's hash, never the token."""
    ads.script(TOKEN, [404, 400])
    ads.stack.invoke(ads.stack.record(ads.install()))
    [entry] = ads.requeued()
    ads.stack.invoke(ads.stack.as_record(entry))
    logged = ads.stack.logs.getvalue() + capsys.readouterr().out
    assert TOKEN[:20] not in logged
    decisions = [line for line in ads.stack.log_lines() if line.get("message") == "adservices"]
    assert [d["apple"] for d in decisions] == ["not_ready", "invalid"]
    assert all(d["token"].startswith("sha256:") for d in decisions)
